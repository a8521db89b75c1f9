"""Replaying searches on a benchmark (SPEC section 7): scores are looked up, nothing is trained.

Every strategy sees only validation accuracies, exactly as a real search would; the test accuracy of
the class it would pick (its best validation accuracy so far) is what gets reported. A trial is one
search of ``budget`` evaluations; trials differ in their random seed: the UMAP layout (one of
``n_embeddings`` seeds), the tie-breaking order and, for random search, the order itself.

Strategies (``STRATEGIES``):

- ``aquasurf``: the paper's. Baselines first, then the best k-NN (3 neighbours) prediction on the
  UMAP union of output and Fisher features.
- ``random``: uniform random order, no baselines.
- ``outputs`` and ``fisher``: the same as ``aquasurf`` on one feature set alone (ablations).
- ``gp-ucb``: Bayesian optimisation on the same 2-D union embedding: a Gaussian process (Matern 5/2
  plus noise, hyperparameters refitted every 10 evaluations) picks the highest upper confidence
  bound (mean + 2 standard deviations), after the same baselines.
- ``pool-random``, ``pool-coverage`` and their ``+grow`` forms: ``aquasurf`` when only a pool of
  classes has Fisher features, as in a large space (``Study.choose_pool``): the baselines plus
  ``pool_size`` classes drawn at random (the original code's way) or chosen to cover the output
  features; with ``+grow``, every ``GROW_EVERY`` evaluations the ``GROW`` classes nearest the best
  so far join the pool and the embedding is recomputed. Each counts its Fisher featurizations.

Two metrics: evaluations until a top-k class (by validation accuracy) was evaluated, and the
regret of the class a search would pick (its best by validation accuracy) in the median test
accuracy over the benchmark's seeds: noise that made one run lucky cannot win it.
"""
from __future__ import annotations

import hashlib
import math
import os
import warnings
from dataclasses import dataclass
from functools import cached_property
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..cache import cache_dir, load_npz, save_npz
from ..defaults import DEFAULT_BASELINES, GROW_FROM, expression_name
from .format import Benchmark, BenchmarkError

POOL_STRATEGIES = ("pool-random", "pool-random+grow", "pool-coverage", "pool-coverage+grow")
STRATEGIES = ("aquasurf", "random", "outputs", "fisher", "gp-ucb") + POOL_STRATEGIES
# Which features each strategy's embedding is made of (None: no embedding).
_EMBEDDING_OF = {"aquasurf": "union", "outputs": "outputs", "fisher": "fisher", "gp-ucb": "union",
                 "random": None}
GROW = 20         # classes a growing pool adds per round
GROW_EVERY = 10   # evaluations per round
REGRET_AT = (25, 50, 100)
UCB_KAPPA = 2.0
GP_REFIT_EVERY = 10  # evaluations between fits of the Gaussian process's hyperparameters
TOP_LEVELS = ("top-1", "top-5", "top-1%")


@dataclass(frozen=True, eq=False)
class Pool:
    """The candidates of a replay: trained classes (with Fisher features when the file has them)."""

    rows: np.ndarray          # benchmark row of each candidate
    names: List[str]
    val: np.ndarray           # float64 validation accuracy: what the strategies see
    test: np.ndarray          # float64 test accuracy: what is reported
    test_median: np.ndarray   # float64 median test accuracy over the benchmark's seeds
    baselines: List[int]      # candidate positions of the baselines present, in order
    out_feats: np.ndarray
    fisher: Optional[np.ndarray]

    def __len__(self) -> int:
        return len(self.rows)

    def top_threshold(self, level: str) -> float:
        """The validation accuracy a class needs to count as top-1, top-5 or top-1%."""
        k = {"top-1": 1, "top-5": 5}.get(level) or max(1, math.ceil(0.01 * len(self)))
        return float(np.sort(self.val)[::-1][min(k, len(self)) - 1])

    @cached_property
    def coordinates(self) -> np.ndarray:
        """The candidates in the projection a study chooses its Fisher pool by."""
        from ..surrogate.coverage import PROBE_STRIDE, Projection

        return Projection.fit(self.out_feats[:, ::PROBE_STRIDE]).of_features(self.out_feats)

    def n_top(self, level: str) -> int:
        """How many classes count as top-k: the k best and any that tie with the k-th."""
        return int((self.val >= self.top_threshold(level)).sum())


def make_pool(bench: Benchmark, baselines: Sequence[str] = DEFAULT_BASELINES) -> Pool:
    ok = np.isfinite(bench.metrics["val_acc"]) & np.isfinite(bench.metrics["test_acc"])
    if bench.fisher is not None:
        ok &= np.isfinite(bench.fisher).all(axis=1)
    rows = np.flatnonzero(ok)
    if rows.size < 10:
        raise BenchmarkError(f"{bench.path}: only {rows.size} classes have validation and test "
                             "accuracies (and Fisher features); a replay needs at least 10")
    names = [bench.names[i] for i in rows]
    out = bench.output_features()[rows]
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        # Trained classes should have finite outputs; a file that says otherwise is inconsistent.
        bad = [names[i] for i in np.flatnonzero(~finite)[:3]]
        raise BenchmarkError(f"{bench.path}: trained classes with non-finite outputs on the probe "
                             f"inputs, e.g. {', '.join(bad)}")
    position = {int(r): p for p, r in enumerate(rows)}
    base = []
    for b in baselines:
        row = bench.class_of(expression_name(b))
        if row is not None and row in position and position[row] not in base:
            base.append(position[row])
    median = bench.median_test_acc()[rows]
    return Pool(rows=rows, names=names, val=bench.metrics["val_acc"][rows],
                test=bench.metrics["test_acc"][rows],
                test_median=np.where(np.isfinite(median), median, -np.inf), baselines=base,
                out_feats=out,
                fisher=None if bench.fisher is None else bench.fisher[rows])


class Embeddings:
    """2-D UMAP embeddings of a pool by feature set and seed, computed once and kept on disk."""

    def __init__(self, pool: Pool, cache: bool = True):
        self.pool = pool
        self.cache = cache
        self._mem: Dict[tuple, np.ndarray] = {}
        h = hashlib.sha256(np.ascontiguousarray(pool.out_feats, dtype="<f4").tobytes())
        if pool.fisher is not None:
            h.update(np.ascontiguousarray(pool.fisher, dtype="<f4").tobytes())
        self._key = h.hexdigest()[:24]

    def get(self, kind: str, seed: int) -> np.ndarray:
        from ..surrogate.embedding import compute_embedding

        if kind != "outputs" and self.pool.fisher is None:
            raise BenchmarkError("this benchmark has no Fisher features: use the random or "
                                 "outputs strategies")
        if (kind, seed) in self._mem:
            return self._mem[kind, seed]
        path = None
        if self.cache:
            path = os.path.join(cache_dir(), "embeddings", f"{self._key}-{kind}-{seed}.npz")
            cached = load_npz(path, ("emb",))
            if cached is not None and cached["emb"].shape == (len(self.pool), 2):
                self._mem[kind, seed] = cached["emb"]
                return cached["emb"]
        out = None if kind == "fisher" else self.pool.out_feats
        fisher = None if kind == "outputs" else self.pool.fisher
        emb = compute_embedding(out, fisher, seed)
        self._mem[kind, seed] = emb
        if path:
            save_npz(path, {"emb": emb})
        return emb


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


def _knn_scores(emb: np.ndarray, idx: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """k-NN predictions at every embedded point from the evaluated ones (``idx``, scores ``y``);
    zeros while those all score alike: there is nothing to learn yet, the tie-break order decides."""
    from ..surrogate.regression import make_regressor

    if idx.size < 2 or np.ptp(y) == 0.0:
        return np.zeros(len(emb))
    model = make_regressor("knn", seed, idx.size)
    model.fit(emb[idx].astype(np.float64), y)
    return model.predict(emb.astype(np.float64))


def run_trial(strategy: str, pool: Pool, embeddings: Embeddings, budget: int, trial: int,
              seed: int = 0, n_embeddings: int = 5) -> np.ndarray:
    """Candidate positions in the order one search of ``strategy`` evaluates them."""
    n = len(pool)
    budget = min(budget, n)
    rng = np.random.default_rng([seed, trial, STRATEGIES.index(strategy)])
    if strategy == "random":
        return rng.permutation(n)[:budget]
    emb = embeddings.get(_EMBEDDING_OF[strategy], seed * 1000 + trial % n_embeddings)
    tiebreak = rng.permutation(n)
    chosen = list(pool.baselines[:budget])
    kernel = None
    seen = np.zeros(n, dtype=bool)
    seen[chosen] = True
    while len(chosen) < budget:
        idx = np.array(chosen)
        y = pool.val[idx]
        if strategy == "gp-ucb" and np.ptp(y) > 0.0:
            refit = kernel is None or idx.size % GP_REFIT_EVERY == 0
            scores, kernel = _gp_scores(emb, idx, y, seed, None if refit else kernel)
        else:
            scores = _knn_scores(emb, idx, y, seed)
        scores = np.where(seen, -np.inf, scores)
        pick = int(np.lexsort((tiebreak, -scores))[0])
        chosen.append(pick)
        seen[pick] = True
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


def _grow(pool: Pool, members: List[int], evaluated: List[int], k: int) -> List[int]:
    """The ``k`` classes outside ``members`` nearest (in output features) the best evaluated ones,
    taking turns among the best three, as ``Study.grow`` does."""
    from ..surrogate.coverage import nearest_rows, take_turns

    inside = np.zeros(len(pool), dtype=bool)
    inside[members] = True
    best = sorted(evaluated, key=lambda i: -pool.val[i])[:GROW_FROM]
    return take_turns([nearest_rows(pool.out_feats[b], pool.out_feats, k, inside) for b in best], k)


def run_pool_trial(strategy: str, pool: Pool, budget: int, trial: int, seed: int = 0,
                   pool_size: int = 100, embeddings: Optional[Dict] = None):
    """(evaluation order, Fisher featurizations done before each evaluation) of one search that
    sees only a pool of featurized classes."""
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
        if grows and (len(chosen) - grown_at >= GROW_EVERY or set(members) <= set(chosen)):
            members = members + _grow(pool, members, chosen, GROW)
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
        idx = np.flatnonzero(seen)
        scores = np.where(seen, -np.inf, _knn_scores(emb, idx, pool.val[local[idx]], seed))
        pick = int(local[np.lexsort((tiebreak[local], -scores))[0]])
        chosen.append(pick)
        featurized.append(len(members))
    return np.array(chosen), np.array(featurized)


@dataclass
class Replay:
    """The outcome of ``replay``: the evaluation order of every trial of every strategy."""

    pool: Pool
    budget: int
    orders: Dict[str, np.ndarray]      # strategy -> [trials, budget] candidate positions
    featurized: Dict[str, np.ndarray]  # strategy -> [trials, budget] Fisher featurizations so far

    def best_so_far(self, strategy: str, metric: str = "test") -> np.ndarray:
        """[trials, budget]: the metric ("val", "test" or "test_median") of the class with the best
        validation accuracy so far."""
        order = self.orders[strategy]
        val = self.pool.val[order]
        best = np.maximum.accumulate(val, axis=1)
        # The incumbent is the first class that reached the running maximum.
        is_new = np.concatenate([np.ones((val.shape[0], 1), bool), best[:, 1:] > best[:, :-1]],
                                axis=1)
        pos = np.maximum.accumulate(np.where(is_new, np.arange(val.shape[1]), 0), axis=1)
        incumbent = np.take_along_axis(order, pos, axis=1)
        return getattr(self.pool, metric)[incumbent]

    def regret(self, strategy: str) -> np.ndarray:
        """[trials, budget]: how far the median test accuracy of the class a search would pick falls
        short of the best median test accuracy of the benchmark (0: it holds the best class)."""
        return self.pool.test_median.max() - self.best_so_far(strategy, "test_median")

    def featurizations_to(self, strategy: str, level: str) -> np.ndarray:
        """Per trial, Fisher featurizations done when a ``level`` class was first evaluated."""
        e = self.evaluations_to(strategy, level)
        done = self.featurized[strategy]
        at = np.where(np.isfinite(e), e, self.budget).astype(int) - 1
        return np.where(np.isfinite(e), done[np.arange(done.shape[0]), at], np.inf)

    def evaluations_to(self, strategy: str, level: str) -> np.ndarray:
        """Per trial, evaluations until a ``level`` class was evaluated (inf: not within budget)."""
        hit = self.pool.val[self.orders[strategy]] >= self.pool.top_threshold(level)
        first = np.argmax(hit, axis=1).astype(np.float64) + 1
        return np.where(hit.any(axis=1), first, np.inf)

    def summary(self) -> List[Dict[str, float]]:
        rows = []
        for s in self.orders:
            row = {"strategy": s}
            for level in TOP_LEVELS:
                e = self.evaluations_to(s, level)
                row[level] = float(np.median(e))
                row[level + " reached"] = float(np.isfinite(e).mean())
            row["fisher to top-1%"] = float(np.median(self.featurizations_to(s, "top-1%")))
            regret = self.regret(s)
            for at in REGRET_AT:
                if at <= self.budget:
                    q = np.percentile(regret[:, at - 1], [25, 50, 75])
                    row[f"regret@{at}"] = tuple(float(v) for v in q)
            row["test acc"] = float(np.median(self.best_so_far(s)[:, -1]))
            row["val acc"] = float(np.median(self.best_so_far(s, "val")[:, -1]))
            rows.append(row)
        return rows

    def table(self) -> str:
        """The summary as a Markdown table: medians over trials (the share of trials that got
        there, and the interquartile range of the regret, in parentheses)."""
        def evals(x: float) -> str:
            return f">{self.budget}" if not math.isfinite(x) else f"{x:g}"

        ats = [at for at in REGRET_AT if at <= self.budget]
        lines = ["| strategy | evals to top-1 | evals to top-5 | evals to top-1% | Fisher features "
                 "at top-1% | " + " | ".join(f"regret at {at}" for at in ats)
                 + f" | best val acc at {self.budget} | its test acc |",
                 "|---|---|---|---|---|" + "---|" * len(ats) + "---|---|"]
        for r in self.summary():
            cells = [f"{evals(r[lv])} ({r[lv + ' reached']:.0%})" for lv in TOP_LEVELS]
            fisher = r["fisher to top-1%"]
            cells.append(f"{fisher:g}" if math.isfinite(fisher) else "-")
            cells += [f"{r[f'regret@{at}'][1]:.4f} ({r[f'regret@{at}'][0]:.4f}-"
                      f"{r[f'regret@{at}'][2]:.4f})" for at in ats]
            lines.append(f"| {r['strategy']} | {' | '.join(cells)} | {r['val acc']:.4f} | "
                         f"{r['test acc']:.4f} |")
        return "\n".join(lines)

    def plot(self, out_dir: str) -> List[str]:
        """Best-so-far test accuracy and the share of trials that reached a top-1% class."""
        from ..study.plots import pyplot

        plt = pyplot()
        os.makedirs(out_dir, exist_ok=True)
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        x = np.arange(1, self.budget + 1)
        for s in self.orders:
            best = self.best_so_far(s)
            lo, mid, hi = np.percentile(best, [25, 50, 75], axis=0)
            (line,) = axes[0].plot(x, mid, label=s)
            axes[0].fill_between(x, lo, hi, color=line.get_color(), alpha=0.15)
            reach = self.evaluations_to(s, "top-1%")
            axes[1].plot(x, (reach[:, None] <= x[None, :]).mean(axis=0), label=s)
        n_trials = next(iter(self.orders.values())).shape[0]
        axes[0].set(xlabel="evaluations", ylabel="test accuracy of the best by validation",
                    title=f"Best so far: median and quartiles over {n_trials} trials")
        lo = np.percentile(np.concatenate([self.best_so_far(s)[:, 0] for s in self.orders]), 25)
        axes[0].set_ylim(lo, float(self.pool.test.max()) + 0.01)
        axes[1].set(xlabel="evaluations", ylabel="share of trials", ylim=(0, 1.02),
                    title=f"Reached a top-1% class ({self.pool.n_top('top-1%')} of "
                          f"{len(self.pool)} by validation)")
        for ax in axes:
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        path = os.path.join(out_dir, "replay.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return [path]


def replay(bench: Benchmark, strategies: Sequence[str] = STRATEGIES, trials: int = 50,
           budget: int = 100, seed: int = 0, n_embeddings: int = 5,
           baselines: Sequence[str] = DEFAULT_BASELINES, cache: bool = True,
           progress: bool = True, pool_size: int = 100) -> Replay:
    """Replay ``trials`` searches of each strategy on ``bench``, ``budget`` evaluations each; the
    pool strategies start from ``pool_size`` featurized classes besides the baselines."""
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategy {', '.join(unknown)}: use {', '.join(STRATEGIES)}")
    if trials < 1 or budget < 1 or n_embeddings < 1:
        raise ValueError("trials, budget and n_embeddings must be at least 1")
    pool = make_pool(bench, baselines)
    embeddings = Embeddings(pool, cache=cache)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(strategies) * trials, desc="replay", unit="trial")
    orders, featurized = {}, {}
    pool_embeddings: Dict = {}  # shared by a pool strategy and its +grow form
    n_budget = min(budget, len(pool))
    try:
        for s in strategies:
            rows, counts = [], []
            for t in range(trials):
                if s in POOL_STRATEGIES:
                    order, done = run_pool_trial(s, pool, budget, t, seed, pool_size,
                                                 pool_embeddings)
                else:
                    order = run_trial(s, pool, embeddings, budget, t, seed, n_embeddings)
                    # The full strategies featurize every candidate first; the others none.
                    uses_fisher = _EMBEDDING_OF[s] in ("union", "fisher")
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
    return Replay(pool=pool, budget=n_budget, orders=orders, featurized=featurized)


__all__ = ["POOL_STRATEGIES", "STRATEGIES", "Embeddings", "Pool", "Replay", "make_pool", "replay",
           "run_pool_trial", "run_trial"]
