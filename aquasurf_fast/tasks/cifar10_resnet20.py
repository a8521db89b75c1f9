"""ResNet-20 on CIFAR-10, the residual network of the paper's ResNet benchmark at the depth a
search can afford (built-in task ``cifar10-resnet20``).

Network: the CIFAR ResNet of He et al. 2016 (``models.resnet``, depth 20): a 16-channel stem,
three stages of three basic blocks (16, 32, 64 channels) with batch norm and parameter-free
shortcuts, the activation after each block's first convolution and after each sum; 0.27M
weights. Batch norm is skipped in the Fisher features (one warning says so).

Recipe: SGD with Nesterov momentum 0.9, learning rate 0.1, weight decay 0.0001, batch 128, 100
epochs (``--epochs`` for quick runs); warm-up over 5% of the steps, then cosine decay to zero.
Data, split, augmentation, seed and Fisher batch as every CIFAR task
(``aquasurf_fast.tasks.cifar_data``); ``RESOURCES`` asks Ray for a GPU.
"""
from __future__ import annotations

from torch import nn

from . import cifar_data
from .training import Recipe
from .models import resnet

DATASET = "cifar10"
DEPTH = 20
RECIPE = Recipe(epochs=100, batch_size=128, lr=0.1, optimizer="sgd", momentum=0.9,
                weight_decay=1e-4, cosine=True, warmup=0.05)
FISHER_BATCH, SEED = cifar_data.FISHER_BATCH, cifar_data.SEED
RESOURCES = {"num_gpus": 1}


def build(activation: nn.Module) -> nn.Module:
    return resnet(activation, depth=DEPTH, n_classes=10)


fisher_batch, train_eval = cifar_data.task_functions(DATASET, build, RECIPE)
