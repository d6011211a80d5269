"""tf.data version of `ferrovision-bench pipeline`: read + decode the JPEGs (libjpeg-turbo, whole
image; with --decode-and-crop only the crop window), random resized crop to 224 (area 0.08-1,
ratio 3/4-4/3, 10 attempts, bilinear with antialiasing), float32 [0,1], random horizontal flip,
colour jitter in float (brightness/contrast/saturation factors from [0.6, 1.4], hue shift from
[-0.1, 0.1], like torchvision; fixed order), batch 32 (NHWC float32), for --count images;
parallel map (--workers calls) + prefetch(2). Prints `RESULT pipeline_tf img_s=<float>`."""

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
p.add_argument("--decode-and-crop", action="store_true",
               help="tf.image.decode_and_crop_jpeg (decodes only the crop window's rows/blocks)")
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


def crop_window(shape):
    return tf.image.sample_distorted_bounding_box(
        shape,
        bounding_boxes=tf.zeros([1, 0, 4]),
        area_range=(0.08, 1.0),
        aspect_ratio_range=(0.75, 4.0 / 3.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )


def load(path):
    data = tf.io.read_file(path)
    if a.decode_and_crop:
        # What TF's own ImageNet input pipelines do: only the crop window is decoded.
        begin, size, _ = crop_window(tf.image.extract_jpeg_shape(data))
        window = tf.stack([begin[0], begin[1], size[0], size[1]])
        img = tf.image.decode_and_crop_jpeg(data, window, channels=3)
    else:
        img = tf.io.decode_jpeg(data, channels=3)
        begin, size, _ = crop_window(tf.shape(img))
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
dt = None
for b in ds:
    n += int(b.shape[0])
    if n >= a.count:
        # Stop the clock at the last image: tf.data sometimes takes ~2 s more to report the
        # end of the sequence (seen on the 2-core machine), which is not pipeline throughput.
        dt = time.perf_counter() - t
assert n == a.count and dt is not None, n
print(f"RESULT pipeline_tf img_s={n / dt:.1f}")
