// Host/device qualifier for the math shared by the CPU loops and the CUDA kernels.
#pragma once

#if defined(__CUDACC__)
#define AQF_HD __host__ __device__
#else
#define AQF_HD
#endif
