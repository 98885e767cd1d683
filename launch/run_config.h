/* The run configuration of `loratrain train`: a JSON file whose keys follow
 * Hugging Face TrainingArguments, LoraConfig and data-argument names, with
 * command-line overrides of the same names. One table describes every key
 * (type, default, range, help), so parsing, --help and errors agree. */
#ifndef LT_LAUNCH_RUN_CONFIG_H
#define LT_LAUNCH_RUN_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "core/status.h"
#include "io/data/dataset.h"
#include "model/lora.h"
#include "model/quant.h"

#define LT_PATH_MAX 1024

typedef struct {
    /* model and data */
    char model[LT_PATH_MAX];
    char tokenizer[LT_PATH_MAX];
    char train_file[LT_PATH_MAX];
    char validation_file[LT_PATH_MAX];
    double validation_split_percentage;
    char output_dir[LT_PATH_MAX];
    int max_seq_length;
    int packing; /* -1: auto */
    int truncation;
    char text_field[64], prompt_field[64], completion_field[64];
    char response_template[256];
    char messages_field[64];
    char chat_template[LT_PATH_MAX];
    int assistant_only_loss;
    int max_eval_samples;

    /* optimisation */
    double learning_rate;
    int per_device_train_batch_size;
    int per_device_eval_batch_size;
    int gradient_accumulation_steps;
    int64_t max_steps;
    double num_train_epochs;
    int64_t warmup_steps;
    double warmup_ratio;
    char lr_scheduler_type[32];
    float weight_decay, adam_beta1, adam_beta2, adam_epsilon, max_grad_norm;
    uint64_t seed;
    char finetuning_type[16]; /* lora | full */
    int gradient_checkpointing;

    /* reporting */
    int logging_steps, eval_steps, save_steps, save_total_limit;
    char resume_from_checkpoint[LT_PATH_MAX];
    char adapter_name_or_path[LT_PATH_MAX]; /* PEFT adapter to start from */
    int threads;
    char device[16]; /* cpu | cuda | auto (model/backend.h) */
    int disable_tqdm; /* plain lines even on a terminal */

    /* LoRA */
    int r;
    float lora_alpha, lora_dropout;
    char target_modules[256];
    int use_rslora;

    /* quantized base (Hugging Face BitsAndBytesConfig names) */
    int load_in_4bit, load_in_8bit;
    char bnb_4bit_quant_type[16];
    int bnb_4bit_use_double_quant;
    int bnb_4bit_blocksize;
    char bnb_4bit_compute_dtype[16];

    /* data parallelism (mpirun -np N / srun) */
    int shard_base;
    double ddp_bucket_cap_mb;
    int ddp_check_replicas;
    int zero1;
} lt_run_config;

/* Every key at its default. */
void lt_run_config_defaults(lt_run_config *c);

/* Applies a JSON config file (keys must be known; values checked). */
lt_status lt_run_config_load_json(lt_run_config *c, const char *path, lt_error *err);

/* The same from JSON text (path names it in messages), e.g. the run config a
 * checkpoint holds. */
lt_status lt_run_config_parse_json(lt_run_config *c, const char *text, size_t size, const char *path,
                                   lt_error *err);

/* Applies one key given as text (command-line override). source names it
 * in errors, e.g. "--learning_rate". */
lt_status lt_run_config_set(lt_run_config *c, const char *key, const char *value,
                            const char *source, lt_error *err);

/* Checks what single keys cannot: required paths, cross-key rules. */
lt_status lt_run_config_validate(const lt_run_config *c, lt_error *err);

/* The LoRA part as the model takes it. */
lt_status lt_run_config_lora(const lt_run_config *c, lt_lora_config *lc, lt_error *err);

/* finetuning_type full (validated). */
int lt_run_config_full(const lt_run_config *c);

/* The quantization part: format LT_QUANT_NONE for an fp32 base. */
lt_status lt_run_config_quant(const lt_run_config *c, lt_quant_config *qc, lt_error *err);

/* The data part for sequences of T tokens (holdout_fraction 0); its
 * strings point into c. */
lt_data_config lt_run_config_data(const lt_run_config *c, int T);

/* The whole configuration as a JSON object on one line: malloc'd (free
 * it), NULL when out of memory. What run_config.json and every checkpoint
 * record. */
char *lt_run_config_json(const lt_run_config *c);
/* The same, written to f. */
void lt_run_config_write_json(const lt_run_config *c, FILE *f);

/* The key table as help text. */
void lt_run_config_print_help(FILE *f);

#endif
