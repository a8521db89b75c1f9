"""The features of classes in the study file, read by scope (``store.scope``): the candidates'
output and Fisher features, the pool's pending Fisher work, and exports. A part of ``Store``.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np

from .database import Database, from_blob
from .scope import HAS_FISHER, Scope


class FeatureTables:
    """The feature columns of ``classes`` (a part of ``Store``); holds the ``Database``."""

    def __init__(self, db: Database):
        self.db = db

    # -- Fisher features ---------------------------------------------------------------------------

    def has_fisher(self) -> bool:
        """Whether any class of the pool has valid Fisher features."""
        return bool(self.db.query(HAS_FISHER))

    def fisher_width(self) -> Optional[int]:
        """The number of columns of the study's stored Fisher features, None before the first."""
        rows = self.db.query("SELECT length(fisher_feat) FROM classes "
                             "WHERE fisher_feat IS NOT NULL LIMIT 1")
        return rows[0][0] // 4 if rows else None

    def pending_fisher_names(self) -> List[str]:
        """The pool's classes with finite outputs still without Fisher features, as they joined."""
        return [name for _, name in self.db.query(
            "SELECT id, canonical FROM classes WHERE pool IS NOT NULL AND fisher_ok IS NULL AND "
            "out_finite = 1 ORDER BY pool, id")]

    def mark_non_finite_fisher_invalid(self) -> int:
        """Give the explicit classes whose outputs are not finite an invalid Fisher feature (they
        are never candidates); returns how many were marked."""
        with self.db.transaction() as c:
            return c.execute(
                "UPDATE classes SET fisher_ok = 0, fisher_reason = 'non-finite output features' "
                "WHERE out_finite = 0 AND fisher_ok IS NULL AND space_id IS NULL").rowcount

    def fisher_failure_reasons(self, limit: int = 1) -> List[Tuple[str, int]]:
        """(reason, count) of the pool's failed Fisher features with finite outputs, most common
        first."""
        return [(reason, int(n)) for reason, n in self.db.query(
            "SELECT fisher_reason, count(*) AS n FROM classes WHERE pool IS NOT NULL AND "
            "fisher_ok = 0 AND out_finite = 1 GROUP BY fisher_reason ORDER BY n DESC LIMIT ?",
            (int(limit),))]

    def valid_fisher_features(self) -> Dict[int, np.ndarray]:
        """The valid Fisher features of the study, by class id."""
        return {class_id: from_blob(blob) for class_id, blob in self.db.query(
            "SELECT id, fisher_feat FROM classes WHERE fisher_feat IS NOT NULL AND fisher_ok = 1")}

    # -- classes in a scope ------------------------------------------------------------------------

    def count_in_scope(self, scope: Scope, up_to: Optional[int] = None) -> int:
        """How many classes ``scope`` holds; with ``up_to``, counted up to that many (a space of
        millions is not read through to compare its size with a small number)."""
        where = Scope.of(scope).value
        if up_to is None:
            return int(self.db.query(f"SELECT count(*) FROM classes WHERE {where}")[0][0])
        return int(self.db.query(f"SELECT count(*) FROM (SELECT 1 FROM classes WHERE {where} "
                                 "LIMIT ?)", (int(up_to),))[0][0])

    def class_ids_in_scope(self, scope: Scope) -> np.ndarray:
        """int64: the ids of the classes of ``scope``, ascending."""
        return np.array([r[0] for r in self.db.query(
            f"SELECT id FROM classes WHERE {Scope.of(scope).value} ORDER BY id")], dtype=np.int64)

    def classes_without_output_features(self, scope: Scope) -> List[Tuple[int, str]]:
        """(id, canonical name) of the classes of ``scope`` whose output features are not stored."""
        return self.db.query(f"SELECT id, canonical FROM classes WHERE out_feat IS NULL AND "
                             f"({Scope.of(scope).value})")

    def features_in_scope(self, scope: Scope, with_fisher: bool):
        """(class ids ascending, output features [n, 1000], Fisher features [n, D] or None) of the
        classes of ``scope``; the Fisher features only ``with_fisher``."""
        # Sorted here, not by ORDER BY id, which made SQLite scan every class of a large space by
        # id instead of reading the pool's index (0.37 s against 0.015 s on 2.27M classes).
        rows = self.db.query(f"SELECT id, out_feat, fisher_feat FROM classes "
                             f"WHERE {Scope.of(scope).value}")
        rows.sort(key=lambda r: r[0])
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        out = (np.stack([from_blob(r[1]) for r in rows]) if rows
               else np.zeros((0, 1000), dtype=np.float32))
        fisher = None
        if with_fisher:
            fisher = (np.stack([from_blob(r[2]) for r in rows]) if rows
                      else np.zeros((0, 1), dtype=np.float32))
        return ids, out, fisher

    def has_pending(self, scope: Scope) -> bool:
        """Whether a baseline or a class of ``scope`` is still pending."""
        return bool(self.db.query(f"SELECT 1 FROM classes WHERE status = 'pending' AND "
                                  f"(baseline = 1 OR ({Scope.of(scope).value})) LIMIT 1"))

    # -- exports -----------------------------------------------------------------------------------

    def classes_with_output_features(self) -> List[tuple]:
        """(id, canonical, output features, Fisher features or None, fisher_ok) of every class
        whose output features are stored, by id: what another tool reads a study's candidates
        from."""
        return [(i, name, from_blob(out), from_blob(fisher), ok) for i, name, out, fisher, ok in
                self.db.query("SELECT id, canonical, out_feat, fisher_feat, fisher_ok FROM classes "
                              "WHERE out_feat IS NOT NULL ORDER BY id")]

    def explicit_members(self) -> List[Tuple[int, str]]:
        """(class id, name) of every explicit name, in the order they were added."""
        return self.db.query("SELECT class_id, name FROM functions ORDER BY rowid")

    def explicit_names(self) -> List[str]:
        """Every explicit name (not of a schema or names file)."""
        return [name for name, in self.db.query("SELECT name FROM functions")]
