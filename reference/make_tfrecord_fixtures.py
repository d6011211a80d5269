"""TFRecord interoperability fixtures for ferrovision-data, made with TensorFlow.

Run from the repository root with the pinned venv (reference/requirements.txt):

    reference/.venv/bin/python reference/make_tfrecord_fixtures.py

1. Writes reference/fixtures/tfrecord/from_tf.tfrecord: tf.train.Examples holding JPEG bytes
   (encoded by tf.io.encode_jpeg), an int64 label, a float list and an int64 list, plus
   from_tf.json with the values that went in (floats as IEEE-754 bit patterns, so the Rust test
   compares exactly) and the pixels TensorFlow decodes from each JPEG. The same serialized
   Examples are also written compressed, as TensorFlow's TFRecordWriter does with
   TFRecordOptions(compression_type="GZIP" / "ZLIB"): from_tf.tfrecord.gz and
   from_tf.tfrecord.zlib (from_tf_compressed.json says which is which and how many records
   TensorFlow reads back from each).
2. Reads reference/fixtures/tfrecord/from_rust.tfrecord, from_rust.tfrecord.gz and
   from_rust.tfrecord.zlib (written by the Rust tests `tfrecord_interop::tensorflow_reads_what_we_write`
   and `tensorflow_reads_what_we_compress` with FERROVISION_WRITE_FIXTURES=1) with
   tf.data.TFRecordDataset(compression_type=...) + tf.io.parse_single_example and writes what
   TensorFlow parsed to from_rust_parsed_by_tf.json, from_rust_gzip_parsed_by_tf.json and
   from_rust_zlib_parsed_by_tf.json.
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


COMPRESSED = [("GZIP", ".gz", "gzip"), ("ZLIB", ".zlib", "zlib")]


def write_from_tf():
    records = []
    serialized = []
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
            # deterministic=True sorts the feature map, so reruns write the same bytes.
            raw = ex.SerializeToString(deterministic=True)
            w.write(raw)
            serialized.append(raw)
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

    # The same Examples, compressed by TensorFlow's writer (default compression level).
    files = []
    for ctype, ext, _ in COMPRESSED:
        cpath = path + ext
        with tf.io.TFRecordWriter(cpath, options=tf.io.TFRecordOptions(compression_type=ctype)) as w:
            for s in serialized:
                w.write(s)
        back = [r.numpy() for r in tf.data.TFRecordDataset([cpath], compression_type=ctype)]
        assert back == serialized, ctype
        with open(cpath, "rb") as f:
            head = f.read(2)
        files.append(
            {
                "file": os.path.basename(cpath),
                "compression_type": ctype,
                "size": os.path.getsize(cpath),
                "first_bytes_hex": head.hex(),
                "records_read_by_tf": len(back),
            }
        )
        print("wrote", cpath, len(serialized), "records,", ctype)
    with open(os.path.join(OUT, "from_tf_compressed.json"), "w") as f:
        json.dump({"tensorflow_version": tf.__version__, "files": files}, f, indent=1)


def read_from_rust(name="from_rust.tfrecord", compression_type="", out_name="from_rust_parsed_by_tf.json"):
    path = os.path.join(OUT, name)
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
    # Checks both CRCs of every record (and, compressed, the stream's own checksum).
    for raw in tf.data.TFRecordDataset([path], compression_type=compression_type):
        p = tf.io.parse_single_example(raw, spec)
        out.append(
            {
                "label": int(p["label"].numpy()),
                "scores_f32_bits": [f32_bits(v) for v in tf.sparse.to_dense(p["scores"]).numpy()],
                "ids": [int(v) for v in tf.sparse.to_dense(p["ids"]).numpy()],
                "blob_hex": [v.hex() for v in tf.sparse.to_dense(p["blob"], default_value=b"").numpy()],
            }
        )
    doc = {"tensorflow_version": tf.__version__, "records": out}
    if compression_type:
        doc = {"tensorflow_version": tf.__version__, "file": name, "compression_type": compression_type, "records": out}
    with open(os.path.join(OUT, out_name), "w") as f:
        json.dump(doc, f, indent=1)
    print("TensorFlow parsed", len(out), "records from", path)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    write_from_tf()
    read_from_rust()
    for ctype, ext, tag in COMPRESSED:
        read_from_rust("from_rust.tfrecord" + ext, ctype, f"from_rust_{tag}_parsed_by_tf.json")
