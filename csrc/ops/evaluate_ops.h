// Checks the arrays handed to an evaluation, then runs it on their device.
#pragma once
#include <cstdint>

#include "expr/program.h"
#include "ops/array_view.h"

namespace aqf {

// x: [*shape] float32/float64; grad_out: like x, or null for ones; values / grads: [n_fns, *shape]
// of x's dtype and device, or null (at least one). grads[f] = grad_out * f'(x). stream: a CUDA
// stream handle.
void evaluate(const Program& program, const ArrayView& x, const ArrayView* grad_out, const ArrayView* values,
              const ArrayView* grads, int64_t stream);

bool cuda_available();

}  // namespace aqf
