"""How ``benchmark_fisher`` measures: wall time of a call on a device, its peak memory (on an
untimed run), this machine's float32 matmul rate, and the description of the machine that goes
with the figures.

On a GPU a call is timed with CUDA events around it and the device is synchronized before and
after, so that queued work is neither counted for the wrong call nor left out. On the CPU the
clock is ``time.perf_counter``.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import sys
import threading
import time
from typing import Callable, Optional, Tuple

import torch

from ..fisher.shared import SINGLE_THREAD_MAX_WEIGHTS
from ..runtime.threads import thread_limit

__all__ = ["machine_description", "matmul_rate", "peak_memory", "rate_threads", "timed_call"]

class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]


def _malloc_in_use():
    """A function returning the bytes glibc's malloc has handed out and not taken back (heap and
    mmapped blocks), or None where there is no glibc. The resident size would not do: the
    process keeps freed blocks (``runtime.memory``), so it stops growing after a warm-up."""
    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallInfo2

    def in_use() -> int:
        info = mallinfo2()
        return info.uordblks + info.hblkhd

    return in_use


_SAMPLE_SECONDS = 5e-4


def peak_memory(fn: Callable[[], object], device: torch.device) -> Tuple[object, Optional[float]]:
    """``(fn(), bytes)``: what the call added to the memory in use at its height. GPU: torch's
    allocated tensors (exact). CPU: malloc's bytes in use, sampled every 0.5 ms by a thread, so
    meant for an untimed run; None without glibc."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        out = fn()
        torch.cuda.synchronize(device)
        return out, float(torch.cuda.max_memory_allocated(device) - before)
    in_use = _malloc_in_use()
    if in_use is None:
        return fn(), None
    before = in_use()
    high = [before]
    done = threading.Event()

    def sample():
        while not done.wait(_SAMPLE_SECONDS):
            high[0] = max(high[0], in_use())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out = fn()
    finally:
        done.set()
        sampler.join()
    return out, float(max(high[0], in_use()) - before)


def timed_call(fn: Callable[[], object], device: torch.device) -> Tuple[object, float]:
    """``(fn(), seconds)``; on a GPU between CUDA events, the device synchronized before and
    after."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        out = fn()
        end.record()
        torch.cuda.synchronize(device)
        return out, start.elapsed_time(end) / 1e3
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def rate_threads(model: torch.nn.Module) -> Optional[int]:
    """The threads the package's Fisher pass gives ``model`` under threads="auto" (one for a
    small model, the caller's otherwise), so that the floor's matmul rate is measured alike."""
    small = sum(p.numel() for p in model.parameters()) <= SINGLE_THREAD_MAX_WEIGHTS
    return 1 if small else None


def matmul_rate(device: torch.device, threads: Optional[int] = None, size: int = 1024) -> float:
    """float32 FLOP/s of a ``size`` x ``size`` matmul on ``device``: the best of 5 after 2 warm-up
    products (the best, not the median: the floor is what the machine can do)."""
    a = torch.randn(size, size, device=device)
    with thread_limit(threads) if threads is not None else contextlib.nullcontext():
        for _ in range(2):
            a @ a
        best = float("inf")
        for _ in range(5):
            _, seconds = timed_call(lambda: a @ a, device)
            best = min(best, seconds)
    return 2 * size ** 3 / best


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description(device: torch.device) -> dict:
    """What the figures were measured on: CPU model and cores, GPU, threads and versions."""
    import numpy as np

    from .._version import __version__

    try:
        import curvlinops
        curvlinops = getattr(curvlinops, "__version__", "installed")
    except ImportError:  # not installed: the figures say so
        curvlinops = None
    return {
        "device": str(device),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "numpy": np.__version__,
        "aquasurf_fast": __version__,
        "curvlinops": curvlinops,
        "argv": list(sys.argv),
    }
