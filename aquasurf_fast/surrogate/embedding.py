"""The surrogate's embedding (SPEC section 5): a 2-D UMAP of the candidates' output and Fisher
features, their fuzzy graphs joined by umap-learn's union.

UMAP is fitted on every candidate, evaluated or not, so the embedding depends only on the candidate
set; ``embedding_key`` names it for the caches that keep it.
"""
from __future__ import annotations

import functools
import hashlib
import sys
import time
import warnings
from typing import Optional

import numpy as np

#: Neighbour counts and metrics of the paper: outputs are compared pointwise, the Fisher CDFs by area.
OUTPUT_NEIGHBORS = 15
OUTPUT_METRIC = "euclidean"
FISHER_NEIGHBORS = 3
FISHER_METRIC = "manhattan"

# Below this many candidates UMAP's spectral layout is meaningless (and umap-learn warns or fails);
# a principal-component projection keeps tiny studies working.
MIN_UMAP_CANDIDATES = 5


def _import_umap():
    try:
        import umap  # noqa: F401  (umap-learn)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the surrogate needs umap-learn: pip install 'aquasurf_fast[search]' "
            "(or pip install umap-learn scikit-learn)"
        ) from exc
    _keep_compiled_code()
    return umap


@functools.lru_cache(maxsize=None)  # once per process: later calls would find nothing to do
def _keep_compiled_code() -> None:
    """Let numba keep umap-learn's compiled functions on disk, as it already does for
    pynndescent's. umap-learn compiles its graph and layout functions without a cache, so every
    new process spent 15 s (idle) to minutes (busy cores) compiling them before its first
    embedding: a search driver after every start, ``featurize``, each replay. With the cache only
    the first process on a machine compiles (numba's cache: next to the module, or its user cache
    directory, or $NUMBA_CACHE_DIR). A function numba cannot cache is left as it was, and so is
    everything under a numba whose dispatchers no longer look like this (it only costs time)."""
    try:
        from numba.core.caching import NullCache
        from numba.core.dispatcher import Dispatcher
    except ImportError:  # pragma: no cover - a numba that moved these
        return
    for module in [m for name, m in list(sys.modules.items()) if name.split(".")[0] == "umap"]:
        for obj in list(vars(module).values()):
            if isinstance(obj, Dispatcher) and isinstance(getattr(obj, "_cache", None), NullCache):
                try:
                    obj.enable_caching()
                except RuntimeError:  # no place to keep it (source file not found, say)
                    pass


def check_features(name: str, feats: np.ndarray, n: Optional[int]) -> np.ndarray:
    feats = np.asarray(feats)
    if feats.ndim != 2:
        raise ValueError(f"{name} must be 2-D [n_candidates, n_features], got shape {feats.shape}")
    if n is not None and feats.shape[0] != n:
        raise ValueError(
            f"{name} has {feats.shape[0]} rows but out_feats has {n}: one row per candidate"
        )
    if feats.shape[0] and not np.isfinite(feats).all():
        bad = int((~np.isfinite(feats).all(axis=1)).sum())
        raise ValueError(
            f"{name} has {bad} rows with NaN or inf; candidates must have finite features "
            "(SPEC section 3: such functions are never surrogate candidates)"
        )
    return np.ascontiguousarray(feats, dtype=np.float32)


def embedding_key(out_feats: np.ndarray, fisher_feats: Optional[np.ndarray], random_state) -> str:
    """The cache key of an embedding: the feature bytes, their shapes and every UMAP setting."""
    h = hashlib.sha256()
    settings = (
        f"v1|{OUTPUT_METRIC}:{OUTPUT_NEIGHBORS}|{FISHER_METRIC}:{FISHER_NEIGHBORS}|"
        f"rs={random_state}|out={out_feats.shape}|fisher="
        f"{None if fisher_feats is None else fisher_feats.shape}"
    )
    h.update(settings.encode())
    # Hash the buffers in place: a copy of a 2,500-candidate set costs as much as the hash itself.
    h.update(np.ascontiguousarray(out_feats, dtype="<f4"))
    if fisher_feats is not None:
        h.update(np.ascontiguousarray(fisher_feats, dtype="<f4"))
    return h.hexdigest()


def _pca_2d(x: np.ndarray) -> np.ndarray:
    """Two principal components (zeros where there is no spread), for sets too small for UMAP."""
    n = x.shape[0]
    out = np.zeros((n, 2), dtype=np.float32)
    if n < 2:
        return out
    x = x.astype(np.float64) - x.mean(axis=0, dtype=np.float64)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    k = min(2, int((s > 1e-12 * max(s[0], 1e-300)).sum()))
    out[:, :k] = (u[:, :k] * s[:k]).astype(np.float32)
    return out


def _fuzzy_graphs(umap, parts, n: int, random_state):
    """One UMAP fuzzy graph per feature set, as fitted models (``transform_mode="graph"``).

    Below ``pairwise.SMALL_DATA`` candidates the distances are computed by ``pairwise.pairwise``
    and given as ``metric="precomputed"``: the same graph as umap-learn's own small-data path,
    without its Python call per pair. A distance beyond float32 (outputs near its largest value)
    is infinite, which umap-learn refuses in a precomputed matrix but keeps in its own: such a
    set takes umap-learn's path."""
    from .pairwise import METRICS, SMALL_DATA, pairwise

    def fit(f, k, m):
        if n < SMALL_DATA and m in METRICS:
            dist = pairwise(np.asarray(f, dtype=np.float32), m)
            if np.isfinite(dist).all():
                f, m = dist, "precomputed"
        return umap.UMAP(n_neighbors=min(k, n - 1), metric=m, n_components=2,
                         random_state=random_state, transform_mode="graph").fit(f)

    with warnings.catch_warnings():
        # Tiny sets make umap-learn truncate n_neighbors or fall back to random initialisation, and a
        # fixed random_state disables its parallelism; all expected here, none actionable by a user.
        warnings.filterwarnings("ignore", module=r"umap(\.|$)")
        warnings.filterwarnings("ignore", category=UserWarning, message=r".*n_jobs.*")
        return [fit(f, k, m) for f, k, m in parts]


def _feature_sets(out_feats, fisher_feats):
    parts = [(f, k, m) for f, k, m in ((out_feats, OUTPUT_NEIGHBORS, OUTPUT_METRIC),
                                       (fisher_feats, FISHER_NEIGHBORS, FISHER_METRIC))
             if f is not None]
    if not parts:
        raise ValueError("an embedding needs output features, Fisher features or both")
    return parts


def compute_embedding(
    out_feats: Optional[np.ndarray], fisher_feats: Optional[np.ndarray],
    random_state: Optional[int]
) -> np.ndarray:
    """The 2-D embedding of the candidates (uncached): UMAP of each feature set, fuzzy union.

    Either feature set may be None to embed the other alone (the ablations of a replay). Each UMAP
    only builds its fuzzy graph (``transform_mode="graph"``); the single layout is done by
    umap-learn's union operator. That operator lays the union out with its own fixed seed (42), so
    for any other ``random_state`` the union graph is laid out again with that seed.
    """
    parts = _feature_sets(out_feats, fisher_feats)
    n = parts[0][0].shape[0]
    if n < MIN_UMAP_CANDIDATES:
        return _pca_2d(np.hstack([f for f, _, _ in parts]))
    models = _fuzzy_graphs(_import_umap(), parts, n, random_state)
    if len(models) == 1:
        return layout_graph(models[0].graph_, random_state)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"umap(\.|$)")
        union = models[0] + models[1]
    if random_state == 42:
        return np.asarray(union.embedding_, dtype=np.float32)
    return layout_graph(union.graph_, random_state)


def compute_layouts(out_feats: Optional[np.ndarray], fisher_feats: Optional[np.ndarray],
                    seeds) -> np.ndarray:
    """float32 [len(seeds), n, 2]: the candidates' fuzzy graph (as ``compute_embedding``: each
    feature set's, joined by union) laid out in 2-D once per seed. The graph, the costly part, is
    built once (under the first seed); a layout of 2,500 candidates takes about a second."""
    seeds = [int(s) for s in seeds]
    parts = _feature_sets(out_feats, fisher_feats)
    n = parts[0][0].shape[0]
    if n < MIN_UMAP_CANDIDATES:
        return np.stack([_pca_2d(np.hstack([f for f, _, _ in parts]))] * len(seeds))
    graph = union_graph(out_feats, fisher_feats, seeds[0])
    return np.stack([layout_graph(graph, s) for s in seeds])


def cached_layouts(cache, out_feats: np.ndarray, fisher_feats: Optional[np.ndarray],
                   random_state: Optional[int], n_layouts: int, grown_from=None):
    """(float32 [n_layouts, n, 2], seconds spent or None): ``compute_layouts`` under seeds
    random_state, random_state + 1, ..., read from or written to ``cache`` (a mapping from key
    to a float32 [n, 2 * n_layouts] array: the layouts side by side, as the caches keep arrays).

    ``grown_from``: (bool [n] known, float32 [n_layouts, known.sum(), 2]) when the candidates are
    a grown set whose known ones have these layouts; a set not in the cache then places its new
    candidates in them (``placement.place_in_layouts``) instead of being laid out from scratch."""
    from .placement import place_in_layouts

    n = out_feats.shape[0]
    key = embedding_key(out_feats, fisher_feats, random_state) + f"-layouts{n_layouts}"
    side_by_side = cache.get(key)
    seconds = None
    if side_by_side is None or np.shape(side_by_side) != (n, 2 * n_layouts):
        start = time.perf_counter()
        first = 0 if random_state is None else int(random_state)
        seeds = range(first, first + n_layouts)
        # A base too small for UMAP was a projection (_pca_2d): nothing to place in.
        if grown_from is not None and np.count_nonzero(grown_from[0]) >= MIN_UMAP_CANDIDATES:
            layouts = place_in_layouts(union_graph(out_feats, fisher_feats, first), grown_from[1],
                                       grown_from[0], seeds)
        else:
            layouts = compute_layouts(out_feats, fisher_feats, seeds)
        side_by_side = np.concatenate(list(layouts), axis=1)
        cache[key] = side_by_side
        seconds = time.perf_counter() - start
    return np.asarray(side_by_side, dtype=np.float32).reshape(n, n_layouts, 2).transpose(1, 0, 2), seconds


def union_graph(out_feats: Optional[np.ndarray], fisher_feats: Optional[np.ndarray], random_state):
    """The candidates' fuzzy graph (scipy sparse [n, n]): each feature set's UMAP graph, joined by
    umap-learn's fuzzy union (the graph its ``+`` operator lays out)."""
    from umap.umap_ import general_simplicial_set_union, reset_local_connectivity

    parts = _feature_sets(out_feats, fisher_feats)
    models = _fuzzy_graphs(_import_umap(), parts, parts[0][0].shape[0], random_state)
    if len(models) == 1:
        return models[0].graph_
    return reset_local_connectivity(general_simplicial_set_union(models[0].graph_,
                                                                 models[1].graph_), True)


def layout_graph(graph, random_state) -> np.ndarray:
    """Lay a fuzzy graph out in 2-D with umap-learn's default settings and the given seed."""
    from scipy.sparse.csgraph import connected_components
    from sklearn.utils import check_random_state

    _import_umap()
    from umap.umap_ import find_ab_params, simplicial_set_embedding

    a, b = find_ab_params(1.0, 0.1)  # umap-learn's defaults: spread 1, min_dist 0.1
    init = "spectral" if connected_components(graph)[0] == 1 else "random"
    emb, _ = simplicial_set_embedding(
        data=None,
        graph=graph,
        n_components=2,
        initial_alpha=1.0,
        a=a,
        b=b,
        gamma=1.0,
        negative_sample_rate=5,
        n_epochs=None,
        init=init,
        random_state=check_random_state(random_state),
        metric="euclidean",
        metric_kwds={},
        densmap=False,
        densmap_kwds={},
        output_dens=False,
        parallel=False,
    )
    return np.asarray(emb, dtype=np.float32)


__all__ = ["OUTPUT_NEIGHBORS", "OUTPUT_METRIC", "FISHER_NEIGHBORS", "FISHER_METRIC", "check_features",
           "cached_layouts", "compute_embedding", "compute_layouts", "embedding_key", "layout_graph",
           "union_graph"]
