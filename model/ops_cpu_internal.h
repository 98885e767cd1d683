/* Kernels of the CPU backend that live in their own files, wired into the
 * ops table by ops_cpu.c. Private to model/. */
#ifndef LT_MODEL_OPS_CPU_INTERNAL_H
#define LT_MODEL_OPS_CPU_INTERNAL_H

#include "model/ops.h"

void lt_cpu_attention_fwd(const lt_ops *o, float *out, float *lse, const float *qkv, int B,
                          int T, int nh, int nkv, int hd);
void lt_cpu_attention_bwd(const lt_ops *o, float *dqkv, const float *dout, const float *out,
                          const float *lse, const float *qkv, int B, int T, int nh, int nkv,
                          int hd);

#endif
