"""Building a benchmark: every class of a space whose outputs are finite, trained through a study.

The study keeps the progress, so an interrupted build resumes where it stopped. A build under
several seeds extends an earlier one-seed build of the same output file: its runs become seed 0
and only the missing seeds are trained.
"""
from __future__ import annotations

import math
import os
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from ..expr import BENCHMARK_SCHEMA
from .format import (FISHER_KEY, LAYOUT_METRICS, MEMBERS_KEY, RUNS_KEYS, RUNTIME_KEY,
                     BenchmarkError, load_benchmark)


def default_study_path(out: str, seeds: int = 1) -> str:
    """Where a build keeps its study: next to the output, ``NAME.study.db`` for one seed and
    ``NAME.seeds<S>.study.db`` for S, so that extending a build never reopens the earlier study."""
    base = out
    for suffix in (".gz", ".json"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base + (f".seeds{seeds}" if seeds > 1 else "") + ".study.db"


def open_build_study(study_path: str, task: str, seeds: int, names: Sequence[str]):
    """The study of a benchmark build: created with the space, or reopened to resume.

    A resumed build must train the same task under the same seeds, or its rows would mix recipes.
    """
    from ..study.study import Study, StudyError
    from ..study.store import remove_study_files
    from ..tasks import resolve_spec

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


def earlier_runs(out: str, study) -> Dict[str, Dict[int, Dict[str, Any]]]:
    """Seed-0 runs of an earlier one-seed build of ``out``, keyed by the study's class names.

    Empty when ``out`` does not exist or records several seeds already (it is then this build's
    own output). A row whose name is not in the study's space is refused: the earlier build was of
    another space.
    """
    from ..study.store import StudyError

    if not os.path.exists(out):
        return {}
    bench = load_benchmark(out, cache=False)
    if bench.runs is not None:
        return {}
    runs = {}
    for i in np.flatnonzero(bench.trained):
        try:
            _, name = study.store.class_of(bench.names[i])
        except StudyError:
            raise BenchmarkError(
                f"{out}: {bench.names[i]!r} is not in this build's space, so the file is not an "
                "earlier build of it; pass another --out") from None
        metrics = {src: float(bench.metrics[src][i]) for src in LAYOUT_METRICS.values()}
        if math.isfinite(bench.metrics["runtime"][i]):
            metrics["runtime"] = float(bench.metrics["runtime"][i])
        runs[name] = {0: metrics}
    return runs


def build_benchmark(out: str, task: str = "mnist1d", *, names: Optional[Sequence[str]] = None,
                    seeds: int = 1, workers: int = 1, study_path: Optional[str] = None,
                    executor=None, progress: bool = True, device: Any = "auto",
                    options: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Train every finite class of ``names`` (default: the benchmark space) and write ``out``.

    Resumable: the work lives in the study at ``study_path`` (default ``default_study_path(out,
    seeds)``); running again trains only what is missing. With ``seeds`` > 1 and ``out`` holding a
    one-seed build, that build's runs are kept as seed 0. ``executor`` (e.g. a ``RayExecutor``)
    runs both the featurization and the trainings; by default they run in ``workers`` local
    processes and in this process. ``device`` is where the Fisher features are computed (auto:
    a GPU when there is one); ``options`` go to every training (``TaskEvaluator``'s: device,
    epochs, amp, data_dir). Returns the study's final counts plus ``kept_runs``.
    """
    from ..expr import BENCHMARK_UNARY_OPS, enumerate_schema
    from ..study.recipe import training_recipe
    from ..tasks import TaskEvaluator

    if names is None:
        names = enumerate_schema(BENCHMARK_SCHEMA, unary=BENCHMARK_UNARY_OPS)
    study_path = study_path or default_study_path(out, seeds)
    study = open_build_study(study_path, task, seeds, names)
    try:
        known = earlier_runs(out, study) if seeds > 1 else {}
        study.featurize(progress=progress, embed=False, executor=executor, device=device)
        options = dict(options or {})
        # A build resumed with other epochs would mix recipes: refused, as a search's.
        options.update(training_recipe(study, options.get("epochs"), options.get("amp")))
        # Budget: every class; the run stops once no trainable candidate is left.
        stats = study.run(TaskEvaluator(task, seeds, known_runs=known, options=options),
                          budget=study.counts()["classes"], workers=workers, executor=executor,
                          progress=progress)
        write_benchmark(study, out)
    finally:
        study.close()
    return dict(stats, kept_runs=len(known))


def _float32_list(feat: np.ndarray) -> list:
    # The features are float32; their shortest decimal form keeps the file small and exact.
    return [float(str(v)) for v in feat.astype(np.float32)]


def _finite_or_none(value: Any) -> Optional[float]:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _seed_runs(metrics: Mapping[str, Any], src: str) -> Optional[list]:
    """``[src_seed0, src_seed1, ...]`` from a multi-seed evaluation's metrics; None for one seed."""
    n_seeds = metrics.get("seeds")
    if not n_seeds or n_seeds < 2:
        return None
    return [_finite_or_none(metrics.get(f"{src}_seed{s}")) for s in range(int(n_seeds))]


def benchmark_rows(study) -> Dict[str, Dict[str, Any]]:
    """The study's classes in the Act-Bench layout, keyed by class name.

    Trained classes carry their metrics (and, trained under several seeds, every run's accuracies);
    classes that were not trained (non-finite outputs, or a training that failed) are listed with
    null metrics. JSON has no NaN: a diverged training's NaN loss is written as null too.
    """
    fisher = study.store.valid_fisher_features()
    out = {}
    for r in study.results(include_pending=True):
        trained = r["status"] == "done"
        metrics = dict(r["metrics"], val_acc=r["score"]) if trained else {}
        feat = fisher.get(r["class_id"])
        row = {key: _finite_or_none(metrics.get(src)) for key, src in LAYOUT_METRICS.items()}
        row[MEMBERS_KEY] = r["members"]
        row[FISHER_KEY] = None if feat is None else _float32_list(feat)
        row[RUNTIME_KEY] = _finite_or_none(r["runtime"]) if trained else None
        for key, src in RUNS_KEYS.items():
            runs = _seed_runs(metrics, src)
            if runs is not None:
                row[key] = runs
        out[r["name"]] = row
    return out


def write_benchmark(study, path: str) -> int:
    """Write the study as an Act-Bench JSON file (gzip when ``path`` ends in .gz); rows written."""
    import gzip
    import json

    rows = benchmark_rows(study)
    opener = gzip.open if path.endswith(".gz") else open
    tmp = path + ".tmp"
    with opener(tmp, "wt", encoding="utf-8") as f:
        json.dump(rows, f, separators=(",", ":"), allow_nan=False)
    os.replace(tmp, path)
    return len(rows)


__all__ = ["benchmark_rows", "build_benchmark", "default_study_path", "earlier_runs",
           "open_build_study", "write_benchmark"]
