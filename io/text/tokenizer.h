/* Tokenizers: the llama2.c .bin (tok512.bin and friends), SentencePiece's
 * tokenizer.model (BPE models, Llama 2 style) and Hugging Face's
 * tokenizer.json (byte-level BPE, GPT-2 / Llama 3 / Qwen style). One
 * opaque lt_tokenizer serves all three; lt_tokenizer_load picks the format. */
#ifndef LT_IO_TEXT_TOKENIZER_H
#define LT_IO_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct lt_tokenizer lt_tokenizer;

/* The llama2.c layout's ids; other formats have their own (lt_tokenizer_bos). */
enum { LT_TOKEN_UNK = 0, LT_TOKEN_BOS = 1, LT_TOKEN_EOS = 2 };

/* Chooses the format from path: "*.json" is a Hugging Face tokenizer.json,
 * "*.model" a SentencePiece ModelProto, "*.bin" the llama2.c format (other
 * names: JSON if the file starts with '{', else llama2.c). A directory (an HF
 * model directory) must hold tokenizer.json or else tokenizer.model.
 * vocab_size is the model's: a llama2.c file must hold exactly that many
 * pieces, the others at most that many (HF models pad their embedding). */
lt_status lt_tokenizer_load(const char *path, int vocab_size, lt_tokenizer **out, lt_error *err);

/* vocab_size comes from the model (the file does not store it). The file
 * must hold exactly vocab_size entries; anything else is a format error
 * naming the file, the entry and the expected value. */
lt_status lt_tokenizer_load_llama2c(const char *path, int vocab_size, lt_tokenizer **out,
                                    lt_error *err);
void lt_tokenizer_free(lt_tokenizer *tok);

int lt_tokenizer_vocab_size(const lt_tokenizer *tok);
/* The ids encode adds for add_bos / add_eos; -1 when the tokenizer has none
 * (GPT-2 style tokenizer.json without a BOS template), and then the flag is
 * a no-op. */
int32_t lt_tokenizer_bos(const lt_tokenizer *tok);
int32_t lt_tokenizer_eos(const lt_tokenizer *tok);
/* "sentencepiece-bpe", "sentencepiece-unigram" or "byte-level-bpe", for
 * messages. */
const char *lt_tokenizer_kind(const lt_tokenizer *tok);

/* Encodes len bytes of UTF-8 text (not necessarily NUL-terminated), with the
 * dummy-prefix space SentencePiece adds when text is non-empty (llama2.c,
 * and tokenizer.model with add_dummy_prefix). Writes at
 * most cap ids; *n_out receives the count. cap >= len + 3 always suffices,
 * except for a tokenizer.json with add_prefix_space, which may need up to
 * 2 * len + 3 (a prefix space per piece).
 *
 * tokenizer.json: added tokens are cut out first, the rest pre-tokenized
 * (see io/text/tokenizer_pretok.h) and each piece merged by merge rank, as the
 * tokenizers library does.
 *
 * tokenizer.model: as below, with the model's add_dummy_prefix and
 * remove_extra_whitespaces applied first, as SentencePiece does.
 *
 * llama2.c: the result is run.c's: codepoints (a byte and up to 3 continuation bytes)
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

/* The bytes token stands for, given the token before it (for SentencePiece
 * formats a leading space is dropped right after BOS; byte pieces become
 * one raw byte; tokenizer.json tokens are their bytes, GPT-2's byte-to-
 * unicode mapping undone). The returned pointer stays valid as long as tok;
 * *len receives its length; the bytes are not NUL-terminated for byte
 * pieces. BOS, EOS and other control/special tokens stand for no bytes
 * (run.c prints their "\n<s>\n" spellings; the tokenizers library with
 * skip_special_tokens drops them too), nor do <unk> and an id outside the
 * vocabulary (this call has no error channel; decode reports those). */
const char *lt_tokenizer_piece(const lt_tokenizer *tok, int32_t prev, int32_t token, size_t *len);

/* Decodes a whole sequence into out (NUL-terminated, at most cap bytes
 * including the NUL); *len_out receives the length without the NUL. The
 * pieces are lt_tokenizer_piece's, with the start of the sequence counting
 * as "after BOS" (as SentencePiece drops the dummy prefix), so
 * decode(encode(x)) == x with or without BOS/EOS, except where the format
 * itself loses text (remove_extra_whitespaces; add_prefix_space leaves its
 * space, as the tokenizers library's decode does). An id outside the
 * vocabulary is LT_ERR_INVALID naming its position; so is a buffer too
 * small, and then *len_out receives the length needed (without the NUL). */
lt_status lt_tokenizer_decode(const lt_tokenizer *tok, const int32_t *ids, size_t n, char *out,
                              size_t cap, size_t *len_out, lt_error *err);

#endif
