"""Reading results from the study file: one row per class with its status, score, metrics, claim
and explicit names, in the orders the study's reports ask for. A part of ``Store``.
"""
from __future__ import annotations

from typing import List

from .database import Database

_COLUMNS = ("c.id, c.canonical, c.status, c.score, c.metrics, c.runtime, c.attempts, c.error, "
            "c.eval_index, c.baseline, c.claim_owner, c.claimed_at, c.finished_at, c.n_members, "
            "c.n_members > (SELECT count(*) FROM functions g WHERE g.class_id = c.id), "
            "group_concat(f.name, ' ')")
_FINISHED_OR_RUNNING = "c.status IN ('done', 'failed', 'running')"


class ResultTables:
    """The result columns of ``classes`` with the explicit names of ``functions`` (a part of
    ``Store``).

    Each row: (id, canonical, status, score, metrics JSON, runtime, attempts, error, eval_index,
    baseline, claim_owner, claimed_at, finished_at, n_members, whether a space holds more of its
    names, its explicit names joined by spaces or None). Holds the ``Database``.
    """

    def __init__(self, db: Database):
        self.db = db

    def _result_rows(self, where: str, order: str, params=()) -> List[tuple]:
        return self.db.query(
            f"SELECT {_COLUMNS} FROM classes c LEFT JOIN functions f ON f.class_id = c.id {where} "
            f"GROUP BY c.id ORDER BY {order}", params)

    def result_rows(self, include_pending: bool = False) -> List[tuple]:
        """Every class (with ``include_pending``) or those evaluated, failed or running, in the
        order they were evaluated, then the others by id."""
        where = "" if include_pending else f"WHERE {_FINISHED_OR_RUNNING}"
        return self._result_rows(where, "c.eval_index IS NULL, c.eval_index, c.id")

    def result_rows_after(self, last_id: int, limit: int, include_pending: bool = True) -> List[tuple]:
        """The next ``limit`` classes by id after ``last_id`` (a batch of an export)."""
        status = "" if include_pending else f"AND {_FINISHED_OR_RUNNING}"
        return self._result_rows(f"WHERE c.id > ? {status}", f"c.id LIMIT {int(limit)}",
                                 (int(last_id),))

    def best_result_rows(self, k: int) -> List[tuple]:
        """The ``k`` evaluated classes with the highest scores, best first."""
        return self._result_rows("WHERE c.status = 'done' AND c.score IS NOT NULL",
                                 f"c.score DESC, c.eval_index LIMIT {int(k)}")
