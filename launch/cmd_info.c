#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "io/model/any_format.h"
#include "launch/cli.h"
#include "launch/commands.h"
#include "model/lora.h"

static void with_commas(uint64_t v, char *buf, size_t cap) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v), o = 0;
    for (int i = 0; i < n && (size_t)o + 2 < cap; i++) {
        if (i && (n - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = '\0';
}

void lt_help_info(FILE *f) {
    /* The defaults are the ones train's config starts from (PEFT's). */
    const lt_lora_config d = lt_lora_defaults();
    char targets[128];
    lt_lora_format_targets(d.targets, targets, sizeof targets);
    fprintf(f,
            "usage: loratrain info --model FILE|DIR [LoRA options]\n"
            "\n"
            "Prints the model's shape and parameter count, and the trainable parameters of\n"
            "a LoRA setup in PEFT's print_trainable_parameters form.\n"
            "\n"
            "  --model FILE|DIR        llama2.c checkpoint (.bin) or Hugging Face model directory\n"
            "  --r N                   adapter rank [default: %d]\n"
            "  --lora_alpha A          scale numerator [default: %g]\n"
            "  --lora_dropout P        adapter input dropout [default: %g]\n"
            "  --target_modules LIST   comma-separated PEFT names or all-linear [default: %s]\n"
            "  --use_rslora            scale by lora_alpha / sqrt(r)\n"
            "and, to report the quantized base's size and bits per parameter:\n" LT_CLI_QUANT_HELP,
            d.r, (double)d.alpha, (double)d.dropout, targets);
}

lt_status lt_cmd_info(int argc, char **argv, lt_error *err) {
    const char *model_path = NULL;
    lt_lora_config lc = lt_lora_defaults();
    int lora_given = 0;
    lt_cli_quant cq;
    lt_cli_quant_init(&cq);
    lt_cli c;
    lt_cli_init(&c, argc, argv);
    lt_status st;
    while (lt_cli_next(&c, err, &st)) {
        int handled = 0;
        if (!strcmp(c.key, "model")) {
            if ((st = lt_cli_need_value(&c, err)) != LT_OK) return st;
            model_path = c.value;
        } else if ((st = lt_cli_quant_option(&c, &cq, &handled, err)) != LT_OK) {
            return st;
        } else if (handled) {
            continue;
        } else if ((st = lt_cli_lora_option(&c, &lc, &handled, err)) != LT_OK) {
            return st;
        } else if (handled) {
            lora_given = 1;
        } else {
            return lt_fail(err, LT_ERR_CONFIG, "unknown option \"%s%s\" for info",
                           *c.key ? "--" : "", *c.key ? c.key : c.value);
        }
    }
    if (st != LT_OK) return st;
    if (!model_path) return lt_fail(err, LT_ERR_CONFIG, "--model: missing, expected a llama2.c checkpoint or a Hugging Face model directory");
    lt_model_config cfg;
    uint64_t bytes = 0;
    uint64_t fingerprint = 0;
    if ((st = lt_model_file_read_config(model_path, &cfg, err)) != LT_OK ||
        (st = lt_model_file_fingerprint(model_path, &bytes, &fingerprint, err)) != LT_OK)
        return st;
    if ((st = lt_lora_config_validate(&lc, &cfg, err)) != LT_OK) return st;
    lt_quant_config qc;
    if ((st = lt_cli_quant_resolve(&cq, &qc, err)) != LT_OK) return st;
    lt_qtensor qt[LT_MOD_COUNT];
    uint64_t blob = 0, qparams = 0;
    if (qc.format != LT_QUANT_NONE) {
        if ((st = lt_quant_layer_layout(&cfg, &qc, qt, &blob, err)) != LT_OK) return st;
        for (int m = 0; m < LT_MOD_COUNT; m++) qparams += (uint64_t)qt[m].numel;
    }

    const uint64_t C = (uint64_t)cfg.dim, H = (uint64_t)cfg.hidden_dim, L = (uint64_t)cfg.n_layers;
    const uint64_t V = (uint64_t)cfg.vocab_size, KV = (uint64_t)lt_kv_dim(&cfg);
    uint64_t base = V * C + L * (2 * C + 2 * C * C + 2 * KV * C + 3 * H * C) + C +
                    (cfg.shared_classifier ? 0 : V * C);
    uint64_t lora = 0;
    for (int m = 0; m < LT_MOD_COUNT; m++) {
        if (!(lc.targets & (1u << m))) continue;
        int out, in;
        lt_module_shape(&cfg, (lt_module)m, &out, &in);
        lora += L * (uint64_t)lc.r * (uint64_t)(out + in);
    }
    char targets[128], b1[32], b2[32], b3[32];
    lt_lora_format_targets(lc.targets, targets, sizeof targets);
    with_commas(base, b1, sizeof b1);
    with_commas(lora, b2, sizeof b2);
    with_commas(base + lora, b3, sizeof b3);
    printf("model: %s (%s, %" PRIu64 " bytes)\n", model_path, lt_model_file_format(model_path), bytes);
    printf("  dim %d, hidden_dim %d, n_layers %d, n_heads %d, n_kv_heads %d, head_dim %d,\n"
           "  vocab_size %d, seq_len %d, classifier %s, norm_eps %g, rope_theta %g\n",
           cfg.dim, cfg.hidden_dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, lt_head_dim(&cfg),
           cfg.vocab_size, cfg.seq_len, cfg.shared_classifier ? "tied to the embedding" : "separate",
           (double)cfg.norm_eps, (double)cfg.rope_theta);
    printf("  base parameters: %s (%.2f MiB in fp32)\n", b1, (double)base * 4.0 / (1 << 20));
    printf("lora%s: r %d, lora_alpha %g, lora_dropout %g, use_rslora %s, scale %g, target_modules %s\n",
           lora_given ? "" : " (PEFT defaults)", lc.r, (double)lc.alpha, (double)lc.dropout,
           lc.use_rslora ? "true" : "false", (double)lt_lora_scale(&lc), targets);
    printf("trainable params: %s || all params: %s || trainable%%: %.4f\n", b2, b3,
           100.0 * (double)lora / (double)(base + lora));
    if (qc.format == LT_QUANT_NONE) return LT_OK;
    const uint64_t qbytes = blob * L, fp32 = (base - qparams * L) * 4;
    char how[64] = "";
    if (qc.format != LT_QUANT_INT8)
        snprintf(how, sizeof how, ", blocks of %d%s", qc.blocksize,
                 qc.double_quant ? ", double quant" : "");
    printf("quantized base (%s%s): decoder linears %.4f bits per parameter, %.2f MiB for %" PRIu64
           " parameters (fp32: %.2f MiB); with the fp32 embeddings, norms and classifier %.2f MiB "
           "in all (fp32 model: %.2f MiB), plus a %.2f MiB dequantization workspace\n",
           lt_quant_format_name(qc.format), how, 8.0 * (double)qbytes / (double)(qparams * L),
           (double)qbytes / (1 << 20), qparams * L, (double)(qparams * L * 4) / (1 << 20),
           (double)(qbytes + fp32) / (1 << 20), (double)base * 4.0 / (1 << 20),
           (double)(qparams * 4) / (1 << 20));
    return LT_OK;
}
