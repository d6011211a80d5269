#!/usr/bin/env python3
"""Generate the torchvision ResNet-18 reference fixture for ferrovision-models' zoo test.

The fixture proves that the zoo's ResNet-18 has torchvision's names, weight layouts and
padding: a test loads these weights by their PyTorch `state_dict` keys into the zoo's blocks and
must reproduce torchvision's output.

To keep the committed file small (~1.6 MB) the network is torchvision's `resnet18` truncated
after the first block of `layer2`: stem (7x7/2 conv pad 3, BN, ReLU, 3x3/2 max pool pad 1),
`layer1` (two basic blocks), `layer2[0]` (a stride-2 block with its 1x1/2 downsample
projection). On a 2x3x32x32 input every strided layer sees an even size (32 -> 16 -> 8 -> 4),
where TensorFlow `same` padding would differ from PyTorch's symmetric padding at the borders.

Weights are torchvision's seeded default initialisation; the batch-norm affine parameters and
running statistics are randomised (eval mode) so no batch norm is the identity. The reference
output is computed in float64 on the float32 weights and input; a float32 run must agree with
it within a tenth of the Rust test's tolerance before anything is written.

Output: reference/fixtures/models/resnet18_prefix.safetensors with every `state_dict` tensor of
the truncated net under its PyTorch key (`num_batches_tracked` omitted), plus `input`
[2, 3, 32, 32] and `output` [2, 128, 4, 4]; metadata records the versions. Usage (from the
repository root):

    reference/.venv/bin/python reference/make_resnet_fixtures.py
"""

import copy
import json
import os
import struct

import numpy as np
import torch
import torchvision

RTOL = 1e-4  # the Rust test's relative tolerance (scaled by the largest |output|)
OUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "fixtures", "models", "resnet18_prefix.safetensors"
)

torch.set_num_threads(1)


def truncated(net):
    """torchvision resnet18 up to and including layer2[0]."""
    return torch.nn.Sequential(
        net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2[0]
    )


def write_safetensors(path, tensors, metadata):
    """Minimal safetensors writer (all tensors float32, little-endian), atomic."""
    header = {"__metadata__": metadata}
    blobs, offset = [], 0
    for name, arr in tensors:
        b = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + len(b)],
        }
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def main():
    torch.manual_seed(20260412)
    net = torchvision.models.resnet18(weights=None)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.2 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
    model = truncated(net).eval()
    x = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1

    with torch.no_grad():
        ref = truncated(copy.deepcopy(net).double()).eval()(x.double())
        y32 = model(x)
    scale = float(ref.abs().max())
    err = float((y32.double() - ref).abs().max())
    assert err <= 0.1 * RTOL * scale, f"float32 run differs by {err} (scale {scale})"

    # Keys of the full network (truncated() drops the prefixes): net.state_dict() restricted to
    # the modules kept.
    keep = ("conv1.", "bn1.", "layer1.", "layer2.0.")
    tensors = [
        (k, v.numpy())
        for k, v in net.state_dict().items()
        if k.startswith(keep) and not k.endswith("num_batches_tracked")
    ]
    tensors.append(("input", x.numpy()))
    tensors.append(("output", ref.float().numpy()))
    meta = {
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "numpy_version": np.__version__,
        "model": "torchvision resnet18, conv1..layer2[0], eval mode",
    }
    write_safetensors(OUT, tensors, meta)
    print(f"wrote {OUT}: {len(tensors)} tensors, {os.path.getsize(OUT)} bytes, "
          f"max|out| {scale:.4g}, float32 error {err:.3g}")


if __name__ == "__main__":
    main()
