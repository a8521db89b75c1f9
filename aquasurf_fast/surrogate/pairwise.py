"""All-pairs distances for UMAP's small-data path, compiled instead of one Python call per pair.

Below ``SMALL_DATA`` points umap-learn computes every distance with scikit-learn's
``pairwise_distances`` and its own numba metric, which scikit-learn calls once per pair from
Python: 2,412 candidates are 2.9 million calls, about 20 s per feature set. ``pairwise`` makes the
same calls from compiled code (the same metric function on the same rows, each result rounded to
float32 as scikit-learn stores it), so the matrix, and the fuzzy graph UMAP builds from it with
``metric="precomputed"``, are bit for bit those of umap-learn's own path.
"""
from __future__ import annotations

import numba
import numpy as np
from umap.distances import euclidean, manhattan  # the metrics, as umap-learn computes them

# umap-learn's threshold (``UMAP.fit``): below it every distance is computed, at and above it the
# neighbours come from nearest-neighbour descent.
SMALL_DATA = 4096
# The metrics ``pairwise`` computes: the embedding's (``embedding.OUTPUT_METRIC``, ``FISHER_METRIC``).
METRICS = ("euclidean", "manhattan")


# The embedding's two metrics, compiled once per machine (numba's on-disk cache). The cached
# function calls them by name: a function passed as an argument is part of the cache's key, which a
# later process can neither find (another function object) nor write back (pickling the entries it
# read fails with "underlying object has vanished"), and numba cannot cache a function that passes
# one on either. A branch per pair costs nothing next to a 1,000-wide distance.
@numba.njit(cache=True)
def _cached_pairs(x, use_manhattan):
    n = x.shape[0]
    out = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        for j in range(i + 1, n):
            d = manhattan(x[i], x[j]) if use_manhattan else euclidean(x[i], x[j])
            out[i, j] = d
            out[j, i] = d
    return out


def pairwise(x: np.ndarray, metric: str) -> np.ndarray:
    """float32 [n, n] distances between the rows of ``x`` under umap-learn's ``metric``, one of
    ``METRICS`` (zero diagonal: a metric's distance from a point to itself)."""
    if metric not in METRICS:
        raise ValueError(f"pairwise distances are compiled for {' and '.join(METRICS)}, not {metric!r}")
    return _cached_pairs(np.ascontiguousarray(x), metric == "manhattan")


__all__ = ["METRICS", "SMALL_DATA", "pairwise"]
