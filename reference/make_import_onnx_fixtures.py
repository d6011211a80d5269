#!/usr/bin/env python3
"""Fixtures of the ONNX initializer reader (crates/ferrovision-import/src/onnx.rs).

Writes into reference/fixtures/import/:
  onnx_small/model.onnx + onnx_small/weights.bin
      A small graph built with `onnx.helper` whose initializers cover the storage forms:
      float32 in `raw_data`, float32 in `float_data`, float16 (raw and in `int32_data`, as the
      spec stores 16-bit types), float64 in `double_data`, int64 in `int64_data` and raw, int32,
      uint8, a scalar, and one float32 tensor in external data (`weights.bin`, at a non-zero
      offset); the model is checked with `onnx.checker` and run once with onnxruntime.
  onnx_small.safetensors
      The initializers as `onnx.numpy_helper.to_array` returns them, in graph order, with their
      dtypes (F32, F16, F64, I64, I32, U8).
  onnx_version-RFB-320.json, onnx_version-slim-320.json
      For the real face-detector models in shared/data/face-detector ($FERROVISION_DATA, or
      shared/data found walking up from this script):
      `{order, tensors: {name: [shape, sum, first 4 values]}}` read with `onnx.numpy_helper`.

Usage (from the repository root):

    reference/.venv/bin/python reference/make_import_onnx_fixtures.py
"""

import os
import shutil
import sys

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from import_fixture_util import summary, write_json, write_safetensors  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "import")


def data_dir():
    """`$FERROVISION_DATA`, or `shared/data` found walking up from this script (as the tests do)."""
    if os.environ.get("FERROVISION_DATA"):
        return os.environ["FERROVISION_DATA"]
    d = HERE
    while True:
        if os.path.isdir(os.path.join(d, "shared", "data")):
            return os.path.join(d, "shared", "data")
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def tensor(name, dtype, dims, field, values):
    t = TensorProto(name=name, data_type=dtype, dims=dims)
    getattr(t, field).extend(values)
    return t


def main():
    rng = np.random.default_rng(20261204)
    w_raw = rng.standard_normal((4, 3)).astype("f4")
    w_float = rng.standard_normal((3,)).astype("f4")
    h_raw = rng.standard_normal((2, 2)).astype("f2")
    h_int32 = rng.standard_normal((3,)).astype("f2")
    d = rng.standard_normal((2,)).astype("f8")
    i64 = np.array([-(1 << 40), 0, 7, 1 << 62], dtype="i8")
    i64_raw = np.array([3, -1], dtype="i8")
    i32 = np.array([-5, 1 << 30], dtype="i4")
    u8 = np.array([0, 255, 17], dtype="u1")
    ext = rng.standard_normal((2, 5)).astype("f4")

    inits = [
        numpy_helper.from_array(w_raw, "fc.weight"),  # raw_data
        tensor("fc.bias", TensorProto.FLOAT, [3], "float_data", w_float.tolist()),
        numpy_helper.from_array(h_raw, "half_raw"),
        # FLOAT16 in int32_data holds the bit patterns (onnx.proto, TensorProto.int32_data).
        tensor("half_int32", TensorProto.FLOAT16, [3], "int32_data", h_int32.view("u2").tolist()),
        tensor("double", TensorProto.DOUBLE, [2], "double_data", d.tolist()),
        tensor("shape_i64", TensorProto.INT64, [4], "int64_data", i64.tolist()),
        numpy_helper.from_array(i64_raw, "i64_raw"),
        tensor("i32", TensorProto.INT32, [2], "int32_data", i32.tolist()),
        numpy_helper.from_array(u8, "u8"),
        numpy_helper.from_array(np.array(1.5, dtype="f4"), "scalar"),
        numpy_helper.from_array(ext, "external"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    nodes = [
        helper.make_node("MatMul", ["x", "fc.weight"], ["mm"]),
        helper.make_node("Add", ["mm", "fc.bias"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "small", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)

    d_out = os.path.join(OUT, "onnx_small")
    shutil.rmtree(d_out, ignore_errors=True)
    os.makedirs(d_out)
    # External data by hand: 16 bytes of padding first, so the offset is exercised.
    ext_t = model.graph.initializer[-1]
    with open(os.path.join(d_out, "weights.bin"), "wb") as f:
        f.write(b"\x00" * 16 + ext.tobytes())
    ext_t.ClearField("raw_data")
    ext_t.data_location = TensorProto.EXTERNAL
    for k, v in [("location", "weights.bin"), ("offset", "16"), ("length", str(ext.nbytes))]:
        ext_t.external_data.append(onnx.StringStringEntryProto(key=k, value=v))
    path = os.path.join(d_out, "model.onnx")
    with open(path + ".tmp", "wb") as f:
        f.write(model.SerializeToString())
    os.replace(path + ".tmp", path)

    loaded = onnx.load(path)  # resolves the external data
    opts = onnxruntime.SessionOptions()
    opts.log_severity_level = 3  # the unused initializers are there on purpose
    sess = onnxruntime.InferenceSession(path, opts)
    xin = np.arange(4, dtype="f4").reshape(1, 4)
    np.testing.assert_allclose(sess.run(None, {"x": xin})[0], xin @ w_raw + w_float, rtol=1e-6)
    got = [(t.name, numpy_helper.to_array(t, base_dir=d_out)) for t in loaded.graph.initializer]
    want = {
        "fc.weight": w_raw, "fc.bias": w_float, "half_raw": h_raw, "half_int32": h_int32,
        "double": d, "shape_i64": i64, "i64_raw": i64_raw, "i32": i32, "u8": u8, "external": ext,
    }
    for name, a in got:
        if name in want:
            assert a.dtype == want[name].dtype and np.array_equal(a, want[name]), name
    write_safetensors(os.path.join(OUT, "onnx_small.safetensors"), got)

    for model_name in ["version-RFB-320", "version-slim-320"]:
        p = os.path.join(data_dir() or "shared/data", "face-detector", f"{model_name}.onnx")
        if not os.path.exists(p):
            print(f"skipped {p}: missing")
            continue
        m = onnx.load(p)
        got = [(t.name, numpy_helper.to_array(t)) for t in m.graph.initializer]
        write_json(os.path.join(OUT, f"onnx_{model_name}.json"), summary(got))
        print(f"{p}: {len(got)} initializers, dtypes {sorted({str(a.dtype) for _, a in got})}")


if __name__ == "__main__":
    main()
