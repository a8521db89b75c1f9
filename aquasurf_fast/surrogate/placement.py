"""Layouts of a grown candidate set: the candidates laid out before keep their places and only the
new ones are placed, the way umap-learn's ``transform`` places new points in a fitted embedding.

A search that grows its Fisher pool (``aquasurf search --grow``) adds a few classes every few
results. Laying the whole set out again costs a full UMAP optimization per layout (500 epochs over
every edge: 1.3 s for the hybrid's five layouts of 300-500 candidates), in the search driver,
after every growth; placing the new candidates costs their own edges over 100 epochs (about 0.02 s
for the five, 0.07 s with the grown set's fuzzy graph; ``benchmarks/bench_growth.py``, which also
shows the searches to be as good). It also keeps the evaluated candidates where the strategy's
regressors last saw them. A set laid out from scratch is still the base: once the candidates placed since then would
make up more than ``1 - FRESH_SHARE`` of the set, it is laid out from scratch again, so the
placed candidates never outweigh the layout they were placed in.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import numpy as np

# The least share of a grown set that its last from-scratch layout must cover for the rest to be
# placed in it rather than the whole set laid out again.
FRESH_SHARE = 0.8
# Epochs and starting learning rate of a placement: umap-learn's transform of a small data set.
PLACE_EPOCHS = 100
_PLACE_ALPHA = 0.25


def can_place(n_fresh: int, n_candidates: int, fresh_share: float = FRESH_SHARE) -> bool:
    """Whether a set of ``n_candidates`` may place its new candidates in layouts whose last
    from-scratch layout had ``n_fresh`` of them (at least ``fresh_share`` of the set)."""
    return 0 < n_fresh <= n_candidates and n_fresh >= fresh_share * n_candidates


def grown_from(before_ids: np.ndarray, layouts: np.ndarray, ids: np.ndarray):
    """(bool [n] known, float32 [M, known.sum(), 2]): which of the candidates ``ids`` had the
    ``layouts`` ([M, len(before_ids), 2]) of the set ``before_ids``, and their places in the order
    of ``ids``; None when ``ids`` lost some of ``before_ids`` (not a grown set)."""
    before_ids, ids = np.asarray(before_ids), np.asarray(ids)
    known = np.isin(ids, before_ids)
    if np.count_nonzero(known) != np.unique(before_ids).size:
        return None
    sorter = np.argsort(before_ids)
    rows = sorter[np.searchsorted(before_ids, ids[known], sorter=sorter)]  # each known id's row before
    return known, layouts[:, rows]


class LaidOut(NamedTuple):
    """Layouts a set of candidates got: its ids, float32 [M, n, 2] layouts, and how many
    candidates the last from-scratch layout they descend from had."""

    ids: np.ndarray
    layouts: np.ndarray
    n_fresh: int


def placement_base(before: Optional[LaidOut], ids: np.ndarray, fresh_share: float = FRESH_SHARE):
    """(``cached_layouts``'s ``grown_from`` for the candidates ``ids``, or None to lay them out
    from scratch; the ``n_fresh`` of their layouts): the layouts ``before`` when ``ids`` only added
    to their candidates and ``can_place`` allows."""
    if before is None or not can_place(before.n_fresh, ids.size, fresh_share):
        return None, ids.size
    known = grown_from(before.ids, before.layouts, ids)
    return (None, ids.size) if known is None else (known, before.n_fresh)


def _initial_places(graph, layout: np.ndarray, known: np.ndarray) -> np.ndarray:
    """[n, 2]: known candidates where ``layout`` has them, each new one at the mean of its graph
    neighbours' places weighted by the edges (known neighbours first; a new candidate whose
    neighbours are all new follows them once they are placed; one with none at all goes to the
    centre of the known ones)."""
    n = known.size
    out = np.zeros((n, 2), dtype=np.float64)
    out[known] = layout
    placed = known.copy()
    todo = np.flatnonzero(~known)
    csr = graph.tocsr()
    while todo.size:
        still = []
        for i in todo:
            cols = csr.indices[csr.indptr[i]:csr.indptr[i + 1]]
            w = csr.data[csr.indptr[i]:csr.indptr[i + 1]]
            keep = placed[cols] & (w > 0)
            if keep.any():
                out[i] = np.average(out[cols[keep]], axis=0, weights=w[keep])
            else:
                still.append(i)
        if len(still) == todo.size:  # no neighbour placed at all: the centre of the known ones
            out[still] = layout.mean(axis=0) if layout.size else 0.0
            break
        placed[todo] = True
        placed[still] = False
        todo = np.array(still, dtype=np.int64)
    return out.astype(np.float32)


def place_new(graph, layout: np.ndarray, known: np.ndarray, random_state: int) -> np.ndarray:
    """float32 [n, 2]: ``layout`` (float32 [known.sum(), 2], the known candidates' places, in
    order) with the new candidates (``~known``) placed by the fuzzy ``graph`` (scipy sparse
    [n, n]) of the whole set: from their neighbours' places, then optimized along their own edges
    for ``PLACE_EPOCHS`` epochs while the known candidates stay where they are."""
    from sklearn.utils import check_random_state
    from umap.layouts import optimize_layout_euclidean
    from umap.umap_ import find_ab_params, make_epochs_per_sample

    known = np.asarray(known, dtype=bool)
    places = _initial_places(graph, np.asarray(layout, dtype=np.float32), known)
    edges = graph.tocoo()
    # Only the new candidates' edges move anything; umap-learn's transform drops the edges too
    # weak to be sampled once in its epochs, as here.
    keep = ~known[edges.row] & (edges.data >= edges.data.max(initial=0.0) / PLACE_EPOCHS)
    head, tail, weights = edges.row[keep], edges.col[keep], edges.data[keep]
    if head.size == 0:
        return places
    a, b = find_ab_params(1.0, 0.1)  # umap-learn's defaults, as in embedding.layout_graph
    rng_state = check_random_state(random_state).randint(
        np.iinfo(np.int32).min, np.iinfo(np.int32).max, 3).astype(np.int64)
    # One array as head and tail: a new candidate sees its new neighbours' latest places.
    return optimize_layout_euclidean(
        places, places, head.astype(np.int32), tail.astype(np.int32), PLACE_EPOCHS, known.size,
        make_epochs_per_sample(weights, PLACE_EPOCHS), a, b, rng_state, 1.0, _PLACE_ALPHA, 5.0,
        parallel=False, move_other=False)


def place_in_layouts(graph, layouts: np.ndarray, known: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
    """float32 [len(seeds), n, 2]: ``place_new`` in each of ``layouts`` ([len(seeds),
    known.sum(), 2]), the placement of layout i drawn under ``seeds[i]``."""
    return np.stack([place_new(graph, lay, known, int(s)) for lay, s in zip(layouts, seeds)])


__all__ = ["FRESH_SHARE", "PLACE_EPOCHS", "LaidOut", "can_place", "grown_from", "place_in_layouts",
           "place_new", "placement_base"]
