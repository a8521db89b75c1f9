// CPU evaluation of compiled programs: work items are (sub-program, block of inputs) pairs, and
// each instruction runs as one loop over a block, a loop the compiler vectorizes.
#pragma once
#include <cstdint>

#include "expr/program.h"

namespace aqf {

// x: [n]; seed: [n] or null (tangent 1); values: [n_fns, n] or null; tangents: [n_fns, n] or null.
// tangents[f] = seed * f'(x) computed in forward mode alongside the values.
template <class T>
void evaluate_cpu(const Program& program, const T* x, int64_t n, const T* seed, T* values, T* tangents);

}  // namespace aqf

namespace aqf {

// One operator over whole rows: y[i] = op(args[0][i], ...), values only. n_args is 1, 2, or
// two or more for the n-ary operators.
template <class T>
void apply_op_cpu(int32_t op, const T* const* args, int n_args, T* y, int64_t n);

}  // namespace aqf
