"""The adaptive strategy's models: which representation of the candidates predicts on this task.

Each model is k-NN regression in one space: the mean over several 2-D UMAP layouts of the union
of output and Fisher features, or the squashed output features themselves (``output_points``).
How well each predicts is measured on the task's own evaluations, by leave-one-out: every
evaluated class is predicted from the others, and the model's error is the mean squared error of
those predictions. The next pick is drawn from the models with probabilities that fall with their
error, so a representation that does not predict on this task is soon rarely asked, while one that
does is asked most, and both stay in play while the evidence is thin.

A model's prediction comes with an uncertainty: the spread of the neighbours' scores, scaled so
that on the evaluated classes it matches the leave-one-out residuals (calibrated, not a fixed
weight). A pick maximises the mean plus ``kappa`` such deviations.
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

K_NEIGHBOURS = 3


class KnnSpace:
    """k-NN regression over one representation: ``spaces`` [M, n, d], predictions averaged over
    the M coordinate sets (several layouts of one graph, or one stack of output points). The
    float64 coordinates and their squared norms are computed once, for every pick of a search."""

    def __init__(self, spaces: np.ndarray):
        self.coords = np.asarray(spaces, dtype=np.float64)
        self.norms = (self.coords ** 2).sum(axis=2)

    @property
    def n(self) -> int:
        return self.coords.shape[1]

    def _neighbours(self, m: int, idx: np.ndarray, k: int, exclude_self: bool) -> np.ndarray:
        """Indices into ``idx`` of the ``k`` nearest evaluated points (in coordinate set ``m``) of
        every candidate, or of every evaluated point, itself left out, when ``exclude_self``.
        Squared distances in float64 by the expansion |a|^2 - 2ab + |b|^2: one product, where a
        tree or sklearn's chunked reductions cost ten to a hundred times more for a few hundred
        evaluated points."""
        coords, norms = self.coords[m], self.norms[m]
        query, query_norms = (coords[idx], norms[idx]) if exclude_self else (coords, norms)
        d = query_norms[:, None] + norms[idx][None, :] - 2.0 * (query @ coords[idx].T)
        if exclude_self:
            d[np.arange(idx.size), np.arange(idx.size)] = np.inf
        return np.argpartition(d, k - 1, axis=1)[:, :k]

    def predict(self, idx: np.ndarray, y: np.ndarray, loo: bool = False):
        """(mean, spread) of the k nearest evaluated scores, averaged over the coordinate sets:
        for every candidate, or with ``loo`` for every evaluated point from the others."""
        k = min(K_NEIGHBOURS, idx.size - int(loo))
        n = idx.size if loo else self.n
        mean, spread = np.zeros(n), np.zeros(n)
        for m in range(len(self.coords)):
            nb_scores = y[self._neighbours(m, idx, k, loo)]
            mean += nb_scores.mean(axis=1)
            spread += nb_scores.std(axis=1)
        return mean / len(self.coords), spread / len(self.coords)

    def loo_error(self, idx: np.ndarray, y: np.ndarray):
        """(mean squared leave-one-out error, calibration factor of the spread): the factor makes
        the spread's mean square equal the residuals' on the evaluated points."""
        mean, spread = self.predict(idx, y, loo=True)
        mse = float(np.mean((mean - y) ** 2))
        scale = float(np.sqrt(mse / max(float(np.mean(spread ** 2)), 1e-12)))
        return mse, scale


def model_weights(errors: Sequence[float], power: float) -> np.ndarray:
    """Probabilities of drawing each model: proportional to (1 / error) ** ``power``; equal when
    every error is zero."""
    err = np.maximum(np.asarray(errors, dtype=np.float64), 1e-12)
    w = (err.min() / err) ** power
    return w / w.sum()


def adaptive_scores(models: List[KnnSpace], idx: np.ndarray, y: np.ndarray, kappa: float,
                    power: float, rng: np.random.Generator) -> np.ndarray:
    """Every candidate's acquisition score under one model drawn by its leave-one-out error:
    the mean prediction plus ``kappa`` calibrated deviations. Zeros while fewer than
    ``K_NEIGHBOURS + 1`` scores are known or they do not differ (the tie order decides)."""
    if idx.size <= K_NEIGHBOURS or np.ptp(y) == 0.0:
        return np.zeros(models[0].n)
    fits = [m.loo_error(idx, y) for m in models]
    pick = int(rng.choice(len(models), p=model_weights([e for e, _ in fits], power)))
    mean, spread = models[pick].predict(idx, y)
    return mean + kappa * fits[pick][1] * spread


__all__ = ["K_NEIGHBOURS", "KnnSpace", "adaptive_scores", "model_weights"]
