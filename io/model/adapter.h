/* LoRA adapters on disk in Hugging Face PEFT's layout: a directory with
 * adapter_config.json and adapter_model.safetensors whose tensors are named
 * base_model.model.model.layers.N.<block>.<module>.lora_{A,B}.weight.
 *
 * Files always hold the Hugging Face (rotate-half) RoPE row order, the one
 * PEFT users' models have; for a llama2.c-layout model the rows of q_proj
 * and k_proj lora_B are permuted on save and back on load, so an adapter
 * trained here applies to the same model converted to Hugging Face format. */
#ifndef LT_IO_MODEL_ADAPTER_H
#define LT_IO_MODEL_ADAPTER_H

#include "core/status.h"
#include "model/llama.h"
#include "model/lora.h"

/* Writes the model's adapters to dir (created if needed; each file written
 * atomically). base_model names the base for base_model_name_or_path. */
lt_status lt_adapter_save(lt_model *m, const char *dir, const char *base_model, lt_error *err);

/* Reads and validates dir/adapter_config.json. */
lt_status lt_adapter_read_config(const char *dir, lt_lora_config *lc, lt_error *err);

/* Adds adapters to m as dir's config describes and loads their weights. */
lt_status lt_adapter_load(lt_model *m, const char *dir, lt_error *err);

/* Loads dir's weights into the adapters m already has (the same r and
 * target modules as dir's config; the caller checks the config). */
lt_status lt_adapter_load_weights(lt_model *m, const char *dir, lt_error *err);

#endif
