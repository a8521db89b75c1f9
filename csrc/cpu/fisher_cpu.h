// CPU kernels of the Fisher-spectrum features (threaded loops over common/fisher_math.h).
#pragma once
#include <cstdint>
#include <vector>

#include "common/fisher_math.h"

namespace aqf {

// Cumulative histogram of all within-group pairwise sums log_a[i] + log_g[j].
// log_a: [sum(sizes_a)] finite, group after group; log_g: [sum(sizes_g)] likewise;
// edges: [n_edges] ascending; out_cum: [n_edges - 1] (see PairRange for the bin convention).
void pair_cumhist_cpu(const double* log_a, const std::vector<int64_t>& sizes_a, const double* log_g,
                      const std::vector<int64_t>& sizes_g, const double* edges, int64_t n_edges,
                      int64_t* out_cum);

// A factor assembly for stride-1 convolutions: out [n_groups, dim, dim] (layout in ConvCovShape).
void conv_cov_assemble_cpu(const float* S, const float* cell_sums, const int64_t* boxes,
                           const int64_t* pair_offset, const ConvCovShape& shape, float* out);

}  // namespace aqf
