/* Gradient norm and clipping by global L2 norm over one flat gradient
 * buffer, with torch.nn.utils.clip_grad_norm_ semantics (what the Hugging
 * Face Trainer calls with max_grad_norm). */
#ifndef LT_OPTIM_GRAD_CLIP_H
#define LT_OPTIM_GRAD_CLIP_H

#include <stddef.h>

/* L2 norm of g[0..n), squares summed in double in a fixed order (the same
 * result on every run and every rank; core/optim_math.h's lt_sumsq, which
 * the CPU backend's sumsq op also runs). Inf or NaN in g gives inf or NaN. */
double lt_grad_norm(const float *g, size_t n);

/* The sum of squares lt_grad_norm takes the root of (to add up shards). */
double lt_grad_sumsq(const float *g, size_t n);

/* total = lt_grad_norm(g, n); coef = max_norm / (total + 1e-6); g *= coef
 * when coef < 1. Returns total (before clipping). max_norm <= 0 disables
 * clipping (the norm is still returned). A non-finite total is returned as
 * is and g is left untouched: the caller decides whether to skip the step
 * (torch would scale g by NaN or zero it). */
float lt_clip_grad_norm(float *g, size_t n, float max_norm);

/* The same with the global norm given: g is one shard of a gradient whose
 * whole norm is total (ZeRO-1 clips each rank's shard by the global norm). */
float lt_clip_grad_norm_total(float *g, size_t n, double total, float max_norm);

/* The clipping decision alone, for a caller that scales the gradient where
 * it lives (a backend's scale op): 1 and *coef = (float)(max_norm /
 * (total + 1e-6)) when that is below 1; 0 (g untouched) when it is not,
 * when max_norm <= 0, or when total is not finite. */
int lt_clip_grad_coef(double total, float max_norm, float *coef);

#endif
