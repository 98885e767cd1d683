#include "io/data/chat_records.h"

#include <stdint.h>
#include <string.h>

#include "core/alloc.h"

void lt_chat_tokens_free(lt_chat_tokens *ct) {
    if (!ct) return;
    lt_free(ct->ids);
    lt_free(ct->assistant);
    memset(ct, 0, sizeof *ct);
}

static const char *json_kind(const cJSON *v) {
    if (!v) return "missing";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "not a string";
}

static lt_status check_messages(const cJSON *messages, size_t *count, lt_error *err) {
    if (!cJSON_IsArray(messages))
        return lt_fail(err, LT_ERR_FORMAT, "messages is %s, expected an array of {\"role\", \"content\"} objects",
                       json_kind(messages));
    size_t i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages) {
        if (!cJSON_IsObject(m))
            return lt_fail(err, LT_ERR_FORMAT, "messages[%zu] is %s, expected an object with \"role\" and "
                           "\"content\"", i, json_kind(m));
        static const char *const fields[2] = {"role", "content"};
        for (int f = 0; f < 2; f++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, fields[f]);
            if (!cJSON_IsString(v) || !v->valuestring)
                return lt_fail(err, LT_ERR_FORMAT, "messages[%zu].%s is %s, expected a string%s", i, fields[f],
                               json_kind(v),
                               f == 1 && cJSON_IsArray(v) ? " (content parts are not supported)" : "");
        }
        i++;
    }
    if (i == 0) return lt_fail(err, LT_ERR_FORMAT, "messages is empty, expected at least one message");
    *count = i;
    return LT_OK;
}

static int is_spm(const lt_tokenizer *tok) { return !strncmp(lt_tokenizer_kind(tok), "sentencepiece", 13); }

/* The first occurrence of the BOS or EOS spelling in text[0, len): its
 * offset (len: none), *which the id, *slen its length. */
static size_t next_special(const lt_chat_template *t, const lt_tokenizer *tok, const char *text, size_t len,
                           int32_t *which, size_t *slen) {
    const char *sp[2] = {lt_chat_template_bos(t), lt_chat_template_eos(t)};
    const int32_t id[2] = {lt_tokenizer_bos(tok), lt_tokenizer_eos(tok)};
    size_t best = len;
    for (int k = 0; k < 2; k++) {
        if (!sp[k] || !*sp[k] || id[k] < 0) continue;
        const size_t m = strlen(sp[k]);
        for (size_t i = 0; i + m <= len && i < best; i++)
            if (text[i] == sp[k][0] && !memcmp(text + i, sp[k], m)) {
                best = i;
                *which = id[k];
                *slen = m;
                break;
            }
    }
    return best;
}

/* encode(text) with no BOS/EOS added, into a fresh array. tokenizer.json
 * cuts out its added tokens itself; for SentencePiece the BOS and EOS
 * spellings are cut out here and every other stretch encoded alone, with
 * its own dummy prefix, as transformers' (legacy) LlamaTokenizer does. */
static lt_status encode(const lt_chat_template *t, const lt_tokenizer *tok, const char *text, size_t len,
                        int32_t **ids, size_t *n, lt_error *err) {
    /* add_prefix_space may add one id per piece: 2 len + 3 holds. A
     * SentencePiece stretch of c bytes takes at most c + 3 ids and ends at
     * a special spelling of at least one byte (one id): 5 len + 3 holds. */
    if (len > (SIZE_MAX / sizeof(int32_t) - 3) / 5)
        return lt_fail(err, LT_ERR_FORMAT, "a conversation of %zu bytes is too long to encode", len);
    const int spm = is_spm(tok);
    const size_t cap = (spm ? 5 : 2) * len + 3;
    *ids = lt_alloc(LT_MEM_OTHER, cap * sizeof(int32_t));
    if (!*ids) return lt_fail(err, LT_ERR_NOMEM, "cannot allocate %zu token ids", cap);
    lt_status st = LT_OK;
    *n = 0;
    if (!spm) {
        st = lt_tokenizer_encode(tok, text, len, 0, 0, *ids, cap, n, err);
    } else {
        size_t pos = 0;
        while (st == LT_OK && pos < len) {
            int32_t special = -1;
            size_t slen = 0;
            const size_t at = pos + next_special(t, tok, text + pos, len - pos, &special, &slen);
            size_t got = 0;
            if (at > pos) st = lt_tokenizer_encode(tok, text + pos, at - pos, 0, 0, *ids + *n, cap - *n, &got, err);
            *n += got;
            if (st == LT_OK && at < len) (*ids)[(*n)++] = special;
            pos = at + slen;
        }
    }
    if (st != LT_OK) {
        lt_free(*ids);
        *ids = NULL;
    }
    return st;
}

/* The length of the common prefix of encode(text[0, len)) and ids[0, n). */
static lt_status common_tokens(const lt_chat_template *t, const lt_tokenizer *tok, const char *text, size_t len,
                               const int32_t *ids, size_t n, size_t *out, lt_error *err) {
    int32_t *p = NULL;
    size_t m = 0;
    lt_status st = encode(t, tok, text, len, &p, &m, err);
    if (st != LT_OK) return st;
    size_t k = 0;
    while (k < m && k < n && p[k] == ids[k]) k++;
    lt_free(p);
    *out = k;
    return LT_OK;
}

static int is_prefix(const char *a, size_t alen, const char *b, size_t blen) {
    return alen <= blen && memcmp(a, b, alen) == 0;
}

lt_status lt_chat_encode(const lt_chat_template *t, const lt_tokenizer *tok, const cJSON *messages,
                         lt_chat_tokens *out, lt_error *err) {
    memset(out, 0, sizeof *out);
    if (!t || !tok) return lt_fail(err, LT_ERR_INVALID, "chat encode: NULL template or tokenizer");
    size_t count = 0;
    lt_status st = check_messages(messages, &count, err);
    if (st != LT_OK) return st;

    char *whole = NULL, *pre = NULL, *upto = NULL;
    size_t wlen = 0, plen = 0, ulen = 0;
    if ((st = lt_chat_template_render(t, messages, count, 0, &whole, &wlen, err)) != LT_OK) return st;
    if ((st = encode(t, tok, whole, wlen, &out->ids, &out->n, err)) != LT_OK) goto done;
    out->assistant = lt_alloc(LT_MEM_OTHER, out->n ? out->n : 1);
    if (!out->assistant) {
        st = lt_fail(err, LT_ERR_NOMEM, "cannot allocate %zu mask bytes", out->n);
        goto done;
    }
    memset(out->assistant, 0, out->n);

    size_t i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages) {
        const char *role = cJSON_GetObjectItemCaseSensitive(m, "role")->valuestring;
        if (strcmp(role, "assistant") != 0) {
            i++;
            continue;
        }
        if ((st = lt_chat_template_render(t, messages, i, 1, &pre, &plen, err)) != LT_OK ||
            (st = lt_chat_template_render(t, messages, i + 1, 0, &upto, &ulen, err)) != LT_OK)
            goto done;
        if (!is_prefix(pre, plen, upto, ulen) || !is_prefix(upto, ulen, whole, wlen)) {
            const int gen = !is_prefix(pre, plen, upto, ulen);
            st = lt_fail(err, LT_ERR_FORMAT,
                         "messages[%zu] (assistant): template %s renders %s, so the turn cannot be "
                         "located; expected renders of a conversation's beginnings to begin its render",
                         i, lt_chat_template_name(t),
                         gen ? "messages before it with the generation prompt as other than the start of "
                               "messages up to it"
                             : "messages up to it as other than the start of the whole conversation");
            goto done;
        }
        size_t a = 0, b = 0;
        if ((st = common_tokens(t, tok, pre, plen, out->ids, out->n, &a, err)) != LT_OK ||
            (st = common_tokens(t, tok, upto, ulen, out->ids, out->n, &b, err)) != LT_OK)
            goto done;
        for (size_t k = a; k < b; k++) out->assistant[k] = 1;
        lt_free(pre);
        lt_free(upto);
        pre = upto = NULL;
        i++;
    }
done:
    lt_free(whole);
    lt_free(pre);
    lt_free(upto);
    if (st != LT_OK) lt_chat_tokens_free(out);
    return st;
}
