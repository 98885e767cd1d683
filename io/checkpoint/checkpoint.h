/* Training checkpoints in HDF5: everything a run needs to continue exactly
 * where it stopped, in a file h5py and h5dump read without our code.
 *
 * Layout (format "loratrain-checkpoint", format_version 2; HDF5's 1.8 file
 * format, whose own metadata carries checksums):
 *   /                 attributes: format, format_version, finetuning_type
 *                     ("lora" or "full"), tensor_row_order ("huggingface"),
 *                     global_step, tokens_seen, data_epoch, data_position,
 *                     seed, world_size, base_model_path, base_model_bytes,
 *                     base_model_fingerprint, run_config (JSON); LoRA:
 *                     lora_r, lora_alpha, use_rslora, target_modules
 *   /adapter/<name>   float32 [rows, cols] LoRA A and B, <name> the PEFT
 *                     tensor name (base_model.model.model.layers.N.<block>.
 *                     <module>.lora_{A,B}.weight)
 *   /optimizer/exp_avg/<name>, /optimizer/exp_avg_sq/<name>
 *                     AdamW's moments, same shapes; /optimizer has the
 *                     attributes step, beta1, beta2, eps, weight_decay
 *   /scheduler        attributes lr_scheduler_type, learning_rate,
 *                     warmup_steps, total_steps
 *   /manifest         every attribute and dataset above with the XXH3-64
 *                     of its value, and the digest of the whole list
 *                     (io/checkpoint/ckpt_manifest.h): any value changed,
 *                     object added or removed after the save is refused by
 *                     name.
 * Rows are in one order whatever the base's file format: Hugging Face's.
 * A llama2.c base computes q_proj/k_proj in the interleaved RoPE layout;
 * their rows (weights, LoRA B and the moments of either) are permuted to
 * rotate-half order on save and back on load, so h5py reading /adapter
 * into PEFT gets the adapter the run trained.
 * Dropout masks and the sampler's order are functions of (seed, step) and
 * (seed, epoch), so seed, global_step and the data cursor are the whole
 * RNG state.
 *
 * Saving builds the file in memory, writes it to a temporary name, reads
 * it back against its manifest, fsyncs and renames it into place, then
 * replaces output_dir/latest_checkpoint (the file name of the newest
 * complete checkpoint) the same way: a process killed at any moment leaves
 * the previous checkpoint and pointer intact. */
#ifndef LT_IO_CHECKPOINT_CHECKPOINT_H
#define LT_IO_CHECKPOINT_CHECKPOINT_H

#include <stdint.h>
#include <stdio.h>

#include "core/status.h"
#include "dist/comm.h"
#include "io/data/loader.h"
#include "model/llama.h"
#include "optim/adamw.h"
#include "optim/lr_schedule.h"

#define LT_CHECKPOINT_FORMAT "loratrain-checkpoint"
#define LT_CHECKPOINT_VERSION 2
#define LT_CHECKPOINT_ROW_ORDER "huggingface"

/* opt's moments, like m's parameters, live where m's backend keeps its
 * buffers (lt_train_optimizer_init allocates them there): every function
 * below reaches both through the model's ops (download, upload), so a
 * checkpoint of a GPU run holds the same bytes a CPU run's would. */

typedef struct {
    int64_t global_step; /* optimizer steps completed */
    int64_t tokens_seen;
    lt_data_cursor cursor; /* the sampler after global_step steps */
    uint64_t seed;
    int world_size; /* ranks of the run that wrote it (any may resume it) */
    char base_path[1024];
    uint64_t base_bytes, base_fingerprint;
    lt_lr_schedule sched;
} lt_ckpt_meta;

/* Writes output_dir/checkpoint-<global_step>.h5 atomically and points
 * output_dir/latest_checkpoint at it; then removes the oldest
 * checkpoint-*.h5 beyond keep (0: keep all). *written (may be NULL) gets
 * the path. */
lt_status lt_checkpoint_save(const char *output_dir, lt_model *m, const lt_adamw *opt,
                             const lt_ckpt_meta *meta, const char *run_config_json, int keep,
                             char *written, size_t cap, lt_error *err);

/* Reads and verifies path into m's LoRA parameters and opt's moments and
 * step, filling *meta: format and version, the manifest (every attribute,
 * every tensor read), every dataset's shape against m's LoRA table,
 * r / alpha / rsLoRA / target modules, and (when base_bytes is not 0) the
 * base model's identity. */
lt_status lt_checkpoint_load(const char *path, lt_model *m, lt_adamw *opt, uint64_t base_bytes,
                             uint64_t base_fingerprint, lt_ckpt_meta *meta, lt_error *err);

/* Full fine-tuning (layout as above with /model/<Hugging Face name>
 * float32 weights, each with attribute offset, instead of /adapter, and
 * /optimizer/exp_avg and exp_avg_sq flat float32 [parameters]: the
 * tensors of /model back to back, rows in the same order as /model, each
 * with segment_offsets: one manifest hash per writer's part).
 * Every rank calls it. shard_begin (size + 1 boundaries) when the moments
 * are sharded (ZeRO-1): opt holds this rank's shard and all ranks write
 * the file together through parallel HDF5 (MPI-IO); NULL: replicated,
 * rank 0 writes it alone. Same atomic placement as lt_checkpoint_save. */
lt_status lt_checkpoint_save_full(const char *output_dir, lt_model *m, const lt_adamw *opt,
                                  lt_comm *comm, const size_t *shard_begin,
                                  const lt_ckpt_meta *meta, const char *run_config_json, int keep,
                                  char *written, size_t cap, lt_error *err);
/* Reads the weights into m and moments [shard_lo, shard_lo + opt->n) into
 * opt (any split: a run may resume on another number of ranks), verifying
 * every attribute, every tensor and every segment it reads. */
lt_status lt_checkpoint_load_full(const char *path, lt_model *m, lt_adamw *opt, size_t shard_lo,
                                  uint64_t base_bytes, uint64_t base_fingerprint, lt_ckpt_meta *meta,
                                  lt_error *err);

/* "latest" (or a directory): the checkpoint output_dir/latest_checkpoint
 * names if it verifies, else the newest checkpoint-*.h5 that does
 * (a line on notes, unless NULL, says which were skipped and why: one
 * rank of many reports it); any other path is
 * taken as it is. path is "" when output_dir holds no checkpoint and no
 * pointer at all (start from step 0); checkpoints that all fail to verify
 * are an error, never a silent fresh start. */
lt_status lt_checkpoint_resolve(const char *spec, const char *output_dir, FILE *notes, char *path,
                                size_t cap, lt_error *err);

/* The root of a checkpoint without its tensors: *meta, its kind ("lora" or
 * "full") in type, and the run config JSON it was written with (*run_config,
 * malloc; free it). Checks format, version and every attribute against the
 * manifest; the tensors' values are checked when they are loaded. */
lt_status lt_checkpoint_read_header(const char *path, lt_ckpt_meta *meta, char *type, size_t cap,
                                    char **run_config, lt_error *err);

/* Verifies path (format, the manifest over every attribute and every
 * tensor's values, and that the tensors form a usable adapter or model:
 * none missing, none transposed) and prints what it holds; with tensors,
 * every tensor's name and shape too. */
lt_status lt_checkpoint_inspect(const char *path, FILE *out, int tensors, lt_error *err);

#endif
