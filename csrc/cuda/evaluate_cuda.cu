#include "cuda/evaluate_cuda.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/ops.h"

namespace aqf {
namespace {

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

struct SubHeader {
  int32_t code_begin, code_end, args_begin, n_regs;
  int64_t first_fn;
};

constexpr int kThreads = 128;
constexpr int64_t kMaxTile = int64_t(1) << 20;  // elements per launch: bounds the scratch memory

template <class T>
struct Operands {
  const T* x;
  const T* seed;
  T* regs;   // [n_subs, max_regs, tile]
  T* tregs;  // same, tangents
  T* values;    // [n_fns, n]
  T* tangents;  // [n_fns, n] or null
  int64_t n, tile, max_regs;
};

template <class T>
__device__ inline T* operand_ptr(const Operands<T>& o, const SubHeader& s, int sub, int32_t id, int64_t i, int64_t gi,
                                 bool tangent) {
  if (id <= s.n_regs) {
    T* base = tangent ? o.tregs : o.regs;
    return base + (int64_t(sub) * o.max_regs + (id - 1)) * o.tile + i;
  }
  const int64_t row = s.first_fn + (id - s.n_regs - 1);
  return (tangent ? o.tangents : o.values) + row * o.n + gi;
}

template <class T>
__device__ inline T load(const Operands<T>& o, const SubHeader& s, int sub, int32_t id, int64_t i, int64_t gi) {
  return id == 0 ? o.x[gi] : *operand_ptr(o, s, sub, id, i, gi, false);
}
template <class T>
__device__ inline T load_tangent(const Operands<T>& o, const SubHeader& s, int sub, int32_t id, int64_t i, int64_t gi) {
  if (id == 0) return o.seed ? o.seed[gi] : T(1);
  return *operand_ptr(o, s, sub, id, i, gi, true);
}

template <class T, bool kTangent>
__global__ void evaluate_fwd_kernel(const int4* __restrict__ code, const int32_t* __restrict__ args,
                                    const SubHeader* __restrict__ subs, Operands<T> o, int64_t tile_start,
                                    int64_t tile_len) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= tile_len) return;
  const int sub = blockIdx.y;
  const SubHeader s = subs[sub];
  const int64_t gi = tile_start + i;
  for (int32_t pc = s.code_begin; pc < s.code_end; ++pc) {
    const int4 ins = code[pc];
    T y = T(0), dy = T(0);
    if (ins.x < kFirstBinary) {
      const T a = load(o, s, sub, ins.z, i, gi);
      const T da = kTangent ? load_tangent(o, s, sub, ins.z, i, gi) : T(0);
      switch (ins.x) {
#define AQF_UNARY_CASE(E, C, S)            \
  case OP_##E:                             \
    y = op::C::f(a);                       \
    if (kTangent) dy = op::C::d(a, y, da); \
    break;
        AQF_UNARY_OPS(AQF_UNARY_CASE)
#undef AQF_UNARY_CASE
      }
    } else if (ins.x < kFirstNary) {
      const T a = load(o, s, sub, ins.z, i, gi);
      const T b = load(o, s, sub, ins.w, i, gi);
      const T da = kTangent ? load_tangent(o, s, sub, ins.z, i, gi) : T(0);
      const T db = kTangent ? load_tangent(o, s, sub, ins.w, i, gi) : T(0);
      switch (ins.x) {
#define AQF_BINARY_CASE(E, C, S)                  \
  case OP_##E:                                    \
    y = op::C::f(a, b);                           \
    if (kTangent) dy = op::C::d(a, b, y, da, db); \
    break;
        AQF_BINARY_OPS(AQF_BINARY_CASE)
#undef AQF_BINARY_CASE
      }
    } else {
      const int32_t* arg = args + s.args_begin + ins.z;
      y = load(o, s, sub, arg[0], i, gi);
      if (kTangent) dy = load_tangent(o, s, sub, arg[0], i, gi);
      for (int k = 1; k < ins.w; ++k) {
        const T a = load(o, s, sub, arg[k], i, gi);
        if (ins.x == OP_SUM_N) {
          if (kTangent) dy = op::SumN::dfold(y, a, dy, load_tangent(o, s, sub, arg[k], i, gi));
          y = op::SumN::fold(y, a);
        } else if (ins.x == OP_PROD_N) {
          if (kTangent) dy = op::ProdN::dfold(y, a, dy, load_tangent(o, s, sub, arg[k], i, gi));
          y = op::ProdN::fold(y, a);
        } else if (ins.x == OP_MAX_N) {
          y = op::MaxN::fold(y, a);
        } else {
          y = op::MinN::fold(y, a);
        }
      }
      if (kTangent && (ins.x == OP_MAX_N || ins.x == OP_MIN_N)) {
        T sum = T(0), count = T(0);
        for (int k = 0; k < ins.w; ++k) {
          const bool tie = load(o, s, sub, arg[k], i, gi) == y;
          sum += tie ? load_tangent(o, s, sub, arg[k], i, gi) : T(0);
          count += tie ? T(1) : T(0);
        }
        dy = sum / count;
      }
    }
    *operand_ptr(o, s, sub, ins.y, i, gi, false) = y;
    if (kTangent) *operand_ptr(o, s, sub, ins.y, i, gi, true) = dy;
  }
}

// The program's instructions on the device, uploaded once per call (they are small).
struct DeviceProgram {
  int4* code = nullptr;
  int32_t* args = nullptr;
  SubHeader* subs = nullptr;
  cudaStream_t stream;
  explicit DeviceProgram(const Program& p, cudaStream_t s) : stream(s) {
    std::vector<int4> code_h;
    std::vector<int32_t> args_h;
    std::vector<SubHeader> subs_h;
    for (const SubProgram& sp : p.subs) {
      SubHeader h{static_cast<int32_t>(code_h.size()), 0, static_cast<int32_t>(args_h.size()), sp.n_regs, sp.first_fn};
      for (const Instr& ins : sp.code) code_h.push_back(make_int4(ins.op, ins.dst, ins.a, ins.b));
      h.code_end = static_cast<int32_t>(code_h.size());
      args_h.insert(args_h.end(), sp.args.begin(), sp.args.end());
      subs_h.push_back(h);
    }
    args_h.push_back(0);  // never empty
    upload(code_h, &code);
    upload(args_h, &args);
    upload(subs_h, &subs);
  }
  ~DeviceProgram() {
    cudaFreeAsync(code, stream);
    cudaFreeAsync(args, stream);
    cudaFreeAsync(subs, stream);
  }
  template <class V>
  void upload(const std::vector<V>& host, V** dev) {
    check(cudaMallocAsync(reinterpret_cast<void**>(dev), host.size() * sizeof(V), stream), "cudaMallocAsync");
    check(cudaMemcpyAsync(*dev, host.data(), host.size() * sizeof(V), cudaMemcpyHostToDevice, stream),
          "cudaMemcpyAsync");
  }
};

}  // namespace

template <class T>
void evaluate_cuda(const Program& program, const T* x, int64_t n, const T* seed, T* values, T* tangents,
                   int64_t stream_handle) {
  if (n == 0 || program.n_fns == 0) return;
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_handle);
  DeviceProgram dp(program, stream);
  const bool with_tangent = tangents != nullptr;
  const int64_t tile = std::min(n, kMaxTile);
  const int64_t n_subs = static_cast<int64_t>(program.subs.size());
  const int64_t reg_elems = n_subs * std::max(program.max_regs, 1) * tile;
  T* scratch = nullptr;
  T* own_values = nullptr;  // outputs are also operands, so values need a home when not asked for
  check(cudaMallocAsync(reinterpret_cast<void**>(&scratch), reg_elems * (with_tangent ? 2 : 1) * sizeof(T), stream),
        "cudaMallocAsync");
  if (values == nullptr) {
    check(cudaMallocAsync(reinterpret_cast<void**>(&own_values), program.n_fns * n * sizeof(T), stream),
          "cudaMallocAsync");
    values = own_values;
  }
  Operands<T> o{x, seed, scratch, with_tangent ? scratch + reg_elems : nullptr, values, tangents,
                n, tile, std::max(program.max_regs, 1)};
  for (int64_t start = 0; start < n; start += tile) {
    const int64_t len = std::min(tile, n - start);
    const dim3 grid(static_cast<unsigned>((len + kThreads - 1) / kThreads), static_cast<unsigned>(n_subs));
    if (with_tangent) {
      evaluate_fwd_kernel<T, true><<<grid, kThreads, 0, stream>>>(dp.code, dp.args, dp.subs, o, start, len);
    } else {
      evaluate_fwd_kernel<T, false><<<grid, kThreads, 0, stream>>>(dp.code, dp.args, dp.subs, o, start, len);
    }
    check(cudaGetLastError(), "evaluate_fwd_kernel launch");
  }
  cudaFreeAsync(scratch, stream);
  if (own_values) cudaFreeAsync(own_values, stream);
}

template void evaluate_cuda<float>(const Program&, const float*, int64_t, const float*, float*, float*, int64_t);
template void evaluate_cuda<double>(const Program&, const double*, int64_t, const double*, double*, double*, int64_t);

bool cuda_device_available() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return false;
  }
  return count > 0;
}

}  // namespace aqf
