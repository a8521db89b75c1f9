"""The search (SPEC section 6): a ``Study`` suggests candidates, records results, and runs workers.

``Study`` is a facade over parts that each hold the study's store: ``space`` (``SpaceBuilder``:
filling the search space), ``pool`` (``FisherPool``: which classes get Fisher features),
``features`` (``FeatureService``: computing and reading features), ``ranker`` (``Ranker``: the
surrogate, the layouts and the ranking that suggestions follow), ``results_view``
(``ResultsView``) and ``claims`` (``Claims``: suggest and tell, ``study.suggestions``); ``run`` is the
loop of ``loop.run_study``.
"""
from __future__ import annotations

import functools
import json
import os
import socket
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from .._checks import check_int, check_positive
from ..defaults import DEFAULT_BASELINES
from ..surrogate.strategy import DEFAULT_STRATEGY, STRATEGY_NAMES
from .feature_service import FeatureService
from .fisher_pool import FisherPool
from .loop import run_study
from .ranking import Ranker
from .recipe import check_recipe
from .results import ResultsView
from .space_builder import SpaceBuilder
from .store import Store, StudyError
from .store.delegate import delegate
from .suggestions import Claim, Claims

DEFAULT_LEASE_S = 600.0
DEFAULT_MAX_RETRIES = 2
ORDERS = ("surrogate", "exhaustive")


SETTINGS = ("task", "baselines", "regressor", "random_state", "lease_s", "max_retries", "order",
            "strategy", "recipe")


def _checked_settings(**values: Any) -> Dict[str, Any]:
    """The settings given (not None), checked and in their stored form."""
    task, regressor = values.get("task"), values.get("regressor")
    strategy, order = values.get("strategy"), values.get("order")
    if task is not None:
        from ..tasks import resolve_spec

        values["task"] = resolve_spec(task)
    if regressor is not None:
        from ..surrogate.regression import REGRESSOR_NAMES

        if regressor not in REGRESSOR_NAMES:
            raise StudyError(
                f"unknown regressor {regressor!r}: use one of {', '.join(REGRESSOR_NAMES)}")
    if strategy is not None and strategy not in STRATEGY_NAMES:
        raise StudyError(f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGY_NAMES)}")
    if order is not None and order not in ORDERS:
        raise StudyError(f"unknown order {order!r}: use one of {', '.join(ORDERS)}")
    if values.get("lease_s") is not None:
        values["lease_s"] = check_positive("lease_s", values["lease_s"], "seconds", StudyError)
    if values.get("max_retries") is not None:
        values["max_retries"] = check_int("max_retries", values["max_retries"], 0, StudyError)
    if values.get("baselines") is not None:
        values["baselines"] = list(values["baselines"])
    if values.get("recipe") is not None:
        values["recipe"] = check_recipe(values["recipe"])
    return {k: v for k, v in values.items() if v is not None}


def _default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _prepared(part: str, method):
    """``delegate``, for a method that reads the candidates: their features are brought up to
    date first (``FeatureService.prepare_candidates``), so that the part's read writes nothing."""
    name = method.__name__

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        self.features.prepare_candidates()
        return getattr(getattr(self, part), name)(*args, **kwargs)

    return call


class Study:
    """A search study stored in one SQLite file; create it, or open it when the file exists.

    Example (the built-in mnist1d task; ``featurize`` needs the model, ``run`` trains)::

        study = aq.Study("s.db", task="mnist1d")
        study.add_functions(aq.enumerate_schema("binary(unary(x),unary(x))",
                                                unary=aq.BENCHMARK_UNARY_OPS))
        study.featurize()
        study.run(budget=30, workers=2)
        study.top(5)

    or drive it yourself: ``for name in study.suggest(2): study.tell(name, train(name))``.

    Parameters (used when creating; an existing study keeps its stored settings, and reopening it
    with another value is refused: ``update_settings`` changes them for every process)
    ----------
    path : the study file.
    task : the task whose model gives the Fisher features and whose ``train_eval`` scores candidates:
        "mnist1d", "digits", a .py file or a module path (see ``aquasurf_fast.tasks``). Optional when
        you pass your own ``evaluate`` to ``run`` and do not need Fisher features.
    baselines : evaluated first, in this order; added to the search space if missing.
    regressor : "knn" (default), "rf", "svr", or a scikit-learn regressor instance (instances are not
        stored in the file; pass it again when reopening).
    strategy : how candidates are chosen after the baselines: "adaptive" (default), "hybrid", "ensemble",
        "paper" (the paper's k-NN on one UMAP layout) or "random"
        (``aquasurf_fast.surrogate.strategy``).
    random_state : seed of the surrogate and of the order of the first suggestions.
    lease_s : how long a claim lives without renewal before its candidate returns to the pool.
    max_retries : a failing evaluation is tried again at most this many times.
    order : "surrogate" (default) suggests by predicted score. "exhaustive" suggests every class with
        finite outputs in a fixed random order, Fisher features or not, without fitting the
        surrogate: for building a benchmark, where everything is trained anyway.
    """

    def __init__(self, path: str, *, task: Optional[str] = None,
                 baselines: Optional[Sequence[str]] = None, regressor: Any = None,
                 random_state: Optional[int] = None, lease_s: Optional[float] = None,
                 max_retries: Optional[int] = None, order: Optional[str] = None,
                 strategy: Optional[str] = None, create: Optional[bool] = None,
                 owner: Optional[str] = None):
        exists = os.path.exists(path) and os.path.getsize(path) > 0
        if create is None:
            create = not exists
        if create and exists:
            raise StudyError(f"{path} already exists; open it with Study({path!r})")
        given = _checked_settings(task=task, baselines=baselines, random_state=random_state,
                                  lease_s=lease_s, max_retries=max_retries, order=order,
                                  strategy=strategy,
                                  regressor=regressor if isinstance(regressor, str) else None)
        settings = {
            "task": None,
            "order": "surrogate",
            "strategy": DEFAULT_STRATEGY,
            "baselines": list(DEFAULT_BASELINES),
            "regressor": "knn" if regressor is None else "custom",
            "random_state": 42,
            "lease_s": DEFAULT_LEASE_S,
            "max_retries": DEFAULT_MAX_RETRIES,
            **given,
            "features_version": 0,
        }
        self.path = os.fspath(path)
        self.store = Store(self.path, create=create, meta=settings)
        self.owner = owner or _default_owner()
        if not create:
            stored = self.store.meta()
            changed = {k: v for k, v in given.items() if stored.get(k) != v}
            if changed:
                self.store.close()
                key, value = next(iter(changed.items()))
                raise StudyError(
                    f"{self.path} has {key}={stored.get(key)!r}, not {value!r}: a setting is "
                    "shared by every process that opens the study, so it is changed explicitly, "
                    f"with study.update_settings({key}={value!r})")
        self.space = SpaceBuilder(self.store)
        self.pool = FisherPool(self.store, self.space)
        self.features = FeatureService(self.store, self.pool, self.owner)
        self.ranker = Ranker(self.store, self.features, self.owner,
                             None if isinstance(regressor, str) else regressor)
        self.results_view = ResultsView(self.store)
        self.claims = Claims(self.store, self.ranker, self.owner)

    # -- the parts' methods ------------------------------------------------------------------------

    add_functions = delegate("space", SpaceBuilder.add_functions)
    add_classes = delegate("space", SpaceBuilder.add_classes)
    add_schema = delegate("space", SpaceBuilder.add_schema)
    add_names_file = delegate("space", SpaceBuilder.add_names_file)
    store_projection = delegate("space", SpaceBuilder.store_projection)
    class_of = delegate("space", SpaceBuilder.class_of)
    members = delegate("space", SpaceBuilder.members)
    n_finite = delegate("space", SpaceBuilder.n_finite)
    space_descriptions = delegate("space", SpaceBuilder.space_descriptions)
    choose_pool = delegate("pool", FisherPool.choose_pool)
    pool_progress = delegate("pool", FisherPool.progress)
    set_fisher_features = delegate("features", FeatureService.set_fisher_features)
    has_fisher = delegate("features", FeatureService.has_fisher)
    fisher_failure_reasons = delegate("features", FeatureService.fisher_failure_reasons)
    has_pending_candidate = delegate("features", FeatureService.has_pending_candidate)
    pending_fisher = delegate("features", FeatureService.pending_fisher)
    fisher_job = delegate("features", FeatureService.fisher_job)
    record_fisher_features = delegate("features", FeatureService.record_fisher_features)
    log_featurized = delegate("features", FeatureService.log_featurized)
    surrogate = _prepared("ranker", Ranker.surrogate)
    predictions = _prepared("ranker", Ranker.predictions)
    prediction_map = _prepared("ranker", Ranker.prediction_map)
    results = delegate("results_view", ResultsView.results)
    iter_results = delegate("results_view", ResultsView.iter_results)
    top = delegate("results_view", ResultsView.top)
    best = delegate("results_view", ResultsView.best)
    events = delegate("results_view", ResultsView.events)
    event_details = delegate("results_view", ResultsView.event_details)
    suggest = _prepared("claims", Claims.suggest)
    tell = delegate("claims", Claims.tell)
    fail = delegate("claims", Claims.fail)
    release = delegate("claims", Claims.release)
    renew = delegate("claims", Claims.renew)

    @functools.wraps(run_study)
    def run(self, *args, **kwargs) -> Dict[str, Any]:
        return run_study(self, *args, **kwargs)

    def featurize(self, *, pool: Optional[int] = None, build: Optional[Callable] = None,
                  inputs: Any = None, targets: Any = None, featurizer: Optional[Callable] = None,
                  chunk: int = 128, seed: int = 42, device: Any = None, progress: bool = True,
                  embed: bool = True, executor=None) -> Dict[str, int]:
        """Choose the Fisher pool (``choose_pool(pool)``) and compute its missing output and
        Fisher features; resumable (each chunk is committed).

        ``build``/``inputs``/``targets`` default to the study's task. ``featurizer`` defaults to
        ``aq.fisher_features_for`` and is called as ``featurizer(build, names, inputs, targets,
        seed=..., device=..., progress=False) -> (features [n, D], ok [n], reasons [n])``.
        Classes whose outputs are not finite are never candidates and get no Fisher feature.
        With ``executor`` (worker processes, Ray) the chunks run as its jobs; workers load the
        study's task themselves, or receive ``build``/``inputs``/``targets``, which must then be
        picklable. With ``embed`` the surrogate's UMAP embedding is computed and stored at the end.

        Returns the counts of output and Fisher features computed, of classes with non-finite
        outputs, of Fisher features that failed, and the three most common reasons why. When
        every Fisher feature failed (a bug in the task's ``build``, say), it stops after the
        first round with a StudyError that gives the most common reason, rather than letting the
        search run on output features alone.
        """
        done = self.features.featurize(pool=pool, build=build, inputs=inputs, targets=targets,
                                       featurizer=featurizer, chunk=chunk, seed=seed,
                                       device=device, progress=progress, executor=executor)
        if embed and self.features.n_candidates():
            # Fit UMAP now, once, so that the search's first surrogate suggestion does not keep every
            # worker waiting; the embedding is stored in the study for all processes.
            t0 = time.perf_counter()
            self.features.prepare_candidates()
            self.ranker.prepare_embedding()
            if progress:
                print(f"embedded {self.features.n_candidates()} candidates in "
                      f"{time.perf_counter() - t0:.1f} s", flush=True)
        return done

    def grow(self, k: int, featurize: bool = True, progress: bool = False) -> List[str]:
        """Add to the Fisher pool the ``k`` classes nearest the best results (``FisherPool.grow``,
        which computes their output features) and, with ``featurize``, their Fisher features.
        Returns the names that joined."""
        added = self.pool.grow(k)
        if not added:
            return []
        if featurize:
            self.features.featurize(pool=0, progress=progress)
        return self.pool.names_of(added)

    def task_evaluator(self, device: Any = None, epochs: Optional[int] = None,
                       amp: Optional[bool] = None, data_dir: Optional[str] = None,
                       seeds: int = 1, known_runs=None):
        """The evaluator that trains this study's task on its training recipe (``study.recipe``:
        ``epochs`` and ``amp`` given become the recipe, or must match the one its results were
        trained with; ``seeds``/``known_runs`` as ``TaskEvaluator``'s). The one place a search's
        evaluator is built, for ``run``, the CLI and benchmark builds."""
        from .recipe import task_evaluator

        return task_evaluator(self, device=device, epochs=epochs, amp=amp, data_dir=data_dir,
                              seeds=seeds, known_runs=known_runs)

    # -- settings ----------------------------------------------------------------------------------

    @property
    def settings(self) -> Dict[str, Any]:
        return self.store.meta()

    def update_settings(self, **values: Any) -> Dict[str, List[Any]]:
        """Change settings that every process using the study shares (``task``, ``baselines``,
        ``regressor`` by name, ``random_state``, ``lease_s``, ``max_retries``, ``order``,
        ``strategy``, the training ``recipe``: see ``study.recipe``), checked as ``Study`` checks
        them. The change is logged as a "settings"
        event. Returns ``{setting: [old, new]}`` for those that changed."""
        unknown = sorted(set(values) - set(SETTINGS))
        if unknown:
            raise StudyError(f"unknown setting {unknown[0]!r}: the settings are "
                             f"{', '.join(SETTINGS)}")
        given = _checked_settings(**values)
        with self.store.transaction() as c:
            stored = self.store.meta()
            changed = {k: [stored.get(k), v] for k, v in given.items() if stored.get(k) != v}
            if changed:
                self.store.put_meta(c, **{k: new for k, (_, new) in changed.items()})
                self.store.log(c, "settings", owner=self.owner, detail=json.dumps(changed))
        return changed

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Study":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        c = self.counts()
        return (f"Study({self.path!r}: {c['classes']} classes, {c['done']} done, "
                f"{c['running']} running)")

    # -- reading -----------------------------------------------------------------------------------

    def counts(self) -> Dict[str, int]:
        """Classes by status, names, the Fisher pool and the surrogate candidates. Costs O(pool),
        not O(classes): the search loop reads it at every step."""
        kept = self.store.counts()
        out = {s: kept[s] for s in ("pending", "running", "done", "failed")}
        out["classes"] = sum(out.values())
        out["names"] = kept["functions"] + self.store.n_space_names()
        out["pool"] = self.store.pool_size()
        out["candidates"] = self.features.n_candidates()
        return out


__all__ = ["Study", "Claim", "StudyError"]
