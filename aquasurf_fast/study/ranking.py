"""A study's ranking of candidates for suggestions: the surrogate, the UMAP layouts, the output
points, the strategy's ranking and the prediction map drawn from them.

It is separate from ``features`` (``FeatureService``), which computes and reads the candidates'
features: the ranking only reads them, through ``FeatureService``'s public methods, and holds what
is fitted on them (the surrogate, the layouts) with the lock that keeps threads from fitting twice.
"""
from __future__ import annotations

import copy
import json
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..defaults import expression_name
from ..surrogate.strategy import DEFAULT_STRATEGY, Strategy, predict_classes, rank_classes
from .store import EmbeddingCache, StudyError


def baseline_class_ids(store, baselines: Sequence[str]) -> List[int]:
    """The classes of ``baselines`` in the study ``store``, in their order, each once; a baseline
    the study lacks is left out."""
    base_ids: List[int] = []
    for name in baselines:
        # As given ("elu" may be a class's own name) or as an expression; explicit, or held
        # by a names file.
        for form in dict.fromkeys((name, expression_name(name))):
            try:
                class_id = store.class_of(form)[0]
            except ValueError:
                continue
            if class_id not in base_ids:
                base_ids.append(class_id)
            break
    return base_ids


class Ranker:
    """Ranks a study's candidates for suggestions (the part of ``Study`` behind ``surrogate``,
    ``predictions`` and ``prediction_map``, and the order of ``suggest``), from the candidates'
    features that ``features`` (``FeatureService``) reads.

    ``owner`` names this process in the event log; ``regressor`` is the scikit-learn instance the
    study was given (None for a named regressor, which the study's settings hold).
    """

    def __init__(self, store, features, owner: str, regressor: Any = None):
        self.store, self.features, self.owner = store, features, owner
        self.regressor = regressor
        self._surrogate = None
        self._layout_cache = EmbeddingCache(store)
        self._layouts_memo: Optional[Tuple[Any, ...]] = None
        self._points_memo: Optional[Tuple[Any, np.ndarray]] = None
        self._baselines_memo: Optional[Tuple[Any, List[int]]] = None
        # Threads sharing a study fit one surrogate at a time: the first fit (UMAP) is computed
        # once, not by every thread, and a fit never rebinds arrays that another thread reads.
        self._fit_lock = threading.RLock()

    @property
    def settings(self) -> Dict[str, Any]:
        return self.store.meta()

    # -- the surrogate and the layouts -------------------------------------------------------------

    def regressor_in_use(self) -> Any:
        """The study's regressor: the instance it was given, or its name from the settings."""
        if self.regressor is None and self.settings["regressor"] == "custom":
            raise StudyError("this study was created with a regressor instance, which is not "
                             "stored in the file: pass it again, Study(path, regressor=...)")
        return self.regressor or self.settings["regressor"]

    def surrogate(self):
        """A Surrogate fitted on the current results (embedding from the study's cache). A new
        embedding (the candidates changed) is logged with the seconds it took.

        Each call returns its own copy, which a later fit (another thread's) leaves unchanged."""
        return self._fitted_surrogate()[1]

    def _fitted_surrogate(self) -> Tuple[np.ndarray, Any]:
        """(candidate class ids, a copy of the surrogate fitted on their current results)."""
        with self._fit_lock:
            ids, out, fisher, surrogate = self._embedded_surrogate()
            done = self.store.scores()
            pos = {cid: i for i, cid in enumerate(ids.tolist())}
            idx = [pos[c] for c in done if c in pos]
            surrogate.fit(out, fisher, idx, [done[ids[i]] for i in idx])
            return ids, copy.copy(surrogate)

    def _embedded_surrogate(self):
        """(candidate class ids, their output and Fisher features, the surrogate with their
        embedding); a new embedding is logged."""
        from ..surrogate.regression import Surrogate

        # One surrogate while the regressor and seed stay: it remembers the feature arrays it
        # embedded last, so a fit with one more result does not hash every feature byte again.
        params = (self.regressor_in_use(), self.settings["random_state"])
        if self._surrogate is None or self._surrogate[0] != params:
            self._surrogate = (params, Surrogate(*params, cache=self._layout_cache))
        surrogate = self._surrogate[1]
        ids, out, fisher = self.features.candidate_features()
        surrogate.embed(out, fisher)
        if surrogate.embed_seconds_ is not None:
            self._log_embedding(ids.size, surrogate.embed_seconds_)
        return ids, out, fisher, surrogate

    def embedding(self) -> Tuple[np.ndarray, np.ndarray]:
        """(candidate class ids, float32 [n, 2]): the surrogate's embedding of the candidates, the
        one layout the paper's strategy ranks by."""
        with self._fit_lock:
            ids, _, _, surrogate = self._embedded_surrogate()
            return ids, surrogate.embedding_

    def prepare_embedding(self) -> None:
        """Compute and store what the study's strategy ranks by: the paper's single embedding, the
        ensemble's and the hybrid's layouts (random search needs none)."""
        strategy = Strategy(self.settings.get("strategy", DEFAULT_STRATEGY))
        if strategy.ranks_by_surrogate or strategy.n_layouts:
            self.strategy_layouts(strategy)

    def strategy_layouts(self, strategy: Strategy) -> Tuple[np.ndarray, np.ndarray]:
        """(candidate class ids, float32 [M, n, 2]): what ``strategy`` ranks by, the surrogate's
        embedding as its one layout for the paper's, ``strategy.n_layouts`` layouts otherwise."""
        if strategy.ranks_by_surrogate:
            ids, embedding = self.embedding()
            return ids, embedding[None]
        return self.layouts(strategy.n_layouts)

    def layouts(self, n_layouts: int):
        """(candidate class ids, float32 [n_layouts, n_candidates, 2]): the candidates' fuzzy
        graph laid out under seeds random_state, random_state + 1, ... (``compute_layouts``), kept
        in the study file like the single embedding. A new set is logged with its seconds.

        A set that grew from the one laid out before (``search --grow``) keeps those places and
        places its new candidates (``surrogate.placement``) while the last set laid out from
        scratch makes up most of it."""
        from ..surrogate.embedding import cached_layouts
        from ..surrogate.placement import LaidOut, placement_base

        version = self.store.features_version()
        memo = self._layouts_memo
        if memo is not None and memo[:2] == (version, n_layouts):
            return memo[2].ids, memo[2].layouts
        with self._fit_lock:
            ids, out, fisher = self.features.candidate_features()
            if n_layouts < 1 or ids.size == 0:
                return ids, np.zeros((max(n_layouts, 0), ids.size, 2), dtype=np.float32)
            before = memo[2] if memo is not None and memo[1] == n_layouts else None
            grown_from, n_fresh = placement_base(before, ids)
            layouts, seconds = cached_layouts(self._layout_cache, out, fisher,
                                              self.settings["random_state"], n_layouts, grown_from)
            if seconds is not None:
                placed = None if grown_from is None else int(np.count_nonzero(~grown_from[0]))
                self._log_embedding(ids.size, seconds, placed)
            self._layouts_memo = (version, n_layouts, LaidOut(ids, layouts, n_fresh))
        return ids, layouts

    def output_points(self) -> np.ndarray:
        """float32 [n_candidates, P]: the candidates' ``strategy.output_points``, in the order of
        ``candidate_features``, kept until the features change."""
        from ..surrogate.strategy import output_points

        version = self.store.features_version()
        memo = self._points_memo
        if memo is None or memo[0] != version:
            out = self.features.candidate_features()[1]
            memo = self._points_memo = (version, output_points(out))
        return memo[1]

    def _log_embedding(self, n_candidates: int, seconds: float, placed: Optional[int] = None) -> None:
        """Log a new embedding; ``placed``: how many new candidates were placed in the layouts
        before (None: laid out from scratch)."""
        detail = {"candidates": int(n_candidates), "seconds": round(seconds, 3)}
        if placed is not None:
            detail["placed"] = placed
        self.store.log_event("embed", owner=self.owner, detail=json.dumps(detail))

    def predictions(self) -> Dict[int, float]:
        """Predicted score per candidate class id (NaN before any finite result)."""
        ids, s = self._fitted_surrogate()
        return dict(zip(ids.tolist(), s.predict().tolist()))

    # -- ranking -----------------------------------------------------------------------------------

    def ranking(self, n: int = 1) -> List[int]:
        """Candidate class ids, the next to evaluate first (the first ``n`` chosen together)."""
        random_state = self.settings["random_state"]
        if self.settings.get("order") == "exhaustive":
            ids = self.store.class_ids_in_scope(self.features.pool_scope())
            return ids[np.random.RandomState(random_state).permutation(ids.size)].tolist()
        return self._strategy_ranking(self.strategy(), n, random_state)

    def strategy(self) -> Strategy:
        """The study's strategy with the regressor it fits."""
        return Strategy(self.settings.get("strategy", DEFAULT_STRATEGY), self._strategy_regressor())

    def prediction_map(self):
        """(candidate class ids, float32 [n, 2] coordinates, predicted scores): what the study's
        strategy sees, for plots. The paper's strategy: its surrogate's embedding and predictions;
        the others: the first layout and the mean prediction over the layouts (the hybrid's and
        the adaptive strategy's picks by the output features have no map); random search:
        the first layout, no predictions (NaN). A new embedding is computed and logged here."""
        strategy = self.strategy()
        if strategy.ranks_by_surrogate:
            ids, s = self._fitted_surrogate()
            return ids, s.embedding_, s.predict()
        ids, layouts = self.layouts(max(strategy.n_layouts, 1))
        if not strategy.n_layouts:  # random search: nothing is predicted
            return ids, layouts[0], np.full(ids.size, np.nan)
        return ids, layouts[0], predict_classes(strategy, ids, layouts, self.store.scores())

    def baseline_ids(self) -> List[int]:
        """The classes of the study's baselines, in their order. Looked up again only when the
        classes (the features version) or the baselines changed: every suggestion reads them
        twice, and each lookup may decode a space's names."""
        baselines = self.settings["baselines"]
        key = (self.store.features_version(), tuple(baselines))
        if self._baselines_memo is None or self._baselines_memo[0] != key:
            self._baselines_memo = (key, baseline_class_ids(self.store, baselines))
        return list(self._baselines_memo[1])

    def _strategy_regressor(self) -> Any:
        """The regressor a strategy fits: the study's instance or named one; None (the strategy's
        own) for the default "knn", which the ensemble weights by inverse distance."""
        regressor = self.regressor_in_use()
        return None if isinstance(regressor, str) and regressor == "knn" else regressor

    def _strategy_ranking(self, strategy: Strategy, n: int, random_state) -> List[int]:
        """The ranking of a ``surrogate.strategy`` strategy from the study's results and claims."""
        ids, layouts = self.strategy_layouts(strategy)
        if ids.size == 0:
            return []
        scores, pending = self.store.evaluated_and_running()
        in_candidates = set(ids.tolist())
        n_start = sum(1 for cid in self.baseline_ids() if cid in in_candidates)
        points = self.output_points() if strategy.needs_points else None
        return rank_classes(strategy, ids, layouts, scores, pending, n_start, n, random_state,
                            points)
