// CUDA twins of cpu/fisher_cpu.h: same arguments, device pointers, the same shared math.
#pragma once
#include <cstdint>
#include <vector>

#include "common/fisher_math.h"

namespace aqf {

// log_a, log_g, edges, out_cum on the device; sizes on the host. Runs on the default stream and
// synchronizes before returning (the caller reads out_cum through its own library).
void pair_cumhist_cuda(const double* log_a, const std::vector<int64_t>& sizes_a, const double* log_g,
                       const std::vector<int64_t>& sizes_g, const double* edges, int64_t n_edges,
                       int64_t* out_cum, int device_id);

void conv_cov_assemble_cuda(const float* S, const float* cell_sums, const int64_t* boxes,
                            const int64_t* pair_offset, const ConvCovShape& shape, float* out,
                            int device_id);

}  // namespace aqf
