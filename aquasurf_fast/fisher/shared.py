"""What the Fisher modules share: the one-at-a-time spectrum (``spectrum``), the passes of many
candidates (``batched``) and the featurization of many candidates (``candidates``) all hook the
same layers and check the same values, follow one thread policy, compute each layer's factors once
and decompose them to the same float64 eigenvalues; this module holds that one way of doing it.

* the layers (``SUPPORTED_LAYERS``, ``num_weights``, ``warn_unsupported``) and the errors
  (``FisherError``, ``check_finite``);
* the thread policy of ``threads="auto"`` (``check_threads``, ``threads_for``);
* one forward and backward pass's captures (``captured_layers``) and a candidate's loss
  (``candidate_loss``);
* a pass's factors (``PassFactors``: layers that read one tensor share one input factor) and the
  first layer's input factor kept across candidates (``FirstLayerCache``), then the eigenvalues
  (``eigvalsh``, ``scaled_eigenvalues``, ``numerical_zeros_to_zero``).
"""
from __future__ import annotations

import contextlib
import math
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..runtime.threads import thread_limit
from .attention import is_explicit
from .factors import CONV_LAYERS, Factor, grad_factor, input_factor

__all__ = ["NO_LAYER", "SINGLE_THREAD_MAX_WEIGHTS", "SUPPORTED_LAYERS", "FirstLayerCache", "FisherError",
           "PassFactors", "candidate_loss", "captured_layers", "check_finite", "check_threads", "eigvalsh",
           "num_weights", "numerical_zeros_to_zero", "scaled_eigenvalues", "threads_for", "warn_unsupported"]


class FisherError(RuntimeError):
    """The Fisher spectrum of a model cannot be computed (non-finite values, empty spectrum)."""


# Module types hooked directly; nn.MultiheadAttention is covered through its projections.
SUPPORTED_LAYERS = (nn.Linear,) + CONV_LAYERS
NO_LAYER = ("the model has no Linear, Conv1d, Conv2d, Conv3d or MultiheadAttention layer on the "
            "forward path")


def num_weights(module: nn.Module) -> int:
    """A layer's weights and biases: the ``n`` of its feature's ``n // 100`` bins (``layer_cdf``)."""
    return module.weight.numel() + (module.bias.numel() if module.bias is not None else 0)


def warn_unsupported(model: nn.Module) -> None:
    """One warning naming every weighted module of ``model`` that the spectrum skips, if any,
    attributed to the caller of this function's caller (the code that called ``fisher_spectrum``)."""
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


# ----------------------------------------------------------------------------------------------
# Threads
# ----------------------------------------------------------------------------------------------

# Models up to this many weights run on one thread under threads="auto". Below it every product
# and decomposition takes milliseconds, where a second thread saves at most half on an idle
# machine and costs many times over on a busy one (runtime.threads says why): with the other
# core of 2 busy, mnist1d's 9.6k-weight model featurized at 24 candidates/s on one thread and 2-4/s
# on two. Above it (All-CNN-C has 1.4M weights; its largest factor is 1729 x 1729) a single
# decomposition is large enough for threads to pay on an idle machine, so the caller's settings
# stand, and threads=1 is the explicit choice for a busy one (there All-CNN-C took 3.3 s per
# candidate on one thread and 5-43 s on two).
SINGLE_THREAD_MAX_WEIGHTS = 1_000_000


def check_threads(threads) -> None:
    """Raises ValueError unless ``threads`` is "auto", None or a positive int."""
    if threads in ("auto", None) or (isinstance(threads, int) and not isinstance(threads, bool)
                                     and threads >= 1):
        return
    raise ValueError(f"threads must be 'auto', None or a positive int, got {threads!r}")


def threads_for(model: nn.Module, threads):
    """The thread_limit of a checked ``threads`` argument for ``model``, or a block that changes
    nothing."""
    if threads == "auto":
        small = sum(p.numel() for p in model.parameters()) <= SINGLE_THREAD_MAX_WEIGHTS
        threads = 1 if small else None
    return thread_limit(threads) if threads is not None else contextlib.nullcontext()


# ----------------------------------------------------------------------------------------------
# One forward and backward pass
# ----------------------------------------------------------------------------------------------

def check_finite(t: torch.Tensor, what: str) -> None:
    """Raises FisherError, saying what ``t`` is and how many values are NaN or infinite, unless
    every value of ``t`` is finite."""
    if not bool(torch.isfinite(t).all()):
        n_nan = int(torch.isnan(t).sum())
        n_inf = int(torch.isinf(t).sum())
        raise FisherError(f"{what} is not finite ({n_nan} NaN, {n_inf} inf of {t.numel()} values)")


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


def candidate_loss(outputs: torch.Tensor, targets, loss, labels: str, seed: int):
    """(scalar loss, targets used) of one candidate's ``outputs``: with the given targets, or
    with labels sampled from the model's predictive distribution under ``seed``."""
    if labels == "sampled":
        targets = _sample_labels(outputs, loss, seed)
    elif labels != "given":
        raise ValueError(f"labels must be 'given' or 'sampled', got {labels!r}")
    value = (loss or _default_loss)(outputs, targets)
    if value.dim() != 0:
        raise ValueError(f"the loss must return a scalar, got shape {tuple(value.shape)}")
    return value, targets


@contextlib.contextmanager
def captured_layers(model: nn.Module, names: Dict[nn.Module, str], on_capture: Callable):
    """Hooks on every module of ``names`` with the parameters frozen, for one forward and
    backward pass: yields a dict module -> (input, output) in the order of the modules' first
    calls (a shared layer contributes its first call, see fisher_spectrum). ``on_capture(name,
    input, output)`` checks each capture and may raise. Parameters and hooks are restored on exit.
    """
    captured: Dict[nn.Module, tuple] = {}

    def hook(module, args, output):
        if module in captured:
            return None
        x = args[0].detach()
        on_capture(names[module], x, output)
        if not output.requires_grad:
            # No parameter requires grad: the graph starts at the first captured output, so the
            # backward pass computes no weight gradients and no gradient for the data.
            output = output.detach().requires_grad_(True)
        captured[module] = (x, output)
        return output

    requires = [(p, p.requires_grad) for p in model.parameters()]
    handles = []
    try:
        for p, _ in requires:
            p.requires_grad_(False)
        handles = [m.register_forward_hook(hook) for m in names]
        with torch.enable_grad():
            yield captured
    finally:
        for h in handles:
            h.remove()
        for p, r in requires:
            p.requires_grad_(r)


# ----------------------------------------------------------------------------------------------
# Factors and eigenvalues
# ----------------------------------------------------------------------------------------------

def eigvalsh(factor: Factor) -> np.ndarray:
    """float64 eigenvalues [n_groups, dim] (ascending) of a factor."""
    return scaled_eigenvalues(torch.linalg.eigvalsh(factor.mat.double()), factor)


def scaled_eigenvalues(ev: torch.Tensor, factor: Factor) -> np.ndarray:
    """The factor's eigenvalues [n_groups, dim] from those of its ``mat`` (``ev``, float64):
    scaled, numerical zeros set to 0, padded with the zeros of a Gram matrix."""
    ev = numerical_zeros_to_zero((ev * factor.scale).cpu().numpy())
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


def _same_input(module: nn.Module, x: torch.Tensor) -> Optional[tuple]:
    """What makes a Linear-type layer's A that of another layer: the same tensor read, with the
    same bias flag. None for convolutions: their A depends on their geometry too."""
    if isinstance(module, CONV_LAYERS):
        return None
    return x.device, x.dtype, x.data_ptr(), tuple(x.shape), x.stride(), module.bias is not None


def _layer_key(name: str, module: nn.Module) -> tuple:
    return name, type(module).__name__, tuple(module.weight.shape), module.bias is not None


class FirstLayerCache:
    """The first layer's input and the eigenvalues of its A, kept across the candidates of one
    ``fisher_features_for`` call, passes and one-at-a-time spectra alike. Every candidate starts
    from the same weights and reads the same batch, so its first layer reads the same values and
    its A need not be decomposed again; later layers read what the candidate's activation made.
    """

    def __init__(self):
        self._entries: Dict[tuple, Tuple[torch.Tensor, np.ndarray]] = {}

    def eigenvalues(self, name: str, module: nn.Module, x: torch.Tensor) -> Optional[np.ndarray]:
        """The eigenvalues of the layer's A kept for exactly this input ``x``, else None."""
        entry = self._entries.get(_layer_key(name, module))
        if entry is None:
            return None
        kept, eig = entry
        same = kept.shape == x.shape and kept.device == x.device and torch.equal(kept, x)
        return eig if same else None

    def keep(self, name: str, module: nn.Module, x: torch.Tensor, eig_a: np.ndarray) -> None:
        """Keep the layer's input ``x`` and its A's eigenvalues, unless the layer has some kept."""
        self._entries.setdefault(_layer_key(name, module), (x, eig_a))


class PassFactors:
    """The factors of the layers of one forward/backward pass (one candidate's, or each
    candidate's in a stacked pass), each A computed once, and their eigenvalues by position.

    ``input`` and ``grad`` give the positions of a layer's A and G. Layers that read the same
    tensor (the q, k and v projections of self-attention) share one A; the first layer's A comes
    from ``cache`` when its input is the one kept there, and is kept there once decomposed.
    ``eigenvalues(decompose)`` decomposes the factors that need it, all in one call.
    """

    def __init__(self, batch: int, cache: Optional[FirstLayerCache] = None):
        self.batch = batch
        self.cache = cache
        self._items: List[Union[Factor, np.ndarray]] = []  # factors, or eigenvalues known already
        self._readers: Dict[tuple, int] = {}  # _same_input -> the position of that input's A
        self._first: Optional[tuple] = None  # the first layer's name, module, input and A's position

    def input(self, name: str, module: nn.Module, x: torch.Tensor, first: bool = False) -> int:
        """The position of A for the layer reading ``x`` (its rows of the batch); ``first``: the
        model's first layer, whose A the cache may hold."""
        same = _same_input(module, x)
        if same in self._readers:
            return self._readers[same]
        known = self.cache.eigenvalues(name, module, x) if first and self.cache is not None else None
        position = self._add(input_factor(module, x, self.batch) if known is None else known)
        if same is not None:
            self._readers[same] = position
        if first and self._first is None:
            self._first = (name, module, x, position)
        return position

    def grad(self, module: nn.Module, g: torch.Tensor) -> int:
        """The position of G for the layer whose output has the gradient ``g``."""
        return self._add(grad_factor(module, g, self.batch))

    def eigenvalues(self, decompose: Callable[[Sequence[Factor]], List[np.ndarray]]) -> List[np.ndarray]:
        """The eigenvalues of every position, those of the factors from ``decompose(factors)``;
        keeps the first layer's in the cache."""
        todo = [i for i, item in enumerate(self._items) if isinstance(item, Factor)]
        eigs = list(self._items)
        for i, ev in zip(todo, decompose([self._items[i] for i in todo])):
            eigs[i] = ev
        if self.cache is not None and self._first is not None:
            name, module, x, position = self._first
            self.cache.keep(name, module, x, eigs[position])
        return eigs

    def _add(self, item) -> int:
        self._items.append(item)
        return len(self._items) - 1
