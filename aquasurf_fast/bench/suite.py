"""Replaying the whole benchmark suite: every file with W = 1 and W = 4, random search's figures
computed exactly, and a summary that shows each strategy's worst case.

Per benchmark and W, the replay's table with random search's exact row under it; then, per
strategy, its ratio to random search's exact median evaluations to a top-1% class on every
benchmark and W with the worst of them, and, from a longer replay (W = 1), the median evaluations
to the best class and to a top-5 class beside random search's exact medians.
"""
from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..cache import load_npz, save_npz
from ..defaults import DEFAULT_BASELINES
from .replay_pool import make_pool
from .default_rule import Outcome
from .format import Benchmark, BenchmarkError, load_benchmark
from .random_exact import random_summary
from .replay import replay
from .replay_report import REGRET_AT, TOP_LEVELS, Replay

SUITE_GLOB = os.path.join("benchmarks", "data", "act-bench-*.json.gz")
WORKERS = (1, 4)


def benchmark_name(path: str) -> str:
    """``act-bench-NAME.json.gz`` -> NAME; any other file keeps its name without extensions."""
    base = os.path.basename(path)
    base = re.sub(r"(\.json)?(\.gz)?$", "", base)
    return base[len("act-bench-"):] if base.startswith("act-bench-") else base


def suite_files(paths: Sequence[str] = ()) -> List[str]:
    """The files to replay: ``paths``, or every shipped benchmark under the current directory."""
    files = list(paths) or sorted(glob.glob(SUITE_GLOB))
    if not files:
        raise BenchmarkError(f"no benchmark files given and none found at {SUITE_GLOB} (run from "
                             "the repository's root, or name the files)")
    names = [benchmark_name(f) for f in files]
    if len(set(names)) != len(names):
        raise BenchmarkError(f"two files share a benchmark name: {', '.join(files)}")
    return files


def _evals(x: float, budget: int) -> str:
    return f">{budget}" if not math.isfinite(x) else f"{x:g}"


def random_row(rep: Replay) -> str:
    """Random search's exact figures as a row of ``Replay.table``."""
    r = random_summary(rep.pool, TOP_LEVELS, rep.budget, REGRET_AT)
    cells = [f"{_evals(r[lv], rep.budget)} ({r[lv + ' reached']:.0%})" for lv in TOP_LEVELS]
    cells.append("0")
    cells += [f"{r[f'regret@{at}']:.4f}" for at in REGRET_AT if at <= rep.budget]
    return f"| random (exact) | {' | '.join(cells)} | - | - |"


@dataclass
class SuiteReplay:
    """Every replay of a suite run: ``replays[(benchmark, W)]``, ``long[benchmark]`` (W = 1)."""

    replays: Dict[Tuple[str, int], Replay]
    long: Dict[str, Replay] = field(default_factory=dict)

    @property
    def benchmarks(self) -> List[str]:
        return list(dict.fromkeys(b for b, _ in self.replays))

    def strategies(self) -> List[str]:
        return list(next(iter(self.replays.values())).orders)

    def outcomes(self) -> Dict[str, Dict[Tuple[str, int], Outcome]]:
        """strategy -> (benchmark, W) -> Outcome: what the default rule reads."""
        out: Dict[str, Dict[Tuple[str, int], Outcome]] = {}
        for key, rep in self.replays.items():
            random = random_summary(rep.pool, ("top-1%",), rep.budget, ())["top-1% exact"]
            for row in rep.summary():
                out.setdefault(row["strategy"], {})[key] = Outcome(
                    row["top-1%"], tuple(row["top-1% ci"]), random)
        return out

    def tables(self) -> str:
        """Per benchmark and W, the replay's table and random search's exact row."""
        parts = []
        for (name, w), rep in self.replays.items():
            pool = rep.pool
            parts.append(f"**{name}, W = {w}** ({len(pool)} candidates; top-1% = "
                         f"{pool.n_top('top-1%')} classes, top-5 = {pool.n_top('top-5')}, "
                         f"top-1 = {pool.n_top('top-1')})\n\n{rep.table()}\n{random_row(rep)}")
        return "\n\n".join(parts)

    def ratio_table(self) -> str:
        """Per strategy: median evaluations to a top-1% class over random search's exact median, on
        every benchmark and W, and the worst."""
        outcomes = self.outcomes()
        keys = list(self.replays)
        lines = ["| ratio to random, evals to top-1% | " + " | ".join(f"{b} W={w}" for b, w in keys)
                 + " | worst |", "|---|" + "---:|" * (len(keys) + 1)]
        for s, res in outcomes.items():
            ratios = [res[k].ratio for k in keys]
            lines.append(f"| {s} | " + " | ".join(f"{r:.3f}" for r in ratios)
                         + f" | {max(ratios):.3f} |")
        return "\n".join(lines)

    def long_table(self) -> str:
        """From the longer replay: median evaluations to the best class and to a top-5 class,
        with random search's exact medians and the ratio of random's to the strategy's."""
        if not self.long:
            return ""
        names = list(self.long)
        budget = next(iter(self.long.values())).budget
        head = " | ".join(f"{n}: best | {n}: top-5" for n in names)
        lines = [f"| budget {budget}, W = 1 | {head} |", "|---|" + "---:|" * (2 * len(names))]
        randoms = {n: random_summary(rep.pool, ("top-1", "top-5"), rep.budget, ())
                   for n, rep in self.long.items()}
        for s in self.long[names[0]].orders:
            cells = []
            for n in names:
                summary = {r["strategy"]: r for r in self.long[n].summary()}[s]
                for level in ("top-1", "top-5"):
                    x, rnd = summary[level], randoms[n][level + " exact"]
                    speedup = f" ({rnd / x:.1f}x)" if math.isfinite(x) else ""
                    cells.append(f"{_evals(x, budget)}{speedup}")
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
        exact = [f"{randoms[n][lv + ' exact']:g}" for n in names for lv in ("top-1", "top-5")]
        lines.append("| random (exact) | " + " | ".join(exact) + " |")
        return "\n".join(lines)


def replay_suite(files: Sequence[str], strategies: Sequence[str], trials: int = 50,
                 budget: int = 100, workers: Sequence[int] = WORKERS, long_budget: int = 400,
                 long_trials: Optional[int] = None, seed: int = 0, progress: bool = True,
                 save: Optional[str] = None, **options) -> SuiteReplay:
    """Replay ``strategies`` on every file with each of ``workers``, and once more with
    ``long_budget`` evaluations and W = 1 (``long_trials`` trials, default ``trials``; 0 skips
    it). ``options`` go to ``replay``. With ``save``, a folder: each strategy's replay is kept
    there as it finishes and one kept with the same settings is read instead of replayed, so an
    interrupted suite resumes, and processes replaying different files can share the folder."""
    result = SuiteReplay(replays={})
    for path in files:
        name, bench = benchmark_name(path), load_benchmark(path)
        saved = SavedReplays(save, path, seed, options) if save else None
        runs = [(w, budget, trials) for w in workers]
        if long_budget and (long_trials is None or long_trials > 0):
            runs.append((1, long_budget, long_trials or trials))
        for i, (w, b, t) in enumerate(runs):
            def run(chosen, w=w, b=b, t=t):
                return replay(bench, chosen, trials=t, budget=b, seed=seed, progress=progress,
                              workers=w, **options)

            rep = saved.replay(bench, strategies, w, b, t, run) if saved else run(strategies)
            if i < len(workers):
                result.replays[(name, w)] = rep
            else:
                result.long[name] = rep
    return result


def _code_digest() -> str:
    """A digest of the sources a replay's choices follow from (the strategies and the replay):
    replays kept by other code are replayed again."""
    here = os.path.dirname(os.path.abspath(__file__))
    sources = sorted(glob.glob(os.path.join(here, "..", "surrogate", "*.py"))) + [
        os.path.join(here, name) for name in ("replay.py", "replay_pool.py")]
    h = hashlib.sha256()
    for source in sources:
        with open(source, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:16]


class SavedReplays:
    """One benchmark file's replays kept in a folder, one file per strategy and setting."""

    def __init__(self, folder: str, path: str, seed: int, options: dict):
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:16]
        self.folder, self.name = folder, benchmark_name(path)
        # As JSON reads them back (tuples as lists), so that kept settings compare equal.
        self.settings = json.loads(json.dumps({"benchmark": digest, "code": _code_digest(),
                                               "seed": seed, **dict(sorted(options.items()))}))
        self.baselines = options.get("baselines", DEFAULT_BASELINES)
        self.score = options.get("score", "median")

    def replay(self, bench: Benchmark, strategies: Sequence[str], workers: int, budget: int,
               trials: int, run) -> Replay:
        """The replay of ``strategies``: those kept with these settings read back, the others
        replayed by ``run(strategies)`` and kept."""
        settings = dict(self.settings, workers=workers, budget=budget, trials=trials)
        kept = {s: self._load(s, settings) for s in strategies}
        missing = [s for s, k in kept.items() if k is None]
        if missing:
            fresh = run(missing)
            pool = fresh.pool
            for s in missing:
                kept[s] = fresh.orders[s], fresh.featurized[s]
                self._save(s, settings, *kept[s])
        else:
            pool = make_pool(bench, self.baselines, self.score)
        return Replay(pool=pool, budget=min(budget, len(pool)),
                      orders={s: kept[s][0] for s in strategies},
                      featurized={s: kept[s][1] for s in strategies}, workers=workers)

    def _file(self, strategy: str, settings: dict) -> str:
        safe = re.sub(r"[^A-Za-z0-9=.+-]", "_", strategy)
        return os.path.join(self.folder, f"{self.name}-w{settings['workers']}-b{settings['budget']}"
                                         f"-{safe}.npz")

    def _load(self, strategy: str, settings: dict):
        kept = load_npz(self._file(strategy, settings), ("settings", "orders", "featurized"))
        if kept is None or json.loads(str(kept["settings"])) != dict(settings, strategy=strategy):
            return None
        return kept["orders"], kept["featurized"]

    def _save(self, strategy: str, settings: dict, orders: np.ndarray,
              featurized: np.ndarray) -> None:
        path = self._file(strategy, settings)
        record = np.array(json.dumps(dict(settings, strategy=strategy), sort_keys=True))
        if not save_npz(path, {"settings": record, "orders": orders, "featurized": featurized}):
            raise BenchmarkError(f"cannot write {path}: choose a writable folder for --save")


__all__ = ["SUITE_GLOB", "SavedReplays", "SuiteReplay", "WORKERS", "benchmark_name", "random_row",
           "replay_suite", "suite_files"]
