"""Reference COCO and Pascal VOC detection evaluations for ferrovision-vision.

COCO: writes ground-truth / detection JSON pairs under reference/fixtures/vision/coco/ and the
numbers pycocotools (pinned in requirements.txt) computes for them into coco/expected.json:
the 12 summary stats, the printed summary, per-category AP@[.5:.95] and AR@100, and sums of
the precision / recall arrays. Cases cover crowd regions, images without ground truth, images
without detections, an empty detection list, duplicate detections and ground truth, score
ties, more than 100 detections in an image, a ground-truth annotation with id 0, `area` fields
that differ from the box area, and 80 categories.

VOC: writes Pascal VOC XML annotations and a detection list under voc/ and the per-class AP of
the VOC devkit rules (a NumPy transcription of the devkit's `voc_eval`: IoU with the +1 pixel
convention, > 0.5 to match, `difficult` objects neither TP nor FP, 11-point and all-point AP).

    reference/.venv/bin/python reference/make_coco_fixtures.py
"""
import contextlib
import io
import json
import os
import zlib

import numpy as np
import pycocotools
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "vision")


def rng_for(name):
    return np.random.Generator(np.random.PCG64(zlib.crc32(name.encode())))


def r2(x):
    return float(round(float(x), 2))


def make_case(name, n_img, n_cat, gt_per_img, crowd_frac=0.1, fp_per_img=3, jitter=0.08,
              miss_frac=0.15, dup_frac=0.05, empty_gt_frac=0.1, no_dt_frac=0.1,
              score_levels=None, area_noise=False, id_zero=False, big_image=False,
              cat_ids=None, img_id_base=1):
    rng = rng_for(name)
    cat_ids = cat_ids or [int(c) for c in rng.choice(np.arange(1, 3 * n_cat + 1), n_cat, replace=False)]
    cats = [{"id": c, "name": f"class{c}"} for c in cat_ids]
    # Image ids deliberately not in file order.
    img_ids = [int(i) for i in rng.permutation(np.arange(img_id_base, img_id_base + n_img))]
    images = [{"id": i, "width": 640, "height": 480, "file_name": f"{i}.jpg"} for i in img_ids]
    anns, dets = [], []
    next_id = 0 if id_zero else 1
    for img in img_ids:
        if rng.random() < empty_gt_frac:
            n_gt = 0
        else:
            n_gt = int(rng.integers(1, 2 * gt_per_img))
        gts = []
        for _ in range(n_gt):
            # Log-uniform sizes spread over small / medium / large.
            w = float(np.exp(rng.uniform(np.log(4), np.log(300))))
            h = float(w * np.exp(rng.uniform(-0.7, 0.7)))
            x = float(rng.uniform(0, 640 - min(w, 600)))
            y = float(rng.uniform(0, 480 - min(h, 450)))
            c = int(rng.choice(cat_ids[: max(1, n_cat - 1)]))  # last category: no ground truth
            crowd = int(rng.random() < crowd_frac)
            area = w * h
            if area_noise:
                area *= float(rng.uniform(0.5, 1.0))  # segment area below box area
            b = [r2(x), r2(y), r2(w), r2(h)]
            gts.append((b, c))
            anns.append({"id": next_id, "image_id": img, "category_id": c, "bbox": b,
                         "area": r2(area), "iscrowd": crowd})
            next_id += 1
        if rng.random() < no_dt_frac:
            continue
        for b, c in gts:
            if rng.random() < miss_frac:
                continue
            x, y, w, h = b
            j = jitter
            d = [x + rng.normal(0, j) * w, y + rng.normal(0, j) * h,
                 w * np.exp(rng.normal(0, j)), h * np.exp(rng.normal(0, j))]
            d = [r2(v) for v in d]
            dets.append({"image_id": img, "category_id": c, "bbox": d, "score": float(rng.random())})
            if rng.random() < dup_frac:
                dets.append(dict(dets[-1]))  # exact duplicate detection
        for _ in range(int(rng.integers(0, 2 * fp_per_img + 1))):
            w = float(np.exp(rng.uniform(np.log(4), np.log(300))))
            h = float(w * np.exp(rng.uniform(-0.7, 0.7)))
            d = [r2(rng.uniform(0, 600)), r2(rng.uniform(0, 450)), r2(w), r2(h)]
            dets.append({"image_id": img, "category_id": int(rng.choice(cat_ids)), "bbox": d,
                         "score": float(rng.random())})
    if big_image:
        img = img_ids[0]
        c = cat_ids[0]
        for _ in range(150):  # more than maxDets=100 in one image and category
            d = [r2(rng.uniform(0, 600)), r2(rng.uniform(0, 450)), r2(rng.uniform(5, 80)), r2(rng.uniform(5, 80))]
            dets.append({"image_id": img, "category_id": c, "bbox": d, "score": float(rng.random())})
    if score_levels:
        for d in dets:
            d["score"] = float(np.floor(d["score"] * score_levels) / score_levels)
    else:
        for d in dets:
            d["score"] = float(round(d["score"], 6))
    gt = {"images": images, "annotations": anns, "categories": cats}
    return gt, dets


def run_pycocotools(gt_path, dt_path, dets):
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gt_path)
        if dets:
            coco_dt = coco_gt.loadRes(dt_path)
        else:
            # loadRes cannot take an empty list: build an empty results object by hand.
            coco_dt = COCO()
            coco_dt.dataset = {"images": list(coco_gt.dataset["images"]), "annotations": [],
                               "categories": list(coco_gt.dataset["categories"])}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ev.summarize()
    prec = ev.eval["precision"]
    rec = ev.eval["recall"]
    per_cat_ap, per_cat_ar = [], []
    for k in range(prec.shape[2]):
        s = prec[:, :, k, 0, 2]
        per_cat_ap.append(float(np.mean(s[s > -1])) if (s > -1).any() else -1.0)
        r = rec[:, k, 0, 2]
        per_cat_ar.append(float(np.mean(r[r > -1])) if (r > -1).any() else -1.0)
    return {
        "stats": [float(v) for v in ev.stats],
        "summary": buf.getvalue(),
        "category_ids": [int(c) for c in ev.params.catIds],
        "per_category_ap": per_cat_ap,
        "per_category_ar100": per_cat_ar,
        "precision_sum": float(prec[prec > -1].sum()),
        "precision_valid": int((prec > -1).sum()),
        "recall_sum": float(rec[rec > -1].sum()),
        "recall_valid": int((rec > -1).sum()),
    }


COCO_CASES = [
    ("basic", dict(n_img=30, n_cat=5, gt_per_img=3)),
    ("crowd", dict(n_img=25, n_cat=3, gt_per_img=4, crowd_frac=0.4)),
    ("duplicates_ties", dict(n_img=25, n_cat=4, gt_per_img=3, dup_frac=0.5, score_levels=10)),
    ("area_noise_id_zero", dict(n_img=20, n_cat=3, gt_per_img=3, area_noise=True, id_zero=True)),
    ("over_100_dets", dict(n_img=6, n_cat=2, gt_per_img=10, big_image=True)),
    ("many_classes", dict(n_img=60, n_cat=80, gt_per_img=6, fp_per_img=8, cat_ids=list(range(1, 81)))),
    ("empty_detections", dict(n_img=8, n_cat=3, gt_per_img=3, no_dt_frac=1.0)),
    ("exact_hits", dict(n_img=15, n_cat=3, gt_per_img=3, jitter=0.0, fp_per_img=0, crowd_frac=0.0)),
]


def coco_fixtures():
    d = os.path.join(OUT, "coco")
    os.makedirs(d, exist_ok=True)
    expected = {"pycocotools_version": pycocotools.__version__ if hasattr(pycocotools, "__version__") else "2.0.11",
                "numpy_version": np.__version__, "cases": {}}
    for name, kw in COCO_CASES:
        gt, dets = make_case(name, **kw)
        gp = os.path.join(d, f"{name}_gt.json")
        dp = os.path.join(d, f"{name}_dt.json")
        with open(gp, "w") as f:
            json.dump(gt, f, separators=(",", ":"))
        with open(dp, "w") as f:
            json.dump(dets, f, separators=(",", ":"))
        expected["cases"][name] = run_pycocotools(gp, dp, dets)
        print(f"coco {name}: {len(gt['annotations'])} gt, {len(dets)} dt, AP={expected['cases'][name]['stats'][0]:.4f}")
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)


# ---------------------------------------------------------------- VOC

def voc_iou_plus1(bb, gts):
    ixmin = np.maximum(gts[:, 0], bb[0])
    iymin = np.maximum(gts[:, 1], bb[1])
    ixmax = np.minimum(gts[:, 2], bb[2])
    iymax = np.minimum(gts[:, 3], bb[3])
    iw = np.maximum(ixmax - ixmin + 1.0, 0.0)
    ih = np.maximum(iymax - iymin + 1.0, 0.0)
    inter = iw * ih
    uni = ((bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0)
           + (gts[:, 2] - gts[:, 0] + 1.0) * (gts[:, 3] - gts[:, 1] + 1.0) - inter)
    return inter / uni


def voc_ap(rec, prec, use_07):
    if use_07:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = 0.0 if np.sum(rec >= t) == 0 else np.max(prec[rec >= t])
            ap += p / 11.0
        return ap
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def voc_eval_class(objects, dets, cls, use_07, thresh=0.5):
    recs = {}
    npos = 0
    for img, objs in objects.items():
        o = [x for x in objs if x["name"] == cls]
        bbox = np.array([x["bbox"] for x in o], dtype=float).reshape(-1, 4)
        diff = np.array([x["difficult"] for x in o], dtype=bool)
        npos += int((~diff).sum())
        recs[img] = {"bbox": bbox, "difficult": diff, "det": [False] * len(o)}
    cd = [d for d in dets if d["class"] == cls]
    # Stable order (the devkit's argsort is not stable; the fixture's scores are distinct).
    order = np.argsort([-d["score"] for d in cd], kind="stable")
    tp = np.zeros(len(cd))
    fp = np.zeros(len(cd))
    for k, i in enumerate(order):
        d = cd[i]
        r = recs[d["image_id"]]
        bb = np.array(d["bbox"], dtype=float)
        ovmax = -np.inf
        if r["bbox"].size > 0:
            ov = voc_iou_plus1(bb, r["bbox"])
            ovmax = np.max(ov)
            jmax = int(np.argmax(ov))
        if ovmax > thresh:
            if not r["difficult"][jmax]:
                if not r["det"][jmax]:
                    tp[k] = 1.0
                    r["det"][jmax] = True
                else:
                    fp[k] = 1.0
        else:
            fp[k] = 1.0
    fp = np.cumsum(fp)
    tp = np.cumsum(tp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return voc_ap(rec, prec, use_07)


def voc_fixtures():
    d = os.path.join(OUT, "voc")
    ann_dir = os.path.join(d, "annotations")
    os.makedirs(ann_dir, exist_ok=True)
    rng = rng_for("voc")
    classes = ["cat", "dog", "person"]
    objects = {}
    dets = []
    for n in range(12):
        img = f"img_{n:03d}"
        W, H = int(rng.integers(200, 500)), int(rng.integers(200, 400))
        objs = []
        for _ in range(int(rng.integers(0, 5))):
            w, h = rng.uniform(10, W / 2), rng.uniform(10, H / 2)
            x1, y1 = rng.uniform(1, W - w), rng.uniform(1, H - h)
            objs.append({"name": str(rng.choice(classes)),
                         "bbox": [int(x1), int(y1), int(x1 + w), int(y1 + h)],
                         "difficult": int(rng.random() < 0.2)})
        objects[img] = objs
        lines = [f"<annotation>\n  <folder>images</folder>\n  <filename>{img}.jpg</filename>",
                 f"  <size>\n    <width>{W}</width>\n    <height>{H}</height>\n    <depth>3</depth>\n  </size>"]
        for o in objs:
            b = o["bbox"]
            lines.append(f"  <object>\n    <name>{o['name']}</name>\n    <pose>Unspecified</pose>\n"
                         f"    <truncated>0</truncated>\n    <difficult>{o['difficult']}</difficult>\n"
                         f"    <bndbox>\n      <xmin>{b[0]}</xmin>\n      <ymin>{b[1]}</ymin>\n"
                         f"      <xmax>{b[2]}</xmax>\n      <ymax>{b[3]}</ymax>\n    </bndbox>\n  </object>")
        lines.append("</annotation>\n")
        with open(os.path.join(ann_dir, f"{img}.xml"), "w") as f:
            f.write("\n".join(lines))
        for o in objs:
            if rng.random() < 0.2:
                continue
            b = np.array(o["bbox"], dtype=float)
            s = b[2:] - b[:2]
            jb = b + np.concatenate([rng.normal(0, 0.12, 2) * s, rng.normal(0, 0.12, 2) * s])
            dets.append({"image_id": img, "class": o["name"], "score": round(float(rng.random()), 6),
                         "bbox": [round(float(v), 1) for v in jb]})
            if rng.random() < 0.2:
                dd = dict(dets[-1])
                dd["score"] = round(float(rng.random()), 6)
                dets.append(dd)  # a duplicate: a false positive when ranked second
        for _ in range(int(rng.integers(0, 3))):
            x1, y1 = rng.uniform(0, W - 20), rng.uniform(0, H - 20)
            dets.append({"image_id": img, "class": str(rng.choice(classes)),
                         "score": round(float(rng.random()), 6),
                         "bbox": [round(x1, 1), round(y1, 1), round(x1 + rng.uniform(10, 100), 1),
                                  round(y1 + rng.uniform(10, 100), 1)]})
    assert len({d["score"] for d in dets}) == len(dets), "scores must be distinct"
    with open(os.path.join(d, "detections.json"), "w") as f:
        json.dump(dets, f, indent=0)
    exp = {"classes": classes, "ap_07": {}, "ap_all": {}}
    for c in classes:
        exp["ap_07"][c] = voc_eval_class(objects, dets, c, True)
        exp["ap_all"][c] = voc_eval_class(objects, dets, c, False)
    exp["map_07"] = float(np.mean(list(exp["ap_07"].values())))
    exp["map_all"] = float(np.mean(list(exp["ap_all"].values())))
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(exp, f, indent=1)
    print("voc", exp)


if __name__ == "__main__":
    coco_fixtures()
    voc_fixtures()
