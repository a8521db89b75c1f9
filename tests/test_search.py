import json
import multiprocessing as mp
import os
import re
import signal
import time

import numpy as np
import pytest

import aquasurf_fast as aq
from aquasurf_fast.execution.executors import InlineExecutor, ProcessExecutor
from aquasurf_fast.surrogate.strategy import DEFAULT_STRATEGY
from search_helpers import BASELINES, fake_evaluate, fake_score, make_study
from sql_helpers import sql


def _claim_and_hang(path, queue):
    study = aq.Study(path, owner="doomed")
    (claim,) = study.suggest(1)
    queue.put(str(claim))
    time.sleep(600)


def crash_once_evaluate(name):
    """Kills its own worker process the first time it sees f1 (a marker file remembers)."""
    marker = os.environ["AQF_TEST_MARKER"]
    if name == "f1" and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return fake_score(name)


def always_fail_on_f2(name):
    if name == "f2":
        raise RuntimeError("diverged badly")
    return {"val_acc": fake_score(name), "test_acc": 0.5}


class InterruptAfter:
    def __init__(self, n):
        self.n = n

    def __call__(self, name):
        self.n -= 1
        if self.n < 0:
            raise KeyboardInterrupt
        return fake_score(name)


def _result_events(study):
    return [e[2] for e in reversed(study.events(10_000)) if e[1] == "result"]


def test_baselines_come_first_in_order(tmp_path):
    study = make_study(tmp_path / "s.db")
    assert [str(c) for c in study.suggest(3)] == BASELINES[:3]
    assert [str(c) for c in study.suggest(5)] == BASELINES[3:]


def test_suggest_returns_top_predicted_unclaimed(tmp_path):
    study = make_study(tmp_path / "s.db", strategy="paper")
    for name in BASELINES:
        study.tell(name, fake_score(name))
    pred = study.predictions()
    claims = study.suggest(3)
    pending = {cid: p for cid, p in pred.items()
               if cid not in {study.store.class_of(b)[0] for b in BASELINES}}
    best = sorted(pending.values(), reverse=True)[:3]
    assert sorted(pred[c.class_id] for c in claims) == sorted(best)
    assert not set(map(str, claims)) & set(map(str, study.suggest(3)))


def test_tell_records_for_whole_class(tmp_path):
    from search_helpers import synthetic_space

    classes, out, fisher = synthetic_space(4)
    classes[8].append("alias_of_f0")
    study = aq.Study(str(tmp_path / "s.db"))
    study.add_classes(classes, out)
    assert study.tell("alias_of_f0", 0.7, test_acc=0.6)
    (row,) = [r for r in study.results() if r["name"] == "f0"]
    assert row["score"] == 0.7 and row["members"] == ["f0", "alias_of_f0"]
    assert row["metrics"] == {"test_acc": 0.6}


def test_run_reaches_budget_inline(tmp_path):
    study = make_study(tmp_path / "s.db")
    stats = study.run(fake_evaluate, budget=14, workers=0, progress=False)
    assert stats["done"] == 14 and stats["evaluated"] == 14
    done = _result_events(study)
    assert done[:8] == BASELINES and len(set(done)) == 14


def test_failures_are_retried_then_recorded(tmp_path):
    study = make_study(tmp_path / "s.db", n_extra=4, max_retries=1)
    study.run(always_fail_on_f2, budget=100, workers=0, progress=False)
    (row,) = [r for r in study.results() if r["name"] == "f2"]
    assert row["status"] == "failed" and row["attempts"] == 2 and "diverged badly" in row["error"]
    assert study.counts()["done"] == 11  # the space minus f2: the pool ran dry before the budget


def test_interrupt_releases_claims_and_run_resumes(tmp_path):
    study = make_study(tmp_path / "s.db")
    with pytest.raises(KeyboardInterrupt):
        study.run(InterruptAfter(5), budget=12, workers=0, progress=False)
    assert study.counts()["running"] == 0 and study.counts()["done"] == 5
    study.run(fake_evaluate, budget=12, workers=0, progress=False)
    done = _result_events(study)
    assert len(done) == len(set(done)) == 12


def test_many_failures_in_a_row_stop_the_run(tmp_path):
    study = make_study(tmp_path / "s.db")

    def broken(name):
        raise ImportError("no module named mytask")

    with pytest.raises(aq.StudyError, match="in a row failed"):
        study.run(broken, budget=10, workers=0, progress=False, max_consecutive_failures=3)
    assert study.counts()["running"] == 0


@pytest.mark.slow
def test_sigkilled_claimant_loses_its_claim_and_candidate_is_evaluated_later(tmp_path):
    path = str(tmp_path / "s.db")
    make_study(path, lease_s=1.0).close()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_claim_and_hang, args=(path, queue))
    proc.start()
    claimed = queue.get(timeout=60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    study = aq.Study(path)
    assert study.counts()["running"] == 1
    time.sleep(1.2)
    study.run(fake_evaluate, budget=10, workers=0, progress=False)
    (row,) = [r for r in study.results() if r["name"] == claimed]
    assert row["status"] == "done"
    assert any(e[1] == "lease_expired" and e[2] == claimed for e in study.events())


@pytest.mark.slow
def test_worker_process_crash_is_retried(tmp_path, monkeypatch):
    monkeypatch.setenv("AQF_TEST_MARKER", str(tmp_path / "crashed"))
    study = make_study(tmp_path / "s.db", n_extra=4)
    study.surrogate()
    stats = study.run(crash_once_evaluate, budget=12, workers=2, progress=False)
    assert stats["done"] == 12 and stats["failed_attempts"] == 1
    (row,) = [r for r in study.results() if r["name"] == "f1"]
    assert row["status"] == "done" and row["attempts"] == 1
    assert any(e[1] == "failure" and e[2] == "f1" and "SIGKILL" in e[4] for e in study.events())


def test_process_executor_times_out_hung_evaluations():
    ex = ProcessExecutor(1, timeout=1.0)
    ex.start(time.sleep)
    try:
        ex.submit("k", 30)  # time.sleep(30): "hangs"
        outcomes = []
        deadline = time.monotonic() + 30
        while not outcomes and time.monotonic() < deadline:
            outcomes = ex.wait(0.2)
        assert outcomes and not outcomes[0].ok and "timed out" in outcomes[0].error
    finally:
        ex.shutdown()


def test_inline_executor_reports_exceptions():
    ex = InlineExecutor()
    ex.start(lambda name: 1 / 0)
    ex.submit("k", "relu")
    (outcome,) = ex.wait(0)
    assert not outcome.ok and "ZeroDivisionError" in outcome.error


class FlakyFeaturizer:
    """Fisher features from the output features' statistics; can fail once after some calls."""

    def __init__(self, fail_after=None):
        self.fail_after = fail_after
        self.seen = []

    def __call__(self, build, names, inputs, targets, seed=42, device=None, progress=False):
        if self.fail_after is not None and len(self.seen) >= self.fail_after:
            self.fail_after = None
            raise RuntimeError("featurizer died")
        self.seen += list(names)
        feats = np.stack([np.linspace(0, 1, 20) ** (1 + fake_score(n)) for n in names])
        ok = np.array([n != "f5" for n in names])
        return feats.astype(np.float32), ok, ["" if o else "empty spectrum" for o in ok]


def test_featurize_is_resumable_and_records_invalid_rows(tmp_path):
    from search_helpers import synthetic_space

    classes, out, _ = synthetic_space(12)
    out[-1, 3] = np.inf  # f11: never a candidate, never featurized
    study = aq.Study(str(tmp_path / "s.db"))
    study.add_classes(classes, out)
    flaky = FlakyFeaturizer(fail_after=8)
    with pytest.raises(RuntimeError, match="featurizer died"):
        study.featurize(build=object(), inputs=0, targets=0, featurizer=flaky, chunk=4,
                        progress=False, embed=False)
    assert len(flaky.seen) == 8
    done = study.featurize(build=object(), inputs=0, targets=0, featurizer=flaky, chunk=4,
                           progress=False, embed=False)
    assert done["fisher"] == 11 and len(flaky.seen) == 19 and len(set(flaky.seen)) == 19
    assert "f11" not in flaky.seen
    assert study.counts()["candidates"] == 18  # 20 classes less f5 (invalid) and f11 (inf)
    reasons = dict(sql(study, "SELECT canonical, fisher_reason FROM classes"))
    assert reasons["f5"] == "empty spectrum" and reasons["f11"] == "non-finite output features"


def test_custom_regressor_instance_is_used_and_asked_for_again(tmp_path):
    from sklearn.linear_model import Ridge

    path = str(tmp_path / "s.db")
    study = make_study(path, regressor=Ridge(alpha=2.0))
    for name in BASELINES:
        study.tell(name, fake_score(name))
    assert type(study.surrogate().regressor_).__name__ == "Ridge"
    study.close()
    with pytest.raises(aq.StudyError, match="pass it again"):
        aq.Study(path).suggest(1)
    assert aq.Study(path, regressor=Ridge()).suggest(1)


@pytest.mark.parametrize("settings, message", [
    (dict(lease_s=-5), "lease_s must be a number > 0 (seconds), got -5"),
    (dict(lease_s=float("nan")), "lease_s must be a number > 0 (seconds), got nan"),
    (dict(max_retries=-1), "max_retries must be an integer >= 0, got -1"),
])
def test_bad_setting_is_refused_before_the_file_is_written(tmp_path, settings, message):
    path = tmp_path / "s.db"
    with pytest.raises(aq.StudyError, match=re.escape(message)):
        aq.Study(str(path), **settings)
    assert not path.exists()


def test_bad_setting_is_refused_when_reopening(tmp_path):
    path = str(tmp_path / "s.db")
    make_study(path, n_extra=2).close()
    with pytest.raises(aq.StudyError, match=re.escape("lease_s must be a number > 0")):
        aq.Study(path, lease_s=-5)
    assert aq.Study(path).settings["lease_s"] == 600


@pytest.mark.parametrize("call, message", [
    (lambda s: s.top(-1), "k must be an integer >= 0, got -1"),
    (lambda s: s.featurize(chunk=0, progress=False), "chunk must be an integer >= 1, got 0"),
    (lambda s: s.run(fake_evaluate, budget=2, workers=0, grow_every=0, progress=False),
     "grow_every must be an integer >= 1, got 0"),
])
def test_bad_argument_is_refused_before_any_work(tmp_path, call, message):
    study = make_study(tmp_path / "s.db", n_extra=4)
    n_events = len(study.events(10_000))
    with pytest.raises(ValueError, match=re.escape(message)):
        call(study)
    assert len(study.events(10_000)) == n_events


class FailingFeaturizer:
    """Fisher features that always fail, as with a task whose ``build`` raises."""

    def __init__(self):
        self.seen = []

    def __call__(self, build, names, inputs, targets, seed=42, device=None, progress=False):
        self.seen += list(names)
        return (np.full((len(names), 20), np.nan, dtype=np.float32), np.zeros(len(names), bool),
                ["RuntimeError: build failed"] * len(names))


def test_featurize_stops_at_once_when_every_fisher_feature_fails(tmp_path):
    from search_helpers import synthetic_space

    classes, out, _ = synthetic_space(12)
    study = aq.Study(str(tmp_path / "s.db"))
    study.add_classes(classes, out)
    failing = FailingFeaturizer()
    with pytest.raises(aq.StudyError, match=re.escape(
            "Fisher features failed for all 12 classes tried (most often, 12 times: "
            "RuntimeError: build failed): check that the task's build(activation)")):
        study.featurize(pool=4, build=object(), inputs=0, targets=0, featurizer=failing, chunk=4,
                        progress=False, embed=False)
    assert len(failing.seen) == 12  # the baselines and 4 others: no rounds of topping up
    (detail,) = [e[4] for e in study.events() if e[1] == "featurize"]
    assert '"failed": 12' in detail


def test_featurize_reports_failures_and_their_reasons(tmp_path):
    from search_helpers import synthetic_space

    classes, out, _ = synthetic_space(12)
    study = aq.Study(str(tmp_path / "s.db"))
    study.add_classes(classes, out)
    done = study.featurize(build=object(), inputs=0, targets=0, featurizer=FlakyFeaturizer(),
                           progress=False, embed=False)
    assert (done["fisher"], done["failed"], done["reasons"]) == (20, 1, [("empty spectrum", 1)])


def test_a_change_of_feature_set_is_logged(tmp_path):
    from search_helpers import synthetic_space

    classes, out, fisher = synthetic_space(4)
    study = aq.Study(str(tmp_path / "s.db"))
    study.add_classes(classes, out)
    study.suggest(len(BASELINES) + 1)  # the last one ranked by the surrogate
    study.set_fisher_features([c[0] for c in classes], fisher)
    study.suggest(1)
    sets = [e[4] for e in reversed(study.events()) if e[1] == "feature_set"]
    assert sets == ['{"features": "output"}', '{"features": "fisher"}']


def test_reopening_with_another_setting_is_refused_and_says_how_to_change_it(tmp_path):
    path = str(tmp_path / "s.db")
    make_study(path, n_extra=2).close()
    with pytest.raises(aq.StudyError, match=re.escape("study.update_settings(lease_s=30.0)")):
        aq.Study(path, lease_s=30)
    study = aq.Study(path, lease_s=600, strategy=DEFAULT_STRATEGY)  # the stored values: no change
    assert study.settings["lease_s"] == 600
    assert [e for e in study.events(10_000) if e[1] == "settings"] == []


def test_update_settings_changes_them_for_every_process_and_logs_it(tmp_path):
    path = str(tmp_path / "s.db")
    study = make_study(path, n_extra=2)
    study.update_settings(lease_s=30, strategy="hybrid")
    assert aq.Study(path).settings["lease_s"] == 30.0
    (event,) = [e for e in study.events(10_000) if e[1] == "settings"]
    assert json.loads(event[4]) == {"lease_s": [600.0, 30.0],
                                    "strategy": [DEFAULT_STRATEGY, "hybrid"]}
    with pytest.raises(aq.StudyError, match=re.escape("max_retries must be an integer >= 0")):
        study.update_settings(max_retries=-1)
    with pytest.raises(aq.StudyError, match="unknown setting 'lease'"):
        study.update_settings(lease=3)
