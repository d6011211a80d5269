#!/usr/bin/env python3
"""Reference outputs and parameter counts of the zoo's VGGs (torchvision 0.29.2, torch 2.15.0,
Keras 3.15.1 applications for VGG16/VGG19's counts).

For vgg16, vgg19, vgg16_bn and vgg19_bn: torchvision's model (eval mode, 10 classes) filled with
the formula weights of `formula_weights.py`, run on the formula input; the fixture
`reference/fixtures/zoo/<name>.json` holds the input shape, the logits, torchvision's trainable
parameter count, the smallest input side torchvision accepts, and for vgg16/vgg19 Keras'
total/trainable counts of `keras.applications.VGG16/VGG19(weights=None, classes=10)` (same
layers: Keras' top is Flatten at its fixed 224x224, torchvision's an adaptive 7x7 pool, both
feeding a 25088-input dense layer). vgg16 runs at 64x64, where the final 2x2 map is spread
over 7x7 by overlapping adaptive bins; the others at 32x32 (1x1 replicated). The Rust test
`crates/ferrovision-models/tests/zoo_reference.rs` must reproduce them. Usage (from the
repository root):

    reference/.venv/bin/python reference/zoo/vgg.py
"""

import os
import sys

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from counts import check_min_size, keras_counts, torch_params  # noqa: E402
from formula_weights import fill_torch_module, formula, versions, write_fixture  # noqa: E402

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)


def run(name, input_shape, keras_app=None, classes=10):
    model = getattr(torchvision.models, name)(num_classes=classes).eval()
    record = {
        "architecture": name,
        "input_shape": list(input_shape),
        "classes": classes,
        "torchvision_params": torch_params(model),
        "min_size": check_min_size(model, 32),
        "versions": versions(),
    }
    fill_torch_module(model)
    x = torch.from_numpy(formula("input", input_shape))
    with torch.no_grad():
        y = model.double()(x.double()).float()
    record["logits"] = [float(v) for v in y.flatten()]
    del model
    if keras_app:
        record.update(keras_counts(keras_app, classes=classes))
    write_fixture(name, record)


if __name__ == "__main__":
    run("vgg16", (2, 3, 64, 64), "VGG16")
    run("vgg19", (2, 3, 32, 32), "VGG19")
    run("vgg16_bn", (2, 3, 32, 32))
    run("vgg19_bn", (2, 3, 32, 32))
