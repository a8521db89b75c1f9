"""What an Optuna study's trials say about the activation parameter: the sampler's whole state.

Nothing is remembered between suggestions: every suggestion reads the trials from the study's
storage, so that any number of processes and machines sharing one storage, or a sampler object
made afresh, continue the same search.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, Mapping

from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

_CLAIMING = (TrialState.RUNNING, TrialState.WAITING)


@dataclass(frozen=True)
class TrialHistory:
    """scores: per class, the best value of its completed trials, negated when minimizing, so that
    higher is better (infinite values are kept; the surrogate leaves them out of its fit).
    tried: classes that a finished, running or enqueued trial has drawn; failed and pruned trials
    count here but give no score.
    pending: the classes of running or enqueued trials (their results are not known yet).
    rank: running trials older than this one that have not drawn the parameter yet. They are
    drawing it at this very moment (``n_jobs``, other processes): each takes the next free class
    in their order, so that workers starting together draw distinct classes.
    """

    scores: Dict[int, float]
    tried: FrozenSet[int]
    rank: int
    pending: FrozenSet[int] = frozenset()


def _drawn(trial: FrozenTrial, param_name: str) -> Any:
    """The trial's value of the parameter, the one it was enqueued with if it has not drawn yet."""
    if param_name in trial.params:
        return trial.params[param_name]
    if trial.state in _CLAIMING:
        return trial.system_attrs.get("fixed_params", {}).get(param_name)
    return None


def read_history(study, trial: FrozenTrial, param_name: str,
                 class_of: Mapping[Any, int]) -> TrialHistory:
    """The history of ``param_name`` seen by ``trial``; ``class_of`` maps a choice to its class."""
    sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
    scores: Dict[int, float] = {}
    tried, pending = set(), set()
    rank = 0
    for other in study.get_trials(deepcopy=False):
        if other.number == trial.number:
            continue
        value = _drawn(other, param_name)
        if value is None:
            if other.state == TrialState.RUNNING and other.number < trial.number:
                rank += 1
            continue
        cls = class_of.get(value)
        if cls is None:
            continue  # a value outside these choices: Optuna refuses it when the trial runs
        tried.add(cls)
        if other.state in _CLAIMING:
            pending.add(cls)
        if other.state == TrialState.COMPLETE and other.value is not None:
            score = sign * other.value
            if cls not in scores or score > scores[cls]:
                scores[cls] = score
    return TrialHistory(scores, frozenset(tried), rank, frozenset(pending))


__all__ = ["TrialHistory", "read_history"]
