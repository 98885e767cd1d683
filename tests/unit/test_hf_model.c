/* A Hugging Face model directory against the llama2.c model it was
 * converted from: the same logits within a stated bound (the two RoPE
 * layouts sum the rotary dimensions in different orders, so F32 agrees to
 * rounding, not bit for bit), and, given a second directory, bitwise the
 * same logits as it (a sharded copy, or an F16 file widened to F32). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/model/any_format.h"
#include "io/model/llama2c.h"
#include "model/cpu/cpu.h"
#include "tests/lib/check.h"

enum { B = 2, T = 48 };

static lt_status logits_of(lt_model *m, const int32_t *ids, float *out, lt_error *err) {
    lt_status st = lt_model_reserve(m, B, T, err);
    return st == LT_OK ? lt_model_logits(m, ids, B, T, 0, out, err) : st;
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s MODEL.bin HF_DIR MAX_ABS_DIFF [BITWISE_SAME_DIR]\n", argv[0]);
        return 2;
    }
    const double tol = atof(argv[3]);
    lt_error err;
    lt_model *ref = NULL, *hf = NULL;
    CHECK_OK(lt_llama2c_load(argv[1], lt_ops_cpu(1), &ref, &err), &err);
    CHECK_OK(lt_model_file_load_quantized(argv[2], NULL, lt_ops_cpu(1), &hf, &err), &err);
    const lt_model_config *rc = lt_model_get_config(ref), *hc = lt_model_get_config(hf);
    CHECK(hc->rope_layout == LT_ROPE_HALF, "%s: expected the rotate-half RoPE layout", argv[2]);
    CHECK(rc->dim == hc->dim && rc->hidden_dim == hc->hidden_dim && rc->n_layers == hc->n_layers &&
              rc->n_heads == hc->n_heads && rc->n_kv_heads == hc->n_kv_heads &&
              rc->vocab_size == hc->vocab_size && rc->seq_len == hc->seq_len &&
              rc->shared_classifier == hc->shared_classifier && rc->norm_eps == hc->norm_eps &&
              rc->rope_theta == hc->rope_theta,
          "%s: config differs from %s's", argv[2], argv[1]);
    const int V = rc->vocab_size;
    int32_t ids[B * T];
    uint32_t x = 12345;
    for (int i = 0; i < B * T; i++) {
        x = x * 1664525u + 1013904223u;
        ids[i] = i % T == 0 ? 1 : (int32_t)((x >> 8) % (uint32_t)V);
    }
    const size_t n = (size_t)B * T * (size_t)V;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    CHECK(a && b, "out of memory");
    if (!a || !b) return check_exit_code();
    CHECK_OK(logits_of(ref, ids, a, &err), &err);
    CHECK_OK(logits_of(hf, ids, b, &err), &err);
    double max_diff = 0, max_ref = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= max_diff)) max_diff = d; /* NaN propagates */
        if (fabs(a[i]) > max_ref) max_ref = fabs(a[i]);
    }
    printf("%s: max |logit - llama2.c logit| = %.3g over %zu logits (max |logit| %.3g; bound %.3g)\n",
           argv[2], max_diff, n, max_ref, tol);
    CHECK(max_diff <= tol, "%s: max abs logit difference %.3g exceeds %.3g", argv[2], max_diff, tol);
    if (argc == 5) {
        lt_model *same = NULL;
        CHECK_OK(lt_model_file_load_quantized(argv[4], NULL, lt_ops_cpu(1), &same, &err), &err);
        CHECK_OK(logits_of(same, ids, a, &err), &err);
        size_t differ = 0;
        for (size_t i = 0; i < n; i++) differ += memcmp(&a[i], &b[i], sizeof a[i]) != 0;
        printf("%s: %zu of %zu logits differ in any bit from %s's\n", argv[4], differ, n, argv[2]);
        CHECK(differ == 0, "%s: %zu logits differ from %s's, expected bitwise equality", argv[4],
              differ, argv[2]);
        lt_model_free(same);
    }
    free(a);
    free(b);
    lt_model_free(ref);
    lt_model_free(hf);
    return check_exit_code();
}
