"""The AQuaSurF surrogate (SPEC section 5): a 2-D UMAP embedding of the candidates, then a regressor.

UMAP is fitted on every candidate, evaluated or not, so the embedding depends only on the candidate
set. It is cached under a key derived from the feature bytes and the UMAP settings; a new fit with
the same candidates (the usual case: one more evaluated score) only refits the regressor.
"""
from __future__ import annotations

import hashlib
import time
import warnings
from typing import Any, MutableMapping, Optional

import numpy as np

#: Neighbour counts and metrics of the paper: outputs are compared pointwise, the Fisher CDFs by area.
OUTPUT_NEIGHBORS = 15
OUTPUT_METRIC = "euclidean"
FISHER_NEIGHBORS = 3
FISHER_METRIC = "manhattan"

# Below this many candidates UMAP's spectral layout is meaningless (and umap-learn warns or fails);
# a principal-component projection keeps tiny studies working.
MIN_UMAP_CANDIDATES = 5

REGRESSOR_NAMES = ("knn", "rf", "svr")


def _import_umap():
    try:
        import umap  # noqa: F401  (umap-learn)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the surrogate needs umap-learn: pip install 'aquasurf_fast[search]' "
            "(or pip install umap-learn scikit-learn)"
        ) from exc
    return umap


def _import_sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError as exc:  # pragma: no cover
        raise ImportError(
            "the surrogate needs scikit-learn: pip install 'aquasurf_fast[search]'"
        ) from exc
    return sklearn


def make_regressor(regressor: Any, random_state: Optional[int], n_train: int):
    """A fresh, unfitted regressor for ``n_train`` training points.

    Named regressors follow the paper (k-NN with 3 neighbours) or are its alternatives; an instance is
    cloned so that the caller's object is never fitted in place. A k-NN asking for more neighbours
    than there are training points is shrunk rather than failing.
    """
    _import_sklearn()
    from sklearn.base import clone, is_regressor

    if isinstance(regressor, str):
        if regressor == "knn":
            from sklearn.neighbors import KNeighborsRegressor

            model = KNeighborsRegressor(n_neighbors=3)
        elif regressor == "rf":
            from sklearn.ensemble import RandomForestRegressor

            model = RandomForestRegressor(n_estimators=100, random_state=random_state)
        elif regressor == "svr":
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler
            from sklearn.svm import SVR

            # The embedding's scale is arbitrary; SVR's RBF kernel is not scale free.
            model = make_pipeline(StandardScaler(), SVR())
        else:
            raise ValueError(
                f"unknown regressor {regressor!r}: use one of {', '.join(REGRESSOR_NAMES)} "
                "or a scikit-learn regressor instance"
            )
    elif is_regressor(regressor) or (hasattr(regressor, "fit") and hasattr(regressor, "predict")):
        model = clone(regressor)
    else:
        raise ValueError(
            f"regressor must be one of {', '.join(REGRESSOR_NAMES)} or a scikit-learn regressor, "
            f"got {type(regressor).__name__}"
        )
    params = model.get_params()
    for key in ("n_neighbors", "kneighborsregressor__n_neighbors"):
        if key in params and params[key] > n_train:
            model.set_params(**{key: n_train})
    return model


def _check_features(name: str, feats: np.ndarray, n: Optional[int]) -> np.ndarray:
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
    parts = [(f, k, m) for f, k, m in ((out_feats, OUTPUT_NEIGHBORS, OUTPUT_METRIC),
                                       (fisher_feats, FISHER_NEIGHBORS, FISHER_METRIC))
             if f is not None]
    if not parts:
        raise ValueError("compute_embedding needs output features, Fisher features or both")
    n = parts[0][0].shape[0]
    if n < MIN_UMAP_CANDIDATES:
        return _pca_2d(np.hstack([f for f, _, _ in parts]))
    umap = _import_umap()
    with warnings.catch_warnings():
        # Tiny sets make umap-learn truncate n_neighbors or fall back to random initialisation, and a
        # fixed random_state disables its parallelism; all expected here, none actionable by a user.
        warnings.filterwarnings("ignore", module=r"umap(\.|$)")
        warnings.filterwarnings("ignore", category=UserWarning, message=r".*n_jobs.*")
        models = [umap.UMAP(n_neighbors=min(k, n - 1), metric=m, n_components=2,
                            random_state=random_state, transform_mode="graph").fit(f)
                  for f, k, m in parts]
        if len(models) == 1:
            return _layout(models[0].graph_, random_state)
        union = models[0] + models[1]
        if random_state == 42:
            return np.asarray(union.embedding_, dtype=np.float32)
        return _layout(union.graph_, random_state)


def _layout(graph, random_state) -> np.ndarray:
    """Lay a fuzzy graph out in 2-D with umap-learn's default settings and the given seed."""
    from scipy.sparse.csgraph import connected_components
    from sklearn.utils import check_random_state
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


def rank_by_prediction(ids: np.ndarray, pred: np.ndarray, random_state: Optional[int]) -> np.ndarray:
    """``ids`` ordered by predicted score, best first. Ties (and the start, with nothing to learn
    from) follow a fixed random order, not the ids', so that the first choices are spread over
    the space."""
    tiebreak = np.random.RandomState(random_state).permutation(ids.size)
    key = np.where(np.isfinite(pred), pred, -np.inf)
    return ids[np.lexsort((tiebreak, -key))]


class Surrogate:
    """Predicts the score of every candidate from the scores of the evaluated ones.

    Parameters
    ----------
    regressor : "knn" (k-NN, 3 neighbours, the paper's choice), "rf", "svr", or a scikit-learn
        regressor instance (cloned before fitting).
    random_state : seed of UMAP and of randomised regressors; fixed by default so that a study's
        suggestions are reproducible.
    cache : mapping from embedding key to a float32 [n, 2] array. Defaults to a per-object dict; a study
        passes a mapping backed by its file, so that every process reuses one embedding.

    Fitted attributes: ``embedding_`` [n, 2], ``embedding_key_``, ``regressor_`` (None when fewer
    than one finite score was given), ``n_train_``, ``predictions_``.
    """

    def __init__(self, regressor: Any = "knn", random_state: Optional[int] = 42,
                 cache: Optional[MutableMapping[str, np.ndarray]] = None):
        self.regressor = regressor
        self.random_state = random_state
        self.cache = cache

    def embed(self, out_feats: np.ndarray, fisher_feats: Optional[np.ndarray] = None) -> np.ndarray:
        """The 2-D embedding of these candidates, from the cache when the set has been seen.

        ``embed_seconds_`` is how long UMAP took, or None when the embedding came from the cache.
        The same feature arrays as the last call (the same objects: a study passes its cached
        arrays) reuse the last key instead of checking and hashing every feature byte again.
        """
        given = (out_feats, fisher_feats, self.random_state)
        last = getattr(self, "_embedded", None)
        if last is not None and last[0] is given[0] and last[1] is given[1] and last[2] == given[2]:
            key = self.embedding_key_
        else:
            out_feats = _check_features("out_feats", out_feats, None)
            if fisher_feats is not None:
                fisher_feats = _check_features("fisher_feats", fisher_feats, out_feats.shape[0])
            key = embedding_key(out_feats, fisher_feats, self.random_state)
        if self.cache is None:
            self.cache = {}
        emb = self.cache.get(key)
        self.embed_seconds_ = None
        if emb is None or np.shape(emb) != (out_feats.shape[0], 2):
            start = time.perf_counter()
            emb = compute_embedding(out_feats, fisher_feats, self.random_state)
            self.embed_seconds_ = time.perf_counter() - start
            self.cache[key] = emb
        self.embedding_key_ = key
        self.embedding_ = np.asarray(emb, dtype=np.float32)
        self._embedded = given
        return self.embedding_

    def fit(self, out_feats: np.ndarray, fisher_feats: Optional[np.ndarray],
            evaluated_idx, scores) -> "Surrogate":
        """Embed all candidates (cached) and fit the regressor on the evaluated ones.

        ``evaluated_idx`` are row indices into the feature arrays, ``scores`` their observed scores;
        non-finite scores (diverged trainings) are left out of the regression. ``fisher_feats`` may be
        None to embed the output features alone (a study without a model to featurize).
        """
        emb = self.embed(out_feats, fisher_feats)
        n = emb.shape[0]
        idx = np.asarray(evaluated_idx, dtype=np.int64).reshape(-1)
        y = np.asarray(scores, dtype=np.float64).reshape(-1)
        if idx.shape != y.shape:
            raise ValueError(
                f"evaluated_idx has {idx.size} entries but scores has {y.size}: one score per index"
            )
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(f"evaluated_idx must lie in [0, {n}), got {idx.min()}..{idx.max()}")
        keep = np.isfinite(y)
        idx, y = idx[keep], y[keep]
        self.train_idx_, self.train_scores_ = idx, y
        self.n_train_ = int(idx.size)
        if self.n_train_ == 0:
            # Nothing to learn from: every prediction is unknown; the search falls back to its seed.
            self.regressor_ = None
            self.predictions_ = np.full(n, np.nan)
        elif self.n_train_ == 1 or np.ptp(y) == 0.0:
            self.regressor_ = None
            self.predictions_ = np.full(n, float(y.mean()))
        else:
            self.regressor_ = make_regressor(self.regressor, self.random_state, self.n_train_)
            self.regressor_.fit(emb[idx].astype(np.float64), y)
            self.predictions_ = (
                np.asarray(self.regressor_.predict(emb.astype(np.float64)), dtype=np.float64)
                if n else np.zeros(0)
            )
        return self

    def predict(self) -> np.ndarray:
        """Predicted scores of all candidates (float64 [n]); NaN everywhere with no finite score."""
        if not hasattr(self, "predictions_"):
            raise RuntimeError("Surrogate.predict() called before fit()")
        return self.predictions_.copy()
