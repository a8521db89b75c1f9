"""Fisher-spectrum features (SPEC section 4): K-FAC factors at initialization, their float64
eigenvalues, and the per-layer CDF of all pairwise log-eigenvalue sums.

Layers covered: ``nn.Linear`` (on [B, D] or [B, T, ..., D] inputs), ``nn.Conv1d``, ``nn.Conv2d``
and ``nn.Conv3d`` (any stride, padding, padding mode, dilation and groups, depthwise included),
and the four linear maps of every ``nn.MultiheadAttention`` wherever it sits (``nn.Transformer``,
``nn.TransformerEncoderLayer``, ViT encoder blocks): layers ``<attention>.q``, ``.k``, ``.v`` and
``.out``, each a Linear layer over the tokens it reads (see ``fisher_attention``). Skipped,
with one warning naming them: every other module with weights (normalization, embeddings,
custom modules, parameters such as a class token or position embedding, the ``bias_k``/``bias_v``
of ``add_bias_kv``), and a subclass of ``nn.MultiheadAttention`` that overrides ``forward``.

Conventions (SPEC section 4):

* ``A`` is the covariance of a layer's inputs, im2col patches for convolutions (one factor per
  group), a 1 prepended when the layer has a bias: ``sum a a^T / B`` over batch and locations.
* ``G`` is the covariance of ``g``, the gradient of the loss (as given, e.g. a batch mean) with
  respect to the layer's output: ``sum g g^T / (B T)`` over batch and output locations.
* Grouped layers: group ``k``'s Fisher block is ``A_k (x) G_k``, so its spectrum is the pairs of
  ``eig_A[k]`` with ``eig_G[k]``; the pairs of all groups go into one histogram per layer (no pairs
  across groups: those blocks are zero in K-FAC).

How the factors are computed (each equals the definition to float32 rounding):

* stride-1 convolutions: ``A`` is assembled from the channel cross-correlations of the padded input
  at the ``(2k-1)^2 / 2`` distinct tap offsets (the others are transposes), each summed separately
  over a grid of cells whose unions are exactly the input windows of the taps; the C++ core adds
  the cells of each tap pair's window (border corrections without subtraction). This costs about
  ``13 C^2`` multiply-adds per input pixel instead of ``81 C^2 / 2`` for a 3x3 kernel on im2col.
* other layers: im2col (or the plain input) and only the upper triangle of ``X^T X``, in column
  blocks, mirrored.
* eigenvalues below LAPACK's error bound (``dim * eps64 * max``) are exact zeros numerically
  (dead units, rank deficiency) and are set to 0, hence dropped and counted
  (``numerical_zeros_to_zero``).
* when the number of rows ``N = B T`` is smaller than a factor's dimension, the Gram matrix
  ``X X^T`` (N x N) is decomposed instead: it has the same nonzero eigenvalues, and the factor's
  remaining ``dim - N`` eigenvalues are exactly zero (reported as zeros, hence dropped).
* layers that read the same tensor (an attention's query, key and value projections in
  self-attention) share one input factor and its decomposition.
* gradient rows that are exactly zero (tokens the loss does not depend on, e.g. all but the class
  token in a ViT's last block) are left out of G's products; the divisor stays ``B T``.
"""
from __future__ import annotations

import math
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .fisher_attention import AttentionProjection, explicit_attention, is_explicit

__all__ = [
    "FisherError",
    "LayerSpectrum",
    "FisherSpectrum",
    "fisher_spectrum",
    "fisher_features",
    "fisher_features_for",
    "layer_cdf",
]

CONV_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
# Module types hooked directly; nn.MultiheadAttention is covered through its projections.
SUPPORTED_LAYERS = (nn.Linear,) + CONV_LAYERS


class FisherError(RuntimeError):
    """The Fisher spectrum of a model cannot be computed (non-finite values, empty spectrum)."""


@dataclass
class LayerSpectrum:
    name: str  # module path in the model
    kind: str  # "Linear" (attention projections included), "Conv1d", "Conv2d" or "Conv3d"
    num_weights: int  # weight.numel() + bias.numel()
    eig_A: np.ndarray  # float64 [n_groups, dim_A], ascending per group
    eig_G: np.ndarray  # float64 [n_groups, dim_G], ascending per group
    n_dropped: int  # eigenvalues <= 0 of A and G, left out of the log-spectrum

    @property
    def dropped(self) -> int:
        """SPEC section 8's name for n_dropped."""
        return self.n_dropped


@dataclass
class FisherSpectrum:
    layers: List[LayerSpectrum]
    labels: str = "given"
    batch_size: int = 0
    timings: Dict[str, float] = field(default_factory=dict, repr=False)


# ----------------------------------------------------------------------------------------------
# Factors
# ----------------------------------------------------------------------------------------------

@dataclass
class _Factor:
    """A factor to decompose: ``mat`` [n_groups, m, m] float32 (not yet scaled). Its eigenvalues
    are ``scale * eigvalsh(mat)``, padded with exact zeros up to ``dim`` when ``mat`` is a Gram
    matrix (m < dim)."""
    mat: torch.Tensor
    scale: float
    dim: int


# Columns per block of the triangular products: narrower blocks skip more of the lower triangle
# but make smaller products; 256 computes about 64 % of the full product at dimension 865 and
# 56 % at 1729 while every block product still has at least 256 x 256 outputs.
_TRIANGLE_BLOCK = 256


def _gram_triangle(x: torch.Tensor) -> torch.Tensor:
    """``x^T x`` for x [N, d] computing only the upper block triangle, then mirroring."""
    d = x.shape[1]
    if d <= 2 * _TRIANGLE_BLOCK:
        return x.t() @ x
    out = torch.zeros(d, d, dtype=x.dtype, device=x.device)
    for i0 in range(0, d, _TRIANGLE_BLOCK):
        i1 = min(d, i0 + _TRIANGLE_BLOCK)
        out[i0:i1, i0:] = x[:, i0:i1].t() @ x[:, i0:]
    out = out.triu_()
    out += out.triu(1).t()
    return out


# Products below this many multiply-adds run in float64: they are cheap, and they are the small,
# ill-conditioned factors (1x1 convolutions, classifier layers, gradients over few locations)
# where float32 sums move eigenvalues near 1e-6 of the largest by more than 1e-4 relative.
_FLOAT64_MAC_BUDGET = 3e8


def _rows_factor(x: torch.Tensor, groups: int, bias: bool, scale: float) -> _Factor:
    """Factor of the rows of x [N, groups * d] (one factor per column group), ``scale`` times the
    sum of the outer products of the rows, with a 1 prepended to every row when ``bias``."""
    n, total = x.shape
    d = total // groups
    dim = d + int(bias)
    if n * dim * min(n, dim) * groups <= _FLOAT64_MAC_BUDGET:
        x = x.double()
    if n < dim:
        # Gram matrix: same nonzero eigenvalues as the d x d covariance.
        xg = x.reshape(n, groups, d).transpose(0, 1)  # [groups, n, d]
        if groups == 1:
            mat = _gram_triangle(x.t().contiguous()).unsqueeze(0)
        else:
            mat = torch.bmm(xg, xg.transpose(1, 2))
        if bias:
            mat = mat + 1.0
        return _Factor(mat, scale, dim)
    if groups == 1:
        core = _gram_triangle(x).unsqueeze(0)
    else:
        xg = x.reshape(n, groups, d).permute(1, 2, 0)  # [groups, d, n]
        core = torch.bmm(xg, xg.transpose(1, 2))
    if not bias:
        return _Factor(core, scale, dim)
    mat = torch.empty(groups, dim, dim, dtype=x.dtype, device=x.device)
    mat[:, 1:, 1:] = core
    sums = x.sum(0).reshape(groups, d)
    mat[:, 0, 1:] = sums
    mat[:, 1:, 0] = sums
    mat[:, 0, 0] = float(n)
    return _Factor(mat, scale, dim)


def _conv_geometry(module: nn.Module, x: torch.Tensor):
    """Padded input [B, C, *spatial] and the kernel geometry of a convolution call: kernel size,
    stride, dilation and (before, after) padding, one entry per spatial dimension. A Conv1d is a
    Conv2d of height 1, so that it shares the 2-D paths (the cell method)."""
    k, s, d = tuple(module.kernel_size), tuple(module.stride), tuple(module.dilation)
    pad = module.padding
    if isinstance(module, nn.Conv1d):
        x = x.unsqueeze(2)
        k, s, d = (1,) + k, (1,) + s, (1,) + d
        if not isinstance(pad, str):
            pad = (0,) + tuple(pad)
    if pad == "valid":
        pads = tuple((0, 0) for _ in k)
    elif pad == "same":  # (stride 1) torch puts the extra element of an odd total on the right
        pads = tuple((t // 2, t - t // 2) for t in (di * (ki - 1) for ki, di in zip(k, d)))
    else:
        pads = tuple((p, p) for p in pad)
    if any(p for pp in pads for p in pp):
        mode = module.padding_mode if module.padding_mode != "zeros" else "constant"
        x = F.pad(x, [p for pp in reversed(pads) for p in pp], mode=mode)
    return x, k, s, d, pads


def _conv_out_size(hp: int, k: int, s: int, d: int) -> int:
    return (hp - d * (k - 1) - 1) // s + 1


def _patches(xp: torch.Tensor, k, s, d) -> torch.Tensor:
    """im2col rows [B * L, C * prod(k)] of a padded input [B, C, *spatial] (any number of spatial
    dimensions), columns in (c, *tap) order, rows in (b, *location) order.

    One strided view per spatial dimension (``Tensor.unfold`` over the dilated span, then every
    d-th element), copied once by the final reshape. ``F.unfold`` takes no 3-D volumes, and for
    2-D inputs it was slower followed by the transpose to rows: for 96 channels at 33x33, batch
    128, stride 2, 0.24 s against 0.15 s on one thread, 1.1 s against 0.11 s on two threads of a
    busy machine.
    """
    nd = len(k)
    view = xp
    for i in range(nd):
        view = view.unfold(2 + i, d[i] * (k[i] - 1) + 1, s[i])  # appends the window dimension
    view = view[(Ellipsis,) + tuple(slice(None, None, di) for di in d)]  # [B, C, *out, *k]
    b, c = view.shape[:2]
    order = (0,) + tuple(range(2, 2 + nd)) + (1,) + tuple(range(2 + nd, 2 + 2 * nd))
    return view.permute(order).reshape(b * math.prod(view.shape[2:2 + nd]), c * math.prod(k))


def _conv_input_factor_im2col(xp, k, s, d, groups, bias, batch) -> _Factor:
    return _rows_factor(_patches(xp, k, s, d), groups, bias, 1.0 / batch)


def _conv_input_factor_cells(xp, k, d, pads, groups, bias, batch) -> _Factor:
    """Input factor of a stride-1 convolution from per-offset, per-cell channel cross products.

    Tap p = (ky, kx) sees the window rows [ky*dy, ky*dy + Ho) x cols [kx*dx, kx*dx + Wo) of the
    padded input. Cutting the rows and columns at every window boundary gives a grid of cells such
    that each window is a rectangle of cells. For each tap offset D = q - p in one half-plane and
    each cell, sum_{u in cell} x[:, u] x[:, u + D]^T is one matrix product over contiguous rows of
    a channels-last copy; the C++ core then adds the cells of each tap pair's window.
    """
    from . import _C

    b, c, hp, wp = xp.shape
    (kh, kw), (dh, dw) = k, d
    ho, wo = hp - dh * (kh - 1), wp - dw * (kw - 1)
    cg = c // groups
    ys = sorted({ky * dh for ky in range(kh)} | {ky * dh + ho for ky in range(kh)})
    xs = sorted({kx * dw for kx in range(kw)} | {kx * dw + wo for kx in range(kw)})
    n_cy, n_cx = len(ys) - 1, len(xs) - 1
    taps = [(ky, kx) for ky in range(kh) for kx in range(kw)]
    boxes = [(ys.index(ky * dh), ys.index(ky * dh + ho), xs.index(kx * dw), xs.index(kx * dw + wo))
             for ky, kx in taps]
    offsets = [(oy, ox) for oy in range(0, kh) for ox in range(-(kw - 1), kw) if oy > 0 or ox >= 0]
    index = {o: i for i, o in enumerate(offsets)}
    n_taps = len(taps)
    pair_offset = np.empty((n_taps, n_taps), dtype=np.int64)
    # cells needed per offset: those in the window of a tap p whose partner p + D is a tap
    needed = [set() for _ in offsets]
    for ip, (py, px) in enumerate(taps):
        for iq, (qy, qx) in enumerate(taps):
            dlt = (qy - py, qx - px)
            if dlt in index:
                o = index[dlt]
                pair_offset[ip, iq] = o
                by0, by1, bx0, bx1 = boxes[ip]
                needed[o].update((cy, cx) for cy in range(by0, by1) for cx in range(bx0, bx1))
            else:
                pair_offset[ip, iq] = -index[(-dlt[0], -dlt[1])] - 1
    real_y = (pads[0][0], hp - pads[0][1])
    real_x = (pads[1][0], wp - pads[1][1])

    def is_padding(y0, y1, x0, x1) -> bool:
        # only called for zero padding (the caller checks padding_mode)
        return (y1 <= real_y[0] or y0 >= real_y[1] or x1 <= real_x[0] or x0 >= real_x[1])

    rows = xp.permute(2, 3, 0, 1).contiguous()  # [Hp, Wp, B, C]: a row range of a column block is contiguous
    col_blocks: Dict[Tuple[int, int], torch.Tensor] = {}

    def block(y0, y1, x0, x1) -> torch.Tensor:
        key = (x0, x1)
        if key not in col_blocks:
            col_blocks[key] = rows if (x0, x1) == (0, wp) else rows[:, x0:x1].contiguous()
        return col_blocks[key][y0:y1].reshape(-1, c)

    S = torch.zeros(len(offsets), n_cy, n_cx, groups, cg, cg, dtype=xp.dtype, device=xp.device)
    cell_sums = torch.zeros(n_cy, n_cx, groups, cg, dtype=xp.dtype, device=xp.device)
    for cy in range(n_cy):
        for cx in range(n_cx):
            y0, y1, x0, x1 = ys[cy], ys[cy + 1], xs[cx], xs[cx + 1]
            if is_padding(y0, y1, x0, x1):
                continue
            u = block(y0, y1, x0, x1)
            cell_sums[cy, cx] = u.sum(0).reshape(groups, cg)
            for ox in range(-(kw - 1), kw):
                oys = [oy for oy in range(kh) if (oy, ox) in index and (cy, cx) in needed[index[(oy, ox)]]]
                if not oys:
                    continue
                sx = ox * dw
                if groups == 1:
                    # All row shifts of one column shift are strided views of one column block:
                    # one batched product, the cell's rows read once for all of them.
                    block(0, hp, x0 + sx, x1 + sx)
                    cb = col_blocks[(x0 + sx, x1 + sx)]
                    row_stride = cb.stride(0)
                    first, n = oys[0], oys[-1] - oys[0] + 1
                    v = torch.as_strided(cb, (n, u.shape[0], c), (dh * row_stride, c, 1),
                                         cb.storage_offset() + (y0 + first * dh) * row_stride)
                    prods = torch.bmm(u.t().expand(n, c, u.shape[0]), v)
                    for oy in oys:
                        S[index[(oy, ox)], cy, cx, 0] = prods[oy - first]
                    continue
                for oy in oys:
                    sy = oy * dh
                    if is_padding(y0 + sy, y1 + sy, x0 + sx, x1 + sx):
                        continue
                    v = block(y0 + sy, y1 + sy, x0 + sx, x1 + sx)
                    S[index[(oy, ox)], cy, cx] = torch.bmm(u.reshape(-1, groups, cg).permute(1, 2, 0),
                                                           v.reshape(-1, groups, cg).transpose(0, 1))
    dim = int(bias) + cg * n_taps
    out = torch.empty(groups, dim, dim, dtype=torch.float32, device=xp.device)
    dev = xp.device
    # The products are written cell-major (each into a contiguous slice); the core reads the
    # cells of one entry together, so they are moved next to each other first.
    _C.conv_cov_assemble(S.float().permute(0, 3, 4, 5, 1, 2).contiguous(),
                         cell_sums.float().permute(2, 3, 0, 1).contiguous(),
                         torch.tensor(boxes, dtype=torch.int64, device=dev),
                         torch.from_numpy(pair_offset).to(dev), bool(bias), 1.0 / batch,
                         float(ho * wo), out)
    return _Factor(out, 1.0, dim)


def _cells_cost(c, groups, hp, wp, kh, kw) -> float:
    return (kh * (2 * kw - 1) - (kw - 1)) * hp * wp * (c / groups) ** 2 * groups


def _im2col_cost(n_rows, dim, groups) -> float:
    tri = 0.65 if dim > 2 * _TRIANGLE_BLOCK and groups == 1 else 1.0
    return n_rows * dim * min(dim, n_rows) * groups * tri


def _input_factor(module: nn.Module, x: torch.Tensor, batch: int, method: str = "auto") -> _Factor:
    """A of one layer call. method: "auto" (the cheaper by a multiply-add count), "cells", "im2col".
    Linear layers (attention projections included) take the rows of x as they are."""
    bias = module.bias is not None
    if not isinstance(module, CONV_LAYERS):
        rows = x.reshape(-1, x.shape[-1])
        return _rows_factor(rows, 1, bias, 1.0 / batch)
    xp, k, s, d, pads = _conv_geometry(module, x)
    groups = module.groups
    b, c = xp.shape[:2]
    out = [_conv_out_size(xp.shape[2 + i], k[i], s[i], d[i]) for i in range(len(k))]
    dim = int(bias) + (c // groups) * math.prod(k)
    n_rows = b * math.prod(out)
    # The cell method (2-D only) pays one product per cell and offset; it wins when the inner
    # cell (rows every window shares) dominates, i.e. the output is large next to the kernel's reach.
    cells_apply = len(k) == 2 and s == (1, 1) and module.padding_mode == "zeros"
    reach = [d[i] * (k[i] - 1) for i in range(len(k))]
    can_cells = cells_apply and k != (1, 1) and out[0] >= 4 * reach[0] and out[1] >= 4 * reach[1]
    cheaper = can_cells and _cells_cost(c, groups, *xp.shape[2:], *k) * b < 0.8 * _im2col_cost(n_rows, dim, groups)
    if method == "cells" or (method == "auto" and n_rows >= dim and cheaper):
        if not cells_apply:
            raise ValueError("the cell method needs a 1-D or 2-D stride-1 convolution with zero padding; "
                             "use method='im2col' or 'auto'")
        return _conv_input_factor_cells(xp, k, d, pads, groups, bias, batch)
    return _conv_input_factor_im2col(xp, k, s, d, groups, bias, batch)


def _grad_factor(module: nn.Module, g: torch.Tensor, batch: int) -> _Factor:
    """G of one layer call from the gradient of the loss w.r.t. its output."""
    if not isinstance(module, CONV_LAYERS):
        rows = g.reshape(-1, g.shape[-1])
        groups = 1
    else:
        out_ch = g.shape[1]
        rows = g.reshape(g.shape[0], out_ch, -1).transpose(1, 2).reshape(-1, out_ch)
        groups = module.groups
    n_rows = rows.shape[0]
    # Zero rows add nothing to the sum, and they are common: in a ViT whose classifier reads the
    # class token, the last block's layers get gradient on that token only (1 row in 65).
    # Leaving them out also lets a factor with fewer live rows than columns take the Gram path.
    live = rows.abs().amax(dim=1) > 0
    n_live = int(live.sum())
    if 0 < n_live < n_rows:
        rows = rows[live]
    return _rows_factor(rows, groups, False, 1.0 / n_rows)


# ----------------------------------------------------------------------------------------------
# Eigenvalues
# ----------------------------------------------------------------------------------------------

def _eigvalsh(factor: _Factor) -> np.ndarray:
    """float64 eigenvalues [n_groups, dim] (ascending) of a factor."""
    ev = torch.linalg.eigvalsh(factor.mat.double()) * factor.scale
    ev = numerical_zeros_to_zero(ev.cpu().numpy())
    if ev.shape[1] < factor.dim:
        pad = np.zeros((ev.shape[0], factor.dim - ev.shape[1]))
        ev = np.sort(np.concatenate([ev, pad], axis=1), axis=1)
    return ev


def numerical_zeros_to_zero(ev: np.ndarray) -> np.ndarray:
    """Set eigenvalues with ``|lambda| <= dim * eps64 * max|lambda|`` (per group) to exactly 0.

    A factor with exactly zero directions (dead units, fewer rows than columns) has eigenvalues
    that are 0 in exact arithmetic; LAPACK returns them as +-1e-20 .. 1e-70 of the largest, below
    its own error bound (about dim * eps * ||A||). Half of them are positive and their logs land
    anywhere in [-100, 100], so left alone they would make the feature depend on rounding. As
    zeros they are dropped and counted with the non-positive ones (SPEC section 4).
    """
    ev = np.array(ev, dtype=np.float64, copy=True)
    if ev.size == 0:
        return ev
    tol = ev.shape[-1] * np.finfo(np.float64).eps * np.abs(ev).max(axis=-1, keepdims=True)
    ev[np.abs(ev) <= tol] = 0.0
    return ev


def _eig_all(factors: Sequence[_Factor], n_workers: int) -> List[np.ndarray]:
    """Decompose all factors, largest first, on n_workers threads (LAPACK releases the GIL)."""
    order = sorted(range(len(factors)), key=lambda i: -factors[i].mat.shape[-1] ** 3 * factors[i].mat.shape[0])
    if n_workers <= 1 or len(factors) <= 1:
        results = {i: _eigvalsh(factors[i]) for i in order}
    else:
        with ThreadPoolExecutor(n_workers) as pool:
            futures = {i: pool.submit(_eigvalsh, factors[i]) for i in order}
            results = {i: f.result() for i, f in futures.items()}
    return [results[i] for i in range(len(factors))]


# ----------------------------------------------------------------------------------------------
# Forward/backward with hooks
# ----------------------------------------------------------------------------------------------

def _warn_unsupported(model: nn.Module) -> None:
    skipped = []
    for name, m in model.named_modules():
        name = name or "<model>"
        if isinstance(m, SUPPORTED_LAYERS) or not any(True for _ in m.parameters(recurse=False)):
            continue
        if not is_explicit(m):
            why = ": overrides MultiheadAttention.forward" if isinstance(m, nn.MultiheadAttention) else ""
            skipped.append(f"{name} ({type(m).__name__}{why})")
        elif m.bias_k is not None:
            skipped.append(f"{name}.bias_k and {name}.bias_v (MultiheadAttention add_bias_kv)")
    if skipped:
        warnings.warn("fisher_spectrum skips weighted layers of unsupported types: " + ", ".join(skipped),
                      stacklevel=3)


def _default_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(outputs, targets)


def _sample_labels(outputs: torch.Tensor, loss, seed: int) -> torch.Tensor:
    gen = torch.Generator(device=outputs.device)
    gen.manual_seed(int(seed))
    out = outputs.detach()
    if loss is None or loss is F.cross_entropy or isinstance(loss, nn.CrossEntropyLoss):
        if out.dim() != 2:
            raise ValueError(f"labels='sampled' with cross-entropy needs [batch, classes] outputs, got {tuple(out.shape)}")
        probs = torch.softmax(out.double(), dim=1)
        return torch.multinomial(probs, 1, generator=gen).squeeze(1)
    if loss is F.mse_loss or isinstance(loss, nn.MSELoss):
        # (y - f)^2 is the negative log-likelihood of N(f, 1/2) up to a constant.
        noise = torch.randn(out.shape, generator=gen, device=out.device, dtype=out.dtype)
        return out + math.sqrt(0.5) * noise
    raise ValueError("labels='sampled' supports cross-entropy (default) and MSE losses; "
                     f"got {loss!r}: pass labels='given' or one of those losses")


def _check_finite(t: torch.Tensor, what: str) -> None:
    if not bool(torch.isfinite(t).all()):
        n_nan = int(torch.isnan(t).sum())
        n_inf = int(torch.isinf(t).sum())
        raise FisherError(f"{what} is not finite ({n_nan} NaN, {n_inf} inf of {t.numel()} values)")


class _Capture:
    def __init__(self, name: str, module: nn.Module):
        self.name, self.module = name, module
        self.input: Optional[torch.Tensor] = None
        self.output: Optional[torch.Tensor] = None


def _forward_backward(model, inputs, targets, loss, labels, seed):
    """One forward and backward pass; returns the layer captures (inputs, output grads)."""
    with explicit_attention(model) as projections:
        names = {m: n for n, m in model.named_modules() if isinstance(m, SUPPORTED_LAYERS)}
        names.update(projections)
        order, grads, targets = _hooked_pass(model, names, inputs, targets, loss, labels, seed)
    results = []
    for cap, g in zip(order, grads):
        if g is None:
            g = torch.zeros_like(cap.output)
        _check_finite(g, f"the output gradient of layer '{cap.name}'")
        results.append((cap.name, cap.module, cap.input, g.detach()))
    return results, targets


def _hooked_pass(model, names: Dict[nn.Module, str], inputs, targets, loss, labels, seed):
    """The forward and backward pass with a capture hook on every module of ``names``; returns
    the captures in the order of their first call, the gradients of their outputs (None where
    the loss does not depend on one) and the targets used."""
    captures: Dict[nn.Module, _Capture] = {}
    order: List[_Capture] = []
    handles = []

    def hook(module, args, output):
        if module in captures:
            return None  # a shared layer contributes its first call (see fisher_spectrum)
        cap = _Capture(names[module], module)
        x = args[0].detach()
        _check_finite(x, f"the input of layer '{cap.name}'")
        cap.input = x
        if not output.requires_grad:
            # No parameter requires grad: the graph starts at the first captured output, so the
            # backward pass computes no weight gradients and no gradient for the data.
            output = output.detach().requires_grad_(True)
        cap.output = output
        captures[module] = cap
        order.append(cap)
        return output

    requires = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in requires:
            p.requires_grad_(False)
        for m in names:
            handles.append(m.register_forward_hook(hook))
        with torch.enable_grad():
            outputs = model(inputs)
            _check_finite(outputs, "the model output")
            if labels == "sampled":
                targets = _sample_labels(outputs, loss, seed)
            elif labels != "given":
                raise ValueError(f"labels must be 'given' or 'sampled', got {labels!r}")
            value = (loss or _default_loss)(outputs, targets)
            if value.dim() != 0:
                raise ValueError(f"the loss must return a scalar, got shape {tuple(value.shape)}")
            _check_finite(value.detach(), "the loss")
            if not order:
                raise FisherError("the model has no Linear, Conv1d, Conv2d, Conv3d or MultiheadAttention "
                                  "layer on the forward path")
            grads = torch.autograd.grad(value, [c.output for c in order], allow_unused=True)
    finally:
        for h in handles:
            h.remove()
        for p, r in requires:
            p.requires_grad_(r)
    return order, grads, targets


def _sync(device) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _kind(module: nn.Module) -> str:
    return "Linear" if isinstance(module, AttentionProjection) else type(module).__name__


def _num_weights(module: nn.Module) -> int:
    return module.weight.numel() + (module.bias.numel() if module.bias is not None else 0)


def _spectrum(model, inputs, targets, loss=None, labels="given", seed=0, input_cache=None,
              eig_workers=None, factor_method="auto") -> FisherSpectrum:
    timings = {}
    dev = inputs.device if isinstance(inputs, torch.Tensor) else None
    t0 = time.perf_counter()
    captured, _ = _forward_backward(model, inputs, targets, loss, labels, seed)
    batch = int(inputs.shape[0]) if isinstance(inputs, torch.Tensor) else int(captured[0][2].shape[0])
    _sync(dev)
    t1 = time.perf_counter()
    timings["forward_backward"] = t1 - t0

    factors: List[Optional[_Factor]] = []
    known_eigs: Dict[int, np.ndarray] = {}
    slots: List[Tuple[int, int]] = []  # per layer: the indices of its A and G in factors
    readers: Dict[tuple, int] = {}  # a Linear-type layer's input tensor and bias flag -> its A
    for name, module, x, g in captured:
        # The same tensor read by several Linear-type layers (the q, k and v projections of
        # self-attention) gives them one A. Convolutions are left out: their A depends on geometry.
        same = None if isinstance(module, CONV_LAYERS) else (
            x.device, x.dtype, x.data_ptr(), tuple(x.shape), x.stride(), module.bias is not None)
        if same in readers:
            slots.append((readers[same], len(factors)))
            factors.append(_grad_factor(module, g, batch))
            continue
        key = (name, type(module).__name__, tuple(module.weight.shape), module.bias is not None)
        hit = None
        if input_cache is not None and key in input_cache:
            ref, eig = input_cache[key]
            if ref.shape == x.shape and ref.device == x.device and torch.equal(ref, x):
                hit = eig
        if hit is not None:
            known_eigs[len(factors)] = hit
            factors.append(None)
        else:
            factors.append(_input_factor(module, x, batch, factor_method))
        if same is not None:
            readers[same] = len(factors) - 1
        slots.append((len(factors) - 1, len(factors)))
        factors.append(_grad_factor(module, g, batch))
    _sync(dev)
    t2 = time.perf_counter()
    timings["covariances"] = t2 - t1

    todo = [i for i, f in enumerate(factors) if f is not None]
    # One decomposition at a time, each on all of LAPACK's threads: on 2 idle cores that took
    # 1.2-1.7 s for All-CNN-C's 18 factors against 2.1-2.4 s with two at a time (two 2-thread
    # LAPACK calls oversubscribe the cores); two at a time only won on a machine busy with
    # other work. eig_workers > 1 runs that many decompositions concurrently.
    n_workers = eig_workers if eig_workers is not None else 1
    eigs = dict(zip(todo, _eig_all([factors[i] for i in todo], n_workers)))
    eigs.update(known_eigs)
    if input_cache is not None and captured:
        # Only the first layer's input is the same for every candidate: keep that one.
        name, module, x, _ = captured[0]
        key = (name, type(module).__name__, tuple(module.weight.shape), module.bias is not None)
        if key not in input_cache:
            input_cache[key] = (x, eigs[0])
    t3 = time.perf_counter()
    timings["eigen"] = t3 - t2

    layers = []
    for (name, module, _, _), (ia, ig) in zip(captured, slots):
        ea, eg = eigs[ia], eigs[ig]
        dropped = int((ea <= 0).sum() + (eg <= 0).sum())
        layers.append(LayerSpectrum(name, _kind(module), _num_weights(module), ea, eg, dropped))
    return FisherSpectrum(layers, labels, batch, timings)


def fisher_spectrum(model: nn.Module, inputs, targets, loss: Optional[Callable] = None,
                    labels: str = "given", seed: int = 0) -> FisherSpectrum:
    """K-FAC factor spectra of ``model`` at its current weights on one batch (SPEC section 4).

    ``loss(outputs, targets)`` returns a scalar (default: cross-entropy, batch mean).
    ``labels="sampled"`` draws the targets from the model's predictive distribution with ``seed``
    (cross-entropy: categorical of the softmax; MSE: Gaussian of variance 1/2).
    Layers are Linear, Conv1d, Conv2d, Conv3d and the q, k, v and out projections of every
    MultiheadAttention, in the order of their first forward call; a layer called several times
    contributes its first call. Other weighted layers are skipped with one warning (see the module
    docstring). The model is left as it was, also when this raises.
    Raises FisherError when an activation, the output, the loss or a gradient is not finite.
    """
    _warn_unsupported(model)
    return _spectrum(model, inputs, targets, loss, labels, seed)


# ----------------------------------------------------------------------------------------------
# Features
# ----------------------------------------------------------------------------------------------

def _log_positive(eig) -> Tuple[list, list]:
    """Per-group natural logs of the positive eigenvalues, flattened, and the group sizes."""
    if isinstance(eig, torch.Tensor):
        parts = [e[e > 0].log() for e in eig.double()]
        return torch.cat(parts).contiguous(), [int(p.numel()) for p in parts]
    eig = np.asarray(eig, dtype=np.float64)
    if eig.ndim == 1:
        eig = eig[None]
    parts = [np.log(e[e > 0]) for e in eig]
    return np.ascontiguousarray(np.concatenate(parts)), [int(p.size) for p in parts]


def layer_cdf(eig_A, eig_G, num_weights: int, name: str = "layer"):
    """The layer's feature (SPEC section 4): CDF over ``linspace(-100, 100, n // 100)`` of all
    within-group pairwise sums log(eig_A) + log(eig_G). float32 [n // 100 - 1], or None when the
    layer is too small (n // 100 < 2). numpy arrays run on the CPU core, CUDA tensors on the GPU."""
    from . import _C

    n_edges = int(num_weights) // 100
    if n_edges < 2:
        return None
    log_a, sizes_a = _log_positive(eig_A)
    log_g, sizes_g = _log_positive(eig_G)
    if len(sizes_a) != len(sizes_g):
        raise ValueError(f"{name}: eig_A has {len(sizes_a)} groups but eig_G has {len(sizes_g)}")
    if isinstance(log_a, torch.Tensor):
        edges = torch.from_numpy(np.linspace(-100.0, 100.0, n_edges)).to(log_a.device)
        cum = torch.empty(n_edges - 1, dtype=torch.int64, device=log_a.device)
        _C.pair_cumhist(log_a, sizes_a, log_g.to(log_a.device), sizes_g, edges, cum)
        cum = cum.cpu().numpy()
    else:
        edges = np.linspace(-100.0, 100.0, n_edges)
        cum = np.empty(n_edges - 1, dtype=np.int64)
        _C.pair_cumhist(log_a, sizes_a, log_g, sizes_g, edges, cum)
    if cum[-1] == 0:
        raise FisherError(f"layer '{name}' has an empty spectrum: no pair of positive eigenvalues "
                          "with a log-sum in [-100, 100]")
    return (cum / cum[-1]).astype(np.float32)


def fisher_features(spectrum: FisherSpectrum) -> np.ndarray:
    """Concatenated per-layer CDFs (SPEC section 4), float32. Raises FisherError for an empty layer."""
    parts = []
    for layer in spectrum.layers:
        cdf = layer_cdf(layer.eig_A, layer.eig_G, layer.num_weights, layer.name)
        if cdf is not None:
            parts.append(cdf)
    if not parts:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(parts)


def fisher_features_for(build, fns, inputs, targets, loss=None, labels="given", seed=42,
                        device=None, progress=True):
    """Fisher features of many activation functions on one model architecture.

    ``build(activation_module) -> nn.Module`` is called for every name in ``fns`` with
    ``aquasurf_fast.Activation(name)``, under ``torch.manual_seed(seed)`` so that every candidate
    starts from the same weights. Returns ``(features float32 [len(fns), D], ok bool [len(fns)],
    reasons list[str])``; rows of failed functions are NaN and their reason says why ('' when ok).
    The data is moved to ``device`` once and the first layer's input factor is decomposed once.
    """
    from .nn import Activation

    fns = list(fns)
    dev = torch.device(device) if device is not None else (
        inputs.device if isinstance(inputs, torch.Tensor) else torch.device("cpu"))
    x = inputs.to(dev) if isinstance(inputs, torch.Tensor) else torch.as_tensor(inputs, device=dev)
    y = targets.to(dev) if isinstance(targets, torch.Tensor) else torch.as_tensor(targets, device=dev)
    rows: List[Optional[np.ndarray]] = [None] * len(fns)
    reasons = [""] * len(fns)
    cache: dict = {}
    warned = False
    iterator = fns
    if progress:
        from tqdm.auto import tqdm
        iterator = tqdm(fns, desc="Fisher features", unit="fn")
    for i, name in enumerate(iterator):
        try:
            torch.manual_seed(seed)
            model = build(Activation(name)).to(dev)
            if not warned:
                _warn_unsupported(model)
                warned = True
            spec = _spectrum(model, x, y, loss, labels, seed, input_cache=cache)
            rows[i] = fisher_features(spec)
        except Exception as exc:  # one bad function never stops the rest
            reasons[i] = f"{type(exc).__name__}: {exc}"
    width = next((r.size for r in rows if r is not None), 0)
    features = np.full((len(fns), width), np.nan, dtype=np.float32)
    ok = np.zeros(len(fns), dtype=bool)
    for i, r in enumerate(rows):
        if r is None:
            continue
        if r.size != width:
            reasons[i] = f"FisherError: feature length {r.size} differs from the others' {width}"
            continue
        features[i] = r
        ok[i] = True
    return features, ok, reasons
