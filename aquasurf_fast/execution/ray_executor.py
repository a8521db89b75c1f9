"""An ``Executor`` on Ray: evaluations and featurization chunks run as Ray tasks on a cluster.

The driver (the process that holds the study file) submits one Ray task per job and records each
result as it arrives, so the study file stays the only source of truth and needs no shared
filesystem. Ray re-runs a task whose worker process or node died (``max_retries``); the study's
claims make sure a result is recorded once even if a task ran twice.

    from aquasurf_fast.execution.ray_executor import RayExecutor
    study.run(budget=100, executor=RayExecutor(address="auto"))

On a cluster every node needs aquasurf_fast (and the task's code) installed in the same environment
as the driver.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional, Tuple

from ..runtime.memory import is_out_of_memory, keep_freed_memory
from ..runtime.threads import limit_threads
from .base import Executor, Outcome, run_one


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise ImportError("the Ray executor needs Ray: pip install 'aquasurf_fast[ray]'") from exc
    return ray


def _run_in_worker(evaluate: Callable[[str], Any], key: str, name: str, threads: int) -> Outcome:
    """The body of every Ray task: cap the threads to the task's CPUs, then evaluate."""
    limit_threads(threads)
    keep_freed_memory()
    return run_one(evaluate, key, name)


class RayExecutor(Executor):
    """Runs each job as a Ray task.

    Parameters
    ----------
    address : an existing cluster ("auto", or "ray://host:10001", or "host:6379"); None starts a
        local Ray instance for the run and shuts it down afterwards.
    num_cpus, num_gpus : resources of each task. ``num_gpus`` defaults to what the evaluated object
        asks for in a ``resources`` attribute (``{"num_gpus": 1}``; a study's task evaluator and
        featurization jobs pass on the task's ``RESOURCES``), else 0.
    max_concurrent : jobs in flight at once (default: the cluster's CPUs divided by ``num_cpus``).
    max_retries : how often Ray re-runs a task whose worker died.
    timeout : seconds after which a job is cancelled and reported as failed.
    init_kwargs : passed to ``ray.init`` (``num_cpus`` of a local instance, ``runtime_env``...).
    """

    def __init__(self, address: Optional[str] = None, num_cpus: float = 1.0,
                 num_gpus: Optional[float] = None, max_concurrent: Optional[int] = None,
                 max_retries: int = 3, timeout: Optional[float] = None,
                 init_kwargs: Optional[Dict[str, Any]] = None):
        if num_cpus <= 0:
            raise ValueError(f"num_cpus must be positive, got {num_cpus}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be positive seconds, got {timeout}")
        self.address = address
        self.num_cpus = float(num_cpus)
        self.num_gpus = num_gpus
        self.max_concurrent = max_concurrent
        self.max_retries = int(max_retries)
        self.timeout = timeout
        self.init_kwargs = dict(init_kwargs or {})
        self.n_workers = max_concurrent or 1
        self._ray = None
        self._started_ray = False
        self._jobs: Dict[Any, Tuple[str, str, float]] = {}  # ref -> key, name, start time

    def start(self, evaluate):
        ray = self._ray = import_ray()
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": False, **self.init_kwargs}
            if self.address is not None:
                kwargs["address"] = self.address
            try:
                ray.init(**kwargs)
            except ConnectionError as exc:
                raise ConnectionError(
                    f"cannot reach the Ray cluster at {self.address!r} ({exc}); start one with "
                    "`ray start --head` or leave the address out for a local instance") from None
            self._started_ray = True
        resources = dict(getattr(evaluate, "resources", None) or {})
        num_gpus = self.num_gpus if self.num_gpus is not None else resources.get("num_gpus", 0)
        cluster = ray.cluster_resources()
        if num_gpus and cluster.get("GPU", 0) < num_gpus:
            raise ValueError(f"each job asks for {num_gpus} GPU(s) but the Ray cluster has "
                             f"{cluster.get('GPU', 0)}")
        if self.max_concurrent is None:
            self.n_workers = max(1, int(cluster.get("CPU", 1) // self.num_cpus))
            if num_gpus:
                self.n_workers = min(self.n_workers, max(1, int(cluster["GPU"] // num_gpus)))
        self._threads = max(1, int(self.num_cpus))
        self._remote = ray.remote(_run_in_worker).options(
            num_cpus=self.num_cpus, num_gpus=num_gpus, max_retries=self.max_retries,
            retry_exceptions=False)
        self._evaluate_ref = ray.put(evaluate)
        self._jobs = {}

    def free_slots(self):
        return self.n_workers - len(self._jobs)

    def submit(self, key, name):
        if self.free_slots() <= 0:
            raise RuntimeError("submit() with no free slot; check free_slots() first")
        ref = self._remote.remote(self._evaluate_ref, key, name, self._threads)
        self._jobs[ref] = (key, name, time.monotonic())

    def wait(self, timeout):
        ray = self._ray
        if not self._jobs:
            time.sleep(min(timeout, 0.05))
            return []
        ready, _ = ray.wait(list(self._jobs), num_returns=1, timeout=timeout)
        if ready:  # collect whatever else is done too
            ready, _ = ray.wait(list(self._jobs), num_returns=len(self._jobs), timeout=0)
        done = []
        for ref in ready:
            key, name, started = self._jobs.pop(ref)
            try:
                done.append(ray.get(ref))
            except Exception as exc:  # run_one returned no Outcome: the task itself failed
                done.append(self._failed_task(key, name, time.monotonic() - started, exc))
        if self.timeout is not None:
            now = time.monotonic()
            for ref, (key, name, started) in list(self._jobs.items()):
                if now - started > self.timeout:
                    ray.cancel(ref, force=True)
                    del self._jobs[ref]
                    done.append(Outcome(key, name, False, runtime=now - started,
                                        error=f"evaluation of {name} timed out after "
                                              f"{self.timeout:g} s"))
        return done

    def _failed_task(self, key: str, name: str, runtime: float, exc: Exception) -> Outcome:
        """The Outcome of a task that ended without one, saying what ended it.

        Its own exception (a ``RayTaskError``: its arguments could not be loaded in the worker,
        or it raised what ``run_one`` lets through) is named with its remote traceback; Ray
        retries a task only when its worker or node was lost, or when Ray's memory monitor
        killed it, which stops the run like any out-of-memory error.
        """
        ray_errors = self._ray.exceptions
        if isinstance(exc, ray_errors.RayTaskError):
            cause = exc.cause
            while isinstance(cause, ray_errors.RaySystemError) and isinstance(
                    getattr(cause, "client_exc", None), BaseException):
                cause = cause.client_exc  # an argument failed to deserialize in the worker
            return Outcome(key, name, False, runtime=runtime, out_of_memory=is_out_of_memory(cause),
                           error=f"Ray task evaluating {name} raised {type(cause).__name__}: "
                                 f"{cause}\n{exc}")
        why = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, ray_errors.OutOfMemoryError):
            return Outcome(key, name, False, runtime=runtime, out_of_memory=True,
                           error=f"Ray task evaluating {name} was killed for memory: {why}")
        return Outcome(key, name, False, runtime=runtime,
                       error=f"Ray task evaluating {name} lost its worker or node after "
                             f"{self.max_retries} retries: {why}")

    def stop(self):
        keys = []
        for ref, (key, _, _) in self._jobs.items():
            keys.append(key)
            self._ray.cancel(ref, force=True)
        self._jobs = {}
        return keys

    def shutdown(self):
        self._jobs = {}
        if self._started_ray and self._ray is not None:
            self._ray.shutdown()
            self._started_ray = False


__all__ = ["RayExecutor", "import_ray"]
