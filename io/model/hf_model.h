/* Hugging Face model directories of the Llama family: config.json
 * (LlamaForCausalLM, MistralForCausalLM, or Qwen2ForCausalLM: Llama plus
 * q/k/v projection biases) and the weights in
 * model.safetensors or in the shards model.safetensors.index.json's
 * weight_map names, F32, F16 or BF16. The weights use the rotate-half
 * RoPE layout, so the model is created with LT_ROPE_HALF and no row is
 * permuted. Everything in the directory is untrusted: config fields are
 * range-checked, and every tensor must be one the architecture has, with
 * its shape, exactly once. The writers at the end make such a directory
 * (convert, merge and full fine-tuning write theirs with them). */
#ifndef LT_IO_MODEL_HF_MODEL_H
#define LT_IO_MODEL_HF_MODEL_H

#include <stdint.h>

#include "core/status.h"
#include "model/config.h"
#include "model/llama.h"
#include "model/ops.h"
#include "model/quant.h"

/* 1 when path is a directory holding config.json. */
int lt_hf_is_model_dir(const char *path);

/* Reads and validates dir/config.json. */
lt_status lt_hf_read_config(const char *dir, lt_model_config *cfg, lt_error *err);

/* As lt_llama2c_load_sharded, from a Hugging Face directory: qc NULL or
 * format NONE gives an fp32 base; shard_count 1 an unsharded one. */
lt_status lt_hf_load_sharded(const char *dir, const lt_quant_config *qc, int shard_rank,
                             int shard_count, const lt_ops *ops, lt_model **out,
                             uint64_t *bytes_read, lt_error *err);

/* The directory's identity for checkpoints: total bytes of config.json
 * and the weight files, and a hash of each one's lt_file_fingerprint. */
lt_status lt_hf_fingerprint(const char *dir, uint64_t *bytes, uint64_t *fingerprint,
                            lt_error *err);

/* Writes dir/config.json (LlamaForCausalLM; Qwen2ForCausalLM when cfg has
 * q/k/v biases) for cfg, atomically;
 * torch_dtype is "float32", "float16" or "bfloat16". */
lt_status lt_hf_write_config(const char *dir, const lt_model_config *cfg, const char *torch_dtype,
                             lt_error *err);

/* Writes the fp32 base (after full fine-tuning, convert or merge) to
 * dir/model.safetensors (dir created if needed) under its Hugging Face
 * tensor names and row order (q_proj and k_proj permuted from llama2.c's
 * interleaved RoPE), atomically. A quantized base is refused. */
lt_status lt_model_save_safetensors(lt_model *m, const char *dir, lt_error *err);

#endif
