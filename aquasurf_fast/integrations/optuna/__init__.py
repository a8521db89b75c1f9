"""The AQuaSurF search as an Optuna sampler: ``AquaSurfSampler`` (``sampler``) over an
``ActivationSpace`` (``space``), with its Fisher features and embeddings cached on disk (``sampler_cache``).

Needs Optuna: pip install 'aquasurf_fast[optuna]'.
"""
from .sampler import AquaSurfSampler
from .space import ActivationSpace

__all__ = ["ActivationSpace", "AquaSurfSampler"]
