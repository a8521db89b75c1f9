"""A study's Fisher pool: which classes get Fisher features.

Output features cost microseconds, Fisher features up to seconds each: in a large space only a
pool of classes gets them. The pool starts as the baselines plus classes chosen to cover the
output-feature space (``surrogate.coverage.choose_pool``), and during a search it grows by the classes
nearest the best results (``grow``).

Each addition is a round, numbered in the order rounds are written. A round is chosen outside the
write lock (choosing takes a while) from the pool as it was, and written only if the pool is still
the same (``Store.pool_state``); otherwise it is chosen again from the pool as it now is. So two
processes growing one study never share a round number, nor add what the other just added.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from ..defaults import GROW_FROM
from ..surrogate.coverage import PROBE_STRIDE, choose_pool, nearest_rows, take_turns
from .store import Scope, StudyError

# Without a pool size: every class with finite outputs up to this many, else DEFAULT_POOL of them.
ALL_UP_TO = 10_000
DEFAULT_POOL = 5_000
GROW_SHORTLIST = 20   # classes per added one that the projection shortlists for the exact distance
ROUND_TRIES = 10      # times a round is chosen again when other processes keep adding rounds
TOP_UP_AHEAD = 4      # picks computed per pick needed once a pool is being topped up


class FisherPool:
    """Chooses and grows a study's Fisher pool (the part of ``Study`` behind ``choose_pool`` and
    ``grow``). Reads the output projection from the study's ``SpaceBuilder``."""

    def __init__(self, store, space):
        self.store, self.space = store, space
        self._farthest_memo = None  # (coordinates, seed, seed rows, picked rows) of the last run

    def fill_output_features(self, scope: Scope) -> int:
        """Compute and store the output features of the classes of ``scope`` that lack them."""
        rows = self.store.classes_without_output_features(Scope.of(scope))
        if rows:
            from ..features import output_features

            self.store.set_output_features([i for i, _ in rows],
                                           output_features([name for _, name in rows]))
        return len(rows)

    def _ensure_projections(self) -> None:
        """Coordinates for classes that were added with features but before the study had a
        projection (the projection is fitted on them when there is none)."""
        ids, feats = self.store.classes_without_coordinates()
        if not ids:
            return
        coords = self.space.projection(sample_values=feats[:, ::PROBE_STRIDE]).of_features(feats)
        self.store.set_coordinates(ids, coords)

    def choose_pool(self, n: Optional[int] = None, random_state: Optional[int] = None) -> int:
        """Put the baselines and ``n`` other classes with finite outputs in the Fisher pool, the
        ones already there included: every such class when there are at most ``ALL_UP_TO`` and
        ``n`` is None, else ``n`` (default ``DEFAULT_POOL``) chosen to cover the output-feature
        space. Classes whose Fisher features failed do not count, so calling it again after
        featurizing tops the pool up; a larger ``n`` adds to it. Returns how many joined."""
        if n is not None and n < 0:
            raise StudyError(f"the pool size must be >= 0, got {n}")
        # Counted up to one past what the choice below compares with: exact up to there, and a
        # space of millions is not read through.
        n_finite = self.store.count_in_scope(Scope.FINITE,
                                             up_to=(ALL_UP_TO if n is None else n) + 1)
        target = (n_finite if n_finite <= ALL_UP_TO else DEFAULT_POOL) if n is None else n
        for _ in range(ROUND_TRIES):
            state = self.store.pool_state()
            # Classes whose Fisher features failed do not count: they are no candidates.
            have = self.store.n_pool_counted()
            picks: List[int] = []
            if target < n_finite and target > have:
                self._ensure_projections()
                ids, coords, in_pool = self.store.projections()
                in_pool |= np.isin(ids, self.store.finite_baseline_ids())  # they join in this round
                seed = int(self.store.meta()["random_state"] if random_state is None else random_state)
                picks = ids[self._farthest(coords, in_pool, target - have, seed)].tolist()
            joined = self.store.write_pool_round(state, picks, {"how": "coverage", "size": target},
                                                 baselines=True, all_finite=target >= n_finite)
            if joined is None:
                continue  # another process added a round meanwhile: choose again
            return joined
        raise self._busy()

    def _farthest(self, coords: np.ndarray, in_pool: np.ndarray, need: int, seed: int) -> np.ndarray:
        """Rows of the next ``need`` classes of farthest-point selection from the rows in the pool.

        The selection is greedy, so the picks that follow a pool grown by earlier picks are those
        that followed them in one longer run. A top-up round (the pool is the last run's pool
        plus a prefix of its picks) continues that run; a round that must run again after a
        first one computes ``TOP_UP_AHEAD`` times the picks it needs, for the rounds after it.
        Each run costs seconds on a space of millions of classes."""
        seeds = np.flatnonzero(in_pool)
        memo = self._farthest_memo
        if memo is not None and memo[0] is coords and memo[1] == seed:
            start, picks = memo[2], memo[3]
            m = seeds.size - start.size
            if 0 <= m and m + need <= picks.size and np.array_equal(
                    np.union1d(start, picks[:m]), seeds):
                return picks[m:m + need]
        picks = choose_pool(coords, need * (1 if memo is None else TOP_UP_AHEAD), seeds, seed)
        self._farthest_memo = (coords, seed, seeds, picks)
        return picks[:need]

    def _busy(self) -> StudyError:
        return StudyError(f"the Fisher pool changed {ROUND_TRIES} times while a round was being "
                          "chosen (other processes are adding to it): try again")

    def grow(self, k: int) -> List[int]:
        """Add to the pool the ``k`` classes not yet in it that are nearest, in output-feature
        space, to the best results (taking turns among the ``GROW_FROM`` best). The projection
        shortlists ``GROW_SHORTLIST`` x k classes per best result over the whole space; the exact
        distance over all 1,000 outputs picks among them. Returns the ids of the classes that
        joined, with their output features computed; they still need their Fisher features (the
        event log records their names)."""
        if k <= 0:
            return []
        for _ in range(ROUND_TRIES):
            state = self.store.pool_state()
            best = self.store.best_finite_classes(GROW_FROM)
            if not best:
                return []
            chosen = self._nearest_to(best, k)
            if not chosen:
                return []
            detail = {"how": "grow", "near": [n for _, n in best], "names": self.names_of(chosen)}
            if self.store.write_pool_round(state, chosen, detail) is None:
                continue  # another process added a round meanwhile: choose again
            self.fill_output_features(Scope.POOL)
            return chosen
        raise self._busy()

    def _nearest_to(self, best, k: int) -> List[int]:
        """The ``k`` classes not in the pool nearest the ``best`` (id, name) pairs, taking turns."""
        from ..features import output_features

        self._ensure_projections()
        ids, coords, in_pool = self.store.projections()  # ids ascending
        names = dict(best)
        turns = []
        for class_id, name in best:
            row = int(np.searchsorted(ids, class_id))  # not a dict of millions of ids per round
            if row == ids.size or ids[row] != class_id:
                continue
            shortlist = ids[nearest_rows(coords[row], coords, GROW_SHORTLIST * k, in_pool)]
            if shortlist.size == 0:
                continue
            cand = self.store.names_by_id(shortlist.tolist())
            feats = output_features([names[class_id]] + [cand[int(i)] for i in shortlist])
            d2 = ((feats[1:].astype(np.float64) - feats[0]) ** 2).sum(axis=1)
            turns.append([int(i) for i in shortlist[np.lexsort((shortlist, d2))]])
        return take_turns(turns, k)

    def progress(self) -> Dict[str, int]:
        """Classes in the pool ("pool"), with valid Fisher features ("valid"), whose Fisher features
        failed ("failed") and still to compute ("todo")."""
        return self.store.pool_progress()

    def names_of(self, class_ids: List[int]) -> List[str]:
        """The canonical names of classes, in the order of their ids."""
        return self.store.names_of(class_ids)
