import pickle

import pytest
from hypothesis import given, strategies as st

import aquasurf_fast as aq


def test_operator_tables_follow_the_spec():
    assert len(aq.UNARY_OPS) == 31
    assert aq.BENCHMARK_UNARY_OPS == aq.UNARY_OPS[:27]
    assert aq.BENCHMARK_UNARY_OPS[0] == "zero" and aq.BENCHMARK_UNARY_OPS[-1] == "hard_sigmoid"
    assert aq.UNARY_OPS[27:] == ("elish", "leakyrelu", "mish", "gelu")
    assert aq.BINARY_OPS == ("add", "sub", "mul", "div", "pow", "max", "min")
    assert aq.NARY_OPS == ("sum_n", "prod_n", "max_n", "min_n")


def test_canonical_name_drops_whitespace():
    e = aq.parse("  max( relu(x) ,\n cosh( elu(x) ) ) ")
    assert str(e) == "max(relu(x),cosh(elu(x)))"
    assert e.op == "max" and [str(a) for a in e.args] == ["relu(x)", "cosh(elu(x))"]


def test_expr_is_hashable_immutable_and_picklable():
    a, b = aq.parse("add(x, tanh(x))"), aq.parse("add(x,tanh(x))")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    with pytest.raises(AttributeError):
        a.op = "sub"
    assert pickle.loads(pickle.dumps(a)) == a


def test_nary_takes_two_or_more_arguments():
    assert str(aq.parse("sum_n(x,x,relu(x),x)")) == "sum_n(x,x,relu(x),x)"


@pytest.mark.parametrize("text, position, words", [
    ("", 0, "empty"),
    ("   ", 0, "empty"),
    ("relux(x)", 0, "unknown operator 'relux'"),
    ("relu(x", 6, "missing ')'"),
    ("relu(x))", 7, "unexpected ')'"),
    ("relu(x,x)", 8, "takes 1 argument, got 2"),
    ("add(x)", 5, "takes 2 arguments, got 1"),
    ("sum_n(x)", 7, "2 or more"),
    ("relu()", 5, "expected an operator name"),
    ("x(x)", 1, "takes no arguments"),
    ("relu x", 5, "expected '('"),
    ("relu(x) tanh(x)", 8, "after a complete expression"),
    ("add(x;x)", 5, "expected ',' or ')'"),
    ("binary(x,x)", 0, "only allowed in schemas"),
])
def test_parse_errors_name_position_and_problem(text, position, words):
    with pytest.raises(aq.ParseError) as info:
        aq.parse(text)
    assert isinstance(info.value, ValueError)
    assert words in str(info.value) and f"position {position}" in str(info.value)


def test_absurd_depth_is_an_error_not_a_crash():
    deep = "relu(" * 200_000 + "x" + ")" * 200_000
    with pytest.raises(aq.ParseError, match="longer than"):
        aq.parse(deep)
    nested = "relu(" * 1000 + "x" + ")" * 1000
    with pytest.raises(aq.ParseError, match="nesting deeper than 256"):
        aq.parse(nested)


def test_non_string_names_are_type_errors():
    with pytest.raises(TypeError):
        aq.parse(3)


@given(st.text(alphabet="xrelu(),_ abdsm-n", max_size=40))
def test_parser_fuzz_only_raises_parse_errors(text):
    try:
        e = aq.parse(text)
    except aq.ParseError:
        return
    assert aq.parse(str(e)) == e  # anything accepted round-trips through its canonical name


def test_benchmark_schema_enumerates_5103_names_in_product_order():
    names = aq.enumerate_schema(aq.BENCHMARK_SCHEMA, unary=aq.BENCHMARK_UNARY_OPS)
    assert len(names) == 5103 and len(set(names)) == 5103
    assert names[0] == "add(zero(x),zero(x))"
    assert names[1] == "add(zero(x),one(x))"
    assert names[27] == "add(one(x),zero(x))"
    assert names[-1] == "min(hard_sigmoid(x),hard_sigmoid(x))"


def test_schema_defaults_to_every_operator_of_each_kind():
    assert len(aq.enumerate_schema("unary(x)")) == 31
    assert len(aq.enumerate_schema("n-ary(x,unary(x),x)", unary=["relu", "tanh"])) == 8
    assert aq.enumerate_schema("add(unary(x),x)", unary=["relu"]) == ["add(relu(x),x)"]


def test_schema_space_indexes_without_building_names():
    space = aq.SchemaSpace("binary(unary(unary(x)),unary(unary(x)))")
    assert len(space) == 7 * 31**4
    assert space[len(space) - 1] == "min(gelu(gelu(x)),gelu(gelu(x)))"
    assert space[1] == "add(zero(zero(x)),zero(one(x)))"
    with pytest.raises(IndexError):
        space[len(space)]


def test_schema_space_decodes_many_indices_at_once_as_one_at_a_time():
    space = aq.SchemaSpace("n-ary(binary(unary(x),x),unary(unary(x)),x)", unary=aq.BENCHMARK_UNARY_OPS)
    indices = [0, 1, 26, 27, 12345, len(space) - 1, -1, -len(space)]
    assert space.names(indices) == [space[i] for i in indices]
    assert space.names([]) == []
    for bad in (len(space), -len(space) - 1):
        with pytest.raises(IndexError, match=str(bad)):
            space.names([0, bad])


def test_schema_with_wrong_operator_kind_is_refused():
    with pytest.raises(ValueError, match="not a unary operator"):
        aq.SchemaSpace("unary(x)", unary=["add"])
