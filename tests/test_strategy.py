"""The search strategies (aquasurf_fast.surrogate.strategy) on landscapes whose best region is known,
and the W-worker replay that measures them."""
import numpy as np
import pytest

from aquasurf_fast.surrogate.strategy import (DEFAULT_STRATEGY, N_LAYOUTS, N_SPREAD, OUTPUT_STRIDE,
                                              STRATEGY_NAMES, Strategy, output_points,
                                              rank_classes, spread_picks)

N_POINTS = 800
BUDGET = 40


def landscape(seed: int):
    """Candidates on a 2-D plane (as UMAP would lay them out, jittered per layout) scored by a smooth
    bump around a known optimum, with a region where training fails (score 0)."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-1, 1, size=(N_POINTS, 2))
    centre = rng.uniform(-0.6, 0.6, size=2)
    score = 0.9 * np.exp(-((xy - centre) ** 2).sum(axis=1) / 0.08)
    score[(xy[:, 0] < -0.7) & (xy[:, 1] < -0.7)] = 0.0  # diverged trainings
    layouts = np.stack([xy + rng.normal(0, 0.01, xy.shape) for _ in range(N_LAYOUTS)])
    baselines = rng.choice(N_POINTS, 8, replace=False)
    return layouts.astype(np.float32), score, baselines


def search(strategy: Strategy, layouts, score, baselines, seed: int, workers: int = 1):
    """Evaluation order of one search of BUDGET evaluations: baselines first, then the strategy,
    each choice made without the results of the ``workers - 1`` before it."""
    rng = np.random.default_rng(seed)
    # The hybrid's output space: here the plane itself, without the layouts' jitter.
    points = None if layouts is None else np.round(layouts[0], 2)
    chosen = list(baselines)
    while len(chosen) < BUDGET:
        known = np.array(chosen[:len(chosen) - workers + 1], dtype=np.int64)
        pending = np.array(chosen[known.size:], dtype=np.int64)
        order = strategy.rank(layouts, known, score[known], pending, len(baselines), 1, rng,
                              n_candidates=N_POINTS, points=points)
        chosen.append(int(order[0]))
    return np.array(chosen)


def reached_top(order, score) -> bool:
    """Whether the search evaluated one of the 1% best candidates."""
    threshold = np.sort(score)[::-1][N_POINTS // 100 - 1]
    return bool((score[order] >= threshold).any())


@pytest.mark.parametrize("name", ["adaptive", "ensemble", "hybrid", "paper"])
@pytest.mark.parametrize("workers", [1, 4])
def test_strategies_find_the_known_best_region_and_random_search_does_not(name, workers):
    found, found_by_random = 0, 0
    for seed in range(10):
        layouts, score, baselines = landscape(seed)
        order = search(Strategy(name), layouts, score, baselines, seed, workers)
        assert len(set(order.tolist())) == BUDGET
        found += reached_top(order, score)
        found_by_random += reached_top(search(Strategy("random"), None, score, baselines, seed),
                                       score)
    # 8 of 800 candidates are in the top 1%: 32 random draws find one about a quarter of the time.
    assert found == 10
    assert found_by_random <= 5


def test_random_search_ranks_every_free_candidate_once():
    rng = np.random.default_rng(0)
    order = Strategy("random").rank(None, np.array([3, 5]), np.array([0.1, 0.2]), np.array([7]), 0,
                                    1, rng, n_candidates=20)
    assert sorted(order.tolist()) == sorted(set(range(20)) - {3, 5, 7})


def test_the_ensemble_spreads_its_first_picks_then_ranks_by_prediction():
    layouts, score, baselines = landscape(0)
    rng = np.random.default_rng(0)
    strategy = Strategy("ensemble")
    order = strategy.rank(layouts, baselines, score[baselines], np.array([], np.int64),
                          len(baselines), N_SPREAD, rng)
    picks = order[:N_SPREAD]
    # D² sampling: the spread picks lie far from the baselines and from each other.
    xy = layouts[0].astype(np.float64)
    gap = lambda i, others: np.sqrt(((xy[others] - xy[i]) ** 2).sum(axis=1)).min()
    typical = np.median([gap(i, np.setdiff1d(np.arange(N_POINTS), [i])) for i in range(100)])
    assert all(gap(p, baselines) > 3 * typical for p in picks)
    assert set(order.tolist()).isdisjoint(baselines.tolist())
    assert len(set(order.tolist())) == N_POINTS - len(baselines)


def test_the_hybrid_takes_turns_between_the_layouts_and_the_output_points():
    layouts, score, baselines = landscape(5)
    rng = np.random.default_rng(0)
    # Output points that disagree with the layouts: the candidates' places shuffled, so the two
    # models' favourite candidates differ.
    points = layouts[0][np.random.default_rng(1).permutation(N_POINTS)]
    known = np.concatenate([baselines, np.argsort(-score)[30:45]])
    hybrid = Strategy("hybrid")
    ensemble_pick = Strategy("ensemble").rank(layouts, known, score[known], np.array([], np.int64),
                                              len(baselines), 1, rng)[0]
    for n_known in (known.size, known.size - 1):  # an even and an odd number taken
        k = known[:n_known]
        pick = hybrid.rank(layouts, k, score[k], np.array([], np.int64), len(baselines), 1,
                           np.random.default_rng(0), points=points)[0]
        by_layouts = _best(hybrid.predict(layouts, k, score[k]), k)
        by_points = _best(hybrid.predict(points[None], k, score[k]), k)
        assert not by_layouts & by_points
        assert pick in (by_points if n_known % 2 == 0 else by_layouts)
    assert ensemble_pick in _best(hybrid.predict(layouts, known, score[known]), known)
    with pytest.raises(ValueError, match="output points"):
        hybrid.rank(layouts, known, score[known], np.array([], np.int64), len(baselines), 1, rng)


def _best(pred, taken) -> set:
    """The candidates not taken with the highest prediction (ties are ranked in random order)."""
    pred = pred.copy()
    pred[taken] = -np.inf
    return set(np.flatnonzero(pred == pred.max()).tolist())


def test_output_points_squash_every_other_probe_value():
    values = np.array([[0.0, 5.0, -1e30, 2.0], [np.e - 1, 0.0, 1.0, 0.0]], dtype=np.float32)
    pts = output_points(values)
    assert OUTPUT_STRIDE == 2 and pts.dtype == np.float32 and pts.shape == (2, 2)
    # sign(v) log(1 + |v|) of v clipped to +-20, at columns 0 and 2.
    np.testing.assert_allclose(pts, [[0.0, -np.log(21.0)], [1.0, np.log(2.0)]], rtol=1e-6)


def test_spread_picks_never_repeat_a_chosen_point():
    rng = np.random.default_rng(1)
    coords = np.repeat(np.arange(5.0)[:, None], 2, axis=1)
    picks = spread_picks(coords, np.array([0]), 10, rng)
    assert sorted(picks) == [1, 2, 3, 4]  # then every point coincides with a chosen one
    assert spread_picks(np.zeros((4, 2)), np.array([2]), 3, rng) == []


def test_a_batch_of_suggestions_is_distinct_and_spread_by_the_liar():
    layouts, score, baselines = landscape(2)
    known = np.concatenate([baselines, np.argsort(-score)[20:40]])  # a good region is known
    rng = np.random.default_rng(0)
    batch = Strategy("ensemble").rank(layouts, known, score[known], np.array([], np.int64),
                                      len(baselines), 4, rng)[:4]
    assert len(set(batch.tolist())) == 4 and set(batch.tolist()).isdisjoint(known.tolist())
    # Each pick counts as pending (scoring the mean) for the next: they are not all one point's
    # nearest neighbours.
    xy = layouts[0]
    nearest = np.argsort(((xy - xy[batch[0]]) ** 2).sum(axis=1))[1:4]
    assert not set(batch[1:].tolist()) <= set(nearest.tolist())


def test_failed_evaluations_are_left_out_and_names_are_checked():
    layouts, score, baselines = landscape(3)
    scores = score[baselines].copy()
    scores[0] = np.nan
    order = Strategy("paper").rank(layouts, baselines, scores, np.array([], np.int64), 8, 1,
                                   np.random.default_rng(0))
    assert order.size == N_POINTS - 8
    with pytest.raises(ValueError, match="unknown strategy"):
        Strategy("bayes")
    with pytest.raises(ValueError, match="layouts"):
        Strategy("ensemble").rank(layouts[:2], baselines, scores, np.array([], np.int64), 8, 1,
                                  np.random.default_rng(0))


def test_rank_classes_maps_class_ids_and_is_reproducible():
    layouts, score, baselines = landscape(4)
    ids = np.arange(N_POINTS) * 3 + 100
    scores = {int(ids[b]): float(score[b]) for b in baselines}
    points = layouts[0]
    first = rank_classes(Strategy(), ids, layouts, scores, [int(ids[9])], 8, 2, 42, points)
    assert first == rank_classes(Strategy(), ids, layouts, scores, [int(ids[9])], 8, 2, 42, points)
    assert set(first) <= set(ids.tolist()) and int(ids[9]) not in first
    assert not set(scores) & set(first)


def test_the_default_is_the_papers_strategy_everywhere():
    import inspect

    import aquasurf_fast as aq
    from aquasurf_fast.cli.commands import build_parser

    assert DEFAULT_STRATEGY == "paper"  # chosen by the leave-one-out rule (bench.default_rule)
    assert set(STRATEGY_NAMES) == {"adaptive", "ensemble", "hybrid", "paper", "random"}
    assert Strategy().name == DEFAULT_STRATEGY
    args = build_parser().parse_args(["quickstart", "q.db"])
    assert args.strategy is None  # a new study takes the default
    from aquasurf_fast.bench.replay import REPLAY_ORDER, STRATEGIES

    replayed = build_parser().parse_args(["bench", "replay", "b.json"]).strategies.split(",")
    assert replayed[0] == REPLAY_ORDER[0] == DEFAULT_STRATEGY  # the default's row comes first
    assert sorted(replayed) == sorted(STRATEGIES)
    pytest.importorskip("optuna")
    from aquasurf_fast.optuna import AquaSurfSampler

    assert inspect.signature(AquaSurfSampler).parameters["strategy"].default == DEFAULT_STRATEGY
    assert inspect.signature(aq.Study).parameters["strategy"].default is None
