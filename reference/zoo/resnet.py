#!/usr/bin/env python3
"""Reference outputs and parameter counts of the zoo's ResNets (torchvision 0.29.2, torch
2.15.0, Keras 3.15.1 applications for the counts Keras has).

For each architecture: the reference model (eval mode) filled with the formula weights of
`formula_weights.py`, run on the formula input; the fixture `reference/fixtures/zoo/<name>.json`
holds the input shape, the logits, and the parameter counts. The Rust test
`crates/ferrovision-models/tests/zoo_reference.rs` rebuilds the zoo model, fills it the same
way and must reproduce the logits.

- ResNet-18/34/50/101/152: torchvision's models (v1.5 bottleneck: stride on the 3x3 conv);
  `torchvision_params`. For 50/101/152 also `keras_total_params`/`keras_trainable_params` of
  Keras applications' `ResNet50/101/152` (224 px, 1000 classes): Keras' convolutions keep their
  biases (every conv is followed by batch norm, so a bias is redundant; torchvision drops them),
  and Keras counts the batch-norm moving statistics in its total.
- CIFAR ResNet-20/32/56 (He et al. 2016, section 4.2): torchvision has none, so the reference is
  `CifarResNet` below, written with torch layers in the zoo's structure (torchvision's
  `BasicBlock`, projection shortcuts); `torch_params`, and `paper_params` = He et al.'s table 6
  figure, which counts option-A (parameter-free) shortcuts: ours minus the two projections must
  round to it.

Usage (from the repository root):

    reference/.venv/bin/python reference/zoo/resnet.py
"""

import os
import sys

import torch
import torch.nn as nn
import torchvision
from torchvision.models.resnet import BasicBlock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from formula_weights import fill_torch_module, formula, versions, write_fixture  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


def torch_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet-(6n+2): 3x3 conv (16) + BN + ReLU, three stages of n basic
    blocks (16, 32, 64 channels; the first block of stages 2 and 3 strided, with a 1x1 conv + BN
    projection), global average pool, linear."""

    def __init__(self, n: int, num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        cin = 16
        for i, w in enumerate([16, 32, 64]):
            blocks = []
            for b in range(n):
                stride = 2 if i > 0 and b == 0 else 1
                down = None
                if stride != 1 or cin != w:
                    down = nn.Sequential(
                        nn.Conv2d(cin, w, 1, stride=stride, bias=False), nn.BatchNorm2d(w)
                    )
                blocks.append(BasicBlock(cin, w, stride, down))
                cin = w
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def run(name, model, input_shape, classes, **extra):
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
            "versions": versions(),
            **extra,
        },
    )


def keras_counts(builder) -> dict:
    """Keras applications' total/trainable counts (224 px, 1000 classes, no weights)."""
    import keras

    m = builder(weights=None)
    trainable = sum(int(w.numpy().size) for w in m.trainable_weights)
    out = {
        "keras_total_params": int(m.count_params()),
        "keras_trainable_params": trainable,
        "keras": keras.__version__,
    }
    del m
    keras.backend.clear_session()
    return out


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    tv = torchvision.models
    run("resnet18", tv.resnet18(num_classes=10), (2, 3, 64, 64), 10,
        torchvision_params=torch_params(tv.resnet18(num_classes=10)))
    imagenet = [
        ("resnet34", tv.resnet34, None, (2, 3, 64, 64)),
        ("resnet50", tv.resnet50, keras.applications.ResNet50, (1, 3, 64, 64)),
        ("resnet101", tv.resnet101, keras.applications.ResNet101, (1, 3, 64, 64)),
        ("resnet152", tv.resnet152, keras.applications.ResNet152, (1, 3, 64, 64)),
    ]
    for name, ctor, kctor, shape in imagenet:
        extra = {
            # The 1000-class ImageNet model's count (the one torchvision and Keras document).
            "torchvision_params_1000": torch_params(ctor()),
            "torchvision_params": torch_params(ctor(num_classes=10)),
        }
        if kctor is not None:
            extra.update(keras_counts(kctor))
        run(name, ctor(num_classes=10), shape, 10, **extra)
    for n, paper in [(3, 0.27e6), (5, 0.46e6), (9, 0.85e6)]:
        name = f"resnet{6 * n + 2}"
        count = torch_params(CifarResNet(n, 10))
        # The two 1x1 projections and their BN (16->32, 32->64) that option A does without.
        projections = 16 * 32 + 32 * 64 + 2 * (32 + 64)
        assert round((count - projections) / 1e6, 2) == round(paper / 1e6, 2), (name, count)
        run(name, CifarResNet(n, 10), (2, 3, 32, 32), 10, torch_params=count,
            paper_params=paper, projection_params=projections)
