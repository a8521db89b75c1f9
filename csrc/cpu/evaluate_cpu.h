// CPU evaluation of compiled programs: work items are (sub-program, block of inputs) pairs, and
// each instruction runs as one loop over a block, a loop the compiler vectorizes.
#pragma once
#include <cstdint>

#include "expr/program.h"

namespace aqf {

// x: [n]; values: [n_fns, n] or null. grads: [n_fns, n] or null (needs a program compiled
// with_grad): grads[f] = grad_out * f'(x), by a backward sweep that applies torch's backward
// formulas in torch's order; grad_out: [n] or null for ones.
template <class T>
void evaluate_cpu(const Program& program, const T* x, int64_t n, const T* grad_out, T* values, T* grads);

// One operator over whole rows: y[i] = op(args[0][i], ...), values only. n_args is 1, 2, or
// two or more for the n-ary operators.
template <class T>
void apply_op_cpu(int32_t op, const T* const* args, int n_args, T* y, int64_t n);

}  // namespace aqf
