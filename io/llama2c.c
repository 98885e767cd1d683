#include "io/llama2c.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fileutil.h"

#define HEADER_BYTES 28

static uint64_t implied_bytes(const lt_model_config *c) {
    const uint64_t C = (uint64_t)c->dim, H = (uint64_t)c->hidden_dim, L = (uint64_t)c->n_layers;
    const uint64_t V = (uint64_t)c->vocab_size, KV = (uint64_t)lt_kv_dim(c);
    const uint64_t HD = (uint64_t)lt_head_dim(c), S = (uint64_t)c->seq_len;
    uint64_t floats = V * C                 /* token embedding */
                      + L * C               /* attention norms */
                      + L * C * C * 2       /* wq, wo */
                      + L * KV * C * 2      /* wk, wv */
                      + L * C               /* ffn norms */
                      + L * H * C * 3       /* w1, w2, w3 */
                      + C                   /* final norm */
                      + S * (HD / 2) * 2    /* freq_cis real and imaginary (unused) */
                      + (c->shared_classifier ? 0 : V * C);
    return HEADER_BYTES + 4 * floats;
}

lt_status lt_llama2c_read_config(const char *path, lt_model_config *cfg, uint64_t *file_bytes,
                                 lt_error *err) {
    uint64_t size = 0;
    lt_status st = lt_file_size(path, &size, err);
    if (st != LT_OK) return st;
    if (size < HEADER_BYTES)
        return lt_fail(err, LT_ERR_FORMAT,
                       "%s: file is %llu bytes, too short for the %d-byte llama2.c header", path,
                       (unsigned long long)size, HEADER_BYTES);
    FILE *f = fopen(path, "rb");
    if (!f) return lt_fail(err, LT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    int32_t h[7];
    st = lt_read_exact(f, h, sizeof h, path, "header", err);
    fclose(f);
    if (st != LT_OK) return st;
    memset(cfg, 0, sizeof *cfg);
    cfg->dim = h[0];
    cfg->hidden_dim = h[1];
    cfg->n_layers = h[2];
    cfg->n_heads = h[3];
    cfg->n_kv_heads = h[4];
    /* A negative vocab_size marks an unshared classifier stored at the end. */
    cfg->shared_classifier = h[5] > 0;
    cfg->vocab_size = h[5] == INT32_MIN ? 0 : (h[5] < 0 ? -h[5] : h[5]);
    cfg->seq_len = h[6];
    cfg->norm_eps = 1e-5f;
    cfg->rope_theta = 10000.0f;
    cfg->rope_layout = LT_ROPE_INTERLEAVED;
    if ((st = lt_model_config_validate(cfg, path, err)) != LT_OK) return st;
    uint64_t want = implied_bytes(cfg);
    if (size != want)
        return lt_fail(err, LT_ERR_FORMAT,
                       "%s: file is %llu bytes but its header (dim %d, hidden_dim %d, n_layers %d, "
                       "n_heads %d, n_kv_heads %d, vocab_size %d, seq_len %d) implies %llu bytes",
                       path, (unsigned long long)size, h[0], h[1], h[2], h[3], h[4], h[5], h[6],
                       (unsigned long long)want);
    if (file_bytes) *file_bytes = size;
    return LT_OK;
}

/* One stacked tensor of the file: its base-table name pattern and shape. */
typedef struct {
    const char *name; /* full name, or the part after model.layers.<l>. */
    int per_layer;
    int rows, cols;
} file_tensor;

static lt_status read_slice(FILE *f, const char *path, const char *name, float *staging,
                            size_t count, lt_model *m, lt_error *err) {
    lt_status st = lt_read_exact(f, staging, count * sizeof(float), path, name, err);
    if (st != LT_OK) return st;
    for (size_t i = 0; i < count; i++)
        if (!isfinite(staging[i]))
            return lt_fail(err, LT_ERR_FORMAT, "%s: tensor %s element %zu is %g, expected a finite value",
                           path, name, i, (double)staging[i]);
    if ((st = lt_model_set_base_tensor(m, name, staging, count, err)) != LT_OK)
        return lt_fail_context(err, "%s", path);
    return LT_OK;
}

lt_status lt_llama2c_load(const char *path, const lt_ops *ops, lt_model **out, lt_error *err) {
    return lt_llama2c_load_quantized(path, NULL, ops, out, err);
}

lt_status lt_llama2c_load_quantized(const char *path, const lt_quant_config *qc, const lt_ops *ops,
                                    lt_model **out, lt_error *err) {
    return lt_llama2c_load_sharded(path, qc, 0, 1, ops, out, NULL, err);
}

lt_status lt_llama2c_load_sharded(const char *path, const lt_quant_config *qc, int shard_rank,
                                  int shard_count, const lt_ops *ops, lt_model **out,
                                  uint64_t *bytes_read, lt_error *err) {
    *out = NULL;
    if (bytes_read) *bytes_read = 0;
    lt_model_config cfg;
    lt_status st = lt_llama2c_read_config(path, &cfg, NULL, err);
    if (st != LT_OK) return st;
    lt_model *m = NULL;
    if ((st = lt_model_create_sharded(&cfg, qc, shard_rank, shard_count, ops, &m, err)) != LT_OK)
        return st;
    const int C = cfg.dim, H = cfg.hidden_dim, KV = lt_kv_dim(&cfg), V = cfg.vocab_size;
    const file_tensor order[] = {
        {"model.embed_tokens.weight", 0, V, C},
        {"input_layernorm.weight", 1, 1, C},
        {"self_attn.q_proj.weight", 1, C, C},
        {"self_attn.k_proj.weight", 1, KV, C},
        {"self_attn.v_proj.weight", 1, KV, C},
        {"self_attn.o_proj.weight", 1, C, C},
        {"post_attention_layernorm.weight", 1, 1, C},
        {"mlp.gate_proj.weight", 1, H, C}, /* w1 */
        {"mlp.down_proj.weight", 1, C, H}, /* w2 */
        {"mlp.up_proj.weight", 1, H, C},   /* w3 */
        {"model.norm.weight", 0, 1, C},
    };
    size_t max_slice = (size_t)V * C;
    size_t hc = (size_t)H * C;
    if (hc > max_slice) max_slice = hc;
    float *staging = lt_alloc(LT_MEM_WORKSPACE, max_slice * sizeof(float));
    FILE *f = fopen(path, "rb");
    if (!staging || !f) {
        st = !f ? lt_fail(err, LT_ERR_IO, "%s: cannot open: %s", path, strerror(errno))
                : lt_fail(err, LT_ERR_NOMEM, "%s: cannot allocate a %zu-byte staging buffer",
                          path, max_slice * sizeof(float));
        goto done;
    }
    if (fseek(f, HEADER_BYTES, SEEK_SET) != 0) {
        st = lt_fail(err, LT_ERR_IO, "%s: seek failed", path);
        goto done;
    }
    char name[LT_TENSOR_NAME_MAX];
    for (size_t t = 0; t < sizeof order / sizeof order[0]; t++) {
        int layers = order[t].per_layer ? cfg.n_layers : 1;
        for (int l = 0; l < layers; l++) {
            if (order[t].per_layer)
                snprintf(name, sizeof name, "model.layers.%d.%s", l, order[t].name);
            else
                snprintf(name, sizeof name, "%s", order[t].name);
            const size_t count = (size_t)order[t].rows * (size_t)order[t].cols;
            if (!lt_model_base_tensor_needed(m, name)) {
                if (fseek(f, (long)(count * sizeof(float)), SEEK_CUR) != 0) {
                    st = lt_fail(err, LT_ERR_IO, "%s: cannot seek past %s", path, name);
                    goto done;
                }
                continue;
            }
            if ((st = read_slice(f, path, name, staging, count, m, err)) != LT_OK) goto done;
            if (bytes_read) *bytes_read += count * sizeof(float);
        }
    }
    if (!cfg.shared_classifier) {
        /* Skip the RoPE tables: angles are recomputed from rope_theta. */
        long skip = (long)cfg.seq_len * (lt_head_dim(&cfg) / 2) * 2 * (long)sizeof(float);
        if (fseek(f, skip, SEEK_CUR) != 0) {
            st = lt_fail(err, LT_ERR_IO, "%s: cannot seek to the classifier", path);
            goto done;
        }
        st = read_slice(f, path, "lm_head.weight", staging, (size_t)V * (size_t)C, m, err);
        if (st == LT_OK && bytes_read) *bytes_read += (uint64_t)V * (uint64_t)C * sizeof(float);
    }
done:
    if (f) fclose(f);
    lt_free(staging);
    if (st != LT_OK) {
        lt_model_free(m);
        return st;
    }
    *out = m;
    return LT_OK;
}
