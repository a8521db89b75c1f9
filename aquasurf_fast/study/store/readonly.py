"""Reading a study file without writing to it: what a dashboard watching a running search asks.

``ReadOnlyDatabase`` opens the file through SQLite's read-only URI (``file:...?mode=ro``), so it
never creates, upgrades or locks anything: in WAL mode a reader sees the last committed state and
never blocks the workers' writes. It is not the ``Database`` of ``Store``, whose opening may create
the file, add counters and upgrade old versions; a file that would need any of that is refused with
a ``StudyError`` instead. ``StudyReader`` asks it the dashboard's questions, and shares the settings
part of ``Store`` (``SettingsTables``) to read the settings and counts as the store reads them.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import urllib.parse
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .database import StudyError, from_blob
from .delegate import delegate
from .schema import APPLICATION_ID, COUNTS_TABLE, SCHEMA_VERSION, TABLES
from .scope import HAS_FISHER, Scope
from .settings import SettingsTables


class ReadOnlyDatabase:
    """A study file opened read-only: ``query`` reads it, nothing writes it. Opening refuses a file
    that is no study, or one that ``Database`` would have to upgrade first. Threads may share it
    (a lock serializes its statements)."""

    def __init__(self, path: str):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise StudyError(f"{self.path}: no such study file")
        with open(self.path, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                raise StudyError(f"{self.path} is not an aquasurf study (not an SQLite database)")
        self._lock = threading.Lock()
        uri = "file:" + urllib.parse.quote(os.path.abspath(self.path)) + "?mode=ro"
        try:
            self.conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StudyError(f"{self.path}: cannot open ({exc})") from exc
        self._check_identity()

    def _check_identity(self) -> None:
        app_id = self.query("PRAGMA application_id")[0][0]
        version = self.query("PRAGMA user_version")[0][0]
        if app_id != APPLICATION_ID:
            raise StudyError(f"{self.path} is an SQLite database but not an aquasurf study")
        if version != SCHEMA_VERSION:
            raise StudyError(
                f"{self.path} has study schema v{version}; this version reads v{SCHEMA_VERSION} "
                "only" + (" (open it once with `aquasurf status` to upgrade it)"
                          if version < SCHEMA_VERSION else ": upgrade aquasurf_fast"))
        tables = {r[0] for r in self.query("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = (set(TABLES) | {COUNTS_TABLE}) - tables
        if missing:
            raise StudyError(f"{self.path}: study is damaged or was never opened by this version "
                             f"(missing tables: {', '.join(sorted(missing))})")

    @contextlib.contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise StudyError(f"{self.path}: cannot read the study ({exc})") from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> List[tuple]:
        """The rows of one statement (for the parts of ``study/store`` only, as
        ``Database.query``)."""
        with self._lock, self._translate_errors():
            return self.conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock, contextlib.suppress(Exception):
            self.conn.close()


class StudyReader:
    """A study file opened read-only (``ReadOnlyDatabase``, held privately), with the settings
    part of ``Store`` over it (``SettingsTables``: the settings decoded as ``Store`` decodes
    them, the features version, the counts). Threads may share it."""

    def __init__(self, path: str):
        self._db = ReadOnlyDatabase(path)
        self._settings = SettingsTables(self._db)
        self.path = self._db.path

    close = delegate("_db", ReadOnlyDatabase.close)
    meta = delegate("_settings", SettingsTables.meta)
    features_version = delegate("_settings", SettingsTables.features_version)
    counts = delegate("_settings", SettingsTables.counts)

    # -- the spaces and the pool -------------------------------------------------------------------

    def spaces(self) -> List[Tuple[str, str, int]]:
        """(kind, source, number of names) of each schema or names file, oldest first."""
        return self._db.query("SELECT kind, source, n_names FROM spaces ORDER BY id")

    def has_fisher(self) -> bool:
        """Whether any class of the pool has valid Fisher features."""
        return bool(self._db.query(HAS_FISHER))

    def pool_size(self) -> int:
        return int(self._db.query("SELECT count(*) FROM classes WHERE pool IS NOT NULL")[0][0])

    def pool_progress(self) -> Dict[str, int]:
        """The Fisher pool: classes in it, with valid Fisher features, failed, still to compute."""
        (n, ok, bad, todo), = self._db.query(
            "SELECT count(*), total(fisher_ok = 1), total(fisher_ok = 0), "
            "total(fisher_ok IS NULL AND out_finite = 1) FROM classes WHERE pool IS NOT NULL")
        return {"pool": int(n), "valid": int(ok), "failed": int(bad), "todo": int(todo)}

    # -- results, claims and the log ---------------------------------------------------------------

    def evaluated(self) -> List[tuple]:
        """(id, canonical, score, metrics JSON, runtime, eval_index, finished_at, baseline,
        n_members, worker) of every class with a result, in the order they were told. The worker
        is the owner the result's event names (a class's claim is cleared when it is told)."""
        return self._db.query(
            "SELECT c.id, c.canonical, c.score, c.metrics, c.runtime, c.eval_index, c.finished_at, "
            "c.baseline, c.n_members, (SELECT e.owner FROM events e WHERE e.class_id = c.id AND "
            "e.kind = 'result' ORDER BY e.id LIMIT 1) FROM classes c WHERE c.status = 'done' "
            "ORDER BY c.eval_index")

    def claims(self) -> List[tuple]:
        """(id, canonical, owner, claimed_at, lease_until) of every running class."""
        return self._db.query("SELECT id, canonical, claim_owner, claimed_at, lease_until "
                              "FROM classes WHERE status = 'running' ORDER BY claimed_at")

    def failures(self, limit: int) -> List[tuple]:
        """(class id, canonical, status now, attempts, error, time) of the last ``limit`` failed
        attempts, newest first. Read from the event log: the classes' error column has no index,
        and scanning millions of classes for it would cost most of a page's load."""
        return self._db.query(
            "SELECT e.class_id, c.canonical, c.status, c.attempts, e.detail, e.time FROM events e "
            "JOIN classes c ON c.id = e.class_id WHERE e.kind = 'failure' ORDER BY e.id DESC "
            "LIMIT ?", (int(limit),))

    def events(self, limit: int) -> List[tuple]:
        """(time, kind, class name or None, owner, detail) of the last ``limit`` events, newest first."""
        return self._db.query(
            "SELECT e.time, e.kind, c.canonical, e.owner, e.detail FROM events e "
            "LEFT JOIN classes c ON c.id = e.class_id ORDER BY e.id DESC LIMIT ?", (int(limit),))

    # -- the candidates and their layout -----------------------------------------------------------

    _CLASS_COLUMNS = "id, canonical, n_members, status, score, baseline"

    def classes_in_scope(self, scope: Scope) -> List[tuple]:
        """(id, canonical, n_members, status, score, baseline) of the classes of ``scope``, by
        id."""
        rows = self._db.query(f"SELECT {self._CLASS_COLUMNS} FROM classes "
                              f"WHERE {Scope.of(scope).value}")
        rows.sort(key=lambda r: r[0])  # as FeatureService.candidate_features orders them
        return rows

    def classes_by_id(self, class_ids: Sequence[int]) -> List[tuple]:
        """``classes_in_scope``'s columns for these classes, in the order given."""
        found = self._rows_by_id(self._CLASS_COLUMNS, class_ids)
        return [found[int(i)] for i in class_ids]

    def _rows_by_id(self, columns: str, class_ids: Sequence[int], where: str = "1") -> Dict[int, tuple]:
        """The rows (``columns``, the first being ``id``) of these classes matching ``where``, by
        id, in batches below SQLite's limit on bound parameters."""
        found: Dict[int, tuple] = {}
        ids = [int(i) for i in class_ids]
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            found.update((r[0], r) for r in self._db.query(
                f"SELECT {columns} FROM classes WHERE {where} AND id IN "
                f"({','.join('?' * len(part))})", part))
        return found

    def output_features(self, class_ids: Sequence[int]) -> np.ndarray:
        """float32 [len(class_ids), 1000]: the stored output features of these classes."""
        found = self._rows_by_id("id, out_feat", class_ids)
        rows = [from_blob(found[int(i)][1]) for i in class_ids]
        return np.stack(rows) if rows else np.zeros((0, 1000), dtype=np.float32)

    def newest_layout(self, n_rows: int, suffix: str) -> Optional[Tuple[np.ndarray, float]]:
        """(float32 [n_rows, W] coordinates, time stored) of the newest cached embedding with
        ``n_rows`` rows whose key ends with ``suffix`` ("" for the paper's single embedding, whose
        key is a bare digest), or None."""
        for key, n, blob, created in self._db.query(
                "SELECT key, n, coords, created FROM embeddings ORDER BY created DESC"):
            bare = "-" not in key
            if n == n_rows and ((bare and not suffix) or (suffix and key.endswith(suffix))):
                return from_blob(blob).reshape(n, -1).copy(), created
        return None

    def layouts_stamp(self) -> float:
        """When the newest embedding was stored (0 when none is): the map changes with it."""
        return float(self._db.query("SELECT coalesce(max(created), 0) FROM embeddings")[0][0])

    def projection_sample(self, max_id: int, stride: int) -> List[tuple]:
        """(id, status, projection blob) of the classes with finite outputs among ids 1, 1 +
        stride, 1 + 2 stride, ...: a sample of a large space read by primary-key lookups, without
        scanning millions of rows."""
        return self._db.query(
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + ? FROM s WHERE i + ? <= ?) "
            "SELECT c.id, c.status, c.projection FROM s JOIN classes c ON c.id = s.i "
            "WHERE c.out_finite = 1 AND c.projection IS NOT NULL", (stride, stride, int(max_id)))

    def max_class_id(self) -> int:
        return int(self._db.query("SELECT coalesce(max(id), 0) FROM classes")[0][0])

    def projections_of(self, class_ids: Sequence[int]) -> Dict[int, np.ndarray]:
        """The output projections (float32 [DIMS]) of these classes, where stored."""
        found = self._rows_by_id("id, projection", class_ids, "projection IS NOT NULL")
        return {cid: from_blob(blob) for cid, (_, blob) in found.items()}

    def class_detail(self, class_id: int) -> Optional[tuple]:
        """(canonical, n_members, status, score, metrics JSON, runtime, fisher_feat, fisher_ok,
        fisher_reason) of one class, or None."""
        rows = self._db.query("SELECT canonical, n_members, status, score, metrics, runtime, "
                              "fisher_feat, fisher_ok, fisher_reason FROM classes WHERE id = ?",
                              (int(class_id),))
        return rows[0] if rows else None


__all__ = ["StudyReader"]
