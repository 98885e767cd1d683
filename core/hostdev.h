/* Functions that both the host and CUDA device code compile: the dropout
 * RNG (core/rng.h), the quantized-weight decode (model/quant.h) and the
 * optimizer's update (core/optim_math.h) are written once, marked
 * LT_HOST_DEVICE, and give the CPU and the GPU the same bits. Outside nvcc (the C build, and the test suite's CUDA
 * emulation, which compiles the kernels as C++) the mark is empty. */
#ifndef LT_CORE_HOSTDEV_H
#define LT_CORE_HOSTDEV_H

#if defined(__CUDACC__)
#define LT_HOST_DEVICE __host__ __device__
#else
#define LT_HOST_DEVICE
#endif

/* The C declarations of a header, seen from C++ (the CUDA sources). */
#ifdef __cplusplus
#define LT_EXTERN_C_BEGIN extern "C" {
#define LT_EXTERN_C_END }
#else
#define LT_EXTERN_C_BEGIN
#define LT_EXTERN_C_END
#endif

#endif
