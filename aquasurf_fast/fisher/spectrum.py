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

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from .attention import AttentionProjection, explicit_attention
from .factors import Factor
from .shared import (NO_LAYER, SUPPORTED_LAYERS, FirstLayerCache, FisherError, PassFactors, candidate_loss,
                     captured_layers, check_finite, check_threads, eigvalsh, num_weights, threads_for,
                     warn_unsupported)

__all__ = [
    "FisherError",
    "LayerSpectrum",
    "FisherSpectrum",
    "compute_spectrum",
    "fisher_spectrum",
    "fisher_features",
    "layer_cdf",
]


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
# Eigenvalues
# ----------------------------------------------------------------------------------------------

def _eig_all(factors: Sequence[Factor]) -> List[np.ndarray]:
    """Decompose the factors one at a time, each on all of LAPACK's threads: on 2 idle cores that
    took 1.2-1.7 s for All-CNN-C's 18 factors against 2.1-2.4 s with two at a time (two 2-thread
    LAPACK calls oversubscribe the cores)."""
    return [eigvalsh(f) for f in factors]


# ----------------------------------------------------------------------------------------------
# Forward/backward with hooks
# ----------------------------------------------------------------------------------------------

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
        check_finite(g, f"the output gradient of layer '{names[module]}'")
        results.append((names[module], module, x, g.detach()))
    return results, targets


def _hooked_pass(model, names: Dict[nn.Module, str], inputs, targets, loss, labels, seed):
    """The forward and backward pass with a capture hook on every module of ``names``; returns
    the captures (module, (input, output)) in the order of their first call, the gradients of
    their outputs (None where the loss does not depend on one) and the targets used."""
    def check(name, x, output):
        check_finite(x, f"the input of layer '{name}'")

    with captured_layers(model, names, check) as captured:
        outputs = model(inputs)
        check_finite(outputs, "the model output")
        value, targets = candidate_loss(outputs, targets, loss, labels, seed)
        check_finite(value.detach(), "the loss")
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


def compute_spectrum(model, inputs, targets, loss=None, labels="given", seed=0,
                     cache: Optional[FirstLayerCache] = None) -> FisherSpectrum:
    """``fisher_spectrum`` without its check of ``threads``, its warning and its thread policy, which
    a caller featurizing many candidates applies once for all of them (``fisher_features_for``);
    ``cache`` keeps the first layer's input factor across them."""
    timings = {}
    dev = inputs.device if isinstance(inputs, torch.Tensor) else None
    t0 = time.perf_counter()
    captured, _ = _forward_backward(model, inputs, targets, loss, labels, seed)
    batch = int(inputs.shape[0]) if isinstance(inputs, torch.Tensor) else int(captured[0][2].shape[0])
    _sync(dev)
    t1 = time.perf_counter()
    timings["forward_backward"] = t1 - t0

    factors = PassFactors(batch, cache)
    slots: List[Tuple[int, int]] = []  # per layer: the positions of its A and G in factors
    for i, (name, module, x, g) in enumerate(captured):
        slots.append((factors.input(name, module, x, first=(i == 0)), factors.grad(module, g)))
    _sync(dev)
    t2 = time.perf_counter()
    timings["covariances"] = t2 - t1

    eigs = factors.eigenvalues(_eig_all)
    t3 = time.perf_counter()
    timings["eigen"] = t3 - t2

    layers = []
    for (name, module, _, _), (ia, ig) in zip(captured, slots):
        ea, eg = eigs[ia], eigs[ig]
        dropped = int((ea <= 0).sum() + (eg <= 0).sum())
        layers.append(LayerSpectrum(name, _kind(module), num_weights(module), ea, eg, dropped))
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
    ``threads``: "auto" runs a model of at most ``shared.SINGLE_THREAD_MAX_WEIGHTS`` weights on one
    thread and a larger one on the caller's settings; an int runs on that many threads; None
    keeps the caller's settings. Thread settings are restored on return (``thread_limit``).
    Raises FisherError when an activation, the output, the loss or a gradient is not finite.
    """
    check_threads(threads)
    warn_unsupported(model)
    with threads_for(model, threads):
        return compute_spectrum(model, inputs, targets, loss, labels, seed)


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
