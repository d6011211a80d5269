"""Reference segmentation / image-quality / morphology results for ferrovision-vision.

Writes reference/fixtures/vision/{segmentation,quality,morphology}.json from scikit-learn
(confusion_matrix, jaccard_score, f1_score, accuracy_score), TensorFlow (keras MeanIoU with
ignore_class), scikit-image (peak_signal_noise_ratio, structural_similarity, binary morphology,
watershed) and SciPy (ndimage.label, distance_transform_edt). Deterministic (PCG64 seeded with
the CRC32 of each case name).

    reference/.venv/bin/python reference/make_metric_fixtures.py
"""
import json
import os
import zlib

import numpy as np
import scipy
import scipy.ndimage as ndi
import skimage
import sklearn
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.morphology import binary_dilation, binary_erosion, disk, square
from skimage.segmentation import watershed
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, jaccard_score

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "vision")


def rng_for(name):
    return np.random.Generator(np.random.PCG64(zlib.crc32(name.encode())))


def segmentation():
    import tensorflow as tf

    cases = []
    for name, n, h, w, ignore, absent in [("seg_ignore255", 6, 24, 20, 255, None),
                                          ("seg_camvid_ignore11", 11, 30, 22, 11, 4),
                                          ("seg_no_ignore", 4, 16, 16, None, None)]:
        rng = rng_for(name)
        t = rng.integers(0, n, (h, w))
        if absent is not None:
            t[t == absent] = 0  # a class with no true pixels
        # Predictions: mostly right, some noise.
        p = np.where(rng.random((h, w)) < 0.7, t, rng.integers(0, n, (h, w)))
        if absent is not None:
            p[p == absent] = 1  # ... and none predicted either
        if ignore is not None:
            t = np.where(rng.random((h, w)) < 0.1, ignore, t)
        valid = t != ignore if ignore is not None else np.ones_like(t, bool)
        tv, pv = t[valid], p[valid]
        labels = list(range(n))
        cm = confusion_matrix(tv, pv, labels=labels)
        present = [c for c in labels if (tv == c).any() or (pv == c).any()]
        iou = jaccard_score(tv, pv, labels=labels, average=None, zero_division=0)
        dice = f1_score(tv, pv, labels=labels, average=None, zero_division=0)
        iou = [v if c in present else np.nan for c, v in enumerate(iou)]
        dice = [v if c in present else np.nan for c, v in enumerate(dice)]
        m = tf.keras.metrics.MeanIoU(num_classes=n if ignore is None or ignore < n else n,
                                     ignore_class=ignore if ignore is not None and ignore < n else None)
        # Keras MeanIoU only accepts labels < num_classes: drop ignored pixels for 255 ourselves.
        if ignore is not None and ignore >= n:
            m.update_state(tv, pv)
        else:
            m.update_state(t.ravel(), p.ravel())
        cases.append({
            "name": name, "num_classes": n, "ignore": ignore, "height": h, "width": w,
            "target": t.ravel().tolist(), "pred": p.ravel().tolist(),
            "confusion": cm.ravel().tolist(),
            "pixel_accuracy": float(accuracy_score(tv, pv)),
            "iou": [None if np.isnan(v) else float(v) for v in iou],
            "dice": [None if np.isnan(v) else float(v) for v in dice],
            "mean_iou_sklearn": float(np.mean([iou[c] for c in present])),
            "mean_iou_tf": float(m.result().numpy()),
        })
    return {"cases": cases, "sklearn_version": sklearn.__version__,
            "tensorflow_version": tf.__version__}


def quality():
    cases = []
    rng = rng_for("quality")
    # A smooth "photo" and distorted versions of it.
    h, w = 48, 40
    yy, xx = np.mgrid[0:h, 0:w]
    base = 128 + 60 * np.sin(xx / 6.0) * np.cos(yy / 9.0) + 20 * rng.standard_normal((h, w))
    base = np.clip(base, 0, 255)
    rgb = np.stack([base, np.clip(base * 0.8 + 30, 0, 255), np.clip(255 - base, 0, 255)], -1)
    for name, img, noise, gaussian in [
        ("gray_noise", base, 15.0, False), ("gray_noise_gauss", base, 15.0, True),
        ("gray_blur", base, None, False), ("rgb_noise", rgb, 25.0, False),
        ("rgb_noise_gauss", rgb, 8.0, True),
    ]:
        r = rng_for(name)
        if noise is None:
            test = ndi.uniform_filter(img, 3)
        else:
            test = np.clip(img + noise * r.standard_normal(img.shape), 0, 255)
        a = np.round(img).astype(np.float32)
        b = np.round(test).astype(np.float32)
        ch = -1 if a.ndim == 3 else None
        kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False) if gaussian else {}
        s = structural_similarity(a.astype(np.float64), b.astype(np.float64), data_range=255.0,
                                  channel_axis=ch, **kw)
        cases.append({"name": name, "height": h, "width": w, "channels": 1 if a.ndim == 2 else 3,
                      "gaussian": gaussian, "a": a.ravel().tolist(), "b": b.ravel().tolist(),
                      "psnr": float(peak_signal_noise_ratio(a.astype(np.float64), b.astype(np.float64), data_range=255.0)),
                      "ssim": float(s)})
    return {"cases": cases, "skimage_version": skimage.__version__}


def morphology():
    rng = rng_for("morphology")
    h, w = 28, 33
    # Blobs plus speckle noise, touching the border.
    yy, xx = np.mgrid[0:h, 0:w]
    m = np.zeros((h, w), bool)
    for _ in range(6):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(2, 7)
        m |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    m ^= rng.random((h, w)) < 0.06
    cross2 = np.zeros((5, 5), bool)
    cross2[2, :] = True
    cross2[:, 2] = True
    ops = {}
    for key, fp in [("square1", square(3)), ("square2", square(5)), ("cross1", cross2[1:4, 1:4]),
                    ("cross2", cross2), ("disk2", disk(2)), ("disk3", disk(3))]:
        fp = fp.astype(bool)
        e = binary_erosion(m, fp)
        d = binary_dilation(m, fp)
        ops[key] = {"erode": e.ravel().astype(int).tolist(), "dilate": d.ravel().astype(int).tolist(),
                    "open": binary_dilation(e, fp).ravel().astype(int).tolist(),
                    "close": binary_erosion(d, fp).ravel().astype(int).tolist()}
    l4, n4 = ndi.label(m, structure=ndi.generate_binary_structure(2, 1))
    l8, n8 = ndi.label(m, structure=ndi.generate_binary_structure(2, 2))
    areas8 = ndi.sum_labels(np.ones_like(l8), l8, index=np.arange(1, n8 + 1))
    cent8 = ndi.center_of_mass(np.ones_like(l8), l8, index=np.arange(1, n8 + 1))
    edt = ndi.distance_transform_edt(m)
    # Watershed on a smoothed random surface with 5 markers and a mask.
    r2 = rng_for("watershed")
    elev = ndi.gaussian_filter(r2.random((h, w)), 2.0)
    markers = np.zeros((h, w), np.int32)
    for k in range(1, 6):
        markers[int(r2.integers(0, h)), int(r2.integers(0, w))] = k
    wmask = r2.random((h, w)) < 0.92
    wmask[markers > 0] = True
    ws4 = watershed(elev, markers, connectivity=1, mask=wmask)
    ws8 = watershed(elev, markers, connectivity=2)
    elev32 = elev.astype(np.float32)
    assert (watershed(elev32.astype(np.float64), markers, connectivity=1, mask=wmask) == ws4).all()
    return {"height": h, "width": w, "mask": m.ravel().astype(int).tolist(), "ops": ops,
            "label4": l4.ravel().tolist(), "n4": int(n4), "label8": l8.ravel().tolist(), "n8": int(n8),
            "areas8": [int(a) for a in areas8], "centroids8_yx": [[float(c[0]), float(c[1])] for c in cent8],
            "edt": edt.ravel().tolist(), "elevation": elev32.ravel().tolist(),
            "markers": markers.ravel().tolist(), "ws_mask": wmask.ravel().astype(int).tolist(),
            "watershed4": ws4.ravel().tolist(), "watershed8": ws8.ravel().tolist(),
            "scipy_version": scipy.__version__, "skimage_version": skimage.__version__}


def main():
    os.makedirs(OUT, exist_ok=True)
    for fname, fn in [("segmentation.json", segmentation), ("quality.json", quality),
                      ("morphology.json", morphology)]:
        path = os.path.join(OUT, fname)
        data = fn()
        with open(path + ".tmp", "w") as f:
            json.dump(data, f, separators=(",", ":"))
        os.replace(path + ".tmp", path)
        print(f"{fname}: {os.path.getsize(path) / 1024:.1f} KB")


if __name__ == "__main__":
    main()
