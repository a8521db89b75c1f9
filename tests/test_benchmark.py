"""Benchmarks: the Act-Bench layout (read, write, errors), builds through a study, and replays."""
import gzip
import json
import os

import numpy as np
import pytest

import aquasurf_fast as aq
from aquasurf_fast.bench.build import build_benchmark, write_benchmark
from aquasurf_fast.bench.format import LAYOUT_KEYS, BenchmarkError, load_benchmark
from aquasurf_fast.cli import main
from aquasurf_fast.bench.replay import STRATEGIES, make_pool, replay
from aquasurf_fast.tasks import TaskEvaluator

from bench_helpers import FAKE_TASK, LAYOUT, synthetic_rows, write_rows
from image_helpers import assert_png_drawn
from search_helpers import make_study
from sql_helpers import sql

SPACE = ["max(relu(x),tanh(x))", "mul(x,sigmoid(x))", "min(x,abs(x))", "add(elu(x),softsign(x))",
         "mul(x,exp(x))", "div(x,zero(x))", "sub(tanh(x),tanh(x))"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AQUASURF_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "synthetic.json.gz"
    rows = synthetic_rows()
    write_rows(path, rows)
    return str(path), rows


# -- reading the layout ----------------------------------------------------------------------------

def test_reads_the_act_bench_layout(synthetic):
    path, rows = synthetic
    bench = aq.load_benchmark(path, cache=False)
    assert aq.load_benchmark is load_benchmark
    assert len(bench) == len(rows) and list(bench.names) == list(rows)
    for i in (0, 17, len(rows) - 1):
        row = rows[bench.names[i]]
        assert bench.metrics["val_acc"][i] == row["Validation Accuracy"]
        assert bench.metrics["test_acc"][i] == row["Test Accuracy"]
        assert bench.metrics["train_loss"][i] == row["Train Loss"]
        assert bench.metrics["runtime"][i] == row["Runtime (s)"]
        assert list(bench.members[i]) == row["Equivalent Activation Functions"]
        np.testing.assert_array_equal(bench.fisher[i],
                                      np.float32(row["Fisher log eigenvalue CDF"]))
    relu = bench.class_of("relu(x)")
    assert bench.names[relu] == "relu(x)"
    assert bench.class_of("no_such(x)") is None


def test_null_and_nan_metrics_are_unknown(tmp_path):
    rows = synthetic_rows(n=12)
    first, second = list(rows)[:2]
    rows[first].update({"Validation Accuracy": None, "Fisher log eigenvalue CDF": None})
    rows[second]["Test Loss"] = float("nan")  # the published files use NaN tokens
    bench = load_benchmark(write_rows(tmp_path / "b.json", rows), cache=False)
    assert np.isnan(bench.metrics["val_acc"][0]) and not bench.trained[0] and bench.trained[1:].all()
    assert np.isnan(bench.fisher[0]).all() and np.isfinite(bench.fisher[1:]).all()
    assert np.isnan(bench.metrics["test_loss"][1])


def test_parsed_once_then_read_from_the_cache(tmp_path, monkeypatch):
    path = write_rows(tmp_path / "b.json", synthetic_rows(n=20))
    first = load_benchmark(path)
    cached = os.listdir(tmp_path / "cache" / "benchmarks")
    assert len(cached) == 1 and cached[0].endswith(".npz")
    import aquasurf_fast.bench.format as benchmark

    monkeypatch.setattr(benchmark, "_read_json", lambda p: pytest.fail("parsed the JSON again"))
    again = load_benchmark(path)
    assert again.names == first.names and again.members == first.members
    np.testing.assert_array_equal(again.fisher, first.fisher)
    for k, v in first.metrics.items():
        np.testing.assert_array_equal(again.metrics[k], v)
    monkeypatch.undo()
    # A changed file is parsed again, not served stale from the cache.
    rows = synthetic_rows(n=21)
    write_rows(path, rows)
    os.utime(path, ns=(1, 1))
    assert len(load_benchmark(path)) == len(rows)


@pytest.mark.parametrize("content, message", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "got a JSON list"),
    (b"{}", "empty"),
    (b'{"relu(x)": 3}', "must be an object"),
    (b'{"relu(x)": {"Test Accuracy": 0.5}}', "lacks 'Validation Accuracy'"),
    (b'{"relu(x)": {"Validation Accuracy": "high", "Test Accuracy": 0.5}}', "must be a number"),
    (b'{"relu(x)": {"Validation Accuracy": 0.5, "Test Accuracy": 0.5, '
     b'"Equivalent Activation Functions": "relu(x)"}}', "list of function names"),
    (b'{"relu(x)": {"Validation Accuracy": 0.5, "Test Accuracy": 0.5, '
     b'"Fisher log eigenvalue CDF": [0.1, 0.2]}, "tanh(x)": {"Validation Accuracy": 0.5, '
     b'"Test Accuracy": 0.5, "Fisher log eigenvalue CDF": [0.1]}}', "different lengths"),
    (b"\x1f\x8b\x08\x00garbage", "cannot read"),
])
def test_malformed_files_give_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(BenchmarkError, match=message):
        load_benchmark(str(path))


def test_missing_file_and_unknown_names(tmp_path):
    with pytest.raises(BenchmarkError, match="no such benchmark file"):
        load_benchmark(str(tmp_path / "absent.json"))
    rows = {"my_act": {"Validation Accuracy": 0.5, "Test Accuracy": 0.5}}
    bench = load_benchmark(write_rows(tmp_path / "b.json", rows))
    with pytest.raises(BenchmarkError, match="not an expression"):
        bench.output_features()


# -- writing ---------------------------------------------------------------------------------------

def test_study_round_trip_through_the_layout(tmp_path):
    study = make_study(tmp_path / "s.db", n_extra=10)
    for i, name in enumerate(["relu", "tanh", "f3"]):
        study.tell(name, 0.5 + i / 10, test_acc=0.4 + i / 10, train_acc=0.9, train_loss=0.1,
                   val_loss=float("nan"), test_loss=0.3, runtime=2.5)
    path = str(tmp_path / "out.json.gz")
    assert write_benchmark(study, path) == 18
    with gzip.open(path, "rt") as f:
        rows = json.load(f)
    assert all(set(r) == set(LAYOUT_KEYS) == set(LAYOUT) for r in rows.values())
    bench = load_benchmark(path, cache=False)
    i = bench.class_of("tanh")
    assert bench.metrics["val_acc"][i] == pytest.approx(0.6)
    assert bench.metrics["test_acc"][i] == pytest.approx(0.5)
    assert bench.metrics["runtime"][i] == 2.5
    assert np.isnan(bench.metrics["val_loss"][i])  # NaN is written as null
    assert int(bench.trained.sum()) == 3
    stored = sql(study, "SELECT fisher_feat FROM classes WHERE canonical = 'tanh'")[0][0]
    np.testing.assert_array_equal(bench.fisher[i], np.frombuffer(stored, dtype="<f4"))


# -- building --------------------------------------------------------------------------------------

def test_task_evaluator_over_seeds_keeps_the_median_run(tmp_path):
    task = tmp_path / "task.py"
    task.write_text(FAKE_TASK)
    evaluate = TaskEvaluator(str(task), seeds=3)
    got = evaluate("tanh(x)")
    scores = sorted((sum(map(ord, "tanh(x)")) * (s + 3) % 101) / 101 for s in range(3))
    assert got["val_acc"] == scores[1] and got["test_acc"] == scores[1] / 2
    assert got["val_acc_min"] == scores[0] and got["val_acc_max"] == scores[2]
    assert got["runtime"] == 1.5 and got["seeds"] == 3
    one = TaskEvaluator(str(task), seeds=1)("tanh(x)")
    assert one["val_acc"] == (sum(map(ord, "tanh(x)")) * 3 % 101) / 101  # the task's own seed
    (tmp_path / "noseed.py").write_text(FAKE_TASK.replace("def train_eval(activation, seed=0):",
                                                          "def train_eval(activation):"))
    with pytest.raises(ValueError, match="takes no seed"):
        TaskEvaluator(str(tmp_path / "noseed.py"), seeds=2)("tanh(x)")


def test_build_trains_every_finite_class_and_resumes(tmp_path, capsys):
    task = tmp_path / "task.py"
    task.write_text(FAKE_TASK)
    out = str(tmp_path / "b.json")
    stats = build_benchmark(out, str(task), names=SPACE, workers=0, progress=False)
    bench = load_benchmark(out, cache=False)
    finite = np.isfinite(aq.output_features(list(bench.names))).all(axis=1)
    # Every class with finite outputs is trained (baselines included), the rest listed untrained.
    assert (bench.trained == finite).all() and (~finite).sum() >= 1
    assert stats["done"] == finite.sum()
    i = bench.class_of("mul(x,sigmoid(x))")
    assert bench.names[i] == "swish(x)"  # the class is named by its baseline
    assert bench.metrics["val_acc"][i] == (sum(map(ord, "swish(x)")) * 3 % 101) / 101
    assert bench.fisher.shape[1] == 2 + 3  # CDFs of 360 // 100 - 1 and 410 // 100 - 1 bins
    # Running again trains nothing new; a different recipe on the same study is refused.
    again = build_benchmark(out, str(task), names=SPACE, workers=0, progress=False)
    assert again["evaluated"] == 0 and again["done"] == stats["done"]
    with pytest.raises(aq.StudyError, match="seed"):
        build_benchmark(out, str(task), names=SPACE, seeds=3, workers=0, progress=False,
                        study_path=str(tmp_path / "b.study.db"))


def _fake_score(name, seed):
    return (sum(map(ord, name)) * (seed + 3) % 101) / 101


def test_build_with_more_seeds_keeps_the_earlier_runs_as_seed_zero(tmp_path):
    task = tmp_path / "task.py"
    task.write_text(FAKE_TASK)
    out = str(tmp_path / "b.json.gz")
    build_benchmark(out, str(task), names=SPACE, workers=0, progress=False)
    # Mark the one-seed file's runs so that a retrained seed 0 would show.
    with gzip.open(out, "rt") as f:
        rows = json.load(f)
    trained = [n for n, r in rows.items() if r["Validation Accuracy"] is not None]
    for name in trained:
        rows[name]["Validation Accuracy"] = 0.5 + 0.001 * len(name)
        rows[name]["Test Accuracy"] = 0.25
    with gzip.open(out, "wt") as f:
        json.dump(rows, f)
    stats = build_benchmark(out, str(task), names=SPACE, seeds=3, workers=0, progress=False)
    assert stats["kept_runs"] == len(trained) and os.path.exists(str(tmp_path / "b.seeds3.study.db"))
    bench = load_benchmark(out, cache=False)
    assert bench.n_seeds == 3
    for name in trained:
        i = bench.class_of(name)
        runs = [0.5 + 0.001 * len(name), _fake_score(name, 1), _fake_score(name, 2)]
        assert list(bench.runs["val_acc"][i]) == runs
        assert list(bench.runs["test_acc"][i]) == [0.25, runs[1] / 2, runs[2] / 2]
        median = sorted(runs)[1]
        assert bench.metrics["val_acc"][i] == median
        assert bench.median_test_acc()[i] == sorted([0.25, runs[1] / 2, runs[2] / 2])[1]
    # Resuming the three-seed build trains nothing and keeps the runs.
    again = build_benchmark(out, str(task), names=SPACE, seeds=3, workers=0, progress=False)
    assert again["evaluated"] == 0
    assert np.array_equal(load_benchmark(out, cache=False).runs["val_acc"], bench.runs["val_acc"],
                          equal_nan=True)


def test_extending_a_build_of_another_space_is_refused(tmp_path):
    task = tmp_path / "task.py"
    task.write_text(FAKE_TASK)
    out = str(tmp_path / "b.json")
    build_benchmark(out, str(task), names=SPACE, workers=0, progress=False)
    with pytest.raises(BenchmarkError, match="not in this build's space"):
        build_benchmark(out, str(task), names=SPACE[:3], seeds=2, workers=0, progress=False)


def test_exhaustive_order_suggests_classes_without_fisher_features(tmp_path):
    study = aq.Study(str(tmp_path / "s.db"), order="exhaustive", baselines=["relu"])
    study.add_functions(["tanh(x)", "mul(x,exp(x))", "div(x,zero(x))", "abs(x)"])
    tanh = study.store.class_of("tanh(x)")[1]
    study.set_fisher_features([tanh], np.ones((1, 4)), ok=[True])
    names = set()
    while True:
        claims = study.suggest(2)
        if not claims:
            break
        names.update(map(str, claims))
    # Finite outputs are enough; "div(x,zero(x))" is never suggested.
    assert names == {"relu(x)", tanh, "mul(x,exp(x))", "abs(x)"}
    with pytest.raises(aq.StudyError, match="unknown order"):
        aq.Study(str(tmp_path / "t.db"), order="alphabetical")


# -- replay ----------------------------------------------------------------------------------------

def test_surrogate_beats_random_search_on_structured_scores(synthetic):
    path, _ = synthetic
    result = replay(load_benchmark(path), ("ensemble", "paper"), trials=8, budget=60,
                    n_embeddings=5, progress=False)
    pool = result.pool
    assert len(pool) == len(synthetic[1])
    # Random search's expected evaluations to one of the k top classes among n: (n + 1) / (k + 1)
    # (about 63 here); eight random trials are too few to stand for it.
    n_top = pool.n_top("top-1%")
    random_expected = (len(pool) + 1) / (n_top + 1)
    for strategy in ("ensemble", "paper"):
        ours = result.evaluations_to(strategy, "top-1%")
        assert np.isfinite(ours).all()
        # The surrogate, following the smooth structure, needs at most half of that.
        assert np.median(ours) * 2 <= random_expected
        best = result.best_so_far(strategy)
        assert (np.diff(result.best_so_far(strategy, "val"), axis=1) >= 0).all()
        assert best.shape == (8, 60)


def test_replay_bookkeeping_on_a_known_order(synthetic):
    path, _ = synthetic
    result = replay(load_benchmark(path), ("random",), trials=3, budget=30, progress=False)
    pool, order = result.pool, result.orders["random"]
    assert order.shape == (3, 30) and all(len(set(o)) == 30 for o in order)
    for t in range(3):
        val = pool.val[order[t]]
        for k in (0, 9, 29):
            inc = order[t][int(np.argmax(val[:k + 1]))]
            assert result.best_so_far("random")[t, k] == pool.test[inc]
        hits = np.flatnonzero(val >= pool.top_threshold("top-5"))
        want = hits[0] + 1 if hits.size else np.inf
        assert result.evaluations_to("random", "top-5")[t] == want
    assert (pool.val >= pool.top_threshold("top-5")).sum() == 5


def test_classes_tied_with_the_kth_count_as_top_k(synthetic):
    import dataclasses

    pool = make_pool(load_benchmark(synthetic[0]))
    order = np.argsort(-pool.val, kind="stable")
    val = pool.val.copy()
    val[order[5:7]] = val[order[4]]  # the 6th and 7th tie with the 5th
    tied = dataclasses.replace(pool, val=val)
    assert tied.top_threshold("top-5") == val[order[4]]
    assert tied.n_top("top-5") == 7 and pool.n_top("top-5") == 5
    assert tied.n_top("top-1") == 1


def test_every_strategy_runs_and_starts_with_the_baselines(synthetic):
    path, _ = synthetic
    bench = load_benchmark(path)
    result = replay(bench, STRATEGIES, trials=2, budget=12, n_embeddings=5, progress=False)
    base = make_pool(bench).baselines
    assert len(base) == 8
    for s in STRATEGIES:
        order = result.orders[s]
        assert order.shape == (2, 12) and all(len(set(o)) == 12 for o in order)
        if s != "random":
            assert (order[:, :8] == base).all()
    with pytest.raises(ValueError, match="unknown strategy"):
        replay(bench, ("bayes",), trials=1, budget=5)


def test_cli_replay_and_build(tmp_path, capsys, synthetic):
    path, _ = synthetic
    code = main(["bench", "replay", path, "--strategies", "paper,random", "--trials", "3",
                 "--budget", "20", "--embeddings", "1", "--out", str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "| paper |" in out and "| random |" in out and "top-1%" in out
    assert_png_drawn(tmp_path / "replay.png")

    assert main(["bench", "info", path]) == 0
    out = capsys.readouterr().out
    bench = load_benchmark(path)
    relu = bench.class_of("relu(x)")
    rank = 1 + int((bench.metrics["val_acc"] > bench.metrics["val_acc"][relu]).sum())
    assert f"relu(x): validation {bench.metrics['val_acc'][relu]:.4f}" in out
    assert f"rank {rank} of {len(bench)}" in out

    assert main(["bench", "replay", path, "--strategies", "bayes"]) == 2
    assert "unknown strategy" in capsys.readouterr().err

    task = tmp_path / "task.py"
    task.write_text(FAKE_TASK)
    out_file = tmp_path / "small.json.gz"
    code = main(["bench", "build", "--task", str(task), "--space", "binary(unary(x),x)",
                 "--unary", "tanh,relu,exp", "--workers", "0", "--out", str(out_file),
                 "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "trained" in out and out_file.exists()
    assert os.path.exists(tmp_path / "small.study.db")
