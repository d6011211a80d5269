"""Shared helpers of the weight-import fixture scripts (make_import_*_fixtures.py).

- `write_safetensors`: expected tensors with their exact dtype (F32, F16, F64, I64, I32, U8), in
  the given order, which is also stored as `__metadata__["order"]` (a JSON list of names) because
  safetensors itself does not keep an order.
- `summary`: the `{name: [shape, sum, first 4 values]}` JSON record used for real files that are
  too big to commit (sum in float64 of the float64-converted values).
"""

import json
import os
import struct

import numpy as np

_DTYPES = {
    np.dtype("<f4"): "F32",
    np.dtype("<f2"): "F16",
    np.dtype("<f8"): "F64",
    np.dtype("<i8"): "I64",
    np.dtype("<i4"): "I32",
    np.dtype("u1"): "U8",
}


def write_safetensors(path, tensors):
    """Writes `[(name, array)]` as one safetensors file (little-endian), atomically."""
    header = {"__metadata__": {"order": json.dumps([n for n, _ in tensors])}}
    blobs, offset = [], 0
    for name, arr in tensors:
        arr = np.asarray(arr)
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        b = np.ascontiguousarray(arr).tobytes()
        header[name] = {
            "dtype": _DTYPES[arr.dtype],
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


def summary(tensors):
    """`{"order": [names], "tensors": {name: [shape, sum, first4]}}` of `[(name, array)]`."""
    out = {}
    for name, arr in tensors:
        a = np.asarray(arr)
        flat = a.reshape(-1)
        out[name] = [
            list(a.shape),
            float(flat.astype(np.float64).sum()),
            [float(v) for v in flat[:4]],
        ]
    return {"order": [n for n, _ in tensors], "tensors": out}


def write_json(path, obj):
    """Writes `obj` as indented JSON, atomically."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)
