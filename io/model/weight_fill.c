#include "io/model/weight_fill.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/alloc.h"

lt_status lt_base_tensor_specs(const lt_model_config *cfg, lt_base_tensor_spec **specs, int *n,
                               lt_error *err) {
    const int C = cfg->dim, H = cfg->hidden_dim, KV = lt_kv_dim(cfg), V = cfg->vocab_size;
    enum { GLOBAL, PER_LAYER, UNTIED_ONLY, BIAS_ONLY };
    const struct {
        const char *name; /* full name, or the part after model.layers.<l>. */
        int kind, rows, cols;
    } order[] = {
        {"model.embed_tokens.weight", GLOBAL, V, C},
        {"input_layernorm.weight", PER_LAYER, 1, C},
        {"self_attn.q_proj.weight", PER_LAYER, C, C},
        {"self_attn.k_proj.weight", PER_LAYER, KV, C},
        {"self_attn.v_proj.weight", PER_LAYER, KV, C},
        {"self_attn.q_proj.bias", BIAS_ONLY, 1, C}, /* Qwen2 */
        {"self_attn.k_proj.bias", BIAS_ONLY, 1, KV},
        {"self_attn.v_proj.bias", BIAS_ONLY, 1, KV},
        {"self_attn.o_proj.weight", PER_LAYER, C, C},
        {"post_attention_layernorm.weight", PER_LAYER, 1, C},
        {"mlp.gate_proj.weight", PER_LAYER, H, C}, /* llama2.c's w1 */
        {"mlp.down_proj.weight", PER_LAYER, C, H}, /* w2 */
        {"mlp.up_proj.weight", PER_LAYER, H, C},   /* w3 */
        {"model.norm.weight", GLOBAL, 1, C},
        {"lm_head.weight", UNTIED_ONLY, V, C},
    };
    const int kinds = (int)(sizeof order / sizeof order[0]);
    const int total = 3 + (cfg->qkv_bias ? 12 : 9) * cfg->n_layers;
    lt_base_tensor_spec *s = malloc((size_t)total * sizeof *s);
    if (!s) return lt_fail(err, LT_ERR_NOMEM, "base tensor list: out of memory");
    int i = 0;
    for (int k = 0; k < kinds; k++) {
        if (order[k].kind == UNTIED_ONLY && cfg->shared_classifier) continue;
        if (order[k].kind == BIAS_ONLY && !cfg->qkv_bias) continue;
        const int per_layer = order[k].kind == PER_LAYER || order[k].kind == BIAS_ONLY;
        const int layers = per_layer ? cfg->n_layers : 1;
        for (int l = 0; l < layers; l++, i++) {
            if (per_layer)
                snprintf(s[i].name, sizeof s[i].name, "model.layers.%d.%s", l, order[k].name);
            else
                snprintf(s[i].name, sizeof s[i].name, "%s", order[k].name);
            s[i].rows = order[k].rows;
            s[i].cols = order[k].cols;
        }
    }
    *specs = s;
    *n = i;
    return LT_OK;
}

lt_status lt_model_fill(lt_model *m, const lt_tensor_source *src, const char *source,
                        uint64_t *bytes_read, lt_error *err) {
    if (bytes_read) *bytes_read = 0;
    lt_base_tensor_spec *specs = NULL;
    int n = 0;
    lt_status st = lt_base_tensor_specs(lt_model_get_config(m), &specs, &n, err);
    if (st != LT_OK) return st;
    size_t max_count = 0;
    for (int i = 0; i < n; i++) {
        size_t c = (size_t)specs[i].rows * (size_t)specs[i].cols;
        if (c > max_count) max_count = c;
    }
    /* One tensor's staging: with a quantized base the fp32 model never
     * exists whole. */
    float *staging = lt_alloc(LT_MEM_WORKSPACE, max_count * sizeof(float));
    if (!staging) {
        st = lt_fail(err, LT_ERR_NOMEM, "%s: cannot allocate a %zu-byte staging buffer", source,
                     max_count * sizeof(float));
        goto done;
    }
    uint64_t bytes = 0;
    for (int i = 0; i < n && st == LT_OK; i++) {
        const lt_base_tensor_spec *t = &specs[i];
        const size_t count = (size_t)t->rows * (size_t)t->cols;
        if (!lt_model_base_tensor_needed(m, t->name)) {
            if (src->skip) st = src->skip(src->user, t, err);
            continue;
        }
        if ((st = src->read(src->user, t, staging, count, &bytes, err)) != LT_OK) break;
        for (size_t k = 0; k < count; k++)
            if (!isfinite(staging[k])) {
                st = lt_fail(err, LT_ERR_FORMAT,
                             "%s: tensor %s element %zu is %g, expected a finite value", source,
                             t->name, k, (double)staging[k]);
                break;
            }
        if (st == LT_OK && (st = lt_model_set_base_tensor(m, t->name, staging, count, err)) != LT_OK)
            lt_fail_context(err, "%s", source);
    }
    if (bytes_read) *bytes_read = bytes;
done:
    lt_free(staging);
    free(specs);
    return st;
}
