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

from dataclasses import dataclass
from typing import List, Sequence

import numpy as np

K_NEIGHBOURS = 3


@dataclass(frozen=True)
class KnnSpace:
    """k-NN regression over one representation: ``spaces`` [M, n, d], predictions averaged over
    the M coordinate sets (several layouts of one graph, or one stack of output points)."""

    spaces: np.ndarray

    def _neighbours(self, coords: np.ndarray, idx: np.ndarray, k: int, exclude_self: bool):
        """Indices into ``idx`` of the ``k`` nearest evaluated points of every candidate (of every
        evaluated point, itself left out, when ``exclude_self``)."""
        from sklearn.neighbors import NearestNeighbors

        nn = NearestNeighbors(n_neighbors=k + int(exclude_self)).fit(coords[idx])
        if exclude_self:
            _, nb = nn.kneighbors(coords[idx])
            # Duplicates may put another point first; drop each row's own index wherever it is.
            own = nb == np.arange(idx.size)[:, None]
            keep = np.where(own.any(axis=1)[:, None], ~own, np.arange(k + 1)[None, :] < k)
            return nb[keep].reshape(idx.size, k)
        _, nb = nn.kneighbors(coords)
        return nb

    def predict(self, idx: np.ndarray, y: np.ndarray, loo: bool = False):
        """(mean, spread) of the k nearest evaluated scores, averaged over the coordinate sets:
        for every candidate, or with ``loo`` for every evaluated point from the others."""
        k = min(K_NEIGHBOURS, idx.size - int(loo))
        n = idx.size if loo else self.spaces.shape[1]
        mean, spread = np.zeros(n), np.zeros(n)
        for coords in self.spaces:
            nb_scores = y[self._neighbours(np.asarray(coords, np.float64), idx, k, loo)]
            mean += nb_scores.mean(axis=1)
            spread += nb_scores.std(axis=1)
        return mean / len(self.spaces), spread / len(self.spaces)

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
        return np.zeros(models[0].spaces.shape[1])
    fits = [m.loo_error(idx, y) for m in models]
    pick = int(rng.choice(len(models), p=model_weights([e for e, _ in fits], power)))
    mean, spread = models[pick].predict(idx, y)
    return mean + kappa * fits[pick][1] * spread


__all__ = ["K_NEIGHBOURS", "KnnSpace", "adaptive_scores", "model_weights"]
