"""Benchmarks (SPEC section 7): every class of a space trained once, in the Act-Bench JSON layout.

``build_benchmark`` trains all classes whose outputs are finite through a study, so an interrupted
build resumes where it stopped, and writes the Act-Bench layout with ``write_benchmark``.
``load_benchmark`` reads that layout back: ours, or the published Act-Bench files.
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

from .expr import BENCHMARK_SCHEMA

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
# Every entry must carry these; the other layout keys may be missing (read as unknown).
REQUIRED_KEYS = ("Validation Accuracy", "Test Accuracy")
CACHE_VERSION = 1


class BenchmarkError(ValueError):
    """A benchmark file that cannot be read: says which file, which entry and what is wrong."""


def default_study_path(out: str) -> str:
    """Where a benchmark build keeps its study: next to the output, ``NAME.study.db``."""
    base = out
    for suffix in (".gz", ".json"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base + ".study.db"


def open_build_study(study_path: str, task: str, seeds: int, names: Sequence[str]):
    """The study of a benchmark build: created with the space, or reopened to resume.

    A resumed build must train the same task under the same seeds, or its rows would mix recipes.
    """
    from .search import Study, StudyError
    from .store import remove_study_files
    from .tasks import resolve_spec

    if os.path.exists(study_path) and os.path.getsize(study_path) > 0:
        study = Study(study_path, order="exhaustive")
        settings = study.settings
        if settings.get("task") != resolve_spec(task) or settings.get("bench_seeds") != seeds:
            study.close()
            raise StudyError(
                f"{study_path} holds a build of task {settings.get('task')!r} with "
                f"{settings.get('bench_seeds')} seed(s), not {task!r} with {seeds}: pass another "
                "--study, or delete it to start over")
        return study
    study = Study(study_path, task=task, order="exhaustive", create=True)
    try:
        study.store.set_meta(bench_seeds=seeds)
        study.add_functions(names)
    except BaseException:
        study.close()
        remove_study_files(study_path)
        raise
    return study


def build_benchmark(out: str, task: str = "mnist1d", *, names: Optional[Sequence[str]] = None,
                    seeds: int = 1, workers: int = 1, study_path: Optional[str] = None,
                    executor=None, progress: bool = True) -> Dict[str, Any]:
    """Train every finite class of ``names`` (default: the benchmark space) and write ``out``.

    Resumable: the work lives in the study at ``study_path`` (default ``default_study_path(out)``);
    running again trains only what is missing. ``executor`` (e.g. a ``RayExecutor``) runs both the
    featurization and the trainings; by default they run in ``workers`` local processes and
    in this process. Returns the study's final counts.
    """
    import aquasurf_fast as aq
    from .tasks import TaskEvaluator

    if names is None:
        names = aq.enumerate_schema(BENCHMARK_SCHEMA, unary=aq.BENCHMARK_UNARY_OPS)
    study_path = study_path or default_study_path(out)
    study = open_build_study(study_path, task, seeds, names)
    try:
        study.featurize(progress=progress, embed=False, executor=executor)
        # Budget: every class; the run stops once no trainable candidate is left.
        stats = study.run(TaskEvaluator(task, seeds), budget=study.counts()["classes"],
                          workers=workers, executor=executor, progress=progress)
        write_benchmark(study, out)
    finally:
        study.close()
    return stats


def _float32_list(feat: np.ndarray) -> list:
    # The features are float32; their shortest decimal form keeps the file small and exact.
    return [float(str(v)) for v in feat.astype(np.float32)]


def _finite_or_none(value: Any) -> Optional[float]:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def benchmark_rows(study) -> Dict[str, Dict[str, Any]]:
    """The study's classes in the Act-Bench layout, keyed by class name.

    Trained classes carry their metrics; classes that were not trained (non-finite outputs, or a
    training that failed) are listed with null metrics. JSON has no NaN: a diverged training's NaN
    loss is written as null too.
    """
    from .store import from_blob

    fisher = dict(study.store.query(
        "SELECT id, fisher_feat FROM classes WHERE fisher_feat IS NOT NULL AND fisher_ok = 1"))
    out = {}
    for r in study.results(include_pending=True):
        trained = r["status"] == "done"
        metrics = dict(r["metrics"], val_acc=r["score"]) if trained else {}
        feat = from_blob(fisher.get(r["class_id"]))
        row = {key: _finite_or_none(metrics.get(src)) for key, src in LAYOUT_METRICS.items()}
        row[MEMBERS_KEY] = r["members"]
        row[FISHER_KEY] = None if feat is None else _float32_list(feat)
        row[RUNTIME_KEY] = _finite_or_none(r["runtime"]) if trained else None
        out[r["name"]] = row
    return out


def write_benchmark(study, path: str) -> int:
    """Write the study as an Act-Bench JSON file (gzip when ``path`` ends in .gz); rows written."""
    rows = benchmark_rows(study)
    opener = gzip.open if path.endswith(".gz") else open
    tmp = path + ".tmp"
    with opener(tmp, "wt", encoding="utf-8") as f:
        json.dump(rows, f, separators=(",", ":"), allow_nan=False)
    os.replace(tmp, path)
    return len(rows)


# -- reading ---------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Benchmark:
    """A benchmark in memory: one row per class.

    ``metrics`` maps ``train_acc``, ``val_acc``, ``test_acc``, ``train_loss``, ``val_loss``,
    ``test_loss`` and ``runtime`` to float64 arrays, NaN where unknown (an untrained class).
    ``fisher`` is float32 [n, D] with NaN rows where a class has no features, or None when no class
    has any.
    """

    path: str
    names: Tuple[str, ...]
    members: Tuple[Tuple[str, ...], ...]
    metrics: Dict[str, np.ndarray]
    fisher: Optional[np.ndarray]
    _index: Dict[str, int] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return (f"Benchmark({self.path!r}: {len(self)} classes, {int(self.trained.sum())} trained, "
                f"Fisher features {'none' if self.fisher is None else self.fisher.shape[1]})")

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
        import aquasurf_fast as aq

        try:
            return aq.output_features(list(self.names))
        except ValueError as exc:
            raise BenchmarkError(f"{self.path}: a class name is not an expression this package "
                                 f"can evaluate ({exc})") from None


def describe(bench: Benchmark, baselines: Sequence[str] = ("relu", "swish", "elu", "tanh"),
             chance: float = 0.1) -> str:
    """A plain-text summary: how many trained, the spread of accuracies, the baselines' ranks.

    A class "fails to learn" when its validation accuracy stays below twice ``chance`` (0.1 for ten
    balanced classes).
    """
    from .search import expression_name

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
    for b in baselines:
        i = bench.class_of(expression_name(b))
        if i is not None and i in rank:
            lines.append(f"{bench.names[i]}: validation {val[i]:.4f}, test {test[i]:.4f}, rank "
                         f"{rank[i]} of {trained.size} (top {rank[i] / trained.size:.1%})")
    return "\n".join(lines)


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
            "fisher": fisher}


def _cache_path(path: str) -> str:
    st = os.stat(path)
    key = f"v{CACHE_VERSION}|{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"
    from .cache import cache_dir

    return os.path.join(cache_dir(), "benchmarks",
                        hashlib.sha256(key.encode()).hexdigest()[:32] + ".npz")


def _to_arrays(parsed: Dict[str, Any]) -> Dict[str, np.ndarray]:
    arrays = {"names": np.array(parsed["names"], dtype=str),
              "members": np.array([" ".join(m) for m in parsed["members"]], dtype=str)}
    arrays.update({"metric_" + k: v for k, v in parsed["metrics"].items()})
    if parsed["fisher"] is not None:
        arrays["fisher"] = parsed["fisher"]
    return arrays


def _from_arrays(path: str, arrays) -> Benchmark:
    metrics = {k[len("metric_"):]: np.asarray(arrays[k]) for k in arrays if k.startswith("metric_")}
    return Benchmark(path=path, names=tuple(str(n) for n in arrays["names"]),
                     members=tuple(tuple(str(m).split(" ")) for m in arrays["members"]),
                     metrics=metrics,
                     fisher=np.asarray(arrays["fisher"]) if "fisher" in arrays else None)


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
        try:
            with np.load(cache_file, allow_pickle=False) as f:
                return _from_arrays(path, {k: f[k] for k in f.files})
        except (OSError, ValueError, KeyError, zlib.error):
            pass  # a damaged cache entry is rebuilt from the file
    arrays = _to_arrays(_parse_rows(path, _read_json(path)))
    if cache_file:
        from .cache import save_npz

        save_npz(cache_file, arrays)
    return _from_arrays(path, arrays)


__all__ = ["Benchmark", "BenchmarkError", "LAYOUT_KEYS", "describe", "benchmark_rows",
           "build_benchmark", "default_study_path", "load_benchmark", "write_benchmark"]
