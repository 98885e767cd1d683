/* loratrain export: a training checkpoint's adapter as a Hugging Face PEFT
 * adapter directory (what PeftModel.from_pretrained, vLLM and TGI load) or
 * as a llama.cpp LoRA adapter file (what llama-cli --lora loads). */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/checkpoint/checkpoint.h"
#include "io/model/adapter.h"
#include "io/model/any_format.h"
#include "io/model/gguf.h"
#include "launch/cli.h"
#include "launch/commands.h"
#include "launch/run_config.h"
#include "launch/trainer.h"
#include "model/backend.h"
#include "optim/adamw.h"

void lt_help_export(FILE *f) {
    fprintf(f,
            "usage: loratrain export --format peft CHECKPOINT OUT_DIR [options]\n"
            "       loratrain export --format gguf CHECKPOINT OUT_FILE.gguf [options]\n"
            "\n"
            "Writes the LoRA adapter of a training checkpoint (checkpoint-N.h5, verified\n"
            "first).\n"
            "\n"
            "peft: a Hugging Face PEFT adapter: OUT_DIR/adapter_config.json (peft_type\n"
            "LORA, task_type CAUSAL_LM, r, lora_alpha, lora_dropout, target_modules,\n"
            "use_rslora, bias, base_model_name_or_path) and OUT_DIR/adapter_model.safetensors\n"
            "(base_model.model.model.layers.N.<block>.<module>.lora_{A,B}.weight, [r, in] and\n"
            "[out, r]). For a llama2.c base, the rows of q_proj and k_proj lora_B are put in\n"
            "the Hugging Face (rotate-half) order, so the adapter applies to the same model\n"
            "converted with `loratrain convert`.\n"
            "\n"
            "gguf: a llama.cpp LoRA adapter (`llama-cli -m BASE.gguf --lora OUT_FILE.gguf`),\n"
            "what llama.cpp's convert_lora_to_gguf.py makes of the PEFT adapter: GGUF v3,\n"
            "general.architecture llama, general.type adapter, adapter.type lora,\n"
            "adapter.lora.alpha, general.name (OUT_FILE's name without .gguf); tensors\n"
            "blk.N.<attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down>.weight.lora_a\n"
            "([r, in]) and .lora_b ([out, r]), q and k lora_b rows in llama.cpp's interleaved\n"
            "RoPE order whatever the base's layout. llama.cpp scales by alpha / r, so with\n"
            "use_rslora the alpha written is lora_alpha * sqrt(r) (convert_lora_to_gguf.py\n"
            "does not convert it). Llama-architecture bases only (not biased q/k/v, Qwen2).\n"
            "\n"
            "  --format peft|gguf    the output format\n"
            "  --model FILE          the base model, when it is no longer where the\n"
            "                        checkpoint's base_model_path says; its identity (size and\n"
            "                        fingerprint) must match the checkpoint's\n"
            "  --base_model_name_or_path NAME  (peft) what adapter_config.json names as the\n"
            "                        base (e.g. the converted Hugging Face directory or a hub\n"
            "                        id) [default: the base model path]\n"
            "  --outtype f32|f16     (gguf) the tensors' type; f16 rounds to nearest even\n"
            "                        [default: f32]\n" LT_CLI_DEVICE_HELP);
}

/* The checkpoint's adapter in a model of its base's shape, whatever the
 * output format: the one place a checkpoint is read and verified. */
static lt_status load_adapter(const char *ck, const char **model, const lt_ops *ops, lt_model **out,
                              lt_ckpt_meta *meta, lt_lora_config *lc, char *targets, size_t targets_size,
                              lt_error *err) {
    char type[32], *json = NULL;
    lt_status st = lt_checkpoint_read_header(ck, meta, type, sizeof type, &json, err);
    if (st != LT_OK) return st;
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
    if ((st = lt_run_config_lora(&rc, lc, err)) != LT_OK) return st;
    snprintf(targets, targets_size, "%s", rc.target_modules);
    if (!*model) *model = meta->base_path;

    /* The base's shape gives the adapter's; its weights are never read
     * (the model's fp32 buffer stays untouched, so not resident). */
    lt_model_config cfg;
    uint64_t bytes = 0, fp = 0;
    if ((st = lt_model_file_read_config(*model, &cfg, err)) != LT_OK ||
        (st = lt_model_file_fingerprint(*model, &bytes, &fp, err)) != LT_OK)
        return lt_fail_context(err, "the checkpoint's base model (pass --model if it moved)");
    lt_model *m = NULL;
    lt_adamw opt;
    int opt_ready = 0;
    if ((st = lt_model_create(&cfg, ops, &m, err)) != LT_OK) goto done;
    if ((st = lt_model_add_lora(m, lc, rc.seed, err)) != LT_OK) goto done;
    lt_adamw_config ac = {.beta1 = rc.adam_beta1, .beta2 = rc.adam_beta2, .eps = rc.adam_epsilon,
                          .weight_decay = rc.weight_decay};
    if ((st = lt_train_optimizer_init(&opt, ops, lt_model_lora_table(m)->numel, &ac, err)) != LT_OK) goto done;
    opt_ready = 1;
    st = lt_checkpoint_load(ck, m, &opt, bytes, fp, meta, err);
done:
    if (opt_ready) lt_adamw_free(&opt);
    if (st != LT_OK) {
        lt_model_free(m);
        m = NULL;
    }
    *out = m;
    return st;
}

/* Refused before the checkpoint is read, so a typo costs nothing and no
 * temporary file is ever made in a directory that is not there. */
static lt_status check_out_dir(const char *out, lt_error *err) {
    char buf[4096];
    if (strlen(out) >= sizeof buf) return lt_fail(err, LT_ERR_IO, "%.64s...: path too long", out);
    snprintf(buf, sizeof buf, "%s", out);
    const char *dir = dirname(buf);
    struct stat s;
    if (stat(dir, &s) != 0)
        return lt_fail(err, LT_ERR_IO, "%s: cannot write: directory %s: %s", out, dir, strerror(errno));
    if (!S_ISDIR(s.st_mode))
        return lt_fail(err, LT_ERR_IO, "%s: cannot write: %s is not a directory", out, dir);
    if (stat(out, &s) == 0 && S_ISDIR(s.st_mode))
        return lt_fail(err, LT_ERR_IO, "%s: is a directory (expected a file name, e.g. %s/adapter.gguf)",
                       out, out);
    return LT_OK;
}

/* general.name: the file's own name, as convert_lora_to_gguf.py names an
 * adapter after what it is given. */
static void gguf_name(const char *out, char *name, size_t size) {
    const char *base = strrchr(out, '/');
    base = base ? base + 1 : out;
    size_t n = strlen(base);
    if (n > 5 && !strcmp(base + n - 5, ".gguf")) n -= 5;
    snprintf(name, size, "%.*s", (int)n, base);
}

lt_status lt_cmd_export(int argc, char **argv, lt_error *err) {
    const char *format = NULL, *model = NULL, *base_name = NULL, *outtype = NULL, *pos[2] = {NULL, NULL};
    const char *device = "auto";
    int npos = 0;
    lt_cli c;
    lt_status st;
    lt_cli_init(&c, argc, argv);
    while (lt_cli_next(&c, err, &st)) {
        if (!*c.key) {
            if (npos == 2)
                return lt_fail(err, LT_ERR_CONFIG, "export: unexpected argument \"%s\" (expected "
                               "CHECKPOINT and OUT_DIR or OUT_FILE.gguf)", c.value);
            pos[npos++] = c.value;
            continue;
        }
        if ((st = lt_cli_need_value(&c, err)) != LT_OK) return st;
        if (!strcmp(c.key, "format")) format = c.value;
        else if (!strcmp(c.key, "model")) model = c.value;
        else if (!strcmp(c.key, "base_model_name_or_path")) base_name = c.value;
        else if (!strcmp(c.key, "outtype")) outtype = c.value;
        else if (!strcmp(c.key, "device")) device = c.value;
        else return lt_fail(err, LT_ERR_CONFIG, "unknown option \"--%s\" for export", c.key);
    }
    if (st != LT_OK) return st;
    const int gguf = format && !strcmp(format, "gguf");
    if (!format || (!gguf && strcmp(format, "peft") != 0))
        return lt_fail(err, LT_ERR_CONFIG, "--format: expected peft or gguf, got %s%s%s",
                       format ? "\"" : "", format ? format : "nothing", format ? "\"" : "");
    lt_gguf_dtype dtype = LT_GGUF_F32;
    if (gguf) {
        if (outtype && (st = lt_gguf_parse_outtype(outtype, &dtype, err)) != LT_OK) return st;
        if (base_name)
            return lt_fail(err, LT_ERR_CONFIG, "--base_model_name_or_path: for --format peft only (a "
                           "GGUF adapter names no base; llama-cli takes it with -m)");
    } else if (outtype) {
        return lt_fail(err, LT_ERR_CONFIG, "--outtype: for --format gguf only (a PEFT adapter is "
                       "written in float32)");
    }
    if (npos != 2)
        return lt_fail(err, LT_ERR_CONFIG, gguf ? "export: expected CHECKPOINT OUT_FILE.gguf (loratrain "
                       "export --format gguf out/run/checkpoint-100.h5 out/run-lora.gguf)"
                       : "export: expected CHECKPOINT OUT_DIR (loratrain export --format peft "
                       "out/run/checkpoint-100.h5 out/run-peft)");
    const char *ck = pos[0], *out = pos[1];
    if (gguf && (st = check_out_dir(out, err)) != LT_OK) return st;
    const lt_ops *ops = NULL;
    if ((st = lt_backend_open(device, 1, &ops, err)) != LT_OK) return st;

    lt_model *m = NULL;
    lt_ckpt_meta meta;
    lt_lora_config lc;
    char targets[512];
    if ((st = load_adapter(ck, &model, ops, &m, &meta, &lc, targets, sizeof targets, err)) != LT_OK) return st;
    if (gguf) {
        char name[256];
        gguf_name(out, name, sizeof name);
        if ((st = lt_adapter_save_gguf(m, out, name, dtype, err)) == LT_OK)
            printf("exported %s (step %lld; LoRA r %d, lora_alpha %g%s on %s) to %s (GGUF LoRA adapter, "
                   "%s)\n", ck, (long long)meta.global_step, lc.r, (double)lc.alpha,
                   lc.use_rslora ? ", rsLoRA" : "", targets, out, lt_gguf_dtype_name(dtype));
    } else if ((st = lt_adapter_save(m, out, base_name ? base_name : model, err)) == LT_OK) {
        printf("exported %s (step %lld; LoRA r %d, lora_alpha %g on %s) to %s/adapter_model.safetensors "
               "and %s/adapter_config.json (PEFT layout)\n",
               ck, (long long)meta.global_step, lc.r, (double)lc.alpha, targets, out, out);
    }
    lt_model_free(m);
    return st;
}
