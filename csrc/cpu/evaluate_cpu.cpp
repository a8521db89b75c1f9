#include "cpu/evaluate_cpu.h"

#include <algorithm>
#include <vector>

#include "common/ops.h"
#include "cpu/thread_pool.h"

namespace aqf {
namespace {

constexpr int64_t kBlock = 512;  // elements per work item: registers of a sub-program stay in L1/L2

template <class Op, class T>
void unary_loop(const T* __restrict x, T* __restrict y, int64_t len) {
  for (int64_t i = 0; i < len; ++i) y[i] = Op::f(x[i]);
}
template <class Op, class T>
void unary_tangent_loop(const T* __restrict x, const T* __restrict dx, T* __restrict y, T* __restrict dy, int64_t len) {
  for (int64_t i = 0; i < len; ++i) {
    const T v = Op::f(x[i]);
    dy[i] = Op::d(x[i], v, dx[i]);
    y[i] = v;
  }
}
template <class Op, class T>
void binary_loop(const T* __restrict a, const T* __restrict b, T* __restrict y, int64_t len) {
  for (int64_t i = 0; i < len; ++i) y[i] = Op::f(a[i], b[i]);
}
template <class Op, class T>
void binary_tangent_loop(const T* __restrict a, const T* __restrict b, const T* __restrict da, const T* __restrict db,
                         T* __restrict y, T* __restrict dy, int64_t len) {
  for (int64_t i = 0; i < len; ++i) {
    const T v = Op::f(a[i], b[i]);
    dy[i] = Op::d(a[i], b[i], v, da[i], db[i]);
    y[i] = v;
  }
}
template <class Op, class T>
void fold_loop(const T* __restrict a, T* __restrict acc, int64_t len) {
  for (int64_t i = 0; i < len; ++i) acc[i] = Op::fold(acc[i], a[i]);
}
template <class Op, class T>
void fold_tangent_loop(const T* __restrict a, const T* __restrict da, T* __restrict acc, T* __restrict dacc, int64_t len) {
  for (int64_t i = 0; i < len; ++i) {
    dacc[i] = Op::dfold(acc[i], a[i], dacc[i], da[i]);
    acc[i] = Op::fold(acc[i], a[i]);
  }
}
// amax/amin tangent: the mean of the tangents of the arguments equal to the result (NaN when
// the result is NaN, as torch's count of zero ties gives).
template <class T>
void extremum_tangent(const T* const* args, const T* const* dargs, int n_args, const T* __restrict y, T* __restrict dy,
                      T* __restrict count, int64_t len) {
  std::fill(dy, dy + len, T(0));
  std::fill(count, count + len, T(0));
  for (int k = 0; k < n_args; ++k) {
    const T* __restrict a = args[k];
    const T* __restrict da = dargs[k];
    for (int64_t i = 0; i < len; ++i) {
      const bool tie = a[i] == y[i];
      dy[i] += tie ? da[i] : T(0);
      count[i] += tie ? T(1) : T(0);
    }
  }
  for (int64_t i = 0; i < len; ++i) dy[i] = dy[i] / count[i];
}

template <class T>
struct Block {
  std::vector<const T*> val;  // operand -> values of this block
  std::vector<const T*> tan;  // operand -> tangents of this block
  std::vector<const T*> arg_val, arg_tan;
  std::vector<T> count;
};

template <class T>
void run_nary(const Instr& ins, const SubProgram& sub, Block<T>& blk, T* y, T* dy, int64_t len) {
  const int n_args = ins.b;
  for (int k = 0; k < n_args; ++k) {
    blk.arg_val[k] = blk.val[sub.args[ins.a + k]];
    if (dy) blk.arg_tan[k] = blk.tan[sub.args[ins.a + k]];
  }
  std::copy(blk.arg_val[0], blk.arg_val[0] + len, y);
  if (dy && (ins.op == OP_SUM_N || ins.op == OP_PROD_N)) std::copy(blk.arg_tan[0], blk.arg_tan[0] + len, dy);
  for (int k = 1; k < n_args; ++k) {
    switch (ins.op) {
      case OP_SUM_N:
        if (dy) fold_tangent_loop<op::SumN>(blk.arg_val[k], blk.arg_tan[k], y, dy, len);
        else fold_loop<op::SumN>(blk.arg_val[k], y, len);
        break;
      case OP_PROD_N:
        if (dy) fold_tangent_loop<op::ProdN>(blk.arg_val[k], blk.arg_tan[k], y, dy, len);
        else fold_loop<op::ProdN>(blk.arg_val[k], y, len);
        break;
      case OP_MAX_N: fold_loop<op::MaxN>(blk.arg_val[k], y, len); break;
      default: fold_loop<op::MinN>(blk.arg_val[k], y, len); break;
    }
  }
  if (dy && (ins.op == OP_MAX_N || ins.op == OP_MIN_N)) {
    extremum_tangent(blk.arg_val.data(), blk.arg_tan.data(), n_args, y, dy, blk.count.data(), len);
  }
}

template <class T>
void run_instruction(const Instr& ins, const SubProgram& sub, Block<T>& blk, T* y, T* dy, int64_t len) {
  const T* a = blk.val[ins.a];
  switch (ins.op) {
#define AQF_UNARY_CASE(E, C, S)                                                    \
  case OP_##E:                                                                     \
    if (dy) unary_tangent_loop<op::C>(a, blk.tan[ins.a], y, dy, len);              \
    else unary_loop<op::C>(a, y, len);                                             \
    return;
    AQF_UNARY_OPS(AQF_UNARY_CASE)
#undef AQF_UNARY_CASE
#define AQF_BINARY_CASE(E, C, S)                                                                   \
  case OP_##E:                                                                                     \
    if (dy) binary_tangent_loop<op::C>(a, blk.val[ins.b], blk.tan[ins.a], blk.tan[ins.b], y, dy, len); \
    else binary_loop<op::C>(a, blk.val[ins.b], y, len);                                            \
    return;
    AQF_BINARY_OPS(AQF_BINARY_CASE)
#undef AQF_BINARY_CASE
    default:
      run_nary(ins, sub, blk, y, dy, len);
  }
}

}  // namespace

template <class T>
void evaluate_cpu(const Program& program, const T* x, int64_t n, const T* seed, T* values, T* tangents) {
  if (n == 0 || program.n_fns == 0) return;
  const bool with_tangent = tangents != nullptr;
  const int64_t n_blocks = (n + kBlock - 1) / kBlock;
  const int64_t n_subs = static_cast<int64_t>(program.subs.size());
  int32_t max_fns = 0;
  for (const auto& s : program.subs) max_fns = std::max(max_fns, s.n_fns);
  // Per thread: scratch registers (+ tangents), output rows when the caller wants no values,
  // and ones for the input's tangent when there is no seed.
  const int64_t per_thread = (int64_t(program.max_regs) * (with_tangent ? 2 : 1) + (values ? 0 : max_fns) + 1) * kBlock;
  std::vector<T> scratch(per_thread * num_threads());
  std::vector<Block<T>> blocks(num_threads());

  parallel_for(n_blocks * n_subs, [&](int64_t item, int thread) {
    const SubProgram& sub = program.subs[item % n_subs];
    const int64_t start = (item / n_subs) * kBlock;
    const int64_t len = std::min(kBlock, n - start);
    T* regs = scratch.data() + per_thread * thread;
    T* tregs = regs + int64_t(program.max_regs) * kBlock;
    T* vrows = tregs + (with_tangent ? int64_t(program.max_regs) * kBlock : 0);  // values not kept
    T* ones = vrows + (values ? 0 : int64_t(max_fns) * kBlock);
    Block<T>& blk = blocks[thread];
    const size_t n_operands = 1 + sub.n_regs + sub.n_fns;
    blk.val.assign(n_operands, nullptr);
    blk.tan.assign(n_operands, nullptr);
    blk.arg_val.resize(std::max(program.max_nary, 1));
    blk.arg_tan.resize(std::max(program.max_nary, 1));
    blk.count.resize(kBlock);
    blk.val[0] = x + start;
    if (with_tangent) {
      if (seed) {
        blk.tan[0] = seed + start;
      } else {
        std::fill(ones, ones + len, T(1));
        blk.tan[0] = ones;
      }
    }
    for (int32_t r = 1; r <= sub.n_regs; ++r) {
      blk.val[r] = regs + (r - 1) * kBlock;
      blk.tan[r] = tregs + (r - 1) * kBlock;
    }
    for (int32_t k = 0; k < sub.n_fns; ++k) {
      const int64_t row = sub.first_fn + k;
      blk.val[1 + sub.n_regs + k] = values ? values + row * n + start : vrows + k * kBlock;
      if (with_tangent) blk.tan[1 + sub.n_regs + k] = tangents + row * n + start;
    }
    for (const Instr& ins : sub.code) {
      T* y = const_cast<T*>(blk.val[ins.dst]);
      T* dy = with_tangent ? const_cast<T*>(blk.tan[ins.dst]) : nullptr;
      run_instruction(ins, sub, blk, y, dy, len);
    }
  });
}

template <class T>
void apply_op_cpu(int32_t op, const T* const* args, int n_args, T* y, int64_t n) {
  SubProgram sub;
  Block<T> blk;
  blk.val.assign(args, args + n_args);
  blk.arg_val.resize(n_args);
  Instr ins{op, 0, 0, n_args > 1 ? 1 : 0};
  if (op >= kFirstNary) {
    for (int k = 0; k < n_args; ++k) sub.args.push_back(k);
    ins.b = n_args;
  }
  for (int64_t start = 0; start < n; start += kBlock) {
    for (int k = 0; k < n_args; ++k) blk.val[k] = args[k] + start;
    run_instruction(ins, sub, blk, y + start, static_cast<T*>(nullptr), std::min(kBlock, n - start));
  }
}

template void apply_op_cpu<float>(int32_t, const float* const*, int, float*, int64_t);
template void evaluate_cpu<float>(const Program&, const float*, int64_t, const float*, float*, float*);
template void evaluate_cpu<double>(const Program&, const double*, int64_t, const double*, double*, double*);

}  // namespace aqf
