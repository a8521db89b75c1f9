"""The AQuaSurF surrogate (SPEC section 5): ``embedding`` (the candidates' 2-D UMAP), ``regression``
(``Surrogate``: a regressor on the embedding), ``strategy`` (the search strategies that choose what
to train next: ``Strategy``; the paper's, the default, the adaptive, the hybrid, the ensemble,
random search), ``adaptive`` (the adaptive strategy's models) and ``coverage`` (the
output-feature projection that a Fisher pool is chosen and grown by).

umap-learn and scikit-learn load when first used.
"""
from .embedding import compute_embedding, embedding_key
from .regression import REGRESSOR_NAMES, Surrogate, make_regressor
from .strategy import DEFAULT_STRATEGY, STRATEGY_NAMES, Strategy

__all__ = ["DEFAULT_STRATEGY", "REGRESSOR_NAMES", "STRATEGY_NAMES", "Strategy", "Surrogate",
           "compute_embedding", "embedding_key", "make_regressor"]
