#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "io/model/adapter.h"
#include "io/model/any_format.h"
#include "io/text/tokenizer.h"
#include "launch/cli.h"
#include "launch/commands.h"
#include "model/backend.h"
#include "model/sample.h"

void lt_help_generate(FILE *f) {
    fprintf(f,
            "usage: loratrain generate --model FILE --tokenizer FILE [options]\n"
            "\n"
            "Samples text from the model, starting from BOS and the prompt; with --adapter,\n"
            "from the base model plus a LoRA adapter, so you can see what fine-tuning changed.\n"
            "Output goes to stdout as it is generated; speed to stderr. Stops at BOS or EOS.\n"
            "\n"
            "  --model FILE|DIR      base model: a llama2.c checkpoint or a Hugging Face directory\n"
            "  --tokenizer PATH      tokenizer.json, tokenizer.model, llama2.c .bin (e.g. tok512.bin)\n"
            "                        or an HF model directory holding one\n"
            "  --adapter DIR         a PEFT-layout adapter (adapter_config.json and\n"
            "                        adapter_model.safetensors), e.g. a training output_dir\n"
            "  --prompt TEXT         text to continue [default: empty]\n"
            "  --max_new_tokens N    tokens to generate (alias --steps) [default: 256]\n"
            "  --temperature T       0 for greedy decoding [default: 1.0]\n"
            "  --top_p P             nucleus sampling mass [default: 0.9]\n"
            "  --seed S              sampling seed [default: 42]\n"
            "  --threads N           CPU threads (0: all cores) [default: 0]\n"
            LT_CLI_DEVICE_HELP
            "  --ids_out FILE        also write the generated token ids to FILE\n"
            "with the base quantized as in training (the adapter of a QLoRA run on the\n"
            "weights it was trained against):\n" LT_CLI_QUANT_HELP);
}

typedef struct {
    const char *model, *tokenizer, *prompt, *ids_out, *adapter, *device;
    int steps, threads;
    float temperature, top_p;
    unsigned long long seed;
    lt_quant_config quant;
} gen_opts;

static lt_status parse(int argc, char **argv, gen_opts *o, lt_error *err) {
    *o = (gen_opts){.prompt = "", .steps = 256, .temperature = 1.0f, .top_p = 0.9f, .seed = 42,
                    .device = "auto"};
    lt_cli c;
    lt_cli_init(&c, argc, argv);
    lt_cli_quant cq;
    lt_cli_quant_init(&cq);
    lt_status st;
    int handled = 0;
    while (lt_cli_next(&c, err, &st)) {
        if ((st = lt_cli_quant_option(&c, &cq, &handled, err)) != LT_OK) return st;
        if (handled) continue;
        if (!strcmp(c.key, "model") || !strcmp(c.key, "tokenizer") || !strcmp(c.key, "prompt") ||
            !strcmp(c.key, "ids_out") || !strcmp(c.key, "adapter") || !strcmp(c.key, "device")) {
            if (strcmp(c.key, "prompt") && (st = lt_cli_need_value(&c, err)) != LT_OK) return st;
            const char *v = c.value ? c.value : "";
            if (!strcmp(c.key, "model")) o->model = v;
            else if (!strcmp(c.key, "tokenizer")) o->tokenizer = v;
            else if (!strcmp(c.key, "prompt")) o->prompt = v;
            else if (!strcmp(c.key, "adapter")) o->adapter = v;
            else if (!strcmp(c.key, "device")) o->device = v;
            else o->ids_out = v;
        } else if (!strcmp(c.key, "steps") || !strcmp(c.key, "max_new_tokens")) {
            if ((st = lt_cli_int(&c, 1, 1 << 22, &o->steps, err)) != LT_OK) return st;
        } else if (!strcmp(c.key, "threads")) {
            if ((st = lt_cli_int(&c, 0, 4096, &o->threads, err)) != LT_OK) return st;
        } else if (!strcmp(c.key, "temperature")) {
            if ((st = lt_cli_float(&c, 0.0, 100.0, &o->temperature, err)) != LT_OK) return st;
        } else if (!strcmp(c.key, "top_p")) {
            if ((st = lt_cli_float(&c, 0.0, 1.0, &o->top_p, err)) != LT_OK) return st;
        } else if (!strcmp(c.key, "seed")) {
            if ((st = lt_cli_u64(&c, &o->seed, err)) != LT_OK) return st;
        } else {
            return lt_fail(err, LT_ERR_CONFIG, "unknown option \"%s%s\" for generate",
                           *c.key ? "--" : "", *c.key ? c.key : c.value);
        }
    }
    if (st != LT_OK) return st;
    if (!o->model) return lt_fail(err, LT_ERR_CONFIG, "--model: missing, expected a checkpoint file");
    if (!o->tokenizer)
        return lt_fail(err, LT_ERR_CONFIG, "--tokenizer: missing, expected a tokenizer file (e.g. tok512.bin)");
    return lt_cli_quant_resolve(&cq, &o->quant, err);
}

lt_status lt_cmd_generate(int argc, char **argv, lt_error *err) {
    gen_opts o;
    lt_status st = parse(argc, argv, &o, err);
    if (st != LT_OK) return st;
    const lt_ops *ops = NULL;
    if ((st = lt_backend_open(o.device, o.threads, &ops, err)) != LT_OK) return st;
    lt_model *m = NULL;
    lt_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    lt_prob_index *scratch = NULL;
    FILE *ids_file = NULL;
    if ((st = lt_model_file_load_quantized(o.model, &o.quant, ops, &m, err)) != LT_OK) goto done;
    if (o.adapter && (st = lt_adapter_load(m, o.adapter, err)) != LT_OK) goto done;
    const lt_model_config *cfg = lt_model_get_config(m);
    if ((st = lt_tokenizer_load(o.tokenizer, cfg->vocab_size, &tok, err)) != LT_OK) goto done;

    size_t plen = strlen(o.prompt), cap = plen + 3 > (size_t)cfg->seq_len ? plen + 3 : (size_t)cfg->seq_len;
    ids = malloc(cap * sizeof *ids);
    logits = malloc((size_t)cfg->vocab_size * sizeof *logits);
    scratch = malloc((size_t)cfg->vocab_size * sizeof *scratch);
    if (!ids || !logits || !scratch) {
        st = lt_fail(err, LT_ERR_NOMEM, "generate: out of memory");
        goto done;
    }
    size_t n = 0;
    if ((st = lt_tokenizer_encode(tok, o.prompt, plen, 1, 0, ids, cap, &n, err)) != LT_OK) goto done;
    if (n >= (size_t)cfg->seq_len) {
        st = lt_fail(err, LT_ERR_CONFIG, "--prompt: %zu tokens leave no room in the model's seq_len %d",
                     n, cfg->seq_len);
        goto done;
    }
    size_t max_len = n + (size_t)o.steps;
    if (max_len > (size_t)cfg->seq_len) max_len = (size_t)cfg->seq_len;
    if ((st = lt_model_reserve(m, 1, (int)max_len, err)) != LT_OK) goto done;
    if (o.ids_out && !(ids_file = fopen(o.ids_out, "w"))) {
        st = lt_fail(err, LT_ERR_IO, "--ids_out %s: cannot open for writing", o.ids_out);
        goto done;
    }
    for (size_t i = 1; i < n; i++) {
        size_t len;
        const char *p = lt_tokenizer_piece(tok, ids[i - 1], ids[i], &len);
        fwrite(p, 1, len, stdout);
    }
    lt_rng rng;
    lt_rng_seed(&rng, o.seed, 0x67656e);
    double t0 = lt_now_s();
    size_t generated = 0;
    while (n < max_len) {
        if ((st = lt_model_logits(m, ids, 1, (int)n, 1, logits, err)) != LT_OK) goto done;
        int next = lt_sample(logits, cfg->vocab_size, o.temperature, o.top_p, &rng, scratch);
        /* BOS starts a new story in llama2.c's training data; EOS ends text. */
        if (next == lt_tokenizer_bos(tok) || next == lt_tokenizer_eos(tok)) break;
        ids[n++] = next;
        generated++;
        size_t len;
        const char *p = lt_tokenizer_piece(tok, ids[n - 2], next, &len);
        fwrite(p, 1, len, stdout);
        fflush(stdout);
        if (ids_file) fprintf(ids_file, "%s%d", generated > 1 ? " " : "", next);
    }
    double dt = lt_now_s() - t0;
    printf("\n");
    fflush(stdout);
    if (ids_file) fprintf(ids_file, "\n");
    fprintf(stderr, "generated %zu tokens in %.2f s (%.1f tokens/s)\n", generated, dt,
            dt > 0 ? (double)generated / dt : 0.0);
done:
    if (ids_file && fclose(ids_file) != 0 && st == LT_OK)
        st = lt_fail(err, LT_ERR_IO, "--ids_out %s: write failed", o.ids_out);
    free(ids);
    free(logits);
    free(scratch);
    lt_tokenizer_free(tok);
    lt_model_free(m);
    return st;
}
