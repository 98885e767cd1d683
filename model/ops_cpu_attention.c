/* Causal grouped-query attention on the CPU.
 *
 * Work is split by (batch, kv head) so each task gathers its group's K and
 * V once, transposed to [head_dim, T] and zero-padded to a multiple of 16
 * keys: the inner loops then run over key positions, sixteen at a time,
 * whatever the head dimension (8 in stories260K, where a loop over the head
 * dimension would leave most of each vector register empty). Each task
 * writes only its own rows, so the result does not depend on threads. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/ops.h"
#include "model/ops_cpu_internal.h"
#include "model/ops_cpu_simd.h"

/* Query rows processed together so each K load feeds several FMAs. */
#define ROWS 4

typedef struct {
    float *kt, *vt;   /* [hd, Tp] */
    float *dkt, *dvt; /* [hd, Tp] (backward) */
    float *s;         /* [ROWS, Tp] scores / probabilities */
    v16 *dq;          /* [hd] per-dimension accumulators (backward) */
} attn_scratch;

static int pad16(int T) { return (T + LT_V - 1) / LT_V * LT_V; }

static int scratch_alloc(attn_scratch *s, int T, int hd, int backward) {
    const size_t Tp = (size_t)pad16(T);
    /* every part a multiple of 16 floats, so each stays 64-byte aligned */
    size_t floats = (size_t)hd * LT_V + 2 * hd * Tp + ROWS * Tp + (backward ? 2 * hd * Tp : 0);
    float *p = lt_alloc(LT_MEM_WORKSPACE, floats * sizeof(float));
    if (!p) return -1;
    s->dq = (v16 *)(void *)p;
    s->kt = p + (size_t)hd * LT_V;
    s->vt = s->kt + hd * Tp;
    s->s = s->vt + hd * Tp;
    s->dkt = backward ? s->s + ROWS * Tp : NULL;
    s->dvt = backward ? s->dkt + hd * Tp : NULL;
    return 0;
}

/* K and V of kv head g of batch b, transposed; padding stays zero. */
static void gather_kv(const attn_scratch *s, const float *qkv, int b, int g, int T, int nh,
                      int nkv, int hd) {
    const int C = nh * hd, W = C + 2 * nkv * hd, Tp = pad16(T);
    const float *base = qkv + (size_t)b * T * W;
    for (int j = 0; j < T; j++) {
        const float *kj = base + (size_t)j * W + C + g * hd;
        const float *vj = kj + nkv * hd;
        for (int d = 0; d < hd; d++) {
            s->kt[(size_t)d * Tp + j] = kj[d];
            s->vt[(size_t)d * Tp + j] = vj[d];
        }
    }
    for (int d = 0; d < hd; d++)
        for (int j = T; j < Tp; j++) s->kt[(size_t)d * Tp + j] = s->vt[(size_t)d * Tp + j] = 0.0f;
}

/* out[r][d] = sum_j p[r][j] vt[d][j] for ROWS rows of p (stride Tp) over
 * nch chunks of 16 keys; rows r >= rows are computed but not stored. Four
 * rows share each load of vt; four head dimensions at a time keep the
 * sixteen accumulators in registers. */
static void weighted_sum_rows(float *const out[ROWS], int rows, const float *p, const float *vt,
                              int Tp, int nch, int hd, float post_scale[ROWS]) {
    for (int d0 = 0; d0 < hd; d0 += 4) {
        const int dn = hd - d0 < 4 ? hd - d0 : 4;
        v16 a[ROWS][4] = {{{0}}};
        for (int c = 0; c < nch; c++) {
            v16 pc[ROWS];
            for (int r = 0; r < ROWS; r++) pc[r] = v16_load(p + (size_t)r * Tp + c * LT_V);
            for (int dd = 0; dd < dn; dd++) {
                v16 vv = v16_load(vt + (size_t)(d0 + dd) * Tp + c * LT_V);
                for (int r = 0; r < ROWS; r++) a[r][dd] += pc[r] * vv;
            }
        }
        for (int r = 0; r < rows; r++)
            for (int dd = 0; dd < dn; dd++) out[r][d0 + dd] = v16_hsum(a[r][dd]) * post_scale[r];
    }
}

void lt_cpu_attention_fwd(const lt_ops *o, float *out, float *probs, const float *qkv, int B,
                          int T, int nh, int nkv, int hd) {
    (void)o;
    const int C = nh * hd, W = C + 2 * nkv * hd, group = nh / nkv, Tp = pad16(T);
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel
    {
        attn_scratch s;
        int ok = scratch_alloc(&s, T, hd, 0) == 0;
#pragma omp for schedule(dynamic, 1)
        for (int task = 0; task < B * nkv; task++) {
            if (!ok) continue;
            const int b = task / nkv, g = task % nkv;
            gather_kv(&s, qkv, b, g, T, nh, nkv, hd);
            for (int hh = 0; hh < group; hh++) {
                const int h = g * group + hh;
                float *pbase = probs + ((size_t)b * nh + h) * T * T;
                for (int i0 = 0; i0 < T; i0 += ROWS) {
                    const int rows = T - i0 < ROWS ? T - i0 : ROWS;
                    const int nkeys = i0 + rows, nch = (nkeys + LT_V - 1) / LT_V;
                    const float *q[ROWS];
                    for (int r = 0; r < ROWS; r++)
                        q[r] = qkv + ((size_t)b * T + i0 + (r < rows ? r : 0)) * W + h * hd;
                    /* scores for ROWS query rows against all keys they may see */
                    for (int c = 0; c < nch; c++) {
                        v16 acc[ROWS] = {{0}};
                        for (int d = 0; d < hd; d++) {
                            v16 kv = v16_load(s.kt + (size_t)d * Tp + c * LT_V);
                            for (int r = 0; r < ROWS; r++) acc[r] += q[r][d] * kv;
                        }
                        for (int r = 0; r < ROWS; r++) v16_store(s.s + (size_t)r * Tp + c * LT_V, acc[r] * scale);
                    }
                    float inv[ROWS] = {0};
                    float *orow[ROWS];
                    for (int r = 0; r < ROWS; r++) {
                        float *sr = s.s + (size_t)r * Tp;
                        if (r >= rows) { /* padding rows: zero weights */
                            memset(sr, 0, (size_t)nch * LT_V * sizeof(float));
                            continue;
                        }
                        const int i = i0 + r, n = i + 1;
                        for (int j = n; j < nch * LT_V; j++) sr[j] = -INFINITY;
                        v16 mx = v16_set1(-INFINITY);
                        for (int c = 0; c < nch; c++) mx = v16_max(mx, v16_load(sr + c * LT_V));
                        const float m = v16_hmax(mx);
                        v16 sum = {0};
                        for (int c = 0; c < nch; c++) {
                            v16 e = v16_exp(v16_load(sr + c * LT_V) - m);
                            sum += e;
                            v16_store(sr + c * LT_V, e);
                        }
                        inv[r] = 1.0f / v16_hsum(sum);
                        float *pr = pbase + (size_t)i * T;
                        for (int j = 0; j < n; j++) pr[j] = sr[j] * inv[r];
                        orow[r] = out + ((size_t)b * T + i) * C + h * hd;
                    }
                    weighted_sum_rows(orow, rows, s.s, s.vt, Tp, nch, hd, inv);
                }
            }
        }
        if (ok) lt_free(s.dq);
    }
}

/* Backward for ROWS query rows at a time: for each chunk of 16 keys,
 * dS = P (dO V^T - D) for every row of the block, then one read-modify-write
 * of dK and dV per head dimension for the whole block; dQ = dS K afterwards,
 * row by row, with the same kernel as the forward's P V. */
void lt_cpu_attention_bwd(const lt_ops *o, float *dqkv, const float *dout, const float *out,
                          const float *probs, const float *qkv, int B, int T, int nh, int nkv,
                          int hd) {
    (void)o;
    const int C = nh * hd, W = C + 2 * nkv * hd, group = nh / nkv, Tp = pad16(T);
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel
    {
        attn_scratch s;
        int ok = scratch_alloc(&s, T, hd, 1) == 0;
        float *ds = ok ? lt_alloc(LT_MEM_WORKSPACE, (size_t)ROWS * Tp * sizeof(float)) : NULL;
#pragma omp for schedule(dynamic, 1)
        for (int task = 0; task < B * nkv; task++) {
            if (!ok || !ds) continue;
            const int b = task / nkv, g = task % nkv;
            gather_kv(&s, qkv, b, g, T, nh, nkv, hd);
            memset(s.dkt, 0, (size_t)2 * hd * Tp * sizeof(float));
            for (int hh = 0; hh < group; hh++) {
                const int h = g * group + hh;
                const float *pbase = probs + ((size_t)b * nh + h) * T * T;
                for (int i0 = 0; i0 < T; i0 += ROWS) {
                    const int rows = T - i0 < ROWS ? T - i0 : ROWS;
                    const int nch = (i0 + rows + LT_V - 1) / LT_V;
                    const float *doi[ROWS], *qi[ROWS];
                    float Di[ROWS];
                    for (int r = 0; r < ROWS; r++) {
                        /* rows past the end repeat the last row with p = 0 */
                        const size_t row = (size_t)b * T + i0 + (r < rows ? r : rows - 1);
                        doi[r] = dout + row * C + h * hd;
                        qi[r] = qkv + row * W + h * hd;
                        const float *oi = out + row * C + h * hd;
                        float *p = s.s + (size_t)r * Tp;
                        const int n = r < rows ? i0 + r + 1 : 0;
                        memcpy(p, pbase + (size_t)(i0 + (r < rows ? r : 0)) * T, (size_t)n * sizeof(float));
                        for (int j = n; j < nch * LT_V; j++) p[j] = 0.0f;
                        float d_ = 0.0f;
                        for (int d = 0; d < hd; d++) d_ += doi[r][d] * oi[d];
                        Di[r] = d_;
                    }
                    for (int c = 0; c < nch; c++) {
                        const size_t off = (size_t)c * LT_V;
                        v16 pc[ROWS], dsr[ROWS], dp[ROWS] = {{0}};
                        for (int d = 0; d < hd; d++) {
                            v16 vv = v16_load(s.vt + (size_t)d * Tp + off);
                            for (int r = 0; r < ROWS; r++) dp[r] += doi[r][d] * vv;
                        }
                        for (int r = 0; r < ROWS; r++) {
                            pc[r] = v16_load(s.s + (size_t)r * Tp + off);
                            dsr[r] = pc[r] * (dp[r] - Di[r]) * scale;
                            v16_store(ds + (size_t)r * Tp + off, dsr[r]);
                        }
                        for (int d = 0; d < hd; d++) {
                            float *dk = s.dkt + (size_t)d * Tp + off, *dv = s.dvt + (size_t)d * Tp + off;
                            v16 ak = v16_load(dk), av = v16_load(dv);
                            for (int r = 0; r < ROWS; r++) {
                                ak += dsr[r] * qi[r][d];
                                av += pc[r] * doi[r][d];
                            }
                            v16_store(dk, ak);
                            v16_store(dv, av);
                        }
                    }
                    float *dqrow[ROWS], one[ROWS];
                    for (int r = 0; r < ROWS; r++) {
                        dqrow[r] = dqkv + ((size_t)b * T + i0 + (r < rows ? r : 0)) * W + h * hd;
                        one[r] = 1.0f;
                    }
                    weighted_sum_rows(dqrow, rows, ds, s.kt, Tp, nch, hd, one);
                }
            }
            for (int j = 0; j < T; j++) {
                float *dkj = dqkv + ((size_t)b * T + j) * W + C + g * hd;
                float *dvj = dkj + nkv * hd;
                for (int d = 0; d < hd; d++) {
                    dkj[d] = s.dkt[(size_t)d * Tp + j];
                    dvj[d] = s.dvt[(size_t)d * Tp + j];
                }
            }
        }
        lt_free(ds);
        if (ok) lt_free(s.dq);
    }
}
