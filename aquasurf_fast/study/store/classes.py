"""The search space in the study file: classes, their names, and the spaces that hold names.

Names come two ways. Explicit names (``add_classes``: a list of names, the baselines) are rows of
``functions``. A schema or names file is one row of ``spaces`` plus each name's class id, 4 bytes
per name in rows of ``spaces.CHUNK``; a name is found by its index in the space, and its index by
decoding the name (schema) or by its hash (``space_names``, names files). Either way a class is
one row of ``classes`` with its fingerprint, and two classes with equal fingerprints are merged.
"""
from __future__ import annotations

import contextlib
import json
import sqlite3
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ...spaces import CHUNK, name_hash, source_from_row
from .database import StudyError, fingerprints, to_blob

# Set aside while a space inserts more classes than the study holds: the status and fingerprint
# indexes (rebuilt by one sort each, instead of millions of inserts at random places) and the insert
# trigger (its counting is done once, for all the rows).
BULK_SET_ASIDE = ("classes_status", "classes_out_hash", "classes_counted_insert")
BULK_MIN_ROWS = 10_000  # below this, setting them aside saves less than it costs


class ClassTables:
    """``classes``, ``functions`` and the space tables (a part of ``Store``)."""

    # -- explicit names ----------------------------------------------------------------------------

    def add_classes(self, classes: Sequence[Sequence[str]], out_feats: Optional[np.ndarray],
                    baselines: Iterable[str] = (), projection=None) -> Tuple[int, int]:
        """Add equivalence classes (canonical member first) with their output features.

        Names already present are skipped. A new class whose output feature equals an existing class's
        joins that class, so adding a space in several batches gives the same classes as one batch;
        a baseline that joins a class names it. ``projection`` (a ``surrogate.coverage.Projection``) gives the
        new classes their coordinates. Returns (new classes, new names).
        """
        baselines = set(baselines)
        keys: List[Optional[bytes]] = [None] * len(classes)
        coords = None
        if out_feats is not None:
            out_feats = np.asarray(out_feats, dtype=np.float32)
            if out_feats.shape[0] != len(classes):
                raise StudyError(
                    f"{len(classes)} classes but {out_feats.shape[0]} output feature rows"
                )
            keys = fingerprints(out_feats) if len(classes) else []
            if projection is not None and len(classes):
                coords = projection.of_features(np.where(np.isfinite(out_feats), out_feats, 0))
        n_classes = n_names = 0
        spaces = self.spaces()
        with self.transaction() as c:
            for i, members in enumerate(classes):
                named_by = [m for m in members if m in baselines]
                # A name that a schema or names file of the study holds is there already.
                members = [m for m in members
                           if not c.execute("SELECT 1 FROM functions WHERE name = ?", (m,)).fetchone()
                           and not any(self.index_in_space(sid, src, m) is not None
                                       for sid, src in spaces)]
                if not members and not named_by:
                    continue
                row = None if out_feats is None else out_feats[i]
                hit = None
                if keys[i] is not None:
                    hit = c.execute("SELECT id, baseline FROM classes WHERE out_hash = ?",
                                    (keys[i],)).fetchone()
                if hit is None and not members:
                    continue  # every name is held already and no class has these outputs
                if hit is None:
                    finite = None if row is None else int(np.isfinite(row).all())
                    cur = c.execute(
                        "INSERT INTO classes (canonical, n_members, baseline, out_hash, out_feat, "
                        "out_finite, projection) VALUES (?, 0, 0, ?, ?, ?, ?)",
                        (members[0], keys[i], None if row is None else to_blob(row), finite,
                         None if coords is None or not finite else to_blob(coords[i])))
                    class_id = cur.lastrowid
                    n_classes += 1
                else:
                    class_id = hit[0]
                    if named_by and not hit[1]:
                        # "relu(x)" reads better than the space's "mul(relu(x),one(x))", and
                        # reports compare against the baselines by name.
                        c.execute("UPDATE classes SET canonical = ? WHERE id = ?",
                                  (named_by[0], class_id))
                c.executemany("INSERT INTO functions (name, class_id) VALUES (?, ?)",
                              [(m, class_id) for m in members])
                c.execute("UPDATE classes SET n_members = n_members + ? WHERE id = ?",
                          (len(members), class_id))
                if named_by:
                    c.execute("UPDATE classes SET baseline = 1 WHERE id = ?", (class_id,))
                n_names += len(members)
            self.log(c, "add", detail=json.dumps({"classes": n_classes, "names": n_names}))
        return n_classes, n_names

    def set_output_features(self, class_ids: Sequence[int], feats: np.ndarray) -> None:
        feats = np.asarray(feats, dtype=np.float32)
        with self.transaction() as c:
            c.executemany(
                "UPDATE classes SET out_feat = ?, out_finite = ?, out_hash = ? WHERE id = ?",
                [(to_blob(f), int(np.isfinite(f).all()), key, int(i))
                 for i, f, key in zip(class_ids, feats, fingerprints(feats) if len(feats) else [])],
            )
            # Which classes are finite decides the candidates, whose caches read the version.
            c.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 "
                      "WHERE key = 'features_version'")

    def set_fisher_features(self, class_ids: Sequence[int], feats: np.ndarray,
                            ok: Sequence[bool], reasons: Sequence[str]) -> None:
        """Store Fisher features; a class that has them is in the Fisher pool."""
        feats = np.asarray(feats, dtype=np.float32)
        with self.transaction() as c:
            c.executemany(
                "UPDATE classes SET fisher_feat = ?, fisher_ok = ?, fisher_reason = ?, "
                "pool = coalesce(pool, 0) WHERE id = ?",
                [(to_blob(f) if o else None, int(bool(o)), r or None, int(i))
                 for i, f, o, r in zip(class_ids, feats, ok, reasons)],
            )

    # -- spaces ------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def bulk_insert(self, c: sqlite3.Connection, first_id: int, n_rows: int):
        """Inside the transaction ``c``, around inserting ``n_rows`` classes with ids from
        ``first_id`` on: when they outnumber the classes present, the indexes and the trigger of
        ``BULK_SET_ASIDE`` are dropped first and made again after, from their own stored
        definitions, and the new rows are counted by status. Readers see either state whole."""
        n_present = int(c.execute("SELECT count(*) FROM classes WHERE id < ?", (first_id,)).fetchone()[0])
        if n_rows <= max(n_present, BULK_MIN_ROWS):
            yield
            return
        marks = ",".join("?" * len(BULK_SET_ASIDE))
        saved = c.execute(f"SELECT type, name, sql FROM sqlite_master WHERE name IN ({marks})",
                          BULK_SET_ASIDE).fetchall()
        for kind, name, _ in saved:
            c.execute(f"DROP {kind.upper()} {name}")
        yield
        for kind, name, sql in saved:
            c.execute(sql)
        if any(name == "classes_counted_insert" for _, name, _ in saved):
            c.executemany("UPDATE counts SET n = n + ? WHERE key = ?", [
                (n, status) for status, n in c.execute(
                    "SELECT status, count(*) FROM classes WHERE id >= ? GROUP BY status", (first_id,))])

    def add_space(self, c: sqlite3.Connection, source) -> int:
        return c.execute("INSERT INTO spaces (kind, source, ops, digest, n_names) "
                         "VALUES (?, ?, ?, ?, ?)",
                         (source.kind, source.source, source.ops, source.digest,
                          len(source))).lastrowid

    def spaces(self) -> List[Tuple[int, object]]:
        """(space id, source) of every space, oldest first (sources are built once per Store)."""
        rows = self.query("SELECT id, kind, source, ops, digest, n_names FROM spaces ORDER BY id")
        cache = self.__dict__.setdefault("_sources", {})
        out = []
        for space_id, kind, source, ops, digest, n_names in rows:
            if space_id not in cache:
                try:
                    cache[space_id] = source_from_row(kind, source, ops, digest, n_names)
                except ValueError as exc:
                    raise StudyError(str(exc)) from None
            out.append((space_id, cache[space_id]))
        return out

    def n_space_names(self) -> int:
        """Distinct names held by the spaces (explicit names are counted in ``functions``): the
        names with a class, so without a names file's blank, comment and repeated lines, nor the
        names an earlier space or explicit list held first. Spaces are only ever added whole, so
        the count is kept per number of spaces: the search loop reads it at every step."""
        n_spaces = int(self.query("SELECT count(*) FROM spaces")[0][0])
        cached = self.__dict__.get("_space_names")
        if cached is None or cached[0] != n_spaces:
            total = sum(int(np.count_nonzero(np.frombuffer(row[0], dtype="<i4")))
                        for row in self.query("SELECT class_ids FROM space_classes"))
            cached = self.__dict__["_space_names"] = (n_spaces, total)
        return cached[1]

    def put_class_ids(self, c: sqlite3.Connection, space_id: int, start: int, ids: np.ndarray) -> None:
        """Store the class ids of names ``start``..: ``start`` is a multiple of CHUNK."""
        ids = np.ascontiguousarray(ids, dtype="<i4")
        c.executemany("INSERT OR REPLACE INTO space_classes (space_id, chunk, class_ids) VALUES (?, ?, ?)",
                      [((space_id, (start + k) // CHUNK, ids[k:k + CHUNK].tobytes()))
                       for k in range(0, len(ids), CHUNK)])

    def class_ids(self, space_id: int) -> np.ndarray:
        """int32 [n_names]: the class id of every name of a space (0: a line that is no name, or a
        name held first elsewhere in the study)."""
        rows = self.query("SELECT class_ids FROM space_classes WHERE space_id = ? ORDER BY chunk",
                          (space_id,))
        return np.frombuffer(b"".join(r[0] for r in rows), dtype="<i4")

    def class_id_at(self, space_id: int, index: int) -> int:
        row = self.query("SELECT class_ids FROM space_classes WHERE space_id = ? AND chunk = ?",
                         (space_id, index // CHUNK))
        return int(np.frombuffer(row[0][0], dtype="<i4")[index % CHUNK]) if row else 0

    def put_name_hashes(self, c: sqlite3.Connection, space_id: int, hashes: np.ndarray,
                        lines: np.ndarray) -> None:
        """Index a names file: each name's 64-bit hash (``spaces.name_hash``) and line."""
        c.executemany("INSERT OR IGNORE INTO space_names (space_id, hash, line) VALUES (?, ?, ?)",
                      zip([space_id] * len(lines), np.asarray(hashes).tolist(), np.asarray(lines).tolist()))

    def index_in_space(self, space_id: int, source, name: str) -> Optional[int]:
        """The name's index in a space, None when it is not there. A names file finds it by its
        64-bit hash: two different names sharing one would be confused (odds of 1 in 10^7 for a
        million names)."""
        if source.kind == "schema":
            return source.index(name)
        row = self.query("SELECT min(line) FROM space_names WHERE space_id = ? AND hash = ?",
                         (space_id, name_hash(name)))
        return None if row[0][0] is None else int(row[0][0])

    def class_of(self, name: str) -> Tuple[int, str]:
        """(class id, canonical name) of any name of the space."""
        from ...expr import canonical_name

        def explicit(form):
            return self.query("SELECT c.id, c.canonical FROM functions f JOIN classes c "
                              "ON c.id = f.class_id WHERE f.name = ?", (form,))

        # As written first: explicit names need not be expressions ("elu" in a synthetic space).
        row = explicit(name)
        if not row:
            canonical = canonical_name(name)
            row = explicit(canonical)
            for space_id, source in ([] if row else self.spaces()):
                index = self.index_in_space(space_id, source, canonical)
                class_id = 0 if index is None else self.class_id_at(space_id, index)
                if class_id:
                    row = self.query("SELECT id, canonical FROM classes WHERE id = ?", (class_id,))
                    break
        if not row:
            raise StudyError(f"{name!r} is not in this study's search space")
        return row[0]

    def members(self, class_ids: Sequence[int]) -> Dict[int, List[str]]:
        """Every name of each class: its explicit names, then its names in each space in order."""
        wanted = [int(i) for i in class_ids]
        out: Dict[int, List[str]] = {i: [] for i in wanted}
        for start in range(0, len(wanted), 500):
            part = wanted[start:start + 500]
            marks = ",".join("?" * len(part))
            for class_id, name in self.query(f"SELECT class_id, name FROM functions WHERE class_id "
                                             f"IN ({marks}) ORDER BY rowid", part):
                out[class_id].append(name)
        spaces = self.spaces() if wanted else []
        for space_id, source in spaces:
            ids = self.class_ids(space_id)
            rows = np.flatnonzero(np.isin(ids, np.asarray(wanted, dtype=np.int32)))
            if rows.size == 0:
                continue
            try:
                names = source.names(rows)
            except ValueError as exc:
                raise StudyError(str(exc)) from None
            for name, class_id in zip(names, ids[rows].tolist()):
                out[class_id].append(name)
        return out

    # -- the Fisher pool ---------------------------------------------------------------------------

    def pool_size(self) -> int:
        return int(self.query("SELECT count(*) FROM classes WHERE pool IS NOT NULL")[0][0])

    def pool_state(self, c: Optional[sqlite3.Connection] = None) -> Tuple[int, int]:
        """(the number of the next round of the pool, 0 for the first; classes in the pool),
        read inside the transaction ``c`` when given. A round chosen from one state is written
        only while the state is the same, so that rounds of several processes never mix."""
        # Two statements, each answered by the pool's partial index; one ``count(pool)`` over
        # the table would read every class.
        sql = ("SELECT (SELECT coalesce(max(pool) + 1, 0) FROM classes WHERE pool IS NOT NULL), "
               "(SELECT count(*) FROM classes WHERE pool IS NOT NULL)")
        next_round, size = c.execute(sql).fetchone() if c is not None else self.query(sql)[0]
        return int(next_round), int(size)

    def add_to_pool(self, c: sqlite3.Connection, class_ids: Sequence[int], round_: int) -> int:
        """Put classes in the pool in round ``round_`` (inside a transaction); returns how many
        joined (the others were in it already)."""
        return c.executemany("UPDATE classes SET pool = ? WHERE id = ? AND pool IS NULL",
                             [(round_, int(i)) for i in class_ids]).rowcount

    def projections(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(class ids, coordinates [n, DIMS], in pool) of every class with finite outputs that has
        coordinates. The ids and coordinates of a large space take seconds to read, and the pool
        reads them at every round, so they are kept while ``projections_key`` is unchanged; the
        pool membership is read each time from the pool's index."""
        key = self.projections_key()
        cached = self.__dict__.get("_projections")
        if cached is None or cached[0] != key:
            rows = self.query("SELECT id, projection FROM classes "
                              "WHERE out_finite = 1 AND projection IS NOT NULL ORDER BY id")
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            coords = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
            cached = self.__dict__["_projections"] = (key, ids, coords)
        _, ids, coords = cached
        pool = np.array([r[0] for r in self.query("SELECT id FROM classes WHERE pool IS NOT NULL")],
                        dtype=np.int64)
        return ids, coords, np.isin(ids, pool)

    # The classes whose finiteness or coordinates may change after they are added: the explicit
    # ones and those of the pool (the only ones that get output features later).
    CHANGEABLE = ("id IN (SELECT id FROM classes WHERE space_id IS NULL UNION "
                  "SELECT id FROM classes WHERE pool IS NOT NULL)")

    def projections_key(self) -> tuple:
        """Changes whenever the classes with coordinates may have: classes added (their number and
        largest id), or a class's finiteness or coordinates changed (a count kept by a trigger)."""
        counts = self.counts()
        n_classes = sum(counts[s] for s in ("pending", "running", "done", "failed"))
        max_id = self.query("SELECT max(id) FROM classes")[0][0]
        return n_classes, max_id, counts["coordinates"]
