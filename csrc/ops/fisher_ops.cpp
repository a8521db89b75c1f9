#include "ops/fisher_ops.h"

#include <stdexcept>
#include <string>

#include "cpu/fisher_cpu.h"
#ifdef AQF_WITH_CUDA
#include "cuda/fisher_cuda.h"
#endif

namespace aqf {
namespace {

void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

void require_array(const ArrayView& a, const char* what, DType dtype, size_t ndim) {
  require(a.dtype == dtype, std::string(what) + " must be " + dtype_name(dtype) + ", got " + a.describe());
  require(a.shape.size() == ndim, std::string(what) + " must have " + std::to_string(ndim) +
                                      " dimensions, got " + a.describe());
  require(a.is_contiguous(), std::string(what) + " must be C-contiguous, got " + a.describe());
}

void require_same(const ArrayView& a, const ArrayView& b, const char* wa, const char* wb) {
  require(a.device == b.device && a.device_id == b.device_id,
          std::string(wa) + " is " + a.describe() + " but " + wb + " is " + b.describe() +
              "; all arrays must be on one device");
}

[[noreturn]] void no_cuda(const char* op) {
  throw std::invalid_argument(std::string(op) +
                              ": got CUDA arrays but aquasurf_fast was built without CUDA; rebuild "
                              "with nvcc on PATH (AQF_CUDA=1) or pass CPU arrays");
}

}  // namespace

void pair_cumhist(const ArrayView& log_a, const std::vector<int64_t>& sizes_a, const ArrayView& log_g,
                  const std::vector<int64_t>& sizes_g, const ArrayView& edges, const ArrayView& out_cum) {
  require_array(log_a, "log_a", DType::F64, 1);
  require_array(log_g, "log_g", DType::F64, 1);
  require_array(edges, "edges", DType::F64, 1);
  require_array(out_cum, "out_cum", DType::I64, 1);
  require_same(log_a, log_g, "log_a", "log_g");
  require_same(log_a, edges, "log_a", "edges");
  require_same(log_a, out_cum, "log_a", "out_cum");
  require(sizes_a.size() == sizes_g.size() && !sizes_a.empty(),
          "sizes_a and sizes_g must list the same positive number of groups, got " +
              std::to_string(sizes_a.size()) + " and " + std::to_string(sizes_g.size()));
  int64_t total_a = 0, total_g = 0;
  for (size_t g = 0; g < sizes_a.size(); ++g) {
    require(sizes_a[g] >= 0 && sizes_g[g] >= 0, "group sizes must be non-negative");
    total_a += sizes_a[g];
    total_g += sizes_g[g];
  }
  require(total_a == log_a.shape[0], "sizes_a sum to " + std::to_string(total_a) + " but log_a is " + log_a.describe());
  require(total_g == log_g.shape[0], "sizes_g sum to " + std::to_string(total_g) + " but log_g is " + log_g.describe());
  const int64_t n_edges = edges.shape[0];
  require(n_edges >= 2, "edges needs at least 2 values, got " + edges.describe());
  require(out_cum.shape[0] == n_edges - 1,
          "out_cum must have n_edges - 1 = " + std::to_string(n_edges - 1) + " entries, got " + out_cum.describe());
  if (log_a.device == Device::CUDA) {
#ifdef AQF_WITH_CUDA
    pair_cumhist_cuda(log_a.ptr<double>(), sizes_a, log_g.ptr<double>(), sizes_g, edges.ptr<double>(),
                      n_edges, out_cum.ptr<int64_t>(), log_a.device_id);
    return;
#else
    no_cuda("pair_cumhist");
#endif
  }
  const double* e = edges.ptr<double>();
  for (int64_t k = 1; k < n_edges; ++k) require(e[k - 1] <= e[k], "edges must be ascending");
  pair_cumhist_cpu(log_a.ptr<double>(), sizes_a, log_g.ptr<double>(), sizes_g, e, n_edges,
                   out_cum.ptr<int64_t>());
}

void conv_cov_assemble(const ArrayView& S, const ArrayView& cell_sums, const ArrayView& boxes,
                       const ArrayView& pair_offset, bool bias, double inv_batch, double n_locations,
                       const ArrayView& out) {
  require_array(S, "S", DType::F32, 6);
  require_array(cell_sums, "cell_sums", DType::F32, 4);
  require_array(boxes, "boxes", DType::I64, 2);
  require_array(pair_offset, "pair_offset", DType::I64, 2);
  require_array(out, "out", DType::F32, 3);
  require_same(S, cell_sums, "S", "cell_sums");
  require_same(S, boxes, "S", "boxes");
  require_same(S, pair_offset, "S", "pair_offset");
  require_same(S, out, "S", "out");
  ConvCovShape sh;
  sh.n_groups = S.shape[1];
  sh.n_channels = S.shape[2];
  sh.n_cy = S.shape[4];
  sh.n_cx = S.shape[5];
  sh.n_taps = boxes.shape[0];
  sh.bias = bias ? 1 : 0;
  sh.dim = sh.bias + sh.n_channels * sh.n_taps;
  sh.inv_batch = inv_batch;
  sh.n_locations = n_locations;
  require(S.shape[3] == sh.n_channels, "S must be [n_offsets, n_groups, C, C, n_cy, n_cx], got " + S.describe());
  require(cell_sums.shape[0] == sh.n_groups && cell_sums.shape[1] == sh.n_channels && cell_sums.shape[2] == sh.n_cy &&
              cell_sums.shape[3] == sh.n_cx,
          "cell_sums must be [n_groups, C, n_cy, n_cx] matching S, got " + cell_sums.describe());
  require(boxes.shape[1] == 4, "boxes must be [n_taps, 4], got " + boxes.describe());
  require(pair_offset.shape[0] == sh.n_taps && pair_offset.shape[1] == sh.n_taps,
          "pair_offset must be [n_taps, n_taps], got " + pair_offset.describe());
  require(out.shape[0] == sh.n_groups && out.shape[1] == sh.dim && out.shape[2] == sh.dim,
          "out must be [n_groups, dim, dim] with dim = " + std::to_string(sh.dim) + ", got " + out.describe());
  if (S.device == Device::CUDA) {
#ifdef AQF_WITH_CUDA
    conv_cov_assemble_cuda(S.ptr<float>(), cell_sums.ptr<float>(), boxes.ptr<int64_t>(), pair_offset.ptr<int64_t>(),
                           sh, out.ptr<float>(), S.device_id);
    return;
#else
    no_cuda("conv_cov_assemble");
#endif
  }
  // The tables index S and the cells: check them before any kernel reads through them.
  const int64_t* b = boxes.ptr<int64_t>();
  for (int64_t p = 0; p < sh.n_taps; ++p)
    require(0 <= b[4 * p] && b[4 * p] <= b[4 * p + 1] && b[4 * p + 1] <= sh.n_cy && 0 <= b[4 * p + 2] &&
                b[4 * p + 2] <= b[4 * p + 3] && b[4 * p + 3] <= sh.n_cx,
            "boxes row " + std::to_string(p) + " lies outside the cell grid");
  const int64_t* po = pair_offset.ptr<int64_t>();
  for (int64_t e = 0; e < sh.n_taps * sh.n_taps; ++e)
    require(po[e] < S.shape[0] && -po[e] - 1 < S.shape[0], "pair_offset entry out of range of S");
  conv_cov_assemble_cpu(S.ptr<float>(), cell_sums.ptr<float>(), b, po, sh, out.ptr<float>());
}

}  // namespace aqf
