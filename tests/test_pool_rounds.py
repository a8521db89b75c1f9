"""Top-up rounds of the Fisher pool continue one farthest-point run instead of starting again:
the same classes join, with fewer runs."""
import numpy as np

import aquasurf_fast as aq
from aquasurf_fast.study import fisher_pool as study_pool
from sql_helpers import sql


def fail_half_of_the_pool(study) -> None:
    """Mark every other pool class without Fisher features as failed, as featurize would."""
    ids = [i for i, in sql(study, "SELECT id FROM classes WHERE pool IS NOT NULL AND "
                                         "fisher_ok IS NULL AND baseline = 0 ORDER BY id")][::2]
    study.store.set_fisher_features(ids, np.zeros((len(ids), 4), dtype=np.float32),
                                    [False] * len(ids), ["overflow"] * len(ids))


def pool_rounds(path, monkeypatch, fresh_each_round: bool):
    """The classes of each of four rounds of choose_pool(60), and how many runs chose them."""
    runs = []
    real = study_pool.choose_pool
    monkeypatch.setattr(study_pool, "choose_pool", lambda *a, **k: runs.append(1) or real(*a, **k))
    study = aq.Study(str(path), baselines=["relu", "tanh"])
    study.add_schema("binary(unary(x),unary(x))", unary=aq.BENCHMARK_UNARY_OPS)
    rounds = []
    for _ in range(4):
        if fresh_each_round:
            study.pool._farthest_memo = None
        study.pool.choose_pool(60)
        rounds.append(sorted(i for i, in sql(study, 
            "SELECT id FROM classes WHERE pool = (SELECT max(pool) FROM classes)")))
        fail_half_of_the_pool(study)
    return rounds, len(runs)


def test_top_up_rounds_choose_what_fresh_runs_choose(tmp_path, monkeypatch):
    continued, n_continued = pool_rounds(tmp_path / "a.db", monkeypatch, fresh_each_round=False)
    fresh, n_fresh = pool_rounds(tmp_path / "b.db", monkeypatch, fresh_each_round=True)
    assert continued == fresh
    assert [len(r) for r in fresh] == [62, 30, 30, 30]  # 60 and the baselines, then the failures
    assert n_fresh == 4 and n_continued == 2  # the second run serves the last three rounds


def test_coordinates_are_read_again_when_a_class_gets_them(tmp_path):
    study = aq.Study(str(tmp_path / "s.db"), baselines=["relu"])
    study.add_schema("binary(unary(x),unary(x))", unary=aq.BENCHMARK_UNARY_OPS)
    n = len(study.store.projections()[0])
    study.add_classes([["tanh(tanh(tanh(x)))"]])  # no features yet: no coordinates
    assert len(study.store.projections()[0]) == n
    study.pool.fill_output_features("space_id IS NULL")
    study.pool._ensure_projections()
    ids, coords, _ = study.store.projections()
    assert len(ids) == n + 1 and np.isfinite(coords).all()
