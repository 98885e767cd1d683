/* Causal grouped-query attention on the GPU, fp32, FlashAttention-2 style
 * (the CPU's model/cpu/attention.c computes the same thing another way).
 *
 * Forward: a block takes 16 query rows of one head (4 warps, 4 rows
 * each) and walks the key tiles up to its last row, 32 keys a tile (one
 * per lane) through shared memory, keeping per row the running max m, the
 * exp-sum l relative to it and the unnormalised output (each lane owns
 * head dimensions lane, lane + 32, ...); a tile whose max rises scales the
 * earlier sums by exp(m_old - m_new). The row's log-sum-exp m + log(l) is
 * saved for backward.
 *
 * Backward, three launches and no atomics, so the bits do not depend on
 * scheduling:
 *   1. D = rowsum(dO * O) per (row, head) into scratch;
 *   2. dK, dV: a block owns 32 keys of one kv head and walks the query
 *      tiles from its first key to the end, for each query head of the
 *      group in order; lanes take one query each to recompute
 *      p = exp(q.k * scale - lse) and dS = p (dO.v - D) scale, then each
 *      warp adds its 8 keys' dV += p dO and dK += dS q over the tile's
 *      queries in order;
 *   3. dQ: a block owns 16 query rows of one head, as the forward, and
 *      adds dQ += dS k over the key tiles in order.
 * dqkv is written, not accumulated: 1. covers nothing of it, 2. writes
 * every K and V column, 3. every Q column.
 *
 * Against the CPU backend (fp32 both), bits differ in three places:
 *   - exp: expf here (CUDA's: 2 ulp at most; glibc's in the emulated
 *     build: under 1 ulp), a polynomial of about 2 ulp on the CPU;
 *   - the softmax's sum: the CPU sums each row's exps at its final max in
 *     vector lanes, this kernel a warp's butterfly per tile of 32 keys and
 *     one rescale by exp(m_old - m_new) (one more rounding) per tile;
 *   - D = dO . O: a sum over lanes and a butterfly here, vector lanes on
 *     the CPU.
 * The scores q.k run over the head dimension in order from 0, as the
 * CPU's (the same bits where both contract to FMAs), and the sums over
 * keys (P V, dS K) and over query rows (dK, dV; the heads of a group in
 * order) run in the CPU's order. So each term of a sum carries a few ulp
 * more or less than the CPU's, plus one rounding per key tile: about
 * (4 + T/32) * 6e-8 relative to the sum of its terms' sizes, a few ulp
 * typically. tests/unit/test_cuda_attention.c measures each output's
 * error relative to that size (sum |term|, with the score's own rounding
 * scale sum |q k| / sqrt(hd) that exp turns into p's relative error) and
 * holds both backends to 1e-6 of it against double precision (16 ulp) and
 * to 2e-6 against each other; the emulated build measured 1.5e-7 at most
 * (T up to 257, hd up to 256). */
#include "model/cuda/attention.cuh"

#include <math.h>

#include "model/cuda/internal.cuh"

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr unsigned kFull = 0xffffffffu;
/* Forward and dQ: query rows per warp and per block; keys per tile. */
constexpr int kRowsPerWarp = 4;
constexpr int kQRows = kWarps * kRowsPerWarp;
constexpr int kKeys = 32;
/* dK/dV: keys per block (kKeysPerWarp per warp), queries per tile (one
 * per lane). */
constexpr int kKeysPerWarp = 8;
constexpr int kKvKeys = kWarps * kKeysPerWarp;
constexpr int kKvQueries = 32;
/* Head dimensions go 32 to a chunk, one per lane: NC chunks per row. */
constexpr int kMaxChunks = 8;
/* More dynamic shared memory than this needs the kernel's opt-in. */
constexpr size_t kDefaultShared = 48 * 1024;

static __device__ __forceinline__ int imin(int a, int b) { return a < b ? a : b; }

/* Butterfly reductions: every lane ends with the same bits (a + b and
 * b + a round alike), in an order fixed by the lane numbers. */
static __device__ __forceinline__ float warp_max(float v) {
    for (int s = 16; s > 0; s >>= 1) v = fmaxf(v, __shfl_xor_sync(kFull, v, s));
    return v;
}
static __device__ __forceinline__ float warp_sum(float v) {
    for (int s = 16; s > 0; s >>= 1) v += __shfl_xor_sync(kFull, v, s);
    return v;
}

/* sum_d a[d] b[d] over d = 0 .. n-1 in order, as the CPU's score loop. */
static __device__ __forceinline__ float dot_seq(const float *a, const float *b, int n) {
    float s = 0.0f;
    for (int d = 0; d < n; d++) s += a[d] * b[d];
    return s;
}

/* rows x hd floats of src (row stride lds; zeros from row `valid` on)
 * into dst (row stride ldd), one row per warp at a time so the reads
 * coalesce. */
static __device__ __forceinline__ void load_rows(float *dst, int ldd, const float *src, size_t lds,
                                                 int rows, int valid, int hd) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (int r = warp; r < rows; r += kWarps)
        for (int d = lane; d < hd; d += 32)
            dst[r * ldd + d] = r < valid ? src[(size_t)r * lds + d] : 0.0f;
}

/* acc[r][c] += sum_{jj < n} w[r][jj] x[jj][lane + 32 c] for a warp's
 * kRowsPerWarp rows, jj in order: the sums over keys (P V, dS K) with the
 * rows' weights w [kRowsPerWarp][kKeys] and x's rows at stride ldx. */
template <int NC>
static __device__ __forceinline__ void add_weighted(float (&acc)[kRowsPerWarp][NC], const float *w,
                                                    const float *x, int ldx, int n, int hd) {
    const int lane = threadIdx.x % 32;
    for (int jj = 0; jj < n; jj++)
        for (int c = 0; c < NC; c++) {
            const int d = lane + 32 * c;
            if (d >= hd) break;
            const float xv = x[jj * ldx + d];
            for (int r = 0; r < kRowsPerWarp; r++) acc[r][c] += w[r * kKeys + jj] * xv;
        }
}

/* dst[lane + 32 c] = a[c] * mul for the lane's dimensions under hd. */
template <int NC>
static __device__ __forceinline__ void store_row(float *dst, const float (&a)[NC], float mul,
                                                 int hd) {
    const int lane = threadIdx.x % 32;
    for (int c = 0; c < NC; c++) {
        const int d = lane + 32 * c;
        if (d < hd) dst[d] = a[c] * mul;
    }
}

/* A query-tile block (forward, dQ): its head h, batch b and first row q0,
 * qkv's widths, and where its batch's rows and its kv head's K and V
 * start. */
struct q_tile {
    int h, b, q0, C, W;
    const float *rows, *kin, *vin;
};
static __device__ __forceinline__ q_tile q_tile_of(const float *qkv, int T, int nh, int nkv,
                                                   int hd) {
    q_tile t;
    t.h = blockIdx.y, t.b = blockIdx.z, t.q0 = blockIdx.x * kQRows;
    t.C = nh * hd, t.W = t.C + 2 * nkv * hd;
    t.rows = qkv + (size_t)t.b * T * t.W;
    t.kin = t.rows + t.C + (size_t)(t.h / (nh / nkv)) * hd;
    t.vin = t.kin + (size_t)nkv * hd;
    return t;
}

/* ------------------------------------------------------------ forward */

/* Shared: q [kQRows][hd], k [kKeys][hd + 1] (lane j reads row j: the odd
 * stride spreads the lanes over the banks), v [kKeys][hd] (lanes read
 * consecutive dimensions), p [kWarps][kRowsPerWarp][kKeys]. */
static size_t fwd_shared_floats(int hd) {
    return (size_t)kQRows * hd + (size_t)kKeys * (hd + 1) + (size_t)kKeys * hd +
           (size_t)kQRows * kKeys;
}

template <int NC>
static __global__ void attn_fwd_kernel(float *__restrict__ out, float *__restrict__ lse,
        const float *__restrict__ qkv, int T, int nh, int nkv, int hd, float scale) {
    LT_DYNAMIC_SHARED(float, sh);
    const int ldk = hd + 1;
    float *qs = sh, *ks = qs + kQRows * hd, *vs = ks + kKeys * ldk, *ps = vs + kKeys * hd;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const q_tile t = q_tile_of(qkv, T, nh, nkv, hd);
    const int h = t.h, b = t.b, q0 = t.q0, C = t.C, W = t.W;
    const float *rows = t.rows, *kin = t.kin, *vin = t.vin;

    load_rows(qs, hd, rows + (size_t)q0 * W + (size_t)h * hd, (size_t)W, kQRows, T - q0, hd);

    /* Rows past the end (q zero) take the last row's mask, so every
     * number stays finite, and are not written. */
    int last[kRowsPerWarp];
    float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][NC];
    for (int r = 0; r < kRowsPerWarp; r++) {
        last[r] = imin(q0 + warp * kRowsPerWarp + r, T - 1);
        m[r] = -INFINITY, l[r] = 0.0f;
        for (int c = 0; c < NC; c++) acc[r][c] = 0.0f;
    }
    float *pw = ps + warp * kRowsPerWarp * kKeys;
    const int kend = imin(q0 + kQRows, T); /* keys [0, kend) are seen by some row */
    for (int k0 = 0; k0 < kend; k0 += kKeys) {
        const int nk = imin(kKeys, kend - k0);
        __syncthreads(); /* q is loaded; the previous tile's k, v are read */
        load_rows(ks, ldk, kin + (size_t)k0 * W, (size_t)W, kKeys, nk, hd);
        load_rows(vs, hd, vin + (size_t)k0 * W, (size_t)W, kKeys, nk, hd);
        __syncthreads();
        const int j = k0 + lane;
        for (int r = 0; r < kRowsPerWarp; r++) {
            float s = dot_seq(qs + (warp * kRowsPerWarp + r) * hd, ks + lane * ldk, hd) * scale;
            if (j > last[r]) s = -INFINITY;
            const float mnew = fmaxf(m[r], warp_max(s));
            /* the reference point for the exps: a row with no key yet
             * (possible only for tile shapes other than these) keeps
             * exp(-inf - 0) = 0 instead of exp(-inf + inf) */
            const float mref = mnew == -INFINITY ? 0.0f : mnew;
            const float alpha = expf(m[r] - mref), p = expf(s - mref);
            l[r] = l[r] * alpha + warp_sum(p);
            m[r] = mnew;
            for (int c = 0; c < NC; c++) acc[r][c] *= alpha;
            pw[r * kKeys + lane] = p;
        }
        __syncwarp(kFull); /* the warp's p row is written */
        add_weighted<NC>(acc, pw, vs, hd, nk, hd);
        /* the next tile's p is written after its __syncthreads */
    }
    for (int r = 0; r < kRowsPerWarp; r++) {
        const int i = q0 + warp * kRowsPerWarp + r;
        if (i >= T) break;
        /* as the CPU: a product by the reciprocal */
        store_row<NC>(out + ((size_t)b * T + i) * C + (size_t)h * hd, acc[r], 1.0f / l[r], hd);
        if (lane == 0) lse[((size_t)b * nh + h) * T + i] = m[r] + logf(l[r]);
    }
}

/* ----------------------------------------------------------- backward */

/* D[b, h, i] = sum_d dO[row, h, d] O[row, h, d], one warp per (row, head). */
static __global__ void attn_rowdot_kernel(float *__restrict__ dvec, const float *__restrict__ dout,
        const float *__restrict__ out, int B, int T, int nh, int hd) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const size_t task = (size_t)blockIdx.x * kWarps + warp, total = (size_t)B * T * nh;
    const size_t t = task < total ? task : total - 1; /* every lane reaches the shuffles */
    const size_t row = t / nh;
    const int h = (int)(t % nh);
    const size_t off = row * (size_t)nh * hd + (size_t)h * hd;
    float s = 0.0f;
    for (int d = lane; d < hd; d += 32) s += dout[off + d] * out[off + d];
    s = warp_sum(s);
    const size_t b = row / T, i = row % T;
    if (lane == 0 && task < total) dvec[(b * nh + h) * T + i] = s;
}

/* Shared: k, v [kKvKeys][hd] (a warp reads one key's row, all lanes the
 * same element), q, dO [kKvQueries][hd + 1] (lane i reads row i), the
 * tile's lse and D, and per warp p and dS [kKeysPerWarp][kKvQueries]. */
static size_t dkdv_shared_floats(int hd) {
    return 2 * (size_t)kKvKeys * hd + 2 * (size_t)kKvQueries * (hd + 1) + 2 * kKvQueries +
           2 * (size_t)kWarps * kKeysPerWarp * kKvQueries;
}

template <int NC>
static __global__ void attn_dkdv_kernel(float *__restrict__ dqkv, const float *__restrict__ dout,
        const float *__restrict__ lse, const float *__restrict__ dvec,
        const float *__restrict__ qkv, int T, int nh, int nkv, int hd, float scale) {
    LT_DYNAMIC_SHARED(float, sh);
    const int ldq = hd + 1;
    float *ks = sh, *vs = ks + kKvKeys * hd, *qs = vs + kKvKeys * hd, *dos = qs + kKvQueries * ldq;
    float *lses = dos + kKvQueries * ldq, *ds_ = lses + kKvQueries, *ps = ds_ + kKvQueries;
    float *dss = ps + kWarps * kKeysPerWarp * kKvQueries;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = blockIdx.y, b = blockIdx.z, k0 = blockIdx.x * kKvKeys;
    const int C = nh * hd, W = C + 2 * nkv * hd, group = nh / nkv;
    const float *rows = qkv + (size_t)b * T * W;
    const size_t kcol = (size_t)C + (size_t)g * hd, vcol = kcol + (size_t)nkv * hd;

    load_rows(ks, hd, rows + (size_t)k0 * W + kcol, (size_t)W, kKvKeys, T - k0, hd);
    load_rows(vs, hd, rows + (size_t)k0 * W + vcol, (size_t)W, kKvKeys, T - k0, hd);

    float dk[kKeysPerWarp][NC], dv[kKeysPerWarp][NC];
    for (int kk = 0; kk < kKeysPerWarp; kk++)
        for (int c = 0; c < NC; c++) dk[kk][c] = dv[kk][c] = 0.0f;
    float *pw = ps + warp * kKeysPerWarp * kKvQueries;
    float *dsw = dss + warp * kKeysPerWarp * kKvQueries;
    for (int hh = 0; hh < group; hh++) {
        const int h = g * group + hh;
        const float *lse_h = lse + ((size_t)b * nh + h) * T, *d_h = dvec + ((size_t)b * nh + h) * T;
        /* queries before k0 see none of this block's keys */
        for (int q0 = k0; q0 < T; q0 += kKvQueries) {
            const int nq = imin(kKvQueries, T - q0);
            __syncthreads(); /* k, v are loaded; the previous tile is read */
            load_rows(qs, ldq, rows + (size_t)q0 * W + (size_t)h * hd, (size_t)W, kKvQueries, nq,
                      hd);
            load_rows(dos, ldq, dout + ((size_t)b * T + q0) * C + (size_t)h * hd, (size_t)C,
                      kKvQueries, nq, hd);
            if (threadIdx.x < kKvQueries) {
                const int i = threadIdx.x;
                lses[i] = i < nq ? lse_h[q0 + i] : 0.0f;
                ds_[i] = i < nq ? d_h[q0 + i] : 0.0f;
            }
            __syncthreads();
            const int i = q0 + lane; /* this lane's query */
            for (int kk = 0; kk < kKeysPerWarp; kk++) {
                const int jl = warp * kKeysPerWarp + kk, j = k0 + jl;
                const float s = dot_seq(qs + lane * ldq, ks + jl * hd, hd) * scale;
                /* masked keys get p = 0, as exp(-inf - lse) on the CPU */
                const float p = i < T && j <= i ? expf(s - lses[lane]) : 0.0f;
                const float dp = dot_seq(dos + lane * ldq, vs + jl * hd, hd);
                pw[kk * kKvQueries + lane] = p;
                dsw[kk * kKvQueries + lane] = p * (dp - ds_[lane]) * scale;
            }
            __syncwarp(kFull); /* the warp's p and dS are written */
            for (int ii = 0; ii < nq; ii++)
                for (int c = 0; c < NC; c++) {
                    const int d = lane + 32 * c;
                    if (d >= hd) break;
                    const float qv = qs[ii * ldq + d], ov = dos[ii * ldq + d];
                    for (int kk = 0; kk < kKeysPerWarp; kk++) {
                        dv[kk][c] += pw[kk * kKvQueries + ii] * ov;
                        dk[kk][c] += dsw[kk * kKvQueries + ii] * qv;
                    }
                }
        }
    }
    for (int kk = 0; kk < kKeysPerWarp; kk++) {
        const int j = k0 + warp * kKeysPerWarp + kk;
        if (j >= T) break;
        float *drow = dqkv + ((size_t)b * T + j) * W;
        store_row<NC>(drow + kcol, dk[kk], 1.0f, hd);
        store_row<NC>(drow + vcol, dv[kk], 1.0f, hd);
    }
}

/* Shared: q, dO [kQRows][hd] (a warp's rows, read by all its lanes
 * alike), k, v [kKeys][hd + 1] (lane j reads row j), dS per warp
 * [kRowsPerWarp][kKeys]. */
static size_t dq_shared_floats(int hd) {
    return 2 * (size_t)kQRows * hd + 2 * (size_t)kKeys * (hd + 1) + (size_t)kQRows * kKeys;
}

template <int NC>
static __global__ void attn_dq_kernel(float *__restrict__ dqkv, const float *__restrict__ dout,
        const float *__restrict__ lse, const float *__restrict__ dvec,
        const float *__restrict__ qkv, int T, int nh, int nkv, int hd, float scale) {
    LT_DYNAMIC_SHARED(float, sh);
    const int ldk = hd + 1;
    float *qs = sh, *dos = qs + kQRows * hd, *ks = dos + kQRows * hd, *vs = ks + kKeys * ldk;
    float *dss = vs + kKeys * ldk;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const q_tile t = q_tile_of(qkv, T, nh, nkv, hd);
    const int h = t.h, b = t.b, q0 = t.q0, C = t.C, W = t.W;
    const float *rows = t.rows, *kin = t.kin, *vin = t.vin;

    load_rows(qs, hd, rows + (size_t)q0 * W + (size_t)h * hd, (size_t)W, kQRows, T - q0, hd);
    load_rows(dos, hd, dout + ((size_t)b * T + q0) * C + (size_t)h * hd, (size_t)C, kQRows,
              T - q0, hd);

    int last[kRowsPerWarp];
    float lr[kRowsPerWarp], dr[kRowsPerWarp], acc[kRowsPerWarp][NC];
    const size_t bh = ((size_t)b * nh + h) * T;
    for (int r = 0; r < kRowsPerWarp; r++) {
        const int i = q0 + warp * kRowsPerWarp + r;
        last[r] = imin(i, T - 1); /* rows past the end: as in the forward */
        lr[r] = lse[bh + last[r]];
        dr[r] = dvec[bh + last[r]];
        for (int c = 0; c < NC; c++) acc[r][c] = 0.0f;
    }
    float *dsw = dss + warp * kRowsPerWarp * kKeys;
    const int kend = imin(q0 + kQRows, T);
    for (int k0 = 0; k0 < kend; k0 += kKeys) {
        const int nk = imin(kKeys, kend - k0);
        __syncthreads(); /* q, dO are loaded; the previous tile is read */
        load_rows(ks, ldk, kin + (size_t)k0 * W, (size_t)W, kKeys, nk, hd);
        load_rows(vs, ldk, vin + (size_t)k0 * W, (size_t)W, kKeys, nk, hd);
        __syncthreads();
        const int j = k0 + lane;
        for (int r = 0; r < kRowsPerWarp; r++) {
            const int rr = warp * kRowsPerWarp + r;
            const float s = dot_seq(qs + rr * hd, ks + lane * ldk, hd) * scale;
            const float p = j <= last[r] ? expf(s - lr[r]) : 0.0f;
            const float dp = dot_seq(dos + rr * hd, vs + lane * ldk, hd);
            dsw[r * kKeys + lane] = p * (dp - dr[r]) * scale;
        }
        __syncwarp(kFull); /* the warp's dS is written */
        add_weighted<NC>(acc, dsw, ks, ldk, nk, hd);
    }
    for (int r = 0; r < kRowsPerWarp; r++) {
        const int i = q0 + warp * kRowsPerWarp + r;
        if (i >= T) break;
        store_row<NC>(dqkv + ((size_t)b * T + i) * W + (size_t)h * hd, acc[r], 1.0f, hd);
    }
}

/* ------------------------------------------------------------- launch */

static int chunks_for(int hd) {
    int nc = 1;
    while (nc <= kMaxChunks && 32 * nc < hd) nc *= 2;
    return nc <= kMaxChunks ? nc : 0;
}

/* Dynamic shared memory beyond the default 48 KiB is the kernel's opt-in
 * (hd 128 backward: 50 and 73 KiB; hd 256 at most 137 KiB, under the 163
 * KiB of sm_80). */
template <typename K>
static bool allow_shared(const lt_ops *o, const char *op, K *kernel, size_t bytes) {
    if (bytes <= kDefaultShared) return true;
    const cudaError_t e = cudaFuncSetAttribute(
        (const void *)kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
    if (e == cudaSuccess) return true;
    lt_cuda_fail(o, op, e);
    return false;
}

template <int NC>
static void fwd_launch(const lt_ops *o, const char *op, float *out, float *lse, const float *qkv,
                       int B, int T, int nh, int nkv, int hd, float scale) {
    const size_t bytes = fwd_shared_floats(hd) * sizeof(float);
    if (!allow_shared(o, op, attn_fwd_kernel<NC>, bytes)) return;
    const dim3 grid((unsigned)((T + kQRows - 1) / kQRows), (unsigned)nh, (unsigned)B);
    LT_LAUNCH(attn_fwd_kernel<NC>, grid, kThreads, bytes, lt_cuda_stream(o), out, lse, qkv, T, nh,
              nkv, hd, scale);
    lt_cuda_after_launch(o, op);
}

template <int NC>
static void bwd_launch(const lt_ops *o, const char *op, float *dqkv, const float *dout,
                       const float *lse, const float *dvec, const float *qkv, int B, int T, int nh,
                       int nkv, int hd, float scale) {
    const size_t kv_bytes = dkdv_shared_floats(hd) * sizeof(float);
    const size_t q_bytes = dq_shared_floats(hd) * sizeof(float);
    if (!allow_shared(o, op, attn_dkdv_kernel<NC>, kv_bytes)) return;
    if (!allow_shared(o, op, attn_dq_kernel<NC>, q_bytes)) return;
    const dim3 kv_grid((unsigned)((T + kKvKeys - 1) / kKvKeys), (unsigned)nkv, (unsigned)B);
    LT_LAUNCH(attn_dkdv_kernel<NC>, kv_grid, kThreads, kv_bytes, lt_cuda_stream(o), dqkv, dout,
              lse, dvec, qkv, T, nh, nkv, hd, scale);
    lt_cuda_after_launch(o, op);
    const dim3 q_grid((unsigned)((T + kQRows - 1) / kQRows), (unsigned)nh, (unsigned)B);
    LT_LAUNCH(attn_dq_kernel<NC>, q_grid, kThreads, q_bytes, lt_cuda_stream(o), dqkv, dout, lse,
              dvec, qkv, T, nh, nkv, hd, scale);
    lt_cuda_after_launch(o, op);
}

/* The shapes the kernels take: a head size they have chunks for, and
 * whole groups of query heads per kv head. */
static bool shape_ok(const lt_ops *o, const char *op, int nh, int nkv, int hd) {
    if (hd > 0 && chunks_for(hd) && nkv > 0 && nh % nkv == 0) return true;
    lt_cuda_fail(o, op, cudaErrorInvalidValue);
    return false;
}

void lt_cuda_attention_fwd(const lt_ops *o, float *out, float *lse, const float *qkv, int B,
                           int T, int nh, int nkv, int hd) {
    static const char op[] = "attention_fwd";
    if (B <= 0 || T <= 0 || nh <= 0 || !shape_ok(o, op, nh, nkv, hd)) return;
    const float scale = 1.0f / sqrtf((float)hd); /* the CPU's */
    switch (chunks_for(hd)) {
    case 1: fwd_launch<1>(o, op, out, lse, qkv, B, T, nh, nkv, hd, scale); break;
    case 2: fwd_launch<2>(o, op, out, lse, qkv, B, T, nh, nkv, hd, scale); break;
    case 4: fwd_launch<4>(o, op, out, lse, qkv, B, T, nh, nkv, hd, scale); break;
    default: fwd_launch<8>(o, op, out, lse, qkv, B, T, nh, nkv, hd, scale); break;
    }
}

void lt_cuda_attention_bwd(const lt_ops *o, float *dqkv, const float *dout, const float *out,
                           const float *lse, const float *qkv, int B, int T, int nh, int nkv,
                           int hd) {
    static const char op[] = "attention_bwd";
    if (B <= 0 || T <= 0 || nh <= 0 || !shape_ok(o, op, nh, nkv, hd)) return;
    const size_t rows = (size_t)B * T * nh;
    float *dvec = (float *)lt_cuda_scratch(o, op, rows * sizeof(float));
    if (!dvec) return; /* the failure is recorded */
    LT_LAUNCH(attn_rowdot_kernel, (unsigned)((rows + kWarps - 1) / kWarps), kThreads, 0,
              lt_cuda_stream(o), dvec, dout, out, B, T, nh, hd);
    lt_cuda_after_launch(o, op);
    const float scale = 1.0f / sqrtf((float)hd);
    switch (chunks_for(hd)) {
    case 1: bwd_launch<1>(o, op, dqkv, dout, lse, dvec, qkv, B, T, nh, nkv, hd, scale); break;
    case 2: bwd_launch<2>(o, op, dqkv, dout, lse, dvec, qkv, B, T, nh, nkv, hd, scale); break;
    case 4: bwd_launch<4>(o, op, dqkv, dout, lse, dvec, qkv, B, T, nh, nkv, hd, scale); break;
    default: bwd_launch<8>(o, op, dqkv, dout, lse, dvec, qkv, B, T, nh, nkv, hd, scale); break;
    }
}
