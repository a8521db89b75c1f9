"""aquasurf_fast: fast activation-function search with the AQuaSurF surrogate.

The public API of SPEC section 8. Importing the package loads the compiled core only: torch,
umap, ray and cupy are imported by the functions that need them.
"""
from .expr import (BENCHMARK_SCHEMA, BENCHMARK_UNARY_OPS, BINARY_OPS, NARY_OPS, UNARY_OPS, Expr, ParseError,
                   SchemaSpace, enumerate_schema, parse)
from .features import SchemaClasses, equivalence_classes, output_features, probe_inputs, schema_classes
from .kernels import compile, cuda_available, evaluate, evaluate_grad, num_threads, set_num_threads

__version__ = "0.1.0"

# Parts that pull in torch, sqlite, umap, scikit-learn or matplotlib load on first use, so that
# `import aquasurf_fast` stays light. name -> submodule that defines it.
_LAZY = {
    "Activation": "nn",
    "FisherError": "fisher",
    "FisherSpectrum": "fisher",
    "LayerSpectrum": "fisher",
    "fisher_features": "fisher",
    "fisher_features_for": "fisher",
    "fisher_spectrum": "fisher",
    "Surrogate": "surrogate",
    "Study": "search",
    "load_benchmark": "benchmark",
    "StudyError": "store",
}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aquasurf_fast' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "Activation", "BENCHMARK_SCHEMA", "BENCHMARK_UNARY_OPS", "BINARY_OPS", "Expr", "FisherError", "FisherSpectrum",
    "LayerSpectrum", "NARY_OPS", "ParseError", "SchemaClasses", "SchemaSpace", "Study", "StudyError", "Surrogate",
    "UNARY_OPS", "compile", "cuda_available", "enumerate_schema", "equivalence_classes", "evaluate",
    "evaluate_grad", "fisher_features", "fisher_features_for", "fisher_spectrum", "load_benchmark", "num_threads",
    "output_features", "parse", "probe_inputs", "schema_classes", "set_num_threads",
]
