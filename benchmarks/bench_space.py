"""Large search spaces in a study: binary(unary(unary(x)),unary(unary(x))) over all 31 unary
operators (6,464,647 names, 2,271,270 classes), against today's name path (``Study.add_functions``
on the list of names) measured on the first 100,000 names and extrapolated.

Measured: ``aquasurf init`` (time, peak memory of a fresh process, file size), ``status`` and
``top`` (in process and as commands), ``class_of`` for a name, choosing a 5,000-class Fisher pool,
and, once the pool has Fisher features (the mnist1d task) and its embedding exists, the median
latency of a suggestion. Correctness first: class lookups and member lists of sampled names equal
``aq.equivalence_classes`` over the same names.

Run: python benchmarks/bench_space.py [--workdir DIR] [--pool 5000] [--skip-fisher]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import aquasurf_fast as aq

sys.path.insert(0, os.path.dirname(__file__))
from _timing import print_table  # noqa: E402

SCHEMA = "binary(unary(unary(x)),unary(unary(x)))"
NAME_PATH_SAMPLE = 100_000

_CHILD = """
import resource, sys, time
import aquasurf_fast as aq
t = time.perf_counter()
study = aq.Study(sys.argv[1], task="mnist1d")
{body}
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def in_fresh_process(path: str, body: str):
    """(seconds, peak RSS bytes) of creating a study at ``path`` with ``body`` in a new process."""
    out = subprocess.run([sys.executable, "-c", _CHILD.format(body=body), path], check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[-2]), int(out[-1])


def file_size(path: str) -> int:
    return sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))


def check_lookups(study, n_samples: int = 3000) -> None:
    """class_of and members agree with aq.equivalence_classes on a sample of the space's names:
    names the engine groups together have one class and appear in its member list, and names it
    separates have different classes."""
    space = aq.SchemaSpace(SCHEMA, unary=aq.UNARY_OPS)
    rng = np.random.default_rng(0)
    sample = [space[int(i)] for i in rng.choice(len(space), n_samples, replace=False)]
    seen = {}
    for group in aq.equivalence_classes(sample):
        cls = study.class_of(group[0])
        assert all(study.class_of(n) == cls for n in group), group
        assert cls not in seen, f"{group[0]} and {seen.get(cls)} are different functions in one class"
        seen[cls] = group[0]
    for group in aq.equivalence_classes(sample)[:20]:
        members = set(study.members(group[0]))
        assert set(group) <= members, group


def timed_command(args) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "aquasurf_fast.cli", *args], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", help="where the study files go (default: a temporary folder)")
    ap.add_argument("--pool", type=int, default=5000)
    ap.add_argument("--skip-fisher", action="store_true",
                    help="stop before featurizing the pool (minutes on 2 cores)")
    args = ap.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix="aqf-space-")
    os.makedirs(work, exist_ok=True)
    big, small = os.path.join(work, "big.db"), os.path.join(work, "names.db")
    from aquasurf_fast.study.store import remove_study_files

    for path in (big, small):
        remove_study_files(path)

    n_names = len(aq.SchemaSpace(SCHEMA, unary=aq.UNARY_OPS))
    scale = n_names / NAME_PATH_SAMPLE
    init_s, init_rss = in_fresh_process(
        big, f"study.add_schema({SCHEMA!r}, unary=aq.UNARY_OPS)")
    names_s, names_rss = in_fresh_process(
        small, f"study.add_functions(aq.SchemaSpace({SCHEMA!r}, unary=aq.UNARY_OPS)[:{NAME_PATH_SAMPLE}])")
    study = aq.Study(big)
    check_lookups(study)
    counts = study.counts()
    print(f"{counts['names']:,} names, {counts['classes']:,} classes; lookups and members checked "
          "against aq.equivalence_classes")
    print_table("init: 6,464,647 names", ["path", "seconds", "peak memory", "study file"], [
        ["schema-backed (ours)", f"{init_s:.1f}", f"{init_rss / 2**30:.2f} GB",
         f"{file_size(big) / 2**20:.0f} MB"],
        [f"names ({NAME_PATH_SAMPLE:,} measured, x{scale:.1f})", f"{names_s * scale:.0f}",
         f"> {names_rss / 2**30:.2f} GB", f"{file_size(small) * scale / 2**30:.1f} GB"],
    ])

    name = "max(zero(zero(x)),relu(identity(x)))"
    lookups = []
    for _ in range(21):
        start = time.perf_counter()
        study.class_of(name)
        lookups.append(time.perf_counter() - start)
    small_study = aq.Study(small)
    small_lookups = []
    for _ in range(21):
        start = time.perf_counter()
        small_study.class_of(aq.SchemaSpace(SCHEMA, unary=aq.UNARY_OPS)[12345])
        small_lookups.append(time.perf_counter() - start)
    with contextlib.redirect_stdout(io.StringIO()):
        from aquasurf_fast.cli import main as cli

        start = time.perf_counter()
        cli(["status", big])
        status_s = time.perf_counter() - start
        start = time.perf_counter()
        cli(["top", big])
        top_s = time.perf_counter() - start
    start = time.perf_counter()
    joined = study.choose_pool(args.pool)
    pool_s = time.perf_counter() - start
    print_table("reading and choosing", ["what", "ours", "name path"], [
        ["status (in process / command)", f"{status_s:.2f} s / {timed_command(['status', big]):.2f} s", ""],
        ["top (in process / command)", f"{top_s:.2f} s / {timed_command(['top', big]):.2f} s", ""],
        ["class_of, median of 21", f"{statistics.median(lookups) * 1e3:.2f} ms",
         f"{statistics.median(small_lookups) * 1e3:.2f} ms (a functions-table row)"],
        [f"choose a {args.pool:,}-class pool of {counts['classes']:,}", f"{pool_s:.1f} s ({joined:,} joined, "
         "baselines included)", ""],
    ])
    if args.skip_fisher:
        return
    start = time.perf_counter()
    study.featurize(pool=args.pool, progress=True, embed=False)
    fisher_s = time.perf_counter() - start
    start = time.perf_counter()
    study.surrogate()
    embed_s = time.perf_counter() - start
    for name in study.suggest(8):  # the baselines, with made-up scores so that the surrogate fits
        study.tell(name, 0.5 + 0.01 * len(name))
    latencies = []
    for _ in range(21):
        start = time.perf_counter()
        (claim,) = study.suggest(1)
        latencies.append(time.perf_counter() - start)
        study.tell(claim, 0.4 + 0.001 * (len(claim) % 50))
    print_table(f"suggestions with a {study.counts()['candidates']:,}-candidate pool",
                ["step", "seconds"], [
                    ["Fisher features of the pool (mnist1d)", f"{fisher_s:.1f}"],
                    ["UMAP embedding (once)", f"{embed_s:.1f}"],
                    ["suggest, median of 21 (each fits the regressor)", f"{statistics.median(latencies):.3f}"],
                ])


if __name__ == "__main__":
    main()
