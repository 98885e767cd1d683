/* What `loratrain convert` shares with `loratrain merge`: both read a model
 * and write it as a Hugging Face model directory (config.json and
 * model.safetensors in f32, f16 or bf16); merge first folds an adapter in. */
#ifndef LT_LAUNCH_CMD_CONVERT_H
#define LT_LAUNCH_CMD_CONVERT_H

#include "core/status.h"
#include "model/llama.h"

typedef struct {
    const char *model;    /* --model */
    const char *adapter;  /* --adapter (merge only; NULL for convert) */
    const char *out_dir;  /* --output_dir */
    int dtype;            /* --dtype, an index into the table of cmd_convert.c */
    lt_model *m;          /* the model read (fp32) */
} lt_convert_job;

/* cmd: "convert" or "merge". Parses --model, --output_dir, --dtype,
 * --device and, for merge, --adapter; refuses an output_dir whose
 * model.safetensors.index.json would shadow the new model.safetensors;
 * reads the model on the device's backend. On failure nothing is held. */
lt_status lt_convert_open(int argc, char **argv, const char *cmd, lt_convert_job *j, lt_error *err);

/* Writes job's model to its output_dir (each file atomically, config.json
 * last) and prints the line that says what was written. */
lt_status lt_convert_write(const lt_convert_job *j, lt_error *err);

void lt_convert_close(lt_convert_job *j);

#endif
