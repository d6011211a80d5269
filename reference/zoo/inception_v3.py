#!/usr/bin/env python3
"""Reference outputs and parameter counts of the zoo's Inception v3 (torchvision 0.29.2, torch
2.15.0, Keras 3.15.1 applications for InceptionV3's counts).

torchvision's `Inception3` (eval mode, 10 classes, `transform_input` off as without pretrained
weights) filled with the formula weights of `formula_weights.py`, run on the formula input, in
two fixtures:

- `inception_v3.json`: the default model (with the auxiliary head `AuxLogits`) at 299x299, the
  smallest input the head accepts, one image: the logits and the head's output. torchvision
  runs the head only in training mode (dropout, batch statistics), so its input (the output of
  `Mixed_6e`) is captured with a forward hook and the eval-mode head run on it. Also
  torchvision's trainable parameter count (default options), Keras'
  `keras.applications.InceptionV3(weights=None, classes=10)` total/trainable counts (Keras has
  no aux head and its batch norms have no gamma: the Rust test checks that exact relation),
  and the smallest input side torchvision accepts with and without the head.
- `inception_v3_75.json`: `aux_logits=False` at 75x75 (torchvision's minimum), two images.

Usage (from the repository root):

    reference/.venv/bin/python reference/zoo/inception_v3.py
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


def make(classes, aux):
    return torchvision.models.inception_v3(
        num_classes=classes, aux_logits=aux, init_weights=False
    ).eval()


def aux_min_size(model, side):
    """Checks that the aux head runs at `side` and fails at `side - 1` (eval-mode head on the
    Mixed_6e output)."""
    seen = {}
    h = model.Mixed_6e.register_forward_hook(lambda m, i, o: seen.__setitem__("6e", o))

    def works(s):
        try:
            with torch.no_grad():
                model(torch.zeros(1, 3, s, s))
                model.AuxLogits(seen["6e"])
            return True
        except (RuntimeError, ValueError):
            return False

    assert works(side) and not works(side - 1)
    h.remove()
    return side


def run(name, input_shape, aux, classes=10):
    model = make(classes, aux)
    record = {
        "architecture": "inception_v3",
        "input_shape": list(input_shape),
        "classes": classes,
        "aux_logits_option": aux,
        "torchvision_params": torch_params(model),
        "min_size": check_min_size(model, 75),
        "versions": versions(),
    }
    if aux:
        record["aux_min_size"] = aux_min_size(model, 299)
    fill_torch_module(model)
    model = model.double()
    seen = {}
    model.Mixed_6e.register_forward_hook(lambda m, i, o: seen.__setitem__("6e", o))
    x = torch.from_numpy(formula("input", input_shape)).double()
    with torch.no_grad():
        y = model(x)
        if aux:
            record["aux_logits"] = [[float(v) for v in model.AuxLogits(seen["6e"]).float().flatten()]]
    record["logits"] = [float(v) for v in y.float().flatten()]
    if aux:
        record.update(keras_counts("InceptionV3", classes=classes))
    write_fixture(name, record)


if __name__ == "__main__":
    run("inception_v3", (1, 3, 299, 299), True)
    run("inception_v3_75", (2, 3, 75, 75), False)
