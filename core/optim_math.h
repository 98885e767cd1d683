/* The optimizer's arithmetic, in one place for every backend: optim/
 * (AdamW and clipping on host buffers), the CPU backend's optimizer ops
 * (model/cpu/) and the CUDA kernels (model/cuda/optim.cu) all update an
 * element with lt_adamw_update, so a step gives the same bits on each,
 * and torch.optim.AdamW's roundings hold on all of them.
 *
 * optim/ forms the scalars of one step on the host (lt_adamw_scalars_at in
 * optim/adamw.h: Python doubles from the float hyperparameters, rounded to
 * float where torch meets a float tensor); the backends receive them
 * ready-made and never see the configuration or the step count.
 *
 * Bits: every file that compiles lt_adamw_update must keep each product
 * and quotient rounded on its own (no FMA contraction): -ffp-contract=off
 * for C and for the emulated CUDA build, --fmad=false under nvcc.
 * core/optim_math.c, the host loops, is built so. */
#ifndef LT_CORE_OPTIM_MATH_H
#define LT_CORE_OPTIM_MATH_H

#include <math.h>
#include <stddef.h>

#include "core/hostdev.h"

/* The per-step scalars of AdamW's element update (t: this step's number,
 * counting from 1; bc1 = 1 - beta1^t, bc2 = 1 - beta2^t). */
typedef struct {
    float beta1, beta2;
    float one_minus_beta1; /* (float)(1 - (double)beta1) */
    float one_minus_beta2;
    float eps;
    float decay;    /* (float)(1 - lr * weight_decay): decoupled decay, before the moments */
    float neg_step; /* (float)(-lr / bc1) */
    float bc2_sqrt; /* (float)sqrt(bc2) */
} lt_adamw_scalars;

/* One element: p, m, v updated in place from gradient g. Operands in
 * torch's order (mul_, add_(alpha), addcmul_, sqrt / bc2_sqrt, + eps,
 * addcdiv_):
 *     m = m beta1 + (1 - beta1) g
 *     v = v beta2 + ((1 - beta2) g) g
 *     p = p decay + (neg_step m) / (sqrt(v) / bc2_sqrt + eps)
 * s must not alias p, m or v (callers pass a local copy, so the scalars
 * stay in registers and the loops vectorise). */
LT_HOST_DEVICE static inline void lt_adamw_update(const lt_adamw_scalars *s, float g, float *p,
                                                  float *m, float *v) {
    const float mi = *m * s->beta1 + s->one_minus_beta1 * g;
    const float vi = *v * s->beta2 + s->one_minus_beta2 * g * g;
    *m = mi;
    *v = vi;
    const float denom = sqrtf(vi) / s->bc2_sqrt + s->eps;
    *p = *p * s->decay + s->neg_step * mi / denom;
}

#ifdef __cplusplus
extern "C" {
#endif

/* The host loops (core/optim_math.c), shared by optim/ and the CPU
 * backend's ops. None allocates or fails. */

/* lt_adamw_update over n elements; params, grads, m and v must not overlap. */
void lt_adamw_apply(float *params, const float *grads, float *m, float *v, size_t n,
                    const lt_adamw_scalars *s);

/* The sum of x[i]^2 in double, in a fixed order (eight interleaved partial
 * sums, combined as a fixed tree): the same bits on every run and rank.
 * Each square is exact in double; only the sums round. */
double lt_sumsq(const float *x, size_t n);

/* x[i] *= c (gradient clipping's scale). */
void lt_scale(float *x, size_t n, float c);

#ifdef __cplusplus
}
#endif

#endif
