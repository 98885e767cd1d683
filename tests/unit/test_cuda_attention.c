/* The CUDA backend's attention and classifier-loss ops (model/cuda/
 * attention.cu, loss.cu) against the CPU backend's, called through both
 * ops tables, on random inputs of many shapes, and both against a
 * double-precision reference written here (so a fault the two backends
 * share still fails).
 *
 * Each CUDA op runs twice: in the emulated build (tests/cuda_emu) with the
 * threads of every block resumed in forward and then in reverse order
 * (LT_CUDA_EMU_ORDER, read at each launch), and the two results must be
 * the same bits: a missing barrier or a race between threads shows up as a
 * difference (or as a failed launch, which ops->check reports). On a GPU
 * the variable does nothing and the same check is run-to-run determinism.
 *
 * Bounds. Attention: every output's error is measured relative to the
 * size of the rounding errors fp32 makes in it (attn_ref below: the sum
 * of its terms' sizes, so a sum that cancels to ~0, as every dQ and dK at
 * T = 1, is judged by what it cancels), and both backends must be within
 * 1e-6 of that (16 ulp) against double precision, and within 2e-6 of each
 * other. The loss: the CPU backend's bounds against double precision in
 * tests/unit/test_ops.c (losses 1e-6 relative, 2e-6 blocked; gradients
 * 1e-5) hold for the CUDA ops too, and against the CPU they must agree
 * within 1e-6 (losses) and 2e-6 (gradients and dx), which model/cuda/
 * loss.cu derives from where their roundings differ. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "model/cpu/cpu.h"
#include "model/cuda/cuda.h"
#include "model/ops.h"
#include "tests/lib/check.h"

static const lt_ops *G;   /* the CUDA backend */
static const lt_ops *CPU; /* the reference backend */
static lt_rng g_rng;

static const char *const k_orders[2] = {"forward", "reverse"};

static double urand(void) { return 2.0 * lt_rng_next_uniform(&g_rng) - 1.0; }
static float *frand(size_t n, double scale) {
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = (float)(scale * urand());
    return p;
}
static float *fill(size_t n, float v) {
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = v;
    return p;
}

/* ops' memory from host bytes, and back */
static void *put(const lt_ops *o, const void *host, size_t bytes) {
    void *p = o->alloc(o, LT_MEM_OTHER, bytes);
    if (p && host) o->upload(o, p, host, bytes);
    return p;
}
static void get(const lt_ops *o, void *host, const void *p, size_t bytes) {
    o->sync(o);
    o->download(o, host, p, bytes);
}

/* No failure recorded by the ops since the last check. */
static int ops_ok(const lt_ops *o, const char *what) {
    lt_error err;
    memset(&err, 0, sizeof err);
    lt_status st = o->check(o, &err);
    CHECK(st == LT_OK, "%s on %s: %s", what, o->name, err.msg);
    return st == LT_OK;
}

/* max |a - ref| over rows of columns [c0, c1), relative to the largest
 * mag there: mag is the size of what the element's rounding errors scale
 * with (below), so a sum that cancels to ~0 (every dQ and dK at T = 1) is
 * judged by the terms it cancels, not by its own size. */
static double err_cols(const float *a, const double *ref, const double *mag, size_t rows,
                       size_t ld, size_t c0, size_t c1) {
    double md = 0, mm = 1e-30;
    for (size_t i = 0; i < rows; i++)
        for (size_t j = c0; j < c1; j++) {
            md = fmax(md, fabs((double)a[i * ld + j] - ref[i * ld + j]));
            mm = fmax(mm, mag[i * ld + j]);
        }
    return md / mm;
}
static double *widen(const float *x, size_t n) {
    double *d = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

/* ------------------------------------------------------------ attention */

typedef struct {
    int B, T, nh, nkv, hd;
} attn_shape;

/* The reference: values in double and, beside each, the size of the
 * rounding errors fp32 arithmetic makes in it (the "mag" of err_cols).
 * With S = scale sum_e |q_e k_e| (a score's rounding scale, which exp
 * turns into p's relative error) and R = sum_e |dO_e v_e| + |dO_e O_e|
 * (the same for dO.v - D):
 *   out:   sum_j p_j |v_j| (1 + S_j)
 *   lse:   1 + |lse| + max_j S_j
 *   dV:    sum_i p_i |dO_i| (1 + S_i)
 *   dQ/dK: scale sum p (|dO.v - D| (1 + S) + R) |k| (|q| for dK). */
typedef struct {
    double *out, *lse, *dqkv;       /* values */
    double *out_m, *lse_m, *dqkv_m; /* their error sizes */
} attn_ref_t;

/* Forward and backward in double for the upstream gradient dout (the
 * softmax's backward written out: dS = P (dO.V - dO.O), dQ = scale dS K,
 * dK = scale dS^T Q, dV = P^T dO). */
static void attn_ref(const attn_shape *s, const float *qkv, const float *dout, attn_ref_t *r) {
    const int C = s->nh * s->hd, W = C + 2 * s->nkv * s->hd, grp = s->nh / s->nkv, hd = s->hd;
    const size_t rows = (size_t)s->B * s->T;
    const double scale = 1.0 / sqrt((double)hd);
    double *p = malloc((size_t)s->T * sizeof(double)), *S = malloc((size_t)s->T * sizeof(double));
    memset(r->dqkv, 0, rows * W * sizeof(double));
    memset(r->dqkv_m, 0, rows * W * sizeof(double));
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < s->nh; h++) {
            const size_t kc = (size_t)C + (size_t)(h / grp) * hd, vc = kc + (size_t)s->nkv * hd;
            for (int i = 0; i < s->T; i++) {
                const size_t ri = (size_t)b * s->T + i, li = ((size_t)b * s->nh + h) * s->T + i;
                const float *q = qkv + ri * W + (size_t)h * hd;
                double mx = -INFINITY, sum = 0, smax = 0;
                for (int j = 0; j <= i; j++) {
                    const float *k = qkv + ((size_t)b * s->T + j) * W + kc;
                    double d = 0, a = 0;
                    for (int e = 0; e < hd; e++) {
                        d += (double)q[e] * k[e];
                        a += fabs((double)q[e] * k[e]);
                    }
                    p[j] = d * scale, S[j] = a * scale;
                    mx = fmax(mx, p[j]), smax = fmax(smax, S[j]);
                }
                for (int j = 0; j <= i; j++) sum += (p[j] = exp(p[j] - mx));
                for (int j = 0; j <= i; j++) p[j] /= sum;
                r->lse[li] = mx + log(sum);
                r->lse_m[li] = 1 + fabs(r->lse[li]) + smax;
                double *o = r->out + ri * C + (size_t)h * hd;
                double *om = r->out_m + ri * C + (size_t)h * hd;
                for (int e = 0; e < hd; e++) {
                    double acc = 0, m = 0;
                    for (int j = 0; j <= i; j++) {
                        const double v = qkv[((size_t)b * s->T + j) * W + vc + e];
                        acc += p[j] * v, m += p[j] * fabs(v) * (1 + S[j]);
                    }
                    o[e] = acc, om[e] = m;
                }
                const float *g = dout + ri * C + (size_t)h * hd;
                double D = 0, Dm = 0;
                for (int e = 0; e < hd; e++) D += g[e] * o[e], Dm += fabs(g[e] * o[e]);
                for (int j = 0; j <= i; j++) {
                    const size_t rj = (size_t)b * s->T + j;
                    const float *k = qkv + rj * W + kc, *v = qkv + rj * W + vc;
                    double dp = 0, R = Dm;
                    for (int e = 0; e < hd; e++) {
                        dp += (double)g[e] * v[e];
                        R += fabs((double)g[e] * v[e]);
                    }
                    const double ds = p[j] * (dp - D) * scale;
                    const double dsm = p[j] * (fabs(dp - D) * (1 + S[j]) + R) * scale;
                    for (int e = 0; e < hd; e++) {
                        r->dqkv[ri * W + (size_t)h * hd + e] += ds * k[e];
                        r->dqkv_m[ri * W + (size_t)h * hd + e] += dsm * fabs(k[e]);
                        r->dqkv[rj * W + kc + e] += ds * q[e];
                        r->dqkv_m[rj * W + kc + e] += dsm * fabs(q[e]);
                        r->dqkv[rj * W + vc + e] += p[j] * g[e];
                        r->dqkv_m[rj * W + vc + e] += p[j] * fabs(g[e]) * (1 + S[j]);
                    }
                }
            }
        }
    free(p), free(S);
}

/* One backend's forward and backward; its outputs start as `garbage`, so
 * an element an op leaves unwritten (or accumulates into) shows. */
static void attn_run(const lt_ops *o, const attn_shape *s, const float *qkv, const float *dout,
                     float *out, float *lse, float *dqkv) {
    const size_t nq = (size_t)s->B * s->T * (s->nh + 2 * s->nkv) * s->hd;
    const size_t no = (size_t)s->B * s->T * s->nh * s->hd, nl = (size_t)s->B * s->nh * s->T;
    const float garbage = 1e30f;
    float *g_out = fill(no, garbage), *g_lse = fill(nl, garbage), *g_dqkv = fill(nq, garbage);
    float *d_qkv = put(o, qkv, nq * 4), *d_dout = put(o, dout, no * 4);
    float *d_out = put(o, g_out, no * 4), *d_lse = put(o, g_lse, nl * 4);
    float *d_dqkv = put(o, g_dqkv, nq * 4);
    o->attention_fwd(o, d_out, d_lse, d_qkv, s->B, s->T, s->nh, s->nkv, s->hd);
    o->attention_bwd(o, d_dqkv, d_dout, d_out, d_lse, d_qkv, s->B, s->T, s->nh, s->nkv, s->hd);
    get(o, out, d_out, no * 4);
    get(o, lse, d_lse, nl * 4);
    get(o, dqkv, d_dqkv, nq * 4);
    ops_ok(o, "attention");
    o->free(o, d_qkv), o->free(o, d_dout), o->free(o, d_out), o->free(o, d_lse), o->free(o, d_dqkv);
    free(g_out), free(g_lse), free(g_dqkv);
}

/* Error bounds relative to the error sizes of attn_ref: what fp32 sums
 * of up to a few hundred terms leave (a unit roundoff is 6e-8). */
#define ATTN_BOUND 1e-6

typedef struct {
    float *out, *lse, *dqkv;
} attn_res;

/* x against ref (double, or the other backend's widened) within bound,
 * each output relative to its error size. */
static void attn_check(const char *what, const char *who, const attn_shape *s, const attn_res *x,
                       const double *out, const double *lse, const double *dqkv,
                       const attn_ref_t *r, double bound) {
    const size_t C = (size_t)s->nh * s->hd, kvd = (size_t)s->nkv * s->hd, W = C + 2 * kvd;
    const size_t rows = (size_t)s->B * s->T, nl = (size_t)s->B * s->nh * s->T;
    double e = err_cols(x->out, out, r->out_m, rows, C, 0, C);
    CHECK(e < bound, "%s: out error %g (%s)", what, e, who);
    e = err_cols(x->lse, lse, r->lse_m, nl, 1, 0, 1);
    CHECK(e < bound, "%s: lse error %g (%s)", what, e, who);
    static const char *const part[3] = {"dq", "dk", "dv"};
    const size_t c0[4] = {0, C, C + kvd, W};
    for (int p = 0; p < 3; p++) {
        e = err_cols(x->dqkv, dqkv, r->dqkv_m, rows, W, c0[p], c0[p + 1]);
        CHECK(e < bound, "%s: %s error %g (%s)", what, part[p], e, who);
    }
}

/* qkv_scale sets how peaked the softmax is (scores have a standard
 * deviation of about 0.5 * qkv_scale^2); ramp > 0 adds ramp * j to key
 * j's first component and 1 to every query's, so scores rise along the
 * keys and the running max moves up in every tile. */
static void test_attention(attn_shape s, double qkv_scale, double ramp) {
    const int C = s.nh * s.hd, W = C + 2 * s.nkv * s.hd;
    const size_t rows = (size_t)s.B * s.T, nq = rows * W, no = rows * C;
    const size_t nl = (size_t)s.B * s.nh * s.T;
    char what[96];
    snprintf(what, sizeof what, "attention B=%d T=%d nh=%d nkv=%d hd=%d scale=%g ramp=%g", s.B,
             s.T, s.nh, s.nkv, s.hd, qkv_scale, ramp);
    float *qkv = frand(nq, qkv_scale), *dout = frand(no, 1);
    for (size_t i = 0; ramp > 0 && i < rows; i++) {
        const int j = (int)(i % (size_t)s.T);
        for (int h = 0; h < s.nh; h++) qkv[i * W + (size_t)h * s.hd] = 1.0f;
        for (int g = 0; g < s.nkv; g++) qkv[i * W + C + (size_t)g * s.hd] = (float)(ramp * j);
    }
    attn_res x[3]; /* CUDA in forward thread order, in reverse order; the CPU */
    for (int k = 0; k < 3; k++) {
        x[k] = (attn_res){malloc(no * 4), malloc(nl * 4), malloc(nq * 4)};
        if (k < 2) setenv("LT_CUDA_EMU_ORDER", k_orders[k], 1);
        attn_run(k < 2 ? G : CPU, &s, qkv, dout, x[k].out, x[k].lse, x[k].dqkv);
    }
    CHECK(!memcmp(x[0].out, x[1].out, no * 4) && !memcmp(x[0].lse, x[1].lse, nl * 4) &&
              !memcmp(x[0].dqkv, x[1].dqkv, nq * 4),
          "%s: forward and reverse thread order give different bits", what);
    attn_ref_t r = {malloc(no * 8), malloc(nl * 8), malloc(nq * 8),
                    malloc(no * 8), malloc(nl * 8), malloc(nq * 8)};
    attn_ref(&s, qkv, dout, &r);
    attn_check(what, "cuda against double", &s, &x[0], r.out, r.lse, r.dqkv, &r, ATTN_BOUND);
    attn_check(what, "cpu against double", &s, &x[2], r.out, r.lse, r.dqkv, &r, ATTN_BOUND);
    /* the two backends: within the sum of their errors */
    double *c_out = widen(x[2].out, no), *c_lse = widen(x[2].lse, nl);
    double *c_dqkv = widen(x[2].dqkv, nq);
    attn_check(what, "cuda against cpu", &s, &x[0], c_out, c_lse, c_dqkv, &r, 2 * ATTN_BOUND);
    for (int k = 0; k < 3; k++) free(x[k].out), free(x[k].lse), free(x[k].dqkv);
    free(qkv), free(dout), free(c_out), free(c_lse), free(c_dqkv);
    free(r.out), free(r.lse), free(r.dqkv), free(r.out_m), free(r.lse_m), free(r.dqkv_m);
}

/* ---------------------------------------------------------------- loss */

/* Loss rows in double: (max - x_t) + log(ties) + log1p(rest / ties), ties
 * the count at the max, rest the other exps (so a confident row's ~1e-17
 * keeps its digits); with g, the row's gradient scale * (softmax - onehot)
 * with the target's p - 1 as minus the others' share. */
static double ce_ref_row(const float *x, int V, int t, double scale, double *g) {
    double mx = -INFINITY, ties = 0, rest = 0, others = 0;
    for (int j = 0; j < V; j++) mx = fmax(mx, x[j]);
    for (int j = 0; j < V; j++) {
        const double e = exp((double)x[j] - mx);
        if (x[j] == mx) ties += 1;
        else rest += e;
        if (j != t) others += e;
    }
    const double sum = ties + rest;
    for (int j = 0; g && j < V; j++)
        g[j] = j == t ? -scale * others / sum : scale * exp((double)x[j] - mx) / sum;
    return (mx - x[t]) + log(ties) + log1p(rest / ties);
}

/* Rows that matter: an ignored target; a confident row (its target 40
 * above the rest); two tied maxima apart from the target; the target tied
 * at the max; every logit equal; targets at the first and last column. */
enum { CE_ROWS = 8 };
static void ce_inputs(float *x, int32_t *t, int V) {
    const int32_t tg[CE_ROWS] = {3 % V, -100, 0, V - 1, 17 % V, 5 % V, 2 % V, 1 % V};
    memcpy(t, tg, sizeof tg);
    for (size_t i = 0; i < (size_t)CE_ROWS * V; i++) x[i] = (float)(6 * urand());
    for (int j = 0; j < V; j++) x[2 * V + j] = (float)urand();
    x[2 * V + 0] = 40.0f;
    x[3 * V + (V > 7 ? 7 : 0)] = x[3 * V + (V > 11 ? 11 : 1)] = 30.0f;
    x[5 * V + t[5]] = x[5 * V + (t[5] + 3) % V] = 25.0f;
    for (int j = 0; j < V; j++) x[6 * V + j] = 1.5f;
}

/* err of a against ref, relative to max(|ref| over the row, floor_) */
static double row_err(const float *a, const double *ref, int n, double floor_) {
    double md = 0, mr = floor_;
    for (int j = 0; j < n; j++) md = fmax(md, fabs(a[j] - ref[j])), mr = fmax(mr, fabs(ref[j]));
    return md / mr;
}

static void ce_run(const lt_ops *o, const float *x, const int32_t *t, int V, float scale, int grad,
                   float *xo, float *losses) {
    const size_t nx = (size_t)CE_ROWS * V * 4;
    float *dx = put(o, x, nx), *dl = put(o, NULL, CE_ROWS * 4);
    int32_t *dt = put(o, t, CE_ROWS * 4);
    o->cross_entropy(o, dx, dl, dt, CE_ROWS, V, scale, grad);
    get(o, xo, dx, nx);
    get(o, losses, dl, CE_ROWS * 4);
    ops_ok(o, "cross_entropy");
    o->free(o, dx), o->free(o, dl), o->free(o, dt);
}

static void test_cross_entropy(int V) {
    const float scale = 0.37f;
    float *x = malloc((size_t)CE_ROWS * V * 4), *xo[2], *nograd = malloc((size_t)CE_ROWS * V * 4);
    float *cx = malloc((size_t)CE_ROWS * V * 4), l[2][CE_ROWS], cl[CE_ROWS], l0[CE_ROWS];
    int32_t t[CE_ROWS];
    ce_inputs(x, t, V);
    for (int k = 0; k < 2; k++) {
        xo[k] = malloc((size_t)CE_ROWS * V * 4);
        setenv("LT_CUDA_EMU_ORDER", k_orders[k], 1);
        ce_run(G, x, t, V, scale, 1, xo[k], l[k]);
    }
    CHECK(!memcmp(xo[0], xo[1], (size_t)CE_ROWS * V * 4) && !memcmp(l[0], l[1], sizeof l[0]),
          "cross_entropy V=%d: forward and reverse thread order give different bits", V);
    ce_run(G, x, t, V, scale, 0, nograd, l0);
    CHECK(!memcmp(l0, l[0], sizeof l0), "cross_entropy V=%d: losses differ without the gradient",
          V);
    CHECK(!memcmp(nograd, x, (size_t)CE_ROWS * V * 4),
          "cross_entropy V=%d: logits changed without want_grad", V);
    ce_run(CPU, x, t, V, scale, 1, cx, cl);
    double *ref = malloc((size_t)V * sizeof(double)), *cref = malloc((size_t)V * sizeof(double));
    for (int i = 0; i < CE_ROWS; i++) {
        const float *gi = xo[0] + (size_t)i * V, *ci = cx + (size_t)i * V;
        if (t[i] < 0) {
            int zero = l[0][i] == 0.0f;
            for (int j = 0; j < V; j++) zero &= gi[j] == 0.0f;
            CHECK(zero, "cross_entropy V=%d: ignored row %d has a loss or a gradient", V, i);
            continue;
        }
        const double loss = ce_ref_row(x + (size_t)i * V, V, t[i], scale, ref);
        const double lfloor = fmax(fabs(loss), 1e-30);
        CHECK(fabs(l[0][i] - cl[i]) <= 1e-6 * fmax(fabs(cl[i]), 1e-30),
              "cross_entropy V=%d row %d: loss %.9g, the CPU's %.9g", V, i, (double)l[0][i],
              (double)cl[i]);
        CHECK(fabs(l[0][i] - loss) <= 1e-6 * lfloor,
              "cross_entropy V=%d row %d: loss %.9g, double %.9g", V, i, (double)l[0][i], loss);
        /* p - 1 at the target is a difference in fp32 (the CPU's too):
         * errors are absolute, of the order of scale's roundoff */
        for (int j = 0; j < V; j++) cref[j] = ci[j];
        double e = row_err(gi, cref, V, scale);
        CHECK(e < 2e-6, "cross_entropy V=%d row %d: gradient differs from the CPU's by %g", V, i,
              e);
        e = row_err(gi, ref, V, scale);
        CHECK(e < 1e-5, "cross_entropy V=%d row %d: gradient error %g against double", V, i, e);
    }
    free(ref), free(cref), free(x), free(xo[0]), free(xo[1]), free(nograd), free(cx);
}

/* ce_block / ce_finish driven as llama.c drives them, the classifier GEMM
 * dx (+)= blk W done here on the host, the same code for both backends
 * (the device's GEMM is not under test): blocks of nb columns, the last
 * one ragged. Row 0's logits rise along the row, so its max moves up in
 * every block and the earlier sums and dx row are rescaled. */
static void blocked_run(const lt_ops *o, const float *x, const float *w, const int32_t *t, int V,
                        int nb, int dim, float scale, int grad, float *losses, float *dx) {
    const int n = CE_ROWS;
    float *blk = malloc((size_t)n * nb * 4);
    float *d_blk = put(o, NULL, (size_t)n * nb * 4);
    float *d_st = put(o, NULL, (size_t)n * LT_CE_STATE * 4);
    float *d_dx = put(o, NULL, (size_t)n * dim * 4), *d_w = put(o, w, (size_t)V * dim * 4);
    float *d_l = put(o, NULL, n * 4);
    int32_t *d_t = put(o, t, n * 4);
    for (int v0 = 0; v0 < V; v0 += nb) {
        const int cols = V - v0 < nb ? V - v0 : nb;
        for (int i = 0; i < n; i++)
            memcpy(blk + (size_t)i * cols, x + (size_t)i * V + v0, (size_t)cols * 4);
        o->upload(o, d_blk, blk, (size_t)n * cols * 4);
        o->ce_block(o, d_blk, cols, n, cols, v0, d_t, d_st, grad ? d_dx : NULL, dim, grad);
        if (!grad) continue;
        get(o, blk, d_blk, (size_t)n * cols * 4);
        get(o, dx, d_dx, (size_t)n * dim * 4);
        for (int i = 0; i < n; i++)
            for (int d = 0; d < dim; d++) {
                float acc = v0 ? dx[i * dim + d] : 0.0f;
                for (int j = 0; j < cols; j++)
                    acc += blk[i * cols + j] * w[(size_t)(v0 + j) * dim + d];
                dx[i * dim + d] = acc;
            }
        o->upload(o, d_dx, dx, (size_t)n * dim * 4);
    }
    o->ce_finish(o, d_l, d_st, d_t, n, scale, grad ? d_dx : NULL, dim, d_w);
    get(o, losses, d_l, n * 4);
    if (grad) get(o, dx, d_dx, (size_t)n * dim * 4);
    ops_ok(o, "ce_block/ce_finish");
    o->free(o, d_blk), o->free(o, d_st), o->free(o, d_dx), o->free(o, d_w), o->free(o, d_l),
        o->free(o, d_t);
    free(blk);
}

static void test_cross_entropy_blocked(int V, int nb, int dim) {
    const float scale = 0.37f;
    const int n = CE_ROWS;
    float *x = malloc((size_t)n * V * 4), *w = frand((size_t)V * dim, 1);
    int32_t t[CE_ROWS];
    ce_inputs(x, t, V);
    for (int j = 0; j < V; j++) x[j] = 0.5f * (float)j;
    float l[2][CE_ROWS], l0[CE_ROWS], cl[CE_ROWS];
    float *dx[2], *cdx = malloc((size_t)n * dim * 4);
    for (int k = 0; k < 2; k++) {
        dx[k] = malloc((size_t)n * dim * 4);
        setenv("LT_CUDA_EMU_ORDER", k_orders[k], 1);
        blocked_run(G, x, w, t, V, nb, dim, scale, 1, l[k], dx[k]);
    }
    CHECK(!memcmp(dx[0], dx[1], (size_t)n * dim * 4) && !memcmp(l[0], l[1], sizeof l[0]),
          "ce_block V=%d: forward and reverse thread order give different bits", V);
    blocked_run(G, x, w, t, V, nb, dim, scale, 0, l0, NULL);
    CHECK(!memcmp(l0, l[0], sizeof l0), "ce_block V=%d: losses differ without the gradient", V);
    blocked_run(CPU, x, w, t, V, nb, dim, scale, 1, cl, cdx);
    double *p = malloc((size_t)V * sizeof(double)), *gref = malloc((size_t)dim * sizeof(double));
    double *cref = malloc((size_t)dim * sizeof(double));
    for (int i = 0; i < n; i++) {
        const float *gi = dx[0] + (size_t)i * dim;
        if (t[i] < 0) {
            int zero = l[0][i] == 0.0f;
            for (int d = 0; d < dim; d++) zero &= gi[d] == 0.0f;
            CHECK(zero, "ce_block V=%d: ignored row %d has a loss or a gradient", V, i);
            continue;
        }
        const double loss = ce_ref_row(x + (size_t)i * V, V, t[i], scale, p);
        CHECK(fabs(l[0][i] - cl[i]) <= 1e-6 * fmax(fabs(cl[i]), 1e-30),
              "ce_block V=%d row %d: loss %.9g, the CPU's %.9g", V, i, (double)l[0][i],
              (double)cl[i]);
        CHECK(fabs(l[0][i] - loss) <= 2e-6 * fmax(fabs(loss), 1e-30),
              "ce_block V=%d row %d: loss %.9g, double %.9g", V, i, (double)l[0][i], loss);
        for (int d = 0; d < dim; d++) {
            double g = 0;
            for (int j = 0; j < V; j++) g += p[j] * w[(size_t)j * dim + d];
            gref[d] = g;
            cref[d] = cdx[(size_t)i * dim + d];
        }
        double e = row_err(gi, cref, dim, 0);
        CHECK(e < 2e-6, "ce_block V=%d row %d: dx differs from the CPU's by %g", V, i, e);
        e = row_err(gi, gref, dim, 0);
        CHECK(e < 1e-5, "ce_block V=%d row %d: dx error %g against double", V, i, e);
    }
    free(p), free(gref), free(cref), free(x), free(w), free(dx[0]), free(dx[1]), free(cdx);
}

int main(void) {
    lt_error err;
    if (lt_cuda_device_count() < 1) {
        printf("skip: no CUDA device\n");
        return 77;
    }
    CPU = lt_ops_cpu(2);
    CHECK_OK(lt_ops_cuda_open(0, 1, &G, &err), &err);
    lt_rng_seed(&g_rng, 3030, 1);
    /* grouped-query ratios 1, 2, 4 x head sizes 8, 64, 128 x sequence
     * lengths 1 (one key), 7 (inside one tile), 64 (whole tiles), 257
     * (a ragged last tile) x batches 1, 3 */
    static const int ratios[][2] = {{2, 2}, {4, 2}, {4, 1}};
    static const int hds[] = {8, 64, 128}, Ts[] = {1, 7, 64, 257}, Bs[] = {1, 3};
    for (int r = 0; r < 3; r++)
        for (int h = 0; h < 3; h++)
            for (int ti = 0; ti < 4; ti++)
                for (int bi = 0; bi < 2; bi++) {
                    attn_shape s = {Bs[bi], Ts[ti], ratios[r][0], ratios[r][1], hds[h]};
                    test_attention(s, 1.5, 0);
                }
    /* stories15M's head size (48: a part-filled chunk of 32), 256 (the
     * largest), a peaked softmax, and scores rising along the keys */
    test_attention((attn_shape){2, 33, 6, 3, 48}, 1.5, 0);
    test_attention((attn_shape){1, 40, 2, 1, 256}, 1.5, 0);
    test_attention((attn_shape){2, 70, 4, 2, 64}, 4.0, 0);
    test_attention((attn_shape){1, 200, 2, 1, 8}, 0.5, 0.05);

    test_cross_entropy(37);
    test_cross_entropy(1000);
    test_cross_entropy_blocked(37, 16, 5);
    test_cross_entropy_blocked(300, 64, 24);
    lt_ops_cuda_close(G);
    return check_exit_code();
}
