"""Before anything is timed: the package's Fisher spectrum of a model equals the plain float64
pipeline's (``testing.fisher_reference``), layer by layer: every eigenvalue within 1e-4 of itself
plus 1e-5 of its factor's largest.

Why the second term: the package sums its products in float32, the reference in float64, and a
perturbation of a symmetric matrix moves each eigenvalue by up to the perturbation's norm
(Weyl), which scales with the largest eigenvalue. On All-CNN-C at batch 32 an eigenvalue at
1e-5 of its factor's largest moved by 1.4e-4 of itself, 1.4e-10 of the largest; a relative
test alone refuses that, and the tests' 1e-4 relative holds only at their small batches."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fisher.spectrum import fisher_features, fisher_spectrum
from ..testing import fisher_reference as ref

__all__ = ["ATOL", "RTOL", "SpectrumCheck", "SpectrumMismatch", "check_spectrum"]

RTOL = 1e-4  # of the eigenvalue itself
ATOL = 1e-5  # of the factor's largest eigenvalue
SMALL = 1e-6  # the relative error reported is over eigenvalues above this share of the largest


class SpectrumMismatch(ValueError):
    """The package's spectrum differs from the plain pipeline's: the timings would mean nothing."""


@dataclass
class SpectrumCheck:
    n_layers: int
    max_rel_error: float  # of the eigenvalues above SMALL of their factor's largest
    max_abs_error: float  # as a share of the factor's largest eigenvalue
    feature_max_diff: float  # largest |difference| of the features (CDF values in [0, 1])
    feature_length: int

    def line(self) -> str:
        return (f"spectra equal the plain float64 pipeline's: {self.n_layers} layers, eigenvalues "
                f"within {self.max_rel_error:.1e} of themselves and {self.max_abs_error:.1e} of "
                f"their factor's largest (tolerance {RTOL:.0e} + {ATOL:.0e}), features "
                f"({self.feature_length} values) within {self.feature_max_diff:.2g}")


def _errors(got: np.ndarray, want: np.ndarray, what: str):
    """(largest error over its allowance, relative error, error / largest eigenvalue), per group
    of sorted eigenvalues, the worst of each."""
    got, want = np.atleast_2d(got), np.atleast_2d(want)
    if got.shape != want.shape:
        raise SpectrumMismatch(f"{what}: {got.shape} eigenvalues against the plain pipeline's {want.shape}")
    used = rel = absolute = 0.0
    for g, w in zip(np.sort(got, axis=1), np.sort(want, axis=1)):
        top = max(float(np.abs(w).max(initial=0.0)), np.finfo(np.float64).tiny)
        err = np.abs(g - w)
        big = w > SMALL * top
        used = max(used, float(np.max(err / (RTOL * np.abs(w) + ATOL * top), initial=0.0)))
        rel = max(rel, float(np.max(err[big] / w[big], initial=0.0)))
        absolute = max(absolute, float(err.max(initial=0.0)) / top)
    return used, rel, absolute


def check_spectrum(model, inputs, targets, loss=None) -> SpectrumCheck:
    """Compares ``fisher_spectrum`` of ``model`` on the batch with the plain float64 pipeline.
    Raises SpectrumMismatch naming the first layer (and factor) that differs."""
    spectrum = fisher_spectrum(model, inputs, targets, loss)
    twin = ref.reference_model(model)
    plain = ref.plain_spectrum(ref.layer_factors_reference(twin, inputs, targets, loss))
    ours = [layer.name for layer in spectrum.layers]
    theirs = [name for name, _, _ in plain]
    if ours != theirs:
        raise SpectrumMismatch(f"the package's layers {ours} are not the plain pipeline's {theirs}")
    worst_rel = worst_abs = 0.0
    for layer, (_, eig_a, eig_g) in zip(spectrum.layers, plain):
        for factor, got, want in (("A", layer.eig_A, eig_a), ("G", layer.eig_G, eig_g)):
            used, rel, absolute = _errors(got, want, f"layer '{layer.name}' factor {factor}")
            if not used <= 1.0:  # NaN fails too
                raise SpectrumMismatch(
                    f"the package's Fisher spectrum differs from the plain float64 pipeline's: "
                    f"layer '{layer.name}' factor {factor} eigenvalues differ by {rel:.2e} of "
                    f"themselves, {absolute:.2e} of the largest (tolerance {RTOL:.0e} + "
                    f"{ATOL:.0e}); no timing is reported for a wrong result")
            worst_rel, worst_abs = max(worst_rel, rel), max(worst_abs, absolute)
    got_features = fisher_features(spectrum)
    want_features = ref.plain_features(twin, plain)
    if got_features.shape != want_features.shape:
        raise SpectrumMismatch(f"feature length {got_features.size} against the plain pipeline's "
                               f"{want_features.size}")
    diff = float(np.abs(got_features - want_features).max()) if got_features.size else 0.0
    return SpectrumCheck(len(ours), worst_rel, worst_abs, diff, int(got_features.size))
