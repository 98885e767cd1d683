#include "io/model/hf_model.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/hash.h"
#include "io/fileutil.h"
#include "io/json.h"
#include "io/model/safetensors.h"
#include "io/model/weight_fill.h"

#define CONFIG_MAX_BYTES (16u << 20)
#define INDEX_MAX_BYTES (64u << 20)
#define MAX_WEIGHT_FILES 4096
#define PATH_MAX_LEN 4200

int lt_hf_is_model_dir(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) return 0;
    char p[PATH_MAX_LEN];
    snprintf(p, sizeof p, "%s/config.json", path);
    return stat(p, &sb) == 0;
}

static lt_status parse_json_file(const char *path, uint64_t max_bytes, cJSON **out, lt_error *err) {
    cJSON *root = NULL;
    lt_status st = lt_json_parse_file(path, max_bytes, &root, err);
    *out = NULL;
    if (st != LT_OK) return st;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return lt_fail(err, LT_ERR_FORMAT, "%s: expected a JSON object at the top level", path);
    }
    *out = root;
    return LT_OK;
}

/* ------------------------------------------------------------ config.json */

static const cJSON *field(const cJSON *root, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

/* A required (dflt < 0) or optional integer field in [lo, hi]. */
static lt_status int_field(const cJSON *root, const char *path, const char *name, int dflt, int lo,
                           int hi, int *out, lt_error *err) {
    const cJSON *v = field(root, name);
    if (!v) {
        if (dflt < 0)
            return lt_fail(err, LT_ERR_FORMAT, "%s: missing field \"%s\", expected an integer",
                           path, name);
        *out = dflt;
        return LT_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        return lt_fail(err, LT_ERR_FORMAT, "%s: field \"%s\" must be an integer in [%d, %d]", path,
                       name, lo, hi);
    *out = (int)v->valuedouble;
    return LT_OK;
}

static lt_status positive_number(const cJSON *root, const char *path, const char *name,
                                 double dflt, double hi, float *out, lt_error *err) {
    const cJSON *v = field(root, name);
    if (!v) {
        if (dflt <= 0)
            return lt_fail(err, LT_ERR_FORMAT, "%s: missing field \"%s\", expected a number", path,
                           name);
        *out = (float)dflt;
        return LT_OK;
    }
    if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || v->valuedouble > hi)
        return lt_fail(err, LT_ERR_FORMAT, "%s: field \"%s\" must be a number in (0, %g]", path,
                       name, hi);
    *out = (float)v->valuedouble;
    return LT_OK;
}

static lt_status false_or_absent(const cJSON *root, const char *path, const char *name,
                                 const char *why, lt_error *err) {
    const cJSON *v = field(root, name);
    if (v && !cJSON_IsFalse(v))
        return lt_fail(err, LT_ERR_UNSUPPORTED, "%s: \"%s\" is set; %s", path, name, why);
    return LT_OK;
}

static const char *const k_archs[] = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"};
static const char *const k_types[] = {"llama", "mistral", "qwen2"};

static int known(const char *s, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(s, list[i])) return 1;
    return 0;
}

/* *qwen2: Qwen2's layout is Llama's plus biases on q_proj, k_proj and
 * v_proj (always, by the architecture; config.json has no switch). */
static lt_status check_family(const cJSON *root, const char *path, int *qwen2, lt_error *err) {
    const cJSON *mt = field(root, "model_type");
    if (!mt || !cJSON_IsString(mt))
        return lt_fail(err, LT_ERR_FORMAT,
                       "%s: missing string field \"model_type\", expected \"llama\", \"mistral\" or "
                       "\"qwen2\"", path);
    if (!known(mt->valuestring, k_types, sizeof k_types / sizeof k_types[0]))
        return lt_fail(err, LT_ERR_UNSUPPORTED,
                       "%s: model_type \"%.60s\" is not supported, expected \"llama\", \"mistral\" "
                       "or \"qwen2\"", path, mt->valuestring);
    *qwen2 = !strcmp(mt->valuestring, "qwen2");
    const cJSON *ar = field(root, "architectures");
    if (ar) {
        if (!cJSON_IsArray(ar))
            return lt_fail(err, LT_ERR_FORMAT, "%s: field \"architectures\" must be an array of strings",
                           path);
        for (const cJSON *a = ar->child; a; a = a->next) {
            if (!cJSON_IsString(a))
                return lt_fail(err, LT_ERR_FORMAT,
                               "%s: field \"architectures\" must be an array of strings", path);
            if (!known(a->valuestring, k_archs, sizeof k_archs / sizeof k_archs[0]))
                return lt_fail(err, LT_ERR_UNSUPPORTED,
                               "%s: architecture \"%.60s\" is not supported, expected LlamaForCausalLM, "
                               "MistralForCausalLM or Qwen2ForCausalLM",
                               path, a->valuestring);
            if (*qwen2 != !strcmp(a->valuestring, "Qwen2ForCausalLM"))
                return lt_fail(err, LT_ERR_FORMAT,
                               "%s: architecture %s does not match model_type \"%s\"", path,
                               a->valuestring, mt->valuestring);
        }
    }
    const cJSON *act = field(root, "hidden_act");
    if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu")))
        return lt_fail(err, LT_ERR_UNSUPPORTED, "%s: field \"hidden_act\" must be \"silu\" (SwiGLU)",
                       path);
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (rs && !cJSON_IsNull(rs))
        return lt_fail(err, LT_ERR_UNSUPPORTED,
                       "%s: \"rope_scaling\" is set; only unscaled RoPE is supported (expected null)",
                       path);
    /* Llama's attention_bias also puts one on o_proj, which the model lacks. */
    lt_status st = *qwen2 ? LT_OK
                          : false_or_absent(root, path, "attention_bias",
                                            "the model's o_proj has no bias (only Qwen2's q/k/v biases "
                                            "are supported)", err);
    if (st == LT_OK)
        st = false_or_absent(root, path, "mlp_bias", "the model's MLP projections have no biases", err);
    return st;
}

static lt_status parse_config(const cJSON *root, const char *path, lt_model_config *c, lt_error *err) {
    memset(c, 0, sizeof *c);
    int qwen2 = 0;
    lt_status st = check_family(root, path, &qwen2, err);
    const int BIG = 1 << 24;
    if (st == LT_OK) st = int_field(root, path, "hidden_size", -1, 1, BIG, &c->dim, err);
    if (st == LT_OK) st = int_field(root, path, "intermediate_size", -1, 1, BIG, &c->hidden_dim, err);
    if (st == LT_OK) st = int_field(root, path, "num_hidden_layers", -1, 1, 4096, &c->n_layers, err);
    if (st == LT_OK) st = int_field(root, path, "num_attention_heads", -1, 1, 65536, &c->n_heads, err);
    if (st == LT_OK)
        st = int_field(root, path, "num_key_value_heads", c->n_heads, 1, 65536, &c->n_kv_heads, err);
    if (st == LT_OK) st = int_field(root, path, "vocab_size", -1, 1, BIG, &c->vocab_size, err);
    if (st == LT_OK)
        st = int_field(root, path, "max_position_embeddings", -1, 1, BIG, &c->seq_len, err);
    if (st == LT_OK) st = positive_number(root, path, "rms_norm_eps", -1, 1.0, &c->norm_eps, err);
    if (st == LT_OK)
        st = positive_number(root, path, "rope_theta", 10000.0, 1e12, &c->rope_theta, err);
    if (st != LT_OK) return st;
    if (c->n_heads > c->dim || c->dim % c->n_heads)
        return lt_fail(err, LT_ERR_FORMAT,
                       "%s: hidden_size %d is not a multiple of num_attention_heads %d", path, c->dim,
                       c->n_heads);
    int head_dim = 0;
    if ((st = int_field(root, path, "head_dim", c->dim / c->n_heads, 1, 65536, &head_dim, err)) != LT_OK)
        return st;
    if (head_dim != c->dim / c->n_heads)
        return lt_fail(err, LT_ERR_UNSUPPORTED,
                       "%s: head_dim %d differs from hidden_size / num_attention_heads = %d, which "
                       "the model requires",
                       path, head_dim, c->dim / c->n_heads);
    /* A sliding window changes attention only beyond the window, so a
     * context limited to it is exactly the model. Qwen2 configs carry a
     * sliding_window that applies only with use_sliding_window true. */
    int window = 0, windowed = 1;
    if (qwen2) {
        const cJSON *use = cJSON_GetObjectItemCaseSensitive(root, "use_sliding_window");
        if (use && !cJSON_IsBool(use))
            return lt_fail(err, LT_ERR_FORMAT, "%s: field \"use_sliding_window\" must be true or false",
                           path);
        windowed = use && cJSON_IsTrue(use);
    }
    if ((st = int_field(root, path, "sliding_window", 0, 1, BIG, &window, err)) != LT_OK) return st;
    if (windowed && window > 0 && window < c->seq_len) c->seq_len = window;
    c->qkv_bias = qwen2;
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
    if (tie && !cJSON_IsBool(tie))
        return lt_fail(err, LT_ERR_FORMAT, "%s: field \"tie_word_embeddings\" must be true or false",
                       path);
    /* LlamaConfig's default is an untied classifier. */
    c->shared_classifier = tie && cJSON_IsTrue(tie);
    c->rope_layout = LT_ROPE_HALF;
    return lt_model_config_validate(c, path, err);
}

lt_status lt_hf_read_config(const char *dir, lt_model_config *cfg, lt_error *err) {
    char path[PATH_MAX_LEN];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *root = NULL;
    lt_status st = parse_json_file(path, CONFIG_MAX_BYTES, &root, err);
    if (st != LT_OK) return st;
    st = parse_config(root, path, cfg, err);
    cJSON_Delete(root);
    return st;
}

/* The shortest decimal that reads back as f, so 1e-5f is written 1e-05. */
static double shortest(float f) {
    char buf[32];
    for (int p = 1; p < 10; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        if ((float)strtod(buf, NULL) == f) break;
    }
    return strtod(buf, NULL);
}

lt_status lt_hf_write_config(const char *dir, const lt_model_config *c, const char *torch_dtype,
                             lt_error *err) {
    char path[PATH_MAX_LEN];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (c->rope_layout != LT_ROPE_HALF && c->rope_layout != LT_ROPE_INTERLEAVED)
        return lt_fail(err, LT_ERR_INVALID, "%s: unknown RoPE layout", path);
    cJSON *root = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(root, "architectures");
    const int qwen2 = c->qkv_bias;
    if (!root || !arch ||
        !cJSON_AddItemToArray(arch, cJSON_CreateString(qwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM"))) {
        cJSON_Delete(root);
        return lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", path);
    }
    int ok = 1;
    ok &= cJSON_AddStringToObject(root, "model_type", qwen2 ? "qwen2" : "llama") != NULL;
    ok &= cJSON_AddNumberToObject(root, "hidden_size", c->dim) != NULL;
    ok &= cJSON_AddNumberToObject(root, "intermediate_size", c->hidden_dim) != NULL;
    ok &= cJSON_AddNumberToObject(root, "num_hidden_layers", c->n_layers) != NULL;
    ok &= cJSON_AddNumberToObject(root, "num_attention_heads", c->n_heads) != NULL;
    ok &= cJSON_AddNumberToObject(root, "num_key_value_heads", c->n_kv_heads) != NULL;
    ok &= cJSON_AddNumberToObject(root, "vocab_size", c->vocab_size) != NULL;
    ok &= cJSON_AddNumberToObject(root, "max_position_embeddings", c->seq_len) != NULL;
    ok &= cJSON_AddNumberToObject(root, "rms_norm_eps", shortest(c->norm_eps)) != NULL;
    ok &= cJSON_AddNumberToObject(root, "rope_theta", shortest(c->rope_theta)) != NULL;
    ok &= cJSON_AddNullToObject(root, "rope_scaling") != NULL;
    ok &= cJSON_AddBoolToObject(root, "tie_word_embeddings", c->shared_classifier) != NULL;
    ok &= cJSON_AddStringToObject(root, "hidden_act", "silu") != NULL;
    if (qwen2)
        ok &= cJSON_AddBoolToObject(root, "use_sliding_window", 0) != NULL;
    else
        ok &= cJSON_AddBoolToObject(root, "attention_bias", 0) != NULL;
    ok &= cJSON_AddNumberToObject(root, "bos_token_id", 1) != NULL;
    ok &= cJSON_AddNumberToObject(root, "eos_token_id", 2) != NULL;
    ok &= cJSON_AddStringToObject(root, "torch_dtype", torch_dtype) != NULL;
    char *text = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text) return lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", path);
    lt_status st = lt_atomic_write_text(path, text, err);
    free(text);
    return st;
}

lt_status lt_model_save_safetensors(lt_model *m, const char *dir, lt_error *err) {
    lt_status st = lt_make_dirs(dir, err);
    if (st != LT_OK) return st;
    if (lt_model_quant_config(m))
        return lt_fail(err, LT_ERR_UNSUPPORTED, "saving the model: the base is quantized; only an "
                       "fp32 base is written whole");
    const lt_param_table *t = lt_model_base_table(m);
    const lt_model_config *c = lt_model_get_config(m);
    const lt_ops *o = lt_model_get_ops(m);
    /* Host staging of the whole model, as the safetensors writer takes it. */
    float *host = lt_alloc(LT_MEM_WORKSPACE, t->numel * sizeof(float));
    float *perm = malloc((size_t)c->dim * (size_t)c->dim * sizeof(float));
    lt_st_out *outs = calloc((size_t)t->count, sizeof *outs);
    if (!host || !perm || !outs) {
        st = lt_fail(err, LT_ERR_NOMEM, "saving the model: out of memory");
        goto done;
    }
    o->download(o, host, lt_model_base(m), t->numel * sizeof(float));
    for (int i = 0; i < t->count; i++) {
        const lt_tensor_desc *d = &t->t[i];
        float *src = host + d->offset;
        int heads = lt_rope_rotary_heads(c, d->name);
        if (heads) { /* in place through one tensor's scratch */
            lt_rope_permute_rows(src, perm, heads, lt_head_dim(c), d->cols, 1);
            memcpy(src, perm, lt_tensor_numel(d) * sizeof(float));
        }
        outs[i] = (lt_st_out){.name = d->name, .data = src, .ndim = d->rows == 1 ? 1 : 2,
                              .shape = {d->rows == 1 ? d->cols : d->rows, d->cols}};
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const char *meta[] = {"format", "pt"};
    st = lt_st_write_f32(path, outs, t->count, meta, 1, err);
done:
    lt_free(host);
    free(perm);
    free(outs);
    return st;
}

/* ------------------------------------------------------------ weight files */

/* The weight files of dir: model.safetensors, or the distinct files of
 * the index's weight_map (*map then holds the parsed index). */
typedef struct {
    char index_path[PATH_MAX_LEN]; /* empty: no index */
    cJSON *index;
    const cJSON *weight_map;
    char **names; /* file names relative to dir */
    int n;
} weight_files;

static void weight_files_free(weight_files *w) {
    for (int i = 0; i < w->n; i++) free(w->names[i]);
    free(w->names);
    cJSON_Delete(w->index);
    memset(w, 0, sizeof *w);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A shard name from the index stays inside dir. */
static int plain_file_name(const char *s) {
    return s[0] && strlen(s) < 256 && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

static lt_status list_weight_files(const char *dir, weight_files *w, lt_error *err) {
    memset(w, 0, sizeof *w);
    char single[PATH_MAX_LEN];
    snprintf(w->index_path, sizeof w->index_path, "%s/model.safetensors.index.json", dir);
    snprintf(single, sizeof single, "%s/model.safetensors", dir);
    struct stat sb;
    if (stat(w->index_path, &sb) != 0) {
        w->index_path[0] = 0;
        if (stat(single, &sb) != 0)
            return lt_fail(err, LT_ERR_IO,
                           "%s: no model.safetensors or model.safetensors.index.json in the directory",
                           dir);
        w->names = malloc(sizeof *w->names);
        if (!w->names || !(w->names[0] = strdup("model.safetensors"))) {
            free(w->names);
            w->names = NULL;
            return lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", dir);
        }
        w->n = 1;
        return LT_OK;
    }
    lt_status st = parse_json_file(w->index_path, INDEX_MAX_BYTES, &w->index, err);
    if (st != LT_OK) return st;
    w->weight_map = cJSON_GetObjectItemCaseSensitive(w->index, "weight_map");
    if (!cJSON_IsObject(w->weight_map) || !w->weight_map->child) {
        st = lt_fail(err, LT_ERR_FORMAT, "%s: missing field \"weight_map\", expected an object "
                     "mapping tensor names to file names", w->index_path);
        goto fail;
    }
    int entries = cJSON_GetArraySize(w->weight_map);
    w->names = calloc((size_t)entries, sizeof *w->names);
    if (!w->names) {
        st = lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", w->index_path);
        goto fail;
    }
    for (const cJSON *e = w->weight_map->child; e; e = e->next) {
        if (!cJSON_IsString(e) || !plain_file_name(e->valuestring)) {
            st = lt_fail(err, LT_ERR_FORMAT,
                         "%s: weight_map[\"%.80s\"] must be a file name in the same directory",
                         w->index_path, e->string);
            goto fail;
        }
        int seen = 0;
        for (int i = 0; i < w->n && !seen; i++) seen = !strcmp(w->names[i], e->valuestring);
        if (seen) continue;
        if (w->n == MAX_WEIGHT_FILES) {
            st = lt_fail(err, LT_ERR_FORMAT, "%s: weight_map names more than %d files",
                         w->index_path, MAX_WEIGHT_FILES);
            goto fail;
        }
        if (!(w->names[w->n] = strdup(e->valuestring))) {
            st = lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", w->index_path);
            goto fail;
        }
        w->n++;
    }
    qsort(w->names, (size_t)w->n, sizeof *w->names, cmp_str);
    return LT_OK;
fail:
    weight_files_free(w);
    return st;
}

lt_status lt_hf_fingerprint(const char *dir, uint64_t *bytes, uint64_t *fingerprint, lt_error *err) {
    weight_files w;
    lt_status st = list_weight_files(dir, &w, err);
    if (st != LT_OK) return st;
    uint64_t total = 0, h = 0;
    char path[PATH_MAX_LEN];
    /* -2: config.json, -1: the index (when there is one), then each file. */
    for (int i = -2; i < w.n && st == LT_OK; i++) {
        const char *name = i == -2 ? "config.json" : i == -1 ? "model.safetensors.index.json" : w.names[i];
        if (i == -1 && !w.index_path[0]) continue;
        snprintf(path, sizeof path, "%s/%s", dir, name);
        uint64_t b = 0, f = 0;
        if ((st = lt_file_fingerprint(path, &b, &f, err)) != LT_OK) break;
        h = lt_hash64_seeded(h, name, strlen(name) + 1);
        h = lt_hash64_seeded(h, &f, sizeof f);
        total += b;
    }
    weight_files_free(&w);
    *bytes = total;
    *fingerprint = h;
    return st;
}

/* -------------------------------------------------------------- the loader */

typedef struct {
    const char *dir;
    lt_safetensors **files;
    int n_files;
    const lt_base_tensor_spec *specs;
    int n_specs;
    const lt_st_tensor **found; /* per spec */
    int *file_of;               /* per spec */
    int cursor;                 /* the fill asks in spec order: usually specs[cursor] */
} hf_source;

static void hf_source_free(hf_source *s) {
    for (int i = 0; i < s->n_files; i++) lt_st_close(s->files[i]);
    free(s->files);
    free(s->found);
    free(s->file_of);
}

static int spec_index(hf_source *s, const char *name) {
    if (s->cursor < s->n_specs && !strcmp(s->specs[s->cursor].name, name)) return s->cursor++;
    for (int i = 0; i < s->n_specs; i++)
        if (!strcmp(s->specs[i].name, name)) {
            s->cursor = i + 1;
            return i;
        }
    return -1;
}

/* Older transformers saved the RoPE frequencies; they follow from rope_theta. */
static int ignorable(const char *name) {
    const char *suffix = ".rotary_emb.inv_freq";
    size_t n = strlen(name), k = strlen(suffix);
    return n > k && !strcmp(name + n - k, suffix);
}

static lt_status index_tensors(hf_source *s, const weight_files *w, int tied, lt_error *err) {
    for (int f = 0; f < s->n_files; f++) {
        const char *fname = w->names[f];
        for (int k = 0; k < lt_st_count(s->files[f]); k++) {
            const lt_st_tensor *t = lt_st_at(s->files[f], k);
            if (ignorable(t->name)) continue;
            int i = spec_index(s, t->name);
            if (i < 0) {
                if (tied && !strcmp(t->name, "lm_head.weight"))
                    return lt_fail(err, LT_ERR_FORMAT,
                                   "%s/%s: tensor lm_head.weight is present but config.json has "
                                   "tie_word_embeddings true (expected no lm_head.weight)",
                                   s->dir, fname);
                return lt_fail(err, LT_ERR_FORMAT,
                               "%s/%s: tensor \"%.80s\" is not a weight of this Llama model "
                               "(expected names such as model.layers.N.self_attn.q_proj.weight, "
                               "with N below num_hidden_layers)",
                               s->dir, fname, t->name);
            }
            if (s->found[i])
                return lt_fail(err, LT_ERR_FORMAT, "%s: tensor %s appears in both %s and %s", s->dir,
                               t->name, w->names[s->file_of[i]], fname);
            const lt_base_tensor_spec *sp = &s->specs[i];
            int ok = sp->rows == 1 ? t->ndim == 1 && t->shape[0] == sp->cols
                                   : t->ndim == 2 && t->shape[0] == sp->rows && t->shape[1] == sp->cols;
            if (!ok) {
                char got[96] = "";
                for (int d = 0; d < t->ndim && strlen(got) < 70; d++)
                    snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "",
                             (long long)t->shape[d]);
                if (sp->rows == 1)
                    return lt_fail(err, LT_ERR_FORMAT,
                                   "%s/%s: tensor %s has shape [%s], expected [%d]", s->dir, fname,
                                   t->name, got, sp->cols);
                return lt_fail(err, LT_ERR_FORMAT, "%s/%s: tensor %s has shape [%s], expected [%d, %d]",
                               s->dir, fname, t->name, got, sp->rows, sp->cols);
            }
            if (t->dtype != LT_ST_F32 && t->dtype != LT_ST_F16 && t->dtype != LT_ST_BF16)
                return lt_fail(err, LT_ERR_FORMAT, "%s/%s: tensor %s is %s, expected F32, F16 or BF16",
                               s->dir, fname, t->name, lt_st_dtype_name(t->dtype));
            if (w->weight_map) {
                const cJSON *e = cJSON_GetObjectItemCaseSensitive(w->weight_map, t->name);
                if (!e || strcmp(e->valuestring, fname))
                    return lt_fail(err, LT_ERR_FORMAT,
                                   "%s: tensor %s is in %s, but weight_map %s%s", w->index_path,
                                   t->name, fname, e ? "names " : "does not list it",
                                   e ? e->valuestring : "");
            }
            s->found[i] = t;
            s->file_of[i] = f;
        }
    }
    for (int i = 0; i < s->n_specs; i++)
        if (!s->found[i]) {
            if (s->specs[i].rows == 1)
                return lt_fail(err, LT_ERR_FORMAT, "%s: tensor %s is missing (expected shape [%d])",
                               s->dir, s->specs[i].name, s->specs[i].cols);
            return lt_fail(err, LT_ERR_FORMAT, "%s: tensor %s is missing (expected shape [%d, %d])",
                           s->dir, s->specs[i].name, s->specs[i].rows, s->specs[i].cols);
        }
    if (w->weight_map)
        for (const cJSON *e = w->weight_map->child; e; e = e->next) {
            int i = spec_index(s, e->string);
            if (i < 0 && !ignorable(e->string))
                return lt_fail(err, LT_ERR_FORMAT,
                               "%s: weight_map lists \"%.80s\", which is not a weight of this model "
                               "or not in %s",
                               w->index_path, e->string, e->valuestring);
        }
    return LT_OK;
}

static lt_status hf_read(void *user, const lt_base_tensor_spec *t, float *dst, size_t count,
                         uint64_t *bytes, lt_error *err) {
    hf_source *s = user;
    int i = spec_index(s, t->name);
    if (i < 0) return lt_fail(err, LT_ERR_INTERNAL, "%s: tensor %s was not indexed", s->dir, t->name);
    lt_status st = lt_st_read_f32(s->files[s->file_of[i]], s->found[i], dst, count, err);
    /* dst holds the copy now: left mapped, every tensor read would stay
     * resident until the whole fill ends, the fp32 file in RSS even when
     * the model keeps it in NF4. */
    lt_st_release(s->files[s->file_of[i]], s->found[i]);
    if (st == LT_OK) *bytes += s->found[i]->nbytes;
    return st;
}

lt_status lt_hf_load_sharded(const char *dir, const lt_quant_config *qc, int shard_rank,
                             int shard_count, const lt_ops *ops, lt_model **out,
                             uint64_t *bytes_read, lt_error *err) {
    *out = NULL;
    if (bytes_read) *bytes_read = 0;
    lt_model_config cfg;
    lt_status st = lt_hf_read_config(dir, &cfg, err);
    if (st != LT_OK) return st;
    weight_files w;
    if ((st = list_weight_files(dir, &w, err)) != LT_OK) return st;
    lt_base_tensor_spec *specs = NULL;
    hf_source s = {.dir = dir};
    lt_model *m = NULL;
    if ((st = lt_base_tensor_specs(&cfg, &specs, &s.n_specs, err)) != LT_OK) goto done;
    s.specs = specs;
    s.files = calloc((size_t)w.n, sizeof *s.files);
    s.found = calloc((size_t)s.n_specs, sizeof *s.found);
    s.file_of = calloc((size_t)s.n_specs, sizeof *s.file_of);
    if (!s.files || !s.found || !s.file_of) {
        st = lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", dir);
        goto done;
    }
    char path[PATH_MAX_LEN];
    for (; s.n_files < w.n; s.n_files++) {
        snprintf(path, sizeof path, "%s/%s", dir, w.names[s.n_files]);
        if ((st = lt_st_open(path, &s.files[s.n_files], err)) != LT_OK) {
            if (w.weight_map) lt_fail_context(err, "%s: weight_map names a shard", w.index_path);
            goto done;
        }
    }
    /* Every name and shape is checked before the model is allocated. */
    if ((st = index_tensors(&s, &w, cfg.shared_classifier, err)) != LT_OK) goto done;
    if ((st = lt_model_create_sharded(&cfg, qc, shard_rank, shard_count, ops, &m, err)) != LT_OK)
        goto done;
    const lt_tensor_source src = {hf_read, NULL, &s};
    s.cursor = 0;
    st = lt_model_fill(m, &src, dir, bytes_read, err);
done:
    hf_source_free(&s);
    free(specs);
    weight_files_free(&w);
    if (st != LT_OK) {
        lt_model_free(m);
        return st;
    }
    *out = m;
    return LT_OK;
}
