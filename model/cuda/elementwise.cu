/* The CUDA backend's row-wise and element-wise ops: embedding, RMSNorm,
 * RoPE, bias, SwiGLU, dropout. Each mirrors the CPU backend's arithmetic
 * (model/cpu/ops.c) expression for expression; what can differ, and by
 * how much:
 *   - embedding_fwd/bwd, bias_add, rope, dropout: the same operations in
 *     the same order, so the same bits, except where a compiler contracts
 *     a*b + c into one FMA differently (nvcc contracts by default, the CPU
 *     build with -ffp-contract=fast): rope and dropout's accumulate then
 *     differ by at most an ulp or so per element.
 *   - rmsnorm (the sum of squares, the backward's dot product) and the
 *     column sums (rmsnorm's dw, bias_bwd) add in another order: a block
 *     tree here, SIMD lanes on the CPU; rows in chunks of 64 here, then
 *     the chunks in order. Relative differences of a few fp32 ulps times
 *     log2 of the length, about 1e-6 for the sizes the model uses.
 *   - swiglu: expf here, the CPU's polynomial exp there (both within 2 ulp
 *     of exp), so the sigmoid and its products differ by a few ulps.
 * Every reduction runs in a fixed order set by the sizes alone (no float
 * atomics, nothing that depends on scheduling), so results are the same
 * bits run to run and on every GPU of a job. */
#include <math.h>

#include "core/rng.h"
#include "model/config.h"
#include "model/cuda/elementwise.cuh"
#include "model/cuda/grid.cuh"
#include "model/cuda/internal.cuh"

constexpr int THREADS = LT_CUDA_THREADS;
constexpr int COL_ROWS = 64; /* rows per partial of a column sum */

/* The sum of v over the block, the same bits in every thread: a butterfly
 * within each warp, then every warp adds the warps' sums the same way.
 * blockDim.x is a multiple of 32; red is 32 floats of shared memory, free
 * again when this returns. */
static __device__ float block_sum(float v, float *red) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int lane = (int)(threadIdx.x & 31u), warp = (int)(threadIdx.x >> 5);
    const int nwarps = (int)(blockDim.x >> 5);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float s = lane < nwarps ? red[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    __syncthreads();
    return s;
}

/* ------------------------------------------------------------- embedding */

__global__ void lt_embedding_fwd_kernel(float *out, const int32_t *tokens, const float *table,
                                        int dim, size_t total) {
    LT_GRID_STRIDE(e, total) {
        const size_t i = e / (size_t)dim, j = e % (size_t)dim;
        out[e] = table[(size_t)tokens[i] * dim + j];
    }
}

void lt_cuda_embedding_fwd(const lt_ops *o, float *out, const int32_t *tokens, const float *table,
                           int n, int dim) {
    if (n <= 0 || dim <= 0) return;
    const size_t total = (size_t)n * dim;
    LT_LAUNCH(lt_embedding_fwd_kernel, lt_cuda_blocks_for(total), THREADS, 0, lt_cuda_stream(o),
              out, tokens, table, dim, total);
    lt_cuda_after_launch(o, "embedding_fwd");
}

/* The backward adds the rows of dout into the rows of their tokens, in
 * position order, as the CPU's serial loop does, so the bits are the
 * CPU's: no atomics, no sort. next[i] links each position to the next one
 * with the same token (an O(n) scan per position, O(n^2) worst case when
 * all tokens differ: 2.7e8 cached int compares for n = 16384, spread over
 * n threads); the first position of each token is the head of its chain,
 * and one thread per (head, column) walks the chain, adding in order:
 * O(n * dim) adds in all, the longest chain (the most frequent token)
 * setting the latency. */
__global__ void lt_embedding_chain_kernel(int *next, int *has_prev, const int32_t *tokens, int n) {
    LT_GRID_STRIDE(e, (size_t)n) {
        const int i = (int)e, t = tokens[i];
        int nx = -1;
        for (int j = i + 1; j < n; j++)
            if (tokens[j] == t) {
                nx = j;
                break;
            }
        next[i] = nx;
        /* the one position whose next is nx writes it: no race */
        if (nx >= 0) has_prev[nx] = 1;
    }
}

__global__ void lt_embedding_bwd_kernel(float *dtable, const int32_t *tokens, const float *dout,
                                        const int *next, const int *has_prev, int n, int dim) {
    const int j = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (j >= dim) return;
    for (int i = (int)blockIdx.y; i < n; i += (int)gridDim.y) {
        if (has_prev[i]) continue;
        float *d = dtable + (size_t)tokens[i] * dim + j;
        float acc = *d;
        for (int k = i; k >= 0; k = next[k]) acc += dout[(size_t)k * dim + j];
        *d = acc;
    }
}

void lt_cuda_embedding_bwd(const lt_ops *o, float *dtable, const int32_t *tokens, const float *dout,
                           int n, int dim) {
    if (n <= 0 || dim <= 0) return;
    int *next = (int *)lt_cuda_scratch(o, "embedding_bwd", 2 * (size_t)n * sizeof(int));
    if (!next) return;
    int *has_prev = next + n;
    cudaStream_t s = lt_cuda_stream(o);
    lt_cuda_fail(o, "embedding_bwd", cudaMemsetAsync(has_prev, 0, (size_t)n * sizeof(int), s));
    LT_LAUNCH(lt_embedding_chain_kernel, lt_cuda_blocks_for((size_t)n), THREADS, 0, s, next,
              has_prev, tokens, n);
    lt_cuda_after_launch(o, "embedding_bwd (chains)");
    const dim3 grid((unsigned)((dim + THREADS - 1) / THREADS), (unsigned)(n < 65535 ? n : 65535));
    LT_LAUNCH(lt_embedding_bwd_kernel, grid, THREADS, 0, s, dtable, tokens, dout, next, has_prev, n,
              dim);
    lt_cuda_after_launch(o, "embedding_bwd");
}

/* ------------------------------------------------------------ column sums */

/* out[j] += sum over rows i of a[i,j] (or of a[i,j] * x[i,j] * rstd[i]
 * when x is given: RMSNorm's dw), rows in chunks of `rows` summed in
 * order into partial[chunk, j], then the chunks in order: the order
 * depends on the sizes only. */
__global__ void lt_colsum_partial_kernel(float *partial, const float *a, const float *x,
                                         const float *rstd, int n, int cols, int rows) {
    const int j = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (j >= cols) return;
    const int r0 = (int)blockIdx.y * rows, r1 = r0 + rows < n ? r0 + rows : n;
    float acc = 0.0f;
    if (x) {
        for (int i = r0; i < r1; i++) {
            const size_t e = (size_t)i * cols + j;
            acc += a[e] * x[e] * rstd[i];
        }
    } else {
        for (int i = r0; i < r1; i++) acc += a[(size_t)i * cols + j];
    }
    partial[(size_t)blockIdx.y * cols + j] = acc;
}

__global__ void lt_colsum_finish_kernel(float *out, const float *partial, int chunks, int cols) {
    const int j = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (j >= cols) return;
    float acc = 0.0f;
    for (int c = 0; c < chunks; c++) acc += partial[(size_t)c * cols + j];
    out[j] += acc;
}

static void column_sums(const lt_ops *o, const char *op, float *out, const float *a, const float *x,
                        const float *rstd, int n, int cols) {
    /* 64 rows a chunk, more when there would be more chunks than a grid's
     * y extent */
    int rows = COL_ROWS;
    if ((n + rows - 1) / rows > 65535) rows = (n + 65534) / 65535;
    const int chunks = (n + rows - 1) / rows;
    float *partial = (float *)lt_cuda_scratch(o, op, (size_t)chunks * cols * sizeof(float));
    if (!partial) return;
    cudaStream_t s = lt_cuda_stream(o);
    const unsigned col_blocks = (unsigned)((cols + THREADS - 1) / THREADS);
    LT_LAUNCH(lt_colsum_partial_kernel, dim3(col_blocks, (unsigned)chunks), THREADS, 0, s, partial,
              a, x, rstd, n, cols, rows);
    lt_cuda_after_launch(o, op);
    LT_LAUNCH(lt_colsum_finish_kernel, col_blocks, THREADS, 0, s, out, partial, chunks, cols);
    lt_cuda_after_launch(o, op);
}

/* --------------------------------------------------------------- RMSNorm */

/* One block per row. */
__global__ void lt_rmsnorm_fwd_kernel(float *out, float *rstd, const float *x, const float *w,
                                      int dim, float eps) {
    __shared__ float red[32];
    const size_t row = blockIdx.x;
    const float *xi = x + row * dim;
    float *oi = out + row * dim;
    float ss = 0.0f;
    for (int j = (int)threadIdx.x; j < dim; j += (int)blockDim.x) ss += xi[j] * xi[j];
    ss = block_sum(ss, red);
    const float r = 1.0f / sqrtf(ss / (float)dim + eps);
    if (threadIdx.x == 0) rstd[row] = r;
    for (int j = (int)threadIdx.x; j < dim; j += (int)blockDim.x) oi[j] = xi[j] * r * w[j];
}

void lt_cuda_rmsnorm_fwd(const lt_ops *o, float *out, float *rstd, const float *x, const float *w,
                         int n, int dim, float eps) {
    if (n <= 0 || dim <= 0) return;
    LT_LAUNCH(lt_rmsnorm_fwd_kernel, (unsigned)n, THREADS, 0, lt_cuda_stream(o), out, rstd, x, w,
              dim, eps);
    lt_cuda_after_launch(o, "rmsnorm_fwd");
}

__global__ void lt_rmsnorm_bwd_kernel(float *dx, const float *dout, const float *x, const float *w,
                                      const float *rstd, int dim) {
    __shared__ float red[32];
    const size_t row = blockIdx.x;
    const float *xi = x + row * dim, *gi = dout + row * dim;
    float *dxi = dx + row * dim;
    const float r = rstd[row];
    float dot = 0.0f;
    for (int j = (int)threadIdx.x; j < dim; j += (int)blockDim.x) dot += gi[j] * w[j] * xi[j];
    dot = block_sum(dot, red);
    const float c = r * r * r * dot / (float)dim;
    for (int j = (int)threadIdx.x; j < dim; j += (int)blockDim.x)
        dxi[j] += gi[j] * w[j] * r - xi[j] * c;
}

void lt_cuda_rmsnorm_bwd(const lt_ops *o, float *dx, float *dw, const float *dout, const float *x,
                         const float *w, const float *rstd, int n, int dim) {
    if (n <= 0 || dim <= 0) return;
    LT_LAUNCH(lt_rmsnorm_bwd_kernel, (unsigned)n, THREADS, 0, lt_cuda_stream(o), dx, dout, x, w,
              rstd, dim);
    lt_cuda_after_launch(o, "rmsnorm_bwd");
    if (dw) column_sums(o, "rmsnorm_bwd (dw)", dw, dout, x, rstd, n, dim);
}

/* ------------------------------------------------------------------ RoPE */

/* One thread per rotated pair: (row, head, i). The angle's cos and sin
 * are the caller's tables (the CPU's), so both backends rotate by the
 * same floats. */
__global__ void lt_rope_kernel(float *x, int stride, int T, int n_heads, int head_dim,
                               const float *cos_t, const float *sin_t, int layout, float sign,
                               size_t total) {
    const int half = head_dim / 2;
    LT_GRID_STRIDE(e, total) {
        const int i = (int)(e % (size_t)half);
        const size_t rest = e / (size_t)half;
        const int h = (int)(rest % (size_t)n_heads);
        const size_t row = rest / (size_t)n_heads;
        const int pos = (int)(row % (size_t)T);
        const float c = cos_t[(size_t)pos * half + i], sn = sign * sin_t[(size_t)pos * half + i];
        float *v = x + row * (size_t)stride + (size_t)h * head_dim;
        const int ia = layout == LT_ROPE_INTERLEAVED ? 2 * i : i;
        const int ib = layout == LT_ROPE_INTERLEAVED ? 2 * i + 1 : i + half;
        const float a = v[ia], b = v[ib];
        v[ia] = a * c - b * sn;
        v[ib] = a * sn + b * c;
    }
}

void lt_cuda_rope(const lt_ops *o, float *x, int stride, int B, int T, int n_heads, int head_dim,
                  const float *cos_t, const float *sin_t, int layout, int inverse) {
    if (B <= 0 || T <= 0 || n_heads <= 0 || head_dim < 2) return;
    const size_t total = (size_t)B * T * n_heads * (head_dim / 2);
    LT_LAUNCH(lt_rope_kernel, lt_cuda_blocks_for(total), THREADS, 0, lt_cuda_stream(o), x, stride,
              T, n_heads, head_dim, cos_t, sin_t, layout, inverse ? -1.0f : 1.0f, total);
    lt_cuda_after_launch(o, "rope");
}

/* ------------------------------------------------------------------ bias */

__global__ void lt_bias_add_kernel(float *y, const float *b, int cols, size_t total) {
    LT_GRID_STRIDE(e, total) y[e] += b[e % (size_t)cols];
}

void lt_cuda_bias_add(const lt_ops *o, float *y, const float *b, int n, int cols) {
    if (n <= 0 || cols <= 0) return;
    const size_t total = (size_t)n * cols;
    LT_LAUNCH(lt_bias_add_kernel, lt_cuda_blocks_for(total), THREADS, 0, lt_cuda_stream(o), y, b,
              cols, total);
    lt_cuda_after_launch(o, "bias_add");
}

void lt_cuda_bias_bwd(const lt_ops *o, float *db, const float *dy, int n, int cols) {
    if (n <= 0 || cols <= 0) return;
    column_sums(o, "bias_bwd", db, dy, NULL, NULL, n, cols);
}

/* ---------------------------------------------------------------- SwiGLU */

/* h = silu(g) * u, written as the CPU's vector path writes it:
 * g * sigmoid(g) * u with sigmoid(g) = 1 / (1 + exp(-g)). */
__global__ void lt_swiglu_fwd_kernel(float *h, const float *gate_up, int hidden, size_t total) {
    LT_GRID_STRIDE(e, total) {
        const size_t i = e / (size_t)hidden, j = e % (size_t)hidden;
        const float *g = gate_up + i * 2 * hidden;
        const float gv = g[j], sig = 1.0f / (1.0f + expf(-gv));
        h[e] = gv * sig * g[hidden + j];
    }
}

void lt_cuda_swiglu_fwd(const lt_ops *o, float *h, const float *gate_up, int n, int hidden) {
    if (n <= 0 || hidden <= 0) return;
    const size_t total = (size_t)n * hidden;
    LT_LAUNCH(lt_swiglu_fwd_kernel, lt_cuda_blocks_for(total), THREADS, 0, lt_cuda_stream(o), h,
              gate_up, hidden, total);
    lt_cuda_after_launch(o, "swiglu_fwd");
}

__global__ void lt_swiglu_bwd_kernel(float *dgate_up, const float *dh, const float *gate_up,
                                     int hidden, size_t total) {
    LT_GRID_STRIDE(e, total) {
        const size_t i = e / (size_t)hidden, j = e % (size_t)hidden;
        const size_t gi = i * 2 * hidden + j, ui = gi + hidden;
        const float g = gate_up[gi], u = gate_up[ui], d = dh[e];
        const float sig = 1.0f / (1.0f + expf(-g));
        dgate_up[ui] = d * g * sig;
        dgate_up[gi] = d * u * sig * (1.0f + g * (1.0f - sig));
    }
}

void lt_cuda_swiglu_bwd(const lt_ops *o, float *dgate_up, const float *dh, const float *gate_up,
                        int n, int hidden) {
    if (n <= 0 || hidden <= 0) return;
    const size_t total = (size_t)n * hidden;
    LT_LAUNCH(lt_swiglu_bwd_kernel, lt_cuda_blocks_for(total), THREADS, 0, lt_cuda_stream(o),
              dgate_up, dh, gate_up, hidden, total);
    lt_cuda_after_launch(o, "swiglu_bwd");
}

/* --------------------------------------------------------------- dropout */

/* The mask is core/rng.h's counter-based uniform at the element's global
 * index, the function the CPU calls: the same keep bits on both. */
__global__ void lt_dropout_kernel(float *out, const float *x, int cols, float p, float keep_scale,
                                  uint64_t key, uint64_t first_row, int accumulate, size_t total) {
    LT_GRID_STRIDE(e, total) {
        const uint64_t i = e / (size_t)cols, j = e % (size_t)cols;
        const float m =
            lt_rng_uniform(key, (first_row + i) * (uint64_t)cols + j) >= p ? keep_scale : 0.0f;
        out[e] = accumulate ? out[e] + x[e] * m : x[e] * m;
    }
}

void lt_cuda_dropout(const lt_ops *o, float *out, const float *x, int n, int cols, float p,
                     uint64_t key, uint64_t first_row, int accumulate) {
    if (n <= 0 || cols <= 0) return;
    const size_t total = (size_t)n * cols;
    const float keep_scale = 1.0f / (1.0f - p);
    LT_LAUNCH(lt_dropout_kernel, lt_cuda_blocks_for(total), THREADS, 0, lt_cuda_stream(o), out, x,
              cols, p, keep_scale, key, first_row, accumulate, total);
    lt_cuda_after_launch(o, "dropout");
}
