// bessel_i0e and bessel_i1e over a block of elements, for the CPU loops. The scalar power series
// (common/bessel.h) is a chain of dependent divisions per element; here the elements form the
// inner loop, which vectorizes and overlaps them. Every element performs exactly the scalar
// series' operations in the same order and stops adding terms where the scalar loop stops (a
// stopped element keeps its term and sum), so the results are the scalar functions' bits.
// Elements beyond the series' range, NaN and inf take the scalar functions.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "common/bessel.h"

namespace aqf {
AQF_CPU_CODE_BEGIN

struct BesselScratch {
  std::vector<double> ax, q, term, sum;
};

// y[i] = bessel_i0e(x[i]) (order 0) or bessel_i1e(x[i]) (order 1), rounded to T.
template <class T>
void bessel_ie_block(const T* x, T* y, int64_t len, int order, BesselScratch& s) {
  s.ax.resize(len);
  s.q.resize(len);
  s.term.resize(len);
  s.sum.resize(len);
  double* __restrict ax = s.ax.data();
  double* __restrict q = s.q.data();
  double* __restrict term = s.term.data();
  double* __restrict sum = s.sum.data();
  for (int64_t i = 0; i < len; ++i) {
    ax[i] = std::fabs(static_cast<double>(x[i]));
    const double a = ax[i] < 25.0 ? ax[i] : 0.0;  // the others (and NaN) are redone below
    q[i] = 0.25 * a * a;
    term[i] = order == 0 ? 1.0 : 0.5 * a;
    sum[i] = term[i];
  }
  for (int k = 1; k < 200; ++k) {
    const double denominator = series_denominator(k, order);
    const double reciprocal = 1.0 / denominator;
    int any = 0;  // an OR reduction the compiler vectorizes (|| would branch)
    for (int64_t i = 0; i < len; ++i) {
      const bool more = term[i] > sum[i] * series_tolerance<T>();
      const double next = term[i] * series_ratio<T>(q[i], denominator, reciprocal);
      term[i] = more ? next : term[i];
      sum[i] = more ? sum[i] + next : sum[i];
      any |= more;
    }
    if (!any) break;
  }
  for (int64_t i = 0; i < len; ++i) {
    const double v = sum[i] * exp_neg<T>(ax[i] < 25.0 ? ax[i] : 0.0);  // the others are redone below
    y[i] = static_cast<T>(order == 0 ? v : std::copysign(v, static_cast<double>(x[i])));
  }
  for (int64_t i = 0; i < len; ++i) {
    if (!(ax[i] < 25.0)) y[i] = static_cast<T>(order == 0 ? bessel_i0e<T>(double(x[i])) : bessel_i1e<T>(double(x[i])));
  }
}

AQF_CPU_CODE_END
}  // namespace aqf
