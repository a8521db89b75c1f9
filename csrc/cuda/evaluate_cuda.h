// CUDA evaluation of compiled programs: one thread per input element, one grid row per
// sub-program, interpreting the same instructions with the same shared math as the CPU.
#pragma once
#include <cstdint>

#include "expr/program.h"

namespace aqf {

// Device pointers, with the meaning of evaluate_cpu's arguments. stream: a cudaStream_t as an
// integer (0 = legacy default stream).
template <class T>
void evaluate_cuda(const Program& program, const T* x, int64_t n, const T* grad_out, T* values, T* grads,
                   int64_t stream);

// Whether a CUDA device can be used (a driver and at least one GPU).
bool cuda_device_available();

}  // namespace aqf
