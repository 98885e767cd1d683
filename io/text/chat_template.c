/* Chat templates: parsing (normalising the source, then lexing and parsing
 * it), the bos/eos variables, and loading from tokenizer_config.json or a
 * .jinja file. Rendering, lt_chat_template_render, is in jinja_eval.c. */
#include "io/text/chat_template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/fileutil.h"
#include "io/json.h"
#include "io/text/jinja_internal.h"

#define TEMPLATE_FILE_MAX (16u << 20)

static char *dup_str(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s);
    char *d = lt_alloc(LT_MEM_OTHER, n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

void lt_chat_template_free(lt_chat_template *t) {
    if (!t) return;
    lt_jinja_arena_free(&t->mem);
    lt_free(t->src);
    lt_free(t->name);
    lt_free(t->bos);
    lt_free(t->eos);
    lt_free(t);
}

lt_status lt_chat_template_parse(const char *src, size_t len, const char *name,
                                 lt_chat_template **out, lt_error *err) {
    if (!out) return lt_fail(err, LT_ERR_INVALID, "chat template parse: NULL output");
    *out = NULL;
    if (!src && len) return lt_fail(err, LT_ERR_INVALID, "chat template parse: NULL source");
    if (!name) name = "(string)";
    lt_chat_template *t = lt_alloc(LT_MEM_OTHER, sizeof *t);
    if (!t) return lt_fail(err, LT_ERR_NOMEM, "chat template %s: out of memory", name);
    t->name = dup_str(name);
    t->src = lt_alloc(LT_MEM_OTHER, len + 1);
    if (!t->name || !t->src) {
        lt_chat_template_free(t);
        return lt_fail(err, LT_ERR_NOMEM, "chat template %s: out of memory", name);
    }
    /* Jinja2 reads \r\n and \r as \n and drops one trailing newline. */
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            t->src[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            t->src[n++] = src[i];
        }
    }
    if (n && t->src[n - 1] == '\n') n--;
    t->src[n] = '\0';
    t->src_len = n;
    if (memchr(t->src, '\0', n)) {
        size_t at = (size_t)((char *)memchr(t->src, '\0', n) - t->src);
        lt_status st =
            lt_jinja_fail_at(err, LT_ERR_FORMAT, t->name, t->src, n, at, "NUL byte in the template");
        lt_chat_template_free(t);
        return st;
    }
    token *toks = NULL;
    size_t ntok = 0;
    lt_status st = lt_jinja_lex(t, &toks, &ntok, err);
    if (st == LT_OK) st = lt_jinja_parse(t, toks, ntok, err);
    lt_free(toks);
    if (st != LT_OK) {
        lt_chat_template_free(t);
        return st;
    }
    *out = t;
    return LT_OK;
}

lt_status lt_chat_template_set_tokens(lt_chat_template *t, const char *bos_token,
                                      const char *eos_token, lt_error *err) {
    if (!t) return lt_fail(err, LT_ERR_INVALID, "chat template: NULL template");
    lt_free(t->bos);
    lt_free(t->eos);
    t->bos = dup_str(bos_token);
    t->eos = dup_str(eos_token);
    if ((bos_token && !t->bos) || (eos_token && !t->eos))
        return lt_fail(err, LT_ERR_NOMEM, "chat template %s: out of memory", t->name);
    return LT_OK;
}

const char *lt_chat_template_bos(const lt_chat_template *t) { return t ? t->bos : NULL; }
const char *lt_chat_template_eos(const lt_chat_template *t) { return t ? t->eos : NULL; }
const char *lt_chat_template_name(const lt_chat_template *t) { return t ? t->name : ""; }

/* ---------------------------------------------------------- loading */

static const char *config_token(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

lt_status lt_chat_template_load(const char *spec, const char *tokenizer_dir,
                                const char *bos_fallback, const char *eos_fallback,
                                lt_chat_template **out, lt_error *err) {
    if (!out || !spec) return lt_fail(err, LT_ERR_INVALID, "chat template load: NULL spec or output");
    *out = NULL;
    char cfg_path[4200];
    cJSON *cfg = NULL;
    char *raw = NULL;
    uint64_t size = 0;
    lt_status st = LT_OK;
    const int from_tok = !strcmp(spec, "tokenizer");
    if (tokenizer_dir) {
        snprintf(cfg_path, sizeof cfg_path, "%s/tokenizer_config.json", tokenizer_dir);
        lt_error e2;
        if (lt_read_file(cfg_path, TEMPLATE_FILE_MAX, &raw, &size, &e2) == LT_OK) {
            st = lt_json_parse(raw, (size_t)size, cfg_path, 1, &cfg, err);
            free(raw);
            raw = NULL;
            if (st != LT_OK) return st;
        } else if (from_tok) {
            return lt_fail(err, LT_ERR_CONFIG,
                           "chat_template = \"tokenizer\", but %s cannot be read (%s); expected a "
                           "tokenizer_config.json with \"chat_template\" next to the tokenizer, or "
                           "chat_template set to a .jinja file",
                           cfg_path, e2.msg);
        }
    } else if (from_tok) {
        return lt_fail(err, LT_ERR_CONFIG,
                       "chat_template = \"tokenizer\", but there is no tokenizer directory to read "
                       "tokenizer_config.json from; set chat_template to a .jinja file");
    }
    const char *src = NULL, *name = spec;
    if (from_tok) {
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
        if (cJSON_IsString(ct)) {
            src = ct->valuestring;
        } else if (cJSON_IsArray(ct)) {
            const cJSON *e;
            cJSON_ArrayForEach(e, ct) {
                const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name");
                const cJSON *tp = cJSON_GetObjectItemCaseSensitive(e, "template");
                if (cJSON_IsString(n) && !strcmp(n->valuestring, "default") && cJSON_IsString(tp))
                    src = tp->valuestring;
            }
            if (!src)
                st = lt_fail(err, LT_ERR_FORMAT,
                             "%s: chat_template is a list without an entry {\"name\": \"default\", "
                             "\"template\": \"...\"}, expected one",
                             cfg_path);
        } else {
            st = lt_fail(err, LT_ERR_FORMAT,
                         "%s: no \"chat_template\" string, expected one (or set chat_template to "
                         "a .jinja file)",
                         cfg_path);
        }
        name = cfg_path;
    } else {
        st = lt_read_file(spec, TEMPLATE_FILE_MAX, &raw, &size, err);
        if (st == LT_OK) src = raw;
        else lt_fail_context(err, "chat_template");
    }
    lt_chat_template *t = NULL;
    if (st == LT_OK)
        st = lt_chat_template_parse(src, raw ? (size_t)size : strlen(src), name, &t, err);
    if (st == LT_OK) {
        const char *bos = config_token(cfg, "bos_token"), *eos = config_token(cfg, "eos_token");
        st = lt_chat_template_set_tokens(t, bos ? bos : bos_fallback, eos ? eos : eos_fallback, err);
    }
    free(raw);
    cJSON_Delete(cfg);
    if (st != LT_OK) {
        lt_chat_template_free(t);
        return st;
    }
    *out = t;
    return LT_OK;
}
