"""Filling a study's search space: explicit names, schemas and names files of millions of names.

A schema or a names file is stored compactly (``study.store.space_tables``): the study never holds a list of
its names, in memory or in the file. Classes are found by the engine (``aq.schema_classes`` for a
schema; chunked fingerprints for a names file), and each class gets the coordinates that the Fisher
pool is chosen by (``surrogate.coverage.Projection``). ``space_insert`` writes a space's classes
into the study.
"""
from __future__ import annotations

from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ..surrogate.coverage import SAMPLE, Projection, probe_subset
from ..defaults import expression_name
from ..expr import ParseError
from ..spaces import NamesFileSource, SchemaSource, name_hash
from .space_insert import insert_space_classes
from .store import Scope, StudyError

PROJECTION_KEY = "projection_basis"


def baseline_forms(baselines: Sequence[str]) -> List[str]:
    return [form for b in baselines for form in (b, expression_name(b))]


def classes_with_baselines(names: Sequence[str], baselines: Sequence[str]):
    """(classes, output features of their first members): the equivalence classes of ``names``
    and the baselines, each class holding a baseline named by it ("relu(x)" reads better than the
    engine's "mul(relu(x),one(x))", and reports compare against the baselines by name). Raises
    ``ParseError`` naming the first name that is not an expression."""
    from ..expr import parse
    from ..features import equivalence_classes, output_features

    wanted = [expression_name(b) for b in baselines]
    names = list(dict.fromkeys(str(parse(n)) for n in list(names) + wanted))
    wanted = set(wanted)
    classes = [sorted(members, key=lambda m: m not in wanted)
               for members in equivalence_classes(names)]
    return classes, output_features([members[0] for members in classes])


class _NamesFileClasses(NamedTuple):
    """A names file's classes (positions 0..) and the names that have one."""

    reps: List[str]         # each class's first name
    rep_lines: np.ndarray   # int64 [n_classes]: its line
    finite: np.ndarray      # bool [n_classes]: whether the class's outputs are finite
    keys: bytes             # the classes' 16-byte fingerprints, concatenated
    lines: np.ndarray       # int64 [n_names]: the line of each name with a class
    hashes: np.ndarray      # int64 [n_names]: its ``spaces.name_hash``
    class_of: np.ndarray    # [n_names]: its class's position


def _names_file_classes(source: NamesFileSource, held: Callable[[str], bool]) -> _NamesFileClasses:
    """The classes of a names file, found by fingerprint chunk by chunk. A repeated line, and a
    name that ``held`` says the study holds already, get no class."""
    from ..features import output_features
    from .. import _C

    index = _C.ClassIndex()
    lines_seen: List[np.ndarray] = []
    hashes_seen: List[np.ndarray] = []
    classes_seen: List[np.ndarray] = []
    reps: List[str] = []
    rep_lines: List[int] = []
    finite: List[bool] = []
    keys: List[bytes] = []
    seen = set()  # 64-bit name hashes: a repeated name is a duplicate line, in no class
    try:
        for lines, names in source.chunks():
            hashes = [name_hash(n) for n in names]
            fresh = [k for k, h in enumerate(hashes)
                     if not (h in seen or seen.add(h)) and not held(names[k])]
            names = [names[k] for k in fresh]
            feats = output_features(names)
            prints, fin = _C.hash_rows(feats)
            ids = index.assign(prints)
            raw = np.ascontiguousarray(prints, dtype="<u8").tobytes()
            for k in np.flatnonzero(ids >= len(reps)):
                if ids[k] != len(reps):
                    continue  # a second name of a class that is new in this chunk
                reps.append(names[k])
                rep_lines.append(int(lines[fresh[k]]))
                finite.append(bool(fin[k]))
                keys.append(raw[16 * k:16 * k + 16])
            lines_seen.append(lines[fresh])
            hashes_seen.append(np.array([hashes[k] for k in fresh], dtype=np.int64))
            classes_seen.append(ids)
    except ValueError as exc:
        raise StudyError(str(exc)) from None

    def joined(parts):
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    return _NamesFileClasses(reps, np.array(rep_lines, dtype=np.int64),
                             np.array(finite, dtype=bool), b"".join(keys), joined(lines_seen),
                             joined(hashes_seen), joined(classes_seen))


class SpaceBuilder:
    """Fills and reads a study's search space (the part of ``Study`` behind ``add_*``, ``class_of``
    and ``members``). Adding classes raises the store's features version, which every cache of
    the candidates' features reads."""

    def __init__(self, store):
        self.store = store

    @property
    def settings(self) -> Dict:
        return self.store.meta()

    # -- projection --------------------------------------------------------------------------------

    def projection(self, sample_names: Sequence[str] = (),
                    sample_values: Optional[np.ndarray] = None) -> Optional[Projection]:
        """The study's output projection; when it has none yet, fitted on ``sample_names`` or on
        ``sample_values`` (their outputs at ``probe_subset()``) and stored."""
        projection = self.store_projection()
        if projection is not None:
            return projection
        if sample_values is None:
            if not len(sample_names):
                return None
            from ..kernels import evaluate

            sample_values = evaluate(list(sample_names), probe_subset())
        finite = np.isfinite(sample_values).all(axis=1)
        projection = Projection.fit(sample_values[finite][:SAMPLE])
        self.store.set_array(PROJECTION_KEY, projection.basis)
        return projection

    # -- explicit names ----------------------------------------------------------------------------

    def add_functions(self, names: Sequence[str], progress: bool = False) -> Tuple[int, int]:
        """Add names (and the baselines) to the search space, grouped into equivalence classes.

        Uses the engine: ``aq.equivalence_classes`` and ``aq.output_features``. For millions of
        names use ``add_schema`` or ``add_names_file``. Returns (new classes, new names).
        """
        classes, feats = classes_with_baselines(names, self.settings["baselines"])
        finite = np.isfinite(feats).all(axis=1)
        sample = [classes[i][0] for i in np.flatnonzero(finite)[:SAMPLE]]
        return self.add_classes(classes, feats, projection=self.projection(sample))

    def add_classes(self, classes: Sequence[Sequence[str]], out_feats: Optional[np.ndarray] = None,
                    projection: Optional[Projection] = None) -> Tuple[int, int]:
        """Add precomputed equivalence classes (canonical member first) and their output features."""
        result = self.store.add_classes(classes, out_feats,
                                        baseline_forms(self.settings["baselines"]),
                                        projection or self.store_projection())
        self.store.bump_features_version()
        return result

    def store_projection(self) -> Optional[Projection]:
        basis = self.store.get_array(PROJECTION_KEY)
        return None if basis is None else Projection(basis)

    # -- spaces ------------------------------------------------------------------------------------

    def add_schema(self, schema: str, unary: Optional[Sequence[str]] = None,
                   binary: Optional[Sequence[str]] = None, nary: Optional[Sequence[str]] = None,
                   progress: bool = False) -> Tuple[int, int]:
        """Add every name of a schema (and the baselines), stored compactly: its classes, found by
        ``schema_classes`` without building the names. Returns (new classes, new names)."""
        from ..features import schema_classes

        source = SchemaSource(schema, unary, binary, nary)
        sc = schema_classes(schema, unary=source.space.unary, binary=source.space.binary,
                               nary=source.space.nary)
        held = self._held_by_study(source)
        projection = self.projection(source.names(self._sample(sc.representatives[sc.finite])))
        keys = np.ascontiguousarray(sc.fingerprints, dtype="<u8").tobytes()
        n_members = np.bincount(sc.class_of[~held], minlength=sc.n_classes)
        study_ids = insert_space_classes(
            self.store, source, keys, sc.finite, n_members, projection, progress,
            rep_names=lambda rows: source.names(sc.representatives[rows]),
            rep_index=sc.representatives,
            finish=lambda c, space_id, ids: self.store.put_class_ids(
                c, space_id, 0, np.where(held, 0, ids[sc.class_of])))
        added = self.add_functions([])  # the baselines
        return study_ids["new"] + added[0], int(len(source) - held.sum()) + added[1]

    def _held_by_study(self, source: SchemaSource) -> np.ndarray:
        """bool [names of the schema]: the names the study holds already, as explicit names or in
        an earlier space. A name stays where it came first, so no name is counted twice."""
        held = np.zeros(len(source), dtype=bool)

        def mark(names):
            for name in names:
                try:
                    index = source.index(name)
                except ParseError:
                    continue  # an explicit name that is no expression ("elu" in a synthetic space)
                if index is not None:
                    held[index] = True

        mark(self.store.explicit_names())
        for _, earlier in self.store.spaces():
            if earlier.kind == "schema":
                held[source.space.overlap(earlier.space)] = True
                continue
            try:
                earlier.check_unchanged()
            except ValueError as exc:
                raise StudyError(str(exc)) from None
            for _, names in earlier.chunks():
                mark(names)
        return held

    def add_names_file(self, path: str, progress: bool = False) -> Tuple[int, int]:
        """Add the names of a text file (one per line, ``#`` comments) and the baselines, streamed in
        chunks of ``spaces.CHUNK`` lines: memory holds a few numbers per name and the class table,
        never the names. Returns (new classes, new names)."""
        try:
            source = NamesFileSource(path)
        except ValueError as exc:
            raise StudyError(str(exc)) from None
        explicit = set(self.store.explicit_names())
        earlier = self.store.spaces()

        def held(name):
            # A name the study holds already (explicit, or in an earlier space) is counted there.
            return name in explicit or any(self.store.index_in_space(sid, src, name) is not None
                                           for sid, src in earlier)

        found = _names_file_classes(source, held)
        sample = [found.reps[i] for i in self._sample(np.flatnonzero(found.finite))]

        def finish(c, space_id, ids):
            per_line = np.zeros(len(source), dtype=np.int32)
            per_line[found.lines] = ids[found.class_of]
            self.store.put_class_ids(c, space_id, 0, per_line)
            self.store.put_name_hashes(c, space_id, found.hashes, found.lines)

        study_ids = insert_space_classes(
            self.store, source, found.keys, found.finite,
            np.bincount(found.class_of, minlength=len(found.reps)), self.projection(sample),
            progress, rep_names=lambda rows: [found.reps[i] for i in rows],
            rep_index=found.rep_lines, finish=finish)
        added = self.add_functions([])  # the baselines
        self.store.bump_features_version()
        return study_ids["new"] + added[0], len(found.lines) + added[1]

    def _sample(self, items: np.ndarray) -> np.ndarray:
        """At most ``SAMPLE`` of ``items``, drawn with the study's ``random_state``, in order: the
        classes a new space's projection is fitted on."""
        rng = np.random.RandomState(int(self.settings["random_state"]))
        return np.sort(items[rng.permutation(items.size)[:SAMPLE]])

    # -- lookups -----------------------------------------------------------------------------------

    def n_finite(self) -> int:
        """How many classes have finite outputs (a pass over the classes)."""
        return self.store.count_in_scope(Scope.FINITE)

    def space_descriptions(self) -> List[str]:
        """One line per schema or names file of the space, oldest first."""
        return [source.describe() for _, source in self.store.spaces()]

    def class_of(self, name: str) -> str:
        """The canonical name of the class holding ``name`` (any name of the space)."""
        return self.store.class_of(name)[1]

    def members(self, name: str) -> List[str]:
        """Every name of the class holding ``name``: explicit names first, then the space's, in
        the space's order (computed from the stored class ids; a large class takes a moment)."""
        class_id = self.store.class_of(name)[0]
        return self.store.members([class_id])[class_id]
