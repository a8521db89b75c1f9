"""A study's storage: one SQLite file that several processes read and write at once.

Layout (schema version 1, recorded in ``PRAGMA user_version``; the file is marked as ours by
``PRAGMA application_id``):

- ``meta``       key/value settings of the study (task, baselines, regressor, leases, ...).
- ``classes``    one row per equivalence class: canonical name, float32 feature BLOBs, status
                 (pending, running, done, failed), score, metrics (a JSON object of scalars), runtime,
                 attempts, last error, and the current claim (token, owner, lease expiry).
- ``functions``  every name in the search space and the class it belongs to.
- ``events``     an append-only log: claims, results, failures, expired leases.
- ``embeddings`` the surrogate's cached 2-D embedding of a candidate set, keyed by a feature hash.

Arrays are stored as raw little-endian float32 bytes and read back with ``np.frombuffer``: no text
encoding, no eval, no pickle. Every write runs in a ``BEGIN IMMEDIATE`` transaction, so a writer
takes the lock before reading what it will change; together with the rules in ``record_result``
(a result is written once; a failure report from a claim that is no longer current is ignored), no
interleaving of processes loses a result or overwrites one.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import time
import uuid
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

SCHEMA_VERSION = 1
APPLICATION_ID = 0x41515346  # "AQSF"
BUSY_TIMEOUT_MS = 60_000

STATUSES = ("pending", "running", "done", "failed")

_SCHEMA = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE classes (
    id            INTEGER PRIMARY KEY,
    canonical     TEXT NOT NULL UNIQUE,
    n_members     INTEGER NOT NULL DEFAULT 1,
    baseline      INTEGER NOT NULL DEFAULT 0,
    out_hash      TEXT,
    out_feat      BLOB,
    out_finite    INTEGER,
    fisher_feat   BLOB,
    fisher_ok     INTEGER,
    fisher_reason TEXT,
    status        TEXT NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'running', 'done', 'failed')),
    score         REAL,
    metrics       TEXT,
    runtime       REAL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    error         TEXT,
    claim_token   TEXT,
    claim_owner   TEXT,
    claimed_at    REAL,
    lease_until   REAL,
    finished_at   REAL,
    eval_index    INTEGER UNIQUE
);
CREATE INDEX classes_status ON classes (status);
CREATE INDEX classes_out_hash ON classes (out_hash);
CREATE TABLE functions (
    name     TEXT PRIMARY KEY,
    class_id INTEGER NOT NULL REFERENCES classes (id)
);
CREATE INDEX functions_class ON functions (class_id);
CREATE TABLE events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    time     REAL NOT NULL,
    kind     TEXT NOT NULL,
    class_id INTEGER,
    owner    TEXT,
    detail   TEXT
);
CREATE TABLE embeddings (
    key       TEXT PRIMARY KEY,
    n         INTEGER NOT NULL,
    coords    BLOB NOT NULL,
    created   REAL NOT NULL
);
"""


class StudyError(ValueError):
    """A study file cannot be used: not a study, corrupt, from a newer version, or misused."""


def remove_study_files(path: str) -> None:
    """Delete a study file together with its SQLite write-ahead log and shared-memory files."""
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


def to_blob(array: np.ndarray) -> bytes:
    """Raw little-endian float32 bytes of a 1-D array."""
    return np.ascontiguousarray(array, dtype="<f4").reshape(-1).tobytes()


def from_blob(blob: Optional[bytes]) -> Optional[np.ndarray]:
    """The float32 array stored by ``to_blob`` (None stays None)."""
    if blob is None:
        return None
    return np.frombuffer(blob, dtype="<f4")


def feature_hash(row: np.ndarray) -> str:
    """Identity of an output feature for cross-batch equivalence: bytes, with every NaN made equal."""
    row = np.array(row, dtype="<f4", copy=True)
    row[np.isnan(row)] = np.float32("nan")
    import hashlib

    return hashlib.sha1(row.tobytes()).hexdigest()


def _metrics_json(metrics: Mapping[str, Any]) -> str:
    clean = {}
    for key, value in metrics.items():
        if isinstance(value, (np.generic,)):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = None if math.isnan(value) else (1e308 if value > 0 else -1e308)
        if not isinstance(value, (int, float, str, bool, type(None))):
            raise StudyError(
                f"metric {key!r} must be a number, string, bool or None, got {type(value).__name__}"
            )
        clean[str(key)] = value
    return json.dumps(clean, sort_keys=True)


class Store:
    """The SQLite file of one study, opened by one process (open one Store per process)."""

    def __init__(self, path: str, create: bool = False, meta: Optional[Mapping[str, Any]] = None):
        self.path = os.fspath(path)
        exists = os.path.exists(self.path) and os.path.getsize(self.path) > 0
        if not exists and not create:
            raise StudyError(f"{self.path}: no such study (create it first, e.g. `aquasurf init`)")
        if os.path.isdir(self.path):
            raise StudyError(f"{self.path} is a directory, not a study file")
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
            self.conn.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed result survives a power cut too, at one fsync per commit (cheap
            # next to a training run).
            self.conn.execute("PRAGMA synchronous = FULL")
            self.conn.execute("PRAGMA foreign_keys = ON")

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
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = {"meta", "classes", "functions", "events", "embeddings"} - tables
        if missing:
            raise StudyError(f"{self.path}: study is damaged (missing tables: {sorted(missing)})")

    def _create(self, meta: Mapping[str, Any]) -> None:
        with self.transaction() as c:
            # A concurrent creator may have won the race between our existence check and now.
            if c.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID:
                return
            if c.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise StudyError(f"{self.path} is an SQLite database but not an aquasurf study")
            # executescript() would commit the open transaction first; run the statements one by one.
            for statement in _SCHEMA.split(";"):
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
        with self._translate_errors():
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> List[tuple]:
        with self._translate_errors():
            return self.conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()

    # -- settings ----------------------------------------------------------------------------------

    def meta(self) -> Dict[str, Any]:
        out = {}
        for key, value in self.query("SELECT key, value FROM meta"):
            try:
                out[key] = json.loads(value)
            except ValueError:
                out[key] = value
        return out

    def set_meta(self, **values: Any) -> None:
        with self.transaction() as c:
            c.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [(k, json.dumps(v)) for k, v in values.items()],
            )

    def log(self, c: sqlite3.Connection, kind: str, class_id: Optional[int] = None,
            owner: Optional[str] = None, detail: Optional[str] = None) -> None:
        c.execute(
            "INSERT INTO events (time, kind, class_id, owner, detail) VALUES (?, ?, ?, ?, ?)",
            (time.time(), kind, class_id, owner, detail),
        )

    # -- the search space --------------------------------------------------------------------------

    def add_classes(self, classes: Sequence[Sequence[str]], out_feats: Optional[np.ndarray],
                    baselines: Iterable[str] = ()) -> Tuple[int, int]:
        """Add equivalence classes (canonical member first) with their output features.

        Names already present are skipped. A new class whose output feature equals an existing class's
        joins that class, so adding a space in several batches gives the same classes as one batch.
        Returns (new classes, new names).
        """
        baselines = set(baselines)
        if out_feats is not None:
            out_feats = np.asarray(out_feats, dtype=np.float32)
            if out_feats.shape[0] != len(classes):
                raise StudyError(
                    f"{len(classes)} classes but {out_feats.shape[0]} output feature rows"
                )
        n_classes = n_names = 0
        with self.transaction() as c:
            for i, members in enumerate(classes):
                members = [m for m in members
                           if not c.execute("SELECT 1 FROM functions WHERE name = ?", (m,)).fetchone()]
                if not members:
                    continue
                row = None if out_feats is None else out_feats[i]
                key = None if row is None else feature_hash(row)
                hit = None
                if key is not None:
                    hit = c.execute("SELECT id FROM classes WHERE out_hash = ?", (key,)).fetchone()
                if hit is None:
                    cur = c.execute(
                        "INSERT INTO classes (canonical, n_members, baseline, out_hash, out_feat, "
                        "out_finite) VALUES (?, 0, 0, ?, ?, ?)",
                        (members[0], key, None if row is None else to_blob(row),
                         None if row is None else int(np.isfinite(row).all())),
                    )
                    class_id = cur.lastrowid
                    n_classes += 1
                else:
                    class_id = hit[0]
                c.executemany("INSERT INTO functions (name, class_id) VALUES (?, ?)",
                              [(m, class_id) for m in members])
                c.execute("UPDATE classes SET n_members = n_members + ? WHERE id = ?",
                          (len(members), class_id))
                if baselines.intersection(members):
                    c.execute("UPDATE classes SET baseline = 1 WHERE id = ?", (class_id,))
                n_names += len(members)
            self.log(c, "add", detail=json.dumps({"classes": n_classes, "names": n_names}))
        return n_classes, n_names

    def set_output_features(self, class_ids: Sequence[int], feats: np.ndarray) -> None:
        with self.transaction() as c:
            c.executemany(
                "UPDATE classes SET out_feat = ?, out_finite = ?, out_hash = ? WHERE id = ?",
                [(to_blob(f), int(np.isfinite(f).all()), feature_hash(f), int(i))
                 for i, f in zip(class_ids, np.asarray(feats, dtype=np.float32))],
            )

    def set_fisher_features(self, class_ids: Sequence[int], feats: np.ndarray,
                            ok: Sequence[bool], reasons: Sequence[str]) -> None:
        feats = np.asarray(feats, dtype=np.float32)
        with self.transaction() as c:
            c.executemany(
                "UPDATE classes SET fisher_feat = ?, fisher_ok = ?, fisher_reason = ? WHERE id = ?",
                [(to_blob(f) if o else None, int(bool(o)), r or None, int(i))
                 for i, f, o, r in zip(class_ids, feats, ok, reasons)],
            )

    def class_of(self, name: str) -> Tuple[int, str]:
        """(class id, canonical name) of any member name."""
        row = self.query(
            "SELECT c.id, c.canonical FROM functions f JOIN classes c ON c.id = f.class_id "
            "WHERE f.name = ?", (name,))
        if not row:
            raise StudyError(f"{name!r} is not in this study's search space")
        return row[0]

    # -- claims and results ------------------------------------------------------------------------

    def expire_leases(self, c: sqlite3.Connection, now: float) -> int:
        """Return the candidates of dead or hung workers to the pool (inside a transaction)."""
        stale = c.execute(
            "SELECT id, claim_owner FROM classes WHERE status = 'running' AND lease_until < ?",
            (now,)).fetchall()
        for class_id, owner in stale:
            c.execute(
                "UPDATE classes SET status = 'pending', claim_token = NULL, claim_owner = NULL, "
                "claimed_at = NULL, lease_until = NULL WHERE id = ?", (class_id,))
            self.log(c, "lease_expired", class_id, owner)
        return len(stale)

    def claim(self, c: sqlite3.Connection, class_id: int, owner: str, lease_s: float,
              now: float) -> str:
        token = uuid.uuid4().hex
        c.execute(
            "UPDATE classes SET status = 'running', claim_token = ?, claim_owner = ?, "
            "claimed_at = ?, lease_until = ? WHERE id = ? AND status = 'pending'",
            (token, owner, now, now + lease_s, class_id))
        self.log(c, "claim", class_id, owner, token)
        return token

    def renew(self, tokens: Sequence[str], lease_s: float) -> int:
        """Extend the leases of claims still held; returns how many were."""
        now = time.time()
        with self.transaction() as c:
            n = 0
            for token in tokens:
                n += c.execute(
                    "UPDATE classes SET lease_until = ? WHERE claim_token = ? AND status = 'running'",
                    (now + lease_s, token)).rowcount
        return n

    def release(self, tokens: Sequence[str], owner: Optional[str] = None) -> int:
        """Give claims back unevaluated (a clean stop): their candidates return to the pool."""
        with self.transaction() as c:
            n = 0
            for token in tokens:
                row = c.execute("SELECT id FROM classes WHERE claim_token = ? AND status = 'running'",
                                (token,)).fetchone()
                if row is None:
                    continue
                c.execute(
                    "UPDATE classes SET status = 'pending', claim_token = NULL, claim_owner = NULL, "
                    "claimed_at = NULL, lease_until = NULL WHERE id = ?", (row[0],))
                self.log(c, "release", row[0], owner)
                n += 1
        return n

    def record_result(self, class_id: int, score: float, metrics: Mapping[str, Any],
                      runtime: Optional[float], token: Optional[str], owner: Optional[str]) -> bool:
        """Write a class's result once. Returns False (and logs it) when it already has one.

        A result from a worker whose lease expired is still accepted while the class has none: the
        training happened and its result is as good as any. What a stale worker can never do is
        replace a result that is already written.
        """
        metrics_text = _metrics_json(metrics)
        now = time.time()
        with self.transaction() as c:
            row = c.execute("SELECT status, claim_token FROM classes WHERE id = ?",
                            (class_id,)).fetchone()
            if row is None:
                raise StudyError(f"class {class_id} is not in this study")
            if row[0] == "done":
                self.log(c, "duplicate_result", class_id, owner,
                         json.dumps({"score": score if math.isfinite(score) else None}))
                return False
            eval_index = c.execute(
                "SELECT coalesce(max(eval_index), 0) + 1 FROM classes").fetchone()[0]
            c.execute(
                "UPDATE classes SET status = 'done', score = ?, metrics = ?, runtime = ?, "
                "error = NULL, finished_at = ?, eval_index = ?, claim_token = NULL, "
                "claim_owner = NULL, claimed_at = NULL, lease_until = NULL WHERE id = ?",
                (score if math.isfinite(score) else None, metrics_text, runtime, now, eval_index,
                 class_id))
            stale = token is not None and row[1] != token
            self.log(c, "result", class_id, owner, json.dumps(
                {"score": score if math.isfinite(score) else None, "stale_claim": stale}))
        return True

    def record_failure(self, class_id: int, error: str, token: Optional[str],
                       owner: Optional[str], max_retries: int) -> Optional[str]:
        """Count a failed attempt; the class returns to the pool until it has failed too often.

        A report from a claim that is no longer current is logged and otherwise ignored, so that a
        stale worker cannot undo the claim of the worker that took over. Returns the new status, or
        None when the report was ignored.
        """
        with self.transaction() as c:
            row = c.execute("SELECT status, claim_token, attempts FROM classes WHERE id = ?",
                            (class_id,)).fetchone()
            if row is None:
                raise StudyError(f"class {class_id} is not in this study")
            status, current, attempts = row
            if status == "done" or (token is not None and current is not None and current != token):
                self.log(c, "stale_failure", class_id, owner, error[-2000:])
                return None
            attempts += 1
            new_status = "failed" if attempts > max_retries else "pending"
            c.execute(
                "UPDATE classes SET status = ?, attempts = ?, error = ?, claim_token = NULL, "
                "claim_owner = NULL, claimed_at = NULL, lease_until = NULL, finished_at = ? "
                "WHERE id = ?", (new_status, attempts, error[-20000:], time.time(), class_id))
            self.log(c, "failure", class_id, owner, error[-2000:])
        return new_status

    # -- the embedding cache -----------------------------------------------------------------------

    def get_embedding(self, key: str) -> Optional[np.ndarray]:
        row = self.query("SELECT n, coords FROM embeddings WHERE key = ?", (key,))
        if not row:
            return None
        n, blob = row[0]
        return from_blob(blob).reshape(n, 2).copy()

    def put_embedding(self, key: str, coords: np.ndarray) -> None:
        coords = np.asarray(coords, dtype=np.float32)
        with self.transaction() as c:
            # Only the current candidate set matters; older embeddings are dead weight.
            c.execute("DELETE FROM embeddings WHERE key != ?", (key,))
            c.execute("INSERT OR REPLACE INTO embeddings (key, n, coords, created) VALUES (?, ?, ?, ?)",
                      (key, coords.shape[0], to_blob(coords), time.time()))


class EmbeddingCache:
    """The mapping a ``Surrogate`` caches embeddings in, backed by the study file."""

    def __init__(self, store: Store):
        self.store = store
        self._memo: Dict[str, np.ndarray] = {}

    def get(self, key: str, default=None):
        if key in self._memo:
            return self._memo[key]
        emb = self.store.get_embedding(key)
        if emb is None:
            return default
        self._memo = {key: emb}
        return emb

    def __setitem__(self, key: str, value: np.ndarray) -> None:
        self._memo = {key: np.asarray(value, dtype=np.float32)}
        self.store.put_embedding(key, value)

    def __getitem__(self, key: str) -> np.ndarray:
        emb = self.get(key)
        if emb is None:
            raise KeyError(key)
        return emb

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None
