#include "model/llama.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

/* Adapters whose modules read the same input form a group: with dropout
 * off, one GEMM computes all their x A^T, one all their dA and one their
 * share of dx (A matrices of a group are adjacent in the flat buffer). */
enum { LORA_GROUPS = 4 };
static const int k_group_of[LT_MOD_COUNT] = {0, 0, 0, 1, 2, 2, 3}; /* qkv, o, gate+up, down */

/* Activations one layer keeps for its backward pass. */
typedef struct {
    float *x;     /* [n, C] layer input (residual stream) */
    float *xn1;   /* [n, C] attention RMSNorm output */
    float *rstd1; /* [n] */
    float *qkv;   /* [n, QKV] after RoPE */
    float *lse;   /* [B, nh, T] attention log-sum-exp per query row */
    float *atty;  /* [n, C] attention output before o_proj */
    float *res;   /* [n, C] x + attention branch */
    float *xn2;   /* [n, C] MLP RMSNorm output */
    float *rstd2; /* [n] */
    float *gu;    /* [n, 2H] gate and up projections */
    float *h;     /* [n, H] silu(gate) * up */
    float *lora_u[LORA_GROUPS]; /* [n, k r] dropout(x) A^T of a group's k adapters, for dB */
} layer_acts;

/* Buffers reused by every layer's backward pass. */
typedef struct {
    float *dres;   /* [n, C] gradient of the residual stream */
    float *dxn;    /* [n, C] gradient of a norm output */
    float *dqkv;   /* [n, QKV] */
    float *datty;  /* [n, C] */
    float *dh;     /* [n, H] */
    float *dgu;    /* [n, 2H] */
    float *lora_g; /* [n, 3 r] s * dy B of a group's adapters */
    float *lora_x; /* [n, max in] regenerated dropout(x) */
    float *lora_dx; /* [n, max in] */
} grad_scratch;

struct lt_model {
    lt_model_config c;
    const lt_ops *ops;
    int C, H, KV, HD, QKV;

    lt_param_table base_tab;
    float *base;
    const float *tok_emb, *final_norm, *cls;
    lt_layer_weights *resident; /* per layer, into base (norms only when quantized) */
    lt_model_hooks hooks;

    /* quantized base: the same layout in every layer's blob */
    int quantized;
    lt_quant_config qc;
    lt_qtensor qt[LT_MOD_COUNT];
    uint64_t blob_bytes;
    int shard_rank, shard_count;
    uint64_t shard_bytes; /* per layer stored: blob_bytes padded / shard_count */
    uint8_t *qbase;       /* [n_layers * shard_bytes] */
    float *ws;            /* one layer's linears in fp32, laid out as the fp32 base */
    int ws_layer;         /* the layer ws holds, -1 for none */

    /* LoRA */
    int has_lora, merged;
    lt_lora_config lc;
    float scale;
    lt_param_table lora_tab;
    float *lora, *lora_grad;
    int64_t (*lora_a)[LT_MOD_COUNT]; /* offsets into lora, -1 if absent */
    int64_t (*lora_b)[LT_MOD_COUNT];
    uint64_t dropout_seed, dropout_step, dropout_row0; /* row0: this rank's first token */

    /* full fine-tuning: every base weight trains; its gradient has the
     * base table's layout */
    int full;
    float *base_grad;
    /* gradient checkpointing: each layer keeps its input, the rest of its
     * activations are one set shared by all layers and recomputed in
     * backward */
    int checkpointing;

    /* activations, sized for cap_B x cap_T */
    int cap_B, cap_T, chunk;
    float *act_mem, *scratch_mem;
    layer_acts *acts;
    float *x_final, *xf, *rstdf;
    float *logits;   /* logits_cap floats: [chunk, V] rows, or one vocabulary block */
    size_t logits_cap;
    float *ce_state; /* [chunk, LT_CE_STATE] */
    float *losses;   /* [n] */
    int32_t *tokens, *targets;
    grad_scratch g;
    float *rope_cos, *rope_sin;
};

/* ------------------------------------------------------------ creation */

static lt_status build_base_table(lt_model *m, int with_linears, lt_error *err) {
    lt_param_table *t = &m->base_tab;
    const int C = m->C, H = m->H, KV = m->KV, V = m->c.vocab_size;
    char name[LT_TENSOR_NAME_MAX];
    lt_status st;
#define ADD(layer, rows, cols, ...)                                        \
    do {                                                                   \
        snprintf(name, sizeof name, __VA_ARGS__);                          \
        if ((st = lt_table_add(t, name, layer, rows, cols, err)) != LT_OK) \
            return st;                                                     \
    } while (0)
    ADD(-1, V, C, "model.embed_tokens.weight");
    for (int l = 0; l < m->c.n_layers; l++) {
        ADD(l, 1, C, "model.layers.%d.input_layernorm.weight", l);
        /* Biases stay fp32 even with a quantized base (bitsandbytes keeps a
         * Linear's bias unquantized); q, k, v adjacent, one bias_add. */
        if (m->c.qkv_bias && !with_linears) {
            ADD(l, 1, C, "model.layers.%d.self_attn.q_proj.bias", l);
            ADD(l, 1, KV, "model.layers.%d.self_attn.k_proj.bias", l);
            ADD(l, 1, KV, "model.layers.%d.self_attn.v_proj.bias", l);
        }
        if (!with_linears) {
            ADD(l, 1, C, "model.layers.%d.post_attention_layernorm.weight", l);
            continue;
        }
        ADD(l, C, C, "model.layers.%d.self_attn.q_proj.weight", l);
        ADD(l, KV, C, "model.layers.%d.self_attn.k_proj.weight", l);
        ADD(l, KV, C, "model.layers.%d.self_attn.v_proj.weight", l);
        if (m->c.qkv_bias) {
            ADD(l, 1, C, "model.layers.%d.self_attn.q_proj.bias", l);
            ADD(l, 1, KV, "model.layers.%d.self_attn.k_proj.bias", l);
            ADD(l, 1, KV, "model.layers.%d.self_attn.v_proj.bias", l);
        }
        ADD(l, C, C, "model.layers.%d.self_attn.o_proj.weight", l);
        ADD(l, 1, C, "model.layers.%d.post_attention_layernorm.weight", l);
        ADD(l, H, C, "model.layers.%d.mlp.gate_proj.weight", l);
        ADD(l, H, C, "model.layers.%d.mlp.up_proj.weight", l);
        ADD(l, C, H, "model.layers.%d.mlp.down_proj.weight", l);
    }
    ADD(-1, 1, C, "model.norm.weight");
    if (!m->c.shared_classifier) ADD(-1, V, C, "lm_head.weight");
#undef ADD
    return LT_OK;
}

/* layer < 0: a global tensor named what; else model.layers.<layer>.<what>. */
static const float *base_ptr(const lt_model *m, int layer, const char *what) {
    char name[LT_TENSOR_NAME_MAX];
    if (layer < 0)
        snprintf(name, sizeof name, "%s", what);
    else
        snprintf(name, sizeof name, "model.layers.%d.%s", layer, what);
    const lt_tensor_desc *d = lt_table_find(&m->base_tab, name);
    return d ? m->base + d->offset : NULL;
}

/* Floats of one layer's linears in the fused layout: wqkv, wo, w13, w2. */
static size_t layer_linear_floats(const lt_model *m) {
    return (size_t)m->QKV * m->C + (size_t)m->C * m->C + 2u * (size_t)m->H * m->C +
           (size_t)m->C * m->H;
}

lt_status lt_quant_layer_layout(const lt_model_config *cfg, const lt_quant_config *qc,
                                lt_qtensor qt[LT_MOD_COUNT], uint64_t *blob_bytes, lt_error *err) {
    uint64_t at = 0;
    for (int mod = 0; mod < LT_MOD_COUNT; mod++) {
        int out, in;
        lt_module_shape(cfg, (lt_module)mod, &out, &in);
        lt_status st = lt_qtensor_layout(qc, out, in, at, &qt[mod], err);
        if (st != LT_OK) return st;
        at = qt[mod].end;
    }
    *blob_bytes = (at + 63) / 64 * 64;
    return LT_OK;
}

static void set_dims(lt_model *m, const lt_model_config *cfg) {
    m->c = *cfg;
    m->C = cfg->dim;
    m->H = cfg->hidden_dim;
    m->HD = lt_head_dim(cfg);
    m->KV = lt_kv_dim(cfg);
    m->QKV = m->C + 2 * m->KV;
}

/* A layer's blob padded to count shards of whole 64-byte lines. */
static uint64_t shard_bytes_of(uint64_t blob_bytes, int count) {
    const uint64_t unit = 64u * (uint64_t)count;
    return (blob_bytes + unit - 1) / unit * 64u;
}

static lt_status setup_quantized(lt_model *m, const lt_quant_config *qc, int rank, int count,
                                 lt_error *err) {
    lt_status st = lt_quant_layer_layout(&m->c, qc, m->qt, &m->blob_bytes, err);
    if (st != LT_OK) return st;
    m->quantized = 1;
    m->qc = *qc;
    m->shard_rank = rank;
    m->shard_count = count;
    m->shard_bytes = shard_bytes_of(m->blob_bytes, count);
    const size_t total = (size_t)m->shard_bytes * (size_t)m->c.n_layers;
    m->qbase = m->ops->alloc(m->ops, LT_MEM_QUANT_BASE, total);
    m->ws = m->ops->alloc(m->ops, LT_MEM_WORKSPACE, layer_linear_floats(m) * sizeof(float));
    m->ws_layer = -1;
    if (!m->qbase || !m->ws)
        return lt_fail(err, LT_ERR_NOMEM,
                       "model: cannot allocate %zu bytes of quantized base and its %zu-byte workspace",
                       total, layer_linear_floats(m) * sizeof(float));
    return LT_OK;
}

lt_status lt_model_create(const lt_model_config *cfg, const lt_ops *ops, lt_model **out,
                          lt_error *err) {
    return lt_model_create_quantized(cfg, NULL, ops, out, err);
}

lt_status lt_model_create_quantized(const lt_model_config *cfg, const lt_quant_config *qc,
                                    const lt_ops *ops, lt_model **out, lt_error *err) {
    return lt_model_create_sharded(cfg, qc, 0, 1, ops, out, err);
}

lt_status lt_model_create_sharded(const lt_model_config *cfg, const lt_quant_config *qc,
                                  int shard_rank, int shard_count, const lt_ops *ops,
                                  lt_model **out, lt_error *err) {
    *out = NULL;
    lt_status st = lt_model_config_validate(cfg, NULL, err);
    if (st != LT_OK) return st;
    if (qc && qc->format == LT_QUANT_NONE) qc = NULL;
    if (shard_count < 1 || shard_rank < 0 || shard_rank >= shard_count)
        return lt_fail(err, LT_ERR_INVALID, "model: shard %d of %d does not exist", shard_rank,
                       shard_count);
    if (shard_count > 1 && !qc)
        return lt_fail(err, LT_ERR_CONFIG,
                       "shard_base needs a quantized base (load_in_4bit or load_in_8bit); an fp32 "
                       "base is kept whole on every rank");
    lt_model *m = calloc(1, sizeof *m);
    if (!m) return lt_fail(err, LT_ERR_NOMEM, "model: cannot allocate the model structure");
    set_dims(m, cfg);
    m->ops = ops;
    lt_table_init(&m->base_tab);
    lt_table_init(&m->lora_tab);
    if ((st = build_base_table(m, qc == NULL, err)) != LT_OK) goto fail;
    if (qc && (st = setup_quantized(m, qc, shard_rank, shard_count, err)) != LT_OK) goto fail;
    m->base = ops->alloc(ops, LT_MEM_BASE_WEIGHTS, m->base_tab.numel * sizeof(float));
    m->resident = calloc((size_t)cfg->n_layers, sizeof *m->resident);
    if (!m->base || !m->resident) {
        st = lt_fail(err, LT_ERR_NOMEM, "model: cannot allocate %zu bytes of base weights",
                     m->base_tab.numel * sizeof(float));
        goto fail;
    }
    m->tok_emb = base_ptr(m, -1, "model.embed_tokens.weight");
    m->final_norm = base_ptr(m, -1, "model.norm.weight");
    m->cls = cfg->shared_classifier ? m->tok_emb : base_ptr(m, -1, "lm_head.weight");
    for (int l = 0; l < cfg->n_layers; l++) {
        lt_layer_weights *w = &m->resident[l];
        w->attn_norm = base_ptr(m, l, "input_layernorm.weight");
        w->ffn_norm = base_ptr(m, l, "post_attention_layernorm.weight");
        w->bqkv = cfg->qkv_bias ? base_ptr(m, l, "self_attn.q_proj.bias") : NULL;
        if (m->quantized) {
            w->wqkv = m->ws;
            w->wo = w->wqkv + (size_t)m->QKV * m->C;
            w->w13 = w->wo + (size_t)m->C * m->C;
            w->w2 = w->w13 + 2u * (size_t)m->H * m->C;
        } else {
            w->wqkv = base_ptr(m, l, "self_attn.q_proj.weight");
            w->wo = base_ptr(m, l, "self_attn.o_proj.weight");
            w->w13 = base_ptr(m, l, "mlp.gate_proj.weight");
            w->w2 = base_ptr(m, l, "mlp.down_proj.weight");
        }
    }
    *out = m;
    return LT_OK;
fail:
    lt_model_free(m);
    return st;
}

static void free_activations(lt_model *m) {
    const lt_ops *o = m->ops;
    o->free(o, m->act_mem);
    o->free(o, m->scratch_mem);
    o->free(o, m->rope_cos);
    o->free(o, m->rope_sin);
    free(m->acts);
    m->act_mem = m->scratch_mem = m->rope_cos = m->rope_sin = NULL;
    m->acts = NULL;
    m->cap_B = m->cap_T = 0;
}

void lt_model_free(lt_model *m) {
    if (!m) return;
    const lt_ops *o = m->ops;
    free_activations(m);
    o->free(o, m->base);
    o->free(o, m->qbase);
    o->free(o, m->ws);
    o->free(o, m->lora);
    o->free(o, m->lora_grad);
    o->free(o, m->base_grad);
    free(m->resident);
    free(m->lora_a);
    free(m->lora_b);
    lt_table_free(&m->base_tab);
    lt_table_free(&m->lora_tab);
    free(m);
}

const lt_model_config *lt_model_get_config(const lt_model *m) { return &m->c; }
const lt_ops *lt_model_get_ops(const lt_model *m) { return m->ops; }
const lt_param_table *lt_model_base_table(const lt_model *m) { return &m->base_tab; }
float *lt_model_base(lt_model *m) { return m->base; }
const lt_quant_config *lt_model_quant_config(const lt_model *m) {
    return m->quantized ? &m->qc : NULL;
}
const lt_qtensor *lt_model_qtensor(const lt_model *m, int mod) {
    return m->quantized && mod >= 0 && mod < LT_MOD_COUNT ? &m->qt[mod] : NULL;
}
const uint8_t *lt_model_layer_blob(const lt_model *m, int layer) {
    if (!m->quantized || layer < 0 || layer >= m->c.n_layers) return NULL;
    return m->qbase + (size_t)layer * m->shard_bytes;
}
uint64_t lt_model_shard_bytes(const lt_model *m) { return m->quantized ? m->shard_bytes : 0; }
int lt_model_shard_count(const lt_model *m) { return m->quantized ? m->shard_count : 1; }

void lt_model_base_memory(const lt_model *m, lt_base_memory *out) {
    memset(out, 0, sizeof *out);
    out->shard_count = 1;
    out->fp32_params = m->base_tab.numel;
    out->fp32_bytes = m->base_tab.numel * sizeof(float);
    if (!m->quantized) return;
    for (int mod = 0; mod < LT_MOD_COUNT; mod++)
        out->quant_params += (uint64_t)m->qt[mod].numel * (uint64_t)m->c.n_layers;
    out->quant_bytes = m->blob_bytes * (uint64_t)m->c.n_layers;
    out->quant_resident_bytes = m->shard_bytes * (uint64_t)m->c.n_layers;
    out->shard_count = m->shard_count;
    out->workspace_bytes = layer_linear_floats(m) * sizeof(float);
}

lt_status lt_plan_base_memory(const lt_model_config *cfg, const lt_quant_config *qc, int shard_count,
                              lt_base_memory *out, lt_error *err) {
    if (qc && qc->format == LT_QUANT_NONE) qc = NULL;
    if (shard_count < 1) return lt_fail(err, LT_ERR_INVALID, "plan: %d shards", shard_count);
    /* A model with its tables and layout but no buffers: the same code
     * that sizes a real one. */
    lt_model m;
    memset(&m, 0, sizeof m);
    set_dims(&m, cfg);
    lt_table_init(&m.base_tab);
    lt_status st = build_base_table(&m, qc == NULL, err);
    if (st == LT_OK && qc) {
        st = lt_quant_layer_layout(cfg, qc, m.qt, &m.blob_bytes, err);
        m.quantized = 1;
        m.shard_count = shard_count;
        m.shard_bytes = shard_bytes_of(m.blob_bytes, shard_count);
    }
    if (st == LT_OK) lt_model_base_memory(&m, out);
    lt_table_free(&m.base_tab);
    return st;
}

/* "model.layers.<l>.<block>.<module>.weight" -> (l, module), or -1. */
static int parse_linear_name(const lt_model *m, const char *name, int *layer) {
    int l = -1, used = 0;
    if (sscanf(name, "model.layers.%d.%n", &l, &used) != 1 || used == 0 || l < 0 ||
        l >= m->c.n_layers)
        return -1;
    for (int mod = 0; mod < LT_MOD_COUNT; mod++) {
        char want[64];
        snprintf(want, sizeof want, "%s.%s.weight", lt_module_block((lt_module)mod),
                 lt_module_name((lt_module)mod));
        if (!strcmp(name + used, want)) {
            *layer = l;
            return mod;
        }
    }
    return -1;
}

lt_status lt_model_set_base_tensor(lt_model *m, const char *name, const float *host, size_t count,
                                   lt_error *err) {
    const lt_tensor_desc *d = lt_table_find(&m->base_tab, name);
    if (d) {
        if (count != lt_tensor_numel(d))
            return lt_fail(err, LT_ERR_INVALID, "base tensor %s: %zu values, expected %d x %d", name,
                           count, d->rows, d->cols);
        m->ops->upload(m->ops, m->base + d->offset, host, count * sizeof(float));
        return LT_OK;
    }
    int layer = -1, mod = m->quantized ? parse_linear_name(m, name, &layer) : -1;
    if (mod < 0)
        return lt_fail(err, LT_ERR_INVALID, "base tensor %s: not a tensor of this model", name);
    const lt_qtensor *t = &m->qt[mod];
    if (count != (size_t)t->numel)
        return lt_fail(err, LT_ERR_INVALID, "base tensor %s: %zu values, expected %d x %d", name,
                       count, t->rows, t->cols);
    /* Quantize on the host into a buffer of just this tensor (its offsets
     * moved to start at 0), then move the bytes to where the backend keeps
     * the layer's blob. */
    lt_qtensor local = *t;
    local.codes -= t->begin, local.absmax -= t->begin, local.end -= t->begin;
    if (t->double_quant) local.absmax2 -= t->begin, local.offset -= t->begin;
    local.begin = 0;
    const size_t bytes = (size_t)local.end;
    uint8_t *staging = lt_alloc(LT_MEM_WORKSPACE, bytes);
    if (!staging)
        return lt_fail(err, LT_ERR_NOMEM, "quantizing %s: cannot allocate %zu bytes", name, bytes);
    lt_status st = lt_quantize(&local, host, staging, name, err);
    /* Keep the part of the tensor's bytes that falls in this model's shard. */
    const uint64_t lo = (uint64_t)m->shard_rank * m->shard_bytes, hi = lo + m->shard_bytes;
    const uint64_t from = t->begin > lo ? t->begin : lo, to = t->end < hi ? t->end : hi;
    if (st == LT_OK && from < to)
        m->ops->upload(m->ops, m->qbase + (size_t)layer * m->shard_bytes + (from - lo),
                       staging + (from - t->begin), (size_t)(to - from));
    lt_free(staging);
    if (layer == m->ws_layer) m->ws_layer = -1;
    return st;
}

int lt_model_base_tensor_needed(const lt_model *m, const char *name) {
    if (lt_table_find(&m->base_tab, name)) return 1;
    int layer = -1, mod = m->quantized ? parse_linear_name(m, name, &layer) : -1;
    if (mod < 0) return 1;
    const uint64_t lo = (uint64_t)m->shard_rank * m->shard_bytes, hi = lo + m->shard_bytes;
    return m->qt[mod].begin < hi && m->qt[mod].end > lo;
}

void lt_model_set_hooks(lt_model *m, const lt_model_hooks *hooks) {
    if (hooks)
        m->hooks = *hooks;
    else
        memset(&m->hooks, 0, sizeof m->hooks);
}

/* ---------------------------------------------------------------- LoRA */

lt_status lt_model_add_lora(lt_model *m, const lt_lora_config *lc, uint64_t seed, lt_error *err) {
    if (m->has_lora) return lt_fail(err, LT_ERR_INVALID, "model already has LoRA adapters");
    if (m->full)
        return lt_fail(err, LT_ERR_CONFIG,
                       "LoRA adapters on a model in full fine-tuning: it trains the base "
                       "weights themselves");
    lt_status st = lt_lora_config_validate(lc, &m->c, err);
    if (st != LT_OK) return st;
    const int L = m->c.n_layers;
    m->lora_a = malloc((size_t)L * sizeof *m->lora_a);
    m->lora_b = malloc((size_t)L * sizeof *m->lora_b);
    if (!m->lora_a || !m->lora_b) return lt_fail(err, LT_ERR_NOMEM, "LoRA: out of memory");
    /* Layer-major, so each layer's adapters form one contiguous bucket that
     * is final as soon as backward leaves the layer; within a layer all A
     * matrices in module order, then all B, so a group's A are adjacent. */
    char name[LT_TENSOR_NAME_MAX];
    for (int l = 0; l < L; l++) {
        for (int ab = 0; ab < 2; ab++)
            for (int mod = 0; mod < LT_MOD_COUNT; mod++) {
                int64_t *slot = ab ? &m->lora_b[l][mod] : &m->lora_a[l][mod];
                *slot = -1;
                if (!(lc->targets & (1u << mod))) continue;
                int out, in;
                lt_module_shape(&m->c, (lt_module)mod, &out, &in);
                snprintf(name, sizeof name, "model.layers.%d.%s.%s.lora_%c.weight", l,
                         lt_module_block((lt_module)mod), lt_module_name((lt_module)mod),
                         ab ? 'B' : 'A');
                st = ab ? lt_table_add(&m->lora_tab, name, l, out, lc->r, err)
                        : lt_table_add(&m->lora_tab, name, l, lc->r, in, err);
                if (st != LT_OK) return st;
                *slot = (int64_t)m->lora_tab.t[m->lora_tab.count - 1].offset;
            }
    }
    size_t bytes = m->lora_tab.numel * sizeof(float);
    const lt_ops *o = m->ops;
    m->lora = o->alloc(o, LT_MEM_LORA_PARAMS, bytes);
    m->lora_grad = o->alloc(o, LT_MEM_GRADS, bytes);
    float *host = malloc(bytes);
    if (!m->lora || !m->lora_grad || !host) {
        free(host);
        return lt_fail(err, LT_ERR_NOMEM, "LoRA: cannot allocate %zu bytes", bytes);
    }
    /* kaiming_uniform_(a=sqrt(5)) on A [r, in]: gain sqrt(2/(1+5)), bound
     * gain*sqrt(3/fan_in) = 1/sqrt(in). B stays zero. Each (layer, module)
     * draws from its own stream, so targeting another module does not
     * change the initial values of the others. */
    memset(host, 0, bytes);
    for (int l = 0; l < L; l++)
        for (int mod = 0; mod < LT_MOD_COUNT; mod++) {
            if (m->lora_a[l][mod] < 0) continue;
            int out, in;
            lt_module_shape(&m->c, (lt_module)mod, &out, &in);
            float bound = 1.0f / sqrtf((float)in);
            lt_rng rng;
            lt_rng_seed(&rng, seed, (uint64_t)l * LT_MOD_COUNT + (uint64_t)mod);
            float *A = host + m->lora_a[l][mod];
            for (size_t k = 0; k < (size_t)lc->r * (size_t)in; k++)
                A[k] = (2.0f * lt_rng_next_uniform(&rng) - 1.0f) * bound;
        }
    o->upload(o, m->lora, host, bytes);
    free(host);
    m->lc = *lc;
    m->scale = lt_lora_scale(lc);
    m->has_lora = 1;
    free_activations(m); /* re-sized with adapter activations on next use */
    return LT_OK;
}

const lt_lora_config *lt_model_lora_config(const lt_model *m) {
    return m->has_lora ? &m->lc : NULL;
}
float lt_model_lora_scale(const lt_model *m) { return m->has_lora ? m->scale : 0.0f; }
const lt_param_table *lt_model_lora_table(const lt_model *m) { return &m->lora_tab; }
float *lt_model_lora_params(lt_model *m) { return m->lora; }
float *lt_model_lora_grads(lt_model *m) { return m->lora_grad; }
void lt_model_zero_grads(lt_model *m) {
    if (m->has_lora) m->ops->zero(m->ops, m->lora_grad, m->lora_tab.numel * sizeof(float));
    if (m->full) m->ops->zero(m->ops, m->base_grad, m->base_tab.numel * sizeof(float));
}

lt_status lt_model_enable_full_training(lt_model *m, lt_error *err) {
    if (m->full) return LT_OK;
    if (m->quantized)
        return lt_fail(err, LT_ERR_CONFIG,
                       "finetuning_type full trains every weight in fp32, but the base is "
                       "quantized (%s): remove load_in_4bit/load_in_8bit, or use LoRA (QLoRA)",
                       lt_quant_format_name(m->qc.format));
    if (m->has_lora)
        return lt_fail(err, LT_ERR_CONFIG,
                       "finetuning_type full: the model has LoRA adapters; full fine-tuning "
                       "trains the base weights themselves");
    const size_t bytes = m->base_tab.numel * sizeof(float);
    m->base_grad = m->ops->alloc(m->ops, LT_MEM_GRADS, bytes);
    if (!m->base_grad)
        return lt_fail(err, LT_ERR_NOMEM, "full fine-tuning: cannot allocate %zu bytes of gradients",
                       bytes);
    m->full = 1;
    return LT_OK;
}

int lt_model_is_full_training(const lt_model *m) { return m->full; }

const lt_param_table *lt_model_train_table(const lt_model *m) {
    return m->full ? &m->base_tab : &m->lora_tab;
}
float *lt_model_train_params(lt_model *m) { return m->full ? m->base : m->lora; }
float *lt_model_train_grads(lt_model *m) { return m->full ? m->base_grad : m->lora_grad; }

void lt_model_set_gradient_checkpointing(lt_model *m, int on) {
    if (m->checkpointing == !!on) return;
    m->checkpointing = !!on;
    free_activations(m); /* re-laid out on next use */
}
int lt_model_gradient_checkpointing(const lt_model *m) { return m->checkpointing; }
int lt_model_lora_is_merged(const lt_model *m) { return m->merged; }
void lt_model_set_dropout_state(lt_model *m, uint64_t seed, uint64_t step, uint64_t first_token) {
    m->dropout_seed = seed;
    m->dropout_step = step;
    m->dropout_row0 = first_token;
}

/* Where module mod's output columns start within its group's output rows
 * (q, k, v share the qkv GEMM; gate, up the gate_up GEMM). */
static int module_col(const lt_model *m, int mod) {
    switch (mod) {
    case LT_MOD_K: return m->C;
    case LT_MOD_V: return m->C + m->KV;
    case LT_MOD_UP: return m->H;
    default: return 0;
    }
}

/* Base weight rows of module mod within the fused layout of layer l: the
 * fp32 base, or the dequantization workspace when the base is quantized. */
static float *module_weight(lt_model *m, int l, int mod) {
    const lt_layer_weights *w = &m->resident[l];
    const float *group = mod <= LT_MOD_V ? w->wqkv : mod == LT_MOD_O ? w->wo
                       : mod <= LT_MOD_UP ? w->w13 : w->w2;
    int out, in;
    lt_module_shape(&m->c, (lt_module)mod, &out, &in);
    return (float *)(uintptr_t)(group + (size_t)module_col(m, mod) * (size_t)in);
}

lt_status lt_model_merge_lora(lt_model *m, int unmerge, lt_error *err) {
    if (!m->has_lora) return lt_fail(err, LT_ERR_INVALID, "merge: the model has no LoRA adapters");
    if (m->merged == !unmerge)
        return lt_fail(err, LT_ERR_INVALID, "merge: adapters are already %s",
                       unmerge ? "unmerged" : "merged");
    if (m->quantized)
        return lt_fail(err, LT_ERR_UNSUPPORTED,
                       "merge: the base is quantized (%s); merge into the fp32 base model instead",
                       lt_quant_format_name(m->qc.format));
    const float s = unmerge ? -m->scale : m->scale;
    for (int l = 0; l < m->c.n_layers; l++)
        for (int mod = 0; mod < LT_MOD_COUNT; mod++) {
            if (m->lora_a[l][mod] < 0) continue;
            int out, in;
            lt_module_shape(&m->c, (lt_module)mod, &out, &in);
            /* W[out, in] += s * B[out, r] A[r, in] */
            m->ops->gemm(m->ops, 0, 0, out, in, m->lc.r, s, m->lora + m->lora_b[l][mod], m->lc.r,
                         m->lora + m->lora_a[l][mod], in, 1.0f, module_weight(m, l, mod), in);
        }
    m->merged = !unmerge;
    return LT_OK;
}

/* --------------------------------------------------------- activations */

static size_t layer_act_floats(const lt_model_config *c, const lt_lora_config *lc, size_t n,
                               size_t B, size_t T) {
    const size_t C = (size_t)c->dim, H = (size_t)c->hidden_dim, QKV = C + 2u * (size_t)lt_kv_dim(c);
    size_t per = n * (5u * C + QKV + 3u * H) + 2 * n + B * (size_t)c->n_heads * T;
    if (lc) per += (size_t)__builtin_popcount(lc->targets) * n * (size_t)lc->r;
    return per;
}

/* What lt_model_reserve allocates for B x T (floats), so the planner and
 * the model cannot disagree: saved activations, backward scratch, the
 * logits (a chunk's rows, or one block of them) and the RoPE tables. */
typedef struct {
    size_t act, ints, scratch, chunk, logits, rope;
} act_sizes;

/* Logits per block of the blocked loss: 4 MiB, about a core's share of L3. */
#define CE_BLOCK_FLOATS ((size_t)1 << 20)

/* Vocabulary columns per block for `rows` rows, whole 64-byte vectors. */
static int ce_block_cols(size_t rows, int V) {
    int nb = (int)(CE_BLOCK_FLOATS / rows) / 16 * 16;
    return nb < 16 ? 16 : nb > V ? V : nb;
}

static act_sizes activation_sizes(const lt_model_config *c, const lt_lora_config *lc, size_t B,
                                  size_t T, int checkpointing) {
    act_sizes s;
    const size_t n = B * T, C = (size_t)c->dim, H = (size_t)c->hidden_dim, V = (size_t)c->vocab_size;
    const size_t L = (size_t)c->n_layers, r = lc ? (size_t)lc->r : 0;
    const size_t QKV = C + 2u * (size_t)lt_kv_dim(c);
    /* Logits exist only a chunk of rows at a time (fused with the loss), so
     * the [n, V] tensor never has to fit in memory. 64 MiB chunks: smaller
     * ones make each classifier GEMM re-pack the whole [V, C] weight for too
     * few rows (measured: 32 rows 82 GFLOP/s, 512 rows 102, stories15M). */
    s.chunk = ((size_t)16 << 20) / V;
    s.chunk = s.chunk < 16 ? 16 : s.chunk;
    s.chunk = s.chunk > n ? n : s.chunk;
    /* With LoRA, training and evaluation take the logits one vocabulary
     * block at a time (head_loss_blocked), and rows x ce_block_cols(rows)
     * is at most max(CE_BLOCK_FLOATS, 16 rows). Full fine-tuning's loss needs whole
     * rows of the chunk; lt_model_logits needs one row at least, and takes
     * as many rows at a time as the buffer holds. */
    s.logits = s.chunk * V;
    if (lc) {
        size_t blk = CE_BLOCK_FLOATS;
        blk = blk > s.chunk * 16 ? blk : s.chunk * 16;
        blk = blk > V ? blk : V;
        s.logits = blk < s.logits ? blk : s.logits;
    }
    /* Checkpointing keeps every layer's input and one layer's worth of the
     * rest, which backward recomputes layer by layer. */
    const size_t layers = checkpointing ? L * n * C + layer_act_floats(c, lc, n, B, T) - n * C
                                        : L * layer_act_floats(c, lc, n, B, T);
    s.act = layers + 3 * n * C + n + s.logits + s.chunk * LT_CE_STATE + n;
    s.ints = 2 * n; /* tokens and targets, stored as int32 in float slots */
    /* Regenerated dropout inputs need room only when dropout is on. */
    const size_t max_in = lc && lc->dropout > 0.0f ? (H > C ? H : C) : 0;
    s.scratch = 3 * n * C + n * QKV + 3 * n * H + 3 * n * r + 2 * n * max_in;
    s.rope = 2 * T * ((size_t)lt_head_dim(c) / 2);
    return s;
}

void lt_model_activation_bytes(const lt_model_config *cfg, const lt_lora_config *lc, int B, int T,
                               int checkpointing, uint64_t *activations, uint64_t *rope_bytes) {
    act_sizes s = activation_sizes(cfg, lc, (size_t)B, (size_t)T, checkpointing);
    *activations = (uint64_t)(s.act + s.ints + s.scratch) * sizeof(float);
    *rope_bytes = (uint64_t)s.rope * sizeof(float);
}

lt_status lt_model_reserve(lt_model *m, int B, int T, lt_error *err) {
    if (B < 1 || T < 1)
        return lt_fail(err, LT_ERR_INVALID, "batch %d x %d: both must be at least 1", B, T);
    if (T > m->c.seq_len)
        return lt_fail(err, LT_ERR_INVALID,
                       "sequence length %d exceeds the model's seq_len %d", T, m->c.seq_len);
    if (m->act_mem && B <= m->cap_B && T <= m->cap_T) return LT_OK;
    if (m->act_mem) {
        B = B > m->cap_B ? B : m->cap_B;
        T = T > m->cap_T ? T : m->cap_T;
    }
    free_activations(m);
    const lt_ops *o = m->ops;
    const size_t n = (size_t)B * T, C = m->C, H = m->H;
    const size_t L = m->c.n_layers, r = m->has_lora ? (size_t)m->lc.r : 0;
    const act_sizes sz = activation_sizes(&m->c, m->has_lora ? &m->lc : NULL, (size_t)B, (size_t)T,
                                          m->checkpointing);
    const size_t chunk = sz.chunk, act_floats = sz.act, int_floats = sz.ints, scratch_floats = sz.scratch;
    const size_t max_in = m->has_lora && m->lc.dropout > 0.0f ? (H > C ? H : C) : 0;
    const size_t half = (size_t)m->HD / 2;
    m->chunk = (int)chunk;
    m->logits_cap = sz.logits;
    m->act_mem = o->alloc(o, LT_MEM_ACTIVATIONS, (act_floats + int_floats) * sizeof(float));
    m->scratch_mem = o->alloc(o, LT_MEM_ACTIVATIONS, scratch_floats * sizeof(float));
    m->acts = calloc(L, sizeof *m->acts);
    m->rope_cos = o->alloc(o, LT_MEM_WORKSPACE, (size_t)T * half * sizeof(float));
    m->rope_sin = o->alloc(o, LT_MEM_WORKSPACE, (size_t)T * half * sizeof(float));
    if (!m->act_mem || !m->scratch_mem || !m->acts || !m->rope_cos || !m->rope_sin) {
        free_activations(m);
        return lt_fail(err, LT_ERR_NOMEM, "activations for batch %d x %d: cannot allocate %zu MiB",
                       B, T, (act_floats + scratch_floats) * sizeof(float) >> 20);
    }
    float *p = m->act_mem;
#define TAKE(dst, count) \
    do {                 \
        (dst) = p;       \
        p += (count);    \
    } while (0)
    for (size_t l = 0; l < L; l++) {
        layer_acts *a = &m->acts[l];
        if (m->checkpointing && l > 0) { /* all but x shared with layer 0 */
            *a = m->acts[0];
            TAKE(a->x, n * C);
            continue;
        }
        TAKE(a->x, n * C);
        TAKE(a->xn1, n * C);
        TAKE(a->rstd1, n);
        TAKE(a->qkv, n * m->QKV);
        TAKE(a->lse, (size_t)B * m->c.n_heads * T);
        TAKE(a->atty, n * C);
        TAKE(a->res, n * C);
        TAKE(a->xn2, n * C);
        TAKE(a->rstd2, n);
        TAKE(a->gu, n * 2 * H);
        TAKE(a->h, n * H);
        for (int grp = 0; grp < LORA_GROUPS; grp++) {
            a->lora_u[grp] = NULL;
            int width = 0;
            for (int mod = 0; mod < LT_MOD_COUNT; mod++)
                width += m->has_lora && k_group_of[mod] == grp && (m->lc.targets & (1u << mod));
            if (width) TAKE(a->lora_u[grp], n * r * width);
        }
    }
    TAKE(m->x_final, n * C);
    TAKE(m->xf, n * C);
    TAKE(m->rstdf, n);
    TAKE(m->logits, sz.logits);
    TAKE(m->ce_state, chunk * LT_CE_STATE);
    TAKE(m->losses, n);
    m->tokens = (int32_t *)p;
    p += n;
    m->targets = (int32_t *)p;
    p += n;
    p = m->scratch_mem;
    TAKE(m->g.dres, n * C);
    TAKE(m->g.dxn, n * C);
    TAKE(m->g.dqkv, n * m->QKV);
    TAKE(m->g.datty, n * C);
    TAKE(m->g.dh, n * H);
    TAKE(m->g.dgu, n * 2 * H);
    TAKE(m->g.lora_g, n * 3 * r);
    TAKE(m->g.lora_x, n * max_in);
    TAKE(m->g.lora_dx, n * max_in);
#undef TAKE
    /* RoPE angles in float like llama2.c and Hugging Face compute them
     * (inverse frequency and pos * inv_freq rounded to float), so positions
     * far into the context rotate exactly as in training. */
    float *hc = malloc((size_t)T * half * sizeof(float)), *hs = malloc((size_t)T * half * sizeof(float));
    if (!hc || !hs) {
        free(hc);
        free(hs);
        free_activations(m);
        return lt_fail(err, LT_ERR_NOMEM, "RoPE tables: out of memory");
    }
    for (size_t i = 0; i < half; i++) {
        float inv_freq = 1.0f / powf(m->c.rope_theta, (float)(2 * i) / (float)m->HD);
        for (int pos = 0; pos < T; pos++) {
            float angle = (float)pos * inv_freq;
            hc[(size_t)pos * half + i] = (float)cos((double)angle);
            hs[(size_t)pos * half + i] = (float)sin((double)angle);
        }
    }
    o->upload(o, m->rope_cos, hc, (size_t)T * half * sizeof(float));
    o->upload(o, m->rope_sin, hs, (size_t)T * half * sizeof(float));
    free(hc);
    free(hs);
    m->cap_B = B;
    m->cap_T = T;
    return LT_OK;
}

/* ------------------------------------------------------------- forward */

/* next: the layer wanted after this one, for the shard gather's prefetch. */
static lt_status acquire(lt_model *m, int l, int next, lt_layer_weights *w, lt_error *err) {
    *w = m->resident[l];
    /* The last layer of the forward pass is the first of the backward:
     * the workspace still holds it. */
    if (m->quantized && m->ws_layer != l) {
        const uint8_t *blob = m->qbase + (size_t)l * m->shard_bytes;
        if (m->shard_count > 1) {
            if (!m->hooks.acquire_layer)
                return lt_fail(err, LT_ERR_INVALID,
                               "model: the base is sharded %d ways but no acquire_layer hook "
                               "gathers its layers", m->shard_count);
            lt_status st = m->hooks.acquire_layer(m->hooks.user, l, next, &blob, err);
            if (st != LT_OK) return st;
        }
        for (int mod = 0; mod < LT_MOD_COUNT; mod++)
            m->ops->dequantize(m->ops, module_weight(m, l, mod), blob, &m->qt[mod]);
        m->ws_layer = l;
    }
    return LT_OK;
}

static uint64_t dropout_key(const lt_model *m, int l, int mod) {
    uint64_t stream = ((m->dropout_step * (uint64_t)m->c.n_layers + (uint64_t)l) << 3) | (uint64_t)mod;
    return lt_rng_key(m->dropout_seed, stream);
}

static int lora_on(const lt_model *m, int l, int mod) {
    return m->has_lora && !m->merged && m->lora_a[l][mod] >= 0;
}

/* Adapter input: x itself, or dropout(x) regenerated into scratch. */
static const float *lora_input(lt_model *m, int l, int mod, const float *x, int n, int in,
                               int train) {
    if (!train || m->lc.dropout <= 0.0f) return x;
    m->ops->dropout(m->ops, m->g.lora_x, x, n, in, m->lc.dropout, dropout_key(m, l, mod),
                    m->dropout_row0, 0);
    return m->g.lora_x;
}

/* A group's targeted modules, in order (the order of their A matrices). */
static int group_modules(const lt_model *m, int l, int grp, int mods[3]) {
    int k = 0;
    for (int mod = 0; mod < LT_MOD_COUNT; mod++)
        if (k_group_of[mod] == grp && lora_on(m, l, mod)) mods[k++] = mod;
    return k;
}

/* For every adapter of group grp: y[:, col(mod)] += s dropout(x) A^T B^T
 * (row stride ldy), keeping u = dropout(x) A^T for the backward pass
 * (y NULL: only u, when backward recomputes a checkpointed layer). */
static void lora_fwd(lt_model *m, layer_acts *a, int l, int grp, const float *x, float *y,
                     int ldy, int n, int train) {
    int mods[3];
    const int k = group_modules(m, l, grp, mods), r = m->lc.r, w = k * r;
    if (!k) return;
    const lt_ops *o = m->ops;
    int out, in;
    lt_module_shape(&m->c, (lt_module)mods[0], &out, &in);
    float *u = a->lora_u[grp];
    if (!train || m->lc.dropout <= 0.0f) {
        o->gemm(o, 0, 1, n, w, in, 1.0f, x, in, m->lora + m->lora_a[l][mods[0]], in, 0.0f, u, w);
    } else {
        for (int i = 0; i < k; i++) {
            const float *xd = lora_input(m, l, mods[i], x, n, in, train);
            o->gemm(o, 0, 1, n, r, in, 1.0f, xd, in, m->lora + m->lora_a[l][mods[i]], in, 0.0f,
                    u + i * r, w);
        }
    }
    for (int i = 0; i < k && y; i++) {
        lt_module_shape(&m->c, (lt_module)mods[i], &out, &in);
        o->gemm(o, 0, 1, n, out, r, m->scale, u + i * r, w, m->lora + m->lora_b[l][mods[i]], r,
                1.0f, y + module_col(m, mods[i]), ldy);
    }
}

/* recompute: backward re-runs a checkpointed layer for its activations;
 * the layer's output (the next layer's input, kept) is not written again. */
static void layer_forward(lt_model *m, int l, const lt_layer_weights *w, int B, int T,
                          int train, int recompute) {
    const lt_ops *o = m->ops;
    const int n = B * T, C = m->C, H = m->H, QKV = m->QKV;
    layer_acts *a = &m->acts[l];
    float *xout = l + 1 < m->c.n_layers ? m->acts[l + 1].x : m->x_final;

    o->rmsnorm_fwd(o, a->xn1, a->rstd1, a->x, w->attn_norm, n, C, m->c.norm_eps);
    o->gemm(o, 0, 1, n, QKV, C, 1.0f, a->xn1, C, w->wqkv, C, 0.0f, a->qkv, QKV);
    if (w->bqkv) o->bias_add(o, a->qkv, w->bqkv, n, QKV);
    lora_fwd(m, a, l, 0, a->xn1, a->qkv, QKV, n, train);
    o->rope(o, a->qkv, QKV, B, T, m->c.n_heads, m->HD, m->rope_cos, m->rope_sin,
            m->c.rope_layout, 0);
    o->rope(o, a->qkv + C, QKV, B, T, m->c.n_kv_heads, m->HD, m->rope_cos, m->rope_sin,
            m->c.rope_layout, 0);
    o->attention_fwd(o, a->atty, a->lse, a->qkv, B, T, m->c.n_heads, m->c.n_kv_heads, m->HD);
    /* res = x + atty Wo^T: the residual is the GEMM's C operand (beta 1). */
    o->copy(o, a->res, a->x, (size_t)n * C * sizeof(float));
    o->gemm(o, 0, 1, n, C, C, 1.0f, a->atty, C, w->wo, C, 1.0f, a->res, C);
    lora_fwd(m, a, l, 1, a->atty, a->res, C, n, train);

    o->rmsnorm_fwd(o, a->xn2, a->rstd2, a->res, w->ffn_norm, n, C, m->c.norm_eps);
    o->gemm(o, 0, 1, n, 2 * H, C, 1.0f, a->xn2, C, w->w13, C, 0.0f, a->gu, 2 * H);
    lora_fwd(m, a, l, 2, a->xn2, a->gu, 2 * H, n, train);
    o->swiglu_fwd(o, a->h, a->gu, n, H);
    if (recompute) {
        lora_fwd(m, a, l, 3, a->h, NULL, C, n, train);
        return;
    }
    o->copy(o, xout, a->res, (size_t)n * C * sizeof(float));
    o->gemm(o, 0, 1, n, C, H, 1.0f, a->h, H, w->w2, H, 1.0f, xout, C);
    lora_fwd(m, a, l, 3, a->h, xout, C, n, train);
}

static lt_status check_tokens(const lt_model *m, const int32_t *ids, int64_t count,
                              int allow_ignore, const char *what, lt_error *err) {
    for (int64_t i = 0; i < count; i++) {
        int32_t t = ids[i];
        if (allow_ignore && t == LT_IGNORE_INDEX) continue;
        if (t < 0 || t >= m->c.vocab_size)
            return lt_fail(err, LT_ERR_INVALID, "%s[%lld] = %d: expected a token id in 0..%d%s",
                           what, (long long)i, t, m->c.vocab_size - 1,
                           allow_ignore ? " or -100 (ignored)" : "");
    }
    return LT_OK;
}

/* Embedding and all layers; leaves the final-norm output in m->xf. */
static lt_status forward_body(lt_model *m, const int32_t *tokens, int B, int T, int train,
                              lt_error *err) {
    lt_status st = lt_model_reserve(m, B, T, err);
    if (st != LT_OK) return st;
    if ((st = check_tokens(m, tokens, (int64_t)B * T, 0, "tokens", err)) != LT_OK) return st;
    const lt_ops *o = m->ops;
    const int n = B * T;
    o->upload(o, m->tokens, tokens, (size_t)n * sizeof(int32_t));
    o->embedding_fwd(o, m->acts[0].x, m->tokens, m->tok_emb, n, m->C);
    for (int l = 0; l < m->c.n_layers; l++) {
        lt_layer_weights w;
        /* After the last layer: backward starts on it (still in the
         * workspace) and then wants the one below; any later forward starts
         * at layer 0. */
        const int L = m->c.n_layers;
        int next = l + 1 < L ? l + 1 : (train ? L - 2 : (L > 1 ? 0 : -1));
        if ((st = acquire(m, l, next, &w, err)) != LT_OK) return st;
        layer_forward(m, l, &w, B, T, train, 0);
    }
    o->rmsnorm_fwd(o, m->xf, m->rstdf, m->x_final, m->final_norm, n, m->C, m->c.norm_eps);
    return o->check(o, err);
}

lt_status lt_model_logits(lt_model *m, const int32_t *tokens, int B, int T, int last_only,
                          float *logits, lt_error *err) {
    lt_status st = forward_body(m, tokens, B, T, 0, err);
    if (st != LT_OK) return st;
    const lt_ops *o = m->ops;
    const int V = m->c.vocab_size, C = m->C;
    if (last_only) {
        for (int b = 0; b < B; b++) {
            const float *row = m->xf + ((size_t)b * T + T - 1) * C;
            o->gemm(o, 0, 1, 1, V, C, 1.0f, row, C, m->cls, C, 0.0f, m->logits, V);
            o->download(o, logits + (size_t)b * V, m->logits, (size_t)V * sizeof(float));
        }
        return LT_OK;
    }
    const int n = B * T;
    const size_t fit = m->logits_cap / V;
    const int step = fit < (size_t)m->chunk ? (int)fit : m->chunk;
    for (int r0 = 0; r0 < n; r0 += step) {
        int rows = n - r0 < step ? n - r0 : step;
        o->gemm(o, 0, 1, rows, V, C, 1.0f, m->xf + (size_t)r0 * C, C, m->cls, C, 0.0f, m->logits, V);
        o->download(o, logits + (size_t)r0 * V, m->logits, (size_t)rows * V * sizeof(float));
    }
    return LT_OK;
}

/* The gradient buffer's twin of base weight w (full fine-tuning). */
static float *grad_of(lt_model *m, const float *w) { return m->base_grad + (w - m->base); }

/* The classifier and loss a block of vocabulary columns at a time (ops
 * ce_block / ce_finish): each block's logits, their exp, and the input
 * gradient's GEMM over them stay in cache, where a whole chunk's logits
 * (64 MiB) went through memory six times (the GEMM's zeroing and its
 * accumulate, the softmax's read and write, the second GEMM's read). */
static void head_loss_blocked(lt_model *m, int n, float grad_scale, float *grad_out) {
    const lt_ops *o = m->ops;
    const int V = m->c.vocab_size, C = m->C;
    for (int r0 = 0; r0 < n; r0 += m->chunk) {
        const int rows = n - r0 < m->chunk ? n - r0 : m->chunk;
        const int nb = ce_block_cols((size_t)rows, V);
        const float *x = m->xf + (size_t)r0 * C;
        float *dx = grad_out ? grad_out + (size_t)r0 * C : NULL;
        for (int v0 = 0; v0 < V; v0 += nb) {
            const int cols = V - v0 < nb ? V - v0 : nb;
            const float *w = m->cls + (size_t)v0 * C;
            o->gemm(o, 0, 1, rows, cols, C, 1.0f, x, C, w, C, 0.0f, m->logits, cols);
            o->ce_block(o, m->logits, cols, rows, cols, v0, m->targets + r0, m->ce_state, dx, C,
                        dx != NULL);
            if (dx)
                o->gemm(o, 0, 0, rows, C, cols, 1.0f, m->logits, cols, w, C, v0 ? 1.0f : 0.0f, dx, C);
        }
        o->ce_finish(o, m->losses + r0, m->ce_state, m->targets + r0, rows, grad_scale, dx, C, m->cls);
    }
}

/* Classifier and cross-entropy over chunks of rows, so [n, V] logits are
 * never materialised; with grad_out, d(loss)/d(xf) into grad_out. Full
 * fine-tuning takes whole rows of logits: the classifier's own gradient
 * needs each block's probabilities normalised, which the blocked path
 * knows only after its last block. */
static void head_loss(lt_model *m, int n, float grad_scale, float *grad_out) {
    if (!grad_out || !m->full) {
        head_loss_blocked(m, n, grad_scale, grad_out);
        return;
    }
    const lt_ops *o = m->ops;
    const int V = m->c.vocab_size, C = m->C;
    for (int r0 = 0; r0 < n; r0 += m->chunk) {
        int rows = n - r0 < m->chunk ? n - r0 : m->chunk;
        o->gemm(o, 0, 1, rows, V, C, 1.0f, m->xf + (size_t)r0 * C, C, m->cls, C, 0.0f, m->logits, V);
        o->cross_entropy(o, m->logits, m->losses + r0, m->targets + r0, rows, V, grad_scale, 1);
        o->gemm(o, 0, 0, rows, C, V, 1.0f, m->logits, V, m->cls, C, 0.0f,
                grad_out + (size_t)r0 * C, C);
        /* dcls [V, C] += dlogits^T xf */
        o->gemm(o, 1, 0, V, C, rows, 1.0f, m->logits, V, m->xf + (size_t)r0 * C, C, 1.0f,
                grad_of(m, m->cls), C);
    }
}

static lt_status sum_losses(lt_model *m, const int32_t *targets, int n, double *loss_sum,
                            int64_t *n_targets, lt_error *err) {
    float *host = malloc((size_t)n * sizeof(float));
    if (!host) return lt_fail(err, LT_ERR_NOMEM, "loss: out of memory");
    m->ops->download(m->ops, host, m->losses, (size_t)n * sizeof(float));
    double s = 0.0;
    int64_t count = 0;
    for (int i = 0; i < n; i++)
        if (targets[i] != LT_IGNORE_INDEX) {
            s += host[i];
            count++;
        }
    free(host);
    *loss_sum = s;
    *n_targets = count;
    return LT_OK;
}

static lt_status prepare_targets(lt_model *m, const int32_t *targets, int n, lt_error *err) {
    lt_status st = check_tokens(m, targets, n, 1, "targets", err);
    if (st != LT_OK) return st;
    m->ops->upload(m->ops, m->targets, targets, (size_t)n * sizeof(int32_t));
    return LT_OK;
}

lt_status lt_model_loss(lt_model *m, const int32_t *inputs, const int32_t *targets, int B, int T,
                        double *loss_sum, int64_t *n_targets, lt_error *err) {
    lt_status st = forward_body(m, inputs, B, T, 0, err);
    if (st != LT_OK) return st;
    const int n = B * T;
    if ((st = prepare_targets(m, targets, n, err)) != LT_OK) return st;
    head_loss(m, n, 0.0f, NULL);
    return sum_losses(m, targets, n, loss_sum, n_targets, err);
}

/* ------------------------------------------------------------ backward */

/* Given dy = d(loss)/d(group output) (row stride ldy), for every adapter
 * of group grp: dB += s dy^T u, dA += (s dy B)^T dropout(x), and, when dx
 * is non-NULL, dx += the adapters' share of d(loss)/dx. */
static void lora_bwd(lt_model *m, layer_acts *a, int l, int grp, const float *x, const float *dy,
                     int ldy, float *dx, int n) {
    int mods[3];
    const int k = group_modules(m, l, grp, mods), r = m->lc.r, w = k * r;
    if (!k) return;
    const lt_ops *o = m->ops;
    int out, in;
    float *g = m->g.lora_g;
    const float *u = a->lora_u[grp];
    for (int i = 0; i < k; i++) {
        const int mod = mods[i];
        lt_module_shape(&m->c, (lt_module)mod, &out, &in);
        const float *dyi = dy + module_col(m, mod);
        o->gemm(o, 1, 0, out, r, n, m->scale, dyi, ldy, u + i * r, w, 1.0f,
                m->lora_grad + m->lora_b[l][mod], r);
        o->gemm(o, 0, 0, n, r, out, m->scale, dyi, ldy, m->lora + m->lora_b[l][mod], r, 0.0f,
                g + i * r, w);
    }
    const float *A = m->lora + m->lora_a[l][mods[0]];
    float *dA = m->lora_grad + m->lora_a[l][mods[0]];
    if (m->lc.dropout <= 0.0f) {
        o->gemm(o, 1, 0, w, in, n, 1.0f, g, w, x, in, 1.0f, dA, in);
        if (dx) o->gemm(o, 0, 0, n, in, w, 1.0f, g, w, A, in, 1.0f, dx, in);
        return;
    }
    for (int i = 0; i < k; i++) {
        const int mod = mods[i];
        const float *xd = lora_input(m, l, mod, x, n, in, 1);
        o->gemm(o, 1, 0, r, in, n, 1.0f, g + i * r, w, xd, in, 1.0f,
                m->lora_grad + m->lora_a[l][mod], in);
        if (!dx) continue;
        o->gemm(o, 0, 0, n, in, r, 1.0f, g + i * r, w, m->lora + m->lora_a[l][mod], in, 0.0f,
                m->g.lora_dx, in);
        o->dropout(o, dx, m->g.lora_dx, n, in, m->lc.dropout, dropout_key(m, l, mod),
                      m->dropout_row0, 1);
    }
}

/* On entry g.dres holds d(loss)/d(layer output); on exit d(loss)/d(layer
 * input) when need_dx (the first layer's input gradient is needed only
 * when the embedding trains). In full fine-tuning each weight's gradient
 * (dW += dy^T x) is accumulated right after the GEMM that used dy. */
static void layer_backward(lt_model *m, int l, const lt_layer_weights *w, int B, int T,
                           int need_dx) {
    const lt_ops *o = m->ops;
    const int n = B * T, C = m->C, H = m->H, QKV = m->QKV;
    layer_acts *a = &m->acts[l];
    grad_scratch *g = &m->g;

    const int full = m->full;

    /* MLP branch: out = res + h W2^T */
    o->gemm(o, 0, 0, n, H, C, 1.0f, g->dres, C, w->w2, H, 0.0f, g->dh, H);
    if (full) o->gemm(o, 1, 0, C, H, n, 1.0f, g->dres, C, a->h, H, 1.0f, grad_of(m, w->w2), H);
    lora_bwd(m, a, l, 3, a->h, g->dres, C, g->dh, n);
    o->swiglu_bwd(o, g->dgu, g->dh, a->gu, n, H);
    o->gemm(o, 0, 0, n, C, 2 * H, 1.0f, g->dgu, 2 * H, w->w13, C, 0.0f, g->dxn, C);
    if (full)
        o->gemm(o, 1, 0, 2 * H, C, n, 1.0f, g->dgu, 2 * H, a->xn2, C, 1.0f, grad_of(m, w->w13), C);
    lora_bwd(m, a, l, 2, a->xn2, g->dgu, 2 * H, g->dxn, n);
    o->rmsnorm_bwd(o, g->dres, full ? grad_of(m, w->ffn_norm) : NULL, g->dxn, a->res, w->ffn_norm,
                   a->rstd2, n, C);

    /* attention branch: res = x + atty Wo^T */
    o->gemm(o, 0, 0, n, C, C, 1.0f, g->dres, C, w->wo, C, 0.0f, g->datty, C);
    if (full) o->gemm(o, 1, 0, C, C, n, 1.0f, g->dres, C, a->atty, C, 1.0f, grad_of(m, w->wo), C);
    lora_bwd(m, a, l, 1, a->atty, g->dres, C, g->datty, n);
    o->attention_bwd(o, g->dqkv, g->datty, a->atty, a->lse, a->qkv, B, T, m->c.n_heads,
                     m->c.n_kv_heads, m->HD);
    o->rope(o, g->dqkv, QKV, B, T, m->c.n_heads, m->HD, m->rope_cos, m->rope_sin,
            m->c.rope_layout, 1);
    o->rope(o, g->dqkv + C, QKV, B, T, m->c.n_kv_heads, m->HD, m->rope_cos, m->rope_sin,
            m->c.rope_layout, 1);
    if (full)
        o->gemm(o, 1, 0, QKV, C, n, 1.0f, g->dqkv, QKV, a->xn1, C, 1.0f, grad_of(m, w->wqkv), C);
    if (full && w->bqkv) o->bias_bwd(o, grad_of(m, w->bqkv), g->dqkv, n, QKV);
    float *dxn = need_dx ? g->dxn : NULL;
    if (need_dx) o->gemm(o, 0, 0, n, C, QKV, 1.0f, g->dqkv, QKV, w->wqkv, C, 0.0f, g->dxn, C);
    lora_bwd(m, a, l, 0, a->xn1, g->dqkv, QKV, dxn, n);
    if (need_dx)
        o->rmsnorm_bwd(o, g->dres, full ? grad_of(m, w->attn_norm) : NULL, g->dxn, a->x,
                       w->attn_norm, a->rstd1, n, C);
}

static lt_status grads_ready(lt_model *m, int layer, lt_error *err) {
    return m->hooks.grads_ready ? m->hooks.grads_ready(m->hooks.user, layer, err) : LT_OK;
}

lt_status lt_model_forward_backward(lt_model *m, const int32_t *inputs, const int32_t *targets,
                                    int B, int T, float grad_scale, double *loss_sum,
                                    int64_t *n_targets, lt_error *err) {
    if (!m->has_lora && !m->full)
        return lt_fail(err, LT_ERR_INVALID, "training: the model has no trainable parameters");
    if (m->merged)
        return lt_fail(err, LT_ERR_INVALID, "training: LoRA adapters are merged; unmerge first");
    lt_status st = forward_body(m, inputs, B, T, 1, err);
    if (st != LT_OK) return st;
    const lt_ops *o = m->ops;
    const int n = B * T, C = m->C;
    if ((st = prepare_targets(m, targets, n, err)) != LT_OK) return st;
    head_loss(m, n, grad_scale, m->g.dxn);
    o->zero(o, m->g.dres, (size_t)n * C * sizeof(float));
    const int L = m->c.n_layers;
    o->rmsnorm_bwd(o, m->g.dres, m->full ? grad_of(m, m->final_norm) : NULL, m->g.dxn, m->x_final,
                   m->final_norm, m->rstdf, n, C);
    if (m->full && (st = grads_ready(m, L, err)) != LT_OK) return st;
    for (int l = L - 1; l >= 0; l--) {
        lt_layer_weights w;
        /* Backward ends on layer 0, where the next forward starts. */
        if ((st = acquire(m, l, l - 1, &w, err)) != LT_OK) return st;
        /* The shared activations still hold the last layer's forward. */
        if (m->checkpointing && l < L - 1) layer_forward(m, l, &w, B, T, 1, 1);
        layer_backward(m, l, &w, B, T, l > 0 || m->full);
        if ((st = o->check(o, err)) != LT_OK) return st;
        if ((st = grads_ready(m, l, err)) != LT_OK) return st;
    }
    if (m->full) {
        o->embedding_bwd(o, grad_of(m, m->tok_emb), m->tokens, m->g.dres, n, C);
        if ((st = o->check(o, err)) != LT_OK || (st = grads_ready(m, -1, err)) != LT_OK) return st;
    }
    return sum_losses(m, targets, n, loss_sum, n_targets, err);
}

int64_t lt_count_targets(const int32_t *targets, int64_t n) {
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++) c += targets[i] != LT_IGNORE_INDEX;
    return c;
}
