// Every operator of the expression language: its value f and its vector-Jacobian product b (the
// gradient of its input given the gradient g of its output), written once for the CPU loops and
// the CUDA kernels. Each b is the backward formula torch autograd applies to the same expression
// built from torch ops, in the same order of operations: so kinks (relu'(0) = 0), ties (maximum
// splits a tie in halves) and the way 0 and inf propagate all agree with torch. NaN operands are
// the exception (nan_operand_vjp below). Sinh and Cosh differ in arithmetic only: each takes the
// other function from its own value (fastmath.h).
#pragma once
#include <cstdint>

#include "common/aqf_hd.h"
#include "common/bessel.h"
#include "common/fastmath.h"

// X-macros: (ENUM, Struct, "name"). The order is the public order of SPEC section 2.
#define AQF_UNARY_OPS(M)                                                                     \
  M(ZERO, Zero, "zero") M(ONE, One, "one") M(IDENTITY, Identity, "identity")                 \
  M(NEGATIVE, Negative, "negative") M(ABS, Abs, "abs") M(RECIPROCAL, Reciprocal, "reciprocal") \
  M(SQUARE, Square, "square") M(EXP, Exp, "exp") M(ERF, Erf, "erf") M(ERFC, Erfc, "erfc")     \
  M(SINH, Sinh, "sinh") M(COSH, Cosh, "cosh") M(TANH, Tanh, "tanh") M(EXPM1, Expm1, "expm1") \
  M(SIGMOID, Sigmoid, "sigmoid") M(LOG_SIGMOID, LogSigmoid, "log_sigmoid")                   \
  M(ARCSINH, Arcsinh, "arcsinh") M(ARCTAN, Arctan, "arctan")                                 \
  M(BESSEL_I0E, BesselI0e, "bessel_i0e") M(BESSEL_I1E, BesselI1e, "bessel_i1e")              \
  M(RELU, Relu, "relu") M(ELU, Elu, "elu") M(SELU, Selu, "selu") M(SWISH, Swish, "swish")    \
  M(SOFTPLUS, Softplus, "softplus") M(SOFTSIGN, Softsign, "softsign")                        \
  M(HARD_SIGMOID, HardSigmoid, "hard_sigmoid") M(ELISH, Elish, "elish")                      \
  M(LEAKYRELU, LeakyRelu, "leakyrelu") M(MISH, Mish, "mish") M(GELU, Gelu, "gelu")
#define AQF_BINARY_OPS(M)                                                                    \
  M(ADD, Add, "add") M(SUB, Sub, "sub") M(MUL, Mul, "mul") M(DIV, Div, "div")                \
  M(POW, Pow, "pow") M(MAX, Max, "max") M(MIN, Min, "min")
#define AQF_NARY_OPS(M) \
  M(SUM_N, SumN, "sum_n") M(PROD_N, ProdN, "prod_n") M(MAX_N, MaxN, "max_n") M(MIN_N, MinN, "min_n")

namespace aqf {

enum OpCode : int32_t {
#define AQF_ENUM(E, C, S) OP_##E,
  AQF_UNARY_OPS(AQF_ENUM) AQF_BINARY_OPS(AQF_ENUM) AQF_NARY_OPS(AQF_ENUM)
#undef AQF_ENUM
  OP_COUNT
};
constexpr int32_t kFirstBinary = OP_ADD;
constexpr int32_t kFirstNary = OP_SUM_N;

namespace op {

constexpr double kSeluScale = 1.0507009873554805;
constexpr double kSeluAlpha = 1.6732632423543772;
constexpr double kTwoOverSqrtPi = 1.1283791670955126;
constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;

template <class T>
AQF_HD AQF_INLINE T sgn(T x) {  // torch.sgn for reals: 0 at 0 and at NaN
  return static_cast<T>((x > T(0)) - (x < T(0)));
}
template <class T>
AQF_HD AQF_INLINE T max_nan(T a, T b) {  // torch.maximum: NaN wins
  return (a != a || b != b) ? a + b : (a > b ? a : b);
}
template <class T>
AQF_HD AQF_INLINE T min_nan(T a, T b) {
  return (a != a || b != b) ? a + b : (a < b ? a : b);
}

// ---- unary ------------------------------------------------------------------------------
struct Zero {
  template <class T> AQF_HD AQF_INLINE static T f(T) { return T(0); }
  template <class T> AQF_HD AQF_INLINE static T b(T, T, T) { return T(0); }  // zeros_like: no gradient path
};
struct One {
  template <class T> AQF_HD AQF_INLINE static T f(T) { return T(1); }
  template <class T> AQF_HD AQF_INLINE static T b(T, T, T) { return T(0); }
};
struct Identity {
  template <class T> AQF_HD AQF_INLINE static T f(T x) { return x; }
  template <class T> AQF_HD AQF_INLINE static T b(T, T, T g) { return g; }
};
struct Negative {
  template <class T> AQF_HD AQF_INLINE static T f(T x) { return -x; }
  template <class T> AQF_HD AQF_INLINE static T b(T, T, T g) { return -g; }
};
struct Abs {
  template <class T> AQF_HD AQF_INLINE static T f(T x) { return x < T(0) ? -x : (x == T(0) ? T(0) : x); }
  template <class T> AQF_HD AQF_INLINE static T b(T x, T, T g) { return g * sgn(x); }
};
struct Reciprocal {
  template <class T> AQF_HD AQF_INLINE static T f(T x) { return T(1) / x; }
  template <class T> AQF_HD AQF_INLINE static T b(T, T y, T g) { return -g * (y * y); }
};
struct Square {
  template <class T> AQF_HD AQF_INLINE static T f(T x) { return x * x; }
  template <class T> AQF_HD AQF_INLINE static T b(T x, T, T g) { return g * (T(2) * x); }
};
struct Exp {
  template <class T> AQF_HD AQF_INLINE static T f(T x) { return m_exp(x); }
  template <class T> AQF_HD AQF_INLINE static T b(T, T y, T g) { return g * y; }
};
struct Erf {
  template <class T> AQF_HD AQF_INLINE static T f(T x) { return m_erf(x); }
  template <class T> AQF_HD AQF_INLINE static T b(T x, T, T g) { return (T(kTwoOverSqrtPi) * m_exp(-(x * x))) * g; }
};
struct Erfc {
  template <class T> AQF_HD AQF_INLINE static T f(T x) { return m_erfc(x); }
  template <class T> AQF_HD AQF_INLINE static T b(T x, T, T g) { return (T(-kTwoOverSqrtPi) * m_exp(-(x * x))) * g; }
};
struct Sinh {
  template <class T> AQF_HD AQF_INLINE static T f(T x) { return m_sinh(x); }
  template <class T> AQF_HD AQF_INLINE static T b(T x, T y, T g) { return g * m_cosh_given_sinh(x, y); }
};
struct Cosh {
  template <class T> AQF_HD AQF_INLINE static T f(T x) { return m_cosh(x); }
  template <class T> AQF_HD AQF_INLINE static T b(T x, T y, T g) { return g * m_sinh_given_cosh(x, y); }
};
struct Tanh {
  template <class T> AQF_HD AQF_INLINE static T f(T x) { return m_tanh(x); }
  template <class T> AQF_HD AQF_INLINE static T b(T, T y, T g) { return g * (T(1) - y * y); }
};
struct Expm1 {
  template <class T> AQF_HD AQF_INLINE static T f(T x) { return m_expm1(x); }
  template <class T> AQF_HD AQF_INLINE static T b(T, T y, T g) { return g * (y + T(1)); }
};
struct Sigmoid {
  template <class T> AQF_HD AQF_INLINE static T f(T x) { return m_sigmoid(x); }
  template <class T> AQF_HD AQF_INLINE static T b(T, T y, T g) { return (g * (T(1) - y)) * y; }
};
struct LogSigmoid {  // -softplus(-x), stably: min(x, 0) - log1p(exp(-|x|))
  template <class T> AQF_HD AQF_INLINE static T f(T x) {
    return (x < T(0) ? x : T(0)) - m_log1p(m_exp(-(x < T(0) ? -x : x)));
  }
  template <class T> AQF_HD AQF_INLINE static T b(T x, T, T g) {  // torch's log_sigmoid_backward
    const bool negative = x < T(0);
    const T z = m_exp(-(x < T(0) ? -x : x));
    return g * ((negative ? T(1) : T(0)) - (negative ? T(1) : T(-1)) * (z / (T(1) + z)));
  }
};
struct Arcsinh {
  template <class T> AQF_HD AQF_INLINE static T f(T x) { return m_asinh(x); }
  template <class T> AQF_HD AQF_INLINE static T b(T x, T, T g) { return g * (T(1) / m_sqrt(x * x + T(1))); }
};
struct Arctan {
  template <class T> AQF_HD AQF_INLINE static T f(T x) { return m_atan(x); }
  template <class T> AQF_HD AQF_INLINE static T b(T x, T, T g) { return g / (x * x + T(1)); }
};
// The b of the Bessel functions needs the other order's value: b_given takes it (the CPU loops
// compute it for a whole block, cpu/bessel_block.h), b computes it.
struct BesselI0e {
  template <class T> AQF_HD AQF_INLINE static T f(T x) { return static_cast<T>(bessel_i0e<T>(static_cast<double>(x))); }
  template <class T> AQF_HD AQF_INLINE static T b_given(T x, T y, T g, T i1e) { return g * (i1e - sgn(x) * y); }
  template <class T> AQF_HD AQF_INLINE static T b(T x, T y, T g) {
    return b_given(x, y, g, static_cast<T>(bessel_i1e<T>(static_cast<double>(x))));
  }
};
struct BesselI1e {
  template <class T> AQF_HD AQF_INLINE static T f(T x) { return static_cast<T>(bessel_i1e<T>(static_cast<double>(x))); }
  template <class T> AQF_HD AQF_INLINE static T b_given(T x, T y, T g, T i0e) {
    // torch replaces |x| <= epsilon by the limit 0.5 at 0
    const T eps = sizeof(T) == 4 ? T(1.1920928955078125e-07) : T(2.220446049250313e-16);
    return (x > eps || x < -eps) ? g * (i0e - y * (sgn(x) + T(1) / x)) : g * T(0.5);
  }
  template <class T> AQF_HD AQF_INLINE static T b(T x, T y, T g) {
    return b_given(x, y, g, static_cast<T>(bessel_i0e<T>(static_cast<double>(x))));
  }
};
struct Relu {
  // torch.relu keeps NaN and -0
  template <class T> AQF_HD AQF_INLINE static T f(T x) { return x < T(0) ? T(0) : x; }
  template <class T> AQF_HD AQF_INLINE static T b(T, T y, T g) { return y <= T(0) ? T(0) : g; }  // threshold_backward on the result
};
struct Elu {
  template <class T> AQF_HD AQF_INLINE static T f(T x) { return x > T(0) ? x : (x != x ? x : m_expm1(x)); }
  // e^x = y + 1 on the negative side: the result saves a second exponential
  template <class T> AQF_HD AQF_INLINE static T b(T x, T y, T g) { return x > T(0) ? g : g * (y + T(1)); }
};
struct Selu {
  template <class T> AQF_HD AQF_INLINE static T f(T x) {
    return x > T(0) ? T(kSeluScale) * x : (x != x ? x : T(kSeluScale) * (T(kSeluAlpha) * m_expm1(x)));
  }
  template <class T> AQF_HD AQF_INLINE static T b(T x, T y, T g) {  // scale alpha e^x = y + scale alpha
    return x > T(0) ? g * T(kSeluScale) : g * (y + T(kSeluScale * kSeluAlpha));
  }
};
struct Swish {  // x * sigmoid(x)
  template <class T> AQF_HD AQF_INLINE static T f(T x) { return x * m_sigmoid(x); }
  template <class T> AQF_HD AQF_INLINE static T b(T x, T, T g) {  // mul, then sigmoid's backward
    const T s = m_sigmoid(x);
    return g * s + ((g * x) * (T(1) - s)) * s;
  }
};
struct Softplus {  // torch.nn.functional.softplus: x itself above the threshold 20
  template <class T> AQF_HD AQF_INLINE static T f(T x) {
    const T a = x < T(0) ? -x : x;
    return x > T(20) ? x : (x > T(0) ? x : T(0)) + m_log1p(m_exp(-a));
  }
  template <class T> AQF_HD AQF_INLINE static T b(T x, T, T g) {
    const T z = m_exp(x);
    return x > T(20) ? g : g * z / (z + T(1));
  }
};
struct Softsign {  // x / (1 + |x|); the tangent is torch's chain through div and abs (NaN at inf)
  template <class T> AQF_HD AQF_INLINE static T f(T x) { return x / (T(1) + (x < T(0) ? -x : x)); }
  template <class T> AQF_HD AQF_INLINE static T b(T x, T, T g) {
    const T q = (x < T(0) ? -x : x) + T(1);
    return g / q + (-g * ((x / q) / q)) * sgn(x);
  }
};
struct HardSigmoid {  // clamp(0.2 x + 0.5, 0, 1), the Keras 2 form
  template <class T> AQF_HD AQF_INLINE static T f(T x) {
    const T t = T(0.2) * x + T(0.5);
    return t != t ? t : (t < T(0) ? T(0) : (t > T(1) ? T(1) : t));
  }
  template <class T> AQF_HD AQF_INLINE static T b(T x, T, T g) {
    const T t = T(0.2) * x + T(0.5);
    return ((t >= T(0) && t <= T(1)) ? g : T(0)) * T(0.2);
  }
};
struct Elish {  // x sigmoid(x) for x > 0, (e^x - 1) sigmoid(x) otherwise
  template <class T> AQF_HD AQF_INLINE static T f(T x) { return (x > T(0) ? x : m_expm1(x)) * m_sigmoid(x); }
  // torch form: where(x > 0, x, expm1(clamp(x, max=0))) * sigmoid(x), the clamp keeping the
  // unselected branch's gradient finite.
  template <class T> AQF_HD AQF_INLINE static T b(T x, T, T g) {
    const T s = m_sigmoid(x);
    const T v = x > T(0) ? x : m_expm1(x);
    const T gv = g * s;
    return (x > T(0) ? gv : gv * m_exp(x)) + ((g * v) * (T(1) - s)) * s;
  }
};
struct LeakyRelu {
  template <class T> AQF_HD AQF_INLINE static T f(T x) { return x > T(0) ? x : x * T(0.01); }
  template <class T> AQF_HD AQF_INLINE static T b(T x, T, T g) { return x > T(0) ? g : g * T(0.01); }
};
struct Mish {  // x tanh(softplus(x))
  template <class T> AQF_HD AQF_INLINE static T f(T x) { return x * m_tanh(Softplus::f(x)); }
  template <class T> AQF_HD AQF_INLINE static T b(T x, T, T g) {
    const T t = m_tanh(Softplus::f(x));
    return g * (t + x * m_sigmoid(x) * (T(1) - t * t));
  }
};
struct Gelu {  // exact form x Phi(x), Phi through erfc so the left tail keeps its digits
  template <class T> AQF_HD AQF_INLINE static T f(T x) { return x * (T(0.5) * m_erfc(-x * T(kInvSqrt2))); }
  template <class T> AQF_HD AQF_INLINE static T b(T x, T, T g) {
    const T cdf = T(0.5) * m_erfc(-x * T(kInvSqrt2));
    const T pdf = T(kInvSqrt2Pi) * m_exp(T(-0.5) * (x * x));
    return g * (cdf + x * pdf);
  }
};

// ---- binary: f(a, b); b(a, b, y, g, ga, gb) sets the gradients of both operands ------------
struct Add {
  template <class T> AQF_HD AQF_INLINE static T f(T a, T b) { return a + b; }
  template <class T> AQF_HD AQF_INLINE static void b(T, T, T, T g, T& ga, T& gb) {
    ga = g;
    gb = g;
  }
};
struct Sub {
  template <class T> AQF_HD AQF_INLINE static T f(T a, T b) { return a - b; }
  template <class T> AQF_HD AQF_INLINE static void b(T, T, T, T g, T& ga, T& gb) {
    ga = g;
    gb = -g;
  }
};
struct Mul {
  template <class T> AQF_HD AQF_INLINE static T f(T a, T b) { return a * b; }
  template <class T> AQF_HD AQF_INLINE static void b(T a, T b, T, T g, T& ga, T& gb) {
    ga = g * b;
    gb = g * a;
  }
};
struct Div {
  template <class T> AQF_HD AQF_INLINE static T f(T a, T b) { return a / b; }
  template <class T> AQF_HD AQF_INLINE static void b(T a, T b, T, T g, T& ga, T& gb) {
    ga = g / b;
    gb = -g * ((a / b) / b);
  }
};
struct Pow {  // torch.pow's gradient: 0 for the base where b == 0, 0 for b where a == 0 and b >= 0
  template <class T> AQF_HD AQF_INLINE static T f(T a, T b) { return m_pow(a, b); }
  template <class T> AQF_HD AQF_INLINE static void b(T a, T b, T y, T g, T& ga, T& gb) {
    ga = b == T(0) ? T(0) : g * (b * m_pow(a, b - T(1)));
    gb = g * ((a == T(0) && b >= T(0)) ? T(0) : y * m_log(a));
  }
};
struct Max {  // torch.maximum: NaN propagates; a tie splits the gradient in halves
  template <class T> AQF_HD AQF_INLINE static T f(T a, T b) { return max_nan(a, b); }
  template <class T> AQF_HD AQF_INLINE static void b(T a, T b, T, T g, T& ga, T& gb) {
    const T shared = a == b ? g / T(2) : g;
    ga = a < b ? T(0) : shared;
    gb = a > b ? T(0) : shared;
  }
};
struct Min {
  template <class T> AQF_HD AQF_INLINE static T f(T a, T b) { return min_nan(a, b); }
  template <class T> AQF_HD AQF_INLINE static void b(T a, T b, T, T g, T& ga, T& gb) {
    const T shared = a == b ? g / T(2) : g;
    ga = a > b ? T(0) : shared;
    gb = a < b ? T(0) : shared;
  }
};

// ---- n-ary: sum_n and prod_n fold left to right like a chain of add / mul; max_n and min_n
// are torch.amax / amin over the stacked arguments, whose backward is (g / count) * tie mask.
struct SumN {
  template <class T> AQF_HD AQF_INLINE static T fold(T acc, T a) { return acc + a; }
};
struct ProdN {
  template <class T> AQF_HD AQF_INLINE static T fold(T acc, T a) { return acc * a; }
};
struct MaxN {
  template <class T> AQF_HD AQF_INLINE static T fold(T acc, T a) { return max_nan(acc, a); }
};
struct MinN {
  template <class T> AQF_HD AQF_INLINE static T fold(T acc, T a) { return min_nan(acc, a); }
};

// ---- NaN operands ----------------------------------------------------------------------------
// torch's gradient at a NaN operand depends on which of its vector kernels the CPU selects (elu'
// at NaN is 1 on some CPUs and NaN on others), so ours does not follow it there: a NaN operand
// makes every partial derivative of the operator NaN, the NaN itself. Operators whose
// derivatives are constants keep them (zero, one, identity, negative, add, sub, sum_n): torch
// gives the same on every CPU, and x' = 1 stays true of identity(x). The backward loops and
// kernels apply this to every operator's b.
template <class Op> struct ConstantDerivative { static constexpr bool value = false; };
#define AQF_CONSTANT_DERIVATIVE(C) \
  template <> struct ConstantDerivative<C> { static constexpr bool value = true; };
AQF_CONSTANT_DERIVATIVE(Zero) AQF_CONSTANT_DERIVATIVE(One) AQF_CONSTANT_DERIVATIVE(Identity)
AQF_CONSTANT_DERIVATIVE(Negative) AQF_CONSTANT_DERIVATIVE(Add) AQF_CONSTANT_DERIVATIVE(Sub)
AQF_CONSTANT_DERIVATIVE(SumN)
#undef AQF_CONSTANT_DERIVATIVE

template <class Op, class T>
AQF_HD AQF_INLINE T nan_operand_vjp(T x, T d) {  // d: the operator's b at x
  return (!ConstantDerivative<Op>::value && x != x) ? x : d;
}
template <class Op, class T>
AQF_HD AQF_INLINE void nan_operands_vjp(T a, T b, T& ga, T& gb) {  // ga, gb: the operator's b
  const bool nan = !ConstantDerivative<Op>::value && (a != a || b != b);
  const T q = a + b;  // NaN when either is
  ga = nan ? q : ga;
  gb = nan ? q : gb;
}

// ---- n-ary vector-Jacobian products, one element at a time ---------------------------------
// load(k) reads argument k's value and acc(k, v) adds v to argument k's gradient (k < n, in
// argument order; the same node may appear as several arguments). The CPU loops and the CUDA
// kernels both call nary_vjp, so the formulas and the NaN rule exist once.
template <class T, class Load, class Acc>
AQF_HD AQF_INLINE void sum_n_vjp(int n, T g, const Load&, const Acc& acc) {
  for (int k = 0; k < n; ++k) acc(k, g);
}
// ((a0 a1) a2) ...: walking back, the running gradient r of the partial product
// p_k = a0 ... a_k gives a_k the contribution r * p_{k-1} and passes r * a_k on to p_{k-1}.
// Each prefix is recomputed from the left, as torch's chain of muls rounds it.
template <class T, class Load, class Acc>
AQF_HD AQF_INLINE void prod_n_vjp(int n, T g, const Load& load, const Acc& acc) {
  T r = g;
  for (int k = n - 1; k >= 1; --k) {
    T prefix = load(0);
    for (int j = 1; j < k; ++j) prefix *= load(j);
    acc(k, r * prefix);
    r = r * load(k);
  }
  acc(0, r);
}
// torch.amax / amin: (g / count) * (a_k == y), count the number of arguments tied with y.
template <class T, class Load, class Acc>
AQF_HD AQF_INLINE void extremum_n_vjp(int n, T y, T g, const Load& load, const Acc& acc) {
  T count = T(0);
  for (int k = 0; k < n; ++k) count += load(k) == y ? T(1) : T(0);
  for (int k = 0; k < n; ++k) acc(k, (g / count) * (load(k) == y ? T(1) : T(0)));
}

// The n-ary operator `code`'s vector-Jacobian product at one element, with the NaN rule of
// nan_operand_vjp: a NaN argument gives every argument the NaN as its contribution instead of
// the formula's (sum_n excepted: its derivatives are constants).
template <class T, class Load, class Acc>
AQF_HD AQF_INLINE void nary_vjp(int32_t code, int n, T y, T g, const Load& load, const Acc& acc) {
  if (code == OP_SUM_N) {
    static_assert(ConstantDerivative<SumN>::value, "sum_n keeps its derivatives at NaN");
    sum_n_vjp(n, g, load, acc);
    return;
  }
  T nan = T(0);
  for (int k = 0; k < n; ++k) {
    const T a = load(k);
    nan = a != a ? a : nan;
  }
  if (nan != nan) {
    for (int k = 0; k < n; ++k) acc(k, nan);
  } else if (code == OP_PROD_N) {
    prod_n_vjp(n, g, load, acc);
  } else {  // OP_MAX_N, OP_MIN_N
    extremum_n_vjp(n, y, g, load, acc);
  }
}

}  // namespace op
}  // namespace aqf
