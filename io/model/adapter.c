#include "io/model/adapter.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/fileutil.h"
#include "io/json.h"
#include "io/model/safetensors.h"

#define PEFT_PREFIX "base_model.model."

static double shortest_decimal(float x) {
    char buf[32];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)x);
        if (strtof(buf, NULL) == x) break;
    }
    return strtod(buf, NULL);
}

static lt_status write_config(const lt_lora_config *lc, const char *dir, const char *base_model,
                              lt_error *err) {
    cJSON *root = cJSON_CreateObject();
    cJSON *targets = cJSON_CreateArray();
    if (!root || !targets) {
        cJSON_Delete(root);
        cJSON_Delete(targets);
        return lt_fail(err, LT_ERR_NOMEM, "adapter config: out of memory");
    }
    for (int m = 0; m < LT_MOD_COUNT; m++)
        if (lc->targets & (1u << m))
            cJSON_AddItemToArray(targets, cJSON_CreateString(lt_module_name((lt_module)m)));
    cJSON_AddStringToObject(root, "peft_type", "LORA");
    cJSON_AddStringToObject(root, "task_type", "CAUSAL_LM");
    cJSON_AddStringToObject(root, "base_model_name_or_path", base_model ? base_model : "");
    cJSON_AddNumberToObject(root, "r", lc->r);
    /* The shortest decimal that reads back as the same float: 0.05, not
     * the double 0.05000000074505806 of a float's exact value. */
    cJSON_AddNumberToObject(root, "lora_alpha", shortest_decimal(lc->alpha));
    cJSON_AddNumberToObject(root, "lora_dropout", shortest_decimal(lc->dropout));
    cJSON_AddItemToObject(root, "target_modules", targets);
    cJSON_AddBoolToObject(root, "use_rslora", lc->use_rslora);
    cJSON_AddStringToObject(root, "bias", "none");
    cJSON_AddBoolToObject(root, "fan_in_fan_out", 0);
    cJSON_AddBoolToObject(root, "inference_mode", 1);
    cJSON_AddBoolToObject(root, "init_lora_weights", 1);
    cJSON_AddNullToObject(root, "modules_to_save");
    cJSON_AddNullToObject(root, "layers_to_transform");
    cJSON_AddItemToObject(root, "rank_pattern", cJSON_CreateObject());
    cJSON_AddItemToObject(root, "alpha_pattern", cJSON_CreateObject());
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return lt_fail(err, LT_ERR_NOMEM, "adapter config: out of memory");
    char path[4200];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    lt_status st = lt_atomic_write_text(path, text, err);
    free(text);
    return st;
}

lt_status lt_adapter_save(lt_model *m, const char *dir, const char *base_model, lt_error *err) {
    const lt_lora_config *lc = lt_model_lora_config(m);
    if (!lc) return lt_fail(err, LT_ERR_INVALID, "saving an adapter: the model has no LoRA adapters");
    if (lt_model_lora_is_merged(m))
        return lt_fail(err, LT_ERR_INVALID, "saving an adapter: adapters are merged; unmerge first");
    lt_status st = lt_make_dirs(dir, err);
    if (st != LT_OK) return st;
    const lt_param_table *t = lt_model_lora_table(m);
    const lt_model_config *c = lt_model_get_config(m);
    const lt_ops *o = lt_model_get_ops(m);
    float *host = malloc(t->numel * sizeof(float)), *perm = malloc(t->numel * sizeof(float));
    lt_st_out *outs = calloc((size_t)t->count, sizeof *outs);
    char(*names)[LT_TENSOR_NAME_MAX + 32] = calloc((size_t)t->count, sizeof *names);
    if (!host || !perm || !outs || !names) {
        st = lt_fail(err, LT_ERR_NOMEM, "saving an adapter: out of memory");
        goto done;
    }
    o->download(o, host, lt_model_lora_params(m), t->numel * sizeof(float));
    for (int i = 0; i < t->count; i++) {
        const lt_tensor_desc *d = &t->t[i];
        snprintf(names[i], sizeof names[i], PEFT_PREFIX "%s", d->name);
        const float *src = host + d->offset;
        int heads = lt_rope_rotary_heads(c, d->name);
        if (heads) {
            lt_rope_permute_rows(src, perm + d->offset, heads, lt_head_dim(c), d->cols, 1);
            src = perm + d->offset;
        }
        outs[i] = (lt_st_out){.name = names[i], .data = src, .ndim = 2, .shape = {d->rows, d->cols}};
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    const char *meta[] = {"format", "pt"};
    if ((st = lt_st_write_f32(path, outs, t->count, meta, 1, err)) != LT_OK) goto done;
    st = write_config(lc, dir, base_model, err);
done:
    free(host);
    free(perm);
    free(outs);
    free(names);
    return st;
}

lt_status lt_adapter_read_config(const char *dir, lt_lora_config *lc, lt_error *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    cJSON *root = NULL;
    lt_status st = lt_json_parse_file(path, 1u << 20, &root, err);
    if (st != LT_OK) return st;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return lt_fail(err, LT_ERR_FORMAT, "%s: not a JSON object", path);
    }
    memset(lc, 0, sizeof *lc);
    const cJSON *v;
#define FAIL(...)                                          \
    do {                                                   \
        st = lt_fail(err, LT_ERR_FORMAT, __VA_ARGS__);     \
        goto done;                                         \
    } while (0)
    v = cJSON_GetObjectItemCaseSensitive(root, "peft_type");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, "LORA") != 0)
        FAIL("%s: peft_type must be \"LORA\"", path);
    /* PEFT names the head class in task_type; only CAUSAL_LM (or none)
     * has the base_model.model.model.layers... keys of a causal LM. */
    v = cJSON_GetObjectItemCaseSensitive(root, "task_type");
    if (v && !cJSON_IsNull(v) && !(cJSON_IsString(v) && !strcmp(v->valuestring, "CAUSAL_LM")))
        FAIL("%s: task_type must be \"CAUSAL_LM\" or null, got %s", path,
             cJSON_IsString(v) ? v->valuestring : "a non-string");
    /* Options that change which weights exist or how they combine: read as
     * plain LoRA, such an adapter would load and silently compute
     * something else, so each is refused by name. */
    static const struct {
        const char *key, *what, *expected;
    } unsupported[] = {
        {"use_dora", "DoRA, weight-decomposed LoRA", "false"},
        {"lora_bias", "trained LoRA biases", "false"},
        {"modules_to_save", "fully trained extra modules", "null"},
        {"layers_to_transform", "adapters on a subset of layers", "null"},
        {"layer_replication", "replicated layers", "null"},
        {"exclude_modules", "excluded modules", "null"},
    };
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        v = cJSON_GetObjectItemCaseSensitive(root, unsupported[i].key);
        if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v) || ((cJSON_IsArray(v) || cJSON_IsObject(v)) && !v->child))
            continue;
        char *shown = cJSON_PrintUnformatted(v);
        st = lt_fail(err, LT_ERR_FORMAT, "%s: %s = %.60s: not supported (%s; expected %s)", path,
                     unsupported[i].key, shown ? shown : "?", unsupported[i].what, unsupported[i].expected);
        free(shown);
        goto done;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "r");
    if (!v) FAIL("%s: r is missing (expected a positive integer, the LoRA rank)", path);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 1 ||
        v->valuedouble > 1 << 20)
        FAIL("%s: r must be a positive integer", path);
    lc->r = (int)v->valuedouble;
    v = cJSON_GetObjectItemCaseSensitive(root, "lora_alpha");
    if (!v) FAIL("%s: lora_alpha is missing (expected a number)", path);
    if (!cJSON_IsNumber(v)) FAIL("%s: lora_alpha must be a number", path);
    lc->alpha = (float)v->valuedouble;
    v = cJSON_GetObjectItemCaseSensitive(root, "lora_dropout");
    if (v && !cJSON_IsNull(v) && !(cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1))
        FAIL("%s: lora_dropout must be a number in [0, 1)", path);
    lc->dropout = cJSON_IsNumber(v) ? (float)v->valuedouble : 0.0f;
    v = cJSON_GetObjectItemCaseSensitive(root, "use_rslora");
    if (v && !cJSON_IsNull(v) && !cJSON_IsBool(v)) FAIL("%s: use_rslora must be true or false", path);
    lc->use_rslora = cJSON_IsTrue(v);
    v = cJSON_GetObjectItemCaseSensitive(root, "bias");
    if (v && !(cJSON_IsString(v) && !strcmp(v->valuestring, "none")))
        FAIL("%s: bias must be \"none\" (trained biases are not supported)", path);
    v = cJSON_GetObjectItemCaseSensitive(root, "fan_in_fan_out");
    if (cJSON_IsTrue(v)) FAIL("%s: fan_in_fan_out must be false for Llama models", path);
    const char *patterns[] = {"rank_pattern", "alpha_pattern"};
    for (int i = 0; i < 2; i++) {
        v = cJSON_GetObjectItemCaseSensitive(root, patterns[i]);
        if (v && !cJSON_IsNull(v) && !(cJSON_IsObject(v) && !v->child))
            FAIL("%s: %s must be empty (per-module ranks are not supported)", path, patterns[i]);
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "target_modules");
    char list[512] = "";
    if (cJSON_IsString(v)) {
        /* PEFT full-matches any other string against whole module names
         * as a regular expression, which a list of names cannot mean. */
        if (strcmp(v->valuestring, "all-linear") != 0)
            FAIL("%s: target_modules = \"%.80s\": a regular expression is not supported (expected a list "
                 "of module names or \"all-linear\")", path, v->valuestring);
        snprintf(list, sizeof list, "%s", v->valuestring);
    } else if (cJSON_IsArray(v)) {
        for (const cJSON *it = v->child; it; it = it->next) {
            if (!cJSON_IsString(it)) FAIL("%s: target_modules must hold strings", path);
            size_t used = strlen(list);
            snprintf(list + used, sizeof list - used, "%s%s", used ? "," : "", it->valuestring);
        }
    } else if (!v) {
        FAIL("%s: target_modules is missing (expected a list of module names or \"all-linear\")", path);
    } else {
        FAIL("%s: target_modules must be a list of module names", path);
    }
    st = lt_lora_parse_targets(list, &lc->targets, err);
    if (st != LT_OK) lt_fail_context(err, "%s", path);
done:
#undef FAIL
    cJSON_Delete(root);
    return st;
}

lt_status lt_adapter_load(lt_model *m, const char *dir, lt_error *err) {
    lt_lora_config lc;
    lt_status st = lt_adapter_read_config(dir, &lc, err);
    if (st != LT_OK) return st;
    char cfg_path[4200];
    snprintf(cfg_path, sizeof cfg_path, "%s/adapter_config.json", dir);
    if ((st = lt_model_add_lora(m, &lc, 0, err)) != LT_OK) return lt_fail_context(err, "%s", cfg_path);
    return lt_adapter_load_weights(m, dir, err);
}

lt_status lt_adapter_load_weights(lt_model *m, const char *dir, lt_error *err) {
    lt_status st;
    char path[4200];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    lt_safetensors *sf = NULL;
    if ((st = lt_st_open(path, &sf, err)) != LT_OK) return st;
    const lt_param_table *t = lt_model_lora_table(m);
    const lt_model_config *c = lt_model_get_config(m);
    float *host = malloc(t->numel * sizeof(float)), *tmp = malloc(t->numel * sizeof(float));
    if (!host || !tmp) {
        st = lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < t->count; i++) {
        const lt_tensor_desc *d = &t->t[i];
        char name[LT_TENSOR_NAME_MAX + 32];
        snprintf(name, sizeof name, PEFT_PREFIX "%s", d->name);
        const lt_st_tensor *x = lt_st_find(sf, name);
        if (!x) {
            st = lt_fail(err, LT_ERR_FORMAT, "%s: missing tensor %s (the config targets it)", path, name);
            goto done;
        }
        if (x->ndim != 2 || x->shape[0] != d->rows || x->shape[1] != d->cols) {
            st = lt_fail(err, LT_ERR_FORMAT, "%s: tensor %s has shape [%lld, %lld], expected [%d, %d]",
                         path, name, x->ndim > 0 ? (long long)x->shape[0] : 0LL,
                         x->ndim > 1 ? (long long)x->shape[1] : 0LL, d->rows, d->cols);
            goto done;
        }
        float *dst = host + d->offset;
        int heads = lt_rope_rotary_heads(c, d->name);
        if ((st = lt_st_read_f32(sf, x, heads ? tmp : dst, lt_tensor_numel(d), err)) != LT_OK) goto done;
        if (heads) lt_rope_permute_rows(tmp, dst, heads, lt_head_dim(c), d->cols, 0);
        for (size_t k = 0; k < lt_tensor_numel(d); k++)
            if (!isfinite(dst[k])) {
                st = lt_fail(err, LT_ERR_FORMAT, "%s: tensor %s element %zu is not finite", path, name, k);
                goto done;
            }
    }
    if (lt_st_count(sf) != t->count) {
        /* Name the first tensor no targeted module owns: a layer the model
         * does not have, or a module target_modules leaves out. */
        const char *extra = NULL;
        for (int k = 0; k < lt_st_count(sf) && !extra; k++) {
            const char *n = lt_st_at(sf, k)->name;
            int known = 0;
            if (!strncmp(n, PEFT_PREFIX, strlen(PEFT_PREFIX)))
                for (int i = 0; i < t->count && !known; i++) known = !strcmp(n + strlen(PEFT_PREFIX), t->t[i].name);
            if (!known) extra = n;
        }
        if (extra)
            st = lt_fail(err, LT_ERR_FORMAT, "%s: tensor %s is not a LoRA weight of the model as the config "
                         "targets it (%d layers; holds %d tensors, expected %d)", path, extra,
                         c->n_layers, lt_st_count(sf), t->count);
        else
            st = lt_fail(err, LT_ERR_FORMAT, "%s: holds %d tensors, the config implies %d", path,
                         lt_st_count(sf), t->count);
        goto done;
    }
    lt_model_get_ops(m)->upload(lt_model_get_ops(m), lt_model_lora_params(m), host,
                                t->numel * sizeof(float));
done:
    free(host);
    free(tmp);
    lt_st_close(sf);
    return st;
}
