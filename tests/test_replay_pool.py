"""Replays with a Fisher pool budget, the regret metric, and benchmarks trained under several
seeds."""
import numpy as np
import pytest

from aquasurf_fast.bench.format import describe, load_benchmark
from aquasurf_fast.bench.replay import GROW, GROW_EVERY, POOL_STRATEGIES, make_pool, replay
from aquasurf_fast.bench.replay_report import Replay
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
    assert "regret at 25" in result.table()
    # A crafted search: the five worst classes by validation accuracy, then the best-median class,
    # then the rest. Regret is zero exactly while that class is the incumbent (the best by
    # validation accuracy so far), and positive before it is evaluated.
    top = int(np.argmax(pool.test_median))
    worst = [int(i) for i in np.argsort(pool.val) if i != top][:5]
    rest = [i for i in range(len(pool)) if i != top and i not in worst]
    order = np.array(worst + [top] + rest[:34])[None]
    crafted = Replay(pool, 40, {"crafted": order}, {"crafted": np.zeros((1, 40))})
    held = np.array([order[0, int(np.argmax(pool.val[order[0, :k + 1]]))] == top
                     for k in range(40)])
    assert held[5] and not held[:5].any()
    np.testing.assert_array_equal(crafted.regret("crafted")[0] == 0, held)


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


class _LinePool:
    """What the gp-ucb replay reads of a pool: baselines evaluated first and their accuracies."""

    def __init__(self, val, baselines):
        self.val, self.baselines = np.asarray(val, dtype=np.float64), list(baselines)

    def __len__(self):
        return self.val.size


def _ucb_by_hand(emb, idx, y, kappa):
    """mean + kappa * std of the Gaussian process the replay documents (Matern 5/2 with a
    constant and a white-noise term, normalised targets), fitted here on its own."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    gp = GaussianProcessRegressor(
        kernel=ConstantKernel(1.0) * Matern(length_scale=1.0, nu=2.5) + WhiteKernel(1e-3),
        normalize_y=True, random_state=0).fit(emb[idx], y)
    mean, std = gp.predict(emb, return_std=True)
    return mean, mean + kappa * std


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("workers", [1, 2])
def test_gp_ucb_chooses_the_highest_upper_bound_not_the_highest_mean(workers):
    from aquasurf_fast.bench import replay as replay_module

    rng = np.random.default_rng(0)
    # Twelve evaluated classes along a line, accuracy rising to the right; unevaluated ones among
    # them, and two far away where the process knows least.
    evaluated = np.column_stack([np.linspace(0, 3, 12), rng.normal(0, 0.05, 12)])
    near = np.column_stack([np.linspace(0.1, 3.1, 6), rng.normal(0, 0.05, 6)])
    far = np.array([[3.0, 6.0], [-4.0, -4.0]])
    emb = np.vstack([evaluated, near, far]).astype(np.float32)
    val = np.concatenate([0.5 + 0.1 * evaluated[:, 0], np.zeros(8)])
    pool = _LinePool(val, range(12))
    chosen = replay_module._run_gp_trial(pool, emb, 13, 0, workers, np.random.default_rng(1))
    assert list(chosen[:12]) == list(range(12))
    known = np.arange(12 - (workers - 1))  # the last baseline's result is not in yet
    mean, ucb = _ucb_by_hand(emb.astype(np.float64), known, val[known], replay_module.UCB_KAPPA)
    ucb[:12] = mean[:12] = -np.inf  # evaluated or pending: never chosen again
    assert chosen[12] == int(np.argmax(ucb))
    assert int(np.argmax(mean)) != chosen[12]  # a greedy choice would differ: the rule is seen
