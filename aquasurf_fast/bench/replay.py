"""Replaying searches on a benchmark (SPEC section 7): scores are looked up, nothing is trained.

Every strategy sees only validation accuracies, exactly as a real search would; the test accuracy of
the class it would pick (its best validation accuracy so far) is what gets reported. A trial is one
search of ``budget`` evaluations, and every randomized part of a strategy differs between trials:
its UMAP layouts (drawn from ``n_embeddings`` seeds: the paper's strategy takes the trial's own,
the ensemble five of them at random), its spread-out first picks, its Fisher pool, its tie order.
With ``workers`` W > 1 each suggestion is made while the W - 1 before it are still training (their
results unknown), as ``aquasurf search --workers W`` does with trainings of equal length.

Strategies (``STRATEGIES``):

- ``hybrid``, ``ensemble`` and ``paper``: the search strategies of ``surrogate.strategy`` (the
  default: the ensemble taking turns with k-NN on the squashed output features; the layouts
  alone; the paper's:
  baselines first, then the best 3-NN prediction on the UMAP union of output and Fisher features).
  ``random``: uniform random order, no baselines.
- ``outputs`` and ``fisher``: the paper's on one feature set alone (ablations).
- ``gp-ucb``: Bayesian optimisation on the paper's 2-D union layout: a Gaussian process (Matern 5/2
  plus noise, hyperparameters refitted every 10 evaluations) picks the highest upper confidence
  bound (mean + 2 standard deviations), after the same baselines.
- ``pool-random``, ``pool-coverage`` and their ``+grow`` forms: the paper's when only a pool of
  classes has Fisher features, as in a large space (``Study.choose_pool``): the baselines plus
  ``pool_size`` classes drawn at random (the original code's way) or chosen to cover the output
  features; with ``+grow``, every ``GROW_EVERY`` evaluations the ``GROW`` classes nearest the best
  so far join the pool and the embedding is recomputed. Each counts its Fisher featurizations.

The metrics are in ``replay_report``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..defaults import DEFAULT_BASELINES, GROW_FROM
from ..runtime.threads import thread_limit
from ..surrogate.strategy import DEFAULT_STRATEGY, N_LAYOUTS, Strategy, parse_variant, rank_classes
from .replay_pool import Embeddings, Pool, make_pool
from .format import Benchmark, BenchmarkError
from .replay_report import Replay

POOL_STRATEGIES = ("pool-random", "pool-random+grow", "pool-coverage", "pool-coverage+grow")
# New strategies go last: a strategy's random generator is seeded by its index here.
STRATEGIES = (("ensemble", "paper", "random", "outputs", "fisher", "gp-ucb") + POOL_STRATEGIES
              + ("hybrid", "adaptive"))
# The order of a replay's rows: the default first.
REPLAY_ORDER = (DEFAULT_STRATEGY,) + tuple(s for s in STRATEGIES if s != DEFAULT_STRATEGY)


@dataclass(frozen=True)
class _Replayed:
    """How a trial of one replayed strategy runs: which features its layouts are made of (None:
    it reads none) and the search strategy that ranks on them (None: the trial orders the
    candidates itself)."""

    features: Optional[str]
    ranker: Optional[str]

    @property
    def n_layouts(self) -> int:
        return Strategy(self.ranker).n_layouts if self.ranker else 1


# Every replayed strategy but the pool ones, by name: the search strategies as a study runs
# them, the paper's on one feature set alone, the GP and random search with orders of their own.
_REPLAYED = {**{name: _Replayed("union", name) for name in ("adaptive", "ensemble", "hybrid",
                                                            "paper")},
             "outputs": _Replayed("outputs", "paper"), "fisher": _Replayed("fisher", "paper"),
             "gp-ucb": _Replayed("union", None), "random": _Replayed(None, None)}
GROW = 20         # classes a growing pool adds per round
GROW_EVERY = 10   # evaluations per round
UCB_KAPPA = 2.0
GP_REFIT_EVERY = 10  # evaluations between fits of the Gaussian process's hyperparameters
N_EMBEDDINGS = 25    # layout seeds per feature set that the trials draw from


def _gp_scores(emb: np.ndarray, idx: np.ndarray, y: np.ndarray, seed: int, kernel=None):
    """Upper confidence bounds of every candidate, and the kernel used.

    Given a ``kernel`` its hyperparameters are kept as they are: refitting them by marginal
    likelihood costs a hundred times the fit itself, and one more point barely moves them.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    if kernel is None:
        gp = GaussianProcessRegressor(
            kernel=ConstantKernel(1.0) * Matern(length_scale=1.0, nu=2.5) + WhiteKernel(1e-3),
            normalize_y=True, random_state=seed)
    else:
        gp = GaussianProcessRegressor(kernel=kernel, normalize_y=True, optimizer=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gp.fit(emb[idx].astype(np.float64), y)
        mean, std = gp.predict(emb.astype(np.float64), return_std=True)
    return mean + UCB_KAPPA * std, gp.kernel_


def _knn_scores(emb: np.ndarray, idx: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The paper's predictions on one layout ``emb`` [n, 2] from the evaluated ``idx``."""
    return Strategy("paper").predict(emb[None], idx, y)


def _layout_seeds(strategy: str, trial: int, seed: int, n_embeddings: int,
                  rng: np.random.Generator) -> List[int]:
    """The layout seeds one trial reads: its own for one-layout strategies, N_LAYOUTS of the
    ``n_embeddings`` drawn at random for those that read several (the adaptive, the ensemble,
    the hybrid)."""
    if _REPLAYED[strategy].n_layouts == 1:
        return [seed * 1000 + trial % n_embeddings]
    if n_embeddings < N_LAYOUTS:
        raise ValueError(f"the {strategy} strategy averages {N_LAYOUTS} layouts: n_embeddings must "
                         f"be at least {N_LAYOUTS}, got {n_embeddings}")
    return [seed * 1000 + int(i) for i in rng.choice(n_embeddings, N_LAYOUTS, replace=False)]


def run_trial(strategy: str, pool: Pool, embeddings: Embeddings, budget: int, trial: int,
              seed: int = 0, n_embeddings: int = N_EMBEDDINGS, workers: int = 1) -> np.ndarray:
    """Candidate positions in the order one search of ``strategy`` evaluates them; each choice
    knows the results of all but the ``workers - 1`` choices just before it."""
    n = len(pool)
    budget = min(budget, n)
    strategy, settings = parse_variant(strategy)
    rng = np.random.default_rng([seed, trial, STRATEGIES.index(strategy)])
    how = _REPLAYED[strategy]
    if how.features is None:  # random search: no baselines, and nothing to wait for
        return rng.permutation(n)[:budget]
    layouts = embeddings.layouts(how.features,
                                 _layout_seeds(strategy, trial, seed, n_embeddings, rng))
    if how.ranker is None:
        return _run_gp_trial(pool, layouts[0], budget, seed, workers, rng)
    ranker = Strategy(how.ranker, adaptive=settings)
    return search_order(ranker, layouts, pool.output_points if ranker.needs_points else None,
                        pool.val, pool.baselines, budget, workers, int(rng.integers(2**31)))


def search_order(strategy: Strategy, layouts: np.ndarray, points: Optional[np.ndarray],
                 val: np.ndarray, baselines: Sequence[int], budget: int, workers: int,
                 random_state: int) -> np.ndarray:
    """The positions a study of ``strategy`` with ``random_state`` evaluates, in order, when the
    candidates' layouts are ``layouts`` (and output points ``points``), their scores ``val``,
    ``baselines`` come first, and ``workers`` trainings of equal length run at once: every pick
    is ranked by ``rank_classes``, as ``Study.suggest`` ranks it, knowing all results but those of
    the ``workers - 1`` picks before it."""
    ids = np.arange(len(val))
    chosen = [int(b) for b in baselines[:budget]]
    while len(chosen) < budget:
        n_known = max(0, len(chosen) - workers + 1)
        scores = {c: float(val[c]) for c in chosen[:n_known]}
        order = rank_classes(strategy, ids, layouts, scores, chosen[n_known:], len(baselines), 1,
                             random_state, points)
        chosen.append(int(order[0]))
    return np.array(chosen, dtype=np.int64)


def _run_gp_trial(pool: Pool, emb: np.ndarray, budget: int, seed: int, workers: int,
                  rng: np.random.Generator) -> np.ndarray:
    """The ``gp-ucb`` strategy's evaluation order (pending choices are only excluded)."""
    n = len(pool)
    tiebreak = rng.permutation(n)
    chosen = list(pool.baselines[:budget])
    kernel = None
    while len(chosen) < budget:
        idx = np.array(chosen[:max(0, len(chosen) - workers + 1)], dtype=np.int64)
        y = pool.val[idx]
        if y.size and np.ptp(y) > 0.0:
            refit = kernel is None or idx.size % GP_REFIT_EVERY == 0
            scores, kernel = _gp_scores(emb, idx, y, seed, None if refit else kernel)
        else:
            scores = _knn_scores(emb, idx, y)
        scores[chosen] = -np.inf
        chosen.append(int(np.lexsort((tiebreak, -scores))[0]))
    return np.array(chosen)


def _initial_pool(strategy: str, pool: Pool, pool_size: int, trial: int, seed: int) -> List[int]:
    """The baselines plus ``pool_size`` classes, at random or by coverage; the same for a strategy
    and its ``+grow`` form in one trial."""
    from ..surrogate.coverage import choose_pool

    base = list(pool.baselines)
    rng = np.random.default_rng([seed, trial, 7])
    if strategy.startswith("pool-random"):
        rest = np.setdiff1d(np.arange(len(pool)), base)
        picks = rng.choice(rest, min(pool_size, rest.size), replace=False)
    else:
        picks = choose_pool(pool.coordinates, pool_size, base, int(rng.integers(2**31)))
    return base + [int(p) for p in picks]


def grow_members(pool: Pool, members: List[int], evaluated: List[int], k: int) -> List[int]:
    """The ``k`` classes outside ``members`` nearest (in output features) the best evaluated ones,
    taking turns among the best three, as ``Study.grow`` does."""
    from ..surrogate.coverage import nearest_rows, take_turns

    inside = np.zeros(len(pool), dtype=bool)
    inside[members] = True
    best = sorted(evaluated, key=lambda i: -pool.val[i])[:GROW_FROM]
    return take_turns([nearest_rows(pool.out_feats[b], pool.out_feats, k, inside) for b in best], k)


def run_pool_trial(strategy: str, pool: Pool, budget: int, trial: int, seed: int = 0,
                   pool_size: int = 100, embeddings: Optional[Dict] = None, workers: int = 1):
    """(evaluation order, Fisher featurizations done before each evaluation) of one search that
    sees only a pool of featurized classes; each choice knows all results but the ``workers - 1``
    choices before it."""
    from ..surrogate.embedding import compute_embedding

    if pool.fisher is None:
        raise BenchmarkError("this benchmark has no Fisher features: the pool strategies need them")
    members = _initial_pool(strategy, pool, pool_size, trial, seed)
    budget = min(budget, len(pool))
    if not strategy.endswith("+grow") and len(members) < budget:
        raise ValueError(f"a pool of {len(members)} classes cannot last {budget} evaluations: "
                         "use a larger pool or a smaller budget")
    # The tie-break order, like the first pool, is shared with the strategy's +grow twin: up to
    # the first growth both make the same choices.
    tiebreak = np.random.default_rng([seed, trial, 8]).permutation(len(pool))
    embeddings = {} if embeddings is None else embeddings
    chosen = list(pool.baselines[:budget])
    featurized = [len(members)] * len(chosen)
    emb = None
    grows, grown_at = strategy.endswith("+grow"), 0
    while len(chosen) < budget:
        # As Study.run: a round of growth every GROW_EVERY results, and whenever the pool is used up.
        known = chosen[:max(0, len(chosen) - workers + 1)]
        if grows and (len(chosen) - grown_at >= GROW_EVERY or set(members) <= set(chosen)):
            members = members + grow_members(pool, members, known, GROW)
            grown_at, emb = len(chosen), None
        if emb is None:
            key = (tuple(sorted(members)), seed * 1000 + trial)
            if key not in embeddings:
                embeddings[key] = compute_embedding(pool.out_feats[members], pool.fisher[members],
                                                    key[1])
            emb, local = embeddings[key], np.array(key[0])
        seen = np.isin(local, chosen)
        if seen.all():
            break  # the pool is used up (a fixed pool smaller than the budget)
        idx = np.flatnonzero(np.isin(local, known))
        scores = np.where(seen, -np.inf, _knn_scores(emb, idx, pool.val[local[idx]]))
        pick = int(local[np.lexsort((tiebreak[local], -scores))[0]])
        chosen.append(pick)
        featurized.append(len(members))
    return np.array(chosen), np.array(featurized)


def replay(bench: Benchmark, strategies: Sequence[str] = REPLAY_ORDER, trials: int = 50,
           budget: int = 100, seed: int = 0, n_embeddings: int = N_EMBEDDINGS,
           baselines: Sequence[str] = DEFAULT_BASELINES, cache: bool = True,
           progress: bool = True, pool_size: int = 100, workers: int = 1,
           score: str = "median") -> Replay:
    """Replay ``trials`` searches of each strategy on ``bench``, ``budget`` evaluations each, with
    ``workers`` suggestions out at a time; the pool strategies start from ``pool_size`` featurized
    classes besides the baselines. ``score``: what the searches see of a class trained under
    several seeds (``candidates.validation_scores``)."""
    unknown = [s for s in strategies if parse_variant(s)[0] not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategy {', '.join(unknown)}: use {', '.join(STRATEGIES)}")
    for arg, value in (("trials", trials), ("budget", budget), ("n_embeddings", n_embeddings),
                       ("workers", workers)):
        if value < 1:
            raise ValueError(f"{arg} must be at least 1, got {value}")
    pool = make_pool(bench, baselines, score)
    embeddings = Embeddings(pool, cache=cache)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(strategies) * trials, desc="replay", unit="trial")
    orders, featurized = {}, {}
    pool_embeddings: Dict = {}  # shared by a pool strategy and its +grow form
    n_budget = min(budget, len(pool))
    # A trial's matrices are small: BLAS threads only wait on each other and, on a busy machine,
    # on everything else (a trial of the adaptive strategy took 8.8 s against 2.0 s on one thread
    # beside a benchmark build).
    try:
        with thread_limit(1):
            for s in strategies:
                rows, counts = [], []
                for t in range(trials):
                    if s in POOL_STRATEGIES:
                        order, done = run_pool_trial(s, pool, budget, t, seed, pool_size,
                                                     pool_embeddings, workers)
                    else:
                        order = run_trial(s, pool, embeddings, budget, t, seed, n_embeddings,
                                          workers)
                        # The full strategies featurize every candidate first; the others none.
                        uses_fisher = _REPLAYED[parse_variant(s)[0]].features in ("union", "fisher")
                        done = np.full(order.size, len(pool) if uses_fisher else 0)
                    rows.append(order)
                    counts.append(done)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix_str(s)
                orders[s], featurized[s] = np.stack(rows), np.stack(counts)
    finally:
        if bar is not None:
            bar.close()
    return Replay(pool=pool, budget=n_budget, orders=orders, featurized=featurized,
                  workers=workers)


__all__ = ["GROW", "GROW_EVERY", "POOL_STRATEGIES", "REPLAY_ORDER", "STRATEGIES", "Embeddings", "Pool",
           "Replay", "grow_members", "make_pool", "replay", "run_pool_trial", "run_trial",
           "search_order"]
