"""Resize fixtures for ferrovision-data, made with TensorFlow's tf.image.resize (TF2 semantics:
half-pixel centres, Keys cubic a=-0.5, antialias=True stretches the kernel when shrinking).

    reference/.venv/bin/python reference/make_image_fixtures.py
"""

import json
import os

import numpy as np
import tensorflow as tf

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "image")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(0)
src = rng.random((9, 13, 3), dtype=np.float32)
cases = []
for method in ["bilinear", "bicubic"]:
    for (h, w) in [(4, 5), (9, 13), (17, 30), (3, 20)]:
        out = tf.image.resize(src, [h, w], method=method, antialias=True).numpy()
        cases.append({"method": method, "height": h, "width": w, "out": out.reshape(-1).tolist()})
with open(os.path.join(OUT, "resize.json"), "w") as f:
    json.dump({"tensorflow_version": tf.__version__, "src_shape": list(src.shape),
               "src": src.reshape(-1).tolist(), "cases": cases}, f)
print("wrote", len(cases), "resize cases")
