/* The CUDA backend of the ops interface (model/ops.h): cuBLAS GEMMs and
 * the kernels of model/cuda/ (the .cu files), every op enqueued on one stream of one
 * GPU. Commands reach it through lt_backend_open (model/backend.h), which
 * picks the GPU by local rank; this C interface names no CUDA type, so
 * C code (model/backend.c, the tests) includes it without the toolkit.
 *
 * One backend per process (one GPU per rank): a second open of the same
 * device returns the same table, another device is refused. */
#ifndef LT_MODEL_CUDA_CUDA_H
#define LT_MODEL_CUDA_CUDA_H

#include <stddef.h>

#include "core/hostdev.h"
#include "core/status.h"
#include "model/ops.h"

LT_EXTERN_C_BEGIN

/* GPUs this process can use (CUDA_VISIBLE_DEVICES applied by the runtime);
 * 0 without a driver or a GPU (the runtime's error is not an error here). */
int lt_cuda_device_count(void);

/* The table on GPU `device` (0 .. count - 1). threads_unused: the CPU
 * thread count lt_backend_open passes every backend; the GPU has no use
 * for it. Fails with LT_ERR_CONFIG naming the reason (no driver, no GPU,
 * device out of range) or LT_ERR_NOMEM. */
lt_status lt_ops_cuda_open(int device, int threads_unused, const lt_ops **ops, lt_error *err);

/* Releases what open made once every open has been closed (the stream,
 * cuBLAS, the scratch); buffers from ops->alloc must be freed before. */
void lt_ops_cuda_close(const lt_ops *ops);

/* The GPU and its memory, e.g. "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB),
 * device 0 of 8". */
void lt_ops_cuda_describe(const lt_ops *ops, char *buf, size_t size);

/* The GEMM library, for benchmark reports ("cuBLAS"). */
const char *lt_ops_cuda_gemm_kernels(const lt_ops *ops);

/* The device's free and total memory (cudaMemGetInfo); 0 on success. */
int lt_ops_cuda_mem_info(const lt_ops *ops, size_t *free_bytes, size_t *total_bytes);

LT_EXTERN_C_END

#endif
