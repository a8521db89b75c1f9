"""The interface every executor implements (``Executor``), what a job returns (``Outcome``), and
what runs a job in a worker (``run_one``).
"""
from __future__ import annotations

import time
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Tuple

from ..runtime.memory import is_out_of_memory


@dataclass
class Outcome:
    """What became of one job. ``score``/``metrics`` when ``ok``; otherwise ``error`` says why.

    ``out_of_memory`` marks a failure of the machine, not of the candidate (a ``MemoryError``, or
    torch's out-of-memory error on a GPU): its caller stops rather than retrying or recording it.

    A job that returns a ``Raw`` (a featurization chunk) is no evaluation: what it wraps is passed
    back untouched in ``value``.
    """

    key: str
    name: str
    ok: bool
    score: float = float("nan")
    metrics: Dict[str, Any] = field(default_factory=dict)
    runtime: float = 0.0
    error: str = ""
    value: Any = None
    out_of_memory: bool = False

    def last_line(self, default: str = "unknown error") -> str:
        """The last line of ``error``: the exception itself, without its traceback."""
        return (self.error.strip().splitlines() or [default])[-1]


@dataclass
class Raw:
    """What a job that is no evaluation returns (the features of a chunk of candidates):
    ``run_one`` passes ``value`` back as it is, without reading a score from it."""

    value: Any


def split_result(value: Any) -> Tuple[float, Dict[str, Any]]:
    """An evaluate() return value as (score, metrics).

    A number is the score. A mapping gives its ``score`` entry, else ``val_acc`` (the built-in tasks'
    validation accuracy), and every other scalar entry is kept as a metric.
    """
    if isinstance(value, Mapping):
        metrics = dict(value)
        if "score" in metrics:
            score = metrics.pop("score")
        elif "val_acc" in metrics:
            score = metrics["val_acc"]
        else:
            raise ValueError(
                "evaluate() returned a mapping without 'score' or 'val_acc': "
                f"keys {sorted(metrics)}"
            )
        return float(score), metrics
    try:
        return float(value), {}
    except (TypeError, ValueError):
        raise ValueError(
            f"evaluate() must return a number or a mapping with 'score', got {type(value).__name__}"
        ) from None


def run_job(runner: Any, job: Any) -> Any:
    """What a worker runs for ``job``: a job object (``execution.jobs``) runs itself,
    ``job.run(runner)``; a plain name (an executor used directly, as a pool of workers that
    evaluate names) is ``runner(name)``. Read by the method, so that this module, which the jobs
    build on, does not import them."""
    run = getattr(job, "run", None)
    return run(runner) if callable(run) else runner(job)


def run_one(evaluate: Callable[[str], Any], key: str, name: str) -> Outcome:
    """Run one job (``execution.jobs.Job``) with the runner ``evaluate``, or evaluate one plain
    name, turning any exception into a failed Outcome with its traceback."""
    start = time.perf_counter()
    try:
        value = run_job(evaluate, name)
        if isinstance(value, Raw):
            return Outcome(key, name, True, runtime=time.perf_counter() - start, value=value.value)
        score, metrics = split_result(value)
    except Exception as exc:  # a failing training is data for the study, not a crash of the search
        return Outcome(key, name, False, runtime=time.perf_counter() - start,
                       error=traceback.format_exc(limit=20), out_of_memory=is_out_of_memory(exc))
    runtime = float(metrics.pop("runtime", time.perf_counter() - start))
    return Outcome(key, name, True, score, metrics, runtime)


class Executor(ABC):
    n_workers: int

    @abstractmethod
    def start(self, evaluate: Callable[[str], Any]) -> None: ...

    @abstractmethod
    def free_slots(self) -> int: ...

    @abstractmethod
    def submit(self, key: str, name: str) -> None: ...

    @abstractmethod
    def wait(self, timeout: float) -> List[Outcome]: ...

    @abstractmethod
    def stop(self) -> List[str]: ...

    @abstractmethod
    def shutdown(self) -> None: ...


__all__ = ["Executor", "Outcome", "Raw", "run_job", "run_one", "split_result"]
