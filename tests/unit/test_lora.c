/* LoRA semantics on the bundled model: PEFT's initialisation, exactness of
 * B = 0, merge/unmerge, names and shapes, configuration errors, bucket
 * layout and hook order, and bit-for-bit determinism. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "io/model/llama2c.h"
#include "model/cpu/cpu.h"
#include "model/llama.h"
#include "tests/lib/check.h"

enum { B = 2, T = 48 };

static const char *g_model_path;

static lt_model *load(lt_error *err) {
    lt_model *m = NULL;
    if (lt_llama2c_load(g_model_path, lt_ops_cpu(2), &m, err) != LT_OK) return NULL;
    return m;
}

static void make_batch(int32_t *in, int32_t *tg, int vocab) {
    lt_rng r;
    lt_rng_seed(&r, 5, 5);
    for (int i = 0; i < B * T; i++) in[i] = (int32_t)(lt_rng_next_uniform(&r) * vocab);
    for (int i = 0; i < B * T; i++) tg[i] = (i + 1) % T ? in[i + 1] : LT_IGNORE_INDEX;
}

static size_t vsize(const lt_model *m) { return (size_t)lt_model_get_config(m)->vocab_size; }

static void randomize_B(lt_model *m, uint64_t seed, float scale) {
    const lt_param_table *t = lt_model_lora_table(m);
    float *p = lt_model_lora_params(m);
    lt_rng r;
    lt_rng_seed(&r, seed, 1);
    for (int i = 0; i < t->count; i++)
        if (strstr(t->t[i].name, "lora_B"))
            for (size_t k = 0; k < lt_tensor_numel(&t->t[i]); k++)
                p[t->t[i].offset + k] = scale * (2 * lt_rng_next_uniform(&r) - 1);
}

static void test_zero_B_is_exact(void) {
    lt_error err;
    lt_model *m = load(&err);
    CHECK(m, "load: %s", err.msg);
    if (!m) return;
    int32_t in[B * T], tg[B * T];
    make_batch(in, tg, (int)vsize(m));
    size_t nl = (size_t)B * T * vsize(m);
    float *base = malloc(nl * 4), *with = malloc(nl * 4);
    CHECK(lt_model_logits(m, in, B, T, 0, base, &err) == LT_OK, "%s", err.msg);
    double base_loss;
    int64_t cnt;
    CHECK(lt_model_loss(m, in, tg, B, T, &base_loss, &cnt, &err) == LT_OK, "%s", err.msg);
    lt_lora_config lc = {.r = 8, .alpha = 16, .dropout = 0.1f, .use_rslora = 1, .targets = LT_MOD_MASK_ALL};
    CHECK(lt_model_add_lora(m, &lc, 1234, &err) == LT_OK, "%s", err.msg);
    CHECK(lt_model_logits(m, in, B, T, 0, with, &err) == LT_OK, "%s", err.msg);
    size_t differ = 0;
    for (size_t i = 0; i < nl; i++) differ += base[i] != with[i];
    CHECK(differ == 0, "B = 0: %zu of %zu logits differ from the base model", differ, nl);
    /* Training mode, dropout on: the adapter path still adds exactly zero. */
    double train_loss;
    lt_model_set_dropout_state(m, 3, 0, 0);
    CHECK(lt_model_forward_backward(m, in, tg, B, T, 1.0f / (float)cnt, &train_loss, &cnt, &err) == LT_OK,
          "%s", err.msg);
    CHECK(train_loss == base_loss, "B = 0: training loss %.17g differs from base %.17g", train_loss,
          base_loss);
    free(base);
    free(with);
    lt_model_free(m);
}

/* A LoRA model keeps logits for one block of the blocked loss (2^20 floats),
 * so lt_model_logits over more rows than fit (5 x 512 rows of 512 logits)
 * goes 2048 rows at a time; with B = 0 every row must still equal the base
 * model's, which takes the whole chunk at once. */
static void test_logits_in_row_blocks(void) {
    enum { LB = 5, LT = 512 };
    lt_error err;
    lt_model *base = load(&err), *m = load(&err);
    CHECK(base && m, "load: %s", err.msg);
    if (!base || !m) goto done;
    const size_t V = vsize(m), nl = (size_t)LB * LT * V;
    CHECK(LT <= lt_model_get_config(m)->seq_len && (size_t)LB * LT * V > ((size_t)1 << 20),
          "the shape must need more than one block of rows");
    int32_t *in = malloc((size_t)LB * LT * sizeof *in);
    float *want = malloc(nl * 4), *got = malloc(nl * 4);
    lt_rng r;
    lt_rng_seed(&r, 9, 9);
    for (int i = 0; i < LB * LT; i++) in[i] = (int32_t)(lt_rng_next_uniform(&r) * (float)V);
    lt_lora_config lc = {.r = 4, .alpha = 8, .dropout = 0, .use_rslora = 0, .targets = LT_MOD_MASK_ALL};
    CHECK(lt_model_add_lora(m, &lc, 7, &err) == LT_OK, "%s", err.msg);
    for (size_t i = 0; i < nl; i++) got[i] = NAN;
    CHECK(lt_model_logits(base, in, LB, LT, 0, want, &err) == LT_OK, "%s", err.msg);
    CHECK(lt_model_logits(m, in, LB, LT, 0, got, &err) == LT_OK, "%s", err.msg);
    /* OpenBLAS's threads split the rows differently for 2560 and 2048 rows,
     * which moves last bits; a row written to the wrong place, or not at
     * all, is off by the logits' own size. */
    double worst = 0.0, scale = 0.0;
    size_t bad = nl;
    for (size_t i = 0; i < nl; i++) {
        const double d = fabs((double)got[i] - want[i]);
        scale = fabs(want[i]) > scale ? fabs(want[i]) : scale;
        if (!(d <= worst)) {
            worst = d;
            bad = i;
        }
    }
    CHECK(worst <= 1e-6 * scale, "logits differ from the base model's by up to %.3g (row %zu; logits up to %.3g)",
          worst, bad / V, scale);
    printf("logits in blocks of %d rows: within %.3g of the base model's (logits up to %.3g)\n",
           (1 << 20) / (int)V, worst, scale);
    free(in);
    free(want);
    free(got);
done:
    lt_model_free(base);
    lt_model_free(m);
}

static void test_init(void) {
    lt_error err;
    lt_model *m = load(&err), *m2 = load(&err), *m3 = load(&err);
    CHECK(m && m2 && m3, "load: %s", err.msg);
    if (!m || !m2 || !m3) return;
    lt_lora_config lc = {.r = 4, .alpha = 8, .dropout = 0, .use_rslora = 0,
                         .targets = (1u << LT_MOD_Q) | (1u << LT_MOD_V) | (1u << LT_MOD_DOWN)};
    CHECK(lt_model_add_lora(m, &lc, 77, &err) == LT_OK, "%s", err.msg);
    CHECK(lt_model_add_lora(m2, &lc, 77, &err) == LT_OK, "%s", err.msg);
    CHECK(lt_model_add_lora(m3, &lc, 78, &err) == LT_OK, "%s", err.msg);
    CHECK(lt_model_add_lora(m, &lc, 77, &err) != LT_OK, "adding adapters twice must fail");
    const lt_param_table *t = lt_model_lora_table(m);
    const lt_model_config *c = lt_model_get_config(m);
    CHECK(t->count == 2 * 3 * c->n_layers, "%d LoRA tensors, expected %d", t->count, 6 * c->n_layers);
    const lt_tensor_desc *qa = lt_table_find(t, "model.layers.0.self_attn.q_proj.lora_A.weight");
    const lt_tensor_desc *db = lt_table_find(t, "model.layers.4.mlp.down_proj.lora_B.weight");
    CHECK(qa && qa->rows == 4 && qa->cols == c->dim, "q_proj lora_A must be [r, in]");
    CHECK(db && db->rows == c->dim && db->cols == 4, "down_proj lora_B must be [out, r]");
    CHECK(!lt_table_find(t, "model.layers.0.self_attn.k_proj.lora_A.weight"), "k_proj was not targeted");
    const float *p = lt_model_lora_params(m);
    CHECK(memcmp(p, lt_model_lora_params(m2), t->numel * 4) == 0, "same seed, different init");
    CHECK(memcmp(p, lt_model_lora_params(m3), t->numel * 4) != 0, "different seeds, same init");
    {
        /* Targeting more modules must not change the others' initial A. */
        lt_model *m4 = load(&err);
        lt_lora_config lc4 = lc;
        lc4.targets = LT_MOD_MASK_ALL;
        CHECK(m4 && lt_model_add_lora(m4, &lc4, 77, &err) == LT_OK, "%s", err.msg);
        const lt_param_table *t4 = lt_model_lora_table(m4);
        for (int i = 0; m4 && i < t->count; i++) {
            const lt_tensor_desc *d = &t->t[i], *d4 = lt_table_find(t4, d->name);
            CHECK(d4 && memcmp(p + d->offset, lt_model_lora_params(m4) + d4->offset,
                               lt_tensor_numel(d) * 4) == 0,
                  "%s: initial values change when other modules are targeted", d->name);
        }
        lt_model_free(m4);
    }
    for (int i = 0; i < t->count; i++) {
        const lt_tensor_desc *d = &t->t[i];
        size_t k = lt_tensor_numel(d);
        if (strstr(d->name, "lora_B")) {
            int nz = 0;
            for (size_t j = 0; j < k; j++) nz += p[d->offset + j] != 0.0f;
            CHECK(nz == 0, "%s: B must start at zero", d->name);
            continue;
        }
        /* kaiming_uniform(a = sqrt 5): U(-1/sqrt(in), 1/sqrt(in)) */
        double bound = 1.0 / sqrt((double)d->cols), s = 0, s2 = 0, mx = 0;
        for (size_t j = 0; j < k; j++) {
            double v = p[d->offset + j];
            s += v, s2 += v * v, mx = fmax(mx, fabs(v));
        }
        double sd = sqrt(s2 / k - (s / k) * (s / k)), want = bound / sqrt(3.0);
        CHECK(mx <= bound, "%s: |A| max %g exceeds the bound %g", d->name, mx, bound);
        CHECK(mx > 0.9 * bound, "%s: |A| max %g does not reach near the bound %g", d->name, mx, bound);
        /* k >= 256 draws: the sample sd is within 12% of the uniform's sd */
        CHECK(fabs(sd - want) < 0.12 * want, "%s: sd %g, expected %g", d->name, sd, want);
    }
    /* buckets: each layer's adapters are one contiguous range, in order */
    size_t prev_end = 0;
    for (int l = 0; l < c->n_layers; l++) {
        size_t b0 = 0, e0 = 0;
        CHECK(lt_table_layer_range(t, l, &b0, &e0), "layer %d has no LoRA tensors", l);
        CHECK(b0 == prev_end, "layer %d bucket starts at %zu, expected %zu", l, b0, prev_end);
        prev_end = e0;
    }
    CHECK(prev_end == t->numel, "buckets do not cover the LoRA buffer");
    lt_model_free(m);
    lt_model_free(m2);
    lt_model_free(m3);
}

static void test_merge(void) {
    lt_error err;
    lt_model *m = load(&err);
    CHECK(m, "load: %s", err.msg);
    if (!m) return;
    lt_lora_config lc = {.r = 8, .alpha = 16, .dropout = 0, .use_rslora = 0, .targets = LT_MOD_MASK_ALL};
    CHECK(lt_model_add_lora(m, &lc, 1, &err) == LT_OK, "%s", err.msg);
    randomize_B(m, 9, 0.05f);
    int32_t in[B * T], tg[B * T];
    make_batch(in, tg, (int)vsize(m));
    size_t nl = (size_t)B * T * vsize(m), nw = lt_model_base_table(m)->numel;
    float *unmerged = malloc(nl * 4), *merged = malloc(nl * 4), *w0 = malloc(nw * 4);
    float *w1 = malloc(nw * 4);
    memcpy(w0, lt_model_base(m), nw * 4);
    CHECK(lt_model_logits(m, in, B, T, 0, unmerged, &err) == LT_OK, "%s", err.msg);
    CHECK(lt_model_merge_lora(m, 1, &err) != LT_OK, "unmerge before merge must fail");
    CHECK(lt_model_merge_lora(m, 0, &err) == LT_OK, "%s", err.msg);
    CHECK(lt_model_lora_is_merged(m), "merged flag not set");
    CHECK(lt_model_merge_lora(m, 0, &err) != LT_OK, "merging twice must fail");
    double sum;
    int64_t cnt;
    CHECK(lt_model_forward_backward(m, in, tg, B, T, 1, &sum, &cnt, &err) != LT_OK,
          "training on merged weights must fail");
    CHECK(lt_model_logits(m, in, B, T, 0, merged, &err) == LT_OK, "%s", err.msg);
    double dl = 0, spread = 0;
    for (size_t i = 0; i < nl; i++) {
        dl = fmax(dl, fabs((double)merged[i] - unmerged[i]));
        spread = fmax(spread, fabs((double)unmerged[i]));
    }
    /* Merging reassociates fp32 sums through five layers: measured 1.8e-5
     * on logits of magnitude 16 (1e-6 relative). */
    CHECK(dl < 1e-4, "merged logits differ from base + adapter by %g", dl);
    const float *w = lt_model_base(m);
    memcpy(w1, w, nw * 4);
    size_t changed = 0;
    for (size_t i = 0; i < nw; i++) changed += w[i] != w0[i];
    CHECK(changed > nw / 2, "merge changed only %zu of %zu base weights", changed, nw);
    CHECK(lt_model_merge_lora(m, 1, &err) == LT_OK, "%s", err.msg);
    /* Round trip: (W + d) - d' with d' the same product recomputed differs
     * from W by the roundings of the two additions and of the GEMM's sums,
     * a few ulp of the largest magnitude involved, max(|W|, |W + d|). */
    double worst_ulps = 0;
    for (size_t i = 0; i < nw; i++) {
        double d = fabs((double)w[i] - w0[i]);
        if (d == 0) continue;
        float big = fmaxf(fabsf(w0[i]), fabsf(w1[i]));
        double ulp = nextafterf(big, INFINITY) - big;
        worst_ulps = fmax(worst_ulps, d / ulp);
    }
    CHECK(worst_ulps <= 4, "unmerge left weights %g ulp from the originals", worst_ulps);
    printf("merge: max logit change %.3g (logits up to %.3g); unmerge round trip within %.1f ulp\n",
           dl, spread, worst_ulps);
    CHECK(lt_model_logits(m, in, B, T, 0, merged, &err) == LT_OK, "%s", err.msg);
    dl = 0;
    for (size_t i = 0; i < nl; i++) dl = fmax(dl, fabs((double)merged[i] - unmerged[i]));
    CHECK(dl < 1e-4, "unmerged logits differ from before merging by %g", dl);
    free(w1);
    free(unmerged);
    free(merged);
    free(w0);
    lt_model_free(m);
}

typedef struct {
    int calls[16], order[16], n;
} hook_log;

static lt_status on_ready(void *user, int layer, lt_error *err) {
    (void)err;
    hook_log *h = user;
    if (layer >= 0 && layer < 16) h->calls[layer]++;
    if (h->n < 16) h->order[h->n] = layer;
    h->n++;
    return LT_OK;
}

static void test_determinism_and_hooks(void) {
    lt_error err;
    lt_model *m = load(&err);
    CHECK(m, "load: %s", err.msg);
    if (!m) return;
    lt_lora_config lc = {.r = 4, .alpha = 8, .dropout = 0.1f, .use_rslora = 0, .targets = LT_MOD_MASK_ALL};
    CHECK(lt_model_add_lora(m, &lc, 3, &err) == LT_OK, "%s", err.msg);
    randomize_B(m, 4, 0.05f);
    hook_log h;
    memset(&h, 0, sizeof h);
    lt_model_hooks hooks = {.acquire_layer = NULL, .grads_ready = on_ready, .user = &h};
    lt_model_set_hooks(m, &hooks);
    int32_t in[B * T], tg[B * T];
    make_batch(in, tg, (int)vsize(m));
    const lt_param_table *t = lt_model_lora_table(m);
    float *g1 = malloc(t->numel * 4);
    double l1, l2;
    int64_t cnt;
    lt_model_set_dropout_state(m, 11, 5, 0);
    lt_model_zero_grads(m);
    CHECK(lt_model_forward_backward(m, in, tg, B, T, 0.01f, &l1, &cnt, &err) == LT_OK, "%s", err.msg);
    memcpy(g1, lt_model_lora_grads(m), t->numel * 4);
    int L = lt_model_get_config(m)->n_layers;
    CHECK(h.n == L, "grads_ready called %d times, expected %d", h.n, L);
    for (int i = 0; i < h.n && i < L; i++)
        CHECK(h.order[i] == L - 1 - i, "grads_ready call %d was layer %d, expected %d", i, h.order[i], L - 1 - i);
    lt_model_zero_grads(m);
    CHECK(lt_model_forward_backward(m, in, tg, B, T, 0.01f, &l2, &cnt, &err) == LT_OK, "%s", err.msg);
    CHECK(l1 == l2, "same step twice: loss %.17g vs %.17g", l1, l2);
    CHECK(memcmp(g1, lt_model_lora_grads(m), t->numel * 4) == 0, "same step twice: gradients differ");
    /* Another dropout step draws other masks. */
    lt_model_set_dropout_state(m, 11, 6, 0);
    CHECK(lt_model_forward_backward(m, in, tg, B, T, 0.01f, &l2, &cnt, &err) == LT_OK, "%s", err.msg);
    CHECK(l1 != l2, "dropout step 6 gave the same loss as step 5");
    /* Gradients accumulate across calls (gradient accumulation). */
    lt_model_set_dropout_state(m, 11, 5, 0);
    lt_model_zero_grads(m);
    CHECK(lt_model_forward_backward(m, in, tg, B, T, 0.01f, &l2, &cnt, &err) == LT_OK, "%s", err.msg);
    CHECK(lt_model_forward_backward(m, in, tg, B, T, 0.01f, &l2, &cnt, &err) == LT_OK, "%s", err.msg);
    const float *g2 = lt_model_lora_grads(m);
    double worst = 0;
    for (size_t i = 0; i < t->numel; i++) worst = fmax(worst, fabs(g2[i] - 2.0 * g1[i]) / (fabs(g1[i]) + 1e-12));
    CHECK(worst < 1e-6, "two accumulated passes differ from twice one pass by %g (relative)", worst);
    /* Bad tokens and targets are reported, not used. */
    in[5] = (int32_t)vsize(m);
    CHECK(lt_model_forward_backward(m, in, tg, B, T, 1, &l2, &cnt, &err) == LT_ERR_INVALID &&
              strstr(err.msg, "tokens[5]"), "out-of-vocabulary token not reported: %s", err.msg);
    in[5] = 0;
    tg[7] = -3;
    CHECK(lt_model_forward_backward(m, in, tg, B, T, 1, &l2, &cnt, &err) == LT_ERR_INVALID &&
              strstr(err.msg, "targets[7]"), "negative target not reported: %s", err.msg);
    free(g1);
    lt_model_free(m);
}

static void test_config_errors(void) {
    lt_error err;
    unsigned mask = 0;
    CHECK(lt_lora_parse_targets("q_proj, v_proj", &mask, &err) == LT_OK &&
              mask == ((1u << LT_MOD_Q) | (1u << LT_MOD_V)), "q_proj, v_proj parsed as %#x", mask);
    CHECK(lt_lora_parse_targets("all-linear", &mask, &err) == LT_OK && mask == LT_MOD_MASK_ALL,
          "all-linear parsed as %#x", mask);
    CHECK(lt_lora_parse_targets("q_proj,qkv_proj", &mask, &err) == LT_ERR_CONFIG &&
              strstr(err.msg, "qkv_proj") && strstr(err.msg, "did you mean"), "unknown name: %s", err.msg);
    CHECK(lt_lora_parse_targets("wq", &mask, &err) == LT_ERR_CONFIG && strstr(err.msg, "\"q_proj\""),
          "llama2.c name not mapped in the suggestion: %s", err.msg);
    CHECK(lt_lora_parse_targets("", &mask, &err) == LT_ERR_CONFIG, "empty target list accepted");
    lt_model *full = load(&err);
    CHECK(full && lt_model_enable_full_training(full, &err) == LT_OK, "full training: %s", err.msg);
    lt_lora_config flc = {.r = 4, .alpha = 8, .targets = LT_MOD_MASK_ALL};
    CHECK(full && lt_model_add_lora(full, &flc, 1, &err) == LT_ERR_CONFIG && strstr(err.msg, "full"),
          "LoRA on a model in full fine-tuning: %s", err.msg);
    lt_model_free(full);
    lt_model_config c = {.dim = 64, .hidden_dim = 172, .n_layers = 5, .n_heads = 8, .n_kv_heads = 4,
                         .vocab_size = 512, .seq_len = 512, .shared_classifier = 1, .norm_eps = 1e-5f,
                         .rope_theta = 10000, .rope_layout = LT_ROPE_INTERLEAVED};
    lt_lora_config lc = {.r = 0, .alpha = 8, .dropout = 0, .use_rslora = 0, .targets = LT_MOD_MASK_ALL};
    CHECK(lt_lora_config_validate(&lc, &c, &err) == LT_ERR_CONFIG && strstr(err.msg, "r = 0"), "r = 0: %s", err.msg);
    lc.r = 33; /* k_proj is [32, 64] */
    CHECK(lt_lora_config_validate(&lc, &c, &err) == LT_ERR_CONFIG && strstr(err.msg, "k_proj"),
          "r above min(in, out): %s", err.msg);
    lc.targets = (1u << LT_MOD_Q);
    CHECK(lt_lora_config_validate(&lc, &c, &err) == LT_OK, "r = 33 on q_proj [64 x 64] is valid: %s", err.msg);
    lc.dropout = 1.0f;
    CHECK(lt_lora_config_validate(&lc, &c, &err) == LT_ERR_CONFIG, "dropout 1 accepted");
    lc.dropout = 0;
    lc.alpha = 0;
    CHECK(lt_lora_config_validate(&lc, &c, &err) == LT_ERR_CONFIG, "alpha 0 accepted");
    lc.alpha = 16;
    lc.r = 4;
    CHECK(lt_lora_scale(&lc) == 4.0f, "alpha/r");
    lc.use_rslora = 1;
    CHECK(lt_lora_scale(&lc) == 8.0f, "alpha/sqrt(r)");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL\n", argv[0]);
        return 2;
    }
    g_model_path = argv[1];
    test_zero_B_is_exact();
    test_logits_in_row_blocks();
    test_init();
    test_merge();
    test_determinism_and_hooks();
    test_config_errors();
    return check_exit_code();
}
