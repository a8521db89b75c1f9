"""The on-disk cache of derived data (generated datasets, parsed benchmarks, replay embeddings,
the Optuna sampler's features and embeddings): npz files written by ``save_npz`` and read back
by ``load_npz``.

It lives in ``$AQUASURF_CACHE`` (default ``~/.cache/aquasurf_fast``). Everything in it can be rebuilt
from its source, so a cache that cannot be written only costs rebuilding next time, and an entry
that cannot be read (absent, damaged, half-written by a crash) is computed again.
"""
from __future__ import annotations

import os
import tempfile
import zlib
from typing import Dict, Mapping, Optional, Sequence

import numpy as np


def cache_dir() -> str:
    return os.environ.get("AQUASURF_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "aquasurf_fast")


def save_npz(path: str, arrays: Mapping[str, np.ndarray]) -> bool:
    """Write ``arrays`` to ``path`` atomically; False when the cache is not writable.

    Several processes may write the same entry at once: each writes its own file and renames it
    into place, so a reader never sees half a file.
    """
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        return False
    return True


def load_npz(path: str, keys: Sequence[str]) -> Optional[Dict[str, np.ndarray]]:
    """The arrays ``keys`` of the entry at ``path`` (every array of it when ``keys`` is empty), or
    None when it is absent, damaged or lacks one of them: the caller then computes it again."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in (keys or f.files)}
    except (OSError, ValueError, KeyError, EOFError, zlib.error):
        return None


__all__ = ["cache_dir", "load_npz", "save_npz"]
