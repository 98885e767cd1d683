/* The llama2.c checkpoint format (legacy version 0, as run.c reads it):
 * seven int32 header fields, then fp32 tensors stacked over layers in a
 * fixed order, the unused RoPE tables, and the classifier when the header's
 * vocab_size is negative. */
#ifndef LT_IO_MODEL_LLAMA2C_H
#define LT_IO_MODEL_LLAMA2C_H

#include <stdint.h>

#include "core/status.h"
#include "model/config.h"
#include "model/llama.h"
#include "model/ops.h"

/* Reads and validates the header; the file size must equal what it implies. */
lt_status lt_llama2c_read_config(const char *path, lt_model_config *cfg, uint64_t *file_bytes,
                                 lt_error *err);

/* Creates a model on ops and fills its base weights from the file, one
 * tensor slice at a time (never a second full copy of the weights). */
lt_status lt_llama2c_load(const char *path, const lt_ops *ops, lt_model **out, lt_error *err);

/* The same with the decoder linears quantized as they are read (qc NULL:
 * fp32); at most one tensor slice is ever held in fp32. */
lt_status lt_llama2c_load_quantized(const char *path, const lt_quant_config *qc, const lt_ops *ops,
                                    lt_model **out, lt_error *err);

/* The same for shard shard_rank of shard_count (lt_model_create_sharded):
 * tensors of which this shard keeps no byte are skipped, never read.
 * *bytes_read (may be NULL): the tensor bytes this rank read. */
lt_status lt_llama2c_load_sharded(const char *path, const lt_quant_config *qc, int shard_rank,
                                  int shard_count, const lt_ops *ops, lt_model **out,
                                  uint64_t *bytes_read, lt_error *err);

#endif
