"""The spaces in the study file: a schema or names file is one row of ``spaces`` plus each name's
class id, 4 bytes per name in rows of ``spaces.CHUNK`` (``space_classes``), and for a names file
each name's hash (``space_names``). A part of ``Store`` beside ``ClassTables``.
"""
from __future__ import annotations

import contextlib
import sqlite3
from typing import Dict, List, Optional, Tuple

import numpy as np

from ...spaces import CHUNK, name_hash, source_from_row
from .database import Database, StudyError

# Set aside while a space inserts more classes than the study holds: the status and fingerprint
# indexes (rebuilt by one sort each, instead of millions of inserts at random places) and the insert
# trigger (its counting is done once, for all the rows).
BULK_SET_ASIDE = ("classes_status", "classes_out_hash", "classes_counted_insert")
BULK_MIN_ROWS = 10_000  # below this, setting them aside saves less than it costs


class SpaceTables:
    """``spaces``, ``space_classes`` and ``space_names`` (a part of ``Store``). Holds the
    ``Database``, each space's source (built once) and the number of names the spaces hold."""

    def __init__(self, db: Database):
        self.db = db
        self._sources: Dict[int, object] = {}  # by space id
        self._space_names: Optional[Tuple[int, int]] = None  # (spaces, names they hold)

    @contextlib.contextmanager
    def bulk_insert(self, c: sqlite3.Connection, first_id: int, n_rows: int):
        """Inside the transaction ``c``, around inserting ``n_rows`` classes with ids from
        ``first_id`` on: when they outnumber the classes present, the indexes and the trigger of
        ``BULK_SET_ASIDE`` are dropped first and made again after, from their own stored
        definitions, and the new rows are counted by status. Readers see either state whole."""
        n_present = int(c.execute("SELECT count(*) FROM classes WHERE id < ?", (first_id,)).fetchone()[0])
        if n_rows <= max(n_present, BULK_MIN_ROWS):
            yield
            return
        marks = ",".join("?" * len(BULK_SET_ASIDE))
        saved = c.execute(f"SELECT type, name, sql FROM sqlite_master WHERE name IN ({marks})",
                          BULK_SET_ASIDE).fetchall()
        for kind, name, _ in saved:
            c.execute(f"DROP {kind.upper()} {name}")
        yield
        for kind, name, sql in saved:
            c.execute(sql)
        if any(name == "classes_counted_insert" for _, name, _ in saved):
            c.executemany("UPDATE counts SET n = n + ? WHERE key = ?", [
                (n, status) for status, n in c.execute(
                    "SELECT status, count(*) FROM classes WHERE id >= ? GROUP BY status", (first_id,))])

    def add_space(self, c: sqlite3.Connection, source) -> int:
        return c.execute("INSERT INTO spaces (kind, source, ops, digest, n_names) "
                         "VALUES (?, ?, ?, ?, ?)",
                         (source.kind, source.source, source.ops, source.digest,
                          len(source))).lastrowid

    def spaces(self) -> List[Tuple[int, object]]:
        """(space id, source) of every space, oldest first (sources are built once per Store)."""
        rows = self.db.query("SELECT id, kind, source, ops, digest, n_names FROM spaces ORDER BY id")
        out = []
        for space_id, kind, source, ops, digest, n_names in rows:
            if space_id not in self._sources:
                try:
                    self._sources[space_id] = source_from_row(kind, source, ops, digest, n_names)
                except ValueError as exc:
                    raise StudyError(str(exc)) from None
            out.append((space_id, self._sources[space_id]))
        return out

    def n_space_names(self) -> int:
        """Distinct names held by the spaces (explicit names are counted in ``functions``): the
        names with a class, so without a names file's blank, comment and repeated lines, nor the
        names an earlier space or explicit list held first. Spaces are only ever added whole, so
        the count is kept per number of spaces: the search loop reads it at every step."""
        n_spaces = int(self.db.query("SELECT count(*) FROM spaces")[0][0])
        if self._space_names is None or self._space_names[0] != n_spaces:
            total = sum(int(np.count_nonzero(np.frombuffer(row[0], dtype="<i4")))
                        for row in self.db.query("SELECT class_ids FROM space_classes"))
            self._space_names = (n_spaces, total)
        return self._space_names[1]

    def put_class_ids(self, c: sqlite3.Connection, space_id: int, start: int, ids: np.ndarray) -> None:
        """Store the class ids of names ``start``..: ``start`` is a multiple of CHUNK."""
        ids = np.ascontiguousarray(ids, dtype="<i4")
        c.executemany("INSERT OR REPLACE INTO space_classes (space_id, chunk, class_ids) VALUES (?, ?, ?)",
                      [((space_id, (start + k) // CHUNK, ids[k:k + CHUNK].tobytes()))
                       for k in range(0, len(ids), CHUNK)])

    def class_ids(self, space_id: int) -> np.ndarray:
        """int32 [n_names]: the class id of every name of a space (0: a line that is no name, or a
        name held first elsewhere in the study)."""
        rows = self.db.query("SELECT class_ids FROM space_classes WHERE space_id = ? ORDER BY chunk",
                             (space_id,))
        return np.frombuffer(b"".join(r[0] for r in rows), dtype="<i4")

    def class_id_at(self, space_id: int, index: int) -> int:
        row = self.db.query("SELECT class_ids FROM space_classes WHERE space_id = ? AND chunk = ?",
                            (space_id, index // CHUNK))
        return int(np.frombuffer(row[0][0], dtype="<i4")[index % CHUNK]) if row else 0

    def put_name_hashes(self, c: sqlite3.Connection, space_id: int, hashes: np.ndarray,
                        lines: np.ndarray) -> None:
        """Index a names file: each name's 64-bit hash (``spaces.name_hash``) and line."""
        c.executemany("INSERT OR IGNORE INTO space_names (space_id, hash, line) VALUES (?, ?, ?)",
                      zip([space_id] * len(lines), np.asarray(hashes).tolist(), np.asarray(lines).tolist()))

    def index_in_space(self, space_id: int, source, name: str) -> Optional[int]:
        """The name's index in a space, None when it is not there. A names file finds it by its
        64-bit hash: two different names sharing one would be confused (odds of 1 in 10^7 for a
        million names)."""
        if source.kind == "schema":
            return source.index(name)
        row = self.db.query("SELECT min(line) FROM space_names WHERE space_id = ? AND hash = ?",
                            (space_id, name_hash(name)))
        return None if row[0][0] is None else int(row[0][0])
