/* Causal grouped-query attention on the GPU (the ops table's attention_fwd
 * and attention_bwd, model/ops.h), fp32, FlashAttention-2 style: the
 * forward keeps each row's log-sum-exp, the backward recomputes the
 * probabilities from it; no [T, T] matrix exists. Head sizes up to 256
 * (others are recorded as a failure of the op). */
#ifndef LT_MODEL_CUDA_ATTENTION_CUH
#define LT_MODEL_CUDA_ATTENTION_CUH

#include "model/ops.h"

void lt_cuda_attention_fwd(const lt_ops *o, float *out, float *lse, const float *qkv, int B,
                           int T, int nh, int nkv, int hd);
/* Uses lt_cuda_scratch(o, "attention_bwd", B * nh * T floats) for the
 * rows' dO . O. */
void lt_cuda_attention_bwd(const lt_ops *o, float *dqkv, const float *dout, const float *out,
                           const float *lse, const float *qkv, int B, int T, int nh, int nkv,
                           int hd);

#endif
