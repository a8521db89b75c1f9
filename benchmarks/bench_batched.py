"""Fisher-feature throughput, one candidate per pass against many per pass (fisher.batched):
``fisher_features_for`` with ``candidates_per_pass=1`` and with "auto", on mnist1d, digits and
All-CNN-C (CIFAR-100 shapes) at batch 32, and mnist1d at its task's Fisher batch (256, the batch of
the issue's reference rate), on an idle machine and with every core held by busy processes that
this script starts and stops itself.

It first checks that both give the same features, validity and reasons (bit for bit), then warms
up, then reports the median candidates per second of repeats and the ratios: batched over one at a
time, busy over idle; and per candidate of the idle runs the CPU time and the batched page faults.
``GLIBC_TUNABLES=glibc.malloc.perturb=0`` in the environment (a malloc setting that changes
nothing) leaves glibc's own thresholds in force, for a comparison with ``runtime.memory``.

    python benchmarks/bench_batched.py [--classes 64] [--repeats 3] [--device cpu]
    python benchmarks/bench_batched.py --cases mnist1d --classes 32
"""
import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import aquasurf_fast as aq  # noqa: E402
from _timing import print_table, sync  # noqa: E402
from bench_threads import BusyCores, benchmark_classes  # noqa: E402
from aquasurf_fast.tasks import load_task  # noqa: E402
from aquasurf_fast.tasks.models import all_cnn_c  # noqa: E402

MODES = {"one at a time": 1, "batched": "auto"}


def cases(batch: int, n_classes: int):
    """(name, build, inputs, targets, number of classes) per case."""
    out = []
    for task_name in ("mnist1d", "digits"):
        task = load_task(task_name)
        x, y = task.fisher_batch()
        out.append((f"{task_name} b{batch}", task.build, x[:batch], y[:batch], n_classes))
        if task_name == "mnist1d" and x.shape[0] != batch:
            out.append((f"mnist1d b{x.shape[0]} (task batch)", task.build, x, y, n_classes))
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(batch, 3, 32, 32, generator=gen), torch.randint(0, 100, (batch,), generator=gen)
    # All-CNN-C takes seconds per candidate: a few classes are enough for a rate.
    out.append((f"All-CNN-C b{batch}", all_cnn_c, x, y, max(2, n_classes // 16)))
    return out


def run(build, names, x, y, per_pass, device):
    out = aq.fisher_features_for(build, names, x, y, progress=False, device=device,
                                 candidates_per_pass=per_pass)
    sync(device)
    return out


def check_same(build, names, x, y, device) -> int:
    one = run(build, names, x, y, 1, device)
    many = run(build, names, x, y, "auto", device)
    assert one[2] == many[2], "the reasons of invalid candidates differ"
    np.testing.assert_array_equal(many[1], one[1])
    if torch.device(device).type == "cpu":
        np.testing.assert_array_equal(many[0], one[0])
    else:  # a GPU's kernels may round differently with the batch size (fisher.batched)
        np.testing.assert_allclose(many[0], one[0], atol=2e-3)
    return int(one[1].sum())


def rate(build, names, x, y, per_pass, device, repeats, max_seconds):
    """Median candidates per second after a warm-up run, and per candidate the median CPU
    milliseconds of this process (all its threads; the spinners are other processes: the work
    done, which other load on a shared machine changes far less than the wall time) and the
    median page faults (memory handed back to the kernel and faulted in again, zero-filled)."""
    run(build, names[:4], x, y, per_pass, device)
    times, cpu, faults = [], [], []
    while len(times) < repeats and sum(times) < max_seconds:
        start, start_cpu = time.perf_counter(), time.process_time()
        start_faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        run(build, names, x, y, per_pass, device)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start_faults)
    n = len(names)
    return n / statistics.median(times), 1e3 * statistics.median(cpu) / n, statistics.median(faults) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classes", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--busy", type=int, default=os.cpu_count() or 1,
                    help="busy processes for the loaded runs (default: one per core)")
    ap.add_argument("--max-seconds", type=float, default=60.0,
                    help="no further repeats of a measurement once it has taken this long")
    ap.add_argument("--cases", nargs="+", help="only the cases whose name contains one of these words")
    ap.add_argument("--no-busy", action="store_true", help="idle runs only (on a GPU the cores matter less)")
    args = ap.parse_args()
    names = benchmark_classes(args.classes)
    todo = cases(args.batch, args.classes)
    if args.cases:
        todo = [c for c in todo if any(w.lower() in c[0].lower() for w in args.cases)]
    print(f"device {args.device}, torch {torch.__version__}, {os.cpu_count()} cores, load average "
          f"before the run {os.getloadavg()[0]:.1f}")
    for name, build, x, y, n in todo:
        n_valid = check_same(build, names[:n], x, y, args.device)
        print(f"{name}: {n} classes ({n_valid} valid), batched features identical to one at a time")
    loads = ("idle",) if args.no_busy else ("idle", "busy")
    rates, cpu_ms, faults = {}, {}, {}
    for load in loads:
        with BusyCores(args.busy if load == "busy" else 0):
            for name, build, x, y, n in todo:
                for mode, per_pass in MODES.items():
                    rates[name, mode, load], cpu_ms[name, mode, load], faults[name, mode, load] = rate(
                        build, names[:n], x, y, per_pass, args.device, args.repeats, args.max_seconds)
    rows = []
    for name, *_ in todo:
        r = {(m, load): rates.get((name, m, load), float("nan")) for m in MODES for load in ("idle", "busy")}
        one, many = MODES
        rows.append([name, f"{r[one, 'idle']:.3g}", f"{r[many, 'idle']:.3g}",
                     f"{r[many, 'idle'] / r[one, 'idle']:.2f}x", f"{r[one, 'busy']:.3g}",
                     f"{r[many, 'busy']:.3g}", f"{r[many, 'busy'] / r[one, 'busy']:.2f}x",
                     f"{r[one, 'busy'] / r[one, 'idle']:.2f}", f"{r[many, 'busy'] / r[many, 'idle']:.2f}",
                     f"{cpu_ms[name, one, 'idle']:.1f}", f"{cpu_ms[name, many, 'idle']:.1f}",
                     f"{faults[name, many, 'idle']:.0f}"])
    print_table(f"fisher_features_for, candidates per second (median of timed runs); busy: {args.busy} "
                "spinning processes", ["case", "one idle", "batched idle", "ratio", "one busy",
                                       "batched busy", "ratio", "one busy/idle", "batched busy/idle",
                                       "one CPU ms", "batched CPU ms", "batched page faults"], rows)
    print(f"load average after the run {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
