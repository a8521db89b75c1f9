"""A deep plain MLP (no normalization, no shortcuts) on a regression target turned into classes.

Data: ``sklearn.datasets.make_friedman1(n_samples=8000, n_features=10, noise=0.5,
random_state=0)``; the target is cut at the training split's deciles into 10 ordered classes and
the features (uniform on [0, 1]) are centred and scaled to unit variance. 4,000 training, 2,000
validation and 2,000 test rows.

Network: five hidden layers of width 48 with the candidate after each, then Linear 48→10; 10.3k
weights. Depth without normalization is what makes the function's shape matter here: its slope
and offset compound over five layers. Adam, learning rate 5e-3, batch 256, 6 epochs; seeds 0, 1
and 2 set the initial weights and the data order. Fisher features: the first 256 training rows.

Built with

    aquasurf bench build --task benchmarks/tasks/friedman_mlp.py --space benchmark --seeds 3 \
        --workers 2 --out benchmarks/data/act-bench-friedman-mlp.json.gz
"""
from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from aquasurf_fast.tasks.training import (Recipe, consecutive_splits, first_training_batch,
                                          train_classifier)

N_TRAIN, N_VAL, N_TEST = 4000, 2000, 2000
N_FEATURES, N_CLASSES, WIDTH, DEPTH = 10, 10, 48, 5
FISHER_BATCH = 256
RECIPE = Recipe(epochs=6, batch_size=256, lr=5e-3)


@functools.lru_cache(maxsize=1)
def splits() -> dict:
    """Scaled float32 features [n, 10] and the target's decile class (int64)."""
    from sklearn.datasets import make_friedman1

    x, t = make_friedman1(n_samples=N_TRAIN + N_VAL + N_TEST, n_features=N_FEATURES, noise=0.5,
                          random_state=0)
    edges = np.quantile(t[:N_TRAIN], np.linspace(0.1, 0.9, N_CLASSES - 1))
    y = np.searchsorted(edges, t)
    x = (x - 0.5) * np.sqrt(12.0)  # uniform [0, 1] to mean 0, variance 1
    x, y = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))
    return consecutive_splits(x, y, N_TRAIN, N_VAL)


def build(activation: nn.Module) -> nn.Module:
    layers, width = [], N_FEATURES
    for _ in range(DEPTH):
        layers += [nn.Linear(width, WIDTH), activation]
        width = WIDTH
    return nn.Sequential(*layers, nn.Linear(width, N_CLASSES))


def fisher_batch():
    """The first 256 training rows and their labels."""
    return first_training_batch(splits(), FISHER_BATCH)


def train_eval(activation: nn.Module, seed: int = 0, epochs: int = RECIPE.epochs,
               device: str = "cpu", amp: bool = False) -> dict:
    return train_classifier(build, activation, splits(), replace(RECIPE, epochs=epochs),
                            seed=seed, device=device, amp=amp)
