/* `loratrain train`: lt_train runs a whole run (launch/trainer.c, which
 * lists its steps); lt_train_step and lt_evaluate (launch/train_step.c)
 * are one optimizer step and one evaluation.
 *
 * lt_train_step is the single definition of one optimizer step (used by
 * the command and by the parity test against PyTorch):
 *   zero the gradients; for each of GA micro-batches, forward and backward
 *   with every token weighted 1 / (targets in the whole accumulated batch)
 *   (token-level mean, as Hugging Face Trainer's num_items_in_batch);
 *   clip the global gradient norm; AdamW at the scheduled learning rate
 *   (norm, clipping and AdamW are the backend's ops, on its buffers; opt's
 *   moments must live there: lt_train_optimizer_init).
 * With N data-parallel ranks each runs its part of every micro-batch, the
 * last micro-batch's backward starts the bucketed all-reduce of the LoRA
 * gradients, and every rank clips and steps the same summed gradient. */
#ifndef LT_LAUNCH_TRAINER_H
#define LT_LAUNCH_TRAINER_H

#include <stdint.h>

#include "core/status.h"
#include "dist/comm.h"
#include "io/data/dataset.h"
#include "launch/data_parallel.h"
#include "launch/run_config.h"
#include "model/llama.h"
#include "model/ops.h"
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

/* lt_adamw_init with the moments allocated by ops (LT_MEM_OPTIM_STATE),
 * beside the parameters of a model on that backend: device memory on a
 * GPU, so lt_train_step's adamw op and the checkpoints (which reach the
 * moments through the model's ops) find them there. Every lt_adamw that
 * meets a model's buffers is made so. */
lt_status lt_train_optimizer_init(lt_adamw *opt, const lt_ops *ops, size_t n,
                                  const lt_adamw_config *cfg, lt_error *err);

/* Mean loss over a dataset's rows (at most max_rows; 0: all). With dp the
 * rows are split across ranks and the result is rank 0's. */
lt_status lt_evaluate(lt_model *m, const lt_dataset *ds, int batch, size_t max_rows, lt_dp *dp,
                      double *loss, int64_t *tokens, lt_error *err);

/* Runs `loratrain train` for a validated configuration on the ranks of
 * world (every rank calls it). */
lt_status lt_train(const lt_run_config *cfg, lt_comm *world, lt_error *err);

#endif
