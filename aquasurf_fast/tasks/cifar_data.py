"""CIFAR-10 and CIFAR-100 for the built-in tasks: the data folder, its download, its reading, the
fixed splits, and the batch preparation and augmentation done on the training device.

The data lives in ``$AQUASURF_DATA`` (default ``$AQUASURF_CACHE/datasets``), in the layout the
datasets are published in and torchvision writes: ``cifar-10-batches-py/`` (``data_batch_1`` to
``_5``, ``test_batch``) and ``cifar-100-python/`` (``train``, ``test``), each file a Python pickle
of a dict whose ``data`` is uint8 [n, 3072] (the red, green, then blue planes of a 32x32 image).
When the folder is absent it is downloaded with torchvision's dataset classes (``pip install
'aquasurf_fast[vision]'``), which verify each file's checksum. The files are then read here rather
than through those classes, which accept only the published files' checksums: this module also
reads smaller sets in the same layout (the tests write one of a few hundred images).

What every CIFAR task shares (``task_functions``): the validation split is 5,000 of the 50,000
training images, chosen by a fixed permutation (seed 0), and the training uses the other 45,000;
the 10,000 test images give the test accuracy. Inputs are normalized by the training split's
per-channel mean and deviation, and augmented by random 32x32 crops of the image padded by 4 zero
pixels and random horizontal flips. Seed 0 fixes the weights, the order of the batches and the
augmentation. The Fisher batch is the first 128 training images (one training batch), not
augmented.

Images stay uint8 until a batch reaches the training device, where ``prepare`` normalizes it and
``augment`` alters the whole batch at once: no data-loader processes are needed (and the search's
worker processes, being daemons, could not start any).
"""
from __future__ import annotations

import dataclasses
import functools
import os
import pickle
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import torch

from ..cache import cache_dir
from .training import Recipe, train_classifier

# folder, training files, test files, label key: the published layout of each dataset.
LAYOUTS = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                b"labels"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels"),
}
N_VAL = 5000
PAD = 4
FISHER_BATCH = 128
SEED = 0


def data_dir(explicit: Optional[str] = None) -> str:
    """The folder that holds the datasets: ``explicit``, else ``$AQUASURF_DATA``, else
    ``$AQUASURF_CACHE/datasets``."""
    return os.path.abspath(explicit or os.environ.get("AQUASURF_DATA")
                           or os.path.join(cache_dir(), "datasets"))


def _missing(root: str, name: str) -> list:
    folder, train, test, _ = LAYOUTS[name]
    return [f for f in train + test if not os.path.isfile(os.path.join(root, folder, f))]


def _download(root: str, name: str) -> None:
    """Fetch ``name`` into ``root`` with torchvision, or raise an error naming the folder to
    fill."""
    folder = os.path.join(root, LAYOUTS[name][0])
    fill = (f"put the {name.upper()} python version (the {LAYOUTS[name][0]} folder of "
            f"https://www.cs.toronto.edu/~kriz/{LAYOUTS[name][0]}.tar.gz) in {folder}, or set "
            "AQUASURF_DATA (--data-dir) to a folder that has it")
    try:
        from torchvision import datasets
    except ImportError:
        raise ImportError(f"{name} is not in {root} and downloading it needs torchvision "
                          f"(pip install 'aquasurf_fast[vision]'); or {fill}") from None
    except Exception as exc:  # a torchvision built for another torch fails inside its import
        raise ImportError(f"{name} is not in {root} and torchvision does not load with this torch "
                          f"({type(exc).__name__}: {exc}): install the torchvision build that "
                          f"matches torch {torch.__version__}, or {fill}") from None
    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    try:
        for train in (True, False):
            cls(root, train=train, download=True)
    except Exception as exc:  # offline, a proxy, a full disk: the user fills the folder instead
        raise OSError(f"could not download {name} into {root} ({type(exc).__name__}: {exc}); "
                      f"on a machine without internet access, {fill}") from None


def _read(path: str, label_key: bytes) -> Tuple[np.ndarray, np.ndarray]:
    # The dataset's own format is a pickle; these are files the user placed or torchvision
    # verified, never a study file (studies hold no pickles).
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{path}: {images.shape[0]} images but {labels.shape[0]} labels")
    return images, labels


def load_arrays(name: str, root: Optional[str] = None,
                download: bool = True) -> Dict[str, np.ndarray]:
    """The training and test images (uint8 [n, 3, 32, 32]) and labels (int64) of ``name``."""
    if name not in LAYOUTS:
        raise ValueError(f"dataset {name!r} is not one of {', '.join(LAYOUTS)}")
    root = data_dir(root)
    if _missing(root, name):
        if not download:
            raise OSError(f"{name} is not in {root}: missing {', '.join(_missing(root, name))}")
        _download(root, name)
    folder, train, test, key = LAYOUTS[name]
    out = {}
    for split, files in (("train", train), ("test", test)):
        parts = [_read(os.path.join(root, folder, f), key) for f in files]
        out[f"x_{split}"] = np.concatenate([p[0] for p in parts])
        out[f"y_{split}"] = np.concatenate([p[1] for p in parts])
    return out


def splits(name: str, root: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """Train / validation / test tensors (uint8 images, int64 labels) and the normalization.

    The validation split is carved from the training set by one fixed permutation (seed 0):
    5,000 images, or a tenth of the training set when it holds fewer than 50,000 (a test's set).
    Read once per process and folder.
    """
    return _splits(name, data_dir(root))


@functools.lru_cache(maxsize=2)
def _splits(name: str, root: str) -> Dict[str, torch.Tensor]:
    a = load_arrays(name, root)
    n = a["x_train"].shape[0]
    n_val = N_VAL if n >= 10 * N_VAL else max(1, n // 10)
    perm = np.random.RandomState(0).permutation(n)
    train, val = perm[n_val:], perm[:n_val]
    x = torch.from_numpy(a["x_train"])
    y = torch.from_numpy(a["y_train"])
    pixels = a["x_train"][train].astype(np.float64) / 255.0
    mean = torch.tensor(pixels.mean(axis=(0, 2, 3)), dtype=torch.float32)
    std = torch.tensor(pixels.std(axis=(0, 2, 3)), dtype=torch.float32)
    return {"x_train": x[train], "y_train": y[train], "x_val": x[val], "y_val": y[val],
            "x_test": torch.from_numpy(a["x_test"]), "y_test": torch.from_numpy(a["y_test"]),
            "mean": mean, "std": std}


def normalizer(data: Dict[str, torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``prepare(batch)``: uint8 images to float32, normalized per channel, on the batch's
    device."""
    mean, std = data["mean"].view(1, 3, 1, 1), data["std"].view(1, 3, 1, 1)

    def prepare(batch: torch.Tensor) -> torch.Tensor:
        m, s = mean.to(batch.device), std.to(batch.device)
        return (batch.float() / 255.0 - m) / s

    return prepare


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crops of the zero-padded images and random horizontal flips, [B, C, H, W] at once.

    The random draws come from ``generator`` (on the CPU) so that a run is the same on any device.
    """
    b, _, h, w = batch.shape
    offsets = torch.randint(0, 2 * PAD + 1, (2, b), generator=generator).to(batch.device)
    flips = (torch.rand(b, generator=generator) < 0.5).to(batch.device)
    padded = torch.nn.functional.pad(batch, (PAD, PAD, PAD, PAD))
    rows = offsets[0][:, None] + torch.arange(h, device=batch.device)  # [B, H]
    cols = offsets[1][:, None] + torch.arange(w, device=batch.device)  # [B, W]
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    index = torch.arange(b, device=batch.device)[:, None, None]
    crops = padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    return crops.permute(0, 3, 1, 2).contiguous()


def fisher_batch(name: str, size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The first ``size`` training images of ``name``, normalized and not augmented, and their
    labels: a task's fixed Fisher batch."""
    data = splits(name)
    return normalizer(data)(data["x_train"][:size]), data["y_train"][:size]


def train_eval(name: str, build: Callable, activation: torch.nn.Module, recipe: Recipe, *,
               seed: int, epochs: int, device: Any, amp: bool, data_dir: Optional[str]) -> dict:
    """Train ``build(activation)`` on ``name`` by ``recipe`` for ``epochs`` epochs, normalized and
    augmented on ``device``: the body of every CIFAR task's ``train_eval``."""
    data = splits(name, data_dir)
    recipe = dataclasses.replace(recipe, epochs=epochs, prepare=normalizer(data), augment=augment)
    return train_classifier(build, activation, data, recipe, seed=seed, device=device, amp=amp)


def task_functions(name: str, build: Callable, recipe: Recipe):
    """``fisher_batch`` and ``train_eval`` of the task that trains ``build`` on ``name`` by
    ``recipe``: what a CIFAR task module exposes besides its network."""

    def task_fisher_batch():
        """The first 128 training images, normalized and not augmented, and their labels."""
        return fisher_batch(name, FISHER_BATCH)

    def task_train_eval(activation: torch.nn.Module, seed: int = SEED, epochs: int = recipe.epochs,
                        device: str = "auto", amp: bool = False,
                        data_dir: Optional[str] = None) -> dict:
        """Train by the task's recipe on ``device`` (auto: a GPU when there is one); with ``amp``
        in mixed precision. Validation and test accuracy and losses, train accuracy, runtime."""
        return train_eval(name, build, activation, recipe, seed=seed, epochs=epochs,
                          device=device, amp=amp, data_dir=data_dir)

    return task_fisher_batch, task_train_eval


__all__ = ["FISHER_BATCH", "LAYOUTS", "SEED", "augment", "data_dir", "fisher_batch", "load_arrays",
           "normalizer", "splits", "task_functions", "train_eval"]
