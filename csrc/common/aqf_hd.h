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
