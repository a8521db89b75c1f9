"""The training loop shared by the built-in tasks: a recipe (optimizer, schedule, augmentation),
fixed epochs, on a chosen device, optionally in mixed precision, deterministic under a seed."""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

import torch
from torch import nn
from torch.nn import functional as F


def consecutive_splits(x: torch.Tensor, y: torch.Tensor, n_train: int,
                       n_val: int) -> Dict[str, torch.Tensor]:
    """The first ``n_train`` rows for training, the next ``n_val`` for validation, the rest for
    testing, in the layout ``train_classifier`` reads."""
    a, b = n_train, n_train + n_val
    return {"x_train": x[:a], "y_train": y[:a], "x_val": x[a:b], "y_val": y[a:b],
            "x_test": x[b:], "y_test": y[b:]}


def first_training_batch(data: Dict[str, torch.Tensor], size: int):
    """The first ``size`` training inputs and targets: a task's fixed Fisher batch."""
    return data["x_train"][:size], data["y_train"][:size]


@dataclass(frozen=True)
class Recipe:
    """How a built-in task trains: optimizer, learning-rate schedule, batches, augmentation.

    ``optimizer`` is "adam", "adamw" or "sgd" (with Nesterov momentum ``momentum``). With
    ``cosine`` the learning rate rises linearly from zero over the first ``warmup`` fraction of
    the steps, then follows a cosine to zero at the last step; a fraction rather than a number of
    epochs, so that a quick run with fewer epochs keeps the shape of the full one. ``prepare``
    turns a stored batch into the network's input (uint8 images into normalized floats) on the
    training device; ``augment(batch, generator)`` then alters training batches only.
    """

    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    cosine: bool = False
    warmup: float = 0.0
    prepare: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    augment: Optional[Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = None


def _inputs(recipe: Recipe, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return recipe.prepare(x) if recipe.prepare is not None else x


def _evaluate(model: nn.Module, recipe: Recipe, x: torch.Tensor, y: torch.Tensor,
              device: torch.device, amp: bool, batch_size: int = 1024):
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            with _autocast(device, amp):
                logits = model(_inputs(recipe, x[i:i + batch_size], device)).float()
            target = y[i:i + batch_size].to(device)
            loss_sum += float(F.cross_entropy(logits, target, reduction="sum"))
            finite = torch.isfinite(logits).all(dim=1)
            # A row of NaN logits has no prediction; argmax would silently call it class 0.
            correct += int(((logits.argmax(dim=1) == target) & finite).sum())
    model.train()
    n = x.shape[0]
    return loss_sum / n, correct / n


def _autocast(device: torch.device, amp: bool):
    """Mixed precision when asked: float16 on a GPU (with a gradient scaler), bfloat16 on the CPU
    (float16 matmuls are slow there and bfloat16 needs no scaler)."""
    if not amp:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype)


def _optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    params = model.parameters()
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, nesterov=True,
                               weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    raise ValueError(f"optimizer {recipe.optimizer!r} is not one of adam, adamw, sgd")


def _lr_factor(recipe: Recipe, step: int, n_steps: int) -> float:
    """The multiplier of the base learning rate at ``step`` of ``n_steps``."""
    if not recipe.cosine:
        return 1.0
    warm = int(recipe.warmup * n_steps)
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, n_steps - warm)))


def _epoch(model, opt, scaler, recipe: Recipe, data, gen: torch.Generator, device, amp: bool,
           step: int, n_steps: int):
    """One pass over the shuffled training set. Returns the mean training loss and the step."""
    x, y = data["x_train"], data["y_train"]
    perm = torch.randperm(x.shape[0], generator=gen)
    total, seen = 0.0, 0
    for i in range(0, x.shape[0], recipe.batch_size):
        idx = perm[i:i + recipe.batch_size]
        inputs = _inputs(recipe, x[idx], device)
        if recipe.augment is not None:
            inputs = recipe.augment(inputs, gen)
        for group in opt.param_groups:
            group["lr"] = recipe.lr * _lr_factor(recipe, step, n_steps)
        with _autocast(device, amp):
            loss = F.cross_entropy(model(inputs).float(), y[idx].to(device))
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        total += loss.item() * idx.numel()
        seen += idx.numel()
        step += 1
    return total / seen, step


def train_classifier(build: Callable[[nn.Module], nn.Module], activation: nn.Module,
                     data: Dict[str, torch.Tensor], recipe: Recipe, *, seed: int,
                     device: Any = "cpu", amp: bool = False) -> Dict[str, float]:
    """Build under ``seed`` on ``device`` (a name as ``aquasurf_fast.devices.resolve_device``
    takes, or a torch.device), train by ``recipe``, return accuracies and losses on the fixed
    splits; with ``amp``, in mixed precision.

    The global torch RNG is restored afterwards so that calling this does not disturb the caller.
    """
    from ..devices import resolve_device

    dev = device if isinstance(device, torch.device) else resolve_device(device)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        model = build(activation).to(dev)
        gen = torch.Generator().manual_seed(seed)
        opt = _optimizer(model, recipe)
        # Loss scaling keeps small float16 gradients from flushing to zero; bfloat16 and float32
        # have float32's range and need none.
        scaler = torch.amp.GradScaler(dev.type, enabled=amp and dev.type == "cuda")
        n_steps = recipe.epochs * math.ceil(data["x_train"].shape[0] / recipe.batch_size)
        train_loss, step = float("nan"), 0
        for _ in range(recipe.epochs):
            train_loss, step = _epoch(model, opt, scaler, recipe, data, gen, dev, amp, step,
                                      n_steps)
            if not math.isfinite(train_loss):
                break  # diverged: more epochs cannot help and NaN weights make the rest slow
        # Train accuracy is measured after training, like validation and test accuracy.
        _, train_acc = _evaluate(model, recipe, data["x_train"], data["y_train"], dev, amp)
        val_loss, val_acc = _evaluate(model, recipe, data["x_val"], data["y_val"], dev, amp)
        test_loss, test_acc = _evaluate(model, recipe, data["x_test"], data["y_test"], dev, amp)
    return {
        "val_acc": val_acc,
        "test_acc": test_acc,
        "train_acc": train_acc,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "test_loss": test_loss,
        "runtime": time.perf_counter() - start,
    }
