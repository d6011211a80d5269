"""Deterministic "formula" weights shared by the zoo's reference scripts and the Rust tests.

Committing random weights of every zoo architecture (VGG-19 alone is 548 MB) is out of the
question, so output-equality fixtures use weights both sides can compute from a name: the
reference script fills the torchvision/Keras model with them, runs a formula input through it
and commits only the outputs; the Rust test (`crates/ferrovision-models/tests/common/mod.rs`,
`formula_fill`) fills the zoo model the same way and must reproduce those outputs. A wrong
name, layout or padding on either side gives different numbers.

The formula is defined over **ferrovision weight names and the ferrovision (stored) layout**
(`docs/nn.md`, `ferrovision_nn::layout`): a reference script maps each of its tensors to our
name, generates the tensor in our layout, then converts it to its own layout.

For a tensor with our name `name`, our shape `shape` (numel n), flat row-major index i:

    z_i   = splitmix64(fnv1a32(name) + i)            (64-bit wrapping arithmetic)
    u_i   = (z_i >> 11) / 2**53                      (uniform in [0, 1), exact in float64)
    s_i   = sin(2*pi * u_i)                          (computed in float64, then cast to float32)
    by the last segment of `name`:
      gamma              1 + 0.2 s_i
      beta, bias         0.1 s_i
      moving_mean        0.1 s_i
      moving_variance    1 + 0.25 s_i
      anything else      s_i * sqrt(4 / fan_in)     fan_in = shape[0] for rank 2 (Dense [in, out]),
                                                    n / shape[0] for higher ranks (convs
                                                    [out, in/groups, k...]), n for rank 1
s_i has the distribution of the sine of a uniform phase (mean 0, variance 1/2, so the kernels
have He variance 2 / fan_in), but successive values are independent: a plain sinusoid of i
(`sin(a*i + phase)`) would make every weight matrix rank 2 (sin(a*(o*fan_in + j) + phase) =
cos(.) sin(a*j + phase) + sin(.) cos(a*j + phase)), and deep plain networks (VGG, Inception)
would then lose the input within a few layers, leaving outputs that hardly depend on it.
The input image batch is `formula("input", shape)` with plain s_i values in [-1, 1].
"""

import math

import numpy as np


def fnv1a32(s: str) -> int:
    h = 0x811C9DC5
    for b in s.encode("utf-8"):
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's output function on uint64 values (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def formula(name: str, shape) -> np.ndarray:
    """The tensor called `name` (our name) of `shape` (our layout), float32."""
    shape = tuple(int(d) for d in shape)
    n = int(np.prod(shape)) if shape else 1
    z = splitmix64(np.arange(n, dtype=np.uint64) + np.uint64(fnv1a32(name)))
    u = (z >> np.uint64(11)).astype(np.float64) * 2.0**-53
    s = np.sin(2.0 * math.pi * u)
    del z, u
    last = name.rsplit("/", 1)[-1]
    if name == "input":
        v = s
    elif last == "gamma":
        v = 1.0 + 0.2 * s
    elif last in ("beta", "bias", "moving_mean"):
        v = 0.1 * s
    elif last == "moving_variance":
        v = 1.0 + 0.25 * s
    else:
        if len(shape) == 2:
            fan_in = shape[0]
        elif len(shape) > 2:
            fan_in = n // shape[0]
        else:
            fan_in = n
        v = s * math.sqrt(4.0 / fan_in)
    return v.astype(np.float32).reshape(shape)


def ours_from_torch(key: str, module) -> str:
    """Our weight name for the torch state-dict `key` of `module` (the owning nn.Module)."""
    import torch.nn as nn

    path, last = key.rsplit(".", 1)
    norm = isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm))
    rename = {
        "weight": "gamma" if norm else "kernel",
        "bias": "beta" if norm else "bias",
        "running_mean": "moving_mean",
        "running_var": "moving_variance",
    }
    return path.replace(".", "/") + "/" + rename.get(last, last)


def fill_torch_module(model) -> None:
    """Fills every parameter and float buffer of a torch model with the formula (our names and
    layout, converted to torch's: only Linear weights are transposed)."""
    import torch
    import torch.nn as nn

    modules = dict(model.named_modules())
    with torch.no_grad():
        for key, t in list(model.state_dict(keep_vars=True).items()):
            if key.endswith("num_batches_tracked"):
                continue
            path = key.rsplit(".", 1)[0]
            module = modules[path]
            ours = ours_from_torch(key, module)
            if isinstance(module, nn.Linear) and key.endswith(".weight"):
                v = formula(ours, (t.shape[1], t.shape[0])).T.copy()
            else:
                v = formula(ours, tuple(t.shape))
            t.copy_(torch.from_numpy(v))


def write_fixture(name: str, record: dict) -> None:
    """Writes `reference/fixtures/zoo/<name>.json` (sorted keys, floats as repr)."""
    import json
    import os

    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "zoo")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, name + ".json")
    with open(path + ".tmp", "w") as f:
        json.dump(record, f, sort_keys=True, indent=1)
        f.write("\n")
    os.replace(path + ".tmp", path)
    print("wrote", os.path.relpath(path))


def versions() -> dict:
    import torch
    import torchvision

    return {"torch": torch.__version__, "torchvision": torchvision.__version__}
