#include "cpu/evaluate_cpu.h"
#include "cpu/kernels.h"

#include <algorithm>
#include <vector>

#include "common/ops.h"
#include "cpu/bessel_block.h"
#include "cpu/thread_pool.h"

namespace aqf {
namespace AQF_CPU_KERNELS_NS {  // compiled once per CPU level: cpu/kernels.h
namespace {

// Elements per work item: a block's registers (`rows` of them) should stay in the core's L2 cache,
// and blocks should be long, as each item pays a fixed cost (dispatch, pointer set-up).
constexpr int64_t kRowBudget = 65536;  // floats or doubles: 256-512 KiB
constexpr int64_t kMaxBlock = 4096;

int64_t block_for(int64_t rows) {
  return std::max<int64_t>(64, std::min<int64_t>(kMaxBlock, kRowBudget / std::max<int64_t>(rows, 1) / 64 * 64));
}

// ---- forward: one loop per instruction ---------------------------------------------------
template <class Op, class T>
void unary_loop(const T* __restrict x, T* __restrict y, int64_t len) {
  for (int64_t i = 0; i < len; ++i) y[i] = Op::f(x[i]);
}
template <class Op, class T>
void binary_loop(const T* __restrict a, const T* __restrict b, T* __restrict y, int64_t len) {
  for (int64_t i = 0; i < len; ++i) y[i] = Op::f(a[i], b[i]);
}
template <class Op, class T>
void fold_loop(const T* __restrict a, T* __restrict acc, int64_t len) {
  for (int64_t i = 0; i < len; ++i) acc[i] = Op::fold(acc[i], a[i]);
}

// Operand pointers of one block: val[operand] -> values, adj[operand] -> gradients.
// One per thread, on its own cache lines: threads write their Block on every work item.
template <class T>
struct alignas(64) Block {
  std::vector<T*> val, adj;
  std::vector<const T*> nary_val;  // backward_nary: the operands' value and gradient rows
  std::vector<T*> nary_adj;
  std::vector<T> tmp0, ones;
  std::vector<uint8_t> has_grad;  // backward: whether a node's gradient row holds a contribution yet
  BesselScratch bessel;
};

bool is_bessel(int32_t op) { return op == OP_BESSEL_I0E || op == OP_BESSEL_I1E; }

template <class T>
void forward_nary(int32_t op, const int32_t* operands, int n_args, Block<T>& blk, T* y, int64_t len) {
  std::copy(blk.val[operands[0]], blk.val[operands[0]] + len, y);
  for (int k = 1; k < n_args; ++k) {
    const T* a = blk.val[operands[k]];
    switch (op) {
      case OP_SUM_N: fold_loop<op::SumN>(a, y, len); break;
      case OP_PROD_N: fold_loop<op::ProdN>(a, y, len); break;
      case OP_MAX_N: fold_loop<op::MaxN>(a, y, len); break;
      default: fold_loop<op::MinN>(a, y, len); break;
    }
  }
}

template <class T>
void forward(const Instr& ins, const int32_t* args, Block<T>& blk, int64_t len) {
  T* y = blk.val[ins.dst];
  if (ins.op >= kFirstNary) {
    forward_nary(ins.op, args + ins.a, ins.b, blk, y, len);
    return;
  }
  const T* a = blk.val[ins.a];
  if (is_bessel(ins.op)) {
    bessel_ie_block(a, y, len, ins.op == OP_BESSEL_I1E ? 1 : 0, blk.bessel);
    return;
  }
  switch (ins.op) {
#define AQF_UNARY_CASE(E, C, S) \
  case OP_##E:                  \
    unary_loop<op::C>(a, y, len); \
    return;
    AQF_UNARY_OPS(AQF_UNARY_CASE)
#undef AQF_UNARY_CASE
#define AQF_BINARY_CASE(E, C, S)                 \
  case OP_##E:                                   \
    binary_loop<op::C>(a, blk.val[ins.b], y, len); \
    return;
    AQF_BINARY_OPS(AQF_BINARY_CASE)
#undef AQF_BINARY_CASE
  }
}

// ---- backward: each instruction's vector-Jacobian product goes into its operands' gradients --
// The first contribution to a gradient is stored, later ones are added (Acc), as torch's autograd
// does: no zero fills, and -0 stays -0.

// A unary op's vector-Jacobian product at element i: Plain from x, y and g; the Bessel functions'
// from the other order's value too, which bessel_backward computes for the whole block first.
// (Forced inline: a call per element would keep the loop from vectorizing.)
template <class Op>
struct Plain {
  template <class T> AQF_INLINE static T d(T x, T y, T g, const T*, int64_t) {
    return op::nan_operand_vjp<Op>(x, Op::b(x, y, g));
  }
};
template <class Op>
struct GivenOther {
  template <class T> AQF_INLINE static T d(T x, T y, T g, const T* other, int64_t i) {
    return op::nan_operand_vjp<Op>(x, Op::b_given(x, y, g, other[i]));
  }
};

template <class D, class T, bool Acc>
void unary_backward_loop(const T* __restrict x, const T* __restrict y, const T* __restrict g,
                         const T* __restrict other, T* __restrict gx, int64_t len) {
  for (int64_t i = 0; i < len; ++i) {
    const T d = D::d(x[i], y[i], g[i], other, i);
    gx[i] = Acc ? gx[i] + d : d;
  }
}
// A binary op's gradient pointers are not restrict: max(x, x) writes one operand twice.
template <class Op, class T, bool AccA, bool AccB>
void binary_backward_loop(const T* __restrict a, const T* __restrict b, const T* __restrict y, const T* __restrict g,
                          T* ga, T* gb, int64_t len) {
  for (int64_t i = 0; i < len; ++i) {
    T da, db;
    Op::b(a[i], b[i], y[i], g[i], da, db);
    op::nan_operands_vjp<Op>(a[i], b[i], da, db);
    ga[i] = AccA ? ga[i] + da : da;
    gb[i] = AccB ? gb[i] + db : db;
  }
}
template <class D, class T>
void unary_backward(const T* x, const T* y, const T* g, const T* other, T* gx, bool acc, int64_t len) {
  if (acc) {
    unary_backward_loop<D, T, true>(x, y, g, other, gx, len);
  } else {
    unary_backward_loop<D, T, false>(x, y, g, other, gx, len);
  }
}
template <class T>
void bessel_backward(int32_t op, const T* x, const T* y, const T* g, T* gx, bool acc, Block<T>& blk, int64_t len) {
  T* other = blk.tmp0.data();
  if (op == OP_BESSEL_I0E) {
    bessel_ie_block(x, other, len, 1, blk.bessel);
    unary_backward<GivenOther<op::BesselI0e>>(x, y, g, other, gx, acc, len);
  } else {
    bessel_ie_block(x, other, len, 0, blk.bessel);
    unary_backward<GivenOther<op::BesselI1e>>(x, y, g, other, gx, acc, len);
  }
}
template <class Op, class T>
void binary_backward(const T* a, const T* b, const T* y, const T* g, T* ga, T* gb, bool acc_a, bool acc_b,
                     int64_t len) {
  if (acc_a) {
    acc_b ? binary_backward_loop<Op, T, true, true>(a, b, y, g, ga, gb, len)
          : binary_backward_loop<Op, T, true, false>(a, b, y, g, ga, gb, len);
  } else {
    acc_b ? binary_backward_loop<Op, T, false, true>(a, b, y, g, ga, gb, len)
          : binary_backward_loop<Op, T, false, false>(a, b, y, g, ga, gb, len);
  }
}

// The n-ary operators' gradients, element by element through the shared op::nary_vjp (these
// operators are rare in search spaces; their loops do not need to vectorize).
template <class T>
void backward_nary(int32_t op, const int32_t* operands, int n, const T* y, const T* g, Block<T>& blk, int64_t len) {
  blk.nary_val.resize(n);
  blk.nary_adj.resize(n);
  for (int k = 0; k < n; ++k) {
    blk.nary_val[k] = blk.val[operands[k]];
    blk.nary_adj[k] = blk.adj[operands[k]];
  }
  const T* const* val = blk.nary_val.data();
  T* const* adj = blk.nary_adj.data();
  for (int64_t i = 0; i < len; ++i) {
    op::nary_vjp<T>(
        op, n, y[i], g[i], [&](int k) { return val[k][i]; }, [&](int k, T v) { adj[k][i] += v; });
  }
}

template <class T>
void backward(const Instr& ins, const int32_t* args, Block<T>& blk, int64_t len) {
  const T* y = blk.val[ins.dst];
  const T* g = blk.adj[ins.dst];
  uint8_t* has = blk.has_grad.data();
  if (ins.op >= kFirstNary) {
    const int32_t* operands = args + ins.a;
    for (int k = 0; k < ins.b; ++k) {  // n-ary loops accumulate: start their fresh operands at 0
      if (!has[operands[k]]) std::fill(blk.adj[operands[k]], blk.adj[operands[k]] + len, T(0));
      has[operands[k]] = 1;
    }
    backward_nary(ins.op, operands, ins.b, y, g, blk, len);
    return;
  }
  const bool acc_a = has[ins.a];
  has[ins.a] = 1;
  if (is_bessel(ins.op)) {
    bessel_backward(ins.op, blk.val[ins.a], y, g, blk.adj[ins.a], acc_a, blk, len);
    return;
  }
  if (ins.op < kFirstBinary) {
    switch (ins.op) {
#define AQF_UNARY_CASE(E, C, S)                                                                       \
  case OP_##E:                                                                                        \
    unary_backward<Plain<op::C>>(blk.val[ins.a], y, g, static_cast<const T*>(nullptr), blk.adj[ins.a], \
                                 acc_a, len);                                                         \
    return;
      AQF_UNARY_OPS(AQF_UNARY_CASE)
#undef AQF_UNARY_CASE
    }
    return;
  }
  const bool acc_b = has[ins.b];  // after marking a: max(x, x) adds its second half
  has[ins.b] = 1;
  switch (ins.op) {
#define AQF_BINARY_CASE(E, C, S)                                                                                \
  case OP_##E:                                                                                                  \
    binary_backward<op::C>(blk.val[ins.a], blk.val[ins.b], y, g, blk.adj[ins.a], blk.adj[ins.b], acc_a, acc_b, \
                           len);                                                                                \
    return;
    AQF_BINARY_OPS(AQF_BINARY_CASE)
#undef AQF_BINARY_CASE
  }
}

// Calls fn(sub, start, len, block, rows, blk) for every (sub-program, block of inputs) pair, on the
// pool's threads; `rows` is the calling thread's scratch of `n_rows` rows of `block` elements.
template <class T, class Fn>
void for_each_work_item(const Program& program, int64_t n, int64_t n_rows, const Fn& fn) {
  const int64_t block = block_for(n_rows);
  const int64_t n_blocks = (n + block - 1) / block;
  const int64_t n_subs = static_cast<int64_t>(program.subs.size());
  const int64_t per_thread = std::max<int64_t>(n_rows, 1) * block;
  std::vector<T> scratch(per_thread * num_threads());
  std::vector<Block<T>> blocks(num_threads());
  parallel_for(n_blocks * n_subs, [&](int64_t item, int thread) {
    const int64_t start = (item / n_subs) * block;
    fn(program.subs[item % n_subs], start, std::min(block, n - start), block, scratch.data() + per_thread * thread,
       blocks[thread]);
  });
}

template <class T>
void evaluate_values(const Program& program, const T* x, int64_t n, T* values) {
  for_each_work_item<T>(program, n, program.max_regs,
                        [&](const SubProgram& sub, int64_t start, int64_t len, int64_t block, T* regs, Block<T>& blk) {
    blk.val.assign(1 + sub.n_regs + sub.n_fns, nullptr);
    blk.val[0] = const_cast<T*>(x + start);
    for (int32_t r = 1; r <= sub.n_regs; ++r) blk.val[r] = regs + (r - 1) * block;
    for (int32_t k = 0; k < sub.n_fns; ++k) blk.val[1 + sub.n_regs + k] = values + (sub.first_fn + k) * n + start;
    for (const Instr& ins : sub.code) forward(ins, sub.args.data(), blk, len);
  });
}

template <class T>
void evaluate_with_grads(const Program& program, const T* x, int64_t n, const T* grad_out, T* values, T* grads) {
  // every node keeps a value row and a gradient row
  for_each_work_item<T>(program, n, 2 * int64_t(program.max_nodes),
                        [&](const SubProgram& sub, int64_t start, int64_t len, int64_t block, T* rows, Block<T>& blk) {
    T* adjs = rows + int64_t(program.max_nodes) * block;
    blk.val.resize(sub.n_nodes);
    blk.adj.resize(sub.n_nodes);
    blk.tmp0.resize(block);
    blk.val[0] = const_cast<T*>(x + start);
    for (int32_t id = 0; id < sub.n_nodes; ++id) {
      if (id > 0) blk.val[id] = rows + id * block;
      blk.adj[id] = adjs + id * block;
    }
    for (const Instr& ins : sub.grad_code) forward(ins, sub.grad_args.data(), blk, len);
    if (!grad_out && blk.ones.size() != static_cast<size_t>(block)) blk.ones.assign(block, T(1));
    T* const seed = grad_out ? const_cast<T*>(grad_out + start) : blk.ones.data();
    for (int32_t k = 0; k < sub.n_fns; ++k) {
      const int64_t row = (sub.first_fn + k) * n + start;
      const int32_t root = sub.roots[k];
      if (values) std::copy(blk.val[root], blk.val[root] + len, values + row);
      if (root == 0) {  // f(x) = x
        std::copy(seed, seed + len, grads + row);
        continue;
      }
      // The sweep reads the seed in place and writes x's gradient straight into the output row;
      // the root's own row is never written during its sweep (it is no operand of its subgraph).
      T* const root_row = blk.adj[root];
      T* const x_row = blk.adj[0];
      blk.adj[root] = seed;
      blk.adj[0] = grads + row;
      blk.has_grad.assign(sub.n_nodes, 0);
      const int32_t* tape = sub.tapes.data() + sub.tape_offsets[k];
      const int32_t tape_len = sub.tape_offsets[k + 1] - sub.tape_offsets[k];
      for (int32_t t = 0; t < tape_len; ++t) backward(sub.grad_code[tape[t]], sub.grad_args.data(), blk, len);
      if (!blk.has_grad[0]) std::fill(grads + row, grads + row + len, T(0));  // no path from x: zero(x), one(x)
      blk.adj[root] = root_row;
      blk.adj[0] = x_row;
    }
  });
}

}  // namespace

template <class T>
void evaluate_cpu(const Program& program, const T* x, int64_t n, const T* grad_out, T* values, T* grads) {
  if (n == 0 || program.n_fns == 0) return;
  if (grads) {
    evaluate_with_grads(program, x, n, grad_out, values, grads);
  } else if (values) {
    evaluate_values(program, x, n, values);
  }
}

template <class T>
void apply_op_cpu(int32_t op, const T* const* args, int n_args, T* y, int64_t n) {
  std::vector<int32_t> operands(n_args);
  for (int k = 0; k < n_args; ++k) operands[k] = k;
  const Instr ins{op, n_args, 0, op >= kFirstNary ? n_args : (n_args > 1 ? 1 : 0)};
  Block<T> blk;
  blk.val.resize(n_args + 1);
  for (int64_t start = 0; start < n; start += kMaxBlock) {
    for (int k = 0; k < n_args; ++k) blk.val[k] = const_cast<T*>(args[k] + start);
    blk.val[n_args] = y + start;
    forward(ins, operands.data(), blk, std::min(kMaxBlock, n - start));
  }
}

template void evaluate_cpu<float>(const Program&, const float*, int64_t, const float*, float*, float*);
template void evaluate_cpu<double>(const Program&, const double*, int64_t, const double*, double*, double*);
template void apply_op_cpu<float>(int32_t, const float* const*, int, float*, int64_t);
template void apply_op_cpu<double>(int32_t, const double* const*, int, double*, int64_t);

}  // namespace AQF_CPU_KERNELS_NS
}  // namespace aqf
