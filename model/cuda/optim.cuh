/* The optimizer's ops of the CUDA backend (model/ops.h: sumsq, scale,
 * adamw) on device buffers: parameters, gradients and AdamW moments stay
 * on the GPU for the whole step; the host receives the gradient's sum of
 * squares (one double) and sends the step's scalars (lt_adamw_scalars, by
 * value in the launch).
 *
 * optim.cu must be compiled without FMA contraction (--fmad=false under
 * nvcc, -ffp-contract=off in the emulated build), as core/optim_math.c
 * is: lt_adamw_update then gives the CPU's bits exactly. */
#ifndef LT_MODEL_CUDA_OPTIM_CUH
#define LT_MODEL_CUDA_OPTIM_CUH

#include <stddef.h>

#include "model/ops.h"

/* Deterministic: per-thread sums over a grid-stride range, a shared-memory
 * tree per block, then one block's tree over the block sums -- an order
 * fixed by n alone (no atomics), so every run and every rank gets the same
 * bits. Waits for the stream (the host needs the value); NaN after a
 * failure, which ops->check reports. */
double lt_cuda_sumsq(const lt_ops *o, const float *x, size_t n);
void lt_cuda_scale(const lt_ops *o, float *x, size_t n, float c);
void lt_cuda_adamw(const lt_ops *o, float *params, const float *grads, float *m, float *v,
                   size_t n, const lt_adamw_scalars *s);

#endif
