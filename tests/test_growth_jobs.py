"""A search's pool growth featurizes its new classes as a job on the search's own executor, beside
the trainings (aquasurf_fast.study.growth): recorded when it succeeds, retried and then recorded
as failed when it fails, and stopping the run with nothing lost when it runs out of memory."""
import pytest

import aquasurf_fast as aq
from aquasurf_fast.execution.base import Outcome
from aquasurf_fast.execution.executors import InlineExecutor
from aquasurf_fast.study.growth import FEATURES
from bench_helpers import FAKE_TASK
from sql_helpers import sql

UNARY = ("zero", "identity", "tanh", "relu", "elu", "sigmoid", "softplus", "arctan", "swish")


class Recording(InlineExecutor):
    """Runs jobs in this process; records every job's name, and fails the featurization jobs
    with ``features_fail`` (an Outcome's keyword arguments) when given."""

    def __init__(self, features_fail=None):
        self.names = []
        self.features_fail = features_fail

    def submit(self, key, name):
        self.names.append(name)
        super().submit(key, name)

    def wait(self, timeout):
        if self.features_fail and any(n.startswith(FEATURES) for _, n in self._queue):
            (key, name), = self._queue
            self._queue = []
            return [Outcome(key, name, False, **self.features_fail)]
        return super().wait(timeout)


def growing_study(tmp_path):
    task = tmp_path / "task.py"
    task.write_text(FAKE_TASK)
    study = aq.Study(str(tmp_path / "s.db"), task=str(task), strategy="random", max_retries=1)
    study.add_schema("binary(unary(x),unary(x))", unary=UNARY)
    study.featurize(pool=12, progress=False)
    return study


def grown_classes(study, fisher_ok="IS NOT NULL"):
    return {name for (name,) in sql(study, 
        "SELECT canonical FROM classes WHERE pool > 0 AND baseline = 0 AND "
        f"fisher_ok {fisher_ok}")}


def test_the_grown_classes_are_featurized_by_a_job_beside_the_trainings(tmp_path):
    study = growing_study(tmp_path)
    first_round = grown_classes(study)
    executor = Recording()
    stats = study.run(budget=10, executor=executor, progress=False, grow=4, grow_every=3)
    assert stats["done"] == 10 and stats["grown"] >= 4
    jobs = [n[len(FEATURES):].split(" ") for n in executor.names if n.startswith(FEATURES)]
    grown = grown_classes(study, "= 1") - first_round
    # Each growth's classes went to the executor as one job, and came back as features.
    assert jobs and grown and {n for job in jobs for n in job} == grown
    assert not grown_classes(study, "IS NULL")
    assert study.counts()["running"] == 0
    # The trainings were jobs of the same executor.
    assert len([n for n in executor.names if not n.startswith(FEATURES)]) == 10


def test_a_failing_featurization_job_is_retried_then_its_classes_are_recorded_as_failed(tmp_path):
    study = growing_study(tmp_path)
    executor = Recording(features_fail={"error": "RuntimeError: the node went away"})
    stats = study.run(budget=8, executor=executor, progress=False, grow=3, grow_every=3)
    # The run goes on to its budget: a growth that could not be featurized adds no candidate.
    assert stats["done"] == 8 and stats["grown"] >= 3
    tries = [n for n in executor.names if n.startswith(FEATURES)]
    assert len(tries) >= 2 and tries[0] == tries[1]  # one retry (max_retries=1), same classes
    reasons = sql(study, 
        "SELECT DISTINCT fisher_reason FROM classes WHERE pool > 0 AND fisher_ok = 0")
    assert reasons == [("featurization job failed 2 times: RuntimeError: the node went away",)]
    assert study.counts()["running"] == 0


def test_a_featurization_job_out_of_memory_stops_the_run_and_keeps_its_classes_queued(tmp_path):
    study = growing_study(tmp_path)
    executor = Recording(features_fail={"error": "MemoryError", "out_of_memory": True})
    with pytest.raises(aq.StudyError, match="ran out of memory .*MemoryError.*next featurize"):
        study.run(budget=8, executor=executor, progress=False, grow=3, grow_every=3)
    pending = grown_classes(study, "IS NULL")
    assert len(pending) >= 3 and study.counts()["running"] == 0
    # The next featurize computes them.
    study.featurize(pool=0, progress=False)
    assert not grown_classes(study, "IS NULL")
