"""The search loop (``Study.run``): workers train the suggested candidates while the study records
their results, renews their leases and grows the Fisher pool toward the best results.

The loop is a client of the study's public interface alone (suggest, tell, fail, release, renew,
grow, the pending Fisher work): ``grow`` returns the classes that joined, and the workers
featurize them in a job of their own beside the trainings (``study.growth``).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional

from .._checks import check_int
from ..defaults import DEFAULT_GROW, DEFAULT_GROW_EVERY
from ..execution.jobs import Attempts, GrowthChunk, JobQueue, Training
from .suggestions import Claim
from .growth import GrowthFeatures, SearchJobs
from .store import StudyError

WAIT_CAP_S = 1.0  # the longest a turn of the loop waits for an outcome


def run_study(study, evaluate: Optional[Callable[[str], Any]] = None, budget: int = 50,
              workers: int = 1, executor=None, timeout: Optional[float] = None,
              progress: bool = True, max_consecutive_failures: int = 10,
              poll_s: float = 0.2, grow: int = DEFAULT_GROW,
              grow_every: int = DEFAULT_GROW_EVERY, device: Any = None) -> Dict[str, Any]:
    """Evaluate candidates until the study holds ``budget`` results (baselines included).

    After every ``grow_every`` results the Fisher pool grows by the ``grow`` classes nearest the
    best results (``Study.grow``; 0 turns it off). The next free worker computes their Fisher
    features, in one job before its next training, and the surrogate sees them from the
    suggestion after. Growth needs the study's task to featurize them, and happens only in the
    surrogate order; in a space whose pool already holds every class it adds nothing. ``device``
    is where the grown classes are featurized (``Study.featurize``'s; None: the task's default).
    A custom ``evaluate`` is wrapped for the workers (``study.growth.SearchJobs``), and keeps its
    ``resources``.

    ``evaluate(name)`` returns a score or a mapping with ``score`` or ``val_acc`` (other entries
    become metrics); by default the study's task trains with ``aq.Activation(name)``, on the
    study's training recipe (``study.recipe``: the epochs and precision of its earlier searches).
    ``workers`` worker processes (0: in this process) unless an ``executor`` is given. Safe to
    run from several processes on one file, and to run again after an interruption: it goes on
    from what the file holds. Ctrl-C gives the running claims back and re-raises.

    Worker processes are started with "spawn": ``evaluate`` must be picklable (a module-level
    function or an instance of a module-level class), and a script calling ``run`` needs the
    usual ``if __name__ == "__main__":`` guard.
    """
    from ..execution.executors import default_executor

    budget = check_int("budget", budget, 0, StudyError)
    grow = check_int("grow", grow, 0, StudyError)
    grow_every = check_int("grow_every", grow_every, 1, StudyError)
    if evaluate is None:
        evaluate = study.task_evaluator()
    executor = executor or default_executor(workers, timeout=timeout)
    if study.settings.get("order") != "surrogate" or not study.settings.get("task"):
        grow = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=budget, initial=min(budget, study.counts()["done"]), desc="search",
                   unit="eval")
    loop = _Loop(study, executor, budget, grow, grow_every, poll_s, max_consecutive_failures, bar)
    if grow > 0:  # the workers featurize the grown classes too
        evaluate = SearchJobs(evaluate, study.fisher_job(device=device))
    executor.start(evaluate)
    try:
        while loop.step():
            pass
    except BaseException:
        executor.stop()
        raise
    finally:
        if bar is not None:
            bar.close()
        # Whatever the loop still holds was never recorded, whether its job was stopped or its
        # outcome came in beside the one that ended the run: other runs may take it again.
        if loop.in_flight:
            study.release(list(loop.in_flight.values()))
        executor.shutdown()
    loop.stats.update(study.counts())
    return loop.stats


class _Loop:
    """One call of ``run_study``: its claims in flight, its counts and its progress bar."""

    def __init__(self, study, executor, budget: int, grow: int, grow_every: int, poll_s: float,
                 max_consecutive_failures: int, bar):
        self.study, self.executor, self.budget, self.bar = study, executor, budget, bar
        self.grow, self.grow_every, self.poll_s = grow, grow_every, poll_s
        self.jobs = JobQueue(executor, Attempts(int(study.settings["max_retries"])))
        self.growth = GrowthFeatures(study, self.jobs)
        self.max_consecutive_failures = max_consecutive_failures
        self.lease_s = float(study.settings["lease_s"])
        self.in_flight: Dict[str, Claim] = {}
        self.stats = {"evaluated": 0, "failed_attempts": 0, "stale": 0, "grown": 0}
        self.failures_in_row = 0
        self.grown_at = 0
        self.last_renew = time.monotonic()

    def step(self) -> bool:
        """Claim what the free slots take, then record what finished. False when the run is over."""
        counts = self.study.counts()
        want = self.budget - counts["done"] - counts["running"]
        claims = self.dispatch(want)
        if not self.jobs:
            return self.idle(counts, want, claims)
        self.collect(self.wait_s())
        if (self.grow > 0 and want > 0 and not self.growth.busy
                and self.stats["evaluated"] - self.grown_at >= self.grow_every):
            self.grow_pool()
        if self.in_flight and time.monotonic() - self.last_renew > self.lease_s / 3:
            self.renew()
        return True

    def dispatch(self, want: int) -> List[Claim]:
        """Hand a growth's features to the executor first, then claim what its free slots take."""
        self.jobs.dispatch()
        free = self.executor.free_slots()
        claims = self.study.suggest(min(free, want)) if want > 0 and free > 0 else []
        for claim in claims:
            self.jobs.submit(Training(claim), key=claim.token)
            self.in_flight[claim.token] = claim
        self.jobs.dispatch()
        return claims

    def idle(self, counts: Dict[str, int], want: int, claims: List[Claim]) -> bool:
        """Nothing in flight: the budget is spent, the pool is exhausted, or others hold the
        remaining claims. False when the run is over."""
        if counts["done"] >= self.budget:
            return False
        if counts["running"] == 0 and (want <= 0 or counts["pending"] == 0 or not claims
                                       or not self.study.has_pending_candidate()):
            # The pool is exhausted: nobody holds a claim and nothing is suggested.
            # A growing pool takes in more of the space first, if it has any left.
            return want > 0 and self.grow > 0 and self.grow_pool() > 0
        # Others hold the remaining claims: wait for their results or lease expiry.
        time.sleep(min(1.0, max(self.poll_s, self.lease_s / 20)))
        return True

    def wait_s(self) -> float:
        """How long ``collect`` blocks. An outcome ends the wait at once, so the loop sleeps in
        the executor's wait while workers train rather than turning every ``poll_s``: until the
        next lease renewal is due, at most ``WAIT_CAP_S`` (an executor checks its jobs'
        timeouts when its wait returns), at least ``poll_s``."""
        due = self.last_renew + self.lease_s / 3 - time.monotonic()
        return max(self.poll_s, min(WAIT_CAP_S, due))

    def collect(self, timeout: float) -> None:
        """Record the outcomes that arrive within ``timeout`` seconds (all that are in when the
        first arrives). Every outcome of the batch is recorded before one that stops the run
        raises, so no finished evaluation is lost with it."""
        stop = None
        for job, outcome, verdict in self.jobs.wait(timeout):
            if isinstance(job, GrowthChunk):
                error = self.growth.record(outcome, verdict)
            else:
                error = self.record(self.in_flight.pop(outcome.key), outcome, verdict)
            stop = stop or error
        if stop is not None:
            raise stop

    def record(self, claim: Claim, outcome, verdict: str) -> Optional[StudyError]:
        """Record one training's outcome; returns the error that stops the run, if this outcome
        does. A failed attempt is the study's to count (``fail``: its class is tried again until
        it has failed more than ``max_retries`` times, by whichever process claims it)."""
        if verdict == Attempts.OK:
            self.failures_in_row = 0
            if self.study.tell(claim, outcome.score, runtime=outcome.runtime, **outcome.metrics):
                self.stats["evaluated"] += 1
                if self.bar is not None:
                    self.bar.update(1)
                    self.bar.set_postfix_str(f"{claim} {outcome.score:.4g}")
            else:
                self.stats["stale"] += 1
            return None
        if verdict == Attempts.OUT_OF_MEMORY:
            # The machine, not the candidate, failed: recording it would spend the class's
            # retries (or mark it failed) for nothing, and retrying would fail again.
            self.study.release([claim])
            return StudyError(out_of_memory_message(str(claim), outcome.last_line("MemoryError")))
        self.stats["failed_attempts"] += 1
        self.failures_in_row += 1
        self.study.fail(claim, outcome.error)
        if self.failures_in_row >= self.max_consecutive_failures:
            return StudyError(
                f"{self.failures_in_row} evaluations in a row failed; the last one "
                f"({claim}):\n{outcome.error.strip()}")
        return None

    def grow_pool(self) -> int:
        """Grow the Fisher pool and queue the classes that joined for their features (the next
        free worker computes them); returns how many joined."""
        self.grown_at = self.stats["evaluated"]
        added = self.study.grow(self.grow, featurize=False)
        if added:
            self.growth.queue_pending()
        self.stats["grown"] += len(added)
        return len(added)

    def renew(self) -> None:
        lost = len(self.in_flight) - self.study.renew(list(self.in_flight.values()))
        self.stats["stale"] += max(0, lost)
        self.last_renew = time.monotonic()


def out_of_memory_message(name: str, last: str) -> str:
    """Why a run stopped on a job that ran out of memory (``last``: its error's last line), and
    what to change before resuming."""
    return (f"evaluating {name} ran out of memory ({last}); the run stopped and {name} was "
            "given back unevaluated. Free memory or use fewer workers or a smaller model or "
            "batch, then run again: the study goes on from what it holds.")


__all__ = ["run_study"]
