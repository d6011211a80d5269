#!/usr/bin/env python3
"""Reference behaviour of Keras callbacks for ferrovision-nn's callback tests.

Writes reference/fixtures/nn_callbacks.json with, computed by Keras 3 / TensorFlow / Python:
- early_stopping: Keras `EarlyStopping` driven epoch by epoch with given monitored values;
  the model's single weight is set to the epoch index before each epoch ends, so the weight
  left after `on_train_end` tells which epoch `restore_best_weights` restored.
- reduce_lr: Keras `ReduceLROnPlateau` on given values; the learning rate after each epoch.
- checkpoint_best: Keras `ModelCheckpoint(save_best_only=True)`: which epochs save
  (the model's `save_weights` is replaced by a recorder, nothing is written).
- templates: Python `str.format` of file-name templates (`ModelCheckpoint` file paths).
- float_repr: Python `repr(float)` (how `CSVLogger` writes values).
- csv: the files Keras `CSVLogger` writes for given epoch logs (plain and append mode).
- histograms: TensorFlow's `HistogramProto` (tf.compat.v1.summary.histogram, default
  buckets) for given float32 values.

Run with the reference venv: reference/.venv/bin/python reference/make_nn_callbacks_fixtures.py
"""

import json
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorboard.compat.proto import summary_pb2  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "fixtures", "nn_callbacks.json")


def tiny_model(lr=0.1):
    m = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    m.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="mse", metrics=["accuracy"])
    return m


def set_weight(model, v):
    model.set_weights([np.array([[v]], np.float32), np.array([0.0], np.float32)])


EARLY_CASES = [
    dict(monitor="val_loss", values=[1.0, 0.8, 0.9, 0.85, 0.95, 0.7], patience=2),
    dict(monitor="val_loss", values=[1.0, 0.8, 0.9, 0.85, 0.95, 0.7], patience=0),
    dict(monitor="val_loss", values=[1.0, 0.99, 0.98, 0.97, 0.5], patience=2, min_delta=0.05),
    dict(monitor="val_accuracy", values=[0.5, 0.6, 0.55, 0.58, 0.59, 0.7, 0.65], patience=2, mode="max"),
    dict(monitor="val_loss", values=[1.0, 0.9, 0.8, 0.7, 0.6, 0.5], patience=1, baseline=0.65),
    dict(monitor="val_loss", values=[0.5, 0.6, 0.7, 0.8, 0.4, 0.9, 1.0, 1.1], patience=2, start_from_epoch=3),
    dict(monitor="val_loss", values=[1.0, 0.7, 0.8, 0.9, 0.6], patience=2, restore_best_weights=True),
    dict(monitor="val_loss", values=[1.0, 0.7, 0.8, 0.75, 0.72], patience=5, restore_best_weights=True),
    dict(monitor="loss", values=[2.0, 1.0, 1.5, 1.2, 0.9], patience=1, mode="min", restore_best_weights=True),
]


def early_stopping():
    out = []
    for case in EARLY_CASES:
        kw = {k: v for k, v in case.items() if k not in ("values",)}
        model = tiny_model()
        cb = keras.callbacks.EarlyStopping(**kw)
        cb.set_model(model)
        model.stop_training = False
        cb.on_train_begin()
        epochs_run = 0
        for epoch, v in enumerate(case["values"]):
            set_weight(model, float(epoch))
            cb.on_epoch_end(epoch, {case["monitor"]: v})
            epochs_run = epoch + 1
            if model.stop_training:
                break
        cb.on_train_end()
        out.append(
            dict(
                case,
                epochs_run=epochs_run,
                stopped_epoch=int(cb.stopped_epoch),
                best_epoch=int(cb.best_epoch),
                final_weight=float(model.get_weights()[0][0][0]),
            )
        )
    return out


REDUCE_CASES = [
    dict(monitor="val_loss", values=[1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], lr=0.1, factor=0.5, patience=2),
    dict(monitor="val_loss", values=[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], lr=0.1, factor=0.1, patience=1, cooldown=2),
    dict(monitor="val_loss", values=[1.0, 0.99995, 0.9999, 0.9, 0.9, 0.9], lr=0.2, factor=0.5, patience=1),
    dict(monitor="val_loss", values=[1.0] * 8, lr=0.1, factor=0.2, patience=1, min_lr=0.005),
    dict(monitor="val_accuracy", values=[0.5, 0.6, 0.6, 0.6, 0.7, 0.7, 0.7], lr=0.05, factor=0.5, patience=2, mode="max", min_delta=0.0),
]


def reduce_lr():
    out = []
    for case in REDUCE_CASES:
        kw = {k: v for k, v in case.items() if k not in ("values", "lr")}
        model = tiny_model(case["lr"])
        cb = keras.callbacks.ReduceLROnPlateau(**kw)
        cb.set_model(model)
        cb.on_train_begin()
        lrs = []
        for epoch, v in enumerate(case["values"]):
            cb.on_epoch_end(epoch, {case["monitor"]: v})
            lrs.append(float(np.asarray(model.optimizer.learning_rate)))
        out.append(dict(case, lrs=lrs))
    return out


CKPT_CASES = [
    dict(monitor="val_loss", values=[1.0, 0.8, 0.9, 0.7, 0.7, 0.75, 0.6]),
    dict(monitor="val_accuracy", values=[0.5, 0.6, 0.55, 0.6, 0.8], mode="max"),
    dict(monitor="val_loss", values=[1.0, 0.8, 0.5, 0.4], initial_value_threshold=0.7),
]


def checkpoint_best():
    out = []
    for case in CKPT_CASES:
        kw = {k: v for k, v in case.items() if k not in ("values",)}
        model = tiny_model()
        saved = []
        model.save_weights = lambda fp, overwrite=True: saved.append(fp)
        cb = keras.callbacks.ModelCheckpoint(
            "w-{epoch:02d}.weights.h5", save_best_only=True, save_weights_only=True, **kw
        )
        cb.set_model(model)
        cb.on_train_begin()
        for epoch, v in enumerate(case["values"]):
            cb.on_epoch_begin(epoch)
            cb.on_epoch_end(epoch, {case["monitor"]: v})
        out.append(dict(case, saved=saved))
    return out


TEMPLATE_CASES = [
    ("ckpt-{epoch}.safetensors", 3, {}),
    ("ckpt-{epoch:02d}.safetensors", 3, {}),
    ("ckpt-{epoch:03d}-{val_loss:.4f}.st", 12, {"val_loss": 0.123456789}),
    ("{epoch:02d}-{loss:.2f}-{val_accuracy:.3f}", 7, {"loss": 0.125, "val_accuracy": 0.98765}),
    ("{loss:.3e}", 1, {"loss": 0.000123456}),
    ("{loss:.2E}", 1, {"loss": 12345.678}),
    ("{loss}", 1, {"loss": 0.1}),
    ("{loss}", 1, {"loss": 1e-05}),
    ("{loss}", 1, {"loss": 2.0}),
    ("{loss:8.3f}|{epoch:4d}", 5, {"loss": 1.5}),
    ("{loss:08.3f}", 5, {"loss": -1.5}),
    ("{loss:+.2f}", 5, {"loss": 1.5}),
    ("{acc:.1%}", 5, {"acc": 0.9876}),
    ("{epoch:.2f}", 5, {}),
    ("{{literal}}-{epoch}", 2, {}),
    ("{x:.0f}-{y:.0f}-{z:.2f}", 1, {"x": 2.5, "y": 3.5, "z": 0.125}),
    ("{loss:.4f}", 1, {"loss": float(np.float32(0.3))}),
]


def templates():
    return [
        dict(template=t, epoch=e, logs=logs, result=t.format(epoch=e, **logs))
        for t, e, logs in TEMPLATE_CASES
    ]


FLOATS = [
    0.1, 1.0, 2.0, 100.0, 1e-05, 0.0001, 0.00012345, 1.5e16, 1e16, 1e15, 123456789012345.6,
    -2.5, -0.001, 3.14159, 1e-300, 1.7976931348623157e308, 5e-324, 0.0,
    float(np.float32(0.3)), float(np.float32(1e-5)), float(np.float32(0.12345678)),
    float(np.float32(1234567.8)),
]


def float_repr():
    return [[v, repr(v)] for v in FLOATS]


CSV_CASES = [
    dict(
        name="with_val",
        separator=",",
        epochs=[
            {"loss": 0.5, "accuracy": 0.75, "val_loss": 0.6, "val_accuracy": 0.7, "lr": 0.01},
            {"loss": float(np.float32(0.3)), "accuracy": 0.875, "val_loss": 0.55, "val_accuracy": 0.72, "lr": 0.01},
        ],
    ),
    dict(
        name="no_val_semicolon",
        separator=";",
        epochs=[{"loss": 1.25, "mae": 1e-05}, {"loss": 0.0625, "mae": 2.0}],
    ),
    dict(
        name="missing_key",
        separator=",",
        epochs=[{"loss": 1.0, "val_loss": 2.0}, {"loss": 0.5}],
    ),
]


def run_csv_logger(path, sep, epochs, append, first_epoch=0):
    cb = keras.callbacks.CSVLogger(path, separator=sep, append=append)
    cb.set_model(tiny_model())
    cb.on_train_begin()
    for i, logs in enumerate(epochs):
        cb.on_epoch_end(first_epoch + i, dict(logs))
    cb.on_train_end()


def csv_files():
    out = []
    with tempfile.TemporaryDirectory() as d:
        for case in CSV_CASES:
            path = os.path.join(d, case["name"] + ".csv")
            run_csv_logger(path, case["separator"], case["epochs"], append=False)
            with open(path, newline="") as f:
                plain = f.read()
            # Resume: a second fit appends to the same file without a second header.
            run_csv_logger(path, case["separator"], case["epochs"], append=True, first_epoch=len(case["epochs"]))
            with open(path, newline="") as f:
                appended = f.read()
            out.append(dict(case, plain=plain, appended=appended))
    return out


def histogram_values():
    rng = np.random.default_rng(1234)
    return {
        "normal": rng.normal(0.0, 0.05, size=200).astype(np.float32),
        "mixed": np.array([0.0, 0.0, -1.0, 1.0, 1e-13, -3e-9, 2.5, 7.0e6, -1.5e21, 0.3], np.float32),
        "constant": np.full(7, 0.25, np.float32),
        "single": np.array([-42.0], np.float32),
    }


def histograms():
    out = []
    for name, values in histogram_values().items():
        s = tf.compat.v1.summary.histogram(name, tf.constant(values))
        summ = summary_pb2.Summary()
        summ.ParseFromString(s.numpy())
        h = summ.value[0].histo
        out.append(
            dict(
                name=name,
                values=[float(v) for v in values],
                min=h.min,
                max=h.max,
                num=h.num,
                sum=h.sum,
                sum_squares=h.sum_squares,
                bucket_limit=list(h.bucket_limit),
                bucket=list(h.bucket),
            )
        )
    return out


def main():
    keras.utils.set_random_seed(0)
    data = {
        "versions": {"keras": keras.__version__, "tensorflow": tf.__version__, "numpy": np.__version__},
        "early_stopping": early_stopping(),
        "reduce_lr": reduce_lr(),
        "checkpoint_best": checkpoint_best(),
        "templates": templates(),
        "float_repr": float_repr(),
        "csv": csv_files(),
        "histograms": histograms(),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
