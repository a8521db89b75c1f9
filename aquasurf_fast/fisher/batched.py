"""Fisher features of many candidates per forward/backward pass: the features of
``fisher_features_for`` (SPEC section 4), computed K candidates at a time.

Every candidate's model starts from the same weights, so K candidates share one model whose
batch is K copies of the Fisher batch, candidate k's activation applied to copy k
(``fisher.stacked``). Each candidate's K-FAC factors are computed from its own rows by the
one-at-a-time code (``shared.PassFactors``), the same-sized factors of all K
candidates are decomposed by one batched ``eigvalsh``, and only the layers that contribute to the
feature (``n // 100 >= 2``) are decomposed at all.

Equal to one at a time: on the CPU the stacked pass gives every candidate's layer inputs and
output gradients bit for bit (each layer treats its samples independently, with the same
kernels), the factors are then computed by the same code on the same rows, and the batched
eigendecomposition runs LAPACK's routine per matrix; eigenvalues agree to about 1e-15 of the
largest (the batched and single LAPACK calls may round differently) and the features were
identical on every built-in task and test model (tests/test_fisher_batched.py checks it). On a GPU
the pass's kernels may differ with the batch size: eigenvalues then agree to float32 rounding of
the pass, as between any two runs of a float32 network.

The non-finite checks and their messages are those of the one-at-a-time pass, per candidate, in
the same order: a candidate whose activations overflow fails alone with the same reason.

Models that mix the samples of a batch or draw random numbers (``stacked.mixing_reason``) run one
at a time, with a note in the log. A model whose structure does not prove it treats samples
independently (``stacked.per_sample_proof``: custom forwards, attention) is checked on its first
pass: its first and last candidates are also run alone and must give the same eigenvalues.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from ..runtime.memory import is_out_of_memory
from ..runtime.threads import current_limit, threads_keeping_limit
from .attention import explicit_attention
from .factors import Factor
from .shared import (NO_LAYER, SUPPORTED_LAYERS, FirstLayerCache, FisherError, PassFactors, candidate_loss,
                     captured_layers, check_finite, eigvalsh, num_weights, scaled_eigenvalues)
from .spectrum import compute_spectrum, layer_cdf
from .stacked import NotStackable, StackedActivation, mixing_reason, per_sample_proof

__all__ = ["MAX_CANDIDATES_PER_PASS", "PASS_MEMORY_BYTES", "candidates_per_pass", "features_in_passes"]

logger = logging.getLogger(__name__)

# Candidates per pass are capped: past a few dozen the fixed cost per pass is already spread thin,
# and a pass's failure (a model that turns out not to be stackable) costs its whole work.
MAX_CANDIDATES_PER_PASS = 32
# Memory a pass may use on the CPU (on a GPU: half of what is free when the call starts). On a
# CPU a pass is best kept near the size of the last-level cache: mnist1d's convolutions and
# activations cost 2-7 times more per sample at 8192 samples per pass than at 256-1024 (their
# tensors no longer stay in cache), and past 4 candidates a pass saved nothing more per candidate.
PASS_MEMORY_BYTES = 64 << 20
# A candidate's share of a pass, per byte of its captured layer inputs and output gradients: the
# tensors autograd keeps for the backward pass, the activation's copies, and the factors' rows.
_BYTES_PER_CAPTURED_BYTE = 3
# The first pass is small: it measures the model's memory per candidate and, for a model that is
# not provably per-sample, checks the stacked pass against candidates run alone. Two, because a
# large model (All-CNN-C: about 270 MB per candidate at batch 32) gets K = 1 after it.
_FIRST_PASS = 2


def candidates_per_pass(bytes_per_candidate: float, device, budget: Optional[int] = None) -> int:
    """K for a model that needs ``bytes_per_candidate`` per candidate: as many as fit the memory
    budget (``budget``, else ``PASS_MEMORY_BYTES`` on the CPU and half the free memory of a GPU),
    at least 1 and at most ``MAX_CANDIDATES_PER_PASS``."""
    if budget is None:
        budget = PASS_MEMORY_BYTES
        if torch.device(device).type == "cuda":
            budget = torch.cuda.mem_get_info(torch.device(device))[0] // 2
    return int(max(1, min(MAX_CANDIDATES_PER_PASS, budget // max(1.0, bytes_per_candidate))))


# ----------------------------------------------------------------------------------------------
# The stacked pass
# ----------------------------------------------------------------------------------------------

class _Failures:
    """Per candidate, the first check it failed, in the order the one-at-a-time pass checks."""

    def __init__(self, n_candidates: int):
        self.n = n_candidates
        self.reasons: Dict[int, str] = {}

    def live(self) -> List[int]:
        return [k for k in range(self.n) if k not in self.reasons]

    def check(self, t: torch.Tensor, what: str) -> None:
        """Checks every live candidate's slice of ``t`` ([K * B, ...]). A slice with a NaN or an
        infinity has a non-finite sum; only those (and sums that overflowed) are checked element
        by element, which costs several times more than the sum."""
        slices = t.detach().reshape(self.n, -1)
        finite = torch.isfinite(slices.sum(1)).tolist()
        for k in self.live():
            if not finite[k]:
                self.check_one(k, slices[k], what)

    def check_one(self, k: int, t: torch.Tensor, what: str) -> None:
        try:
            check_finite(t, what)
        except FisherError as exc:
            self.reasons.setdefault(k, f"{type(exc).__name__}: {exc}")


def _stacked_losses(outputs, targets, failures: _Failures, loss, labels, seed):
    """The sum of the live candidates' losses, each on its own slice of ``outputs`` with its own
    targets (given, or sampled with ``seed`` as for a candidate alone); None when none is live."""
    failures.check(outputs, "the model output")
    total = None
    for k, out in enumerate(outputs.split(outputs.shape[0] // failures.n)):
        if k in failures.reasons:
            continue
        value, _ = candidate_loss(out, targets, loss, labels, seed)
        failures.check_one(k, value.detach(), "the loss")
        if k not in failures.reasons:
            total = value if total is None else total + value
    return total


def _stacked_pass(model, x, targets, n_cand: int, loss, labels, seed):
    """One forward and backward pass of the stacked batch ``x`` [K * B, ...]. Returns the layers
    (name, module, input, output gradient), each [K * B, ...], in the order of their first call,
    and the failures."""
    failures = _Failures(n_cand)

    def check(name, x_in, output):
        if x_in.shape[:1] != x.shape[:1] or output.shape[:1] != x.shape[:1]:
            raise NotStackable(f"layer '{name}' reads shape {tuple(x_in.shape)}: its "
                               "dimension 0 is not the stacked batch")
        failures.check(x_in, f"the input of layer '{name}'")

    with explicit_attention(model) as projections:
        names = {m: n for n, m in model.named_modules() if isinstance(m, SUPPORTED_LAYERS)}
        names.update(projections)
        with captured_layers(model, names, check) as captured:
            outputs = model(x)
            if outputs.shape[:1] != x.shape[:1]:
                raise NotStackable(f"the model output has shape {tuple(outputs.shape)}: its "
                                   "dimension 0 is not the stacked batch")
            total = _stacked_losses(outputs, targets, failures, loss, labels, seed)
            if not captured:
                raise FisherError(NO_LAYER)
            layers = [(names[m], m, x_in, out) for m, (x_in, out) in captured.items()]
            grads = [None] * len(layers) if total is None else torch.autograd.grad(
                total, [c[3] for c in layers], allow_unused=True)
    result = []
    for (name, module, x_in, out), g in zip(layers, grads):
        g = torch.zeros_like(out) if g is None else g.detach()
        failures.check(g, f"the output gradient of layer '{name}'")
        result.append((name, module, x_in, g))
    return result, failures


# ----------------------------------------------------------------------------------------------
# Factors and eigenvalues
# ----------------------------------------------------------------------------------------------

def _eigvalsh_batched(factors: Sequence[Factor]) -> List[np.ndarray]:
    """Eigenvalues of every factor as ``shared.eigvalsh`` gives them. On a GPU, factors of one
    shape are decomposed by one batched call (one launch instead of one per factor). On the CPU
    each has its own call: torch's batched CPU path took 79 ms per 865 x 865 matrix in a batch of
    two against 44 ms alone, and 545 against 216 ms at 1729 x 1729 (two threads)."""
    if all(f.mat.device.type == "cpu" for f in factors):
        return [eigvalsh(f) for f in factors]
    groups: Dict[tuple, List[int]] = {}
    for i, f in enumerate(factors):
        groups.setdefault((tuple(f.mat.shape), f.mat.device), []).append(i)
    out: List[Optional[np.ndarray]] = [None] * len(factors)
    for members in groups.values():
        mats = torch.stack([factors[i].mat.double() for i in members])
        evs = torch.linalg.eigvalsh(mats)
        for i, ev in zip(members, evs):
            out[i] = scaled_eigenvalues(ev, factors[i])
    return out


def _candidate_factors(layers, k: int, batch: int, factors: PassFactors):
    """Candidate k's factors of the layers that contribute to the feature, added to ``factors``;
    returns per such layer its name, module and the positions of its A and G."""
    slots = []
    rows = slice(k * batch, (k + 1) * batch)
    for i, (name, module, x, g) in enumerate(layers):
        if num_weights(module) // 100 < 2:
            continue  # its feature is empty (layer_cdf): its eigenvalues would be thrown away
        a = factors.input(name, module, x[rows], first=(i == 0))
        slots.append((name, module, a, factors.grad(module, g[rows])))
    return slots


def _features_of_pass(layers, failures: _Failures, batch: int, cache: FirstLayerCache):
    """Per live candidate: (feature or None, reason, [(eig_A, eig_G) per contributing layer])."""
    factors = PassFactors(batch, cache)
    slots = {k: _candidate_factors(layers, k, batch, factors) for k in failures.live()}
    eigs = factors.eigenvalues(_eigvalsh_batched)
    results = {}
    for k, layer_slots in slots.items():
        pairs = [(eigs[a], eigs[g]) for _, _, a, g in layer_slots]
        try:
            parts = [layer_cdf(ea, eg, num_weights(m), name)
                     for (name, m, _, _), (ea, eg) in zip(layer_slots, pairs)]
            feat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
            results[k] = (feat, "", pairs)
        except FisherError as exc:
            results[k] = (None, f"{type(exc).__name__}: {exc}", pairs)
    return results


# ----------------------------------------------------------------------------------------------
# Passes
# ----------------------------------------------------------------------------------------------

def _rng_states(device) -> list:
    states = [torch.get_rng_state()]
    if torch.device(device).type == "cuda":
        states.append(torch.cuda.get_rng_state(torch.device(device)))
    return states


def _run_pass(model, x, y, loss, labels, seed, device, cache, watch_rng: bool):
    """One stacked pass of ``model`` (built on a StackedActivation of K candidates, under ``seed``):
    ({k: (feature, reason, eigenvalues)}, {k: reason} for those that failed in the pass, captured
    bytes per candidate)."""
    batch, n_cand = int(x.shape[0]), len(_stacked_activation(model).activations)
    before = _rng_states(device) if watch_rng else None
    layers, failures = _stacked_pass(model, torch.cat([x] * n_cand), y, n_cand, loss, labels, seed)
    if before is not None and not all(torch.equal(a, b) for a, b in zip(before, _rng_states(device))):
        raise NotStackable("the model draws random numbers in its forward pass")
    per_candidate = sum(t.nbytes for layer in layers for t in layer[2:]) / n_cand
    return _features_of_pass(layers, failures, batch, cache), failures.reasons, per_candidate


def _stacked_activation(model: nn.Module) -> StackedActivation:
    found = [m for m in model.modules() if isinstance(m, StackedActivation)]
    if not found:
        raise NotStackable("the model built does not contain the activation it was given")
    return found[0]


def _same_alone(build, act, x, y, loss, labels, seed, device, got) -> bool:
    """Whether the candidate run alone gives what its slice gave (``got``: feature, reason, eigs):
    the same failure, or eigenvalues equal to float32 rounding of the pass."""
    torch.manual_seed(seed)
    model = build(act).to(device)
    try:
        spec = compute_spectrum(model, x, y, loss, labels, seed)
    except FisherError as exc:
        return got[1] == f"{type(exc).__name__}: {exc}"
    layers = [(layer.eig_A, layer.eig_G) for layer in spec.layers if layer.num_weights // 100 >= 2]
    if got[2] is None or len(layers) != len(got[2]):
        return False
    for want_pair, got_pair in zip(layers, got[2]):
        for want, have in zip(want_pair, got_pair):
            big = want > 1e-6 * want.max()
            if want.shape != have.shape or not np.allclose(have[big], want[big], rtol=1e-4, atol=0):
                return False
    return True


def _first_pass(build, acts, x, y, loss, labels, seed, device, cache, on_first_model):
    """The first pass, small; on a model not provably per-sample, also its first and last
    candidates alone. Raises NotStackable when the candidates cannot share a pass."""
    torch.manual_seed(seed)
    model = build(StackedActivation(acts, int(x.shape[0]))).to(device)
    on_first_model(model)
    reason = mixing_reason(model)
    if reason is not None:
        raise NotStackable(f"its layers mix the samples of a batch: {reason}")
    proven = per_sample_proof(model)
    out = _run_pass(model, x, y, loss, labels, seed, device, cache, watch_rng=not proven)
    if not proven:
        feats, failed, _ = out
        for k in {0, len(acts) - 1}:
            got = feats[k] if k in feats else (None, failed[k], None)
            if not _same_alone(build, acts[k], x, y, loss, labels, seed, device, got):
                raise NotStackable(f"candidate {acts[k].name} gives other eigenvalues in a stacked "
                                   "pass than alone, so the model mixes the samples of a batch")
    return out, proven


def _record(results: dict, indices, feats: dict, failed: dict) -> None:
    for k, i in enumerate(indices):
        results[i] = (feats[k][0], feats[k][1]) if k in feats else (None, failed[k])


def _concurrent_passes(threads, allowed: Optional[int], proven: bool, device) -> int:
    """How many passes run at once: on the CPU with a small model (one torch thread under
    threads="auto"), as many as the caller's thread limit allows, else the usable cores. Each
    pass runs on one thread and none waits for another, so a busy core slows one pass instead of
    stalling every parallel region (``runtime.threads``). Models not proven per-sample run one
    pass at a time: their check of random draws reads the process's generator. A GPU runs one
    pass at a time: its passes are queued on one stream anyway."""
    if (threads != "auto" or torch.get_num_threads() != 1 or not proven
            or torch.device(device).type != "cpu"):
        return 1
    return allowed if allowed is not None else len(os.sched_getaffinity(0))


def _passes(run: Callable, part: List[int]) -> List[tuple]:
    """[(indices, features, failures)] of ``run(part)``, split in halves while it runs out of
    memory; [] when the pass fails otherwise (its candidates go one at a time)."""
    try:
        return [(part,) + run(part)[:2]]
    except Exception as exc:
        if is_out_of_memory(exc) and len(part) > 1:
            half = len(part) // 2
            return _passes(run, part[:half]) + _passes(run, part[half:])
        if is_out_of_memory(exc):
            raise
        logger.info("Fisher features of %d candidates one at a time: their pass failed (%s: %s)",
                    len(part), type(exc).__name__, exc)
        return []


def features_in_passes(build: Callable, names: Sequence[str], x: torch.Tensor, y: torch.Tensor, loss,
                       labels: str, seed: int, device, per_pass, cache: FirstLayerCache, threads,
                       on_first_model: Callable[[nn.Module], None], progress=None) -> Dict[int, tuple]:
    """Fisher features of ``names`` (see ``fisher_features_for``), ``per_pass`` candidates per pass
    ("auto": as many as ``candidates_per_pass`` allows after a first pass of a few).

    Returns {index: (feature or None, reason)} for the candidates it computed; the others (all of
    them when the model cannot stack its candidates, the note says why in the log) are left to
    the one-at-a-time path. ``on_first_model(model)`` is called once, before any pass, and
    applies the thread policy; ``threads`` is fisher_features_for's. ``progress.update(n)`` is
    called as candidates finish.
    """
    from ..nn import Activation

    allowed = current_limit()  # the caller's, before on_first_model applies the policy
    results: Dict[int, tuple] = {}
    acts = {}
    for i, name in enumerate(names):
        try:
            acts[i] = Activation(name)
        except Exception as exc:  # one bad name never stops the rest, as one at a time
            results[i] = (None, f"{type(exc).__name__}: {exc}")
    todo = [i for i in range(len(names)) if i in acts]
    if len(todo) < 2:
        return results
    first = todo[:_FIRST_PASS if per_pass == "auto" else int(per_pass)]
    try:
        (feats, failed, per_candidate), proven = _first_pass(
            build, [acts[i] for i in first], x, y, loss, labels, seed, device, cache, on_first_model)
    except Exception as exc:  # the one-at-a-time path reports what fails for each candidate
        if is_out_of_memory(exc):
            raise
        logger.info("Fisher features one candidate at a time: the candidates cannot share a pass "
                    "(%s: %s)", type(exc).__name__, exc)
        return results
    _record(results, first, feats, failed)
    if progress is not None:
        progress.update(len(results))
    k = (candidates_per_pass(per_candidate * _BYTES_PER_CAPTURED_BYTE, device)
         if per_pass == "auto" else int(per_pass))
    rest = todo[len(first):]
    parts = [rest[i:i + k] for i in range(0, len(rest), k)]
    build_lock = threading.Lock()

    def run(part):
        with build_lock:  # models are built under the process's generator, one at a time
            torch.manual_seed(seed)
            model = build(StackedActivation([acts[i] for i in part], int(x.shape[0]))).to(device)
        return _run_pass(model, x, y, loss, labels, seed, device, cache, watch_rng=not proven)

    n_threads = min(len(parts), _concurrent_passes(threads, allowed, proven, device))
    for done in _map_passes(run, parts, n_threads):
        for part, feats, failed in done:
            _record(results, part, feats, failed)
            if progress is not None:
                progress.update(len(part))
    return results


def _map_passes(run: Callable, parts: List[List[int]], n_threads: int):
    """``_passes`` of every part, in order, on ``n_threads`` worker threads that keep the caller's
    thread count (the policy's), OpenMP pools included; one at a time on the calling thread. A
    worker thread would start an OpenMP team of its own beside the caller's, whose threads are
    still spinning on the same cores: All-CNN-C's 865 x 865 eigendecompositions took 150-200 ms
    there against 33-55 ms on the calling thread (two threads)."""
    if n_threads <= 1:
        yield from (_passes(run, part) for part in parts)
        return
    with threads_keeping_limit(n_threads) as pool:
        yield from pool.map(lambda part: _passes(run, part), parts)
