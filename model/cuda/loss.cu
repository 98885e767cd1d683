/* The classifier loss on the GPU: cross_entropy over whole rows and the
 * blocked ce_block / ce_finish, with the CPU backend's semantics
 * (model/cpu/ops.c: ignored targets, the count of maxima kept apart from
 * the other exps so a confident row keeps its tiny loss, the target's term
 * kept out of each block). One block of 256 threads per row; a thread
 * takes columns tid, tid + 256, ...; row sums are a butterfly in each warp
 * and the warps' sums added in warp order, so bits do not vary run to run.
 * The per-row state of ce_block has the CPU's layout.
 *
 * Against the CPU backend (fp32 both), bits differ where:
 *   - exp: expf here (CUDA's: 2 ulp at most; glibc's in the emulated
 *     build: under 1 ulp), a polynomial of about 2 ulp on the CPU (which
 *     also flushes exp(x) to 0 below x = -87, where expf is subnormal);
 *   - the sum of the non-max exps: per-thread float sums and the tree
 *     here, vector lanes in float then double on the CPU.
 * The loss's own formula (log and log1p in double) is the CPU's, and so is
 * the state's arithmetic. Expected against the CPU (and held by
 * tests/unit/test_cuda_attention.c): losses within 1e-6 relative, a
 * confident row's ~1e-16 loss included (its digits are the sum of the
 * small exps, each within 2 ulp of the CPU's); gradients within 2e-6 of
 * the larger of grad_scale and the row's largest element, ce_finish's dx
 * within 2e-6 of the row's largest (2 ulp of exp, a few from the sums
 * and the reciprocal). The emulated build measured 7e-8 at most,
 * and the losses equal to the CPU's bits. Logits more than 87 below the
 * row's max are where the two exps differ most: the CPU's is 0 there,
 * expf a subnormal down to -103, so a row whose only other terms lie there
 * has a loss of 0 on the CPU and ~1e-40 here. */
#include "model/cuda/loss.cuh"

#include <math.h>

#include "model/cuda/internal.cuh"

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr unsigned kFull = 0xffffffffu;

/* The per-row state of ce_block, as the CPU keeps it. */
enum { CE_MAX, CE_XT, CE_ET, CE_TIES, CE_REST, CE_FIELDS };
static_assert(CE_FIELDS <= LT_CE_STATE, "LT_CE_STATE holds the per-row fields");

/* Block-wide reductions into every thread: a butterfly in each warp (all
 * lanes get the same bits), then every thread adds the warps' results in
 * warp order. red is the kernel's __shared__ float[kWarps]; the second
 * barrier lets the next reduction reuse it. */
static __device__ __forceinline__ float block_max(float v, float *red) {
    for (int s = 16; s > 0; s >>= 1) v = fmaxf(v, __shfl_xor_sync(kFull, v, s));
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
    __syncthreads();
    float r = red[0];
    for (int w = 1; w < kWarps; w++) r = fmaxf(r, red[w]);
    __syncthreads();
    return r;
}
static __device__ __forceinline__ float block_sum(float v, float *red) {
    for (int s = 16; s > 0; s >>= 1) v += __shfl_xor_sync(kFull, v, s);
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
    __syncthreads();
    float r = red[0];
    for (int w = 1; w < kWarps; w++) r += red[w];
    __syncthreads();
    return r;
}

static __device__ __forceinline__ void zero_row(float *x, int n) {
    for (int j = threadIdx.x; j < n; j += kThreads) x[j] = 0.0f;
}

/* The max of x[0 .. n), over every thread of the block. */
static __device__ __forceinline__ float row_max(const float *x, int n, float *red) {
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < n; j += kThreads) mx = fmaxf(mx, x[j]);
    return block_max(mx, red);
}

/* e = exp(x - mx) over x[0 .. n) but column `skip` (its e is 0), stored
 * back when `store`: the count of entries equal to mx and the sum of the
 * other e, over the block (the CPU's exp_sums). */
static __device__ __forceinline__ void exp_sums(float *x, int n, float mx, int skip, int store,
                                                float *red, float *ties, float *rest) {
    float t = 0.0f, r = 0.0f;
    for (int j = threadIdx.x; j < n; j += kThreads) {
        float e = 0.0f;
        if (j != skip) {
            const float v = x[j];
            e = expf(v - mx);
            if (v == mx) t += 1.0f;
            else r += e;
        }
        if (store) x[j] = e;
    }
    *ties = block_sum(t, red);
    *rest = block_sum(r, red);
}

static __global__ void ce_kernel(float *__restrict__ logits, float *__restrict__ losses,
        const int32_t *__restrict__ targets, int V, float grad_scale, int want_grad) {
    __shared__ float red[kWarps];
    const int i = blockIdx.x, t = targets[i];
    float *x = logits + (size_t)i * V;
    if (t < 0) { /* the whole block leaves together */
        if (threadIdx.x == 0) losses[i] = 0.0f;
        if (want_grad) zero_row(x, V);
        return;
    }
    const float xt = x[t]; /* read before any thread's exp pass overwrites it */
    const float mx = row_max(x, V, red);
    float ties, rest;
    exp_sums(x, V, mx, -1, want_grad, red, &ties, &rest);
    const double nties = ties, sum_rest = rest, sum = nties + sum_rest;
    if (threadIdx.x == 0)
        losses[i] = (float)((double)(mx - xt) + log(nties) + log1p(sum_rest / nties));
    if (!want_grad) return;
    const float inv = (float)(grad_scale / sum);
    /* each thread rescales the columns it stored */
    for (int j = threadIdx.x; j < V; j += kThreads) {
        float g = x[j] * inv;
        if (j == t) g -= grad_scale;
        x[j] = g;
    }
}

static __global__ void ce_block_kernel(float *__restrict__ blk, int ld, int cols, int col0,
        const int32_t *__restrict__ targets, float *__restrict__ st, float *__restrict__ dx,
        int dim, int want_grad) {
    __shared__ float red[kWarps];
    const int i = blockIdx.x, t = targets[i];
    float *x = blk + (size_t)i * ld;
    if (t < 0) {
        if (want_grad) zero_row(x, cols);
        return;
    }
    /* Every thread reads the state (thread 0 writes it at the end, after
     * the reductions' barriers) and the target's logit (before the exp
     * pass that overwrites it). */
    float *s = st + (size_t)i * LT_CE_STATE;
    float smax = -INFINITY, et = 0.0f, ties = 0.0f, rest = 0.0f;
    if (col0 > 0) smax = s[CE_MAX], et = s[CE_ET], ties = s[CE_TIES], rest = s[CE_REST];
    const int tl = t - col0, here = tl >= 0 && tl < cols;
    const float xt = here ? x[tl] : 0.0f;
    float mx = row_max(x, cols, red);
    if (mx > smax) {
        /* the old max's ties join the rest, all scaled to the new max */
        if (col0 > 0) {
            const float a = expf(smax - mx);
            rest = (rest + ties) * a;
            et *= a;
            ties = 0.0f;
            if (want_grad && dx)
                for (int d = threadIdx.x; d < dim; d += kThreads) dx[(size_t)i * dim + d] *= a;
        }
    } else {
        mx = smax;
    }
    if (here) et = expf(xt - mx);
    float bt, br;
    exp_sums(x, cols, mx, here ? tl : -1, want_grad, red, &bt, &br);
    if (threadIdx.x == 0) {
        s[CE_MAX] = mx;
        if (here) s[CE_XT] = xt;
        s[CE_ET] = et;
        s[CE_TIES] = ties + bt;
        s[CE_REST] = rest + br;
    }
}

static __global__ void ce_finish_kernel(float *__restrict__ losses, const float *__restrict__ st,
        const int32_t *__restrict__ targets, float grad_scale, float *__restrict__ dx, int dim,
        const float *__restrict__ cls) {
    const int i = blockIdx.x, t = targets[i];
    float *dxi = dx ? dx + (size_t)i * dim : nullptr;
    if (t < 0) {
        if (threadIdx.x == 0) losses[i] = 0.0f;
        if (dxi) zero_row(dxi, dim);
        return;
    }
    const float *s = st + (size_t)i * LT_CE_STATE;
    /* sum = big + rest, big the terms near 1: log(big) + log1p(rest/big)
     * keeps a confident row's tiny loss (the CPU's formula) */
    const double big = (double)s[CE_ET] + s[CE_TIES], rest = s[CE_REST];
    if (threadIdx.x == 0)
        losses[i] = (float)((double)(s[CE_MAX] - s[CE_XT]) + log(big) + log1p(rest / big));
    if (!dxi) return;
    const float inv = (float)(grad_scale / (big + rest));
    const float others = s[CE_TIES] + s[CE_REST];
    const float *ct = cls + (size_t)t * dim;
    for (int d = threadIdx.x; d < dim; d += kThreads) dxi[d] = (dxi[d] - others * ct[d]) * inv;
}

void lt_cuda_cross_entropy(const lt_ops *o, float *logits, float *losses, const int32_t *targets,
                           int n, int V, float grad_scale, int want_grad) {
    if (n <= 0) return;
    LT_LAUNCH(ce_kernel, n, kThreads, 0, lt_cuda_stream(o), logits, losses, targets, V, grad_scale,
              want_grad);
    lt_cuda_after_launch(o, "cross_entropy");
}

void lt_cuda_ce_block(const lt_ops *o, float *blk, int ld, int n, int cols, int col0,
                      const int32_t *targets, float *st, float *dx, int dim, int want_grad) {
    if (n <= 0) return;
    LT_LAUNCH(ce_block_kernel, n, kThreads, 0, lt_cuda_stream(o), blk, ld, cols, col0, targets, st,
              dx, dim, want_grad);
    lt_cuda_after_launch(o, "ce_block");
}

void lt_cuda_ce_finish(const lt_ops *o, float *losses, const float *st, const int32_t *targets,
                       int n, float grad_scale, float *dx, int dim, const float *cls) {
    if (n <= 0) return;
    LT_LAUNCH(ce_finish_kernel, n, kThreads, 0, lt_cuda_stream(o), losses, st, targets,
              grad_scale, dx, dim, cls);
    lt_cuda_after_launch(o, "ce_finish");
}
