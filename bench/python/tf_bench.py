#!/usr/bin/env python3
"""TensorFlow (2.x, CPU, NHWC, tf.function custom training loop) reference
benchmarks for ferrovision.

Usage: tf_bench.py {lenet5,resnet18,resnet20,resnet50,mobilenet_v2,gemm} [--threads N]

The last line printed is machine-readable, in the same format as the Rust
benchmark (crates/ferrovision-bench):
  RESULT lenet5 train_img_s=<f> infer_img_s=<f> peak_rss_mb=<f>
  RESULT resnet18 train_steps_s=<f> infer_img_s=<f> peak_rss_mb=<f>
  RESULT gemm gflops_1024=<f> gflops_256x2304x576=<f>
  RESULT resnet50|mobilenet_v2 infer_b1_img_s=<f> infer_b32_img_s=<f> train_b16_steps_s=<f> peak_rss_mb=<f>
Run it with reference/.venv (see reference/setup_venv.sh).

Models use tf.keras (Keras 3) layers; the training step is a tf.function
(GradientTape + tf.keras.optimizers.SGD with momentum), inference is a
tf.function too. No XLA (jit_compile) - plain TF graph execution with the
default oneDNN CPU kernels.
"""
import argparse
import os
import sys


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workload", choices=["lenet5", "resnet18", "resnet20", "resnet50", "mobilenet_v2", "gemm"])
    p.add_argument("--threads", type=int, default=2, help="intra- and inter-op threads (default 2)")
    return p.parse_args()


ARGS = parse_args()
# Must be set before TensorFlow is loaded.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = str(ARGS.threads)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(ARGS.threads)
tf.config.threading.set_inter_op_parallelism_threads(ARGS.threads)
tf.random.set_seed(0)
keras = tf.keras
layers = tf.keras.layers

SEED = 0


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def xent(logits, labels):
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))


def make_train_step(model, opt):
    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = xent(model(x, training=True), y)
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss
    return train_step


def make_infer(model):
    @tf.function
    def infer(x):
        return model(x, training=False)
    return infer


# --------------------------------------------------------------------------- lenet5

LENET_N = 6016  # 94 batches of 64
LENET_BATCH = 64
LENET_INFER_BATCH = 256


def lenet5():
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(6, 5, padding="same", activation="relu"),  # stride 1: "same" == pad 2
        layers.MaxPooling2D(2),
        layers.Conv2D(16, 5, padding="valid", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(120, activation="relu"),
        layers.Dense(84, activation="relu"),
        layers.Dense(10),
    ])


def bench_lenet5():
    rng = np.random.default_rng(SEED)
    # Same data as torch_bench.py (generated NCHW), transposed to NHWC.
    images_np = rng.random((LENET_N, 1, 28, 28), dtype=np.float32).transpose(0, 2, 3, 1).copy()
    labels_np = rng.integers(0, 10, size=LENET_N).astype(np.int32)
    batches = [
        (tf.constant(images_np[i:i + LENET_BATCH]), tf.constant(labels_np[i:i + LENET_BATCH]))
        for i in range(0, LENET_N, LENET_BATCH)
    ]
    model = lenet5()
    opt = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
    train_step = make_train_step(model, opt)

    def epoch():
        total = tf.zeros(())
        for x, y in batches:
            total += train_step(x, y)
        return float(total.numpy()) / len(batches)

    loss = epoch()  # warm-up epoch (includes tracing)
    print(f"epoch 1 (warm-up) loss {loss:.4f}")
    timed_epochs = 2
    t0 = time.perf_counter()
    for _ in range(timed_epochs):
        loss = epoch()
    t_train = time.perf_counter() - t0
    print(f"epoch {1 + timed_epochs} loss {loss:.4f}")
    train_img_s = timed_epochs * LENET_N / t_train
    print(f"train: {timed_epochs} epochs x {LENET_N} images in {t_train:.3f} s")

    infer = make_infer(model)
    infer_batches = [tf.constant(images_np[i:i + LENET_INFER_BATCH])
                     for i in range(0, LENET_N, LENET_INFER_BATCH)]

    def infer_pass():
        correct = 0
        for i, x in enumerate(infer_batches):
            pred = np.argmax(infer(x).numpy(), axis=1)
            correct += int((pred == labels_np[i * LENET_INFER_BATCH:(i + 1) * LENET_INFER_BATCH]).sum())
        return correct

    passes = 3
    infer_pass()  # warm-up (includes tracing)
    t0 = time.perf_counter()
    for _ in range(passes):
        correct = infer_pass()
    t_inf = time.perf_counter() - t0
    infer_img_s = passes * LENET_N / t_inf
    print(f"infer: {passes} passes x {LENET_N} images (batch {LENET_INFER_BATCH}) in {t_inf:.3f} s, "
          f"train-set accuracy {correct / LENET_N:.3f}")
    print(f"RESULT lenet5 train_img_s={train_img_s:.2f} infer_img_s={infer_img_s:.2f} "
          f"peak_rss_mb={peak_rss_mb():.1f}")


# --------------------------------------------------------------------------- resnet18

RN_BATCH = 16
RN_INFER_BATCH = 32
RN_HW = 64
RN_WARMUP = 3
RN_STEPS = 20
RN_INFER_WARMUP = 2
RN_INFER_BATCHES = 10


class Conv(layers.Layer):
    """Bias-free NHWC conv with PyTorch-style symmetric zero padding `pad`.

    Stride 1 with pad == k // 2 is exactly "SAME". For stride 2, "SAME" would
    pad asymmetrically (0 before / 1 after), so we tf.pad then run a "VALID"
    conv. (tf.nn.conv2d's explicit-padding mode would be exact too, but its
    gradient kernels are ~4x slower on CPU in TF 2.21 - measured.)"""

    def __init__(self, filters, kernel, stride=1, pad=0, **kw):
        super().__init__(**kw)
        self.filters, self.kernel, self.stride, self.pad = filters, kernel, stride, pad

    def build(self, input_shape):
        self.w = self.add_weight(
            name="kernel", shape=(self.kernel, self.kernel, input_shape[-1], self.filters),
            initializer="he_normal", trainable=True)

    def call(self, x):
        p = self.pad
        if p == 0:
            return tf.nn.conv2d(x, self.w, strides=self.stride, padding="VALID")
        if self.stride == 1 and 2 * p == self.kernel - 1:
            return tf.nn.conv2d(x, self.w, strides=1, padding="SAME")
        x = tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
        return tf.nn.conv2d(x, self.w, strides=self.stride, padding="VALID")


def bn():
    # PyTorch BatchNorm2d defaults: eps 1e-5, running-stat momentum 0.1 (== Keras 0.9).
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5)


class BasicBlock(layers.Layer):
    def __init__(self, cin, cout, stride, **kw):
        super().__init__(**kw)
        self.conv1 = Conv(cout, 3, stride, 1)
        self.bn1 = bn()
        self.conv2 = Conv(cout, 3, 1, 1)
        self.bn2 = bn()
        self.down_conv = self.down_bn = None
        if stride != 1 or cin != cout:
            self.down_conv = Conv(cout, 1, stride, 0)
            self.down_bn = bn()

    def call(self, x, training=False):
        idt = x if self.down_conv is None else self.down_bn(self.down_conv(x), training=training)
        out = tf.nn.relu(self.bn1(self.conv1(x), training=training))
        out = self.bn2(self.conv2(out), training=training)
        return tf.nn.relu(out + idt)


class ResNet18(keras.Model):
    def __init__(self, num_classes=10, **kw):
        super().__init__(**kw)
        self.conv1 = Conv(64, 7, 2, 3)
        self.bn1 = bn()
        self.blocks = []
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            self.blocks += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.fc = layers.Dense(num_classes)

    def call(self, x, training=False):
        x = tf.nn.relu(self.bn1(self.conv1(x), training=training))
        x = tf.nn.max_pool2d(x, 3, 2, [[0, 0], [1, 1], [1, 1], [0, 0]])
        for blk in self.blocks:
            x = blk(x, training=training)
        x = tf.reduce_mean(x, axis=[1, 2])
        return self.fc(x)


def bench_resnet18():
    rng = np.random.default_rng(SEED)
    n_train = RN_WARMUP + RN_STEPS
    # Same data as torch_bench.py (generated NCHW), transposed to NHWC.
    xs = rng.random((n_train, RN_BATCH, 3, RN_HW, RN_HW), dtype=np.float32).transpose(0, 1, 3, 4, 2)
    ys = rng.integers(0, 10, size=(n_train, RN_BATCH)).astype(np.int32)
    xs = [tf.constant(np.ascontiguousarray(x)) for x in xs]
    ys = [tf.constant(y) for y in ys]
    model = ResNet18()
    model(xs[0][:1], training=False)  # build the variables
    opt = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
    train_step = make_train_step(model, opt)

    times = []
    for i in range(n_train):
        t0 = time.perf_counter()
        lv = float(train_step(xs[i], ys[i]).numpy())
        dt = time.perf_counter() - t0
        if i == 0:
            print(f"step 1 loss {lv:.4f} ({dt:.2f} s incl. tracing)")
        if i >= RN_WARMUP:
            times.append(dt)
    print(f"step {n_train} loss {lv:.4f}")
    med = statistics.median(times)
    print(f"train: median step {med * 1e3:.1f} ms (min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}) "
          f"over {RN_STEPS} steps, batch {RN_BATCH}")
    train_steps_s = 1.0 / med

    infer = make_infer(model)
    xi = rng.random((RN_INFER_BATCHES, RN_INFER_BATCH, 3, RN_HW, RN_HW), dtype=np.float32).transpose(0, 1, 3, 4, 2)
    xi = [tf.constant(np.ascontiguousarray(x)) for x in xi]
    for i in range(RN_INFER_WARMUP):
        infer(xi[i]).numpy()
    t0 = time.perf_counter()
    for i in range(RN_INFER_BATCHES):
        infer(xi[i]).numpy()
    t_inf = time.perf_counter() - t0
    infer_img_s = RN_INFER_BATCHES * RN_INFER_BATCH / t_inf
    print(f"infer: {RN_INFER_BATCHES} batches x {RN_INFER_BATCH} in {t_inf:.3f} s")
    print(f"RESULT resnet18 train_steps_s={train_steps_s:.3f} infer_img_s={infer_img_s:.2f} "
          f"peak_rss_mb={peak_rss_mb():.1f}")


# --------------------------------------------------------------------------- gemm

def gemm_gflops(m, k, n, warmup=3, runs=10):
    rng = np.random.default_rng(SEED)
    a = tf.constant(rng.random((m, k), dtype=np.float32))
    b = tf.constant(rng.random((k, n), dtype=np.float32))
    # Eager: measured ~7-15% faster than the same matmul wrapped in tf.function
    # on this CPU (TF 2.21, oneDNN), so the baseline uses the faster path.
    mm = tf.linalg.matmul
    for _ in range(warmup):
        mm(a, b)
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        mm(a, b)  # eager CPU execution is synchronous: the result is computed on return
        best = min(best, time.perf_counter() - t0)
    gf = 2.0 * m * k * n / best / 1e9
    print(f"gemm {m}x{k}x{n}: best {best * 1e3:.3f} ms, {gf:.1f} GFLOP/s")
    return gf


def bench_gemm():
    g1 = gemm_gflops(1024, 1024, 1024)
    g2 = gemm_gflops(256, 2304, 576)
    print(f"RESULT gemm gflops_1024={g1:.2f} gflops_256x2304x576={g2:.2f}")


# --------------------------------------------------------------------------- zoo (224 px)

ZOO_SIDE = 224
ZOO_CLASSES = 1000
ZOO_TRAIN_BATCH = 16
ZOO_TRAIN_WARMUP = 2
ZOO_TRAIN_STEPS = 6
ZOO_INFER_BATCH = 32


def zoo_infer_rate(infer, x, reps):
    infer(x)
    rates = []
    for _ in range(reps):
        t0 = time.perf_counter()
        infer(x).numpy()
        rates.append(x.shape[0] / (time.perf_counter() - t0))
    return statistics.median(rates)


def bench_zoo(arch):
    """Keras applications' `arch` (random init, channels-last), same protocol as
    crates/ferrovision-bench/src/zoo.rs; tf.function steps as the other workloads."""
    builder = {"resnet50": keras.applications.ResNet50,
               "mobilenet_v2": keras.applications.MobileNetV2}[arch]
    model = builder(weights=None, input_shape=(ZOO_SIDE, ZOO_SIDE, 3), classes=ZOO_CLASSES,
                    classifier_activation=None)
    rng = np.random.default_rng(SEED)
    infer = make_infer(model)
    b1 = zoo_infer_rate(infer, tf.constant(rng.random((1, ZOO_SIDE, ZOO_SIDE, 3), dtype=np.float32)), 10)
    b32 = zoo_infer_rate(
        infer, tf.constant(rng.random((ZOO_INFER_BATCH, ZOO_SIDE, ZOO_SIDE, 3), dtype=np.float32)), 3)
    opt = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
    step = make_train_step(model, opt)
    x = tf.constant(rng.random((ZOO_TRAIN_BATCH, ZOO_SIDE, ZOO_SIDE, 3), dtype=np.float32))
    y = tf.constant(rng.integers(0, ZOO_CLASSES, ZOO_TRAIN_BATCH), dtype=tf.int32)
    for _ in range(ZOO_TRAIN_WARMUP):
        step(x, y).numpy()
    rates = []
    for _ in range(ZOO_TRAIN_STEPS):
        t0 = time.perf_counter()
        step(x, y).numpy()
        rates.append(1.0 / (time.perf_counter() - t0))
    print(f"RESULT {arch} infer_b1_img_s={b1:.2f} infer_b32_img_s={b32:.2f} "
          f"train_b16_steps_s={statistics.median(rates):.3f} peak_rss_mb={peak_rss_mb():.1f}")


# --------------------------------------------------------------------------- resnet20 (CIFAR)

CIFAR_STEPS = 391  # one 50 000-image epoch at batch 128


def cifar_resnet20():
    """He et al.'s CIFAR ResNet-20 in Keras (NHWC): 3x3 conv 16 + BN + ReLU, 3 stages of 3
    basic blocks (16, 32, 64; 1x1 conv + BN projection when the shape changes), global average
    pool, dense 10 - the zoo's `resnet20`."""
    def conv_bn(x, filters, k, stride):
        x = layers.Conv2D(filters, k, strides=stride, padding="same", use_bias=False)(x)
        return layers.BatchNormalization(epsilon=1e-5, momentum=0.9)(x)

    inp = keras.Input((32, 32, 3))
    x = layers.ReLU()(conv_bn(inp, 16, 3, 1))
    cin = 16
    for i, w in enumerate([16, 32, 64]):
        for b in range(3):
            stride = 2 if i > 0 and b == 0 else 1
            y = layers.ReLU()(conv_bn(x, w, 3, stride))
            y = conv_bn(y, w, 3, 1)
            short = conv_bn(x, w, 1, stride) if stride != 1 or cin != w else x
            x = layers.ReLU()(layers.Add()([y, short]))
            cin = w
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Dense(10)(x))


def bench_resnet20():
    model = cifar_resnet20()
    rng = np.random.default_rng(SEED)
    infer = zoo_infer_rate(make_infer(model), tf.constant(rng.random((128, 32, 32, 3), dtype=np.float32)), 5)
    step = make_train_step(model, keras.optimizers.SGD(learning_rate=0.1, momentum=0.9))
    x = tf.constant(rng.random((128, 32, 32, 3), dtype=np.float32))
    y = tf.constant(rng.integers(0, 10, 128), dtype=tf.int32)
    for _ in range(3):
        step(x, y).numpy()
    rates = []
    for _ in range(20):
        t0 = time.perf_counter()
        step(x, y).numpy()
        rates.append(1.0 / (time.perf_counter() - t0))
    r = statistics.median(rates)
    print(f"RESULT resnet20 train_b128_steps_s={r:.3f} epoch_s={CIFAR_STEPS / r:.1f} "
          f"infer_b128_img_s={infer:.1f} peak_rss_mb={peak_rss_mb():.1f}")


def main():
    print(f"tensorflow {tf.__version__}, keras {keras.__version__}, numpy {np.__version__}, "
          f"python {sys.version.split()[0]}, threads intra {tf.config.threading.get_intra_op_parallelism_threads()} "
          f"inter {tf.config.threading.get_inter_op_parallelism_threads()}")
    {"lenet5": bench_lenet5, "resnet18": bench_resnet18, "gemm": bench_gemm,
     "resnet20": bench_resnet20, "resnet50": lambda: bench_zoo("resnet50"),
     "mobilenet_v2": lambda: bench_zoo("mobilenet_v2")}[ARGS.workload]()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
