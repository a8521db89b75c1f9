"""Benchmarks (SPEC section 7): every class of a space trained once, in the Act-Bench JSON layout.

``build_benchmark`` trains all classes whose outputs are finite through a study, so an interrupted
build resumes where it stopped, and writes the Act-Bench layout with ``write_benchmark``.
``load_benchmark`` reads that layout back: ours, or the published Act-Bench files.
"""
from __future__ import annotations

import gzip
import json
import math
import os
from typing import Any, Dict, Optional, Sequence

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


class SeedsEvaluator:
    """``evaluate(name)`` that trains a task under several seeds and keeps the median run.

    The median is the run whose validation accuracy is the median (the lower middle for an even
    count), so that all of its metrics come from one consistent training. With one seed the task
    trains under its own default seed, exactly as a search would. Picklable, for worker processes.
    """

    def __init__(self, spec: str, seeds: int = 1):
        from .tasks import resolve_spec

        if seeds < 1:
            raise ValueError(f"seeds must be at least 1, got {seeds}")
        self.spec = resolve_spec(spec)
        self.seeds = int(seeds)
        self._task = None

    def __getstate__(self):
        return {"spec": self.spec, "seeds": self.seeds, "_task": None}

    def __call__(self, name: str) -> Dict[str, Any]:
        import aquasurf_fast as aq
        from .tasks import load_task

        if self._task is None:
            self._task = load_task(self.spec)
        if self.seeds == 1:
            return dict(self._task.train_eval(aq.Activation(name)))
        runs = []
        for seed in range(self.seeds):
            try:
                runs.append(dict(self._task.train_eval(aq.Activation(name), seed=seed)))
            except TypeError as exc:
                if "seed" not in str(exc):
                    raise
                raise ValueError(f"task {self.spec}: train_eval takes no seed= argument, so it "
                                 "cannot be trained under several seeds; use seeds=1") from None
        accs = [r["val_acc"] if math.isfinite(r["val_acc"]) else -math.inf for r in runs]
        order = sorted(range(len(runs)), key=lambda i: accs[i])
        median = dict(runs[order[(len(runs) - 1) // 2]])
        median["seeds"] = self.seeds
        median["val_acc_min"] = min(accs)
        median["val_acc_max"] = max(accs)
        median["runtime"] = sum(r.get("runtime", 0.0) for r in runs)
        return median


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
    from .tasks import resolve_spec

    if os.path.exists(study_path) and os.path.getsize(study_path) > 0:
        study = Study(study_path)
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
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(study_path + suffix):
                os.remove(study_path + suffix)
        raise
    return study


def build_benchmark(out: str, task: str = "mnist1d", *, names: Optional[Sequence[str]] = None,
                    seeds: int = 1, workers: int = 1, study_path: Optional[str] = None,
                    executor=None, progress: bool = True) -> Dict[str, Any]:
    """Train every finite class of ``names`` (default: the benchmark space) and write ``out``.

    Resumable: the work lives in the study at ``study_path`` (default ``default_study_path(out)``);
    running again trains only what is missing. Returns the study's final counts.
    """
    import aquasurf_fast as aq

    if names is None:
        names = aq.enumerate_schema(BENCHMARK_SCHEMA, unary=aq.BENCHMARK_UNARY_OPS)
    study_path = study_path or default_study_path(out)
    study = open_build_study(study_path, task, seeds, names)
    try:
        study.featurize(progress=progress, embed=False)
        # Budget: every class; the run stops once no trainable candidate is left.
        stats = study.run(SeedsEvaluator(task, seeds), budget=study.counts()["classes"],
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


__all__ = ["LAYOUT_KEYS", "SeedsEvaluator", "benchmark_rows", "build_benchmark",
           "default_study_path", "write_benchmark"]
