// Fisher-spectrum ops: validate arrays, then dispatch to the CPU or CUDA kernel.
#pragma once
#include <cstdint>
#include <vector>

#include "common/fisher_math.h"
#include "ops/array_view.h"

namespace aqf {

// out_cum[k] (int64 [n_edges - 1]): cumulative histogram of all within-group pairwise sums
// log_a + log_g (float64, flat, group sizes given) over edges (float64 [n_edges], ascending).
void pair_cumhist(const ArrayView& log_a, const std::vector<int64_t>& sizes_a, const ArrayView& log_g,
                  const std::vector<int64_t>& sizes_g, const ArrayView& edges, const ArrayView& out_cum);

// out (float32 [n_groups, dim, dim]) assembled from the per-offset, per-cell cross products.
// S: float32 [n_offsets, n_groups, n_channels, n_channels, n_cy, n_cx];
// cell_sums: float32 [n_groups, n_channels, n_cy, n_cx]; boxes: int64 [n_taps, 4];
// pair_offset: int64 [n_taps, n_taps].
void conv_cov_assemble(const ArrayView& S, const ArrayView& cell_sums, const ArrayView& boxes,
                       const ArrayView& pair_offset, bool bias, double inv_batch, double n_locations,
                       const ArrayView& out);

}  // namespace aqf
