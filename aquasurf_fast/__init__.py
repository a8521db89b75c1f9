"""aquasurf_fast: fast activation-function search with the AQuaSurF surrogate."""
from .fisher import (FisherError, FisherSpectrum, LayerSpectrum, fisher_features, fisher_features_for,
                     fisher_spectrum)
