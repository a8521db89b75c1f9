"""Which classes of a large space get Fisher features: a pool that covers the output-feature space.

Every class is described by a low-dimensional projection of its output features (``Projection``):
its values at every 8th probe input, clipped to +-20 and mapped through sign(v) log(1 + |v|) so
that functions reaching 1e30 do not drown the rest, projected on the principal axes of a sample of
the space.
``choose_pool`` picks classes by farthest-point selection in that projection (the C++ kernel
``_C.farthest_points``): each new class is the one farthest from all classes already in the pool,
so the pool spreads over every region of the space, however few classes a region holds.
``nearest_classes`` finds, for the growing pool, the classes closest to a given one.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np

from .. import _C

PROBE_STRIDE = 8  # the projection reads every 8th of the 1,000 probe inputs
DIMS = 8          # and keeps 8 principal axes
SAMPLE = 20_000   # classes whose features fit the axes
CLIP = 20.0       # output values beyond this count as this (see squash)


def probe_subset() -> np.ndarray:
    """The probe inputs the projection reads (float32 [125])."""
    from ..features import probe_inputs

    return probe_inputs()[::PROBE_STRIDE].copy()


def squash(values: np.ndarray) -> np.ndarray:
    """sign(v) log(1 + |v|) of v clipped to +-CLIP, in float64: keeps the shape of a function and
    tames its magnitude. Beyond CLIP (on inputs within +-5) a function overflows a network in any
    case; clipping gathers such functions, so that covering the space does not spend the pool on
    ever wilder ones (their Fisher features fail)."""
    # In place on one float64 copy: the same arithmetic as ``sign(v) * log1p(|v|)``, bit for bit,
    # without the fresh temporaries whose first touch (page faults) cost 4x the arithmetic when
    # ``aquasurf init`` squashes millions of classes.
    v = np.array(values, dtype=np.float64)
    np.clip(v, -CLIP, CLIP, out=v)
    sign = np.sign(v)
    np.abs(v, out=v)
    np.log1p(v, out=v)
    return np.multiply(sign, v, out=v)


class Projection:
    """Principal axes of squashed output features at ``probe_subset()``; ``basis`` [DIMS + 1, P]
    holds the mean in row 0 and the axes below (axes beyond the sample's rank are zero)."""

    def __init__(self, basis: np.ndarray):
        self.basis = np.asarray(basis, dtype=np.float32)

    @classmethod
    def fit(cls, values: np.ndarray) -> "Projection":
        """``values``: float32 [n, P] outputs at ``probe_subset()`` of finite functions."""
        x = squash(values)
        mean = x.mean(axis=0) if len(x) else np.zeros(x.shape[1])
        axes = np.zeros((DIMS, x.shape[1]))
        if len(x) > 1:
            _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
            axes[:min(DIMS, len(vt))] = vt[:DIMS]
        return cls(np.vstack([mean, axes]))

    def transform(self, values: np.ndarray) -> np.ndarray:
        """float32 [n, DIMS] coordinates of outputs at ``probe_subset()``."""
        x = squash(values)
        x -= self.basis[0]
        return (x @ self.basis[1:].T.astype(np.float64)).astype(np.float32)

    def of_features(self, out_feats: np.ndarray) -> np.ndarray:
        """Coordinates from full output features [n, 1000] (the subset's columns)."""
        return self.transform(np.asarray(out_feats)[:, ::PROBE_STRIDE])


def choose_pool(points: np.ndarray, n_select: int, seeds: Sequence[int] = (),
                random_state: int = 42) -> np.ndarray:
    """Indices of ``n_select`` points ([n, DIMS]) by farthest-point selection from ``seeds``
    (without seeds, the first is drawn with ``random_state``). Fewer when the points run out."""
    n = len(points)
    if n == 0 or n_select <= 0:
        return np.zeros(0, dtype=np.int64)
    first = int(np.random.RandomState(random_state).randint(n))
    return _C.farthest_points(np.ascontiguousarray(np.asarray(points, dtype=np.float32).T),
                              np.asarray(list(seeds), dtype=np.int64), first, int(n_select))


# Rows per block of _squared_distances: its float64 buffers stay in cache.
_DISTANCE_BLOCK = 1 << 14
# numpy sums up to this many values of a row with 8 accumulators (pairwise summation's leaf).
_PAIRWISE_LEAF = 128


def _squared_distances(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    """float64 [n]: ``((points - target) ** 2).sum(axis=1)`` in float64, bit for bit, a block of
    rows at a time: a growing pool's nearest classes read a space's 2 million coordinates three
    times a round, and the whole float64 copies and temporaries took 2-2.5x longer.

    Rows of up to ``_PAIRWISE_LEAF`` values (the projection's 8) are summed a column at a time in
    the order numpy's pairwise summation adds a row, which gives the same bits three times faster
    than numpy's reduction along short rows (2 million rows of 8: 20 ms against 66 ms); longer
    rows (output features) are summed by numpy itself.
    """
    n, d = points.shape
    out = np.empty(n, dtype=np.float64)
    by_column = d <= _PAIRWISE_LEAF
    shape = (d, min(_DISTANCE_BLOCK, n)) if by_column else (min(_DISTANCE_BLOCK, n), d)
    buf = np.empty(shape, dtype=np.float64)
    for start in range(0, n, _DISTANCE_BLOCK):
        block = points[start:start + _DISTANCE_BLOCK]
        rows = out[start:start + len(block)]
        if by_column:
            diff = buf[:, :len(block)]
            np.subtract(block.T, target[:, None], out=diff)
            np.square(diff, out=diff)
            _pairwise_rows(diff, rows)
        else:
            diff = buf[:len(block)]
            np.subtract(block, target, out=diff)
            np.square(diff, out=diff)
            diff.sum(axis=1, out=rows)
    return out


def _pairwise_rows(values: np.ndarray, out: np.ndarray) -> None:
    """``out[j] = values[:, j].sum()`` as numpy sums a contiguous run of at most 128 values: in
    order below 8 values, else 8 running sums (value i into sum i % 8) combined as a tree, then the
    values past the last multiple of 8 in order. Overwrites ``values``."""
    d = len(values)
    if d < 8:
        out[...] = values[0]
        for i in range(1, d):
            out += values[i]
        return
    sums, whole = values[:8], d - d % 8
    for i in range(8, whole, 8):
        sums += values[i:i + 8]
    np.add(sums[0::2], sums[1::2], out=sums[0::2])  # s0+s1, s2+s3, s4+s5, s6+s7
    np.add(sums[0::4], sums[2::4], out=sums[0::4])  # (s0+s1)+(s2+s3), (s4+s5)+(s6+s7)
    np.add(sums[0], sums[4], out=out)
    for i in range(whole, d):
        out += values[i]


def nearest_rows(target: np.ndarray, points: np.ndarray, k: int,
                 exclude: Optional[np.ndarray] = None) -> np.ndarray:
    """Rows of ``points`` nearest ``target`` (squared euclidean), nearest first, at most ``k``,
    skipping the rows where ``exclude`` is True; ties in the order of the rows.

    Hand-written rather than a k-d tree (``scipy.spatial.cKDTree``): each call is one query over
    a space's classes, and one pass over the points is several times faster than building the
    tree (1,000,000 points in 8 dimensions, 400 rows: about 4x), with the same rows returned.
    """
    d2 = _squared_distances(np.asarray(points), np.asarray(target, dtype=np.float64))
    if exclude is not None:
        d2[exclude] = np.inf
    k = int(min(k, np.isfinite(d2).sum()))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    rows = np.flatnonzero(d2 <= _cutoff(d2, k))
    return rows[np.lexsort((rows, d2[rows]))][:k]


def _cutoff(d2: np.ndarray, k: int) -> float:
    """A distance that at least ``k`` finite values of ``d2`` do not exceed, close above the k-th
    smallest: read from every 32nd value when a count shows that it leaves ``k`` (about twice as
    many), since partitioning all 2 million distances of a space took longer than computing them;
    else the k-th smallest itself."""
    sample = d2[::32]
    j = min(sample.size - 1, 2 * (k // 32) + 8)
    if d2.size > 64 * k and j >= 0:
        cut = np.partition(sample, j)[j]
        if np.isfinite(cut) and np.count_nonzero(d2 <= cut) >= k:
            return float(cut)
    return float(np.partition(d2, k - 1)[k - 1])


def take_turns(rankings: Sequence[Sequence[int]], k: int) -> List[int]:
    """Up to ``k`` distinct items, taking the next unchosen one from each ranking in turn: the
    classes that a growing pool adds near each of several best results."""
    rankings = [list(r) for r in rankings]
    chosen: List[int] = []
    while len(chosen) < k and any(rankings):
        for ranking in rankings:
            while ranking and ranking[0] in chosen:
                ranking.pop(0)
            if ranking and len(chosen) < k:
                chosen.append(int(ranking.pop(0)))
    return chosen


__all__ = ["DIMS", "PROBE_STRIDE", "Projection", "choose_pool", "nearest_rows", "probe_subset",
           "squash", "take_turns"]
