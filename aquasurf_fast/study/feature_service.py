"""A study's features: computing the Fisher pool's features, and reading the candidates' features
that every suggestion is ranked by (``study.ranking``).

Every class in the Fisher pool (``study.fisher_pool``) with valid features is a surrogate candidate; the
ranking's embedding is recomputed when, and only when, that set changes.
"""
from __future__ import annotations

import collections
import json
from typing import Any, Callable, Counter, Dict, List, Optional, Tuple

import numpy as np

from .._checks import check_int
from .store import Scope, StudyError, candidate_scope


MAX_TOP_UPS = 25  # rounds of topping the pool up after failed Fisher features (later ones are small)


class FeatureService:
    """Computes a study's features and reads its candidates' (the part of ``Study`` behind
    ``featurize``, ``set_fisher_features`` and ``has_fisher``). Chooses the pool to featurize
    through the study's ``FisherPool``; the study's ``Ranker`` ranks the candidates it reads.

    ``owner`` names this process in the event log.
    """

    def __init__(self, store, pool, owner: str):
        self.store, self.pool, self.owner = store, pool, owner
        self._features: Optional[Tuple[Any, ...]] = None
        self._n_candidates_memo: Optional[Tuple[Any, ...]] = None
        self._prepared: Optional[Tuple[int, int]] = None  # (features version, pool size)

    @property
    def settings(self) -> Dict[str, Any]:
        return self.store.meta()

    def set_fisher_features(self, names, feats: np.ndarray, ok=None, reasons=None) -> None:
        """Store Fisher features of classes (by any member's name); rows with ok False are invalid.
        The classes join the Fisher pool."""
        feats = np.asarray(feats, dtype=np.float32)
        if feats.ndim != 2 or feats.shape[0] != len(names):
            raise StudyError(f"expected Fisher features [{len(names)}, D], got {feats.shape}")
        if ok is None:
            ok = np.isfinite(feats).all(axis=1)
        if reasons is None:
            reasons = ["" if o else "non-finite Fisher features" for o in ok]
        width = self.store.fisher_width()
        if width is not None and np.any(ok) and width != feats.shape[1]:
            raise StudyError(
                f"Fisher features have {feats.shape[1]} columns but this study's have "
                f"{width}: they must come from the same task")
        ids = [self.store.class_of(n)[0] for n in names]
        self.store.set_fisher_features(ids, feats, ok, reasons)
        self.store.bump_features_version()

    # -- featurizing -------------------------------------------------------------------------------

    def featurize(self, *, pool: Optional[int] = None, build: Optional[Callable] = None,
                  inputs: Any = None, targets: Any = None, featurizer: Optional[Callable] = None,
                  chunk: int = 128, seed: int = 42, device: Any = None, progress: bool = True,
                  executor=None) -> Dict[str, int]:
        """The features part of ``Study.featurize`` (which describes the arguments and the counts
        returned): choose the Fisher pool (``choose_pool(pool)``) and compute its missing output
        and Fisher features, without the embedding; resumable (each chunk is committed)."""
        chunk = check_int("chunk", chunk, 1, StudyError)
        if pool is not None:
            check_int("pool", pool, 0, StudyError)
        # Explicit classes added without features get them first: the pool is chosen among
        # classes whose outputs are known to be finite.
        n_out = self.pool.fill_output_features(Scope.EXPLICIT)
        n_fisher = 0
        failures: Counter[str] = collections.Counter()
        # A pool class whose Fisher features fail (its activations overflow in the model) is no
        # candidate: the pool is topped up until it holds the classes asked for with valid or
        # pending features, or the space runs out.
        for _ in range(MAX_TOP_UPS):
            self.pool.choose_pool(pool)
            n_out += self.pool.fill_output_features(Scope.POOL)
            todo = self.pending_fisher()
            if not todo:
                break
            job = self.fisher_job(build, inputs, targets, featurizer, seed, device)
            failures += self._compute_fisher(todo, job, chunk, progress, executor)
            n_fisher += len(todo)
            if not self.has_fisher():
                break  # every one failed: another round would fail the same way
        n_bad = self.store.mark_non_finite_fisher_invalid()
        self.store.bump_features_version()
        reasons = failures.most_common(3)
        self.log_featurized(n_fisher, failures)
        if n_fisher and not self.has_fisher():
            reason, count = reasons[0]
            raise StudyError(
                f"Fisher features failed for all {n_fisher} classes tried (most often, {count} "
                f"times: {reason}): check that the task's build(activation) returns its model and "
                "that fisher_batch() gives inputs and targets the model accepts; the search "
                "would otherwise run on output features alone")
        return {"output": n_out, "fisher": n_fisher, "non_finite": n_bad,
                "failed": sum(failures.values()), "reasons": reasons}

    def pending_fisher(self) -> List[str]:
        """The pool's classes with finite outputs still without Fisher features, as they joined."""
        return self.store.pending_fisher_names()

    def fisher_job(self, build: Optional[Callable] = None, inputs: Any = None, targets: Any = None,
                   featurizer: Optional[Callable] = None, seed: int = 42, device: Any = None):
        """The ``FisherChunkJob`` that featurizes this study's classes: on its task's model and
        batch unless ``build``, ``inputs`` and ``targets`` are given."""
        from .featurize import FisherChunkJob

        spec = self.settings.get("task")
        if (build is None or inputs is None) and not spec:
            raise StudyError("this study has no task: pass build, inputs and targets, or "
                             "create the study with a task")
        return FisherChunkJob(spec, build, inputs, targets, featurizer, seed, device)

    def record_fisher_features(self, names, feats: np.ndarray, ok, reasons) -> Counter[str]:
        """``set_fisher_features``, and how often each reason of failure occurred among them."""
        from .featurize import failure_counts

        self.set_fisher_features(names, feats, ok, reasons)
        return failure_counts(ok, reasons)

    def log_featurized(self, n: int, failures: Counter[str]) -> None:
        """Log that ``n`` classes were featurized, ``failures`` counting why some failed."""
        if n:
            self.store.log_event("featurize", owner=self.owner, detail=json.dumps(
                {"fisher": n, "failed": sum(failures.values()),
                 "reasons": failures.most_common(3)}))

    def _compute_fisher(self, names, job, chunk, progress, executor) -> Counter[str]:
        """Fisher features of ``names`` by ``job`` in committed chunks, in this process or by
        ``executor``. Returns how often each reason of failure occurred."""
        failures: Counter[str] = collections.Counter()
        if not names:
            return failures

        def record(part, feats, ok, reasons) -> None:
            failures.update(self.record_fisher_features(part, feats, ok, reasons))

        from .featurize import compute_chunks

        compute_chunks(job, names, chunk, record, executor, int(self.settings["max_retries"]),
                       progress)
        return failures

    # -- candidates --------------------------------------------------------------------------------

    def has_fisher(self) -> bool:
        """Whether any class of the pool has valid Fisher features."""
        return self.store.has_fisher()

    def fisher_failure_reasons(self, limit: int = 3) -> List[Tuple[str, int]]:
        """(reason, count) of the pool's failed Fisher features, most common first."""
        return self.store.fisher_failure_reasons(limit)

    def candidate_scope(self) -> Scope:
        """The surrogate's candidates (``store.scope.candidate_scope``)."""
        return candidate_scope(self.store)

    def pool_scope(self) -> Scope:
        """The classes that suggestions are drawn from (besides the baselines)."""
        if self.settings.get("order") == "exhaustive":
            return Scope.FINITE
        return self.candidate_scope()

    def n_candidates(self) -> int:
        """How many candidates there are. Counted again only when the features version or the
        pool's size changed (everything that changes the candidates changes one of them): the
        count reads every class of a space without a pool, and the search loop asks at every step."""
        key = (self.store.features_version(), self.store.pool_size())
        memo = self._n_candidates_memo
        if memo is None or memo[0] != key:
            n = self.store.count_in_scope(self.candidate_scope())
            memo = self._n_candidates_memo = (key, n)
        return memo[1]

    def has_pending_candidate(self) -> bool:
        """Whether a baseline or a class that suggestions are drawn from is still pending."""
        return self.store.has_pending(self.pool_scope())

    def prepare_candidates(self) -> None:
        """Write what reading the candidates needs: without any Fisher feature, the default pool of
        a schema or names file (as featurize would choose it); the output features of the
        candidates that lack them; the feature set they are embedded by, in the event log. Done
        again only when the features version or the pool's size changed. ``Study`` calls it before
        every read of the candidates (suggest, surrogate, predictions, prediction map), so that
        those reads write nothing."""
        key = (self.store.features_version(), self.store.pool_size())
        if self._prepared == key:
            return
        use_fisher = self.has_fisher()
        self._log_feature_set("fisher" if use_fisher else "output")
        if not use_fisher and not self.store.pool_size() and self.store.spaces():
            # A schema or names file searched without Fisher features (an evaluate function, no
            # task): its candidates are the default pool, as featurize would choose it.
            self.pool.choose_pool()
        self.pool.fill_output_features(self.candidate_scope())
        self._prepared = (self.store.features_version(), self.store.pool_size())

    def candidate_features(self):
        """(class ids, output features, Fisher features or None), cached until features change.
        Reads only: ``prepare_candidates`` writes what they need first."""
        version = self.store.features_version()
        if self._features is not None and self._features[0] == version:
            return self._features[1:]
        use_fisher = self.has_fisher()
        ids, out, fisher = self.store.features_in_scope(self.candidate_scope(),
                                                        with_fisher=use_fisher)
        self._features = (version, ids, out, fisher)
        return ids, out, fisher

    def _log_feature_set(self, features: str) -> None:
        """Log the features the candidates are embedded by ("fisher": Fisher and output features,
        "output": output features alone) whenever they differ from the last ones logged."""
        self.store.log_event_if_changed("feature_set", self.owner, json.dumps({"features": features}))
