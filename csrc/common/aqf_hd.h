// Host/device qualifiers for the math shared by the CPU loops and the CUDA kernels. The math is
// force-inlined: a call left in a CPU loop stops the compiler from vectorizing it.
#pragma once

#if defined(__CUDACC__)
#define AQF_HD __host__ __device__
#define AQF_INLINE __forceinline__
#else
#define AQF_HD
#define AQF_INLINE inline __attribute__((always_inline))
#endif

// The CPU kernels are compiled once per instruction level (cpu/kernels.h). Header code that they
// compile with their own flags, and that is not forced inline, lives in a namespace named after the
// level, so that the linker cannot merge an AVX-512 copy of it with the baseline one (C++ would
// call them one function: same name, so one definition kept). Files outside the kernels, and the
// CUDA files, are the baseline.
#ifndef AQF_CPU_LEVEL
#define AQF_CPU_LEVEL baseline
#endif
#define AQF_PASTE_(a, b) a##b
#define AQF_PASTE(a, b) AQF_PASTE_(a, b)
#define AQF_CPU_CODE_BEGIN inline namespace AQF_PASTE(code_, AQF_CPU_LEVEL) {
#define AQF_CPU_CODE_END }
