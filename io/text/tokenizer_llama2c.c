/* The llama2.c tokenizer file (tok512.bin and friends): a SentencePiece BPE
 * model exported flat (u32 max_token_length, then per piece f32 score, i32
 * length, bytes), with the fixed Llama 2 layout: <unk>, <s>, </s>, then the
 * 256 byte pieces <0x00>..<0xFF>. It encodes with the SentencePiece BPE
 * backend (io/text/tokenizer_spm.c), which is what llama2.c's run.c
 * computes. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fileutil.h"
#include "io/text/tokenizer_backend.h"
#include "io/text/tokenizer_pieces.h"

/* A tokenizer file is a few hundred KB at most (Llama 2's 32000 pieces take
 * ~430 KB); anything far larger is not a tokenizer. */
#define TOK_FILE_MAX_BYTES (64u << 20)
/* run.c sizes buffers from max_token_length; a header asking for more than
 * this is corrupt rather than a real vocabulary. */
#define TOK_MAX_TOKEN_LENGTH 65536u
/* Ids 3..258 are SentencePiece's byte-fallback pieces <0x00>..<0xFF>. */
#define TOK_BYTE_BASE 3
#define TOK_FIRST_NORMAL (TOK_BYTE_BASE + 256)

static float read_f32(const unsigned char *p) {
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint32_t read_u32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Walks the entries once without storing them, so a corrupt file is
 * rejected (naming the entry) before vocab_size-sized tables are allocated. */
static lt_status validate_entries(const char *path, const unsigned char *data, uint64_t size,
                                  int vocab_size, uint32_t max_len, uint64_t *blob_bytes,
                                  lt_error *err) {
    uint64_t pos = 4, total = 0;
    for (int i = 0; i < vocab_size; i++) {
        if (size - pos < 8)
            return lt_fail(err, LT_ERR_FORMAT,
                           "%s: truncated at entry %d of %d: expected 8 bytes of score and "
                           "len at offset %llu, only %llu bytes remain",
                           path, i, vocab_size, (unsigned long long)pos,
                           (unsigned long long)(size - pos));
        float score = read_f32(data + pos);
        int32_t len;
        memcpy(&len, data + pos + 4, sizeof len);
        if (!isfinite(score))
            return lt_fail(err, LT_ERR_FORMAT, "%s: entry %d: score is %g, expected a finite value",
                           path, i, (double)score);
        if (len < 0 || (uint32_t)len > max_len)
            return lt_fail(err, LT_ERR_FORMAT,
                           "%s: entry %d: len is %d, expected 0..%u (max_token_length)", path, i,
                           (int)len, (unsigned)max_len);
        pos += 8;
        if (size - pos < (uint64_t)len)
            return lt_fail(err, LT_ERR_FORMAT,
                           "%s: truncated at entry %d of %d: expected %d piece bytes at offset "
                           "%llu, only %llu bytes remain",
                           path, i, vocab_size, (int)len, (unsigned long long)pos,
                           (unsigned long long)(size - pos));
        if (len > 0 && memchr(data + pos, '\0', (size_t)len))
            return lt_fail(err, LT_ERR_FORMAT, "%s: entry %d: piece contains a NUL byte", path, i);
        if (i >= TOK_BYTE_BASE && i < TOK_FIRST_NORMAL) {
            char want[8];
            snprintf(want, sizeof want, "<0x%02X>", (unsigned)(i - TOK_BYTE_BASE));
            if ((size_t)len != strlen(want) || memcmp(data + pos, want, (size_t)len) != 0)
                return lt_fail(err, LT_ERR_FORMAT,
                               "%s: entry %d: expected the byte-fallback piece \"%s\", got %d "
                               "bytes \"%.*s\"",
                               path, i, want, (int)len, (int)(len > 16 ? 16 : len),
                               (const char *)(data + pos));
        }
        pos += (uint64_t)len;
        total += (uint64_t)len + 1;
    }
    if (pos != size)
        return lt_fail(err, LT_ERR_FORMAT,
                       "%s: %llu trailing bytes after entry %d: expected the file to end at "
                       "byte %llu after vocab_size=%d entries, it is %llu bytes",
                       path, (unsigned long long)(size - pos), vocab_size - 1,
                       (unsigned long long)pos, vocab_size, (unsigned long long)size);
    *blob_bytes = total;
    return LT_OK;
}

lt_status lt_tokenizer_load_llama2c(const char *path, int vocab_size, lt_tokenizer **out,
                                    lt_error *err) {
    if (!out || !path) return lt_fail(err, LT_ERR_INVALID, "tokenizer load: NULL path or out");
    *out = NULL;
    /* The byte-fallback encoding needs ids 3..258, so smaller vocabularies
     * cannot be llama2.c tokenizers. */
    if (vocab_size < TOK_FIRST_NORMAL)
        return lt_fail(err, LT_ERR_INVALID,
                       "%s: vocab_size %d from the model, expected at least %d (3 control and "
                       "256 byte pieces)",
                       path, vocab_size, TOK_FIRST_NORMAL);
    char *raw = NULL;
    uint64_t size = 0;
    lt_status st = lt_read_file(path, TOK_FILE_MAX_BYTES, &raw, &size, err);
    if (st != LT_OK) return st;
    const unsigned char *data = (const unsigned char *)raw;
    if (size < 4) {
        free(raw);
        return lt_fail(err, LT_ERR_FORMAT,
                       "%s: file is %llu bytes, too short for the 4-byte max_token_length header",
                       path, (unsigned long long)size);
    }
    uint32_t max_len = read_u32(data);
    if (max_len < 1 || max_len > TOK_MAX_TOKEN_LENGTH) {
        free(raw);
        return lt_fail(err, LT_ERR_FORMAT, "%s: max_token_length is %u, expected 1..%u", path,
                       (unsigned)max_len, TOK_MAX_TOKEN_LENGTH);
    }
    uint64_t blob_bytes = 0;
    st = validate_entries(path, data, size, vocab_size, max_len, &blob_bytes, err);
    if (st != LT_OK) {
        free(raw);
        return st;
    }
    lt_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        free(raw);
        return lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", path);
    }
    st = lt_tok_alloc(t, vocab_size, (size_t)blob_bytes, path, err);
    uint64_t pos = 4;
    uint32_t at = 0;
    for (int i = 0; st == LT_OK && i < vocab_size; i++) {
        int32_t len;
        float score = read_f32(data + pos);
        memcpy(&len, data + pos + 4, sizeof len);
        pos += 8;
        int kind = i == LT_TOKEN_UNK                                  ? LT_PIECE_UNK
                   : i < TOK_BYTE_BASE                                ? LT_PIECE_CONTROL
                   : i < TOK_FIRST_NORMAL                             ? LT_PIECE_BYTE
                                                                      : LT_PIECE_NORMAL;
        lt_tok_set_piece(t, i, (const char *)data + pos, (uint32_t)len, score, kind, &at);
        if (kind == LT_PIECE_BYTE) t->byte_id[i - TOK_BYTE_BASE] = i;
        pos += (uint64_t)len;
    }
    free(raw);
    if (st == LT_OK) st = lt_tok_index(t, path, err);
    if (st != LT_OK) {
        lt_tokenizer_free(t);
        return st;
    }
    t->unk = LT_TOKEN_UNK;
    t->bos = LT_TOKEN_BOS;
    t->eos = LT_TOKEN_EOS;
    t->strip_prefix_space = 1;
    t->be = &lt_tok_spm_backend;
    *out = t;
    return LT_OK;
}
