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

# Classes by status and the count of explicit names, kept by triggers in the transaction of every
# write, so that reading them costs O(1) where a count over a space of millions of classes costs
# hundreds of milliseconds (the search loop reads them at every step). Triggers live in the file:
# a process of an earlier version that writes it keeps the counts right too, which is why adding
# them is no new schema version (``Database`` adds them to a file that lacks them, counting once).
# A bulk insert may drop ``classes_counted_insert`` and count its rows itself, in its transaction.
COUNTS_TABLE = "counts"
COUNTERS = [
    "CREATE TABLE counts (key TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID",
    """CREATE TRIGGER classes_counted_insert AFTER INSERT ON classes BEGIN
        UPDATE counts SET n = n + 1 WHERE key = NEW.status;
    END""",
    """CREATE TRIGGER classes_counted_update AFTER UPDATE OF status ON classes
    WHEN OLD.status IS NOT NEW.status BEGIN
        UPDATE counts SET n = n - 1 WHERE key = OLD.status;
        UPDATE counts SET n = n + 1 WHERE key = NEW.status;
    END""",
    """CREATE TRIGGER classes_counted_delete AFTER DELETE ON classes BEGIN
        UPDATE counts SET n = n - 1 WHERE key = OLD.status;
    END""",
    """CREATE TRIGGER functions_counted_insert AFTER INSERT ON functions BEGIN
        UPDATE counts SET n = n + 1 WHERE key = 'functions';
    END""",
    """CREATE TRIGGER functions_counted_delete AFTER DELETE ON functions BEGIN
        UPDATE counts SET n = n - 1 WHERE key = 'functions';
    END""",
    # The counts as they are now (all zero in a new file).
    "INSERT INTO counts (key, n) SELECT s.key, (SELECT count(*) FROM classes WHERE status = s.key) "
    "FROM (SELECT 'pending' AS key UNION ALL SELECT 'running' UNION ALL SELECT 'done' "
    "UNION ALL SELECT 'failed') AS s",
    "INSERT INTO counts (key, n) SELECT 'functions', count(*) FROM functions",
]

# Added to files without them like the counts, each when the object named by its key is missing
# (older versions keep them up to date too). Partial indexes over the classes that are not of a
# space (explicit names) and over the baselines: the featurizer and the pool read these few classes
# of a space of millions without reading every class. A count of the changes of a class's
# finiteness or coordinates after it was added: with the number of classes, it tells a process
# that the coordinates it read are still those of the file.
ADDITIONS = {
    "classes_explicit": ["CREATE INDEX classes_explicit ON classes (id) WHERE space_id IS NULL"],
    "classes_baselines": ["CREATE INDEX classes_baselines ON classes (id) WHERE baseline = 1"],
    "classes_counted_coordinates": [
        """CREATE TRIGGER classes_counted_coordinates AFTER UPDATE OF out_finite, projection
        ON classes WHEN OLD.out_finite IS NOT NEW.out_finite OR OLD.projection IS NOT NEW.projection
        BEGIN
            UPDATE counts SET n = n + 1 WHERE key = 'coordinates';
        END""",
        "INSERT OR IGNORE INTO counts (key, n) VALUES ('coordinates', 0)",
    ],
}

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
