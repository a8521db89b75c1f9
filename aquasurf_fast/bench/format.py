"""Benchmarks (SPEC section 7): every class of a space trained, in the Act-Bench JSON layout.

``load_benchmark`` reads the layout: ours, or the published Act-Bench files. A benchmark trained
under several seeds keeps each class's median run in the layout's metrics and every run's
validation and test accuracy beside them (``RUNS_KEYS``). Building one: ``bench.build``.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import zlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..cache import cache_dir, load_npz, save_npz

# The metric keys of the Act-Bench layout, and the study metric each comes from.
LAYOUT_METRICS = {
    "Train Accuracy": "train_acc",
    "Validation Accuracy": "val_acc",
    "Test Accuracy": "test_acc",
    "Train Loss": "train_loss",
    "Validation Loss": "val_loss",
    "Test Loss": "test_loss",
}
MEMBERS_KEY = "Equivalent Activation Functions"
FISHER_KEY = "Fisher log eigenvalue CDF"
RUNTIME_KEY = "Runtime (s)"
LAYOUT_KEYS = (*LAYOUT_METRICS, MEMBERS_KEY, FISHER_KEY, RUNTIME_KEY)
# Our addition to the layout for builds with several seeds: one value per seed, in seed order.
RUNS_KEYS = {"Validation Accuracy (runs)": "val_acc", "Test Accuracy (runs)": "test_acc"}
# Every entry must carry these; the other layout keys may be missing (read as unknown).
REQUIRED_KEYS = ("Validation Accuracy", "Test Accuracy")
CACHE_VERSION = 2


class BenchmarkError(ValueError):
    """A benchmark file that cannot be read: says which file, which entry and what is wrong."""


# -- reading ---------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Benchmark:
    """A benchmark in memory: one row per class.

    ``metrics`` maps ``train_acc``, ``val_acc``, ``test_acc``, ``train_loss``, ``val_loss``,
    ``test_loss`` and ``runtime`` to float64 arrays, NaN where unknown (an untrained class).
    ``fisher`` is float32 [n, D] with NaN rows where a class has no features, or None when no class
    has any. ``runs`` maps ``val_acc`` and ``test_acc`` to float64 [n, seeds] arrays of every
    training run (NaN where a run diverged or a class is untrained), or is None for a benchmark
    trained once per class.
    """

    path: str
    names: Tuple[str, ...]
    members: Tuple[Tuple[str, ...], ...]
    metrics: Dict[str, np.ndarray]
    fisher: Optional[np.ndarray]
    runs: Optional[Dict[str, np.ndarray]] = None
    _index: Dict[str, int] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        seeds = "" if self.runs is None else f", {self.n_seeds} seeds"
        return (f"Benchmark({self.path!r}: {len(self)} classes, {int(self.trained.sum())} trained"
                f"{seeds}, Fisher features {'none' if self.fisher is None else self.fisher.shape[1]})")

    @property
    def n_seeds(self) -> int:
        """Training runs per class: 1 unless the benchmark records several."""
        return 1 if self.runs is None else self.runs["val_acc"].shape[1]

    def median_test_acc(self) -> np.ndarray:
        """Each class's median test accuracy over its runs (its only run's with one seed).

        Diverged runs count as the worst, so a class that diverged under most seeds gets NaN.
        """
        if self.runs is None:
            return self.metrics["test_acc"]
        runs = np.where(np.isnan(self.runs["test_acc"]), -np.inf, self.runs["test_acc"])
        median = np.sort(runs, axis=1)[:, (runs.shape[1] - 1) // 2]
        return np.where(np.isfinite(median), median, np.nan)

    @property
    def trained(self) -> np.ndarray:
        """Boolean mask of the classes with a validation accuracy."""
        return np.isfinite(self.metrics["val_acc"])

    def class_of(self, name: str) -> Optional[int]:
        """Row of the class that has ``name`` among its members (None when absent)."""
        if not self._index:
            for i, members in enumerate(self.members):
                for m in members:
                    self._index.setdefault(m, i)
            for i, n in enumerate(self.names):
                self._index.setdefault(n, i)
        return self._index.get(name)

    def output_features(self) -> np.ndarray:
        """Output features of each class's name (SPEC section 3), float32 [n, 1000]."""
        from ..features import output_features

        try:
            return output_features(list(self.names))
        except ValueError as exc:
            raise BenchmarkError(f"{self.path}: a class name is not an expression this package "
                                 f"can evaluate ({exc})") from None


def describe(bench: Benchmark, baselines: Sequence[str] = ("relu", "swish", "elu", "tanh"),
             chance: float = 0.1) -> str:
    """A plain-text summary: how many trained, the spread of accuracies, the baselines' ranks.

    A class "fails to learn" when its validation accuracy stays below twice ``chance`` (0.1 for ten
    balanced classes).
    """
    from ..defaults import expression_name

    val, test = bench.metrics["val_acc"], bench.metrics["test_acc"]
    trained = np.flatnonzero(bench.trained)
    lines = [f"{bench.path}: {len(bench)} classes, {trained.size} trained, "
             f"{len(bench) - trained.size} untrained"]
    if trained.size == 0:
        return lines[0]
    v = val[trained]
    q = np.percentile(v, [0, 10, 25, 50, 75, 90, 100])
    lines.append("validation accuracy: " + ", ".join(
        f"{name} {x:.3f}" for name, x in zip(("min", "p10", "p25", "median", "p75", "p90", "max"),
                                              q)))
    fail = float((v < 2 * chance).mean())
    lines.append(f"fail to learn (validation accuracy < {2 * chance:g}): {fail:.1%}")
    order = trained[np.argsort(-v, kind="stable")]
    rank = {int(i): r + 1 for r, i in enumerate(order)}
    best = order[0]
    lines.append(f"best: {bench.names[best]} (validation {val[best]:.4f}, test {test[best]:.4f})")
    lines.append(top_ties(v))
    for b in baselines:
        i = bench.class_of(expression_name(b))
        if i is not None and i in rank:
            lines.append(f"{bench.names[i]}: validation {val[i]:.4f}, test {test[i]:.4f}, rank "
                         f"{rank[i]} of {trained.size} (top {rank[i] / trained.size:.1%})")
    if bench.runs is not None:
        lines.extend(seed_spread(bench))
    return "\n".join(lines)


def top_ties(val: np.ndarray) -> str:
    """How many classes tie at the top-1% threshold and at the best score: a top 1% wider than 1%
    of the classes cannot tell a search that finds the best from one that finds a tie."""
    ranked = np.sort(val)[::-1]
    k = max(1, int(np.ceil(0.01 * ranked.size)))
    threshold = ranked[k - 1]
    at_top1 = int((val >= threshold).sum())
    return (f"top 1% ({k} classes): validation accuracy >= {threshold:.4f} holds {at_top1} classes "
            f"({int((val == threshold).sum())} tie at the threshold); "
            f"{int((val == ranked[0]).sum())} share the best score")


def seed_spread(bench: Benchmark) -> List[str]:
    """How much one class's validation accuracy moves between seeds, and whether the top 1% by a
    single seed (seed 0) is still the top 1% by the median over seeds."""
    runs = bench.runs["val_acc"]
    all_runs = np.isfinite(runs).all(axis=1)
    std = np.std(runs[all_runs], axis=1, ddof=1)
    trained = np.flatnonzero(bench.trained & np.isfinite(runs[:, 0]))
    k = max(1, int(np.ceil(0.01 * trained.size)))
    by_seed0 = set(trained[np.argsort(-runs[trained, 0], kind="stable")[:k]].tolist())
    by_median = set(trained[np.argsort(-bench.metrics["val_acc"][trained], kind="stable")[:k]].tolist())
    diverged = int((np.isfinite(runs).any(axis=1) & ~all_runs).sum())
    return [f"seeds: {bench.n_seeds} runs per class; standard deviation of a class's validation "
            f"accuracy across seeds: median {np.median(std):.4f}, p90 "
            f"{np.percentile(std, 90):.4f} (over {all_runs.sum()} classes whose runs all finished"
            f"{f'; {diverged} classes have a diverged run' if diverged else ''})",
            f"top 1% by seed 0 alone ({k} classes): {len(by_seed0 & by_median)} stay in the top 1% "
            "by the median over seeds"]


def _read_json(path: str) -> Any:
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            return json.load(f)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise BenchmarkError(f"{path}: cannot read the file ({exc})") from None
    except json.JSONDecodeError as exc:
        raise BenchmarkError(f"{path}: not valid JSON ({exc}); a benchmark is one JSON object "
                             "mapping function names to their metrics") from None


def _number(path: str, name: str, key: str, value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BenchmarkError(f"{path}: entry {name!r}: {key!r} must be a number or null, got "
                             f"{type(value).__name__} {value!r:.40}")
    return float(value)


def _parse_rows(path: str, data: Any) -> Dict[str, Any]:
    """Check the layout and turn the JSON object into arrays."""
    if not isinstance(data, dict):
        raise BenchmarkError(f"{path}: expected a JSON object mapping function names to metrics, "
                             f"got a JSON {type(data).__name__}")
    if not data:
        raise BenchmarkError(f"{path}: the benchmark is empty")
    names = list(data)
    cols: Dict[str, List[float]] = {src: [] for src in LAYOUT_METRICS.values()}
    cols["runtime"] = []
    members, fisher_rows = [], []
    runs_cols: Dict[str, List[Any]] = {src: [] for src in RUNS_KEYS.values()}
    for name in names:
        row = data[name]
        if not isinstance(row, dict):
            raise BenchmarkError(f"{path}: entry {name!r} must be an object of metrics, got "
                                 f"{type(row).__name__}")
        missing = [k for k in REQUIRED_KEYS if k not in row]
        if missing:
            raise BenchmarkError(f"{path}: entry {name!r} lacks {', '.join(map(repr, missing))} "
                                 f"(the Act-Bench layout has {', '.join(LAYOUT_KEYS)})")
        for key, src in LAYOUT_METRICS.items():
            cols[src].append(_number(path, name, key, row.get(key)))
        cols["runtime"].append(_number(path, name, RUNTIME_KEY, row.get(RUNTIME_KEY)))
        mem = row.get(MEMBERS_KEY) or [name]
        if not isinstance(mem, list) or not all(isinstance(m, str) and m and " " not in m
                                                for m in mem):
            raise BenchmarkError(f"{path}: entry {name!r}: {MEMBERS_KEY!r} must be a list of "
                                 "function names")
        members.append(tuple(dict.fromkeys([name, *mem])))
        for key, src in RUNS_KEYS.items():
            runs_cols[src].append(_runs(path, name, key, row.get(key)))
        feat = row.get(FISHER_KEY)
        if feat is not None and not (isinstance(feat, list)
                                     and all(isinstance(v, (int, float)) or v is None for v in feat)):
            raise BenchmarkError(f"{path}: entry {name!r}: {FISHER_KEY!r} must be a list of numbers "
                                 "or null")
        fisher_rows.append(feat or None)
    lengths = {len(f) for f in fisher_rows if f is not None}
    if len(lengths) > 1:
        raise BenchmarkError(f"{path}: the Fisher features have different lengths "
                             f"({sorted(lengths)[:5]}); they must come from one architecture")
    fisher = None
    if lengths:
        dim = lengths.pop()
        fisher = np.full((len(names), dim), np.nan, dtype=np.float32)
        for i, f in enumerate(fisher_rows):
            if f is not None:
                fisher[i] = np.array([np.nan if v is None else v for v in f], dtype=np.float32)
    return {"names": names, "members": members,
            "metrics": {k: np.array(v, dtype=np.float64) for k, v in cols.items()},
            "fisher": fisher, "runs": _runs_arrays(path, runs_cols)}


def _runs(path: str, name: str, key: str, value: Any) -> Optional[List[float]]:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise BenchmarkError(f"{path}: entry {name!r}: {key!r} must be a non-empty list of numbers "
                             "(one per seed) or null")
    return [_number(path, name, key, v) for v in value]


def _runs_arrays(path: str, runs_cols: Dict[str, List[Any]]) -> Optional[Dict[str, np.ndarray]]:
    """The per-seed columns as [n, seeds] arrays; None when no entry has runs."""
    lengths = {len(r) for col in runs_cols.values() for r in col if r is not None}
    if not lengths:
        return None
    if len(lengths) > 1:
        raise BenchmarkError(f"{path}: the entries' runs have different lengths ({sorted(lengths)}); "
                             "every class of a benchmark is trained under the same seeds")
    n_seeds = lengths.pop()
    out = {}
    for src, col in runs_cols.items():
        arr = np.full((len(col), n_seeds), np.nan)
        for i, r in enumerate(col):
            if r is not None:
                arr[i] = r
        out[src] = arr
    return out


def _cache_path(path: str) -> str:
    st = os.stat(path)
    key = f"v{CACHE_VERSION}|{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"
    return os.path.join(cache_dir(), "benchmarks",
                        hashlib.sha256(key.encode()).hexdigest()[:32] + ".npz")


def _to_arrays(parsed: Dict[str, Any]) -> Dict[str, np.ndarray]:
    arrays = {"names": np.array(parsed["names"], dtype=str),
              "members": np.array([" ".join(m) for m in parsed["members"]], dtype=str)}
    arrays.update({"metric_" + k: v for k, v in parsed["metrics"].items()})
    if parsed["fisher"] is not None:
        arrays["fisher"] = parsed["fisher"]
    for src, arr in (parsed["runs"] or {}).items():
        arrays["runs_" + src] = arr
    return arrays


def _from_arrays(path: str, arrays) -> Benchmark:
    metrics = {k[len("metric_"):]: np.asarray(arrays[k]) for k in arrays if k.startswith("metric_")}
    runs = {k[len("runs_"):]: np.asarray(arrays[k]) for k in arrays if k.startswith("runs_")}
    return Benchmark(path=path, names=tuple(str(n) for n in arrays["names"]),
                     members=tuple(tuple(str(m).split(" ")) for m in arrays["members"]),
                     metrics=metrics,
                     fisher=np.asarray(arrays["fisher"]) if "fisher" in arrays else None,
                     runs=runs or None)


def load_benchmark(path: str, cache: bool = True) -> Benchmark:
    """Read a benchmark in the Act-Bench JSON layout (plain or gzip), ours or the published files.

    The published files are hundreds of MB of JSON, so the parsed arrays are kept in the cache
    directory (``aquasurf_fast.cache``), keyed by the file's path, size and modification time;
    later loads read the compact copy.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise BenchmarkError(f"{path}: no such benchmark file")
    cache_file = _cache_path(path) if cache else None
    if cache_file and os.path.exists(cache_file):
        cached = load_npz(cache_file, ())
        if cached is not None and "names" in cached and "members" in cached:
            return _from_arrays(path, cached)
    arrays = _to_arrays(_parse_rows(path, _read_json(path)))
    if cache_file:
        save_npz(cache_file, arrays)
    return _from_arrays(path, arrays)


__all__ = ["Benchmark", "BenchmarkError", "LAYOUT_KEYS", "RUNS_KEYS", "describe", "load_benchmark"]
