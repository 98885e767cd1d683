/* Dequantization throughput: the fast CPU kernels (ops->dequantize)
 * against the scalar reference and against filling the same fp32 output
 * with memset on the same threads (the bandwidth ceiling for writing the
 * workspace), in one run.
 *
 *   bench_quant [--rows 4096] [--cols 4096] [--threads 1] [--reps 5]
 *
 * Prints one JSON line per format: elements/s and output GB/s of each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/rng.h"
#include "model/backend.h"
#include "model/ops.h"
#include "model/quant.h"

/* Best of reps into `var` (a shared machine's noise only slows runs down). */
#define BEST(var, reps, call)                     \
    do {                                          \
        var = 1e30;                               \
        for (int r_ = 0; r_ < (reps); r_++) {     \
            double t0_ = lt_now_s();                 \
            call;                                 \
            double dt_ = lt_now_s() - t0_;           \
            var = dt_ < var ? dt_ : var;          \
        }                                         \
    } while (0)

/* Writes n floats with memset, split over the OpenMP threads. */
static void fill(float *out, size_t n) {
    const int64_t chunks = 64;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        size_t b = (size_t)c * n / chunks, e = (size_t)(c + 1) * n / chunks;
        memset(out + b, 0, (e - b) * 4);
    }
}

int main(int argc, char **argv) {
    int rows = 4096, cols = 4096, threads = 1, reps = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--rows")) rows = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--cols")) cols = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench_quant: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (rows < 1 || cols < 1 || threads < 1 || reps < 1) {
        fprintf(stderr, "bench_quant: sizes, threads and reps must be positive\n");
        return 2;
    }
    const lt_ops *ops = NULL;
    lt_error err;
    /* Host buffers throughout: the CPU backend's kernels. */
    if (lt_backend_open("cpu", threads, &ops, &err) != LT_OK) {
        fprintf(stderr, "bench_quant: %s\n", err.msg);
        return 1;
    }
    const size_t n = (size_t)rows * cols;
    float *w = lt_alloc(LT_MEM_WORKSPACE, n * 4), *out = lt_alloc(LT_MEM_WORKSPACE, n * 4);
    float *src = lt_alloc(LT_MEM_WORKSPACE, n * 4);
    if (!w || !out || !src) {
        fprintf(stderr, "bench_quant: out of memory\n");
        return 1;
    }
    lt_rng rng;
    lt_rng_seed(&rng, 5, 0);
    for (size_t i = 0; i < n; i++) w[i] = 0.02f * (2 * lt_rng_next_uniform(&rng) - 1);
    double t_fill, t_fast, t_ref;
    BEST(t_fill, reps, fill(out, n));
    const struct {
        const char *name;
        lt_quant_config qc;
    } fmts[] = {{"nf4", {LT_QUANT_NF4, 64, 0}},
                {"nf4dq", {LT_QUANT_NF4, 64, 1}},
                {"fp4", {LT_QUANT_FP4, 64, 0}},
                {"int8", {LT_QUANT_INT8, 64, 0}}};
    for (size_t k = 0; k < sizeof fmts / sizeof fmts[0]; k++) {
        lt_qtensor t;
        if (lt_qtensor_layout(&fmts[k].qc, rows, cols, 0, &t, &err) != LT_OK) {
            fprintf(stderr, "bench_quant: %s\n", err.msg);
            return 1;
        }
        uint8_t *blob = lt_alloc(LT_MEM_QUANT_BASE, (size_t)t.end);
        if (!blob || lt_quantize(&t, w, blob, "bench", &err) != LT_OK) {
            fprintf(stderr, "bench_quant: %s\n", blob ? err.msg : "out of memory");
            return 1;
        }
        BEST(t_fast, reps, ops->dequantize(ops, out, blob, &t));
        BEST(t_ref, reps > 2 ? 2 : reps, lt_dequantize_ref(&t, blob, src));
        int same = memcmp(out, src, n * 4) == 0;
        printf("{\"bench\":\"dequantize\",\"format\":\"%s\",\"rows\":%d,\"cols\":%d,\"threads\":%d,"
               "\"fast_gelem_s\":%.3f,\"fast_out_gb_s\":%.2f,\"reference_gelem_s\":%.3f,"
               "\"memset_out_gb_s\":%.2f,\"speedup_vs_reference\":%.2f,\"fraction_of_memset\":%.3f,"
               "\"bits_per_param\":%.4f,\"identical_to_reference\":%s}\n",
               fmts[k].name, rows, cols, threads, n / t_fast / 1e9, n * 4 / t_fast / 1e9,
               n / t_ref / 1e9, n * 4 / t_fill / 1e9, t_ref / t_fast, t_fill / t_fast,
               lt_qtensor_bits(&t), same ? "true" : "false");
        lt_free(blob);
        if (!same) {
            fprintf(stderr, "bench_quant: %s: fast and reference dequantization differ\n", fmts[k].name);
            return 1;
        }
    }
    lt_free(w);
    lt_free(out);
    lt_free(src);
    return 0;
}
