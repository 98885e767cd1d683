/* dA and dB through the whole model -- and, in full fine-tuning, the
 * gradient of every base weight -- against central finite differences of
 * the model's own fp32 loss; with gradient checkpointing, also bit for bit
 * against the same model without it.
 *
 * A tiny random Llama (GQA, both RoPE layouts, tied and untied classifier,
 * LoRA on all seven module types, ignored targets, with and without
 * dropout) keeps the loss well conditioned. For every LoRA tensor t we draw
 * a random unit direction u and compare g_t . u with the derivative of
 * L(theta + h u) estimated by Richardson-extrapolated central differences
 * (error O(h^4)). The fp32 loss is reproducible bit for bit, so the noise is
 * rounding only: with h = 2e-2 we measured it below 1e-3 of |g_t|.
 * Tolerance: |fd - g.u| <= 2e-3 * |g_t| + 1e-6 for every tensor; a wrong
 * gradient formula gives errors of order |g_t|. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/cpu/cpu.h"
#include "model/llama.h"
#include "tests/lib/check.h"

typedef struct {
    const char *label;
    int rope_layout, shared, use_rslora;
    float dropout;
    int full, checkpointing;
    int qkv_bias;
} scenario;

static lt_model *make_model(const scenario *s, lt_rng *rng, lt_error *err) {
    lt_model_config c = {.dim = 16, .hidden_dim = 24, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                         .vocab_size = 32, .seq_len = 16, .shared_classifier = s->shared,
                         .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                         .rope_layout = (lt_rope_layout)s->rope_layout, .qkv_bias = s->qkv_bias};
    lt_model *m = NULL;
    if (lt_model_create(&c, lt_ops_cpu(1), &m, err) != LT_OK) return NULL;
    const lt_param_table *t = lt_model_base_table(m);
    float *w = lt_model_base(m);
    for (int i = 0; i < t->count; i++) {
        const lt_tensor_desc *d = &t->t[i];
        int is_bias = strstr(d->name, ".bias") != NULL, is_norm = d->rows == 1 && !is_bias;
        float scale = is_bias ? 0.5f : is_norm ? 0.2f : 1.5f / sqrtf((float)d->cols);
        for (size_t k = 0; k < lt_tensor_numel(d); k++)
            w[d->offset + k] = (is_norm ? 1.0f : 0.0f) + scale * (2 * lt_rng_next_uniform(rng) - 1);
    }
    lt_model_set_gradient_checkpointing(m, s->checkpointing);
    if (s->full) {
        if (lt_model_enable_full_training(m, err) == LT_OK) return m;
        lt_model_free(m);
        return NULL;
    }
    lt_lora_config lc = {.r = 3, .alpha = 5.0f, .dropout = s->dropout, .use_rslora = s->use_rslora,
                         .targets = LT_MOD_MASK_ALL};
    if (lt_model_add_lora(m, &lc, 99, err) != LT_OK) {
        lt_model_free(m);
        return NULL;
    }
    /* B must be non-zero or dA vanishes and A's check proves nothing. */
    const lt_param_table *lt = lt_model_lora_table(m);
    float *p = lt_model_lora_params(m);
    for (int i = 0; i < lt->count; i++) {
        const lt_tensor_desc *d = &lt->t[i];
        if (!strstr(d->name, "lora_B")) continue;
        for (size_t k = 0; k < lt_tensor_numel(d); k++)
            p[d->offset + k] = 0.4f * (2 * lt_rng_next_uniform(rng) - 1);
    }
    lt_model_set_dropout_state(m, 7, 3, 0);
    return m;
}

/* Mean loss with the same dropout masks as the gradient pass. */
static double loss_at(lt_model *m, const int32_t *in, const int32_t *tg, int B, int T) {
    lt_error err;
    double sum = 0;
    int64_t n = 0;
    /* forward_backward evaluates the training-mode loss; its gradient side
     * effect is cleared by the caller. */
    if (lt_model_forward_backward(m, in, tg, B, T, 0.0f, &sum, &n, &err) != LT_OK) {
        fprintf(stderr, "loss: %s\n", err.msg);
        return NAN;
    }
    return sum / (double)n;
}

static void run(const scenario *s) {
    lt_rng rng;
    lt_rng_seed(&rng, 42, (uint64_t)s->rope_layout * 4 + (uint64_t)s->shared * 2 + (uint64_t)s->use_rslora);
    lt_error err;
    lt_model *m = make_model(s, &rng, &err);
    CHECK(m != NULL, "%s: model creation failed: %s", s->label, err.msg);
    if (!m) return;
    enum { B = 2, T = 7 };
    int32_t in[B * T], tg[B * T];
    for (int i = 0; i < B * T; i++) {
        in[i] = (int32_t)(lt_rng_next_uniform(&rng) * 32);
        tg[i] = (int32_t)(lt_rng_next_uniform(&rng) * 32);
    }
    tg[3] = LT_IGNORE_INDEX;
    tg[B * T - 1] = LT_IGNORE_INDEX;
    const int64_t count = lt_count_targets(tg, B * T);

    lt_model_zero_grads(m);
    double sum;
    int64_t n;
    lt_status st = lt_model_forward_backward(m, in, tg, B, T, 1.0f / (float)count, &sum, &n, &err);
    CHECK(st == LT_OK, "%s: forward_backward: %s", s->label, err.msg);
    CHECK(n == count, "%s: %lld targets counted, expected %lld", s->label, (long long)n, (long long)count);
    const lt_param_table *tab = lt_model_train_table(m);
    float *p = lt_model_train_params(m);
    float *grad = malloc(tab->numel * sizeof(float));
    memcpy(grad, lt_model_train_grads(m), tab->numel * sizeof(float));
    if (s->checkpointing) {
        /* Recomputation replays the same ops on the same inputs. */
        lt_model_set_gradient_checkpointing(m, 0);
        lt_model_zero_grads(m);
        double sum2;
        st = lt_model_forward_backward(m, in, tg, B, T, 1.0f / (float)count, &sum2, &n, &err);
        CHECK(st == LT_OK && sum2 == sum &&
                  memcmp(grad, lt_model_train_grads(m), tab->numel * sizeof(float)) == 0,
              "%s: loss or gradients differ without checkpointing", s->label);
        lt_model_set_gradient_checkpointing(m, 1);
    }

    double worst = 0;
    int checked = 0;
    for (int i = 0; i < tab->count; i++) {
        const lt_tensor_desc *d = &tab->t[i];
        size_t k = lt_tensor_numel(d);
        double *u = malloc(k * sizeof(double)), norm = 0, gnorm = 0, gu = 0;
        for (size_t j = 0; j < k; j++) {
            u[j] = 2.0 * lt_rng_next_uniform(&rng) - 1.0;
            norm += u[j] * u[j];
        }
        norm = sqrt(norm);
        for (size_t j = 0; j < k; j++) {
            u[j] /= norm;
            gnorm += (double)grad[d->offset + j] * grad[d->offset + j];
            gu += (double)grad[d->offset + j] * u[j];
        }
        gnorm = sqrt(gnorm);
        float *saved = malloc(k * sizeof(float));
        memcpy(saved, p + d->offset, k * sizeof(float));
        double dh[2];
        const double h = 2e-2;
        for (int level = 0; level < 2; level++) {
            double hh = level ? h / 2 : h, f[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                for (size_t j = 0; j < k; j++)
                    p[d->offset + j] = (float)(saved[j] + (sgn ? -hh : hh) * u[j]);
                f[sgn] = loss_at(m, in, tg, B, T);
            }
            dh[level] = (f[0] - f[1]) / (2 * hh);
        }
        memcpy(p + d->offset, saved, k * sizeof(float));
        double fd = (4 * dh[1] - dh[0]) / 3;
        double e = fabs(fd - gu), tol = 2e-3 * gnorm + 1e-6;
        CHECK(gnorm > 1e-4, "%s: %s has a vanishing gradient (%g): the check would be vacuous",
              s->label, d->name, gnorm);
        CHECK(e <= tol, "%s: %s: finite difference %.8g vs analytic %.8g (|g| %.3g)", s->label,
              d->name, fd, gu, gnorm);
        worst = fmax(worst, e / (gnorm + 1e-12));
        checked++;
        free(u);
        free(saved);
    }
    printf("%-38s %d tensors, worst |fd - g.u| / |g| = %.2e\n", s->label, checked, worst);
    free(grad);
    lt_model_free(m);
}

int main(void) {
    const scenario s[] = {
        {"interleaved rope, tied classifier", LT_ROPE_INTERLEAVED, 1, 0, 0.0f, 0, 0, 0},
        {"half rope, untied, rslora", LT_ROPE_HALF, 0, 1, 0.0f, 0, 0, 0},
        {"interleaved, untied, dropout 0.2", LT_ROPE_INTERLEAVED, 0, 0, 0.2f, 0, 0, 0},
        {"dropout 0.2, gradient checkpointing", LT_ROPE_HALF, 1, 0, 0.2f, 0, 1, 0},
        {"full fine-tune, tied classifier", LT_ROPE_INTERLEAVED, 1, 0, 0.0f, 1, 0, 0},
        {"full fine-tune, untied, checkpointing", LT_ROPE_HALF, 0, 0, 0.0f, 1, 1, 0},
        {"q/k/v biases (Qwen2), LoRA", LT_ROPE_HALF, 0, 0, 0.0f, 0, 0, 1},
        {"q/k/v biases (Qwen2), full fine-tune", LT_ROPE_HALF, 1, 0, 0.0f, 1, 0, 1},
    };
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) run(&s[i]);
    return check_exit_code();
}
