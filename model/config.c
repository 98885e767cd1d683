#include "model/config.h"

#include <math.h>
#include <string.h>

/* Upper bounds keep size arithmetic inside 64 bits and catch garbage headers
 * before anything is allocated; the largest real models are far below them. */
#define LT_MAX_DIM (1 << 17)
#define LT_MAX_LAYERS 1024
#define LT_MAX_VOCAB (1 << 22)
#define LT_MAX_SEQ (1 << 22)

lt_status lt_model_config_validate(const lt_model_config *c, const char *source, lt_error *err) {
    const char *s = source ? source : "model config";
#define REQUIRE_RANGE(field, lo, hi)                                                         \
    if (c->field < (lo) || c->field > (hi))                                                  \
    return lt_fail(err, LT_ERR_FORMAT, "%s: " #field " = %d, expected %d..%d", s, c->field, \
                   (int)(lo), (int)(hi))
    REQUIRE_RANGE(dim, 1, LT_MAX_DIM);
    REQUIRE_RANGE(hidden_dim, 1, LT_MAX_DIM * 8);
    REQUIRE_RANGE(n_layers, 1, LT_MAX_LAYERS);
    REQUIRE_RANGE(n_heads, 1, c->dim);
    REQUIRE_RANGE(n_kv_heads, 1, c->n_heads);
    REQUIRE_RANGE(vocab_size, 1, LT_MAX_VOCAB);
    REQUIRE_RANGE(seq_len, 1, LT_MAX_SEQ);
#undef REQUIRE_RANGE
    if (c->dim % c->n_heads != 0)
        return lt_fail(err, LT_ERR_FORMAT, "%s: n_heads = %d does not divide dim = %d", s,
                       c->n_heads, c->dim);
    if (c->n_heads % c->n_kv_heads != 0)
        return lt_fail(err, LT_ERR_FORMAT, "%s: n_kv_heads = %d does not divide n_heads = %d", s,
                       c->n_kv_heads, c->n_heads);
    if (lt_head_dim(c) % 2 != 0)
        return lt_fail(err, LT_ERR_FORMAT,
                       "%s: head dimension dim/n_heads = %d must be even for rotary embeddings",
                       s, lt_head_dim(c));
    if (!(c->norm_eps > 0.0f) || !isfinite(c->norm_eps))
        return lt_fail(err, LT_ERR_FORMAT, "%s: norm_eps = %g, expected a positive number", s,
                       (double)c->norm_eps);
    if (!(c->rope_theta > 1.0f) || !isfinite(c->rope_theta))
        return lt_fail(err, LT_ERR_FORMAT, "%s: rope_theta = %g, expected a number > 1", s,
                       (double)c->rope_theta);
    if (c->rope_layout != LT_ROPE_INTERLEAVED && c->rope_layout != LT_ROPE_HALF)
        return lt_fail(err, LT_ERR_FORMAT, "%s: rope_layout = %d, expected 0 (interleaved) or 1 (half)",
                       s, (int)c->rope_layout);
    if (c->qkv_bias != 0 && c->qkv_bias != 1)
        return lt_fail(err, LT_ERR_FORMAT, "%s: qkv_bias = %d, expected 0 or 1", s, c->qkv_bias);
    if (c->qkv_bias && c->rope_layout != LT_ROPE_HALF)
        return lt_fail(err, LT_ERR_UNSUPPORTED,
                       "%s: q/k/v biases need the rotate-half RoPE layout of Hugging Face checkpoints",
                       s);
    return LT_OK;
}

void lt_rope_permute_rows(const float *src, float *dst, int n_heads, int head_dim, int cols,
                          int to_half) {
    const int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < half; i++)
            for (int c = 0; c < 2; c++) {
                size_t inter = (size_t)h * head_dim + 2 * i + c, hf = (size_t)h * head_dim + c * half + i;
                size_t from = to_half ? inter : hf, to = to_half ? hf : inter;
                memcpy(dst + to * cols, src + from * cols, (size_t)cols * sizeof(float));
            }
}

int lt_rope_rotary_heads(const lt_model_config *c, const char *tensor_name) {
    if (c->rope_layout == LT_ROPE_HALF) return 0;
    if (strstr(tensor_name, ".q_proj.lora_B") || strstr(tensor_name, ".q_proj.weight")) return c->n_heads;
    if (strstr(tensor_name, ".k_proj.lora_B") || strstr(tensor_name, ".k_proj.weight")) return c->n_kv_heads;
    return 0;
}
