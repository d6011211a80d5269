#!/usr/bin/env python3
"""Writes the 1000 ImageNet-1k class names, in class-index order, as torchvision lists them
(`torchvision.models._meta._IMAGENET_CATEGORIES`, torchvision 0.29.2), one per line, to
`crates/ferrovision-models/src/imagenet_classes.txt` (embedded by the models crate for
`ferrovision classify`). Usage: reference/.venv/bin/python reference/make_imagenet_labels.py
"""

import os

import torchvision
from torchvision.models._meta import _IMAGENET_CATEGORIES

assert len(_IMAGENET_CATEGORIES) == 1000
out = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..", "crates", "ferrovision-models", "src", "imagenet_classes.txt",
)
with open(out + ".tmp", "w") as f:
    for name in _IMAGENET_CATEGORIES:
        assert "\n" not in name
        f.write(name + "\n")
os.replace(out + ".tmp", out)
print("wrote", os.path.relpath(out), "from torchvision", torchvision.__version__)
