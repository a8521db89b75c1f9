"""Opening a study file, its transactions, and how arrays are stored.

Arrays are raw little-endian bytes read back with ``np.frombuffer``: no text encoding, no eval,
no pickle. Every write runs in a ``BEGIN IMMEDIATE`` transaction, so a writer takes the lock before
reading what it will change.

Threads of one process share the connection; a lock held for each transaction and each read keeps
one thread's statements out of another's transaction.

The path ``":memory:"`` opens a study held in memory, without a file (for tests): it lives as long
as its ``Database``, so no other process or ``StudyReader`` can see it.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from typing import Any, Iterator, List, Mapping, Optional, Sequence

import numpy as np

from .events import write_event
from .schema import (ADDITIONS, APPLICATION_ID, COUNTERS, COUNTS_TABLE, CREATE, SCHEMA_VERSION,
                     TABLES, UPGRADE_1_TO_2)

IN_MEMORY = ":memory:"
BUSY_TIMEOUT_MS = 60_000
CACHE_KB = 256 * 1024


class StudyError(ValueError):
    """A study file cannot be used: not a study, corrupt, from a newer version, or misused."""


def remove_study_files(path: str) -> None:
    """Delete a study file together with its SQLite write-ahead log and shared-memory files."""
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


def to_blob(array: np.ndarray) -> bytes:
    """Raw little-endian float32 bytes of an array, flattened."""
    return np.ascontiguousarray(array, dtype="<f4").reshape(-1).tobytes()


def from_blob(blob: Optional[bytes]) -> Optional[np.ndarray]:
    """The float32 array stored by ``to_blob`` (None stays None)."""
    if blob is None:
        return None
    return np.frombuffer(blob, dtype="<f4")


def fingerprints(rows: np.ndarray) -> List[bytes]:
    """The engine's 128-bit fingerprints of output features (NaNs made equal), 16 bytes each:
    two classes are equivalent exactly when their fingerprints are equal (SPEC section 3)."""
    from ... import _C

    hashes, _ = _C.hash_rows(np.ascontiguousarray(rows, dtype=np.float32).reshape(len(rows), -1))
    raw = np.ascontiguousarray(hashes, dtype="<u8").tobytes()
    return [raw[16 * i:16 * (i + 1)] for i in range(len(rows))]


class Database:
    """The SQLite file of one study, opened by one process (open one per process); its threads may
    share it. Opening checks the file, creates it (with ``create``: its settings ``meta``) or
    upgrades it; then ``transaction`` writes and ``query`` reads.

    Only the parts of ``study/store`` hold a ``Database``: ``Store`` and ``StudyReader`` keep theirs
    private, so no caller outside the store is handed a way to run SQL."""

    def __init__(self, path: str, create: bool = False, meta: Optional[Mapping[str, Any]] = None):
        self.path = os.fspath(path)
        exists = (self.path != IN_MEMORY and os.path.exists(self.path)
                  and os.path.getsize(self.path) > 0)
        if not exists and not create:
            raise StudyError(f"{self.path}: no such study (create it first, e.g. `aquasurf init`)")
        if os.path.isdir(self.path):
            raise StudyError(f"{self.path} is a directory, not a study file")
        # Reentrant: a transaction's body may read through ``query``.
        self._lock = threading.RLock()
        if exists:
            self._check_header()
        try:
            self.conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise StudyError(f"{self.path}: cannot open ({exc})") from exc
        with self._translate_errors():
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if exists:
                self._check_identity()
            else:
                self._create(meta or {})
            self._add_counts_and_indexes()
            self.conn.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed result survives a power cut too, at one fsync per commit (cheap
            # next to a training run).
            self.conn.execute("PRAGMA synchronous = FULL")
            self.conn.execute("PRAGMA foreign_keys = ON")
            # A large space's class table and its fingerprint index outgrow SQLite's default 2 MB
            # page cache; inserting millions of classes then rereads the index from disk.
            self.conn.execute(f"PRAGMA cache_size = -{CACHE_KB}")

    # -- opening -----------------------------------------------------------------------------------

    def _check_header(self) -> None:
        with open(self.path, "rb") as f:
            head = f.read(16)
        if head != b"SQLite format 3\x00":
            raise StudyError(f"{self.path} is not an aquasurf study (not an SQLite database)")

    def _check_identity(self) -> None:
        app_id = self.conn.execute("PRAGMA application_id").fetchone()[0]
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if app_id != APPLICATION_ID:
            raise StudyError(
                f"{self.path} is an SQLite database but not an aquasurf study "
                f"(application_id {app_id:#x})"
            )
        if version > SCHEMA_VERSION:
            raise StudyError(
                f"{self.path} was written by a newer aquasurf_fast (study schema v{version}; "
                f"this version reads up to v{SCHEMA_VERSION}): upgrade aquasurf_fast"
            )
        if version < 1:
            raise StudyError(f"{self.path}: study schema version missing; the file is damaged")
        if version == 1:
            self._upgrade_from_1()
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = set(TABLES) - tables
        if missing:
            raise StudyError(f"{self.path}: study is damaged (missing tables: {sorted(missing)})")

    def _upgrade_from_1(self) -> None:
        with self.transaction() as c:
            if c.execute("PRAGMA user_version").fetchone()[0] != 1:
                return  # another process upgraded it meanwhile
            for statement in UPGRADE_1_TO_2:
                c.execute(statement)
            rows = c.execute("SELECT id, out_feat FROM classes WHERE out_feat IS NOT NULL").fetchall()
            if rows:
                feats = np.stack([from_blob(blob) for _, blob in rows])
                c.executemany("UPDATE classes SET out_hash = ? WHERE id = ?",
                              zip(fingerprints(feats), (i for i, _ in rows)))
            c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            write_event(c, "upgrade", detail=json.dumps({"from": 1, "to": SCHEMA_VERSION}))

    def _add_counts_and_indexes(self) -> None:
        """Give a file without them (a new one, or one written before they existed) the counts
        kept by triggers (``schema.COUNTERS``), counted once from the tables, and the indexes and
        counters of ``schema.ADDITIONS``."""
        wanted = [COUNTS_TABLE, *ADDITIONS]
        sql = f"SELECT name FROM sqlite_master WHERE name IN ({','.join('?' * len(wanted))})"
        if len(self.conn.execute(sql, wanted).fetchall()) == len(wanted):
            return
        with self.transaction() as c:
            # Read again under the lock: another process may have added some meanwhile.
            present = {name for name, in c.execute(sql, wanted)}
            if COUNTS_TABLE not in present:
                for statement in COUNTERS:
                    c.execute(statement)
            for name, statements in ADDITIONS.items():
                if name not in present:
                    for statement in statements:
                        c.execute(statement)

    def _create(self, meta: Mapping[str, Any]) -> None:
        with self.transaction() as c:
            # A concurrent creator may have won the race between our existence check and now.
            if c.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID:
                return
            if c.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise StudyError(f"{self.path} is an SQLite database but not an aquasurf study")
            # executescript() would commit the open transaction first; run the statements one by one.
            for statement in CREATE.split(";"):
                if statement.strip():
                    c.execute(statement)
            c.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            rows = {"created": repr(time.time()), **{k: json.dumps(v) for k, v in meta.items()}}
            c.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", rows.items())

    @contextlib.contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except StudyError:
            raise
        except sqlite3.DatabaseError as exc:
            msg = str(exc)
            if "malformed" in msg or "not a database" in msg or "corrupt" in msg:
                raise StudyError(f"{self.path}: the study file is corrupt ({msg})") from exc
            raise StudyError(f"{self.path}: {msg}") from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that holds the database lock from its first statement."""
        with self._lock, self._translate_errors():
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> List[tuple]:
        """The rows of one statement. For the parts of ``study/store`` only: the rest of the
        package asks the store's named methods (``tests/test_store_seams.py`` holds it to that)."""
        with self._lock, self._translate_errors():
            return self.conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock, contextlib.suppress(Exception):
            self.conn.close()
