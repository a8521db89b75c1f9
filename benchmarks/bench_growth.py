"""Layouts after a growth of the Fisher pool: new candidates placed in the layouts the pool had
(``surrogate.placement``, what a study does) against the grown pool laid out from scratch at every
growth (what it did before), in cost and in the searches they lead to.

A replayed search of the default strategy (hybrid) that sees only a Fisher pool, as ``aquasurf
search --grow`` on a large space: the baselines plus ``--pool`` classes chosen to cover the output
features, and every ``GROW_EVERY`` results the ``GROW`` classes nearest the best so far join it
(``bench.replay.grow_members``, as ``Study.grow``). After each growth the pool's five layouts are
either laid out again from scratch or extended as ``Ranker.layouts`` extends them
(``cached_layouts`` with the layouts before, while ``placement.can_place`` allows). Both modes of a
trial start from the same pool, layout seeds and tie order, so they differ only by the layouts.

``--fresh-shares`` runs the placed mode once per share of the set that its last from-scratch
layout must cover (``placement.FRESH_SHARE`` by default): how often a growing pool needs a fresh
layout.

Correctness first: a placement keeps every known candidate's place bit for bit.

Run: python benchmarks/bench_growth.py [--bench benchmarks/data/act-bench-mnist1d.json.gz]
       [--trials 20] [--budget 100] [--pool 300] [--workers 1] [--fresh-shares 0.8 0.5] [--no-scratch]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _timing import print_table  # noqa: E402

from aquasurf_fast.bench.format import load_benchmark  # noqa: E402
from aquasurf_fast.bench.replay import GROW, GROW_EVERY, Replay, grow_members, make_pool  # noqa: E402
from aquasurf_fast.surrogate.coverage import choose_pool  # noqa: E402
from aquasurf_fast.surrogate.embedding import cached_layouts  # noqa: E402
from aquasurf_fast.surrogate.placement import FRESH_SHARE, LaidOut, placement_base  # noqa: E402
from aquasurf_fast.surrogate.strategy import N_LAYOUTS, Strategy  # noqa: E402

SCRATCH = "from scratch"


def mode_name(fresh_share: float) -> str:
    return "placed" if fresh_share == FRESH_SHARE else f"placed, fresh below {fresh_share:.0%}"


def pool_layouts(pool, members, seed, before, fresh_share, spent):
    """(layouts of ``members``, the ``placement.LaidOut`` they become): ``before`` is the
    previous one, or None; ``fresh_share`` None lays every set out from scratch."""
    rows = np.array(members)
    if fresh_share is None:
        known, n_fresh = None, rows.size
    else:
        known, n_fresh = placement_base(before, rows, fresh_share)
    start = time.perf_counter()
    layouts, _ = cached_layouts({}, pool.out_feats[rows], pool.fisher[rows], seed, N_LAYOUTS, known)
    spent["fresh" if known is None else "placed"].append(time.perf_counter() - start)
    if known is not None:
        assert np.array_equal(layouts[:, known[0]], known[1]), "a known candidate moved"
    return layouts, LaidOut(rows, layouts, n_fresh)


def trial(pool, fresh_share, budget, pool_size, t, workers, spent):
    """(evaluation order of one search, positions in the benchmark; the pool's size at each)."""
    rng = np.random.default_rng([t, 11])
    members = list(pool.baselines) + [int(p) for p in choose_pool(
        pool.coordinates, pool_size, list(pool.baselines), int(np.random.default_rng([t, 7]).integers(2**31)))]
    hybrid = Strategy("hybrid")
    chosen = list(pool.baselines[:budget])
    sizes = [len(members)] * len(chosen)
    layouts, before, grown_at = None, None, 0
    while len(chosen) < budget:
        known = chosen[:max(0, len(chosen) - workers + 1)]
        if len(chosen) - grown_at >= GROW_EVERY or layouts is None:
            if layouts is not None:
                members = members + grow_members(pool, members, known, GROW)
                grown_at = len(chosen)
            layouts, before = pool_layouts(pool, members, 1000 * t, before, fresh_share, spent)
        local = {c: i for i, c in enumerate(members)}
        done = np.array([local[c] for c in known], dtype=np.int64)
        pending = np.array([local[c] for c in chosen[len(known):]], dtype=np.int64)
        order = hybrid.rank(layouts, done, pool.val[np.array(known, dtype=np.int64)], pending,
                            len(pool.baselines), 1, rng,
                            points=pool.output_points[np.array(members)])
        chosen.append(members[int(order[0])])
        sizes.append(len(members))
    return np.array(chosen), np.array(sizes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", default=os.path.join(os.path.dirname(__file__), "data",
                                                    "act-bench-mnist1d.json.gz"))
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--pool", type=int, default=300)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--fresh-shares", type=float, nargs="+", default=[FRESH_SHARE])
    ap.add_argument("--scratch", action=argparse.BooleanOptionalAction, default=True,
                    help="also lay every grown set out from scratch (the slowest mode)")
    args = ap.parse_args()
    pool = make_pool(load_benchmark(args.bench))
    shares = {mode_name(s): s for s in args.fresh_shares}
    if args.scratch:
        shares[SCRATCH] = None
    modes = list(shares)
    orders, featurized, spent = {}, {}, {m: {"fresh": [], "placed": []} for m in modes}
    for mode in modes:
        start = time.perf_counter()
        runs = [trial(pool, shares[mode], args.budget, args.pool, t, args.workers, spent[mode])
                for t in range(args.trials)]
        orders[mode], featurized[mode] = (np.stack(r) for r in zip(*runs))
        print(f"{mode}: {args.trials} trials in {time.perf_counter() - start:.0f} s", flush=True)
    print_table("Layouts per growth (seconds, 5 layouts)", ["mode", "from scratch", "median s",
                                                           "placed", "median s", "total s"],
                [[m, len(spent[m]["fresh"]), f"{np.median(spent[m]['fresh']):.3f}",
                  len(spent[m]["placed"]),
                  f"{np.median(spent[m]['placed']):.4f}" if spent[m]["placed"] else "-",
                  f"{sum(spent[m]['fresh']) + sum(spent[m]['placed']):.1f}"] for m in modes])
    report = Replay(pool=pool, budget=args.budget, orders=orders, featurized=featurized,
                    workers=args.workers)
    print(f"\nSearches (hybrid, pool of {args.pool} + baselines, {GROW} more every {GROW_EVERY} "
          f"results, W = {args.workers}, {args.trials} trials):\n")
    print(report.table())


if __name__ == "__main__":
    main()
