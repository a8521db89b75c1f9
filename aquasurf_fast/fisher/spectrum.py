"""Fisher-spectrum features (SPEC section 4): K-FAC factors at initialization, their float64
eigenvalues, and the per-layer CDF of all pairwise log-eigenvalue sums.

Layers covered: ``nn.Linear`` (on [B, D] or [B, T, ..., D] inputs), ``nn.Conv1d``, ``nn.Conv2d``
and ``nn.Conv3d`` (any stride, padding, padding mode, dilation and groups, depthwise included),
and the four linear maps of every ``nn.MultiheadAttention`` wherever it sits (``nn.Transformer``,
``nn.TransformerEncoderLayer``, ViT encoder blocks): layers ``<attention>.q``, ``.k``, ``.v`` and
``.out``, each a Linear layer over the tokens it reads (see ``fisher.attention``). Skipped,
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

import contextlib
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..runtime.threads import thread_limit
from .attention import AttentionProjection, explicit_attention, is_explicit
from .factors import CONV_LAYERS, _Factor, _grad_factor, _input_factor

__all__ = [
    "FisherError",
    "LayerSpectrum",
    "FisherSpectrum",
    "fisher_spectrum",
    "fisher_features",
    "layer_cdf",
]

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


def _check_threads(threads) -> None:
    if threads in ("auto", None) or (isinstance(threads, int) and not isinstance(threads, bool)
                                     and threads >= 1):
        return
    raise ValueError(f"threads must be 'auto', None or a positive int, got {threads!r}")


def _threads_for(model: nn.Module, threads):
    """The thread_limit of a checked ``threads`` argument for ``model``, or a block that changes
    nothing."""
    if threads == "auto":
        small = sum(p.numel() for p in model.parameters()) <= SINGLE_THREAD_MAX_WEIGHTS
        threads = 1 if small else None
    return thread_limit(threads) if threads is not None else contextlib.nullcontext()


# ----------------------------------------------------------------------------------------------
# Eigenvalues
# ----------------------------------------------------------------------------------------------

def _eigvalsh(factor: _Factor) -> np.ndarray:
    """float64 eigenvalues [n_groups, dim] (ascending) of a factor."""
    return scaled_eigenvalues(torch.linalg.eigvalsh(factor.mat.double()), factor)


def scaled_eigenvalues(ev: torch.Tensor, factor: _Factor) -> np.ndarray:
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


def _eig_all(factors: Sequence[_Factor]) -> List[np.ndarray]:
    """Decompose the factors one at a time, each on all of LAPACK's threads: on 2 idle cores that
    took 1.2-1.7 s for All-CNN-C's 18 factors against 2.1-2.4 s with two at a time (two 2-thread
    LAPACK calls oversubscribe the cores)."""
    return [_eigvalsh(f) for f in factors]


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


NO_LAYER = ("the model has no Linear, Conv1d, Conv2d, Conv3d or MultiheadAttention layer on the "
            "forward path")


def _forward_backward(model, inputs, targets, loss, labels, seed):
    """One forward and backward pass; returns the layer captures (inputs, output grads)."""
    with explicit_attention(model) as projections:
        names = {m: n for n, m in model.named_modules() if isinstance(m, SUPPORTED_LAYERS)}
        names.update(projections)
        order, grads, targets = _hooked_pass(model, names, inputs, targets, loss, labels, seed)
    results = []
    for (module, (x, out)), g in zip(order, grads):
        if g is None:
            g = torch.zeros_like(out)
        _check_finite(g, f"the output gradient of layer '{names[module]}'")
        results.append((names[module], module, x, g.detach()))
    return results, targets


def _hooked_pass(model, names: Dict[nn.Module, str], inputs, targets, loss, labels, seed):
    """The forward and backward pass with a capture hook on every module of ``names``; returns
    the captures (module, (input, output)) in the order of their first call, the gradients of
    their outputs (None where the loss does not depend on one) and the targets used."""
    def check(name, x, output):
        _check_finite(x, f"the input of layer '{name}'")

    with captured_layers(model, names, check) as captured:
        outputs = model(inputs)
        _check_finite(outputs, "the model output")
        value, targets = candidate_loss(outputs, targets, loss, labels, seed)
        _check_finite(value.detach(), "the loss")
        if not captured:
            raise FisherError(NO_LAYER)
        order = list(captured.items())
        grads = torch.autograd.grad(value, [out for _, (_, out) in order], allow_unused=True)
    return order, grads, targets


def _sync(device) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _kind(module: nn.Module) -> str:
    return "Linear" if isinstance(module, AttentionProjection) else type(module).__name__


def _num_weights(module: nn.Module) -> int:
    return module.weight.numel() + (module.bias.numel() if module.bias is not None else 0)


def _spectrum(model, inputs, targets, loss=None, labels="given", seed=0,
              input_cache=None) -> FisherSpectrum:
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
            factors.append(_input_factor(module, x, batch))
        if same is not None:
            readers[same] = len(factors) - 1
        slots.append((len(factors) - 1, len(factors)))
        factors.append(_grad_factor(module, g, batch))
    _sync(dev)
    t2 = time.perf_counter()
    timings["covariances"] = t2 - t1

    todo = [i for i, f in enumerate(factors) if f is not None]
    eigs = dict(zip(todo, _eig_all([factors[i] for i in todo])))
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
                    labels: str = "given", seed: int = 0, threads="auto") -> FisherSpectrum:
    """K-FAC factor spectra of ``model`` at its current weights on one batch (SPEC section 4).

    ``loss(outputs, targets)`` returns a scalar (default: cross-entropy, batch mean).
    ``labels="sampled"`` draws the targets from the model's predictive distribution with ``seed``
    (cross-entropy: categorical of the softmax; MSE: Gaussian of variance 1/2).
    Layers are Linear, Conv1d, Conv2d, Conv3d and the q, k, v and out projections of every
    MultiheadAttention, in the order of their first forward call; a layer called several times
    contributes its first call. Other weighted layers are skipped with one warning (see the module
    docstring). The model is left as it was, also when this raises.
    ``threads``: "auto" runs a model of at most ``SINGLE_THREAD_MAX_WEIGHTS`` weights on one
    thread and a larger one on the caller's settings; an int runs on that many threads; None
    keeps the caller's settings. Thread settings are restored on return (``thread_limit``).
    Raises FisherError when an activation, the output, the loss or a gradient is not finite.
    """
    _check_threads(threads)
    _warn_unsupported(model)
    with _threads_for(model, threads):
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
    from .. import _C

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
