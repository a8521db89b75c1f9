"""The Fisher pool in the study file: which classes are in it, in which round, and the output
projections the pool is chosen by. A part of ``Store``.
"""
from __future__ import annotations

import json
import sqlite3
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .database import Database, from_blob, to_blob
from .events import EventLog
from .settings import SettingsTables


class PoolTables:
    """The ``pool`` and ``projection`` columns of ``classes`` (a part of ``Store``). Holds the
    ``Database``, the ``SettingsTables`` whose counts tell when the coordinates it keeps in memory
    are stale, and the ``EventLog`` that records each round."""

    def __init__(self, db: Database, settings: SettingsTables, events: EventLog):
        self.db = db
        self.settings = settings
        self.events = events
        self._projections: Optional[tuple] = None  # (projections_key, ids, coordinates)

    def pool_size(self) -> int:
        return int(self.db.query("SELECT count(*) FROM classes WHERE pool IS NOT NULL")[0][0])

    def pool_state(self, c: Optional[sqlite3.Connection] = None) -> Tuple[int, int]:
        """(the number of the next round of the pool, 0 for the first; classes in the pool),
        read inside the transaction ``c`` when given. A round chosen from one state is written
        only while the state is the same, so that rounds of several processes never mix."""
        # Two statements, each answered by the pool's partial index; one ``count(pool)`` over
        # the table would read every class.
        sql = ("SELECT (SELECT coalesce(max(pool) + 1, 0) FROM classes WHERE pool IS NOT NULL), "
               "(SELECT count(*) FROM classes WHERE pool IS NOT NULL)")
        next_round, size = c.execute(sql).fetchone() if c is not None else self.db.query(sql)[0]
        return int(next_round), int(size)

    def add_to_pool(self, c: sqlite3.Connection, class_ids: Sequence[int], round_: int) -> int:
        """Put classes in the pool in round ``round_`` (inside a transaction); returns how many
        joined (the others were in it already)."""
        return c.executemany("UPDATE classes SET pool = ? WHERE id = ? AND pool IS NULL",
                             [(round_, int(i)) for i in class_ids]).rowcount

    def projections(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(class ids, coordinates [n, DIMS], in pool) of every class with finite outputs that has
        coordinates. The ids and coordinates of a large space take seconds to read, and the pool
        reads them at every round, so they are kept while ``projections_key`` is unchanged; the
        pool membership is read each time from the pool's index."""
        key = self.projections_key()
        if self._projections is None or self._projections[0] != key:
            rows = self.db.query("SELECT id, projection FROM classes "
                                 "WHERE out_finite = 1 AND projection IS NOT NULL ORDER BY id")
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            coords = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
            self._projections = (key, ids, coords)
        _, ids, coords = self._projections
        pool = np.array([i for i, in self.db.query(
            "SELECT id FROM classes WHERE pool IS NOT NULL")], dtype=np.int64)
        # ids ascend: the pool's rows by binary search (np.isin sorted all 2 million ids each round)
        rows = np.minimum(np.searchsorted(ids, pool), max(ids.size - 1, 0))
        in_pool = np.zeros(ids.size, dtype=bool)
        if ids.size:
            in_pool[rows[ids[rows] == pool]] = True  # pool classes without coordinates are not in ids
        return ids, coords, in_pool

    # The classes whose finiteness or coordinates may change after they are added: the explicit
    # ones and those of the pool (the only ones that get output features later).
    _CHANGEABLE = ("id IN (SELECT id FROM classes WHERE space_id IS NULL UNION "
                   "SELECT id FROM classes WHERE pool IS NOT NULL)")

    def classes_without_coordinates(self) -> Tuple[List[int], np.ndarray]:
        """(ids, output features [n, 1000]) of the classes with finite, stored output features but
        no coordinates: those given features after they were added, before the study had a
        projection. Only explicit and pool classes get output features after they are added."""
        rows = self.db.query("SELECT id, out_feat FROM classes WHERE out_finite = 1 AND "
                             "projection IS NULL AND out_feat IS NOT NULL AND " + self._CHANGEABLE)
        feats = (np.stack([from_blob(blob) for _, blob in rows]) if rows
                 else np.zeros((0, 1000), dtype=np.float32))
        return [i for i, _ in rows], feats

    def set_coordinates(self, class_ids: Sequence[int], coords: np.ndarray) -> None:
        """Store classes' coordinates in the output projection."""
        with self.db.transaction() as c:
            c.executemany("UPDATE classes SET projection = ? WHERE id = ?",
                          [(to_blob(row), int(i)) for i, row in zip(class_ids, coords)])

    def n_pool_counted(self) -> int:
        """The pool's classes that count toward its size: not the baselines, with finite outputs,
        and with valid or pending Fisher features (those that failed are no candidates)."""
        return int(self.db.query("SELECT count(*) FROM classes WHERE pool IS NOT NULL AND "
                                 "baseline = 0 AND out_finite = 1 AND "
                                 "(fisher_ok IS NULL OR fisher_ok = 1)")[0][0])

    def finite_baseline_ids(self) -> List[int]:
        """The ids of the baselines' classes with finite outputs."""
        return [i for i, in self.db.query("SELECT id FROM classes WHERE baseline = 1 AND "
                                          "out_finite = 1")]

    def best_finite_classes(self, limit: int) -> List[Tuple[int, str]]:
        """(id, canonical name) of the ``limit`` best evaluated classes with finite outputs, best
        first."""
        return self.db.query("SELECT id, canonical FROM classes WHERE status = 'done' AND "
                             "score IS NOT NULL AND out_finite = 1 ORDER BY score DESC, "
                             "eval_index LIMIT ?", (int(limit),))

    def write_pool_round(self, state: Tuple[int, int], class_ids: Sequence[int],
                         detail: Dict[str, Any], baselines: bool = False,
                         all_finite: bool = False) -> Optional[int]:
        """Put classes in the pool as the round after ``state`` (``pool_state``), only while the
        pool is still in that state: returns how many joined, or None when another process added
        a round meanwhile (nothing is written; choose again). With ``baselines`` the finite
        baselines join too, with ``all_finite`` every class with finite outputs. A round that
        adds classes is logged as a "pool" event: its round, how many joined, then ``detail``."""
        with self.db.transaction() as c:
            if self.pool_state(c) != state:
                return None
            round_ = state[0]
            joined = 0
            if baselines:
                joined += c.execute("UPDATE classes SET pool = ? WHERE baseline = 1 AND "
                                    "out_finite = 1 AND pool IS NULL", (round_,)).rowcount
            if all_finite:
                joined += c.execute("UPDATE classes SET pool = ? WHERE out_finite = 1 AND "
                                    "pool IS NULL", (round_,)).rowcount
            joined += self.add_to_pool(c, class_ids, round_)
            if joined:
                self.events.log(c, "pool", detail=json.dumps({"round": round_, "added": joined,
                                                              **detail}))
        return joined

    def pool_progress(self) -> Dict[str, int]:
        """The Fisher pool: classes in it, with valid Fisher features, failed, still to compute."""
        (n, ok, bad, todo), = self.db.query(
            "SELECT count(*), total(fisher_ok = 1), total(fisher_ok = 0), "
            "total(fisher_ok IS NULL AND out_finite = 1) FROM classes WHERE pool IS NOT NULL")
        return {"pool": int(n), "valid": int(ok), "failed": int(bad), "todo": int(todo)}

    def projections_key(self) -> tuple:
        """Changes whenever the classes with coordinates may have: classes added (their number and
        largest id), or a class's finiteness or coordinates changed (a count kept by a trigger)."""
        counts = self.settings.counts()
        n_classes = sum(counts[s] for s in ("pending", "running", "done", "failed"))
        max_id = self.db.query("SELECT max(id) FROM classes")[0][0]
        return n_classes, max_id, counts["coordinates"]
