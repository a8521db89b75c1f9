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

# umap-learn's threshold (``UMAP.fit``): below it every distance is computed, at and above it the
# neighbours come from nearest-neighbour descent.
SMALL_DATA = 4096


@numba.njit(cache=True)
def _upper_triangle(x, metric):
    n = x.shape[0]
    out = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        for j in range(i + 1, n):
            d = metric(x[i], x[j])
            out[i, j] = d
            out[j, i] = d
    return out


def pairwise(x: np.ndarray, metric: str) -> np.ndarray:
    """float32 [n, n] distances between the rows of ``x`` under umap-learn's named ``metric``
    (zero diagonal: a metric's distance from a point to itself)."""
    from umap.distances import named_distances

    return _upper_triangle(np.ascontiguousarray(x), named_distances[metric])


__all__ = ["SMALL_DATA", "pairwise"]
