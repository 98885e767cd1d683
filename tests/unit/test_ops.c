/* Every op of the CPU backend against an independent double-precision
 * reference written here: forward values directly, backward against
 * central differences of the double reference (step 1e-6, so the numeric
 * gradient is good to ~1e-9 and the tolerance only has to cover fp32).
 *
 * For an op y = f(x) and a random upstream gradient g, the backward must
 * give d(g . f(x))/dx; the reference differentiates that scalar. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/config.h"
#include "model/cpu/cpu.h"
#include "model/ops.h"
#include "tests/lib/check.h"

static const lt_ops *O;
static lt_rng g_rng;

static double urand(void) { return 2.0 * lt_rng_next_uniform(&g_rng) - 1.0; }
static float *frand(size_t n, double scale) {
    float *p = lt_alloc(LT_MEM_OTHER, n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = (float)(scale * urand());
    return p;
}
static double *to_double(const float *x, size_t n) {
    double *d = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

/* max |a - b| / max(|b|max, floor): a scale-aware error for a whole tensor */
static double rel_err(const float *a, const double *b, size_t n, double floor_) {
    double md = 0, mb = floor_;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        md = d > md ? d : md;
        mb = fabs(b[i]) > mb ? fabs(b[i]) : mb;
    }
    return md / mb;
}

/* Scalar objective for central differences: a generic pointer to a double
 * reference forward that returns sum(g * f(x)). */
typedef double (*objective)(const double *x, void *ctx);

static void numeric_grad(objective f, double *x, size_t n, void *ctx, double *grad) {
    const double h = 1e-6;
    for (size_t i = 0; i < n; i++) {
        double keep = x[i];
        x[i] = keep + h;
        double fp = f(x, ctx);
        x[i] = keep - h;
        double fm = f(x, ctx);
        x[i] = keep;
        grad[i] = (fp - fm) / (2 * h);
    }
}

/* ------------------------------------------------------------------ gemm */

static void test_gemm(void) {
    const int M = 7, N = 5, K = 9;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 4;
            float *A = frand((size_t)(ta ? K : M) * lda, 1), *B = frand((size_t)(tb ? N : K) * ldb, 1);
            float *Cm = frand((size_t)M * ldc, 1);
            double ref[7 * 9];
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double s = 0;
                    for (int k = 0; k < K; k++) {
                        double a = ta ? A[k * lda + i] : A[i * lda + k];
                        double b = tb ? B[j * ldb + k] : B[k * ldb + j];
                        s += a * b;
                    }
                    ref[i * N + j] = 0.5 * s + 0.25 * Cm[i * ldc + j];
                }
            O->gemm(O, ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 0.25f, Cm, ldc);
            double worst = 0;
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double d = fabs(Cm[i * ldc + j] - ref[i * N + j]);
                    worst = d > worst ? d : worst;
                }
            CHECK(worst < 1e-5, "gemm ta=%d tb=%d: max error %g", ta, tb, worst);
            lt_free(A);
            lt_free(B);
            lt_free(Cm);
        }
}

/* --------------------------------------------------------------- rmsnorm */

typedef struct {
    int n, dim, wrt_w;
    const double *x, *w, *g;
    double eps;
} rms_ctx;

static double rms_obj(const double *v, void *vc) {
    rms_ctx *c = vc;
    const double *x = c->wrt_w ? c->x : v, *w = c->wrt_w ? v : c->w;
    double s = 0;
    for (int i = 0; i < c->n; i++) {
        double ss = 0;
        for (int j = 0; j < c->dim; j++) ss += x[i * c->dim + j] * x[i * c->dim + j];
        double r = 1.0 / sqrt(ss / c->dim + c->eps);
        for (int j = 0; j < c->dim; j++) s += c->g[i * c->dim + j] * x[i * c->dim + j] * r * w[j];
    }
    return s;
}

static void test_rmsnorm(void) {
    const int n = 6, dim = 20;
    const float eps = 1e-5f;
    float *x = frand((size_t)n * dim, 2), *w = frand(dim, 1), *g = frand((size_t)n * dim, 1);
    float *out = frand((size_t)n * dim, 1), *rstd = frand(n, 1);
    float *dx = frand((size_t)n * dim, 1), *dw = frand(dim, 1);
    float *dx0 = lt_alloc(LT_MEM_OTHER, (size_t)n * dim * 4), *dw0 = lt_alloc(LT_MEM_OTHER, dim * 4);
    memcpy(dx0, dx, (size_t)n * dim * 4);
    memcpy(dw0, dw, (size_t)dim * 4);
    O->rmsnorm_fwd(O, out, rstd, x, w, n, dim, eps);
    O->rmsnorm_bwd(O, dx, dw, g, x, w, rstd, n, dim);
    double *xd = to_double(x, (size_t)n * dim), *wd = to_double(w, dim), *gd = to_double(g, (size_t)n * dim);
    double ref[6 * 20], num[6 * 20];
    for (int i = 0; i < n; i++) {
        double ss = 0;
        for (int j = 0; j < dim; j++) ss += xd[i * dim + j] * xd[i * dim + j];
        double r = 1.0 / sqrt(ss / dim + eps);
        for (int j = 0; j < dim; j++) ref[i * dim + j] = xd[i * dim + j] * r * wd[j];
    }
    CHECK(rel_err(out, ref, (size_t)n * dim, 1e-3) < 1e-6, "rmsnorm forward error %g",
          rel_err(out, ref, (size_t)n * dim, 1e-3));
    rms_ctx c = {n, dim, 0, xd, wd, gd, eps};
    numeric_grad(rms_obj, xd, (size_t)n * dim, &c, num);
    /* bwd accumulates: subtract the starting values */
    for (int i = 0; i < n * dim; i++) dx[i] -= dx0[i];
    double e = rel_err(dx, num, (size_t)n * dim, 1e-3);
    CHECK(e < 1e-5, "rmsnorm dx error %g", e);
    c.wrt_w = 1;
    numeric_grad(rms_obj, wd, dim, &c, num);
    for (int j = 0; j < dim; j++) dw[j] -= dw0[j];
    e = rel_err(dw, num, dim, 1e-3);
    CHECK(e < 1e-5, "rmsnorm dw error %g", e);
    free(xd);
    free(wd);
    free(gd);
    lt_free(x), lt_free(w), lt_free(g), lt_free(out), lt_free(rstd), lt_free(dx), lt_free(dw);
    lt_free(dx0), lt_free(dw0);
}

/* ------------------------------------------------------------------ rope */

typedef struct {
    int B, T, nh, hd, stride, layout;
    const double *g;
    double theta;
} rope_ctx;

static void rope_ref(const rope_ctx *c, const double *x, double *y) {
    int half = c->hd / 2;
    memcpy(y, x, sizeof(double) * (size_t)c->B * c->T * c->stride);
    for (int row = 0; row < c->B * c->T; row++) {
        int pos = row % c->T;
        for (int h = 0; h < c->nh; h++)
            for (int i = 0; i < half; i++) {
                double ang = pos * pow(c->theta, -2.0 * i / c->hd);
                int i0 = c->layout == LT_ROPE_INTERLEAVED ? 2 * i : i;
                int i1 = c->layout == LT_ROPE_INTERLEAVED ? 2 * i + 1 : i + half;
                const double *v = x + (size_t)row * c->stride + h * c->hd;
                double *o = y + (size_t)row * c->stride + h * c->hd;
                o[i0] = v[i0] * cos(ang) - v[i1] * sin(ang);
                o[i1] = v[i0] * sin(ang) + v[i1] * cos(ang);
            }
    }
}

static double rope_obj(const double *x, void *vc) {
    rope_ctx *c = vc;
    size_t n = (size_t)c->B * c->T * c->stride;
    double *y = malloc(n * sizeof *y), s = 0;
    rope_ref(c, x, y);
    for (size_t i = 0; i < n; i++) s += c->g[i] * y[i];
    free(y);
    return s;
}

static void test_rope(int layout) {
    const int B = 2, T = 5, nh = 3, hd = 8, stride = nh * hd + 5, half = hd / 2;
    const size_t n = (size_t)B * T * stride;
    float *x = frand(n, 1), *g = frand(n, 1);
    float *cs = lt_alloc(LT_MEM_OTHER, (size_t)T * half * 4), *sn = lt_alloc(LT_MEM_OTHER, (size_t)T * half * 4);
    for (int p = 0; p < T; p++)
        for (int i = 0; i < half; i++) {
            double ang = p * pow(10000.0, -2.0 * i / hd);
            cs[p * half + i] = (float)cos(ang);
            sn[p * half + i] = (float)sin(ang);
        }
    double *xd = to_double(x, n), *gd = to_double(g, n), *ref = malloc(n * sizeof(double));
    rope_ctx c = {B, T, nh, hd, stride, layout, gd, 10000.0};
    rope_ref(&c, xd, ref);
    O->rope(O, x, stride, B, T, nh, hd, cs, sn, layout, 0);
    double e = rel_err(x, ref, n, 1e-3);
    CHECK(e < 1e-6, "rope layout %d forward error %g", layout, e);
    /* backward = inverse rotation of the upstream gradient */
    double *num = malloc(n * sizeof(double));
    numeric_grad(rope_obj, xd, n, &c, num);
    O->rope(O, g, stride, B, T, nh, hd, cs, sn, layout, 1);
    e = rel_err(g, num, n, 1e-3);
    CHECK(e < 1e-5, "rope layout %d backward error %g", layout, e);
    free(xd), free(gd), free(ref), free(num);
    lt_free(x), lt_free(g), lt_free(cs), lt_free(sn);
}

/* ------------------------------------------------------------- attention */

typedef struct {
    int B, T, nh, nkv, hd;
    const double *g; /* upstream gradient of out [B*T, nh*hd] */
} attn_ctx;

static void attn_ref(const attn_ctx *c, const double *qkv, double *out) {
    const int C = c->nh * c->hd, W = C + 2 * c->nkv * c->hd, grp = c->nh / c->nkv;
    double *s = malloc(sizeof(double) * c->T);
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->nh; h++) {
            int kh = h / grp;
            for (int i = 0; i < c->T; i++) {
                const double *q = qkv + (size_t)(b * c->T + i) * W + h * c->hd;
                double mx = -1e300, sum = 0;
                for (int j = 0; j <= i; j++) {
                    const double *k = qkv + (size_t)(b * c->T + j) * W + C + kh * c->hd;
                    double d = 0;
                    for (int e = 0; e < c->hd; e++) d += q[e] * k[e];
                    s[j] = d / sqrt((double)c->hd);
                    mx = s[j] > mx ? s[j] : mx;
                }
                for (int j = 0; j <= i; j++) sum += (s[j] = exp(s[j] - mx));
                double *o = out + (size_t)(b * c->T + i) * C + h * c->hd;
                for (int e = 0; e < c->hd; e++) {
                    double acc = 0;
                    for (int j = 0; j <= i; j++)
                        acc += s[j] / sum * qkv[(size_t)(b * c->T + j) * W + C + c->nkv * c->hd + kh * c->hd + e];
                    o[e] = acc;
                }
            }
        }
    free(s);
}

static double attn_obj(const double *qkv, void *vc) {
    attn_ctx *c = vc;
    size_t n = (size_t)c->B * c->T * c->nh * c->hd;
    double *o = malloc(n * sizeof *o), s = 0;
    attn_ref(c, qkv, o);
    for (size_t i = 0; i < n; i++) s += c->g[i] * o[i];
    free(o);
    return s;
}

static void test_attention(int nh, int nkv, int hd, int T) {
    const int B = 2, C = nh * hd, W = C + 2 * nkv * hd;
    const size_t nq = (size_t)B * T * W, no = (size_t)B * T * C;
    float *qkv = frand(nq, 1.5), *g = frand(no, 1), *out = frand(no, 1);
    float *lse = lt_alloc(LT_MEM_OTHER, (size_t)B * nh * T * 4), *dqkv = frand(nq, 1);
    O->attention_fwd(O, out, lse, qkv, B, T, nh, nkv, hd);
    double *qd = to_double(qkv, nq), *gd = to_double(g, no);
    double *ref = malloc(no * sizeof(double)), *num = malloc(nq * sizeof(double));
    attn_ctx c = {B, T, nh, nkv, hd, gd};
    attn_ref(&c, qd, ref);
    double e = rel_err(out, ref, no, 1e-3);
    CHECK(e < 2e-6, "attention nh=%d nkv=%d forward error %g", nh, nkv, e);
    O->attention_bwd(O, dqkv, g, out, lse, qkv, B, T, nh, nkv, hd);
    numeric_grad(attn_obj, qd, nq, &c, num);
    e = rel_err(dqkv, num, nq, 1e-3);
    CHECK(e < 2e-5, "attention nh=%d nkv=%d backward error %g", nh, nkv, e);
    free(qd), free(gd), free(ref), free(num);
    lt_free(qkv), lt_free(g), lt_free(out), lt_free(lse), lt_free(dqkv);
}

/* ---------------------------------------------------------------- bias */

/* Against a double-precision sum; bias_bwd accumulates into db. */
static void test_bias(void) {
    const int n = 37, cols = 131; /* not multiples of the 64-column strips */
    float *y = frand((size_t)n * cols, 1), *b = frand((size_t)cols, 2);
    float *dy = frand((size_t)n * cols, 3), *db = frand((size_t)cols, 4);
    double *y0 = to_double(y, (size_t)n * cols), *db0 = to_double(db, (size_t)cols);
    O->bias_add(O, y, b, n, cols);
    O->bias_bwd(O, db, dy, n, cols);
    double ey = 0, eb = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < cols; j++) {
            double d = fabs(y[i * cols + j] - (y0[i * cols + j] + b[j]));
            ey = d > ey ? d : ey;
        }
    for (int j = 0; j < cols; j++) {
        double s = db0[j];
        for (int i = 0; i < n; i++) s += dy[i * cols + j];
        double d = fabs(db[j] - s) / (fabs(s) + 1e-3);
        eb = d > eb ? d : eb;
    }
    CHECK(ey < 1e-6, "bias_add error %g", ey);
    CHECK(eb < 1e-5, "bias_bwd error %g", eb);
    free(y0), free(db0);
    lt_free(y), lt_free(b), lt_free(dy), lt_free(db);
}

/* ---------------------------------------------------------------- swiglu */

typedef struct {
    int n, hidden;
    const double *g;
} swiglu_ctx;

static double swiglu_obj(const double *gu, void *vc) {
    swiglu_ctx *c = vc;
    double s = 0;
    for (int i = 0; i < c->n; i++)
        for (int j = 0; j < c->hidden; j++) {
            double a = gu[i * 2 * c->hidden + j], u = gu[i * 2 * c->hidden + c->hidden + j];
            s += c->g[i * c->hidden + j] * a / (1 + exp(-a)) * u;
        }
    return s;
}

static void test_swiglu(void) {
    const int n = 5, H = 11;
    float *gu = frand((size_t)n * 2 * H, 4), *g = frand((size_t)n * H, 1), *h = frand((size_t)n * H, 1);
    float *dgu = frand((size_t)n * 2 * H, 1);
    O->swiglu_fwd(O, h, gu, n, H);
    double *gud = to_double(gu, (size_t)n * 2 * H), *gd = to_double(g, (size_t)n * H);
    double ref[5 * 11], num[5 * 22];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < H; j++) {
            double a = gud[i * 2 * H + j], u = gud[i * 2 * H + H + j];
            ref[i * H + j] = a / (1 + exp(-a)) * u;
        }
    double e = rel_err(h, ref, (size_t)n * H, 1e-3);
    CHECK(e < 2e-6, "swiglu forward error %g", e);
    O->swiglu_bwd(O, dgu, g, gu, n, H);
    swiglu_ctx c = {n, H, gd};
    numeric_grad(swiglu_obj, gud, (size_t)n * 2 * H, &c, num);
    e = rel_err(dgu, num, (size_t)n * 2 * H, 1e-3);
    CHECK(e < 1e-5, "swiglu backward error %g", e);
    free(gud), free(gd);
    lt_free(gu), lt_free(g), lt_free(h), lt_free(dgu);
}

/* ---------------------------------------------------------- cross-entropy */

typedef struct {
    int n, V;
    const int32_t *t;
} ce_ctx;

static double ce_obj(const double *x, void *vc) {
    ce_ctx *c = vc;
    double s = 0;
    for (int i = 0; i < c->n; i++) {
        if (c->t[i] < 0) continue;
        double mx = -1e300, sum = 0;
        for (int j = 0; j < c->V; j++) mx = x[i * c->V + j] > mx ? x[i * c->V + j] : mx;
        for (int j = 0; j < c->V; j++) sum += exp(x[i * c->V + j] - mx);
        s += mx + log(sum) - x[i * c->V + c->t[i]];
    }
    return s;
}

static void test_cross_entropy(void) {
    const int n = 6, V = 37;
    int32_t t[6] = {3, -100, 0, 36, 17, 17};
    float *x = frand((size_t)n * V, 6), *losses = frand(n, 1);
    double *xd = to_double(x, (size_t)n * V), num[6 * 37];
    ce_ctx c = {n, V, t};
    double ref_sum = ce_obj(xd, &c);
    const float scale = 0.37f;
    O->cross_entropy(O, x, losses, t, n, V, scale, 1);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += losses[i];
    CHECK(losses[1] == 0.0f, "ignored target has loss %g", (double)losses[1]);
    CHECK(fabs(sum - ref_sum) < 1e-6 * fabs(ref_sum), "cross-entropy loss %.9g vs %.9g", sum, ref_sum);
    numeric_grad(ce_obj, xd, (size_t)n * V, &c, num);
    for (int i = 0; i < n * V; i++) num[i] *= scale;
    double e = rel_err(x, num, (size_t)n * V, 1e-3);
    CHECK(e < 1e-5, "cross-entropy gradient error %g", e);
    int zero_row = 1;
    for (int j = 0; j < V; j++) zero_row &= x[V + j] == 0.0f;
    CHECK(zero_row, "ignored row has a non-zero gradient");
    free(xd);
    lt_free(x), lt_free(losses);
}

/* The blocked loss (ce_block / ce_finish) driven as the model drives it,
 * over column blocks of 16 (the last one ragged), against softmax in
 * double: the losses, and dX = scale * (softmax - onehot) W. Row 0's
 * logits rise along the row, so its max moves up in every block and its
 * earlier sums and dX row must be rescaled; row 4 is confident (one logit
 * 40 above the rest, its loss ~ 1e-16 in float's range only through the
 * separate sum of the non-max terms); row 1 is ignored. */
static void test_cross_entropy_blocked(void) {
    enum { n = 6, V = 37, dim = 5, NB = 16 };
    int32_t t[n] = {3, -100, 0, 36, 17, 20};
    float *x = frand((size_t)n * V, 6), *w = frand((size_t)V * dim, 1);
    for (int j = 0; j < V; j++) x[j] = 0.5f * (float)j;
    for (int j = 0; j < V; j++) x[4 * V + j] = (float)urand();
    x[4 * V + 17] = 40.0f;
    const float scale = 0.37f;
    float blk[n * NB], st[n * LT_CE_STATE], losses[n], dx[n * dim], l0[n];
    for (int grad = 0; grad < 2; grad++) {
        for (int v0 = 0; v0 < V; v0 += NB) {
            const int cols = V - v0 < NB ? V - v0 : NB;
            for (int i = 0; i < n; i++) memcpy(blk + i * cols, x + i * V + v0, (size_t)cols * 4);
            O->ce_block(O, blk, cols, n, cols, v0, t, st, grad ? dx : NULL, dim, grad);
            for (int i = 0; grad && i < n; i++)
                for (int d = 0; d < dim; d++) {
                    float acc = v0 ? dx[i * dim + d] : 0.0f;
                    for (int j = 0; j < cols; j++) acc += blk[i * cols + j] * w[(v0 + j) * dim + d];
                    dx[i * dim + d] = acc;
                }
        }
        O->ce_finish(O, grad ? losses : l0, st, t, n, scale, grad ? dx : NULL, dim, w);
    }
    double worst_l = 0, worst_g = 0;
    for (int i = 0; i < n; i++) {
        CHECK(losses[i] == l0[i], "row %d: loss %g with the gradient, %g without", i, (double)losses[i],
              (double)l0[i]);
        if (t[i] < 0) {
            int zero = losses[i] == 0.0f;
            for (int d = 0; d < dim; d++) zero &= dx[i * dim + d] == 0.0f;
            CHECK(zero, "ignored row %d has a loss or a gradient", i);
            continue;
        }
        double mx = -1e300, sum = 0, rest = 0, p[V];
        for (int j = 0; j < V; j++) mx = fmax(mx, x[i * V + j]);
        for (int j = 0; j < V; j++) {
            sum += (p[j] = exp((double)x[i * V + j] - mx));
            if (x[i * V + j] != mx) rest += p[j];
        }
        const double loss = (mx - x[i * V + t[i]]) + log1p(rest);
        /* the confident row's loss is ~1e-16: relative to itself */
        worst_l = fmax(worst_l, fabs(losses[i] - loss) / fmax(fabs(loss), 1e-30));
        /* p_t - 1 as minus the others' share: 1 - p_t would cancel */
        double others = 0;
        for (int j = 0; j < V; j++) others += j == t[i] ? 0.0 : p[j];
        for (int d = 0; d < dim; d++) {
            double g = -others / sum * w[t[i] * dim + d];
            for (int j = 0; j < V; j++) g += j == t[i] ? 0.0 : p[j] / sum * w[j * dim + d];
            worst_g = fmax(worst_g, fabs(dx[i * dim + d] - scale * g) / fabs(scale * g));
        }
    }
    CHECK(worst_l < 2e-6, "blocked cross-entropy loss relative error %g", worst_l);
    CHECK(worst_g < 1e-5, "blocked cross-entropy dX error %g", worst_g);
    lt_free(x), lt_free(w);
}

/* ------------------------------------------------------------ embedding */

static void test_embedding(void) {
    const int V = 9, dim = 6, n = 7;
    int32_t tok[7] = {3, 0, 8, 3, 5, 3, 1};
    float *table = frand((size_t)V * dim, 1), *out = frand((size_t)n * dim, 1);
    float *dtab = lt_alloc(LT_MEM_OTHER, (size_t)V * dim * 4), *g = frand((size_t)n * dim, 1);
    O->embedding_fwd(O, out, tok, table, n, dim);
    int ok = 1;
    for (int i = 0; i < n; i++) ok &= memcmp(out + i * dim, table + tok[i] * dim, dim * 4) == 0;
    CHECK(ok, "embedding rows differ from the table");
    O->embedding_bwd(O, dtab, tok, g, n, dim);
    double worst = 0;
    for (int v = 0; v < V; v++)
        for (int j = 0; j < dim; j++) {
            double s = 0;
            for (int i = 0; i < n; i++)
                if (tok[i] == v) s += g[i * dim + j];
            worst = fmax(worst, fabs(s - dtab[v * dim + j]));
        }
    CHECK(worst < 1e-6, "embedding backward error %g", worst);
    lt_free(table), lt_free(out), lt_free(dtab), lt_free(g);
}

/* --------------------------------------------------------------- dropout */

static void test_dropout(void) {
    const int n = 64, cols = 300;
    const float p = 0.25f;
    float *x = frand((size_t)n * cols, 1), *y = frand((size_t)n * cols, 1), *acc = frand((size_t)n * cols, 1);
    float *acc0 = lt_alloc(LT_MEM_OTHER, (size_t)n * cols * 4);
    memcpy(acc0, acc, (size_t)n * cols * 4);
    uint64_t key = lt_rng_key(123, 7);
    O->dropout(O, y, x, n, cols, p, key, 0, 0);
    O->dropout(O, acc, x, n, cols, p, key, 0, 1);
    int zeros = 0, consistent = 1, scaled = 1;
    for (int i = 0; i < n * cols; i++) {
        if (y[i] == 0.0f) zeros++;
        else scaled &= fabsf(y[i] - x[i] / (1 - p)) <= 1e-6f * fabsf(x[i]);
        /* same mask: untouched where dropped, + x/(1-p) (FMA-rounded) where kept */
        consistent &= y[i] == 0.0f ? acc[i] == acc0[i]
                                   : fabsf(acc[i] - (acc0[i] + y[i])) <= 2e-6f * (fabsf(acc0[i]) + fabsf(y[i]));
    }
    double frac = (double)zeros / (n * cols);
    /* 19200 Bernoulli(0.25) draws: 5 sigma is 0.0156 */
    CHECK(fabs(frac - p) < 0.0156, "dropout zeroed %.4f of elements, expected %.2f", frac, (double)p);
    CHECK(scaled, "kept elements are not x / (1 - p)");
    CHECK(consistent, "accumulating dropout does not use the same mask");
    /* Rows from first_row on draw the masks of those rows of the whole
     * block (a rank's part of a global batch). */
    const int k = 24;
    O->dropout(O, acc, x + (size_t)k * cols, n - k, cols, p, key, (uint64_t)k, 0);
    CHECK(memcmp(acc, y + (size_t)k * cols, (size_t)(n - k) * cols * 4) == 0,
          "dropout of rows %d.. with first_row %d differs from those rows of the whole block", k, k);
    O->dropout(O, acc, x + (size_t)k * cols, n - k, cols, p, key, 0, 0);
    CHECK(memcmp(acc, y + (size_t)k * cols, (size_t)(n - k) * cols * 4) != 0,
          "first_row does not move the mask");
    O->dropout(O, acc, x, n, cols, p, lt_rng_key(123, 8), 0, 0);
    CHECK(memcmp(acc, y, (size_t)n * cols * 4) != 0, "another stream gave the same mask");
    lt_free(x), lt_free(y), lt_free(acc), lt_free(acc0);
}

int main(void) {
    O = lt_ops_cpu(2);
    lt_rng_seed(&g_rng, 2024, 1);
    test_gemm();
    test_rmsnorm();
    test_rope(LT_ROPE_INTERLEAVED);
    test_rope(LT_ROPE_HALF);
    test_attention(4, 2, 8, 7);  /* grouped-query */
    test_attention(3, 3, 4, 5);  /* multi-head */
    test_attention(4, 1, 6, 6);  /* multi-query */
    test_attention(2, 1, 16, 21); /* row-layout kernels, ragged row blocks */
    test_attention(4, 2, 48, 19); /* stories15M's head size, three vectors */
    test_attention(2, 2, 32, 40); /* more than two chunks of keys */
    test_attention(2, 1, 12, 17); /* transposed copies: 8 x 8 tiles and both tails */
    test_bias();
    test_swiglu();
    test_cross_entropy();
    test_cross_entropy_blocked();
    test_embedding();
    test_dropout();
    return check_exit_code();
}
