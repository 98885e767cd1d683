/* LT_HOST_DEVICE marks an inline function that the CPU code and the CUDA
 * kernels share (one definition of the arithmetic whose bits must agree:
 * the dropout RNG in core/rng.h, the optimizer's update in
 * core/optim_math.h). Under nvcc it compiles for both; everywhere else,
 * the test suite's emulated CUDA build included, it is a plain function. */
#ifndef LT_CORE_HOST_DEVICE_H
#define LT_CORE_HOST_DEVICE_H

#if defined(__CUDACC__)
#define LT_HOST_DEVICE __host__ __device__
#else
#define LT_HOST_DEVICE
#endif

#endif
