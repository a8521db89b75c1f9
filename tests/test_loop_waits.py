"""The search loop stays out of the workers' way: while every worker is busy it blocks in the
executor's wait instead of turning every ``poll_s``, and it reads the study's counts once a turn."""
from aquasurf_fast.execution.base import Executor, Outcome
from aquasurf_fast.study import loop as study_loop
from search_helpers import fake_score, make_study


class SlowExecutor(Executor):
    """One slot whose job finishes on the third wait; records the timeouts it is asked to wait."""

    n_workers = 1

    def __init__(self):
        self.job = None
        self.timeouts = []
        self.waits_left = 0

    def start(self, evaluate):
        pass

    def free_slots(self):
        return 0 if self.job else 1

    def submit(self, key, name):
        self.job, self.waits_left = (key, name), 3

    def wait(self, timeout):
        self.timeouts.append(timeout)
        self.waits_left -= 1
        if self.waits_left > 0:
            return []
        (key, name), self.job = self.job, None
        return [Outcome(key, name, True, score=fake_score(name))]

    def stop(self):
        return []

    def shutdown(self):
        pass


def test_the_loop_blocks_in_the_executor_while_its_workers_train(tmp_path):
    study = make_study(tmp_path / "s.db", n_extra=4, order="exhaustive")
    executor = SlowExecutor()
    n_counts = []
    counts = study.counts
    study.counts = lambda: n_counts.append(1) or counts()
    stats = study.run(fake_score, budget=3, executor=executor, progress=False, poll_s=0.01, grow=0)
    assert stats["evaluated"] == 3
    # Each wait until the next renewal or the cap, never the short poll.
    assert executor.timeouts == [study_loop.WAIT_CAP_S] * 9
    # One read of the counts per turn: nine turns of waiting, the last one (the budget is spent)
    # and the returned stats.
    assert len(n_counts) == 9 + 1 + 1


def test_the_wait_ends_when_a_lease_renewal_is_due(tmp_path):
    study = make_study(tmp_path / "s.db", n_extra=4, order="exhaustive", lease_s=0.6)
    executor = SlowExecutor()
    study.run(fake_score, budget=2, executor=executor, progress=False, poll_s=0.01, grow=0)
    assert max(executor.timeouts) <= 0.2 and min(executor.timeouts) >= 0.01


class BatchExecutor(Executor):
    """Two slots whose jobs finish together, in one wait: a failure first, then a success."""

    n_workers = 2

    def __init__(self):
        self.jobs = []

    def start(self, evaluate):
        pass

    def free_slots(self):
        return 2 - len(self.jobs)

    def submit(self, key, name):
        self.jobs.append((key, name))

    def wait(self, timeout):
        if len(self.jobs) < 2:
            return []
        (k1, n1), (k2, n2) = self.jobs
        self.jobs = []
        return [Outcome(k1, n1, False, error="ValueError: broken"),
                Outcome(k2, n2, True, score=fake_score(n2))]

    def stop(self):
        keys = [key for key, _ in self.jobs]
        self.jobs = []
        return keys

    def shutdown(self):
        pass


def test_outcomes_that_arrive_beside_the_one_that_stops_the_run_are_recorded(tmp_path):
    import pytest

    import aquasurf_fast as aq

    study = make_study(tmp_path / "s.db", n_extra=4, order="exhaustive", max_retries=0)
    with pytest.raises(aq.StudyError, match="1 evaluations in a row failed"):
        study.run(fake_score, budget=4, executor=BatchExecutor(), progress=False, poll_s=0.01,
                  grow=0, max_consecutive_failures=1)
    counts = study.counts()
    # The failure stopped the run, yet the evaluation that finished beside it is kept and no
    # claim is left running.
    assert counts["running"] == 0
    assert counts["done"] == 1 and counts["failed"] == 1
