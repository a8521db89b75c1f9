"""The surrogate's embedding of the current candidate set, cached in the study file for every
process that opens it."""
from __future__ import annotations

import time
from typing import Dict, Optional

import numpy as np

from .database import Database, from_blob, to_blob


class EmbeddingTable:
    """The ``embeddings`` table (a part of ``Store``); holds the ``Database``."""

    def __init__(self, db: Database):
        self.db = db

    def get_embedding(self, key: str) -> Optional[np.ndarray]:
        row = self.db.query("SELECT n, coords FROM embeddings WHERE key = ?", (key,))
        if not row:
            return None
        n, blob = row[0]
        # [n, 2]: one layout; [n, 2M]: M layouts side by side (the ensemble strategy's).
        return from_blob(blob).reshape(n, -1).copy()

    def all_embeddings(self) -> Dict[str, np.ndarray]:
        """Every stored embedding, by key ([n, 2] or [n, 2M] each)."""
        return {key: from_blob(blob).reshape(n, -1).copy()
                for key, n, blob in self.db.query("SELECT key, n, coords FROM embeddings")}

    def put_embedding(self, key: str, coords: np.ndarray) -> None:
        coords = np.asarray(coords, dtype=np.float32)
        with self.db.transaction() as c:
            # Only the current candidate set matters; older embeddings are dead weight. The newest
            # other one stays: a study reads two (the paper's single layout and the ensemble's).
            c.execute("DELETE FROM embeddings WHERE key != ? AND key NOT IN (SELECT key FROM "
                      "embeddings WHERE key != ? ORDER BY created DESC LIMIT 1)", (key, key))
            c.execute("INSERT OR REPLACE INTO embeddings (key, n, coords, created) VALUES (?, ?, ?, ?)",
                      (key, coords.shape[0], to_blob(coords), time.time()))


class EmbeddingCache:
    """The mapping a ``Surrogate`` caches embeddings in, backed by the study file."""

    def __init__(self, store):
        self.store = store
        self._memo: Dict[str, np.ndarray] = {}

    def get(self, key: str, default=None):
        if key in self._memo:
            return self._memo[key]
        emb = self.store.get_embedding(key)
        if emb is None:
            return default
        self._remember(key, emb)
        return emb

    def __setitem__(self, key: str, value: np.ndarray) -> None:
        self._remember(key, np.asarray(value, dtype=np.float32))
        self.store.put_embedding(key, value)

    def _remember(self, key: str, emb: np.ndarray) -> None:
        """Keep this and the last other embedding in memory, as the store keeps them on disk."""
        self._memo = {k: v for k, v in list(self._memo.items())[-1:] if k != key}
        self._memo[key] = emb

    def __getitem__(self, key: str) -> np.ndarray:
        emb = self.get(key)
        if emb is None:
            raise KeyError(key)
        return emb

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None
