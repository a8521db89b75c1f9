"""The AQuaSurF surrogate (SPEC section 5): the candidates' 2-D embedding (``embedding``), then a
regressor fitted on the evaluated ones.

The embedding is cached under a key derived from the feature bytes and the UMAP settings; a new fit
with the same candidates (the usual case: one more evaluated score) only refits the regressor.
"""
from __future__ import annotations

import time
from typing import Any, MutableMapping, Optional

import numpy as np

from .embedding import check_features, compute_embedding, embedding_key

REGRESSOR_NAMES = ("knn", "knn-distance", "rf", "svr")


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
        elif regressor == "knn-distance":
            from sklearn.neighbors import KNeighborsRegressor

            # The ensemble strategy's: the nearest of the three counts most.
            model = KNeighborsRegressor(n_neighbors=3, weights="distance")
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


class Surrogate:
    """Predicts the score of every candidate from the scores of the evaluated ones.

    Not a scikit-learn estimator, on purpose: the surrogate is transductive. UMAP lays out every
    candidate, evaluated or not, so there is no ``predict(X)`` for a point outside the set it was
    fitted on, and ``fit`` takes the candidates' two feature arrays with the evaluated rows and
    their scores (SPEC section 8). It keeps the conventions that matter to a caller: the
    constructor's parameters are never changed, fitted attributes (ending in ``_``) are set only by
    ``embed`` and ``fit``, ``fit`` returns self, and the regressor given is cloned, never fitted in
    place (``make_regressor``).

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
        self._own_cache: MutableMapping[str, np.ndarray] = {}  # used when no cache is given

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
            out_feats = check_features("out_feats", out_feats, None)
            if fisher_feats is not None:
                fisher_feats = check_features("fisher_feats", fisher_feats, out_feats.shape[0])
            key = embedding_key(out_feats, fisher_feats, self.random_state)
        cache = self._own_cache if self.cache is None else self.cache
        emb = cache.get(key)
        self.embed_seconds_ = None
        if emb is None or np.shape(emb) != (out_feats.shape[0], 2):
            start = time.perf_counter()
            emb = compute_embedding(out_feats, fisher_feats, self.random_state)
            self.embed_seconds_ = time.perf_counter() - start
            cache[key] = emb
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


__all__ = ["REGRESSOR_NAMES", "Surrogate", "make_regressor"]
