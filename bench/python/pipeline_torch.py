"""torchvision DataLoader version of `ferrovision-bench pipeline`: a map-style dataset that
reads and decodes each JPEG (torchvision.io.decode_jpeg, libjpeg-turbo), RandomResizedCrop(224,
antialias), RandomHorizontalFlip, ColorJitter(0.4, 0.4, 0.4, 0.1), float32 [0,1]; DataLoader
with batch 32 and --workers worker processes. Prints `RESULT pipeline_torch img_s=<float>`."""

import argparse
import glob
import os
import time

import torch
import torchvision
from torchvision.transforms import v2

p = argparse.ArgumentParser()
p.add_argument("--images", required=True)
p.add_argument("--count", type=int, default=1000)
p.add_argument("--batch", type=int, default=32)
p.add_argument("--workers", type=int, default=2)
a = p.parse_args()

files = sorted(glob.glob(os.path.join(a.images, "*.jpg")))
tf = v2.Compose(
    [
        v2.RandomResizedCrop(224, scale=(0.08, 1.0), ratio=(0.75, 4.0 / 3.0), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.ColorJitter(0.4, 0.4, 0.4, 0.1),
        v2.ToDtype(torch.float32, scale=True),
    ]
)


class Jpegs(torch.utils.data.Dataset):
    def __len__(self):
        return a.count

    def __getitem__(self, i):
        data = torchvision.io.read_file(files[i % len(files)])
        img = torchvision.io.decode_jpeg(data, mode=torchvision.io.ImageReadMode.RGB)
        return tf(img)


def init(_):
    torch.set_num_threads(1)


if __name__ == "__main__":
    torch.set_num_threads(1)
    dl = torch.utils.data.DataLoader(Jpegs(), batch_size=a.batch, num_workers=a.workers, worker_init_fn=init)
    t = time.perf_counter()
    n = 0
    dt = None
    for b in dl:
        n += b.shape[0]
        if n >= a.count:
            # Stop the clock at the last image (worker shutdown is not throughput).
            dt = time.perf_counter() - t
    assert n == a.count and dt is not None, n
    print(f"RESULT pipeline_torch img_s={n / dt:.1f}")
