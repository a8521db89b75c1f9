import numpy as np
import pytest

import aquasurf_fast as aq


def test_probe_is_the_original_draws_clipped_in_float32():
    x = aq.probe_inputs()
    expected = np.random.RandomState(0).normal(size=1000).clip(-5, 5).astype(np.float32)
    assert x.dtype == np.float32 and x.shape == (1000,)
    np.testing.assert_array_equal(x, expected)
    x[0] = 99.0  # callers get a copy
    assert aq.probe_inputs()[0] != 99.0


def test_output_features_are_values_at_the_probe():
    feats = aq.output_features(["tanh(x)", "relu(x)"])
    assert feats.shape == (2, 1000) and feats.dtype == np.float32
    np.testing.assert_allclose(feats[0], np.tanh(aq.probe_inputs()), rtol=2e-7, atol=1e-7)


def test_equivalence_needs_identical_bits_with_nan_equal_to_nan():
    classes = aq.equivalence_classes([
        "relu(x)", "max(x,zero(x))", "add(relu(x),zero(x))", "tanh(x)", "div(zero(x),zero(x))",
        "sub(reciprocal(zero(x)),reciprocal(zero(x)))", "mul(x,one(x))", "x",
    ])
    assert classes == [
        ["relu(x)", "max(x,zero(x))", "add(relu(x),zero(x))"],
        ["tanh(x)"],
        ["div(zero(x),zero(x))", "sub(reciprocal(zero(x)),reciprocal(zero(x)))"],
        ["mul(x,one(x))", "x"],
    ]


def test_benchmark_space_counts():
    names = aq.enumerate_schema(aq.BENCHMARK_SCHEMA, unary=aq.BENCHMARK_UNARY_OPS)
    classes = aq.equivalence_classes(names)
    assert len(names) == 5103
    # 2,907 here: the paper's TensorFlow kernels report 2,913 (see README, "Equivalence classes")
    assert len(classes) == 2907
    feats = aq.output_features([c[0] for c in classes])
    assert int(np.isfinite(feats).all(axis=1).sum()) == 2526


def test_schema_classes_agree_with_the_name_path():
    names = aq.enumerate_schema(aq.BENCHMARK_SCHEMA, unary=aq.BENCHMARK_UNARY_OPS)
    by_names = aq.equivalence_classes(names)
    by_schema = aq.schema_classes(aq.BENCHMARK_SCHEMA, unary=aq.BENCHMARK_UNARY_OPS)
    assert by_schema.n_names == 5103 and by_schema.n_classes == len(by_names)
    assert by_schema.classes() == by_names
    assert by_schema.members(1) == by_names[1]
    assert by_schema.representative_names() == [c[0] for c in by_names]
    finite = aq.output_features(by_schema.representative_names())
    np.testing.assert_array_equal(by_schema.finite, np.isfinite(finite).all(axis=1))


def test_schema_classes_of_nary_and_mixed_schemas():
    schema = "n-ary(unary(x),x,unary(x))"
    unary = ["relu", "tanh", "abs", "identity"]
    got = aq.schema_classes(schema, unary=unary)
    names = aq.enumerate_schema(schema, unary=unary)
    assert got.classes() == aq.equivalence_classes(names)


def test_schema_errors_are_clear():
    with pytest.raises(ValueError, match="no operators given for placeholder 'unary'"):
        aq.schema_classes("unary(x)", unary=[])
    with pytest.raises(aq.ParseError):
        aq.schema_classes("binary(unary(x)")
