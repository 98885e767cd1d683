/* The CPU backend of the ops interface: OpenBLAS for GEMMs, OpenMP loops for
 * everything else. Each output element is written by one thread with a
 * fixed summation order, so results do not depend on scheduling. */
#include "model/cpu/cpu.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdatomic.h>
#include <string.h>

#include "model/config.h"
#include "core/optim_math.h"
#include "core/rng.h"
#include "model/cpu/internal.h"
#include "model/cpu/simd.h"

/* ---------------------------------------------------------------- memory */

static void *cpu_alloc(const lt_ops *o, lt_mem_category cat, size_t bytes) {
    (void)o;
    return lt_alloc(cat, bytes);
}
static void cpu_free(const lt_ops *o, void *p) {
    (void)o;
    lt_free(p);
}
static void cpu_memcpy(const lt_ops *o, void *dst, const void *src, size_t bytes) {
    (void)o;
    if (bytes) memmove(dst, src, bytes);
}
static void cpu_zero(const lt_ops *o, void *dst, size_t bytes) {
    (void)o;
    if (bytes) memset(dst, 0, bytes);
}
static void cpu_sync(const lt_ops *o) { (void)o; }

static _Thread_local float *t_scratch;
static _Thread_local size_t t_scratch_floats;

static _Atomic(const char *) g_failure;

void lt_cpu_raise(const char *what) {
    const char *none = NULL;
    atomic_compare_exchange_strong(&g_failure, &none, what);
}

static lt_status cpu_check(const lt_ops *o, lt_error *err) {
    (void)o;
    const char *what = atomic_exchange(&g_failure, NULL);
    if (!what) return LT_OK;
    return lt_fail(err, LT_ERR_NOMEM, "CPU backend: %s", what);
}

float *lt_cpu_thread_scratch(size_t floats) {
    if (floats <= t_scratch_floats) return t_scratch;
    lt_free(t_scratch);
    t_scratch = lt_alloc(LT_MEM_WORKSPACE, floats * sizeof(float));
    t_scratch_floats = t_scratch ? floats : 0;
    if (!t_scratch) lt_cpu_raise("cannot allocate kernel scratch memory");
    return t_scratch;
}

/* ------------------------------------------------------------------ math */

static void cpu_gemm(const lt_ops *o, int ta, int tb, int M, int N, int K, float alpha,
                     const float *A, int lda, const float *B, int ldb, float beta, float *C,
                     int ldc) {
    (void)o;
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        /* BLAS leaves C untouched for K = 0 only when beta = 1. */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] *= beta;
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M,
                N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

static void cpu_embedding_fwd(const lt_ops *o, float *out, const int32_t *tokens,
                              const float *table, int n, int dim) {
    (void)o;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        memcpy(out + (size_t)i * dim, table + (size_t)tokens[i] * dim, (size_t)dim * sizeof(float));
}

static void cpu_embedding_bwd(const lt_ops *o, float *dtable, const int32_t *tokens,
                              const float *dout, int n, int dim) {
    (void)o;
    /* Rows sharing a token add up; a serial pass keeps the order fixed. */
    for (int i = 0; i < n; i++) {
        float *d = dtable + (size_t)tokens[i] * dim;
        const float *g = dout + (size_t)i * dim;
        for (int j = 0; j < dim; j++) d[j] += g[j];
    }
}

static void cpu_rmsnorm_fwd(const lt_ops *o, float *out, float *rstd, const float *x,
                            const float *w, int n, int dim, float eps) {
    (void)o;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * dim;
        float *oi = out + (size_t)i * dim;
        float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
        for (int j = 0; j < dim; j++) ss += xi[j] * xi[j];
        float r = 1.0f / sqrtf(ss / (float)dim + eps);
        rstd[i] = r;
        for (int j = 0; j < dim; j++) oi[j] = xi[j] * r * w[j];
    }
}

static void cpu_rmsnorm_bwd(const lt_ops *o, float *dx, float *dw, const float *dout,
                            const float *x, const float *w, const float *rstd, int n, int dim) {
    (void)o;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * dim, *gi = dout + (size_t)i * dim;
        float *dxi = dx + (size_t)i * dim;
        float r = rstd[i];
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int j = 0; j < dim; j++) dot += gi[j] * w[j] * xi[j];
        float c = r * r * r * dot / (float)dim;
        for (int j = 0; j < dim; j++) dxi[j] += gi[j] * w[j] * r - xi[j] * c;
    }
    if (dw) {
        /* Columns are independent: parallel over columns, rows in order. */
#pragma omp parallel for schedule(static)
        for (int j = 0; j < dim; j++) {
            float acc = 0.0f;
            for (int i = 0; i < n; i++)
                acc += dout[(size_t)i * dim + j] * x[(size_t)i * dim + j] * rstd[i];
            dw[j] += acc;
        }
    }
}

static void cpu_rope(const lt_ops *o, float *x, int stride, int B, int T, int n_heads,
                     int head_dim, const float *cos_t, const float *sin_t, int layout,
                     int inverse) {
    (void)o;
    int half = head_dim / 2;
    float sign = inverse ? -1.0f : 1.0f;
#pragma omp parallel for schedule(static)
    for (int row = 0; row < B * T; row++) {
        int pos = row % T;
        const float *c = cos_t + (size_t)pos * half, *s = sin_t + (size_t)pos * half;
        float *xr = x + (size_t)row * stride;
        for (int h = 0; h < n_heads; h++) {
            float *v = xr + (size_t)h * head_dim;
            if (layout == LT_ROPE_INTERLEAVED) {
                for (int i = 0; i < half; i++) {
                    float a = v[2 * i], b = v[2 * i + 1], sn = sign * s[i];
                    v[2 * i] = a * c[i] - b * sn;
                    v[2 * i + 1] = a * sn + b * c[i];
                }
            } else {
                for (int i = 0; i < half; i++) {
                    float a = v[i], b = v[i + half], sn = sign * s[i];
                    v[i] = a * c[i] - b * sn;
                    v[i + half] = a * sn + b * c[i];
                }
            }
        }
    }
}

static void cpu_bias_add(const lt_ops *o, float *y, const float *b, int n, int cols) {
    (void)o;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        float *yi = y + (size_t)i * cols;
        for (int j = 0; j < cols; j++) yi[j] += b[j];
    }
}

/* Threads split the columns, never the rows, so every column is summed in
 * row order whatever the thread count. */
static void cpu_bias_bwd(const lt_ops *o, float *db, const float *dy, int n, int cols) {
    (void)o;
    enum { STRIP = 64 };
    const int strips = (cols + STRIP - 1) / STRIP;
#pragma omp parallel for schedule(static)
    for (int s = 0; s < strips; s++) {
        const int j0 = s * STRIP, j1 = j0 + STRIP < cols ? j0 + STRIP : cols;
        float acc[STRIP] = {0};
        for (int i = 0; i < n; i++) {
            const float *r = dy + (size_t)i * cols;
            for (int j = j0; j < j1; j++) acc[j - j0] += r[j];
        }
        for (int j = j0; j < j1; j++) db[j] += acc[j - j0];
    }
}

/* sigmoid(g) = 1 / (1 + exp(-g)); exp saturates at 88, so very negative g
 * gives 0 rather than inf/inf. */
static inline vf vf_sigmoid(vf g) { return 1.0f / (1.0f + vf_exp(-g)); }

static void cpu_swiglu_fwd(const lt_ops *o, float *h, const float *gate_up, int n, int hidden) {
    (void)o;
    const int nv = hidden / LT_V * LT_V;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *g = gate_up + (size_t)i * 2 * hidden, *u = g + hidden;
        float *hi = h + (size_t)i * hidden;
        for (int j = 0; j < nv; j += LT_V) {
            vf gv = vf_load(g + j);
            vf_store(hi + j, gv * vf_sigmoid(gv) * vf_load(u + j));
        }
        for (int j = nv; j < hidden; j++) hi[j] = g[j] / (1.0f + lt_expf_scalar(-g[j])) * u[j];
    }
}

static void cpu_swiglu_bwd(const lt_ops *o, float *dgate_up, const float *dh,
                           const float *gate_up, int n, int hidden) {
    (void)o;
    const int nv = hidden / LT_V * LT_V;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *g = gate_up + (size_t)i * 2 * hidden, *u = g + hidden;
        const float *dhi = dh + (size_t)i * hidden;
        float *dg = dgate_up + (size_t)i * 2 * hidden, *du = dg + hidden;
        for (int j = 0; j < nv; j += LT_V) {
            vf gv = vf_load(g + j), sig = vf_sigmoid(gv), d = vf_load(dhi + j);
            vf_store(du + j, d * gv * sig);
            vf_store(dg + j, d * vf_load(u + j) * sig * (1.0f + gv * (1.0f - sig)));
        }
        for (int j = nv; j < hidden; j++) {
            float sig = 1.0f / (1.0f + lt_expf_scalar(-g[j]));
            du[j] = dhi[j] * g[j] * sig;
            dg[j] = dhi[j] * u[j] * sig * (1.0f + g[j] * (1.0f - sig));
        }
    }
}

static void cpu_dropout(const lt_ops *o, float *out, const float *x, int n, int cols, float p,
                        uint64_t key, uint64_t first_row, int accumulate) {
    (void)o;
    const float keep_scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * cols;
        float *oi = out + (size_t)i * cols;
        uint64_t base = (first_row + (uint64_t)i) * (uint64_t)cols;
        for (int j = 0; j < cols; j++) {
            float m = lt_rng_uniform(key, base + (uint64_t)j) >= p ? keep_scale : 0.0f;
            oi[j] = accumulate ? oi[j] + xi[j] * m : xi[j] * m;
        }
    }
}

static float row_max(const float *x, int n) {
    const int nv = n / LT_V * LT_V;
    vf mv = vf_set1(-INFINITY);
    for (int j = 0; j < nv; j += LT_V) mv = vf_max(mv, vf_load(x + j));
    float mx = vf_hmax(mv);
    for (int j = nv; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    return mx;
}

/* e = exp(x - mx) over n entries, stored back when `store`: the count of
 * entries equal to mx, and the sum of the other e. */
static inline void exp_sums(float *x, int n, float mx, int store, double *ties, double *rest) {
    const int nv = n / LT_V * LT_V;
    vf r = {0}, t = {0};
    const vf mxv = vf_set1(mx);
    for (int j = 0; j < nv; j += LT_V) {
        vf xv = vf_load(x + j), e = vf_exp(xv - mx);
        vfi is_max = xv == mxv;
        t += vf_select(is_max, vf_set1(1.0f), (vf){0});
        r += vf_select(is_max, (vf){0}, e);
        if (store) vf_store(x + j, e);
    }
    double nt = vf_hsum(t), sr = vf_hsum(r);
    for (int j = nv; j < n; j++) {
        float e = lt_expf_scalar(x[j] - mx);
        if (x[j] == mx) nt += 1.0; else sr += e;
        if (store) x[j] = e;
    }
    *ties = nt, *rest = sr;
}

static void cpu_cross_entropy(const lt_ops *o, float *logits, float *losses,
                              const int32_t *targets, int n, int V, float grad_scale,
                              int want_grad) {
    (void)o;
    const int nv = V / LT_V * LT_V;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        float *x = logits + (size_t)i * V;
        int t = targets[i];
        if (t < 0) {
            losses[i] = 0.0f;
            if (want_grad) memset(x, 0, (size_t)V * sizeof(float));
            continue;
        }
        const float xt = x[t]; /* the exp pass below overwrites it */
        const float mx = row_max(x, V);
        /* sum exp(x - max) = ties + rest, where ties counts the maxima (each
         * exp(0) = 1 exactly). A confident prediction's loss lives in rest;
         * adding it up apart from the 1 keeps its digits, where a running
         * sum starting at 1 would round the small terms away. The loss is
         * then (max - x_t) + log(ties + rest), never (max + lse) - x_t. */
        double nties, sum_rest;
        exp_sums(x, V, mx, want_grad, &nties, &sum_rest);
        const double sum = nties + sum_rest;
        losses[i] = (float)((double)(mx - xt) + log(nties) + log1p(sum_rest / nties));
        if (want_grad) {
            const float inv = (float)(grad_scale / sum);
            for (int j = 0; j < nv; j += LT_V) vf_store(x + j, vf_load(x + j) * inv);
            for (int j = nv; j < V; j++) x[j] *= inv;
            x[t] -= grad_scale;
        }
    }
}

/* Per row: the running max; the target's logit and its exp relative to
 * the max; and, over the other entries, how many equal the max and the sum
 * of the rest's exps. The target's own term is kept out of the block (its
 * exp stored as 0) so d(loss)/dx = scale/sum * (sum_{j != t} e_j W_j -
 * others * W_t) never subtracts two numbers near W_t: on a confident row
 * (p_t = 1 - 1e-17) that difference is the whole gradient. */
enum { CE_MAX, CE_XT, CE_ET, CE_TIES, CE_REST, CE_FIELDS };
_Static_assert(CE_FIELDS <= LT_CE_STATE, "LT_CE_STATE holds the per-row fields");

static void cpu_ce_block(const lt_ops *o, float *blk, int ld, int n, int cols, int col0,
                         const int32_t *targets, float *st, float *dx, int dim, int want_grad) {
    (void)o;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        float *x = blk + (size_t)i * ld, *s = st + (size_t)i * LT_CE_STATE;
        const int t = targets[i];
        if (t < 0) {
            if (want_grad) memset(x, 0, (size_t)cols * sizeof(float));
            continue;
        }
        if (col0 == 0) s[CE_MAX] = -INFINITY, s[CE_ET] = s[CE_TIES] = s[CE_REST] = 0.0f;
        float mx = row_max(x, cols);
        if (mx > s[CE_MAX]) {
            /* the old max's ties join the rest, all scaled to the new max */
            if (col0 > 0) {
                const float a = lt_expf_scalar(s[CE_MAX] - mx);
                s[CE_REST] = (s[CE_REST] + s[CE_TIES]) * a;
                s[CE_ET] *= a;
                s[CE_TIES] = 0.0f;
                if (want_grad)
                    for (int d = 0; d < dim; d++) dx[(size_t)i * dim + d] *= a;
            }
            s[CE_MAX] = mx;
        } else {
            mx = s[CE_MAX];
        }
        if (t >= col0 && t < col0 + cols) {
            s[CE_XT] = x[t - col0];
            s[CE_ET] = lt_expf_scalar(s[CE_XT] - mx);
            x[t - col0] = -INFINITY;
        }
        double nties, sum_rest;
        exp_sums(x, cols, mx, want_grad, &nties, &sum_rest);
        s[CE_TIES] += (float)nties;
        s[CE_REST] += (float)sum_rest;
    }
}

static void cpu_ce_finish(const lt_ops *o, float *losses, const float *st, const int32_t *targets,
                          int n, float grad_scale, float *dx, int dim, const float *cls) {
    (void)o;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *s = st + (size_t)i * LT_CE_STATE;
        const int t = targets[i];
        float *dxi = dx ? dx + (size_t)i * dim : NULL;
        if (t < 0) {
            losses[i] = 0.0f;
            if (dxi) memset(dxi, 0, (size_t)dim * sizeof(float));
            continue;
        }
        /* sum = big + rest with big = the terms near 1 (the target's when it
         * is the max, and the others at the max): log(big) + log1p(rest/big)
         * keeps a confident row's tiny loss, which log(sum) would round to 0 */
        const double big = (double)s[CE_ET] + s[CE_TIES], rest = s[CE_REST];
        losses[i] = (float)((double)(s[CE_MAX] - s[CE_XT]) + log(big) + log1p(rest / big));
        if (!dxi) continue;
        const float inv = (float)(grad_scale / (big + rest));
        const float others = s[CE_TIES] + s[CE_REST];
        const float *ct = cls + (size_t)t * dim;
        for (int d = 0; d < dim; d++) dxi[d] = (dxi[d] - others * ct[d]) * inv;
    }
}

/* ------------------------------------------------------------- optimizer */

/* core/optim_math.c's loops, the ones optim/ runs: the bits of a step are
 * those of lt_adamw_step and lt_clip_grad_norm. */
static double cpu_sumsq(const lt_ops *o, const float *x, size_t n) {
    (void)o;
    return lt_sumsq(x, n);
}
static void cpu_scale(const lt_ops *o, float *x, size_t n, float c) {
    (void)o;
    lt_scale(x, n, c);
}
static void cpu_adamw(const lt_ops *o, float *params, const float *grads, float *m, float *v,
                      size_t n, const lt_adamw_scalars *s) {
    (void)o;
    lt_adamw_apply(params, grads, m, v, n, s);
}

/* ---------------------------------------------------------------- table */

static lt_ops g_cpu_ops = {
    .name = "cpu",
    .ctx = NULL,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_memcpy,
    .download = cpu_memcpy,
    .copy = cpu_memcpy,
    .zero = cpu_zero,
    .sync = cpu_sync,
    .check = cpu_check,
    .gemm = cpu_gemm,
    .dequantize = lt_cpu_dequantize,
    .embedding_fwd = cpu_embedding_fwd,
    .embedding_bwd = cpu_embedding_bwd,
    .rmsnorm_fwd = cpu_rmsnorm_fwd,
    .rmsnorm_bwd = cpu_rmsnorm_bwd,
    .rope = cpu_rope,
    .attention_fwd = lt_cpu_attention_fwd,
    .attention_bwd = lt_cpu_attention_bwd,
    .bias_add = cpu_bias_add,
    .bias_bwd = cpu_bias_bwd,
    .swiglu_fwd = cpu_swiglu_fwd,
    .swiglu_bwd = cpu_swiglu_bwd,
    .dropout = cpu_dropout,
    .cross_entropy = cpu_cross_entropy,
    .ce_block = cpu_ce_block,
    .ce_finish = cpu_ce_finish,
    .sumsq = cpu_sumsq,
    .scale = cpu_scale,
    .adamw = cpu_adamw,
};

const char *lt_ops_cpu_blas_core(void) { return openblas_get_corename(); }

const lt_ops *lt_ops_cpu(int threads) {
    if (threads > 0) {
        omp_set_num_threads(threads);
        openblas_set_num_threads(threads);
    }
    return &g_cpu_ops;
}
