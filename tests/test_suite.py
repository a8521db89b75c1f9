"""The benchmark suite's replay (bench.suite), random search's exact figures (bench.random_exact),
the default rule (bench.default_rule) and the adaptive strategy's model choice."""
import math
import subprocess
import sys

import numpy as np
import pytest

from aquasurf_fast.bench.default_rule import Outcome, choose_default
from aquasurf_fast.bench.random_exact import (incumbent_distribution, median_draws,
                                              miss_probability, weighted_median)
from aquasurf_fast.surrogate.adaptive import KnnSpace, adaptive_scores, model_weights
from aquasurf_fast.surrogate.strategy import AdaptiveSettings, parse_variant

from bench_helpers import synthetic_rows, write_rows


# -- random search, exactly -------------------------------------------------------------------------

def test_median_draws_by_hand():
    # 1 marked of 4: P(T <= t) = t / 4, exactly 1/2 at t = 2, so halfway to 3.
    assert median_draws(4, 1) == 2.5
    # 2 of 10: P(T <= 2) = 1 - 28/45 = 0.378, P(T <= 3) = 1 - 56/120 = 0.533.
    assert median_draws(10, 2) == 3.0
    assert median_draws(10, 10) == 1.0
    np.testing.assert_allclose(miss_probability(10, 2, [0, 1, 2, 3, 9]),
                               [1.0, 0.8, 28 / 45, 56 / 120, 0.0], rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="1 <= m <= n"):
        median_draws(5, 0)


def test_exact_figures_match_a_simulation():
    rng = np.random.default_rng(0)
    n = 40
    val = np.round(rng.uniform(0, 1, n), 1)  # many ties
    test = val + rng.normal(0, 0.05, n)
    perms = np.argsort(rng.random((40000, n)), axis=1)
    marked = val >= np.sort(val)[::-1][2]
    first = np.argmax(marked[perms], axis=1) + 1
    cdf = np.array([(first <= t).mean() for t in range(n + 1)])
    exact = 1.0 - miss_probability(n, int(marked.sum()), np.arange(n + 1))
    np.testing.assert_allclose(cdf, exact, atol=0.01)
    for t in (1, 5, 12):
        # The incumbent: the first drawn of the best validation level among the first t.
        head = perms[:, :t]
        best = val[head].max(axis=1, keepdims=True)
        pos = np.argmax(val[head] == best, axis=1)
        incumbent = head[np.arange(head.shape[0]), pos]
        simulated = np.bincount(incumbent, minlength=n) / head.shape[0]
        np.testing.assert_allclose(simulated, incumbent_distribution(val, t), atol=0.01)
        regret = test.max() - test
        assert weighted_median(regret, incumbent_distribution(val, t)) == pytest.approx(
            np.median(regret[incumbent]), abs=0.02)


def test_weighted_median_halfway_on_an_exact_half():
    assert weighted_median(np.array([3.0, 1.0, 2.0]), np.array([1, 1, 2])) == 2.0
    assert weighted_median(np.array([1.0, 2.0]), np.array([1, 1])) == 1.5


# -- the suite replay --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("suite")
    a = write_rows(d / "act-bench-alpha.json", synthetic_rows(n=120, seed=1))
    b = write_rows(d / "act-bench-beta.json",
                   synthetic_rows(n=120, seed=2, target="mul(identity(x),arcsinh(x))"))
    return [a, b]


@pytest.fixture(scope="module")
def suite(two_files):
    from aquasurf_fast.bench.suite import replay_suite

    return replay_suite(two_files, ["adaptive", "paper", "random"], trials=4, budget=20,
                        long_budget=30, long_trials=3, progress=False, n_embeddings=5)


def test_suite_tables_and_worst_case_by_hand(suite):
    from aquasurf_fast.bench.suite import random_row

    assert suite.benchmarks == ["alpha", "beta"]
    assert set(suite.replays) == {("alpha", 1), ("alpha", 4), ("beta", 1), ("beta", 4)}
    outcomes = suite.outcomes()
    for key, rep in suite.replays.items():
        pool = rep.pool
        random = median_draws(len(pool), pool.n_top("top-1%"))
        for row in rep.summary():
            o = outcomes[row["strategy"]][key]
            hits = np.isfinite(rep.evaluations_to(row["strategy"], "top-1%"))
            expect = float(np.median(rep.evaluations_to(row["strategy"], "top-1%")))
            assert o.median == expect and o.random == random
            assert hits.mean() == row["top-1% reached"]
        assert random_row(rep).startswith("| random (exact) |")
    table = suite.ratio_table()
    for s in ("adaptive", "paper", "random"):
        line = next(l for l in table.splitlines() if l.startswith(f"| {s} |"))
        ratios = [outcomes[s][k].ratio for k in suite.replays]
        cells = [c.strip() for c in line.strip("|").split("|")][1:]
        assert cells == [f"{r:.3f}" for r in ratios] + [f"{max(ratios):.3f}"]
    tables = suite.tables()
    assert tables.count("| random (exact) |") == 4 and "**beta, W = 4**" in tables
    long = suite.long_table()
    assert long.splitlines()[0].startswith("| budget 30, W = 1 | alpha: best | alpha: top-5 |")
    assert long.splitlines()[-1].startswith("| random (exact) |")


def test_a_saved_suite_reads_back_what_it_kept_and_replays_only_the_rest(two_files, suite, tmp_path,
                                                                        monkeypatch):
    from aquasurf_fast.bench import suite as suite_module

    args = dict(trials=4, budget=20, long_budget=30, long_trials=3, progress=False,
                n_embeddings=5, save=str(tmp_path))
    first = suite_module.replay_suite(two_files[:1], ["paper"], **args)
    replayed = []
    real_replay = suite_module.replay

    def counting(bench, strategies, **kw):
        replayed.append(list(strategies))
        return real_replay(bench, strategies, **kw)

    monkeypatch.setattr(suite_module, "replay", counting)
    again = suite_module.replay_suite(two_files[:1], ["adaptive", "paper"], **args)
    assert replayed == [["adaptive"]] * 3  # W = 1, W = 4, the longer replay: paper read back
    for key, rep in again.replays.items():
        np.testing.assert_array_equal(rep.orders["paper"], first.replays[key].orders["paper"])
        np.testing.assert_array_equal(rep.orders["adaptive"], suite.replays[key].orders["adaptive"])
    np.testing.assert_array_equal(again.long["alpha"].orders["adaptive"],
                                  suite.long["alpha"].orders["adaptive"])
    replayed.clear()
    other = suite_module.replay_suite(two_files[:1], ["paper"], **dict(args, trials=3))
    # W = 1 and 4 were kept with 4 trials: replayed; the longer replay's 3 trials are as kept
    assert replayed == [["paper"]] * 2
    assert other.replays[("alpha", 1)].orders["paper"].shape[0] == 3


def test_saved_replays_with_options_of_any_type_are_read_back(two_files, tmp_path, monkeypatch):
    from aquasurf_fast.bench import suite as suite_module

    args = dict(trials=2, budget=10, long_budget=0, progress=False, n_embeddings=5,
                save=str(tmp_path), baselines=("elu", "relu", "tanh"))  # a tuple, kept as a list
    suite_module.replay_suite(two_files[:1], ["paper"], **args)
    monkeypatch.setattr(suite_module, "replay", lambda *a, **kw: pytest.fail("replayed again"))
    again = suite_module.replay_suite(two_files[:1], ["paper"], **args)
    assert again.replays[("alpha", 1)].orders["paper"].shape == (2, 10)


def test_suite_command_prints_every_part(two_files):
    out = subprocess.run([sys.executable, "-m", "aquasurf_fast.cli", "bench", "suite", *two_files,
                          "--strategies", "adaptive:kappa=0:spread=4,adaptive,paper", "--trials", "2",
                          "--budget", "15", "--long-budget", "0", "--no-progress"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("| random (exact) |") == 4
    assert "ratio to random, evals to top-1%" in out.stdout
    assert "default by the rule: " in out.stdout
    bad = subprocess.run([sys.executable, "-m", "aquasurf_fast.cli", "bench", "suite", *two_files,
                          "--strategies", "adaptive:warp=1"], capture_output=True, text=True)
    assert bad.returncode != 0 and "settings are spread, kappa, power" in bad.stderr
    assert "Traceback" not in bad.stderr


# -- the default rule ----------------------------------------------------------------------------------

def _outcomes(medians, ci_hi=None):
    """(benchmark, W) -> Outcome from {benchmark: median}, W = 1 only, random search at 100."""
    return {(b, 1): Outcome(m, (m - 2, (ci_hi or {}).get(b, m + 2)), 100.0)
            for b, m in medians.items()}


def test_the_rule_tunes_without_the_file_it_judges():
    results = {
        "paper": _outcomes({"a": 30, "b": 30, "c": 30}, {"a": 40, "b": 40, "c": 40}),
        # Tuned on all three, "fit" looks best (worst 0.32); but each file is won by a variant
        # that fails elsewhere, so whichever is tuned without a file does badly on it.
        "fam:x": _outcomes({"a": 10, "b": 60, "c": 32}),
        "fam:y": _outcomes({"a": 60, "b": 10, "c": 32}),
        "steady": _outcomes({"a": 25, "b": 28, "c": 35}),
    }
    families = {"paper": ["paper"], "fam": ["fam:x", "fam:y"], "steady": ["steady"]}
    decision = choose_default(results, families)
    by = {v.family: v for v in decision.verdicts}
    # Without a: worst on b, c is 0.60 for x, 0.32 for y -> y, judged on a: 0.60.
    # Without b: 0.32 for x, 0.60 for y -> x, judged on b: 0.60.
    # Without c: 0.60 for both -> x (the first), judged on c: 0.32. So fam's worst is 0.60.
    assert by["fam"].chosen == {"a": "fam:y", "b": "fam:x", "c": "fam:x"}
    assert by["fam"].worst == pytest.approx(0.60)
    assert not by["fam"].eligible and ("b", 1) in by["fam"].beyond_reference
    assert by["steady"].worst == pytest.approx(0.35) and by["steady"].eligible
    assert by["paper"].worst == pytest.approx(0.30)
    assert decision.default == "paper"
    assert "**paper**" in decision.table()


def test_the_rule_takes_the_best_worst_case_among_the_eligible():
    results = {
        "paper": _outcomes({"a": 30, "b": 40}, {"a": 35, "b": 45}),
        "new": _outcomes({"a": 20, "b": 33}),
        "greedy": _outcomes({"a": 10, "b": 50}),  # best mean, beyond paper's interval on b
    }
    decision = choose_default(results, {"paper": ["paper"], "new": ["new"],
                                        "greedy": ["greedy"]})
    assert decision.default == "new"
    with pytest.raises(ValueError, match="same benchmarks"):
        choose_default({"paper": results["paper"], "new": _outcomes({"a": 1})},
                       {"paper": ["paper"], "new": ["new"]})


# -- the adaptive strategy's models --------------------------------------------------------------------

def test_leave_one_out_prefers_the_space_that_predicts():
    rng = np.random.default_rng(0)
    xy = rng.uniform(-1, 1, (300, 2))
    score = np.exp(-(xy ** 2).sum(axis=1) / 0.2)
    shuffled = xy[rng.permutation(300)]  # the same points, unrelated to the scores
    idx = rng.choice(300, 40, replace=False)
    good, bad = KnnSpace(xy[None]), KnnSpace(shuffled[None])
    e_good, _ = good.loo_error(idx, score[idx])
    e_bad, _ = bad.loo_error(idx, score[idx])
    assert e_good < e_bad / 3
    w = model_weights([e_good, e_bad], 2.0)
    assert w[0] > 0.9 and w.sum() == pytest.approx(1.0)
    picks = [int(np.argmax(adaptive_scores([good, bad], idx, score[idx], 0.0, 2.0,
                                           np.random.default_rng(s)) - 10 * np.isin(
                                               np.arange(300), idx))) for s in range(20)]
    assert np.mean(score[picks]) > np.median(score)


def test_leave_one_out_matches_a_float64_brute_force():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 3))
    idx = rng.choice(50, 12, replace=False)
    y = rng.uniform(size=12)
    mean, spread = KnnSpace(x[None]).predict(idx, y, loo=True)
    d = ((x[idx][:, None] - x[idx][None]) ** 2).sum(axis=2)
    np.fill_diagonal(d, np.inf)
    nb = np.argsort(d, axis=1)[:, :3]
    np.testing.assert_allclose(mean, y[nb].mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(spread, y[nb].std(axis=1), rtol=1e-12)


def test_variants_parse_and_bad_ones_say_why():
    assert parse_variant("paper") == ("paper", AdaptiveSettings())
    name, s = parse_variant("adaptive:spread=0:kappa=1")
    assert name == "adaptive" and s.spread == 0 and s.kappa == 1.0 and isinstance(s.spread, int)
    for bad in ("paper:kappa=1", "adaptive:kappa", "adaptive:kappa=x"):
        with pytest.raises(ValueError):
            parse_variant(bad)
    assert math.isfinite(AdaptiveSettings().power)


def test_the_mean_over_seeds_separates_what_the_median_ties():
    from types import SimpleNamespace

    from aquasurf_fast.bench.replay_pool import validation_scores

    runs = np.array([[0.9, 0.8, 0.8], [0.8, 0.8, 0.7], [np.nan, 0.6, 0.6], [0.5, 0.5, 0.5]])
    bench = SimpleNamespace(metrics={"val_acc": np.array([0.8, 0.8, 0.6, np.nan])},
                            runs={"val_acc": runs})
    np.testing.assert_array_equal(validation_scores(bench), bench.metrics["val_acc"])
    # A diverged run counts as 0; an untrained class (no median) stays untrained.
    np.testing.assert_allclose(validation_scores(bench, "mean"),
                               [2.5 / 3, 2.3 / 3, 0.4, np.nan], rtol=1e-12)
    with pytest.raises(ValueError, match="median, mean"):
        validation_scores(bench, "best")
