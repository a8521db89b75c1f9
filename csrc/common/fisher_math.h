// Math shared by the CPU and CUDA kernels of the Fisher-spectrum features:
//  * the cumulative histogram of all pairwise sums a + g of two sets of log-eigenvalues, binned
//    by binary searches in the sorted larger set (the pairs are never materialized);
//  * one entry of a convolution's input factor A assembled from per-offset, per-cell channel
//    cross-products (stride-1 convolutions, see aquasurf_fast/fisher.py for the decomposition).
#pragma once
#include <cstdint>

#include "common/aqf_hd.h"

namespace aqf {
AQF_CPU_CODE_BEGIN

// Number of j with a + sorted[j] < edge (<= edge when inclusive). The sum is evaluated exactly as
// the reference does (double a + double g), and a + x is monotone in x, so a binary search on the
// predicate itself agrees with np.histogram on the materialized sums, ties included.
AQF_HD inline int64_t count_sums_below(const double* sorted, int64_t n, double a, double edge,
                                       bool inclusive) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    const double s = a + sorted[mid];
    const bool below = inclusive ? (s <= edge) : (s < edge);
    if (below) lo = mid + 1; else hi = mid;
  }
  return lo;
}

// Index of the first edge strictly greater than x (n_edges when none is).
AQF_HD inline int64_t first_edge_above(const double* edges, int64_t n_edges, double x) {
  int64_t lo = 0, hi = n_edges;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (edges[mid] <= x) lo = mid + 1; else hi = mid;
  }
  return lo;
}

// What one element a of the outer set adds to the cumulative histogram
//   cum[k] = #{pairs: edges[0] <= a + g, a + g < edges[k + 1]}   (k < n_bins - 1)
//   cum[n_bins - 1] = #{pairs: edges[0] <= a + g <= edges[n_bins]}  (np.histogram's closed last bin)
// Bins below k_start get nothing; bins in [k_start, k_full) need a binary search each; bins in
// [k_full, n_bins - 1) all get n_inner - below_first (added through a difference array).
AQF_CPU_CODE_END

struct PairRange {
  int64_t below_first;  // pairs with a + g < edges[0]
  int64_t k_start;
  int64_t k_full;
};

AQF_CPU_CODE_BEGIN

AQF_HD inline PairRange pair_range(const double* sorted_inner, int64_t n_inner, double a,
                                   const double* edges, int64_t n_edges) {
  PairRange r;
  const int64_t n_bins = n_edges - 1;
  r.below_first = count_sums_below(sorted_inner, n_inner, a, edges[0], false);
  const double s_min = a + sorted_inner[0];
  const double s_max = a + sorted_inner[n_inner - 1];
  int64_t k = first_edge_above(edges, n_edges, s_min) - 1;
  r.k_start = k < 0 ? 0 : (k > n_bins - 1 ? n_bins - 1 : k);
  k = first_edge_above(edges, n_edges, s_max) - 1;
  r.k_full = k < r.k_start ? r.k_start : (k > n_bins - 1 ? n_bins - 1 : k);
  return r;
}

// Cumulative count of bin k (k < n_bins) for one outer element, by binary search.
AQF_HD inline int64_t pair_cum_count(const double* sorted_inner, int64_t n_inner, double a,
                                     const double* edges, int64_t n_bins, int64_t k,
                                     int64_t below_first) {
  const bool last = k == n_bins - 1;
  return count_sums_below(sorted_inner, n_inner, a, edges[k + 1], last) - below_first;
}

// Layout of the stride-1 convolution factor assembly. S holds, for each kernel-tap offset D of
// one half-plane (index o), each group g, each channel pair and each cell (cy, cx) of the padded
// input, the cross product sum_{u in cell} x[c, u] x[c', u + D]: S[o, g, c, c', cy, cx] (the cells
// of one entry are adjacent, so an entry reads one short contiguous run per row of cells).
// cell_sums[g, c, cy, cx] = sum_{u in cell} x[c, u]. boxes[p] = (cy0, cy1, cx0, cx1): the cells
// covered by the input window of tap p. pair_offset[p, q] = o when q - p is offset o, or -(o + 1)
// when p - q is offset o (the block is then the transpose of the (q, p) block over q's box).
AQF_CPU_CODE_END

struct ConvCovShape {
  int64_t n_groups;
  int64_t n_channels;  // per group
  int64_t n_taps;
  int64_t n_cy, n_cx;
  int64_t dim;         // (bias ? 1 : 0) + n_channels * n_taps
  int bias;
  double inv_batch;
  double n_locations;  // output locations per sample: A[0, 0] when there is a bias
};

AQF_CPU_CODE_BEGIN

AQF_HD inline float conv_cov_entry(const float* S, const float* cell_sums, const int64_t* boxes,
                                   const int64_t* pair_offset, const ConvCovShape& sh, int64_t g,
                                   int64_t i, int64_t j) {
  const int64_t nc = sh.n_channels;
  if (sh.bias) {
    if (i == 0 && j == 0) return static_cast<float>(sh.n_locations);
    if (i == 0 || j == 0) {
      const int64_t idx = (i == 0 ? j : i) - 1;
      const int64_t c = idx / sh.n_taps, p = idx % sh.n_taps;
      const int64_t* box = boxes + 4 * p;
      double acc = 0.0;
      const float* cs = cell_sums + (g * nc + c) * sh.n_cy * sh.n_cx;
      for (int64_t cy = box[0]; cy < box[1]; ++cy)
        for (int64_t cx = box[2]; cx < box[3]; ++cx) acc += cs[cy * sh.n_cx + cx];
      return static_cast<float>(acc * sh.inv_batch);
    }
    --i;
    --j;
  }
  int64_t c = i / sh.n_taps, p = i % sh.n_taps;
  int64_t d = j / sh.n_taps, q = j % sh.n_taps;
  int64_t o = pair_offset[p * sh.n_taps + q];
  if (o < 0) {  // transpose of the (q, p) block
    o = -o - 1;
    int64_t t = c; c = d; d = t;
    t = p; p = q; q = t;
  }
  const int64_t* box = boxes + 4 * p;
  const int64_t n_cells = sh.n_cy * sh.n_cx;
  const float* s_e = S + (((o * sh.n_groups + g) * nc + c) * nc + d) * n_cells;
  double acc = 0.0;
  for (int64_t cy = box[0]; cy < box[1]; ++cy)
    for (int64_t cx = box[2]; cx < box[3]; ++cx) acc += s_e[cy * sh.n_cx + cx];
  return static_cast<float>(acc * sh.inv_batch);
}

AQF_CPU_CODE_END
}  // namespace aqf
