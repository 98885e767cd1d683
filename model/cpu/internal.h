/* Kernels of the CPU backend that live in their own files, wired into the
 * ops table by ops.c. Private to model/cpu/. */
#ifndef LT_MODEL_CPU_INTERNAL_H
#define LT_MODEL_CPU_INTERNAL_H

#include <stddef.h>

#include "model/ops.h"

/* Scratch memory for the calling thread, at least `floats` long and 64-byte
 * aligned, kept between calls (growing when needed): kernels run thousands
 * of times per step, and freeing large blocks makes glibc return them to
 * the OS and fault them back in on every call. NULL if allocation fails. */
float *lt_cpu_thread_scratch(size_t floats);

/* Records a failure for the next ops->check (kernels cannot return one). */
void lt_cpu_raise(const char *what);

void lt_cpu_dequantize(const lt_ops *o, float *out, const uint8_t *blob, const lt_qtensor *t);

void lt_cpu_attention_fwd(const lt_ops *o, float *out, float *lse, const float *qkv, int B,
                          int T, int nh, int nkv, int hd);
void lt_cpu_attention_bwd(const lt_ops *o, float *dqkv, const float *dout, const float *out,
                          const float *lse, const float *qkv, int B, int T, int nh, int nkv,
                          int hd);

#endif
