/* libFuzzer target: the tokenizer.model (protobuf) and tokenizer.json
 * readers on arbitrary bytes. The first input byte picks the format (the
 * file's name decides it, as for real tokenizers); every input must load or
 * fail with a message, never crash or read out of bounds; a file that
 * loads must encode and decode text without either. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "io/text/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    static char path[2][64];
    if (!path[0][0]) {
        snprintf(path[0], sizeof path[0], "/tmp/lt_fuzz_tok.%ld.model", (long)getpid());
        snprintf(path[1], sizeof path[1], "/tmp/lt_fuzz_tok.%ld.json", (long)getpid());
    }
    const char *p = path[data[0] & 1];
    FILE *f = fopen(p, "wb");
    if (!f) return 0;
    if (size > 1 && fwrite(data + 1, 1, size - 1, f) != size - 1) {
        fclose(f);
        return 0;
    }
    fclose(f);
    lt_tokenizer *tok = NULL;
    lt_error err;
    if (lt_tokenizer_load(p, 0, &tok, &err) == LT_OK) {
        static const char text[] = "Hello  world<|endoftext|> caf\xc3\xa9 12345\n\n\xff ab'S";
        int32_t ids[2 * sizeof text + 8];
        size_t n = 0, len = 0;
        char out[8 * sizeof text + 64];
        if (lt_tokenizer_encode(tok, text, sizeof text - 1, 1, 1, ids, sizeof ids / sizeof *ids, &n,
                                &err) == LT_OK) {
            for (size_t i = 0; i < n; i++)
                if (ids[i] < 0 || ids[i] >= lt_tokenizer_vocab_size(tok)) abort();
            lt_tokenizer_decode(tok, ids, n, out, sizeof out, &len, &err);
        }
        lt_tokenizer_free(tok);
    }
    unlink(p);
    return 0;
}
