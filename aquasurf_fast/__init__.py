"""aquasurf_fast: fast activation-function search with the AQuaSurF surrogate.

The public API of SPEC section 8. Importing the package loads the compiled core only: torch,
umap, ray and cupy are imported by the functions that need them.
"""
from .expr import (BENCHMARK_SCHEMA, BENCHMARK_UNARY_OPS, BINARY_OPS, NARY_OPS, UNARY_OPS, Expr, ParseError,
                   SchemaSpace, enumerate_schema, parse)
from .features import SchemaClasses, equivalence_classes, output_features, probe_inputs, schema_classes
from .kernels import compile, cuda_available, evaluate, evaluate_grad, num_threads, set_num_threads

from ._version import __version__  # noqa: F401  (the version is part of the public face)

# Parts that pull in torch, sqlite, umap, scikit-learn or matplotlib load on first use, so that
# `import aquasurf_fast` stays light. name -> submodule that defines it.
_LAZY = {
    "Activation": "nn",
    "build_info": "build_info",
    "benchmark_fisher": "bench.fisher_speed",
    "FisherError": "fisher.shared",
    "FisherSpectrum": "fisher.spectrum",
    "LayerSpectrum": "fisher.spectrum",
    "fisher_features": "fisher.spectrum",
    "fisher_features_for": "fisher.candidates",
    "fisher_spectrum": "fisher.spectrum",
    "Surrogate": "surrogate.regression",
    "Study": "study.study",
    "load_benchmark": "bench.format",
    "StudyError": "study.store.database",
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
    "UNARY_OPS", "build_info", "benchmark_fisher", "compile", "cuda_available", "enumerate_schema", "equivalence_classes", "evaluate",
    "evaluate_grad", "fisher_features", "fisher_features_for", "fisher_spectrum", "load_benchmark", "num_threads",
    "output_features", "parse", "probe_inputs", "schema_classes", "set_num_threads",
]
