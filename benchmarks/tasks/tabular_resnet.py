"""A residual MLP with batch normalization on tabular data from scikit-learn's generator.

Data: ``sklearn.datasets.make_classification(n_samples=8000, n_features=20, n_informative=10,
n_redundant=4, n_classes=6, n_clusters_per_class=2, class_sep=1.0, flip_y=0.01,
random_state=0)``, features standardized by the training split's mean and deviation; 4,000
training, 2,000 validation and 2,000 test rows, 6 classes.

Network: Linear 20→64, two residual blocks (BatchNorm, the candidate, Linear 64→64, BatchNorm, the
candidate, Linear 64→64, added to the block's input), BatchNorm, the candidate, Linear 64→6;
19.0k weights. Adam, learning rate 5e-3, batch 256, 5 epochs; seeds 0, 1 and 2 set the initial
weights and the data order. Fisher features: the first 256 training rows, batch normalization on
that batch's statistics as at the first training step.

Built with

    aquasurf bench build --task benchmarks/tasks/tabular_resnet.py --space benchmark --seeds 3 \
        --workers 2 --out benchmarks/data/act-bench-tabular-resnet.json.gz
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
N_FEATURES, N_CLASSES, WIDTH = 20, 6, 64
FISHER_BATCH = 256
RECIPE = Recipe(epochs=5, batch_size=256, lr=5e-3)


@functools.lru_cache(maxsize=1)
def splits() -> dict:
    """Standardized float32 features [n, 20] and int64 labels."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=N_TRAIN + N_VAL + N_TEST, n_features=N_FEATURES,
                               n_informative=10, n_redundant=4, n_classes=N_CLASSES,
                               n_clusters_per_class=2, class_sep=1.0, flip_y=0.01,
                               random_state=0)
    mean, std = x[:N_TRAIN].mean(axis=0), x[:N_TRAIN].std(axis=0)
    x = torch.from_numpy(((x - mean) / std).astype(np.float32))
    y = torch.from_numpy(y.astype(np.int64))
    return consecutive_splits(x, y, N_TRAIN, N_VAL)


class ResidualBlock(nn.Module):
    def __init__(self, activation: nn.Module):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm1d(WIDTH), activation, nn.Linear(WIDTH, WIDTH),
                                  nn.BatchNorm1d(WIDTH), activation, nn.Linear(WIDTH, WIDTH))

    def forward(self, x):
        return x + self.body(x)


def build(activation: nn.Module) -> nn.Module:
    return nn.Sequential(nn.Linear(N_FEATURES, WIDTH),
                         ResidualBlock(activation), ResidualBlock(activation),
                         nn.BatchNorm1d(WIDTH), activation, nn.Linear(WIDTH, N_CLASSES))


def fisher_batch():
    """The first 256 training rows and their labels."""
    return first_training_batch(splits(), FISHER_BATCH)


def train_eval(activation: nn.Module, seed: int = 0, epochs: int = RECIPE.epochs,
               device: str = "cpu", amp: bool = False) -> dict:
    return train_classifier(build, activation, splits(), replace(RECIPE, epochs=epochs),
                            seed=seed, device=device, amp=amp)
