"""The candidates' fuzzy graphs: distances precomputed by ``surrogate.pairwise`` (ours) against
umap-learn's own small-data path (scikit-learn calling the numba metric once per pair).

Features are synthetic, shaped like the real ones (1,000 squashed output values, 91 sorted
Fisher CDF values per candidate); the cost does not depend on their values. First it checks that
both give the same graphs bit for bit, then warms up (numba compilation) and takes medians.

    python benchmarks/bench_embedding.py [--sizes 500 1000 2412] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _timing import median_seconds, print_table  # noqa: E402

from aquasurf_fast.surrogate import embedding  # noqa: E402


def features(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = np.tanh(rng.normal(size=(n, 1000)) * 2).astype(np.float32)
    fisher = np.sort(rng.random((n, 91)), axis=1).astype(np.float32)
    return embedding._feature_sets(out, fisher)


def graphs_umap_learn(umap, parts, n):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [umap.UMAP(n_neighbors=min(k, n - 1), metric=m, random_state=42,
                          transform_mode="graph").fit(f).graph_ for f, k, m in parts]


def graphs_ours(umap, parts, n):
    return [model.graph_ for model in embedding._fuzzy_graphs(umap, parts, n, 42)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2412])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    umap = embedding._import_umap()
    rows = []
    for n in args.sizes:
        parts = features(n)
        want, got = graphs_umap_learn(umap, parts, n), graphs_ours(umap, parts, n)
        if not all(g.shape == w.shape and (g != w).nnz == 0 for g, w in zip(got, want)):
            raise SystemExit(f"{n} candidates: the graphs differ")
        print(f"{n} candidates: identical fuzzy graphs (outputs and Fisher features)", flush=True)
        before = median_seconds(lambda: graphs_umap_learn(umap, parts, n), args.repeats)
        after = median_seconds(lambda: graphs_ours(umap, parts, n), args.repeats)
        rows.append([n, f"{before:.2f}", f"{after:.3f}", f"{before / after:.1f}x"])
    print_table("both fuzzy graphs of a candidate set, seconds (median)",
                ["candidates", "umap-learn", "ours", "ratio"], rows)


if __name__ == "__main__":
    main()
