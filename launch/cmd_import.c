/* loratrain import: an existing Hugging Face PEFT adapter, validated against
 * a base model, summarised, optionally evaluated (base alone and base +
 * adapter, the numbers `train` reports as eval_loss at step 0), and
 * optionally written as a step-0 training checkpoint. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/checkpoint/checkpoint.h"
#include "io/data/dataset.h"
#include "io/data/token_file.h"
#include "io/fileutil.h"
#include "io/json.h"
#include "io/model/adapter.h"
#include "io/model/any_format.h"
#include "io/text/tokenizer.h"
#include "launch/cli.h"
#include "launch/commands.h"
#include "launch/memory_report.h"
#include "launch/run_config.h"
#include "launch/trainer.h"
#include "model/backend.h"
#include "optim/adamw.h"

void lt_help_import(FILE *f) {
    fprintf(f,
            "usage: loratrain import --format peft ADAPTER_DIR --model MODEL [options]\n"
            "\n"
            "Starts from or evaluates an existing Hugging Face PEFT adapter (a directory with\n"
            "adapter_config.json and adapter_model.safetensors, e.g. from save_pretrained).\n"
            "Checks it against MODEL: peft_type LORA, task_type CAUSAL_LM or null, r,\n"
            "lora_alpha, use_rslora, target_modules (a list or \"all-linear\"), lora_dropout,\n"
            "bias \"none\", fan_in_fan_out false; refuses use_dora, lora_bias, modules_to_save,\n"
            "layers_to_transform, layer_replication, exclude_modules, rank_pattern and\n"
            "alpha_pattern, naming the field; then every tensor's name, shape and finiteness\n"
            "and that the file holds no other tensor. Prints r, alpha, scaling, the target\n"
            "modules, per module the pairs, parameters and the Frobenius norms of A and B,\n"
            "and how RoPE rows are handled (a llama2.c base takes q_proj/k_proj lora_B rows\n"
            "permuted from the file's rotate-half order).\n"
            "\n"
            "--eval_file: the mean cross-entropy and perplexity over the file, of the base\n"
            "alone and of base + adapter, computed as `train` computes eval_loss (the same\n"
            "data rules and options; no dropout): a run with adapter_name_or_path and this\n"
            "file as validation_file reports the second number at step 0.\n"
            "\n"
            "--output_dir: writes DIR/checkpoint-0.h5, a training checkpoint at step 0 (the\n"
            "adapter, zero AdamW moments, a run config with the adapter's r, lora_alpha,\n"
            "target_modules, use_rslora and lora_dropout, and the base's identity) that\n"
            "`loratrain inspect`, `loratrain export` and `train --resume_from_checkpoint`\n"
            "take. Training from the adapter directly is `train --adapter_name_or_path DIR`.\n"
            "\n"
            "  --format peft         the adapter's format (only peft)\n"
            "  --model FILE|DIR      base model: a llama2.c checkpoint or a Hugging Face directory\n"
            "  --eval_file FILE      text, JSON lines or a token file, as train's validation_file\n"
            "  --tokenizer FILE      needed for text and JSON lines\n"
            "  --max_seq_length N    [default: the model's seq_len]\n"
            "  --packing, --truncation, --text_field, --prompt_field, --completion_field,\n"
            "  --response_template, --messages_field, --chat_template, --assistant_only_loss,\n"
            "  --max_eval_samples, --per_device_eval_batch_size N\n"
            "                        as for train (`loratrain train --help`)\n"
            "  --output_dir DIR      write the step-0 checkpoint there\n"
            "  --seed N              recorded in the checkpoint (dropout masks, data order)\n"
            "  --threads N           CPU threads (0: all cores) [default: 1]\n" LT_CLI_DEVICE_HELP
            LT_CLI_QUANT_HELP);
}

/* Options forwarded to the run configuration, whose table checks them and
 * which the checkpoint records. */
static const char *const k_run_keys[] = {
    "model", "tokenizer", "output_dir", "max_seq_length", "packing", "truncation", "text_field",
    "prompt_field", "completion_field", "response_template", "messages_field", "chat_template",
    "assistant_only_loss", "max_eval_samples",
    "per_device_eval_batch_size", "threads", "device", "seed", "load_in_4bit", "load_in_8bit",
    "bnb_4bit_quant_type", "bnb_4bit_use_double_quant", "bnb_4bit_blocksize",
    "bnb_4bit_compute_dtype"};

static int is_run_key(const char *k) {
    for (size_t i = 0; i < sizeof k_run_keys / sizeof k_run_keys[0]; i++)
        if (!strcmp(k, k_run_keys[i])) return 1;
    return 0;
}

/* base_model_name_or_path as the adapter records it (informational: the
 * base is checked by shapes, not by name). */
static void recorded_base(const char *dir, char *buf, size_t cap) {
    char path[4200];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    char *text = NULL;
    uint64_t size = 0;
    lt_error e;
    buf[0] = '\0';
    if (lt_read_file(path, 1u << 20, &text, &size, &e) != LT_OK) return;
    cJSON *root = NULL;
    lt_json_parse(text, (size_t)size, path, 1, &root, &e); /* checked by lt_adapter_read_config already */
    free(text);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "base_model_name_or_path");
    if (cJSON_IsString(v)) snprintf(buf, cap, "%s", v->valuestring);
    cJSON_Delete(root);
}

static void print_summary(lt_model *m, const char *dir, const char *model, const float *host) {
    const lt_lora_config *lc = lt_model_lora_config(m);
    const lt_model_config *c = lt_model_get_config(m);
    const lt_param_table *t = lt_model_lora_table(m);
    char targets[256], base[320], recorded[1024];
    lt_lora_format_targets(lc->targets, targets, (int)sizeof targets);
    lt_describe_base(m, base, sizeof base);
    recorded_base(dir, recorded, sizeof recorded);
    printf("PEFT adapter %s: valid for %s (%s)\n", dir, model, lt_model_file_format(model));
    printf("  base: %s; dim %d, %d layers, %d heads (%d kv), MLP %d, vocab %d, seq_len %d\n", base, c->dim,
           c->n_layers, c->n_heads, c->n_kv_heads, c->hidden_dim, c->vocab_size, c->seq_len);
    printf("  adapter_config.json names base_model_name_or_path \"%s\" (not compared: the base is "
           "checked by tensor shapes)\n", recorded);
    printf("  LoRA: r %d, lora_alpha %g, scaling %.9g (lora_alpha / %s), lora_dropout %g (training only)\n",
           lc->r, (double)lc->alpha, (double)lt_model_lora_scale(m), lc->use_rslora ? "sqrt(r), rsLoRA" : "r",
           (double)lc->dropout);
    printf("  target_modules: %s%s\n", targets, lc->targets == LT_MOD_MASK_ALL ? " (all-linear)" : "");
    const int rotary = (lc->targets & ((1u << LT_MOD_Q) | (1u << LT_MOD_K))) != 0;
    if (c->rope_layout == LT_ROPE_HALF)
        printf("  RoPE: the model uses the rotate-half layout of the file: tensors are used as stored\n");
    else if (rotary)
        printf("  RoPE: the model uses llama2.c's interleaved layout: the rows of q_proj and k_proj "
               "lora_B were permuted from the file's rotate-half order (export permutes them back)\n");
    else
        printf("  RoPE: the model uses llama2.c's interleaved layout; no q_proj/k_proj adapter, so no "
               "rows are permuted\n");
    printf("  %-10s %6s %12s %14s %14s\n", "module", "pairs", "parameters", "|A| (Frob.)", "|B| (Frob.)");
    size_t total = 0;
    int pairs_total = 0;
    for (int mod = 0; mod < LT_MOD_COUNT; mod++) {
        if (!(lc->targets & (1u << mod))) continue;
        char suffix[64];
        snprintf(suffix, sizeof suffix, ".%s.lora_", lt_module_name((lt_module)mod));
        double sa = 0, sb = 0;
        size_t params = 0;
        int pairs = 0;
        for (int i = 0; i < t->count; i++) {
            const lt_tensor_desc *d = &t->t[i];
            const char *at = strstr(d->name, suffix);
            if (!at) continue;
            const int is_a = at[strlen(suffix)] == 'A';
            double s = 0;
            for (size_t k = 0; k < lt_tensor_numel(d); k++) s += (double)host[d->offset + k] * host[d->offset + k];
            if (is_a) sa += s, pairs++;
            else sb += s;
            params += lt_tensor_numel(d);
        }
        printf("  %-10s %6d %12zu %14.6g %14.6g\n", lt_module_name((lt_module)mod), pairs, params, sqrt(sa),
               sqrt(sb));
        total += params;
        pairs_total += pairs;
    }
    printf("  %-10s %6d %12zu\n", "total", pairs_total, total);
}

/* The eval set exactly as train's load_data builds its validation_file. */
static lt_status load_eval(const lt_run_config *rc, const lt_tokenizer *tok, int V, int T, lt_dataset **ds,
                           lt_error *err) {
    lt_data_config dc = lt_run_config_data(rc, T);
    return lt_dataset_load(rc->validation_file, tok, V, &dc, ds, NULL, err);
}

static lt_status write_checkpoint(lt_run_config *rc, lt_model *m, const char *adapter, lt_error *err) {
    const lt_lora_config *lc = lt_model_lora_config(m);
    rc->r = lc->r;
    rc->lora_alpha = lc->alpha;
    rc->lora_dropout = lc->dropout;
    rc->use_rslora = lc->use_rslora;
    lt_lora_format_targets(lc->targets, rc->target_modules, (int)sizeof rc->target_modules);
    snprintf(rc->adapter_name_or_path, sizeof rc->adapter_name_or_path, "%s", adapter);
    lt_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.seed = rc->seed;
    meta.world_size = 1;
    snprintf(meta.base_path, sizeof meta.base_path, "%s", rc->model);
    lt_status st = lt_model_file_fingerprint(rc->model, &meta.base_bytes, &meta.base_fingerprint, err);
    if (st != LT_OK) return st;
    /* No run is planned yet: the schedule records the defaults with no
     * steps; a resumed run follows its own (and says so). */
    meta.sched.lr = rc->learning_rate;
    if ((st = lt_lr_schedule_parse(rc->lr_scheduler_type, &meta.sched.kind, err)) != LT_OK) return st;
    char *json = lt_run_config_json(rc);
    if (!json) return lt_fail(err, LT_ERR_NOMEM, "checkpoint: out of memory");
    lt_adamw opt;
    lt_adamw_config ac = {.beta1 = rc->adam_beta1, .beta2 = rc->adam_beta2, .eps = rc->adam_epsilon,
                          .weight_decay = rc->weight_decay};
    char written[4096];
    if ((st = lt_make_dirs(rc->output_dir, err)) == LT_OK &&
        (st = lt_train_optimizer_init(&opt, lt_model_get_ops(m), lt_model_lora_table(m)->numel, &ac,
                                      err)) == LT_OK) {
        st = lt_checkpoint_save(rc->output_dir, m, &opt, &meta, json, 0, written, sizeof written, err);
        lt_adamw_free(&opt);
    }
    free(json);
    if (st == LT_OK)
        printf("checkpoint: step 0 written to %s (`loratrain inspect`, `loratrain export`, `train "
               "--resume_from_checkpoint` take it)\n", written);
    return st;
}

lt_status lt_cmd_import(int argc, char **argv, lt_error *err) {
    const char *format = NULL, *dir = NULL;
    lt_run_config rc;
    lt_run_config_defaults(&rc);
    rc.threads = 1;
    /* train's default output_dir would make every import write a checkpoint
     * into the working directory: import writes one only when asked. */
    rc.output_dir[0] = 0;
    lt_cli c;
    lt_status st;
    lt_cli_init(&c, argc, argv);
    while (lt_cli_next(&c, err, &st)) {
        if (!*c.key) {
            if (dir)
                return lt_fail(err, LT_ERR_CONFIG, "import: unexpected argument \"%s\" (expected one "
                               "ADAPTER_DIR)", c.value);
            dir = c.value;
            continue;
        }
        char source[80];
        snprintf(source, sizeof source, "--%s", c.key);
        if (!strcmp(c.key, "format")) {
            if ((st = lt_cli_need_value(&c, err)) != LT_OK) return st;
            format = c.value;
        } else if (!strcmp(c.key, "eval_file")) {
            if ((st = lt_cli_need_value(&c, err)) != LT_OK) return st;
            if ((st = lt_run_config_set(&rc, "validation_file", c.value, source, err)) != LT_OK) return st;
        } else if (is_run_key(c.key)) {
            if ((st = lt_run_config_set(&rc, c.key, c.value, source, err)) != LT_OK) return st;
        } else {
            return lt_fail(err, LT_ERR_CONFIG, "unknown option \"--%s\" for import (`loratrain import "
                           "--help` lists them)", c.key);
        }
    }
    if (st != LT_OK) return st;
    if (!format || strcmp(format, "peft") != 0)
        return lt_fail(err, LT_ERR_CONFIG, "--format: expected peft, got %s%s%s", format ? "\"" : "",
                       format ? format : "nothing", format ? "\"" : "");
    if (!dir)
        return lt_fail(err, LT_ERR_CONFIG, "import: expected ADAPTER_DIR (loratrain import --format peft "
                       "out/peft-adapter --model models/stories260K/stories260K.bin)");
    if (!rc.model[0]) return lt_fail(err, LT_ERR_CONFIG, "import: --model is missing (the adapter's base)");
    const int eval = rc.validation_file[0] != 0;
    if (eval && !rc.tokenizer[0] && !lt_token_file_is(rc.validation_file))
        return lt_fail(err, LT_ERR_CONFIG, "--eval_file %s: --tokenizer is missing (only token files from "
                       "`loratrain tokenize` need none)", rc.validation_file);
    lt_quant_config qc;
    if ((st = lt_run_config_quant(&rc, &qc, err)) != LT_OK) return st;

    /* The config alone first: a bad field costs no model load. */
    lt_lora_config lc;
    char cfg_path[4200];
    snprintf(cfg_path, sizeof cfg_path, "%s/adapter_config.json", dir);
    if ((st = lt_adapter_read_config(dir, &lc, err)) != LT_OK) return st;

    const lt_ops *ops = NULL;
    if ((st = lt_backend_open(rc.device, rc.threads, &ops, err)) != LT_OK) return st;
    lt_model *m = NULL;
    lt_tokenizer *tok = NULL;
    lt_dataset *ds = NULL;
    float *host = NULL;
    if ((st = lt_model_file_load_quantized(rc.model, &qc, ops, &m, err)) != LT_OK) goto done;
    if ((st = lt_model_add_lora(m, &lc, rc.seed, err)) != LT_OK) {
        lt_fail_context(err, "%s", cfg_path);
        goto done;
    }
    if ((st = lt_adapter_load_weights(m, dir, err)) != LT_OK) goto done;
    const lt_param_table *t = lt_model_lora_table(m);
    const lt_ops *o = lt_model_get_ops(m);
    const size_t bytes = t->numel * sizeof(float);
    if (!(host = lt_alloc(LT_MEM_LORA_PARAMS, bytes))) {
        st = lt_fail(err, LT_ERR_NOMEM, "import: out of memory for a host copy of the adapter");
        goto done;
    }
    o->download(o, host, lt_model_lora_params(m), bytes);
    print_summary(m, dir, rc.model, host);
    fflush(stdout);

    if (eval) {
        const lt_model_config *mc = lt_model_get_config(m);
        const int T = rc.max_seq_length ? rc.max_seq_length : mc->seq_len;
        if (T > mc->seq_len) {
            st = lt_fail(err, LT_ERR_CONFIG, "max_seq_length = %d exceeds the model's seq_len %d", T, mc->seq_len);
            goto done;
        }
        if (rc.tokenizer[0] && (st = lt_tokenizer_load(rc.tokenizer, mc->vocab_size, &tok, err)) != LT_OK)
            goto done;
        if ((st = load_eval(&rc, tok, mc->vocab_size, T, &ds, err)) != LT_OK) goto done;
        double base_loss, loss;
        int64_t base_tokens, tokens;
        /* The base alone: the adapter's parameters zeroed add exact zeros
         * to every adapted output, so one model serves both passes. */
        float *zeros = lt_alloc(LT_MEM_WORKSPACE, bytes);
        if (!zeros) {
            st = lt_fail(err, LT_ERR_NOMEM, "import: out of memory");
            goto done;
        }
        memset(zeros, 0, bytes);
        o->upload(o, lt_model_lora_params(m), zeros, bytes);
        lt_free(zeros);
        st = lt_evaluate(m, ds, rc.per_device_eval_batch_size, (size_t)rc.max_eval_samples, NULL, &base_loss,
                         &base_tokens, err);
        o->upload(o, lt_model_lora_params(m), host, bytes);
        if (st != LT_OK) goto done;
        if ((st = lt_evaluate(m, ds, rc.per_device_eval_batch_size, (size_t)rc.max_eval_samples, NULL, &loss,
                              &tokens, err)) != LT_OK)
            goto done;
        size_t rows = lt_dataset_rows(ds);
        if (rc.max_eval_samples && rows > (size_t)rc.max_eval_samples) rows = (size_t)rc.max_eval_samples;
        printf("eval on %s: %zu sequences of %d tokens, %lld target tokens\n", rc.validation_file, rows, T,
               (long long)tokens);
        printf("  base:           eval_loss %.8f (perplexity %.4f)\n", base_loss, exp(base_loss));
        printf("  base + adapter: eval_loss %.8f (perplexity %.4f); change %+.8f\n", loss, exp(loss),
               loss - base_loss);
        fflush(stdout);
    }
    if (rc.output_dir[0]) st = write_checkpoint(&rc, m, dir, err);
done:
    lt_free(host);
    lt_dataset_free(ds);
    lt_tokenizer_free(tok);
    lt_model_free(m);
    return st;
}
