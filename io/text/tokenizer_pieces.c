/* The piece table every tokenizer format fills, its hash index, and the
 * pair-merge loop the BPE encoders (SentencePiece by score, Hugging Face by
 * merge rank) share. */
#include <stdlib.h>
#include <string.h>

#include "io/text/tokenizer_pieces.h"

#define FNV_PRIME 16777619u

uint32_t lt_tok_fnv(uint32_t h, const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

void lt_tok_free_tables(lt_tokenizer *t) {
    free(t->blob);
    free(t->offset);
    free(t->length);
    free(t->score);
    free(t->hash);
    free(t->kind);
    free(t->slots);
}

lt_status lt_tok_alloc(lt_tokenizer *t, int n, size_t blob_bytes, const char *path, lt_error *err) {
    t->vocab_size = n;
    t->blob = malloc(blob_bytes ? blob_bytes : 1);
    t->offset = malloc((size_t)n * sizeof *t->offset);
    t->length = malloc((size_t)n * sizeof *t->length);
    t->score = malloc((size_t)n * sizeof *t->score);
    t->hash = malloc((size_t)n * sizeof *t->hash);
    t->kind = malloc((size_t)n);
    if (!t->blob || !t->offset || !t->length || !t->score || !t->hash || !t->kind)
        return lt_fail(err, LT_ERR_NOMEM, "%s: cannot allocate tables for %d pieces", path, n);
    for (int b = 0; b < 256; b++) {
        t->byte_id[b] = -1;
        t->raw_bytes[b] = (char)(unsigned char)b;
    }
    return LT_OK;
}

void lt_tok_set_piece(lt_tokenizer *t, int i, const char *p, uint32_t len, float score, int kind,
                      uint32_t *at) {
    if (len) memcpy(t->blob + *at, p, len);
    t->blob[*at + len] = '\0';
    t->offset[i] = *at;
    t->length[i] = len;
    t->score[i] = score;
    t->kind[i] = (uint8_t)kind;
    t->hash[i] = lt_tok_fnv(LT_FNV_OFFSET, (const unsigned char *)p, len);
    if (kind == LT_PIECE_NORMAL && len > t->max_piece_len) t->max_piece_len = len;
    *at += len + 1;
}

lt_status lt_tok_index(lt_tokenizer *t, const char *path, lt_error *err) {
    uint32_t slots = 1;
    while (slots < 2u * (uint32_t)t->vocab_size) slots <<= 1;
    t->slots = malloc((size_t)slots * sizeof *t->slots);
    if (!t->slots) return lt_fail(err, LT_ERR_NOMEM, "%s: cannot allocate the piece index", path);
    t->slot_mask = slots - 1;
    for (uint32_t s = 0; s < slots; s++) t->slots[s] = -1;
    for (int32_t id = 0; id < t->vocab_size; id++) {
        if (t->kind[id] != LT_PIECE_NORMAL || t->length[id] == 0) continue;
        uint32_t s = t->hash[id] & t->slot_mask;
        int dup = 0;
        while (t->slots[s] >= 0) {
            int32_t o = t->slots[s];
            if (t->length[o] == t->length[id] &&
                memcmp(t->blob + t->offset[o], t->blob + t->offset[id], t->length[id]) == 0) {
                dup = 1;
                break;
            }
            s = (s + 1) & t->slot_mask;
        }
        if (!dup) t->slots[s] = id;
    }
    return LT_OK;
}

int32_t lt_tok_find_hashed(const lt_tokenizer *t, uint32_t h, const char *a, size_t na,
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

int32_t lt_tok_find(const lt_tokenizer *t, const char *a, size_t na, const char *b, size_t nb) {
    uint32_t h = lt_tok_fnv(LT_FNV_OFFSET, (const unsigned char *)a, na);
    h = lt_tok_fnv(h, (const unsigned char *)b, nb);
    return lt_tok_find_hashed(t, h, a, na, b, nb);
}

/* Candidate merge of symbol `left` with its right neighbour. The heap keeps
 * only (priority, left); validity is re-derived when popped. */
typedef struct {
    float prio;
    int32_t left;
} merge_cand;

/* Highest priority first; equal ones leftmost first (run.c's scan,
 * SentencePiece's agenda and Hugging Face's merge queue all agree).
 * Symbol indices grow left to right, so `left` orders by text position. */
static int cand_before(merge_cand a, merge_cand b) {
    return a.prio > b.prio || (a.prio == b.prio && a.left < b.left);
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

size_t lt_tok_merge(const lt_tokenizer *t, lt_tok_merge_fn merge, int32_t *sym, int32_t n,
                    int32_t *out, void *work) {
    if (n <= 0) return 0;
    /* Each merge pops one heap entry and pushes at most two, so the heap
     * never exceeds 2 * n. */
    size_t nn = (size_t)n;
    merge_cand *heap = work;
    int32_t *next = (int32_t *)(heap + 2 * nn);
    int32_t *prev = next + nn;
    size_t nheap = 0;
    float pr;
    for (int32_t i = 0; i < n; i++) {
        prev[i] = i - 1;
        next[i] = i + 1 < n ? i + 1 : -1;
        if (i + 1 < n && merge(t, sym[i], sym[i + 1], &pr) >= 0)
            heap[nheap++] = (merge_cand){pr, i};
    }
    for (size_t i = nheap / 2; i-- > 0;) heap_sift_down(heap, nheap, i);

    /* Entries go stale when a neighbour merges; rather than deleting them, a
     * popped entry is re-checked against the current pair at `left`. A stale
     * entry whose key equals that of the current pair there merges exactly
     * the pair the fresh entry would have, so the result is unchanged. */
    while (nheap > 0) {
        merge_cand top = heap[0];
        heap[0] = heap[--nheap];
        if (nheap > 0) heap_sift_down(heap, nheap, 0);
        int32_t l = top.left;
        if (sym[l] < 0) continue;
        int32_t r = next[l];
        if (r < 0) continue;
        int32_t m = merge(t, sym[l], sym[r], &pr);
        if (m < 0 || pr != top.prio) continue;
        sym[l] = m;
        sym[r] = -1;
        next[l] = next[r];
        if (next[r] >= 0) prev[next[r]] = l;
        if (prev[l] >= 0 && merge(t, sym[prev[l]], m, &pr) >= 0)
            heap_push(heap, &nheap, (merge_cand){pr, prev[l]});
        if (next[l] >= 0 && merge(t, m, sym[next[l]], &pr) >= 0)
            heap_push(heap, &nheap, (merge_cand){pr, l});
    }
    size_t k = 0;
    for (int32_t i = 0; i >= 0; i = next[i]) out[k++] = sym[i];
    return k;
}
