#!/usr/bin/env python3
"""Zoo architectures through the ONNX and TF.js import paths: a reference framework's model,
filled with the formula weights (`reference/zoo/formula_weights.py`), saved in the format and
run by that format's own runtime; the Rust tests (`crates/ferrovision-import/tests/
zoo_formats.rs`) read the file, map it onto the zoo model by the format's naming and must give
the same outputs, so the reader, the name mapping, the layouts and the architecture are checked
together.

Writes into reference/fixtures/import/:
  zoo_resnet20.onnx, zoo_resnet20_onnx.json
      He et al.'s CIFAR ResNet-20 (`reference/zoo/resnet.py`, PyTorch, 10 classes) exported by
      `torch.onnx.export` (TorchScript exporter, opset 17, batch norm kept as its own node so the
      initializers keep the state-dict names); logits of onnxruntime on the formula input
      `[2, 3, 32, 32]`.
  zoo_mobilenet_v1_tfjs/ (manifest + shards), zoo_mobilenet_v1_tfjs.json
      Keras applications' MobileNet (alpha 0.25, 32x32x3, 10 classes, Keras 3 names) written by
      `tensorflowjs.write_weights` with every float weight uint8-quantised; logits of the same
      Keras model after loading back the *dequantised* weights with `tensorflowjs.read_weights`
      (so the reference sees exactly the weights the file holds), on the formula input
      `[2, 3, 32, 32]` (NHWC for Keras).

Usage (repository root):

    reference/.venv/bin/python reference/make_zoo_import_fixtures.py
"""

import json
import os
import shutil
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "import")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "zoo"))
from formula_weights import fill_torch_module, formula  # noqa: E402
from make_import_tfjs_fixtures import tfjs_modules  # noqa: E402
from mobilenet import fill_keras_model  # noqa: E402
from resnet import CifarResNet  # noqa: E402

torch.set_num_threads(1)


def write_json(name, record):
    path = os.path.join(OUT, name)
    with open(path + ".tmp", "w") as f:
        json.dump(record, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(path + ".tmp", path)
    print("wrote", os.path.relpath(path))


def onnx_resnet20():
    model = CifarResNet(3, 10).eval()
    fill_torch_module(model)
    shape = [2, 3, 32, 32]
    x = torch.from_numpy(formula("input", shape))
    path = os.path.join(OUT, "zoo_resnet20.onnx")
    torch.onnx.export(
        model,
        (x,),
        path + ".tmp",
        dynamo=False,
        opset_version=17,
        input_names=["input"],
        output_names=["logits"],
        training=torch.onnx.TrainingMode.PRESERVE,
        do_constant_folding=False,
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    os.replace(path + ".tmp", path)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    names = [t.name for t in m.graph.initializer]
    assert "layer2.0.downsample.1.running_var" in names, names[:10]
    sess = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"input": x.numpy()})
    with torch.no_grad():
        y_torch = model(x).numpy()
    assert np.allclose(y, y_torch, rtol=1e-4, atol=1e-4)
    write_json(
        "zoo_resnet20_onnx.json",
        {
            "architecture": "resnet20",
            "input_shape": shape,
            "classes": 10,
            "initializers": names,
            "logits": [float(v) for v in y.reshape(-1)],
            "versions": {
                "torch": torch.__version__,
                "onnx": onnx.__version__,
                "onnxruntime": onnxruntime.__version__,
            },
        },
    )


def tfjs_mobilenet_v1():
    import keras
    import tensorflow as tf

    read_weights, write_weights = tfjs_modules()
    model = keras.applications.MobileNet(
        input_shape=(32, 32, 3), alpha=0.25, weights=None, classes=10,
        classifier_activation=None,
    )
    fill_keras_model(model)
    group = [{"name": v.path, "data": np.asarray(v.numpy())} for v in model.weights]
    d = os.path.join(OUT, "zoo_mobilenet_v1_tfjs")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    write_weights.write_weights(
        [group], d, shard_size_bytes=1 << 20, quantization_dtype_map={"uint8": True}
    )
    with open(os.path.join(d, "weights_manifest.json")) as f:
        manifest = json.load(f)
    dq = {e["name"]: e["data"] for e in read_weights.read_weights(manifest, d)[0]}
    for v in model.weights:
        v.assign(dq[v.path].astype(v.dtype.name if hasattr(v.dtype, "name") else v.dtype))
    shape = [2, 3, 32, 32]
    x = formula("input", shape).transpose(0, 2, 3, 1)
    y = np.asarray(model(x, training=False), dtype=np.float64)
    write_json(
        "zoo_mobilenet_v1_tfjs.json",
        {
            "architecture": "mobilenet_v1",
            "alpha": 0.25,
            "input_shape": shape,
            "classes": 10,
            "logits": [float(v) for v in y.reshape(-1)],
            "weights": [e["name"] for e in manifest[0]["weights"]],
            "versions": {"keras": keras.__version__, "tensorflow": tf.__version__},
        },
    )


if __name__ == "__main__":
    onnx_resnet20()
    tfjs_mobilenet_v1()
