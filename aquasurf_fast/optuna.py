"""``aquasurf_fast.optuna.AquaSurfSampler``: the documented import path of the Optuna sampler.

The sampler lives in ``integrations/optuna/``; this module only re-exports it, because scripts and
the README import it from here, and that path is part of the public API.
"""
from .integrations.optuna import ActivationSpace, AquaSurfSampler

__all__ = ["ActivationSpace", "AquaSurfSampler"]
