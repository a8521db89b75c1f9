"""Replays with a Fisher pool budget, the regret metric, and benchmarks trained under several
seeds."""
import numpy as np
import pytest

from aquasurf_fast.bench.format import describe, load_benchmark
from aquasurf_fast.bench.replay import GROW, GROW_EVERY, POOL_STRATEGIES, make_pool, replay
from bench_helpers import synthetic_rows, write_rows


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AQUASURF_CACHE", str(tmp_path / "cache"))


def three_seed_rows(seed=0):
    """synthetic_rows with three runs per class: the median run's metrics, every run's accuracies,
    one class that diverged under two seeds and one that diverged under one."""
    rows = synthetic_rows()
    rng = np.random.default_rng(seed)
    for k, (name, row) in enumerate(rows.items()):
        val = row["Validation Accuracy"] + rng.normal(0, 0.02, 3)
        test = val + rng.normal(0, 0.01, 3)
        if k in (5, 6):
            val[1 if k == 5 else 2:] = np.nan
            test[1 if k == 5 else 2:] = np.nan
        median = int(np.argsort(np.where(np.isnan(val), -np.inf, val))[1])
        row["Validation Accuracy (runs)"] = [None if np.isnan(v) else float(v) for v in val]
        row["Test Accuracy (runs)"] = [None if np.isnan(v) else float(v) for v in test]
        row["Validation Accuracy"] = None if np.isnan(val[median]) else float(val[median])
        row["Test Accuracy"] = None if np.isnan(test[median]) else float(test[median])
    return rows


@pytest.fixture(scope="module")
def seeds3(tmp_path_factory):
    return write_rows(tmp_path_factory.mktemp("b3") / "three.json.gz", three_seed_rows())


def test_three_seed_layout_reads_runs_and_medians(seeds3):
    bench = load_benchmark(seeds3, cache=False)
    assert bench.n_seeds == 3 and bench.runs["val_acc"].shape == (len(bench), 3)
    runs = np.where(np.isnan(bench.runs["test_acc"]), -np.inf, bench.runs["test_acc"])
    want = np.sort(runs, axis=1)[:, 1]
    got = bench.median_test_acc()
    finite = np.isfinite(want)
    np.testing.assert_array_equal(got[finite], want[finite])
    assert np.isnan(got[~finite]).all() and (~finite).sum() == 1  # the class that diverged twice
    # The cache keeps the runs too.
    again = load_benchmark(seeds3)
    again = load_benchmark(seeds3)
    np.testing.assert_array_equal(again.runs["val_acc"], bench.runs["val_acc"])


def test_info_reports_the_seed_spread(seeds3):
    bench = load_benchmark(seeds3, cache=False)
    text = describe(bench)
    runs = bench.runs["val_acc"]
    ok = np.isfinite(runs).all(axis=1)
    assert f"median {np.median(np.std(runs[ok], axis=1, ddof=1)):.4f}" in text
    assert "2 classes have a diverged run" in text
    # diverged under one seed: it keeps its median (the worse of its two finished runs)
    row = bench.class_of(list(three_seed_rows())[6])
    assert bench.metrics["val_acc"][row] == np.nanmin(runs[row])
    assert "stay in the top 1% by the median over seeds" in text


def test_regret_is_zero_exactly_when_the_best_median_class_is_held(seeds3):
    bench = load_benchmark(seeds3, cache=False)
    result = replay(bench, ("random",), trials=4, budget=40, progress=False)
    pool, order = result.pool, result.orders["random"]
    regret = result.regret("random")
    best = pool.test_median.max()
    for t in range(4):
        for k in (0, 19, 39):
            inc = order[t][int(np.argmax(pool.val[order[t][:k + 1]]))]
            assert regret[t, k] == pytest.approx(best - pool.test_median[inc])
    assert (regret >= 0).all()
    # A search that evaluates the best-median class first and scores it highest has no regret.
    top = int(np.argmax(pool.test_median))
    assert pool.test_median[top] == best
    assert "regret at 25" in result.table()


def test_pool_strategies_count_their_featurizations_and_stay_in_the_pool(tmp_path):
    path = write_rows(tmp_path / "b.json.gz", synthetic_rows())
    bench = load_benchmark(path, cache=False)
    result = replay(bench, POOL_STRATEGIES, trials=2, budget=40, n_embeddings=1, progress=False,
                    pool_size=35)
    base = make_pool(bench).baselines
    for s in POOL_STRATEGIES:
        order, done = result.orders[s], result.featurized[s]
        assert order.shape == (2, 40) and all(len(set(o)) == 40 for o in order)
        assert (order[:, :len(base)] == base).all()
        assert (done[:, 0] == 35 + len(base)).all() and (np.diff(done, axis=1) >= 0).all()
        if s.endswith("+grow"):
            # a round of GROW classes after every GROW_EVERY results (and when the pool runs out)
            assert done[0, GROW_EVERY] == 35 + len(base) + GROW
        else:
            assert (done == 35 + len(base)).all()
    # The +grow form starts from the same pool as its fixed twin.
    np.testing.assert_array_equal(result.orders["pool-random"][:, :GROW_EVERY],
                                  result.orders["pool-random+grow"][:, :GROW_EVERY])
    assert "Fisher features at top-1%" in result.table()
    with pytest.raises(ValueError, match="cannot last"):
        replay(bench, ("pool-coverage",), trials=1, budget=40, pool_size=10, progress=False)


def test_full_strategies_featurize_everything_and_random_nothing(tmp_path):
    path = write_rows(tmp_path / "b.json.gz", synthetic_rows())
    result = replay(load_benchmark(path, cache=False), ("paper", "random", "outputs"), trials=1,
                    budget=20, n_embeddings=1, progress=False)
    assert (result.featurized["paper"] == len(result.pool)).all()
    assert (result.featurized["random"] == 0).all() and (result.featurized["outputs"] == 0).all()
