"""aquasurf_fast: fast activation-function search with the AQuaSurF surrogate."""


# The search layer loads on first use so that `import aquasurf_fast` stays light (no sqlite, umap,
# sklearn or matplotlib until a Study or Surrogate is asked for).
_LAZY = {
    "Surrogate": "surrogate",
    "Study": "search",
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
