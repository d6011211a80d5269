#!/usr/bin/env python3
"""PyTorch (2.x eager, CPU, NCHW) reference benchmarks for ferrovision.

Usage: torch_bench.py {lenet5,resnet18,resnet20,resnet50,mobilenet_v2,gemm} [--threads N]

The last line printed is machine-readable, in the same format as the Rust
benchmark (crates/ferrovision-bench):
  RESULT lenet5 train_img_s=<f> infer_img_s=<f> peak_rss_mb=<f>
  RESULT resnet18 train_steps_s=<f> infer_img_s=<f> peak_rss_mb=<f>
  RESULT gemm gflops_1024=<f> gflops_256x2304x576=<f>
  RESULT resnet50|mobilenet_v2 infer_b1_img_s=<f> infer_b32_img_s=<f> train_b16_steps_s=<f> peak_rss_mb=<f>
Run it with reference/.venv (see reference/setup_venv.sh).
"""
import argparse
import os
import sys


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workload", choices=["lenet5", "resnet18", "resnet20", "resnet50", "mobilenet_v2", "gemm"])
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    return p.parse_args()


ARGS = parse_args()
# Thread env must be set before torch (and its OpenMP/MKL runtimes) is loaded.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = str(ARGS.threads)

import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(ARGS.threads)
torch.set_num_interop_threads(ARGS.threads)
torch.manual_seed(0)

SEED = 0


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --------------------------------------------------------------------------- lenet5

LENET_N = 6016  # 94 batches of 64
LENET_BATCH = 64
LENET_INFER_BATCH = 256


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def bench_lenet5():
    rng = np.random.default_rng(SEED)
    images = torch.from_numpy(rng.random((LENET_N, 1, 28, 28), dtype=np.float32))
    labels = torch.from_numpy(rng.integers(0, 10, size=LENET_N).astype(np.int64))
    batches = [
        (images[i:i + LENET_BATCH], labels[i:i + LENET_BATCH])
        for i in range(0, LENET_N, LENET_BATCH)
    ]
    model = LeNet5()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def epoch():
        model.train()
        total = torch.zeros(())
        for x, y in batches:
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            total += loss.detach()
        return total.item() / len(batches)

    loss = epoch()  # warm-up epoch
    print(f"epoch 1 (warm-up) loss {loss:.4f}")
    timed_epochs = 2
    t0 = time.perf_counter()
    for e in range(timed_epochs):
        loss = epoch()
    t_train = time.perf_counter() - t0
    print(f"epoch {1 + timed_epochs} loss {loss:.4f}")
    train_img_s = timed_epochs * LENET_N / t_train
    print(f"train: {timed_epochs} epochs x {LENET_N} images in {t_train:.3f} s")

    model.eval()
    infer_batches = [images[i:i + LENET_INFER_BATCH] for i in range(0, LENET_N, LENET_INFER_BATCH)]

    def infer_pass():
        correct = 0
        for i, x in enumerate(infer_batches):
            pred = model(x).argmax(1)
            correct += (pred == labels[i * LENET_INFER_BATCH:(i + 1) * LENET_INFER_BATCH]).sum().item()
        return correct

    passes = 3
    with torch.no_grad():
        infer_pass()  # warm-up
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


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.down is None else self.down(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + idt)


class ResNet18(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        layers = []
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(x, 3, stride=2, padding=1)
        x = self.layers(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


def bench_resnet18():
    rng = np.random.default_rng(SEED)
    n_train = RN_WARMUP + RN_STEPS
    xs = torch.from_numpy(rng.random((n_train, RN_BATCH, 3, RN_HW, RN_HW), dtype=np.float32))
    ys = torch.from_numpy(rng.integers(0, 10, size=(n_train, RN_BATCH)).astype(np.int64))
    model = ResNet18()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()

    times = []
    for i in range(n_train):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xs[i]), ys[i])
        loss.backward()
        opt.step()
        lv = loss.item()
        dt = time.perf_counter() - t0
        if i == 0:
            print(f"step 1 loss {lv:.4f}")
        if i >= RN_WARMUP:
            times.append(dt)
    print(f"step {n_train} loss {lv:.4f}")
    med = statistics.median(times)
    print(f"train: median step {med * 1e3:.1f} ms (min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}) "
          f"over {RN_STEPS} steps, batch {RN_BATCH}")
    train_steps_s = 1.0 / med

    model.eval()
    xi = torch.from_numpy(rng.random((RN_INFER_BATCHES, RN_INFER_BATCH, 3, RN_HW, RN_HW), dtype=np.float32))
    with torch.no_grad():
        for i in range(RN_INFER_WARMUP):
            model(xi[i])
        t0 = time.perf_counter()
        for i in range(RN_INFER_BATCHES):
            model(xi[i])
        t_inf = time.perf_counter() - t0
    infer_img_s = RN_INFER_BATCHES * RN_INFER_BATCH / t_inf
    print(f"infer: {RN_INFER_BATCHES} batches x {RN_INFER_BATCH} in {t_inf:.3f} s")
    print(f"RESULT resnet18 train_steps_s={train_steps_s:.3f} infer_img_s={infer_img_s:.2f} "
          f"peak_rss_mb={peak_rss_mb():.1f}")


# --------------------------------------------------------------------------- gemm

def gemm_gflops(m, k, n, warmup=3, runs=10):
    rng = np.random.default_rng(SEED)
    a = torch.from_numpy(rng.random((m, k), dtype=np.float32))
    b = torch.from_numpy(rng.random((k, n), dtype=np.float32))
    c = torch.empty((m, n), dtype=torch.float32)
    for _ in range(warmup):
        torch.mm(a, b, out=c)
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        torch.mm(a, b, out=c)
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


def zoo_infer_rate(model, x, reps):
    with torch.no_grad():
        model(x)
        rates = []
        for _ in range(reps):
            t0 = time.perf_counter()
            model(x)
            rates.append(x.shape[0] / (time.perf_counter() - t0))
    return statistics.median(rates)


def bench_zoo(arch):
    """torchvision's `arch` (random init), same protocol as crates/ferrovision-bench/src/zoo.rs."""
    import torchvision

    model = getattr(torchvision.models, arch)(weights=None, num_classes=ZOO_CLASSES)
    g = torch.Generator().manual_seed(SEED)
    model.eval()
    b1 = zoo_infer_rate(model, torch.rand(1, 3, ZOO_SIDE, ZOO_SIDE, generator=g), 10)
    b32 = zoo_infer_rate(model, torch.rand(ZOO_INFER_BATCH, 3, ZOO_SIDE, ZOO_SIDE, generator=g), 3)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(ZOO_TRAIN_BATCH, 3, ZOO_SIDE, ZOO_SIDE, generator=g)
    y = torch.randint(0, ZOO_CLASSES, (ZOO_TRAIN_BATCH,), generator=g)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(ZOO_TRAIN_WARMUP):
        step()
    rates = []
    for _ in range(ZOO_TRAIN_STEPS):
        t0 = time.perf_counter()
        step()
        rates.append(1.0 / (time.perf_counter() - t0))
    print(f"RESULT {arch} infer_b1_img_s={b1:.2f} infer_b32_img_s={b32:.2f} "
          f"train_b16_steps_s={statistics.median(rates):.3f} peak_rss_mb={peak_rss_mb():.1f}")


# --------------------------------------------------------------------------- resnet20 (CIFAR)

CIFAR_STEPS = 391  # one 50 000-image epoch at batch 128


def bench_resnet20():
    """He et al.'s CIFAR ResNet-20 (reference/zoo/resnet.py, the same net as the zoo's), batch
    128, SGD momentum; same protocol as crates/ferrovision-bench/src/zoo.rs."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                    "reference", "zoo"))
    from resnet import CifarResNet

    model = CifarResNet(3, 10)
    g = torch.Generator().manual_seed(SEED)
    model.eval()
    infer = zoo_infer_rate(model, torch.rand(128, 3, 32, 32, generator=g), 5)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.rand(128, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (128,), generator=g)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(3):
        step()
    rates = []
    for _ in range(20):
        t0 = time.perf_counter()
        step()
        rates.append(1.0 / (time.perf_counter() - t0))
    r = statistics.median(rates)
    print(f"RESULT resnet20 train_b128_steps_s={r:.3f} epoch_s={CIFAR_STEPS / r:.1f} "
          f"infer_b128_img_s={infer:.1f} peak_rss_mb={peak_rss_mb():.1f}")


def main():
    print(f"torch {torch.__version__}, numpy {np.__version__}, python {sys.version.split()[0]}, "
          f"threads {torch.get_num_threads()}, mkldnn {torch.backends.mkldnn.is_available()}, "
          f"cpu capability {torch.backends.cpu.get_cpu_capability()}")
    {"lenet5": bench_lenet5, "resnet18": bench_resnet18, "gemm": bench_gemm,
     "resnet20": bench_resnet20, "resnet50": lambda: bench_zoo("resnet50"),
     "mobilenet_v2": lambda: bench_zoo("mobilenet_v2")}[ARGS.workload]()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
