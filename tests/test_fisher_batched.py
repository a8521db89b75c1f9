"""Many candidates per pass (fisher.batched, fisher.stacked): the same features, validity and
reasons as one candidate at a time, bit for bit on the CPU; models that mix the samples of a batch
run one at a time with a note in the log."""
import logging
import threading

import numpy as np
import pytest
import torch
import torch.nn as nn

import aquasurf_fast as aq
from aquasurf_fast.fisher import batched
from aquasurf_fast.fisher.stacked import NotStackable, StackedActivation, mixing_reason, per_sample_proof
from aquasurf_fast.nn import Activation
from aquasurf_fast.tasks import load_task
from aquasurf_fast.tasks.models import ViT, mlp
from test_fisher import SPECTRUM_MODELS
from test_fisher_attention import TokenTransformer
from sql_helpers import sql

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# Valid candidates, one whose activations overflow (a FisherError), one that is no function.
NAMES = ["relu(x)", "tanh(x)", "max(relu(x),cosh(elu(x)))", "div(x,zero(x))", "mul(sigmoid(x),identity(x))",
         "not_a_function(x)", "sub(sinh(x),one(x))", "exp(exp(exp(x)))", "softsign(x)"]
FALLBACK_NOTE = "one candidate at a time"


def with_activation(make):
    """A builder that puts the activation where the test model has nn.Tanh."""
    def build(act):
        model = make()
        for i, child in enumerate(model):
            if isinstance(child, nn.Tanh):
                model[i] = act
        return model
    return build


def assert_same_as_one_at_a_time(build, x, y, caplog, per_pass="auto", device="cpu", stacks=True, **kw):
    with caplog.at_level(logging.INFO, logger=batched.__name__):
        caplog.clear()
        got = aq.fisher_features_for(build, NAMES, x, y, progress=False, device=device,
                                     candidates_per_pass=per_pass, **kw)
        notes = [r.getMessage() for r in caplog.records if FALLBACK_NOTE in r.getMessage()]
    want = aq.fisher_features_for(build, NAMES, x, y, progress=False, device=device, candidates_per_pass=1, **kw)
    assert got[2] == want[2]
    np.testing.assert_array_equal(got[1], want[1])
    if torch.device(device).type == "cpu":
        np.testing.assert_array_equal(got[0], want[0])  # NaN rows equal too
    else:
        # A GPU's kernels may round differently at another batch size (fisher.batched): a pair
        # of eigenvalues may then cross a bin edge, moving a CDF value by 1 / (pairs of the layer).
        np.testing.assert_allclose(got[0], want[0], rtol=0, atol=2e-3)
    assert want[1].sum() >= 4
    assert (not notes) == stacks, notes
    return notes


@pytest.mark.parametrize("task", ["mnist1d", "digits"])
def test_built_in_tasks_give_the_same_features(task, caplog):
    task = load_task(task)
    x, y = task.fisher_batch()
    assert_same_as_one_at_a_time(task.build, x, y, caplog, per_pass=3)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", list(SPECTRUM_MODELS))
def test_fisher_test_models_give_the_same_features(case, device, caplog):
    make, shape = SPECTRUM_MODELS[case]
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(12, *shape, generator=gen), torch.randint(0, 10, (12,), generator=gen)
    assert_same_as_one_at_a_time(with_activation(make), x, y, caplog, device=device)


def test_linear_on_tokens_and_sampled_labels_give_the_same_features(caplog):
    def build(act):
        return nn.Sequential(nn.Linear(6, 30), act, nn.Linear(30, 40), act, nn.Flatten(), nn.Linear(5 * 40, 4))

    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(10, 5, 6, generator=gen), torch.randint(0, 4, (10,), generator=gen)
    assert_same_as_one_at_a_time(build, x, y, caplog, per_pass=4, labels="sampled", seed=5)


def test_a_vit_is_checked_against_candidates_alone_and_stacks(caplog):
    build = lambda act: ViT(act, n_classes=10, image=8, patch=4, dim=16, depth=2, heads=2, mlp_dim=24)  # noqa: E731
    gen = torch.Generator().manual_seed(7)
    x, y = torch.randn(6, 3, 8, 8, generator=gen), torch.randint(0, 10, (6,), generator=gen)
    assert not per_sample_proof(build(nn.GELU()))
    with pytest.warns(UserWarning, match="skips weighted layers"):
        assert_same_as_one_at_a_time(build, x, y, caplog)


def test_a_sequence_first_transformer_runs_one_at_a_time(caplog):
    build = lambda act: TokenTransformer(act, batch_first=False)  # noqa: E731
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(8, 6, 48, generator=gen), torch.randint(0, 10, (8,), generator=gen)
    with pytest.warns(UserWarning, match="skips weighted layers"):
        notes = assert_same_as_one_at_a_time(build, x, y, caplog, stacks=False)
    assert "NotStackable" in notes[0]


def test_batchnorm_in_training_mode_runs_one_at_a_time(caplog):
    def build(act):
        return nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), act, nn.Linear(32, 10))

    assert "BatchNorm1d normalizes over the batch" in mixing_reason(build(nn.ReLU()))
    assert mixing_reason(build(nn.ReLU()).eval()) is None
    gen = torch.Generator().manual_seed(4)
    x, y = torch.randn(16, 8, generator=gen), torch.randint(0, 10, (16,), generator=gen)
    with pytest.warns(UserWarning, match="BatchNorm1d"):
        notes = assert_same_as_one_at_a_time(build, x, y, caplog, stacks=False)
    assert "'1' (BatchNorm1d" in notes[0] or "1 (BatchNorm1d" in notes[0]


def test_dropout_in_training_mode_runs_one_at_a_time(caplog):
    def build(act):
        return nn.Sequential(nn.Linear(8, 300), act, nn.Dropout(0.3), nn.Linear(300, 10))

    gen = torch.Generator().manual_seed(4)
    x, y = torch.randn(16, 8, generator=gen), torch.randint(0, 10, (16,), generator=gen)
    notes = assert_same_as_one_at_a_time(build, x, y, caplog, stacks=False)
    assert "Dropout in training mode" in notes[0]


class BatchCentered(nn.Module):
    """Subtracts the batch mean: mixes samples in a forward no module type reveals."""

    def __init__(self, act):
        super().__init__()
        self.inp, self.act, self.out = nn.Linear(8, 300), act, nn.Linear(300, 10)

    def forward(self, x):
        h = self.act(self.inp(x))
        return self.out(h - h.mean(0))


def test_a_custom_forward_that_mixes_samples_is_caught_by_the_check(caplog):
    gen = torch.Generator().manual_seed(4)
    x, y = torch.randn(16, 8, generator=gen), torch.randint(0, 10, (16,), generator=gen)
    notes = assert_same_as_one_at_a_time(BatchCentered, x, y, caplog, stacks=False)
    assert "gives other eigenvalues in a stacked pass than alone" in notes[0]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_stacked_activation_applies_each_candidate_to_its_slice(dtype):
    acts = [Activation("relu(x)"), Activation("tanh(x)", normalize=True), Activation("exp(x)")]
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(3 * 4, 5, 2, generator=gen).to(dtype).transpose(1, 2).requires_grad_(True)
    y = StackedActivation(acts, 4)(x)
    assert y.dtype == dtype and y.shape == x.shape
    weights = torch.randn(y.shape, generator=gen).to(dtype)  # a gradient that differs by element
    y.backward(weights)
    for k, act in enumerate(acts):
        rows = slice(4 * k, 4 * (k + 1))
        xk = x.detach()[rows].clone().requires_grad_(True)
        yk = act(xk)
        yk.backward(weights[rows])
        assert torch.equal(y[rows], yk) and torch.equal(x.grad[rows], xk.grad)
    with pytest.raises(NotStackable, match="dimension 0"):
        StackedActivation(acts, 4)(torch.randn(5, 12))


def test_candidates_per_pass_follows_memory_and_is_checked():
    assert batched.candidates_per_pass(1e6, "cpu", budget=10 ** 7) == 10
    assert batched.candidates_per_pass(1e9, "cpu", budget=10 ** 7) == 1
    assert batched.candidates_per_pass(1.0, "cpu") == batched.MAX_CANDIDATES_PER_PASS
    build = lambda act: mlp(act, (8, 300, 10))  # noqa: E731
    with pytest.raises(ValueError, match="candidates_per_pass must be"):
        aq.fisher_features_for(build, NAMES, torch.randn(4, 8), torch.zeros(4, dtype=torch.long),
                               progress=False, candidates_per_pass=0)


class ThreadsSeen:
    """A loss that records torch's and the BLAS pools' thread counts whenever a pass calls it."""

    def __init__(self):
        self.seen = []

    def __call__(self, outputs, targets):
        threadpoolctl = pytest.importorskip("threadpoolctl")
        pools = {info["num_threads"] for info in threadpoolctl.threadpool_info()}
        self.seen.append((torch.get_num_threads(), pools))
        return nn.functional.cross_entropy(outputs, targets)


def test_the_thread_policy_holds_inside_concurrent_passes():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        task = load_task("mnist1d")
        x, y = task.fisher_batch()
        loss = ThreadsSeen()
        _, ok, _ = aq.fisher_features_for(task.build, NAMES * 2, x[:32], y[:32], loss=loss, progress=False,
                                          candidates_per_pass=2)
        assert ok.sum() >= 6 and len(loss.seen) >= ok.sum()
        assert all(seen == (1, {1}) for seen in loss.seen), loss.seen
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_passes_one_at_a_time_run_on_the_calling_thread():
    """threads=None keeps torch's threads, so the passes run one after another; on a worker thread
    each would start an OpenMP team beside the caller's, on the same cores."""
    task = load_task("mnist1d")
    x, y = task.fisher_batch()
    threads = []

    def loss(outputs, targets):
        threads.append(threading.current_thread())
        return nn.functional.cross_entropy(outputs, targets)

    _, ok, _ = aq.fisher_features_for(task.build, NAMES * 2, x[:32], y[:32], loss=loss, progress=False,
                                      threads=None, candidates_per_pass=2)
    assert ok.sum() >= 6 and len(threads) >= ok.sum()
    assert set(threads) == {threading.main_thread()}


def test_a_search_that_grows_featurizes_through_the_batched_path(tmp_path, monkeypatch):
    from bench_helpers import FAKE_TASK

    task = tmp_path / "task.py"
    task.write_text(FAKE_TASK)
    passed = []
    real = batched.features_in_passes

    def spy(build, names, *args, **kwargs):
        passed.extend(names)
        return real(build, names, *args, **kwargs)

    monkeypatch.setattr(batched, "features_in_passes", spy)
    study = aq.Study(str(tmp_path / "s.db"), task=str(task), strategy="random")  # no UMAP: a fast test
    study.add_schema("binary(unary(x),unary(x))", unary=("zero", "identity", "tanh", "relu", "elu", "sigmoid",
                                                         "softplus", "arctan", "swish"))
    study.featurize(pool=12, progress=False)
    n_initial = len(passed)
    stats = study.run(budget=10, workers=0, progress=False, grow=4, grow_every=3)
    assert n_initial >= 12 and stats["grown"] >= 4
    grown = sql(study, "SELECT canonical FROM classes WHERE pool IS NOT NULL AND fisher_ok = 1")
    assert len(passed) - n_initial >= 4 and {n for (n,) in grown} <= set(passed)
