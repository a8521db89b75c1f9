import numpy as np
import pytest

from aquasurf_fast.surrogate import Surrogate, embedding_key


def features(n, seed=0, d_out=1000, d_fisher=30):
    rng = np.random.default_rng(seed)
    out = rng.normal(size=(n, d_out)).astype(np.float32)
    fisher = np.sort(rng.random((n, d_fisher)), axis=1).astype(np.float32)
    return out, fisher


def test_same_seed_gives_same_embedding_and_predictions():
    out, fisher = features(30)
    a = Surrogate(random_state=42).fit(out, fisher, [0, 1, 2, 3], [0.1, 0.5, 0.9, 0.3])
    b = Surrogate(random_state=42).fit(out, fisher, [0, 1, 2, 3], [0.1, 0.5, 0.9, 0.3])
    assert a.embedding_.shape == (30, 2)
    np.testing.assert_array_equal(a.embedding_, b.embedding_)
    np.testing.assert_array_equal(a.predict(), b.predict())


def test_other_seed_is_deterministic_too():
    out, fisher = features(30)
    a = Surrogate(random_state=7).fit(out, fisher, [0, 1], [0.0, 1.0])
    b = Surrogate(random_state=7).fit(out, fisher, [0, 1], [0.0, 1.0])
    np.testing.assert_array_equal(a.embedding_, b.embedding_)


def test_embedding_is_cached_per_candidate_set():
    out, fisher = features(30)
    s = Surrogate()
    s.fit(out, fisher, [0, 1], [0.2, 0.4])
    first = s.embedding_
    s.cache[s.embedding_key_] = first + 100.0  # a refit would not reproduce this
    s.fit(out, fisher, [0, 1, 2], [0.2, 0.4, 0.6])
    np.testing.assert_array_equal(s.embedding_, first + 100.0)
    changed = out.copy()
    changed[0, 0] += 1.0
    assert embedding_key(changed, fisher, 42) != s.embedding_key_


def test_knn_predicts_mean_of_three_nearest():
    out, fisher = features(30)
    s = Surrogate().fit(out, fisher, np.arange(10), np.linspace(0, 1, 10))
    emb, pred = s.embedding_, s.predict()
    d = np.linalg.norm(emb[:10] - emb[20], axis=1)
    assert pred[20] == pytest.approx(np.linspace(0, 1, 10)[np.argsort(d)[:3]].mean())


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 6])
def test_tiny_candidate_sets_never_crash(n):
    out, fisher = features(n)
    k = min(n, 2)
    s = Surrogate().fit(out, fisher, np.arange(k), np.arange(k, dtype=float))
    assert s.embedding_.shape == (n, 2)
    assert s.predict().shape == (n,)


def test_no_scores_gives_nan_and_one_score_a_constant():
    out, fisher = features(8)
    assert np.isnan(Surrogate().fit(out, fisher, [], []).predict()).all()
    np.testing.assert_array_equal(Surrogate().fit(out, fisher, [3], [0.7]).predict(), 0.7)


def test_nonfinite_scores_are_left_out():
    out, fisher = features(8)
    s = Surrogate().fit(out, fisher, [0, 1, 2], [0.5, np.nan, 0.9])
    assert s.n_train_ == 2


@pytest.mark.parametrize("regressor", ["rf", "svr"])
def test_named_regressors(regressor):
    out, fisher = features(12)
    pred = Surrogate(regressor).fit(out, fisher, np.arange(6), np.linspace(0, 1, 6)).predict()
    assert np.isfinite(pred).all()


def test_regressor_instance_is_cloned_not_fitted():
    from sklearn.linear_model import Ridge

    out, fisher = features(12)
    ridge = Ridge()
    Surrogate(ridge).fit(out, fisher, np.arange(6), np.linspace(0, 1, 6))
    assert not hasattr(ridge, "coef_")


def test_output_features_alone():
    out, _ = features(12)
    assert Surrogate().fit(out, None, [0, 1], [0.0, 1.0]).embedding_.shape == (12, 2)


def test_bad_input_is_refused_clearly():
    out, fisher = features(8)
    with pytest.raises(ValueError, match="one row per candidate"):
        Surrogate().fit(out, fisher[:5], [0], [1.0])
    bad = out.copy()
    bad[2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        Surrogate().fit(bad, fisher, [0], [1.0])
    with pytest.raises(ValueError, match="unknown regressor"):
        Surrogate("tree").fit(out, fisher, [0, 1], [0.0, 1.0])
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        Surrogate().fit(out, fisher, [9], [1.0])
