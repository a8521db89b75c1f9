"""The candidates of a replay (``Pool``: the trained classes of a benchmark with their features and
accuracies) and their UMAP layouts (``Embeddings``, computed once per feature set and seed and kept
on disk)."""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from functools import cached_property
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..cache import cache_dir, load_npz, save_npz
from ..defaults import DEFAULT_BASELINES, expression_name
from .format import Benchmark, BenchmarkError


@dataclass(frozen=True, eq=False)
class Pool:
    """The candidates of a replay: trained classes (with Fisher features when the file has them)."""

    rows: np.ndarray          # benchmark row of each candidate
    names: List[str]
    val: np.ndarray           # float64 validation accuracy: what the strategies see
    test: np.ndarray          # float64 test accuracy: what is reported
    test_median: np.ndarray   # float64 median test accuracy over the benchmark's seeds
    baselines: List[int]      # candidate positions of the baselines present, in order
    out_feats: np.ndarray
    fisher: Optional[np.ndarray]

    def __len__(self) -> int:
        return len(self.rows)

    def top_threshold(self, level: str) -> float:
        """The validation accuracy a class needs to count as top-1, top-5 or top-1%."""
        k = {"top-1": 1, "top-5": 5}.get(level) or max(1, math.ceil(0.01 * len(self)))
        return float(np.sort(self.val)[::-1][min(k, len(self)) - 1])

    @cached_property
    def coordinates(self) -> np.ndarray:
        """The candidates in the projection a study chooses its Fisher pool by."""
        from ..surrogate.coverage import PROBE_STRIDE, Projection

        return Projection.fit(self.out_feats[:, ::PROBE_STRIDE]).of_features(self.out_feats)

    @cached_property
    def output_points(self) -> np.ndarray:
        """The candidates in the hybrid strategy's output space (``strategy.output_points``)."""
        from ..surrogate.strategy import output_points

        return output_points(self.out_feats)

    def n_top(self, level: str) -> int:
        """How many classes count as top-k: the k best and any that tie with the k-th."""
        return int((self.val >= self.top_threshold(level)).sum())


SCORES = ("median", "mean")


def validation_scores(bench: Benchmark, score: str = "median") -> np.ndarray:
    """What a replayed search sees of each class: the validation accuracy of its median run, or
    with ``score="mean"`` the mean over its runs (a diverged run counting as 0, as a task scores
    it). With three runs on a small validation set the median ties many classes (digits: 90 at
    its top 1%); the mean separates them."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}, got {score!r}")
    val = bench.metrics["val_acc"]
    if score == "median" or bench.runs is None:
        return val
    runs = bench.runs["val_acc"]
    return np.where(np.isfinite(val), np.where(np.isfinite(runs), runs, 0.0).mean(axis=1), np.nan)


def make_pool(bench: Benchmark, baselines: Sequence[str] = DEFAULT_BASELINES,
              score: str = "median") -> Pool:
    ok = np.isfinite(bench.metrics["val_acc"]) & np.isfinite(bench.metrics["test_acc"])
    if bench.fisher is not None:
        ok &= np.isfinite(bench.fisher).all(axis=1)
    rows = np.flatnonzero(ok)
    if rows.size < 10:
        raise BenchmarkError(f"{bench.path}: only {rows.size} classes have validation and test "
                             "accuracies (and Fisher features); a replay needs at least 10")
    names = [bench.names[i] for i in rows]
    out = bench.output_features()[rows]
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        # Trained classes should have finite outputs; a file that says otherwise is inconsistent.
        bad = [names[i] for i in np.flatnonzero(~finite)[:3]]
        raise BenchmarkError(f"{bench.path}: trained classes with non-finite outputs on the probe "
                             f"inputs, e.g. {', '.join(bad)}")
    position = {int(r): p for p, r in enumerate(rows)}
    base = []
    for b in baselines:
        row = bench.class_of(expression_name(b))
        if row is not None and row in position and position[row] not in base:
            base.append(position[row])
    median = bench.median_test_acc()[rows]
    return Pool(rows=rows, names=names, val=validation_scores(bench, score)[rows],
                test=bench.metrics["test_acc"][rows],
                test_median=np.where(np.isfinite(median), median, -np.inf), baselines=base,
                out_feats=out,
                fisher=None if bench.fisher is None else bench.fisher[rows])


class Embeddings:
    """2-D UMAP layouts of a pool by feature set and seed, computed once and kept on disk."""

    def __init__(self, pool: Pool, cache: bool = True):
        self.pool = pool
        self.cache = cache
        self._mem: Dict[tuple, np.ndarray] = {}
        self._graphs: Dict[str, object] = {}
        h = hashlib.sha256(np.ascontiguousarray(pool.out_feats, dtype="<f4").tobytes())
        if pool.fisher is not None:
            h.update(np.ascontiguousarray(pool.fisher, dtype="<f4").tobytes())
        self._key = h.hexdigest()[:24]

    def layouts(self, kind: str, seeds: Sequence[int]) -> np.ndarray:
        """float32 [len(seeds), n, 2]: the ``kind`` ("union", "outputs" or "fisher") fuzzy graph
        laid out under each seed. The graph is built once per kind; each layout is kept on disk."""
        return np.stack([self.get(kind, int(s)) for s in seeds])

    def get(self, kind: str, seed: int) -> np.ndarray:
        """One layout: float32 [n, 2]."""
        from ..surrogate.embedding import layout_graph

        if kind != "outputs" and self.pool.fisher is None:
            raise BenchmarkError("this benchmark has no Fisher features: use the random or "
                                 "outputs strategies")
        if (kind, seed) in self._mem:
            return self._mem[kind, seed]
        path = None
        if self.cache:
            path = os.path.join(cache_dir(), "embeddings", f"{self._key}-{kind}-layout-{seed}.npz")
            cached = load_npz(path, ("emb",))
            if cached is not None and cached["emb"].shape == (len(self.pool), 2):
                self._mem[kind, seed] = cached["emb"]
                return cached["emb"]
        emb = layout_graph(self._graph(kind), seed)
        self._mem[kind, seed] = emb
        if path:
            save_npz(path, {"emb": emb})
        return emb

    def _graph(self, kind: str):
        from ..surrogate.embedding import union_graph

        if kind not in self._graphs:
            out = None if kind == "fisher" else self.pool.out_feats
            fisher = None if kind == "outputs" else self.pool.fisher
            self._graphs[kind] = union_graph(out, fisher, 0)
        return self._graphs[kind]
