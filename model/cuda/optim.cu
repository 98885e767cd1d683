/* The CUDA backend's optimizer ops (model/cuda/optim.cuh). The element
 * update is core/optim_math.h's lt_adamw_update, the CPU's own function;
 * this file adds only the launches and the sum of squares' reduction. */
#include "model/cuda/optim.cuh"

#include <math.h>

#include "core/optim_math.h"
#include "model/cuda/internal.cuh"

namespace {

constexpr unsigned kThreads = 256;       /* every kernel here runs blocks of this many */
constexpr size_t kSumsqBlocks = 1024;    /* at most; a fixed cap keeps the order a function of n */
constexpr size_t kElementwiseBlocks = 65536;

unsigned blocks_for(size_t n, size_t cap) {
    const size_t b = (n + kThreads - 1) / kThreads;
    return (unsigned)(b < cap ? b : cap);
}

/* The sum of x over the block's threads, in a fixed tree: every thread
 * calls it (it synchronises the block) and gets the sum. sh: kThreads
 * doubles of shared memory. */
__device__ double block_sum(double x, double *sh) {
    const unsigned t = threadIdx.x;
    sh[t] = x;
    __syncthreads();
    for (unsigned s = kThreads / 2; s > 0; s >>= 1) {
        if (t < s) sh[t] += sh[t + s];
        __syncthreads();
    }
    const double sum = sh[0];
    __syncthreads(); /* sh is free again when the caller returns */
    return sum;
}

/* partial[b] = the squares of block b's grid-stride range: thread i of
 * block b takes elements b * kThreads + i, then every gridDim.x * kThreads. */
__global__ void sumsq_partial_kernel(const float *__restrict__ x, size_t n,
                                     double *__restrict__ partial) {
    __shared__ double sh[kThreads];
    const size_t stride = (size_t)gridDim.x * kThreads;
    double acc = 0.0;
    for (size_t i = (size_t)blockIdx.x * kThreads + threadIdx.x; i < n; i += stride) {
        const double y = (double)x[i]; /* a float squared is exact in double */
        acc += y * y;
    }
    const double s = block_sum(acc, sh);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

/* *out = the sum of partial[0..count), one block. */
__global__ void sumsq_final_kernel(const double *__restrict__ partial, unsigned count,
                                   double *__restrict__ out) {
    __shared__ double sh[kThreads];
    double acc = 0.0;
    for (unsigned i = threadIdx.x; i < count; i += kThreads) acc += partial[i];
    const double s = block_sum(acc, sh);
    if (threadIdx.x == 0) *out = s;
}

__global__ void scale_kernel(float *__restrict__ x, size_t n, float c) {
    const size_t stride = (size_t)gridDim.x * kThreads;
    for (size_t i = (size_t)blockIdx.x * kThreads + threadIdx.x; i < n; i += stride) x[i] *= c;
}

__global__ void adamw_kernel(float *__restrict__ p, const float *__restrict__ g,
                             float *__restrict__ m, float *__restrict__ v, size_t n,
                             lt_adamw_scalars s) {
    const lt_adamw_scalars sc = s;
    const size_t stride = (size_t)gridDim.x * kThreads;
    for (size_t i = (size_t)blockIdx.x * kThreads + threadIdx.x; i < n; i += stride)
        lt_adamw_update(&sc, g[i], &p[i], &m[i], &v[i]);
}

} // namespace

double lt_cuda_sumsq(const lt_ops *o, const float *x, size_t n) {
    if (n == 0) return 0.0;
    const unsigned blocks = blocks_for(n, kSumsqBlocks);
    double *partial = (double *)lt_cuda_scratch(o, "sumsq", ((size_t)blocks + 1) * sizeof(double));
    if (!partial) return NAN;
    double *out = partial + blocks;
    cudaStream_t stream = lt_cuda_stream(o);
    LT_LAUNCH(sumsq_partial_kernel, blocks, kThreads, 0, stream, x, n, partial);
    lt_cuda_after_launch(o, "sumsq");
    LT_LAUNCH(sumsq_final_kernel, 1, kThreads, 0, stream, partial, blocks, out);
    lt_cuda_after_launch(o, "sumsq");
    double host = NAN;
    cudaError_t e = cudaMemcpyAsync(&host, out, sizeof host, cudaMemcpyDeviceToHost, stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(stream);
    if (e != cudaSuccess) {
        lt_cuda_fail(o, "sumsq", e);
        return NAN;
    }
    return host;
}

void lt_cuda_scale(const lt_ops *o, float *x, size_t n, float c) {
    if (n == 0) return;
    LT_LAUNCH(scale_kernel, blocks_for(n, kElementwiseBlocks), kThreads, 0, lt_cuda_stream(o), x,
              n, c);
    lt_cuda_after_launch(o, "scale");
}

void lt_cuda_adamw(const lt_ops *o, float *params, const float *grads, float *m, float *v,
                   size_t n, const lt_adamw_scalars *s) {
    if (n == 0) return;
    LT_LAUNCH(adamw_kernel, blocks_for(n, kElementwiseBlocks), kThreads, 0, lt_cuda_stream(o),
              params, grads, m, v, n, *s);
    lt_cuda_after_launch(o, "adamw");
}
