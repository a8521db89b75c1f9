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

constexpr int kThreads = 128;
constexpr int64_t kMaxTile = int64_t(1) << 20;  // elements per launch: bounds the scratch memory

// One sub-program's slices of the flattened instruction arrays.
struct SubHeader {
  int32_t code_begin, code_end, args_begin, n_regs;
  int32_t grad_begin, grad_end, grad_args_begin, tape_offsets_begin;
  int64_t first_fn;
  int32_t n_fns;
};

struct DevicePrograms {
  const int4* code;
  const int32_t* args;
  const int4* grad_code;
  const int32_t* grad_args;
  const int32_t* roots;
  const int32_t* tape_offsets;
  const int32_t* tapes;
  const SubHeader* subs;
};

// The forward step of one instruction for one element; load(id) reads an operand's value.
template <class T, class Load>
__device__ __forceinline__ T forward_step(const int4 ins, const int32_t* args, const Load& load) {
  T y = T(0);
  if (ins.x < kFirstBinary) {
    const T a = load(ins.z);
    switch (ins.x) {
#define AQF_UNARY_CASE(E, C, S) \
  case OP_##E:                  \
    y = op::C::f(a);            \
    break;
      AQF_UNARY_OPS(AQF_UNARY_CASE)
#undef AQF_UNARY_CASE
    }
  } else if (ins.x < kFirstNary) {
    const T a = load(ins.z), b = load(ins.w);
    switch (ins.x) {
#define AQF_BINARY_CASE(E, C, S) \
  case OP_##E:                   \
    y = op::C::f(a, b);          \
    break;
      AQF_BINARY_OPS(AQF_BINARY_CASE)
#undef AQF_BINARY_CASE
    }
  } else {
    const int32_t* arg = args + ins.z;
    y = load(arg[0]);
    for (int k = 1; k < ins.w; ++k) {
      const T a = load(arg[k]);
      if (ins.x == OP_SUM_N) y = op::SumN::fold(y, a);
      else if (ins.x == OP_PROD_N) y = op::ProdN::fold(y, a);
      else if (ins.x == OP_MAX_N) y = op::MaxN::fold(y, a);
      else y = op::MinN::fold(y, a);
    }
  }
  return y;
}

// The backward step of one instruction for one element (the CPU's backward loops, per element):
// acc(id, v) adds v to operand id's gradient.
template <class T, class Load, class Acc>
__device__ __forceinline__ void backward_step(const int4 ins, const int32_t* args, T y, T g, const Load& load,
                                              const Acc& acc) {
  if (ins.x < kFirstBinary) {
    const T a = load(ins.z);
    switch (ins.x) {
#define AQF_UNARY_CASE(E, C, S)        \
  case OP_##E:                         \
    acc(ins.z, op::nan_operand_vjp<op::C>(a, op::C::b(a, y, g))); \
    break;
      AQF_UNARY_OPS(AQF_UNARY_CASE)
#undef AQF_UNARY_CASE
    }
  } else if (ins.x < kFirstNary) {
    const T a = load(ins.z), b = load(ins.w);
    T ga = T(0), gb = T(0);
    switch (ins.x) {
#define AQF_BINARY_CASE(E, C, S)       \
  case OP_##E:                         \
    op::C::b(a, b, y, g, ga, gb);      \
    op::nan_operands_vjp<op::C>(a, b, ga, gb); \
    break;
      AQF_BINARY_OPS(AQF_BINARY_CASE)
#undef AQF_BINARY_CASE
    }
    acc(ins.z, ga);
    acc(ins.w, gb);
  } else {
    const int32_t* arg = args + ins.z;
    op::nary_vjp<T>(
        ins.x, ins.w, y, g, [&](int k) -> T { return load(arg[k]); }, [&](int k, T v) { acc(arg[k], v); });
  }
}

// Register r of grid row `sub` at tile element i: regs[(sub * stride + r) * tile + i], so that
// neighbouring threads touch neighbouring addresses.
template <class T>
__device__ __forceinline__ T* reg(T* regs, int sub, int64_t stride, int64_t r, int64_t tile, int64_t i) {
  return regs + (int64_t(sub) * stride + r) * tile + i;
}

// Values: operand 0 is x, 1..n_regs scratch registers, then the sub-program's output rows.
template <class T>
__global__ void evaluate_fwd_kernel(DevicePrograms p, const T* __restrict__ x, T* regs, T* values, int64_t n,
                                    int64_t stride, int64_t tile, int64_t tile_start, int64_t tile_len) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= tile_len) return;
  const int sub = blockIdx.y;
  const SubHeader s = p.subs[sub];
  const int64_t gi = tile_start + i;
  auto ptr = [&](int32_t id) -> T* {
    return id <= s.n_regs ? reg(regs, sub, stride, id - 1, tile, i) : values + (s.first_fn + (id - s.n_regs - 1)) * n + gi;
  };
  auto load = [&](int32_t id) -> T { return id == 0 ? x[gi] : *ptr(id); };
  for (int32_t pc = s.code_begin; pc < s.code_end; ++pc) {
    const int4 ins = p.code[pc];
    *ptr(ins.y) = forward_step<T>(ins, p.args + s.args_begin, load);
  }
}

// Gradients: every node keeps its value (operand = node id, 0 is x); then one backward sweep
// per function over its tape.
template <class T>
__global__ void evaluate_bwd_kernel(DevicePrograms p, const T* __restrict__ x, const T* __restrict__ grad_out, T* vals,
                                    T* adjs, T* values, T* grads, int64_t n, int64_t stride, int64_t tile,
                                    int64_t tile_start, int64_t tile_len) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= tile_len) return;
  const int sub = blockIdx.y;
  const SubHeader s = p.subs[sub];
  const int64_t gi = tile_start + i;
  const int32_t* args = p.grad_args + s.grad_args_begin;
  auto load = [&](int32_t id) -> T { return id == 0 ? x[gi] : *reg(vals, sub, stride, id, tile, i); };
  auto adj = [&](int32_t id) -> T* { return reg(adjs, sub, stride, id, tile, i); };
  // Gradients start at -0, the exact identity of addition (-0 + v == v for every v, -0 included):
  // the first contribution stays as it is, as in torch and the CPU loops.
  bool reached_x = false;
  auto acc = [&](int32_t id, T v) {
    *adj(id) += v;
    reached_x = reached_x || id == 0;
  };
  for (int32_t pc = s.grad_begin; pc < s.grad_end; ++pc) {
    const int4 ins = p.grad_code[pc];
    *reg(vals, sub, stride, ins.y, tile, i) = forward_step<T>(ins, args, load);
  }
  const int32_t* offsets = p.tape_offsets + s.tape_offsets_begin;
  for (int32_t k = 0; k < s.n_fns; ++k) {
    const int64_t row = (s.first_fn + k) * n + gi;
    const int32_t root = p.roots[s.first_fn + k];  // roots are stored in function order
    if (values) values[row] = load(root);
    if (!grads) continue;
    *adj(0) = T(-0.0);
    reached_x = false;
    for (int32_t t = offsets[k]; t < offsets[k + 1]; ++t) *adj(p.tapes[t] + 1) = T(-0.0);
    *adj(root) = grad_out ? grad_out[gi] : T(1);
    for (int32_t t = offsets[k]; t < offsets[k + 1]; ++t) {
      const int4 ins = p.grad_code[s.grad_begin + p.tapes[t]];
      backward_step<T>(ins, args, load(ins.y), *adj(ins.y), load, acc);
    }
    grads[row] = root == 0 || reached_x ? *adj(0) : T(0);  // no path from x: zero(x), one(x)
  }
}

// The programs' instructions on the device, uploaded for the call (they are small).
class DeviceUpload {
 public:
  DeviceUpload(const Program& program, cudaStream_t stream) : stream_(stream) {
    std::vector<int4> code, grad_code;
    std::vector<int32_t> args, grad_args, roots, tape_offsets, tapes;
    std::vector<SubHeader> subs;
    for (const SubProgram& sp : program.subs) {
      SubHeader h{};
      h.code_begin = static_cast<int32_t>(code.size());
      for (const Instr& ins : sp.code) code.push_back(make_int4(ins.op, ins.dst, ins.a, ins.b));
      h.code_end = static_cast<int32_t>(code.size());
      h.args_begin = static_cast<int32_t>(args.size());
      args.insert(args.end(), sp.args.begin(), sp.args.end());
      h.n_regs = sp.n_regs;
      h.grad_begin = static_cast<int32_t>(grad_code.size());
      for (const Instr& ins : sp.grad_code) grad_code.push_back(make_int4(ins.op, ins.dst, ins.a, ins.b));
      h.grad_end = static_cast<int32_t>(grad_code.size());
      h.grad_args_begin = static_cast<int32_t>(grad_args.size());
      grad_args.insert(grad_args.end(), sp.grad_args.begin(), sp.grad_args.end());
      h.tape_offsets_begin = static_cast<int32_t>(tape_offsets.size());
      const int32_t tape_base = static_cast<int32_t>(tapes.size());
      for (int32_t o : sp.tape_offsets) tape_offsets.push_back(o + tape_base);
      tapes.insert(tapes.end(), sp.tapes.begin(), sp.tapes.end());
      roots.insert(roots.end(), sp.roots.begin(), sp.roots.end());
      h.first_fn = sp.first_fn;
      h.n_fns = sp.n_fns;
      subs.push_back(h);
    }
    p.code = upload(code);
    p.args = upload(args);
    p.grad_code = upload(grad_code);
    p.grad_args = upload(grad_args);
    p.roots = upload(roots);
    p.tape_offsets = upload(tape_offsets);
    p.tapes = upload(tapes);
    p.subs = upload(subs);
  }
  ~DeviceUpload() {
    for (void* ptr : owned_) cudaFreeAsync(ptr, stream_);
  }
  DevicePrograms p{};

 private:
  template <class V>
  const V* upload(std::vector<V> host) {
    if (host.empty()) host.resize(1);  // never a null table
    void* dev = nullptr;
    check(cudaMallocAsync(&dev, host.size() * sizeof(V), stream_), "cudaMallocAsync");
    owned_.push_back(dev);
    check(cudaMemcpyAsync(dev, host.data(), host.size() * sizeof(V), cudaMemcpyHostToDevice, stream_),
          "cudaMemcpyAsync");
    // the host vector dies with this call: wait until the copy has read it
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    return static_cast<const V*>(dev);
  }
  cudaStream_t stream_;
  std::vector<void*> owned_;
};

}  // namespace

template <class T>
void evaluate_cuda(const Program& program, const T* x, int64_t n, const T* grad_out, T* values, T* grads,
                   int64_t stream_handle) {
  if (n == 0 || program.n_fns == 0) return;
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_handle);
  DeviceUpload up(program, stream);
  const int64_t n_subs = static_cast<int64_t>(program.subs.size());
  const bool with_grads = grads != nullptr;
  const int64_t stride = with_grads ? program.max_nodes : std::max(program.max_regs, 1);
  const int64_t tile = std::min(n, kMaxTile);
  const int64_t reg_elems = n_subs * stride * tile;
  T* scratch = nullptr;
  check(cudaMallocAsync(reinterpret_cast<void**>(&scratch), reg_elems * (with_grads ? 2 : 1) * sizeof(T), stream),
        "cudaMallocAsync");
  for (int64_t start = 0; start < n; start += tile) {
    const int64_t len = std::min(tile, n - start);
    const dim3 grid(static_cast<unsigned>((len + kThreads - 1) / kThreads), static_cast<unsigned>(n_subs));
    if (with_grads) {
      evaluate_bwd_kernel<T><<<grid, kThreads, 0, stream>>>(up.p, x, grad_out, scratch, scratch + reg_elems, values,
                                                            grads, n, stride, tile, start, len);
    } else {
      evaluate_fwd_kernel<T><<<grid, kThreads, 0, stream>>>(up.p, x, scratch, values, n, stride, tile, start, len);
    }
    check(cudaGetLastError(), "evaluate kernel launch");
  }
  check(cudaFreeAsync(scratch, stream), "cudaFreeAsync");
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
