"""A one-block transformer (attention, LayerNorm, an MLP with the candidate) on token sequences.

Data, generated from seed 0 (``numpy.random.default_rng``): sequences of 12 tokens from a
vocabulary of 8, each drawn from its own Dirichlet(1) distribution over the tokens; the label is
the most frequent token (ties to the smaller token), 8 classes. 3,000 training, 2,000 validation
and 2,000 test sequences.

Network: token and position embeddings of width 24, one pre-norm block (4-head self-attention,
then LayerNorm, Linear 24→48, the candidate, Linear 48→24, both residual), a final LayerNorm,
mean pooling over positions, then Linear 24→24, the candidate, Linear 24→8; 6.2k weights. The
candidate in the head makes it matter: without it attention alone counts the tokens. Adam,
learning rate 5e-3, batch 200, 3 epochs; seeds 0, 1 and 2 set the initial weights and the data
order. Fisher features: the first 256 training sequences.

Built with

    aquasurf bench build --task benchmarks/tasks/seq_transformer.py --space benchmark --seeds 3 \
        --workers 2 --out benchmarks/data/act-bench-seq-transformer.json.gz
"""
from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from aquasurf_fast.tasks.training import (Recipe, consecutive_splits, first_training_batch,
                                          train_classifier)

VOCAB = 8
LENGTH = 12
WIDTH = 24
N_TRAIN, N_VAL, N_TEST = 3000, 2000, 2000
FISHER_BATCH = 256
RECIPE = Recipe(epochs=3, batch_size=200, lr=5e-3)


@functools.lru_cache(maxsize=1)
def splits() -> dict:
    """Train / validation / test tokens [n, 16] (int64) and their most frequent token."""
    rng = np.random.default_rng(0)
    n = N_TRAIN + N_VAL + N_TEST
    probs = rng.dirichlet(np.full(VOCAB, 1.0), size=n)
    tokens = np.stack([rng.choice(VOCAB, size=LENGTH, p=p) for p in probs])
    counts = np.stack([np.bincount(t, minlength=VOCAB) for t in tokens])
    x = torch.from_numpy(tokens.astype(np.int64))
    y = torch.from_numpy(counts.argmax(axis=1).astype(np.int64))
    return consecutive_splits(x, y, N_TRAIN, N_VAL)


class Block(nn.Module):
    """Pre-norm self-attention and MLP, each added to its input."""

    def __init__(self, activation: nn.Module):
        super().__init__()
        self.norm1 = nn.LayerNorm(WIDTH)
        self.attn = nn.MultiheadAttention(WIDTH, 4, batch_first=True)
        self.norm2 = nn.LayerNorm(WIDTH)
        self.mlp = nn.Sequential(nn.Linear(WIDTH, 2 * WIDTH), activation,
                                 nn.Linear(2 * WIDTH, WIDTH))

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class SequenceClassifier(nn.Module):
    def __init__(self, activation: nn.Module):
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, WIDTH)
        self.positions = nn.Parameter(torch.randn(LENGTH, WIDTH) * 0.02)
        self.block = Block(activation)
        self.norm = nn.LayerNorm(WIDTH)
        self.head = nn.Sequential(nn.Linear(WIDTH, WIDTH), activation, nn.Linear(WIDTH, VOCAB))

    def forward(self, tokens):
        x = self.block(self.tokens(tokens) + self.positions)
        return self.head(self.norm(x).mean(dim=1))


def build(activation: nn.Module) -> nn.Module:
    return SequenceClassifier(activation)


def fisher_batch():
    """The first 256 training sequences and their labels."""
    return first_training_batch(splits(), FISHER_BATCH)


def train_eval(activation: nn.Module, seed: int = 0, epochs: int = RECIPE.epochs,
               device: str = "cpu", amp: bool = False) -> dict:
    return train_classifier(build, activation, splits(), replace(RECIPE, epochs=epochs),
                            seed=seed, device=device, amp=amp)
