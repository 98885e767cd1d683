/* The shape of a Llama-architecture decoder, whatever file it came from. */
#ifndef LT_MODEL_CONFIG_H
#define LT_MODEL_CONFIG_H

#include "core/status.h"

LT_EXTERN_C_BEGIN

typedef enum {
    /* llama2.c / Meta checkpoints: rotate adjacent pairs (2i, 2i+1). */
    LT_ROPE_INTERLEAVED = 0,
    /* Hugging Face checkpoints: rotate (i, i + head_dim/2) ("rotate_half"). */
    LT_ROPE_HALF = 1
} lt_rope_layout;

typedef struct {
    int dim;          /* hidden size */
    int hidden_dim;   /* MLP intermediate size */
    int n_layers;
    int n_heads;
    int n_kv_heads;   /* < n_heads: grouped-query attention */
    int vocab_size;
    int seq_len;      /* longest context the model was trained for */
    int shared_classifier; /* 1: logits use the token embedding (tied) */
    float norm_eps;
    float rope_theta;
    lt_rope_layout rope_layout;
    /* 1: q_proj, k_proj and v_proj add a bias (Qwen2); frozen like the
     * weights, trained in full fine-tuning. Needs LT_ROPE_HALF: only
     * Hugging Face checkpoints have them, and their rows follow q/k's. */
    int qkv_bias;
} lt_model_config;

/* Checks every field for a usable model; names the field and the rule it
 * breaks. source names the file the values came from, for the message. */
lt_status lt_model_config_validate(const lt_model_config *c, const char *source, lt_error *err);

/* Reorders the rows of a [n_heads * head_dim, cols] matrix whose rows are
 * rotary dimensions (q_proj, k_proj weights and their LoRA B) between the
 * two RoPE layouts: within each head, interleaved row 2i + c is half-layout
 * row c * head_dim/2 + i. to_half = 0 goes back. dst must not alias src. */
void lt_rope_permute_rows(const float *src, float *dst, int n_heads, int head_dim, int cols,
                          int to_half);

/* The heads whose rows lt_rope_permute_rows reorders for the tensor of
 * that name (q_proj / k_proj weights and their LoRA B) when the model
 * computes in the interleaved layout; 0 for every other tensor and for a
 * rotate-half model, whose rows already are in Hugging Face's order. */
int lt_rope_rotary_heads(const lt_model_config *c, const char *tensor_name);

static inline int lt_head_dim(const lt_model_config *c) { return c->dim / c->n_heads; }
static inline int lt_kv_dim(const lt_model_config *c) {
    return lt_head_dim(c) * c->n_kv_heads;
}

LT_EXTERN_C_END

#endif
