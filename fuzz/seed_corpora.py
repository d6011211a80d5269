#!/usr/bin/env python3
"""Fills fuzz/corpus/<target>/ with seed inputs taken from the repository's own fixtures (real
files of each format), so fuzzing starts from valid inputs. Standard library only.

Usage (from the repository root or fuzz/):  python3 fuzz/seed_corpora.py [MODEL.safetensors]
MODEL is a model saved by `ferrovision train` (a seed for the safetensors_model target); without
it, only the weights-only fixtures seed that target.
"""
import glob
import gzip
import json
import os
import shutil
import sys

FUZZ = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(FUZZ)
FIX = os.path.join(ROOT, "reference", "fixtures")


def put(target, name, data):
    d = os.path.join(FUZZ, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def files(pattern):
    return sorted(glob.glob(os.path.join(ROOT, pattern), recursive=True))


# IDX: the embedded digits (gzip), a raw copy and a two-member gzip of the labels.
for p in files("crates/ferrovision-cli/data/*labels*.gz"):
    raw = gzip.decompress(read(p))
    put("idx", os.path.basename(p), read(p))
    put("idx", os.path.basename(p) + ".raw", raw)
    put("idx", os.path.basename(p) + ".multi", gzip.compress(raw[:8]) + gzip.compress(raw[8:]))

# Saved models: the given ones, a few weights-only fixtures, and a tiny model derived from a
# given LeNet-5 (conv 2x3x3, flatten, dense 3 on 1x4x4 inputs: fast to build, so the fuzzer
# gets thousands of executions a second instead of tens).
def safetensors_bytes(meta, tensors):
    header, data = {"__metadata__": meta}, b""
    for name, shape in tensors:
        n = 4
        for d in shape:
            n *= d
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + n]}
        data += b"\0" * n
    text = json.dumps(header, separators=(",", ":"))
    text += " " * (-(8 + len(text)) % 8)
    return len(text).to_bytes(8, "little") + text.encode() + data


for p in sys.argv[1:] + files("reference/fixtures/import/*.safetensors")[:3]:
    put("safetensors_model", os.path.basename(p), read(p))
for p in sys.argv[1:]:
    raw = read(p)
    n = int.from_bytes(raw[:8], "little")
    meta = json.loads(raw[8:8 + n]).get("__metadata__", {})
    arch = json.loads(meta.get("architecture", "{}"))
    layers = arch.get("config", {}).get("layers", [])
    conv = next((l for l in layers if l["class_name"] == "Conv2D"), None)
    flat = next((l for l in layers if l["class_name"] == "Flatten"), None)
    dense = next((l for l in layers if l["class_name"] == "Dense"), None)
    if not (conv and flat and dense):
        continue
    conv["config"].update(filters=2, kernel_size=[3, 3], padding="same")
    dense["config"].update(units=3)
    arch["config"]["input_shape"] = [None, 1, 4, 4]
    arch["config"]["layers"] = [conv, flat, dense]
    shapes = {conv["config"]["name"]: ([2, 1, 3, 3], [2]), dense["config"]["name"]: ([32, 3], [3])}
    tensors = []
    for layer, (k, b) in shapes.items():
        tensors += [(f"weights/{layer}/kernel", k), (f"weights/{layer}/bias", b)]
        for slot in ("momentum", "velocity"):
            tensors += [(f"optimizer/{layer}/kernel/{slot}", k), (f"optimizer/{layer}/bias/{slot}", b)]
    meta = {k: v for k, v in meta.items() if k != "user"}
    meta["architecture"] = json.dumps(arch)
    put("safetensors_model", "tiny-" + os.path.basename(p), safetensors_bytes(meta, tensors))

# TFRecord: the first byte picks the compression (0 none, 1 gzip, 2 zlib).
for p in files("reference/fixtures/tfrecord/*.tfrecord*"):
    kind = b"\x01" if p.endswith(".gz") else b"\x02" if p.endswith(".zlib") else b"\x00"
    put("tfrecord", os.path.basename(p), kind + read(p))

for p in files("reference/fixtures/vision/voc/annotations/*.xml"):
    put("voc_xml", os.path.basename(p), read(p))

for p in files("reference/fixtures/vision/coco*/*.json"):
    if os.path.getsize(p) < 64 * 1024:
        put("coco_json", os.path.basename(p), read(p))

put("yolo_txt", "two", b"\x40" + b"0 0.5 0.5 0.2 0.3\n1 0.1 0.9 0.05 0.05\n")
put("yolo_txt", "comment", b"\x20" + b"# boxes\n2 0.25 0.75 0.5 0.5\n")

# Images: the repository holds PNGs only, so JPEG and GIF seeds come from the CIFAR-10 copy
# (../shared/data/cifar10, 32x32 JPEGs) when it is there, and a BMP is written here.
for p in files("docs/results/*.png")[:2]:
    put("image_decode", os.path.basename(p), read(p))
cifars = [os.path.join(ROOT, *up, "shared", "data", "cifar10", "cifar10-test.tar")
          for up in ([".."], ["..", ".."])]
cifar = next((c for c in cifars if os.path.isfile(c)), None)
if cifar:
    import tarfile
    with tarfile.open(cifar) as tar:
        jpgs = [m for m in tar if m.name.endswith(".jpg")][:4]
        for m in jpgs:
            put("image_decode", os.path.basename(m.name), tar.extractfile(m).read())
w, h = 4, 3
row = bytes([0, 0, 255] * w)  # 12 bytes: already a multiple of 4
pixels = row * h
bmp = (b"BM" + (54 + len(pixels)).to_bytes(4, "little") + b"\0\0\0\0" + (54).to_bytes(4, "little")
       + (40).to_bytes(4, "little") + w.to_bytes(4, "little") + h.to_bytes(4, "little")
       + (1).to_bytes(2, "little") + (24).to_bytes(2, "little") + b"\0" * 24 + pixels)
put("image_decode", "tiny.bmp", bmp)

for p in files("configs/*.json"):
    put("augment_config", os.path.basename(p), read(p))

for p in files("reference/fixtures/import/*.pt"):
    put("torch_pth", os.path.basename(p), read(p))

for p in files("reference/fixtures/import/*.h5"):
    put("keras_h5", os.path.basename(p), read(p))

for p in files("reference/fixtures/import/onnx_small/*.onnx"):
    put("onnx", os.path.basename(p), read(p))

# TF.js: one manifest pointing at one shard (the shards of the fixture concatenated), framed as
# the tfjs target splits its input: 2-byte little-endian manifest length, manifest, shard.
small = os.path.join(FIX, "import", "tfjs_small")
model = json.loads(read(os.path.join(small, "model.json")))
shard = b""
for group in model["weightsManifest"]:
    for path in group["paths"]:
        shard += read(os.path.join(small, path))
merged = [w for g in model["weightsManifest"] for w in g["weights"]]
model["weightsManifest"] = [{"paths": ["group1-shard1of1.bin"], "weights": merged}]
manifest = json.dumps(model).encode()
if len(manifest) < 65536:
    put("tfjs", "small", len(manifest).to_bytes(2, "little") + manifest + shard)

for t in sorted(os.listdir(os.path.join(FUZZ, "corpus"))):
    print(t, len(os.listdir(os.path.join(FUZZ, "corpus", t))))
