"""Float64 references of the expression kernels, in plain numpy/scipy and in torch.

They mirror ``csrc/common/ops.h`` (values ``f``, tangents ``d``) and ``csrc/cpu/evaluate_cpu.cpp``
op by op, written from the definitions of SPEC section 2 with library functions. Tests compare
every device's kernels against them; the benchmarks use them as the per-function baselines.
The torch versions are differentiable: their autograd gradients are what the fused derivatives
must match, including torch's choices at kinks (relu'(0) = 0) and ties (maximum splits a tie).
"""
from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special

from ..expr import Expr, parse

_SELU_SCALE = 1.0507009873554805
_SELU_ALPHA = 1.6732632423543772


def _np_softplus(x):
    # torch.nn.functional.softplus's threshold: x itself above 20
    return np.where(x > 20, x, np.logaddexp(0.0, x))


def _np_n(op):
    return lambda *args: functools.reduce(op, args)


NUMPY_OPS = {
    "zero": np.zeros_like,
    "one": np.ones_like,
    "identity": lambda x: x,
    "negative": np.negative,
    "abs": np.abs,
    "reciprocal": lambda x: 1.0 / x,
    "square": np.square,
    "exp": np.exp,
    "erf": special.erf,
    "erfc": special.erfc,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "tanh": np.tanh,
    "expm1": np.expm1,
    "sigmoid": special.expit,
    "log_sigmoid": lambda x: -np.logaddexp(0.0, -x),
    "arcsinh": np.arcsinh,
    "arctan": np.arctan,
    "bessel_i0e": special.i0e,
    "bessel_i1e": special.i1e,
    "relu": lambda x: np.maximum(x, 0.0),
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "selu": lambda x: _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(x)),
    "swish": lambda x: x * special.expit(x),
    "softplus": _np_softplus,
    "softsign": lambda x: x / (1.0 + np.abs(x)),
    "hard_sigmoid": lambda x: np.clip(0.2 * x + 0.5, 0.0, 1.0),
    "elish": lambda x: np.where(x > 0, x, np.expm1(x)) * special.expit(x),
    "leakyrelu": lambda x: np.where(x > 0, x, 0.01 * x),
    "mish": lambda x: x * np.tanh(_np_softplus(x)),
    "gelu": lambda x: x * 0.5 * special.erfc(-x / math.sqrt(2.0)),
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "pow": np.power,
    "max": np.maximum,
    "min": np.minimum,
    "sum_n": _np_n(np.add),
    "prod_n": _np_n(np.multiply),
    "max_n": _np_n(np.maximum),
    "min_n": _np_n(np.minimum),
}


def _torch_ops():
    import torch
    import torch.nn.functional as F

    def n_ary(op):
        return lambda *args: functools.reduce(op, args)

    return {
        "zero": torch.zeros_like,
        "one": torch.ones_like,
        "identity": lambda x: x,
        "negative": torch.neg,
        "abs": torch.abs,
        "reciprocal": torch.reciprocal,
        "square": torch.square,
        "exp": torch.exp,
        "erf": torch.erf,
        "erfc": torch.erfc,
        "sinh": torch.sinh,
        "cosh": torch.cosh,
        "tanh": torch.tanh,
        "expm1": torch.expm1,
        "sigmoid": torch.sigmoid,
        "log_sigmoid": F.logsigmoid,
        "arcsinh": torch.asinh,
        "arctan": torch.atan,
        "bessel_i0e": torch.special.i0e,
        "bessel_i1e": torch.special.i1e,
        "relu": torch.relu,
        "elu": F.elu,
        "selu": F.selu,
        "swish": lambda x: x * torch.sigmoid(x),
        "softplus": F.softplus,
        "softsign": F.softsign,
        "hard_sigmoid": lambda x: torch.clamp(0.2 * x + 0.5, 0.0, 1.0),
        # clamp keeps the unselected branch's gradient finite (where() would pass on its inf/NaN)
        "elish": lambda x: torch.where(x > 0, x, torch.expm1(torch.clamp(x, max=0.0))) * torch.sigmoid(x),
        "leakyrelu": lambda x: F.leaky_relu(x, 0.01),
        "mish": F.mish,
        "gelu": F.gelu,
        "add": torch.add,
        "sub": torch.sub,
        "mul": torch.mul,
        "div": torch.div,
        "pow": torch.pow,
        "max": torch.maximum,
        "min": torch.minimum,
        "sum_n": n_ary(torch.add),
        "prod_n": n_ary(torch.mul),
        "max_n": lambda *args: torch.stack(args).amax(0),
        "min_n": lambda *args: torch.stack(args).amin(0),
    }


@functools.lru_cache(maxsize=1)
def torch_ops() -> dict:
    """The torch twin of NUMPY_OPS (built on first use: torch is imported lazily)."""
    return _torch_ops()


def _walk(expr: Expr, x, ops):
    if expr.op == "x":
        return x
    return ops[expr.op](*(_walk(a, x, ops) for a in expr.args))


def evaluate_numpy(fn, x: np.ndarray) -> np.ndarray:
    """Reference of ``aq.evaluate`` for one function: the numpy/scipy ops composed, in x's dtype
    (float32 arithmetic for float32 x: the value semantics of the expression language)."""
    with np.errstate(all="ignore"):
        return _walk(parse(fn), x, NUMPY_OPS)


def torch_function(fn):
    """fn as a Python function of a tensor built from torch ops only (parsed once, so that
    torch.compile traces nothing but torch)."""
    expr, ops = parse(fn), torch_ops()
    return lambda x: _walk(expr, x, ops)


def evaluate_torch(fn, x):
    """Reference of ``aq.evaluate`` for one function: torch ops composed (differentiable)."""
    return torch_function(fn)(x)


# Operators whose partial derivatives are constants keep them at NaN operands (csrc/common/ops.h).
CONSTANT_DERIVATIVE_OPS = ("zero", "one", "identity", "negative", "add", "sub", "sum_n")


@functools.lru_cache(maxsize=1)
def _nan_gate():
    """An identity whose backward replaces the gradient by the operator's NaN operand where it has
    one: our rule at NaN operands (csrc/common/ops.h, nan_operand_vjp), where torch's own answer
    depends on the CPU's vector kernels."""
    import torch

    class NanGate(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a, nan):
            ctx.save_for_backward(nan)
            return a.view_as(a)

        @staticmethod
        def backward(ctx, g):
            (nan,) = ctx.saved_tensors
            return torch.where(torch.isnan(nan), nan, g), None

    return NanGate.apply


def _walk_nan_rule(expr: Expr, x, ops):
    """``_walk`` with the operands of every operator whose derivatives are not constants passed
    through the NaN gate."""
    import torch

    if expr.op == "x":
        return x
    args = [_walk_nan_rule(a, x, ops) for a in expr.args]
    if expr.op not in CONSTANT_DERIVATIVE_OPS:
        nan = torch.zeros_like(args[0]).detach()
        for a in args:
            nan = torch.where(torch.isnan(a.detach()), a.detach(), nan)
        args = [_nan_gate()(a, nan) for a in args]
    return ops[expr.op](*args)


def evaluate_grad_torch(fn, x, dtype=None):
    """Reference of ``aq.evaluate_grad``: (values, torch autograd derivative) computed in ``dtype``
    (default float64) from x's values. At a NaN operand the partial derivatives of every operator
    but those in CONSTANT_DERIVATIVE_OPS are NaN, our definition (torch's varies with the CPU);
    elsewhere they are torch's."""
    import torch

    xt = torch.as_tensor(np.asarray(x), dtype=dtype or torch.float64).detach().clone().requires_grad_(True)
    y = _walk_nan_rule(parse(fn), xt, torch_ops())
    if not y.requires_grad:  # zero(x), one(x): no gradient path, the derivative is 0
        return y.detach(), torch.zeros_like(xt)
    (g,) = torch.autograd.grad(y.sum(), xt, allow_unused=True)
    return y.detach(), torch.zeros_like(xt) if g is None else g


def farthest_points_numpy(points: np.ndarray, seeds, first: int, n_select: int) -> list:
    """Reference of ``_C.farthest_points`` (points given [n, d] here): greedy farthest-point
    selection in float64, ties to the lowest index, stopping when every point is chosen."""
    p = np.asarray(points, dtype=np.float64)
    min_d2 = np.full(len(p), np.inf)
    out = []
    centres = list(seeds)
    if not centres and len(p) and n_select > 0:
        centres = [first]
        out.append(first)
    for c in centres:
        min_d2 = np.minimum(min_d2, ((p - p[c]) ** 2).sum(axis=1))
    while len(out) < n_select and len(p) and min_d2.max() > 0:
        i = int(np.argmax(min_d2))
        out.append(i)
        min_d2 = np.minimum(min_d2, ((p - p[i]) ** 2).sum(axis=1))
    return out
