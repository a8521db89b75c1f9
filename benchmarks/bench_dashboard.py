"""How fast the dashboard's page loads on a 2.27-million-class study.

Measured on binary(unary(unary(x)),unary(unary(x))) over all 31 unary operators (6.46M names,
2.27M classes; ``aquasurf init``, as bench_driver.py builds it) with a few dozen results told: the
page (GET /, every view inlined, the map's density of the untrained classes included) from a
fresh server, then again from a warm one (the map kept), and /api/state, which the page polls.
The baseline is what a map of every class would read first: every class's output projection
(``Store.projections``), against the sample the density is drawn from.

Correctness first: the density's estimate of the untrained classes with finite outputs is within
2% of their count, and the counts equal the study's.

Run: python benchmarks/bench_dashboard.py --workdir /tmp/bigdash [--skip-init]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

import aquasurf_fast as aq
from aquasurf_fast.defaults import expression_name

sys.path.insert(0, os.path.dirname(__file__))
from _study_sql import sql  # noqa: E402
from _timing import median_seconds, print_table  # noqa: E402

SCHEMA = "binary(unary(unary(x)),unary(unary(x)))"
N_RESULTS = 40
TARGET_S = 1.0


def build(path: str) -> None:
    """The large study (``aquasurf init``), then ``tell_results``."""
    subprocess.run([sys.executable, "-m", "aquasurf_fast.cli", "init", path, "--force", "--task",
                    "mnist1d", "--schema", SCHEMA, "--unary", "all", "--no-progress"], check=True,
                   stdout=subprocess.DEVNULL)
    tell_results(path)


def tell_results(path: str) -> None:
    """The baselines and ``N_RESULTS`` names of the space told made-up scores (no training)."""
    study = aq.Study(path)
    ops, binary = aq.UNARY_OPS, aq.BINARY_OPS
    names = [expression_name(b) for b in study.settings["baselines"]] + [
        f"{binary[i % 7]}({ops[i % 31]}({ops[(3 * i) % 31]}(x)),{ops[(7 * i) % 31]}({ops[(11 * i) % 31]}(x)))"
        for i in range(N_RESULTS)]
    for i, name in enumerate(names):
        study.tell(name, 0.5 + 0.4 * ((i * 37) % 101) / 101, test_acc=0.5)
    study.close()


def get_seconds(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as r:
        r.read()
    return time.perf_counter() - start


def check(path: str) -> None:
    from aquasurf_fast.dashboard import StudyState

    study = aq.Study(path)
    snap = StudyState(path).snapshot()
    counts = study.counts()
    untrained = sql(study, "SELECT count(*) FROM classes WHERE out_finite = 1 AND "
                                  "projection IS NOT NULL AND status NOT IN ('done', 'running')")[0][0]
    assert snap["study"]["counts"] == {k: counts[k] for k in ("done", "running", "pending", "failed")}
    estimate = snap["map"]["density"]["total"]
    assert abs(estimate - untrained) <= 0.02 * untrained, (estimate, untrained)
    print(f"counts equal the study's; the density stands for {estimate:,} untrained classes "
          f"(exactly {untrained:,}) from {len(snap['progress']['x'])} results")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default="/tmp/aqf-dashboard")
    ap.add_argument("--skip-init", action="store_true", help="reuse WORKDIR/big.db")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    path = os.path.join(args.workdir, "big.db")
    if not args.skip_init:
        start = time.perf_counter()
        build(path)
        print(f"built {path} in {time.perf_counter() - start:.0f} s")
    elif not aq.Study(path).counts()["done"]:
        tell_results(path)
    check(path)
    from aquasurf_fast.dashboard import make_server
    from aquasurf_fast.dashboard.candidate_map import PROJECTION_SAMPLE
    from aquasurf_fast.study.store import Store

    cold = []
    for _ in range(3):  # each a fresh server: nothing kept from a visit before
        srv = make_server(path, port=0)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{srv.server_address[1]}"
        cold.append(get_seconds(base + "/"))
        srv.shutdown()
        srv.server_close()
    srv = make_server(path, port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    warm = median_seconds(lambda: get_seconds(base + "/"), repeats=7)
    poll = median_seconds(lambda: get_seconds(base + "/api/state"), repeats=7)
    script = median_seconds(lambda: get_seconds(base + "/plotly.min.js"), repeats=3)
    srv.shutdown()
    srv.server_close()
    store = Store(path)

    def read_every_projection():
        store.__dict__.pop("_projections", None)  # the store keeps them: read them afresh
        return store.projections()

    every = median_seconds(read_every_projection, repeats=3)
    cold_s = statistics.median(cold)
    print_table(f"dashboard page load, {aq.Study(path).counts()['classes']:,} classes",
                ["what", "seconds", "note"],
                [["baseline: every class's projection read", f"{every:.3f}", "a map of every class"],
                 ["GET / from a fresh server (median of 3)", f"{cold_s:.3f}",
                  f"{every / cold_s:.1f}x faster than the baseline; target {TARGET_S:g} s"],
                 ["GET / from a warm server (median of 7)", f"{warm:.3f}", "the map kept"],
                 ["GET /api/state, the page's poll (median of 7)", f"{poll:.3f}", ""],
                 ["GET /plotly.min.js (median of 3)", f"{script:.3f}", "once; the browser caches it"],
                 ["classes sampled for the density", f"{PROJECTION_SAMPLE:,}", "by primary key"]])


if __name__ == "__main__":
    main()
