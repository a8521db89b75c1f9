"""Scaling on Ray: featurization and a small search with 1 and with 2 concurrent Ray tasks.

Both run the built-in mnist1d task on classes of the benchmark space, on a local Ray instance
started once (its start-up is reported apart). Each task gets one CPU and one thread.

Order: featurize a few classes in this process and on Ray and check the features are identical;
then time featurizing the classes of --fisher random names, and searching --budget trainings among
them (the 8 baselines first, then surrogate suggestions), each with 1 and with 2 tasks at once.

    python benchmarks/bench_ray.py                   # about 4 minutes on 2 cores
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import aquasurf_fast as aq  # noqa: E402
from _study_sql import sql  # noqa: E402
from _timing import print_table  # noqa: E402


def new_study(tmp: str, tag: str, names):
    study = aq.Study(os.path.join(tmp, f"{tag}.db"), task="mnist1d")
    study.add_functions(names)
    return study


def fisher_rows(study):
    return sql(study, "SELECT canonical, fisher_ok, fisher_feat FROM classes "
                             "WHERE out_finite = 1 ORDER BY canonical")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fisher", type=int, default=512, help="names whose classes are featurized and searched (default 512)")
    p.add_argument("--budget", type=int, default=16, help="trainings per search (default 16)")
    args = p.parse_args()

    import ray
    from aquasurf_fast.execution.ray_executor import RayExecutor

    names = aq.enumerate_schema(aq.BENCHMARK_SCHEMA, unary=aq.BENCHMARK_UNARY_OPS)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    startup = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        # Correctness: the same features in this process and on Ray.
        few = list(rng.choice(names, size=24, replace=False))
        here, there = new_study(tmp, "here", few), new_study(tmp, "there", few)
        here.featurize(progress=False, embed=False, chunk=8)
        there.featurize(progress=False, embed=False, chunk=8, executor=RayExecutor())
        assert fisher_rows(here) == fisher_rows(there), "Ray features differ from in-process ones"
        print(f"check: {len(fisher_rows(here))} classes featurized on Ray equal the in-process "
              "features bit for bit")

        subset = list(rng.choice(names, size=args.fisher, replace=False))
        rows = []
        for tasks in (1, 2):
            study = new_study(tmp, f"featurize{tasks}", subset)
            n = study.counts()["candidates"]
            t = time.perf_counter()
            study.featurize(progress=False, embed=False, chunk=32,
                            executor=RayExecutor(max_concurrent=tasks))
            rows.append([f"featurize {n} classes", tasks, f"{time.perf_counter() - t:.1f}"])
        # Both searches start from one featurized and embedded study, copied.
        base = new_study(tmp, "search", subset)
        base.featurize(progress=False, chunk=64, executor=RayExecutor())
        base.close()
        for tasks in (1, 2):
            path = os.path.join(tmp, f"search{tasks}.db")
            shutil.copy(os.path.join(tmp, "search.db"), path)
            study = aq.Study(path)
            t = time.perf_counter()
            stats = study.run(budget=args.budget, executor=RayExecutor(max_concurrent=tasks),
                              progress=False)
            assert stats["done"] == args.budget, stats
            rows.append([f"search, {args.budget} trainings", tasks,
                         f"{time.perf_counter() - t:.1f}"])
    ray.shutdown()
    for i in range(0, len(rows), 2):
        rows[i].append("1.00")
        rows[i + 1].append(f"{float(rows[i][2]) / float(rows[i + 1][2]):.2f}")
    print_table(f"Ray on {os.cpu_count()} cores (Ray start-up {startup:.1f} s, not included)",
                ["work", "tasks at once", "seconds", "speed-up"], rows)


if __name__ == "__main__":
    main()
