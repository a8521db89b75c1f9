"""aquasurf_fast: fast activation-function search with the AQuaSurF surrogate.

The public API of SPEC section 8. Importing the package loads the compiled core only: torch,
umap, ray and cupy are imported by the functions that need them.
"""
from .expr import (BENCHMARK_SCHEMA, BENCHMARK_UNARY_OPS, BINARY_OPS, NARY_OPS, UNARY_OPS, Expr, ParseError,
                   SchemaSpace, enumerate_schema, parse)
from .features import SchemaClasses, equivalence_classes, output_features, probe_inputs, schema_classes
from .kernels import compile, cuda_available, evaluate, evaluate_grad, num_threads, set_num_threads

__version__ = "0.1.0"


_FISHER_NAMES = ("FisherError", "FisherSpectrum", "LayerSpectrum", "fisher_features", "fisher_features_for",
                 "fisher_spectrum")


def __getattr__(name):
    # torch-dependent parts load on first use, so that `import aquasurf_fast` stays light.
    if name == "Activation":
        from .nn import Activation

        return Activation
    if name in _FISHER_NAMES:
        from . import fisher

        return getattr(fisher, name)
    raise AttributeError(f"module 'aquasurf_fast' has no attribute {name!r}")


__all__ = [
    "Activation", "FisherError", "FisherSpectrum", "LayerSpectrum", "fisher_features", "fisher_features_for",
    "fisher_spectrum", "BENCHMARK_SCHEMA", "BENCHMARK_UNARY_OPS", "BINARY_OPS", "Expr", "NARY_OPS", "ParseError",
    "SchemaClasses", "SchemaSpace", "UNARY_OPS", "compile", "cuda_available", "enumerate_schema",
    "equivalence_classes", "evaluate", "evaluate_grad", "num_threads", "output_features", "parse",
    "probe_inputs", "schema_classes", "set_num_threads",
]
