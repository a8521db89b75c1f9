"""Every operator and random nested expressions against the float64 references."""
import numpy as np
import pytest
import scipy.special
from hypothesis import given, strategies as st

import torch

import aquasurf_fast as aq
from aquasurf_fast import _C
from aquasurf_fast.testing.reference import NUMPY_OPS, evaluate_grad_torch, evaluate_numpy

EDGE = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 700.0, -700.0, 1.0, -1.0, 2.5, -2.5, 20.0, -20.0,
        30.0, -30.0, 88.0, -88.0, 1e30, -1e30, 0.5, -0.5]
# Relative tolerance per dtype: a few roundings of each precision, composed.
RTOL = {np.float32: 1e-5, np.float64: 1e-12}
# Below the smallest normal number, libraries differ in flushing subnormals to zero.
TINY = {np.float32: np.finfo(np.float32).tiny, np.float64: np.finfo(np.float64).tiny}
# Derivative formulas such as tanh' = 1 - y^2 cancel in float32 (as torch's own do): an absolute
# slack of a few float32 epsilons on derivatives of order one.
DERIV_ATOL = {np.float32: 1e-6, np.float64: 1e-14}


TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}


def inputs(dtype, n=3000, seed=0):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(size=n // 2) * 3, rng.uniform(-40, 40, size=n // 2), EDGE])
    return x.astype(dtype)


def as_dtype(ref, dtype):
    """The float64 reference rounded to the kernel's dtype (overflowing to inf where it does)."""
    with np.errstate(over="ignore"):
        return np.asarray(ref).astype(dtype)


def to_device(x, device):
    if device == "cpu":
        return x
    import torch

    return torch.as_tensor(x, device=device)


def to_numpy(y):
    return y.cpu().numpy() if hasattr(y, "cpu") else np.asarray(y)


# Operators defined by a formula whose float32 rounding is part of the definition (the Keras
# form of hard_sigmoid computes 0.2 x + 0.5 in float32): their reference runs in the kernel's dtype.
FORMULA_DEFINED = {"hard_sigmoid"}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", aq.UNARY_OPS)
def test_unary_values_match_reference(op, dtype, device):
    x = inputs(dtype)
    got = to_numpy(aq.evaluate(f"{op}(x)", to_device(x, device)))[0]
    ref_x = x if op in FORMULA_DEFINED else x.astype(np.float64)
    ref = as_dtype(evaluate_numpy(f"{op}(x)", ref_x), dtype)
    np.testing.assert_allclose(got, ref, rtol=RTOL[dtype], atol=TINY[dtype], equal_nan=True, err_msg=op)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", aq.UNARY_OPS)
def test_unary_derivatives_match_torch_autograd(op, dtype, device):
    x = inputs(dtype)
    _, got = aq.evaluate_grad(f"{op}(x)", to_device(x, device))
    _, ref = evaluate_grad_torch(f"{op}(x)", x.astype(np.float64))
    np.testing.assert_allclose(to_numpy(got)[0], as_dtype(ref.numpy(), dtype), rtol=RTOL[dtype] * 10,
                               atol=DERIV_ATOL[dtype], equal_nan=True, err_msg=op)


def assert_matches_torch(got, ref, ref64, rtol, atol, err_msg):
    """got against torch in the kernel's dtype: the same NaN and signed-inf pattern everywhere,
    and close values wherever torch itself is accurate in that dtype (in float32, derivatives
    like (1 - tanh^2)/x - tanh/x^2 cancel, and there both libraries are only as good as float32)."""
    for pattern in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(pattern(got), pattern(ref), err_msg=f"{err_msg}: {pattern.__name__}")
    with np.errstate(invalid="ignore"):  # inf - inf where both overflow
        accurate = np.isfinite(ref) & (np.abs(ref - ref64) <= rtol * np.abs(ref64) + atol)
    np.testing.assert_allclose(got[accurate], ref[accurate], rtol=rtol * 10, atol=atol, err_msg=err_msg)


def pair_inputs(dtype, seed=1):
    """Operand pairs: random values, and every combination of edge values (ties included)."""
    rng = np.random.default_rng(seed)
    edge = np.array(EDGE + [2.0, -2.0, 3.0, -3.0, 1.0 / 3.0], dtype=np.float64)
    ea, eb = np.meshgrid(edge, edge)
    a = np.concatenate([rng.normal(size=2000) * 4, rng.integers(-4, 5, 500), ea.ravel()])
    b = np.concatenate([rng.normal(size=2000) * 4, rng.integers(-4, 5, 500), eb.ravel()])
    return a.astype(dtype), b.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", aq.BINARY_OPS)
def test_binary_values_match_reference(op, dtype):
    a, b = pair_inputs(dtype)
    got = _C.apply_op(op, [a, b])
    with np.errstate(all="ignore"):
        ref = NUMPY_OPS[op](a, b)  # the kernel's dtype: overflow and rounding as the kernel's
    assert got.dtype == dtype
    np.testing.assert_allclose(got, ref, rtol=RTOL[dtype], atol=TINY[dtype], equal_nan=True, err_msg=op)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", aq.NARY_OPS)
@pytest.mark.parametrize("n_args", [2, 3, 5])
def test_nary_values_match_reference(op, n_args, dtype):
    rng = np.random.default_rng(n_args)
    args = [rng.choice(np.array(EDGE + [2.0, -2.0]), size=4000).astype(dtype) for _ in range(n_args)]
    got = _C.apply_op(op, args)
    with np.errstate(all="ignore"):
        ref = NUMPY_OPS[op](*args)
    np.testing.assert_allclose(got, ref, rtol=RTOL[dtype] * n_args, atol=TINY[dtype], equal_nan=True, err_msg=op)


# Binary and n-ary derivatives: operands built from x so that ties, zeros, signs and overflow occur.
COMPOSITES = [
    "{op}(x,x)", "{op}(x,relu(x))", "{op}(x,negative(x))", "{op}(tanh(x),x)", "{op}(x,square(x))",
    "{op}(exp(x),x)", "{op}(x,one(x))", "{op}(x,zero(x))", "{op}(abs(x),reciprocal(x))", "{op}(abs(x),elu(x))",
]
NARY_COMPOSITES = ["{op}(x,x,x)", "{op}(x,relu(x),abs(x))", "{op}(tanh(x),x,negative(x),sigmoid(x))",
                   "{op}(relu(x),relu(x),x)"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("template", COMPOSITES)
@pytest.mark.parametrize("op", aq.BINARY_OPS)
def test_binary_derivatives_match_torch_autograd(op, template, dtype, device):
    # torch in the same dtype: composites overflow and round where the kernel does
    name = template.format(op=op)
    x = inputs(dtype, n=1000)
    values, got = aq.evaluate_grad(name, to_device(x, device))
    ref_values, ref = evaluate_grad_torch(name, x, dtype=TORCH_DTYPE[dtype])
    ref_values64, ref64 = evaluate_grad_torch(name, x)
    assert_matches_torch(to_numpy(values)[0], ref_values.numpy(), ref_values64.numpy(), RTOL[dtype], TINY[dtype],
                         err_msg=name)
    assert_matches_torch(to_numpy(got)[0], ref.numpy(), ref64.numpy(), RTOL[dtype], DERIV_ATOL[dtype], err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("template", NARY_COMPOSITES)
@pytest.mark.parametrize("op", aq.NARY_OPS)
def test_nary_derivatives_match_torch_autograd(op, template, dtype, device):
    name = template.format(op=op)
    x = inputs(dtype, n=1000)
    _, got = aq.evaluate_grad(name, to_device(x, device))
    _, ref = evaluate_grad_torch(name, x, dtype=TORCH_DTYPE[dtype])
    _, ref64 = evaluate_grad_torch(name, x)
    assert_matches_torch(to_numpy(got)[0], ref.numpy(), ref64.numpy(), RTOL[dtype], DERIV_ATOL[dtype], err_msg=name)


def test_kinks_and_ties_follow_torch():
    x = np.array([0.0, -2.5, 2.5], dtype=np.float64)
    _, d = aq.evaluate_grad(["relu(x)", "abs(x)", "hard_sigmoid(x)", "max(x,x)", "max_n(x,x,x)", "min(x,relu(x))"], x)
    np.testing.assert_array_equal(d[0], [0.0, 0.0, 1.0])    # relu'(0) = 0
    np.testing.assert_array_equal(d[1], [0.0, -1.0, 1.0])   # sgn
    np.testing.assert_array_equal(d[2], [0.2, 0.2, 0.2])    # clamp's gradient includes its bounds
    np.testing.assert_array_equal(d[3], [1.0, 1.0, 1.0])    # a tie splits in halves, both halves are x
    np.testing.assert_array_equal(d[4], [1.0, 1.0, 1.0])    # amax shares a tie equally
    np.testing.assert_array_equal(d[5], [0.5, 1.0, 1.0])    # min(0, relu(0)): half to x, half to relu


# The derivative at NaN, +-inf and +-0, written down (README, "Derivatives at NaN, infinities and
# zeros") and tested against that table, not against torch: torch's answer at a NaN operand
# depends on which of its vector kernels the CPU selects.
CONSTANT_DERIVATIVES = {"zero": 0.0, "one": 0.0, "identity": 1.0, "negative": -1.0}
SPECIAL_X = [np.inf, -np.inf, 0.0, -0.0]
# Derivative at inf, -inf, 0, -0 (torch's values there, the same on every CPU).
DERIVATIVES_AT_SPECIAL_X = {
    "zero": [0, 0, 0, 0], "one": [0, 0, 0, 0], "identity": [1, 1, 1, 1], "negative": [-1, -1, -1, -1],
    "abs": [1, -1, 0, 0], "reciprocal": [-0.0, -0.0, -np.inf, -np.inf], "square": [np.inf, -np.inf, 0, -0.0],
    "exp": [np.inf, 0, 1, 1], "erf": [0, 0, 2 / np.sqrt(np.pi), 2 / np.sqrt(np.pi)],
    "erfc": [-0.0, -0.0, -2 / np.sqrt(np.pi), -2 / np.sqrt(np.pi)], "sinh": [np.inf, np.inf, 1, 1],
    "cosh": [np.inf, -np.inf, 0, -0.0], "tanh": [0, 0, 1, 1], "expm1": [np.inf, 0, 1, 1],
    "sigmoid": [0, 0, 0.25, 0.25], "log_sigmoid": [0, 1, 0.5, 0.5], "arcsinh": [0, 0, 1, 1],
    "arctan": [0, 0, 1, 1], "bessel_i0e": [0, 0, 0, -0.0], "bessel_i1e": [0, 0, 0.5, 0.5],
    "relu": [1, 0, 0, 0], "elu": [1, 0, 1, 1],
    "selu": [1.0507009873554805, 0, 1.0507009873554805 * 1.6732632423543772] + [1.0507009873554805 * 1.6732632423543772],
    "swish": [np.nan, np.nan, 0.5, 0.5], "softplus": [1, 0, 0.5, 0.5],
    "softsign": [np.nan, np.nan, 1, 1], "hard_sigmoid": [0, 0, 0.2, 0.2], "elish": [np.nan, 0, 0.5, 0.5],
    "leakyrelu": [1, 0.01, 0.01, 0.01], "mish": [np.nan, np.nan, 0.6, 0.6], "gelu": [np.nan, np.nan, 0.5, 0.5],
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", aq.UNARY_OPS)
def test_unary_derivative_at_nan_is_nan_unless_it_is_a_constant(op, dtype, device):
    x = np.array([np.nan, -np.nan, 1.0], dtype=dtype)
    _, d = aq.evaluate_grad(f"{op}(x)", to_device(x, device))
    d = to_numpy(d)[0]
    if op in CONSTANT_DERIVATIVES:
        np.testing.assert_array_equal(d[:2], [CONSTANT_DERIVATIVES[op]] * 2)
    else:
        assert np.isnan(d[:2]).all(), (op, d)
    assert np.isfinite(d[2])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", aq.UNARY_OPS)
def test_unary_derivative_at_infinities_and_signed_zeros(op, dtype, device):
    x = np.array(SPECIAL_X, dtype=dtype)
    _, d = aq.evaluate_grad(f"{op}(x)", to_device(x, device))
    want = np.array(DERIVATIVES_AT_SPECIAL_X[op], dtype=np.float64).astype(dtype)
    np.testing.assert_allclose(to_numpy(d)[0], want, rtol=RTOL[dtype] * 10, atol=0, equal_nan=True, err_msg=op)
    np.testing.assert_array_equal(np.signbit(to_numpy(d)[0][want == 0]), np.signbit(want[want == 0]), err_msg=op)


@pytest.mark.parametrize("op", [*aq.BINARY_OPS, *aq.NARY_OPS])
def test_operator_partials_at_a_nan_operand_are_nan_unless_constant(op, device):
    # At x = inf, sub(x,x) is NaN while x is not: the partial derivative for x's own operand must
    # be NaN too (torch would give max's, for one, a number), and so at x = NaN. add, sub and
    # sum_n keep their constant partials, so there the NaN operand's path cancels: 1 - 1 for
    # sub(x,x).
    extra = [] if op in aq.BINARY_OPS else ["one(x)"]
    for args, constant in ((["sub(x,x)", "x"], {"add": 1.0, "sub": -1.0, "sum_n": 1.0}),
                           (["x", "sub(x,x)"], {"add": 1.0, "sub": 1.0, "sum_n": 1.0})):
        name = f"{op}({','.join(args + extra)})"
        _, d = aq.evaluate_grad(name, to_device(np.array([np.inf, np.nan]), device))
        d = to_numpy(d)[0]
        if op in constant:
            np.testing.assert_array_equal(d, [constant[op]] * 2, err_msg=name)
        else:
            assert np.isnan(d).all(), (name, d)


def test_signed_zero_gradients_follow_torch():
    # torch keeps the first gradient that reaches a value as it is, so a -0 gradient stays -0
    names = ["mul(x,negative(zero(x)))", "negative(relu(x))", "mul(relu(x),negative(zero(x)))", "max(x,x)"]
    x = np.array([-1.5, -0.0, 0.0, 2.0])
    _, d = aq.evaluate_grad(names, x)
    for k, name in enumerate(names):
        ref = evaluate_grad_torch(name, x)[1].numpy()
        np.testing.assert_array_equal(d[k], ref, err_msg=name)
        np.testing.assert_array_equal(np.signbit(d[k]), np.signbit(ref), err_msg=name)


def test_sinh_and_cosh_derivatives_are_within_a_few_ulp():
    # Backward takes sinh' = cosh from sinh's value and cosh' = sinh from cosh's value: checked
    # densely, across the switch from the series at |x| = 1 and at cosh(x) = 2^12 (|x| = 9.01)
    x = np.concatenate([np.linspace(0, 89, 200001), np.linspace(0.99, 1.01, 10001), np.linspace(9.0, 9.02, 10001)])
    x = np.concatenate([x, -x]).astype(np.float32)
    _, d = aq.evaluate_grad(["cosh(x)", "sinh(x)"], x)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(d[0], np.sinh(x64), rtol=4 * 2.0**-23, atol=0)
    np.testing.assert_allclose(d[1], np.cosh(x64), rtol=4 * 2.0**-23, atol=0)


# Our float32 erf, erfc, arctan and arcsinh (shared by the CPU and the GPU): measured worst cases
# on this grid are 2.4, 3.9, 1.8 and 3.3 ulp (4.2 for erfc on denser grids).
@pytest.mark.parametrize("name, ref, max_ulp", [("erf", scipy.special.erf, 3), ("erfc", scipy.special.erfc, 5),
                                                ("arctan", np.arctan, 2), ("arcsinh", np.arcsinh, 4)])
def test_float32_functions_are_within_a_few_ulp(name, ref, max_ulp):
    x = np.concatenate([np.linspace(-11, 11, 400001), np.geomspace(1e-38, 1e38, 40001)])
    x = np.concatenate([x, -x]).astype(np.float32)
    got = aq.evaluate(f"{name}(x)", x)[0].astype(np.float64)
    want = ref(x.astype(np.float64))
    ulp = np.spacing(np.maximum(np.abs(want), np.finfo(np.float32).tiny).astype(np.float32)).astype(np.float64)
    err = np.abs(got - want) / ulp  # subnormal results count in units of the smallest subnormal
    assert err.max() <= max_ulp, (name, float(err.max()), float(x[err.argmax()]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bessel_results_do_not_depend_on_their_neighbours(dtype):
    # The CPU sums the Bessel series for a block of elements at once, until the slowest element
    # has converged: an element's bits must not depend on which others share its block.
    x = np.array([0.0, -0.0, 1e-30, 1e-3, 0.5, -3.0, 7.5, 24.999, 25.0, -25.0, 40.0, np.inf, -np.inf, np.nan], dtype)
    names = ["bessel_i0e(x)", "bessel_i1e(x)"]
    values, derivs = aq.evaluate_grad(names, x)
    bits = np.uint32 if dtype == np.float32 else np.uint64
    for i in range(len(x)):
        alone_v, alone_d = aq.evaluate_grad(names, x[i:i + 1])
        np.testing.assert_array_equal(values[:, i:i + 1].view(bits), alone_v.view(bits), err_msg=str(x[i]))
        np.testing.assert_array_equal(derivs[:, i:i + 1].view(bits), alone_d.view(bits), err_msg=str(x[i]))
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(values, [scipy.special.i0e(x), scipy.special.i1e(x)], rtol=RTOL[dtype],
                                   atol=TINY[dtype], equal_nan=True)


def expressions(max_depth=3):
    leaf = st.just("x")

    def extend(children):
        unary = st.builds(lambda op, a: f"{op}({a})", st.sampled_from(aq.UNARY_OPS), children)
        binary = st.builds(lambda op, a, b: f"{op}({a},{b})", st.sampled_from(aq.BINARY_OPS), children, children)
        nary = st.builds(lambda op, args: f"{op}({','.join(args)})", st.sampled_from(aq.NARY_OPS),
                         st.lists(children, min_size=2, max_size=4))
        return unary | binary | nary

    return st.recursive(leaf, extend, max_leaves=6)


def _stable(ref, nearby, rtol):
    """Where a reference barely moves when x moves by an ulp or two: elsewhere the expression is
    ill-conditioned in float64 (say x / i1e(x) near 0, where two terms of 2e30 cancel), and two
    correct implementations may legitimately differ there."""
    with np.errstate(invalid="ignore"):
        same = [(np.isnan(ref) & np.isnan(r)) | (ref == r) | (np.abs(ref - r) <= rtol * np.abs(ref)) for r in nearby]
    return np.logical_and.reduce(same)


@given(st.lists(expressions(), min_size=1, max_size=6))
def test_random_nested_expressions_match_reference_in_float64(names):
    # values against numpy/scipy (torch's gelu loses the left tail to 1 + erf), derivatives
    # against torch autograd; both at the points where the expression is well-conditioned
    x = inputs(np.float64, n=200, seed=3)
    nearby = [np.nextafter(np.nextafter(x, np.inf), np.inf), np.nextafter(np.nextafter(x, -np.inf), -np.inf)]
    values, derivs = aq.evaluate_grad(names, x)
    for k, name in enumerate(names):
        ref_v = evaluate_numpy(name, x)
        ref_d = evaluate_grad_torch(name, x)[1].numpy()
        ok_v = _stable(ref_v, [evaluate_numpy(name, xn) for xn in nearby], 1e-9)
        ok_d = _stable(ref_d, [evaluate_grad_torch(name, xn)[1].numpy() for xn in nearby], 1e-7)
        np.testing.assert_allclose(values[k][ok_v], ref_v[ok_v], rtol=1e-9, atol=1e-300, equal_nan=True, err_msg=name)
        np.testing.assert_allclose(derivs[k][ok_d], ref_d[ok_d], rtol=1e-7, atol=1e-12, equal_nan=True, err_msg=name)


@given(st.lists(expressions(), min_size=1, max_size=8))
def test_batches_equal_one_by_one_evaluation(names):
    # Shared subexpressions and register reuse must not change any function's bits.
    x = inputs(np.float32, n=600, seed=4)
    batch = aq.evaluate(names, x)
    for k, name in enumerate(names):
        np.testing.assert_array_equal(batch[k], aq.evaluate(name, x)[0], err_msg=name)


def test_float32_batch_is_identical_across_thread_counts():
    names = aq.enumerate_schema("binary(unary(x),unary(x))", unary=["relu", "tanh", "exp", "gelu"])
    x = inputs(np.float32, n=5000)
    before = aq.num_threads()
    try:
        aq.set_num_threads(1)
        one = aq.evaluate(names, x)
        aq.set_num_threads(3)
        three = aq.evaluate(names, x)
    finally:
        aq.set_num_threads(before)
    np.testing.assert_array_equal(one, three)
