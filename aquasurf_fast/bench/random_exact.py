"""Random search's figures computed exactly, not simulated: the order statistics of drawing the
candidates without replacement.

A search that draws ``t`` of ``N`` candidates uniformly without replacement has missed all ``m``
classes of a target set with probability C(N - m, t) / C(N, t); its incumbent after ``t`` draws
(the best validation accuracy drawn, the first drawn of a tie) is a class of the best validation
level drawn, each class of that level equally likely.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .replay_pool import Pool


def miss_probability(n: int, m, t) -> np.ndarray:
    """P(none of ``m`` marked among ``n`` is in the first ``t`` draws): C(n - m, t) / C(n, t),
    in logs (``m`` and ``t`` broadcast)."""
    from scipy.special import gammaln

    m, t = np.broadcast_arrays(np.asarray(m, dtype=np.float64), np.asarray(t, dtype=np.float64))
    rest = n - m
    with np.errstate(invalid="ignore"):
        log_p = (gammaln(rest + 1) - gammaln(rest - t + 1)) - (gammaln(n + 1) - gammaln(n - t + 1))
    return np.where(rest >= t, np.exp(log_p), 0.0)


def median_draws(n: int, m: int) -> float:
    """The median number of draws until one of ``m`` marked among ``n`` is drawn: the smallest t
    with P(T <= t) >= 1/2 (halfway to the next when it is exactly 1/2)."""
    if not 1 <= m <= n:
        raise ValueError(f"need 1 <= m <= n marked candidates, got m = {m} of n = {n}")
    hit = 1.0 - miss_probability(n, m, np.arange(n + 1))
    t = int(np.argmax(hit >= 0.5 - 1e-12))
    return t + 0.5 if math.isclose(hit[t], 0.5, rel_tol=0, abs_tol=1e-12) else float(t)


def hit_share(n: int, m: int, budget: int) -> float:
    """P(one of ``m`` marked among ``n`` is drawn within ``budget`` draws)."""
    return float(1.0 - miss_probability(n, m, np.array([min(budget, n)]))[0])


def incumbent_distribution(val: np.ndarray, t: int) -> np.ndarray:
    """P(class i is the incumbent after ``t`` uniform draws without replacement), for every i."""
    val = np.asarray(val, dtype=np.float64)
    n = val.size
    _, inverse, counts = np.unique(-val, return_inverse=True, return_counts=True)
    above = np.concatenate([[0], np.cumsum(counts)[:-1]])
    t = min(t, n)
    # P(the best level drawn is this one) = P(nothing above drawn) - P(nothing at or above drawn)
    p_level = miss_probability(n, above, t) - miss_probability(n, above + counts, t)
    return (p_level / counts)[inverse]


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The median of a discrete distribution: the smallest value whose cumulative weight reaches
    half (halfway to the next when it is exactly half)."""
    order = np.argsort(values, kind="stable")
    v = np.asarray(values)[order]
    cum = np.cumsum(np.asarray(weights, dtype=np.float64)[order])
    cum /= cum[-1]
    j = int(np.argmax(cum >= 0.5 - 1e-12))
    above = v[v > v[j]]
    if math.isclose(cum[j], 0.5, abs_tol=1e-12) and above.size:
        return float((v[j] + above[0]) / 2)
    return float(v[j])


def random_regret(pool: Pool, t: int) -> float:
    """Random search's median regret after ``t`` evaluations (as ``Replay.regret`` defines it)."""
    regret = pool.test_median.max() - pool.test_median
    return weighted_median(regret, incumbent_distribution(pool.val, t))


def random_summary(pool: Pool, levels: Sequence[str], budget: int, regret_at: Sequence[int]) -> dict:
    """Random search's row of a replay summary, exactly: median evaluations to each level (inf
    when the median is beyond ``budget``), the share reaching it within ``budget``, and the median
    regret at each of ``regret_at``."""
    row = {"strategy": "random (exact)"}
    for level in levels:
        m = pool.n_top(level)
        median = median_draws(len(pool), m)
        row[level + " exact"] = median
        row[level] = median if median <= budget else math.inf
        row[level + " reached"] = hit_share(len(pool), m, budget)
    for at in regret_at:
        if at <= budget:
            row[f"regret@{at}"] = random_regret(pool, at)
    return row


__all__ = ["hit_share", "incumbent_distribution", "median_draws", "miss_probability",
           "random_regret", "random_summary", "weighted_median"]
