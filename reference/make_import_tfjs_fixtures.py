#!/usr/bin/env python3
"""Fixtures of the TF.js weights reader (crates/ferrovision-import/src/tfjs.rs).

The reference is the `tensorflowjs` package's own `read_weights` / `write_weights` modules
(pinned in reference/requirements.txt, installed with `--no-deps`). Its package `__init__`
imports the converters, which need `tf_keras`; the two modules themselves need only numpy
(`write_weights` also imports tensorflow), so they are loaded under a stub package that skips
that `__init__`.

Writes into reference/fixtures/import/:
  tfjs_small/weights_manifest.json + group*-shard*of*.bin
      A manifest written by `write_weights` with two groups, several shards per group (shard size
      64 bytes), float32, int32, uint8-, uint16- and float16-quantised float32 weights
      (`write_weights` never quantises int32 weights); `tfjs_small/model.json` wraps the same manifest as a
      `weightsManifest` (what `tfjs.converters` writes next to a model topology).
  tfjs_small.safetensors
      The tensors `read_weights` returns (dequantised, in manifest order).
  tfjs_face_expression_model.json, tfjs_tiny_face_detector_model.json
      For the real face-api manifests in ~/.ferrovision/models/face_api (fetched by
      scripts/fetch_models.sh): `{order, tensors: {name: [shape, sum, first 4 values]}}`.

Usage (from the repository root):

    reference/.venv/bin/python reference/make_import_tfjs_fixtures.py
"""

import importlib.util
import json
import os
import shutil
import sys
import types

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from import_fixture_util import summary, write_json, write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "import")
HOME = os.environ.get("FERROVISION_HOME", os.path.expanduser("~/.ferrovision"))
FACE_API = os.path.join(HOME, "models", "face_api")


def tfjs_modules():
    """`tensorflowjs.read_weights` and `.write_weights` without the package `__init__`."""
    spec = importlib.util.find_spec("tensorflowjs")
    pkg = types.ModuleType("tensorflowjs")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules["tensorflowjs"] = pkg
    from tensorflowjs import read_weights, write_weights

    return read_weights, write_weights


def flat(groups):
    return [(e["name"], np.asarray(e["data"])) for g in groups for e in g]


def main():
    read_weights, write_weights = tfjs_modules()
    rng = np.random.default_rng(20261204)
    groups = [
        [
            {"name": "conv/kernel", "data": rng.standard_normal((3, 3, 2, 4)).astype("f4")},
            {"name": "conv/bias", "data": rng.standard_normal(4).astype("f4")},
            {"name": "step", "data": np.array([7, -3, 1 << 20], dtype="i4")},
            {"name": "q8/kernel", "data": rng.uniform(-2, 1, (5, 3)).astype("f4")},
        ],
        [
            {"name": "q16/kernel", "data": rng.uniform(-1, 3, (4, 4)).astype("f4")},
            {"name": "h16/kernel", "data": rng.standard_normal((2, 3)).astype("f4")},
            {"name": "ids", "data": np.array([0, 5, 17, 255, 100], dtype="i4")},
            {"name": "scalar", "data": np.array(2.5, dtype="f4")},
        ],
    ]
    quant = {"uint8": ["q8/*"], "uint16": ["q16/*"], "float16": ["h16/*"]}
    d = os.path.join(OUT, "tfjs_small")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    write_weights.write_weights(groups, d, shard_size_bytes=64, quantization_dtype_map=quant)
    with open(os.path.join(d, "weights_manifest.json")) as f:
        manifest = json.load(f)
    assert len(manifest) == 2 and all(len(g["paths"]) > 1 for g in manifest)
    qd = {w["name"]: w.get("quantization", {}).get("dtype") for g in manifest for w in g["weights"]}
    assert qd["q8/kernel"] == "uint8" and qd["q16/kernel"] == "uint16", qd
    assert qd["h16/kernel"] == "float16", qd
    write_json(
        os.path.join(d, "model.json"),
        {"format": "layers-model", "modelTopology": {}, "weightsManifest": manifest},
    )
    got = flat(read_weights.read_weights(manifest, d))
    write_safetensors(os.path.join(OUT, "tfjs_small.safetensors"), got)

    for model in ["face_expression_model", "tiny_face_detector_model"]:
        path = os.path.join(FACE_API, f"{model}-weights_manifest.json")
        if not os.path.exists(path):
            print(f"skipped {path}: missing (run scripts/fetch_models.sh)")
            continue
        with open(path) as f:
            manifest = json.load(f)
        got = flat(read_weights.read_weights(manifest, FACE_API))
        write_json(os.path.join(OUT, f"tfjs_{model}.json"), summary(got))
        print(f"{path}: {len(got)} tensors")


if __name__ == "__main__":
    main()
