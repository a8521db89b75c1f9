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


def test_other_seed_is_deterministic_too_and_gives_another_layout():
    out, fisher = features(30)
    a = Surrogate(random_state=7).fit(out, fisher, [0, 1], [0.0, 1.0])
    b = Surrogate(random_state=7).fit(out, fisher, [0, 1], [0.0, 1.0])
    np.testing.assert_array_equal(a.embedding_, b.embedding_)
    other = Surrogate(random_state=8).fit(out, fisher, [0, 1], [0.0, 1.0])
    assert other.embedding_key_ != a.embedding_key_
    assert np.abs(other.embedding_ - a.embedding_).max() > 1e-3  # the seed reaches UMAP


def test_a_changed_candidate_set_is_laid_out_again():
    out, fisher = features(30)
    cache = {}
    s = Surrogate(cache=cache)
    first = s.fit(out, fisher, [0, 1], [0.2, 0.4]).embedding_.copy()
    assert s.embed_seconds_ is not None  # computed
    s.fit(out.copy(), fisher.copy(), [0, 1, 2], [0.2, 0.4, 0.6])
    assert s.embed_seconds_ is None  # equal features (other arrays): from the cache
    np.testing.assert_array_equal(s.embedding_, first)
    changed = out.copy()
    changed[0] += 3.0
    s.fit(changed, fisher, [0, 1], [0.2, 0.4])
    assert s.embed_seconds_ is not None and len(cache) == 2
    assert s.embedding_.shape == (30, 2) and not np.array_equal(s.embedding_, first)


def test_embedding_is_cached_per_candidate_set():
    out, fisher = features(30)
    cache = {}
    s = Surrogate(cache=cache)
    s.fit(out, fisher, [0, 1], [0.2, 0.4])
    first = s.embedding_
    cache[s.embedding_key_] = first + 100.0  # a refit would not reproduce this
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


@pytest.mark.parametrize("regressor", ["knn", "rf", "svr"])
def test_named_regressors_learn_a_known_function_of_the_layout(regressor):
    out, fisher = features(60)
    cache = {}
    emb = Surrogate(cache=cache).fit(out, fisher, [], []).embedding_.astype(np.float64)
    # Scores that are a smooth function of where a candidate lies: any regressor of the layout
    # should predict the unevaluated ones far better than their mean does.
    target = np.sin(emb[:, 0]) + emb[:, 1]
    target = (target - target.min()) / np.ptp(target)
    train, test = np.arange(40), np.arange(40, 60)
    pred = Surrogate(regressor, cache=cache).fit(out, fisher, train, target[train]).predict()
    error = np.abs(pred[test] - target[test]).mean()
    baseline = np.abs(target[train].mean() - target[test]).mean()
    assert error < 0.08 and error < baseline / 2, (error, baseline)
    assert np.corrcoef(pred[test], target[test])[0, 1] > 0.9


def test_regressor_instance_is_cloned_not_fitted():
    from sklearn.linear_model import Ridge

    out, fisher = features(12)
    ridge = Ridge()
    Surrogate(ridge).fit(out, fisher, np.arange(6), np.linspace(0, 1, 6))
    assert not hasattr(ridge, "coef_")


def test_constructor_parameters_are_never_changed_and_fit_returns_self():
    from sklearn.linear_model import Ridge

    out, fisher = features(12)
    ridge = Ridge()
    s = Surrogate(ridge, random_state=3)
    given = dict(vars(s))
    assert s.fit(out, fisher, np.arange(6), np.linspace(0, 1, 6)) is s
    s.embed(out, fisher)
    assert [k for k, v in given.items() if vars(s)[k] is not v] == []
    assert s.cache is None  # the embedding went to the surrogate's own memory, not a new mapping
    fitted = {k for k in vars(s) if k.endswith("_") and not k.startswith("_")}
    assert fitted >= {"embedding_", "embedding_key_", "regressor_", "n_train_", "predictions_"}
    assert not {k for k in given if k.endswith("_") and not k.startswith("_")}


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


def test_umap_compiled_functions_are_kept_on_disk_for_the_next_process(tmp_path):
    """A fresh process that lays out candidates leaves umap-learn's compiled graph and layout
    functions in numba's cache, so that the next process loads them instead of compiling."""
    import os
    import subprocess
    import sys

    script = ("import numpy as np\n"
              "from aquasurf_fast.surrogate.embedding import compute_layouts\n"
              "x = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)\n"
              "compute_layouts(x, None, [0])\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=600)
    kept = {p.name.split(".")[0] for p in tmp_path.rglob("*.nbi")}
    # The fuzzy graph's and the layout's own functions, which umap-learn compiles uncached.
    assert {"umap_", "layouts"} <= kept, sorted(kept)


def test_pairwise_distances_are_compiled_once_per_machine_and_every_later_process_reads_them(tmp_path):
    """Three fresh processes share numba's cache: the first compiles and writes it, the later ones
    read it (one cache hit per metric, no new compilation) and none fails writing it back."""
    import os
    import subprocess
    import sys

    script = ("import gc, numpy as np\n"
              "from aquasurf_fast.surrogate.pairwise import _cached_pairs, pairwise\n"
              "x = np.random.default_rng(0).normal(size=(30, 5)).astype(np.float32)\n"
              "pairwise(x, 'euclidean'); gc.collect(); pairwise(x, 'manhattan'); gc.collect()\n"
              "print(sum(_cached_pairs.stats.cache_hits.values()),"
              " sum(_cached_pairs.stats.cache_misses.values()))\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                           timeout=600) for _ in range(3)]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr[-2000:]
    assert [r.stdout.split() for r in runs] == [["0", "1"], ["1", "0"], ["1", "0"]]


def test_pairwise_refuses_a_metric_it_was_not_compiled_for():
    from aquasurf_fast.surrogate.pairwise import pairwise

    with pytest.raises(ValueError, match="euclidean and manhattan, not 'cosine'"):
        pairwise(np.ones((3, 2), dtype=np.float32), "cosine")


@pytest.mark.parametrize("metric", ["euclidean", "manhattan"])
def test_pairwise_distances_match_a_float64_reference(metric):
    from scipy.spatial.distance import cdist

    from aquasurf_fast.surrogate.pairwise import pairwise

    rng = np.random.default_rng(3)
    x = (rng.normal(size=(57, 33)) * np.logspace(-3, 3, 33)).astype(np.float32)
    x[5] = x[9]  # a duplicate row: distance exactly 0
    got = pairwise(x[::1], metric)
    want = cdist(x.astype(np.float64), x.astype(np.float64),
                 "cityblock" if metric == "manhattan" else metric)
    assert got.dtype == np.float32 and got.shape == (57, 57)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6 * want.max())
    assert got[5, 9] == 0 and np.all(np.diag(got) == 0) and np.array_equal(got, got.T)


def test_pairwise_takes_non_contiguous_rows():
    from aquasurf_fast.surrogate.pairwise import pairwise

    x = np.random.default_rng(4).normal(size=(20, 12)).astype(np.float32)
    np.testing.assert_array_equal(pairwise(x[:, ::2], "euclidean"),
                                  pairwise(np.ascontiguousarray(x[:, ::2]), "euclidean"))


@pytest.mark.parametrize("n, huge", [(7, False), (300, False), (30, True)])
def test_fuzzy_graphs_are_those_of_umap_learns_own_distances(n, huge):
    """The precomputed distances give umap-learn's graph bit for bit, for both feature sets."""
    import warnings

    import umap

    from aquasurf_fast.surrogate import embedding

    rng = np.random.default_rng(n)
    out = np.tanh(rng.normal(size=(n, 200)) * 2).astype(np.float32)
    out[1] = out[2]  # tied neighbours
    if huge:  # distances from row 3 overflow float32
        out[3, :4] = np.finfo(np.float32).max / 2
    fisher = np.sort(rng.random((n, 91)), axis=1).astype(np.float32)
    parts = embedding._feature_sets(out, fisher)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = [umap.UMAP(n_neighbors=min(k, n - 1), metric=m, random_state=5,
                          transform_mode="graph").fit(f).graph_ for f, k, m in parts]
    got = [model.graph_ for model in embedding._fuzzy_graphs(umap, parts, n, 5)]
    for g, w in zip(got, want):
        assert g.shape == w.shape and (g != w).nnz == 0
