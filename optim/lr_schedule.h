/* Learning-rate schedules with Hugging Face transformers' get_scheduler
 * semantics (a LambdaLR over the optimizer's lr): lt_lr_at(s, step) is the
 * learning rate used by optimizer step `step`, counting steps already taken
 * from 0, so the first update uses lt_lr_at(s, 0).
 *
 * With W = warmup_steps and T = total_steps the multipliers of lr are
 *     constant              1 (HF's "constant" ignores warmup; so does this)
 *     constant_with_warmup  s < W ? s / max(1, W) : 1
 *     linear                s < W ? s / max(1, W) : max(0, (T - s) / max(1, T - W))
 *     cosine                s < W ? s / max(1, W)
 *                                 : max(0, 0.5 (1 + cos(pi progress))),
 *                           progress = (s - W) / max(1, T - W)
 * Past T, linear stays at 0 while cosine climbs again (cos past pi), as
 * HF's formula does; the trainer stops at T. W > T is allowed, as HF
 * allows it: every step of the run is then in the warmup. */
#ifndef LT_OPTIM_LR_SCHEDULE_H
#define LT_OPTIM_LR_SCHEDULE_H

#include <stdint.h>

#include "core/status.h"

typedef enum {
    LT_SCHED_CONSTANT = 0,
    LT_SCHED_CONSTANT_WITH_WARMUP = 1,
    LT_SCHED_LINEAR = 2,
    LT_SCHED_COSINE = 3
} lt_sched_kind;

typedef struct {
    lt_sched_kind kind;
    double lr;             /* peak learning rate (HF learning_rate; double as in Python) */
    int64_t warmup_steps;  /* W */
    int64_t total_steps;   /* T: optimizer steps in the run (HF max_steps) */
} lt_lr_schedule;

/* HF's lr_scheduler_type names: "constant", "constant_with_warmup",
 * "linear", "cosine". */
lt_status lt_lr_schedule_parse(const char *name, lt_sched_kind *out, lt_error *err);
/* The HF name of k, or "unknown". */
const char *lt_lr_schedule_name(lt_sched_kind k);

/* Checks a known kind, a finite lr >= 0, total_steps >= 1 and
 * warmup_steps >= 0 (more than total_steps is fine: as in transformers,
 * the lr then rises for the whole run). */
lt_status lt_lr_schedule_validate(const lt_lr_schedule *s, lt_error *err);

/* The learning rate for optimizer step `step` (>= 0) of a validated
 * schedule, computed in double as HF does and rounded once to float. */
float lt_lr_at(const lt_lr_schedule *s, int64_t step);

/* HF TrainingArguments' warmup from a ratio: ceil(total_steps * ratio),
 * evaluated in double exactly as Python does (so 0.07 * 100 gives 8, not 7,
 * like HF). Returns -1 when ratio is not in [0, 1] or total_steps < 0, which
 * lt_lr_schedule_validate then rejects. */
int64_t lt_warmup_steps_from_ratio(double warmup_ratio, int64_t total_steps);

#endif
