"""Search spaces a study holds without listing their names: a schema, or a names file.

A source numbers its names 0..n-1 and turns an index back into a name (``names``) and a name into
its index (``index``); the study stores only each name's class (4 bytes per name). A schema
decodes any index directly. A names file is streamed: its names are read again when a class's
members are listed, after checking that the file has not changed since the study was created.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .expr import ParseError, SchemaSpace, canonical_name

CHUNK = 65536  # names per streaming step, and per stored row of class ids


def name_hash(name: str) -> int:
    """A name's 64-bit hash as a signed integer (SQLite's INTEGER): the names file index."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little",
                          signed=True)


class SchemaSource:
    """Every name of a schema with the given operator lists (see ``aq.SchemaSpace``)."""

    kind = "schema"

    def __init__(self, schema: str, unary: Optional[Sequence[str]] = None,
                 binary: Optional[Sequence[str]] = None, nary: Optional[Sequence[str]] = None):
        self.space = SchemaSpace(schema, unary, binary, nary)

    @classmethod
    def from_row(cls, source: str, ops: str, digest: Optional[str], n_names: int) -> "SchemaSource":
        ops = json.loads(ops)
        return cls(source, ops["unary"], ops["binary"], ops["n-ary"])

    @property
    def source(self) -> str:
        return self.space.schema

    @property
    def ops(self) -> str:
        return json.dumps({"unary": list(self.space.unary), "binary": list(self.space.binary),
                           "n-ary": list(self.space.nary)})

    digest = None

    def __len__(self) -> int:
        return len(self.space)

    def describe(self) -> str:
        return (f"schema {self.space.schema} ({len(self):,} names; {len(self.space.unary)} unary, "
                f"{len(self.space.binary)} binary, {len(self.space.nary)} n-ary operators)")

    def names(self, indices: Sequence[int]) -> List[str]:
        return self.space.names(indices)

    def index(self, name: str) -> Optional[int]:
        """The name's index, or None when it is not in the space (a malformed name raises)."""
        try:
            return self.space.index(name)
        except ParseError:
            raise
        except ValueError:
            return None


def file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class NamesFileSource:
    """The names of a text file, one per line; ``#`` starts a comment, blank lines are skipped.

    Lines are numbered from 0 including the skipped ones, so that index i is line i + 1 of the
    file. A name that repeats an earlier one (after canonicalization) is a duplicate line and
    belongs to no class.
    """

    kind = "names"
    ops = None

    def __init__(self, path: str, digest: Optional[str] = None, n_lines: Optional[int] = None):
        self.source = os.path.abspath(path)
        if not os.path.isfile(self.source):
            raise ValueError(f"names file {path!r} does not exist")
        self.digest = digest or file_digest(self.source)
        self._n_lines = n_lines

    @classmethod
    def from_row(cls, source: str, ops: Optional[str], digest: str, n_names: int) -> "NamesFileSource":
        if not os.path.isfile(source):
            raise ValueError(f"the names file {source} of this study is missing: restore it to "
                             "list the members of its classes")
        return cls(source, digest, n_names)

    def __len__(self) -> int:
        if self._n_lines is None:
            with open(self.source, "rb") as f:
                self._n_lines = sum(1 for _ in f)
        return self._n_lines

    def describe(self) -> str:
        return f"names file {self.source} ({len(self):,} lines)"

    def _lines(self) -> Iterator[Tuple[int, str]]:
        with open(self.source, encoding="utf-8") as f:
            try:
                for i, line in enumerate(f):
                    yield i, line.split("#", 1)[0].strip()
            except UnicodeDecodeError:
                raise ValueError(self._not_utf8()) from None

    def _not_utf8(self) -> str:
        """Where the file stops being UTF-8: the text reader decodes blocks of many lines at once,
        so its error knows only a byte offset within a block."""
        with open(self.source, "rb") as f:
            for number, raw in enumerate(f, 1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return (f"{self.source}:{number}: not UTF-8 text (byte "
                            f"{raw[exc.start]:#04x} at column {exc.start + 1}); a names file is "
                            "UTF-8 text with one expression per line")
        return f"{self.source}: not UTF-8 text"

    def chunks(self) -> Iterator[Tuple[np.ndarray, List[str]]]:
        """(line numbers, canonical names) of the file's names, CHUNK at a time; a malformed name
        raises ValueError naming its line."""
        lines: List[int] = []
        names: List[str] = []
        for i, text in self._lines():
            if not text:
                continue
            try:
                names.append(canonical_name(text))
            except ValueError as exc:
                raise ValueError(f"{self.source}:{i + 1}: {text!r} is not a function expression "
                                 f"({exc}); a names file holds one expression per line, such as "
                                 "'mul(x,sigmoid(x))', and # comments") from None
            lines.append(i)
            if len(names) == CHUNK:
                yield np.array(lines, dtype=np.int64), names
                lines, names = [], []
        if names:
            yield np.array(lines, dtype=np.int64), names

    def check_unchanged(self) -> None:
        """Raise ValueError when the file differs from the one the study was created with."""
        if file_digest(self.source) != self.digest:
            raise ValueError(f"the names file {self.source} changed since this study was created; "
                             "restore it to list the members of its classes or add a space")

    def names(self, indices: Sequence[int]) -> List[str]:
        self.check_unchanged()
        wanted = set(int(i) for i in indices)
        found = {i: canonical_name(text) for i, text in self._lines() if i in wanted}
        return [found[int(i)] for i in indices]


def source_from_row(kind: str, source: str, ops: Optional[str], digest: Optional[str], n_names: int):
    """The source of a row of the study's ``spaces`` table."""
    return (SchemaSource if kind == "schema" else NamesFileSource).from_row(source, ops, digest, n_names)


__all__ = ["CHUNK", "NamesFileSource", "SchemaSource", "file_digest", "name_hash",
           "source_from_row"]
