"""The search space in the study file: classes and their names.

Names come two ways. Explicit names (``add_classes``: a list of names, the baselines) are rows of
``functions``. A schema or names file is one row of ``spaces`` (``store.space_tables``); a name is found
by its index in the space, and its index by decoding the name (schema) or by its hash (names
files). Either way a class is one row of ``classes`` with its fingerprint, and two classes with
equal fingerprints are merged.
"""
from __future__ import annotations

import itertools
import json
import sqlite3
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .database import Database, StudyError, fingerprints, to_blob
from .events import EventLog
from .settings import SettingsTables
from .space_tables import SpaceTables


class ClassTables:
    """``classes`` and ``functions``: explicit names, features, and finding a name's class in
    them or in the spaces; a part of ``Store``. Holds the ``Database``, the ``SpaceTables`` a name
    may be found in, the ``SettingsTables`` whose features version new output features raise, and
    the ``EventLog`` that records what was added."""

    def __init__(self, db: Database, space_tables: SpaceTables, settings: SettingsTables,
                 events: EventLog):
        self.db = db
        self.space_tables = space_tables
        self.settings = settings
        self.events = events

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
        spaces = self.space_tables.spaces()
        with self.db.transaction() as c:
            for i, members in enumerate(classes):
                named_by = [m for m in members if m in baselines]
                # A name that a schema or names file of the study holds is there already.
                members = [m for m in members
                           if not c.execute("SELECT 1 FROM functions WHERE name = ?", (m,)).fetchone()
                           and not any(self.space_tables.index_in_space(sid, src, m) is not None
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
            self.events.log(c, "add", detail=json.dumps({"classes": n_classes, "names": n_names}))
        return n_classes, n_names

    def set_output_features(self, class_ids: Sequence[int], feats: np.ndarray) -> None:
        feats = np.asarray(feats, dtype=np.float32)
        with self.db.transaction() as c:
            c.executemany(
                "UPDATE classes SET out_feat = ?, out_finite = ?, out_hash = ? WHERE id = ?",
                [(to_blob(f), int(np.isfinite(f).all()), key, int(i))
                 for i, f, key in zip(class_ids, feats, fingerprints(feats) if len(feats) else [])],
            )
            # Which classes are finite decides the candidates, whose caches read the version.
            self.settings.bump_features_version(c)

    def set_fisher_features(self, class_ids: Sequence[int], feats: np.ndarray,
                            ok: Sequence[bool], reasons: Sequence[str]) -> None:
        """Store Fisher features; a class that has them is in the Fisher pool."""
        feats = np.asarray(feats, dtype=np.float32)
        with self.db.transaction() as c:
            c.executemany(
                "UPDATE classes SET fisher_feat = ?, fisher_ok = ?, fisher_reason = ?, "
                "pool = coalesce(pool, 0) WHERE id = ?",
                [(to_blob(f) if o else None, int(bool(o)), r or None, int(i))
                 for i, f, o, r in zip(class_ids, feats, ok, reasons)],
            )

    def names_by_id(self, class_ids: Sequence[int]) -> Dict[int, str]:
        """The canonical name of each class, by id."""
        out: Dict[int, str] = {}
        ids = [int(i) for i in class_ids]
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            out.update(self.db.query(f"SELECT id, canonical FROM classes WHERE id IN "
                                     f"({','.join('?' * len(part))})", part))
        return out

    def names_of(self, class_ids: Sequence[int]) -> List[str]:
        """The canonical names of classes, in the order of their ids."""
        names = self.names_by_id(class_ids)
        return [names[i] for i in sorted(names)]

    # -- the classes of a schema or names file -----------------------------------------------------

    def fingerprint_index(self) -> Tuple[np.ndarray, np.ndarray]:
        """(the 16-byte output fingerprints of the study's classes that have one, "S16", sorted;
        the class id of each): for merging a new space into the classes present."""
        rows = self.db.query("SELECT out_hash, id FROM classes WHERE out_hash IS NOT NULL")
        keys = np.array([r[0] for r in rows], dtype="S16")
        order = np.argsort(keys, kind="stable")
        return keys[order], np.array([r[1] for r in rows], dtype=np.int64)[order]

    def next_class_id(self, c: sqlite3.Connection) -> int:
        """The id the next class inserted gets (inside the transaction ``c``)."""
        return int(c.execute("SELECT coalesce(max(id), 0) + 1 FROM classes").fetchone()[0])

    def insert_classes_of_space(self, c: sqlite3.Connection, space_id: int, ids: Sequence[int],
                             names: Sequence[str], n_members: Sequence[int],
                             keys: Sequence[bytes], finite: Sequence[int],
                             rep_index: Sequence[int], coords: Sequence[Optional[bytes]]) -> None:
        """Insert new classes of the space ``space_id`` (inside the transaction ``c``): their ids,
        representatives' names, member counts, fingerprints, finite flags, representatives'
        indexes in the space and coordinates (float32 bytes, None without)."""
        c.executemany(
            "INSERT INTO classes (id, canonical, n_members, out_hash, out_finite, "
            "space_id, rep_index, projection) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            zip(ids, names, n_members, keys, finite, itertools.repeat(space_id), rep_index,
                coords))

    def add_member_counts(self, c: sqlite3.Connection, class_ids: Sequence[int],
                          n_members: Sequence[int]) -> None:
        """Count more names in classes present (inside the transaction ``c``)."""
        c.executemany("UPDATE classes SET n_members = n_members + ? WHERE id = ?",
                      zip(n_members, class_ids))

    def class_of(self, name: str) -> Tuple[int, str]:
        """(class id, canonical name) of any name of the space."""
        from ...expr import canonical_name

        def explicit(form):
            return self.db.query("SELECT c.id, c.canonical FROM functions f JOIN classes c "
                                 "ON c.id = f.class_id WHERE f.name = ?", (form,))

        # As written first: explicit names need not be expressions ("elu" in a synthetic space).
        row = explicit(name)
        if not row:
            canonical = canonical_name(name)
            row = explicit(canonical)
            for space_id, source in ([] if row else self.space_tables.spaces()):
                index = self.space_tables.index_in_space(space_id, source, canonical)
                class_id = 0 if index is None else self.space_tables.class_id_at(space_id, index)
                if class_id:
                    row = self.db.query("SELECT id, canonical FROM classes WHERE id = ?",
                                        (class_id,))
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
            for class_id, name in self.db.query(f"SELECT class_id, name FROM functions "
                                                f"WHERE class_id IN ({marks}) ORDER BY rowid",
                                                part):
                out[class_id].append(name)
        spaces = self.space_tables.spaces() if wanted else []
        for space_id, source in spaces:
            ids = self.space_tables.class_ids(space_id)
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
