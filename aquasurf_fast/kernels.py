"""Evaluate many activation functions at once on numpy, torch or cupy arrays.

The output is allocated by the input's own library on the input's device: numpy in, numpy out;
a torch tensor (CPU or CUDA) in, a torch tensor out; a cupy array in, a cupy array out.
"""
from __future__ import annotations

import sys
from functools import lru_cache
from typing import Iterable, Union

import numpy as np

from . import _C
from .expr import Expr, ParseError, check_characters

FunctionsLike = Union[str, Expr, Iterable[Union[str, Expr]], "_C.Program"]

_FLOAT_DTYPES = ("float32", "float64")


def compile(fns: FunctionsLike, with_grad: bool = False) -> "_C.Program":  # noqa: A001 - the verb users expect
    """Compile functions once for repeated evaluation (shared subexpressions are computed once).

    ``with_grad=True`` also prepares the backward sweeps that derivatives need.
    """
    if isinstance(fns, _C.Program):
        if with_grad and not fns.with_grad:
            raise ValueError("this program was compiled without gradients; use compile(fns, with_grad=True)")
        return fns
    if isinstance(fns, (str, Expr)):
        fns = [fns]
    return _compile_names(tuple(str(f) for f in fns), with_grad)


@lru_cache(maxsize=256)
def _compile_names(names: tuple, with_grad: bool) -> "_C.Program":
    try:
        return _C.compile(list(names), with_grad)
    except (ParseError, UnicodeDecodeError, TypeError):
        for i, name in enumerate(names):  # the core's own message is unclear about these
            check_characters(name, prefix=f"name #{i}: ")
        raise


def cuda_available() -> bool:
    """Whether the CUDA kernels were compiled in and a GPU can run them."""
    return bool(_C.built_with_cuda) and _C.cuda_available()


def _is_torch(x) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _is_cupy(x) -> bool:
    cupy = sys.modules.get("cupy")
    return cupy is not None and isinstance(x, cupy.ndarray)


def _prepare(x):
    """(x as a contiguous float array of its own library, allocator of outputs, stream handle)."""
    if _is_torch(x):
        import torch

        x = x.detach()
        if str(x.dtype).replace("torch.", "") not in _FLOAT_DTYPES:
            x = x.to(torch.float32)
        x = x.contiguous()
        if x.device.type == "cuda":
            stream = torch.cuda.current_stream(x.device).cuda_stream
        elif x.device.type == "cpu":
            stream = 0
        else:
            raise TypeError(f"torch tensors on {x.device.type} are not supported (CPU or CUDA only)")
        return x, lambda shape: torch.empty(shape, dtype=x.dtype, device=x.device), stream
    if _is_cupy(x):
        import cupy

        if x.dtype.name not in _FLOAT_DTYPES:
            x = x.astype(cupy.float32)
        x = cupy.ascontiguousarray(x)
        return x, lambda shape: cupy.empty(shape, dtype=x.dtype), cupy.cuda.get_current_stream().ptr
    if isinstance(x, np.ndarray) or np.isscalar(x) or isinstance(x, (list, tuple)):
        arr = np.asarray(x)
        if arr.dtype.name not in _FLOAT_DTYPES:
            if arr.dtype.kind not in "biuf":
                raise TypeError(f"x must hold numbers, got a numpy array of dtype {arr.dtype}")
            arr = arr.astype(np.float32)
        arr = np.ascontiguousarray(arr)
        return arr, lambda shape: np.empty(shape, dtype=arr.dtype), 0
    raise TypeError(f"x must be a numpy array, a torch tensor or a cupy array, got {type(x).__module__}."
                    f"{type(x).__qualname__}")


def evaluate(fns: FunctionsLike, x) -> "np.ndarray":
    """Values of every function at every element of x: an array [len(fns), *x.shape].

    ``fns`` is a name, an :class:`Expr`, a list of them, or a program from :func:`compile`.
    float32 and float64 inputs keep their dtype; other numbers are computed in float32.
    """
    program = compile(fns)
    x, empty, stream = _prepare(x)
    values = empty((program.n_fns, *x.shape))
    _C.evaluate(program, x, values=values, stream=stream)
    return values


def evaluate_grad(fns: FunctionsLike, x):
    """(values, derivatives) of every function at every element of x, each [len(fns), *x.shape].

    Derivatives come from a backward sweep in the same kernel that applies, op by op, the formulas
    torch autograd applies to the composite expression: they match torch, including its choices
    at kinks and ties and its propagation of inf and NaN.
    """
    program = compile(fns, with_grad=True)
    x, empty, stream = _prepare(x)
    values = empty((program.n_fns, *x.shape))
    derivatives = empty((program.n_fns, *x.shape))
    _C.evaluate(program, x, values=values, grads=derivatives, stream=stream)
    return values, derivatives


def set_num_threads(n: int) -> None:
    """Number of threads of the CPU kernels (default: AQF_NUM_THREADS, else all hardware threads)."""
    _C.set_num_threads(int(n))


def num_threads() -> int:
    return _C.num_threads()


def set_calling_thread_only(on: bool) -> bool:
    """Whether CPU kernels called from this thread run on it alone instead of on the kernels' pool
    (one pool for the process, one kernel at a time): for a thread that is one of several
    parallel workers already. Per thread; returns the previous setting."""
    return bool(_C.set_calling_thread_only(bool(on)))
