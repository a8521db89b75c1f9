"""The counts a study keeps by triggers: equal to a recount under concurrent writers, added to files
written before they existed, and kept right by writes that do not know about them."""
import multiprocessing as mp
import os
import random
import sqlite3

import numpy as np

import aquasurf_fast as aq
from search_helpers import fake_score, make_study
from sql_helpers import sql


def recount(study) -> dict:
    """The counts that ``Study.counts`` reads, by scanning the tables."""
    rows = dict(sql(study, "SELECT status, count(*) FROM classes GROUP BY status"))
    out = {s: int(rows.get(s, 0)) for s in ("pending", "running", "done", "failed")}
    out["classes"] = int(sql(study, "SELECT count(*) FROM classes")[0][0])
    out["names"] = int(sql(study, "SELECT count(*) FROM functions")[0][0]) + sum(
        int(np.count_nonzero(np.frombuffer(blob, dtype="<i4")))
        for blob, in sql(study, "SELECT class_ids FROM space_classes"))
    return out


def kept(study) -> dict:
    c = study.counts()
    return {k: c[k] for k in ("pending", "running", "done", "failed", "classes", "names")}


def churn_worker(path: str, seed: int, n_steps: int) -> None:
    """Claim, tell, fail and release at random, as a worker process of a search would."""
    study = aq.Study(path, owner=f"churn-{os.getpid()}")
    rng = random.Random(seed)
    held = []
    for _ in range(n_steps):
        move = rng.random()
        if move < 0.4 or not held:
            held += study.suggest(rng.randint(1, 2))
            if not held:
                return
        elif move < 0.6:
            claim = held.pop(rng.randrange(len(held)))
            study.tell(claim, fake_score(str(claim)))
        elif move < 0.8:
            study.fail(held.pop(rng.randrange(len(held))), "a failure")
        else:
            study.release([held.pop(rng.randrange(len(held)))])
    study.release(held[:1])  # one claim is left running, another given back


def test_counts_equal_a_recount_after_concurrent_processes(tmp_path):
    path = str(tmp_path / "s.db")
    study = make_study(path, n_extra=40, max_retries=1, order="exhaustive")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=churn_worker, args=(path, seed, 40)) for seed in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    counts = kept(study)
    assert counts == recount(study)
    # The workers did reach every status, so every trigger was exercised.
    assert all(counts[s] > 0 for s in ("pending", "done", "failed"))


def drop_counts(path) -> None:
    """Make ``path`` a file as written before the counts and partial indexes existed."""
    conn = sqlite3.connect(path)
    for name, kind in conn.execute("SELECT name, type FROM sqlite_master WHERE name LIKE "
                                   "'%counted%' OR name IN ('counts', 'classes_explicit', "
                                   "'classes_baselines')").fetchall():
        conn.execute(f"DROP {kind.upper()} {name}")
    conn.commit()
    conn.close()


def test_a_file_without_counts_gets_them_counted(tmp_path):
    path = str(tmp_path / "s.db")
    study = make_study(path, n_extra=6)
    for claim in study.suggest(3):
        study.tell(claim, 0.5)
    study.suggest(1)
    study.close()
    drop_counts(path)
    study = aq.Study(path)
    assert kept(study) == recount(study)
    assert kept(study)["done"] == 3 and kept(study)["running"] == 1
    plan = sql(study, "EXPLAIN QUERY PLAN SELECT id FROM classes WHERE baseline = 1")
    assert "classes_baselines" in plan[0][3]
    assert sql(study, "PRAGMA user_version")[0][0] == 2  # readable by earlier versions


def test_writes_that_know_nothing_of_the_counts_keep_them_right(tmp_path):
    """An earlier version writing the file changes classes and names with plain statements: the
    triggers in the file count them."""
    path = str(tmp_path / "s.db")
    study = make_study(path, n_extra=6)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE classes SET status = 'done', score = 0.1 WHERE id IN (1, 2)")
    conn.execute("UPDATE classes SET status = 'done' WHERE id = 1")  # unchanged: counted once
    conn.execute("UPDATE classes SET status = 'running' WHERE id = 3")
    conn.execute("INSERT INTO classes (canonical, status) VALUES ('g(x)', 'failed')")
    conn.execute("INSERT INTO functions (name, class_id) VALUES ('g(x)', last_insert_rowid())")
    conn.execute("DELETE FROM functions WHERE name = 'f0'")
    conn.execute("INSERT INTO classes (canonical, status) VALUES ('h(x)', 'done')")
    conn.execute("DELETE FROM classes WHERE canonical = 'h(x)'")
    conn.close()
    counts = kept(study)
    assert counts == recount(study)
    assert (counts["done"], counts["running"], counts["failed"]) == (2, 1, 1)


def schema_study(path, monkeypatch, bulk: bool):
    from aquasurf_fast.study.store import space_tables as spaces

    monkeypatch.setattr(spaces, "BULK_MIN_ROWS", 0 if bulk else 10**9)
    study = aq.Study(str(path), baselines=["relu", "tanh"])
    study.add_schema("binary(unary(x),unary(x))", unary=aq.BENCHMARK_UNARY_OPS)
    return study


def test_a_bulk_insert_writes_what_row_by_row_inserts_write(tmp_path, monkeypatch):
    """A space inserted with its indexes and insert trigger set aside gives the same rows, the
    same indexes and triggers, and right counts."""
    bulk = schema_study(tmp_path / "bulk.db", monkeypatch, bulk=True)
    rows = schema_study(tmp_path / "rows.db", monkeypatch, bulk=False)
    table = "SELECT * FROM classes ORDER BY id"
    assert sql(bulk, table) == sql(rows, table)
    schema = "SELECT type, name, sql FROM sqlite_master ORDER BY name"
    assert sql(bulk, schema) == sql(rows, schema)
    assert kept(bulk) == recount(bulk) == kept(rows)
    plan = sql(bulk, "EXPLAIN QUERY PLAN SELECT id FROM classes WHERE out_hash = x'00'")
    assert "INDEX classes_out_hash" in plan[0][3]
