/* Inside the tokenizers: the piece table every format fills (the tables
 * of struct lt_tokenizer), its hash index, and the pair-merge engine BPE
 * encoders share; implemented by io/text/tokenizer_pieces.c. The formats'
 * function table is io/text/tokenizer_backend.h. Not for callers outside
 * io/text/tokenizer*. */
#ifndef LT_IO_TEXT_TOKENIZER_PIECES_H
#define LT_IO_TEXT_TOKENIZER_PIECES_H

#include <stddef.h>
#include <stdint.h>

#include "io/text/tokenizer.h"

/* What a piece is for. Only NORMAL pieces are matched against text; BYTE
 * pieces decode to one raw byte; CONTROL pieces (BOS, EOS, special added
 * tokens) stand for no text; UNK decodes to nothing either. */
enum { LT_PIECE_NORMAL = 0, LT_PIECE_CONTROL, LT_PIECE_BYTE, LT_PIECE_UNK, LT_PIECE_UNUSED };

/* The format's function table (io/text/tokenizer_backend.h). */
typedef struct lt_tokenizer_backend lt_tokenizer_backend;

struct lt_tokenizer {
    const lt_tokenizer_backend *be;
    void *impl; /* the backend's own tables */
    int vocab_size;
    int32_t bos, eos, unk; /* -1 when the vocabulary has none */
    /* SentencePiece's dummy prefix is not text: a leading ' ' of the piece
     * right after BOS (or at the start of a decode) is dropped. */
    int strip_prefix_space;
    uint32_t max_piece_len; /* longest normal piece */
    char *blob;             /* every piece, each NUL-terminated, back to back */
    uint32_t *offset;       /* piece i starts at blob + offset[i] */
    uint32_t *length;
    float *score;
    uint32_t *hash;         /* FNV-1a of each piece, so pair hashes extend it */
    uint8_t *kind;          /* LT_PIECE_* */
    int32_t *slots;         /* open-addressing table of normal pieces, -1 empty */
    uint32_t slot_mask;
    int32_t byte_id[256];   /* id of byte piece for byte b, -1 none */
    char raw_bytes[256];    /* what a byte piece decodes to */
};

#define LT_FNV_OFFSET 2166136261u
uint32_t lt_tok_fnv(uint32_t h, const unsigned char *p, size_t n);

/* Allocates the piece tables for n pieces with blob_bytes of piece text
 * (NULs included); pieces are then set with lt_tok_set_piece. */
lt_status lt_tok_alloc(lt_tokenizer *t, int n, size_t blob_bytes, const char *path, lt_error *err);
/* Piece i: copies len bytes into the blob at *at (advancing it). */
void lt_tok_set_piece(lt_tokenizer *t, int i, const char *p, uint32_t len, float score, int kind,
                      uint32_t *at);
/* Builds the lookup index of normal pieces (duplicates keep the lowest id). */
lt_status lt_tok_index(lt_tokenizer *t, const char *path, lt_error *err);
/* Id of the normal piece a + b, or -1. */
int32_t lt_tok_find(const lt_tokenizer *t, const char *a, size_t na, const char *b, size_t nb);
int32_t lt_tok_find_hashed(const lt_tokenizer *t, uint32_t h, const char *a, size_t na,
                           const char *b, size_t nb);
void lt_tok_free_tables(lt_tokenizer *t);

/* The shared merge loop: symbols sym[0..n) (ids) merge pairwise, highest
 * priority first, leftmost on ties, until merge() finds no pair. merge
 * returns the merged id (or -1) and its priority. Writes the survivors to
 * out (n at most) and returns their count. O(n log n). work holds
 * LT_TOK_MERGE_WORK(n) bytes: callers allocate it once with their own
 * buffers, since separate large blocks per call leave glibc's heap holding
 * freed memory that the training phase then does not reuse (VmHWM grows). */
#define LT_TOK_MERGE_WORK(n) ((size_t)(n) * (2 * sizeof(int32_t) + 2 * (sizeof(float) + sizeof(int32_t))))
typedef int32_t (*lt_tok_merge_fn)(const lt_tokenizer *t, int32_t a, int32_t b, float *prio);
size_t lt_tok_merge(const lt_tokenizer *t, lt_tok_merge_fn merge, int32_t *sym, int32_t n,
                    int32_t *out, void *work);

#endif
