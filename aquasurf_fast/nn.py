"""``Activation``: a candidate activation function as a torch module with fused kernels.

Forward and backward each run one fused C++ (or CUDA) kernel over the tensor, instead of a chain
of torch ops with an intermediate tensor per op; backward saves only the input.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from . import _C
from .expr import parse
from .kernels import compile as compile_fns, evaluate

# Trapezoid rule on [-12, 12] (the normal density is below 1e-31 beyond): for smooth functions
# it converges geometrically, and at kinks (relu, max) its error is O(h^2) = 1e-8.
_QUADRATURE_HALF_WIDTH = 12.0
_QUADRATURE_POINTS = 240_001


def _values_into(program, x: torch.Tensor, out: torch.Tensor, shift: float, scale: float) -> None:
    """``scale * (f(x) - shift)`` into ``out``; both contiguous, of one shape."""
    _C.evaluate(program, x, values=out.unsqueeze(0), stream=_stream(x))
    if shift != 0.0 or scale != 1.0:
        out.sub_(shift).mul_(scale)


def _grads_into(program, x: torch.Tensor, grad_out: torch.Tensor, scale: float,
                out: torch.Tensor) -> None:
    """The input's gradient into ``out`` given the output's; all contiguous, of one shape."""
    if scale != 1.0:
        grad_out = grad_out * scale
    # One pass recomputes f's intermediate values and sweeps back from grad_out.
    _C.evaluate(program, x, grads=out.unsqueeze(0), grad_out=grad_out, stream=_stream(x))


class _FusedActivation(torch.autograd.Function):
    """``activations[k]`` on part k of x's equal parts along dimension 0 (one activation: all of
    x), written into one output: one kernel call per part forward and backward, no copies."""

    @staticmethod
    def forward(ctx, x, activations):
        x_c = x.detach().contiguous()
        y = torch.empty_like(x_c)
        n = len(activations)
        for act, xs, ys in zip(activations, x_c.view(n, -1), y.view(n, -1)):
            _values_into(act._program, xs, ys, act.shift, act.scale)
        ctx.save_for_backward(x_c)
        ctx.activations = activations
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        grad_out = grad_out.contiguous().to(x.dtype)
        grad_in = torch.empty_like(x)
        n = len(ctx.activations)
        for act, xs, gs, out in zip(ctx.activations, x.view(n, -1), grad_out.view(n, -1), grad_in.view(n, -1)):
            _grads_into(act._program, xs, gs, act.scale, out)
        return grad_in, None


def apply_by_slices(activations: Sequence["Activation"], x: torch.Tensor, slice_size: int) -> torch.Tensor:
    """``activations[k]`` applied to rows ``[k * slice_size, (k + 1) * slice_size)`` of dimension 0
    of x (which must have ``len(activations) * slice_size`` of them), forward and backward: bit for
    bit what each Activation gives on its rows, one fused kernel call per slice, and no copies of
    the slices (``fisher.stacked``: many candidates in one pass)."""
    if x.dim() == 0 or x.shape[0] != len(activations) * slice_size:
        raise ValueError(f"x has shape {tuple(x.shape)}; dimension 0 must be {len(activations)} "
                         f"activations x {slice_size} rows")
    return _in_kernel_dtype(x, lambda x: _FusedActivation.apply(x, tuple(activations)), "apply_by_slices")


def _in_kernel_dtype(x: torch.Tensor, run, who: str) -> torch.Tensor:
    """``run(x)`` for a float32 or float64 x. Mixed precision (autocast) hands half-precision
    tensors: the kernels compute in float32, as autocast itself does for the ops it keeps in
    float32, and the result returns in the input's dtype."""
    if x.dtype in (torch.float16, torch.bfloat16):
        return run(x.float()).to(x.dtype)
    if not x.is_floating_point() or x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{who} takes float16, bfloat16, float32 or float64 tensors, got {x.dtype}")
    return run(x)


def _stream(x: torch.Tensor) -> int:
    return torch.cuda.current_stream(x.device).cuda_stream if x.is_cuda else 0


def gaussian_moments(fn) -> tuple:
    """(mean, standard deviation) of fn(Z), Z ~ N(0, 1), by quadrature in float64."""
    nodes, h = np.linspace(-_QUADRATURE_HALF_WIDTH, _QUADRATURE_HALF_WIDTH, _QUADRATURE_POINTS, retstep=True)
    weights = np.full_like(nodes, h)
    weights[[0, -1]] = h / 2
    weights *= np.exp(-0.5 * nodes**2) / math.sqrt(2.0 * math.pi)
    with np.errstate(all="ignore"):  # non-finite moments are reported by the caller
        values = evaluate(fn, nodes)[0]
        mean = float(weights @ values)
        variance = float(weights @ (values - mean) ** 2)
    return mean, math.sqrt(variance) if variance >= 0 else float("nan")


class Activation(torch.nn.Module):
    """An activation function given by its expression, e.g. ``Activation("max(relu(x),cosh(elu(x)))")``.

    Forward and backward run the fused kernel on the tensor's device (CPU, or CUDA when built
    with it). ``normalize=True`` shifts and scales the function to zero mean and unit second
    moment under N(0, 1); the constants are computed once, by quadrature.
    """

    def __init__(self, name: str, normalize: bool = False) -> None:
        super().__init__()
        self.name = str(parse(name))
        self.normalize = bool(normalize)
        self.shift, self.scale = 0.0, 1.0
        if self.normalize:
            mean, std = gaussian_moments(self.name)
            if not (math.isfinite(mean) and math.isfinite(std)) or std == 0.0:
                raise ValueError(f"cannot normalize {self.name}: under N(0, 1) its mean is {mean} and its standard "
                                 f"deviation {std}; use normalize=False for this function")
            self.shift, self.scale = mean, 1.0 / std
        self._program = compile_fns(self.name, with_grad=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _in_kernel_dtype(x, lambda x: _FusedActivation.apply(x, (self,)), f"Activation({self.name})")

    def extra_repr(self) -> str:
        return f"{self.name!r}" + (", normalize=True" if self.normalize else "")

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_program"]  # compiled code is rebuilt from the name
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._program = compile_fns(self.name, with_grad=True)
