#!/usr/bin/env python3
"""Reference outputs and parameter counts of the zoo's ResNets (torchvision 0.29.2, torch
2.15.0, Keras 3.15.1 applications for the counts Keras has).

For each architecture: torchvision's model (eval mode) filled with the formula weights of
`formula_weights.py`, run on the formula input; the fixture `reference/fixtures/zoo/<name>.json`
holds the input shape, the logits, and the parameter counts (torchvision trainable parameters,
and Keras applications' total/trainable where Keras has the model). The Rust test
`crates/ferrovision-models/tests/zoo_reference.rs` rebuilds the zoo model, fills it the same
way and must reproduce the logits. Usage (from the repository root):

    reference/.venv/bin/python reference/zoo/resnet.py
"""

import os
import sys

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from formula_weights import fill_torch_module, formula, versions, write_fixture  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


def torch_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def run(name, model, input_shape, classes):
    model.eval()
    fill_torch_module(model)
    x = torch.from_numpy(formula("input", input_shape))
    with torch.no_grad():
        y = model.double()(x.double()).float()
    write_fixture(
        name,
        {
            "architecture": name,
            "input_shape": list(input_shape),
            "classes": classes,
            "logits": [float(v) for v in y.flatten()],
            "torchvision_params": torch_params(model),
            "versions": versions(),
        },
    )


if __name__ == "__main__":
    run("resnet18", torchvision.models.resnet18(num_classes=10), (2, 3, 64, 64), 10)
