/* What a run writes in output_dir, and the checks made on it before a run
 * writes anything there: room for the run's outputs (a disk without room
 * fails before step 1, not at the first output that does not fit), and
 * whether a resumed run at its last step already has its outputs (a job
 * script that always resumes `latest` leaves a finished run alone). */
#ifndef LT_LAUNCH_RUN_OUTPUTS_H
#define LT_LAUNCH_RUN_OUTPUTS_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "launch/metrics.h"
#include "launch/run_config.h"

/* The most bytes a run adds to output_dir at one time, beyond what is
 * there already, so that a disk without room fails before step 1 with
 * these figures instead of at the first output that does not fit. It
 * follows what the run writes; keep it in step with
 * io/checkpoint/checkpoint.h's layout and the outputs below:
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

/* Rank 0, before the run writes anything: output_dir takes a write and
 * has room for what lt_estimate_outputs says a run of trainable
 * parameters on ranks ranks, from step start to total, writes; else an
 * error with those figures and what to change. */
lt_status lt_outputs_check_space(const lt_run_config *c, size_t trainable, int64_t start, int64_t total,
                                 int ranks, int evaluates, lt_error *err);

/* The run's outputs for its last step are all there, written after ck
 * (that step's checkpoint): the memory report and the adapter (or model),
 * and in metrics.jsonl the step's line and, for a run that evaluates, its
 * final eval_loss. A run stopped between ck and its outputs fails this. */
int lt_outputs_complete(const lt_run_config *c, const char *ck, int evaluates, int64_t total);

/* Rank 0, as a run starts writing: removes what a killed run of this
 * output_dir left half-written, replaces run_config.json atomically and
 * opens metrics.jsonl (lt_metrics_open: a fresh run starts it anew, a
 * resumed one keeps the steps up to resumed_at). */
lt_status lt_outputs_begin(const lt_run_config *c, int64_t resumed_at, lt_metrics *metrics, lt_error *err);

#endif
