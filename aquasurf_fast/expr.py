"""Activation functions as expressions (SPEC section 2): parsing, canonical names, schemas.

The grammar and the operator table live in the C++ core (one parser for every path); this module
turns its postfix output into immutable, hashable :class:`Expr` trees and enumerates schemas.
"""
from __future__ import annotations

import itertools
import re
from functools import lru_cache
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np

from . import _C

ParseError = _C.ParseError
ParseError.__doc__ = "A malformed expression; the message names the position and the problem."
ParseError.__module__ = __name__

_KIND_OF = dict(zip(_C.OP_NAMES, _C.OP_KINDS))
UNARY_OPS: tuple = tuple(n for n in _C.OP_NAMES if _KIND_OF[n] == 1)
BENCHMARK_UNARY_OPS: tuple = UNARY_OPS[:27]
BINARY_OPS: tuple = tuple(n for n in _C.OP_NAMES if _KIND_OF[n] == 2)
NARY_OPS: tuple = tuple(n for n in _C.OP_NAMES if _KIND_OF[n] == 3)

#: The benchmark space of the paper: 5,103 names over BENCHMARK_UNARY_OPS and BINARY_OPS.
BENCHMARK_SCHEMA = "binary(unary(x),unary(x))"


class Expr:
    """An immutable expression tree. ``str(expr)`` is the canonical name; equal names are equal."""

    __slots__ = ("op", "args", "_name")

    def __init__(self, op: str, args: tuple = ()) -> None:
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "args", tuple(args))
        name = op if op == "x" else f"{op}({','.join(a._name for a in self.args)})"
        object.__setattr__(self, "_name", name)

    def __setattr__(self, key, value):
        raise AttributeError("Expr is immutable")

    def __str__(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"Expr({self._name!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Expr) and other._name == self._name

    def __hash__(self) -> int:
        return hash(self._name)

    def __reduce__(self):
        return (parse, (self._name,))


# What the grammar can hold: printable ASCII and the whitespace the core skips. Anything else is
# found here, because the core would report it by one of its UTF-8 bytes: a message cut short at a
# NUL, or one that cannot be decoded, at a byte offset rather than the character's position (and a
# lone surrogate, which has no UTF-8, would not reach it at all).
_OUTSIDE_GRAMMAR = re.compile(r"[^\x21-\x7e \t\n\v\f\r]")


def check_characters(text: str, prefix: str = "") -> None:
    """Raise ``ParseError`` at the first character no name can contain (called when the core
    refused ``text``, so that names it accepts cost nothing more)."""
    bad = _OUTSIDE_GRAMMAR.search(text)
    if bad is not None:
        excerpt = text if len(text) <= 80 else text[:77] + "..."
        raise ParseError(f"{prefix}character {bad.group()!r} is not allowed (names are made of "
                         "letters, digits, '_', '-', '(', ')', ',' and spaces) at position "
                         f"{bad.start()} in {excerpt!r}")


def _postfix(text: str, allow_placeholders: bool = False) -> list:
    """The core's postfix tokens of ``text``; its errors as clear ParseErrors."""
    try:
        return _C.parse_postfix(text, allow_placeholders)
    except (ParseError, UnicodeDecodeError, TypeError):  # TypeError: a lone surrogate
        if isinstance(text, str):
            check_characters(text)
        raise


def _tree_from_postfix(postfix) -> Expr:
    stack: list = []
    for name, n_args in postfix:
        if n_args == 0:
            stack.append(Expr("x"))
        else:
            args = stack[len(stack) - n_args:]
            del stack[len(stack) - n_args:]
            stack.append(Expr(name, args))
    return stack[0]


@lru_cache(maxsize=65536)
def parse(name: str) -> Expr:
    """Parse an activation-function name, e.g. ``parse("max(relu(x), cosh(elu(x)))")``.

    Raises :class:`ParseError` (a ``ValueError``) naming the position and the problem.
    """
    if isinstance(name, Expr):
        return name
    if not isinstance(name, str):
        raise TypeError(f"an activation function name must be a str, got {type(name).__name__}")
    return _tree_from_postfix(_postfix(name))


def canonical_name(fn) -> str:
    """The canonical name of a function given as a name or an :class:`Expr`."""
    return str(parse(fn))


class SchemaSpace(Sequence):
    """All names of a schema, in enumeration order (the leftmost placeholder varies slowest),
    indexable without building them: ``space[i]`` decodes index ``i``."""

    def __init__(self, schema: str, unary=None, binary=None, nary=None) -> None:
        choices = {
            "unary": tuple(UNARY_OPS if unary is None else unary),
            "binary": tuple(BINARY_OPS if binary is None else binary),
            "n-ary": tuple(NARY_OPS if nary is None else nary),
        }
        # A format string with one field per placeholder, and each field's operators, both in
        # textual (pre-)order: a node's own placeholder comes before its arguments'.
        # Each field also remembers its placeholder's position in the postfix token list, which is
        # how ``index`` reads a name's operators back.
        stack: list = []
        self._tokens = _postfix(schema, True)
        for pos, (name, n_args) in enumerate(self._tokens):
            if n_args == 0:
                stack.append(("x", [], []))
                continue
            args = stack[len(stack) - n_args:]
            del stack[len(stack) - n_args:]
            own = [choices[name]] if name in choices else []
            head = "{}" if own else name
            stack.append((f"{head}({','.join(a[0] for a in args)})",
                          own + [d for a in args for d in a[1]],
                          ([pos] if own else []) + [p for a in args for p in a[2]]))
        self.schema = schema
        self.unary, self.binary, self.nary = choices["unary"], choices["binary"], choices["n-ary"]
        self._format, self._digits, positions = stack[0]
        self._field_of_position = {p: k for k, p in enumerate(positions)}
        self._size = _C.schema_size(schema, list(self.unary), list(self.binary), list(self.nary))

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._size))]
        if index < 0:
            index += self._size
        if not 0 <= index < self._size:
            raise IndexError(f"index {index} out of range for a space of {self._size} names")
        fields = []
        for ops in reversed(self._digits):
            index, d = divmod(index, len(ops))
            fields.append(ops[d])
        return self._format.format(*reversed(fields))

    def names(self, indices) -> list:
        """The names at ``indices`` (a sequence or array of integers), decoded together: each
        field's operators for all indices at once with numpy, then one format per name. Millions
        of names (the representatives of a large space's classes) take a second or two, where
        ``space[i]`` one at a time takes ten times longer."""
        index = np.asarray(indices, dtype=np.int64).reshape(-1)
        if self._size > 2 ** 62:  # beyond int64 arithmetic: one at a time, in Python integers
            return [self[int(i)] for i in index]
        given = index
        index = np.where(index < 0, index + self._size, index)
        if index.size and not (0 <= index.min() and index.max() < self._size):
            bad = given[(index < 0) | (index >= self._size)][0]
            raise IndexError(f"index {bad} out of range for a space of {self._size} names")
        fields = []
        for ops in reversed(self._digits):
            index, digit = np.divmod(index, len(ops))
            fields.append(np.array(ops, dtype=object)[digit].tolist())
        return list(map(self._format.format, *reversed(fields)))

    def index(self, name: str) -> int:
        """The index of ``name`` in the space (``space[space.index(name)] == canonical name``).

        Raises ``ParseError`` for a malformed name and ``ValueError`` for a name that is not in
        the space, saying where it departs from the schema.
        """
        tokens = _postfix(name)
        if len(tokens) != len(self._tokens):
            raise ValueError(f"{name!r} is not in the space of {self.schema}: it has "
                             f"{len(tokens) - sum(a == 0 for _, a in tokens)} operators, the "
                             f"schema's names have "
                             f"{len(self._tokens) - sum(a == 0 for _, a in self._tokens)}")
        fields = [0] * len(self._digits)
        for pos, ((want, n_want), (got, n_got)) in enumerate(zip(self._tokens, tokens)):
            field = self._field_of_position.get(pos)
            if field is None:
                ok = want == got and n_want == n_got
            else:
                ops = self._digits[field]
                ok = got in ops and n_want == n_got
                if ok:
                    fields[field] = ops.index(got)
            if not ok:
                expected = (want if field is None
                            else f"one of the {len(self._digits[field])} {want} operators")
                raise ValueError(f"{name!r} is not in the space of {self.schema}: {got!r} where "
                                 f"the schema has {expected}")
        index = 0
        for ops, d in zip(self._digits, fields):
            index = index * len(ops) + d
        return index

    def overlap(self, other: "SchemaSpace") -> np.ndarray:
        """The indices (ascending, int64) of this space's names that ``other`` holds too.

        Two names are equal exactly when their postfix tokens are, so the common names are those
        of one shape, with each placeholder's operators narrowed to the ones the other space allows
        at that position: a product of per-field choices, computed without listing either space.
        """
        none = np.zeros(0, dtype=np.int64)
        if [n for _, n in self._tokens] != [n for _, n in other._tokens]:
            return none
        digits = [np.arange(len(ops), dtype=np.int64) for ops in self._digits]
        for pos, (token, _) in enumerate(self._tokens):
            theirs = set(other._allowed(pos))
            field = self._field_of_position.get(pos)
            if field is None:
                if token not in theirs:
                    return none
                continue
            digits[field] = np.array([d for d, op in enumerate(self._digits[field]) if op in theirs],
                                     dtype=np.int64)
            if digits[field].size == 0:
                return none
        index = np.zeros(1, dtype=np.int64)
        for ops, d in zip(self._digits, digits):
            index = (index[:, None] * len(ops) + d[None, :]).ravel()
        return index

    def _allowed(self, pos: int) -> Tuple[str, ...]:
        """The tokens this space's names may have at postfix position ``pos``."""
        field = self._field_of_position.get(pos)
        return (self._tokens[pos][0],) if field is None else self._digits[field]

    def __iter__(self) -> Iterator[str]:
        for combo in itertools.product(*self._digits):
            yield self._format.format(*combo)

    def __repr__(self) -> str:
        return f"SchemaSpace({self.schema!r}, {self._size} names)"


def enumerate_schema(schema: str, unary: Optional[Sequence[str]] = None, binary: Optional[Sequence[str]] = None,
                     nary: Optional[Sequence[str]] = None) -> list:
    """Every name of a schema: each placeholder (``unary``, ``binary``, ``n-ary``) replaced by every
    operator of its kind (all of them by default), left to right (the Cartesian product)."""
    return list(SchemaSpace(schema, unary, binary, nary))
