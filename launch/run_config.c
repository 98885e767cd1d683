#include "launch/run_config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/strutil.h"
#include "io/fileutil.h"
#include "io/json.h"
#include "io/data/token_file.h"

typedef enum { K_STR, K_INT, K_I64, K_U64, K_FLOAT, K_DOUBLE, K_BOOL, K_TRISTATE } key_kind;

typedef struct {
    const char *name;
    key_kind kind;
    size_t offset;
    size_t size; /* for strings: the buffer size */
    const char *def;
    double lo, hi;
    const char *group;
    const char *help;
} key_desc;

#define F(field) offsetof(lt_run_config, field), sizeof(((lt_run_config *)0)->field)
#define BIG 9.0e15

static const key_desc k_keys[] = {
    {"model", K_STR, F(model), "", 0, 0, "model and data",
     "base model: a llama2.c checkpoint (.bin), or a Hugging Face model directory (config.json of a "
     "LlamaForCausalLM, MistralForCausalLM or Qwen2ForCausalLM, with model.safetensors or a sharded "
     "model.safetensors.index.json; F32, F16 or BF16)"},
    {"tokenizer", K_STR, F(tokenizer), "", 0, 0, "model and data", "tokenizer: tokenizer.json, tokenizer.model, llama2.c .bin (e.g. tok512.bin) or an HF model directory; not needed when the data are token files"},
    {"train_file", K_STR, F(train_file), "", 0, 0, "model and data",
     "training data: plain text, JSONL with \"text\", \"prompt\"/\"completion\" or \"messages\" (a conversation), or a token file from `loratrain tokenize`"},
    {"validation_file", K_STR, F(validation_file), "", 0, 0, "model and data", "held-out data for eval_loss (same formats)"},
    {"validation_split_percentage", K_DOUBLE, F(validation_split_percentage), "0", 0, 50, "model and data",
     "without validation_file: hold out this percentage of train_file (its end) for evaluation"},
    {"output_dir", K_STR, F(output_dir), "output", 0, 0, "model and data",
     "where metrics.jsonl, checkpoints and the final adapter go"},
    {"max_seq_length", K_INT, F(max_seq_length), "0", 0, 1 << 22, "model and data",
     "tokens per sequence (0: the model's seq_len)"},
    {"packing", K_TRISTATE, F(packing), "auto", 0, 0, "model and data",
     "concatenate examples into full windows (auto: yes for text and token files, no for JSONL)"},
    {"truncation", K_BOOL, F(truncation), "true", 0, 0, "model and data",
     "cut examples longer than max_seq_length (false: reject them with an error)"},
    {"text_field", K_STR, F(text_field), "text", 0, 0, "model and data", "JSONL field holding plain text"},
    {"prompt_field", K_STR, F(prompt_field), "prompt", 0, 0, "model and data", "JSONL field holding the prompt (no loss)"},
    {"completion_field", K_STR, F(completion_field), "completion", 0, 0, "model and data",
     "JSONL field holding the completion (the loss is taken on it only)"},
    {"response_template", K_STR, F(response_template), "", 0, 0, "model and data",
     "for text records: no loss up to and including this string (as TRL's completion-only collator)"},
    {"messages_field", K_STR, F(messages_field), "messages", 0, 0, "model and data",
     "JSONL field holding a conversation ([{\"role\", \"content\"}, ...]), rendered with chat_template"},
    {"chat_template", K_STR, F(chat_template), "tokenizer", 0, 0, "model and data",
     "a .jinja chat template, or tokenizer: the chat_template of tokenizer_config.json beside the tokenizer"},
    {"assistant_only_loss", K_BOOL, F(assistant_only_loss), "false", 0, 0, "model and data",
     "conversations take loss on assistant turns only (as TRL's assistant_only_loss)"},
    {"max_eval_samples", K_INT, F(max_eval_samples), "0", 0, 1 << 30, "model and data",
     "evaluate on at most this many held-out sequences (0: all)"},

    {"learning_rate", K_DOUBLE, F(learning_rate), "5e-5", 0, 10, "optimisation", "AdamW peak learning rate"},
    {"per_device_train_batch_size", K_INT, F(per_device_train_batch_size), "8", 1, 1 << 20, "optimisation",
     "sequences per micro-batch"},
    {"per_device_eval_batch_size", K_INT, F(per_device_eval_batch_size), "8", 1, 1 << 20, "optimisation",
     "sequences per evaluation batch"},
    {"gradient_accumulation_steps", K_INT, F(gradient_accumulation_steps), "1", 1, 1 << 20, "optimisation",
     "micro-batches per optimizer step"},
    {"max_steps", K_I64, F(max_steps), "-1", -1, BIG, "optimisation", "optimizer steps (-1: from num_train_epochs)"},
    {"num_train_epochs", K_DOUBLE, F(num_train_epochs), "3", 0, 1e9, "optimisation",
     "passes over the training data when max_steps is -1"},
    {"warmup_steps", K_I64, F(warmup_steps), "0", 0, BIG, "optimisation", "linear warmup steps (overrides warmup_ratio)"},
    {"warmup_ratio", K_DOUBLE, F(warmup_ratio), "0", 0, 1, "optimisation", "warmup as a fraction of all steps"},
    {"lr_scheduler_type", K_STR, F(lr_scheduler_type), "linear", 0, 0, "optimisation",
     "constant, constant_with_warmup, linear or cosine"},
    {"weight_decay", K_FLOAT, F(weight_decay), "0", 0, 10, "optimisation", "AdamW decoupled weight decay"},
    {"adam_beta1", K_FLOAT, F(adam_beta1), "0.9", 0, 0.999999, "optimisation", "AdamW beta1"},
    {"adam_beta2", K_FLOAT, F(adam_beta2), "0.999", 0, 0.999999999, "optimisation", "AdamW beta2"},
    {"adam_epsilon", K_FLOAT, F(adam_epsilon), "1e-8", 1e-30, 1, "optimisation", "AdamW epsilon"},
    {"max_grad_norm", K_FLOAT, F(max_grad_norm), "1.0", 0, 1e30, "optimisation",
     "clip the global gradient norm to this (0: no clipping)"},
    {"seed", K_U64, F(seed), "42", 0, 0, "optimisation", "seed for LoRA init, data order and dropout"},
    {"finetuning_type", K_STR, F(finetuning_type), "lora", 0, 0, "optimisation",
     "lora (adapters on a frozen, possibly quantized base) or full (every weight trains in fp32: the baseline)"},
    {"gradient_checkpointing", K_BOOL, F(gradient_checkpointing), "false", 0, 0, "optimisation",
     "keep only each layer's input and recompute its activations in backward (one more forward pass)"},

    {"logging_steps", K_INT, F(logging_steps), "10", 1, 1 << 30, "reporting",
     "print a progress line every this many steps (when not on a terminal)"},
    {"eval_steps", K_INT, F(eval_steps), "0", 0, 1 << 30, "reporting",
     "evaluate every this many steps (0: only before and after training)"},
    {"save_steps", K_INT, F(save_steps), "0", 0, 1 << 30, "reporting",
     "write output_dir/checkpoint-N.h5 (adapter, optimizer moments, scheduler, data cursor) every this many steps (0: none)"},
    {"save_total_limit", K_INT, F(save_total_limit), "0", 0, 1 << 30, "reporting",
     "keep only the newest this many checkpoint-N.h5 (0: keep all)"},
    {"resume_from_checkpoint", K_STR, F(resume_from_checkpoint), "", 0, 0, "reporting",
     "continue from a checkpoint-N.h5, or latest: the newest in output_dir that verifies"},
    {"threads", K_INT, F(threads), "0", 0, 4096, "reporting", "CPU threads (0: all cores, split between the ranks on a node)"},
    {"device", K_STR, F(device), "auto", 0, 0, "reporting", "backend: cpu, cuda (a build with the CUDA backend) or auto (cuda when built and a GPU is present, else cpu)"},
    {"disable_tqdm", K_BOOL, F(disable_tqdm), "false", 0, 0, "reporting",
     "plain progress lines even on a terminal"},

    {"r", K_INT, F(r), "8", 1, 1 << 20, "LoRA", "adapter rank"},
    /* PEFT's LoraConfig defaults (r 8, lora_alpha 8, dropout 0), the ones
     * lt_lora_defaults gives `info` and the other commands. */
    {"lora_alpha", K_FLOAT, F(lora_alpha), "8", 1e-30, 1e30, "LoRA", "scale numerator: s = lora_alpha / r"},
    {"lora_dropout", K_FLOAT, F(lora_dropout), "0", 0, 0.999999, "LoRA", "dropout on the adapter input"},
    {"target_modules", K_STR, F(target_modules), "q_proj,v_proj", 0, 0, "LoRA",
     "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj or all-linear"},
    {"use_rslora", K_BOOL, F(use_rslora), "false", 0, 0, "LoRA", "rank-stabilised scale lora_alpha / sqrt(r)"},
    {"adapter_name_or_path", K_STR, F(adapter_name_or_path), "", 0, 0, "LoRA",
     "start from this PEFT adapter directory's weights (its r, lora_alpha, use_rslora and target_modules must be this run's)"},

    {"load_in_4bit", K_BOOL, F(load_in_4bit), "false", 0, 0, "quantization",
     "QLoRA: store the decoder linears in 4 bits (bnb_4bit_quant_type); embeddings, norms and the classifier stay fp32"},
    {"load_in_8bit", K_BOOL, F(load_in_8bit), "false", 0, 0, "quantization",
     "store the decoder linears as int8 with one absmax per row"},
    {"bnb_4bit_quant_type", K_STR, F(bnb_4bit_quant_type), "nf4", 0, 0, "quantization",
     "nf4 (QLoRA's NormalFloat) or fp4, the values bitsandbytes defines"},
    {"bnb_4bit_use_double_quant", K_BOOL, F(bnb_4bit_use_double_quant), "false", 0, 0, "quantization",
     "quantize the absmax values too (8 bits, blocks of 256): 4.127 instead of 4.5 bits per parameter"},
    {"bnb_4bit_blocksize", K_INT, F(bnb_4bit_blocksize), "64", -(1 << 30), 1 << 30, "quantization",
     "elements per 4-bit absmax block (even; bitsandbytes uses 64)"},
    {"bnb_4bit_compute_dtype", K_STR, F(bnb_4bit_compute_dtype), "float32", 0, 0, "quantization",
     "dtype of the dequantized weights in the matmuls (float32 on the CPU backend)"},

    {"shard_base", K_BOOL, F(shard_base), "false", 0, 0, "data parallel",
     "each rank stores 1/N of every layer's quantized blocks and all-gathers a layer before it runs"},
    {"ddp_bucket_cap_mb", K_DOUBLE, F(ddp_bucket_cap_mb), "0", 0, 1e6, "data parallel",
     "merge consecutive layers' LoRA gradients into all-reduce buckets of at least this many MiB (0: one per layer)"},
    {"zero1", K_BOOL, F(zero1), "false", 0, 0, "data parallel",
     "shard the AdamW moments across ranks (ZeRO stage 1): reduce-scatter gradients, update the own shard, all-gather parameters"},
    {"ddp_check_replicas", K_BOOL, F(ddp_check_replicas), "false", 0, 0, "data parallel",
     "after every step, check that all ranks hold bitwise-identical LoRA parameters and moments (debug)"},
};

#define NKEYS (sizeof k_keys / sizeof k_keys[0])

/* The message err holds, now as a configuration error. */
static lt_status config_error(lt_error *err) {
    if (err) err->code = LT_ERR_CONFIG;
    return LT_ERR_CONFIG;
}

static const key_desc *find_key(const char *name) {
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(k_keys[i].name, name)) return &k_keys[i];
    return NULL;
}

static lt_status unknown_key(const char *name, const char *source, lt_error *err) {
    const char *names[NKEYS];
    for (size_t i = 0; i < NKEYS; i++) names[i] = k_keys[i].name;
    const char *best = lt_closest(name, names, NKEYS);
    if (best)
        return lt_fail(err, LT_ERR_CONFIG, "%s: unknown key \"%s\" (did you mean \"%s\"?)", source,
                       name, best);
    return lt_fail(err, LT_ERR_CONFIG, "%s: unknown key \"%s\" (loratrain train --help lists them)",
                   source, name);
}

/* What a key takes, for messages: "an integer in 1..1048576". */
static void expected_value(const key_desc *k, char *buf, size_t cap) {
    switch (k->kind) {
    case K_STR: snprintf(buf, cap, "a string"); return;
    case K_BOOL: snprintf(buf, cap, "true or false"); return;
    case K_TRISTATE: snprintf(buf, cap, "true, false or \"auto\""); return;
    case K_U64: snprintf(buf, cap, "an integer in 0..%llu", (unsigned long long)UINT64_MAX); return;
    case K_INT:
    case K_I64: snprintf(buf, cap, "an integer in %.0f..%.0f", k->lo, k->hi); return;
    case K_FLOAT:
    case K_DOUBLE: snprintf(buf, cap, "a number in %g..%g", k->lo, k->hi); return;
    }
    snprintf(buf, cap, "a value");
}

static lt_status set_value(lt_run_config *c, const key_desc *k, const char *v, const char *source,
                           lt_error *err) {
    char *base = (char *)c + k->offset, *end = NULL;
    errno = 0;
    switch (k->kind) {
    case K_STR:
        if (strlen(v) >= k->size)
            return lt_fail(err, LT_ERR_CONFIG, "%s: %s is %zu characters, at most %zu allowed", source,
                           k->name, strlen(v), k->size - 1);
        memset(base, 0, k->size); /* no stale tail: configs compare bytewise */
        memcpy(base, v, strlen(v) + 1);
        return LT_OK;
    case K_BOOL:
    case K_TRISTATE: {
        int val;
        if (!strcmp(v, "true") || !strcmp(v, "1")) val = 1;
        else if (!strcmp(v, "false") || !strcmp(v, "0")) val = 0;
        else if (k->kind == K_TRISTATE && !strcmp(v, "auto")) val = -1;
        else
            return lt_fail(err, LT_ERR_CONFIG, "%s: %s = \"%s\", expected true or false%s", source,
                           k->name, v, k->kind == K_TRISTATE ? " or auto" : "");
        *(int *)(void *)base = val;
        return LT_OK;
    }
    case K_U64: {
        if (v[0] == '-') goto bad_int;
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || end == v || *end) goto bad_int;
        *(uint64_t *)(void *)base = x;
        return LT_OK;
    }
    case K_INT:
    case K_I64: {
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end) goto bad_int;
        if ((double)x < k->lo || (double)x > k->hi)
            return lt_fail(err, LT_ERR_CONFIG, "%s: %s = %lld, expected an integer in %.0f..%.0f", source,
                           k->name, x, k->lo, k->hi);
        if (k->kind == K_INT)
            *(int *)(void *)base = (int)x;
        else
            *(int64_t *)(void *)base = (int64_t)x;
        return LT_OK;
    }
    case K_FLOAT:
    case K_DOUBLE: {
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(x))
            return lt_fail(err, LT_ERR_CONFIG, "%s: %s = \"%s\", expected a number", source, k->name, v);
        if (x < k->lo || x > k->hi)
            return lt_fail(err, LT_ERR_CONFIG, "%s: %s = %g, expected %g..%g", source, k->name, x,
                           k->lo, k->hi);
        if (k->kind == K_FLOAT)
            *(float *)(void *)base = (float)x;
        else
            *(double *)(void *)base = x;
        return LT_OK;
    }
    }
    return LT_ERR_INTERNAL;
bad_int: {
    char want[96];
    expected_value(k, want, sizeof want);
    return lt_fail(err, LT_ERR_CONFIG, "%s: %s = \"%s\", expected %s", source, k->name, v, want);
}
}

void lt_run_config_defaults(lt_run_config *c) {
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NKEYS; i++) {
        lt_error err;
        if (set_value(c, &k_keys[i], k_keys[i].def, "default", &err) != LT_OK) {
            /* A bad default is a bug in the table above; the config tests
             * catch it, so keep going with the zero value. */
            continue;
        }
    }
}

lt_status lt_run_config_set(lt_run_config *c, const char *key, const char *value,
                            const char *source, lt_error *err) {
    const key_desc *k = find_key(key);
    if (!k) return unknown_key(key, source, err);
    if (!value) {
        if (k->kind == K_BOOL || k->kind == K_TRISTATE) value = "true";
        else return lt_fail(err, LT_ERR_CONFIG, "%s: %s needs a value", source, key);
    }
    return set_value(c, k, value, source, err);
}

lt_status lt_run_config_load_json(lt_run_config *c, const char *path, lt_error *err) {
    char *text = NULL;
    uint64_t size = 0;
    lt_status st = lt_read_file(path, 16u << 20, &text, &size, err);
    /* A config file that cannot be read is a configuration error (exit 2),
     * as a bad one is. */
    if (st != LT_OK) return st == LT_ERR_NOMEM ? st : config_error(err);
    st = lt_run_config_parse_json(c, text, (size_t)size, path, err);
    free(text);
    return st;
}

lt_status lt_run_config_parse_json(lt_run_config *c, const char *text, size_t size, const char *path,
                                   lt_error *err) {
    lt_status st = LT_OK;
    cJSON *root = NULL;
    if ((st = lt_json_parse(text, size, path, 1, &root, err)) != LT_OK)
        return st == LT_ERR_NOMEM ? st : config_error(err);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return lt_fail(err, LT_ERR_CONFIG, "%s: expected a JSON object of settings", path);
    }
    for (const cJSON *it = root->child; it && st == LT_OK; it = it->next) {
        const key_desc *k = find_key(it->string);
        if (!k) {
            st = unknown_key(it->string, path, err);
            break;
        }
        char buf[1024];
        if (cJSON_IsString(it)) {
            snprintf(buf, sizeof buf, "%s", it->valuestring);
            if (strlen(it->valuestring) >= sizeof buf) {
                st = lt_fail(err, LT_ERR_CONFIG, "%s: %s is too long", path, k->name);
                break;
            }
        } else if (cJSON_IsBool(it)) {
            snprintf(buf, sizeof buf, "%s", cJSON_IsTrue(it) ? "true" : "false");
        } else if (cJSON_IsNumber(it)) {
            double x = it->valuedouble;
            const int integer = k->kind == K_INT || k->kind == K_I64 || k->kind == K_U64;
            if (integer && fabs(x) >= 9007199254740992.0) {
                /* cJSON holds numbers as doubles: past 2^53 the digits
                 * written are not the digits read */
                char want[96];
                expected_value(k, want, sizeof want);
                st = lt_fail(err, LT_ERR_CONFIG,
                             "%s: %s = %.17g is past 2^53, where a JSON number loses digits; expected %s, "
                             "written as a string beyond 2^53 (\"%s\": \"12345678901234567890\")",
                             path, k->name, x, want, k->name);
                break;
            }
            if (integer && x == floor(x))
                snprintf(buf, sizeof buf, "%.0f", x);
            else
                snprintf(buf, sizeof buf, "%.17g", x);
        } else if (cJSON_IsArray(it) && k->kind == K_STR) {
            /* a list of names (target_modules) */
            buf[0] = '\0';
            for (const cJSON *e = it->child; e; e = e->next) {
                size_t used = strlen(buf);
                if (!cJSON_IsString(e)) {
                    st = lt_fail(err, LT_ERR_CONFIG, "%s: %s must list strings", path, k->name);
                    break;
                }
                snprintf(buf + used, sizeof buf - used, "%s%s", used ? "," : "", e->valuestring);
            }
            if (st != LT_OK) break;
        } else if (cJSON_IsNull(it) && k->kind == K_STR && !k->def[0]) {
            buf[0] = '\0'; /* None: not set, as an optional path's default is */
        } else if (cJSON_IsNull(it)) {
            /* Taken as the default, a null would hide a key the user meant
             * to set (Hugging Face fails on r=None too). */
            char want[96];
            expected_value(k, want, sizeof want);
            st = lt_fail(err, LT_ERR_CONFIG, "%s: %s = null, expected %s (leave the key out for its default, %s)",
                         path, k->name, want, k->def);
            break;
        } else {
            char want[96];
            expected_value(k, want, sizeof want);
            st = lt_fail(err, LT_ERR_CONFIG, "%s: %s is %s, expected %s", path, k->name,
                         cJSON_IsObject(it) ? "an object" : "a list", want);
            break;
        }
        st = set_value(c, k, buf, path, err);
    }
    cJSON_Delete(root);
    return st;
}

lt_status lt_run_config_lora(const lt_run_config *c, lt_lora_config *lc, lt_error *err) {
    lc->r = c->r;
    lc->alpha = c->lora_alpha;
    lc->dropout = c->lora_dropout;
    lc->use_rslora = c->use_rslora;
    return lt_lora_parse_targets(c->target_modules, &lc->targets, err);
}

lt_data_config lt_run_config_data(const lt_run_config *c, int T) {
    lt_data_config dc = lt_data_config_defaults();
    dc.seq_len = T;
    dc.packing = c->packing;
    dc.truncate = c->truncation;
    dc.text_field = c->text_field;
    dc.prompt_field = c->prompt_field;
    dc.completion_field = c->completion_field;
    dc.response_template = c->response_template[0] ? c->response_template : NULL;
    dc.messages_field = c->messages_field;
    dc.chat_template = c->chat_template;
    dc.tokenizer_path = c->tokenizer[0] ? c->tokenizer : NULL;
    dc.assistant_only_loss = c->assistant_only_loss;
    return dc;
}

lt_status lt_run_config_quant(const lt_run_config *c, lt_quant_config *qc, lt_error *err) {
    if (strcmp(c->bnb_4bit_compute_dtype, "float32") && strcmp(c->bnb_4bit_compute_dtype, "fp32"))
        return lt_fail(err, LT_ERR_CONFIG,
                       "bnb_4bit_compute_dtype = \"%s\": every backend computes in float32 (bf16 "
                       "compute is not implemented yet); expected float32",
                       c->bnb_4bit_compute_dtype);
    lt_quant_config four = lt_quant_defaults(LT_QUANT_NF4);
    if (c->load_in_4bit &&
        (lt_quant_format_parse(c->bnb_4bit_quant_type, &four.format, err) != LT_OK ||
         four.format == LT_QUANT_INT8))
        return lt_fail(err, LT_ERR_CONFIG, "bnb_4bit_quant_type = \"%s\": expected nf4 or fp4",
                       c->bnb_4bit_quant_type);
    four.blocksize = c->bnb_4bit_blocksize;
    four.double_quant = c->bnb_4bit_use_double_quant;
    return lt_quant_select(c->load_in_4bit, c->load_in_8bit, &four, qc, err);
}

lt_status lt_run_config_validate(const lt_run_config *c, lt_error *err) {
    const struct {
        const char *name, *value, *what;
    } required[] = {{"model", c->model, "a base model (llama2.c checkpoint or Hugging Face directory)"},
                    {"train_file", c->train_file, "a training data file"},
                    {"output_dir", c->output_dir, "an output directory"}};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!required[i].value[0])
            return lt_fail(err, LT_ERR_CONFIG, "%s: missing, expected %s", required[i].name,
                           required[i].what);
    /* Token files hold ids already: only text needs the tokenizer. */
    if (!c->tokenizer[0] &&
        !(lt_token_file_is(c->train_file) && (!c->validation_file[0] || lt_token_file_is(c->validation_file))))
        return lt_fail(err, LT_ERR_CONFIG,
                       "tokenizer: missing, expected a tokenizer file (only token files from `loratrain "
                       "tokenize` train without one)");
    if (c->max_steps < 0 && !(c->num_train_epochs > 0))
        return lt_fail(err, LT_ERR_CONFIG,
                       "max_steps = -1 and num_train_epochs = %g: one of them must be positive",
                       c->num_train_epochs);
    if (c->max_steps == 0)
        return lt_fail(err, LT_ERR_CONFIG, "max_steps = 0: expected a positive number or -1");
    if (c->validation_file[0] && c->validation_split_percentage > 0)
        return lt_fail(err, LT_ERR_CONFIG,
                       "validation_file and validation_split_percentage are both set; use one");
    lt_quant_config qc;
    lt_status st = lt_run_config_quant(c, &qc, err);
    if (st != LT_OK) return st;
    const int full = !strcmp(c->finetuning_type, "full");
    if (!full && strcmp(c->finetuning_type, "lora") != 0)
        return lt_fail(err, LT_ERR_CONFIG, "finetuning_type = \"%s\": expected lora or full",
                       c->finetuning_type);
    if (full && qc.format != LT_QUANT_NONE)
        return lt_fail(err, LT_ERR_CONFIG,
                       "finetuning_type full trains every weight in fp32, but %s asks for a quantized "
                       "base, whose weights cannot be trained: drop it, or use finetuning_type lora (QLoRA)",
                       c->load_in_4bit ? "load_in_4bit" : "load_in_8bit");
    if (c->zero1 && !full)
        return lt_fail(err, LT_ERR_CONFIG,
                       "zero1 shards the optimizer state of full fine-tuning; with LoRA the moments are "
                       "small and replicated: set finetuning_type full or drop zero1");
    lt_lora_config lc;
    return lt_run_config_lora(c, &lc, err);
}

int lt_run_config_full(const lt_run_config *c) { return !strcmp(c->finetuning_type, "full"); }

/* The shortest spelling that reads back as x (cJSON's own print stops at
 * 15 digits when that is within an epsilon, which run_config.json and a
 * checkpoint's copy must not be). */
static void add_number(cJSON *root, const char *name, double x) {
    char buf[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, x);
        if (strtod(buf, NULL) == x) break;
    }
    cJSON_AddRawToObject(root, name, buf);
}

/* An integer exactly: a JSON number up to 2^53, a string beyond (the
 * reader takes strings for integer keys). */
static void add_integer(cJSON *root, const char *name, int negative, uint64_t magnitude) {
    char buf[32];
    snprintf(buf, sizeof buf, "%s%llu", negative ? "-" : "", (unsigned long long)magnitude);
    if (magnitude > (1ull << 53)) cJSON_AddStringToObject(root, name, buf);
    else cJSON_AddRawToObject(root, name, buf);
}

char *lt_run_config_json(const lt_run_config *c) {
    cJSON *root = cJSON_CreateObject();
    for (size_t i = 0; root && i < NKEYS; i++) {
        const key_desc *k = &k_keys[i];
        const char *base = (const char *)c + k->offset;
        switch (k->kind) {
        case K_STR: cJSON_AddStringToObject(root, k->name, base); break;
        case K_BOOL: cJSON_AddBoolToObject(root, k->name, *(const int *)(const void *)base); break;
        case K_TRISTATE: {
            int v = *(const int *)(const void *)base;
            if (v < 0) cJSON_AddStringToObject(root, k->name, "auto");
            else cJSON_AddBoolToObject(root, k->name, v);
            break;
        }
        case K_INT: cJSON_AddNumberToObject(root, k->name, *(const int *)(const void *)base); break;
        case K_I64: {
            const int64_t v = *(const int64_t *)(const void *)base;
            add_integer(root, k->name, v < 0, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
            break;
        }
        case K_U64: add_integer(root, k->name, 0, *(const uint64_t *)(const void *)base); break;
        case K_FLOAT: add_number(root, k->name, *(const float *)(const void *)base); break;
        case K_DOUBLE: add_number(root, k->name, *(const double *)(const void *)base); break;
        }
    }
    char *s = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return s;
}

void lt_run_config_write_json(const lt_run_config *c, FILE *f) {
    char *s = lt_run_config_json(c);
    if (s) fprintf(f, "%s", s);
    free(s);
}

void lt_run_config_print_help(FILE *f) {
    const char *group = "";
    for (size_t i = 0; i < NKEYS; i++) {
        const key_desc *k = &k_keys[i];
        if (strcmp(group, k->group) != 0) {
            group = k->group;
            fprintf(f, "\n%s:\n", group);
        }
        const char *type = k->kind == K_STR ? "text"
                           : k->kind == K_BOOL ? "bool"
                           : k->kind == K_TRISTATE ? "bool|auto"
                           : (k->kind == K_FLOAT || k->kind == K_DOUBLE) ? "number" : "integer";
        fprintf(f, "  --%-29s %-9s %s", k->name, type, k->help);
        if (k->def[0]) fprintf(f, " [default: %s]", k->def);
        fprintf(f, "\n");
    }
}
