/* Hugging Face tokenizer.json, byte-level BPE (GPT-2, Llama 3, Qwen 2):
 * model.vocab and model.merges, the ByteLevel pre-tokenizer (alone, or
 * after a Split with one of the known regexes), added tokens cut out of the
 * text first, BOS from a TemplateProcessing post-processor or from
 * tokenizer_config.json next to the file. Pieces are stored as the raw
 * bytes they stand for (GPT-2's byte-to-unicode mapping undone), so
 * decoding is concatenation. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/fileutil.h"
#include "io/json.h"
#include "io/text/tokenizer_backend.h"
#include "io/text/tokenizer_pieces.h"
#include "io/text/tokenizer_pretok.h"

/* Llama 3's tokenizer.json is 9 MB. */
#define JSON_FILE_MAX_BYTES (128u << 20)
#define JSON_MAX_VOCAB (1 << 22)

typedef struct {
    uint64_t key; /* a << 32 | b, UINT64_MAX empty */
    int32_t rank, id;
} merge_slot;

typedef struct {
    int32_t id;
    uint32_t len;
    const char *text; /* into the piece blob */
    int lstrip, rstrip;
} added_tok;

typedef struct {
    merge_slot *merges;
    uint64_t merge_mask;
    added_tok *added; /* longest first */
    int n_added;
    uint8_t starts_added[256]; /* whether some added token starts with byte b */
    lt_pretok pretok;
    int prefix_per_word; /* add_prefix_space applies to each Split piece */
    int add_prefix_space;
    int ignore_merges;
    int32_t byte_tok[256]; /* id of the one-byte token, -1 none */
} bpe_impl;

/* ------------------------------------------------------------ encoding */

static const merge_slot *merge_find(const bpe_impl *im, int32_t a, int32_t b) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    for (uint64_t s = (h >> 20) & im->merge_mask;; s = (s + 1) & im->merge_mask) {
        const merge_slot *m = &im->merges[s];
        if (m->key == key) return m;
        if (m->key == UINT64_MAX) return NULL;
    }
}

static int32_t bpe_pair(const lt_tokenizer *t, int32_t a, int32_t b, float *prio) {
    const bpe_impl *im = t->impl;
    const merge_slot *m = merge_find(im, a, b);
    if (!m) return -1;
    /* Lowest rank first; ranks are below 2^24, exact in a float. */
    *prio = -(float)m->rank;
    return m->id;
}

typedef struct {
    int32_t *v;
    size_t n, cap;
    void *work; /* the merge heap, grown to the longest word so far */
    size_t work_syms;
} idbuf;

static lt_status word(const lt_tokenizer *t, const char *s, size_t n, int prefix, idbuf *out,
                      lt_error *err) {
    const bpe_impl *im = t->impl;
    if (im->ignore_merges && !prefix) {
        int32_t id = lt_tok_find(t, s, n, "", 0);
        if (id >= 0) {
            out->v[out->n++] = id;
            return LT_OK;
        }
    }
    int32_t *sym = out->v + out->n;
    int32_t k = 0;
    if (prefix) {
        if (im->byte_tok[' '] >= 0) sym[k++] = im->byte_tok[' '];
        else if (t->unk >= 0) sym[k++] = t->unk;
    }
    for (size_t i = 0; i < n; i++) {
        int32_t id = im->byte_tok[(unsigned char)s[i]];
        if (id < 0) id = t->unk;
        if (id >= 0) sym[k++] = id;
    }
    if ((size_t)k > out->work_syms) {
        size_t want = (size_t)k > 2 * out->work_syms ? (size_t)k : 2 * out->work_syms;
        lt_free(out->work);
        out->work = lt_alloc(LT_MEM_OTHER, LT_TOK_MERGE_WORK(want));
        out->work_syms = out->work ? want : 0;
        if (!out->work)
            return lt_fail(err, LT_ERR_NOMEM, "tokenizer encode: cannot allocate for a %zu-byte word", n);
    }
    out->n += lt_tok_merge(t, bpe_pair, sym, k, sym, out->work);
    return LT_OK;
}

/* One stretch of text between added tokens. */
static lt_status segment(const lt_tokenizer *t, const char *s, size_t n, idbuf *out,
                         lt_error *err) {
    const bpe_impl *im = t->impl;
    if (n == 0) return LT_OK;
    int seg_prefix = im->add_prefix_space && !im->prefix_per_word && s[0] != ' ';
    /* The prefix space is part of the text the regex sees. */
    char *tmp = NULL;
    if (seg_prefix && im->pretok != LT_PRETOK_NONE) {
        tmp = lt_alloc(LT_MEM_OTHER, n + 1);
        if (!tmp) return lt_fail(err, LT_ERR_NOMEM, "tokenizer encode: out of memory");
        tmp[0] = ' ';
        memcpy(tmp + 1, s, n);
        s = tmp;
        n++;
        seg_prefix = 0;
    }
    lt_status st = LT_OK;
    for (size_t i = 0; i < n && st == LT_OK;) {
        size_t l = lt_pretok_next(im->pretok, s, n, i);
        int pre = seg_prefix || (im->add_prefix_space && im->prefix_per_word && s[i] != ' ');
        st = word(t, s + i, l, pre, out, err);
        seg_prefix = 0;
        i += l;
    }
    lt_free(tmp);
    return st;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* The longest added token at s[i], or NULL. */
static const added_tok *added_at(const bpe_impl *im, const char *s, size_t n, size_t i) {
    if (!im->starts_added[(unsigned char)s[i]]) return NULL;
    for (int k = 0; k < im->n_added; k++) {
        const added_tok *a = &im->added[k];
        if (a->len <= n - i && memcmp(s + i, a->text, a->len) == 0) return a;
    }
    return NULL;
}

static lt_status bpe_encode(const lt_tokenizer *t, const char *text, size_t len, int32_t *ids,
                            size_t cap, size_t *n_out, lt_error *err) {
    const bpe_impl *im = t->impl;
    *n_out = 0;
    /* Every byte gives at most one id, plus a prefix space per segment
     * (segments are separated by added tokens of at least one byte). */
    idbuf out = {NULL, 0, 2 * len + 2, NULL, 0};
    out.v = lt_alloc(LT_MEM_OTHER, out.cap * sizeof *out.v);
    if (!out.v) return lt_fail(err, LT_ERR_NOMEM, "tokenizer encode: cannot allocate for %zu bytes", len);
    lt_status st = LT_OK;
    size_t start = 0, i = 0;
    while (i < len && st == LT_OK) {
        const added_tok *a = im->n_added ? added_at(im, text, len, i) : NULL;
        if (!a) {
            i++;
            continue;
        }
        size_t end = i;
        if (a->lstrip)
            while (end > start && is_ws(text[end - 1])) end--;
        st = segment(t, text + start, end - start, &out, err);
        out.v[out.n++] = a->id;
        i += a->len;
        if (a->rstrip)
            while (i < len && is_ws(text[i])) i++;
        start = i;
    }
    if (st == LT_OK) st = segment(t, text + start, len - start, &out, err);
    if (st == LT_OK && out.n > cap)
        st = lt_fail(err, LT_ERR_INVALID, "tokenizer encode: ids buffer holds %zu ids, the text needs %zu",
                     cap, out.n);
    if (st == LT_OK) {
        memcpy(ids, out.v, out.n * sizeof *ids);
        *n_out = out.n;
    }
    lt_free(out.work);
    lt_free(out.v);
    return st;
}

static void bpe_destroy(void *p) {
    bpe_impl *im = p;
    if (!im) return;
    free(im->merges);
    free(im->added);
    free(im);
}

static const lt_tokenizer_backend bpe_backend = {"byte-level-bpe", bpe_encode, bpe_destroy};

/* ------------------------------------------------------------ loading */

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
 * the other 68 bytes for U+0100 onwards in byte order. */
static void byte_unicode(uint32_t cp_of[256], int16_t byte_of[324]) {
    int n = 0;
    for (int b = 0; b < 324; b++) byte_of[b] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        cp_of[b] = printable ? (uint32_t)b : (uint32_t)(256 + n++);
        byte_of[cp_of[b]] = (int16_t)b;
    }
}

/* A vocabulary string's bytes: each character through the inverse
 * mapping. Returns the length, or -1 when a character is not in the byte
 * alphabet (then the string's own UTF-8 stands). */
static long unmap(const int16_t byte_of[324], const char *s, char *out) {
    const unsigned char *u = (const unsigned char *)s;
    long o = 0;
    while (*u) {
        uint32_t cp;
        if (u[0] < 0x80) cp = *u++;
        else if ((u[0] & 0xE0) == 0xC0 && (u[1] & 0xC0) == 0x80) {
            cp = (uint32_t)(u[0] & 0x1F) << 6 | (u[1] & 0x3F);
            u += 2;
        } else
            return -1;
        if (cp >= 324 || byte_of[cp] < 0) return -1;
        out[o++] = (char)byte_of[cp];
    }
    return o;
}

typedef struct {
    const char *path;
    lt_tokenizer *t;
    bpe_impl *im;
    int16_t byte_of[324];
    uint32_t cp_of[256];
    char *scratch; /* big enough for any vocabulary string */
} loader;

static lt_status get_id(const loader *L, const cJSON *v, const char *field, long *id, lt_error *err) {
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= JSON_MAX_VOCAB ||
        v->valuedouble != (double)(long)v->valuedouble)
        return lt_fail(err, LT_ERR_FORMAT, "%s: %s is not an id, expected an integer in 0..%d",
                       L->path, field, JSON_MAX_VOCAB - 1);
    *id = (long)v->valuedouble;
    return LT_OK;
}

static int json_bool(const cJSON *o, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static const char *json_type(const cJSON *o) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* ByteLevel alone, or Sequence [Split(known regex, Isolated), ByteLevel]. */
static lt_status pre_tokenizer(loader *L, const cJSON *pt, lt_error *err) {
    bpe_impl *im = L->im;
    if (!cJSON_IsObject(pt))
        return lt_fail(err, LT_ERR_UNSUPPORTED, "%s: pre_tokenizer is missing or null, expected ByteLevel "
                       "(only byte-level BPE tokenizer.json files are supported)", L->path);
    const char *type = json_type(pt);
    if (!strcmp(type, "ByteLevel")) {
        im->add_prefix_space = json_bool(pt, "add_prefix_space", 1);
        im->pretok = json_bool(pt, "use_regex", 1) ? LT_PRETOK_GPT2 : LT_PRETOK_NONE;
        return LT_OK;
    }
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers");
    if (strcmp(type, "Sequence") || cJSON_GetArraySize(list) != 2)
        return lt_fail(err, LT_ERR_UNSUPPORTED,
                       "%s: pre_tokenizer.type is \"%s\", expected ByteLevel or a Sequence of Split "
                       "and ByteLevel", L->path, type);
    const cJSON *split = cJSON_GetArrayItem(list, 0), *bl = cJSON_GetArrayItem(list, 1);
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(split, "pattern");
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
    const cJSON *beh = cJSON_GetObjectItemCaseSensitive(split, "behavior");
    if (strcmp(json_type(split), "Split") || strcmp(json_type(bl), "ByteLevel") || !cJSON_IsString(re))
        return lt_fail(err, LT_ERR_UNSUPPORTED,
                       "%s: pre_tokenizer.pretokenizers is [%s, %s], expected [Split with a Regex "
                       "pattern, ByteLevel]", L->path, json_type(split), json_type(bl));
    int p = lt_pretok_identify(re->valuestring);
    if (p < 0)
        return lt_fail(err, LT_ERR_UNSUPPORTED,
                       "%s: pre_tokenizer Split regex \"%.80s\" is not one this build implements "
                       "(GPT-2's, Llama 3's or Qwen 2's)", L->path, re->valuestring);
    if (!cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated") || json_bool(split, "invert", 0))
        return lt_fail(err, LT_ERR_UNSUPPORTED,
                       "%s: pre_tokenizer Split behavior must be \"Isolated\" without invert", L->path);
    if (json_bool(bl, "use_regex", 1))
        return lt_fail(err, LT_ERR_UNSUPPORTED,
                       "%s: the ByteLevel after Split has use_regex true, expected false", L->path);
    im->pretok = (lt_pretok)p;
    im->add_prefix_space = json_bool(bl, "add_prefix_space", 1);
    im->prefix_per_word = 1;
    return LT_OK;
}

static lt_status merges_table(loader *L, const cJSON *merges, lt_error *err) {
    bpe_impl *im = L->im;
    int n = cJSON_GetArraySize(merges);
    uint64_t slots = 2;
    while (slots < 2 * (uint64_t)n + 2) slots <<= 1;
    im->merges = malloc(slots * sizeof *im->merges);
    if (!im->merges) return lt_fail(err, LT_ERR_NOMEM, "%s: cannot allocate %d merges", L->path, n);
    im->merge_mask = slots - 1;
    for (uint64_t s = 0; s < slots; s++) im->merges[s].key = UINT64_MAX;
    int rank = 0;
    char *bufa = L->scratch;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        const char *a = NULL, *b = NULL;
        char *sp = NULL;
        if (cJSON_IsString(m)) {
            /* "a b": the legacy form, split at the one space. */
            snprintf(bufa, 65536, "%s", m->valuestring);
            sp = strchr(bufa, ' ');
            if (sp && !strchr(sp + 1, ' ') && sp != bufa && sp[1]) {
                *sp = '\0';
                a = bufa;
                b = sp + 1;
            }
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(m, 0)) && cJSON_IsString(cJSON_GetArrayItem(m, 1))) {
            a = cJSON_GetArrayItem(m, 0)->valuestring;
            b = cJSON_GetArrayItem(m, 1)->valuestring;
        }
        if (!a || !b || !*a || !*b)
            return lt_fail(err, LT_ERR_FORMAT,
                           "%s: model.merges[%d] is not a merge, expected \"a b\" or [\"a\", \"b\"]",
                           L->path, rank);
        /* Vocabulary strings are at most 65535 bytes; longer halves name none. */
        char *ba = L->scratch + 65536, *bb = L->scratch + 2 * 65536;
        long la = strlen(a) < 65536 ? unmap(L->byte_of, a, ba) : -1;
        long lb = strlen(b) < 65536 ? unmap(L->byte_of, b, bb) : -1;
        int32_t ia = la > 0 ? lt_tok_find(L->t, ba, (size_t)la, "", 0) : -1;
        int32_t ib = lb > 0 ? lt_tok_find(L->t, bb, (size_t)lb, "", 0) : -1;
        int32_t im_id = ia >= 0 && ib >= 0 ? lt_tok_find(L->t, ba, (size_t)la, bb, (size_t)lb) : -1;
        if (ia < 0 || ib < 0 || im_id < 0)
            return lt_fail(err, LT_ERR_FORMAT,
                           "%s: model.merges[%d] (\"%.40s\" + \"%.40s\"): token \"%.40s%s\" is not in "
                           "model.vocab",
                           L->path, rank, a, b, ia < 0 ? a : ib < 0 ? b : a, ia < 0 || ib < 0 ? "" : b);
        uint64_t key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
        uint64_t h = key * 0x9E3779B97F4A7C15ull;
        uint64_t s = (h >> 20) & im->merge_mask;
        while (im->merges[s].key != UINT64_MAX && im->merges[s].key != key) s = (s + 1) & im->merge_mask;
        /* A repeated merge keeps its first (best) rank, as the library does. */
        if (im->merges[s].key == UINT64_MAX) im->merges[s] = (merge_slot){key, rank, im_id};
        rank++;
    }
    return LT_OK;
}

/* The id of added token `name`, or -1. */
static int32_t added_id(const bpe_impl *im, const char *name) {
    size_t n = strlen(name);
    for (int k = 0; k < im->n_added; k++)
        if (im->added[k].len == n && !memcmp(im->added[k].text, name, n)) return im->added[k].id;
    return -1;
}

/* TemplateProcessing's "single": a SpecialToken before $A is the BOS. */
static int32_t template_bos(const bpe_impl *im, const cJSON *pp) {
    if (!cJSON_IsObject(pp)) return -1;
    if (!strcmp(json_type(pp), "Sequence")) {
        const cJSON *p;
        cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(pp, "processors")) {
            int32_t b = template_bos(im, p);
            if (b >= 0) return b;
        }
        return -1;
    }
    if (strcmp(json_type(pp), "TemplateProcessing")) return -1;
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(pp, "single"), 0);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(first, "SpecialToken");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(st, "id");
    return cJSON_IsString(id) ? added_id(im, id->valuestring) : -1;
}

static const char *config_token(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* tokenizer_config.json beside the file names EOS (and BOS where the
 * model adds one); without it, the usual end-of-text spellings. */
static lt_status special_ids(loader *L, const cJSON *root, lt_error *err) {
    lt_tokenizer *t = L->t;
    bpe_impl *im = L->im;
    t->bos = template_bos(im, cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
    t->eos = -1;
    char cfg_path[4200];
    const char *slash = strrchr(L->path, '/');
    int dir = slash ? (int)(slash - L->path) : 0;
    snprintf(cfg_path, sizeof cfg_path, "%.*s%stokenizer_config.json", dir, L->path, slash ? "/" : "");
    char *raw = NULL;
    uint64_t size = 0;
    lt_error ignored;
    cJSON *cfg = NULL;
    if (lt_read_file(cfg_path, 16u << 20, &raw, &size, &ignored) == LT_OK) {
        /* there but not JSON: refused, not read as if absent */
        lt_status st = lt_json_parse(raw, (size_t)size, cfg_path, 1, &cfg, err);
        free(raw);
        if (st != LT_OK) return st;
    }
    const char *eos = config_token(cfg, "eos_token"), *bos = config_token(cfg, "bos_token");
    if (eos) t->eos = added_id(im, eos);
    if (t->bos < 0 && bos && json_bool(cfg, "add_bos_token", 0)) t->bos = added_id(im, bos);
    cJSON_Delete(cfg);
    static const char *const eos_names[] = {"<|endoftext|>", "<|end_of_text|>", "</s>"};
    for (size_t k = 0; t->eos < 0 && k < sizeof eos_names / sizeof *eos_names; k++)
        t->eos = added_id(im, eos_names[k]);
    return LT_OK;
}

static int cmp_added(const void *a, const void *b) {
    const added_tok *x = a, *y = b;
    return x->len < y->len ? 1 : x->len > y->len ? -1 : (x->id > y->id) - (x->id < y->id);
}

static lt_status build(loader *L, cJSON *root, int vocab_size, lt_error *err) {
    const char *path = L->path;
    lt_tokenizer *t = L->t;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model))
        return lt_fail(err, LT_ERR_FORMAT, "%s: no \"model\" object, expected a Hugging Face tokenizer.json", path);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (cJSON_IsString(type) && strcmp(type->valuestring, "BPE"))
        return lt_fail(err, LT_ERR_UNSUPPORTED, "%s: model.type is \"%s\", expected \"BPE\"", path,
                       type->valuestring);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(vocab))
        return lt_fail(err, LT_ERR_FORMAT, "%s: model.vocab is missing, expected an object of token: id", path);
    if (!cJSON_IsArray(merges))
        return lt_fail(err, LT_ERR_FORMAT, "%s: model.merges is missing, expected an array", path);
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix");
    const cJSON *ew = cJSON_GetObjectItemCaseSensitive(model, "end_of_word_suffix");
    const cJSON *dr = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if ((cJSON_IsString(cs) && *cs->valuestring) || (cJSON_IsString(ew) && *ew->valuestring) ||
        (cJSON_IsNumber(dr) && dr->valuedouble > 0))
        return lt_fail(err, LT_ERR_UNSUPPORTED,
                       "%s: model has continuing_subword_prefix, end_of_word_suffix or dropout, "
                       "expected none (byte-level BPE)", path);
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    /* NFC leaves ASCII and precomposed text alone; it is accepted and not
     * applied (a limitation for decomposed input). */
    if (cJSON_IsObject(norm) && strcmp(json_type(norm), "NFC"))
        return lt_fail(err, LT_ERR_UNSUPPORTED, "%s: normalizer.type is \"%s\", expected none (null) or NFC",
                       path, json_type(norm));
    lt_status st = pre_tokenizer(L, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), err);
    if (st != LT_OK) return st;
    L->im->ignore_merges = json_bool(model, "ignore_merges", 0);

    /* Sizes first: the largest id and the bytes of every string. */
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    long max_id = -1, id = 0;
    size_t blob = 0;
    int nv = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        char field[96];
        snprintf(field, sizeof field, "model.vocab[\"%.40s\"]", e->string);
        if ((st = get_id(L, e, field, &id, err)) != LT_OK) return st;
        if (strlen(e->string) > 65535)
            return lt_fail(err, LT_ERR_FORMAT, "%s: model.vocab entry %ld is longer than 65535 bytes", path, id);
        if (id > max_id) max_id = id;
        blob += strlen(e->string) + 1;
        nv++;
    }
    int na = 0;
    cJSON_ArrayForEach(e, added) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
        char field[64];
        snprintf(field, sizeof field, "added_tokens[%d].id", na);
        if ((st = get_id(L, cJSON_GetObjectItemCaseSensitive(e, "id"), field, &id, err)) != LT_OK) return st;
        if (!cJSON_IsString(c) || !*c->valuestring || strlen(c->valuestring) > 65535)
            return lt_fail(err, LT_ERR_FORMAT, "%s: added_tokens[%d].content is missing, expected a non-empty string",
                           path, na);
        if (id > max_id) max_id = id;
        blob += strlen(c->valuestring) + 1;
        na++;
    }
    if (nv == 0) return lt_fail(err, LT_ERR_FORMAT, "%s: model.vocab is empty", path);
    int n = (int)max_id + 1;
    if (vocab_size > 0 && n > vocab_size)
        return lt_fail(err, LT_ERR_FORMAT, "%s: ids run to %d, expected below the model's vocab_size %d",
                       path, n - 1, vocab_size);
    if ((st = lt_tok_alloc(t, n, blob + (size_t)n, path, err)) != LT_OK) return st;
    uint32_t at = 0;
    for (int i = 0; i < n; i++) lt_tok_set_piece(t, i, "", 0, 0.0f, LT_PIECE_UNUSED, &at);
    char *buf = L->scratch;
    cJSON_ArrayForEach(e, vocab) {
        id = (long)e->valuedouble;
        if (t->kind[id] != LT_PIECE_UNUSED)
            return lt_fail(err, LT_ERR_FORMAT, "%s: model.vocab gives id %ld to \"%.40s\" and to an earlier token",
                           path, id, e->string);
        long l = unmap(L->byte_of, e->string, buf);
        if (l < 0) {
            l = (long)strlen(e->string);
            memcpy(buf, e->string, (size_t)l);
        }
        lt_tok_set_piece(t, (int)id, buf, (uint32_t)l, 0.0f, LT_PIECE_NORMAL, &at);
    }
    if ((st = lt_tok_index(t, path, err)) != LT_OK) return st;
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        L->im->byte_tok[b] = lt_tok_find(t, &c, 1, "", 0);
    }
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    t->unk = -1;
    if (cJSON_IsString(unk)) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(vocab, unk->valuestring);
        if (cJSON_IsNumber(u)) t->unk = (int32_t)u->valuedouble;
    }
    if ((st = merges_table(L, merges, err)) != LT_OK) return st;

    /* Added tokens take their id's text; special ones decode to nothing. */
    L->im->added = calloc((size_t)(na ? na : 1), sizeof *L->im->added);
    if (!L->im->added) return lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", path);
    cJSON_ArrayForEach(e, added) {
        const char *c = cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring;
        id = (long)cJSON_GetObjectItemCaseSensitive(e, "id")->valuedouble;
        int special = json_bool(e, "special", 0);
        uint32_t l = (uint32_t)strlen(c);
        lt_tok_set_piece(t, (int)id, c, l, 0.0f, special ? LT_PIECE_CONTROL : LT_PIECE_NORMAL, &at);
        added_tok *a = &L->im->added[L->im->n_added++];
        *a = (added_tok){(int32_t)id, l, t->blob + t->offset[id], json_bool(e, "lstrip", 0),
                         json_bool(e, "rstrip", 0)};
        L->im->starts_added[(unsigned char)c[0]] = 1;
    }
    qsort(L->im->added, (size_t)L->im->n_added, sizeof *L->im->added, cmp_added);
    if ((st = special_ids(L, root, err)) != LT_OK) return st;
    t->strip_prefix_space = 0;
    return LT_OK;
}

lt_status lt_tokenizer_load_hf_json(const char *path, int vocab_size, lt_tokenizer **out,
                                    lt_error *err) {
    *out = NULL;
    cJSON *root = NULL;
    lt_status st = lt_json_parse_file(path, JSON_FILE_MAX_BYTES, &root, err);
    if (st != LT_OK) return st;
    loader L = {0};
    L.path = path;
    L.t = calloc(1, sizeof *L.t);
    L.im = calloc(1, sizeof *L.im);
    L.scratch = malloc(65536 * 4);
    if (!L.t || !L.im || !L.scratch) {
        st = lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", path);
    } else {
        byte_unicode(L.cp_of, L.byte_of);
        L.t->be = &bpe_backend;
        L.t->impl = L.im;
        L.im->pretok = LT_PRETOK_NONE;
        st = build(&L, root, vocab_size, err);
    }
    cJSON_Delete(root);
    free(L.scratch);
    if (st != LT_OK) {
        if (L.t) lt_tokenizer_free(L.t);
        else bpe_destroy(L.im);
        return st;
    }
    *out = L.t;
    return LT_OK;
}
