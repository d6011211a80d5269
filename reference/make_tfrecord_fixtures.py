"""TFRecord interoperability fixtures for ferrovision-data, made with TensorFlow.

Run from the repository root with the pinned venv (reference/requirements.txt):

    reference/.venv/bin/python reference/make_tfrecord_fixtures.py

1. Writes reference/fixtures/tfrecord/from_tf.tfrecord: tf.train.Examples holding JPEG bytes
   (encoded by tf.io.encode_jpeg), an int64 label, a float list and an int64 list, plus
   from_tf.json with the values that went in (floats as IEEE-754 bit patterns, so the Rust test
   compares exactly) and the pixels TensorFlow decodes from each JPEG.
2. Reads reference/fixtures/tfrecord/from_rust.tfrecord (written by the Rust test
   `tfrecord_interop::write_rust_fixture` with FERROVISION_WRITE_FIXTURES=1) with
   tf.data.TFRecordDataset + tf.io.parse_single_example and writes what TensorFlow parsed to
   from_rust_parsed_by_tf.json.
"""

import json
import os
import struct

import numpy as np
import tensorflow as tf

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "tfrecord")


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", float(x)))[0]


def make_image(i, h, w):
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack(
        [(x * 255 // max(w - 1, 1) + 40 * i) % 256, (y * 255 // max(h - 1, 1)), ((x + y) * 9 + 17 * i) % 256],
        axis=-1,
    ).astype(np.uint8)
    return img


def write_from_tf():
    records = []
    path = os.path.join(OUT, "from_tf.tfrecord")
    with tf.io.TFRecordWriter(path) as w:
        for i, (h, w_) in enumerate([(12, 16), (8, 8), (17, 23)]):
            img = make_image(i, h, w_)
            jpeg = tf.io.encode_jpeg(tf.constant(img), quality=90).numpy()
            floats = [0.5 * i, -1.25, 3.4028234663852886e38, 1e-30, float(i) / 3.0]
            ints = [i, -i - 1, 2**40 + i, -(2**62)]
            ex = tf.train.Example(
                features=tf.train.Features(
                    feature={
                        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg])),
                        "image/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[i * 7 + 1])),
                        "values": tf.train.Feature(float_list=tf.train.FloatList(value=floats)),
                        "ids": tf.train.Feature(int64_list=tf.train.Int64List(value=ints)),
                        "name": tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"sample-{i}".encode(), b""])),
                    }
                )
            )
            w.write(ex.SerializeToString())
            decoded = tf.io.decode_jpeg(jpeg, channels=3).numpy()
            records.append(
                {
                    "jpeg_hex": jpeg.hex(),
                    "label": i * 7 + 1,
                    "values_f32_bits": [f32_bits(v) for v in floats],
                    "ids": ints,
                    "name": [f"sample-{i}", ""],
                    "height": int(decoded.shape[0]),
                    "width": int(decoded.shape[1]),
                    "tf_decoded_rgb": decoded.reshape(-1).tolist(),
                }
            )
    with open(os.path.join(OUT, "from_tf.json"), "w") as f:
        json.dump({"tensorflow_version": tf.__version__, "records": records}, f)
    print("wrote", path, len(records), "records")


def read_from_rust():
    path = os.path.join(OUT, "from_rust.tfrecord")
    if not os.path.exists(path):
        print("no", path, "- run the Rust test with FERROVISION_WRITE_FIXTURES=1 first")
        return
    spec = {
        "label": tf.io.FixedLenFeature([], tf.int64),
        "scores": tf.io.VarLenFeature(tf.float32),
        "ids": tf.io.VarLenFeature(tf.int64),
        "blob": tf.io.VarLenFeature(tf.string),
    }
    out = []
    for raw in tf.data.TFRecordDataset([path]):  # checks both CRCs
        p = tf.io.parse_single_example(raw, spec)
        out.append(
            {
                "label": int(p["label"].numpy()),
                "scores_f32_bits": [f32_bits(v) for v in tf.sparse.to_dense(p["scores"]).numpy()],
                "ids": [int(v) for v in tf.sparse.to_dense(p["ids"]).numpy()],
                "blob_hex": [v.hex() for v in tf.sparse.to_dense(p["blob"], default_value=b"").numpy()],
            }
        )
    with open(os.path.join(OUT, "from_rust_parsed_by_tf.json"), "w") as f:
        json.dump({"tensorflow_version": tf.__version__, "records": out}, f, indent=1)
    print("TensorFlow parsed", len(out), "records from", path)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    write_from_tf()
    read_from_rust()
