// Float32 elementary functions written as straight-line code (no calls, no branches), so that
// the CPU loops vectorize and the CUDA kernels compute the very same bits. Double precision
// calls the C library, whose results are the reference the float versions are tested against.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/aqf_hd.h"

namespace aqf {
namespace fm {

AQF_HD AQF_INLINE int32_t bits_of(float x) {
  int32_t i;
  memcpy(&i, &x, sizeof i);
  return i;
}
AQF_HD AQF_INLINE float float_of(int32_t i) {
  float x;
  memcpy(&x, &i, sizeof x);
  return x;
}

// Horner's rule, highest coefficient first: ((c0 z + c1) z + c2) ..., one rounding per operation
// in this order (no FMA), so the CPU and the GPU round alike.
template <class T>
AQF_HD AQF_INLINE T horner(T, T c) {
  return c;
}
template <class T, class... Rest>
AQF_HD AQF_INLINE T horner(T z, T c0, T c1, Rest... rest) {
  return horner<T>(z, c0 * z + c1, rest...);
}

constexpr float kInf = __builtin_huge_valf();
constexpr float kLn2Hi = 0.693145751953125f;     // few mantissa bits: n * kLn2Hi is exact
constexpr float kLn2Lo = 1.428606765330187e-06f;
constexpr float kLog2e = 1.44269504088896341f;

// exp(x) * 2^k for k in {-1, 0}: x = n*ln2 + r with |r| <= ln2/2, a degree-7 Taylor polynomial
// for e^r (error below 2^-24 on that range), then 2^(n+k) applied in two halves so that results
// down to the subnormals round once and results past the float range overflow to inf.
AQF_HD AQF_INLINE float exp_scaled_f32(float x, int32_t k) {
  // Clamps are written as selects: fminf/fmaxf's NaN rules keep loops from vectorizing.
  const float xc = x < -104.0f ? -104.0f : (x > 90.0f ? 90.0f : x);
  const float n = floorf(xc * kLog2e + 0.5f);
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  const float p = horner(r, 1.0f / 5040.0f, 1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f, 1.0f / 6.0f, 0.5f, 1.0f, 1.0f);
  const int32_t ni = static_cast<int32_t>(n) + k;
  const int32_t n1 = ni >> 1;
  const int32_t n2 = ni - n1;
  float y = p * float_of((n1 + 127) << 23) * float_of((n2 + 127) << 23);
  y = x < -103.97208f ? 0.0f : y;
  return x != x ? x : y;
}

AQF_HD AQF_INLINE float exp_f32(float x) { return exp_scaled_f32(x, 0); }

// expm1 on |x| < 0.5 by its Taylor series, where exp(x) - 1 would cancel.
AQF_HD AQF_INLINE float expm1_small_f32(float x) {
  const float p =
      horner(x, 1.0f / 40320.0f, 1.0f / 5040.0f, 1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f, 1.0f / 6.0f, 0.5f);
  return x + (x * x) * p;
}

AQF_HD AQF_INLINE float expm1_f32(float x) {
  return fabsf(x) < 0.5f ? expm1_small_f32(x) : exp_f32(x) - 1.0f;
}

// log(x): x = 2^e * m with m in [sqrt(1/2), sqrt(2)), log(m) = 2 atanh(s), s = (m-1)/(m+1),
// |s| <= 0.172, whose odd series converges to float precision by s^11.
AQF_HD AQF_INLINE float log_f32(float x) {
  const bool subnormal = x < 1.17549435e-38f;
  const float xs = subnormal ? x * 8388608.0f : x;
  const int32_t ib = bits_of(xs);
  int32_t e = ((ib >> 23) & 0xff) - 127 - (subnormal ? 23 : 0);
  float m = float_of((ib & 0x007fffff) | 0x3f800000);
  const bool high = m > 1.41421356f;
  m = high ? m * 0.5f : m;
  e = high ? e + 1 : e;
  const float s = (m - 1.0f) / (m + 1.0f);
  const float z = s * s;
  const float p = horner(z, 1.0f / 11.0f, 1.0f / 9.0f, 1.0f / 7.0f, 1.0f / 5.0f, 1.0f / 3.0f);
  const float log_m = 2.0f * s + (2.0f * s) * (z * p);
  const float ef = static_cast<float>(e);
  float y = ef * kLn2Hi + (log_m + ef * kLn2Lo);
  y = x == 0.0f ? -kInf : y;
  y = x < 0.0f ? __builtin_nanf("") : y;
  y = x == kInf ? kInf : y;
  return x != x ? x : y;
}

// log1p(x) = log(u) * x / (u - 1) with u = 1 + x: the quotient corrects the rounding of u.
AQF_HD AQF_INLINE float log1p_f32(float x) {
  const float u = 1.0f + x;
  const float lu = log_f32(u);
  const float y = u == 1.0f ? x : lu * (x / (u - 1.0f));
  return u == kInf ? lu : y;
}

// tanh(|x|) = -t / (t + 2) with t = expm1(-2|x|) near 0 (no cancellation), and 1 - 2 / (e^2|x| + 1)
// beyond 0.55, which keeps the last bits of results just below 1 (e^2|x| = inf gives 1).
AQF_HD AQF_INLINE float tanh_f32(float x) {
  const float a = fabsf(x);
  const float t = expm1_f32(-2.0f * a);
  const float near_zero = -t / (t + 2.0f);
  const float far = 1.0f - 2.0f / (exp_f32(2.0f * a) + 1.0f);
  return copysignf(a < 0.55f ? near_zero : far, x);
}

// sigmoid from e = exp(-|x|) <= 1, which cannot overflow: 1/(1+e) or e/(1+e) by sign.
AQF_HD AQF_INLINE float sigmoid_f32(float x) {
  const float e = exp_f32(-fabsf(x));
  const float q = 1.0f / (1.0f + e);
  return x >= 0.0f ? q : e * q;
}

// sinh and cosh from h = e^|x| / 2, one exponential: h -+ 1/(4h). h stays finite up to the end
// of the float range, where e^|x| alone would overflow first. Below 0.5, sinh uses the expm1
// series, as h - 1/(4h) would cancel.
AQF_HD AQF_INLINE float sinh_f32(float x) {
  const float a = fabsf(x);
  const float h = exp_scaled_f32(a, -1);
  const float em = expm1_small_f32(a);
  const float y = a < 0.5f ? 0.5f * (em + em / (em + 1.0f)) : h - 0.25f / h;
  return copysignf(y, x);
}

AQF_HD AQF_INLINE float cosh_f32(float x) {
  const float h = exp_scaled_f32(fabsf(x), -1);
  return h + 0.25f / h;
}

// Derivatives of sinh and cosh from the other's value, which the backward pass already holds:
// no exponential. sinh(x) from c = cosh(x): the odd Taylor series below |x| = 1, where c - 1
// would cancel (its first omitted term is under 2^-32 of the sum), sqrt((c - 1)(c + 1)) above,
// within a few ulp (c - 1 is exact up to c = 2); past c = 2^12, sqrt(c^2 - 1) rounds to c.
AQF_HD AQF_INLINE float sinh_given_cosh_f32(float x, float c) {
  const float a = fabsf(x);
  const float z = a * a;
  const float p =
      horner(z, 1.0f / 6227020800.0f, 1.0f / 39916800.0f, 1.0f / 362880.0f, 1.0f / 5040.0f, 1.0f / 120.0f, 1.0f / 6.0f);
  const float series = a + a * (z * p);
  const float root = c > 4096.0f ? c : sqrtf((c - 1.0f) * (c + 1.0f));
  return copysignf(a < 1.0f ? series : root, x);
}

// cosh(x) from s = sinh(x): sqrt(1 + s^2) never cancels; past |s| = 2^12 it rounds to |s|.
AQF_HD AQF_INLINE float cosh_given_sinh_f32(float s) {
  const float a = fabsf(s);
  return a > 4096.0f ? a : sqrtf(1.0f + a * a);
}

// atan: |x| is reduced to |u| <= tan(pi/8) around 0, pi/4 or pi/2 (u = a, (a - 1)/(a + 1) or
// -1/a), then atan(u) = u + u z P(z), z = u^2, P a degree-4 least-squares fit (relative error
// 2.4e-9). The base angle is added as hi + lo, so the sum rounds once.
AQF_HD AQF_INLINE float atan_f32(float x) {
  const float a = fabsf(x);
  const bool far = a > 2.41421356f;   // tan(3 pi / 8)
  const bool mid = a > 0.414213562f;  // tan(pi / 8)
  const float u = far ? -1.0f / a : (mid ? (a - 1.0f) / (a + 1.0f) : a);
  const float base_hi = far ? 1.57079637f : (mid ? 0.785398185f : 0.0f);
  const float base_lo = far ? -4.37113900e-08f : (mid ? -2.18556950e-08f : 0.0f);
  const float z = u * u;
  const float p = horner(z, -0.06448927f, 0.10742694f, -0.14263843f, 0.19999537f, -0.3333333f);
  return copysignf(base_hi + (u + (u * (z * p) + base_lo)), x);
}

// asinh(|x|) = log1p(a + a^2 / (1 + sqrt(1 + a^2))): no cancellation, and exact for tiny a. Past
// 2^12, where 1 + a^2 rounds to a^2 (and the square overflows later), log(a) + log(2).
AQF_HD AQF_INLINE float asinh_f32(float x) {
  const float a = fabsf(x);
  const float near = log1p_f32(a + a * a / (1.0f + sqrtf(1.0f + a * a)));
  const float far = log_f32(a) + 0.693147182f;
  return copysignf(a > 4096.0f ? far : near, x);
}

// erf(a) on [0, 0.5]: a Q(a^2), Q a degree-4 least-squares fit of erf(a)/a (relative error 1.4e-9).
AQF_HD AQF_INLINE float erf_small_f32(float a) {
  return a * horner(a * a, 0.0047175675f, -0.026756972f, 0.112828195f, -0.37612608f, 1.1283791f);
}

// erfc(a) for a >= 0.5 as exp(-a^2) erfcx(a), where erfcx(a) (1 + 2a) is a degree-10
// least-squares fit in t = (a - 2)/(a + 2) (relative error 6e-10 on [0.5, 10.5]). a^2 is split
// into ah^2, exact (ah keeps a's upper 12 bits), and a small rest, so that exp(-a^2) keeps its
// digits. Past 10.5 erfc is below the smallest float: a is clamped there, inf included.
AQF_HD AQF_INLINE float erfc_large_f32(float a) {
  const float ac = a < 10.5f ? a : 10.5f;
  const float t = (ac - 2.0f) / (ac + 2.0f);
  const float fit = horner(t, 0.00023885145f, -0.00032162716f, -0.0014897989f, 0.0012237781f, 0.008733497f,
                           -0.00802624f, -0.05422141f, 0.16405074f, -0.16603033f, -0.09276382f, 1.2769784f);
  const float erfcx = fit / (1.0f + 2.0f * ac);
  const float ah = float_of(bits_of(ac) & static_cast<int32_t>(0xfffff000u));
  const float al = ac - ah;
  const float rest = (2.0f * ah + al) * al;  // a^2 - ah^2
  return (erfcx * exp_f32(-rest)) * exp_f32(-(ah * ah));
}

AQF_HD AQF_INLINE float erf_f32(float x) {
  const float a = fabsf(x);
  const float y = a < 0.5f ? erf_small_f32(a) : 1.0f - erfc_large_f32(a);
  return x != x ? x : copysignf(y, x);
}

AQF_HD AQF_INLINE float erfc_f32(float x) {
  const float a = fabsf(x);
  const float c = erfc_large_f32(a);
  const float y = a < 0.5f ? 1.0f - copysignf(erf_small_f32(a), x) : (x > 0.0f ? c : 2.0f - c);
  return x != x ? x : y;
}

AQF_HD AQF_INLINE int64_t bits_of(double x) {
  int64_t i;
  memcpy(&i, &x, sizeof i);
  return i;
}
AQF_HD AQF_INLINE double double_of(int64_t i) {
  double x;
  memcpy(&x, &i, sizeof x);
  return x;
}

// log(x) for a positive, finite, normal double, to ~1e-16 relative: x = 2^e m with m in
// [sqrt(1/2), sqrt(2)), log(m) = 2 atanh(s), s = (m-1)/(m+1), odd series to s^15. The exponent
// moves to a double by bit tricks only, which keeps callers' loops vectorizable.
AQF_HD AQF_INLINE double log_positive_f64(double x) {
  const int64_t ib = bits_of(x);
  const double biased = double_of(0x4330000000000000LL | ((ib >> 52) & 0x7ff)) - 4503599627370496.0;
  double m = double_of((ib & 0x000fffffffffffffLL) | 0x3ff0000000000000LL);
  const bool high = m > 1.4142135623730951;
  m = high ? m * 0.5 : m;
  const double e = biased - 1023.0 + (high ? 1.0 : 0.0);
  const double s = (m - 1.0) / (m + 1.0);
  const double z = s * s;
  const double q = horner(z, 1.0 / 15.0, 1.0 / 13.0, 1.0 / 11.0, 1.0 / 9.0, 1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0);
  return e * 0.6931471805599453 + (2.0 * s + (2.0 * s) * (z * q));
}

// exp(t) for t in [-110, 90] (the range whose results a float can hold), to ~1e-13 relative:
// t = n ln2 + r, |r| <= ln2/2, Taylor to r^10. Adding 1.5*2^52 rounds t/ln2 to the integer n
// and leaves n in the low mantissa bits, whence 2^n is built without a conversion.
AQF_HD AQF_INLINE double exp_bounded_f64(double t) {
  const double shifted = t * 1.4426950408889634 + 6755399441055744.0;
  const double n = shifted - 6755399441055744.0;
  const double r = (t - n * 0.693147180369123816490) - n * 1.90821492927058770002e-10;
  const double p = horner(r, 1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0,
                          1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0);
  const int64_t ni = bits_of(shifted) - bits_of(6755399441055744.0);
  return p * double_of((ni + 1023) << 52);
}

// pow(a, b) for float32 with the special cases of IEEE powf: |a|^b = exp(b log|a|) in double,
// whose ~1e-13 error is far below float rounding (float subnormals are normal doubles).
AQF_HD AQF_INLINE float pow_f32(float af, float bf) {
  const double a = af, b = bf;
  const double ax = fabs(a);
  const double bl = b * log_positive_f64(ax);
  double y = exp_bounded_f64(bl < -110.0 ? -110.0 : (bl > 90.0 ? 90.0 : bl));
  const double inf = __builtin_huge_val();
  y = ax == 0.0 ? (b < 0.0 ? inf : 0.0) : y;
  y = ax == inf ? (b < 0.0 ? 0.0 : inf) : y;
  const double b_floor = floor(b);
  const bool b_integer = b == b_floor;
  const double half = 0.5 * b_floor;  // exact; every float beyond 2^24 is an even integer
  const bool b_odd = b_integer && fabs(b) < 16777216.0 && floor(half) != half;
  y = (bits_of(a) < 0 && b_odd) ? -y : y;
  y = (a < 0.0 && a > -inf && !b_integer) ? __builtin_nan("") : y;
  y = (ax == 1.0 && fabs(b) == inf) ? 1.0 : y;
  y = (a != a || b != b) ? a + b : y;
  y = (b == 0.0 || a == 1.0) ? 1.0 : y;
  return static_cast<float>(y);
}

}  // namespace fm

// One overload set per elementary function: float -> the vectorizable code above,
// double -> the C library (reference accuracy; double is for checks, not for throughput).
AQF_HD AQF_INLINE float m_exp(float x) { return fm::exp_f32(x); }
AQF_HD AQF_INLINE double m_exp(double x) { return ::exp(x); }
AQF_HD AQF_INLINE float m_expm1(float x) { return fm::expm1_f32(x); }
AQF_HD AQF_INLINE double m_expm1(double x) { return ::expm1(x); }
AQF_HD AQF_INLINE float m_log(float x) { return fm::log_f32(x); }
AQF_HD AQF_INLINE double m_log(double x) { return ::log(x); }
AQF_HD AQF_INLINE float m_log1p(float x) { return fm::log1p_f32(x); }
AQF_HD AQF_INLINE double m_log1p(double x) { return ::log1p(x); }
AQF_HD AQF_INLINE float m_tanh(float x) { return fm::tanh_f32(x); }
AQF_HD AQF_INLINE double m_tanh(double x) { return ::tanh(x); }
AQF_HD AQF_INLINE float m_sinh(float x) { return fm::sinh_f32(x); }
AQF_HD AQF_INLINE double m_sinh(double x) { return ::sinh(x); }
AQF_HD AQF_INLINE float m_cosh(float x) { return fm::cosh_f32(x); }
AQF_HD AQF_INLINE double m_cosh(double x) { return ::cosh(x); }
// (x, the other function's value at x): float from that value, double from the C library.
AQF_HD AQF_INLINE float m_sinh_given_cosh(float x, float c) { return fm::sinh_given_cosh_f32(x, c); }
AQF_HD AQF_INLINE double m_sinh_given_cosh(double x, double) { return ::sinh(x); }
AQF_HD AQF_INLINE float m_cosh_given_sinh(float, float s) { return fm::cosh_given_sinh_f32(s); }
AQF_HD AQF_INLINE double m_cosh_given_sinh(double x, double) { return ::cosh(x); }
AQF_HD AQF_INLINE float m_sigmoid(float x) { return fm::sigmoid_f32(x); }
AQF_HD AQF_INLINE double m_sigmoid(double x) {
  const double e = ::exp(-::fabs(x));
  return x >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}
AQF_HD AQF_INLINE float m_erf(float x) { return fm::erf_f32(x); }
AQF_HD AQF_INLINE double m_erf(double x) { return ::erf(x); }
AQF_HD AQF_INLINE float m_erfc(float x) { return fm::erfc_f32(x); }
AQF_HD AQF_INLINE double m_erfc(double x) { return ::erfc(x); }
AQF_HD AQF_INLINE float m_atan(float x) { return fm::atan_f32(x); }
AQF_HD AQF_INLINE double m_atan(double x) { return ::atan(x); }
AQF_HD AQF_INLINE float m_asinh(float x) { return fm::asinh_f32(x); }
AQF_HD AQF_INLINE double m_asinh(double x) { return ::asinh(x); }
AQF_HD AQF_INLINE float m_pow(float a, float b) { return fm::pow_f32(a, b); }
AQF_HD AQF_INLINE double m_pow(double a, double b) { return ::pow(a, b); }
AQF_HD AQF_INLINE float m_sqrt(float x) { return ::sqrtf(x); }
AQF_HD AQF_INLINE double m_sqrt(double x) { return ::sqrt(x); }

}  // namespace aqf
