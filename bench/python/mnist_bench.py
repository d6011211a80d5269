#!/usr/bin/env python3
"""LeNet-5 on real MNIST: epoch time of Keras `model.fit` and of a PyTorch training loop, for
comparison with `ferrovision-bench mnist` (same data, model, optimizer, batch size, epochs).

Usage: mnist_bench.py --framework {torch,keras} --data DIR [--threads N] [--epochs N]

Model (the book's LeNet-5): Conv(6,5x5,same,relu)-MaxPool2-Conv(16,5x5,valid,relu)-MaxPool2-
Flatten-Dense(120,relu)-Dense(84,relu)-Dense(10); Adam(1e-3), batch 64, shuffled each epoch,
sparse categorical cross-entropy on logits, pixels scaled to [0, 1]. The first epoch is a
warm-up; the printed epoch_s is the median of the remaining epochs. Keras runs channels-last
(TensorFlow's CPU convolutions need NHWC), PyTorch channels-first.

Last line: RESULT mnist epoch_s=<f> test_acc=<f>
"""
import argparse
import os
import struct
import sys


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--framework", choices=["torch", "keras"], required=True)
    p.add_argument("--data", required=True, help="folder with the four MNIST IDX files")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3, help="epochs including the warm-up (default 3)")
    p.add_argument("--batch-size", type=int, default=64)
    return p.parse_args()


ARGS = parse_args()
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = str(ARGS.threads)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def find(names):
    for n in names:
        for suffix in ("", ".gz"):
            p = os.path.join(ARGS.data, n + suffix)
            if os.path.exists(p):
                return p
    sys.exit(f"none of {names} found in {ARGS.data}")


def read_idx(path):
    import gzip

    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 0x803:
        rows, cols = struct.unpack(">II", data[8:16])
        return np.frombuffer(data, np.uint8, offset=16).reshape(n, rows, cols)
    if magic == 0x801:
        return np.frombuffer(data, np.uint8, offset=8)
    sys.exit(f"{path}: bad magic {magic:#x}")


def load():
    x_train = read_idx(find(["train-images-idx3-ubyte", "train-images.idx3-ubyte"])).astype(np.float32) / 255.0
    y_train = read_idx(find(["train-labels-idx1-ubyte", "train-labels.idx1-ubyte"])).astype(np.int64)
    x_test = read_idx(find(["t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"])).astype(np.float32) / 255.0
    y_test = read_idx(find(["t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"])).astype(np.int64)
    return x_train, y_train, x_test, y_test


def run_torch(x_train, y_train, x_test, y_test):
    import torch
    import torch.nn as nn

    torch.set_num_threads(ARGS.threads)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    xt = torch.from_numpy(x_train).unsqueeze(1)
    yt = torch.from_numpy(y_train)
    times = []
    for _ in range(ARGS.epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(xt))
        model.train()
        for s in range(0, len(xt), ARGS.batch_size):
            idx = perm[s:s + ARGS.batch_size]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
        print(f"epoch {len(times)}: {times[-1]:.2f} s, loss {loss.item():.4f}", flush=True)
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(x_test).unsqueeze(1)).argmax(1).numpy()
    return times, float((pred == y_test).mean())


def run_keras(x_train, y_train, x_test, y_test):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(ARGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(ARGS.threads)
    keras = tf.keras
    L = keras.layers
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        L.Conv2D(6, 5, padding="same", activation="relu"), L.MaxPooling2D(2),
        L.Conv2D(16, 5, activation="relu"), L.MaxPooling2D(2), L.Flatten(),
        L.Dense(120, activation="relu"), L.Dense(84, activation="relu"), L.Dense(10),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t0)
            print(f"epoch {len(times)}: {times[-1]:.2f} s, loss {logs['loss']:.4f}", flush=True)

    model.fit(x_train[..., None], y_train, batch_size=ARGS.batch_size, epochs=ARGS.epochs,
              shuffle=True, verbose=0, callbacks=[Timer()])
    pred = model.predict(x_test[..., None], batch_size=1000, verbose=0).argmax(1)
    return times, float((pred == y_test).mean())


def main():
    data = load()
    times, acc = (run_torch if ARGS.framework == "torch" else run_keras)(*data)
    timed = times[1:] if len(times) > 1 else times
    print(f"RESULT mnist epoch_s={statistics.median(timed):.4f} test_acc={acc:.4f}")


if __name__ == "__main__":
    main()
