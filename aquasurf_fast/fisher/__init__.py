"""Fisher-spectrum features (SPEC section 4): ``fisher_spectrum`` and ``fisher_features`` in
``spectrum``, a layer's K-FAC factors in ``factors``, attention's projections in ``attention``;
``fisher_features_for`` (many candidates) in ``candidates``, which runs them many per
forward/backward pass in ``batched``, on models built by ``stacked``. What ``spectrum``,
``batched`` and ``candidates`` all use (the layers, checks, thread policy, hooks, a pass's factors
and their eigenvalues) is in ``shared``.

Importing this subpackage imports torch.
"""
from .candidates import fisher_features_for
from .shared import FisherError
from .spectrum import FisherSpectrum, LayerSpectrum, fisher_features, fisher_spectrum

__all__ = ["FisherError", "FisherSpectrum", "LayerSpectrum", "fisher_features", "fisher_features_for",
           "fisher_spectrum"]
