"""Shared helpers of the benchmark scripts: medians of repeats after a warm-up, waiting for a
GPU's queued work, and tables."""
from __future__ import annotations

import statistics
import time
from typing import Callable, List, Sequence


def median_seconds(fn: Callable[[], object], repeats: int = 7, warmup: int = 1) -> float:
    """Median wall time of fn() over `repeats` runs, after `warmup` runs that are not counted."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sync(device) -> None:
    """Wait for the device's queued work (a no-op on the CPU), so that timings include it."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def print_table(title: str, header: Sequence[str], rows: List[Sequence[object]]) -> None:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for k, row in enumerate(cells):
        print("  " + "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if k == 0:
            print("  " + "  ".join("-" * w for w in widths))
