#!/usr/bin/env python3
"""Reference outputs and parameter counts of the zoo's GoogLeNet (torchvision 0.29.2, torch
2.15.0; Keras has no GoogLeNet).

torchvision's `googlenet(num_classes=10, aux_logits=True, init_weights=False)` (default options
otherwise: `transform_input` is off without pretrained weights) in eval mode, filled with the
formula weights of `formula_weights.py` and run on the formula input at 112x112: there every
ceil-mode max pool keeps a partial last window (56 -> 28, 28 -> 14, 14 -> 7, 7 -> 4), and the
auxiliary heads' adaptive 4x4 pooling averages overlapping bins of a 7x7 map. torchvision runs
the auxiliary classifiers only in training mode (where dropout and batch statistics would make
the outputs random), so the script captures the inputs of `aux1` and `aux2` (the outputs of
`inception4a` and `inception4d`) with forward hooks and runs the eval-mode heads on them.
The fixture `reference/fixtures/zoo/googlenet.json` holds the logits, `aux_logits` (aux1's then
aux2's, the zoo's output order), torchvision's trainable parameter count with the aux heads
(its default) and without, and the smallest input side torchvision accepts. Usage (from the
repository root):

    reference/.venv/bin/python reference/zoo/googlenet.py
"""

import os
import sys

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from counts import check_min_size, torch_params  # noqa: E402
from formula_weights import fill_torch_module, formula, versions, write_fixture  # noqa: E402

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)


def make(classes, aux):
    return torchvision.models.googlenet(
        num_classes=classes, aux_logits=aux, init_weights=False
    ).eval()


if __name__ == "__main__":
    classes, input_shape = 10, (2, 3, 112, 112)
    model = make(classes, True)
    record = {
        "architecture": "googlenet",
        "input_shape": list(input_shape),
        "classes": classes,
        "torchvision_params": torch_params(model),
        "torchvision_params_no_aux": torch_params(make(classes, False)),
        "min_size": check_min_size(model, 15),
        "versions": versions(),
    }
    fill_torch_module(model)
    model = model.double()
    seen = {}
    model.inception4a.register_forward_hook(lambda m, i, o: seen.__setitem__("4a", o))
    model.inception4d.register_forward_hook(lambda m, i, o: seen.__setitem__("4d", o))
    x = torch.from_numpy(formula("input", input_shape)).double()
    with torch.no_grad():
        y = model(x)
        aux1 = model.aux1(seen["4a"])
        aux2 = model.aux2(seen["4d"])
    record["logits"] = [float(v) for v in y.float().flatten()]
    record["aux_logits"] = [[float(v) for v in a.float().flatten()] for a in (aux1, aux2)]
    write_fixture("googlenet", record)
