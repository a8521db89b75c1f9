"""The floor of a Fisher-spectrum pass: the floating-point operations no K-FAC method can skip,
which divided by the machine's measured matmul rate give the time below which none can go.

Counted per Linear and convolution call (attention's projections through the model that
``fisher_reference.reference_model`` returns, where hooks see them): the forward product, the
product that carries the gradient back to its input (the weights are frozen, so no weight
gradient), and the two covariance products, each at its cheapest (only one triangle of a
symmetric product; the N x N Gram matrix when a factor has fewer rows N than columns). Each
multiply-add is 2 operations. The eigendecompositions are left out: their cost depends on
LAPACK's algorithm, not on a product count.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

__all__ = ["floor_flops"]

_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def covariance_macs(n_rows: int, dim: int, groups: int = 1) -> float:
    """Multiply-adds of ``X^T X`` for one [n_rows, dim] block per group, at its cheapest."""
    if n_rows < dim:
        return groups * n_rows * (n_rows + 1) / 2 * dim
    return groups * n_rows * dim * (dim + 1) / 2


def layer_macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> float:
    """Forward + input-gradient + both covariances' multiply-adds of one layer call."""
    bias = int(module.bias is not None)
    if isinstance(module, nn.Linear):
        n_rows = inp.numel() // inp.shape[-1]
        product = n_rows * module.in_features * module.out_features
        return 2 * product + covariance_macs(n_rows, module.in_features + bias) + \
            covariance_macs(n_rows, module.out_features)
    groups = module.groups
    locations = math.prod(out.shape[2:])
    n_rows = inp.shape[0] * locations
    patch = module.in_channels // groups * math.prod(module.kernel_size)
    product = n_rows * module.out_channels * patch
    return 2 * product + covariance_macs(n_rows, patch + bias, groups) + \
        covariance_macs(n_rows, module.out_channels // groups, groups)


def floor_flops(model: nn.Module, inputs: torch.Tensor) -> float:
    """Floating-point operations of the floor (see the module docstring) of one pass of
    ``model`` on ``inputs``; a layer called several times counts its first call, as the Fisher
    pass does."""
    seen = {}

    def hook(module, args, out):
        if module not in seen:
            seen[module] = layer_macs(module, args[0], out)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, _LAYERS)]
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for h in handles:
            h.remove()
    return 2.0 * sum(seen.values())
