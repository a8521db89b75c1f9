"""The on-disk cache of derived data (generated datasets, parsed benchmarks).

It lives in ``$AQUASURF_CACHE`` (default ``~/.cache/aquasurf_fast``). Everything in it can be rebuilt
from its source, so a cache that cannot be written only costs rebuilding next time.
"""
from __future__ import annotations

import os
import tempfile
from typing import Mapping

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
