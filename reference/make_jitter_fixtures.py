"""Colour-jitter fixtures for ferrovision-data's fused jitter (`fused::jitter_chw`), made with
torchvision's float ops (transforms.v2.functional.adjust_brightness / adjust_contrast /
adjust_saturation / adjust_hue) applied to a float32 [C, H, W] image in [0, 1], one case per
sequence of (op, factor) steps.

    reference/.venv/bin/python reference/make_jitter_fixtures.py
"""

import json
import os

import numpy as np
import torch
import torchvision
from torchvision.transforms.v2 import functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "image")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(4)
H, W = 12, 16
rgb = rng.random((3, H, W), dtype=np.float32)
# Awkward pixels: grey (no hue), pure and saturated colours, ties between channels, black/white.
special = [(0, 0, 0), (1, 1, 1), (0.5, 0.5, 0.5), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0),
           (0, 1, 1), (1, 0, 1), (0.8, 0.8, 0.2), (0.2, 0.8, 0.8), (0.8, 0.2, 0.8),
           (0.3, 0.3, 0.9), (0.9, 0.3, 0.3), (0.3, 0.9, 0.3), (1.0, 0.999, 0.0)]
for i, p in enumerate(special):
    rgb[:, 0, i] = p
# Some 8-bit values, as decoded images have.
rgb[:, 1, :] = np.round(rgb[:, 1, :] * 255) / 255
grey = rng.random((1, H, W), dtype=np.float32)

OPS = {
    "brightness": F.adjust_brightness,
    "contrast": F.adjust_contrast,
    "saturation": F.adjust_saturation,
    "hue": F.adjust_hue,
}
rgb_cases = [
    [["brightness", 0.6]], [["brightness", 1.4]],
    [["contrast", 0.6]], [["contrast", 1.4]],
    [["saturation", 0.6]], [["saturation", 1.4]], [["saturation", 0.0]],
    [["hue", 0.1]], [["hue", -0.1]], [["hue", 0.5]], [["hue", -0.5]], [["hue", 0.0]],
    [["hue", 0.37]],
    [["brightness", 1.3], ["contrast", 0.7], ["saturation", 1.2], ["hue", 0.05]],
    [["hue", -0.08], ["saturation", 1.35], ["contrast", 1.25], ["brightness", 0.75]],
    [["saturation", 0.65], ["hue", 0.09], ["brightness", 1.1], ["contrast", 1.38]],
    [["contrast", 1.3], ["hue", -0.02], ["brightness", 1.39], ["saturation", 0.61]],
    [["brightness", 1.4], ["saturation", 1.4], ["contrast", 1.4], ["hue", 0.1]],
]
grey_cases = [
    [["brightness", 1.2]], [["contrast", 0.7]],
    [["brightness", 1.3], ["saturation", 1.2], ["hue", 0.05], ["contrast", 1.3]],
]


def run(img, steps):
    x = torch.from_numpy(img.copy())
    for op, f in steps:
        x = OPS[op](x, f)
    return x.numpy().reshape(-1).tolist()


cases = [{"channels": 3, "steps": s, "out": run(rgb, s)} for s in rgb_cases]
cases += [{"channels": 1, "steps": s, "out": run(grey, s)} for s in grey_cases]
with open(os.path.join(OUT, "jitter.json"), "w") as f:
    json.dump({"torchvision_version": torchvision.__version__, "height": H, "width": W,
               "rgb": rgb.reshape(-1).tolist(), "grey": grey.reshape(-1).tolist(),
               "cases": cases}, f)
print("wrote", len(cases), "jitter cases")
