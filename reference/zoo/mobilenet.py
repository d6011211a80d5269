#!/usr/bin/env python3
"""Reference outputs and parameter counts of the zoo's MobileNets (Keras 3.15.1 / TensorFlow
2.21 applications, torchvision 0.29.2 / torch 2.15.0).

- MobileNet v1 (`mobilenet_v1`): torchvision has none, so the reference is Keras applications'
  `MobileNet` (`weights=None`, `classifier_activation=None` for logits), in float64. Each Keras
  weight is the formula tensor of *our* name (Keras 3 paths are our names: `conv_dw_1/kernel`
  is the depthwise kernel; Keras 2's `depthwise_kernel` would be renamed) in our layout,
  converted to Keras' (the inverse of
  `ferrovision_nn::layout::from_keras`: conv `[out, in, kh, kw]` -> `[kh, kw, in, out]`,
  depthwise `[C, 1, kh, kw]` -> `[kh, kw, C, 1]`); the formula input is transposed to NHWC.
  Counts: Keras' total and trainable for alpha 1.0 and 0.25 (224 px, 1000 classes).
- MobileNet v2 (`mobilenet_v2`): torchvision's `mobilenet_v2`, filled by `fill_torch_module`;
  counts: torchvision's (width 1.0 and 0.5, 1000 classes) and Keras' `MobileNetV2` (alpha 1.0).

Usage (from the repository root):

    reference/.venv/bin/python reference/zoo/mobilenet.py
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from formula_weights import fill_torch_module, formula, versions, write_fixture  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


def torch_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def keras_counts(builder, prefix="keras", **kw) -> dict:
    import keras

    m = builder(weights=None, **kw)
    trainable = sum(int(w.numpy().size) for w in m.trainable_weights)
    out = {f"{prefix}_total_params": int(m.count_params()), f"{prefix}_trainable_params": trainable}
    keras.backend.clear_session()
    return out


def keras_to_ours(path: str) -> str:
    """Our weight name for a Keras weight path (only the depthwise kernel is renamed)."""
    layer, w = path.rsplit("/", 1)
    return layer + "/" + ("kernel" if w == "depthwise_kernel" else w)


def fill_keras_model(model) -> None:
    """Every Keras weight := the formula tensor of our name and layout, in Keras' layout."""
    import keras

    for layer in model.layers:
        depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
        for v in layer.weights:
            fill_keras_weight(v, depthwise)


def fill_keras_weight(v, depthwise: bool) -> None:
    """`v` := the formula tensor of our name, converted from our layout to Keras'."""
    ours = keras_to_ours(v.path)
    shape = tuple(v.shape)
    if depthwise and len(shape) == 4:
        # Keras [kh, kw, C, m] <- ours [C*m, 1, kh, kw].
        kh, kw, c, m = shape
        t = formula(ours, (c * m, 1, kh, kw)).reshape(c * m, kh, kw)
        t = t.transpose(1, 2, 0).reshape(kh, kw, c, m)
    elif len(shape) == 4:
        # Keras [kh, kw, in, out] <- ours [out, in, kh, kw].
        kh, kw, cin, cout = shape
        t = formula(ours, (cout, cin, kh, kw)).transpose(2, 3, 1, 0)
    else:
        t = formula(ours, shape)
    v.assign(t.astype(v.dtype))


def mobilenet_v1(name, input_shape, classes, alpha):
    import keras

    keras.config.set_floatx("float64")
    n, c, h, w = input_shape
    m = keras.applications.MobileNet(
        input_shape=(h, w, c), alpha=alpha, weights=None, classes=classes,
        classifier_activation=None,
    )
    fill_keras_model(m)
    x = formula("input", input_shape).transpose(0, 2, 3, 1).astype(np.float64)
    y = np.asarray(m(x, training=False), dtype=np.float64)
    keras.backend.clear_session()
    keras.config.set_floatx("float32")
    record = {
        "architecture": "mobilenet_v1",
        "alpha": alpha,
        "input_shape": list(input_shape),
        "classes": classes,
        "logits": [float(v) for v in y.astype(np.float32).flatten()],
        "versions": {**versions(), "keras": keras.__version__},
    }
    record.update(keras_counts(keras.applications.MobileNet, alpha=alpha))
    write_fixture(name, record)


def mobilenet_v2(name, input_shape, classes):
    import keras

    model = torchvision.models.mobilenet_v2(num_classes=classes).eval()
    fill_torch_module(model)
    x = torch.from_numpy(formula("input", input_shape))
    with torch.no_grad():
        y = model.double()(x.double()).float()
    record = {
        "architecture": "mobilenet_v2",
        "input_shape": list(input_shape),
        "classes": classes,
        "logits": [float(v) for v in y.flatten()],
        "torchvision_params": torch_params(model),
        "torchvision_params_1000": torch_params(torchvision.models.mobilenet_v2()),
        "torchvision_params_1000_width_0_5": torch_params(
            torchvision.models.mobilenet_v2(width_mult=0.5)
        ),
        "versions": {**versions(), "keras": keras.__version__},
    }
    record.update(keras_counts(keras.applications.MobileNetV2))
    write_fixture(name, record)


if __name__ == "__main__":
    # 67x75: odd sizes, where Keras' (0, 1) zero padding + valid and PyTorch's symmetric
    # padding both differ from the other frameworks' rules.
    mobilenet_v1("mobilenet_v1", (1, 3, 67, 75), 10, 1.0)
    mobilenet_v1("mobilenet_v1_alpha_0_25", (2, 3, 64, 64), 10, 0.25)
    mobilenet_v2("mobilenet_v2", (1, 3, 67, 75), 10)
