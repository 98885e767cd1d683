/* The classifier loss on the GPU (the ops table's cross_entropy, ce_block
 * and ce_finish, model/ops.h): the CPU backend's semantics, ignored
 * targets, in-place gradients and the blocked online softmax whose state
 * keeps the target's term apart (model/cpu/ops.c explains why). One
 * thread block per row; row sums in a fixed order. */
#ifndef LT_MODEL_CUDA_LOSS_CUH
#define LT_MODEL_CUDA_LOSS_CUH

#include "model/ops.h"

void lt_cuda_cross_entropy(const lt_ops *o, float *logits, float *losses, const int32_t *targets,
                           int n, int V, float grad_scale, int want_grad);
void lt_cuda_ce_block(const lt_ops *o, float *blk, int ld, int n, int cols, int col0,
                      const int32_t *targets, float *st, float *dx, int dim, int want_grad);
void lt_cuda_ce_finish(const lt_ops *o, float *losses, const float *st, const int32_t *targets,
                       int n, float grad_scale, float *dx, int dim, const float *cls);

#endif
