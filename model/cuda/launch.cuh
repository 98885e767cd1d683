/* How the CUDA backend's kernels are launched and find their dynamic
 * shared memory, in the two builds of the same sources: nvcc's (the real
 * GPU) and the test suite's emulation, which compiles these files as C++
 * with its own CUDA headers first on the include path (tests/cuda_emu/)
 * and runs every CUDA thread of a block as a fiber on the CPU. The chevron
 * syntax and `extern __shared__` arrays are the two things C++ cannot
 * spell, so kernels use these macros for them and plain CUDA otherwise. */
#ifndef LT_MODEL_CUDA_LAUNCH_CUH
#define LT_MODEL_CUDA_LAUNCH_CUH

#include <cuda_runtime.h>

#ifdef LT_CUDA_EMU
/* lt_cuda_emu_launch and lt_cuda_emu_dynamic_shared come with the
 * emulation's cuda_runtime.h. */
#define LT_LAUNCH(kernel, grid, block, shmem, stream, ...)                                         \
    lt_cuda_emu_launch(#kernel, reinterpret_cast<const void *>(&kernel), dim3(grid), dim3(block),  \
                       (size_t)(shmem), (stream), [=]() { kernel(__VA_ARGS__); })
#define LT_DYNAMIC_SHARED(type, name) type *name = (type *)lt_cuda_emu_dynamic_shared()
#else
#define LT_LAUNCH(kernel, grid, block, shmem, stream, ...)                                         \
    kernel<<<(grid), (block), (size_t)(shmem), (stream)>>>(__VA_ARGS__)
/* One byte array for every kernel (nvcc wants one type per name), viewed
 * as the kernel's type. */
#define LT_DYNAMIC_SHARED(type, name)                                                              \
    extern __shared__ __align__(16) unsigned char lt_dynamic_shared_[];                            \
    type *name = reinterpret_cast<type *>(lt_dynamic_shared_)
#endif

#endif
