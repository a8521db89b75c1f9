"""Which torch device a network runs on, and which GPU each worker process of a machine gets.

A device is named as on the command line: ``auto`` (a GPU when torch sees one, else the CPU),
``cpu``, ``cuda`` (the current GPU) or ``cuda:N``. Names are checked once, where the user gave
them, so that asking for a GPU on a machine without one is one clear error, not a failed
evaluation per candidate.
"""
from __future__ import annotations

import os
import re
from typing import List, Optional

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device_name(device: Optional[str], argument: str = "device") -> Optional[str]:
    """``device`` normalized (stripped, lower case) when it is a valid name, or None for None."""
    if device is None:
        return None
    name = str(device).strip().lower()
    if not _DEVICE_RE.match(name):
        raise ValueError(f"{argument} {device!r} is not a device: use {DEVICE_CHOICES}")
    return name


def resolve_device(device: Optional[str] = "auto", argument: str = "device"):
    """The ``torch.device`` that ``device`` names (None means auto).

    Raises ValueError naming the argument when a GPU is asked for and torch sees none, or when
    ``cuda:N`` names a GPU past the last one.
    """
    import torch

    name = check_device_name(device if device is not None else "auto", argument)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        why = ("this torch is built without CUDA" if torch.version.cuda is None
               else "torch sees no GPU (no driver, or CUDA_VISIBLE_DEVICES hides them)")
        raise ValueError(f"{argument} {device!r} asks for a GPU but {why}; use {argument} cpu "
                         "or auto")
    dev = torch.device(name)
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise ValueError(f"{argument} {device!r} names GPU {dev.index} but torch sees {count} "
                         f"(cuda:0 to cuda:{count - 1})")
    return dev


def visible_gpus() -> List[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries: that variable's own list
    when it is set, else 0..n-1 for the n GPUs torch counts (without initialising CUDA here)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def worker_gpu(slot: int, gpus: List[str]) -> Optional[str]:
    """The GPU that worker ``slot`` takes, round-robin over ``gpus``; None when there are none.

    A worker replaced after a crash keeps its slot and so its GPU: the load stays balanced.
    """
    return gpus[slot % len(gpus)] if gpus else None


def pin_gpu(gpu: Optional[str]) -> None:
    """Make ``gpu`` this process's only visible GPU (it becomes ``cuda:0``).

    Call it first thing in a fresh worker process: CUDA reads the variable once, when it
    initialises, and ignores it afterwards.
    """
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu


__all__ = ["DEVICE_CHOICES", "check_device_name", "pin_gpu", "resolve_device", "visible_gpus",
           "worker_gpu"]
