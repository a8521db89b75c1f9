"""The study file's tables, and the upgrade of files written by earlier versions.

Version 2 (this one) stores a search space compactly: a schema or a names file is one row of
``spaces``, and each of its names' class is a 4-byte entry of ``space_classes``; the classes
keep their representative, member count, finite flag, 128-bit output fingerprint and a
low-dimensional projection of their output features, while full output features are stored only
for the classes in the Fisher pool (and for classes added with features of their own). Version 1
files are upgraded in place when opened.
"""
from __future__ import annotations

SCHEMA_VERSION = 2
APPLICATION_ID = 0x41515346  # "AQSF"

TABLES = ("meta", "classes", "functions", "events", "embeddings", "spaces", "space_classes",
          "space_names", "arrays")

CREATE = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE classes (
    id            INTEGER PRIMARY KEY,
    canonical     TEXT NOT NULL,
    n_members     INTEGER NOT NULL DEFAULT 1,
    baseline      INTEGER NOT NULL DEFAULT 0,
    out_hash      BLOB,
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
    eval_index    INTEGER UNIQUE,
    space_id      INTEGER,
    rep_index     INTEGER,
    projection    BLOB,
    pool          INTEGER
);
CREATE INDEX classes_status ON classes (status);
CREATE INDEX classes_out_hash ON classes (out_hash);
CREATE INDEX classes_pool ON classes (pool) WHERE pool IS NOT NULL;
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
""" + """
CREATE TABLE spaces (
    id       INTEGER PRIMARY KEY,
    kind     TEXT NOT NULL CHECK (kind IN ('schema', 'names')),
    source   TEXT NOT NULL,
    ops      TEXT,
    digest   TEXT,
    n_names  INTEGER NOT NULL
);
CREATE TABLE space_classes (
    space_id  INTEGER NOT NULL REFERENCES spaces (id),
    chunk     INTEGER NOT NULL,
    class_ids BLOB NOT NULL,
    PRIMARY KEY (space_id, chunk)
);
CREATE TABLE space_names (
    space_id  INTEGER NOT NULL REFERENCES spaces (id),
    hash      INTEGER NOT NULL,
    line      INTEGER NOT NULL,
    PRIMARY KEY (space_id, hash, line)
) WITHOUT ROWID;
CREATE TABLE arrays (
    key    TEXT PRIMARY KEY,
    shape  TEXT NOT NULL,
    data   BLOB NOT NULL
);
"""

# Version 1 -> 2: the space tables and the new class columns. Version 1 fingerprints were SHA-1
# hex strings of the feature bytes; they are recomputed as the engine's 128-bit fingerprints from
# the stored features (every version 1 class has them), by the caller of these statements.
UPGRADE_1_TO_2 = [
    "ALTER TABLE classes ADD COLUMN space_id INTEGER",
    "ALTER TABLE classes ADD COLUMN rep_index INTEGER",
    "ALTER TABLE classes ADD COLUMN projection BLOB",
    "ALTER TABLE classes ADD COLUMN pool INTEGER",
    "CREATE INDEX classes_pool ON classes (pool) WHERE pool IS NOT NULL",
    # A version 1 class with Fisher features was in the (then implicit) pool.
    "UPDATE classes SET pool = 0 WHERE fisher_ok IS NOT NULL AND out_finite = 1",
] + [s for s in CREATE.split(";") if "TABLE spaces" in s or "TABLE space_" in s
     or "TABLE arrays" in s]
