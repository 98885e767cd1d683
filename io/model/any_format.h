/* A base model on disk, whichever format it is in: a llama2.c checkpoint
 * file, or a Hugging Face model directory (one holding config.json). The
 * commands take --model through these, so every one accepts both. */
#ifndef LT_IO_MODEL_ANY_FORMAT_H
#define LT_IO_MODEL_ANY_FORMAT_H

#include <stdint.h>

#include "core/status.h"
#include "model/config.h"
#include "model/llama.h"
#include "model/ops.h"
#include "model/quant.h"

/* "Hugging Face directory" or "llama2.c format", for messages. */
const char *lt_model_file_format(const char *path);

lt_status lt_model_file_read_config(const char *path, lt_model_config *cfg, lt_error *err);

/* lt_llama2c_load_sharded or lt_hf_load_sharded by what path is. */
lt_status lt_model_file_load_sharded(const char *path, const lt_quant_config *qc, int shard_rank,
                                     int shard_count, const lt_ops *ops, lt_model **out,
                                     uint64_t *bytes_read, lt_error *err);
lt_status lt_model_file_load_quantized(const char *path, const lt_quant_config *qc,
                                       const lt_ops *ops, lt_model **out, lt_error *err);

/* The base's identity recorded in training checkpoints: the file's
 * lt_file_fingerprint, or lt_hf_fingerprint for a directory. */
lt_status lt_model_file_fingerprint(const char *path, uint64_t *bytes, uint64_t *fingerprint,
                                    lt_error *err);

#endif
