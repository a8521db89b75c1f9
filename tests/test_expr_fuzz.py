"""Property-based tests of the expression parser: every text either parses to an expression that
round-trips through its canonical name, or raises one ParseError naming a position inside the
text. Never another exception, never a hang (each case has a deadline)."""
import re

import numpy as np
from hypothesis import example, given, settings, strategies as st

import aquasurf_fast as aq

# Parsing takes microseconds: many cases fit in well under a second. The deadline catches a hang.
FUZZ = settings(max_examples=400, deadline=2000)

SPACES = st.text(alphabet=" \t\n\r\f\v", max_size=3)


def trees(max_leaves=12):
    """Expression trees as (op, children) tuples over every operator of the grammar."""
    def extend(children):
        unary = st.tuples(st.sampled_from(aq.UNARY_OPS), st.tuples(children))
        binary = st.tuples(st.sampled_from(aq.BINARY_OPS), st.tuples(children, children))
        nary = st.tuples(st.sampled_from(aq.NARY_OPS),
                         st.lists(children, min_size=2, max_size=4).map(tuple))
        return st.one_of(unary, binary, nary)

    return st.recursive(st.just(("x", ())), extend, max_leaves=max_leaves)


def render(tree, space):
    """The tree as text, with whitespace drawn by ``space()`` around every token."""
    op, children = tree
    if op == "x":
        return space() + "x" + space()
    inner = ",".join(render(c, space) for c in children)
    return f"{space()}{op}{space()}({inner}){space()}"


def canonical(tree):
    op, children = tree
    return op if op == "x" else f"{op}({','.join(canonical(c) for c in children)})"


def shape(expr):
    return (expr.op, tuple(shape(a) for a in expr.args))


def parsed_or_parse_error(text):
    """parse(text), or None after checking its ParseError names a position inside the text."""
    try:
        expr = aq.parse(text)
    except aq.ParseError as exc:
        found = re.search(r"at position (\d+) in ", str(exc))
        assert found, str(exc)
        assert 0 <= int(found.group(1)) <= min(len(text), 100_000), str(exc)
        return None
    name = str(expr)
    assert not re.search(r"\s", name) and aq.parse(name) == expr
    return expr


@settings(FUZZ, max_examples=250)
@given(trees(), st.data())
def test_random_trees_round_trip_through_their_canonical_name(tree, data):
    text = render(tree, lambda: data.draw(SPACES))
    expr = aq.parse(text)
    assert str(expr) == canonical(tree)
    assert shape(expr) == tree
    assert aq.parse(str(expr)) == expr


@FUZZ
@given(st.text(st.characters(exclude_categories=()), max_size=60))
# Found by this test: a UnicodeDecodeError, a message cut at a NUL, a TypeError.
@example("\x80")
@example("relu(x\x00)")
@example("relu(\ud800)")
def test_any_text_parses_or_is_one_parse_error(text):
    parsed_or_parse_error(text)  # surrogates, NUL, control and non-ASCII characters included


EDITS = st.lists(st.tuples(st.sampled_from(["delete", "insert", "replace"]), st.integers(0, 10**6),
                           st.sampled_from(list("x(),_- \t") + ["é", "\x00", "\u2028", "relu",
                                                                "add", "sum_n", "unary"])),
                 min_size=1, max_size=4)


@FUZZ
@given(trees(), EDITS)
def test_edited_names_parse_or_fail_at_a_position_inside_them(tree, edits):
    text = canonical(tree)
    for kind, at, piece in edits:
        at %= len(text) + 1
        if kind == "delete":
            text = text[:at] + text[at + 1:]
        elif kind == "insert":
            text = text[:at] + piece + text[at:]
        else:
            text = text[:at] + piece + text[at + len(piece):]
    parsed_or_parse_error(text)


@settings(FUZZ, max_examples=150)
@given(st.integers(0, 400), st.sampled_from(aq.UNARY_OPS))
def test_nesting_is_refused_past_256_levels_and_accepted_below(depth, op):
    text = f"{op}(" * depth + "x" + ")" * depth
    expr = parsed_or_parse_error(text)
    assert (expr is not None) == (depth <= 256)


@settings(FUZZ, max_examples=150)
@given(st.data())
def test_names_of_a_schema_space_index_back_to_themselves(data):
    space = aq.SchemaSpace(aq.BENCHMARK_SCHEMA, unary=aq.BENCHMARK_UNARY_OPS)
    index = data.draw(st.integers(0, len(space) - 1))
    name = space[index]
    spaced = render(canonical_tree(name), lambda: data.draw(SPACES))
    assert space.index(spaced) == index and str(aq.parse(spaced)) == name


def canonical_tree(name):
    expr = aq.parse(name)
    return shape(expr)


@settings(max_examples=60, deadline=5000)
@given(st.lists(trees(max_leaves=4).map(canonical), min_size=1, max_size=5),
       st.sampled_from([None, "é", "\x00", "\ud800", ")"]))
def test_evaluate_refuses_a_bad_name_among_good_ones_by_its_index(names, bad):
    x = np.linspace(-2, 2, 5, dtype=np.float32)
    if bad is None:
        assert aq.evaluate(names, x).shape == (len(names), 5)
        return
    names = names + [f"relu({bad}x)"]
    try:
        aq.evaluate(names, x)
    except aq.ParseError as exc:
        assert f"name #{len(names) - 1}: " in str(exc)
    else:
        raise AssertionError(f"{names[-1]!r} was evaluated")
