// Exponentially scaled modified Bessel functions of the first kind, orders 0 and 1:
// i0e(x) = exp(-|x|) I0(x), i1e(x) = exp(-|x|) I1(x). Computed in double for both precisions:
// the power series (all terms positive, no cancellation) below |x| = 25, and the Hankel
// asymptotic expansion above, where its smallest term is below 1e-20 of the sum. T is the type
// the result is rounded to: see exp_neg.
#pragma once
#include <cmath>

#include "common/aqf_hd.h"
#include "common/fastmath.h"

namespace aqf {

// exp(-a) for the series, a in [0, 25]. For float results our own exponential (fastmath.h), so that
// the CPU and the GPU round alike (its relative error, under 5e-13, is far below float rounding);
// for double results the C library's, as the reference.
template <class T>
AQF_HD AQF_INLINE double exp_neg(double a) {
  return sizeof(T) == 4 ? fm::exp_bounded_f64(-a) : ::exp(-a);
}

// Where the series stops, and its step's ratio, for results rounded to T. Float results stop at
// terms below 1e-10 of the sum (what follows is far below float rounding, 6e-8) and multiply by
// the step's reciprocal instead of dividing: in the CPU loops, in float32, a function using
// bessel_i0e or bessel_i1e took 6.1 ns per value forward and 12.4 backward, against 7.4 and 17
// when float results summed to 1e-17 of the sum; of 3M values on [-30, 30], 2.5e-5 moved by one
// unit in the last place, and 5e-5 of the derivatives by up to 64 where their difference cancels
// (i1e's derivative at large |x|). Double results keep the series to the last bit.
template <class T>
AQF_HD AQF_INLINE constexpr double series_tolerance() {
  return sizeof(T) == 4 ? 1e-10 : 1e-17;
}

template <class T>
AQF_HD AQF_INLINE double series_ratio(double q, double denominator, double reciprocal) {
  return sizeof(T) == 4 ? q * reciprocal : q / denominator;
}

AQF_HD AQF_INLINE double series_denominator(int k, int order) {
  return static_cast<double>(k) * static_cast<double>(k + order);
}

template <class T>
AQF_HD AQF_INLINE double bessel_ie_series(double ax, int order) {
  // sum_k (x^2/4)^k / (k! (k+order)!), times (x/2)^order, times exp(-|x|)
  const double q = 0.25 * ax * ax;
  double term = order == 0 ? 1.0 : 0.5 * ax;
  double sum = term;
  for (int k = 1; k < 200 && term > sum * series_tolerance<T>(); ++k) {
    const double denominator = series_denominator(k, order);
    term *= series_ratio<T>(q, denominator, 1.0 / denominator);
    sum += term;
  }
  return sum * exp_neg<T>(ax);
}

AQF_HD AQF_INLINE double bessel_ie_asymptotic(double ax, int order) {
  // I_v(x) e^-x ~ (2 pi x)^-1/2 sum_k (-1)^k prod_{j<=k} (4v^2 - (2j-1)^2) / (k! (8x)^k)
  const double mu = 4.0 * order * order;
  double term = 1.0;
  double sum = 1.0;
  for (int k = 1; k < 40; ++k) {
    const double odd = 2.0 * k - 1.0;
    term *= -(mu - odd * odd) / (k * 8.0 * ax);
    sum += term;
    if (::fabs(term) < 1e-18 * ::fabs(sum)) break;
  }
  return sum / ::sqrt(2.0 * 3.141592653589793238 * ax);
}

template <class T>
AQF_HD AQF_INLINE double bessel_i0e(double x) {
  const double ax = ::fabs(x);
  if (x != x) return x;
  if (ax == __builtin_huge_val()) return 0.0;
  return ax < 25.0 ? bessel_ie_series<T>(ax, 0) : bessel_ie_asymptotic(ax, 0);
}

template <class T>
AQF_HD AQF_INLINE double bessel_i1e(double x) {
  const double ax = ::fabs(x);
  if (x != x) return x;
  if (ax == __builtin_huge_val()) return ::copysign(0.0, x);
  const double y = ax < 25.0 ? bessel_ie_series<T>(ax, 1) : bessel_ie_asymptotic(ax, 1);
  return ::copysign(y, x);
}

}  // namespace aqf
