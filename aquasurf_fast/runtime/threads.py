"""How many threads numerical work uses: ``limit_threads`` caps a worker process for good,
``thread_limit`` caps one block of the caller's process and restores every setting afterwards.

Why blocks of small work run on one thread: torch's OpenMP threads spin at every parallel region
until all of them arrive. On an idle machine that costs microseconds; when another process holds a
core, each region waits for a descheduled thread, and small problems pay that wait again and again.
Measured on 2 cores with the other one busy, ``torch.linalg.eigvalsh`` of a 321 x 321 float64 matrix
took 12 ms on one thread and 1.6-3.9 s on two, and Fisher features of mnist1d candidates ran 5x
slower on two threads than on one. Parallelism for many small problems comes from doing several at
once (worker processes), not from threads inside each one.
"""
from __future__ import annotations

import contextlib
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, Optional

from ..kernels import set_calling_thread_only, set_num_threads

# The innermost active thread_limit, so that a nested one asking for as many threads or more
# costs nothing (entering threadpoolctl scans the loaded libraries: about 1 ms).
_active: Optional[int] = None


def current_limit() -> Optional[int]:
    """The threads the innermost active ``thread_limit`` allows, or None outside any."""
    return _active


def limit_threads(n_threads: int) -> None:
    """Cap this worker's threads for good: torch's (when loaded) and the fused activation kernels'
    pool, which otherwise starts one thread per core in every worker. For worker processes, whose
    threads are theirs to set; code running in the caller's process uses ``thread_limit``."""
    set_num_threads(n_threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n_threads)


@contextlib.contextmanager
def thread_limit(n_threads: int = 1) -> Iterator[None]:
    """Run the block with torch's intra-op threads and the BLAS and OpenMP pools of the loaded
    libraries (numpy's and scipy's OpenBLAS, torch's OpenMP, through threadpoolctl when it is
    installed) limited to ``n_threads``; each setting is restored on exit, also when the block
    raises. Inside a block limited to at most ``n_threads`` already, this changes nothing.

    The settings are per process: the block is meant for the thread that runs the numerical work,
    not for several Python threads limiting each other at once. Libraries first loaded inside the
    block are not limited by threadpoolctl. The fused activation kernels' pool keeps its size
    (resizing it tears the pool down): under a limit of one thread, the kernels this thread calls
    run on it alone (``kernels.set_calling_thread_only``).
    """
    global _active
    n_threads = int(n_threads)
    if n_threads < 1:
        raise ValueError(f"n_threads must be at least 1, got {n_threads}")
    if _active is not None and _active <= n_threads:
        yield
        return
    import torch

    outer, _active = _active, n_threads
    before = torch.get_num_threads()
    try:
        with contextlib.ExitStack() as stack:
            try:
                from threadpoolctl import threadpool_limits
            except ImportError:  # an optional dependency (scikit-learn's): torch is limited anyway
                pass
            else:
                # Entered before torch's own setting, so restored after it: both write the OpenMP
                # thread count of torch's libgomp, and the original value must be the last one.
                stack.enter_context(threadpool_limits(limits=n_threads))
            torch.set_num_threads(n_threads)
            stack.callback(torch.set_num_threads, before)
            if n_threads == 1:
                stack.callback(set_calling_thread_only, set_calling_thread_only(True))
            yield
    finally:
        _active = outer


def limit_openmp_of_this_thread(n_threads: int) -> None:
    """Limit the OpenMP pools the calling thread starts to ``n_threads``, for the rest of its life,
    and with one thread, run the fused kernels it calls on it alone.

    OpenMP's thread count and the kernels' setting are per thread: a Python thread started inside
    a ``thread_limit`` block begins from the default (every core), whatever the block set in the
    thread that started it. Meant as the initializer of short-lived worker threads; nothing is
    restored."""
    set_calling_thread_only(int(n_threads) == 1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # torch's own pool follows torch.set_num_threads in every thread anyway
        return
    threadpool_limits(limits=int(n_threads), user_api="openmp")


def threads_keeping_limit(n_workers: int) -> ThreadPoolExecutor:
    """A pool of ``n_workers`` Python threads whose OpenMP pools keep the calling thread's torch
    thread count (inside a ``thread_limit`` block, its limit), where a new thread's would start at
    every core. For numerical work fanned out over threads (LAPACK and torch release the GIL)."""
    import torch

    return ThreadPoolExecutor(max(1, int(n_workers)), initializer=limit_openmp_of_this_thread,
                              initargs=(torch.get_num_threads(),))


__all__ = ["current_limit", "limit_openmp_of_this_thread", "limit_threads", "thread_limit",
           "threads_keeping_limit"]
