/* loratrain logits: the model's logits for given token ids, for comparing
 * with other implementations (transformers + PEFT, PyTorch) bit for bit. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/fileutil.h"
#include "io/model/adapter.h"
#include "io/model/any_format.h"
#include "launch/cli.h"
#include "launch/commands.h"
#include "model/backend.h"

void lt_help_logits(FILE *f) {
    fprintf(f,
            "usage: loratrain logits --model FILE --ids FILE --out FILE [options]\n"
            "\n"
            "Runs the model (with --adapter, base + PEFT adapter) on each line of --ids\n"
            "(whitespace-separated token ids, one sequence per line, at most seq_len) and\n"
            "writes the logits of every position to --out as little-endian float32, the\n"
            "sequences back to back, each [tokens, vocab_size] row-major.\n"
            "\n"
            "  --model FILE|DIR      base model: a llama2.c checkpoint or a Hugging Face directory\n"
            "  --adapter DIR         a PEFT-layout adapter directory\n"
            "  --ids FILE            token ids\n"
            "  --out FILE            where the logits go\n"
            "  --threads N           CPU threads (0: all cores) [default: 1]\n" LT_CLI_DEVICE_HELP
            LT_CLI_QUANT_HELP);
}

/* Parses one line of ids into ids[0..*n). */
static lt_status parse_line(const char *path, int lineno, char *line, int vocab, int cap, int32_t *ids,
                            int *n, lt_error *err) {
    *n = 0;
    for (char *p = line;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r') p++;
        if (!*p || *p == '\n') return LT_OK;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || (*end && *end != ' ' && *end != '\t' && *end != '\r' && *end != '\n'))
            return lt_fail(err, LT_ERR_FORMAT, "%s: line %d: expected token ids (integers)", path, lineno);
        if (v < 0 || v >= vocab)
            return lt_fail(err, LT_ERR_FORMAT, "%s: line %d: token id %ld is outside the vocabulary [0, %d)",
                           path, lineno, v, vocab);
        if (*n == cap)
            return lt_fail(err, LT_ERR_FORMAT, "%s: line %d: more than the model's seq_len %d tokens", path,
                           lineno, cap);
        ids[(*n)++] = (int32_t)v;
        p = end;
    }
}

lt_status lt_cmd_logits(int argc, char **argv, lt_error *err) {
    const char *model = NULL, *adapter = NULL, *ids_path = NULL, *out_path = NULL, *device = "auto";
    int threads = 1;
    lt_cli_quant cq;
    lt_cli_quant_init(&cq);
    lt_cli c;
    lt_status st;
    lt_cli_init(&c, argc, argv);
    while (lt_cli_next(&c, err, &st)) {
        int handled = 0;
        if ((st = lt_cli_quant_option(&c, &cq, &handled, err)) != LT_OK) return st;
        if (handled) continue;
        if (!*c.key) return lt_fail(err, LT_ERR_CONFIG, "logits: unexpected argument \"%s\"", c.value);
        if (!strcmp(c.key, "threads")) {
            if ((st = lt_cli_int(&c, 0, 4096, &threads, err)) != LT_OK) return st;
            continue;
        }
        if ((st = lt_cli_need_value(&c, err)) != LT_OK) return st;
        if (!strcmp(c.key, "model")) model = c.value;
        else if (!strcmp(c.key, "adapter")) adapter = c.value;
        else if (!strcmp(c.key, "ids")) ids_path = c.value;
        else if (!strcmp(c.key, "out")) out_path = c.value;
        else if (!strcmp(c.key, "device")) device = c.value;
        else return lt_fail(err, LT_ERR_CONFIG, "unknown option \"--%s\" for logits", c.key);
    }
    if (st != LT_OK) return st;
    if (!model || !ids_path || !out_path)
        return lt_fail(err, LT_ERR_CONFIG, "logits: --%s is missing", !model ? "model" : !ids_path ? "ids" : "out");
    lt_quant_config qc;
    if ((st = lt_cli_quant_resolve(&cq, &qc, err)) != LT_OK) return st;
    const lt_ops *ops = NULL;
    if ((st = lt_backend_open(device, threads, &ops, err)) != LT_OK) return st;

    lt_model *m = NULL;
    char *text = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    uint64_t size = 0;
    lt_atomic_file af;
    int open = 0;
    if ((st = lt_model_file_load_quantized(model, &qc, ops, &m, err)) != LT_OK) goto done;
    if (adapter && (st = lt_adapter_load(m, adapter, err)) != LT_OK) goto done;
    const lt_model_config *cfg = lt_model_get_config(m);
    const int T = cfg->seq_len, V = cfg->vocab_size;
    if ((st = lt_read_file(ids_path, (uint64_t)1 << 30, &text, &size, err)) != LT_OK) goto done;
    ids = malloc((size_t)T * sizeof *ids);
    logits = malloc((size_t)T * V * sizeof *logits);
    if (!ids || !logits) {
        st = lt_fail(err, LT_ERR_NOMEM, "logits: out of memory");
        goto done;
    }
    if ((st = lt_model_reserve(m, 1, T, err)) != LT_OK) goto done;
    if ((st = lt_atomic_open(&af, out_path, err)) != LT_OK) goto done;
    open = 1;
    int lineno = 0, sequences = 0;
    for (char *line = text, *next; st == LT_OK && line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        int n;
        if ((st = parse_line(ids_path, ++lineno, line, V, T, ids, &n, err)) != LT_OK || n == 0) continue;
        if ((st = lt_model_logits(m, ids, 1, n, 0, logits, err)) == LT_OK)
            st = lt_atomic_write(&af, logits, (size_t)n * V * sizeof *logits, err);
        sequences++;
    }
    if (st == LT_OK) {
        st = lt_atomic_commit(&af, err);
        open = 0;
    }
    if (st == LT_OK)
        printf("logits of %d sequence(s) written to %s (float32, [tokens, %d] each)\n", sequences, out_path, V);
done:
    if (open) lt_atomic_abort(&af);
    free(text);
    free(ids);
    free(logits);
    lt_model_free(m);
    return st;
}
