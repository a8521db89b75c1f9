// The CPU kernels, compiled once per instruction level into one module (CMakeLists.txt builds the
// kernel files as one object library per level, each with its own -march and AQF_CPU_LEVEL). Each
// level's functions live in aqf::kernels_<level> and are reached through its CpuKernels table;
// cpu/dispatch.cpp picks one table at import and the public functions of the cpu/*.h headers
// call through it.
//
// Why one module with several copies of the kernels rather than one module per level (as faiss
// does): only the kernels differ between levels, a small part of the code; the bindings, the
// parsers and the CUDA code are built once, and the wheel carries one extension module.
#pragma once
#include <cstdint>
#include <vector>

#include "common/aqf_hd.h"
#include "common/fisher_math.h"
#include "common/row_hash.h"
#include "cpu/schema_cpu.h"
#include "expr/program.h"

#define AQF_CPU_KERNELS_NS AQF_PASTE(kernels_, AQF_CPU_LEVEL)

namespace aqf {

// One level's kernels; the signatures are those of the public functions in cpu/*.h.
struct CpuKernels {
  void (*evaluate_f32)(const Program&, const float*, int64_t, const float*, float*, float*);
  void (*evaluate_f64)(const Program&, const double*, int64_t, const double*, double*, double*);
  void (*apply_op_f32)(int32_t, const float* const*, int, float*, int64_t);
  void (*apply_op_f64)(int32_t, const double* const*, int, double*, int64_t);
  RowHash (*hash_row)(const float*, int64_t, bool*);
  void (*hash_rows)(const float*, int64_t, int64_t, RowHash*, uint8_t*);
  int64_t (*schema_size)(const std::vector<Token>&, const SchemaChoices&);
  SchemaClasses (*schema_classes)(const std::vector<Token>&, const SchemaChoices&, const float*, int64_t);
  int64_t (*farthest_points)(const float*, int64_t, int64_t, const int64_t*, int64_t, int64_t, int64_t, int64_t*);
  void (*pair_cumhist)(const double*, const std::vector<int64_t>&, const double*, const std::vector<int64_t>&,
                       const double*, int64_t, int64_t*);
  void (*conv_cov_assemble)(const float*, const float*, const int64_t*, const int64_t*, const ConvCovShape&,
                            float*);
};

// The kernels of the level this file is compiled for (declarations: see the cpu/*.h headers).
namespace AQF_CPU_KERNELS_NS {
template <class T>
void evaluate_cpu(const Program& program, const T* x, int64_t n, const T* grad_out, T* values, T* grads);
template <class T>
void apply_op_cpu(int32_t op, const T* const* args, int n_args, T* y, int64_t n);
RowHash hash_row(const float* row, int64_t n, bool* finite);
void hash_rows_cpu(const float* rows, int64_t n_rows, int64_t n, RowHash* hashes, uint8_t* finite);
int64_t schema_size(const std::vector<Token>& schema, const SchemaChoices& choices);
SchemaClasses schema_classes_cpu(const std::vector<Token>& schema, const SchemaChoices& choices,
                                 const float* probe, int64_t n);
int64_t farthest_points_cpu(const float* points, int64_t n, int64_t d, const int64_t* seeds,
                            int64_t n_seeds, int64_t first, int64_t n_select, int64_t* out);
void pair_cumhist_cpu(const double* log_a, const std::vector<int64_t>& sizes_a, const double* log_g,
                      const std::vector<int64_t>& sizes_g, const double* edges, int64_t n_edges,
                      int64_t* out_cum);
void conv_cov_assemble_cpu(const float* S, const float* cell_sums, const int64_t* boxes,
                           const int64_t* pair_offset, const ConvCovShape& shape, float* out);

const CpuKernels& kernel_table();
}  // namespace AQF_CPU_KERNELS_NS

}  // namespace aqf
