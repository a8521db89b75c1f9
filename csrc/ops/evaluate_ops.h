// Checks the arrays handed to an evaluation, then runs it on their device.
#pragma once
#include <cstdint>

#include "expr/program.h"
#include "ops/array_view.h"

namespace aqf {

// x: [*shape] float32/float64; seed: like x, or null; values / tangents: [n_fns, *shape] of x's
// dtype and device, or null. At least one of values / tangents. stream: CUDA stream handle.
void evaluate(const Program& program, const ArrayView& x, const ArrayView* seed, const ArrayView* values,
              const ArrayView* tangents, int64_t stream);

bool cuda_available();

}  // namespace aqf
