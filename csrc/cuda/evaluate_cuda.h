// CUDA evaluation of compiled programs: one thread per input element, one grid row per
// sub-program, interpreting the same instructions with the same shared math as the CPU.
#pragma once
#include <cstdint>

#include "expr/program.h"

namespace aqf {

// Pointers are device pointers. x: [n]; seed: [n] or null; values: [n_fns, n] or null;
// tangents: [n_fns, n] or null. stream: a cudaStream_t as an integer (0 = legacy default).
template <class T>
void evaluate_cuda(const Program& program, const T* x, int64_t n, const T* seed, T* values, T* tangents,
                   int64_t stream);

// Whether a CUDA device can be used (a driver and at least one GPU).
bool cuda_device_available();

}  // namespace aqf
