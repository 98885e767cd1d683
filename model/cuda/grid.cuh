/* Launch geometry the CUDA backend's element-wise kernels share: blocks
 * of LT_CUDA_THREADS threads over a flat range of elements, at most
 * LT_CUDA_MAX_BLOCKS of them, each thread striding over the rest. The cap
 * keeps a launch near the GPU's resident-thread count (132 SMs x 2048 on
 * an H100) and the emulated build's fibers few. */
#ifndef LT_MODEL_CUDA_GRID_CUH
#define LT_MODEL_CUDA_GRID_CUH

#include <stddef.h>

constexpr int LT_CUDA_THREADS = 256; /* a multiple of the warp */
constexpr int LT_CUDA_MAX_BLOCKS = 4096;

/* Blocks for `total` elements (at least 1, so total = 0 launches none
 * only because callers return before). */
static inline unsigned lt_cuda_blocks_for(size_t total) {
    const size_t b = (total + LT_CUDA_THREADS - 1) / LT_CUDA_THREADS;
    return (unsigned)(b < (size_t)LT_CUDA_MAX_BLOCKS ? (b ? b : 1) : LT_CUDA_MAX_BLOCKS);
}

/* for each element e of [0, total) this thread owns */
#define LT_GRID_STRIDE(e, total)                                                                   \
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < (size_t)(total);           \
         e += (size_t)gridDim.x * blockDim.x)

#endif
