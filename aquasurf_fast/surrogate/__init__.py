"""The AQuaSurF surrogate (SPEC section 5): ``embedding`` (the candidates' 2-D UMAP), ``regression``
(``Surrogate``: a regressor on the embedding, and the ranking by its predictions) and ``coverage``
(the output-feature projection that a Fisher pool is chosen and grown by).

umap-learn and scikit-learn load when first used.
"""
from .embedding import compute_embedding, embedding_key
from .regression import REGRESSOR_NAMES, Surrogate, make_regressor, rank_by_prediction

__all__ = ["REGRESSOR_NAMES", "Surrogate", "compute_embedding", "embedding_key", "make_regressor",
           "rank_by_prediction"]
