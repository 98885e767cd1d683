#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/data/dataset.h"
#include "io/data/token_file.h"
#include "io/model/any_format.h"
#include "io/text/tokenizer.h"
#include "launch/cli.h"
#include "launch/commands.h"

void lt_help_tokenize(FILE *f) {
    fprintf(f,
            "usage: loratrain tokenize --tokenizer FILE (--model FILE | --vocab_size N)\n"
            "                          --input FILE --output FILE\n"
            "\n"
            "Tokenises a corpus once into a token file (magic LTTK, version, dtype, vocab\n"
            "size, count, then uint16 or uint32 ids) that train_file accepts directly, as the\n"
            "same text would be tokenised for training: BOS, then the text. The input may be\n"
            "plain UTF-8 text or JSONL (records concatenated, each BOS ... EOS).\n"
            "\n"
            "  --tokenizer PATH   tokenizer.json, tokenizer.model, llama2.c .bin or an HF model dir\n"
            "  --model FILE       take the vocabulary size from this checkpoint's header\n"
            "  --vocab_size N     or give it directly\n"
            "  --input FILE       the corpus\n"
            "  --output FILE      the token file to write (atomically)\n");
}

lt_status lt_cmd_tokenize(int argc, char **argv, lt_error *err) {
    const char *tok_path = NULL, *model = NULL, *in = NULL, *out = NULL;
    int vocab = 0;
    lt_cli c;
    lt_cli_init(&c, argc, argv);
    lt_status st;
    while (lt_cli_next(&c, err, &st)) {
        const char **dst = !strcmp(c.key, "tokenizer") ? &tok_path
                           : !strcmp(c.key, "model")   ? &model
                           : !strcmp(c.key, "input")   ? &in
                           : !strcmp(c.key, "output")  ? &out
                                                       : NULL;
        if (dst) {
            if ((st = lt_cli_need_value(&c, err)) != LT_OK) return st;
            *dst = c.value;
        } else if (!strcmp(c.key, "vocab_size")) {
            if ((st = lt_cli_int(&c, 1, 1 << 22, &vocab, err)) != LT_OK) return st;
        } else {
            return lt_fail(err, LT_ERR_CONFIG, "unknown option \"%s%s\" for tokenize",
                           *c.key ? "--" : "", *c.key ? c.key : c.value);
        }
    }
    if (st != LT_OK) return st;
    if (!tok_path) return lt_fail(err, LT_ERR_CONFIG, "--tokenizer: missing, expected a tokenizer file");
    if (!in) return lt_fail(err, LT_ERR_CONFIG, "--input: missing, expected a text or JSONL file");
    if (!out) return lt_fail(err, LT_ERR_CONFIG, "--output: missing, expected a path for the token file");
    if (model) {
        lt_model_config mc;
        if ((st = lt_model_file_read_config(model, &mc, err)) != LT_OK) return st;
        vocab = mc.vocab_size;
    }
    if (vocab <= 0)
        return lt_fail(err, LT_ERR_CONFIG, "--model or --vocab_size: one is needed for the vocabulary size");
    lt_tokenizer *tok = NULL;
    if ((st = lt_tokenizer_load(tok_path, vocab, &tok, err)) != LT_OK) return st;
    int32_t *ids = NULL;
    size_t n = 0;
    st = lt_dataset_tokenize_stream(in, tok, &ids, &n, err);
    if (st == LT_OK) st = lt_token_file_write(out, ids, n, vocab, err);
    if (st == LT_OK) printf("%s: %zu tokens written to %s\n", in, n, out);
    lt_free(ids);
    lt_tokenizer_free(tok);
    return st;
}
