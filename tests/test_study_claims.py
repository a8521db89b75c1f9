"""Study.release, Study.renew and Study.iter_results: the public calls a worker of one's own uses
to give claims back, keep them alive, and read every class."""
import sqlite3

import aquasurf_fast as aq
from search_helpers import BASELINES, fake_score, make_study
from sql_helpers import sql


def lease_until(study, claim):
    return sql(study, "SELECT lease_until FROM classes WHERE claim_token = ?",
                             (claim.token,))[0][0]


def end_lease(study, claim):
    """The claim's lease runs out, as when its worker hangs past lease_s."""
    with sqlite3.connect(study.path) as db:
        db.execute("UPDATE classes SET lease_until = 0 WHERE claim_token = ?", (claim.token,))
    db.close()


def test_release_gives_claims_back_to_be_suggested_again(tmp_path):
    study = make_study(tmp_path / "s.db", n_extra=4, order="exhaustive")
    first, second = study.suggest(2)
    assert [str(first), str(second)] == BASELINES[:2]
    assert study.release([first]) == 1
    counts = study.counts()
    assert counts["running"] == 1 and counts["pending"] == counts["classes"] - 1
    assert study.release([first]) == 0  # already given back
    (again,) = study.suggest(1)
    assert str(again) == str(first) and again.token != first.token  # a new claim
    assert study.tell(again, 0.5)
    assert study.release([again]) == 0  # a class with a result stays done
    releases = [e for e in study.events(100) if e[1] == "release"]
    assert [e[2] for e in releases] == [str(first)]


def test_release_of_a_claim_taken_over_leaves_the_new_claim_alone(tmp_path):
    path = str(tmp_path / "s.db")
    make_study(path, n_extra=4, order="exhaustive").close()
    slow, other = aq.Study(path, owner="slow"), aq.Study(path, owner="other")
    (stale,) = slow.suggest(1)
    end_lease(slow, stale)
    (taken,) = other.suggest(1)
    assert str(taken) == str(stale)
    assert slow.release([stale]) == 0
    assert other.counts()["running"] == 1 and other.release([taken]) == 1


def test_renew_extends_a_current_lease_and_no_other(tmp_path):
    study = make_study(tmp_path / "s.db", n_extra=4, order="exhaustive", lease_s=60.0)
    a, b = study.suggest(2)
    before = lease_until(study, a)
    assert study.renew([a]) == 1
    assert lease_until(study, a) >= before
    # A renewed lease is not collected, an ended one is.
    end_lease(study, a)
    end_lease(study, b)
    assert study.renew([a]) == 1 and lease_until(study, a) > 0
    again = study.suggest(1)
    assert [str(c) for c in again] == [str(b)]  # b went back to the pool, a is still held
    assert study.renew([b]) == 0  # its claim was taken over
    assert study.tell(a, 0.5) and study.renew([a]) == 0


def test_iter_results_reads_every_class_in_batches(tmp_path):
    study = make_study(tmp_path / "s.db", n_extra=10, order="exhaustive", max_retries=0)
    claims = study.suggest(5)
    for claim in claims[:3]:
        study.tell(claim, fake_score(claim), loss=1.0)
    study.fail(claims[3], "diverged")  # failed; claims[4] stays running
    everything = list(study.iter_results(batch=4))
    assert [r["class_id"] for r in everything] == sorted(r["class_id"] for r in everything)
    assert len(everything) == study.counts()["classes"] == 18

    def view(rows):
        return sorted((r["name"], r["status"], r["attempts"]) for r in rows)

    assert view(everything) == view(study.results(include_pending=True))
    by_name = {r["name"]: r for r in everything}
    for claim in claims[:3]:
        row = by_name[str(claim)]
        assert row["score"] == fake_score(claim) and row["metrics"] == {"loss": 1.0}
    assert by_name[str(claims[3])]["status"] == "failed"
    assert by_name[str(claims[3])]["error"] == "diverged"
    assert by_name[str(claims[4])]["status"] == "running"
    evaluated = list(study.iter_results(include_pending=False, batch=2))
    assert sorted(r["status"] for r in evaluated) == ["done"] * 3 + ["failed", "running"]


def test_iter_results_lists_the_names_of_each_class(tmp_path):
    study = aq.Study(str(tmp_path / "s.db"), baselines=["relu(x)"])
    study.add_functions(["swish(x)", "mul(x,sigmoid(x))", "relu(x)", "tanh(x)"])
    rows = {r["name"]: r["members"] for r in study.iter_results(batch=1)}
    # swish(x) and mul(x,sigmoid(x)) have equal outputs: one class, canonical member first.
    assert rows == {"relu(x)": ["relu(x)"], "swish(x)": ["swish(x)", "mul(x,sigmoid(x))"],
                    "tanh(x)": ["tanh(x)"]}
    assert [r["name"] for r in study.iter_results(members=False, include_pending=False)] == []
