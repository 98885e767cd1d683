/* What launch/trainer.c (the run) shares with launch/train_step.c (the
 * step and the evaluation). Not for other modules: launch/trainer.h is the
 * interface. */
#ifndef LT_LAUNCH_TRAINER_INTERNAL_H
#define LT_LAUNCH_TRAINER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "io/data/dataset.h"
#include "launch/data_parallel.h"
#include "model/llama.h"

/* Any rank signalled stops every rank at the same point: the flag is
 * all-reduced (MAX), a few bytes that no step counter sees. *sig: the
 * signal, or 0. */
lt_status lt_train_agree_on_stop(lt_dp *dp, int *sig, lt_error *err);

/* The test hook for slow phases: LT_FAULT_SLOW="load:S,eval:S,step:S"
 * pauses S seconds once loading is done (while a signal still ends the
 * process at once), before every evaluation batch, and after every
 * optimizer step, so that a test can land a signal or fill a disk there;
 * "eval@K:S" pauses in the evaluation at step K only. A signal does not
 * cut the pause short: what ends it early is the handler or the trainer's
 * own poll, as in a slow phase of a real run. */
void lt_train_fault_slow(const char *where, int64_t step);

/* lt_evaluate that can be stopped. stop_sig non-NULL: every rank polls
 * the stop signal before each batch (agreeing, as every rank runs the same
 * number of batches) and the evaluation ends early, *stop_sig set and no
 * loss, when one arrived. step: the run's step (for the test hook). */
lt_status lt_train_evaluate(lt_model *m, const lt_dataset *ds, int batch, size_t max_rows, lt_dp *dp,
                            int64_t step, int *stop_sig, double *loss, int64_t *tokens, lt_error *err);

#endif
