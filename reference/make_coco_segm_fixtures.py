"""Reference COCO mask (`segm`) evaluations and RLE encodings for ferrovision-vision.

Writes under reference/fixtures/vision/coco_segm/:

- `<case>_gt.json` / `<case>_dt.json`: synthetic but COCO-like ground truth (polygons: convex,
  non-convex stars, multi-part objects, parts reaching outside the image; crowd regions as
  uncompressed RLE; some objects as compressed RLE; images of several sizes, some without
  objects; several categories, one without ground truth; small, medium and large objects;
  `area` as COCO writes it, the polygon area, not the pixel count) and detections as compressed
  RLE (perturbed ground-truth masks, duplicates, false positives, images without detections,
  over 100 detections in one image). The `with_boxes` case gives every detection a `bbox` and
  some detections polygons, which sends pycocotools' `loadRes` down its box branch (the
  detection area is then the box area).
- `expected.json`: pycocotools' 12 stats (COCOeval, iouType='segm'), the printed summary and
  sums of the precision / recall arrays per case.
- `rle.json`: unit references from `pycocotools.mask`: polygon rasterization (frPyObjects +
  merge) as compressed strings with area and toBbox, uncompressed RLE -> string, encode of small
  masks, merge (union / intersection) and iou (with crowd flags).

Deterministic: every case seeds NumPy's PCG64 with the CRC32 of its name.

    reference/.venv/bin/python reference/make_coco_segm_fixtures.py
"""
import contextlib
import io
import json
import os
import zlib

import numpy as np
import pycocotools
from pycocotools import mask as mu
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "vision", "coco_segm")


def rng_for(name):
    return np.random.Generator(np.random.PCG64(zlib.crc32(name.encode())))


def r2(x):
    return float(round(float(x), 2))


def s(rle):
    """A pycocotools RLE dict with its bytes counts made JSON-ready."""
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def uncompressed(mask):
    """Column-major run lengths starting with zeros, as COCO's uncompressed RLE."""
    flat = np.asarray(mask, dtype=np.uint8).flatten(order="F")
    counts, prev, run = [], 0, 0
    for v in flat:
        if v != prev:
            counts.append(run)
            run, prev = 0, v
        run += 1
    counts.append(run)
    return counts


def polygon(rng, cx, cy, rx, ry, kind):
    if kind == "star":
        n = int(rng.integers(5, 9)) * 2
        ang = np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(0, np.pi)
        rad = np.where(np.arange(n) % 2 == 0, 1.0, rng.uniform(0.3, 0.6))
    else:
        n = int(rng.integers(4, 13))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = rng.uniform(0.8, 1.0, n)
    xs = cx + rx * rad * np.cos(ang)
    ys = cy + ry * rad * np.sin(ang)
    out = []
    for x, y in zip(xs, ys):
        out += [r2(x), r2(y)]
    return out


def shoelace(p):
    x = np.array(p[0::2])
    y = np.array(p[1::2])
    return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2


def ellipse_mask(h, w, cx, cy, rx, ry):
    yy, xx = np.mgrid[0:h, 0:w]
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0


def to_rle(mask):
    return mu.encode(np.asfortranarray(mask.astype(np.uint8)))


def perturb(rng, mask, size):
    """A detection mask near a ground-truth mask: shifted, grown or shrunk by a pixel or two."""
    m = mask.copy()
    k = int(size * 0.06)
    m = np.roll(m, (int(rng.integers(-k, k + 1)), int(rng.integers(-k, k + 1))), axis=(0, 1))
    for _ in range(int(rng.random() < 0.5) + int(size > 12 and rng.random() < 0.5)):
        grow = size < 6 or rng.random() < 0.5
        nb = [np.roll(m, d, axis=a) for a in (0, 1) for d in (-1, 1)]
        if grow:
            m = m | nb[0] | nb[1] | nb[2] | nb[3]
        else:
            m = m & nb[0] & nb[1] & nb[2] & nb[3]
    return m


def make_case(name, n_img, n_cat, gt_per_img, crowd_frac=0.1, rle_frac=0.1, miss_frac=0.15,
              dup_frac=0.05, empty_gt_frac=0.1, no_dt_frac=0.1, fp_per_img=2, score_levels=None,
              big_image=False, with_boxes=False):
    rng = rng_for(name)
    cat_ids = [int(c) for c in rng.choice(np.arange(1, 3 * n_cat + 1), n_cat, replace=False)]
    cats = [{"id": c, "name": f"class{c}"} for c in cat_ids]
    img_ids = [int(i) for i in rng.permutation(np.arange(1, n_img + 1))]
    images, anns, dets = [], [], []
    next_id = 1
    for img in img_ids:
        W, H = int(rng.integers(80, 401)), int(rng.integers(60, 301))
        images.append({"id": img, "width": W, "height": H, "file_name": f"{img}.jpg"})
        n_gt = 0 if rng.random() < empty_gt_frac else int(rng.integers(1, 2 * gt_per_img))
        masks = []
        for _ in range(n_gt):
            # Log-uniform radii: small, medium and large objects.
            r = float(np.exp(rng.uniform(np.log(2.0), np.log(min(W, H) / 1.6))))
            rx, ry = r, r * float(np.exp(rng.uniform(-0.5, 0.5)))
            cx, cy = float(rng.uniform(-0.1 * W, 1.1 * W)), float(rng.uniform(-0.1 * H, 1.1 * H))
            c = int(rng.choice(cat_ids[: max(1, n_cat - 1)]))  # last category: no ground truth
            crowd = int(rng.random() < crowd_frac)
            u = rng.random()
            if crowd:
                # A crowd region: a union of ellipses as uncompressed RLE (as COCO stores crowds).
                m = np.zeros((H, W), dtype=bool)
                for _ in range(int(rng.integers(1, 4))):
                    m |= ellipse_mask(H, W, cx + rng.normal(0, rx / 2), cy + rng.normal(0, ry / 2),
                                      rx * rng.uniform(0.4, 1), ry * rng.uniform(0.4, 1))
                if not m.any():
                    continue
                segm = {"size": [H, W], "counts": uncompressed(m)}
                area = float(m.sum())
                rle = mu.frPyObjects(segm, H, W)
            elif u < rle_frac:
                m = ellipse_mask(H, W, cx, cy, rx, ry)
                if not m.any():
                    continue
                rle = to_rle(m)
                segm = s(rle)
                area = float(mu.area(rle))
            else:
                kind = "star" if u < 0.45 else ("multi" if u < 0.7 else "convex")
                if kind == "multi":
                    parts = [polygon(rng, cx, cy, rx * 0.6, ry * 0.6, "convex")]
                    for _ in range(int(rng.integers(1, 3))):
                        parts.append(polygon(rng, cx + rng.normal(0, rx), cy + rng.normal(0, ry),
                                             rx * rng.uniform(0.2, 0.5), ry * rng.uniform(0.2, 0.5),
                                             str(rng.choice(["convex", "star"]))))
                else:
                    parts = [polygon(rng, cx, cy, rx, ry, kind)]
                rle = mu.merge(mu.frPyObjects(parts, H, W))
                if mu.area(rle) == 0 and rng.random() < 0.7:
                    continue  # keep only a few objects that fall outside the image
                segm = parts
                area = r2(sum(shoelace(p) for p in parts))  # COCO's area: the polygon area
            bb = [r2(v) for v in mu.toBbox(rle)]
            anns.append({"id": next_id, "image_id": img, "category_id": c, "segmentation": segm,
                         "area": area, "bbox": bb, "iscrowd": crowd})
            next_id += 1
            masks.append((mu.decode(rle).astype(bool), c, r))
        if rng.random() < no_dt_frac:
            continue
        for m, c, r in masks:
            if rng.random() < miss_frac:
                continue
            d = {"image_id": img, "category_id": c, "segmentation": s(to_rle(perturb(rng, m, r))),
                 "score": float(rng.random())}
            dets.append(d)
            if rng.random() < dup_frac:
                dets.append(json.loads(json.dumps(d)))  # exact duplicate
        for _ in range(int(rng.integers(0, 2 * fp_per_img + 1))):
            r = float(np.exp(rng.uniform(np.log(1.5), np.log(min(W, H) / 2.0))))
            p = polygon(rng, rng.uniform(0, W), rng.uniform(0, H), r, r, "convex")
            dets.append({"image_id": img, "category_id": int(rng.choice(cat_ids)),
                         "segmentation": s(mu.merge(mu.frPyObjects([p], H, W))),
                         "score": float(rng.random())})
    if big_image:
        img = images[0]
        H, W = img["height"], img["width"]
        for _ in range(130):  # more than maxDets=100 in one image and category
            p = polygon(rng, rng.uniform(0, W), rng.uniform(0, H), rng.uniform(2, 20), rng.uniform(2, 20), "convex")
            dets.append({"image_id": img["id"], "category_id": cat_ids[0],
                         "segmentation": s(mu.merge(mu.frPyObjects([p], H, W))), "score": float(rng.random())})
    if with_boxes:
        sizes = {im["id"]: (im["height"], im["width"]) for im in images}
        for d in dets:
            rle = d["segmentation"]
            bb = mu.toBbox({"size": rle["size"], "counts": rle["counts"].encode()})
            # A box near the mask's box: pycocotools takes the detection area from it.
            d["bbox"] = [r2(bb[0] + rng.normal(0, 1)), r2(bb[1] + rng.normal(0, 1)),
                         r2(max(0.0, bb[2] * rng.uniform(0.8, 1.3))), r2(max(0.0, bb[3] * rng.uniform(0.8, 1.3)))]
            if rng.random() < 0.2 and d["bbox"][2] > 2 and d["bbox"][3] > 2:
                # A polygon detection (the box branch of loadRes rasterizes it).
                x, y, w, h = d["bbox"]
                H, W = sizes[d["image_id"]]
                d["segmentation"] = [polygon(rng, x + w / 2, y + h / 2, w / 2, h / 2, "convex")]
    for d in dets:
        d["score"] = float(np.floor(d["score"] * score_levels) / score_levels) if score_levels \
            else float(round(d["score"], 6))
    return {"images": images, "annotations": anns, "categories": cats}, dets


def run_pycocotools(gp, dp):
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gp)
        coco_dt = coco_gt.loadRes(dp)
        ev = COCOeval(coco_gt, coco_dt, "segm")
        ev.evaluate()
        ev.accumulate()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ev.summarize()
    prec, rec = ev.eval["precision"], ev.eval["recall"]
    per_cat_ap = []
    for k in range(prec.shape[2]):
        x = prec[:, :, k, 0, 2]
        per_cat_ap.append(float(np.mean(x[x > -1])) if (x > -1).any() else -1.0)
    return {
        "stats": [float(v) for v in ev.stats],
        "summary": buf.getvalue(),
        "per_category_ap": per_cat_ap,
        "precision_sum": float(prec[prec > -1].sum()),
        "precision_valid": int((prec > -1).sum()),
        "recall_sum": float(rec[rec > -1].sum()),
        "recall_valid": int((rec > -1).sum()),
    }


CASES = [
    ("segm_basic", dict(n_img=24, n_cat=4, gt_per_img=3)),
    ("segm_crowd_dups", dict(n_img=16, n_cat=3, gt_per_img=3, crowd_frac=0.35, dup_frac=0.4,
                             score_levels=10, big_image=True)),
    ("segm_with_boxes", dict(n_img=14, n_cat=3, gt_per_img=3, with_boxes=True)),
    ("segm_sparse", dict(n_img=16, n_cat=5, gt_per_img=2, empty_gt_frac=0.4, no_dt_frac=0.4, rle_frac=0.3)),
]


def rle_units():
    rng = rng_for("rle_units")
    out = {"polygons": [], "uncompressed": [], "encode": [], "merge": [], "iou": []}
    # Polygon rasterization, including the rounding corners of COCO's rule.
    polys = [
        (10, 10, [[1, 2, 5, 4, 3, 7]]),
        (10, 10, [[1, 2, 5, 4, 3, 7, 1, 1]]),  # a second part with 2 points: empty
        (10, 10, [[1, 2, 5, 4, 3, 7], [1, 2, 3, 4]]),
        (8, 12, [[0, 0, 12, 0, 12, 8, 0, 8]]),  # the whole image
        (8, 12, [[-3, -2, 20, -1, 14, 11, -5, 9]]),  # beyond every border
        (9, 9, [[0.5, 0.5, 4.5, 0.5, 4.5, 4.5, 0.5, 4.5]]),  # exact .5 coordinates
        (9, 9, [[0.3, 0.7, 0.6, 0.7, 0.6, 1.1]]),  # below one pixel
        (9, 9, [[1, 1, 7, 7, 1, 7, 7, 1]]),  # self-intersecting bow tie
        (9, 9, [[1, 1, 4, 4, 7, 7]]),  # collinear
        (7, 11, [[2.1, 1.3, 8.8, 1.2, 8.9, 5.6, 5.0, 2.5, 2.2, 5.9], [0, 0, 1.9, 0, 1.9, 1.9]]),
        (6, 6, [[-0.2, -0.2, 5.7, -0.2, 5.7, 5.7, -0.2, 5.7]]),
    ]
    for i in range(14):
        h, w = int(rng.integers(5, 60)), int(rng.integers(5, 60))
        parts = [polygon(rng, rng.uniform(-5, w + 5), rng.uniform(-5, h + 5), rng.uniform(0.5, w),
                         rng.uniform(0.5, h), "star" if i % 2 else "convex")
                 for _ in range(1 + i % 3)]
        polys.append((h, w, parts))
    for h, w, parts in polys:
        parts_f = [[float(v) for v in p] for p in parts]
        rles = mu.frPyObjects(parts_f, h, w)
        merged = mu.merge(rles)
        out["polygons"].append({"h": h, "w": w, "polygons": parts_f,
                                "part_counts": [r["counts"].decode() for r in rles],
                                "counts": merged["counts"].decode(), "area": int(mu.area(merged)),
                                "bbox": [float(v) for v in mu.toBbox(merged)]})
    # Uncompressed -> compressed, with large counts (multi-character values, negative deltas).
    for h, w, counts in [(3, 4, [2, 3, 7]), (4, 4, [0, 16]), (4, 4, [16]), (200, 300, [0, 5, 59990, 5]),
                         (1000, 1000, [123456, 777, 1, 875766]), (5, 5, [3, 1, 1, 1, 19])]:
        r = mu.frPyObjects({"size": [h, w], "counts": counts}, h, w)
        out["uncompressed"].append({"h": h, "w": w, "counts": counts, "string": r["counts"].decode(),
                                    "area": int(mu.area(r)), "bbox": [float(v) for v in mu.toBbox(r)]})
    for i in range(6):
        h, w = int(rng.integers(1, 30)), int(rng.integers(1, 30))
        m = rng.random((h, w)) < [0.05, 0.5, 0.95, 0.0, 1.0, 0.3][i]
        rows = ["".join("1" if v else "0" for v in row) for row in m]
        r = to_rle(m)
        out["encode"].append({"h": h, "w": w, "rows": rows, "string": r["counts"].decode(),
                              "uncompressed": uncompressed(m), "area": int(mu.area(r)),
                              "bbox": [float(v) for v in mu.toBbox(r)]})
    for i in range(5):
        h, w = int(rng.integers(10, 40)), int(rng.integers(10, 40))
        rles = []
        for _ in range(2 + i % 3):
            rles.append(mu.merge(mu.frPyObjects([polygon(rng, rng.uniform(0, w), rng.uniform(0, h),
                                                          rng.uniform(2, w / 2), rng.uniform(2, h / 2),
                                                          "star")], h, w)))
        out["merge"].append({"h": h, "w": w, "inputs": [r["counts"].decode() for r in rles],
                             "union": mu.merge(rles, intersect=False)["counts"].decode(),
                             "intersection": mu.merge(rles, intersect=True)["counts"].decode()})
    for i in range(3):
        h, w = int(rng.integers(20, 50)), int(rng.integers(20, 50))
        mk = lambda: mu.merge(mu.frPyObjects([polygon(rng, rng.uniform(0, w), rng.uniform(0, h),
                                                      rng.uniform(2, w / 2), rng.uniform(2, h / 2),
                                                      "convex")], h, w))
        dt = [mk() for _ in range(4)]
        gt = [mk() for _ in range(3)]
        crowd = [0, 1, 0]
        iou = mu.iou(dt, gt, crowd)
        out["iou"].append({"h": h, "w": w, "dt": [r["counts"].decode() for r in dt],
                           "gt": [r["counts"].decode() for r in gt], "iscrowd": crowd,
                           "iou": [[float(v) for v in row] for row in iou]})
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    expected = {"pycocotools_version": getattr(pycocotools, "__version__", "2.0.11"),
                "numpy_version": np.__version__, "cases": {}}
    for name, kw in CASES:
        gt, dets = make_case(name, **kw)
        gp = os.path.join(OUT, f"{name}_gt.json")
        dp = os.path.join(OUT, f"{name}_dt.json")
        with open(gp, "w") as f:
            json.dump(gt, f, separators=(",", ":"))
        with open(dp, "w") as f:
            json.dump(dets, f, separators=(",", ":"))
        expected["cases"][name] = run_pycocotools(gp, dp)
        st = expected["cases"][name]["stats"]
        print(f"{name}: {len(gt['images'])} images, {len(gt['annotations'])} gt, {len(dets)} dt, "
              f"AP={st[0]:.4f} APs={st[3]:.4f} APm={st[4]:.4f} APl={st[5]:.4f}")
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    with open(os.path.join(OUT, "rle.json"), "w") as f:
        json.dump(rle_units(), f, separators=(",", ":"))
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"{OUT}: {total / 1024:.0f} KB")


if __name__ == "__main__":
    main()
