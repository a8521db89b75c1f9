"""The Kronecker factors of one layer: A, the covariance of its inputs (im2col patches for
convolutions, per group, with a 1 prepended for a bias), and G, the covariance of the gradients
of its outputs (SPEC section 4); each computed the cheapest way its shape allows, in float64 sums.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

CONV_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)

__all__ = ["CONV_LAYERS", "Factor", "grad_factor", "input_factor"]


@dataclass
class Factor:
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
# Up to two blocks wide, a CPU product is cut in two halves from this width on: 75 % of the
# multiply-adds, and for mnist1d's 96 x 96 input factors (5,120 rows, float64, one thread) 1.42
# against 1.85 ms. Narrower products, and those on a GPU, where each block is one more launch,
# stay whole.
_HALVES_FROM = 64


def _triangle_block(d: int, device: torch.device) -> int:
    if d > 2 * _TRIANGLE_BLOCK:
        return _TRIANGLE_BLOCK
    if d >= _HALVES_FROM and device.type == "cpu":
        return (d + 1) // 2
    return d


def _gram_triangle(x: torch.Tensor) -> torch.Tensor:
    """``x^T x`` for x [N, d] computing only the upper block triangle, then mirroring."""
    d = x.shape[1]
    block = _triangle_block(d, x.device)
    if block >= d:
        return x.t() @ x
    out = torch.zeros(d, d, dtype=x.dtype, device=x.device)
    for i0 in range(0, d, block):
        i1 = min(d, i0 + block)
        out[i0:i1, i0:] = x[:, i0:i1].t() @ x[:, i0:]
    out = out.triu_()
    out += out.triu(1).t()
    return out


# Products below this many multiply-adds run in float64: they are cheap, and they are the small,
# ill-conditioned factors (1x1 convolutions, classifier layers, gradients over few locations)
# where float32 sums move eigenvalues near 1e-6 of the largest by more than 1e-4 relative.
_FLOAT64_MAC_BUDGET = 3e8


def _rows_factor(x: torch.Tensor, groups: int, bias: bool, scale: float) -> Factor:
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
        return Factor(mat, scale, dim)
    if groups == 1:
        core = _gram_triangle(x).unsqueeze(0)
    else:
        xg = x.reshape(n, groups, d).permute(1, 2, 0)  # [groups, d, n]
        core = torch.bmm(xg, xg.transpose(1, 2))
    if not bias:
        return Factor(core, scale, dim)
    mat = torch.empty(groups, dim, dim, dtype=x.dtype, device=x.device)
    mat[:, 1:, 1:] = core
    sums = x.sum(0).reshape(groups, d)
    mat[:, 0, 1:] = sums
    mat[:, 1:, 0] = sums
    mat[:, 0, 0] = float(n)
    return Factor(mat, scale, dim)


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


def _patches(xp: torch.Tensor, k, s, d, groups: int) -> torch.Tensor:
    """im2col rows [B * L, C * prod(k)] of a padded input [B, C, *spatial] (any number of spatial
    dimensions), columns in (group, *tap, channel of the group) order, rows in (b, *location) order.

    The input is copied once channels-last, then one strided view per spatial dimension
    (``Tensor.unfold`` over the dilated span, then every d-th element) is copied once by the final
    reshape, reading runs of a group's channels. Channels-major columns, the weight's order, read
    runs of one tap per channel instead: for mnist1d's second layer (32 channels, 3 taps, batch
    256) that copy took 0.62 ms against 0.30 ms, and the product then dominates (about 1.4 ms).
    ``F.unfold`` takes no 3-D volumes, and for 2-D inputs it was slower followed by the transpose
    to rows: for 96 channels at 33x33, batch 128, stride 2, 0.24 s against 0.15 s on one thread.
    """
    nd = len(k)
    view = xp.movedim(1, -1).contiguous()  # [B, *spatial, C]
    for i in range(nd):
        view = view.unfold(1 + i, d[i] * (k[i] - 1) + 1, s[i])  # appends the window dimension
    view = view[(Ellipsis,) + tuple(slice(None, None, di) for di in d)]  # [B, *out, C, *k]
    b, c = view.shape[0], view.shape[1 + nd]
    out = view.shape[1:1 + nd]
    view = view.unflatten(1 + nd, (groups, c // groups))  # [B, *out, groups, C / groups, *k]
    order = (tuple(range(0, 2 + nd)) + tuple(range(3 + nd, 3 + 2 * nd)) + (2 + nd,))
    return view.permute(order).reshape(b * math.prod(out), c * math.prod(k))


def _channels_major(factor: Factor, channels: int, taps: int, bias: bool) -> Factor:
    """A full factor of tap-major columns (``_patches``) reordered to the weight's order (channel,
    *tap), the order of its definition and of the cell method; a Gram matrix stays as it is."""
    if factor.mat.shape[-1] != factor.dim or taps == 1:
        return factor
    order = torch.arange(channels * taps, device=factor.mat.device).reshape(taps, channels).t().reshape(-1)
    if bias:
        order = torch.cat([order.new_zeros(1), order + 1])
    return Factor(factor.mat[:, order][:, :, order], factor.scale, factor.dim)


def _conv_input_factor_im2col(xp, k, s, d, groups, bias, batch) -> Factor:
    factor = _rows_factor(_patches(xp, k, s, d, groups), groups, bias, 1.0 / batch)
    return _channels_major(factor, xp.shape[1] // groups, math.prod(k), bias)


def _cell_grid(kh: int, kw: int, dh: int, dw: int, ho: int, wo: int):
    """The cells of the cell method and what each tap pair reads: (row cuts ys, column cuts xs,
    per tap its window as a box of cells (cy0, cy1, cx0, cx1), the tap offsets D of one half-plane
    with their indices, per tap pair (p, q) the index o of q - p (or -o - 1 for p - q), and per
    offset the cells it needs: those in the window of a tap p whose partner p + D is a tap)."""
    ys = sorted({ky * dh for ky in range(kh)} | {ky * dh + ho for ky in range(kh)})
    xs = sorted({kx * dw for kx in range(kw)} | {kx * dw + wo for kx in range(kw)})
    taps = [(ky, kx) for ky in range(kh) for kx in range(kw)]
    boxes = [(ys.index(ky * dh), ys.index(ky * dh + ho), xs.index(kx * dw), xs.index(kx * dw + wo))
             for ky, kx in taps]
    offsets = [(oy, ox) for oy in range(0, kh) for ox in range(-(kw - 1), kw) if oy > 0 or ox >= 0]
    index = {o: i for i, o in enumerate(offsets)}
    pair_offset = np.empty((len(taps), len(taps)), dtype=np.int64)
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
    return ys, xs, boxes, index, pair_offset, needed


def _conv_input_factor_cells(xp, k, d, pads, groups, bias, batch) -> Factor:
    """Input factor of a stride-1 convolution from per-offset, per-cell channel cross products.

    Tap p = (ky, kx) sees the window rows [ky*dy, ky*dy + Ho) x cols [kx*dx, kx*dx + Wo) of the
    padded input. Cutting the rows and columns at every window boundary gives a grid of cells such
    that each window is a rectangle of cells. For each tap offset D = q - p in one half-plane and
    each cell, sum_{u in cell} x[:, u] x[:, u + D]^T is one matrix product over contiguous rows of
    a channels-last copy; the C++ core then adds the cells of each tap pair's window.
    """
    from .. import _C

    b, c, hp, wp = xp.shape
    (kh, kw), (dh, dw) = k, d
    ho, wo = hp - dh * (kh - 1), wp - dw * (kw - 1)
    cg = c // groups
    ys, xs, boxes, index, pair_offset, needed = _cell_grid(kh, kw, dh, dw, ho, wo)
    n_cy, n_cx, n_taps = len(ys) - 1, len(xs) - 1, kh * kw
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

    S = torch.zeros(len(index), n_cy, n_cx, groups, cg, cg, dtype=xp.dtype, device=xp.device)
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
    return Factor(out, 1.0, dim)


def _cells_cost(c, groups, hp, wp, kh, kw) -> float:
    return (kh * (2 * kw - 1) - (kw - 1)) * hp * wp * (c / groups) ** 2 * groups


def _triangle_share(d: int, device: torch.device) -> float:
    """The share of the multiply-adds of ``x^T x`` (d columns) that ``_gram_triangle`` computes."""
    block = _triangle_block(d, device)
    return sum(min(block, d - i0) * (d - i0) for i0 in range(0, d, block)) / (d * d)


def _im2col_cost(n_rows, dim, groups, device) -> float:
    tri = _triangle_share(dim, device) if groups == 1 else 1.0
    return n_rows * dim * min(dim, n_rows) * groups * tri


def input_factor(module: nn.Module, x: torch.Tensor, batch: int, method: str = "auto") -> Factor:
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
    cheaper = can_cells and _cells_cost(c, groups, *xp.shape[2:], *k) * b < 0.8 * _im2col_cost(n_rows, dim, groups, x.device)
    if method == "cells" or (method == "auto" and n_rows >= dim and cheaper):
        if not cells_apply:
            raise ValueError("the cell method needs a 1-D or 2-D stride-1 convolution with zero padding; "
                             "use method='im2col' or 'auto'")
        return _conv_input_factor_cells(xp, k, d, pads, groups, bias, batch)
    return _conv_input_factor_im2col(xp, k, s, d, groups, bias, batch)


def grad_factor(module: nn.Module, g: torch.Tensor, batch: int) -> Factor:
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
