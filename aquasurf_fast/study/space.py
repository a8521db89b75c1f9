"""Filling a study's search space: explicit names, schemas and names files of millions of names.

A schema or a names file is stored compactly (``study.store.spaces``): the study never holds a list of
its names, in memory or in the file. Classes are found by the engine (``aq.schema_classes`` for a
schema; chunked fingerprints for a names file), and each class gets the coordinates that the Fisher
pool is chosen by (``surrogate.coverage.Projection``).
"""
from __future__ import annotations

import itertools
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..surrogate.coverage import SAMPLE, Projection, probe_subset
from ..defaults import expression_name
from ..expr import ParseError
from ..spaces import CHUNK, NamesFileSource, SchemaSource, name_hash
from .store import StudyError

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


class _Fingerprints:
    """The fingerprints of the classes already in a study, for merging a new space into them."""

    def __init__(self, store):
        rows = store.query("SELECT out_hash, id FROM classes WHERE out_hash IS NOT NULL")
        keys = np.array([r[0] for r in rows], dtype="S16")
        order = np.argsort(keys, kind="stable")
        self.keys, self.ids = keys[order], np.array([r[1] for r in rows], dtype=np.int64)[order]

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
        with self.store.transaction() as c:
            self.store.put_array(c, PROJECTION_KEY, projection.basis)
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
        rng = np.random.RandomState(int(self.settings["random_state"]))
        finite_reps = sc.representatives[sc.finite]
        sample = finite_reps[rng.permutation(finite_reps.size)[:SAMPLE]]
        projection = self.projection(source.names(np.sort(sample)))
        keys = np.ascontiguousarray(sc.fingerprints, dtype="<u8").tobytes()
        n_members = np.bincount(sc.class_of[~held], minlength=sc.n_classes)
        study_ids = self._insert_space_classes(
            source, keys, sc.finite, n_members, projection, progress,
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

        mark(row[0] for row in self.store.query("SELECT name FROM functions"))
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
        from ..features import output_features
        from .. import _C

        try:
            source = NamesFileSource(path)
        except ValueError as exc:
            raise StudyError(str(exc)) from None
        index = _C.ClassIndex()
        lines_seen: List[np.ndarray] = []
        hashes_seen: List[np.ndarray] = []
        classes_seen: List[np.ndarray] = []
        reps: List[str] = []
        rep_lines: List[int] = []
        finite: List[bool] = []
        keys: List[bytes] = []
        seen = set()  # 64-bit name hashes: a repeated name is a duplicate line, in no class
        # A name the study holds already (explicit, or in an earlier space) is counted there.
        explicit = {row[0] for row in self.store.query("SELECT name FROM functions")}
        earlier = self.store.spaces()
        try:
            for lines, names in source.chunks():
                hashes = [name_hash(n) for n in names]
                fresh = [k for k, h in enumerate(hashes) if not (h in seen or seen.add(h))
                         and names[k] not in explicit
                         and not any(self.store.index_in_space(sid, src, names[k]) is not None
                                     for sid, src in earlier)]
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
        lines = np.concatenate(lines_seen) if lines_seen else np.zeros(0, dtype=np.int64)
        engine_ids = np.concatenate(classes_seen) if classes_seen else np.zeros(0, dtype=np.int64)
        finite_arr = np.array(finite, dtype=bool)
        rng = np.random.RandomState(int(self.settings["random_state"]))
        finite_idx = np.flatnonzero(finite_arr)
        sample = [reps[i] for i in np.sort(finite_idx[rng.permutation(finite_idx.size)[:SAMPLE]])]
        def finish(c, space_id, ids):
            per_line = np.zeros(len(source), dtype=np.int32)
            per_line[lines] = ids[engine_ids]
            self.store.put_class_ids(c, space_id, 0, per_line)
            self.store.put_name_hashes(c, space_id,
                                       np.concatenate(hashes_seen) if hashes_seen else lines, lines)

        study_ids = self._insert_space_classes(
            source, b"".join(keys), finite_arr, np.bincount(engine_ids, minlength=len(reps)),
            self.projection(sample), progress, rep_names=lambda rows: [reps[i] for i in rows],
            rep_index=np.array(rep_lines, dtype=np.int64), finish=finish)
        added = self.add_functions([])  # the baselines
        self.store.bump_features_version()
        return study_ids["new"] + added[0], len(lines) + added[1]

    def _insert_space_classes(self, source, keys: bytes, finite: np.ndarray,
                              n_members: np.ndarray, projection: Optional[Projection],
                              progress: bool, rep_names, rep_index: np.ndarray, finish) -> Dict:
        """Insert a space's classes (merging those already in the study) in chunks, then
        ``finish(c, space_id, ids)`` (storing each name's class), all in one transaction: a space is
        added whole or not at all. Returns the space id, the study class id of each of the space's
        classes and how many are new. ``keys``: the classes' 16-byte fingerprints, concatenated;
        ``rep_names(rows)``: the representatives' names of the classes at positions ``rows``."""
        n = len(finite)
        found = _Fingerprints(self.store).find(np.frombuffer(keys, dtype="S16"))
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc="classes", unit="class")
        with self.store.transaction() as c:
            space_id = self.store.add_space(c, source)
            next_id = int(c.execute("SELECT coalesce(max(id), 0) + 1 FROM classes").fetchone()[0])
            # New: no class of the study has its outputs, and a name of it is not held already.
            new = (found == 0) & (n_members > 0)
            ids = np.where(new, 0, found)
            ids[new] = next_id + np.arange(int(new.sum()))
            key_of = np.frombuffer(keys, dtype="V16")  # .tolist() gives each key's 16 bytes
            with self.store.bulk_insert(c, next_id, int(new.sum())):
                def prepare(lo):
                    # Only new classes need a name and coordinates.
                    rows = lo + np.flatnonzero(new[lo:lo + CHUNK])
                    names = rep_names(rows)
                    return rows, names, _projection_blobs(projection, names, finite[rows])

                starts = range(0, n, CHUNK)
                for lo, (rows, names, blobs) in zip(starts, _one_ahead(prepare, starts)):
                    hi = min(n, lo + CHUNK)
                    c.executemany(
                        "INSERT INTO classes (id, canonical, n_members, out_hash, out_finite, "
                        "space_id, rep_index, projection) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        zip(ids[rows].tolist(), names, n_members[rows].tolist(),
                            key_of[rows].tolist(), finite[rows].astype(int).tolist(),
                            itertools.repeat(space_id), rep_index[rows].tolist(), blobs))
                    merged = lo + np.flatnonzero(found[lo:hi] != 0)
                    c.executemany("UPDATE classes SET n_members = n_members + ? WHERE id = ?",
                                  zip(n_members[merged].tolist(), ids[merged].tolist()))
                    if bar is not None:
                        bar.update(hi - lo)
            finish(c, space_id, ids.astype(np.int32))
            self.store.log(c, "add_space", detail=source.describe())
        if bar is not None:
            bar.close()
        return {"space_id": space_id, "ids": ids.astype(np.int32), "new": int(new.sum())}

    # -- lookups -----------------------------------------------------------------------------------

    def class_of(self, name: str) -> str:
        """The canonical name of the class holding ``name`` (any name of the space)."""
        return self.store.class_of(name)[1]

    def members(self, name: str) -> List[str]:
        """Every name of the class holding ``name``: explicit names first, then the space's, in
        the space's order (computed from the stored class ids; a large class takes a moment)."""
        class_id = self.store.class_of(name)[0]
        return self.store.members([class_id])[class_id]
