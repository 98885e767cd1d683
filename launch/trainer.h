/* The training loop that wires model, data, optimizer and reporting.
 *
 * lt_train_step is the single definition of one optimizer step (used by
 * the command and by the parity test against PyTorch):
 *   zero the gradients; for each of GA micro-batches, forward and backward
 *   with every token weighted 1 / (targets in the whole accumulated batch)
 *   (token-level mean, as Hugging Face Trainer's num_items_in_batch);
 *   clip the global gradient norm; AdamW at the scheduled learning rate. */
#ifndef LT_LAUNCH_TRAINER_H
#define LT_LAUNCH_TRAINER_H

#include <stdint.h>

#include "core/status.h"
#include "io/dataset.h"
#include "launch/config.h"
#include "model/llama.h"
#include "optim/adamw.h"
#include "optim/lr_schedule.h"

typedef struct {
    double loss;      /* mean cross-entropy over the step's target tokens */
    double grad_norm; /* global L2 norm before clipping */
    float lr;         /* learning rate applied */
    int64_t tokens;   /* target tokens in the step */
} lt_step_stats;

/* inputs and targets hold ga micro-batches of [B, T] each, back to back.
 * step counts optimizer steps already taken (it selects the learning rate
 * and the dropout masks). */
lt_status lt_train_step(lt_model *m, lt_adamw *opt, const lt_lr_schedule *sched, int64_t step,
                        float max_grad_norm, const int32_t *inputs, const int32_t *targets, int ga,
                        int B, int T, uint64_t seed, lt_step_stats *out, lt_error *err);

/* Mean loss over a dataset's rows (at most max_rows; 0: all). */
lt_status lt_evaluate(lt_model *m, const lt_dataset *ds, int batch, size_t max_rows, double *loss,
                      int64_t *tokens, lt_error *err);

/* Runs `loratrain train` for a validated configuration. */
lt_status lt_train(const lt_run_config *cfg, lt_error *err);

#endif
