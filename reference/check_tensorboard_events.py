#!/usr/bin/env python3
"""Reads TensorBoard event files with the real `tensorboard` package and prints what it sees.

Usage: check_tensorboard_events.py <log dir> [--out file.json]

For every folder under <log dir> that holds `*tfevents*` files (a TensorBoard "run", e.g.
`train`, `validation`), this loads the run with TensorBoard's own reader
(`tensorboard.backend.event_processing.event_accumulator.EventAccumulator`) and reports, as
JSON: the file version, the scalars (step, value), the histograms (step, min, max, num, sum,
sum_squares, bucket limits and counts), and the images (step, width, height, and the PNG
decoded with Pillow: mode, size and the pixel bytes in hex). It also walks each file's
TFRecord framing itself and checks both masked CRC32C of every record with TensorBoard's
`masked_crc32c`, so a framing bug is reported even where a reader would be lenient.

ferrovision's test `crates/ferrovision-nn/tests/callbacks_tensorboard.rs` compares this output
(committed as reference/fixtures/nn_callbacks_tb.json) with the values it wrote.
Pinned versions: reference/requirements.txt (tensorboard, pillow).
"""

import argparse
import io
import json
import os
import struct
import sys

from PIL import Image
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c


def check_framing(path):
    """Walks the TFRecord records of one file; returns (records, first event's file_version)."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    n = 0
    file_version = None
    while pos < len(data):
        if pos + 12 > len(data):
            raise SystemExit(f"{path}: truncated record header at byte {pos}")
        header = data[pos : pos + 8]
        (length,) = struct.unpack("<Q", header)
        (len_crc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
        if len_crc != masked_crc32c(header):
            raise SystemExit(f"{path}: record {n}: bad length CRC")
        body = data[pos + 12 : pos + 12 + length]
        if len(body) != length or pos + 16 + length > len(data):
            raise SystemExit(f"{path}: record {n}: truncated data")
        (data_crc,) = struct.unpack("<I", data[pos + 12 + length : pos + 16 + length])
        if data_crc != masked_crc32c(body):
            raise SystemExit(f"{path}: record {n}: bad data CRC")
        if n == 0:
            ev = event_pb2.Event()
            ev.ParseFromString(body)
            file_version = ev.file_version
        pos += 16 + length
        n += 1
    return n, file_version


def load_run(run_dir):
    acc = event_accumulator.EventAccumulator(
        run_dir,
        size_guidance={
            event_accumulator.SCALARS: 0,
            event_accumulator.HISTOGRAMS: 0,
            event_accumulator.IMAGES: 0,
        },
    )
    acc.Reload()
    tags = acc.Tags()
    out = {"scalars": {}, "histograms": {}, "images": {}}
    for tag in sorted(tags["scalars"]):
        out["scalars"][tag] = [[e.step, e.value] for e in acc.Scalars(tag)]
    for tag in sorted(tags["histograms"]):
        rows = []
        for e in acc.Histograms(tag):
            h = e.histogram_value
            rows.append(
                {
                    "step": e.step,
                    "min": h.min,
                    "max": h.max,
                    "num": h.num,
                    "sum": h.sum,
                    "sum_squares": h.sum_squares,
                    "bucket_limit": list(h.bucket_limit),
                    "bucket": list(h.bucket),
                }
            )
        out["histograms"][tag] = rows
    for tag in sorted(tags["images"]):
        rows = []
        for e in acc.Images(tag):
            img = Image.open(io.BytesIO(e.encoded_image_string))
            img.load()
            rows.append(
                {
                    "step": e.step,
                    "width": e.width,
                    "height": e.height,
                    "png_mode": img.mode,
                    "png_size": list(img.size),
                    "pixels_hex": img.tobytes().hex(),
                }
            )
        out["images"][tag] = rows
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("log_dir")
    ap.add_argument("--out", help="write the JSON here instead of stdout")
    args = ap.parse_args()
    runs = {}
    for root, _dirs, files in sorted(os.walk(args.log_dir)):
        events = sorted(f for f in files if "tfevents" in f)
        if not events:
            continue
        rel = os.path.relpath(root, args.log_dir)
        framing = []
        for f in events:
            n, version = check_framing(os.path.join(root, f))
            framing.append({"records": n, "file_version": version, "crc_ok": True})
        run = load_run(root)
        run["files"] = framing
        runs[rel.replace(os.sep, "/")] = run
    if not runs:
        raise SystemExit(f"{args.log_dir}: no tfevents files found")
    text = json.dumps({"runs": runs}, indent=1, sort_keys=True) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
