"""A replayed search is the search a study runs: given the study's candidates, layouts and
scores, ``bench.replay.search_order`` picks the same sequence as ``Study.suggest`` with the scores
looked up, for every strategy, with one worker and with four."""
from collections import deque

import numpy as np
import pytest

from aquasurf_fast.bench.replay import search_order
from aquasurf_fast.surrogate.strategy import STRATEGY_NAMES

from search_helpers import fake_score, make_study

BUDGET = 30
RANDOM_STATE = 7


def study_sequence(study, workers: int):
    """Class names in the order a study suggests them when ``workers`` trainings of equal length
    run at once: each suggestion is made with the ``workers - 1`` before it still training."""
    running, order = deque(), []
    while len(order) < BUDGET:
        if len(running) == workers:
            name = running.popleft()
            study.tell(name, fake_score(name))
        (claim,) = study.suggest(1)
        running.append(str(claim))
        order.append(str(claim))
    return order


def replay_inputs(study):
    """What the study's strategy ranks by, as a replay takes it: (class names in candidate order,
    layouts, output points, baseline positions)."""
    ranker = study.ranker
    strategy = ranker.strategy()
    ids, layouts = ranker.strategy_layouts(strategy)
    by_id = study.store.names_by_id(ids.tolist())
    names = [by_id[c] for c in ids.tolist()]
    points = ranker.output_points() if strategy.needs_points else None
    pos = {int(c): i for i, c in enumerate(ids.tolist())}
    baselines = [pos[c] for c in ranker.baseline_ids() if c in pos]
    return strategy, names, (layouts if strategy.n_layouts else None), points, baselines


@pytest.mark.parametrize("name", STRATEGY_NAMES)
@pytest.mark.parametrize("workers", [1, 4])
def test_a_replayed_search_picks_what_a_study_picks(tmp_path, name, workers):
    study = make_study(tmp_path / "s.db", n_extra=40, strategy=name, random_state=RANDOM_STATE)
    expected = study_sequence(study, workers)
    strategy, names, layouts, points, baselines = replay_inputs(study)
    val = np.array([fake_score(n) for n in names])
    order = search_order(strategy, layouts, points, val, baselines, BUDGET, workers, RANDOM_STATE)
    assert [names[i] for i in order] == expected
    assert len(set(expected)) == BUDGET
