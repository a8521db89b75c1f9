// The table of this level's kernels (compiled once per level, like the kernels themselves).
#include "cpu/kernels.h"

namespace aqf {
namespace AQF_CPU_KERNELS_NS {

const CpuKernels& kernel_table() {
  static const CpuKernels table{
      &evaluate_cpu<float>, &evaluate_cpu<double>, &apply_op_cpu<float>, &apply_op_cpu<double>,
      &hash_row,            &hash_rows_cpu,        &schema_size,         &schema_classes_cpu,
      &farthest_points_cpu, &pair_cumhist_cpu,     &conv_cov_assemble_cpu,
  };
  return table;
}

}  // namespace AQF_CPU_KERNELS_NS
}  // namespace aqf
