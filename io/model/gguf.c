#include "io/model/gguf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fileutil.h"
#include "model/config.h"
#include "model/lora.h"

/* GGUF's value type ids (gguf_type in ggml's gguf.h). */
enum { GGUF_TYPE_UINT32 = 4, GGUF_TYPE_FLOAT32 = 6, GGUF_TYPE_STRING = 8 };

/* ggml's GGML_MAX_NAME counts the terminating NUL. */
#define GGUF_NAME_MAX 64
/* Far above any adapter, low enough that sizes in bytes cannot overflow. */
#define GGUF_DIM_MAX ((int64_t)1 << 31)

lt_status lt_gguf_parse_outtype(const char *s, lt_gguf_dtype *out, lt_error *err) {
    if (s && !strcmp(s, "f32")) *out = LT_GGUF_F32;
    else if (s && !strcmp(s, "f16")) *out = LT_GGUF_F16;
    else
        return lt_fail(err, LT_ERR_CONFIG, "--outtype: expected f32 or f16, got %s%s%s", s ? "\"" : "",
                       s ? s : "nothing", s ? "\"" : "");
    return LT_OK;
}

const char *lt_gguf_dtype_name(lt_gguf_dtype d) { return d == LT_GGUF_F16 ? "f16" : "f32"; }

/* The header is built in memory and its size known before any data is
 * written, so the data offset and padding come out of one place. */
typedef struct {
    unsigned char *p;
    size_t len, cap;
    int oom;
} buf;

static void put(buf *b, const void *src, size_t n) {
    if (b->oom) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

/* Explicit byte order, so the file is little-endian whatever the host. */
static void put_u32(buf *b, uint32_t v) {
    unsigned char x[4];
    for (int i = 0; i < 4; i++) x[i] = (unsigned char)(v >> (8 * i));
    put(b, x, 4);
}

static void put_u64(buf *b, uint64_t v) {
    unsigned char x[8];
    for (int i = 0; i < 8; i++) x[i] = (unsigned char)(v >> (8 * i));
    put(b, x, 8);
}

static void put_str(buf *b, const char *s) {
    size_t n = strlen(s);
    put_u64(b, (uint64_t)n);
    put(b, s, n);
}

static void put_f32(buf *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    put_u32(b, u);
}

/* Round to nearest even, as numpy's astype(float16) and torch do, so an
 * F16 file is what convert_lora_to_gguf.py --outtype f16 would hold. */
static uint16_t to_half(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    const uint32_t sign = (b >> 16) & 0x8000u, a = b & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* past 65504 after rounding */
    if (a < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        float v;
        memcpy(&v, &a, 4);
        return (uint16_t)(sign | (uint32_t)nearbyintf(v * 16777216.0f)); /* 2^24 = 1 / step */
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1);
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

static uint64_t pad_to(uint64_t n) {
    return (n + LT_GGUF_ALIGNMENT - 1) / LT_GGUF_ALIGNMENT * LT_GGUF_ALIGNMENT;
}

static lt_status check_args(const char *path, const lt_gguf_kv *kv, int n_kv, const lt_gguf_tensor *t,
                            int n_t, lt_gguf_dtype dtype, lt_error *err) {
    if (n_kv < 0 || n_t < 0 || (n_kv && !kv) || (n_t && !t))
        return lt_fail(err, LT_ERR_INVALID, "%s: %d metadata entries and %d tensors", path, n_kv, n_t);
    if (dtype != LT_GGUF_F32 && dtype != LT_GGUF_F16)
        return lt_fail(err, LT_ERR_INVALID, "%s: tensor type %d (F32 or F16 only)", path, (int)dtype);
    int has_alignment = 0;
    for (int i = 0; i < n_kv; i++) {
        if (!kv[i].key || !*kv[i].key)
            return lt_fail(err, LT_ERR_INVALID, "%s: metadata entry %d has no key", path, i);
        if (!strcmp(kv[i].key, "general.alignment")) {
            if (kv[i].type != LT_GGUF_KV_U32 || kv[i].u32 != LT_GGUF_ALIGNMENT)
                return lt_fail(err, LT_ERR_INVALID, "%s: general.alignment must be uint32 %d", path,
                               LT_GGUF_ALIGNMENT);
            has_alignment = 1;
        }
        if (kv[i].type != LT_GGUF_KV_U32 && kv[i].type != LT_GGUF_KV_F32 && kv[i].type != LT_GGUF_KV_STRING)
            return lt_fail(err, LT_ERR_INVALID, "%s: metadata %s has unknown type %d", path, kv[i].key,
                           (int)kv[i].type);
        if (kv[i].type == LT_GGUF_KV_STRING && !kv[i].str)
            return lt_fail(err, LT_ERR_INVALID, "%s: metadata %s: NULL string", path, kv[i].key);
        for (int j = 0; j < i; j++)
            if (!strcmp(kv[i].key, kv[j].key))
                return lt_fail(err, LT_ERR_INVALID, "%s: metadata key %s given twice", path, kv[i].key);
    }
    if (!has_alignment)
        return lt_fail(err, LT_ERR_INVALID, "%s: metadata lacks general.alignment", path);
    for (int i = 0; i < n_t; i++) {
        if (!t[i].name || !*t[i].name || strlen(t[i].name) >= GGUF_NAME_MAX)
            return lt_fail(err, LT_ERR_INVALID, "%s: tensor %d: name must be 1 to %d bytes", path, i,
                           GGUF_NAME_MAX - 1);
        if (t[i].rows < 1 || t[i].cols < 1 || t[i].rows > GGUF_DIM_MAX || t[i].cols > GGUF_DIM_MAX ||
            !t[i].data)
            return lt_fail(err, LT_ERR_INVALID, "%s: tensor %s: shape [%lld, %lld] or no data", path,
                           t[i].name, (long long)t[i].rows, (long long)t[i].cols);
        for (int j = 0; j < i; j++)
            if (!strcmp(t[i].name, t[j].name))
                return lt_fail(err, LT_ERR_INVALID, "%s: tensor %s given twice", path, t[i].name);
    }
    return LT_OK;
}

lt_status lt_gguf_write(const char *path, const lt_gguf_kv *kv, int n_kv, const lt_gguf_tensor *t,
                        int n_t, lt_gguf_dtype dtype, lt_error *err) {
    lt_status st = check_args(path, kv, n_kv, t, n_t, dtype, err);
    if (st != LT_OK) return st;
    const uint64_t width = dtype == LT_GGUF_F16 ? 2 : 4;
    buf h = {0};
    put(&h, "GGUF", 4);
    put_u32(&h, 3);
    put_u64(&h, (uint64_t)n_t);
    put_u64(&h, (uint64_t)n_kv);
    for (int i = 0; i < n_kv; i++) {
        put_str(&h, kv[i].key);
        switch (kv[i].type) {
        case LT_GGUF_KV_U32: put_u32(&h, GGUF_TYPE_UINT32); put_u32(&h, kv[i].u32); break;
        case LT_GGUF_KV_F32: put_u32(&h, GGUF_TYPE_FLOAT32); put_f32(&h, kv[i].f32); break;
        case LT_GGUF_KV_STRING: put_u32(&h, GGUF_TYPE_STRING); put_str(&h, kv[i].str); break;
        }
    }
    uint64_t off = 0;
    for (int i = 0; i < n_t; i++) {
        put_str(&h, t[i].name);
        put_u32(&h, 2);
        put_u64(&h, (uint64_t)t[i].cols); /* ne0: the contiguous dimension */
        put_u64(&h, (uint64_t)t[i].rows);
        put_u32(&h, (uint32_t)dtype);
        put_u64(&h, off);
        off += pad_to((uint64_t)t[i].rows * (uint64_t)t[i].cols * width);
    }
    const uint64_t data_start = pad_to(h.len);
    while (!h.oom && h.len < data_start) put(&h, "", 1);
    if (h.oom) {
        free(h.p);
        return lt_fail(err, LT_ERR_NOMEM, "%s: out of memory for the header", path);
    }

    lt_atomic_file af;
    if ((st = lt_atomic_open(&af, path, err)) != LT_OK) {
        free(h.p);
        return st;
    }
    st = lt_atomic_write(&af, h.p, h.len, err);
    free(h.p);
    static const unsigned char zeros[LT_GGUF_ALIGNMENT];
    unsigned char chunk[8192];
    const size_t per = sizeof chunk / (size_t)width;
    for (int i = 0; st == LT_OK && i < n_t; i++) {
        const uint64_t numel = (uint64_t)t[i].rows * (uint64_t)t[i].cols;
        for (uint64_t at = 0; st == LT_OK && at < numel; at += per) {
            size_t k = numel - at < per ? (size_t)(numel - at) : per;
            for (size_t j = 0; j < k; j++) {
                if (dtype == LT_GGUF_F16) {
                    uint16_t v = to_half(t[i].data[at + j]);
                    chunk[2 * j] = (unsigned char)v;
                    chunk[2 * j + 1] = (unsigned char)(v >> 8);
                } else {
                    uint32_t v;
                    memcpy(&v, &t[i].data[at + j], 4);
                    for (int q = 0; q < 4; q++) chunk[4 * j + (size_t)q] = (unsigned char)(v >> (8 * q));
                }
            }
            st = lt_atomic_write(&af, chunk, k * (size_t)width, err);
        }
        const uint64_t bytes = numel * width;
        if (st == LT_OK) st = lt_atomic_write(&af, zeros, (size_t)(pad_to(bytes) - bytes), err);
    }
    if (st != LT_OK) {
        lt_atomic_abort(&af);
        return st;
    }
    return lt_atomic_commit(&af, err);
}

/* llama.cpp's names for the targets' base weights (LLM_TENSOR_ATTN_Q etc.). */
static const char *gguf_module(lt_module mod) {
    switch (mod) {
    case LT_MOD_Q: return "attn_q";
    case LT_MOD_K: return "attn_k";
    case LT_MOD_V: return "attn_v";
    case LT_MOD_O: return "attn_output";
    case LT_MOD_GATE: return "ffn_gate";
    case LT_MOD_UP: return "ffn_up";
    case LT_MOD_DOWN: return "ffn_down";
    default: return NULL;
    }
}

lt_status lt_adapter_save_gguf(lt_model *m, const char *path, const char *name, lt_gguf_dtype dtype,
                               lt_error *err) {
    const lt_lora_config *lc = lt_model_lora_config(m);
    if (!lc) return lt_fail(err, LT_ERR_INVALID, "%s: the model has no LoRA adapters", path);
    if (lt_model_lora_is_merged(m))
        return lt_fail(err, LT_ERR_INVALID, "%s: adapters are merged; unmerge first", path);
    const lt_model_config *c = lt_model_get_config(m);
    /* llama.cpp runs biased q/k/v bases (Qwen2) as another architecture,
     * whose adapters it names and permutes differently. */
    if (c->qkv_bias)
        return lt_fail(err, LT_ERR_UNSUPPORTED, "%s: GGUF export is for Llama-architecture bases; "
                       "this base has q/k/v biases (Qwen2), export --format peft instead", path);
    const lt_param_table *tab = lt_model_lora_table(m);
    const lt_ops *o = lt_model_get_ops(m);
    float *host = malloc(tab->numel * sizeof(float)), *perm = malloc(tab->numel * sizeof(float));
    lt_gguf_tensor *ts = calloc((size_t)tab->count, sizeof *ts);
    char(*names)[GGUF_NAME_MAX] = calloc((size_t)tab->count, sizeof *names);
    lt_status st = LT_OK;
    if (!host || !perm || !ts || !names) {
        st = lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    o->download(o, host, lt_model_lora_params(m), tab->numel * sizeof(float));
    int n = 0;
    for (int l = 0; l < c->n_layers; l++)
        for (int mod = 0; mod < LT_MOD_COUNT; mod++) {
            if (!(lc->targets & (1u << mod))) continue;
            for (int ab = 0; ab < 2; ab++) {
                char ours[LT_TENSOR_NAME_MAX];
                snprintf(ours, sizeof ours, "model.layers.%d.%s.%s.lora_%c.weight", l,
                         lt_module_block((lt_module)mod), lt_module_name((lt_module)mod), ab ? 'B' : 'A');
                const lt_tensor_desc *d = lt_table_find(tab, ours);
                if (!d || n >= tab->count) {
                    st = lt_fail(err, LT_ERR_INTERNAL, "%s: adapter tensor %s not in the table", path, ours);
                    goto done;
                }
                const float *src = host + d->offset;
                for (size_t k = 0; k < lt_tensor_numel(d); k++)
                    if (!isfinite(src[k])) {
                        st = lt_fail(err, LT_ERR_INVALID, "%s: adapter tensor %s element %zu is not "
                                     "finite", path, ours, k);
                        goto done;
                    }
                /* Only a rotate-half base computes q/k in the other order;
                 * a llama2.c base already holds llama.cpp's interleaved rows. */
                int heads = 0;
                if (ab && c->rope_layout == LT_ROPE_HALF)
                    heads = mod == LT_MOD_Q ? c->n_heads : mod == LT_MOD_K ? c->n_kv_heads : 0;
                if (heads) {
                    lt_rope_permute_rows(src, perm + d->offset, heads, lt_head_dim(c), d->cols, 0);
                    src = perm + d->offset;
                }
                snprintf(names[n], sizeof names[n], "blk.%d.%s.weight.lora_%c", l,
                         gguf_module((lt_module)mod), ab ? 'b' : 'a');
                ts[n] = (lt_gguf_tensor){.name = names[n], .data = src, .rows = d->rows, .cols = d->cols};
                n++;
            }
        }
    if (n != tab->count) {
        st = lt_fail(err, LT_ERR_INTERNAL, "%s: wrote %d of the adapter's %d tensors", path, n, tab->count);
        goto done;
    }
    /* llama.cpp scales by alpha / r (convert_lora_to_gguf.py passes
     * lora_alpha through and ignores use_rslora). */
    double alpha = lc->use_rslora ? (double)lc->alpha * sqrt((double)lc->r) : (double)lc->alpha;
    /* In the order gguf-py's writer, driven by convert_lora_to_gguf.py,
     * emits them (architecture first, from its constructor), so the two
     * files can be compared byte for byte. */
    const lt_gguf_kv kv[] = {
        {.key = "general.architecture", .type = LT_GGUF_KV_STRING, .str = "llama"},
        {.key = "general.alignment", .type = LT_GGUF_KV_U32, .u32 = LT_GGUF_ALIGNMENT},
        {.key = "general.type", .type = LT_GGUF_KV_STRING, .str = "adapter"},
        {.key = "adapter.type", .type = LT_GGUF_KV_STRING, .str = "lora"},
        {.key = "general.name", .type = LT_GGUF_KV_STRING, .str = name ? name : ""},
        {.key = "adapter.lora.alpha", .type = LT_GGUF_KV_F32, .f32 = (float)alpha},
        /* GGML_QUANT_VERSION, which convert writes into every file */
        {.key = "general.quantization_version", .type = LT_GGUF_KV_U32, .u32 = 2},
    };
    st = lt_gguf_write(path, kv, (int)(sizeof kv / sizeof kv[0]), ts, n, dtype, err);
done:
    free(host);
    free(perm);
    free(ts);
    free(names);
    return st;
}
