"""Fisher spectra of nn.MultiheadAttention: the explicit computation of the Fisher pass, and
spectra against the same models written with explicit nn.Linear projections."""
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

import aquasurf_fast as aq
from aquasurf_fast.fisher import shared
from aquasurf_fast.testing import fisher_reference as ref
from aquasurf_fast.fisher.attention import explicit_attention

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from fisher_models import ViT  # noqa: E402


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


# name -> (MultiheadAttention keyword arguments, call options); "cross" attends from 5 query
# tokens to 7 key tokens, "masks" passes a boolean attn_mask and key_padding_mask, "float_mask"
# a float [batch * heads, L, S] attn_mask, "causal" the causal mask with the is_causal hint,
# "causal_hint" an all-zero mask with the hint (torch then masks causally without weights).
CALLS = {
    "self": ({}, {}),
    "self_batch_first_no_weights": ({"batch_first": True}, {"need_weights": False}),
    "cross_masks": ({}, {"cross": True, "masks": True}),
    "cross_masks_no_weights_batch_first": ({"batch_first": True},
                                           {"cross": True, "masks": True, "need_weights": False}),
    "kdim_vdim": ({"kdim": 5, "vdim": 3, "batch_first": True}, {"cross": True, "masks": True}),
    "kdim_vdim_no_weights": ({"kdim": 5, "vdim": 3}, {"cross": True, "need_weights": False}),
    "no_bias_float_mask": ({"bias": False}, {"float_mask": True}),
    "float_mask_no_weights_per_head": ({}, {"float_mask": True, "need_weights": False, "average": False}),
    "bias_kv_zero_attn": ({"add_bias_kv": True, "add_zero_attn": True}, {"cross": True, "masks": True}),
    "bias_kv_no_weights": ({"add_bias_kv": True, "batch_first": True}, {"masks": True, "need_weights": False}),
    "causal_no_weights": ({"batch_first": True}, {"causal": True, "need_weights": False}),
    "causal_weights": ({}, {"causal": True}),
    "causal_hint_wins_no_weights": ({}, {"causal_hint": True, "need_weights": False}),
    "dropout_weights": ({"dropout": 0.4}, {"masks": True}),
    "dropout_no_weights": ({"dropout": 0.4, "batch_first": True}, {"cross": True, "need_weights": False}),
    "unbatched": ({"kdim": 5, "vdim": 5}, {"cross": True, "unbatched": True, "masks": True}),
}
EMBED, HEADS, BATCH, N_Q, N_KV = 8, 2, 3, 5, 7


def _call_kwargs(opts, gen):
    """The keyword arguments of one call as described by CALLS' options (masks drawn from gen)."""
    n_kv = N_KV if opts.get("cross") else N_Q
    batch = () if opts.get("unbatched") else (BATCH,)
    kwargs = {"need_weights": opts.get("need_weights", True), "average_attn_weights": opts.get("average", True)}
    if opts.get("masks"):
        padding = torch.zeros(*batch, n_kv, dtype=torch.bool)
        padding[..., -2:] = True
        attn = torch.rand(N_Q, n_kv, generator=gen) < 0.3
        attn[:, 0] = False  # every query keeps a key: no row is entirely -inf
        kwargs.update(key_padding_mask=padding, attn_mask=attn)
    if opts.get("float_mask"):
        kwargs["attn_mask"] = torch.randn(BATCH * HEADS, N_Q, n_kv, generator=gen)
    if opts.get("causal"):
        kwargs.update(attn_mask=nn.Transformer.generate_square_subsequent_mask(N_Q), is_causal=True)
    if opts.get("causal_hint"):
        kwargs.update(attn_mask=torch.zeros(N_Q, N_Q), is_causal=True)
    return kwargs


def _call_args(mha, opts):
    """(args, kwargs) of one call of mha as described by CALLS' options, inputs requiring grad."""
    gen = torch.Generator().manual_seed(5)
    batch = () if opts.get("unbatched") else (BATCH,)

    def tokens(n, dim):
        shape = (n,) + batch if not mha.batch_first or not batch else batch + (n,)
        return torch.randn(*shape, dim, generator=gen).requires_grad_(True)

    query = tokens(N_Q, EMBED)
    if opts.get("cross"):
        key, value = tokens(N_KV, mha.kdim), tokens(N_KV, mha.vdim)
    else:
        key = value = query
    return (query, key, value), _call_kwargs(opts, gen)


def _outputs_and_grads(mha, args, kwargs, seed=11):
    """Outputs, attention weights and the gradients of a fixed function of the output with
    respect to the inputs and every parameter; dropout draws from torch's generator at ``seed``."""
    torch.manual_seed(seed)
    out, weights = mha(*args, **kwargs)
    probe = torch.linspace(-1, 1, out.numel()).view_as(out)
    leaves = [a for a in dict.fromkeys(args) if a.requires_grad] + list(mha.parameters())
    return [out, weights] + list(torch.autograd.grad((out * probe).sum(), leaves))


@pytest.mark.parametrize("case", list(CALLS))
def test_explicit_attention_gives_the_module_outputs_and_gradients(case, float64):
    options, opts = CALLS[case]
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(EMBED, HEADS, **options)
    args, kwargs = _call_args(mha, opts)
    want = _outputs_and_grads(mha, args, kwargs)
    with explicit_attention(mha) as projections:
        assert sorted(projections.values()) == [".k", ".out", ".q", ".v"]
        got = _outputs_and_grads(mha, args, kwargs)
    assert (got[1] is None) == (not kwargs["need_weights"])
    for g, w in zip(got, want):
        if w is None:
            assert g is None
            continue
        assert g.shape == w.shape
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-13 * float(w.detach().abs().max()))


def _attention_model(options, opts):
    """input Linear -> tanh -> attention (as CALLS describes: the first N_Q tokens attend to
    themselves or to the first N_KV) -> tanh -> mean over tokens -> Linear, on batch-first
    [B, N_KV, 6] inputs."""

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = nn.Linear(6, EMBED)
            self.mem = nn.Linear(6, options.get("kdim", EMBED))
            self.val = nn.Linear(6, options.get("vdim", EMBED))
            self.attn = nn.MultiheadAttention(EMBED, HEADS, **options)
            self.act = nn.Tanh()
            self.head = nn.Linear(EMBED, 4)

        def forward(self, x):
            def layout(t):
                return t if self.attn.batch_first else t.transpose(0, 1)

            q = layout(self.act(self.inp(x[:, :N_Q])))
            if opts.get("cross"):
                k, v = layout(self.act(self.mem(x[:, :N_KV]))), layout(self.act(self.val(x[:, :N_KV])))
            else:
                k = v = q
            kwargs = _call_kwargs(opts, torch.Generator().manual_seed(5))
            out = layout(self.attn(q, k, v, **kwargs)[0])
            return self.head(self.act(out).mean(1))

    return Model()


SPECTRUM_CASES = ["self", "self_batch_first_no_weights", "cross_masks", "cross_masks_no_weights_batch_first",
                  "kdim_vdim", "kdim_vdim_no_weights", "no_bias_float_mask", "bias_kv_zero_attn", "causal_no_weights"]


def _spectra(case):
    options, opts = CALLS[case]
    torch.manual_seed(1)
    model = _attention_model(options, opts)
    twin = ref.with_linear_attention(model)
    x, y = torch.randn(BATCH, N_KV, 6), torch.randint(0, 4, (BATCH,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # add_bias_kv's parameters are reported, not in the spectrum
        return model, twin, x, y, aq.fisher_spectrum(model, x, y), aq.fisher_spectrum(twin, x, y)


@pytest.mark.parametrize("case", SPECTRUM_CASES)
def test_spectrum_equals_the_explicit_linear_twin(case, float64):
    _, _, _, _, ours, theirs = _spectra(case)
    names = [layer.name for layer in ours.layers]
    assert names == [layer.name for layer in theirs.layers]
    assert [n for n in names if n.startswith("attn.")] == ["attn.q", "attn.k", "attn.v", "attn.out"]
    for a, b in zip(ours.layers, theirs.layers):
        assert (a.kind, a.num_weights, a.n_dropped) == (b.kind, b.num_weights, b.n_dropped)
        for got, want in ((a.eig_A, b.eig_A), (a.eig_G, b.eig_G)):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12 * want.max())
    np.testing.assert_allclose(aq.fisher_features(ours), aq.fisher_features(theirs), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", ["cross_masks", "kdim_vdim_no_weights"])
def test_attention_factors_match_float64_definition(case, float64):
    model, twin, x, y, ours, _ = _spectra(case)
    refs = ref.layer_factors_reference(twin, x, y)
    assert [layer.name for layer in ours.layers] == [r[0] for r in refs]
    for layer, (_, a_ref, g_ref) in zip(ours.layers, refs):
        for got, fac in ((layer.eig_A, a_ref), (layer.eig_G, g_ref)):
            want = ref.eigvals_reference(fac)
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12 * want.max())


def test_self_attention_projections_share_one_input_factor(monkeypatch):
    calls = []
    original = shared.input_factor

    def counting(module, x, batch, method="auto"):
        calls.append(module)
        return original(module, x, batch, method)

    monkeypatch.setattr(shared, "input_factor", counting)
    torch.manual_seed(2)
    model = _attention_model({"batch_first": True}, {})
    spec = aq.fisher_spectrum(model, torch.randn(4, N_Q, 6), torch.randint(0, 4, (4,)))
    names = [layer.name for layer in spec.layers]
    assert names == ["inp", "attn.q", "attn.k", "attn.v", "attn.out", "head"]
    assert len(calls) == 4  # inp, one for q/k/v, out, head
    eig_a = {layer.name: layer.eig_A for layer in spec.layers}
    np.testing.assert_array_equal(eig_a["attn.k"], eig_a["attn.q"])
    np.testing.assert_array_equal(eig_a["attn.v"], eig_a["attn.q"])


class TokenTransformer(nn.Module):
    """Tokens [B, T, 48] -> Linear -> 2-layer nn.TransformerEncoder (d_model 64, 4 heads, the
    activation in the feed-forward block) -> mean over tokens -> Linear."""

    def __init__(self, activation, batch_first=True, embed=True, nested=False):
        super().__init__()
        self.embed = nn.Linear(48, 64) if embed else nn.Identity()
        layer = nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, activation=activation, batch_first=batch_first)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=nested)
        self.head = nn.Linear(64, 10)
        self.padding = None

    def forward(self, x):
        h = self.embed(x)
        batch_first = self.enc.layers[0].self_attn.batch_first
        h = self.enc(h if batch_first else h.transpose(0, 1), src_key_padding_mask=self.padding)
        return self.head((h if batch_first else h.transpose(0, 1)).mean(1))


@pytest.mark.parametrize("batch_first", [True, False])
def test_transformer_encoder_includes_every_projection(batch_first, float64):
    # float64: in float32 the classifier's G keeps a rounding-noise eigenvalue along its exact
    # null direction (softmax gradients sum to zero), whose bin depends on the order of operations.
    torch.manual_seed(3)
    model = TokenTransformer(nn.GELU(), batch_first)
    x, y = torch.randn(32, 16, 48), torch.randint(0, 10, (32,))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = aq.fisher_spectrum(model, x, y)
    skipped = " ".join(str(w.message) for w in caught)
    assert "LayerNorm" in skipped and "self_attn" not in skipped
    per_layer = ["self_attn.q", "self_attn.k", "self_attn.v", "self_attn.out", "linear1", "linear2"]
    assert [layer.name for layer in spec.layers] == (
        ["embed"] + [f"enc.layers.{i}.{n}" for i in range(2) for n in per_layer] + ["head"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the same LayerNorm warning
        theirs = aq.fisher_spectrum(ref.with_linear_attention(model), x, y)
    np.testing.assert_allclose(aq.fisher_features(spec), aq.fisher_features(theirs), rtol=1e-6, atol=1e-6)


def test_small_vit_equals_its_explicit_linear_twin(float64):
    torch.manual_seed(7)
    model = ViT(nn.GELU(), n_classes=10, image=8, patch=4, dim=16, depth=2, heads=2, mlp_dim=24)
    x, y = torch.randn(6, 3, 8, 8), torch.randint(0, 10, (6,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LayerNorm, class token and position embedding
        ours = aq.fisher_spectrum(model, x, y)
        theirs = aq.fisher_spectrum(ref.with_linear_attention(model), x, y)
    assert [layer.name for layer in ours.layers][:6] == ["patch", "blocks.0.attn.q", "blocks.0.attn.k",
                                                         "blocks.0.attn.v", "blocks.0.attn.out", "blocks.0.mlp.0"]
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers]
    for a, b in zip(ours.layers, theirs.layers):
        for got, want in ((a.eig_A, b.eig_A), (a.eig_G, b.eig_G)):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12 * want.max())
    np.testing.assert_allclose(aq.fisher_features(ours), aq.fisher_features(theirs), rtol=1e-6, atol=1e-6)


def test_nn_transformer_covers_self_and_cross_attention(float64):
    class Seq2Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.src, self.tgt = nn.Linear(6, 16), nn.Linear(6, 16)
            self.core = nn.Transformer(16, 2, 1, 1, 24, dropout=0.0, activation=nn.GELU(), batch_first=True)
            self.head = nn.Linear(16, 4)

        def forward(self, x):
            src, tgt = self.src(x), self.tgt(x[:, :N_Q])
            causal = nn.Transformer.generate_square_subsequent_mask(N_Q)
            return self.head(self.core(src, tgt, tgt_mask=causal, tgt_is_causal=True).mean(1))

    torch.manual_seed(8)
    model = Seq2Seq()
    x, y = torch.randn(5, N_KV, 6), torch.randint(0, 4, (5,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LayerNorm
        ours = aq.fisher_spectrum(model, x, y)
        theirs = aq.fisher_spectrum(ref.with_linear_attention(model), x, y)
    names = [layer.name for layer in ours.layers]
    assert names == [layer.name for layer in theirs.layers]
    for attn in ("encoder.layers.0.self_attn", "decoder.layers.0.self_attn", "decoder.layers.0.multihead_attn"):
        roles = ("q", "k", "v", "out")
        assert [n for n in names if n.startswith(f"core.{attn}.")] == [f"core.{attn}.{r}" for r in roles]
    for a, b in zip(ours.layers, theirs.layers):
        for got, want in ((a.eig_A, b.eig_A), (a.eig_G, b.eig_G)):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12 * want.max())
    np.testing.assert_allclose(aq.fisher_features(ours), aq.fisher_features(theirs), rtol=1e-6, atol=1e-6)


@pytest.mark.filterwarnings("ignore:fisher_spectrum skips")
def test_transformer_encoder_in_eval_mode_with_padding_takes_the_explicit_path(float64):
    # In eval mode, with no parameter requiring grad and a padding mask, nn.TransformerEncoder
    # would turn its input into a nested tensor and run fused layers, bypassing the hooks.
    torch.manual_seed(4)
    model = TokenTransformer(nn.ReLU(), embed=False, nested=True).eval()
    model.padding = torch.zeros(8, 16, dtype=torch.bool)
    model.padding[:, 11:] = True
    x, y = torch.randn(8, 16, 64), torch.randint(0, 10, (8,))
    spec = aq.fisher_spectrum(model, x, y)
    assert len(spec.layers) == 13 and spec.layers[0].name == "enc.layers.0.self_attn.q"
    assert torch.backends.mha.get_fastpath_enabled()
    with torch.enable_grad():  # parameters that require grad: torch's own non-fused path
        want = model(x)
    with explicit_attention(model):
        got = model(x)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def _state(model):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            [(n, p.requires_grad) for n, p in model.named_parameters()],
            [(n, len(m._forward_hooks), len(m._forward_pre_hooks), "forward" in vars(m))
             for n, m in model.named_modules()],
            torch.backends.mha.get_fastpath_enabled())


@pytest.mark.filterwarnings("ignore:fisher_spectrum skips")
@pytest.mark.parametrize("failure", ["none", "in_attention", "in_loss"])
def test_model_is_left_unmodified(failure):
    torch.manual_seed(5)
    model = TokenTransformer(nn.Tanh())
    x, y = torch.randn(4, 16, 48), torch.randint(0, 10, (4,))
    with torch.no_grad():
        before_out = model(x)
    before = _state(model)

    def failing_loss(out, targets):
        raise RuntimeError("the loss failed")

    if failure == "none":
        aq.fisher_spectrum(model, x, y)
    elif failure == "in_attention":
        model.padding = torch.zeros(4, 15, dtype=torch.bool)  # one token short: the attention raises
        with pytest.raises(ValueError, match="key_padding_mask has shape"):
            aq.fisher_spectrum(model, x, y)
        model.padding = None
    else:
        with pytest.raises(RuntimeError, match="the loss failed"):
            aq.fisher_spectrum(model, x, y, loss=failing_loss)
    after = _state(model)
    assert after[1:] == before[1:]
    for k, v in before[0].items():
        assert torch.equal(after[0][k], v)
    assert all(not vars(m).get("forward") for m in model.modules())
    with torch.no_grad():
        torch.testing.assert_close(model(x), before_out, rtol=0, atol=0)


def test_add_bias_kv_parameters_are_named_as_skipped():
    model = _attention_model({"add_bias_kv": True}, {})
    with pytest.warns(UserWarning, match=r"attn\.bias_k and attn\.bias_v \(MultiheadAttention add_bias_kv\)"):
        spec = aq.fisher_spectrum(model, torch.randn(3, N_Q, 6), torch.randint(0, 4, (3,)))
    assert [layer.name for layer in spec.layers][1:5] == ["attn.q", "attn.k", "attn.v", "attn.out"]


def test_attention_subclass_that_overrides_forward_is_skipped_with_a_warning():
    class ScaledAttention(nn.MultiheadAttention):
        def forward(self, query, key, value, **kwargs):
            out, weights = super().forward(query, key, value, **kwargs)
            return 2 * out, weights

    model = _attention_model({}, {})
    model.attn = ScaledAttention(EMBED, HEADS)
    with pytest.warns(UserWarning, match=r"attn \(ScaledAttention: overrides MultiheadAttention.forward\)"):
        spec = aq.fisher_spectrum(model, torch.randn(3, N_Q, 6), torch.randint(0, 4, (3,)))
    assert [layer.name for layer in spec.layers] == ["inp", "head"]


def test_bad_attention_calls_raise_clear_errors():
    torch.manual_seed(6)
    mha = nn.MultiheadAttention(EMBED, HEADS, batch_first=True)
    x = torch.randn(BATCH, N_Q, EMBED)
    with explicit_attention(mha):
        with pytest.raises(ValueError, match="is_causal=True is a hint"):
            mha(x, x, x, is_causal=True)
        with pytest.raises(ValueError, match=r"attn_mask has shape \(4, 5\); expected \(5, 5\)"):
            mha(x, x, x, attn_mask=torch.zeros(4, N_Q))
        with pytest.raises(ValueError, match=r"key_padding_mask has shape \(3, 4\); expected"):
            mha(x, x, x, key_padding_mask=torch.zeros(BATCH, 4, dtype=torch.bool))
        with pytest.raises(ValueError, match="must be boolean or floating point"):
            mha(x, x, x, attn_mask=torch.zeros(N_Q, N_Q, dtype=torch.int64))
        nested = torch.nested.nested_tensor([torch.randn(3, EMBED), torch.randn(4, EMBED)], layout=torch.jagged)
        with pytest.raises(ValueError, match="needs padded tensors, got a nested tensor"):
            mha(nested, nested, nested)
