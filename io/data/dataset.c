#include "io/data/dataset.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "io/data/chat_records.h"
#include "io/data/token_file.h"
#include "io/fileutil.h"
#include "io/json.h"
#include "model/llama.h"

/* Plain text is encoded in pieces of about this many bytes: the tokenizer's
 * working memory is ~28 bytes per input byte, which for a whole large
 * corpus in one call would dwarf the corpus itself. */
#define ENCODE_CHUNK_BYTES (256u << 10)
/* The tokenizer's id for the byte-fallback piece <0x0A> (byte + 3). */
#define NEWLINE_BYTE_ID ('\n' + 3)

/* ------------------------------------------------------- growable arrays */

/* Grows *p (elements of elem bytes, *cap of them) to hold at least need,
 * through the tracked allocator (which has no realloc). */
static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 4096;
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem) return 0;
        c *= 2;
    }
    void *q = lt_alloc(LT_MEM_OTHER, c * elem);
    if (!q) return 0;
    if (*p) {
        memcpy(q, *p, *cap * elem);
        lt_free(*p);
    }
    *p = q;
    *cap = c;
    return 1;
}

/* Trims a finished array to its length: a doubling array can be up to half
 * slack, which for a large corpus is real memory. */
static void shrink(void **p, size_t *cap, size_t n, size_t elem) {
    if (!*p || n == *cap || n == 0) return;
    void *q = lt_alloc(LT_MEM_OTHER, n * elem);
    if (!q) return; /* keeping the larger block is still correct */
    memcpy(q, *p, n * elem);
    lt_free(*p);
    *p = q;
    *cap = n;
}

typedef struct {
    int32_t *v;
    size_t n, cap;
} ivec;

/* The token stream while it is built. */
typedef struct {
    ivec ids;
    uint8_t *mask; /* 1: the token may be a target; NULL: every token may */
    size_t mask_cap;
    size_t *off; /* record starts and the end (unpacked): nrec + 1 entries */
    size_t nrec, off_cap;
} corpus;

static void corpus_free(corpus *c) {
    lt_free(c->ids.v);
    lt_free(c->mask);
    lt_free(c->off);
    memset(c, 0, sizeof *c);
}

/* ----------------------------------------------------------------- UTF-8 */

/* Error for invalid UTF-8 at byte bad of buf; line numbering starts at
 * first_line at buf[0]. */
static lt_status utf8_error(const char *path, const char *buf, size_t bad, size_t first_line,
                            lt_error *err) {
    size_t line = first_line, start = 0;
    for (size_t i = 0; i < bad; i++)
        if (buf[i] == '\n') {
            line++;
            start = i + 1;
        }
    return lt_fail(err, LT_ERR_FORMAT,
                   "%s line %zu column %zu: invalid UTF-8 sequence starting with byte 0x%02x, "
                   "expected UTF-8 text",
                   path, line, bad - start + 1, (unsigned)(unsigned char)buf[bad]);
}

/* ------------------------------------------------------------- encoding */

/* Whether text may be encoded in pieces cut just before a '\n'. That holds
 * when '\n' falls back to its byte piece, which never merges: merges on
 * either side of it are then independent, and a piece starting with '\n'
 * encodes as [dummy prefix, <0x0A>, the rest exactly as in the whole text].
 * Vocabularies with a real "\n" piece (it may merge) get one call. */
static int newline_is_barrier(const lt_tokenizer *tok) {
    int32_t ids[4];
    size_t n = 0;
    if (lt_tokenizer_encode(tok, "\n", 1, 0, 0, ids, 4, &n, NULL) != LT_OK) return 0;
    return n == 2 && ids[1] == NEWLINE_BYTE_ID;
}

/* Appends encode(text) (with BOS/EOS as asked) to out: exactly the ids one
 * lt_tokenizer_encode call over the whole text gives. */
static lt_status encode_append(const lt_tokenizer *tok, int chunked, const char *text, size_t len,
                               int add_bos, int add_eos, ivec *out, lt_error *err) {
    size_t pos = 0;
    int first = 1;
    do {
        size_t end = len;
        if (chunked && len - pos > ENCODE_CHUNK_BYTES) {
            const char *nl =
                memchr(text + pos + ENCODE_CHUNK_BYTES, '\n', len - pos - ENCODE_CHUNK_BYTES);
            if (nl) end = (size_t)(nl - text);
        }
        const int bos = first && add_bos, eos = end == len && add_eos;
        const size_t cap = end - pos + 3;
        if (!grow((void **)&out->v, &out->cap, out->n + cap, sizeof(int32_t)))
            return lt_fail(err, LT_ERR_NOMEM, "cannot allocate %zu token ids", out->n + cap);
        size_t got = 0;
        lt_status st = lt_tokenizer_encode(tok, text + pos, end - pos, bos, eos, out->v + out->n,
                                           cap, &got, err);
        if (st != LT_OK) return st;
        if (!first) {
            /* The piece starts with '\n': drop the dummy prefix in front. */
            if (got < 2 || out->v[out->n + 1] != NEWLINE_BYTE_ID)
                return lt_fail(err, LT_ERR_INTERNAL,
                               "encoding in pieces: a piece at byte %zu did not start with "
                               "<0x0A>",
                               pos);
            memmove(out->v + out->n, out->v + out->n + 1, (got - 1) * sizeof(int32_t));
            got--;
        }
        out->n += got;
        pos = end;
        first = 0;
    } while (pos < len);
    return LT_OK;
}

/* -------------------------------------------------------------- records */

typedef struct {
    const char *path;
    const lt_tokenizer *tok;
    const lt_data_config *cfg;
    int chunked;
    int packed;
    corpus *c;
    ivec prompt;  /* scratch: encode(prompt) */
    char *joined; /* scratch: prompt + completion */
    size_t joined_cap;
    lt_chat_template *chat; /* loaded at the first conversation */
    int kind0;              /* the first record's kind (KIND_*), -1 before it */
    size_t line0;           /* and its line */
} record_ctx;

typedef enum { REC_TEXT, REC_TEMPLATE, REC_PROMPT } record_kind;

static lt_status finish_record(record_ctx *x, size_t s, const uint8_t *allow, size_t L, size_t line,
                               lt_error *err);

/* Appends one record: BOS + encode(head + tail) + EOS, with the tokens
 * inside the common prefix of that and BOS + encode(head) not targets. */
static lt_status add_record(record_ctx *x, record_kind kind, const char *head, size_t hlen,
                            const char *tail, size_t tlen, size_t line, lt_error *err) {
    corpus *c = x->c;
    const char *full = head;
    if (kind == REC_PROMPT) {
        if (!grow((void **)&x->joined, &x->joined_cap, hlen + tlen + 1, 1))
            return lt_fail(err, LT_ERR_NOMEM, "%s line %zu: cannot allocate %zu bytes", x->path,
                           line, hlen + tlen + 1);
        memcpy(x->joined, head, hlen);
        memcpy(x->joined + hlen, tail, tlen);
        full = x->joined;
    }
    const size_t flen = hlen + tlen; /* REC_TEMPLATE: head and tail are adjacent */
    const size_t s = c->ids.n;
    lt_status st = encode_append(x->tok, x->chunked, full, flen, 1, 1, &c->ids, err);
    if (st != LT_OK) return lt_fail_context(err, "%s line %zu", x->path, line);
    const size_t m = c->ids.n - s;
    const int32_t *ids = c->ids.v + s;

    size_t L = 1; /* BOS */
    if (kind != REC_TEXT) {
        x->prompt.n = 0;
        st = encode_append(x->tok, x->chunked, head, hlen, 1, 0, &x->prompt, err);
        if (st != LT_OK) return lt_fail_context(err, "%s line %zu", x->path, line);
        L = 0;
        while (L < m && L < x->prompt.n && ids[L] == x->prompt.v[L]) L++;
    }
    const char *what = kind == REC_TEXT       ? "the text is empty, expected text to train on"
                       : kind == REC_TEMPLATE ? "nothing follows response_template, expected a "
                                                "response to train on"
                                              : "the completion adds no tokens after the prompt, "
                                                "expected a non-empty completion";
    if (L + 1 >= m) return lt_fail(err, LT_ERR_FORMAT, "%s line %zu: %s", x->path, line, what);
    return finish_record(x, s, NULL, L, line, err);
}

/* The record just appended at ids[s, end): keeps the first T + 1 tokens
 * when unpacked (or rejects it), sets its loss mask (allow[i], or i >= L
 * when allow is NULL; never the first token) and its offsets. */
static lt_status finish_record(record_ctx *x, size_t s, const uint8_t *allow, size_t L, size_t line,
                               lt_error *err) {
    corpus *c = x->c;
    const size_t m = c->ids.n - s;
    size_t keep = m;
    const size_t T1 = (size_t)x->cfg->seq_len + 1;
    if (!x->packed && m > T1) {
        if (!x->cfg->truncate)
            return lt_fail(err, LT_ERR_FORMAT,
                           "%s line %zu: record is %zu tokens, expected at most max_seq_length + 1 = "
                           "%zu (or enable truncation)",
                           x->path, line, m, T1);
        size_t first = L;
        if (allow)
            for (first = 1; first < m && !allow[first]; first++) {
            }
        if (first >= T1)
            return lt_fail(err, LT_ERR_FORMAT,
                           "%s line %zu: the %s is %zu tokens, so truncating the record to "
                           "max_seq_length + 1 = %zu tokens leaves nothing to train on; expected a "
                           "longer seq_len or a shorter %s",
                           x->path, line, allow ? "part before the first trained token" : "prompt", first,
                           T1, allow ? "conversation" : "prompt");
        keep = T1;
        c->ids.n = s + keep;
    }
    if (!grow((void **)&c->mask, &c->mask_cap, c->ids.n, 1))
        return lt_fail(err, LT_ERR_NOMEM, "%s line %zu: cannot allocate the loss mask", x->path,
                       line);
    for (size_t i = 0; i < keep; i++) c->mask[s + i] = i > 0 && (allow ? allow[i] != 0 : i >= L);
    if (!x->packed) {
        if (!grow((void **)&c->off, &c->off_cap, c->nrec + 2, sizeof(size_t)))
            return lt_fail(err, LT_ERR_NOMEM, "%s line %zu: cannot allocate record offsets",
                           x->path, line);
        c->off[c->nrec] = s;
        c->off[++c->nrec] = s + keep;
    } else {
        c->nrec++;
    }
    return LT_OK;
}

static const char *json_type_name(const cJSON *v) {
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    if (cJSON_IsString(v)) return "a string";
    return "missing";
}

static lt_status string_field(const record_ctx *x, const cJSON *obj, const char *name, size_t line,
                              const char **s, size_t *len, lt_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!cJSON_IsString(v) || !v->valuestring)
        return lt_fail(err, LT_ERR_FORMAT, "%s line %zu: field \"%s\" is %s, expected a string",
                       x->path, line, name, json_type_name(v));
    *s = v->valuestring;
    *len = strlen(v->valuestring);
    return LT_OK;
}

static const char *find_bytes(const char *hay, size_t n, const char *needle, size_t m) {
    if (m == 0 || m > n) return NULL;
    for (const char *p = hay, *end = hay + (n - m) + 1; p < end; p++) {
        p = memchr(p, needle[0], (size_t)(end - p));
        if (!p) return NULL;
        if (memcmp(p, needle, m) == 0) return p;
    }
    return NULL;
}

/* Where tokenizer_config.json would be: the tokenizer's directory, or the
 * folder of its file. */
static void tokenizer_dir(const char *path, char *dir, size_t cap) {
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(dir, cap, "%s", path);
        return;
    }
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, cap, ".");
    else
        snprintf(dir, cap, "%.*s", (int)(slash - path == 0 ? 1 : slash - path), path);
}

/* A conversation: the chat template's render, trained on every token or,
 * with assistant_only_loss, on the assistant turns (io/data/chat_records.h). */
static lt_status chat_record(record_ctx *x, const cJSON *messages, size_t line, lt_error *err) {
    const lt_data_config *cfg = x->cfg;
    lt_status st;
    if (!x->chat) {
        const char *spec = cfg->chat_template && *cfg->chat_template ? cfg->chat_template : "tokenizer";
        char dir[4096];
        if (cfg->tokenizer_path && *cfg->tokenizer_path) tokenizer_dir(cfg->tokenizer_path, dir, sizeof dir);
        /* SentencePiece's own spellings of its control pieces, which
         * Llama 2's tokenizer_config.json names too. */
        const int spm = !strncmp(lt_tokenizer_kind(x->tok), "sentencepiece", 13);
        st = lt_chat_template_load(spec, cfg->tokenizer_path && *cfg->tokenizer_path ? dir : NULL,
                                   spm ? "<s>" : NULL, spm ? "</s>" : NULL, &x->chat, err);
        if (st != LT_OK)
            return lt_fail_context(err, "%s line %zu: field \"%s\" is a conversation, which needs a chat "
                                   "template (config key chat_template)", x->path, line, cfg->messages_field);
    }
    lt_chat_tokens ct;
    if ((st = lt_chat_encode(x->chat, x->tok, messages, &ct, err)) != LT_OK)
        return lt_fail_context(err, "%s line %zu: field \"%s\"", x->path, line, cfg->messages_field);
    corpus *c = x->c;
    const size_t s = c->ids.n;
    size_t trained = 0;
    for (size_t i = 1; i < ct.n; i++) trained += cfg->assistant_only_loss ? ct.assistant[i] : 1;
    if (trained == 0) {
        lt_chat_tokens_free(&ct);
        return lt_fail(err, LT_ERR_FORMAT, "%s line %zu: field \"%s\" leaves no token to train on, expected %s",
                       x->path, line, cfg->messages_field,
                       cfg->assistant_only_loss ? "an assistant turn with content (assistant_only_loss is on)"
                                                : "a conversation that renders to at least two tokens");
    }
    if (!grow((void **)&c->ids.v, &c->ids.cap, s + ct.n, sizeof(int32_t))) {
        lt_chat_tokens_free(&ct);
        return lt_fail(err, LT_ERR_NOMEM, "%s line %zu: cannot allocate %zu token ids", x->path, line, s + ct.n);
    }
    memcpy(c->ids.v + s, ct.ids, ct.n * sizeof(int32_t));
    c->ids.n = s + ct.n;
    if (!cfg->assistant_only_loss) memset(ct.assistant, 1, ct.n);
    st = finish_record(x, s, ct.assistant, 0, line, err);
    lt_chat_tokens_free(&ct);
    return st;
}

/* What a JSONL record is, by its fields: one kind per file, as a
 * dataset's columns are one schema (a file mixing them is more likely two
 * files pasted together than a plan). */
enum { KIND_TEXT, KIND_PROMPT, KIND_MESSAGES };

static void kind_name(const lt_data_config *cfg, int kind, char *buf, size_t cap) {
    if (kind == KIND_TEXT) snprintf(buf, cap, "{\"%s\"}", cfg->text_field);
    else if (kind == KIND_PROMPT) snprintf(buf, cap, "{\"%s\", \"%s\"}", cfg->prompt_field, cfg->completion_field);
    else snprintf(buf, cap, "{\"%s\"}", cfg->messages_field);
}

static lt_status same_kind(record_ctx *x, int kind, size_t line, lt_error *err) {
    if (x->kind0 < 0) {
        x->kind0 = kind;
        x->line0 = line;
        return LT_OK;
    }
    if (kind == x->kind0) return LT_OK;
    char now[160], first[160];
    kind_name(x->cfg, kind, now, sizeof now);
    kind_name(x->cfg, x->kind0, first, sizeof first);
    return lt_fail(err, LT_ERR_FORMAT,
                   "%s line %zu: a %s record, but line %zu (the first record) is a %s record; expected "
                   "every record of a file to be of one kind",
                   x->path, line, now, x->line0, first);
}

static lt_status json_record(record_ctx *x, const cJSON *obj, size_t line, lt_error *err) {
    const lt_data_config *cfg = x->cfg;
    const cJSON *conv = cJSON_GetObjectItemCaseSensitive(obj, cfg->messages_field);
    /* Field names are matched exactly (cJSON_HasObjectItem ignores case). */
    const int has_t = cJSON_GetObjectItemCaseSensitive(obj, cfg->text_field) != NULL;
    const int has_p = cJSON_GetObjectItemCaseSensitive(obj, cfg->prompt_field) != NULL;
    const int has_c = cJSON_GetObjectItemCaseSensitive(obj, cfg->completion_field) != NULL;
    const char *a, *b;
    size_t alen, blen;
    lt_status st;
    if (conv && (has_t || has_p || has_c))
        return lt_fail(err, LT_ERR_FORMAT,
                       "%s line %zu: has both field \"%s\" and field \"%s\", expected a conversation "
                       "or text or prompt and completion",
                       x->path, line, cfg->messages_field,
                       has_t ? cfg->text_field : has_p ? cfg->prompt_field : cfg->completion_field);
    if (conv) {
        if ((st = same_kind(x, KIND_MESSAGES, line, err)) != LT_OK) return st;
        return chat_record(x, conv, line, err);
    }
    if (has_t && (has_p || has_c))
        return lt_fail(err, LT_ERR_FORMAT,
                       "%s line %zu: has both field \"%s\" and field \"%s\", expected either "
                       "\"%s\" or \"%s\" and \"%s\"",
                       x->path, line, cfg->text_field,
                       has_p ? cfg->prompt_field : cfg->completion_field, cfg->text_field,
                       cfg->prompt_field, cfg->completion_field);
    /* (a prompt without its completion is named as that, below) */
    if (has_t || (has_p && has_c)) {
        if ((st = same_kind(x, has_t ? KIND_TEXT : KIND_PROMPT, line, err)) != LT_OK) return st;
    }
    if (has_t) {
        if ((st = string_field(x, obj, cfg->text_field, line, &a, &alen, err)) != LT_OK) return st;
        const char *tpl = cfg->response_template;
        if (!tpl || !*tpl) return add_record(x, REC_TEXT, a, alen, NULL, 0, line, err);
        const char *at = find_bytes(a, alen, tpl, strlen(tpl));
        if (!at)
            return lt_fail(err, LT_ERR_FORMAT,
                           "%s line %zu: field \"%s\" does not contain response_template \"%s\"",
                           x->path, line, cfg->text_field, tpl);
        size_t cut = (size_t)(at - a) + strlen(tpl);
        return add_record(x, REC_TEMPLATE, a, cut, a + cut, alen - cut, line, err);
    }
    if (has_p && has_c) {
        if ((st = string_field(x, obj, cfg->prompt_field, line, &a, &alen, err)) != LT_OK)
            return st;
        if ((st = string_field(x, obj, cfg->completion_field, line, &b, &blen, err)) != LT_OK)
            return st;
        return add_record(x, REC_PROMPT, a, alen, b, blen, line, err);
    }
    if (has_p || has_c)
        return lt_fail(err, LT_ERR_FORMAT,
                       "%s line %zu: field \"%s\" is missing, expected it with \"%s\"", x->path,
                       line, has_p ? cfg->completion_field : cfg->prompt_field,
                       has_p ? cfg->prompt_field : cfg->completion_field);
    return lt_fail(err, LT_ERR_FORMAT,
                   "%s line %zu: field \"%s\" is missing, expected \"%s\", or \"%s\" and \"%s\", or \"%s\"",
                   x->path, line, cfg->text_field, cfg->text_field, cfg->prompt_field,
                   cfg->completion_field, cfg->messages_field);
}

static int is_json_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; }

static lt_status parse_jsonl(record_ctx *x, const char *buf, size_t len, lt_error *err) {
    size_t line = 0;
    for (size_t pos = 0; pos < len;) {
        line++;
        const char *p = buf + pos;
        const char *nl = memchr(p, '\n', len - pos);
        const size_t ll = nl ? (size_t)(nl - p) : len - pos;
        pos += ll + (nl != NULL);
        size_t k = 0;
        while (k < ll && is_json_space(p[k])) k++;
        if (k == ll) continue;
        /* The strict check names NUL bytes, invalid UTF-8 and escapes
         * cJSON would turn into a cut string, at this line and column. */
        cJSON *obj = NULL;
        lt_status st = lt_json_parse(p, ll, x->path, line > INT32_MAX ? INT32_MAX : (int)line, &obj, err);
        if (st != LT_OK) return st;
        if (!cJSON_IsObject(obj))
            st = lt_fail(err, LT_ERR_FORMAT, "%s line %zu: the line is %s, expected a JSON object",
                         x->path, line, json_type_name(obj));
        else
            st = json_record(x, obj, line, err);
        cJSON_Delete(obj);
        if (st != LT_OK) return st;
    }
    if (x->c->nrec == 0)
        return lt_fail(err, LT_ERR_FORMAT,
                       "%s: no records (only blank lines), expected one JSON object per line",
                       x->path);
    return LT_OK;
}

/* ---------------------------------------------------------------- files */

typedef enum { FMT_TEXT, FMT_JSONL, FMT_TOKENS } file_format;

static int ends_with_ci(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    if (m > n) return 0;
    for (size_t i = 0; i < m; i++) {
        char a = s[n - m + i], b = suffix[i];
        if (a >= 'A' && a <= 'Z') a = (char)(a - 'A' + 'a');
        if (a != b) return 0;
    }
    return 1;
}

static file_format detect_format(const char *path) {
    if (lt_token_file_is(path)) return FMT_TOKENS;
    if (ends_with_ci(path, ".jsonl") || ends_with_ci(path, ".json")) return FMT_JSONL;
    return FMT_TEXT;
}

/* The whole file in a tracked, NUL-terminated buffer. */
static lt_status read_all(const char *path, char **data, size_t *len, lt_error *err) {
    *data = NULL;
    *len = 0;
    uint64_t size = 0;
    lt_status st = lt_file_size(path, &size, err);
    if (st != LT_OK) return st;
    if (size == 0)
        return lt_fail(err, LT_ERR_FORMAT,
                       "%s: empty file, expected UTF-8 text, JSON lines or a token file", path);
    if (size >= SIZE_MAX)
        return lt_fail(err, LT_ERR_NOMEM, "%s: %llu bytes do not fit in memory", path,
                       (unsigned long long)size);
    char *buf = lt_alloc(LT_MEM_OTHER, (size_t)size + 1);
    if (!buf)
        return lt_fail(err, LT_ERR_NOMEM, "%s: cannot allocate %llu bytes", path,
                       (unsigned long long)size + 1);
    FILE *f = fopen(path, "rb");
    if (!f) {
        lt_free(buf);
        return lt_fail(err, LT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    st = lt_read_exact(f, buf, (size_t)size, path, "contents", err);
    fclose(f);
    if (st != LT_OK) {
        lt_free(buf);
        return st;
    }
    *data = buf;
    *len = (size_t)size;
    return LT_OK;
}

static lt_status check_config(const lt_data_config *cfg, lt_error *err) {
    if (cfg->seq_len < 1 || cfg->seq_len > LT_DATA_MAX_SEQ_LEN)
        return lt_fail(err, LT_ERR_CONFIG, "max_seq_length is %d, expected 1..%d", cfg->seq_len,
                       LT_DATA_MAX_SEQ_LEN);
    if (cfg->packing < -1 || cfg->packing > 1)
        return lt_fail(err, LT_ERR_CONFIG, "packing is %d, expected -1 (auto), 0 or 1",
                       cfg->packing);
    if (cfg->truncate != 0 && cfg->truncate != 1)
        return lt_fail(err, LT_ERR_CONFIG, "truncate is %d, expected 0 or 1", cfg->truncate);
    if (!(cfg->holdout_fraction >= 0.0 && cfg->holdout_fraction <= 0.5))
        return lt_fail(err, LT_ERR_CONFIG, "holdout_fraction is %g, expected 0..0.5",
                       cfg->holdout_fraction);
    if (cfg->assistant_only_loss != 0 && cfg->assistant_only_loss != 1)
        return lt_fail(err, LT_ERR_CONFIG, "assistant_only_loss is %d, expected 0 or 1",
                       cfg->assistant_only_loss);
    const char *names[4] = {cfg->text_field, cfg->prompt_field, cfg->completion_field, cfg->messages_field};
    const char *keys[4] = {"text_field", "prompt_field", "completion_field", "messages_field"};
    for (int i = 0; i < 4; i++)
        if (!names[i] || !*names[i])
            return lt_fail(err, LT_ERR_CONFIG, "%s is empty, expected a JSON field name", keys[i]);
    return LT_OK;
}

/* Reads path into c (ids and, for JSONL, the mask and, unpacked, record
 * offsets). *packed receives the packing in effect. */
static lt_status build_corpus(const char *path, const lt_tokenizer *tok, int vocab_size,
                              const lt_data_config *cfg, corpus *c, int *packed, lt_error *err) {
    memset(c, 0, sizeof *c);
    const file_format fmt = detect_format(path);
    const int tpl = cfg->response_template && *cfg->response_template;
    *packed = cfg->packing >= 0 ? cfg->packing : fmt != FMT_JSONL;
    if (fmt != FMT_JSONL && !*packed)
        return lt_fail(err, LT_ERR_CONFIG,
                       "%s: packing is off, but the file is %s, which is one document and always "
                       "packed; expected JSON lines (.jsonl) for one row per record",
                       path, fmt == FMT_TOKENS ? "a token file" : "plain text");
    if (fmt != FMT_JSONL && tpl)
        return lt_fail(err, LT_ERR_CONFIG,
                       "%s: response_template is set, but the file is %s; expected JSON lines "
                       "(.jsonl) with text records",
                       path, fmt == FMT_TOKENS ? "a token file" : "plain text");
    if (fmt == FMT_TOKENS) {
        lt_status st = lt_token_file_read(path, vocab_size, &c->ids.v, &c->ids.n, err);
        c->ids.cap = c->ids.n;
        return st;
    }
    if (!tok) return lt_fail(err, LT_ERR_INVALID, "%s: a tokenizer is needed to read text", path);
    if (lt_tokenizer_vocab_size(tok) > vocab_size)
        return lt_fail(
            err, LT_ERR_INVALID,
            "%s: the tokenizer has %d entries, expected at most the model's vocab_size %d", path,
            lt_tokenizer_vocab_size(tok), vocab_size);
    char *buf = NULL;
    size_t len = 0;
    lt_status st = read_all(path, &buf, &len, err);
    if (st != LT_OK) return st;
    const int chunked = newline_is_barrier(tok);
    if (fmt == FMT_TEXT) {
        size_t ok = lt_utf8_valid_prefix(buf, len);
        st = ok != len ? utf8_error(path, buf, ok, 1, err)
                       : encode_append(tok, chunked, buf, len, 1, 0, &c->ids, err);
        if (st != LT_OK && st != LT_ERR_FORMAT) lt_fail_context(err, "%s", path);
    } else {
        record_ctx x = {.path = path, .tok = tok, .cfg = cfg, .chunked = chunked, .packed = *packed, .c = c,
                        .kind0 = -1};
        st = parse_jsonl(&x, buf, len, err);
        lt_free(x.prompt.v);
        lt_free(x.joined);
        lt_chat_template_free(x.chat);
    }
    lt_free(buf);
    return st;
}

/* ------------------------------------------------------------- datasets */

/* Shared by a training set and its held-out set, freed with the last. */
typedef struct {
    int refs;
    int packed;
    int T;
    int32_t *ids;
    uint8_t *mask; /* NULL: every token may be a target */
    size_t ntok;
    size_t *off; /* unpacked: nrec + 1 record offsets */
    size_t nrec;
} store;

struct lt_dataset {
    store *s;
    size_t first, rows; /* windows or records [first, first + rows) */
    int64_t targets;
};

static void store_release(store *s) {
    if (!s || --s->refs > 0) return;
    lt_free(s->ids);
    lt_free(s->mask);
    lt_free(s->off);
    lt_free(s);
}

static int64_t count_targets(const store *s, size_t first, size_t rows) {
    int64_t n = 0;
    if (s->packed) {
        if (!s->mask) return (int64_t)rows * s->T;
        size_t a = first * (size_t)s->T + 1, b = (first + rows) * (size_t)s->T + 1;
        for (size_t i = a; i < b; i++) n += s->mask[i];
        return n;
    }
    for (size_t r = first; r < first + rows; r++)
        for (size_t i = s->off[r] + 1; i < s->off[r + 1]; i++) n += s->mask[i];
    return n;
}

static lt_dataset *dataset_new(store *s, size_t first, size_t rows) {
    lt_dataset *ds = lt_alloc(LT_MEM_OTHER, sizeof *ds);
    if (!ds) return NULL;
    ds->s = s;
    s->refs++;
    ds->first = first;
    ds->rows = rows;
    ds->targets = count_targets(s, first, rows);
    return ds;
}

lt_data_config lt_data_config_defaults(void) {
    lt_data_config c = {
        .seq_len = 1024,
        .packing = -1,
        .truncate = 1,
        .text_field = "text",
        .prompt_field = "prompt",
        .completion_field = "completion",
        .response_template = NULL,
        .holdout_fraction = 0.0,
        .messages_field = "messages",
        .chat_template = NULL,
        .tokenizer_path = NULL,
        .assistant_only_loss = 0,
    };
    return c;
}

lt_status lt_dataset_load(const char *path, const lt_tokenizer *tok, int vocab_size,
                          const lt_data_config *cfg_in, lt_dataset **train, lt_dataset **heldout,
                          lt_error *err) {
    if (train) *train = NULL;
    if (heldout) *heldout = NULL;
    if (!path || !cfg_in || !train)
        return lt_fail(err, LT_ERR_INVALID, "dataset load: NULL path, config or output");
    if (vocab_size <= 0)
        return lt_fail(err, LT_ERR_INVALID, "%s: vocab_size %d, expected a positive size", path,
                       vocab_size);
    lt_data_config cfg = *cfg_in;
    const lt_data_config def = lt_data_config_defaults();
    if (!cfg.text_field) cfg.text_field = def.text_field;
    if (!cfg.prompt_field) cfg.prompt_field = def.prompt_field;
    if (!cfg.completion_field) cfg.completion_field = def.completion_field;
    lt_status st = check_config(&cfg, err);
    if (st != LT_OK) return st;

    corpus c;
    int packed = 1;
    if ((st = build_corpus(path, tok, vocab_size, &cfg, &c, &packed, err)) != LT_OK) {
        corpus_free(&c);
        return st;
    }
    const size_t T = (size_t)cfg.seq_len;
    size_t rows;
    if (packed) {
        rows = c.ids.n > 0 ? (c.ids.n - 1) / T : 0;
        if (rows == 0) {
            const size_t have = c.ids.n;
            corpus_free(&c);
            return lt_fail(err, LT_ERR_FORMAT,
                           "%s: %zu tokens, expected at least max_seq_length + 1 = %zu for one window",
                           path, have, T + 1);
        }
    } else {
        rows = c.nrec;
    }
    size_t held = 0;
    if (cfg.holdout_fraction > 0) {
        /* The tolerance keeps rounding noise from adding a row: 0.1 * 30
         * is 3.0000000000000004 in binary, and should hold out 3. */
        double h = cfg.holdout_fraction * (double)rows;
        h = ceil(h - 1e-9 * (h > 1 ? h : 1));
        held = h < (double)rows ? (size_t)h : rows;
        if (held < 1 || held >= rows) {
            corpus_free(&c);
            return lt_fail(err, LT_ERR_CONFIG,
                           "%s: %zu %s cannot be split with holdout_fraction %g: the training and "
                           "held-out sets each need at least one row",
                           path, rows, packed ? "windows" : "records", cfg.holdout_fraction);
        }
    }

    store *s = lt_alloc(LT_MEM_OTHER, sizeof *s);
    if (!s) {
        corpus_free(&c);
        return lt_fail(err, LT_ERR_NOMEM, "%s: cannot allocate the dataset", path);
    }
    shrink((void **)&c.ids.v, &c.ids.cap, c.ids.n, sizeof(int32_t));
    shrink((void **)&c.mask, &c.mask_cap, c.ids.n, 1);
    s->refs = 1; /* this function's own reference, dropped below */
    s->packed = packed;
    s->T = cfg.seq_len;
    s->ids = c.ids.v;
    s->mask = c.mask;
    s->ntok = c.ids.n;
    s->off = packed ? NULL : c.off;
    s->nrec = c.nrec;
    if (packed) lt_free(c.off);

    lt_dataset *tr = dataset_new(s, 0, rows - held);
    lt_dataset *ho = held && heldout ? dataset_new(s, rows - held, held) : NULL;
    const int failed = !tr || (held && heldout && !ho);
    if (failed) {
        lt_dataset_free(tr);
        lt_dataset_free(ho);
    }
    store_release(s); /* frees it when no dataset took a reference */
    if (failed) return lt_fail(err, LT_ERR_NOMEM, "%s: cannot allocate the dataset", path);
    *train = tr;
    if (heldout) *heldout = ho;
    return LT_OK;
}

size_t lt_dataset_rows(const lt_dataset *ds) { return ds ? ds->rows : 0; }

int lt_dataset_seq_len(const lt_dataset *ds) { return ds ? ds->s->T : 0; }

int64_t lt_dataset_target_tokens(const lt_dataset *ds) { return ds ? ds->targets : 0; }

void lt_dataset_row(const lt_dataset *ds, size_t i, int32_t *inputs, int32_t *targets) {
    const store *s = ds->s;
    const size_t T = (size_t)s->T;
    size_t start = 0, n = 0; /* the row's tokens: ids[start, start + n) */
    if (i < ds->rows) {
        const size_t r = ds->first + i;
        if (s->packed) {
            start = r * T;
            n = T + 1;
        } else {
            start = s->off[r];
            n = s->off[r + 1] - start;
        }
    }
    const int32_t *ids = s->ids + start;
    const uint8_t *mask = s->mask ? s->mask + start : NULL;
    const size_t used = n > 0 ? n - 1 : 0;
    for (size_t j = 0; j < used; j++) {
        inputs[j] = ids[j];
        targets[j] = !mask || mask[j + 1] ? ids[j + 1] : LT_IGNORE_INDEX;
    }
    for (size_t j = used; j < T; j++) {
        inputs[j] = 0;
        targets[j] = LT_IGNORE_INDEX;
    }
}

int64_t lt_dataset_row_targets(const lt_dataset *ds, size_t i) {
    const store *s = ds->s;
    const size_t T = (size_t)s->T;
    if (i >= ds->rows) return 0;
    const size_t r = ds->first + i;
    const size_t start = s->packed ? r * T : s->off[r];
    const size_t n = s->packed ? T + 1 : s->off[r + 1] - start;
    if (!s->mask) return n > 0 ? (int64_t)n - 1 : 0;
    int64_t c = 0;
    for (size_t j = 1; j < n; j++) c += s->mask[start + j] != 0;
    return c;
}

void lt_dataset_free(lt_dataset *ds) {
    if (!ds) return;
    store_release(ds->s);
    lt_free(ds);
}

lt_status lt_dataset_tokenize_stream(const char *path, const lt_tokenizer *tok, int32_t **ids,
                                     size_t *n, lt_error *err) {
    if (!path || !ids || !n) return lt_fail(err, LT_ERR_INVALID, "tokenize: NULL path, ids or n");
    *ids = NULL;
    *n = 0;
    if (!tok) return lt_fail(err, LT_ERR_INVALID, "%s: tokenize needs a tokenizer", path);
    lt_data_config cfg = lt_data_config_defaults();
    cfg.packing = 1;
    corpus c;
    int packed = 1;
    lt_status st = build_corpus(path, tok, lt_tokenizer_vocab_size(tok), &cfg, &c, &packed, err);
    if (st == LT_OK && c.ids.n == 0)
        st = lt_fail(err, LT_ERR_FORMAT, "%s: no tokens, expected a non-empty corpus", path);
    if (st != LT_OK) {
        corpus_free(&c);
        return st;
    }
    shrink((void **)&c.ids.v, &c.ids.cap, c.ids.n, sizeof(int32_t));
    *ids = c.ids.v;
    *n = c.ids.n;
    c.ids.v = NULL;
    corpus_free(&c);
    return LT_OK;
}
