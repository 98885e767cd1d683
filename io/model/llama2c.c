#include "io/model/llama2c.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fileutil.h"
#include "io/model/weight_fill.h"

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

/* The file read in order: each tensor follows the previous one, and the
 * unused RoPE tables sit between the final norm and the classifier. */
typedef struct {
    FILE *f;
    const char *path;
    const lt_model_config *cfg;
} file_source;

static lt_status pass_rope_tables(file_source *s, const lt_base_tensor_spec *t, lt_error *err) {
    if (strcmp(t->name, "lm_head.weight")) return LT_OK;
    /* Angles are recomputed from rope_theta. */
    long skip = (long)s->cfg->seq_len * (lt_head_dim(s->cfg) / 2) * 2 * (long)sizeof(float);
    if (fseek(s->f, skip, SEEK_CUR) != 0)
        return lt_fail(err, LT_ERR_IO, "%s: cannot seek to the classifier", s->path);
    return LT_OK;
}

static lt_status file_read(void *user, const lt_base_tensor_spec *t, float *dst, size_t count,
                           uint64_t *bytes, lt_error *err) {
    file_source *s = user;
    lt_status st = pass_rope_tables(s, t, err);
    if (st == LT_OK) st = lt_read_exact(s->f, dst, count * sizeof(float), s->path, t->name, err);
    if (st == LT_OK) *bytes += count * sizeof(float);
    return st;
}

static lt_status file_skip(void *user, const lt_base_tensor_spec *t, lt_error *err) {
    file_source *s = user;
    lt_status st = pass_rope_tables(s, t, err);
    if (st == LT_OK &&
        fseek(s->f, (long)((size_t)t->rows * (size_t)t->cols * sizeof(float)), SEEK_CUR) != 0)
        st = lt_fail(err, LT_ERR_IO, "%s: cannot seek past %s", s->path, t->name);
    return st;
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
    file_source s = {fopen(path, "rb"), path, &cfg};
    if (!s.f)
        st = lt_fail(err, LT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    else if (fseek(s.f, HEADER_BYTES, SEEK_SET) != 0)
        st = lt_fail(err, LT_ERR_IO, "%s: seek failed", path);
    else {
        const lt_tensor_source src = {file_read, file_skip, &s};
        st = lt_model_fill(m, &src, path, bytes_read, err);
    }
    if (s.f) fclose(s.f);
    if (st != LT_OK) {
        lt_model_free(m);
        return st;
    }
    *out = m;
    return LT_OK;
}
