"""The activation functions an ``AquaSurfSampler`` chooses from: equivalence classes and features.

A space is a list of equivalence classes (SPEC section 3), each named by its first member, with the
output features of that member and, once a model has been featurized, its Fisher features (section
4). From names or a schema it is built the way ``Study.add_functions`` builds a study's search
space, class for class and in the same order, so that a sampler and a study given the same names rank the
same candidates alike.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from ...expr import ParseError, SchemaSpace, canonical_name
from ...features import output_features, schema_classes
from ...defaults import DEFAULT_BASELINES
from ...study.store import fingerprints


class ActivationSpace:
    """Equivalence classes with their features.

    Parameters
    ----------
    classes : each class's member names, the first naming the class.
    out_feats : float32 [n_classes, 1000], the output features of each class's first member.
    fisher : float32 [n_classes, D] Fisher features (rows of invalid ones are ignored), or None.
    fisher_ok : bool [n_classes], which Fisher rows are valid; by default the finite ones.
    embeddings : embeddings already computed for the candidates (a study file's), keyed like the
        surrogate's cache (``aquasurf_fast.surrogate.embedding_key``).
    """

    def __init__(self, classes: Sequence[Sequence[str]], out_feats: np.ndarray,
                 fisher: Optional[np.ndarray] = None, fisher_ok: Optional[Sequence[bool]] = None,
                 embeddings: Optional[Dict[str, np.ndarray]] = None):
        self.classes = [list(members) for members in classes]
        if any(not members for members in self.classes):
            raise ValueError("every class needs at least one member name")
        n = len(self.classes)
        self.out_feats = np.asarray(out_feats, dtype=np.float32)
        if self.out_feats.ndim != 2 or self.out_feats.shape[0] != n:
            raise ValueError(f"out_feats must be [{n}, 1000] (one row per class), "
                             f"got {self.out_feats.shape}")
        self.fisher = None if fisher is None else np.asarray(fisher, dtype=np.float32)
        if self.fisher is not None and (self.fisher.ndim != 2 or self.fisher.shape[0] != n):
            raise ValueError(f"fisher must be [{n}, D] (one row per class), "
                             f"got {self.fisher.shape}")
        if self.fisher is None:
            self.fisher_ok = np.zeros(n, dtype=bool)
        elif fisher_ok is None:
            self.fisher_ok = np.isfinite(self.fisher).all(axis=1)
        else:
            self.fisher_ok = np.asarray(fisher_ok, dtype=bool).reshape(n)
        self.embeddings = dict(embeddings or {})
        self.names = [members[0] for members in self.classes]
        self._index: Dict[str, int] = {}
        for i, members in enumerate(self.classes):
            for name in members:
                self._index.setdefault(name, i)
                try:
                    self._index.setdefault(canonical_name(name), i)
                except ParseError:
                    pass  # a study may hold names that are not expressions; they match verbatim
        self._fingerprints: Optional[Dict[bytes, int]] = None

    def __len__(self) -> int:
        return len(self.classes)

    def __repr__(self) -> str:
        fisher = "none" if not self.fisher_ok.any() else f"{int(self.fisher_ok.sum())} valid"
        return (f"ActivationSpace({len(self)} classes, {self.candidates.size} candidates, "
                f"Fisher features {fisher})")

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def from_names(cls, names: Sequence[str],
                   baselines: Sequence[str] = DEFAULT_BASELINES) -> "ActivationSpace":
        """The classes of ``names`` and the baselines, as ``Study.add_functions`` groups them.

        Raises ``ParseError`` (a ``ValueError``) naming the first name that is not an expression.
        """
        from ...study.space_builder import classes_with_baselines

        return cls(*classes_with_baselines(names, baselines))

    @classmethod
    def from_schema(cls, schema, baselines: Sequence[str] = DEFAULT_BASELINES) -> "ActivationSpace":
        """One member per class of a schema (a string or an ``aq.SchemaSpace``), and the baselines.

        Other members need not be listed: a choice equivalent to a class is recognised by its
        outputs.
        """
        space = schema if isinstance(schema, SchemaSpace) else SchemaSpace(schema)
        classes = schema_classes(space.schema, space.unary, space.binary, space.nary)
        return cls.from_names(classes.representative_names(), baselines)

    @classmethod
    def from_study(cls, path: str) -> "ActivationSpace":
        """The classes, features and embeddings of an ``aq.Study`` file; nothing is recomputed."""
        return cls(**read_study(path))

    def with_fisher(self, fisher: np.ndarray, fisher_ok: Sequence[bool]) -> "ActivationSpace":
        """This space with Fisher features (one row per class)."""
        return ActivationSpace(self.classes, self.out_feats, fisher, fisher_ok, self.embeddings)

    # -- queries -----------------------------------------------------------------------------------

    @property
    def candidates(self) -> np.ndarray:
        """Classes the surrogate ranks: finite outputs and, once any class has them, valid Fisher
        features (the rule of a study: without a model, the output features alone embed)."""
        ok = np.isfinite(self.out_feats).all(axis=1)
        if self.fisher_ok.any():
            ok &= self.fisher_ok
        return np.flatnonzero(ok)

    def candidate_features(self):
        """(output features, Fisher features or None) of the candidates, in class order."""
        cand = self.candidates
        fisher = self.fisher[cand] if self.fisher_ok.any() else None
        return self.out_feats[cand], fisher

    def class_of_name(self, name: str) -> Optional[int]:
        """The class listing ``name`` (verbatim or canonically spelled), else None."""
        found = self._index.get(name)
        if found is None:
            try:
                found = self._index.get(canonical_name(name))
            except ParseError:
                return None
        return found

    def classes_of(self, names: Sequence[str]) -> np.ndarray:
        """Class of each name, -1 where it is in no class; a name that is listed nowhere is matched
        by its outputs (SPEC section 3). Raises ``ValueError`` for a name that is not an
        expression."""
        out = np.full(len(names), -1, dtype=np.int64)
        unlisted: List[int] = []
        for i, name in enumerate(names):
            found = self.class_of_name(name) if isinstance(name, str) else None
            if found is not None:
                out[i] = found
                continue
            try:
                canonical_name(name)
            except (ParseError, TypeError) as exc:
                raise ValueError(f"{name!r} is not an activation-function expression: "
                                 f"{exc}") from None
            unlisted.append(i)
        if unlisted:
            if self._fingerprints is None:
                self._fingerprints = {}
                for c, key in enumerate(fingerprints(self.out_feats)):
                    self._fingerprints.setdefault(key, c)
            keys = fingerprints(output_features([names[i] for i in unlisted]))
            for i, key in zip(unlisted, keys):
                out[i] = self._fingerprints.get(key, -1)
        return out


def as_space(space, baselines: Sequence[str] = DEFAULT_BASELINES) -> ActivationSpace:
    """An ``ActivationSpace`` from any of the forms a sampler accepts (see ``AquaSurfSampler``)."""
    if isinstance(space, ActivationSpace):
        return space
    if isinstance(space, SchemaSpace):
        return ActivationSpace.from_schema(space, baselines)
    if isinstance(space, (str, os.PathLike)):
        text = os.fspath(space)
        if os.path.isfile(text):
            return ActivationSpace.from_study(text)
        # Schemas and names never hold a dot or a path separator; study files usually do.
        if any(ch in text for ch in "./\\"):
            raise ValueError(f"{text!r}: no such study file (to search a schema, pass it as a "
                             "string such as 'binary(unary(x),unary(x))')")
        return ActivationSpace.from_schema(text, baselines)
    return ActivationSpace.from_names(list(space), baselines)


def read_study(path: str) -> dict:
    """``ActivationSpace`` arguments from a study file: classes, features and stored embeddings.

    The only code here that reads a study; it uses ``Study(path)`` and the store's exports
    (``classes_with_output_features``, ``explicit_members``, ``all_embeddings``) alone.
    """
    from ...study.study import Study

    study = Study(path, create=False)
    try:
        # Classes without stored output features are never candidates; in a study of a large
        # space they are the millions outside the Fisher pool, and are left out.
        rows = study.store.classes_with_output_features()
        members = study.store.explicit_members()
        embeddings = study.store.all_embeddings()
    finally:
        study.close()
    position = {row[0]: i for i, row in enumerate(rows)}
    classes = [[row[1]] for row in rows]
    for class_id, name in members:
        if class_id in position and name != rows[position[class_id]][1]:
            classes[position[class_id]].append(name)
    out = np.stack([r[2] for r in rows]) if rows else np.zeros((0, 1000), np.float32)
    ok = np.array([bool(r[4]) and r[3] is not None for r in rows], dtype=bool)
    fisher = None
    if ok.any():
        width = next(len(r[3]) for r, o in zip(rows, ok) if o)
        fisher = np.full((len(rows), width), np.nan, dtype=np.float32)
        for i in np.flatnonzero(ok):
            fisher[i] = rows[i][3]
    return {"classes": classes, "out_feats": out, "fisher": fisher, "fisher_ok": ok,
            "embeddings": embeddings}


__all__ = ["ActivationSpace", "as_space", "read_study"]
