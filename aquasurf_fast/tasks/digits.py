"""scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download); a small 2-D CNN.

Fixed splits from one seeded permutation: 360 test, 288 validation, 1,149 training images.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from .training import Recipe, first_training_batch, train_classifier

N_TEST = 360
N_VAL = 288
FISHER_BATCH = 256
EPOCHS = 15
BATCH_SIZE = 64
LR = 3e-3
SEED = 0


@functools.lru_cache(maxsize=1)
def splits() -> dict:
    """Train / validation / test tensors: images [n, 1, 8, 8] scaled to [0, 1], targets int64."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError(
            "the digits task needs scikit-learn: pip install 'aquasurf_fast[search]'"
        ) from exc
    d = load_digits()
    perm = np.random.RandomState(0).permutation(len(d.target))
    x = torch.from_numpy((d.images[perm] / 16.0).astype(np.float32)).unsqueeze(1)
    y = torch.from_numpy(d.target[perm].astype(np.int64))
    n_train = len(y) - N_TEST - N_VAL
    return {"x_train": x[:n_train], "y_train": y[:n_train],
            "x_val": x[n_train:n_train + N_VAL], "y_val": y[n_train:n_train + N_VAL],
            "x_test": x[n_train + N_VAL:], "y_test": y[n_train + N_VAL:]}


def build(activation: nn.Module) -> nn.Module:
    """Two convolutions and a linear classifier, ~10k weights; ``activation`` after each conv."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), activation,
        nn.Conv2d(16, 32, 3, stride=2, padding=1), activation,
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 10),
    )


def fisher_batch():
    """The first 256 training images and their labels."""
    return first_training_batch(splits(), FISHER_BATCH)


def train_eval(activation: nn.Module, seed: int = SEED, epochs: int = EPOCHS,
               device: str = "cpu", amp: bool = False) -> dict:
    """Train for ``epochs`` epochs with Adam; validation and test accuracy and losses, runtime.
    ``device`` defaults to the CPU, where a network this small trains fastest."""
    recipe = Recipe(epochs=epochs, batch_size=BATCH_SIZE, lr=LR)
    return train_classifier(build, activation, splits(), recipe, seed=seed, device=device,
                            amp=amp)
