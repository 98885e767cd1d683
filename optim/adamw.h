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
 * The arithmetic of the element update is core/optim_math.h's, shared
 * with the backends' optimizer ops (model/ops.h): lt_adamw_step runs it on
 * host buffers; a trainer whose buffers live on a device takes the step's
 * scalars from lt_adamw_next and hands them to its backend's adamw op,
 * with moments allocated where the backend keeps its parameters
 * (lt_adamw_init_in).
 *
 * Checkpoint resume: m, v and step are the whole optimizer state. m and v
 * are plain buffers of n floats (write them, or read them back after
 * lt_adamw_init; through the backend's upload/download when they live on
 * a device); step must be restored together with them, because the
 * bias corrections depend on it -- moments restored with step = 0 would be
 * amplified as if they were fresh. */
#ifndef LT_OPTIM_ADAMW_H
#define LT_OPTIM_ADAMW_H

#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"
#include "core/optim_math.h"
#include "core/status.h"

typedef struct {
    float beta1;        /* Hugging Face TrainingArguments adam_beta1, default 0.9 */
    float beta2;        /* adam_beta2, default 0.999 */
    float eps;          /* adam_epsilon, default 1e-8 */
    float weight_decay; /* weight_decay, default 0.0 */
} lt_adamw_config;

/* Where the moments live: alloc returns zero-filled memory of a category
 * (NULL on failure), free releases it; ctx is passed to both. A NULL
 * lt_adamw_memory, or one with a NULL alloc, means host memory from the
 * tracked allocator. */
typedef struct {
    void *(*alloc)(const void *ctx, lt_mem_category cat, size_t bytes);
    void (*free)(const void *ctx, void *p);
    const void *ctx;
} lt_adamw_memory;

typedef struct {
    float *m;    /* first moment, n floats (LT_MEM_OPTIM_STATE, in mem's memory) */
    float *v;    /* second moment, n floats */
    size_t n;
    int64_t step; /* optimizer steps taken so far */
    lt_adamw_config cfg;
    lt_adamw_memory mem; /* who allocated m and v (alloc NULL: the tracked host allocator) */
} lt_adamw;

/* Hugging Face TrainingArguments' defaults. */
lt_adamw_config lt_adamw_default_config(void);

/* Checks 0 <= beta1, beta2 < 1, eps > 0, weight_decay >= 0, all finite. */
lt_status lt_adamw_config_validate(const lt_adamw_config *cfg, lt_error *err);

/* Validates cfg (NULL: the defaults) and allocates zeroed moments for n > 0
 * parameters; step starts at 0. On failure opt is left empty (safe to free). */
lt_status lt_adamw_init(lt_adamw *opt, size_t n, const lt_adamw_config *cfg, lt_error *err);
/* The same with the moments allocated by mem (NULL: host memory), e.g. a
 * backend's device memory; lt_adamw_free gives them back to it. */
lt_status lt_adamw_init_in(lt_adamw *opt, size_t n, const lt_adamw_config *cfg,
                           const lt_adamw_memory *mem, lt_error *err);
void lt_adamw_free(lt_adamw *opt);

/* The scalars of step number step (>= 1) at learning rate lr, formed as
 * torch forms them (see optim/adamw.c). */
lt_adamw_scalars lt_adamw_scalars_at(const lt_adamw_config *cfg, int64_t step, float lr);

/* Counts one step and returns its scalars, for a caller that applies the
 * update itself (a backend's adamw op over moments in device memory). */
lt_adamw_scalars lt_adamw_next(lt_adamw *opt, float lr);

/* One step over params[0..n) with grads[0..n) at learning rate lr (finite,
 * >= 0; the schedule's value for this step), all in host memory:
 * lt_adamw_next, then lt_adamw_apply. params and grads must not overlap
 * each other or the moments. */
void lt_adamw_step(lt_adamw *opt, float *params, const float *grads, float lr);

#endif
