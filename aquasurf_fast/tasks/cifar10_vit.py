"""A small vision transformer on CIFAR-10 (built-in task ``cifar10-vit``): the activation sits in
every encoder block's MLP, and the attention's query, key, value and output projections count in
the Fisher features.

Network: ``models.ViT`` with 10 classes: 4x4 patches (64 tokens and a class token) embedded in
128 dimensions, 4 pre-norm encoder blocks of 4 heads with MLPs of 256, a linear classifier on the
class token; 0.55M weights. Layer norms and the embeddings are skipped in the Fisher features
(one warning says so).

Recipe: AdamW, learning rate 0.001, weight decay 0.05, batch 128, 100 epochs (``--epochs`` for
quick runs); warm-up over 5% of the steps, then cosine decay to zero. Data, split, augmentation,
seed and Fisher batch as every CIFAR task (``aquasurf_fast.tasks.cifar_data``); ``RESOURCES`` asks
Ray for a GPU.
"""
from __future__ import annotations

from torch import nn

from . import cifar_data
from .training import Recipe
from .models import ViT

DATASET = "cifar10"
RECIPE = Recipe(epochs=100, batch_size=128, lr=1e-3, optimizer="adamw", weight_decay=0.05,
                cosine=True, warmup=0.05)
FISHER_BATCH, SEED = cifar_data.FISHER_BATCH, cifar_data.SEED
RESOURCES = {"num_gpus": 1}


def build(activation: nn.Module) -> nn.Module:
    return ViT(activation, n_classes=10)


fisher_batch, train_eval = cifar_data.task_functions(DATASET, build, RECIPE)
