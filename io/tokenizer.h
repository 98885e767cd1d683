/* The llama2.c tokenizer (tok512.bin and friends): SentencePiece-trained BPE
 * with byte fallback, encoded by greedy highest-score pair merging as run.c
 * does it, and decoded with byte pieces <0xXX> turned back into raw bytes. */
#ifndef LT_IO_TOKENIZER_H
#define LT_IO_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct lt_tokenizer lt_tokenizer;

enum { LT_TOKEN_UNK = 0, LT_TOKEN_BOS = 1, LT_TOKEN_EOS = 2 };

/* vocab_size comes from the model (the file does not store it). The file
 * must hold exactly vocab_size entries; anything else is a format error
 * naming the file, the entry and the expected value. */
lt_status lt_tokenizer_load_llama2c(const char *path, int vocab_size, lt_tokenizer **out,
                                    lt_error *err);
void lt_tokenizer_free(lt_tokenizer *tok);

int lt_tokenizer_vocab_size(const lt_tokenizer *tok);

/* Encodes len bytes of UTF-8 text (not necessarily NUL-terminated), with the
 * dummy-prefix space SentencePiece adds when text is non-empty. Writes at
 * most cap ids; *n_out receives the count. cap >= len + 3 always suffices.
 *
 * The result is run.c's: codepoints (a byte and up to 3 continuation bytes)
 * not in the vocabulary fall back to byte ids (byte + 3), then the adjacent
 * pair whose concatenation has the highest score merges, leftmost first on
 * ties, until none does. It runs in O(n log n) on the text length, so a
 * whole corpus may be encoded in one call. Control and byte pieces are never
 * matched against text and byte-fallback ids never merge (as in
 * SentencePiece; run.c agrees on every real vocabulary). Whitespace is kept
 * as given: SentencePiece models trained with remove_extra_whitespaces (the
 * default, and so tok512.model) strip and collapse runs of ' ' first, so
 * their ids differ from these only on text with leading, trailing or
 * repeated spaces. */
lt_status lt_tokenizer_encode(const lt_tokenizer *tok, const char *text, size_t len, int add_bos,
                              int add_eos, int32_t *ids, size_t cap, size_t *n_out, lt_error *err);

/* The bytes token stands for, given the token before it (a leading space is
 * dropped right after BOS; byte pieces become one raw byte). The returned
 * pointer stays valid as long as tok; *len receives its length; the bytes
 * are not NUL-terminated for byte pieces. BOS and EOS stand for no bytes
 * (run.c prints their "\n<s>\n" spellings), nor does an id outside the
 * vocabulary (this call has no error channel; decode reports those). */
const char *lt_tokenizer_piece(const lt_tokenizer *tok, int32_t prev, int32_t token, size_t *len);

/* Decodes a whole sequence into out (NUL-terminated, at most cap bytes
 * including the NUL); *len_out receives the length without the NUL. The
 * pieces are lt_tokenizer_piece's, with the start of the sequence counting
 * as "after BOS" (as SentencePiece drops the dummy prefix), so
 * decode(encode(x)) == x with or without BOS/EOS. An id outside the
 * vocabulary is LT_ERR_INVALID naming its position; so is a buffer too
 * small, and then *len_out receives the length needed (without the NUL). */
lt_status lt_tokenizer_decode(const lt_tokenizer *tok, const int32_t *ids, size_t n, char *out,
                              size_t cap, size_t *len_out, lt_error *err);

#endif
