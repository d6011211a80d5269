#!/usr/bin/env python3
"""PyTorch reference for `ferrovision train --model resnet20` on the JPEG copy of CIFAR-10.

Trains the CIFAR ResNet-20 of He et al. (2016, section 4.2) with ferrovision's recipe and logs
per-epoch test accuracy, so the accuracy reached on this data set is known independently of
ferrovision's engine, decoder and pipeline. Everything is PyTorch's / PIL's own:

- images decoded by PIL (libjpeg) from the dataset's tars, scaled to [0, 1], normalised with
  the CIFAR mean/std of `configs/augment_cifar10.json`;
- training augmentation as torchvision's `RandomCrop(32, padding=4)` (zero fill) +
  `RandomHorizontalFlip()`, drawn per image and epoch;
- the net: 3x3 conv stem (16), 3 stages of 3 basic blocks (16, 32, 64 channels), projection
  (1x1 conv + BN) shortcuts where the shape changes, global average pool, linear; no conv bias;
  Kaiming-normal conv init (as ferrovision's HeNormal: fan-in), BN defaults;
- SGD (momentum 0.9, coupled weight decay on all weights), batch 128, cosine decay of the
  learning rate per optimizer step over the whole run (ferrovision's `--schedule cosine`).

Usage (pinned versions in requirements.txt; CPU; --threads sets torch's intra-op threads):
    python reference/cifar10_resnet20_torch.py --data ../shared/data/cifar10 --epochs 10 \
        --out docs/results/cifar10_resnet20_torch_10ep.csv
"""

import argparse
import io
import math
import tarfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
MEAN = [0.4914, 0.4822, 0.4465]
STD = [0.2470, 0.2435, 0.2616]


def load_tar(path):
    """(N, 3, 32, 32) uint8 images and (N,) labels from `<split>/<class>/<n>.jpg` members."""
    xs, ys = [], []
    with tarfile.open(path) as tar:
        for m in tar:
            if not m.isfile() or not m.name.endswith(".jpg"):
                continue
            cls = m.name.split("/")[-2]
            img = Image.open(io.BytesIO(tar.extractfile(m).read())).convert("RGB")
            xs.append(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))
            ys.append(CLASSES.index(cls))
    return torch.from_numpy(np.stack(xs)), torch.tensor(ys, dtype=torch.long)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        s = x if self.downsample is None else self.downsample(x)
        return F.relu(y + s)


class ResNetCifar(nn.Module):
    def __init__(self, n=3, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for i, c in enumerate([16, 32, 64]):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(cin, c, 2 if (i > 0 and j == 0) else 1))
                cin = c
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(64, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def normalise(x_u8):
    x = x_u8.float() / 255.0
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def augment(x_u8, gen):
    """RandomCrop(32, padding=4) with zero fill + horizontal flip (p 0.5), per image."""
    n = x_u8.shape[0]
    padded = F.pad(x_u8, (4, 4, 4, 4))
    offs = torch.randint(0, 9, (n, 2), generator=gen)
    flips = torch.rand(n, generator=gen) < 0.5
    out = torch.empty_like(x_u8)
    for i in range(n):
        t, l = int(offs[i, 0]), int(offs[i, 1])
        crop = padded[i, :, t : t + 32, l : l + 32]
        out[i] = crop.flip(-1) if flips[i] else crop
    return out


def evaluate(model, x, y, batch=500):
    model.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            logits = model(normalise(x[i : i + batch]))
            loss += F.cross_entropy(logits, y[i : i + batch], reduction="sum").item()
            correct += (logits.argmax(1) == y[i : i + batch]).sum().item()
    return correct / len(y), loss / len(y)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="folder with cifar10-train.tar, cifar10-test.tar")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True, help="CSV log: epoch,lr,loss,accuracy,val_loss,val_accuracy,seconds")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    xtr, ytr = load_tar(f"{args.data}/cifar10-train.tar")
    xte, yte = load_tar(f"{args.data}/cifar10-test.tar")
    print(f"train {tuple(xtr.shape)}, test {tuple(xte.shape)}", flush=True)

    model = ResNetCifar()
    opt = torch.optim.SGD(
        model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay
    )
    steps_per_epoch = math.ceil(len(ytr) / args.batch_size)
    total = steps_per_epoch * args.epochs
    step = 0
    with open(args.out, "w") as log:
        log.write("epoch,lr,loss,accuracy,val_loss,val_accuracy,seconds\n")
        for epoch in range(args.epochs):
            model.train()
            t0 = time.time()
            perm = torch.randperm(len(ytr), generator=gen)
            seen, correct, loss_sum = 0, 0, 0.0
            for b in range(steps_per_epoch):
                idx = perm[b * args.batch_size : (b + 1) * args.batch_size]
                lr = 0.5 * args.lr * (1 + math.cos(math.pi * step / total))
                for g in opt.param_groups:
                    g["lr"] = lr
                x = normalise(augment(xtr[idx], gen))
                logits = model(x)
                loss = F.cross_entropy(logits, ytr[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                seen += len(idx)
                loss_sum += loss.item() * len(idx)
                correct += (logits.argmax(1) == ytr[idx]).sum().item()
            secs = time.time() - t0
            va, vl = evaluate(model, xte, yte)
            row = f"{epoch},{lr:.6g},{loss_sum / seen:.5f},{correct / seen:.5f},{vl:.5f},{va:.4f},{secs:.1f}"
            print(row, flush=True)
            log.write(row + "\n")
            log.flush()


if __name__ == "__main__":
    main()
