/* AdamW on one flat fp32 parameter buffer and its flat gradient buffer, as
 * torch.optim.AdamW computes it (amsgrad=False, maximize=False), so a run
 * here and a Hugging Face Trainer run with the same hyperparameters follow
 * the same trajectory up to float rounding.
 *
 * One optimizer step (t counts steps taken, including this one):
 *     t += 1
 *     p *= 1 - lr * weight_decay                 (decoupled decay, before the moments)
 *     m  = beta1 m + (1 - beta1) g
 *     v  = beta2 v + (1 - beta2) g^2
 *     p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 *
 * Checkpoint resume: m, v and step are the whole optimizer state. m and v
 * are plain buffers of n floats (write them, or read them back after
 * lt_adamw_init); step must be restored together with them, because the
 * bias corrections depend on it -- moments restored with step = 0 would be
 * amplified as if they were fresh. */
#ifndef LT_OPTIM_ADAMW_H
#define LT_OPTIM_ADAMW_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct {
    float beta1;        /* Hugging Face TrainingArguments adam_beta1, default 0.9 */
    float beta2;        /* adam_beta2, default 0.999 */
    float eps;          /* adam_epsilon, default 1e-8 */
    float weight_decay; /* weight_decay, default 0.0 */
} lt_adamw_config;

typedef struct {
    float *m;    /* first moment, n floats (tracked allocation, LT_MEM_OPTIM_STATE) */
    float *v;    /* second moment, n floats */
    size_t n;
    int64_t step; /* optimizer steps taken so far */
    lt_adamw_config cfg;
} lt_adamw;

/* Hugging Face TrainingArguments' defaults. */
lt_adamw_config lt_adamw_default_config(void);

/* Checks 0 <= beta1, beta2 < 1, eps > 0, weight_decay >= 0, all finite. */
lt_status lt_adamw_config_validate(const lt_adamw_config *cfg, lt_error *err);

/* Validates cfg (NULL: the defaults) and allocates zeroed moments for n > 0
 * parameters; step starts at 0. On failure opt is left empty (safe to free). */
lt_status lt_adamw_init(lt_adamw *opt, size_t n, const lt_adamw_config *cfg, lt_error *err);
void lt_adamw_free(lt_adamw *opt);

/* One step over params[0..n) with grads[0..n) at learning rate lr (finite,
 * >= 0; the schedule's value for this step). params and grads must not
 * overlap each other or the moments. */
void lt_adamw_step(lt_adamw *opt, float *params, const float *grads, float lr);

#endif
