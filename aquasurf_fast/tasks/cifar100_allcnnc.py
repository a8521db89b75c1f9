"""All-CNN-C on CIFAR-100: the network of the paper's main benchmark (built-in task
``cifar100-allcnnc``).

Network: All-CNN-C (Springenberg et al. 2015; ``models.all_cnn_c``), nine convolutions with the
activation after each of the first eight, global average pooling; 1.4M weights, no normalization
layer, so every weight counts in the Fisher features (13,857 values).

Recipe:
- data: CIFAR-100's 50,000 training images; the validation split is 5,000 of them, chosen by a
  fixed permutation (seed 0), training on the other 45,000; the 10,000 test images for test
  accuracy. Inputs normalized by the training split's per-channel mean and deviation;
- augmentation: random 32x32 crops of the image padded by 4 pixels, random horizontal flips;
- optimizer: SGD with Nesterov momentum 0.9, learning rate 0.01, weight decay 0.001, batch 128;
- schedule: linear warm-up over the first 5% of the steps, then cosine decay to zero;
- epochs: 100 (``epochs=`` or ``--epochs`` for quicker, noisier runs);
- seed 0 for the weights, the order of the batches and the augmentation.

Fisher batch: the first 128 training images (one training batch), not augmented.
``RESOURCES`` asks for one GPU per evaluation on a Ray cluster.
"""
from __future__ import annotations

from typing import Optional

from torch import nn

from . import _cifar
from ._train import Recipe
from .models import all_cnn_c

DATASET = "cifar100"
RECIPE = Recipe(epochs=100, batch_size=128, lr=0.01, optimizer="sgd", momentum=0.9,
                weight_decay=1e-3, cosine=True, warmup=0.05)
FISHER_BATCH = 128
SEED = 0
RESOURCES = {"num_gpus": 1}


def build(activation: nn.Module) -> nn.Module:
    return all_cnn_c(activation, n_classes=100)


def fisher_batch():
    return _cifar.fisher_batch(DATASET, FISHER_BATCH)


def train_eval(activation: nn.Module, seed: int = SEED, epochs: int = RECIPE.epochs,
               device: str = "auto", amp: bool = False, data_dir: Optional[str] = None) -> dict:
    """Train by the recipe above on ``device`` (auto: a GPU when there is one); with ``amp`` in
    mixed precision. Validation and test accuracy and losses, train accuracy, runtime."""
    return _cifar.train_eval(DATASET, build, activation, RECIPE, seed=seed, epochs=epochs,
                             device=device, amp=amp, data_dir=data_dir)
