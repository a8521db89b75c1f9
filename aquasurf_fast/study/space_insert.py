"""Writing a schema's or names file's classes into a study: merged by fingerprint with the classes
the study holds, in chunks of ``spaces.CHUNK``, with each new class's name and coordinates prepared
while SQLite inserts the chunk before. The classes themselves are found by ``study.space_builder``.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ..spaces import CHUNK
from ..surrogate.coverage import Projection, probe_subset


class _Fingerprints:
    """The fingerprints of the classes already in a study, for merging a new space into them."""

    def __init__(self, store):
        self.keys, self.ids = store.fingerprint_index()

    def find(self, keys: np.ndarray) -> np.ndarray:
        """The class id holding each key, 0 where none does."""
        if self.keys.size == 0:
            return np.zeros(len(keys), dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.keys, keys), self.keys.size - 1)
        return np.where(self.keys[pos] == keys, self.ids[pos], 0)


def _projection_blobs(projection: Optional[Projection], names: Sequence[str],
                      finite: np.ndarray) -> List[Optional[bytes]]:
    """The stored coordinates (float32 bytes) of classes by their representatives' names: None
    for a class whose outputs are not finite, and for all without a projection."""
    from ..kernels import evaluate

    blobs: List[Optional[bytes]] = [None] * len(names)
    rows = np.flatnonzero(finite).tolist()
    if projection is None or not rows:
        return blobs
    coords = np.ascontiguousarray(projection.transform(
        evaluate([names[k] for k in rows], probe_subset())), dtype="<f4")
    for k, blob in zip(rows, coords.view(f"V{coords.itemsize * coords.shape[1]}").ravel().tolist()):
        blobs[k] = blob
    return blobs


def _one_ahead(fn, items):
    """``fn(item)`` for each item in order, the next one computed in a thread while the caller
    uses the current: the classes' names and coordinates (numpy and the engine, which release
    the GIL) are prepared while SQLite inserts the previous chunk."""
    from concurrent.futures import ThreadPoolExecutor

    items = list(items)
    with ThreadPoolExecutor(max_workers=1) as ex:
        ahead = ex.submit(fn, items[0]) if items else None
        for k in range(len(items)):
            current = ahead.result()
            ahead = ex.submit(fn, items[k + 1]) if k + 1 < len(items) else None
            yield current


def insert_space_classes(store, source, keys: bytes, finite: np.ndarray, n_members: np.ndarray,
                         projection: Optional[Projection], progress: bool,
                         rep_names: Callable[[np.ndarray], List[str]], rep_index: np.ndarray,
                         finish: Callable) -> Dict:
    """Insert a space's classes (merging those already in the study) in chunks, then
    ``finish(c, space_id, ids)`` (storing each name's class), all in one transaction: a space is
    added whole or not at all. Returns the space id, the study class id of each of the space's
    classes and how many are new. ``keys``: the classes' 16-byte fingerprints, concatenated;
    ``rep_names(rows)``: the representatives' names of the classes at positions ``rows``."""
    n = len(finite)
    found = _Fingerprints(store).find(np.frombuffer(keys, dtype="S16"))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="classes", unit="class")
    with store.transaction() as c:
        space_id = store.add_space(c, source)
        next_id = store.next_class_id(c)
        # New: no class of the study has its outputs, and a name of it is not held already.
        new = (found == 0) & (n_members > 0)
        ids = np.where(new, 0, found)
        ids[new] = next_id + np.arange(int(new.sum()))
        key_of = np.frombuffer(keys, dtype="V16")  # .tolist() gives each key's 16 bytes
        with store.bulk_insert(c, next_id, int(new.sum())):
            def prepare(lo):
                # Only new classes need a name and coordinates.
                rows = lo + np.flatnonzero(new[lo:lo + CHUNK])
                names = rep_names(rows)
                return rows, names, _projection_blobs(projection, names, finite[rows])

            starts = range(0, n, CHUNK)
            for lo, (rows, names, blobs) in zip(starts, _one_ahead(prepare, starts)):
                hi = min(n, lo + CHUNK)
                store.insert_classes_of_space(
                    c, space_id, ids[rows].tolist(), names, n_members[rows].tolist(),
                    key_of[rows].tolist(), finite[rows].astype(int).tolist(),
                    rep_index[rows].tolist(), blobs)
                merged = lo + np.flatnonzero(found[lo:hi] != 0)
                store.add_member_counts(c, ids[merged].tolist(), n_members[merged].tolist())
                if bar is not None:
                    bar.update(hi - lo)
        finish(c, space_id, ids.astype(np.int32))
        store.log(c, "add_space", detail=source.describe())
    if bar is not None:
        bar.close()
    return {"space_id": space_id, "ids": ids.astype(np.int32), "new": int(new.sum())}
