"""Output features and equivalence classes (SPEC section 3).

A function's output feature is its float32 value at 1,000 fixed probe inputs. Two functions are
equivalent when those features are identical bit for bit (NaN equal to NaN). Classes are found
from 128-bit fingerprints of the feature bytes computed in C++, in streaming chunks, so that
millions of names fit in bounded memory; :func:`schema_classes` goes from a schema straight to
its classes without building the names at all.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, List, Optional, Sequence

import numpy as np

from . import _C
from .expr import SchemaSpace, canonical_name
from .kernels import evaluate

N_PROBE = 1000
_CHUNK = 65536  # names featurized per streaming step in equivalence_classes


@lru_cache(maxsize=1)
def _probe() -> np.ndarray:
    x = np.random.RandomState(0).normal(size=N_PROBE).clip(-5.0, 5.0).astype(np.float32)
    x.setflags(write=False)
    return x


def probe_inputs() -> np.ndarray:
    """The 1,000 probe inputs: ``RandomState(0).normal(size=1000)`` clipped to [-5, 5], float32."""
    return _probe().copy()


def output_features(fns) -> np.ndarray:
    """float32 [len(fns), 1000]: each function's values at the probe inputs."""
    return evaluate(fns, _probe())


def equivalence_classes(fns: Iterable[str]) -> List[List[str]]:
    """Group functions whose output features are identical (NaN equals NaN).

    Classes are listed in order of first appearance; each lists its members in input order, the
    first being the class's canonical member. Names are featurized in chunks, so the memory is
    that of the names and the class table, not of their features.
    """
    names = [canonical_name(f) for f in fns]
    index = _C.ClassIndex()
    members: List[List[str]] = []
    for start in range(0, len(names), _CHUNK):
        chunk = names[start:start + _CHUNK]
        hashes, _ = _C.hash_rows(output_features(chunk))
        for name, cid in zip(chunk, index.assign(hashes).tolist()):
            if cid == len(members):
                members.append([])
            members[cid].append(name)
    return members


@dataclass
class SchemaClasses:
    """The equivalence classes of a whole schema space.

    ``class_of[i]`` is the class of name ``i`` of ``space``; ``representatives[c]`` the index of
    class ``c``'s first name; ``finite[c]`` whether its outputs are all finite; ``fingerprints[c]``
    the 128-bit fingerprint of its outputs ([n_classes, 2] uint64, as ``_C.hash_rows`` gives it).
    """

    space: SchemaSpace
    class_of: np.ndarray
    representatives: np.ndarray
    finite: np.ndarray
    fingerprints: np.ndarray
    seconds: float

    @property
    def n_names(self) -> int:
        return len(self.space)

    @property
    def n_classes(self) -> int:
        return len(self.representatives)

    def representative_names(self, only_finite: bool = False) -> List[str]:
        idx = self.representatives[self.finite] if only_finite else self.representatives
        return [self.space[int(i)] for i in idx]

    def members(self, c: int) -> List[str]:
        return [self.space[int(i)] for i in np.flatnonzero(self.class_of == c)]

    def classes(self) -> List[List[str]]:
        """Every class as a list of names (builds all names: for small spaces)."""
        order = np.argsort(self.class_of, kind="stable")
        bounds = np.flatnonzero(np.diff(self.class_of[order])) + 1
        return [[self.space[int(i)] for i in group] for group in np.split(order, bounds)]

    def summary(self) -> str:
        n_nonfinite = int((~self.finite).sum())
        return (f"{self.space.schema}: {self.n_names:,} names, {self.n_classes:,} classes "
                f"({self.n_classes - n_nonfinite:,} finite, {n_nonfinite:,} with NaN or inf outputs), "
                f"{self.seconds:.2f} s")


def schema_classes(schema: str, unary: Optional[Sequence[str]] = None, binary: Optional[Sequence[str]] = None,
                   nary: Optional[Sequence[str]] = None) -> SchemaClasses:
    """Equivalence classes of every name of a schema, computed from the schema itself.

    Subtrees' outputs are computed once and shared; the root's outputs are streamed through the
    fingerprint, so no name string and no [n_names, 1000] array is ever built. This is the path
    for spaces of millions of names, e.g. ``binary(unary(unary(x)),unary(unary(x)))``.
    """
    space = SchemaSpace(schema, unary, binary, nary)
    start = time.perf_counter()
    class_of, reps, finite, prints = _C.schema_classes(schema, list(space.unary), list(space.binary),
                                                       list(space.nary), _probe())
    return SchemaClasses(space, class_of, reps, finite, prints, time.perf_counter() - start)
