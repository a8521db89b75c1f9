"""The Fisher-spectrum pipelines ``benchmark_fisher`` times, each one object with one ``run``:
the package's (``fisher_spectrum`` + ``fisher_features``), the plain PyTorch pipeline a torch user
writes (``testing.fisher_reference``: forward hooks, im2col and matmul in float32, float64
``eigvalsh``, a histogram of the materialized pairs) and curvlinops' KFAC factors followed by the
same eigendecompositions and histogram.

``run(model, inputs, targets, loss)`` returns the features and the seconds of each stage; the
total is timed by the caller (``fisher_timing.timed_call``). A pipeline that cannot run here
raises ``Unavailable`` with the note the report prints.
"""
from __future__ import annotations

import time
from typing import Dict, Tuple

import numpy as np
import torch
import torch.nn as nn

from ..fisher.spectrum import fisher_features, fisher_spectrum
from ..testing import fisher_reference as ref

__all__ = ["BASELINES", "CurvlinopsPipeline", "PackagePipeline", "PlainPipeline", "Unavailable"]

Stages = Dict[str, float]


class Unavailable(RuntimeError):
    """A baseline that cannot run on this machine or model; its message is the report's note."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PackagePipeline:
    """aquasurf_fast: the stages are ``fisher_spectrum``'s own (forward and backward, factor
    products, eigendecompositions) and the histogram of ``fisher_features``."""

    name = "aquasurf_fast"

    def run(self, model, inputs, targets, loss) -> Tuple[np.ndarray, Stages]:
        spectrum = fisher_spectrum(model, inputs, targets, loss)
        t0 = time.perf_counter()
        features = fisher_features(spectrum)
        stages = {"fwd/bwd": spectrum.timings["forward_backward"],
                  "factors": spectrum.timings["covariances"], "eigen": spectrum.timings["eigen"],
                  "hist": time.perf_counter() - t0}
        return features, stages


def _eigen_and_histogram(model: nn.Module, factors) -> Tuple[np.ndarray, float]:
    """The plain pipeline's second half on ``(name, A, G)`` factors: features and seconds."""
    t0 = time.perf_counter()
    features = ref.plain_features(model, ref.plain_spectrum(factors))
    return features, time.perf_counter() - t0


class PlainPipeline:
    """Plain PyTorch, as a user writes it: the factors from hooks in float32 (the precision of
    the network), then float64 ``eigvalsh`` and ``np.histogram`` of every pair. Runs on the
    model's explicit-attention twin (``reference_model``): module hooks never see the projections
    of nn.MultiheadAttention."""

    name = "plain"

    def run(self, model, inputs, targets, loss) -> Tuple[np.ndarray, Stages]:
        twin = ref.reference_model(model)
        t0 = time.perf_counter()
        factors = ref.layer_factors_reference(twin, inputs, targets, loss, dtype=torch.float32)
        _sync(inputs.device)
        t1 = time.perf_counter()
        features, eigen_hist = _eigen_and_histogram(twin, factors)
        return features, {"factors": t1 - t0, "eigen+hist": eigen_hist}


class CurvlinopsPipeline:
    """curvlinops' ``KFACLinearOperator`` (empirical Fisher, the "expand" approximation, weight
    and bias in one factor as SPEC section 4 has it), then the plain pipeline's eigenvalues and
    histogram of its factors."""

    name = "curvlinops"

    def run(self, model, inputs, targets, loss) -> Tuple[np.ndarray, Stages]:
        try:
            from curvlinops import KFACLinearOperator
        except ImportError:
            raise Unavailable("curvlinops is not installed (pip install curvlinops-for-pytorch)") from None
        loss_module = nn.CrossEntropyLoss() if loss is None else loss
        if not isinstance(loss_module, (nn.CrossEntropyLoss, nn.MSELoss, nn.BCEWithLogitsLoss)):
            raise Unavailable("curvlinops needs the loss as nn.CrossEntropyLoss, nn.MSELoss or "
                              f"nn.BCEWithLogitsLoss, got {loss!r}")
        twin = ref.reference_model(model)
        try:
            t0 = time.perf_counter()
            op = KFACLinearOperator(twin, loss_module, [p for p in twin.parameters() if p.requires_grad],
                                    [(inputs, targets)], fisher_type="empirical", kfac_approx="expand",
                                    separate_weight_and_bias=False, check_deterministic=False)
            op.compute_kronecker_factors()
            _sync(inputs.device)
            t1 = time.perf_counter()
            # curvlinops keeps the factors by module name, in the layers' order.
            factors = [(name, op._input_covariances[name], op._gradient_covariances[name])
                       for name in op._input_covariances]
        except Exception as exc:  # a version or a model this code does not cover: a note, not a crash
            raise Unavailable(f"curvlinops failed on this model ({type(exc).__name__}: {exc})") from None
        features, eigen_hist = _eigen_and_histogram(twin, factors)
        return features, {"factors": t1 - t0, "eigen+hist": eigen_hist}


# The baselines by their name on the command line (--against).
BASELINES = {"plain": PlainPipeline, "curvlinops": CurvlinopsPipeline}
