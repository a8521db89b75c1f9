#include "cpu/fisher_cpu.h"
#include "cpu/kernels.h"

#include <algorithm>

#include "cpu/thread_pool.h"

namespace aqf {
namespace AQF_CPU_KERNELS_NS {  // compiled once per CPU level: cpu/kernels.h

void pair_cumhist_cpu(const double* log_a, const std::vector<int64_t>& sizes_a, const double* log_g,
                      const std::vector<int64_t>& sizes_g, const double* edges, int64_t n_edges,
                      int64_t* out_cum) {
  const int64_t n_bins = n_edges - 1;
  const int64_t n_groups = static_cast<int64_t>(sizes_a.size());
  // Per group: the larger side is sorted once (inner), the smaller side is walked (outer), so the
  // work is n_outer * (bins in range) * log(n_inner) rather than n_outer * n_inner.
  std::vector<std::vector<double>> inner(n_groups);
  std::vector<const double*> outer(n_groups);
  std::vector<int64_t> n_outer(n_groups), first_item(n_groups + 1, 0);
  int64_t off_a = 0, off_g = 0;
  for (int64_t g = 0; g < n_groups; ++g) {
    const bool a_outer = sizes_a[g] <= sizes_g[g];
    const double* in_ptr = a_outer ? log_g + off_g : log_a + off_a;
    const int64_t n_in = a_outer ? sizes_g[g] : sizes_a[g];
    outer[g] = a_outer ? log_a + off_a : log_g + off_g;
    n_outer[g] = (n_in == 0) ? 0 : (a_outer ? sizes_a[g] : sizes_g[g]);
    inner[g].assign(in_ptr, in_ptr + n_in);
    off_a += sizes_a[g];
    off_g += sizes_g[g];
  }
  parallel_for(n_groups, [&](int64_t g, int) { std::sort(inner[g].begin(), inner[g].end()); });
  for (int64_t g = 0; g < n_groups; ++g) first_item[g + 1] = first_item[g] + n_outer[g];
  const int64_t n_items = first_item[n_groups];

  const int n_threads = num_threads();
  // Per thread: direct counts and a difference array for the runs of full bins.
  std::vector<std::vector<int64_t>> direct(n_threads, std::vector<int64_t>(n_bins, 0));
  std::vector<std::vector<int64_t>> diff(n_threads, std::vector<int64_t>(n_bins + 1, 0));
  const int64_t chunk = 64;
  parallel_for((n_items + chunk - 1) / chunk, [&](int64_t c, int t) {
    int64_t* dir = direct[t].data();
    int64_t* dif = diff[t].data();
    const int64_t end = std::min(n_items, (c + 1) * chunk);
    int64_t g = std::upper_bound(first_item.begin(), first_item.end(), c * chunk) - first_item.begin() - 1;
    for (int64_t item = c * chunk; item < end; ++item) {
      while (item >= first_item[g + 1]) ++g;
      const double a = outer[g][item - first_item[g]];
      const double* in = inner[g].data();
      const int64_t n_in = static_cast<int64_t>(inner[g].size());
      const PairRange r = pair_range(in, n_in, a, edges, n_edges);
      for (int64_t k = r.k_start; k < r.k_full; ++k)
        dir[k] += pair_cum_count(in, n_in, a, edges, n_bins, k, r.below_first);
      if (r.k_full < n_bins - 1) {
        dif[r.k_full] += n_in - r.below_first;
        dif[n_bins - 1] -= n_in - r.below_first;
      }
      // The closed last bin is always searched.
      dir[n_bins - 1] += pair_cum_count(in, n_in, a, edges, n_bins, n_bins - 1, r.below_first);
    }
  });
  for (int64_t k = 0; k < n_bins; ++k) out_cum[k] = 0;
  for (int t = 0; t < n_threads; ++t) {
    int64_t run = 0;
    for (int64_t k = 0; k < n_bins; ++k) {
      run += diff[t][k];
      out_cum[k] += direct[t][k] + run;
    }
  }
}

void conv_cov_assemble_cpu(const float* S, const float* cell_sums, const int64_t* boxes,
                           const int64_t* pair_offset, const ConvCovShape& shape, float* out) {
  const int64_t dim = shape.dim;
  // Lower triangle row by row, then the mirror, each thread writing only its own rows: writing
  // the mirrored column in the first pass makes threads share cache lines.
  parallel_for(shape.n_groups * dim, [&](int64_t row, int) {
    const int64_t g = row / dim, i = row % dim;
    float* a = out + (g * dim + i) * dim;
    for (int64_t j = 0; j <= i; ++j) a[j] = conv_cov_entry(S, cell_sums, boxes, pair_offset, shape, g, i, j);
  });
  parallel_for(shape.n_groups * dim, [&](int64_t row, int) {
    const int64_t g = row / dim, i = row % dim;
    float* a = out + g * dim * dim;
    for (int64_t j = i + 1; j < dim; ++j) a[i * dim + j] = a[j * dim + i];
  });
}

}  // namespace AQF_CPU_KERNELS_NS
}  // namespace aqf
