"""Fisher features of many candidate activation functions on one architecture
(``fisher_features_for``): every candidate built from the same weights, featurized many per
forward/backward pass where the model allows (``fisher.batched``) and one at a time otherwise
(``fisher.spectrum``)."""
from __future__ import annotations

import contextlib
from typing import List, Optional

import numpy as np
import torch

from ..runtime.memory import is_out_of_memory, keep_freed_memory
from .shared import FirstLayerCache, check_threads, threads_for, warn_unsupported
from .spectrum import compute_spectrum, fisher_features

__all__ = ["fisher_features_for"]


def fisher_features_for(build, fns, inputs, targets, loss=None, labels="given", seed=42,
                        device=None, progress=True, threads="auto", candidates_per_pass="auto"):
    """Fisher features of many activation functions on one model architecture.

    ``build(activation_module) -> nn.Module`` is called for every name in ``fns`` with
    ``aquasurf_fast.Activation(name)``, under ``torch.manual_seed(seed)`` so that every candidate
    starts from the same weights. Returns ``(features float32 [len(fns), D], ok bool [len(fns)],
    reasons list[str])``; rows of failed functions are NaN and their reason says why ('' when ok).
    The data is moved to ``device`` once and the first layer's input factor is decomposed once.
    ``threads`` as in ``fisher_spectrum``, decided on the first model built and held for all
    candidates: each pass runs on one thread when the model is small, and on the CPU passes run
    side by side up to the caller's thread limit (``thread_limit``; the usable cores outside one);
    worker processes add more (``Study.featurize`` with an executor).
    ``candidates_per_pass``: how many candidates share one forward/backward pass, stacked along
    the batch (``fisher.batched``; the same features). "auto" fits as many as the model's memory
    use allows; 1 runs them one at a time, as do models that mix the samples of a batch.
    The first call sets glibc's malloc to keep freed blocks of up to 32 MiB in the process
    (``runtime.memory``): every candidate allocates the same tensors again, and faulting
    them in from the kernel each time cost about a third of a small candidate's time.
    """
    from ..nn import Activation

    check_threads(threads)
    _check_candidates_per_pass(candidates_per_pass)
    keep_freed_memory()
    fns = list(fns)
    dev = torch.device(device) if device is not None else (
        inputs.device if isinstance(inputs, torch.Tensor) else torch.device("cpu"))
    x = inputs.to(dev) if isinstance(inputs, torch.Tensor) else torch.as_tensor(inputs, device=dev)
    y = targets.to(dev) if isinstance(targets, torch.Tensor) else torch.as_tensor(targets, device=dev)
    rows: List[Optional[np.ndarray]] = [None] * len(fns)
    reasons = [""] * len(fns)
    cache = FirstLayerCache()
    first = True
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(fns), desc="Fisher features", unit="fn")
    # The limit is entered once for all candidates: entering it costs about 1 ms, a small
    # candidate 20-40 ms.
    with contextlib.ExitStack() as limits:
        # Every candidate is built under ``seed``; the caller's global RNG is forked and restored,
        # not reseeded behind their back.
        cuda = [dev] if torch.device(dev).type == "cuda" else []
        limits.enter_context(torch.random.fork_rng(devices=cuda))
        if bar is not None:
            limits.callback(bar.close)

        def first_model(model):  # the warning and the thread policy, once, on the first model
            nonlocal first
            if first:
                first = False
                warn_unsupported(model)
                limits.enter_context(threads_for(model, threads))

        done = {}
        if candidates_per_pass != 1:
            from .batched import features_in_passes

            done = features_in_passes(build, fns, x, y, loss, labels, seed, dev, candidates_per_pass,
                                      cache, threads, first_model, bar)
        for i, name in enumerate(fns):
            if i in done:
                rows[i], reasons[i] = done[i]
                continue
            try:
                torch.manual_seed(seed)
                model = build(Activation(name)).to(dev)
                first_model(model)
                spec = compute_spectrum(model, x, y, loss, labels, seed, cache=cache)
                rows[i] = fisher_features(spec)
            except Exception as exc:  # one bad function never stops the rest
                if is_out_of_memory(exc):
                    raise  # the machine failed, not this function: no feature to mark invalid
                reasons[i] = f"{type(exc).__name__}: {exc}"
            if bar is not None:
                bar.update(1)
    return _feature_table(rows, reasons)


def _check_candidates_per_pass(value) -> None:
    if value != "auto" and not (isinstance(value, int) and not isinstance(value, bool)
                                and value >= 1):
        raise ValueError(f"candidates_per_pass must be 'auto' or a positive int, got {value!r}")


def _feature_table(rows: List[Optional[np.ndarray]], reasons: List[str]):
    """(features float32 [n, D] with NaN rows, ok, reasons) from per-candidate feature rows (None
    where a candidate failed); a row whose length differs from the first one's fails too."""
    width = next((r.size for r in rows if r is not None), 0)
    features = np.full((len(rows), width), np.nan, dtype=np.float32)
    ok = np.zeros(len(rows), dtype=bool)
    for i, r in enumerate(rows):
        if r is None:
            continue
        if r.size != width:
            reasons[i] = f"FisherError: feature length {r.size} differs from the others' {width}"
            continue
        features[i] = r
        ok[i] = True
    return features, ok, reasons
