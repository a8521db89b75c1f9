"""What the search driver costs on the 6.46-million-name study, beside the work it drives.

Measured: ``aquasurf init`` of binary(unary(unary(x)),unary(unary(x))) over all 31 unary operators
(a fresh process: wall and CPU seconds); ``Study.counts()``, which the search loop reads at every
turn, against the scans it used to run (classes by status, explicit names, candidates); ``aquasurf
featurize --pool 300`` split into the Fisher computation and the driver's part around it; the
nearest classes a growth chooses among (``nearest_rows`` against numpy's distances and
``argpartition``); and the driver's share of a core during ``aquasurf search --workers 2 --grow
20`` while its workers train.

Correctness first: on a small study that processes claimed, told, failed and released, and on the
large study after init, the kept counts equal a recount of the tables; ``nearest_rows`` returns
the rows of its definition.

Run: python benchmarks/bench_driver.py --workdir /tmp/bigstudy [--skip-init] [--search-s 180]
Timings on a shared machine are noisy: CPU seconds are printed beside wall seconds.
"""
from __future__ import annotations

import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import aquasurf_fast as aq

sys.path.insert(0, os.path.dirname(__file__))
from _study_sql import sql  # noqa: E402
from _timing import print_table  # noqa: E402

SCHEMA = "binary(unary(unary(x)),unary(unary(x)))"
TICK = os.sysconf("SC_CLK_TCK")


def recount(study) -> dict:
    """Classes by status and names by scanning the tables: what ``counts()`` read before it kept
    them (plus the spaces' names, which it reads once per process)."""
    rows = dict(sql(study, "SELECT status, count(*) FROM classes GROUP BY status"))
    out = {s: int(rows.get(s, 0)) for s in ("pending", "running", "done", "failed")}
    out["classes"] = sum(out.values())
    out["names"] = (int(sql(study, "SELECT count(*) FROM functions")[0][0])
                    + sum(int(np.count_nonzero(np.frombuffer(b, dtype="<i4")))
                          for b, in sql(study, "SELECT class_ids FROM space_classes")))
    return out


def old_counts(study) -> None:
    """The scans ``counts()`` ran at every turn of the loop before (status, names, candidates)."""
    sql(study, "SELECT status, count(*) FROM classes GROUP BY status")
    sql(study, "SELECT count(*) FROM functions")
    study.store.count_in_scope(study.features.candidate_scope())


def check_counts(study) -> None:
    kept = study.counts()
    expected = recount(study)
    assert {k: kept[k] for k in expected} == expected, (kept, expected)


def check_small(work: str) -> None:
    """Claims, results, failures and releases on the benchmark space: counts equal a recount."""
    from aquasurf_fast.study.store import remove_study_files

    path = os.path.join(work, "small.db")
    remove_study_files(path)
    study = aq.Study(path, order="exhaustive", max_retries=0)
    study.add_schema("binary(unary(x),unary(x))", unary=aq.BENCHMARK_UNARY_OPS)
    claims = study.suggest(6)
    study.tell(claims[0], 0.5)
    study.fail(claims[1], "a failure")
    study.release(claims[2:4])
    check_counts(study)
    assert (study.counts()["done"], study.counts()["failed"], study.counts()["running"]) == (1, 1, 2)


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a live process (from /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def children_of(pid: int):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def time_init(big: str):
    """(wall seconds, CPU seconds) of ``aquasurf init`` of the large space in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "aquasurf_fast.cli", "init", big, "--force", "--task",
                    "mnist1d", "--schema", SCHEMA, "--unary", "all", "--no-progress"], check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def time_featurize(path: str, pool: int) -> dict:
    """``Study.featurize(pool=pool)`` as ``aquasurf featurize --pool`` runs it, split into the
    Fisher computation, the embedding, and the rest (the driver: choosing the pool, reading and
    writing the study)."""
    from aquasurf_fast.study.feature_service import FeatureService
    from aquasurf_fast.study.ranking import Ranker

    spent = {"fisher": 0.0, "embedding": 0.0}

    def timed(part, method):
        def call(self, *args, **kwargs):
            start = time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                spent[part] += time.perf_counter() - start
        return call

    fisher, embed = FeatureService._compute_fisher, Ranker.prepare_embedding
    FeatureService._compute_fisher = timed("fisher", fisher)
    Ranker.prepare_embedding = timed("embedding", embed)
    try:
        study = aq.Study(path)
        cpu, start = time.process_time(), time.perf_counter()
        done = study.featurize(pool=pool, progress=False)
        spent["total"] = time.perf_counter() - start
        spent["cpu"] = time.process_time() - cpu
    finally:
        FeatureService._compute_fisher, Ranker.prepare_embedding = fisher, embed
    spent["classes"] = done["fisher"]
    spent["candidates"] = study.counts()["candidates"]
    return spent


def plain_distances(target, points, exclude):
    d2 = ((points.astype(np.float64) - target.astype(np.float64)) ** 2).sum(axis=1)
    d2[exclude] = np.inf
    return d2


def nearest_plain(target, points, k, exclude):
    """``nearest_rows`` as it was: every float64 distance by numpy, ``argpartition``, sorted."""
    d2 = plain_distances(target, points, exclude)
    rows = np.argpartition(d2, k - 1)[:k]
    return rows[np.lexsort((rows, d2[rows]))]


def time_nearest(study, k: int = 400, repeats: int = 5):
    """(plain seconds, ours, median of ``repeats``): the ``k`` classes nearest a pool class over
    the space's coordinates, as a growth asks three times (``GROW_SHORTLIST`` x 20 = 400)."""
    from aquasurf_fast.surrogate.coverage import nearest_rows

    ids, coords, in_pool = study.store.projections()
    target = coords[int(np.flatnonzero(in_pool)[0])]
    # Its definition: nearest first, ties in the order of the rows.
    want = np.lexsort((np.arange(len(coords)), plain_distances(target, coords, in_pool)))[:k]
    got = nearest_rows(target, coords, k, in_pool)
    assert got.tolist() == want.tolist(), "nearest_rows differs from its definition"
    times = {}
    for label, fn in (("plain", nearest_plain), ("ours", nearest_rows)):
        spent = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(target, coords, k, in_pool)
            spent.append(time.perf_counter() - start)
        times[label] = statistics.median(spent)
    return times["plain"], times["ours"]


def driver_share(path: str, window_s: float, budget: int) -> dict:
    """Run ``aquasurf search --workers 2 --grow 20`` and, from its first result on, sample the CPU
    seconds of the driver process and of its workers, and the results, for ``window_s`` seconds;
    then stop it with Ctrl-C (its claims are given back). Returns the totals over the window and
    (``half``: seconds, driver, workers, results) over its second half."""
    proc = subprocess.Popen([sys.executable, "-m", "aquasurf_fast.cli", "search", path,
                             "--workers", "2", "--grow", "20", "--budget", str(budget),
                             "--no-progress"], stdout=subprocess.DEVNULL,
                            # Ctrl-C is how the window ends: heard even when this benchmark runs
                            # in the background, whose children start with SIGINT ignored.
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    reader = aq.Study(path)
    done_at_start = reader.counts()["done"]
    try:
        while proc.poll() is None and reader.counts()["done"] == done_at_start:
            time.sleep(0.5)
        if proc.poll() is not None:
            raise RuntimeError(f"the search ended before a result came in (exit code "
                               f"{proc.returncode}); the study holds {done_at_start} results: "
                               "give a --budget above that, or a fresh --workdir")
        workers = children_of(proc.pid)
        start, driver0 = time.perf_counter(), cpu_of(proc.pid)
        last = {w: cpu_of(w) for w in workers}  # a worker's CPU when last seen (it may exit)
        workers0 = sum(last.values())
        done0 = reader.counts()["done"]
        samples = []
        while proc.poll() is None and time.perf_counter() - start < window_s:
            time.sleep(1.0)
            last.update({w: cpu_of(w) for w in workers if os.path.exists(f"/proc/{w}")})
            samples.append((time.perf_counter() - start, cpu_of(proc.pid) - driver0,
                            sum(last.values()) - workers0, reader.counts()["done"] - done0))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        proc.wait(120)
    if len(samples) < 2:
        raise RuntimeError("the search ended before two seconds of it could be sampled: raise --budget")
    # The second half alone: the first includes the driver's start-up work after its first result
    # (importing scikit-learn and umap-learn, loading their compiled code, the first layouts).
    mid = samples[len(samples) // 2]
    end = samples[-1]
    return {"wall": end[0], "driver": end[1], "workers": end[2], "results": end[3],
            "half": tuple(b - a for a, b in zip(mid, end)), "grown": reader.counts()["pool"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", help="where the study files go (default: a temporary folder)")
    ap.add_argument("--skip-init", action="store_true", help="reuse WORKDIR/big.db")
    ap.add_argument("--pool", type=int, default=300)
    ap.add_argument("--search-s", type=float, default=180.0,
                    help="seconds of search sampled from the first result on")
    ap.add_argument("--budget", type=int, default=600,
                    help="the search's budget: more results than the window sees, so that it runs to its end")
    args = ap.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix="aqf-driver-")
    os.makedirs(work, exist_ok=True)
    big = os.path.join(work, "big.db")
    check_small(work)
    init = None if args.skip_init else time_init(big)
    study = aq.Study(big)
    first = time.perf_counter()
    study.counts()
    first = time.perf_counter() - first
    check_counts(study)
    print(f"counts() equal a recount on a study that processes claimed, told, failed and released "
          f"and on {study.counts()['classes']:,} classes after init")
    old = []
    for _ in range(5):
        start = time.perf_counter()
        old_counts(study)
        old.append(time.perf_counter() - start)
    new = []
    for _ in range(21):
        start = time.perf_counter()
        study.counts()
        new.append(time.perf_counter() - start)
    rows = [["counts(): scans of before (median of 5)", f"{statistics.median(old) * 1e3:.1f} ms", ""],
            ["counts(): kept (median of 21)", f"{statistics.median(new) * 1e3:.2f} ms",
             f"{statistics.median(old) / statistics.median(new):.0f}x faster"],
            ["counts(): first call of a process", f"{first * 1e3:.0f} ms", "reads the space's names once"]]
    if init is not None:
        rows.insert(0, ["aquasurf init (fresh process)", f"{init[0]:.1f} s wall, {init[1]:.1f} s CPU",
                        "target 60 s"])
    print_table("driver bookkeeping, 6,464,647 names", ["what", "ours", "note"], rows)
    feat = time_featurize(big, args.pool)
    plain, ours = time_nearest(aq.Study(big))
    print_table("the 400 classes nearest a pool class, over the space's coordinates (3 per growth)",
                ["what", "seconds (median of 5)", "ratio"],
                [["every distance, argpartition (the definition)", f"{plain:.4f}", ""],
                 ["nearest_rows (the same rows)", f"{ours:.4f}", f"{plain / ours:.1f}x faster"]])
    driver = feat["total"] - feat["fisher"] - feat["embedding"]
    print_table(f"featurize --pool {args.pool}: {feat['classes']:,} classes featurized, "
                f"{feat['candidates']:,} candidates", ["part", "seconds"], [
                    ["total (target < 60 s idle)", f"{feat['total']:.1f} ({feat['cpu']:.1f} CPU)"],
                    ["Fisher features", f"{feat['fisher']:.1f}"],
                    ["UMAP embedding", f"{feat['embedding']:.1f}"],
                    ["the driver: pool rounds, reads and writes", f"{driver:.1f}"]])
    share = driver_share(big, args.search_s, args.budget)
    half = share["half"]
    print_table(f"search --workers 2 --grow 20: {share['wall']:.0f} s from the first result, "
                f"{share['results']} results ({half[3]} in the last {half[0]:.0f} s)",
                ["process", "CPU seconds", "share of a core", "last half: share", "CPU s per result"], [
                    ["driver (target < 10%)", f"{share['driver']:.1f}", f"{share['driver'] / share['wall']:.1%}",
                     f"{half[1] / half[0]:.1%}", f"{half[1] / max(half[3], 1):.2f}"],
                    ["its two workers", f"{share['workers']:.1f}", f"{share['workers'] / share['wall']:.1%}",
                     f"{half[2] / half[0]:.1%}", ""]])


if __name__ == "__main__":
    main()
