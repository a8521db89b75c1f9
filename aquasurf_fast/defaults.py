"""Settings that several layers share (the study, the Optuna sampler, the benchmark replay, the
command line), kept in one low module so that none of them imports another for a constant."""
from __future__ import annotations

DEFAULT_BASELINES = ("elu", "relu", "selu", "sigmoid", "softplus", "softsign", "swish", "tanh")

DEFAULT_GROW = 20        # classes added to the Fisher pool per round of results
DEFAULT_GROW_EVERY = 10  # results per round
GROW_FROM = 3            # growth looks around this many of the best results


def expression_name(name: str) -> str:
    """``relu`` -> ``relu(x)``: baselines may be given as bare operator names (as in the paper)."""
    name = name.strip()
    return name if "(" in name else f"{name}(x)"


__all__ = ["DEFAULT_BASELINES", "DEFAULT_GROW", "DEFAULT_GROW_EVERY", "GROW_FROM", "expression_name"]
