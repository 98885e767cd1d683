/* The training loop that wires model, data, optimizer and reporting.
 *
 * lt_train_step is the single definition of one optimizer step (used by
 * the command and by the parity test against PyTorch):
 *   zero the gradients; for each of GA micro-batches, forward and backward
 *   with every token weighted 1 / (targets in the whole accumulated batch)
 *   (token-level mean, as Hugging Face Trainer's num_items_in_batch);
 *   clip the global gradient norm; AdamW at the scheduled learning rate.
 * With N data-parallel ranks each runs its part of every micro-batch, the
 * last micro-batch's backward starts the bucketed all-reduce of the LoRA
 * gradients, and every rank clips and steps the same summed gradient. */
#ifndef LT_LAUNCH_TRAINER_H
#define LT_LAUNCH_TRAINER_H

#include <stdint.h>

#include "core/status.h"
#include "io/dataset.h"
#include "dist/comm.h"
#include "launch/data_parallel.h"
#include "launch/run_config.h"
#include "model/llama.h"
#include "optim/adamw.h"
#include "optim/lr_schedule.h"

typedef struct {
    double loss;      /* mean cross-entropy over the step's target tokens */
    double grad_norm; /* global L2 norm before clipping */
    float lr;         /* learning rate applied */
    int64_t tokens;   /* target tokens in the step (all ranks) */
    double grad_wait_s; /* time blocked waiting for the gradient all-reduce */
    uint64_t grad_overlapped_bytes; /* gradient bytes reduced while backward ran */
    uint64_t grad_started_bytes;    /* gradient bytes whose reduction began during backward */
} lt_step_stats;

/* inputs and targets hold ga micro-batches of [B, T] each, back to back
 * (this rank's rows). step counts optimizer steps already taken (it selects
 * the learning rate and the dropout masks). dp NULL: one process; else its
 * global_targets and first_row describe this step. The loss in *out is the
 * global one on rank 0 (a reduce), this rank's elsewhere. */
lt_status lt_train_step(lt_model *m, lt_adamw *opt, const lt_lr_schedule *sched, int64_t step,
                        float max_grad_norm, const int32_t *inputs, const int32_t *targets, int ga,
                        int B, int T, uint64_t seed, lt_dp *dp, lt_step_stats *out, lt_error *err);

/* Mean loss over a dataset's rows (at most max_rows; 0: all). With dp the
 * rows are split across ranks and the result is rank 0's. */
lt_status lt_evaluate(lt_model *m, const lt_dataset *ds, int batch, size_t max_rows, lt_dp *dp,
                      double *loss, int64_t *tokens, lt_error *err);

/* The most bytes a run adds to output_dir at one time, beyond what is
 * there already, so that a disk without room fails before step 1 with
 * these figures instead of at the first output that does not fit. It
 * follows what the run writes; keep it in step with io/checkpoint.h's
 * layout and the outputs below:
 *   - a checkpoint: the trainable parameters (LoRA's A and B, or every
 *     weight in full fine-tuning) and AdamW's two moments, float32 (3 x 4
 *     bytes a parameter; the moments whole even under ZeRO-1), plus 1 MiB
 *     for HDF5's metadata, tensor names, attributes and checksums, plus
 *     the run config it records;
 *   - how many exist at once: those this run writes (one every save_steps
 *     from start to total, and one more that a stop signal writes at a
 *     step that is not a save step) added to the existing_checkpoints; with
 *     save_total_limit L at most L + 1 (the new one is written before the
 *     oldest goes); counted beyond those already there;
 *   - the adapter (adapter_model.safetensors + adapter_config.json) or the
 *     model (model.safetensors): 4 bytes a parameter plus 1 MiB for the
 *     header and the config;
 *   - the logs: a metrics.jsonl line of at most 768 bytes a step and 160
 *     an evaluation, run_config.json (config_bytes), memory.json (16 KiB +
 *     1 KiB a rank). */
typedef struct {
    uint64_t checkpoint_bytes; /* one checkpoint */
    int64_t checkpoints;       /* new ones on disk at once, at most */
    uint64_t final_bytes;      /* the adapter or the model */
    uint64_t log_bytes;
    uint64_t total;            /* checkpoints x checkpoint_bytes + final_bytes + log_bytes */
} lt_output_estimate;

void lt_estimate_outputs(const lt_run_config *c, size_t trainable, size_t config_bytes, int64_t start,
                         int64_t total, int64_t existing_checkpoints, int ranks, int evaluates,
                         lt_output_estimate *out);

/* Runs `loratrain train` for a validated configuration on the ranks of
 * world (every rank calls it). */
lt_status lt_train(const lt_run_config *cfg, lt_comm *world, lt_error *err);

#endif
