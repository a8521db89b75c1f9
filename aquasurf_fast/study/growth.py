"""The Fisher features of the classes a search's pool growth adds, computed as one job on the
search's own executor beside the trainings. Featurized in the driver, a growth of 20 mnist1d
classes held it about 0.6 s, while workers that finished meanwhile waited for their next
candidate; as a job it takes a worker's slot for that long instead, and runs wherever the
trainings run (a Ray cluster's GPU nodes, say).

``SearchJobs`` is what the search's workers are started with: it trains a candidate (a
``Training`` job) and computes a growth's features (a ``GrowthChunk`` job, ``execution.jobs``).
``GrowthFeatures`` follows one growth's classes from joining the pool to their features: queued in
the search's ``JobQueue``, in flight, then recorded, or recorded as failed once the job has failed
more often than the study retries (the queue's ``Attempts``, the policy every job follows).
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from ..execution.base import Outcome
from ..execution.jobs import Attempts, GrowthChunk, JobQueue
from .featurize import FisherChunkJob, failed_chunk
from .store import StudyError

FEATURES = GrowthChunk.PREFIX  # the text of a growth's job before its names
KEY = "fisher-features"  # the executor's key of that job (a claim's key is its token)


class SearchJobs:
    """The runner of a search's workers: ``jobs(name)`` trains a candidate (``evaluate(name)``,
    a ``Training`` job) and ``jobs.features(names)`` computes the Fisher features of a growth's
    classes (the ``FisherChunkJob``'s, a ``GrowthChunk`` job). Picklable when both parts are;
    asks Ray for the resources the trainings need."""

    def __init__(self, evaluate: Callable[[str], Any], fisher: FisherChunkJob):
        self.evaluate, self.fisher = evaluate, fisher

    @property
    def resources(self) -> dict:
        return dict(getattr(self.evaluate, "resources", None) or {})

    def __call__(self, name: str):
        return self.evaluate(name)

    def features(self, names):
        return self.fisher.features(names)


class GrowthFeatures:
    """The grown classes whose features a search still waits for, as one ``GrowthChunk`` job in
    the search's ``JobQueue``."""

    def __init__(self, study, queue: JobQueue):
        self.study, self.queue = study, queue
        self.job: Optional[GrowthChunk] = None

    @property
    def busy(self) -> bool:
        """Whether a growth's features are queued or being computed."""
        return self.job is not None

    def queue_pending(self) -> None:
        """Queue the pool's classes without features (those a growth just added); they go before
        the next training, which would otherwise be chosen without them."""
        if not self.busy:
            names = self.study.pending_fisher()
            if names:
                self.job = GrowthChunk(names)
                self.queue.attempts.forget(self.job)
                self.queue.submit(self.job, key=KEY, first=True)

    def record(self, outcome: Outcome, verdict: str) -> Optional[StudyError]:
        """Record the job's outcome; returns the error that stops the run, if it does."""
        names = self.job.names
        if verdict == Attempts.OUT_OF_MEMORY:
            # The machine failed, not these classes: they stay in the pool without features.
            self.job = None
            return StudyError(
                f"featurizing the {len(names)} classes the pool grew by ran out of memory "
                f"({outcome.last_line('MemoryError')}); the run stopped and their features are "
                "computed by the next featurize or growth. Free memory or use fewer workers, "
                "then run again.")
        if verdict == Attempts.RETRY:
            return None  # queued again: the next free slot takes it
        result = (outcome.value if verdict == Attempts.OK
                  else failed_chunk(len(names), self.queue.attempts.failures(self.job), outcome))
        self.study.log_featurized(len(names), self.study.record_fisher_features(names, *result))
        self.job = None
        return None


__all__ = ["FEATURES", "GrowthFeatures", "SearchJobs"]
