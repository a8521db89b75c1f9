"""ResNet-20 on CIFAR-10: the residual network of the paper's ResNet benchmark, at the depth a
search can afford (built-in task ``cifar10-resnet20``).

Network: the CIFAR ResNet of He et al. 2016 (``models.resnet``, depth 20): a 16-channel stem,
three stages of three basic blocks (16, 32, 64 channels) with batch norm and parameter-free
shortcuts, the activation after each block's first convolution and after each sum; 0.27M
weights. Batch norm is skipped in the Fisher features (one warning says so).

Recipe:
- data: CIFAR-10's 50,000 training images; the validation split is 5,000 of them, chosen by a
  fixed permutation (seed 0), training on the other 45,000; the 10,000 test images for test
  accuracy. Inputs normalized by the training split's per-channel mean and deviation;
- augmentation: random 32x32 crops of the image padded by 4 pixels, random horizontal flips;
- optimizer: SGD with Nesterov momentum 0.9, learning rate 0.1, weight decay 0.0001, batch 128;
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
from .models import resnet

DATASET = "cifar10"
DEPTH = 20
RECIPE = Recipe(epochs=100, batch_size=128, lr=0.1, optimizer="sgd", momentum=0.9,
                weight_decay=1e-4, cosine=True, warmup=0.05)
FISHER_BATCH = 128
SEED = 0
RESOURCES = {"num_gpus": 1}


def build(activation: nn.Module) -> nn.Module:
    return resnet(activation, depth=DEPTH, n_classes=10)


def fisher_batch():
    return _cifar.fisher_batch(DATASET, FISHER_BATCH)


def train_eval(activation: nn.Module, seed: int = SEED, epochs: int = RECIPE.epochs,
               device: str = "auto", amp: bool = False, data_dir: Optional[str] = None) -> dict:
    """Train by the recipe above on ``device`` (auto: a GPU when there is one); with ``amp`` in
    mixed precision. Validation and test accuracy and losses, train accuracy, runtime."""
    return _cifar.train_eval(DATASET, build, activation, RECIPE, seed=seed, epochs=epochs,
                             device=device, amp=amp, data_dir=data_dir)
