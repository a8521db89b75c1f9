"""The training loop shared by the built-in tasks: Adam, fixed epochs, deterministic under a seed."""
from __future__ import annotations

import math
import time
from typing import Callable, Dict

import torch
from torch import nn
from torch.nn import functional as F


def first_training_batch(data: Dict[str, torch.Tensor], size: int):
    """The first ``size`` training inputs and targets: a task's fixed Fisher batch."""
    return data["x_train"][:size], data["y_train"][:size]


def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024):
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            logits = model(x[i:i + batch_size])
            target = y[i:i + batch_size]
            loss_sum += float(F.cross_entropy(logits, target, reduction="sum"))
            finite = torch.isfinite(logits).all(dim=1)
            # A row of NaN logits has no prediction; argmax would silently call it class 0.
            correct += int(((logits.argmax(dim=1) == target) & finite).sum())
    model.train()
    n = x.shape[0]
    return loss_sum / n, correct / n


def train_classifier(build: Callable[[nn.Module], nn.Module], activation: nn.Module,
                     data: Dict[str, torch.Tensor], *, epochs: int, batch_size: int, lr: float,
                     seed: int) -> Dict[str, float]:
    """Build under ``seed``, train with Adam, return accuracies and losses on the fixed splits.

    The global torch RNG is restored afterwards so that calling this does not disturb the caller.
    """
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build(activation)
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        x, y = data["x_train"], data["y_train"]
        n = x.shape[0]
        train_loss = float("nan")
        for _ in range(epochs):
            perm = torch.randperm(n, generator=gen)
            total, seen = 0.0, 0
            for i in range(0, n, batch_size):
                idx = perm[i:i + batch_size]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * idx.numel()
                seen += idx.numel()
            train_loss = total / seen
            if not math.isfinite(train_loss):
                break  # diverged: more epochs cannot help and NaN weights make the rest slow
        # Train accuracy is measured after training, like validation and test accuracy.
        _, train_acc = _evaluate(model, x, y)
        val_loss, val_acc = _evaluate(model, data["x_val"], data["y_val"])
        test_loss, test_acc = _evaluate(model, data["x_test"], data["y_test"])
    return {
        "val_acc": val_acc,
        "test_acc": test_acc,
        "train_acc": train_acc,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "test_loss": test_loss,
        "runtime": time.perf_counter() - start,
    }
