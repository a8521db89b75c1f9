"""Fisher-spectrum features: factors, eigenvalues, histograms and the per-candidate pipeline."""
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import aquasurf_fast as aq
from aquasurf_fast.fisher import spectrum as fz
from aquasurf_fast.fisher.factors import input_factor
from aquasurf_fast.fisher.shared import eigvalsh
from aquasurf_fast.testing import fisher_reference as ref

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from fisher_models import all_cnn_c, mlp  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# (module factory, input shape without batch)
LAYER_CONFIGS = {
    "conv2d_same_bias": (lambda: nn.Conv2d(4, 6, 3, 1, 1), (4, 9, 10)),
    "conv2d_no_bias": (lambda: nn.Conv2d(4, 6, 3, 1, 1, bias=False), (4, 9, 10)),
    "conv2d_stride2": (lambda: nn.Conv2d(4, 6, 3, 2, 1), (4, 9, 10)),
    "conv2d_stride_2x1_pad0": (lambda: nn.Conv2d(3, 5, (3, 2), (2, 1), 0), (3, 9, 8)),
    "conv2d_same_dilated_even": (lambda: nn.Conv2d(4, 6, (3, 2), 1, "same", dilation=(2, 1)), (4, 9, 10)),
    "conv2d_valid_groups": (lambda: nn.Conv2d(4, 8, 3, 1, "valid", groups=2), (4, 9, 10)),
    "conv2d_depthwise": (lambda: nn.Conv2d(4, 4, 3, 1, 1, groups=4), (4, 9, 10)),
    "conv2d_dilated_pad2": (lambda: nn.Conv2d(3, 5, 3, 1, 2, dilation=2), (3, 9, 10)),
    "conv2d_reflect": (lambda: nn.Conv2d(3, 5, 3, 1, 1, padding_mode="reflect"), (3, 9, 10)),
    "conv2d_1x1": (lambda: nn.Conv2d(3, 5, 1), (3, 9, 10)),
    "conv2d_5x5_stride1": (lambda: nn.Conv2d(2, 3, 5, 1, 2), (2, 12, 11)),
    "conv1d_pad": (lambda: nn.Conv1d(3, 5, 5, 1, 2), (3, 11)),
    "conv1d_same_dilated": (lambda: nn.Conv1d(3, 5, 4, 1, "same", dilation=2), (3, 11)),
    "conv1d_stride3_groups": (lambda: nn.Conv1d(4, 6, 3, 3, 1, groups=2), (4, 13)),
    "conv3d_pad": (lambda: nn.Conv3d(3, 4, 3, 1, 1), (3, 5, 6, 7)),
    "conv3d_strides_dilation_no_bias": (lambda: nn.Conv3d(2, 4, (3, 2, 3), (2, 1, 2), (1, 0, 2), dilation=(1, 2, 1),
                                                          bias=False), (2, 7, 6, 8)),
    "conv3d_same_dilated_groups": (lambda: nn.Conv3d(4, 6, (3, 2, 3), 1, "same", dilation=(2, 1, 1), groups=2),
                                   (4, 6, 5, 6)),
    "conv3d_depthwise_replicate": (lambda: nn.Conv3d(3, 3, 3, 1, 1, groups=3, padding_mode="replicate"), (3, 5, 5, 5)),
    "conv3d_circular_stride": (lambda: nn.Conv3d(2, 3, 2, (1, 2, 1), 1, padding_mode="circular"), (2, 4, 5, 4)),
    "conv3d_1x1x1": (lambda: nn.Conv3d(3, 5, 1), (3, 4, 4, 3)),
    "linear": (lambda: nn.Linear(7, 5), (7,)),
    "linear_no_bias": (lambda: nn.Linear(7, 5, bias=False), (7,)),
    "linear_tokens": (lambda: nn.Linear(6, 4), (5, 6)),
}


def _methods(module):
    stride1 = all(s == 1 for s in getattr(module, "stride", (2,)))
    if isinstance(module, (nn.Conv1d, nn.Conv2d)) and stride1 and module.padding_mode == "zeros":
        return ["im2col", "cells"]
    return ["auto"]


def _cases():
    for name, (make, _) in LAYER_CONFIGS.items():
        for method in _methods(make()):
            yield pytest.param(name, method, id=f"{name}-{method}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("config,method", list(_cases()))
def test_input_factor_matches_definition(config, method, device):
    make, shape = LAYER_CONFIGS[config]
    torch.manual_seed(0)
    module = make().to(device)
    x = torch.randn(16, *shape, device=device)  # 16 rows at least: the full (non-Gram) factor
    factor = input_factor(module, x, x.shape[0], method)
    expected = ref.input_factor_reference(module.cpu(), x.cpu())
    assert factor.mat.shape[-1] == factor.dim, "expected the full factor, got the Gram matrix"
    got = factor.mat.double().cpu() * factor.scale
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=2e-6 * expected.abs().max().item())
    # eigenvalues above 1e-6 of the largest: 1e-4 relative (SPEC precision rule)
    got_ev, want_ev = eigvalsh(factor), ref.eigvals_reference(expected)
    big = want_ev > 1e-6 * want_ev.max()
    np.testing.assert_allclose(got_ev[big], want_ev[big], rtol=1e-4)


CONV_CONFIGS = [name for name, (make, _) in LAYER_CONFIGS.items() if not isinstance(make(), nn.Linear)]


@pytest.mark.parametrize("config", CONV_CONFIGS)
def test_reference_patches_reproduce_the_convolution(config):
    make, shape = LAYER_CONFIGS[config]
    torch.manual_seed(9)
    module = make().double()
    x = torch.randn(3, *shape, dtype=torch.float64)
    patches = ref.conv_patches_reference(module, x)  # [B, L, C * taps]
    groups = module.groups
    w = module.weight.reshape(groups, module.out_channels // groups, -1)  # [groups, out / groups, C / groups * taps]
    rows = patches.reshape(*patches.shape[:2], groups, -1)
    out = torch.einsum("blgi,goi->blgo", rows, w).reshape(*patches.shape[:2], -1)
    if module.bias is not None:
        out = out + module.bias
    want = module(x).detach()
    torch.testing.assert_close(out.transpose(1, 2).reshape(want.shape), want, rtol=1e-12, atol=1e-12)


def test_cell_method_refuses_3d_convolutions():
    module = nn.Conv3d(2, 3, 3, 1, 1)
    with pytest.raises(ValueError, match="cell method needs a 1-D or 2-D stride-1 convolution"):
        input_factor(module, torch.randn(2, 2, 4, 4, 4), 2, "cells")


SPECTRUM_MODELS = {
    "conv2d": (lambda: nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.Tanh(), nn.Conv2d(8, 8, 3, 2, 1, groups=2), nn.Tanh(),
                                     nn.Conv2d(8, 6, 3, 1, 0), nn.Tanh(), nn.Flatten(), nn.Linear(6 * 3 * 3, 10)),
               (3, 10, 10)),
    "conv3d": (lambda: nn.Sequential(nn.Conv3d(2, 6, 3, 1, 1), nn.Tanh(), nn.Conv3d(6, 6, 3, 2, 1, groups=3), nn.Tanh(),
                                     nn.Conv3d(6, 4, (1, 3, 3), 1, 0), nn.Tanh(), nn.Flatten(),
                                     nn.Linear(4 * 3 * 1 * 1, 10)),
               (2, 6, 5, 5)),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", list(SPECTRUM_MODELS))
def test_spectrum_matches_float64_definition(case, device):
    make, shape = SPECTRUM_MODELS[case]
    torch.manual_seed(1)
    model = make().to(device)
    x = torch.randn(12, *shape, device=device)
    y = torch.randint(0, 10, (12,), device=device)
    spec = aq.fisher_spectrum(model, x, y)
    # float64 sums of the same float32 activations and gradients (the forward pass itself is float32)
    refs = ref.layer_factors_reference(model.cpu(), x.cpu(), y.cpu())
    assert [layer.name for layer in spec.layers] == [r[0] for r in refs]
    for layer, (_, a_ref, g_ref) in zip(spec.layers, refs):
        for got, fac in ((layer.eig_A, a_ref), (layer.eig_G, g_ref)):
            want = ref.eigvals_reference(fac)
            assert got.shape == want.shape and got.dtype == np.float64
            big = want > 1e-6 * want.max()
            np.testing.assert_allclose(got[big], want[big], rtol=1e-4)


def test_zero_gradient_rows_are_left_out_without_changing_g():
    # The classifier reads token 0 only: the middle layer's output gradient is zero on the other
    # tokens, so G is built from the 4 live rows (Gram path) but still divided by B * T = 20.
    torch.manual_seed(10)

    class FirstToken(nn.Module):
        def forward(self, x):
            return x[:, 0]

    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), FirstToken(), nn.Linear(8, 3))
    x, y = torch.randn(4, 5, 6), torch.randint(0, 3, (4,))
    spec = aq.fisher_spectrum(model, x, y)
    want = ref.eigvals_reference(ref.layer_factors_reference(model, x, y)[1][2])
    big = want > 1e-6 * want.max()
    np.testing.assert_allclose(spec.layers[1].eig_G[big], want[big], rtol=1e-4)
    assert spec.layers[1].eig_G.shape == (1, 8) and (spec.layers[1].eig_G[0, :4] == 0).all()


def test_gram_path_has_the_nonzero_eigenvalues_of_the_factor():
    torch.manual_seed(2)
    module = nn.Linear(40, 30)
    x = torch.randn(6, 40)  # 6 rows < 41 = dim A
    factor = input_factor(module, x, 6)
    assert factor.mat.shape[-1] == 6
    got = eigvalsh(factor)
    want = ref.eigvals_reference(ref.input_factor_reference(module, x))
    assert got.shape == (1, 41)
    assert (got[:, :35] == 0).all()
    np.testing.assert_allclose(got[0, 35:], want[0, 35:], rtol=1e-4)



@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("layout", ["rows", "transposed view", "strided", "halves", "wide", "empty",
                                    "non-finite"])
def test_symmetric_product_matches_the_float64_definition(dtype, layout):
    from aquasurf_fast.fisher.factors import _gram_triangle

    g = torch.Generator().manual_seed(7)
    # "halves": two column blocks on the CPU (_HALVES_FROM); "wide": blocks of _TRIANGLE_BLOCK
    n, d = {"halves": (300, 97), "wide": (40, 600), "empty": (0, 5)}.get(layout, (300, 24))
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * 3.0
    if layout == "transposed view":
        x = torch.randn(d, n, generator=g, dtype=torch.float64).t()  # [n, d], Fortran order
    elif layout == "strided":
        x = torch.randn(n, 2 * d, generator=g, dtype=torch.float64)[:, ::2]
    elif layout == "non-finite":
        x[3, 1], x[5, 2] = float("nan"), float("inf")
    x = x.to(dtype)
    got = _gram_triangle(x)
    assert got.dtype == dtype and got.shape == (d, d)
    want = x.double().numpy().T @ x.double().numpy()
    if layout == "non-finite":  # what a NaN or an infinity touches is not finite, as in x^T x
        assert np.array_equal(np.isfinite(got.numpy()), np.isfinite(want))
        ok = np.isfinite(want)
        assert ok.sum() == (d - 2) ** 2  # columns 1 and 2 hold the NaN and the infinity
        got, want = got.numpy()[ok], want[ok]
    else:
        got = got.numpy()
        assert np.array_equal(got, got.T)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * (np.abs(want).max(initial=0) + 1))

def test_single_sample_linear_kfac_is_the_exact_fisher_block():
    torch.manual_seed(3)
    layer = nn.Linear(5, 3)
    x, y = torch.randn(1, 5), torch.tensor([2])
    # the per-sample gradient v = vec([b | W]) column-stacked = kron(a, g)
    gb, gw = torch.autograd.grad(F.cross_entropy(layer(x), y), [layer.bias, layer.weight])
    v = torch.cat([gb[:, None], gw], dim=1).t().reshape(-1).double()
    exact = torch.outer(v, v)
    _, a_ref, g_ref = ref.layer_factors_reference(layer, x, y)[0]
    torch.testing.assert_close(torch.kron(a_ref[0], g_ref[0]), exact, rtol=1e-6, atol=1e-12)
    spec = aq.fisher_spectrum(layer, x, y)
    products = np.sort(np.outer(spec.layers[0].eig_A[0], spec.layers[0].eig_G[0]).ravel())
    np.testing.assert_allclose(products[-1], float(v @ v), rtol=1e-5)
    assert np.abs(products[:-1]).max() <= 1e-6 * products[-1]


def test_agrees_with_curvlinops_kfac_expand_empirical():
    curvlinops = pytest.importorskip("curvlinops")
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, 1, 1), nn.ReLU(), nn.Conv2d(6, 4, 3, 2, 0), nn.ReLU(),
                          nn.Flatten(), nn.Linear(4 * 4 * 4, 5))
    b = 9
    x, y = torch.randn(b, 3, 10, 10), torch.randint(0, 5, (b,))
    params = [p for p in model.parameters()]
    op = curvlinops.KFACLinearOperator(model, nn.CrossEntropyLoss(), params, [(x, y)], fisher_type="empirical",
                                       kfac_approx="expand", separate_weight_and_bias=False,
                                       check_deterministic=False)
    op.compute_kronecker_factors()
    spec = aq.fisher_spectrum(model, x, y)
    for layer in spec.layers:
        t = {"0": 10 * 10, "2": 4 * 4, "5": 1}[layer.name]  # output locations per sample
        a_theirs = op._input_covariances[layer.name].double()
        g_theirs = op._gradient_covariances[layer.name].double()
        # curvlinops divides A by B*T (ours by B) and scales G of a mean loss by B / 1 (ours:
        # 1 / (B*T)); its bias entry is last, ours first (same eigenvalues).
        want_a = torch.linalg.eigvalsh(a_theirs * t).numpy()
        want_g = torch.linalg.eigvalsh(g_theirs / (b * b * t)).numpy()
        for got, want in ((layer.eig_A[0], want_a), (layer.eig_G[0], want_g)):
            big = want > 1e-6 * want.max()
            np.testing.assert_allclose(got[big], want[big], rtol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_cumhist_matches_np_histogram_on_materialized_pairs(device):
    from aquasurf_fast import _C
    rng = np.random.default_rng(5)
    for trial in range(30):
        n_groups = int(rng.integers(1, 4))
        sa = [int(rng.integers(0, 40)) for _ in range(n_groups)]
        sg = [int(rng.integers(0, 60)) for _ in range(n_groups)]
        la, lg = rng.normal(0, 40, sum(sa)), rng.normal(0, 40, sum(sg))
        n_edges = int(rng.integers(2, 400))
        edges = np.linspace(-100, 100, n_edges)
        if la.size and lg.size:
            la[0] = edges[n_edges // 2] - lg[0]  # sums on an edge and
            lg[-1] = 150.0 - la[-1]  # beyond the last edge
        sums, oa, og = [], 0, 0
        for a, g in zip(sa, sg):
            sums.append((la[oa:oa + a, None] + lg[None, og:og + g]).ravel())
            oa, og = oa + a, og + g
        want = np.cumsum(np.histogram(np.concatenate(sums), edges)[0])
        t = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
        out = torch.empty(n_edges - 1, dtype=torch.int64, device=device)
        _C.pair_cumhist(t(la), sa, t(lg), sg, t(edges), out)
        np.testing.assert_array_equal(out.cpu().numpy(), want)


@pytest.mark.parametrize("device", DEVICES)
def test_layer_cdf_matches_reference(device):
    rng = np.random.default_rng(6)
    ea = np.abs(rng.lognormal(0, 6, (2, 300))) * (rng.random((2, 300)) > 0.1)
    eg = rng.lognormal(-5, 8, (2, 50))
    want = ref.layer_cdf_reference(ea, eg, 123_456)
    if device == "cpu":
        got = fz.layer_cdf(ea, eg, 123_456)
    else:
        got = fz.layer_cdf(torch.from_numpy(ea).cuda(), torch.from_numpy(eg).cuda(), 123_456)
    assert got.dtype == np.float32 and got.shape == (123_456 // 100 - 1,)
    np.testing.assert_array_equal(got, want)


def test_small_layers_contribute_nothing():
    assert fz.layer_cdf(np.ones((1, 3)), np.ones((1, 3)), 199) is None


def test_all_cnn_c_feature_length_is_13857():
    torch.manual_seed(7)
    model = all_cnn_c(nn.ReLU())
    x, y = torch.randn(2, 3, 32, 32), torch.randint(0, 100, (2,))
    feats = aq.fisher_features(aq.fisher_spectrum(model, x, y))
    assert feats.shape == (13_857,) and feats.dtype == np.float32


def test_sampled_labels_are_reproducible_under_a_seed():
    torch.manual_seed(8)
    model = mlp(nn.Tanh(), (20, 16, 8))
    x, y = torch.randn(32, 20), torch.randint(0, 8, (32,))
    a = aq.fisher_spectrum(model, x, y, labels="sampled", seed=3)
    b = aq.fisher_spectrum(model, x, y, labels="sampled", seed=3)
    c = aq.fisher_spectrum(model, x, y, labels="sampled", seed=4)
    given = aq.fisher_spectrum(model, x, y)
    np.testing.assert_array_equal(a.layers[-1].eig_G, b.layers[-1].eig_G)
    assert not np.array_equal(a.layers[-1].eig_G, c.layers[-1].eig_G)
    assert not np.array_equal(a.layers[-1].eig_G, given.layers[-1].eig_G)


def test_nan_activation_raises_fisher_error():
    class NaNAfterZero(nn.Module):
        def forward(self, x):
            return x / torch.zeros_like(x) * 0  # 0/0 = NaN

    model = nn.Sequential(nn.Linear(4, 8), NaNAfterZero(), nn.Linear(8, 3))
    with pytest.raises(aq.FisherError, match="input of layer '2'"):
        aq.fisher_spectrum(model, torch.randn(5, 4), torch.randint(0, 3, (5,)))


def test_non_finite_loss_raises_fisher_error():
    model = nn.Linear(4, 3)
    with pytest.raises(aq.FisherError, match="loss"):
        aq.fisher_spectrum(model, torch.randn(5, 4), torch.randint(0, 3, (5,)),
                           loss=lambda out, t: out.sum() * float("inf"))


def test_unsupported_weighted_layers_warn_once_by_name():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.LayerNorm(8), nn.Linear(8, 3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = aq.fisher_spectrum(model, torch.randn(6, 4), torch.randint(0, 3, (6,)))
    messages = [str(w.message) for w in caught if "unsupported" in str(w.message)]
    assert len(messages) == 1 and "1 (BatchNorm1d)" in messages[0] and "2 (LayerNorm)" in messages[0]
    assert [layer.name for layer in spec.layers] == ["0", "3"]


def test_empty_layer_spectrum_raises_fisher_error():
    layer = aq.LayerSpectrum("fc", "Linear", 1000, np.ones((1, 5)), np.zeros((1, 4)), 4)
    with pytest.raises(aq.FisherError, match="empty spectrum"):
        aq.fisher_features(aq.FisherSpectrum([layer]))


def test_fisher_features_for_isolates_bad_functions():
    from aquasurf_fast.nn import Activation
    torch.manual_seed(0)
    x, y = torch.randn(64, 1, 12, 12), torch.randint(0, 10, (64,))
    build = lambda act: mlp(act, (144, 64, 32, 10))  # noqa: E731
    fns = ["relu(x)", "div(x,zero(x))", "max(relu(x),cosh(elu(x)))", "not_a_function(x)"]
    feats, ok, reasons = aq.fisher_features_for(build, fns, x, y, progress=False)
    assert feats.dtype == np.float32 and feats.shape[0] == 4 and ok.tolist() == [True, False, True, False]
    assert np.isnan(feats[1]).all() and np.isnan(feats[3]).all() and reasons[0] == reasons[2] == ""
    assert "FisherError" in reasons[1] and reasons[3]
    torch.manual_seed(42)
    # the third row reused the first layer's cached input factor: same as computed alone
    single = aq.fisher_features(aq.fisher_spectrum(build(Activation("max(relu(x),cosh(elu(x)))")), x, y))
    np.testing.assert_array_equal(feats[2], single)
