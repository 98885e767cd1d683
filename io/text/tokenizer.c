/* The tokenizer front: picks the format from the path (a file, or an HF
 * model directory), and runs encode/decode through the backend's function
 * table. The formats live in io/text/tokenizer_llama2c.c,
 * io/text/tokenizer_spm.c and io/text/tokenizer_bpe.c. */
#include "io/text/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "io/text/tokenizer_backend.h"
#include "io/text/tokenizer_pieces.h"

void lt_tokenizer_free(lt_tokenizer *tok) {
    if (!tok) return;
    if (tok->be && tok->be->destroy) tok->be->destroy(tok->impl);
    lt_tok_free_tables(tok);
    free(tok);
}

int lt_tokenizer_vocab_size(const lt_tokenizer *tok) { return tok ? tok->vocab_size : 0; }
int32_t lt_tokenizer_bos(const lt_tokenizer *tok) { return tok ? tok->bos : -1; }
int32_t lt_tokenizer_eos(const lt_tokenizer *tok) { return tok ? tok->eos : -1; }
const char *lt_tokenizer_kind(const lt_tokenizer *tok) { return tok && tok->be ? tok->be->name : ""; }

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

typedef struct {
    const char *suffix;
    lt_status (*load)(const char *path, int vocab_size, lt_tokenizer **out, lt_error *err);
} format_entry;

static const format_entry formats[] = {
    {".json", lt_tokenizer_load_hf_json},
    {".model", lt_tokenizer_load_spm},
    {".bin", lt_tokenizer_load_llama2c},
};

/* A file of another name is sniffed: JSON starts with '{'. */
static const format_entry *sniff(const char *path) {
    FILE *f = fopen(path, "rb");
    int c = EOF;
    if (f) {
        do c = fgetc(f);
        while (c == ' ' || c == '\t' || c == '\r' || c == '\n');
        fclose(f);
    }
    return c == '{' ? &formats[0] : &formats[2];
}

lt_status lt_tokenizer_load(const char *path, int vocab_size, lt_tokenizer **out, lt_error *err) {
    if (!out || !path) return lt_fail(err, LT_ERR_INVALID, "tokenizer load: NULL path or out");
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        /* An HF model directory: tokenizer.json is the fast tokenizer the
         * hub ships for every model; tokenizer.model only for SentencePiece
         * ones. */
        static const char *names[] = {"tokenizer.json", "tokenizer.model"};
        char file[4096];
        for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
            if (snprintf(file, sizeof file, "%s/%s", path, names[k]) >= (int)sizeof file)
                return lt_fail(err, LT_ERR_INVALID, "%s: path too long", path);
            if (stat(file, &sb) == 0 && S_ISREG(sb.st_mode))
                return formats[k].load(file, vocab_size, out, err);
        }
        return lt_fail(err, LT_ERR_IO,
                       "%s: directory holds neither tokenizer.json nor tokenizer.model, expected "
                       "one of them (a Hugging Face model directory)",
                       path);
    }
    for (size_t k = 0; k < sizeof formats / sizeof *formats; k++)
        if (ends_with(path, formats[k].suffix)) return formats[k].load(path, vocab_size, out, err);
    return sniff(path)->load(path, vocab_size, out, err);
}

lt_status lt_tokenizer_encode(const lt_tokenizer *tok, const char *text, size_t len, int add_bos,
                              int add_eos, int32_t *ids, size_t cap, size_t *n_out, lt_error *err) {
    if (n_out) *n_out = 0;
    if (!tok || !n_out || (len > 0 && !text) || (cap > 0 && !ids))
        return lt_fail(err, LT_ERR_INVALID, "tokenizer encode: NULL tokenizer, text, ids or n_out");
    if (len > (size_t)INT32_MAX / 2 - 8)
        return lt_fail(err, LT_ERR_INVALID, "tokenizer encode: text is %zu bytes, expected at most %d",
                       len, INT32_MAX / 2 - 8);
    int bos = add_bos && tok->bos >= 0, eos = add_eos && tok->eos >= 0;
    size_t extra = (size_t)bos + (size_t)eos;
    if (cap < extra)
        return lt_fail(err, LT_ERR_INVALID, "tokenizer encode: ids buffer holds %zu ids, need %zu",
                       cap, extra);
    size_t n = 0;
    lt_status st = tok->be->encode(tok, text, len, ids + bos, cap - extra, &n, err);
    if (st != LT_OK) return st;
    if (bos) ids[0] = tok->bos;
    if (eos) ids[bos + n] = tok->eos;
    *n_out = n + extra;
    return LT_OK;
}

/* The bytes of token, at_start when it follows BOS or opens the sequence. */
static const char *piece_bytes(const lt_tokenizer *tok, int at_start, int32_t token, size_t *len) {
    *len = 0;
    if (token < 0 || token >= tok->vocab_size) return "";
    int kind = tok->kind[token];
    if (kind == LT_PIECE_CONTROL || kind == LT_PIECE_UNK) return "";
    if (kind == LT_PIECE_BYTE) {
        /* Loaders accept byte pieces only when spelled <0xNN>. */
        const char *s = tok->blob + tok->offset[token];
        int v = 0;
        for (int k = 3; k < 5; k++) v = v * 16 + (s[k] <= '9' ? s[k] - '0' : s[k] - 'A' + 10);
        *len = 1;
        return &tok->raw_bytes[v & 0xFF];
    }
    const char *p = tok->blob + tok->offset[token];
    size_t n = tok->length[token];
    /* The dummy prefix SentencePiece put in front of the text is not text. */
    if (at_start && tok->strip_prefix_space && n > 0 && p[0] == ' ') {
        p++;
        n--;
    }
    *len = n;
    return p;
}

const char *lt_tokenizer_piece(const lt_tokenizer *tok, int32_t prev, int32_t token, size_t *len) {
    size_t dummy;
    if (!len) len = &dummy;
    *len = 0;
    if (!tok) return "";
    return piece_bytes(tok, prev == tok->bos && prev >= 0, token, len);
}

lt_status lt_tokenizer_decode(const lt_tokenizer *tok, const int32_t *ids, size_t n, char *out,
                              size_t cap, size_t *len_out, lt_error *err) {
    if (len_out) *len_out = 0;
    if (!tok || !len_out || (n > 0 && !ids))
        return lt_fail(err, LT_ERR_INVALID, "tokenizer decode: NULL tokenizer, ids or len_out");
    size_t total = 0, plen;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tok->vocab_size)
            return lt_fail(err, LT_ERR_INVALID,
                           "tokenizer decode: id %d at position %zu, expected 0..%d", (int)ids[i],
                           i, tok->vocab_size - 1);
        piece_bytes(tok, i == 0 || ids[i - 1] == tok->bos, ids[i], &plen);
        total += plen;
    }
    if (!out || total >= cap) {
        *len_out = total;
        return lt_fail(err, LT_ERR_INVALID,
                       "tokenizer decode: output buffer holds %zu bytes, the text needs %zu plus "
                       "the NUL",
                       out ? cap : 0, total);
    }
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = piece_bytes(tok, i == 0 || ids[i - 1] == tok->bos, ids[i], &plen);
        memcpy(out + at, p, plen);
        at += plen;
    }
    out[at] = '\0';
    *len_out = at;
    return LT_OK;
}
