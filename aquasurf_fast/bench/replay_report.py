"""What a replay shows: per strategy, evaluations to a top-k class and the regret of the class a
search would pick, as medians over trials with 95% bootstrap intervals, a Markdown table and a plot.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np

from .replay_pool import Pool

REGRET_AT = (25, 50, 100)
TOP_LEVELS = ("top-1", "top-5", "top-1%")
N_BOOTSTRAP = 2000


def bootstrap_median(x: np.ndarray, seed: int = 0) -> Tuple[float, float]:
    """95% percentile-bootstrap interval of the median of ``x`` (over trials; inf allowed: a trial
    that never got there). Resamples are drawn with a fixed seed, so a table is reproducible."""
    x = np.asarray(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    medians = np.median(x[rng.integers(x.size, size=(N_BOOTSTRAP, x.size))], axis=1)
    # "lower"/"higher" pick resampled medians themselves: no interpolation between inf and a number.
    return (float(np.percentile(medians, 2.5, method="lower")),
            float(np.percentile(medians, 97.5, method="higher")))


@dataclass
class Replay:
    """The outcome of ``replay``: the evaluation order of every trial of every strategy, with
    ``workers`` suggestions drawn before their results were known."""

    pool: Pool
    budget: int
    orders: Dict[str, np.ndarray]      # strategy -> [trials, budget] candidate positions
    featurized: Dict[str, np.ndarray]  # strategy -> [trials, budget] Fisher featurizations so far
    workers: int = 1

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
        """Per strategy: medians over trials, the share of trials that reached each top level, and
        95% bootstrap intervals ("... ci") of the median evaluations to a top-1% class and of the
        median regret at each of REGRET_AT (interquartile ranges as "... iqr")."""
        rows = []
        for s in self.orders:
            row = {"strategy": s}
            for level in TOP_LEVELS:
                e = self.evaluations_to(s, level)
                row[level] = float(np.median(e))
                row[level + " reached"] = float(np.isfinite(e).mean())
            row["top-1% ci"] = bootstrap_median(self.evaluations_to(s, "top-1%"))
            row["fisher to top-1%"] = float(np.median(self.featurizations_to(s, "top-1%")))
            regret = self.regret(s)
            for at in REGRET_AT:
                if at <= self.budget:
                    row[f"regret@{at}"] = float(np.median(regret[:, at - 1]))
                    row[f"regret@{at} ci"] = bootstrap_median(regret[:, at - 1])
                    row[f"regret@{at} iqr"] = tuple(
                        float(v) for v in np.percentile(regret[:, at - 1], [25, 75]))
            row["test acc"] = float(np.median(self.best_so_far(s)[:, -1]))
            row["val acc"] = float(np.median(self.best_so_far(s, "val")[:, -1]))
            rows.append(row)
        return rows

    def table(self) -> str:
        """The summary as a Markdown table: medians over trials, with the share of trials that got
        there in parentheses and 95% bootstrap intervals of the medians in brackets."""
        def evals(x: float) -> str:
            return f">{self.budget}" if not math.isfinite(x) else f"{x:g}"

        ats = [at for at in REGRET_AT if at <= self.budget]
        lines = ["| strategy | evals to top-1 | evals to top-5 | evals to top-1% | Fisher features "
                 "at top-1% | " + " | ".join(f"regret at {at}" for at in ats)
                 + f" | best val acc at {self.budget} | its test acc |",
                 "|---|---|---|---|---|" + "---|" * len(ats) + "---|---|"]
        for r in self.summary():
            cells = [f"{evals(r[lv])} ({r[lv + ' reached']:.0%})" for lv in TOP_LEVELS]
            lo, hi = r["top-1% ci"]
            cells[-1] += f" [{evals(lo)}, {evals(hi)}]"
            fisher = r["fisher to top-1%"]
            cells.append(f"{fisher:g}" if math.isfinite(fisher) else "-")
            cells += [f"{r[f'regret@{at}']:.4f} [{r[f'regret@{at} ci'][0]:.4f}, "
                      f"{r[f'regret@{at} ci'][1]:.4f}]" for at in ats]
            lines.append(f"| {r['strategy']} | {' | '.join(cells)} | {r['val acc']:.4f} | "
                         f"{r['test acc']:.4f} |")
        return "\n".join(lines)

    def _accuracy_range(self) -> tuple:
        """The best-so-far panel's y range: every median from the 10th evaluation on and every upper
        quartile in view, with a margin, and no room above an accuracy of 1 (the first few
        evaluations, often a diverged function, would squash the rest)."""
        start = min(10, self.budget) - 1
        curves = [np.percentile(self.best_so_far(s), [50, 75], axis=0) for s in self.orders]
        low = min(float(mid[start:].min()) for mid, _ in curves)
        high = min(1.0, max(float(hi.max()) for _, hi in curves))
        pad = max(0.002, 0.05 * (high - low))
        return low - pad, high + pad

    def plot(self, out_dir: str) -> List[str]:
        """Best-so-far test accuracy and the share of trials that reached a top-1% class."""
        from ..study.plots import new_figure

        fig = new_figure(figsize=(12, 4.5))
        os.makedirs(out_dir, exist_ok=True)
        axes = fig.subplots(1, 2)
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
                    title=f"Best so far: median and quartiles over {n_trials} trials, "
                          f"{self.workers} worker(s)")
        axes[0].set_ylim(*self._accuracy_range())
        axes[1].set(xlabel="evaluations", ylabel="share of trials", ylim=(0, 1.02),
                    title=f"Reached a top-1% class ({self.pool.n_top('top-1%')} of "
                          f"{len(self.pool)} by validation)")
        for ax in axes:
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        path = os.path.join(out_dir, "replay.png")
        fig.savefig(path, dpi=110)
        return [path]


