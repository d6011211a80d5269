"""The Python side of `ferrovision-bench nms|coco|coco-segm --compare`: times torchvision's
batched_nms and pycocotools' COCOeval on the inputs the Rust benchmark wrote, and returns their
results so the benchmark can check they are identical.

    vision_bench.py nms  <boxes.json> <out.json> [--reps N]
    vision_bench.py coco <gt.json> <dt.json> <out.json> [--iou-type bbox|segm]
"""
import contextlib
import io
import json
import sys
import time


def bench_nms(inp, out, reps):
    import torch
    import torchvision
    from torchvision.ops import batched_nms

    with open(inp) as f:
        d = json.load(f)
    boxes = torch.tensor(d["boxes"], dtype=torch.float32).reshape(-1, 4)
    scores = torch.tensor(d["scores"], dtype=torch.float32)
    classes = torch.tensor(d["classes"], dtype=torch.int64)
    thr = d["iou_threshold"]
    keep = batched_nms(boxes, scores, classes, thr)
    for _ in range(20):  # warm-up
        batched_nms(boxes, scores, classes, thr)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        batched_nms(boxes, scores, classes, thr)
        times.append(time.perf_counter() - t)
    times.sort()
    res = {"median_us": times[len(times) // 2] * 1e6, "keep": keep.tolist(),
           "torch": torch.__version__, "torchvision": torchvision.__version__,
           "threads": torch.get_num_threads()}
    with open(out, "w") as f:
        json.dump(res, f)


def bench_coco(gt, dt, out, iou_type):
    """Load + evaluate + accumulate + summarize, timed once (as the Rust side times its runs)."""
    from importlib.metadata import version

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gt)
        coco_dt = coco_gt.loadRes(dt)
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    secs = time.perf_counter() - t
    with open(out, "w") as f:
        json.dump({"seconds": secs, "stats": [float(v) for v in ev.stats],
                   "iou_type": iou_type, "pycocotools": version("pycocotools")}, f)


def main():
    a = sys.argv[1:]
    if a and a[0] == "nms" and len(a) >= 3:
        reps = int(a[a.index("--reps") + 1]) if "--reps" in a else 200
        bench_nms(a[1], a[2], reps)
    elif a and a[0] == "coco" and len(a) in (4, 6):
        iou_type = a[5] if len(a) == 6 and a[4] == "--iou-type" else "bbox"
        if len(a) == 6 and (a[4] != "--iou-type" or iou_type not in ("bbox", "segm")):
            sys.exit(__doc__)
        bench_coco(a[1], a[2], a[3], iou_type)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
