"""The process's memory: freed memory kept for its next tensors (``keep_freed_memory``), and
which errors say the machine ran out of it (``is_out_of_memory``: the executors mark such a job's
failure as the machine's, and Fisher featurization stops on it instead of failing a candidate).

Why freed memory is kept: glibc's malloc gives a freed block above its mmap threshold, and free
space above its trim threshold at the top of a heap, back to the kernel. The next tensor of that
size then faults its pages in again, one zero-filled 4 KiB page at a time. Featurization allocates
and frees the same tensors for every candidate, so it paid that again and again: glibc's adaptive
thresholds follow the largest block freed so far (trimming above twice its size), and a stacked
mnist1d pass of 4 candidates (Fisher batch 256, one thread) took about 1,250 page faults per
candidate, 19.5 ms per candidate against 13 ms without them; alone, the backward pass of its
second convolution (1,024 x 32 x 40) took 10.5 ms against 3.1 ms, and its first convolution
4.6 ms against 0.26 ms.

``keep_freed_memory`` sets both thresholds once per process to the largest values glibc's
adaptive ones reach (blocks up to 32 MiB come from the heap; up to 64 MiB of free heap is kept),
so a process holds on to at most 64 MiB more than it uses. Larger tensors still go straight to
the kernel and back: their work outweighs their faults.
"""
from __future__ import annotations

import ctypes
import os
import platform
import sys

__all__ = ["is_out_of_memory", "keep_freed_memory"]

# mallopt's parameter numbers (malloc.h) and glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit systems.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 << 20
_TRIM_THRESHOLD = 2 * _MMAP_THRESHOLD
# The same settings in the environment: a user who set them has chosen.
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")

_applied = None


def keep_freed_memory() -> bool:
    """Keep freed blocks of up to 32 MiB in the process (see the module's docstring); once per
    process. Returns whether the settings are in force: False where the C library is not glibc
    or where the environment sets malloc's thresholds itself."""
    global _applied
    if _applied is None:
        _applied = _set_thresholds()
    return _applied


def _set_thresholds() -> bool:
    chosen = (any(name in os.environ for name in _USER_SETTINGS)
              or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""))
    if chosen or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says the machine ran out of memory (host or GPU), whatever was evaluated."""
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")  # never imported here: a job that ran torch already has it
    oom = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
    return oom is not None and isinstance(exc, oom)
