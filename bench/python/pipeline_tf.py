"""tf.data version of `ferrovision-bench pipeline`: read + decode the JPEGs, random resized crop
to 224 (area 0.08-1, ratio 3/4-4/3, bilinear with antialiasing), random horizontal flip, colour
jitter (brightness/contrast/saturation 0.4 as factors, hue 0.1, like torchvision), float32 [0,1],
batch 32, for --count images; parallel map (--workers calls) + prefetch. Prints
`RESULT pipeline_tf img_s=<float>`."""

import argparse
import glob
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--images", required=True)
p.add_argument("--count", type=int, default=1000)
p.add_argument("--batch", type=int, default=32)
p.add_argument("--workers", type=int, default=2)
a = p.parse_args()

tf.config.threading.set_inter_op_parallelism_threads(a.workers)
tf.config.threading.set_intra_op_parallelism_threads(a.workers)
files = sorted(glob.glob(os.path.join(a.images, "*.jpg")))


def jitter(img):
    # Factors drawn like torchvision's ColorJitter (fixed order here).
    b = tf.random.uniform([], 0.6, 1.4)
    c = tf.random.uniform([], 0.6, 1.4)
    s = tf.random.uniform([], 0.6, 1.4)
    h = tf.random.uniform([], -0.1, 0.1)
    img = tf.clip_by_value(img * b, 0.0, 1.0)
    img = tf.clip_by_value(tf.image.adjust_contrast(img, c), 0.0, 1.0)
    img = tf.clip_by_value(tf.image.adjust_saturation(img, s), 0.0, 1.0)
    img = tf.image.adjust_hue(img, h)
    return img


def load(path):
    img = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
    begin, size, _ = tf.image.sample_distorted_bounding_box(
        tf.shape(img),
        bounding_boxes=tf.zeros([1, 0, 4]),
        area_range=(0.08, 1.0),
        aspect_ratio_range=(0.75, 4.0 / 3.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    img = tf.slice(img, begin, size)
    img = tf.image.resize(img, [224, 224], method="bilinear", antialias=True) / 255.0
    img = tf.image.random_flip_left_right(img)
    return jitter(img)


ds = (
    tf.data.Dataset.from_tensor_slices(files)
    .repeat()
    .take(a.count)
    .map(load, num_parallel_calls=a.workers)
    .batch(a.batch)
    .prefetch(2)
)
t = time.perf_counter()
n = 0
for b in ds:
    n += int(b.shape[0])
dt = time.perf_counter() - t
assert n == a.count, n
print(f"RESULT pipeline_tf img_s={n / dt:.1f}")
