"""The Fisher features of the classes a search's pool growth adds, computed as one job on the
search's own executor beside the trainings. Featurized in the driver, a growth of 20 mnist1d
classes held it about 0.6 s, while workers that finished meanwhile waited for their next
candidate; as a job it takes a worker's slot for that long instead, and runs wherever the
trainings run (a Ray cluster's GPU nodes, say).

``SearchJobs`` is what the search's workers run: a training for a candidate's name, the features
of a growth for its names behind ``FEATURES``. ``GrowthFeatures`` follows one growth's classes from
joining the pool to their features: queued, in flight, then recorded, or recorded as failed once
the job has failed more often than the study retries.
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional

from ..execution.base import Outcome, Raw
from .featurize import FisherChunkJob, failed_chunk
from .store import StudyError

FEATURES = "fisher-features:"  # marks a job's name as a growth's classes, space-separated
KEY = "fisher-features"  # the executor's key of that job (a claim's key is its token)


class SearchJobs:
    """``jobs(name)``: ``evaluate(name)``, or the ``FisherChunkJob``'s features of the names
    behind ``FEATURES`` as a ``Raw`` value. Picklable when both parts are; asks Ray for the
    resources the trainings need."""

    def __init__(self, evaluate: Callable[[str], Any], fisher: FisherChunkJob):
        self.evaluate, self.fisher = evaluate, fisher

    @property
    def resources(self) -> dict:
        return dict(getattr(self.evaluate, "resources", None) or {})

    def __call__(self, name: str):
        if name.startswith(FEATURES):
            return Raw(self.fisher.features(name[len(FEATURES):]))
        return self.evaluate(name)


class GrowthFeatures:
    """The grown classes whose features a search still waits for, and their job."""

    def __init__(self, study, max_retries: int):
        self.study = study
        self.max_retries = max_retries
        self.names: List[str] = []
        self.in_flight = False
        self.attempts = 0

    @property
    def busy(self) -> bool:
        """Whether a growth's features are queued or being computed."""
        return bool(self.names)

    def queue(self) -> None:
        """Queue the pool's classes without features (those a growth just added)."""
        if not self.busy:
            self.names, self.attempts = self.study.pending_fisher(), 0

    def submit(self, executor) -> None:
        """Hand the queued classes to ``executor`` if it has a free slot; they go before the
        next training, which would otherwise be chosen without them."""
        if self.names and not self.in_flight and executor.free_slots() > 0:
            executor.submit(KEY, FEATURES + " ".join(self.names))
            self.in_flight = True

    def record(self, outcome: Outcome) -> Optional[StudyError]:
        """Record the job's outcome; returns the error that stops the run, if it does."""
        self.in_flight = False
        names = self.names
        if outcome.out_of_memory:
            # The machine failed, not these classes: they stay in the pool without features.
            self.names = []
            return StudyError(
                f"featurizing the {len(names)} classes the pool grew by ran out of memory "
                f"({outcome.last_line('MemoryError')}); the run stopped and their features are "
                "computed by the next featurize or growth. Free memory or use fewer workers, "
                "then run again.")
        if outcome.ok:
            result = outcome.value
        else:
            self.attempts += 1
            if self.attempts <= self.max_retries:
                return None  # still queued: the next free slot takes it again
            result = failed_chunk(len(names), self.attempts, outcome)
        self.study.log_featurized(len(names), self.study.record_fisher_features(names, *result))
        self.names = []
        return None


__all__ = ["FEATURES", "GrowthFeatures", "SearchJobs"]
