"""The Fisher pool in the study file: which classes are in it, in which round, and the output
projections the pool is chosen by. A part of ``Store``.
"""
from __future__ import annotations

import sqlite3
from typing import Optional, Sequence, Tuple

import numpy as np


class PoolTables:
    """The ``pool`` and ``projection`` columns of ``classes`` (a part of ``Store``)."""

    def pool_size(self) -> int:
        return int(self.query("SELECT count(*) FROM classes WHERE pool IS NOT NULL")[0][0])

    def pool_state(self, c: Optional[sqlite3.Connection] = None) -> Tuple[int, int]:
        """(the number of the next round of the pool, 0 for the first; classes in the pool),
        read inside the transaction ``c`` when given. A round chosen from one state is written
        only while the state is the same, so that rounds of several processes never mix."""
        # Two statements, each answered by the pool's partial index; one ``count(pool)`` over
        # the table would read every class.
        sql = ("SELECT (SELECT coalesce(max(pool) + 1, 0) FROM classes WHERE pool IS NOT NULL), "
               "(SELECT count(*) FROM classes WHERE pool IS NOT NULL)")
        next_round, size = c.execute(sql).fetchone() if c is not None else self.query(sql)[0]
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
        cached = self.__dict__.get("_projections")
        if cached is None or cached[0] != key:
            rows = self.query("SELECT id, projection FROM classes "
                              "WHERE out_finite = 1 AND projection IS NOT NULL ORDER BY id")
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            coords = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
            cached = self.__dict__["_projections"] = (key, ids, coords)
        _, ids, coords = cached
        pool = np.array([r[0] for r in self.query("SELECT id FROM classes WHERE pool IS NOT NULL")],
                        dtype=np.int64)
        # ids ascend: the pool's rows by binary search (np.isin sorted all 2 million ids each round)
        rows = np.minimum(np.searchsorted(ids, pool), max(ids.size - 1, 0))
        in_pool = np.zeros(ids.size, dtype=bool)
        if ids.size:
            in_pool[rows[ids[rows] == pool]] = True  # pool classes without coordinates are not in ids
        return ids, coords, in_pool

    # The classes whose finiteness or coordinates may change after they are added: the explicit
    # ones and those of the pool (the only ones that get output features later).
    CHANGEABLE = ("id IN (SELECT id FROM classes WHERE space_id IS NULL UNION "
                  "SELECT id FROM classes WHERE pool IS NOT NULL)")

    def projections_key(self) -> tuple:
        """Changes whenever the classes with coordinates may have: classes added (their number and
        largest id), or a class's finiteness or coordinates changed (a count kept by a trigger)."""
        counts = self.counts()
        n_classes = sum(counts[s] for s in ("pending", "running", "done", "failed"))
        max_id = self.query("SELECT max(id) FROM classes")[0][0]
        return n_classes, max_id, counts["coordinates"]
