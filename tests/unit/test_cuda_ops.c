/* The CUDA backend's ops against the CPU backend's, op by op, on random
 * inputs, through the C interface alone (model/cuda/cuda.h): the same
 * program runs on the test suite's emulated CUDA (the .cu sources compiled
 * as C++, CUDA threads as fibers) and on a real GPU.
 *
 * Where the two backends do the same operations in the same order
 * (embedding, bias_add, dropout's mask and product, dequantization) the
 * results must be the same bits. Where they sum in different orders or
 * call different exp functions, each element must lie within a bound
 * derived from the operation (u = 2^-24, the fp32 unit roundoff;
 * gamma(n) = n u / (1 - n u) bounds a sum of n terms in any order, so two
 * implementations are within 2 gamma(n) of each other times the sum of
 * the terms' magnitudes); each check prints its worst error as a fraction
 * of its bound. Usage: test_cuda_ops (exit 77 with no CUDA device). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "model/config.h"
#include "model/cpu/cpu.h"
#include "model/cuda/cuda.h"
#include "model/ops.h"
#include "model/quant.h"
#include "tests/lib/check.h"

static const lt_ops *CPU, *GPU;
static lt_rng g_rng;
static const double U = 5.9604644775390625e-8; /* 2^-24 */

static double gamma_n(double n) { return n * U / (1.0 - n * U); }
static double urand(void) { return 2.0 * lt_rng_next_uniform(&g_rng) - 1.0; }

static float *frand(size_t n, double scale) {
    float *p = lt_alloc(LT_MEM_OTHER, n * sizeof(float) + 64);
    for (size_t i = 0; i < n; i++) p[i] = (float)(scale * urand());
    return p;
}
static double *dalloc(size_t n) { return lt_alloc(LT_MEM_OTHER, n * sizeof(double) + 64); }
static float *fcopy(const float *x, size_t n) {
    float *p = lt_alloc(LT_MEM_OTHER, n * sizeof(float) + 64);
    memcpy(p, x, n * sizeof(float));
    return p;
}

/* device copies of host arrays, and back */
static void *dev(const void *host, size_t bytes) {
    void *d = GPU->alloc(GPU, LT_MEM_WORKSPACE, bytes);
    GPU->upload(GPU, d, host, bytes);
    return d;
}
static float *devf(const float *host, size_t n) { return dev(host, n * sizeof(float)); }
static float *back(const float *d, size_t n) {
    float *h = lt_alloc(LT_MEM_OTHER, n * sizeof(float) + 64);
    GPU->download(GPU, h, d, n * sizeof(float));
    return h;
}

static void gpu_check(const char *what) {
    lt_error err = {0};
    lt_status st = GPU->check(GPU, &err);
    CHECK(st == LT_OK, "%s: the CUDA backend reports %s", what, err.msg);
}

/* bit for bit */
static void check_same(const char *what, const float *gpu, const float *cpu, size_t n) {
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&gpu[i], &cpu[i], sizeof(float)) != 0 && bad++ == 0) first = i;
    CHECK(bad == 0,
          "%s: %zu of %zu elements differ in their bits, first [%zu]: %.9g vs the CPU's %.9g", what,
          bad, n, first, bad ? gpu[first] : 0.0, bad ? cpu[first] : 0.0);
    if (!bad) printf("ok   %-34s %zu elements, the same bits\n", what, n);
}

/* |gpu - cpu| <= bound[i] for every element */
static void check_within(const char *what, const float *gpu, const float *cpu, const double *bound,
                         size_t n) {
    double worst = 0.0;
    size_t at = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)gpu[i] - (double)cpu[i]);
        const double r = bound[i] > 0 ? d / bound[i] : (d > 0 ? INFINITY : 0.0);
        if (!(r <= 1.0)) bad++;
        if (!(r <= worst)) worst = r, at = i;
    }
    CHECK(bad == 0,
          "%s: %zu of %zu elements outside the bound, worst [%zu]: %.9g vs the CPU's %.9g (%.3g x "
          "the bound %.3g)",
          what, bad, n, at, gpu[at], cpu[at], worst, bound[at]);
    if (!bad) printf("ok   %-34s %zu elements, worst %.3f of the bound\n", what, n, worst);
}

/* ------------------------------------------------------------------ memory */

static void test_memory(void) {
    lt_mem_stats s0, s1, s2;
    lt_mem_get_stats(&s0);
    const size_t bytes = 4000;
    float *d = GPU->alloc(GPU, LT_MEM_ACTIVATIONS, bytes);
    lt_mem_get_stats(&s1);
    CHECK(d != NULL, "alloc of %zu bytes failed", bytes);
    CHECK(s1.current[LT_SPACE_DEVICE][LT_MEM_ACTIVATIONS] ==
              s0.current[LT_SPACE_DEVICE][LT_MEM_ACTIVATIONS] + bytes,
          "device activations: %llu bytes after allocating %zu, %llu before",
          (unsigned long long)s1.current[LT_SPACE_DEVICE][LT_MEM_ACTIVATIONS], bytes,
          (unsigned long long)s0.current[LT_SPACE_DEVICE][LT_MEM_ACTIVATIONS]);
    CHECK(s1.current[LT_SPACE_HOST][LT_MEM_ACTIVATIONS] ==
              s0.current[LT_SPACE_HOST][LT_MEM_ACTIVATIONS],
          "device memory counted as host memory");
    float *h = back(d, bytes / 4);
    size_t nonzero = 0;
    for (size_t i = 0; i < bytes / 4; i++) nonzero += h[i] != 0.0f;
    CHECK(nonzero == 0, "a new allocation holds %zu nonzero floats", nonzero);
    /* copy and zero */
    float *x = frand(bytes / 4, 1.0);
    float *d2 = GPU->alloc(GPU, LT_MEM_ACTIVATIONS, bytes);
    GPU->upload(GPU, d, x, bytes);
    GPU->copy(GPU, d2, d, bytes);
    GPU->zero(GPU, d, bytes / 2);
    float *h2 = back(d2, bytes / 4), *h1 = back(d, bytes / 4);
    CHECK(!memcmp(h2, x, bytes), "upload then copy then download changed the data");
    nonzero = 0;
    for (size_t i = 0; i < bytes / 8; i++) nonzero += h1[i] != 0.0f;
    CHECK(nonzero == 0 && !memcmp(h1 + bytes / 8, x + bytes / 8, bytes / 2),
          "zero of the first half: %zu nonzero floats there, or the second half changed", nonzero);
    GPU->free(GPU, d);
    GPU->free(GPU, d2);
    lt_mem_get_stats(&s2);
    CHECK(s2.current[LT_SPACE_DEVICE][LT_MEM_ACTIVATIONS] ==
              s0.current[LT_SPACE_DEVICE][LT_MEM_ACTIVATIONS],
          "device activations after free: %llu bytes, %llu before",
          (unsigned long long)s2.current[LT_SPACE_DEVICE][LT_MEM_ACTIVATIONS],
          (unsigned long long)s0.current[LT_SPACE_DEVICE][LT_MEM_ACTIVATIONS]);
    CHECK(GPU->alloc(GPU, LT_MEM_OTHER, 0) == NULL, "alloc of 0 bytes is not NULL");
    size_t free_b = 0, total_b = 0;
    CHECK(lt_ops_cuda_mem_info(GPU, &free_b, &total_b) == 0 && total_b > 0 && free_b <= total_b,
          "cudaMemGetInfo: %zu free of %zu", free_b, total_b);
    gpu_check("memory");
    /* a failure is kept for the next check, reported with its op, then cleared */
    int not_ours;
    GPU->free(GPU, &not_ours);
    lt_error err = {0};
    lt_status st = GPU->check(GPU, &err);
    CHECK(st != LT_OK && strstr(err.msg, "free"), "free of a foreign pointer: check gave %d \"%s\"",
          (int)st, err.msg);
    CHECK(GPU->check(GPU, &err) == LT_OK,
          "the failure was not cleared by the check that reported it");
    printf("ok   memory: tracked by category, zero-filled, copies; failures reported once\n");
    lt_free(h), lt_free(h1), lt_free(h2), lt_free(x);
}

/* -------------------------------------------------------------------- gemm */

static void test_gemm(void) {
    const int M = 37, N = 29, K = 45;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 5;
            const size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb,
                         nc = (size_t)M * ldc;
            const float alpha = 0.75f, beta = ta ? 0.0f : -0.5f;
            float *A = frand(na, 1), *B = frand(nb, 1), *C0 = frand(nc, 1), *Cc = fcopy(C0, nc);
            float *dA = devf(A, na), *dB = devf(B, nb), *dC = devf(C0, nc);
            CPU->gemm(CPU, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, Cc, ldc);
            GPU->gemm(GPU, ta, tb, M, N, K, alpha, dA, lda, dB, ldb, beta, dC, ldc);
            float *Cg = back(dC, nc);
            double *bound = dalloc(nc);
            for (size_t e = 0; e < nc; e++) bound[e] = 0.0; /* the padding must stay untouched */
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double s = 0;
                    for (int k = 0; k < K; k++)
                        s += fabs(ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) *
                             fabs(tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
                    bound[(size_t)i * ldc + j] =
                        2.0 * (gamma_n(K + 2) * fabs(alpha) * s +
                               2 * U * fabs(beta * C0[(size_t)i * ldc + j]));
                }
            char what[64];
            snprintf(what, sizeof what, "gemm ta=%d tb=%d", ta, tb);
            check_within(what, Cg, Cc, bound, nc);
            GPU->free(GPU, dA), GPU->free(GPU, dB), GPU->free(GPU, dC);
            lt_free(A), lt_free(B), lt_free(C0), lt_free(Cc), lt_free(Cg), lt_free(bound);
        }
    /* K = 0: C = beta C on both */
    const int m0 = 5, n0 = 7;
    const size_t nc0 = (size_t)m0 * n0;
    float *C0 = frand(nc0, 1), *Cc = fcopy(C0, nc0), *dC = devf(C0, nc0);
    CPU->gemm(CPU, 0, 0, m0, n0, 0, 1.0f, NULL, 1, NULL, n0, 0.5f, Cc, n0);
    GPU->gemm(GPU, 0, 0, m0, n0, 0, 1.0f, NULL, 1, NULL, n0, 0.5f, dC, n0);
    float *Cg = back(dC, nc0);
    check_same("gemm K=0 (C = beta C)", Cg, Cc, nc0);
    GPU->free(GPU, dC);
    lt_free(C0), lt_free(Cc), lt_free(Cg);
    gpu_check("gemm");
}

/* --------------------------------------------------------------- embedding */

static void test_embedding(void) {
    /* 300 tokens from a vocabulary of 23: long chains of repeats, and rows
     * of the table no token uses */
    const int V = 23, n = 300, dim = 70;
    int32_t tokens[300];
    for (int i = 0; i < n; i++) tokens[i] = (int32_t)(lt_rng_next_uniform(&g_rng) * (V - 3));
    tokens[17] = V - 1;
    float *table = frand((size_t)V * dim, 1), *dout = frand((size_t)n * dim, 1);
    float *out_c = frand((size_t)n * dim, 1), *dtab_c = frand((size_t)V * dim, 1);
    float *d_tab = devf(table, (size_t)V * dim), *d_out = devf(out_c, (size_t)n * dim);
    float *d_dtab = devf(dtab_c, (size_t)V * dim), *d_dout = devf(dout, (size_t)n * dim);
    int32_t *d_tok = dev(tokens, sizeof tokens);
    CPU->embedding_fwd(CPU, out_c, tokens, table, n, dim);
    GPU->embedding_fwd(GPU, d_out, d_tok, d_tab, n, dim);
    float *out_g = back(d_out, (size_t)n * dim);
    check_same("embedding_fwd", out_g, out_c, (size_t)n * dim);
    CPU->embedding_bwd(CPU, dtab_c, tokens, dout, n, dim);
    GPU->embedding_bwd(GPU, d_dtab, d_tok, d_dout, n, dim);
    float *dtab_g = back(d_dtab, (size_t)V * dim);
    check_same("embedding_bwd (rows added in order)", dtab_g, dtab_c, (size_t)V * dim);
    gpu_check("embedding");
    GPU->free(GPU, d_tab), GPU->free(GPU, d_out), GPU->free(GPU, d_dtab), GPU->free(GPU, d_dout);
    GPU->free(GPU, d_tok);
    lt_free(table), lt_free(dout), lt_free(out_c), lt_free(dtab_c), lt_free(out_g), lt_free(dtab_g);
}

/* ----------------------------------------------------------------- rmsnorm */

static void test_rmsnorm(int n, int dim) {
    const float eps = 1e-5f;
    const size_t nd = (size_t)n * dim;
    float *x = frand(nd, 2), *w = frand((size_t)dim, 1), *g = frand(nd, 1);
    float *out_c = frand(nd, 1), *rstd_c = frand((size_t)n, 1);
    float *dx_c = frand(nd, 1), *dw_c = frand((size_t)dim, 1);
    float *d_x = devf(x, nd), *d_w = devf(w, dim), *d_g = devf(g, nd);
    float *d_out = GPU->alloc(GPU, LT_MEM_WORKSPACE, nd * 4),
          *d_rstd = GPU->alloc(GPU, LT_MEM_WORKSPACE, (size_t)n * 4);
    float *d_dx = devf(dx_c, nd), *d_dw = devf(dw_c, dim);
    float *dx0 = fcopy(dx_c, nd), *dw0 = fcopy(dw_c, dim);

    CPU->rmsnorm_fwd(CPU, out_c, rstd_c, x, w, n, dim, eps);
    GPU->rmsnorm_fwd(GPU, d_out, d_rstd, d_x, d_w, n, dim, eps);
    float *out_g = back(d_out, nd), *rstd_g = back(d_rstd, (size_t)n);
    /* the sum of squares within gamma(dim) of exact on each side; the
     * division, add, sqrt and reciprocal a few roundings more */
    double *b = dalloc(nd > (size_t)dim ? nd : (size_t)dim);
    for (int i = 0; i < n; i++) b[i] = 2.0 * (gamma_n(dim) / 2 + 4 * U) * fabs(rstd_c[i]);
    char what[80];
    snprintf(what, sizeof what, "rmsnorm_fwd rstd [%d x %d]", n, dim);
    check_within(what, rstd_g, rstd_c, b, (size_t)n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < dim; j++) {
            const size_t e = (size_t)i * dim + j;
            b[e] = 2.0 * (gamma_n(dim) / 2 + 7 * U) * fabs((double)x[e] * rstd_c[i] * w[j]);
        }
    snprintf(what, sizeof what, "rmsnorm_fwd out [%d x %d]", n, dim);
    check_within(what, out_g, out_c, b, nd);

    /* backward from the CPU's rstd on both, so only the backward differs */
    GPU->upload(GPU, d_rstd, rstd_c, (size_t)n * 4);
    CPU->rmsnorm_bwd(CPU, dx_c, dw_c, g, x, w, rstd_c, n, dim);
    GPU->rmsnorm_bwd(GPU, d_dx, d_dw, d_g, d_x, d_w, d_rstd, n, dim);
    float *dx_g = back(d_dx, nd), *dw_g = back(d_dw, (size_t)dim);
    for (int i = 0; i < n; i++) {
        const double r = rstd_c[i];
        double sabs = 0, dot = 0;
        for (int j = 0; j < dim; j++) {
            const size_t e = (size_t)i * dim + j;
            sabs += fabs((double)g[e] * w[j] * x[e]);
            dot += (double)g[e] * w[j] * x[e];
        }
        const double c = r * r * r * dot / dim,
                     dc = r * r * r / dim * 2.0 * (gamma_n(dim + 2) * sabs + 5 * U * fabs(dot));
        for (int j = 0; j < dim; j++) {
            const size_t e = (size_t)i * dim + j;
            const double t1 = fabs((double)g[e] * w[j] * r), t2 = fabs((double)x[e] * c);
            b[e] = fabs((double)x[e]) * dc + 2.0 * 5 * U * (t1 + t2 + fabs((double)dx0[e]));
        }
    }
    snprintf(what, sizeof what, "rmsnorm_bwd dx [%d x %d]", n, dim);
    check_within(what, dx_g, dx_c, b, nd);
    for (int j = 0; j < dim; j++) {
        double s = 0;
        for (int i = 0; i < n; i++)
            s += fabs((double)g[(size_t)i * dim + j] * x[(size_t)i * dim + j] * rstd_c[i]);
        b[j] = 2.0 * (gamma_n(n + 3) * s + U * fabs((double)dw0[j]));
    }
    snprintf(what, sizeof what, "rmsnorm_bwd dw [%d rows]", n);
    check_within(what, dw_g, dw_c, b, (size_t)dim);
    /* dw may be NULL (a frozen weight) */
    GPU->rmsnorm_bwd(GPU, d_dx, NULL, d_g, d_x, d_w, d_rstd, n, dim);
    gpu_check("rmsnorm");
    GPU->free(GPU, d_x), GPU->free(GPU, d_w), GPU->free(GPU, d_g), GPU->free(GPU, d_out);
    GPU->free(GPU, d_rstd), GPU->free(GPU, d_dx), GPU->free(GPU, d_dw);
    lt_free(x), lt_free(w), lt_free(g), lt_free(out_c), lt_free(rstd_c), lt_free(dx_c),
        lt_free(dw_c);
    lt_free(dx0), lt_free(dw0), lt_free(out_g), lt_free(rstd_g), lt_free(dx_g), lt_free(dw_g),
        lt_free(b);
}

/* -------------------------------------------------------------------- rope */

static void test_rope(int layout, int inverse) {
    const int B = 2, T = 7, nh = 3, hd = 10, stride = nh * hd + 6, half = hd / 2, Tmax = 9;
    const size_t n = (size_t)B * T * stride;
    float *x = frand(n, 1), *xc = fcopy(x, n);
    float *cs = lt_alloc(LT_MEM_OTHER, (size_t)Tmax * half * 4),
          *sn = lt_alloc(LT_MEM_OTHER, (size_t)Tmax * half * 4);
    for (int p = 0; p < Tmax; p++)
        for (int i = 0; i < half; i++) {
            const double ang = p * pow(10000.0, -2.0 * i / hd);
            cs[p * half + i] = (float)cos(ang);
            sn[p * half + i] = (float)sin(ang);
        }
    float *d_x = devf(x, n), *d_c = devf(cs, (size_t)Tmax * half),
          *d_s = devf(sn, (size_t)Tmax * half);
    CPU->rope(CPU, xc, stride, B, T, nh, hd, cs, sn, layout, inverse);
    GPU->rope(GPU, d_x, stride, B, T, nh, hd, d_c, d_s, layout, inverse);
    float *xg = back(d_x, n);
    /* a*c - b*s: two products and a difference, contracted or not */
    double *b = dalloc(n);
    for (size_t e = 0; e < n; e++) b[e] = 0.0; /* columns past the heads stay as they were */
    for (int row = 0; row < B * T; row++)
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < half; i++) {
                const int pos = row % T;
                const size_t base = (size_t)row * stride + (size_t)h * hd;
                const size_t ia = base + (layout == LT_ROPE_INTERLEAVED ? 2 * i : i);
                const size_t ib = base + (layout == LT_ROPE_INTERLEAVED ? 2 * i + 1 : i + half);
                const double m = fabs((double)x[ia]) + fabs((double)x[ib]);
                b[ia] = b[ib] =
                    2.0 * 3 * U * m *
                    (fabs((double)cs[pos * half + i]) + fabs((double)sn[pos * half + i]));
            }
    char what[64];
    snprintf(what, sizeof what, "rope %s%s", layout == LT_ROPE_INTERLEAVED ? "interleaved" : "half",
             inverse ? " inverse" : "");
    check_within(what, xg, xc, b, n);
    gpu_check("rope");
    GPU->free(GPU, d_x), GPU->free(GPU, d_c), GPU->free(GPU, d_s);
    lt_free(x), lt_free(xc), lt_free(cs), lt_free(sn), lt_free(xg), lt_free(b);
}

/* -------------------------------------------------------------------- bias */

static void test_bias(int n, int cols) {
    const size_t nc = (size_t)n * cols;
    float *y = frand(nc, 1), *bias = frand((size_t)cols, 1), *db = frand((size_t)cols, 1);
    float *db0 = fcopy(db, (size_t)cols);
    float *d_y = devf(y, nc), *d_b = devf(bias, (size_t)cols), *d_db = devf(db, (size_t)cols);
    float *d_dy = devf(y, nc);
    CPU->bias_bwd(CPU, db, y, n, cols);
    GPU->bias_bwd(GPU, d_db, d_dy, n, cols);
    float *db_g = back(d_db, (size_t)cols);
    double *b = dalloc((size_t)cols);
    for (int j = 0; j < cols; j++) {
        double s = 0;
        for (int i = 0; i < n; i++) s += fabs((double)y[(size_t)i * cols + j]);
        b[j] = 2.0 * (gamma_n(n) * s + U * fabs((double)db0[j]));
    }
    char what[64];
    snprintf(what, sizeof what, "bias_bwd [%d rows]", n);
    check_within(what, db_g, db, b, (size_t)cols);
    CPU->bias_add(CPU, y, bias, n, cols);
    GPU->bias_add(GPU, d_y, d_b, n, cols);
    float *y_g = back(d_y, nc);
    check_same("bias_add", y_g, y, nc);
    gpu_check("bias");
    GPU->free(GPU, d_y), GPU->free(GPU, d_b), GPU->free(GPU, d_db), GPU->free(GPU, d_dy);
    lt_free(y), lt_free(bias), lt_free(db), lt_free(db0), lt_free(db_g), lt_free(y_g), lt_free(b);
}

/* ------------------------------------------------------------------ swiglu */

static void test_swiglu(void) {
    const int n = 13, hidden = 75;
    const size_t nh = (size_t)n * hidden;
    float *gu = frand(2 * nh, 4), *dh = frand(nh, 1);
    /* the ends of the sigmoid: exp overflows, or underflows to 0 */
    gu[0] = -100.0f, gu[1] = 100.0f, gu[2] = -87.5f, gu[3] = 30.0f;
    float *h_c = frand(nh, 1), *dgu_c = frand(2 * nh, 1);
    float *d_gu = devf(gu, 2 * nh), *d_dh = devf(dh, nh);
    float *d_h = GPU->alloc(GPU, LT_MEM_WORKSPACE, nh * 4),
          *d_dgu = GPU->alloc(GPU, LT_MEM_WORKSPACE, 2 * nh * 4);
    CPU->swiglu_fwd(CPU, h_c, gu, n, hidden);
    GPU->swiglu_fwd(GPU, d_h, d_gu, n, hidden);
    CPU->swiglu_bwd(CPU, dgu_c, dh, gu, n, hidden);
    GPU->swiglu_bwd(GPU, d_dgu, d_dh, d_gu, n, hidden);
    float *h_g = back(d_h, nh), *dgu_g = back(d_dgu, 2 * nh);
    /* exp within 2 ulp (4u) on both sides (CUDA's expf, the CPU's
     * polynomial); sigmoid = 1 / (1 + e) then within 6u, each product u
     * more; an absolute floor for sigmoids below 1e-38, where one side
     * overflows exp to inf (0) and the other clamps it (a denormal) */
    double *bh = dalloc(nh), *bg = dalloc(2 * nh);
    const double floor_ = 1e-35;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < hidden; j++) {
            const size_t e = (size_t)i * hidden + j, gi = (size_t)i * 2 * hidden + j,
                         ui = gi + hidden;
            const double g = gu[gi], u = gu[ui], d = dh[e], sig = 1.0 / (1.0 + exp(-g));
            bh[e] = 2.0 * 8 * U * fabs(g * sig * u) + floor_ * fabs(g * u);
            bg[ui] = 2.0 * 8 * U * fabs(d * g * sig) + floor_ * fabs(d * g);
            const double F = 1.0 + g * (1.0 - sig);
            bg[gi] = 2.0 * fabs(d * u * sig) *
                         (10 * U * fabs(F) + fabs(g) * (6 * U * sig + 3 * U * fabs(1.0 - sig))) +
                     floor_ * fabs(d * u) * (1.0 + fabs(g));
        }
    check_within("swiglu_fwd", h_g, h_c, bh, nh);
    check_within("swiglu_bwd", dgu_g, dgu_c, bg, 2 * nh);
    gpu_check("swiglu");
    GPU->free(GPU, d_gu), GPU->free(GPU, d_dh), GPU->free(GPU, d_h), GPU->free(GPU, d_dgu);
    lt_free(gu), lt_free(dh), lt_free(h_c), lt_free(dgu_c), lt_free(h_g), lt_free(dgu_g),
        lt_free(bh), lt_free(bg);
}

/* ----------------------------------------------------------------- dropout */

static void test_dropout(void) {
    const int n = 21, cols = 53;
    const size_t nc = (size_t)n * cols;
    const float p = 0.3f;
    const uint64_t key = lt_rng_key(1234, 5), first_row = 1000;
    float *x = frand(nc, 1), *o_c = frand(nc, 1), *acc_c = fcopy(o_c, nc);
    float *d_x = devf(x, nc), *d_o = devf(o_c, nc), *d_acc = devf(acc_c, nc);
    CPU->dropout(CPU, o_c, x, n, cols, p, key, first_row, 0);
    GPU->dropout(GPU, d_o, d_x, n, cols, p, key, first_row, 0);
    float *o_g = back(d_o, nc);
    check_same("dropout (masks and products)", o_g, o_c, nc);
    size_t dropped = 0;
    for (size_t e = 0; e < nc; e++) dropped += o_c[e] == 0.0f;
    CHECK(dropped > nc / 5 && dropped < nc * 2 / 5, "dropout p = 0.3 dropped %zu of %zu", dropped,
          nc);
    float *acc0 = fcopy(acc_c, nc);
    CPU->dropout(CPU, acc_c, x, n, cols, p, key, first_row, 1);
    GPU->dropout(GPU, d_acc, d_x, n, cols, p, key, first_row, 1);
    float *acc_g = back(d_acc, nc);
    /* out + x * m: one rounding with an FMA, two without */
    double *b = dalloc(nc);
    for (size_t e = 0; e < nc; e++)
        b[e] = 2.0 * U * (fabs((double)acc0[e]) + fabs((double)x[e]) / (1.0 - p)) * 2.0;
    check_within("dropout accumulate", acc_g, acc_c, b, nc);
    gpu_check("dropout");
    GPU->free(GPU, d_x), GPU->free(GPU, d_o), GPU->free(GPU, d_acc);
    lt_free(x), lt_free(o_c), lt_free(acc_c), lt_free(o_g), lt_free(acc0), lt_free(acc_g),
        lt_free(b);
}

/* -------------------------------------------------------------- dequantize */

static void test_dequantize(lt_quant_format f, int blocksize, int double_quant, int rows,
                            int cols) {
    lt_quant_config qc = {f, blocksize, double_quant};
    lt_qtensor t;
    lt_error err = {0};
    char what[96];
    snprintf(what, sizeof what, "dequantize %s bs=%d%s [%d x %d]", lt_quant_format_name(f),
             f == LT_QUANT_INT8 ? cols : blocksize, double_quant ? " dq" : "", rows, cols);
    lt_status st = lt_qtensor_layout(&qc, rows, cols, 0, &t, &err);
    CHECK(st == LT_OK, "%s: layout: %s", what, err.msg);
    if (st != LT_OK) return;
    const size_t numel = (size_t)rows * cols;
    float *w = frand(numel, 0.05);
    for (int c = 0; c < cols; c++) w[c] = 0.0f; /* a zero block (row) */
    uint8_t *blob = lt_alloc(LT_MEM_OTHER, t.end);
    st = lt_quantize(&t, w, blob, what, &err);
    CHECK(st == LT_OK, "%s: quantize: %s", what, err.msg);
    float *ref = lt_alloc(LT_MEM_OTHER, numel * 4), *cpu = lt_alloc(LT_MEM_OTHER, numel * 4);
    lt_dequantize_ref(&t, blob, ref);
    CPU->dequantize(CPU, cpu, blob, &t);
    uint8_t *d_blob = dev(blob, t.end);
    float *d_out = GPU->alloc(GPU, LT_MEM_WORKSPACE, numel * 4);
    GPU->dequantize(GPU, d_out, d_blob, &t);
    float *out = back(d_out, numel);
    check_same(what, out, ref, numel);
    CHECK(!memcmp(cpu, ref, numel * 4), "%s: the CPU kernel differs from lt_dequantize_ref", what);
    gpu_check(what);
    GPU->free(GPU, d_blob), GPU->free(GPU, d_out);
    lt_free(w), lt_free(blob), lt_free(ref), lt_free(cpu), lt_free(out);
}

int main(void) {
    lt_error err = {0};
    if (lt_cuda_device_count() < 1) {
        printf("skip: no CUDA device\n");
        return 77;
    }
    CHECK_OK(lt_ops_cuda_open(0, 1, &GPU, &err), &err);
    CPU = lt_ops_cpu(1);
    const char *order = getenv("LT_CUDA_EMU_ORDER");
    char desc[256];
    lt_ops_cuda_describe(GPU, desc, sizeof desc);
    printf("CUDA backend: %s; emulated thread order: %s\n", desc, order ? order : "default");
    lt_rng_seed(&g_rng, 30, 1);

    test_memory();
    test_gemm();
    test_embedding();
    test_rmsnorm(37, 96);   /* dim < block: idle threads in the reductions */
    test_rmsnorm(150, 300); /* rows in three chunks of the dw column sums */
    for (int layout = 0; layout < 2; layout++)
        for (int inverse = 0; inverse < 2; inverse++)
            test_rope(layout ? LT_ROPE_HALF : LT_ROPE_INTERLEAVED, inverse);
    test_bias(9, 40);
    test_bias(200, 270);
    test_swiglu();
    test_dropout();
    const lt_quant_format four[] = {LT_QUANT_NF4, LT_QUANT_FP4};
    for (int k = 0; k < 2; k++)
        for (int dq = 0; dq < 2; dq++) {
            test_dequantize(four[k], 64, dq, 24, 100);
            test_dequantize(four[k], 6, dq, 33,
                            33); /* odd count: the last byte half used; 182 blocks */
        }
    test_dequantize(LT_QUANT_NF4, 64, 1, 40, 1000); /* 625 absmax blocks: three groups of 256 */
    test_dequantize(LT_QUANT_INT8, 0, 0, 17, 45);
    lt_ops_cuda_close(GPU);
    return check_exit_code();
}
