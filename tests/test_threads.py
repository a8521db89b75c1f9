"""The thread policy: thread_limit's settings inside and after a block, and the Fisher featurization
running under it with the same results."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from aquasurf_fast.runtime.threads import thread_limit
from aquasurf_fast.fisher import shared
from aquasurf_fast.fisher import spectrum as fz
from aquasurf_fast.fisher.candidates import fisher_features_for
from aquasurf_fast.study.featurize import FisherChunkJob
from aquasurf_fast.tasks import mnist1d
from aquasurf_fast.testing import fisher_reference as ref

NAMES = ["relu(x)", "tanh(x)", "sub(sinh(x),one(x))", "mul(sigmoid(x),identity(x))"]


@pytest.fixture
def two_threads():
    """torch on two threads for the test (restored after it), so that a limit to one shows."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def pool_threads():
    """Threads of every BLAS and OpenMP pool threadpoolctl sees, by library path."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    return {info["filepath"]: info["num_threads"] for info in threadpoolctl.threadpool_info()}


def mnist1d_batch():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(64, 1, 40, generator=gen), torch.randint(0, 10, (64,), generator=gen)


class ThreadsSeen:
    """A loss that records torch's thread count each time the Fisher pass calls it."""

    def __init__(self):
        self.seen = []

    def __call__(self, outputs, targets):
        self.seen.append(torch.get_num_threads())
        return nn.functional.cross_entropy(outputs, targets)


def test_torch_runs_one_thread_inside_the_block(two_threads):
    with thread_limit(1):
        assert torch.get_num_threads() == 1


def test_blas_and_openmp_pools_run_one_thread_inside_the_block(two_threads):
    pool_threads()  # skips without threadpoolctl
    with thread_limit(1):
        inside = pool_threads()
    assert inside and set(inside.values()) == {1}


def test_settings_are_restored_after_the_block(two_threads):
    pools = pool_threads()
    with thread_limit(1):
        pass
    assert torch.get_num_threads() == 2
    assert pool_threads() == pools


def test_settings_are_restored_after_an_exception(two_threads):
    pools = pool_threads()
    with pytest.raises(KeyError):
        with thread_limit(1):
            raise KeyError("inside")
    assert torch.get_num_threads() == 2
    assert pool_threads() == pools


def test_a_nested_wider_limit_keeps_the_outer_one(two_threads):
    with thread_limit(1):
        with thread_limit(2):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_a_limit_below_one_thread_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        with thread_limit(0):
            pass


def test_small_models_featurize_on_one_thread(two_threads):
    x, y = mnist1d_batch()
    loss = ThreadsSeen()
    _, ok, _ = fisher_features_for(mnist1d.build, NAMES, x, y, loss=loss, progress=False)
    assert ok.all() and loss.seen == [1] * len(NAMES)
    assert torch.get_num_threads() == 2


def test_large_models_keep_the_callers_threads_under_auto(two_threads, monkeypatch):
    monkeypatch.setattr(shared, "SINGLE_THREAD_MAX_WEIGHTS", 1000)  # mnist1d's model has 9.6k
    x, y = mnist1d_batch()
    loss = ThreadsSeen()
    fz.fisher_spectrum(mnist1d.build(nn.Tanh()), x, y, loss=loss)
    assert loss.seen == [2]


def test_an_explicit_thread_count_holds_for_any_model(two_threads, monkeypatch):
    monkeypatch.setattr(shared, "SINGLE_THREAD_MAX_WEIGHTS", 1000)
    x, y = mnist1d_batch()
    loss = ThreadsSeen()
    fz.fisher_spectrum(mnist1d.build(nn.Tanh()), x, y, loss=loss, threads=1)
    assert loss.seen == [1] and torch.get_num_threads() == 2


def test_an_invalid_thread_count_is_refused_before_any_work():
    x, y = mnist1d_batch()
    with pytest.raises(ValueError, match="threads must be"):
        fisher_features_for(mnist1d.build, NAMES, x, y, progress=False, threads=0)


def test_the_study_featurization_job_runs_its_featurizer_on_one_thread(two_threads):
    def featurizer(build, names, inputs, targets, seed, device, progress):
        seen = (torch.get_num_threads(), pool_threads())
        return seen, None, None

    x, y = mnist1d_batch()
    job = FisherChunkJob(build=mnist1d.build, inputs=x, targets=y, featurizer=featurizer)
    torch_threads, pools = job.features(" ".join(NAMES))[0]
    assert torch_threads == 1 and set(pools.values()) == {1}
    assert torch.get_num_threads() == 2


def test_features_are_identical_with_and_without_the_policy(two_threads):
    x, y = mnist1d_batch()
    free, ok_free, _ = fisher_features_for(mnist1d.build, NAMES, x, y, progress=False, threads=None)
    limited, ok_limited, _ = fisher_features_for(mnist1d.build, NAMES, x, y, progress=False, threads=1)
    assert ok_free.all() and ok_limited.all()
    np.testing.assert_array_equal(limited, free)


def test_spectrum_on_one_thread_matches_the_float64_definition():
    x, y = mnist1d_batch()
    torch.manual_seed(3)
    model = mnist1d.build(nn.Tanh())
    spec = fz.fisher_spectrum(model, x, y, threads=1)
    refs = ref.layer_factors_reference(model, x, y)
    assert [layer.name for layer in spec.layers] == [r[0] for r in refs]
    for layer, (_, a_ref, g_ref) in zip(spec.layers, refs):
        for got, fac in ((layer.eig_A, a_ref), (layer.eig_G, g_ref)):
            want = ref.eigvals_reference(fac)
            big = want > 1e-6 * want.max()
            np.testing.assert_allclose(got[big], want[big], rtol=1e-4)


def kernels_on_calling_thread() -> bool:
    """This thread's setting, read by setting it and putting it back."""
    from aquasurf_fast.kernels import set_calling_thread_only

    on = set_calling_thread_only(False)
    set_calling_thread_only(on)
    return on


def test_one_thread_runs_the_fused_kernels_on_the_calling_thread_and_workers(two_threads):
    from aquasurf_fast.runtime.threads import threads_keeping_limit
    from aquasurf_fast.kernels import evaluate

    x = np.linspace(-3, 3, 200_001)  # large enough for the kernels' pool
    pooled = evaluate("mul(tanh(x),exp(x))", x)
    assert not kernels_on_calling_thread()
    with thread_limit(1):
        assert kernels_on_calling_thread()
        np.testing.assert_array_equal(evaluate("mul(tanh(x),exp(x))", x), pooled)
        with threads_keeping_limit(2) as pool:  # threads started inside the block follow it
            assert list(pool.map(lambda _: kernels_on_calling_thread(), range(2))) == [True, True]
    assert not kernels_on_calling_thread()
    with threads_keeping_limit(2) as pool:
        assert list(pool.map(lambda _: kernels_on_calling_thread(), range(2))) == [False, False]
