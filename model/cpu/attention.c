/* Causal grouped-query attention on the CPU, FlashAttention-style: the
 * forward keeps only each row's log-sum-exp, and the backward recomputes
 * the probabilities from it, so no [T, T] matrix is ever stored (stories260K
 * would otherwise keep 67 MB of probabilities per layer).
 *
 * Work is split by (batch, kv head): a task gathers its group's K and V once
 * and serves every query head of the group, writing only its own rows, so
 * results do not depend on threads. Query rows go ROWS at a time so each
 * load of K or V feeds several FMAs.
 *
 * Scores (q.k) and dO.v run over key positions, a vector (LT_V: 16 with
 * AVX-512, 8 otherwise) at a time, against K and V transposed to [hd, T]
 * (copied in 8 x 8 tiles). Sums over keys into head-dimension vectors
 * (P V, dS K, and the dK, dV updates) use K and V as [T, hd] rows when hd
 * is a multiple of LT_V (real models: 64, 128; stories15M: 48), and the
 * transposed copies with horizontal sums otherwise (stories260K with
 * AVX-512: 8). */
#include <math.h>
#include <string.h>

#include "model/ops.h"
#include "model/cpu/internal.h"
#include "model/cpu/simd.h"

#define ROWS 4

typedef struct {
    float *kt, *vt;   /* [hd, Tp] transposed, zero-padded */
    float *kr, *vr;   /* [Tp, hd] rows */
    float *dk, *dv;   /* backward accumulators: [hd, Tp] or [Tp, hd] as K is */
    float *s, *ds;    /* [ROWS, Tp] probabilities and their gradient */
} attn_scratch;

static int padv(int T) { return (T + LT_V - 1) / LT_V * LT_V; }
static int row_path(int hd) { return hd % LT_V == 0; }

static float *scratch_alloc(attn_scratch *s, int T, int hd) {
    const size_t Tp = (size_t)padv(T), m = (size_t)hd * Tp;
    /* every part a multiple of LT_V floats, so each stays vector-aligned */
    float *p = lt_cpu_thread_scratch(6 * m + 2 * ROWS * Tp);
    if (!p) return NULL;
    s->kt = p, s->vt = p + m, s->kr = p + 2 * m, s->vr = p + 3 * m;
    s->dk = p + 4 * m, s->dv = p + 5 * m;
    s->s = p + 6 * m, s->ds = s->s + ROWS * Tp;
    return p;
}

/* dst[d][j0 + i] = src[i][d0 + d] for an 8 x 8 tile: rows of src have
 * stride lds, rows of dst stride ldd. Unpacks within 128-bit lanes, then a
 * lane swap: 24 shuffles where element-wise stores took 64 strided writes,
 * which made the gather a quarter of attention's time. */
static inline void transpose8(float *dst, size_t ldd, const float *src, size_t lds) {
    v8f r[8], t[8], u[8];
    for (int i = 0; i < 8; i++) memcpy(&r[i], src + (size_t)i * lds, sizeof r[i]);
    for (int i = 0; i < 8; i += 2) {
        t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int i = 0; i < 8; i += 4)
        for (int k = 0; k < 2; k++) {
            u[i + k] = __builtin_shufflevector(t[i + k], t[i + k + 2], 0, 1, 8, 9, 4, 5, 12, 13);
            u[i + k + 2] = __builtin_shufflevector(t[i + k], t[i + k + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        }
    /* u[0]: column 0 of rows 0-3 | column 4 of rows 0-3; u[2]: column 1 ..;
     * u[1]: column 2 ..; u[3]: column 3 ..; u[4..7] the same for rows 4-7 */
    static const int col_of[4] = {0, 2, 1, 3};
    for (int k = 0; k < 4; k++) {
        const int c = col_of[k];
        v8f lo = __builtin_shufflevector(u[k], u[k + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        v8f hi = __builtin_shufflevector(u[k], u[k + 4], 4, 5, 6, 7, 12, 13, 14, 15);
        memcpy(dst + (size_t)c * ldd, &lo, sizeof lo);
        memcpy(dst + (size_t)(c + 4) * ldd, &hi, sizeof hi);
    }
}

/* x [T, hd] (row stride ld) into xt [hd, Tp]; padding columns zero. */
static void transpose_rows(float *xt, int Tp, const float *x, size_t ld, int T, int hd) {
    const int T8 = T / 8 * 8, hd8 = hd / 8 * 8;
    for (int j = 0; j < T8; j += 8)
        for (int d = 0; d < hd8; d += 8)
            transpose8(xt + (size_t)d * Tp + j, (size_t)Tp, x + (size_t)j * ld + d, ld);
    for (int j = 0; j < T; j++)
        for (int d = j < T8 ? hd8 : 0; d < hd; d++) xt[(size_t)d * Tp + j] = x[(size_t)j * ld + d];
    for (int d = 0; d < hd; d++)
        for (int j = T; j < Tp; j++) xt[(size_t)d * Tp + j] = 0.0f;
}

/* K and V of kv head g of batch b: transposed copies, and contiguous rows
 * when the row kernels use them (read in place, at qkv's row stride, the
 * rows of a head are 3.5 KB apart on stories15M and the sums over keys
 * ran 40% slower). */
static void gather_kv(const attn_scratch *s, const float *qkv, int b, int g, int T, int nh, int nkv,
                      int hd) {
    const int C = nh * hd, W = C + 2 * nkv * hd, Tp = padv(T);
    const float *k = qkv + (size_t)b * T * W + C + (size_t)g * hd, *v = k + (size_t)nkv * hd;
    transpose_rows(s->kt, Tp, k, (size_t)W, T, hd);
    transpose_rows(s->vt, Tp, v, (size_t)W, T, hd);
    if (!row_path(hd)) return;
    for (int j = 0; j < T; j++)
        for (int d = 0; d < hd; d += LT_V) {
            vf_store(s->kr + (size_t)j * hd + d, vf_load(k + (size_t)j * W + d));
            vf_store(s->vr + (size_t)j * hd + d, vf_load(v + (size_t)j * W + d));
        }
}

/* Row-layout kernels take their vector counts as compile-time constants:
 * with a runtime count GCC keeps the accumulator arrays on the stack
 * instead of in registers. */
#define LT_INLINE static inline __attribute__((always_inline))

/* A loaded vector pinned to a register. GCC otherwise folds the load into
 * every FMA that uses it (one load per row of the block): sixteen loads
 * per twelve FMAs, and the load ports, not the FMA units, set the speed. */
LT_INLINE vf in_register(vf v) {
#if defined(__AVX__) /* one vf is one ymm (zmm with AVX-512) register */
    __asm__("" : "+v"(v));
#endif
    return v;
}

/* out[r][c*LT_V ..] = scale * sum_d x[r][d] t[d][c*LT_V ..] for NC chunks
 * from c0: 4 NC accumulators, NC loads and four broadcasts per d. */
LT_INLINE void dot_block(float *out, int Tp, const float *const x[ROWS], const float *t, int hd,
                         int c0, float scale, const int NC) {
    vf a[ROWS][3] = {{{0}}};
    const float *tc = t + (size_t)c0 * LT_V;
    for (int d = 0; d < hd; d++) {
        vf k[3];
        for (int c = 0; c < NC; c++) k[c] = in_register(vf_load(tc + (size_t)d * Tp + c * LT_V));
        for (int r = 0; r < ROWS; r++) {
            const float xr = x[r][d];
            for (int c = 0; c < NC; c++) a[r][c] += xr * k[c];
        }
    }
    for (int r = 0; r < ROWS; r++)
        for (int c = 0; c < NC; c++)
            vf_store(out + (size_t)r * Tp + (size_t)(c0 + c) * LT_V, a[r][c] * scale);
}

/* out[r][j] = scale * sum_d x[r][d] t[d][j] for chunks [0, nch). */
static void dot_rows(float *out, int Tp, const float *const x[ROWS], const float *t, int hd,
                     int nch, float scale) {
    /* a lone chunk has four accumulators, too few to hide the FMA latency:
     * 4 = 2 + 2 and 7 = 3 + 2 + 2 */
    int c = 0;
    for (; nch - c >= 3 && nch - c != 4; c += 3) dot_block(out, Tp, x, t, hd, c, scale, 3);
    for (; nch - c >= 2; c += 2) dot_block(out, Tp, x, t, hd, c, scale, 2);
    if (nch - c == 1) dot_block(out, Tp, x, t, hd, c, scale, 1);
}

/* out[r][d0 .. d0+LT_V*NV) = post[r] * sum_{j < nkeys} w[r][j] x[j][d0 ..]:
 * x as [T, hd] rows, four rows of w, 4 NV accumulators in registers. */
LT_INLINE void wsum_block(float *const out[ROWS], int rows, const float *w, int Tp, const float *x,
                          int nkeys, int hd, int d0, const float post[ROWS], const int NV) {
    vf a[ROWS][4] = {{{0}}};
    for (int j = 0; j < nkeys; j++) {
        vf xv[4];
        for (int v = 0; v < NV; v++) xv[v] = in_register(vf_load(x + (size_t)j * hd + d0 + v * LT_V));
        for (int r = 0; r < ROWS; r++) {
            const float wr = w[(size_t)r * Tp + j];
            for (int v = 0; v < NV; v++) a[r][v] += wr * xv[v];
        }
    }
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < NV; v++) vf_store(out[r] + d0 + v * LT_V, a[r][v] * post[r]);
}

static void wsum_rowlayout(float *const out[ROWS], int rows, const float *w, int Tp,
                           const float *x, int nkeys, int hd, const float post[ROWS]) {
    int d0 = 0;
    for (; d0 + 3 * LT_V <= hd; d0 += 3 * LT_V) wsum_block(out, rows, w, Tp, x, nkeys, hd, d0, post, 3);
    if (hd - d0 == 2 * LT_V) wsum_block(out, rows, w, Tp, x, nkeys, hd, d0, post, 2);
    if (hd - d0 == LT_V) wsum_block(out, rows, w, Tp, x, nkeys, hd, d0, post, 1);
}

/* acc[j][d0 .. d0+LT_V*NV) += sum_r w[r][j] x[r][d0 ..] for j < nkeys. */
LT_INLINE void outer_block(float *acc, const float *w, int Tp, const float *const x[ROWS],
                           int nkeys, int hd, int d0, const int NV) {
    vf xr[ROWS][4];
    for (int r = 0; r < ROWS; r++)
        for (int v = 0; v < NV; v++) xr[r][v] = vf_load(x[r] + d0 + v * LT_V);
    for (int j = 0; j < nkeys; j++) {
        float *aj = acc + (size_t)j * hd + d0;
        vf a[4];
        for (int v = 0; v < NV; v++) a[v] = vf_load(aj + v * LT_V);
        for (int r = 0; r < ROWS; r++) {
            const float wr = w[(size_t)r * Tp + j];
            for (int v = 0; v < NV; v++) a[v] += wr * xr[r][v];
        }
        for (int v = 0; v < NV; v++) vf_store(aj + v * LT_V, a[v]);
    }
}

/* The same sum with x transposed ([hd, Tp]): vectors over keys, ND head
 * dimensions at a time (a compile-time count, see above), then one shuffle
 * tree for four horizontal sums. */
LT_INLINE void wsumt_block(float *const out[ROWS], int rows, const float *w, int Tp,
                           const float *xt, int nch, int d0, const float post[ROWS], const int ND) {
    vf a[ROWS][4] = {{{0}}};
    for (int c = 0; c < nch; c++) {
        vf wc[ROWS];
        for (int r = 0; r < ROWS; r++) wc[r] = vf_load(w + (size_t)r * Tp + c * LT_V);
        for (int dd = 0; dd < ND; dd++) {
            vf xv = in_register(vf_load(xt + (size_t)(d0 + dd) * Tp + c * LT_V));
            for (int r = 0; r < ROWS; r++) a[r][dd] += wc[r] * xv;
        }
    }
    for (int r = 0; r < rows; r++) {
        v4f t = vf_hsum4(a[r][0], a[r][1], a[r][2], a[r][3]);
        for (int dd = 0; dd < ND; dd++) out[r][d0 + dd] = t[dd] * post[r];
    }
}

static void wsum_transposed(float *const out[ROWS], int rows, const float *w, int Tp,
                            const float *xt, int nch, int hd, const float post[ROWS]) {
    int d0 = 0;
    for (; d0 + 4 <= hd; d0 += 4) wsumt_block(out, rows, w, Tp, xt, nch, d0, post, 4);
    switch (hd - d0) {
    case 3: wsumt_block(out, rows, w, Tp, xt, nch, d0, post, 3); break;
    case 2: wsumt_block(out, rows, w, Tp, xt, nch, d0, post, 2); break;
    case 1: wsumt_block(out, rows, w, Tp, xt, nch, d0, post, 1); break;
    default: break;
    }
}

static void wsum(const attn_scratch *s, float *const out[ROWS], int rows, const float *w, int Tp,
                 int use_k, int nkeys, int hd, const float post[ROWS]) {
    if (row_path(hd))
        wsum_rowlayout(out, rows, w, Tp, use_k ? s->kr : s->vr, nkeys, hd, post);
    else
        wsum_transposed(out, rows, w, Tp, use_k ? s->kt : s->vt, (nkeys + LT_V - 1) / LT_V, hd, post);
}

/* acc[j][:] += sum_r w[r][j] x[r][:] (dK and dV), in K's layout. */
static void outer_acc(const attn_scratch *s, float *acc, const float *w, int Tp,
                      const float *const x[ROWS], int nkeys, int hd) {
    if (row_path(hd)) {
        int d0 = 0;
        for (; d0 + 3 * LT_V <= hd; d0 += 3 * LT_V) outer_block(acc, w, Tp, x, nkeys, hd, d0, 3);
        if (hd - d0 == 2 * LT_V) outer_block(acc, w, Tp, x, nkeys, hd, d0, 2);
        if (hd - d0 == LT_V) outer_block(acc, w, Tp, x, nkeys, hd, d0, 1);
        return;
    }
    (void)s;
    const int nch = (nkeys + LT_V - 1) / LT_V;
    for (int c = 0; c < nch; c++) {
        vf wc[ROWS];
        for (int r = 0; r < ROWS; r++) wc[r] = vf_load(w + (size_t)r * Tp + c * LT_V);
        for (int d = 0; d < hd; d++) {
            float *ad = acc + (size_t)d * Tp + c * LT_V;
            vf a = vf_load(ad);
            for (int r = 0; r < ROWS; r++) a += wc[r] * x[r][d];
            vf_store(ad, a);
        }
    }
}

/* sum_d x[d] y[d], vectors first: a scalar loop in source order is a
 * chain of dependent adds. */
static float dot(const float *x, const float *y, int n) {
    const int nv = n / LT_V * LT_V;
    vf acc = {0};
    for (int d = 0; d < nv; d += LT_V) acc += vf_load(x + d) * vf_load(y + d);
    float s = vf_hsum(acc);
    for (int d = nv; d < n; d++) s += x[d] * y[d];
    return s;
}

/* Per row of a block: mask keys after the row (causal) and return the
 * row's max score; rows past the end of the sequence get all -inf. */
static void causal_mask(float *srow, int n, int nch) {
    for (int j = n; j < nch * LT_V; j++) srow[j] = -INFINITY;
}

void lt_cpu_attention_fwd(const lt_ops *o, float *out, float *lse, const float *qkv, int B, int T,
                          int nh, int nkv, int hd) {
    (void)o;
    const int C = nh * hd, W = C + 2 * nkv * hd, group = nh / nkv, Tp = padv(T);
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel
    {
        attn_scratch s;
        float *mem = scratch_alloc(&s, T, hd);
#pragma omp for schedule(dynamic, 1)
        for (int task = 0; task < B * nkv; task++) {
            if (!mem) continue;
            const int b = task / nkv, g = task % nkv;
            gather_kv(&s, qkv, b, g, T, nh, nkv, hd);
            for (int hh = 0; hh < group; hh++) {
                const int h = g * group + hh;
                float *lse_h = lse + ((size_t)b * nh + h) * T;
                for (int i0 = 0; i0 < T; i0 += ROWS) {
                    const int rows = T - i0 < ROWS ? T - i0 : ROWS;
                    const int nkeys = i0 + rows, nch = (nkeys + LT_V - 1) / LT_V;
                    const float *q[ROWS];
                    float *orow[ROWS], inv[ROWS] = {0};
                    for (int r = 0; r < ROWS; r++) {
                        const size_t row = (size_t)b * T + i0 + (r < rows ? r : 0);
                        q[r] = qkv + row * W + h * hd;
                        orow[r] = out + row * C + h * hd;
                    }
                    dot_rows(s.s, Tp, q, s.kt, hd, nch, scale);
                    for (int r = 0; r < ROWS; r++) {
                        float *sr = s.s + (size_t)r * Tp;
                        if (r >= rows) { /* padding rows: zero weights */
                            memset(sr, 0, (size_t)nch * LT_V * sizeof(float));
                            continue;
                        }
                        causal_mask(sr, i0 + r + 1, nch);
                        vf mx = vf_set1(-INFINITY);
                        for (int c = 0; c < nch; c++) mx = vf_max(mx, vf_load(sr + c * LT_V));
                        const float m = vf_hmax(mx);
                        vf sum = {0};
                        for (int c = 0; c < nch; c++) {
                            vf e = vf_exp(vf_load(sr + c * LT_V) - m);
                            sum += e;
                            vf_store(sr + c * LT_V, e);
                        }
                        const float total = vf_hsum(sum);
                        inv[r] = 1.0f / total;
                        lse_h[i0 + r] = m + logf(total);
                    }
                    wsum(&s, orow, rows, s.s, Tp, 0, nkeys, hd, inv);
                }
            }
        }
    }
}

void lt_cpu_attention_bwd(const lt_ops *o, float *dqkv, const float *dout, const float *out,
                          const float *lse, const float *qkv, int B, int T, int nh, int nkv,
                          int hd) {
    (void)o;
    const int C = nh * hd, W = C + 2 * nkv * hd, group = nh / nkv, Tp = padv(T);
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t acc_floats = (size_t)hd * Tp;
#pragma omp parallel
    {
        attn_scratch s;
        float *mem = scratch_alloc(&s, T, hd);
#pragma omp for schedule(dynamic, 1)
        for (int task = 0; task < B * nkv; task++) {
            if (!mem) continue;
            const int b = task / nkv, g = task % nkv;
            gather_kv(&s, qkv, b, g, T, nh, nkv, hd);
            memset(s.dk, 0, 2 * acc_floats * sizeof(float));
            for (int hh = 0; hh < group; hh++) {
                const int h = g * group + hh;
                const float *lse_h = lse + ((size_t)b * nh + h) * T;
                for (int i0 = 0; i0 < T; i0 += ROWS) {
                    const int rows = T - i0 < ROWS ? T - i0 : ROWS;
                    const int nkeys = i0 + rows, nch = (nkeys + LT_V - 1) / LT_V;
                    const float *q[ROWS], *dO[ROWS];
                    float *dq[ROWS], Di[ROWS], one[ROWS];
                    for (int r = 0; r < ROWS; r++) {
                        /* rows past the end repeat the first row with zero weight */
                        const size_t row = (size_t)b * T + i0 + (r < rows ? r : 0);
                        q[r] = qkv + row * W + h * hd;
                        dO[r] = dout + row * C + h * hd;
                        dq[r] = dqkv + row * W + h * hd;
                        Di[r] = dot(dO[r], out + row * C + h * hd, hd);
                        one[r] = 1.0f;
                    }
                    /* P recomputed from the saved log-sum-exp */
                    dot_rows(s.s, Tp, q, s.kt, hd, nch, scale);
                    for (int r = 0; r < ROWS; r++) {
                        float *sr = s.s + (size_t)r * Tp;
                        if (r >= rows) {
                            memset(sr, 0, (size_t)nch * LT_V * sizeof(float));
                            continue;
                        }
                        causal_mask(sr, i0 + r + 1, nch);
                        const float l = lse_h[i0 + r];
                        for (int c = 0; c < nch; c++)
                            vf_store(sr + c * LT_V, vf_exp(vf_load(sr + c * LT_V) - l));
                    }
                    /* dS = P (dO V^T - D) * scale */
                    dot_rows(s.ds, Tp, dO, s.vt, hd, nch, 1.0f);
                    for (int r = 0; r < ROWS; r++) {
                        float *dsr = s.ds + (size_t)r * Tp;
                        const float *pr = s.s + (size_t)r * Tp;
                        for (int c = 0; c < nch; c++)
                            vf_store(dsr + c * LT_V,
                                      vf_load(pr + c * LT_V) * (vf_load(dsr + c * LT_V) - Di[r]) * scale);
                    }
                    wsum(&s, dq, rows, s.ds, Tp, 1, nkeys, hd, one);
                    outer_acc(&s, s.dk, s.ds, Tp, q, nkeys, hd);
                    outer_acc(&s, s.dv, s.s, Tp, dO, nkeys, hd);
                }
            }
            for (int j = 0; j < T; j++) {
                float *dkj = dqkv + ((size_t)b * T + j) * W + C + g * hd, *dvj = dkj + nkv * hd;
                if (row_path(hd)) {
                    memcpy(dkj, s.dk + (size_t)j * hd, (size_t)hd * sizeof(float));
                    memcpy(dvj, s.dv + (size_t)j * hd, (size_t)hd * sizeof(float));
                } else {
                    for (int d = 0; d < hd; d++) {
                        dkj[d] = s.dk[(size_t)d * Tp + j];
                        dvj[d] = s.dv[(size_t)d * Tp + j];
                    }
                }
            }
        }
    }
}
