"""Parameter counts and input-size limits of the reference models, shared by the zoo's
reference scripts (`vgg.py`, `googlenet.py`, `inception_v3.py`)."""

import os


def torch_params(model) -> int:
    """Trainable parameters of a torch model (BN running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def keras_counts(app: str, **kwargs) -> dict:
    """Total and trainable parameter counts of `keras.applications.<app>(weights=None, **kwargs)`
    (Keras 3, torch backend: only the counts are used)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    model = getattr(keras.applications, app)(weights=None, **kwargs)
    trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
    total = int(model.count_params())
    return {"keras_params_total": total, "keras_params_trainable": trainable}


def check_min_size(model, side: int, channels: int = 3) -> int:
    """Asserts that the eval-mode torch `model` accepts `side x side` images and rejects
    `(side - 1) x (side - 1)`; returns `side` (recorded in the fixtures, tested on our side)."""
    import torch

    def works(s):
        try:
            with torch.no_grad():
                model(torch.zeros(1, channels, s, s))
            return True
        except (RuntimeError, ValueError):
            return False

    assert works(side), f"{side}x{side} rejected"
    assert not works(side - 1), f"{side - 1}x{side - 1} accepted"
    return side
