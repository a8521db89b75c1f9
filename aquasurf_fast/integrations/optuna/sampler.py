"""An Optuna sampler that draws the activation function the AQuaSurF way.

One categorical parameter (``"activation"`` by default) is drawn as a ``Study`` would suggest it:
the baselines first, then the class with the best regressor prediction on the UMAP union of output
and Fisher features, fitted on the values of the completed trials. Every other parameter goes to a
base sampler (TPE unless given)::

    import optuna
    import aquasurf_fast as aq
    from aquasurf_fast.optuna import AquaSurfSampler

    space = aq.SchemaSpace(aq.BENCHMARK_SCHEMA, unary=aq.BENCHMARK_UNARY_OPS)
    sampler = AquaSurfSampler(space, task="mnist1d")     # Fisher features: once, then cached

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        activation = trial.suggest_categorical("activation", sampler.choices)
        return train(aq.Activation(activation), lr)      # your training; validation accuracy

    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=50)

The sampler's state is the study's trials, read at every suggestion, so RDB storages shared by
several processes or machines, ``n_jobs``, pruners and Ray Tune's ``OptunaSearch(sampler=...)``
work as with any sampler.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

try:
    import optuna
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("aquasurf_fast.optuna needs Optuna: pip install 'aquasurf_fast[optuna]' "
                      "(or pip install 'optuna>=4')") from exc
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from .sampler_cache import EmbeddingFiles, fisher_features_cached
from .space import ActivationSpace, as_space
from .trials import read_history
from ...defaults import DEFAULT_BASELINES, expression_name
from ...surrogate.embedding import cached_layouts
from ...surrogate.regression import Surrogate, make_regressor
from ...surrogate.strategy import DEFAULT_STRATEGY, Strategy, output_points, rank_classes


class AquaSurfSampler(optuna.samplers.BaseSampler):
    """Draws one categorical activation-function parameter with the AQuaSurF surrogate.

    Parameters
    ----------
    space : the functions to search: a list of names (grouped into equivalence classes), a schema
        (a string such as ``"binary(unary(x),unary(x))"`` or an ``aq.SchemaSpace``; one member per
        class), the path of an ``aq.Study`` file (its classes and features as they are now;
        nothing is recomputed), or an ``ActivationSpace``. The baselines are added to names and schemas.
    param_name : the parameter drawn here. Suggest it with
        ``trial.suggest_categorical(param_name, sampler.choices)``; any choices that name classes of
        the space work (other members of a class, other spellings).
    task, or build/inputs/targets : the model of the Fisher features: a task spec (``"mnist1d"``, a
        .py file, a module; see ``aquasurf_fast.tasks``), or ``build(activation) -> nn.Module`` and
        one batch. Computed once with a progress bar, cached on disk. Without either, the output
        features alone embed the candidates (unless the study file has Fisher features).
    device : where the Fisher features are computed (default: where ``inputs`` live).
    baselines : drawn first, in this order (those among the choices).
    strategy : "paper" (the default), "adaptive", "hybrid", "ensemble" or "random": how classes
        are ranked after the baselines, as in ``aq.Study`` (``aquasurf_fast.surrogate.strategy``).
    regressor : "knn" (3 nearest neighbours; the ensemble weights them by inverse distance),
        "knn-distance", "rf", "svr" or a scikit-learn regressor.
    seed : seed of the UMAP layout and of the order of ties (as a study's ``random_state``), and of
        the default base sampler.
    base_sampler : draws every other parameter; ``TPESampler(seed=seed)`` by default.
    cache : keep Fisher features and embeddings in ``$AQUASURF_CACHE`` (default
        ~/.cache/aquasurf_fast).
    progress : show a progress bar while computing Fisher features.

    A trial that failed or was pruned takes its class out of the pool but gives no score; so does a
    completed one whose value is infinite. The value is read in the study's direction. Once every
    class among the choices has been drawn, the best one so far is drawn again, so that the other
    parameters go on being tuned with it. To retry failed trials, use Optuna's own
    ``RetryFailedTrialCallback`` (with a heartbeat, for workers that die).
    """

    def __init__(self, space, *, param_name: str = "activation", task: Optional[str] = None,
                 build: Optional[Callable] = None, inputs: Any = None, targets: Any = None,
                 device: Any = None, baselines: Sequence[str] = DEFAULT_BASELINES,
                 strategy: str = DEFAULT_STRATEGY, regressor: Any = "knn", seed: int = 42,
                 base_sampler: Optional[optuna.samplers.BaseSampler] = None, cache: bool = True,
                 progress: bool = True):
        make_regressor(regressor, seed, 3)  # a bad regressor fails here, not at the ninth trial
        self.strategy = Strategy(strategy, None if regressor == "knn" else regressor)
        self.param_name = param_name
        self.regressor = regressor
        self.seed = seed
        self.base_sampler = base_sampler or optuna.samplers.TPESampler(seed=seed)
        space = as_space(space, baselines)
        if task is not None:
            if build is not None or inputs is not None:
                raise ValueError("pass either task or build/inputs/targets, not both")
            from ...tasks import load_task

            loaded = load_task(task)
            build, (inputs, targets) = loaded.build, loaded.fisher_batch()
        if build is not None:
            space = _with_fisher(space, build, inputs, targets, device, cache, progress)
        self.space = space
        cand = space.candidates
        self._candidates = cand
        self._features = space.candidate_features()
        self._embeddings = EmbeddingFiles(cache, space.embeddings)
        # The layouts depend only on the candidates: computed (or loaded) once, here, so that
        # each suggestion only fits the regressor.
        if self.strategy.ranks_by_surrogate:
            self._layouts = Surrogate(regressor, seed, cache=self._embeddings).embed(
                *self._features)[None]
        elif self.strategy.n_layouts:
            self._layouts, _ = cached_layouts(self._embeddings, *self._features, seed,
                                              self.strategy.n_layouts)
        else:
            self._layouts = None
        self._points = output_points(self._features[0]) if self.strategy.needs_points else None
        self._baselines: List[int] = []
        for b in baselines:
            found = space.class_of_name(b)
            found = space.class_of_name(expression_name(b)) if found is None else found
            if found is not None and found not in self._baselines:
                self._baselines.append(found)
        offered = sorted(set(self._baselines) | set(cand.tolist()))
        #: The names to suggest the parameter from: one per class that can be drawn.
        self.choices: Tuple[str, ...] = tuple(space.names[i] for i in offered)
        self._choice_maps: Optional[Tuple[tuple, Dict[Any, int], Dict[int, Any]]] = None

    # -- Optuna's sampler interface ----------------------------------------------------------------

    def infer_relative_search_space(self, study, trial: FrozenTrial) -> Dict[str, BaseDistribution]:
        # The activation is always drawn here (sample_independent), never by the base sampler.
        space = self.base_sampler.infer_relative_search_space(study, trial)
        return {name: dist for name, dist in space.items() if name != self.param_name}

    def sample_relative(self, study, trial: FrozenTrial,
                        search_space: Dict[str, BaseDistribution]) -> Dict[str, Any]:
        return self.base_sampler.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        if param_name != self.param_name:
            return self.base_sampler.sample_independent(study, trial, param_name,
                                                        param_distribution)
        if not isinstance(param_distribution, CategoricalDistribution):
            raise ValueError(
                f"parameter {param_name!r} is drawn by AquaSurfSampler, so it must be categorical "
                f"over activation-function names: use trial.suggest_categorical({param_name!r}, "
                f"sampler.choices), not a {type(param_distribution).__name__}")
        if len(study.directions) > 1:
            raise ValueError(f"AquaSurfSampler needs a study with one objective; this one has "
                             f"{len(study.directions)}: the activation is ranked by one value")
        class_of, choice_of = self._classes_of_choices(param_distribution.choices)
        history = read_history(study, trial, param_name, class_of)
        free = [c for c in self._baselines if c in choice_of and c not in history.tried]
        if len(free) <= history.rank:
            taken = history.tried.union(free)
            free += [c for c in self._ranking(history, history.rank + 1)
                     if c in choice_of and c not in taken]
        if history.rank < len(free):
            return choice_of[free[history.rank]]
        scored = sorted(c for c in choice_of if np.isfinite(history.scores.get(c, np.nan)))
        if scored:
            return choice_of[max(scored, key=history.scores.__getitem__)]
        return self.base_sampler.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial: FrozenTrial) -> None:
        self.base_sampler.before_trial(study, trial)

    def after_trial(self, study, trial: FrozenTrial, state: TrialState,
                    values: Optional[Sequence[float]]) -> None:
        self.base_sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        # Only the base sampler has a random state: this sampler's draws follow from the trials.
        self.base_sampler.reseed_rng()

    # -- AQuaSurF ----------------------------------------------------------------------------------

    def _ranking(self, history, n: int) -> List[int]:
        """Candidate classes, the next to draw first (the first ``n`` chosen together), as a
        study with the same strategy would rank them."""
        cand = self._candidates
        n_start = len(set(self._baselines) & set(cand.tolist()))
        return rank_classes(self.strategy, cand, self._layouts, history.scores, history.pending,
                            n_start, n, self.seed, self._points)

    def _classes_of_choices(self, choices: tuple) -> Tuple[Dict[Any, int], Dict[int, Any]]:
        """(choice -> class, class -> the choice that names it), kept for the last choices seen."""
        memo = self._choice_maps
        if memo is not None and memo[0] == choices:
            return memo[1], memo[2]
        hint = (f"suggest it as trial.suggest_categorical({self.param_name!r}, sampler.choices), "
                "or build the sampler on a space that holds these functions")
        try:
            classes = self.space.classes_of(list(choices)).tolist()
        except ValueError as exc:
            raise ValueError(f"parameter {self.param_name!r}: choice {exc}; {hint}") from None
        missing = [c for c, k in zip(choices, classes) if k < 0]
        if missing:
            shown = ", ".join(map(repr, missing[:3])) + (", ..." if len(missing) > 3 else "")
            raise ValueError(f"parameter {self.param_name!r}: {len(missing)} of its choices are in "
                             f"no class of the sampler's space ({shown}); {hint}")
        class_of = dict(zip(choices, classes))
        choice_of: Dict[int, Any] = {}
        for choice, cls in class_of.items():
            # A class's own name when it is among the choices, else its first choice.
            if cls not in choice_of or choice == self.space.names[cls]:
                choice_of[cls] = choice
        self._choice_maps = (choices, class_of, choice_of)
        return class_of, choice_of


def _with_fisher(space: ActivationSpace, build: Callable, inputs: Any, targets: Any, device: Any,
                 cache: bool, progress: bool) -> ActivationSpace:
    """``space`` with the Fisher features of every class whose outputs are finite."""
    if inputs is None or targets is None:
        raise ValueError("build needs inputs and targets: the batch the Fisher features are "
                         "computed on (or pass task=)")
    if space.fisher_ok.any():
        raise ValueError("this space already has Fisher features (from its study file): "
                         "leave out task and build")
    rows = np.flatnonzero(np.isfinite(space.out_feats).all(axis=1))
    feats, ok, reasons = fisher_features_cached(build, [space.names[i] for i in rows], inputs,
                                                targets, device, cache, progress)
    if rows.size and not ok.any():
        raise ValueError(f"no function got Fisher features on this model and batch; the first "
                         f"error: {reasons[0]}")
    fisher = np.full((len(space), feats.shape[1]), np.nan, dtype=np.float32)
    fisher_ok = np.zeros(len(space), dtype=bool)
    fisher[rows], fisher_ok[rows] = feats, ok
    return space.with_fisher(fisher, fisher_ok)


__all__ = ["ActivationSpace", "AquaSurfSampler"]
