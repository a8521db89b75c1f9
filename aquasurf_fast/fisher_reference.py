"""float64 references of the Fisher-spectrum kernels, straight from the definitions (SPEC section 4).

Slow and simple on purpose: explicit unfold, explicit sums of outer products, materialized pairs.
Tests compare the fast paths of aquasurf_fast.fisher (and the C++/CUDA core) against these.
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_patches_reference(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """im2col patches [B, L, C*kh*kw] in float64 (channel-major (c, ky, kx) order), padding applied
    as the module does. Mirrors the patch extraction inside fisher._input_factor (both the
    im2col path and the cell path of csrc conv_cov_assemble)."""
    x = x.double()
    if isinstance(module, nn.Conv1d):
        x = x.unsqueeze(2)
        k, s, d = (1, module.kernel_size[0]), (1, module.stride[0]), (1, module.dilation[0])
        pad = module.padding
        if not isinstance(pad, str):
            pad = (0, pad[0])
    else:
        k, s, d, pad = module.kernel_size, module.stride, module.dilation, module.padding
    if isinstance(pad, str):
        if pad == "valid":
            lr = [(0, 0), (0, 0)]
        else:
            tot = [d[i] * (k[i] - 1) for i in range(2)]
            lr = [(t // 2, t - t // 2) for t in tot]
    else:
        lr = [(pad[0], pad[0]), (pad[1], pad[1])]
    mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
    x = F.pad(x, (lr[1][0], lr[1][1], lr[0][0], lr[0][1]), mode=mode)
    return F.unfold(x, k, dilation=d, stride=s).transpose(1, 2)


def input_factor_reference(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A [n_groups, dim, dim] float64: sum over batch and locations of a a^T / B, a = the layer
    input (Linear) or im2col patch of one group (conv), with a 1 prepended when there is a bias.
    Mirrors fisher._input_factor (rows/triangle/Gram paths and the csrc cell assembly)."""
    batch = x.shape[0]
    if isinstance(module, nn.Linear):
        rows = x.double().reshape(-1, x.shape[-1]).unsqueeze(1)  # [N, 1, D]
        groups = 1
    else:
        p = conv_patches_reference(module, x)
        groups = module.groups
        rows = p.reshape(-1, groups, p.shape[-1] // groups)  # [N, groups, d]
    if module.bias is not None:
        rows = torch.cat([torch.ones_like(rows[..., :1]), rows], dim=-1)
    return torch.einsum("ngi,ngj->gij", rows, rows) / batch


def grad_factor_reference(module: nn.Module, g: torch.Tensor) -> torch.Tensor:
    """G [n_groups, dim, dim] float64: sum of g g^T over batch and output locations / (B T).
    Mirrors fisher._grad_factor."""
    g = g.double()
    if isinstance(module, nn.Linear):
        rows = g.reshape(-1, g.shape[-1]).unsqueeze(1)
    else:
        groups = module.groups
        rows = g.reshape(g.shape[0], g.shape[1], -1).transpose(1, 2).reshape(-1, g.shape[1])
        rows = rows.reshape(rows.shape[0], groups, -1)
    return torch.einsum("ngi,ngj->gij", rows, rows) / rows.shape[0]


def layer_factors_reference(model: nn.Module, inputs, targets, loss=None) -> List[Tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, A, G) per supported layer, from plain forward hooks and autograd in float64
    arithmetic for the sums. Mirrors fisher._forward_backward + the factor kernels."""
    caps = []

    def hook(module, args, out):
        out.retain_grad()
        caps.append((module, args[0].detach(), out))

    names = {m: n for n, m in model.named_modules()}
    hs = [m.register_forward_hook(hook) for m in model.modules()
          if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    try:
        out = model(inputs)
        value = (loss or F.cross_entropy)(out, targets)
        value.backward()
    finally:
        for h in hs:
            h.remove()
    return [(names[m], input_factor_reference(m, x), grad_factor_reference(m, o.grad)) for m, x, o in caps]


def eigvals_reference(factor: torch.Tensor) -> np.ndarray:
    """float64 eigenvalues [n_groups, dim] ascending, those below LAPACK's error bound
    (dim * eps * max) set to 0. Mirrors fisher._eigvalsh."""
    ev = torch.linalg.eigvalsh(factor.double()).numpy()
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
