/* loratrain export: a training checkpoint's adapter as a Hugging Face PEFT
 * adapter directory (what PeftModel.from_pretrained, vLLM and TGI load). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/adapter.h"
#include "io/checkpoint.h"
#include "io/model_file.h"
#include "launch/cli.h"
#include "launch/commands.h"
#include "launch/config.h"
#include "optim/adamw.h"

void lt_help_export(FILE *f) {
    fprintf(f,
            "usage: loratrain export --format peft CHECKPOINT OUT_DIR [options]\n"
            "\n"
            "Writes the LoRA adapter of a training checkpoint (checkpoint-N.h5, verified\n"
            "first) as a Hugging Face PEFT adapter: OUT_DIR/adapter_config.json (peft_type\n"
            "LORA, task_type CAUSAL_LM, r, lora_alpha, lora_dropout, target_modules,\n"
            "use_rslora, bias, base_model_name_or_path) and OUT_DIR/adapter_model.safetensors\n"
            "(base_model.model.model.layers.N.<block>.<module>.lora_{A,B}.weight, [r, in] and\n"
            "[out, r]). For a llama2.c base, the rows of q_proj and k_proj lora_B are put in\n"
            "the Hugging Face (rotate-half) order, so the adapter applies to the same model\n"
            "converted with `loratrain convert`.\n"
            "\n"
            "  --format peft         the output format (the only one today)\n"
            "  --model FILE          the base model, when it is no longer where the\n"
            "                        checkpoint's base_model_path says; its identity (size and\n"
            "                        fingerprint) must match the checkpoint's\n"
            "  --base_model_name_or_path NAME  what adapter_config.json names as the base\n"
            "                        (e.g. the converted Hugging Face directory or a hub id)\n"
            "                        [default: the base model path]\n");
}

lt_status lt_cmd_export(int argc, char **argv, lt_error *err) {
    const char *format = NULL, *model = NULL, *base_name = NULL, *pos[2] = {NULL, NULL};
    int npos = 0;
    lt_cli c;
    lt_status st;
    lt_cli_init(&c, argc, argv);
    while (lt_cli_next(&c, err, &st)) {
        if (!*c.key) {
            if (npos == 2)
                return lt_fail(err, LT_ERR_CONFIG, "export: unexpected argument \"%s\" (expected "
                               "CHECKPOINT OUT_DIR)", c.value);
            pos[npos++] = c.value;
            continue;
        }
        if ((st = lt_cli_need_value(&c, err)) != LT_OK) return st;
        if (!strcmp(c.key, "format")) format = c.value;
        else if (!strcmp(c.key, "model")) model = c.value;
        else if (!strcmp(c.key, "base_model_name_or_path")) base_name = c.value;
        else return lt_fail(err, LT_ERR_CONFIG, "unknown option \"--%s\" for export", c.key);
    }
    if (st != LT_OK) return st;
    if (!format || strcmp(format, "peft") != 0)
        return lt_fail(err, LT_ERR_CONFIG, "--format: expected peft, got %s%s%s", format ? "\"" : "",
                       format ? format : "nothing", format ? "\"" : "");
    if (npos != 2)
        return lt_fail(err, LT_ERR_CONFIG, "export: expected CHECKPOINT OUT_DIR (loratrain export "
                       "--format peft out/run/checkpoint-100.h5 out/run-peft)");
    const char *ck = pos[0], *out = pos[1];

    lt_ckpt_meta meta;
    char type[32], *json = NULL;
    if ((st = lt_checkpoint_read_header(ck, &meta, type, sizeof type, &json, err)) != LT_OK) return st;
    if (strcmp(type, "lora") != 0) {
        free(json);
        return lt_fail(err, LT_ERR_CONFIG, "%s: a %s fine-tuning checkpoint holds no adapter (its "
                       "weights are the run's output_dir/model.safetensors)", ck, type);
    }
    lt_run_config rc;
    lt_run_config_defaults(&rc);
    char source[4200];
    snprintf(source, sizeof source, "%s: run_config", ck);
    st = lt_run_config_parse_json(&rc, json, strlen(json), source, err);
    free(json);
    if (st != LT_OK) return st;
    lt_lora_config lc;
    if ((st = lt_run_config_lora(&rc, &lc, err)) != LT_OK) return st;
    if (!model) model = meta.base_path;

    /* The base's shape gives the adapter's; its weights are never read
     * (the model's fp32 buffer stays untouched, so not resident). */
    lt_model_config cfg;
    uint64_t bytes = 0, fp = 0;
    if ((st = lt_model_file_read_config(model, &cfg, err)) != LT_OK ||
        (st = lt_model_file_fingerprint(model, &bytes, &fp, err)) != LT_OK)
        return lt_fail_context(err, "the checkpoint's base model (pass --model if it moved)");
    lt_model *m = NULL;
    lt_adamw opt;
    int opt_ready = 0;
    if ((st = lt_model_create(&cfg, lt_ops_cpu(1), &m, err)) != LT_OK) goto done;
    if ((st = lt_model_add_lora(m, &lc, rc.seed, err)) != LT_OK) goto done;
    lt_adamw_config ac = {.beta1 = rc.adam_beta1, .beta2 = rc.adam_beta2, .eps = rc.adam_epsilon,
                          .weight_decay = rc.weight_decay};
    if ((st = lt_adamw_init(&opt, lt_model_lora_table(m)->numel, &ac, err)) != LT_OK) goto done;
    opt_ready = 1;
    if ((st = lt_checkpoint_load(ck, m, &opt, bytes, fp, &meta, err)) != LT_OK) goto done;
    if ((st = lt_adapter_save(m, out, base_name ? base_name : model, err)) != LT_OK) goto done;
    printf("exported %s (step %lld; LoRA r %d, lora_alpha %g on %s) to %s/adapter_model.safetensors "
           "and %s/adapter_config.json (PEFT layout)\n",
           ck, (long long)meta.global_step, lc.r, (double)lc.alpha, rc.target_modules, out, out);
done:
    if (opt_ready) lt_adamw_free(&opt);
    lt_model_free(m);
    return st;
}
