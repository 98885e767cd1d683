/* loratrain plan: per-rank memory of a LoRA or QLoRA run, by the tracked
 * allocator's categories, computed from the same sizes the model and the
 * trainer allocate (lt_quant_layer_layout, lt_model_activation_bytes), for
 * a llama2.c checkpoint's shape or a preset of a published model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/llama2c.h"
#include "launch/cli.h"
#include "launch/commands.h"
#include "model/lora.h"
#include "model/quant.h"

typedef struct {
    const char *name;
    int dim, hidden, layers, heads, kv_heads, vocab, seq;
} preset;

/* Shapes from the models' published config.json files. */
static const preset k_presets[] = {
    {"llama-2-7b", 4096, 11008, 32, 32, 32, 32000, 4096},
    {"llama-2-13b", 5120, 13824, 40, 40, 40, 32000, 4096},
    {"llama-2-70b", 8192, 28672, 80, 64, 8, 32000, 4096},
    {"llama-3-8b", 4096, 14336, 32, 32, 8, 128256, 8192},
    {"mistral-7b", 4096, 14336, 32, 32, 8, 32000, 32768},
};

void lt_help_plan(FILE *f) {
    fprintf(f,
            "usage: loratrain plan --model FILE|PRESET --mode lora|qlora [--ranks N] [--shard_base]\n"
            "                      [--seq S] [--batch B] [--r R] [--target_modules LIST]\n"
            "                      [--lora_dropout P] [--json]\n"
            "\n"
            "Predicts the per-rank memory of `loratrain train` by the categories its memory\n"
            "report uses, from the sizes the model allocates. PRESET: llama-2-7b,\n"
            "llama-2-13b, llama-2-70b, llama-3-8b, mistral-7b (untied classifier); FILE: a\n"
            "llama2.c checkpoint (its header). qlora is NF4 with double quantization, blocks\n"
            "of 64. Data buffers (category \"other\") depend on the corpus and are not\n"
            "predicted. Full fine-tuning arrives with its trainer mode.\n");
}

static const char *k_cats[] = {"base_weights", "quantized_base", "lora_params", "gradients",
                               "optimizer_state", "activations", "communication", "workspace"};
#define NCATS (sizeof k_cats / sizeof k_cats[0])

lt_status lt_cmd_plan(int argc, char **argv, lt_error *err) {
    const char *model = NULL, *mode = "lora", *targets = "q_proj,v_proj";
    int ranks = 1, shard = 0, seq = 0, batch = 8, r = 8, json = 0;
    float dropout = 0;
    lt_cli cli;
    lt_status st = LT_OK;
    lt_cli_init(&cli, argc, argv);
    while (lt_cli_next(&cli, err, &st)) {
        const char *k = cli.key;
        if (!strcmp(k, "shard_base")) st = lt_cli_bool(&cli, &shard, err);
        else if (!strcmp(k, "json")) st = lt_cli_bool(&cli, &json, err);
        else if ((st = lt_cli_need_value(&cli, err)) != LT_OK) return st;
        else if (!strcmp(k, "model")) model = cli.value;
        else if (!strcmp(k, "mode")) mode = cli.value;
        else if (!strcmp(k, "target_modules")) targets = cli.value;
        else if (!strcmp(k, "ranks")) st = lt_cli_int(&cli, 1, 1 << 20, &ranks, err);
        else if (!strcmp(k, "seq")) st = lt_cli_int(&cli, 1, 1 << 24, &seq, err);
        else if (!strcmp(k, "batch")) st = lt_cli_int(&cli, 1, 1 << 20, &batch, err);
        else if (!strcmp(k, "r")) st = lt_cli_int(&cli, 1, 1 << 16, &r, err);
        else if (!strcmp(k, "lora_dropout")) st = lt_cli_float(&cli, 0, 0.999999, &dropout, err);
        else return lt_fail(err, LT_ERR_CONFIG, "plan: unknown option --%s (loratrain plan --help)", k);
        if (st != LT_OK) return st;
    }
    if (st != LT_OK) return st;
    if (!model) return lt_fail(err, LT_ERR_CONFIG, "plan: --model FILE|PRESET is required");
    const int qlora = !strcmp(mode, "qlora");
    if (!qlora && strcmp(mode, "lora") != 0)
        return lt_fail(err, LT_ERR_CONFIG, "plan: --mode %s: expected lora or qlora (full fine-tuning "
                       "is not a trainer mode yet)", mode);
    if (shard && !qlora) return lt_fail(err, LT_ERR_CONFIG, "plan: --shard_base needs --mode qlora");
    lt_model_config c;
    memset(&c, 0, sizeof c);
    const preset *p = NULL;
    for (size_t i = 0; i < sizeof k_presets / sizeof k_presets[0]; i++)
        if (!strcmp(model, k_presets[i].name)) p = &k_presets[i];
    if (p) {
        c.dim = p->dim, c.hidden_dim = p->hidden, c.n_layers = p->layers, c.n_heads = p->heads;
        c.n_kv_heads = p->kv_heads, c.vocab_size = p->vocab, c.seq_len = p->seq;
        c.norm_eps = 1e-5f, c.rope_theta = 10000.0f, c.shared_classifier = 0;
    } else if ((st = lt_llama2c_read_config(model, &c, NULL, err)) != LT_OK) {
        return st;
    }
    const int T = seq ? seq : c.seq_len;
    lt_lora_config lc = {.r = r, .alpha = 2.0f * (float)r, .dropout = dropout, .use_rslora = 0};
    if ((st = lt_lora_parse_targets(targets, &lc.targets, err)) != LT_OK) return st;
    if ((st = lt_lora_config_validate(&lc, &c, err)) != LT_OK) return st;

    const uint64_t C = (uint64_t)c.dim, H = (uint64_t)c.hidden_dim, V = (uint64_t)c.vocab_size;
    const uint64_t L = (uint64_t)c.n_layers;
    uint64_t lora = 0;
    for (int mod = 0; mod < LT_MOD_COUNT; mod++) {
        int out, in;
        lt_module_shape(&c, (lt_module)mod, &out, &in);
        if (lc.targets & (1u << mod)) lora += L * (uint64_t)r * (uint64_t)(out + in);
    }
    lt_quant_config four = {.format = LT_QUANT_NF4, .blocksize = 64, .double_quant = 1}, qc;
    if ((st = lt_quant_select(qlora, 0, &four, &qc, err)) != LT_OK) return st;
    const int shards = shard ? ranks : 1;
    lt_base_memory bm;
    if ((st = lt_plan_base_memory(&c, &qc, shards, &bm, err)) != LT_OK) return st;
    uint64_t bytes[NCATS] = {0};
    bytes[0] = bm.fp32_bytes;
    bytes[1] = bm.quant_resident_bytes;
    if (shards > 1) bytes[6] = 2 * (uint64_t)shards * (bm.quant_resident_bytes / L); /* two whole layers */
    uint64_t qmax = 0; /* the largest tensor's quantized bytes: staged while loading */
    if (qlora) {
        lt_qtensor qt[LT_MOD_COUNT];
        uint64_t blob;
        if ((st = lt_quant_layer_layout(&c, &qc, qt, &blob, err)) != LT_OK) return st;
        for (int mod = 0; mod < LT_MOD_COUNT; mod++)
            if (qt[mod].end - qt[mod].begin > qmax) qmax = qt[mod].end - qt[mod].begin;
    }
    const uint64_t ws = bm.workspace_bytes;
    bytes[2] = bytes[3] = 4 * lora;
    bytes[4] = 8 * lora;
    uint64_t rope;
    lt_model_activation_bytes(&c, &lc, batch, T, &bytes[5], &rope);
    /* The workspace peaks either while loading (one fp32 tensor slice and,
     * quantized, its blob) or while training (the RoPE tables). */
    const uint64_t slice = 4 * (V * C > H * C ? V * C : H * C);
    const uint64_t load = ws + slice + qmax, train = ws + rope;
    bytes[7] = load > train ? load : train;
    uint64_t total = 0;
    for (size_t i = 0; i < NCATS; i++) total += bytes[i];
    const double MiB = 1048576.0;
    if (json) {
        printf("{\"model\":\"%s\",\"mode\":\"%s\",\"ranks\":%d,\"shard_base\":%s,\"seq\":%d,\"batch\":%d,"
               "\"r\":%d,\"lora_params\":%llu,\"bytes\":{",
               model, mode, ranks, shard ? "true" : "false", T, batch, r, (unsigned long long)lora);
        for (size_t i = 0; i < NCATS; i++)
            printf("%s\"%s\":%llu", i ? "," : "", k_cats[i], (unsigned long long)bytes[i]);
        printf("},\"total_bytes\":%llu}\n", (unsigned long long)total);
        return LT_OK;
    }
    printf("%s, %s%s on %d rank(s), batch %d x %d tokens, LoRA r %d on %s (%llu parameters)\n"
           "per-rank memory (peak of each category):\n",
           model, mode, shard ? " (base sharded)" : "", ranks, batch, T, r, targets,
           (unsigned long long)lora);
    for (size_t i = 0; i < NCATS; i++)
        if (bytes[i]) printf("  %-16s %12.2f MiB\n", k_cats[i], (double)bytes[i] / MiB);
    printf("  %-16s %12.2f MiB (%.2f GiB), plus the data buffers\n", "total", (double)total / MiB,
           (double)total / (MiB * 1024.0));
    return LT_OK;
}
