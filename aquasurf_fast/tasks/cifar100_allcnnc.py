"""All-CNN-C on CIFAR-100, the network of the paper's main benchmark (built-in task
``cifar100-allcnnc``).

Network: All-CNN-C (Springenberg et al. 2015; ``models.all_cnn_c``), nine convolutions with the
activation after each of the first eight, global average pooling; 1.4M weights and no
normalization layer, so every weight counts in the Fisher features (13,857 values).

Recipe: SGD with Nesterov momentum 0.9, learning rate 0.01, weight decay 0.001, batch 128, 100
epochs (``--epochs`` for quick runs); warm-up over 5% of the steps, then cosine decay to zero.
Data, split, augmentation, seed and Fisher batch as every CIFAR task
(``aquasurf_fast.tasks.cifar_data``); ``RESOURCES`` asks Ray for a GPU.
"""
from __future__ import annotations

from torch import nn

from . import cifar_data
from .training import Recipe
from .models import all_cnn_c

DATASET = "cifar100"
RECIPE = Recipe(epochs=100, batch_size=128, lr=0.01, optimizer="sgd", momentum=0.9,
                weight_decay=1e-3, cosine=True, warmup=0.05)
FISHER_BATCH, SEED = cifar_data.FISHER_BATCH, cifar_data.SEED
RESOURCES = {"num_gpus": 1}


def build(activation: nn.Module) -> nn.Module:
    return all_cnn_c(activation, n_classes=100)


fisher_batch, train_eval = cifar_data.task_functions(DATASET, build, RECIPE)
