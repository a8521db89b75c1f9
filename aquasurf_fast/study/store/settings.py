"""The study file's keyed rows: its settings (``meta``, the features version among them), its named
arrays (``arrays``: the output projection's basis) and the counts the triggers keep (``counts``).
A part of ``Store``, and of ``StudyReader``, which decodes the settings the same way.
"""
from __future__ import annotations

import json
import sqlite3
from typing import Any, Dict, Optional

import numpy as np

from .database import Database, from_blob, to_blob
from .schema import COUNTS_TABLE


class SettingsTables:
    """``meta``, ``arrays`` and ``counts`` (a part of ``Store`` and of ``StudyReader``). Holds the
    database it reads and writes: a ``Database``, or for reading only (``StudyReader``) a
    ``ReadOnlyDatabase``, which has ``query`` and no ``transaction``."""

    def __init__(self, db: Database):
        self.db = db

    # -- settings ----------------------------------------------------------------------------------

    def meta(self) -> Dict[str, Any]:
        out = {}
        for key, value in self.db.query("SELECT key, value FROM meta"):
            try:
                out[key] = json.loads(value)
            except ValueError:
                out[key] = value
        return out

    def set_meta(self, **values: Any) -> None:
        with self.db.transaction() as c:
            self.put_meta(c, **values)

    def put_meta(self, c: sqlite3.Connection, **values: Any) -> None:
        """Write settings inside the transaction ``c``."""
        c.executemany("INSERT INTO meta (key, value) VALUES (?, ?) "
                      "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                      [(k, json.dumps(v)) for k, v in values.items()])

    def features_version(self) -> int:
        """A counter raised whenever the candidates' features may have changed (classes added,
        Fisher features stored): a cache of them is valid while it reads the same."""
        return int(self.db.query("SELECT value FROM meta WHERE key = 'features_version'")[0][0])

    def bump_features_version(self, c: Optional[sqlite3.Connection] = None) -> None:
        """Raise the features version, inside the transaction ``c`` or in one of its own."""
        if c is None:
            with self.db.transaction() as c:
                self.bump_features_version(c)
            return
        c.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'features_version'")

    # -- named arrays (the output projection's basis) ----------------------------------------------

    def get_array(self, key: str) -> Optional[np.ndarray]:
        row = self.db.query("SELECT shape, data FROM arrays WHERE key = ?", (key,))
        if not row:
            return None
        shape, data = row[0]
        return from_blob(data).reshape(json.loads(shape)).copy()

    def set_array(self, key: str, array: np.ndarray) -> None:
        """``put_array`` in a transaction of its own."""
        with self.db.transaction() as c:
            self.put_array(c, key, array)

    def put_array(self, c: sqlite3.Connection, key: str, array: np.ndarray) -> None:
        c.execute("INSERT OR REPLACE INTO arrays (key, shape, data) VALUES (?, ?, ?)",
                  (key, json.dumps(list(np.shape(array))), to_blob(array)))

    # -- counts ------------------------------------------------------------------------------------

    def counts(self) -> Dict[str, int]:
        """Classes by status ("pending", "running", "done", "failed"), explicit names
        ("functions") and classes whose coordinates or finiteness changed ("coordinates"), read
        from the counts the triggers keep: O(1), not a scan of the classes."""
        return {key: int(n) for key, n in self.db.query(f"SELECT key, n FROM {COUNTS_TABLE}")}
