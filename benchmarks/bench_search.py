"""Suggestion latency: the cached embedding (ours) against a UMAP refit per suggestion (original).

The candidate set is the benchmark space's classes with finite outputs (``aq.output_features`` of
``binary(unary(x),unary(x))`` over the 27 benchmark unary ops), or a synthetic set of the same size
with --synthetic. Fisher features are synthetic CDF-like rows (their dimension is a flag): the cost
of a suggestion does not depend on their values, and computing real ones needs a model and minutes.

Order: check that both methods give the same suggestion, warm up, then take medians.

    python benchmarks/bench_search.py                 # about 3 minutes on 2 cores
    python benchmarks/bench_search.py --refits 1      # quicker, one refit timed
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import aquasurf_fast as aq  # noqa: E402
from aquasurf_fast.surrogate import Surrogate, compute_embedding, make_regressor  # noqa: E402


def candidate_features(args):
    rng = np.random.default_rng(0)
    if args.synthetic or not hasattr(aq, "output_features"):
        n = args.n or 2500
        out = rng.normal(size=(n, 1000)).astype(np.float32)
        source = f"synthetic ({n})"
    else:
        names = aq.enumerate_schema("binary(unary(x),unary(x))", unary=aq.BENCHMARK_UNARY_OPS)
        classes = aq.equivalence_classes(names)
        out = aq.output_features([c[0] for c in classes])
        out = out[np.isfinite(out).all(axis=1)]
        if args.n:
            out = out[:args.n]
        source = f"benchmark space: {len(names)} names, {len(classes)} classes, {len(out)} finite"
    fisher = np.sort(rng.random((out.shape[0], args.fisher_dim)), axis=1).astype(np.float32)
    return out, fisher, source


def suggest_ours(surrogate, out, fisher, idx, scores, pending):
    pred = surrogate.fit(out, fisher, idx, scores).predict()
    return int(pending[np.argmax(pred[pending])])


def suggest_refit(out, fisher, idx, scores, pending, random_state=42):
    """The original approach: embed from scratch, then fit the regressor, for every suggestion."""
    emb = compute_embedding(out, fisher, random_state)
    reg = make_regressor("knn", random_state, len(idx)).fit(emb[idx], scores)
    pred = reg.predict(emb)
    return int(pending[np.argmax(pred[pending])])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--synthetic", action="store_true", help="random output features")
    p.add_argument("--n", type=int, help="number of candidates (default: all / 2500)")
    p.add_argument("--fisher-dim", type=int, default=94, help="Fisher feature length (mnist1d's)")
    p.add_argument("--repeats", type=int, default=20, help="timed suggestions (ours)")
    p.add_argument("--refits", type=int, default=3, help="timed suggestions (UMAP refit)")
    args = p.parse_args()
    warnings.filterwarnings("ignore")

    t = time.perf_counter()
    out, fisher, source = candidate_features(args)
    print(f"candidates: {source}  [{time.perf_counter() - t:.1f} s]")
    n = out.shape[0]
    rng = np.random.default_rng(1)
    idx = rng.choice(n, size=50, replace=False)
    scores = rng.random(50)
    pending = np.setdiff1d(np.arange(n), idx)

    # First fit: UMAP (and numba's JIT compilation on a fresh process) once per candidate set.
    surrogate = Surrogate()
    t = time.perf_counter()
    first = suggest_ours(surrogate, out, fisher, idx, scores, pending)
    first_fit = time.perf_counter() - t
    print(f"first fit (UMAP, including JIT): {first_fit:.1f} s")

    # Correctness: a refit gives the same embedding (fixed seed) and so the same suggestion.
    t = time.perf_counter()
    refit = suggest_refit(out, fisher, idx, scores, pending)
    check_s = time.perf_counter() - t
    assert refit == first, f"cached suggestion {first} != refit suggestion {refit}"
    print(f"check: cached and refit suggest the same candidate ({first})")

    ours = []
    for i in range(args.repeats):
        y = scores + 1e-3 * i  # a new result each time, as in a search
        t = time.perf_counter()
        suggest_ours(surrogate, out, fisher, idx, y, pending)
        ours.append(time.perf_counter() - t)

    # The same through a Study: SQLite read of the statuses, suggest, claim, tell.
    with tempfile.TemporaryDirectory() as tmp:
        study = aq.Study(os.path.join(tmp, "bench.db"), baselines=[])
        names = [f"c{i}" for i in range(n)]
        study.add_classes([[m] for m in names], out)
        study.set_fisher_features(names, fisher)
        for i, s in zip(idx, scores):
            study.tell(names[i], float(s))
        for key, emb in surrogate.cache.items():  # the embedding computed above, as a study keeps it
            study.store.put_embedding(key, emb)
        study.suggest(1)
        via_study = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            (claim,) = study.suggest(1)
            via_study.append(time.perf_counter() - t)
            study.tell(claim, 0.5)
        study.close()

    refits = [check_s]
    for i in range(args.refits - 1):
        t = time.perf_counter()
        suggest_refit(out, fisher, idx, scores + 1e-3 * i, pending)
        refits.append(time.perf_counter() - t)

    med_ours = statistics.median(ours)
    med_study = statistics.median(via_study)
    med_refit = statistics.median(refits)
    print()
    print(f"suggestion latency, {n} candidates, 50 evaluated (median)")
    print(f"{'method':<44} {'time':>10} {'vs refit':>10}")
    print(f"{'original: UMAP refit per suggestion':<44} {med_refit * 1e3:>8.0f}ms {1:>9.0f}x")
    print(f"{'ours: cached embedding, Surrogate.fit':<44} {med_ours * 1e3:>8.1f}ms "
          f"{med_refit / med_ours:>9.0f}x")
    print(f"{'ours: Study.suggest (SQLite, claim)':<44} {med_study * 1e3:>8.1f}ms "
          f"{med_refit / med_study:>9.0f}x")
    print(f"target <= 50 ms: {'met' if med_study <= 0.05 else 'NOT met'}")


if __name__ == "__main__":
    main()
