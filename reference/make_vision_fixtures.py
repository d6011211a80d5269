"""Reference results for ferrovision-vision's box ops, NMS and RoI ops.

Writes reference/fixtures/vision/{boxes,nms,roi}.json from torchvision (and TensorFlow for
combined / soft NMS). Deterministic: every case seeds NumPy's PCG64 with the CRC32 of its name.

    reference/.venv/bin/python reference/make_vision_fixtures.py
"""
import json
import math
import os
import zlib

import numpy as np
import torch
import torchvision
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import (
    batched_nms,
    box_iou,
    complete_box_iou,
    complete_box_iou_loss,
    distance_box_iou,
    distance_box_iou_loss,
    generalized_box_iou,
    generalized_box_iou_loss,
    nms,
    roi_align,
    roi_pool,
)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "vision")


def rng_for(name):
    return np.random.Generator(np.random.PCG64(zlib.crc32(name.encode())))


def f32list(a):
    """float32 values as the shortest decimals that parse back (via f64) to the same float32."""
    out = []
    for v in np.asarray(a, dtype=np.float64).ravel():
        f = np.float32(v)
        d = float(str(f))
        assert np.float32(d) == f, (v, d)
        out.append(d)
    return out


def rand_boxes(rng, n, size=100.0, min_wh=1.0, max_wh=40.0, offset=0.0):
    x1 = rng.uniform(0, size, n) + offset
    y1 = rng.uniform(0, size, n) + offset
    w = rng.uniform(min_wh, max_wh, n)
    h = rng.uniform(min_wh, max_wh, n)
    b = np.stack([x1, y1, x1 + w, y1 + h], 1).astype(np.float32)
    return b


def boxes_cases():
    cases = []
    for name, na, nb in [("iou_small", 7, 5), ("iou_overlapping", 12, 9)]:
        rng = rng_for(name)
        size = 30.0 if name == "iou_overlapping" else 100.0
        a = rand_boxes(rng, na, size=size)
        b = rand_boxes(rng, nb, size=size)
        ta, tb = torch.from_numpy(a).double(), torch.from_numpy(b).double()
        m = min(na, nb)
        cases.append({
            "name": name,
            "a": f32list(a), "b": f32list(b),
            "iou": f32list(box_iou(ta, tb)),
            "giou": f32list(generalized_box_iou(ta, tb)),
            "diou": f32list(distance_box_iou(ta, tb)),
            "ciou": f32list(complete_box_iou(ta, tb)),
            # elementwise over the first min(na, nb) pairs, via torchvision's losses (1 - value)
            "giou_pairs": f32list(1 - generalized_box_iou_loss(ta[:m], tb[:m], reduction="none")),
            "diou_pairs": f32list(1 - distance_box_iou_loss(ta[:m], tb[:m], reduction="none")),
            "ciou_pairs": f32list(1 - complete_box_iou_loss(ta[:m], tb[:m], reduction="none")),
        })
    # Faster R-CNN box coder
    rng = rng_for("coder")
    anchors = rand_boxes(rng, 20, min_wh=4.0)
    gt = rand_boxes(rng, 20, min_wh=4.0)
    coder = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    enc = coder.encode_single(torch.from_numpy(gt).double(), torch.from_numpy(anchors).double())
    deltas = rng.normal(0, 1, (20, 4)).astype(np.float32)
    deltas[3, 2] = 30.0  # exercises the clamp of dw
    deltas[5, 3] = 25.0
    dec = coder.decode_single(torch.from_numpy(deltas).double(), torch.from_numpy(anchors).double())
    coder_case = {
        "name": "box_coder_10_10_5_5", "weights": [10.0, 10.0, 5.0, 5.0],
        "clip": float(coder.bbox_xform_clip),
        "anchors": f32list(anchors), "gt": f32list(gt), "encoded": f32list(enc),
        "deltas": f32list(deltas), "decoded": f32list(dec),
    }
    # Anchors
    anchor_cases = []
    for name, sizes, ratios, image, grid in [
        ("anchors_single", (32.0, 64.0), (0.5, 1.0, 2.0), (96, 128), (6, 8)),
        ("anchors_odd", (20.0, 45.0, 90.0), (0.25, 0.7, 1.0, 3.0), (100, 75), (7, 5)),
    ]:
        gen = AnchorGenerator(sizes=(sizes,), aspect_ratios=(ratios,))
        base = gen.generate_anchors(list(sizes), list(ratios), dtype=torch.float32)
        stride = [torch.tensor(image[0] // grid[0]), torch.tensor(image[1] // grid[1])]
        gen.cell_anchors = [base]
        grid_a = gen.grid_anchors([list(grid)], [stride])[0]
        anchor_cases.append({
            "name": name, "sizes": list(sizes), "ratios": list(ratios),
            "image": list(image), "grid": list(grid),
            "base": f32list(base), "anchors": f32list(grid_a),
        })
    return {"cases": cases, "coder": coder_case, "anchors": anchor_cases}


def nms_cases():
    cases = []
    specs = [
        ("nms_50", 50, 1, 0.5, 40.0),
        ("nms_300_t03", 300, 1, 0.3, 80.0),
        ("nms_1000_t07", 1000, 1, 0.7, 120.0),
        ("batched_200_5cls", 200, 5, 0.5, 60.0),
        ("batched_1000_80cls", 1000, 80, 0.5, 30.0),
        ("batched_1500_80cls_vanilla", 1500, 80, 0.5, 30.0),
        ("batched_300_3cls_t06", 300, 3, 0.6, 60.0),
    ]
    for name, n, ncls, thr, size in specs:
        rng = rng_for(name)
        b = rand_boxes(rng, n, size=size, max_wh=60.0)
        s = rng.random(n).astype(np.float32)
        c = rng.integers(0, ncls, n)
        tb, ts, tc = torch.from_numpy(b), torch.from_numpy(s), torch.from_numpy(c)
        keep = nms(tb, ts, thr) if ncls == 1 else batched_nms(tb, ts, tc, thr)
        cases.append({"name": name, "boxes": f32list(b), "scores": f32list(s),
                      "classes": c.tolist(), "iou_threshold": thr, "batched": ncls > 1,
                      "keep": keep.tolist()})
    # Ties: quantised scores and exact duplicate boxes.
    rng = rng_for("nms_ties")
    b = np.round(rand_boxes(rng, 120, size=60.0)).astype(np.float32)
    b[10:20] = b[0:10]
    s = (rng.integers(0, 8, 120) / 8.0).astype(np.float32)
    c = rng.integers(0, 3, 120)
    for thr in (0.3, 0.5):
        keep = nms(torch.from_numpy(b), torch.from_numpy(s), thr)
        cases.append({"name": f"nms_ties_{thr}", "boxes": f32list(b), "scores": f32list(s),
                      "classes": [0] * 120, "iou_threshold": thr, "batched": False,
                      "keep": keep.tolist()})
        keep = batched_nms(torch.from_numpy(b), torch.from_numpy(s), torch.from_numpy(c), thr)
        cases.append({"name": f"batched_ties_{thr}", "boxes": f32list(b), "scores": f32list(s),
                      "classes": c.tolist(), "iou_threshold": thr, "batched": True,
                      "keep": keep.tolist()})
    # Negative coordinates: torchvision's coordinate trick no longer separates classes.
    rng = rng_for("batched_negative")
    b = rand_boxes(rng, 150, size=100.0, offset=-150.0)
    s = rng.random(150).astype(np.float32)
    c = rng.integers(0, 4, 150)
    keep = batched_nms(torch.from_numpy(b), torch.from_numpy(s), torch.from_numpy(c), 0.5)
    cases.append({"name": "batched_negative_coords", "boxes": f32list(b), "scores": f32list(s),
                  "classes": c.tolist(), "iou_threshold": 0.5, "batched": True,
                  "keep": keep.tolist()})

    import tensorflow as tf

    # Combined NMS (TensorFlow), boxes as [y1, x1, y2, x2] in [0, 1].
    combined = []
    for name, nb, ncls, q, per_cls, total, iou_t, score_t, pad, clip in [
        ("combined_q1", 40, 4, 1, 5, 12, 0.5, 0.3, False, True),
        ("combined_qc", 40, 3, 3, 4, 20, 0.4, 0.1, False, False),
        ("combined_pad_per_class", 30, 2, 1, 3, 50, 0.5, 0.2, True, True),
    ]:
        rng = rng_for(name)
        bx = rand_boxes(rng, nb * q, size=1.1, min_wh=0.05, max_wh=0.4) - 0.05
        sc = rng.random((nb, ncls)).astype(np.float32)
        out = tf.image.combined_non_max_suppression(
            bx.reshape(1, nb, q, 4), sc.reshape(1, nb, ncls), per_cls, total,
            iou_threshold=iou_t, score_threshold=score_t, pad_per_class=pad, clip_boxes=clip)
        nb_, ns_, nc_, nv_ = [o.numpy()[0] for o in out]
        combined.append({
            "name": name, "boxes": f32list(bx), "scores": f32list(sc), "q": q,
            "num_classes": ncls, "max_per_class": per_cls, "max_total": total,
            "iou_threshold": iou_t, "score_threshold": score_t, "pad_per_class": pad,
            "clip_boxes": clip, "out_boxes": f32list(nb_), "out_scores": f32list(ns_),
            "out_classes": [int(v) for v in nc_], "valid": int(nv_)})
    # Gaussian soft-NMS (TensorFlow non_max_suppression_with_scores).
    soft = []
    for name, n, sigma, iou_t, score_t in [("soft_gauss_05", 60, 0.5, 1.0, 0.05),
                                           ("soft_gauss_02_t07", 80, 0.2, 0.7, 0.01)]:
        rng = rng_for(name)
        bx = rand_boxes(rng, n, size=50.0, max_wh=30.0)
        sc = rng.random(n).astype(np.float32)
        idx, ss = tf.image.non_max_suppression_with_scores(
            bx, sc, n, iou_threshold=iou_t, score_threshold=score_t, soft_nms_sigma=sigma)
        soft.append({"name": name, "boxes": f32list(bx), "scores": f32list(sc),
                     "sigma": sigma, "iou_threshold": iou_t, "score_threshold": score_t,
                     "selected": idx.numpy().tolist(), "selected_scores": f32list(ss.numpy())})
    return {"cases": cases, "combined": combined, "soft": soft,
            "tensorflow_version": tf.__version__}


def roi_cases():
    cases = []
    specs = [
        # name, N, C, H, W, K, out, scale, sampling, aligned
        ("align_basic", 2, 3, 10, 12, 5, (3, 3), 1.0, -1, False),
        ("align_aligned_s2", 2, 2, 9, 11, 6, (4, 2), 0.5, 2, True),
        ("align_scale025_adaptive", 1, 4, 16, 16, 4, (5, 5), 0.25, 0, False),
        ("align_aligned_adaptive", 3, 2, 8, 7, 7, (2, 3), 1.0, -1, True),
        ("pool_basic", 2, 3, 10, 12, 5, (3, 3), 1.0, 0, False),
        ("pool_scale05", 2, 2, 9, 11, 6, (4, 2), 0.5, 0, False),
    ]
    for name, n, c, h, w, k, out, scale, sr, aligned in specs:
        rng = rng_for(name)
        # Distinct values on a 5-decimal grid: max pooling meets no ties.
        vals = rng.permutation(200001)[: n * c * h * w].astype(np.float64) / 100000.0 - 1.0
        x32 = vals.astype(np.float32).reshape(n, c, h, w)
        xs = (w / scale) * 1.15
        ys = (h / scale) * 1.15
        x1 = rng.uniform(-0.1 * xs, 0.8 * xs, k)
        y1 = rng.uniform(-0.1 * ys, 0.8 * ys, k)
        bw = rng.uniform(0.05 * xs, 0.6 * xs, k)
        bh = rng.uniform(0.05 * ys, 0.6 * ys, k)
        bi = rng.integers(0, n, k)
        rois = np.stack([bi, x1, y1, x1 + bw, y1 + bh], 1).astype(np.float32)
        rois[:, 1:] = np.round(rois[:, 1:] * 8) / 8  # exact in float32
        x = torch.from_numpy(x32).double().requires_grad_(True)
        r = torch.from_numpy(rois).double()
        if name.startswith("align"):
            y = roi_align(x, r, out, spatial_scale=scale, sampling_ratio=sr, aligned=aligned)
            y32 = roi_align(torch.from_numpy(x32), torch.from_numpy(rois), out,
                            spatial_scale=scale, sampling_ratio=sr, aligned=aligned)
        else:
            y = roi_pool(x, r, out, spatial_scale=scale)
            y32 = roi_pool(torch.from_numpy(x32), torch.from_numpy(rois), out, spatial_scale=scale)
        assert torch.allclose(y32.double(), y, rtol=1e-5, atol=1e-6), name
        cot = rng.uniform(-1, 1, tuple(y.shape)).astype(np.float32)
        (g,) = torch.autograd.grad((y * torch.from_numpy(cot).double()).sum(), x)
        cases.append({"name": name, "op": "roi_align" if name.startswith("align") else "roi_pool",
                      "input_shape": [n, c, h, w], "input": f32list(x32), "rois": f32list(rois),
                      "output_size": list(out), "spatial_scale": scale, "sampling_ratio": sr,
                      "aligned": aligned, "output_shape": list(y.shape),
                      "output": f32list(y.detach()), "cotangent": f32list(cot),
                      "grad_input": f32list(g)})
    return {"cases": cases}


def main():
    os.makedirs(OUT, exist_ok=True)
    meta = {"torch_version": torch.__version__, "torchvision_version": torchvision.__version__,
            "numpy_version": np.__version__}
    for fname, fn in [("boxes.json", boxes_cases), ("nms.json", nms_cases), ("roi.json", roi_cases)]:
        data = dict(meta)
        data.update(fn())
        path = os.path.join(OUT, fname)
        with open(path + ".tmp", "w") as f:
            json.dump(data, f, separators=(",", ":"))
        os.replace(path + ".tmp", path)
        print(f"{fname}: {os.path.getsize(path) / 1024:.1f} KB")


if __name__ == "__main__":
    main()
