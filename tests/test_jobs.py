"""Jobs as objects (aquasurf_fast.execution.jobs): they travel to workers as what they are, one
policy judges every outcome, and one queue submits, waits and retries in place."""
import pickle

from aquasurf_fast.execution.base import Outcome, run_job, run_one
from aquasurf_fast.execution.executors import InlineExecutor
from aquasurf_fast.execution.jobs import Attempts, FisherChunk, GrowthChunk, JobQueue, Training


class Runner:
    def __call__(self, name):
        return len(name)

    def features(self, names):
        return list(names)


def test_a_job_survives_pickling_as_what_it_is():
    job = GrowthChunk(["relu(x)", "tanh(x)"])
    job.key = "k"
    again = pickle.loads(pickle.dumps(job))
    assert type(again) is GrowthChunk and again.names == ["relu(x)", "tanh(x)"]
    assert again.key == "k" and str(again) == "fisher-features:relu(x) tanh(x)"


def test_each_job_runs_its_own_way_and_a_plain_name_is_evaluated():
    assert run_job(Runner(), Training("relu(x)")) == 7
    assert run_job(Runner(), "tanh(x)") == 7
    outcome = run_one(Runner(), "k", FisherChunk(["a", "b"]))
    assert outcome.ok and outcome.value == ["a", "b"]


def test_the_policy_retries_up_to_max_retries_and_stops_on_out_of_memory():
    attempts, job = Attempts(1), FisherChunk(["a"])
    failed = Outcome("k", job, False, error="boom")
    assert attempts.judge(job, failed) == Attempts.RETRY
    assert attempts.judge(job, failed) == Attempts.FAILED and attempts.failures(job) == 2
    assert attempts.judge(job, Outcome("k", job, False, out_of_memory=True)) == Attempts.OUT_OF_MEMORY
    assert attempts.judge(job, Outcome("k", job, True)) == Attempts.OK


class FailsOnce(InlineExecutor):
    def __init__(self):
        self.seen = []

    def wait(self, timeout):
        (key, job), = self._queue
        self._queue = []
        self.seen.append(str(job))
        ok = self.seen.count(str(job)) > 1
        return [Outcome(key, job, ok, value="done" if ok else None, error="" if ok else "boom")]


def test_the_queue_retries_a_chunk_in_place_but_leaves_a_training_to_its_recorder():
    executor = FailsOnce()
    executor.start(Runner())
    queue = JobQueue(executor, Attempts(1))
    queue.submit(FisherChunk(["a"]))
    queue.submit(Training("b"))
    verdicts = []
    while queue:
        queue.dispatch()
        verdicts += [(str(f.job), f.verdict) for f in queue.wait(0)]
    assert verdicts == [("a", "retry"), ("a", "ok"), ("b", "retry")]
