"""float64 references of the Fisher-spectrum kernels, straight from the definitions (SPEC section 4).

Slow and simple on purpose: patches gathered tap by tap, explicit sums of outer products,
materialized pairs, attention written out with nn.Linear projections. Tests compare the fast paths
of aquasurf_fast.fisher (and the C++/CUDA core) against these, and ``plain_spectrum`` and
``plain_features`` chained after ``layer_factors_reference`` are the plain-torch pipeline that
``aquasurf bench fisher`` checks the package against (in float64) and times (in float32, the
precision a torch user sums in).
"""
from __future__ import annotations

import copy
import itertools
import math
from typing import List, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_patches_reference(module: nn.Module, x: torch.Tensor, dtype=torch.float64) -> torch.Tensor:
    """im2col patches [B, L, C * prod(kernel)] in ``dtype`` of a Conv1d, Conv2d or Conv3d call:
    columns in channel-major (c, *tap) order, locations in row-major order, padding applied as
    the module does. Built tap by tap: tap t sees the padded input from t * dilation on, every
    stride-th element. Mirrors fisher.factors._patches (the im2col path) and the cell path of csrc
    conv_cov_assemble."""
    x = x.to(dtype)
    nd = x.dim() - 2
    k, s, d, pad = module.kernel_size, module.stride, module.dilation, module.padding
    if pad == "valid":
        lr = [(0, 0)] * nd
    elif pad == "same":  # torch puts the extra element of an odd total on the right
        lr = [(t // 2, t - t // 2) for t in (d[i] * (k[i] - 1) for i in range(nd))]
    else:
        lr = [(p, p) for p in pad]
    mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
    x = F.pad(x, [p for pair in reversed(lr) for p in pair], mode=mode)
    out = [(x.shape[2 + i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(nd)]
    taps = []
    for tap in itertools.product(*(range(ki) for ki in k)):
        window = tuple(slice(t * di, t * di + (o - 1) * si + 1, si) for t, di, o, si in zip(tap, d, out, s))
        taps.append(x[(slice(None), slice(None)) + window])  # [B, C, *out]
    patches = torch.stack(taps, dim=2)  # [B, C, n_taps, *out]
    b, c = x.shape[:2]
    return patches.reshape(b, c * len(taps), -1).transpose(1, 2)


def input_factor_reference(module: nn.Module, x: torch.Tensor, dtype=torch.float64) -> torch.Tensor:
    """A [n_groups, dim, dim] in ``dtype``: sum over batch and locations of a a^T / B, a = the layer
    input (Linear) or im2col patch of one group (conv), with a 1 prepended when there is a bias.
    Mirrors fisher.factors.input_factor (rows/triangle/Gram paths and the csrc cell assembly)."""
    batch = x.shape[0]
    if isinstance(module, nn.Linear):
        rows = x.to(dtype).reshape(-1, x.shape[-1]).unsqueeze(1)  # [N, 1, D]
        groups = 1
    else:
        p = conv_patches_reference(module, x, dtype)
        groups = module.groups
        rows = p.reshape(-1, groups, p.shape[-1] // groups)  # [N, groups, d]
    if module.bias is not None:
        rows = torch.cat([torch.ones_like(rows[..., :1]), rows], dim=-1)
    return torch.einsum("ngi,ngj->gij", rows, rows) / batch


def grad_factor_reference(module: nn.Module, g: torch.Tensor, dtype=torch.float64) -> torch.Tensor:
    """G [n_groups, dim, dim] in ``dtype``: sum of g g^T over batch and output locations / (B T).
    Mirrors fisher.factors.grad_factor."""
    g = g.to(dtype)
    if isinstance(module, nn.Linear):
        rows = g.reshape(-1, g.shape[-1]).unsqueeze(1)
    else:
        groups = module.groups
        rows = g.reshape(g.shape[0], g.shape[1], -1).transpose(1, 2).reshape(-1, g.shape[1])
        rows = rows.reshape(rows.shape[0], groups, -1)
    return torch.einsum("ngi,ngj->gij", rows, rows) / rows.shape[0]


def layer_factors_reference(model: nn.Module, inputs, targets, loss=None,
                            dtype=torch.float64) -> List[Tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, A, G) per supported layer, from plain forward hooks and autograd, the sums in
    ``dtype``. A layer called several times contributes its first call; a layer the loss does not
    reach has G = 0. Mirrors fisher._forward_backward + the factor kernels."""
    caps = []

    def hook(module, args, out):
        if any(m is module for m, _, _ in caps):
            return
        out.retain_grad()
        caps.append((module, args[0].detach(), out))

    names = {m: n for n, m in model.named_modules()}
    hs = [m.register_forward_hook(hook) for m in model.modules()
          if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]
    try:
        out = model(inputs)
        value = (loss or F.cross_entropy)(out, targets)
        value.backward()
    finally:
        for h in hs:
            h.remove()
    return [(names[m], input_factor_reference(m, x, dtype),
             grad_factor_reference(m, o.grad if o.grad is not None else torch.zeros_like(o), dtype))
            for m, x, o in caps]


def eigvals_reference(factor: torch.Tensor) -> np.ndarray:
    """float64 eigenvalues [n_groups, dim] ascending, those below LAPACK's error bound
    (dim * eps * max) set to 0. Mirrors fisher.shared.eigvalsh."""
    ev = torch.linalg.eigvalsh(factor.double()).cpu().numpy()
    tol = ev.shape[-1] * np.finfo(np.float64).eps * np.abs(ev).max(axis=-1, keepdims=True)
    return np.where(np.abs(ev) <= tol, 0.0, ev)


def layer_cdf_reference(eig_A: np.ndarray, eig_G: np.ndarray, num_weights: int):
    """Materializes every within-group pair log(a) + log(g) and bins it with np.histogram.
    Mirrors csrc pair_cumhist (CPU and CUDA) + fisher.layer_cdf."""
    n_edges = num_weights // 100
    if n_edges < 2:
        return None
    eig_A, eig_G = np.atleast_2d(eig_A), np.atleast_2d(eig_G)
    sums = []
    for ea, eg in zip(eig_A, eig_G):
        la, lg = np.log(ea[ea > 0]), np.log(eg[eg > 0])
        sums.append((la[:, None] + lg[None, :]).ravel())
    hist, _ = np.histogram(np.concatenate(sums), bins=np.linspace(-100.0, 100.0, n_edges))
    cum = np.cumsum(hist)
    return (cum / cum[-1]).astype(np.float32)


def plain_spectrum(factors) -> List[Tuple[str, np.ndarray, np.ndarray]]:
    """(name, eig_A, eig_G) per layer of ``layer_factors_reference``'s factors: float64
    ``eigvalsh`` with numerical zeros set to 0 (``eigvals_reference``). Mirrors fisher._eig_all."""
    return [(name, eigvals_reference(a), eigvals_reference(g)) for name, a, g in factors]


def plain_features(model: nn.Module, spectrum) -> np.ndarray:
    """The model's feature (concatenated ``layer_cdf_reference``) from ``plain_spectrum``'s
    eigenvalues of ``model``'s layers, float32. Mirrors fisher.fisher_features."""
    parts = []
    for name, eig_a, eig_g in spectrum:
        layer = model.get_submodule(name)
        n = layer.weight.numel() + (layer.bias.numel() if layer.bias is not None else 0)
        cdf = layer_cdf_reference(eig_a, eig_g, n)
        if cdf is not None:
            parts.append(cdf)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def reference_model(model: nn.Module) -> nn.Module:
    """The model that forward hooks see as the package does: ``with_linear_attention(model)`` when
    it holds an nn.MultiheadAttention (hooks never see its projections), else ``model`` itself."""
    if any(isinstance(m, nn.MultiheadAttention) for m in model.modules()):
        return with_linear_attention(model)
    return model


class LinearAttention(nn.Module):
    """An nn.MultiheadAttention written out with nn.Linear projections ``q``, ``k``, ``v`` and
    ``out`` that hold copies of its weights, called like it (batched inputs; attention weights are
    always computed, so ``need_weights`` only decides whether they are returned, and ``is_causal``
    is a hint about ``attn_mask``, as in torch). Attention from the definition,
    softmax(q k^T / sqrt(head_dim) + mask) v per head, in plain tensor operations.
    Mirrors fisher.attention (the explicit attention of the Fisher pass) and its projections."""

    def __init__(self, mha: nn.MultiheadAttention):
        super().__init__()
        e = mha.embed_dim
        self.embed_dim, self.num_heads, self.batch_first = e, mha.num_heads, mha.batch_first
        self.dropout, self.add_zero_attn = mha.dropout, mha.add_zero_attn
        packed = mha.in_proj_weight is not None
        weights = mha.in_proj_weight.chunk(3) if packed else (mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight)
        biases = (None,) * 3 if mha.in_proj_bias is None else mha.in_proj_bias.chunk(3)
        weights += (mha.out_proj.weight,)
        biases += (mha.out_proj.bias,)
        for name, w, b in zip(("q", "k", "v", "out"), weights, biases):
            linear = nn.Linear(w.shape[1], w.shape[0], bias=b is not None, device=w.device, dtype=w.dtype)
            with torch.no_grad():
                linear.weight.copy_(w)
                if b is not None:
                    linear.bias.copy_(b)
            setattr(self, name, linear)
        self.bias_k = None if mha.bias_k is None else nn.Parameter(mha.bias_k.detach().clone())
        self.bias_v = None if mha.bias_v is None else nn.Parameter(mha.bias_v.detach().clone())
        self.train(mha.training)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        if not self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        b, n_q, e = query.shape[0], query.shape[1], self.embed_dim
        h = self.num_heads
        q, k, v = self.q(query), self.k(key), self.v(value)  # [B, tokens, E]
        n_extra = 0
        if self.bias_k is not None:
            k = torch.cat([k, self.bias_k.expand(b, 1, e)], dim=1)
            v = torch.cat([v, self.bias_v.expand(b, 1, e)], dim=1)
            n_extra += 1
        if self.add_zero_attn:
            k = torch.cat([k, k.new_zeros(b, 1, e)], dim=1)
            v = torch.cat([v, v.new_zeros(b, 1, e)], dim=1)
            n_extra += 1
        n_k = k.shape[1]
        split = lambda t: t.reshape(b, t.shape[1], h, e // h).permute(0, 2, 1, 3)  # noqa: E731
        scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(e // h)  # [B, H, n_q, n_k]
        scores = scores + self._additive_mask(attn_mask, key_padding_mask, b, n_q, n_k, n_extra, scores.dtype)
        weights = torch.softmax(scores, dim=-1)
        if self.training and self.dropout > 0:
            weights = F.dropout(weights, self.dropout)
        out = self.out((weights @ split(v)).permute(0, 2, 1, 3).reshape(b, n_q, e))
        if not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        return out, weights.mean(dim=1) if average_attn_weights else weights

    def _additive_mask(self, attn_mask, key_padding_mask, b, n_q, n_k, n_extra, dtype) -> torch.Tensor:
        """[B or 1, H or 1, n_q, n_k]: 0 where attention is allowed, -inf (or the float mask's
        value) elsewhere; the extra keys of add_bias_kv / add_zero_attn are always allowed."""
        total = torch.zeros(1, 1, n_q, n_k, dtype=dtype, device=self.q.weight.device)
        for mask, shape in ((attn_mask, None), (key_padding_mask, (b, 1, 1, n_k - n_extra))):
            if mask is None:
                continue
            if mask.dtype == torch.bool:
                mask = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
            if shape is None:  # attn_mask: [n_q, n_k] or [B * H, n_q, n_k]
                shape = (1, 1, n_q, n_k - n_extra) if mask.dim() == 2 else (b, self.num_heads, n_q, n_k - n_extra)
            total = total + F.pad(mask.reshape(shape).to(dtype), (0, n_extra))
        return total


def with_linear_attention(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with every nn.MultiheadAttention replaced by its LinearAttention
    twin (same weights, same names: ``<attention>.q``, ``.k``, ``.v``, ``.out``)."""
    if isinstance(model, nn.MultiheadAttention):
        return LinearAttention(model)
    twin = copy.deepcopy(model)
    for name, m in list(twin.named_modules()):
        if isinstance(m, nn.MultiheadAttention):
            parent, _, attr = name.rpartition(".")
            setattr(twin.get_submodule(parent), attr, LinearAttention(m))
    return twin
