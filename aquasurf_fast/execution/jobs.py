"""Jobs as objects, the one policy that judges their outcomes, and the one submit/wait loop that the
search, featurization and a search's pool growth share.

A ``Job`` is what an executor runs: a ``Training`` of one candidate, or a ``FisherChunk`` of
candidates' Fisher features (a ``GrowthChunk`` when a search's pool growth added them). A job is a
``str`` whose text is its description (the candidate's name; the chunk's names, space-separated),
so that an executor written for names, which logs and passes on its jobs as names, runs jobs
unchanged; the worker runs ``job.run(runner)`` with the runner the executor was started with.

``Attempts`` is the one retry and out-of-memory policy: an outcome is a success, a failure of the
machine (out of memory: stop, retrying would fail again), a failure to retry (up to
``max_retries`` times) or a final failure. ``JobQueue`` is the one submit/wait loop over an
executor: it gives each job its key, submits queued jobs while the executor has free slots,
and hands back each outcome with the job it belongs to and the verdict of the policy; a job to
retry in place (a chunk) goes back to the front of the queue by itself.
"""
from __future__ import annotations

import itertools
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

from .base import Outcome, Raw


class Job(str):
    """One unit of work for an executor (see the module docstring)."""

    #: whether a failed attempt is tried again by the queue (a chunk), rather than by whoever
    #: records it (a training: the study counts a class's attempts, across processes)
    retry_in_place = False

    def run(self, runner: Any) -> Any:
        """Run in a worker with the executor's ``runner``; returns what ``run_one`` records."""
        raise NotImplementedError

    def __reduce__(self):
        # str's own reduction would rebuild a plain str: the job could not travel to a worker
        # process or a Ray task as what it is.
        return (type(self)._rebuild, (str(self), self.__dict__))

    @classmethod
    def _rebuild(cls, text: str, state: Dict[str, Any]) -> "Job":
        job = str.__new__(cls, text)
        job.__dict__.update(state)
        return job


class Training(Job):
    """Train one candidate: ``runner(name)``, a score or a mapping of metrics."""

    def __new__(cls, name: str):
        return str.__new__(cls, str(name))

    @property
    def name(self) -> str:
        return str(self)

    def run(self, runner: Any) -> Any:
        return runner(str(self))


class FisherChunk(Job):
    """The Fisher features of a chunk of candidates: ``runner.features(names)``, passed back as
    ``(features, ok, reasons)`` in the outcome's ``value``."""

    retry_in_place = True
    PREFIX = ""  # the text before the names

    def __new__(cls, names: Sequence[str]):
        names = [str(n) for n in names]
        job = str.__new__(cls, cls.PREFIX + " ".join(names))
        job.names = names
        return job

    def run(self, runner: Any) -> Raw:
        return Raw(runner.features(self.names))


class GrowthChunk(FisherChunk):
    """The Fisher features of the classes that a search's pool growth added, computed by the
    search's own workers beside its trainings."""

    PREFIX = "fisher-features:"


class Attempts:
    """The one retry and out-of-memory policy: ``judge`` gives the verdict on an outcome of a job
    and counts the job's failed attempts."""

    OK = "ok"
    OUT_OF_MEMORY = "out_of_memory"  # the machine failed, not the job: stop, keep the job's work
    RETRY = "retry"                  # failed; try again
    FAILED = "failed"                # failed more often than ``max_retries``: record the failure

    def __init__(self, max_retries: int):
        self.max_retries = int(max_retries)
        self._failures: Dict[str, int] = {}

    def judge(self, job: Job, outcome: Outcome) -> str:
        if outcome.ok:
            return self.OK
        if outcome.out_of_memory:
            return self.OUT_OF_MEMORY
        n = self._failures[job] = self._failures.get(job, 0) + 1
        return self.RETRY if n <= self.max_retries else self.FAILED

    def failures(self, job: Job) -> int:
        """How many attempts of ``job`` failed."""
        return self._failures.get(job, 0)

    def forget(self, job: Job) -> None:
        """Start counting ``job``'s attempts afresh (a growth queued again)."""
        self._failures.pop(job, None)


class Finished(NamedTuple):
    """An outcome, the job it belongs to and the policy's verdict on it."""

    job: Job
    outcome: Outcome
    verdict: str


class JobQueue:
    """The one submit/wait loop over an executor (see the module docstring).

    ``submit`` queues a job; ``dispatch`` hands queued jobs to the executor while it has free
    slots; ``wait(timeout)`` returns what finished. A job whose verdict is ``RETRY`` and that
    retries in place is queued again, first; a training's retry is its recorder's business.
    """

    def __init__(self, executor, attempts: Attempts):
        self.executor, self.attempts = executor, attempts
        self.queued: List[Job] = []
        self.in_flight: Dict[str, Job] = {}
        self._keys = itertools.count()

    def __bool__(self) -> bool:
        return bool(self.queued or self.in_flight)

    def submit(self, job: Job, key: Optional[str] = None, first: bool = False) -> None:
        """Queue ``job`` (first in the queue with ``first``); ``key`` names it to the executor
        (default: a number of its own)."""
        job.key = str(next(self._keys)) if key is None else key
        if first:
            self.queued.insert(0, job)
        else:
            self.queued.append(job)

    def dispatch(self) -> None:
        """Hand queued jobs to the executor while it takes more."""
        while self.queued and self.executor.free_slots() > 0:
            job = self.queued.pop(0)
            self.executor.submit(job.key, job)
            self.in_flight[job.key] = job

    def wait(self, timeout: float) -> List[Finished]:
        """The jobs that finish within ``timeout`` seconds (all that are in when the first is),
        with their outcomes and verdicts."""
        done = []
        for outcome in self.executor.wait(timeout):
            job = self.in_flight.pop(outcome.key)
            verdict = self.attempts.judge(job, outcome)
            if verdict == Attempts.RETRY and job.retry_in_place:
                self.queued.insert(0, job)
            done.append(Finished(job, outcome, verdict))
        return done

    def release(self) -> List[Job]:
        """Forget every queued and running job (their executor was stopped); returns those that
        were running."""
        running = list(self.in_flight.values())
        self.queued, self.in_flight = [], {}
        return running


__all__ = ["Attempts", "Finished", "FisherChunk", "GrowthChunk", "Job", "JobQueue", "Training"]
