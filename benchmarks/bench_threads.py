"""Fisher featurization under load: ``fisher_features_for`` on benchmark-space classes with the
mnist1d task, with torch's default threads ("before": ``threads=None``) and with the thread policy
("after": ``threads="auto"``, one thread for this small model), on an idle machine and with every
core held by busy processes that this script starts and stops itself.

It first checks that both settings give identical features, then warms up, then reports the
median candidates per second of repeats, and the ratios: busy over idle, after over before.

    python benchmarks/bench_threads.py [--classes 64] [--repeats 3]
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import aquasurf_fast as aq  # noqa: E402
from _timing import print_table  # noqa: E402
from aquasurf_fast.tasks import load_task  # noqa: E402

# A busy process spins until it is stopped, or on its own after this many seconds, so that none
# outlives the benchmark even if the benchmark is killed.
SPIN_LIMIT_S = 900
SPIN = f"import time\nend = time.monotonic() + {SPIN_LIMIT_S}\nwhile time.monotonic() < end:\n    pass\n"

SETTINGS = {"before (torch default threads)": None, "after (thread policy)": "auto"}


class BusyCores:
    """``n`` processes that each keep one core busy while the block runs."""

    def __init__(self, n: int):
        self.n = n
        self.procs = []

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(self.n)]
        time.sleep(0.5)  # let them get going before the first timing
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []


def benchmark_classes(n: int):
    """``n`` finite classes of the benchmark space, evenly spread over its classes."""
    classes = aq.schema_classes(aq.BENCHMARK_SCHEMA, unary=aq.BENCHMARK_UNARY_OPS)
    names = classes.representative_names(only_finite=True)
    return [names[int(i)] for i in np.linspace(0, len(names) - 1, n)]


def rate(task, names, x, y, threads, repeats, max_seconds):
    """Median candidates per second of fisher_features_for after a warm-up run, and the number of
    timed runs: ``repeats``, or fewer once they have taken ``max_seconds`` (at least one)."""
    aq.fisher_features_for(task.build, names[:4], x, y, progress=False, threads=threads)
    times = []
    while len(times) < repeats and sum(times) < max_seconds:
        start = time.perf_counter()
        aq.fisher_features_for(task.build, names, x, y, progress=False, threads=threads)
        times.append(time.perf_counter() - start)
    return len(names) / statistics.median(times), len(times)


def check_equal(task, names, x, y):
    before = aq.fisher_features_for(task.build, names, x, y, progress=False, threads=None)
    after = aq.fisher_features_for(task.build, names, x, y, progress=False, threads="auto")
    assert (before[1] == after[1]).all(), "the settings disagree on which candidates are valid"
    np.testing.assert_array_equal(after[0], before[0])
    return int(before[1].sum())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classes", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--busy", type=int, default=os.cpu_count() or 1,
                    help="busy processes for the loaded runs (default: one per core)")
    ap.add_argument("--max-seconds", type=float, default=60.0,
                    help="no further repeats of a measurement once it has taken this long")
    args = ap.parse_args()
    task = load_task("mnist1d")
    x, y = task.fisher_batch()
    names = benchmark_classes(args.classes)
    n_valid = check_equal(task, names, x, y)
    print(f"{len(names)} benchmark-space classes ({n_valid} valid), mnist1d task, Fisher batch "
          f"{x.shape[0]}; torch {torch.__version__}, {torch.get_num_threads()} threads by default, "
          f"{os.cpu_count()} cores, load average before the run {os.getloadavg()[0]:.1f}")
    print("features identical with and without the thread policy")

    rates, runs = {}, {}
    for load in ("idle", "busy"):
        with BusyCores(args.busy if load == "busy" else 0):
            for label, threads in SETTINGS.items():
                rates[label, load], runs[label, load] = rate(task, names, x, y, threads,
                                                             args.repeats, args.max_seconds)
    rows = []
    for label in SETTINGS:
        idle, busy = rates[label, "idle"], rates[label, "busy"]
        rows.append([label, f"{idle:.1f}", f"{busy:.1f}", f"{busy / idle:.2f}",
                     f"{runs[label, 'idle']}, {runs[label, 'busy']}"])
    (before, after) = SETTINGS
    rows.append(["after / before", f"{rates[after, 'idle'] / rates[before, 'idle']:.2f}x",
                 f"{rates[after, 'busy'] / rates[before, 'busy']:.2f}x", "", ""])
    print_table(f"fisher_features_for, candidates per second (median of the timed runs); "
                f"busy: {args.busy} spinning processes",
                ["threads", "idle", "busy", "busy / idle", "timed runs"], rows)
    print(f"load average after the run {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
