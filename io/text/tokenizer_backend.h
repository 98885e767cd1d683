/* What a tokenizer format provides: the function table the front
 * (io/text/tokenizer.c) dispatches through, and the loaders it picks by
 * file name. Not for callers outside io/text/tokenizer*. */
#ifndef LT_IO_TEXT_TOKENIZER_BACKEND_H
#define LT_IO_TEXT_TOKENIZER_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "io/text/tokenizer.h"
#include "io/text/tokenizer_pieces.h"

struct lt_tokenizer_backend {
    const char *name;
    /* Writes at most cap ids (no BOS/EOS; the front adds those). */
    lt_status (*encode)(const lt_tokenizer *tok, const char *text, size_t len, int32_t *ids,
                        size_t cap, size_t *n_out, lt_error *err);
    void (*destroy)(void *impl);
};

/* SentencePiece BPE (io/text/tokenizer_spm.c), which the llama2.c format
 * (io/text/tokenizer_llama2c.c) encodes with too. */
extern const lt_tokenizer_backend lt_tok_spm_backend;

/* The format loaders. vocab_size is the model's (0: no check). */
lt_status lt_tokenizer_load_spm(const char *path, int vocab_size, lt_tokenizer **out,
                                lt_error *err);
lt_status lt_tokenizer_load_hf_json(const char *path, int vocab_size, lt_tokenizer **out,
                                    lt_error *err);

#endif
