#include "io/tokenizer.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/fileutil.h"

/* A tokenizer file is a few hundred KB at most (Llama 2's 32000 pieces take
 * ~430 KB); anything far larger is not a tokenizer. */
#define TOK_FILE_MAX_BYTES (64u << 20)
/* run.c sizes buffers from max_token_length; a header asking for more than
 * this is corrupt rather than a real vocabulary. */
#define TOK_MAX_TOKEN_LENGTH 65536u
/* Ids 3..258 are SentencePiece's byte-fallback pieces <0x00>..<0xFF>. */
#define TOK_BYTE_BASE 3
#define TOK_FIRST_NORMAL (TOK_BYTE_BASE + 256)

#define FNV_OFFSET 2166136261u
#define FNV_PRIME 16777619u

struct lt_tokenizer {
    int vocab_size;
    uint32_t max_piece_len; /* longest piece actually present */
    char *blob;             /* every piece, each NUL-terminated, back to back */
    uint32_t *offset;       /* piece i starts at blob + offset[i] */
    uint32_t *length;
    float *score;
    uint32_t *hash;         /* FNV-1a of each piece, so pair hashes extend it */
    int32_t *slots;         /* open-addressing table of ids >= TOK_FIRST_NORMAL, -1 empty */
    uint32_t slot_mask;
    char raw_bytes[256];    /* what byte piece <0xXX> decodes to */
};

static uint32_t fnv_extend(uint32_t h, const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

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

/* Only normal pieces take part in lookups: SentencePiece never matches
 * control pieces (<unk>, <s>, </s>) or byte pieces against text, and neither
 * does this encoder. Duplicate pieces keep the lowest id. */
static void index_insert(lt_tokenizer *t, int32_t id) {
    uint32_t s = t->hash[id] & t->slot_mask;
    while (t->slots[s] >= 0) {
        int32_t o = t->slots[s];
        if (t->length[o] == t->length[id] &&
            memcmp(t->blob + t->offset[o], t->blob + t->offset[id], t->length[id]) == 0)
            return;
        s = (s + 1) & t->slot_mask;
    }
    t->slots[s] = id;
}

/* Id of the normal piece equal to a followed by b (either may be empty), or -1. */
static int32_t index_find(const lt_tokenizer *t, uint32_t h, const char *a, size_t na,
                          const char *b, size_t nb) {
    size_t n = na + nb;
    if (n == 0 || n > t->max_piece_len) return -1;
    uint32_t s = h & t->slot_mask;
    for (;;) {
        int32_t id = t->slots[s];
        if (id < 0) return -1;
        const char *p = t->blob + t->offset[id];
        if (t->hash[id] == h && t->length[id] == n && memcmp(p, a, na) == 0 &&
            memcmp(p + na, b, nb) == 0)
            return id;
        s = (s + 1) & t->slot_mask;
    }
}

static int32_t lookup_bytes(const lt_tokenizer *t, const char *s, size_t n) {
    return index_find(t, fnv_extend(FNV_OFFSET, (const unsigned char *)s, n), s, n, "", 0);
}

/* Byte-fallback symbols never merge: their text is the <0xXX> spelling in
 * run.c, which no real vocabulary extends, and SentencePiece only falls back
 * to bytes after merging, so both agree that such symbols stay alone. */
static int32_t pair_merge(const lt_tokenizer *t, int32_t a, int32_t b) {
    if (a < TOK_FIRST_NORMAL || b < TOK_FIRST_NORMAL) return -1;
    if ((size_t)t->length[a] + t->length[b] > t->max_piece_len) return -1;
    const char *pb = t->blob + t->offset[b];
    uint32_t h = fnv_extend(t->hash[a], (const unsigned char *)pb, t->length[b]);
    return index_find(t, h, t->blob + t->offset[a], t->length[a], pb, t->length[b]);
}

void lt_tokenizer_free(lt_tokenizer *tok) {
    if (!tok) return;
    free(tok->blob);
    free(tok->offset);
    free(tok->length);
    free(tok->score);
    free(tok->hash);
    free(tok->slots);
    free(tok);
}

int lt_tokenizer_vocab_size(const lt_tokenizer *tok) {
    return tok ? tok->vocab_size : 0;
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
    uint32_t slots = 1;
    while (slots < 2u * (uint32_t)vocab_size) slots <<= 1;
    if (t) {
        t->vocab_size = vocab_size;
        t->blob = malloc((size_t)blob_bytes);
        t->offset = malloc((size_t)vocab_size * sizeof *t->offset);
        t->length = malloc((size_t)vocab_size * sizeof *t->length);
        t->score = malloc((size_t)vocab_size * sizeof *t->score);
        t->hash = malloc((size_t)vocab_size * sizeof *t->hash);
        t->slots = malloc((size_t)slots * sizeof *t->slots);
    }
    if (!t || !t->blob || !t->offset || !t->length || !t->score || !t->hash || !t->slots) {
        lt_tokenizer_free(t);
        free(raw);
        return lt_fail(err, LT_ERR_NOMEM, "%s: cannot allocate tables for %d pieces", path,
                       vocab_size);
    }
    t->slot_mask = slots - 1;
    for (uint32_t s = 0; s < slots; s++) t->slots[s] = -1;
    uint64_t pos = 4;
    uint32_t at = 0;
    for (int i = 0; i < vocab_size; i++) {
        int32_t len;
        t->score[i] = read_f32(data + pos);
        memcpy(&len, data + pos + 4, sizeof len);
        pos += 8;
        memcpy(t->blob + at, data + pos, (size_t)len);
        t->blob[at + (uint32_t)len] = '\0';
        t->offset[i] = at;
        t->length[i] = (uint32_t)len;
        t->hash[i] = fnv_extend(FNV_OFFSET, data + pos, (size_t)len);
        if ((uint32_t)len > t->max_piece_len) t->max_piece_len = (uint32_t)len;
        at += (uint32_t)len + 1;
        pos += (uint64_t)len;
    }
    free(raw);
    for (int i = TOK_FIRST_NORMAL; i < vocab_size; i++)
        if (t->length[i] > 0) index_insert(t, i);
    for (int b = 0; b < 256; b++) t->raw_bytes[b] = (char)(unsigned char)b;
    *out = t;
    return LT_OK;
}

/* Candidate merge of symbol `left` with its right neighbour. The heap keeps
 * only (score, left); validity is re-derived when popped (see encode). */
typedef struct {
    float score;
    int32_t left;
} merge_cand;

/* Highest score first; equal scores go leftmost first, as run.c's scan does.
 * Symbol indices grow left to right, so `left` orders by text position. */
static int cand_before(merge_cand a, merge_cand b) {
    return a.score > b.score || (a.score == b.score && a.left < b.left);
}

static void heap_sift_down(merge_cand *h, size_t n, size_t i) {
    merge_cand x = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && cand_before(h[c + 1], h[c])) c++;
        if (!cand_before(h[c], x)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

static void heap_push(merge_cand *h, size_t *n, merge_cand x) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_before(x, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

lt_status lt_tokenizer_encode(const lt_tokenizer *tok, const char *text, size_t len, int add_bos,
                              int add_eos, int32_t *ids, size_t cap, size_t *n_out, lt_error *err) {
    if (n_out) *n_out = 0;
    if (!tok || !n_out || (len > 0 && !text) || (cap > 0 && !ids))
        return lt_fail(err, LT_ERR_INVALID, "tokenizer encode: NULL tokenizer, text, ids or n_out");
    /* Every input byte yields at most one symbol, plus the dummy prefix. */
    if (len > (size_t)INT32_MAX - 4)
        return lt_fail(err, LT_ERR_INVALID,
                       "tokenizer encode: text is %zu bytes, expected at most %d", len,
                       INT32_MAX - 4);
    size_t nmax = len + (len > 0);
    const size_t per_sym = 3 * sizeof(int32_t) + 2 * sizeof(merge_cand);
    if (nmax > SIZE_MAX / per_sym)
        return lt_fail(err, LT_ERR_INVALID, "tokenizer encode: text of %zu bytes is too long", len);
    size_t extra = (add_bos ? 1u : 0u) + (add_eos ? 1u : 0u);
    if (nmax == 0) {
        if (extra > cap)
            return lt_fail(err, LT_ERR_INVALID,
                           "tokenizer encode: ids buffer holds %zu ids, need %zu", cap, extra);
        size_t n = 0;
        if (add_bos) ids[n++] = LT_TOKEN_BOS;
        if (add_eos) ids[n++] = LT_TOKEN_EOS;
        *n_out = n;
        return LT_OK;
    }

    /* Symbols form a doubly linked list over the initial pieces; a merge lets
     * the left symbol absorb its right neighbour. Each merge pops one heap
     * entry and pushes at most two, so the heap never exceeds 2 * nmax. */
    void *work = lt_alloc(LT_MEM_OTHER, nmax * per_sym);
    if (!work)
        return lt_fail(err, LT_ERR_NOMEM,
                       "tokenizer encode: cannot allocate %zu bytes for %zu bytes of text",
                       nmax * per_sym, len);
    merge_cand *heap = work;
    int32_t *sym = (int32_t *)(heap + 2 * nmax);
    int32_t *next = sym + nmax;
    int32_t *prev = next + nmax;

    int32_t n = 0;
    int32_t space = lookup_bytes(tok, " ", 1);
    sym[n++] = space >= 0 ? space : ' ' + TOK_BYTE_BASE;
    /* Codepoints are grouped exactly as run.c does it: a byte plus the
     * continuation bytes after it, at most 4 bytes, so malformed UTF-8 still
     * encodes (via byte fallback) and round-trips. */
    for (size_t i = 0; i < len;) {
        size_t g = 1;
        while (i + g < len && g < 4 && ((unsigned char)text[i + g] & 0xC0) == 0x80) g++;
        int32_t id = lookup_bytes(tok, text + i, g);
        if (id >= 0) {
            sym[n++] = id;
        } else {
            for (size_t k = 0; k < g; k++) sym[n++] = (unsigned char)text[i + k] + TOK_BYTE_BASE;
        }
        i += g;
    }
    size_t nheap = 0;
    for (int32_t i = 0; i < n; i++) {
        prev[i] = i - 1;
        next[i] = i + 1 < n ? i + 1 : -1;
        if (i + 1 < n) {
            int32_t m = pair_merge(tok, sym[i], sym[i + 1]);
            if (m >= 0) heap[nheap++] = (merge_cand){tok->score[m], i};
        }
    }
    for (size_t i = nheap / 2; i-- > 0;) heap_sift_down(heap, nheap, i);

    /* Entries go stale when a neighbour merges; rather than deleting them, a
     * popped entry is re-checked against the current pair at `left`. A stale
     * entry whose key equals that of the current pair there merges exactly
     * the pair the fresh entry would have, so the result is unchanged. */
    int32_t n_live = n;
    while (nheap > 0) {
        merge_cand top = heap[0];
        heap[0] = heap[--nheap];
        if (nheap > 0) heap_sift_down(heap, nheap, 0);
        int32_t l = top.left;
        if (sym[l] < 0) continue;
        int32_t r = next[l];
        if (r < 0) continue;
        int32_t m = pair_merge(tok, sym[l], sym[r]);
        if (m < 0 || tok->score[m] != top.score) continue;
        sym[l] = m;
        sym[r] = -1;
        next[l] = next[r];
        if (next[r] >= 0) prev[next[r]] = l;
        n_live--;
        if (prev[l] >= 0) {
            int32_t pm = pair_merge(tok, sym[prev[l]], m);
            if (pm >= 0) heap_push(heap, &nheap, (merge_cand){tok->score[pm], prev[l]});
        }
        if (next[l] >= 0) {
            int32_t nm = pair_merge(tok, m, sym[next[l]]);
            if (nm >= 0) heap_push(heap, &nheap, (merge_cand){tok->score[nm], l});
        }
    }

    size_t need = (size_t)n_live + extra;
    if (need > cap) {
        lt_free(work);
        return lt_fail(err, LT_ERR_INVALID,
                       "tokenizer encode: ids buffer holds %zu ids, the text needs %zu", cap, need);
    }
    size_t k = 0;
    if (add_bos) ids[k++] = LT_TOKEN_BOS;
    for (int32_t i = 0; i >= 0; i = next[i]) ids[k++] = sym[i];
    if (add_eos) ids[k++] = LT_TOKEN_EOS;
    lt_free(work);
    *n_out = k;
    return LT_OK;
}

const char *lt_tokenizer_piece(const lt_tokenizer *tok, int32_t prev, int32_t token, size_t *len) {
    size_t dummy;
    if (!len) len = &dummy;
    *len = 0;
    if (!tok || token < 0 || token >= tok->vocab_size || token == LT_TOKEN_BOS ||
        token == LT_TOKEN_EOS)
        return "";
    if (token >= TOK_BYTE_BASE && token < TOK_FIRST_NORMAL) {
        *len = 1;
        return &tok->raw_bytes[token - TOK_BYTE_BASE];
    }
    const char *p = tok->blob + tok->offset[token];
    size_t n = tok->length[token];
    /* The dummy prefix SentencePiece put in front of the text is not text. */
    if (prev == LT_TOKEN_BOS && n > 0 && p[0] == ' ') {
        p++;
        n--;
    }
    *len = n;
    return p;
}

lt_status lt_tokenizer_decode(const lt_tokenizer *tok, const int32_t *ids, size_t n, char *out,
                              size_t cap, size_t *len_out, lt_error *err) {
    if (len_out) *len_out = 0;
    if (!tok || !len_out || (n > 0 && !ids))
        return lt_fail(err, LT_ERR_INVALID, "tokenizer decode: NULL tokenizer, ids or len_out");
    size_t total = 0, plen;
    int32_t prev = LT_TOKEN_BOS;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tok->vocab_size)
            return lt_fail(err, LT_ERR_INVALID,
                           "tokenizer decode: id %d at position %zu, expected 0..%d", (int)ids[i],
                           i, tok->vocab_size - 1);
        lt_tokenizer_piece(tok, prev, ids[i], &plen);
        total += plen;
        prev = ids[i];
    }
    if (!out || total >= cap) {
        *len_out = total;
        return lt_fail(err, LT_ERR_INVALID,
                       "tokenizer decode: output buffer holds %zu bytes, the text needs %zu plus "
                       "the NUL",
                       out ? cap : 0, total);
    }
    size_t at = 0;
    prev = LT_TOKEN_BOS;
    for (size_t i = 0; i < n; i++) {
        const char *p = lt_tokenizer_piece(tok, prev, ids[i], &plen);
        memcpy(out + at, p, plen);
        at += plen;
        prev = ids[i];
    }
    out[at] = '\0';
    *len_out = at;
    return LT_OK;
}
