/* What the CUDA backend's files share (not a public interface: callers go
 * through model/backend.h and the ops table). Each file of model/cuda/
 * implements some ops with the ops table's exact signatures, named
 * lt_cuda_<op>, declared in the header beside it; backend.cu fills the
 * table. */
#ifndef LT_MODEL_CUDA_INTERNAL_CUH
#define LT_MODEL_CUDA_INTERNAL_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "model/cuda/launch.cuh"
#include "model/ops.h"

typedef struct {
    int device;            /* the GPU this rank uses */
    cudaStream_t stream;   /* every op of the table is enqueued here */
    cublasHandle_t blas;   /* bound to stream */
    /* The first failure since the last check (ops return nothing and run
     * asynchronously): its op and CUDA error; ops->check reports and
     * clears it without synchronising the device. */
    cudaError_t sticky;
    const char *sticky_op;
    /* Device scratch the ops share (grown, never shrunk; one op at a time
     * on the one stream uses it). */
    void *scratch;
    size_t scratch_bytes;
} lt_cuda_ctx;

static inline lt_cuda_ctx *lt_cuda_ctx_of(const lt_ops *o) { return (lt_cuda_ctx *)o->ctx; }
static inline cudaStream_t lt_cuda_stream(const lt_ops *o) { return lt_cuda_ctx_of(o)->stream; }

/* Device scratch of at least bytes, valid until the next call; NULL (with
 * the failure recorded for op) when the device is out of memory. */
void *lt_cuda_scratch(const lt_ops *o, const char *op, size_t bytes);

/* Records a failure of op unless one is already recorded. */
void lt_cuda_fail(const lt_ops *o, const char *op, cudaError_t e);

/* After a launch: a launch error (bad configuration) is recorded for op. */
void lt_cuda_after_launch(const lt_ops *o, const char *op);

#endif
