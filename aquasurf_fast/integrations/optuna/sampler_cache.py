"""What an ``AquaSurfSampler`` keeps on disk, under ``aquasurf_fast.cache.cache_dir()/optuna``.

- Fisher features: one folder per model, named by a hash of everything the features depend on (the
  model's structure, the source of its modules' ``forward``, its initial weights under the seed, the
  batch, the device kind and this package's version). Inside, one file per computed chunk of names,
  so that an interrupted computation keeps what it finished and a larger space computes only what
  is new.
- Embeddings: one file per candidate set and seed, under the surrogate's own cache key.

Everything here can be rebuilt; a cache that cannot be written only costs recomputing next time.
Delete the folder to force it (say, after editing a custom layer in a way the hash cannot see).
"""
from __future__ import annotations

import glob
import hashlib
import inspect
import itertools
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ...cache import cache_dir, load_npz, save_npz

FISHER_SEED = 42  # the seed every candidate's model is built under (SPEC section 4's default)
FISHER_CHUNK = 128  # names per computed (and saved) chunk


def _folder() -> str:
    return os.path.join(cache_dir(), "optuna")


def _array_bytes(h, value: Any) -> None:
    import torch

    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    else:
        a = np.ascontiguousarray(value)
        h.update(f"{a.shape}|{a.dtype}|".encode())
        h.update(a.tobytes())


def model_key(build: Callable, inputs: Any, targets: Any, device: Any = None) -> str:
    """The hash naming a model's Fisher-feature folder (see the module docstring)."""
    import torch

    from ..._version import __version__
    from ...nn import Activation

    h = hashlib.sha256(f"fisher|v1|{__version__}|seed={FISHER_SEED}|".encode())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(FISHER_SEED)
        model = build(Activation("relu(x)"))
    h.update(repr(model).encode())
    for name, tensor in itertools.chain(model.named_parameters(), model.named_buffers()):
        h.update(name.encode())
        _array_bytes(h, tensor)
    for kind in sorted({type(m) for m in model.modules()}, key=lambda k: k.__qualname__):
        h.update(f"{kind.__module__}.{kind.__qualname__}".encode())
        try:
            h.update(inspect.getsource(kind.forward).encode())
        except (OSError, TypeError):
            pass  # no source to read (compiled or interactive code): the weights still count
    _array_bytes(h, inputs)
    _array_bytes(h, targets)
    if device is None:
        device = inputs.device if isinstance(inputs, torch.Tensor) else "cpu"
    h.update(torch.device(device).type.encode())
    return h.hexdigest()[:32]


def _load_chunks(folder: str) -> Dict[str, Tuple[Optional[np.ndarray], str]]:
    """name -> (feature row or None when it failed, reason) from every readable chunk file."""
    rows: Dict[str, Tuple[Optional[np.ndarray], str]] = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.npz"))):
        chunk = load_npz(path, ("names", "feats", "ok", "reasons"))
        if chunk is None:
            continue  # damaged or half-written by a crash: its names are computed again
        names, feats, ok, reasons = chunk["names"], chunk["feats"], chunk["ok"], chunk["reasons"]
        for name, row, good, reason in zip(names.tolist(), feats, ok.tolist(), reasons.tolist()):
            rows[name] = (row if good else None, reason)
    return rows


def fisher_features_cached(build: Callable, names: Sequence[str], inputs: Any, targets: Any,
                           device: Any = None, cache: bool = True, progress: bool = True
                           ) -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """``fisher_features_for`` of ``names`` (same returns), computing only what is not cached."""
    from ...fisher.candidates import fisher_features_for

    names = list(names)
    folder = os.path.join(_folder(), "fisher-" + model_key(build, inputs, targets, device))
    known = _load_chunks(folder) if cache else {}
    todo = [n for n in dict.fromkeys(names) if n not in known]
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="Fisher features", unit="fn")
    try:
        for start in range(0, len(todo), FISHER_CHUNK):
            chunk = todo[start:start + FISHER_CHUNK]
            feats, ok, reasons = fisher_features_for(build, chunk, inputs, targets,
                                                        seed=FISHER_SEED, device=device,
                                                        progress=False)
            for name, row, good, reason in zip(chunk, feats, ok, reasons):
                known[name] = (row if good else None, reason)
            if cache:
                digest = hashlib.sha256("\n".join(chunk).encode()).hexdigest()[:24]
                save_npz(os.path.join(folder, digest + ".npz"),
                         {"names": np.array(chunk), "feats": feats, "ok": ok,
                          "reasons": np.array(reasons)})
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    width = next((row.size for row, _ in known.values() if row is not None), 0)
    feats = np.full((len(names), width), np.nan, dtype=np.float32)
    ok = np.zeros(len(names), dtype=bool)
    reasons = []
    for i, name in enumerate(names):
        row, reason = known[name]
        if row is not None and row.size == width:
            feats[i], ok[i] = row, True
        reasons.append(reason)
    return feats, ok, reasons


class EmbeddingFiles:
    """The mapping a ``Surrogate`` caches embeddings in: memory first, then one file per key.

    ``known`` seeds it with embeddings computed elsewhere (a study file's).
    """

    def __init__(self, on_disk: bool = True, known: Optional[Dict[str, np.ndarray]] = None):
        self.on_disk = on_disk
        self._memo: Dict[str, np.ndarray] = dict(known or {})

    def _path(self, key: str) -> str:
        return os.path.join(_folder(), f"embedding-{key}.npz")

    def get(self, key: str, default=None):
        if key in self._memo:
            return self._memo[key]
        cached = load_npz(self._path(key), ("emb",)) if self.on_disk else None
        if cached is None:
            return default  # absent or damaged: the caller computes it
        self._memo[key] = cached["emb"]
        return self._memo[key]

    def __setitem__(self, key: str, value: np.ndarray) -> None:
        self._memo[key] = np.asarray(value, dtype=np.float32)
        if self.on_disk:
            save_npz(self._path(key), {"emb": self._memo[key]})


__all__ = ["EmbeddingFiles", "fisher_features_cached", "model_key"]
