#include "cuda/fisher_cuda.h"

#include <cuda_runtime.h>
#include <thrust/device_ptr.h>
#include <thrust/execution_policy.h>
#include <thrust/sort.h>

#include <stdexcept>
#include <string>

namespace aqf {
namespace {

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

struct DeviceBuffer {
  void* ptr = nullptr;
  explicit DeviceBuffer(size_t bytes) { check(cudaMalloc(&ptr, bytes ? bytes : 1), "cudaMalloc"); }
  ~DeviceBuffer() { cudaFree(ptr); }
  template <class T>
  T* as() const { return static_cast<T*>(ptr); }
};

// One block per outer element; its threads share the bins that need a binary search.
__global__ void pair_cumhist_kernel(const double* outer, const int64_t* outer_group,
                                    const double* inner, const int64_t* inner_begin,
                                    const int64_t* inner_size, const double* edges, int64_t n_edges,
                                    int64_t n_items, unsigned long long* direct,
                                    unsigned long long* diff) {
  const int64_t item = blockIdx.x;
  if (item >= n_items) return;
  const int64_t g = outer_group[item];
  const double a = outer[item];
  const double* in = inner + inner_begin[g];
  const int64_t n_in = inner_size[g];
  const int64_t n_bins = n_edges - 1;
  const PairRange r = pair_range(in, n_in, a, edges, n_edges);
  for (int64_t k = r.k_start + threadIdx.x; k < r.k_full; k += blockDim.x) {
    const int64_t c = pair_cum_count(in, n_in, a, edges, n_bins, k, r.below_first);
    if (c) atomicAdd(direct + k, static_cast<unsigned long long>(c));
  }
  if (threadIdx.x == 0) {
    if (r.k_full < n_bins - 1) {
      // Two's-complement wrap makes the subtraction exact in unsigned arithmetic.
      const unsigned long long full = static_cast<unsigned long long>(n_in - r.below_first);
      atomicAdd(diff + r.k_full, full);
      atomicAdd(diff + n_bins - 1, 0ULL - full);
    }
    const int64_t c = pair_cum_count(in, n_in, a, edges, n_bins, n_bins - 1, r.below_first);
    atomicAdd(direct + n_bins - 1, static_cast<unsigned long long>(c));
  }
}

// The bins are few (n // 100 for a layer of n weights); one thread scans them.
__global__ void pair_cumhist_finish_kernel(const unsigned long long* direct,
                                           const unsigned long long* diff, int64_t n_bins,
                                           int64_t* out_cum) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  unsigned long long run = 0;
  for (int64_t k = 0; k < n_bins; ++k) {
    run += diff[k];
    out_cum[k] = static_cast<int64_t>(direct[k] + run);
  }
}

__global__ void conv_cov_assemble_kernel(const float* S, const float* cell_sums, const int64_t* boxes,
                                         const int64_t* pair_offset, ConvCovShape shape, float* out) {
  const int64_t total = shape.n_groups * shape.dim * shape.dim;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t g = e / (shape.dim * shape.dim);
    const int64_t i = (e / shape.dim) % shape.dim, j = e % shape.dim;
    out[e] = conv_cov_entry(S, cell_sums, boxes, pair_offset, shape, g, i, j);
  }
}

}  // namespace

void pair_cumhist_cuda(const double* log_a, const std::vector<int64_t>& sizes_a, const double* log_g,
                       const std::vector<int64_t>& sizes_g, const double* edges, int64_t n_edges,
                       int64_t* out_cum, int device_id) {
  check(cudaSetDevice(device_id), "cudaSetDevice");
  const int64_t n_groups = static_cast<int64_t>(sizes_a.size());
  const int64_t n_bins = n_edges - 1;
  int64_t total_a = 0, total_g = 0;
  for (int64_t g = 0; g < n_groups; ++g) { total_a += sizes_a[g]; total_g += sizes_g[g]; }
  // Host-side plan: per group the smaller side is outer, the larger is copied and sorted.
  std::vector<int64_t> inner_begin(n_groups), inner_size(n_groups), outer_group;
  DeviceBuffer inner(sizeof(double) * (total_a + total_g));
  DeviceBuffer outer(sizeof(double) * (total_a + total_g));
  int64_t off_a = 0, off_g = 0, in_off = 0, out_off = 0;
  for (int64_t g = 0; g < n_groups; ++g) {
    const bool a_outer = sizes_a[g] <= sizes_g[g];
    const double* in_src = a_outer ? log_g + off_g : log_a + off_a;
    const double* out_src = a_outer ? log_a + off_a : log_g + off_g;
    const int64_t n_in = a_outer ? sizes_g[g] : sizes_a[g];
    const int64_t n_out = n_in == 0 ? 0 : (a_outer ? sizes_a[g] : sizes_g[g]);
    inner_begin[g] = in_off;
    inner_size[g] = n_in;
    check(cudaMemcpy(inner.as<double>() + in_off, in_src, sizeof(double) * n_in, cudaMemcpyDeviceToDevice), "copy");
    check(cudaMemcpy(outer.as<double>() + out_off, out_src, sizeof(double) * n_out, cudaMemcpyDeviceToDevice), "copy");
    thrust::sort(thrust::device, thrust::device_pointer_cast(inner.as<double>() + in_off),
                 thrust::device_pointer_cast(inner.as<double>() + in_off + n_in));
    outer_group.insert(outer_group.end(), n_out, g);
    in_off += n_in;
    out_off += n_out;
    off_a += sizes_a[g];
    off_g += sizes_g[g];
  }
  const int64_t n_items = out_off;
  DeviceBuffer d_group(sizeof(int64_t) * n_items), d_begin(sizeof(int64_t) * n_groups),
      d_size(sizeof(int64_t) * n_groups);
  DeviceBuffer direct(sizeof(unsigned long long) * n_bins), diff(sizeof(unsigned long long) * (n_bins + 1));
  check(cudaMemcpy(d_group.ptr, outer_group.data(), sizeof(int64_t) * n_items, cudaMemcpyHostToDevice), "copy");
  check(cudaMemcpy(d_begin.ptr, inner_begin.data(), sizeof(int64_t) * n_groups, cudaMemcpyHostToDevice), "copy");
  check(cudaMemcpy(d_size.ptr, inner_size.data(), sizeof(int64_t) * n_groups, cudaMemcpyHostToDevice), "copy");
  check(cudaMemset(direct.ptr, 0, sizeof(unsigned long long) * n_bins), "memset");
  check(cudaMemset(diff.ptr, 0, sizeof(unsigned long long) * (n_bins + 1)), "memset");
  if (n_items > 0) {
    pair_cumhist_kernel<<<static_cast<unsigned>(n_items), 128>>>(
        outer.as<double>(), d_group.as<int64_t>(), inner.as<double>(), d_begin.as<int64_t>(),
        d_size.as<int64_t>(), edges, n_edges, n_items, direct.as<unsigned long long>(),
        diff.as<unsigned long long>());
    check(cudaGetLastError(), "pair_cumhist_kernel");
  }
  pair_cumhist_finish_kernel<<<1, 1>>>(direct.as<unsigned long long>(), diff.as<unsigned long long>(),
                                       n_bins, out_cum);
  check(cudaGetLastError(), "pair_cumhist_finish_kernel");
  check(cudaDeviceSynchronize(), "pair_cumhist");
}

void conv_cov_assemble_cuda(const float* S, const float* cell_sums, const int64_t* boxes,
                            const int64_t* pair_offset, const ConvCovShape& shape, float* out,
                            int device_id) {
  check(cudaSetDevice(device_id), "cudaSetDevice");
  const int64_t total = shape.n_groups * shape.dim * shape.dim;
  const int threads = 256;
  const int64_t blocks = (total + threads - 1) / threads;
  conv_cov_assemble_kernel<<<static_cast<unsigned>(blocks < 65535 ? blocks : 65535), threads>>>(
      S, cell_sums, boxes, pair_offset, shape, out);
  check(cudaGetLastError(), "conv_cov_assemble_kernel");
  check(cudaDeviceSynchronize(), "conv_cov_assemble");
}

}  // namespace aqf
