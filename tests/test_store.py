import math
import os
import sqlite3
import time

import numpy as np
import pytest

import aquasurf_fast as aq
from aquasurf_fast.study import store as aq_store
from aquasurf_fast.study.suggestions import Claim
from aquasurf_fast.study.store import StudyError
from search_helpers import fake_score, make_study, told_by_workers, synthetic_space
from sql_helpers import sql


def test_features_are_float32_blobs(tmp_path):
    study = make_study(tmp_path / "s.db", n_extra=4)
    rows = sql(study, "SELECT typeof(out_feat), length(out_feat), typeof(fisher_feat) "
                             "FROM classes")
    assert set(rows) == {("blob", 4000, "blob")}
    ids, out, fisher = study.features.candidate_features()
    classes, out_ref, fisher_ref = synthetic_space(4)
    np.testing.assert_array_equal(out, out_ref)
    np.testing.assert_array_equal(fisher, fisher_ref)


def test_file_is_wal_and_versioned(tmp_path):
    make_study(tmp_path / "s.db", n_extra=2).close()
    conn = sqlite3.connect(tmp_path / "s.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == aq_store.SCHEMA_VERSION == 2


@pytest.mark.slow
def test_four_processes_never_evaluate_a_class_twice_nor_lose_a_result(tmp_path):
    path = str(tmp_path / "s.db")
    study = make_study(path, n_extra=32)
    study.surrogate()  # fit the embedding once; the workers read it from the file
    n_classes = study.counts()["classes"]
    told = told_by_workers(path, n_classes)
    assert len(told) == len(set(told)) == n_classes
    results = {r["name"]: r["score"] for r in study.results()}
    assert len(results) == n_classes
    assert all(results[n] == pytest.approx(fake_score(n)) for n in told)
    kinds = [e[1] for e in study.events(10_000)]
    assert kinds.count("result") == n_classes and "duplicate_result" not in kinds


def test_result_is_written_once(tmp_path):
    study = make_study(tmp_path / "s.db", n_extra=2)
    assert study.tell("relu", 0.9)
    assert not study.tell("relu", 0.1)
    assert study.top(1)[0]["score"] == 0.9


def test_stale_worker_cannot_overwrite_or_undo(tmp_path):
    study = make_study(tmp_path / "s.db", n_extra=2, lease_s=0.2)
    (stale,) = study.suggest(1)
    time.sleep(0.3)
    (fresh,) = study.suggest(1)  # the expired claim's class comes back first: it is a baseline
    assert str(fresh) == str(stale) and fresh.token != stale.token
    assert study.fail(stale, "late crash report") is None  # ignored: not the current claim
    assert study.results()[0]["status"] == "running"
    assert study.tell(fresh, 0.8)
    assert not study.tell(stale, 0.1)
    assert study.top(1)[0]["score"] == 0.8


def test_text_file_is_not_a_study(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("hello, this is not a database\n" * 50)
    with pytest.raises(StudyError, match="not an aquasurf study"):
        aq.Study(str(path))


def execute_sql(path, statement):
    """Run one statement on an SQLite file behind the study's back."""
    conn = sqlite3.connect(path)
    conn.execute(statement)
    conn.commit()
    conn.close()


def test_foreign_sqlite_file_is_not_a_study(tmp_path):
    path = tmp_path / "other.db"
    execute_sql(path, "CREATE TABLE t (x)")
    with pytest.raises(StudyError, match="SQLite database but not an aquasurf study"):
        aq.Study(str(path))


def test_corrupt_study_gives_clear_error(tmp_path):
    path = tmp_path / "s.db"
    make_study(path, n_extra=24).close()
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(4096)
        f.write(np.random.default_rng(0).bytes(size - 4096))
    with pytest.raises(StudyError, match="corrupt|damaged|malformed"):
        study = aq.Study(str(path))
        study.counts()
        study.results()


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "s.db"
    make_study(path, n_extra=1).close()
    execute_sql(path, "PRAGMA user_version = 99")
    with pytest.raises(StudyError, match="newer"):
        aq.Study(str(path))


def test_study_error_is_a_value_error():
    assert issubclass(StudyError, ValueError)


def test_adding_in_batches_merges_equal_outputs(tmp_path):
    classes, out, _ = synthetic_space(4)
    study = aq.Study(str(tmp_path / "s.db"))
    study.add_classes(classes[:6], out[:6])
    n_classes, n_names = study.add_classes([["h0"], ["h1"]], np.stack([out[0], out[7]]))
    assert (n_classes, n_names) == (1, 2)
    assert study.store.class_of("h0") == study.store.class_of(classes[0][0])


def test_claim_survives_pickling(tmp_path):
    import pickle

    study = make_study(tmp_path / "s.db", n_extra=2)
    (claim,) = study.suggest(1)
    copy = pickle.loads(pickle.dumps(claim))
    assert (str(copy), copy.token, copy.class_id, copy.lease_until) == (
        str(claim), claim.token, claim.class_id, claim.lease_until)
    assert type(copy) is Claim
    assert study.tell(copy, 0.5)


@pytest.mark.parametrize("strategy", ["adaptive", "ensemble", "hybrid", "paper"])
def test_threads_share_one_study(tmp_path, strategy):
    import threading

    study = make_study(tmp_path / "s.db", n_extra=24, strategy=strategy)
    n_classes = study.counts()["classes"]
    told, errors = [], []

    def work():
        try:
            while True:
                claims = study.suggest(1)
                if not claims:
                    return
                for claim in claims:
                    assert study.tell(claim, fake_score(claim))
                    told.append(str(claim))
        except Exception as exc:  # collected: a failing thread must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert errors == []
    assert len(told) == len(set(told)) == n_classes
    assert {r["name"] for r in study.results() if r["status"] == "done"} == set(told)
    assert [e[1] for e in study.events(10_000)].count("embed") == 1  # one thread embedded


def test_a_fitted_surrogate_is_not_changed_by_a_later_fit(tmp_path):
    study = make_study(tmp_path / "s.db", n_extra=8, strategy="paper")
    study.tell("relu", 0.9)
    study.tell("tanh", 0.1)
    first = study.surrogate()
    before = first.predict()
    study.tell("elu", 0.8)
    assert not np.array_equal(study.surrogate().predict(), before)
    np.testing.assert_array_equal(first.predict(), before)


def test_non_finite_metrics_read_back_as_written(tmp_path):
    study = make_study(tmp_path / "s.db", n_extra=2)
    study.tell("relu", 0.9, loss=float("inf"), margin=np.float32(-np.inf), grad=float("nan"))
    study.close()
    (row,) = aq.Study(str(tmp_path / "s.db")).results()
    assert row["metrics"]["loss"] == float("inf")
    assert row["metrics"]["margin"] == float("-inf")
    assert math.isnan(row["metrics"]["grad"])


def test_an_in_memory_store_holds_a_study_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    classes, out, _ = synthetic_space(2)
    store = aq_store.Store(":memory:", create=True, meta={"features_version": 0, "task": "t"})
    assert store.add_classes(classes, out) == (len(classes), len(classes))
    ((class_id, name, token, _),) = store.claim_pending([1], 1, "w", lease_s=60)
    assert store.record_result(class_id, 0.5, {}, None, token, "w")
    assert store.meta()["task"] == "t"
    assert store.counts()["done"] == 1 and store.best_result_rows(1)[0][1] == name
    store.close()
    assert os.listdir(tmp_path) == []
