/* The CUDA backend's table and what every op shares: the context (one GPU,
 * one stream, one cuBLAS handle), device memory tracked by category, the
 * GEMM, the failure record that ops->check reports, and the scratch.
 *
 * Ops return nothing and run asynchronously on the stream; a failure is
 * recorded (the first one since the last check, with its op's name) and
 * ops->check reports it without synchronising the device: it runs after
 * every layer, and a synchronisation there would drain the queue. */
#include "model/cuda/cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mutex>
#include <new>
#include <unordered_map>

#include "model/cuda/dequantize.cuh"
#include "model/cuda/elementwise.cuh"
#include "model/cuda/grid.cuh"
#include "model/cuda/attention.cuh"
#include "model/cuda/internal.cuh"
#include "model/cuda/loss.cuh"
#include "model/cuda/optim.cuh"

/* ----------------------------------------------------------- the state */

/* One backend per process: a rank drives one GPU. */
static lt_cuda_ctx g_ctx;
static lt_ops g_ops;
static int g_opens;
static char g_gpu[160];

/* The size and category of every live allocation, so free can give the
 * bytes back to the right category of the memory report. */
struct lt_cuda_block {
    size_t bytes;
    lt_mem_category cat;
};
static std::unordered_map<void *, lt_cuda_block> *g_blocks;
static std::mutex g_blocks_lock;

/* -------------------------------------------------------------- failures */

void lt_cuda_fail(const lt_ops *o, const char *op, cudaError_t e) {
    lt_cuda_ctx *c = lt_cuda_ctx_of(o);
    if (e == cudaSuccess || c->sticky != cudaSuccess) return;
    c->sticky = e;
    c->sticky_op = op;
}

void lt_cuda_after_launch(const lt_ops *o, const char *op) {
    /* A launch error (bad grid, too much shared memory) is returned here
     * and cleared, so the next op starts clean; a fault inside a kernel
     * surfaces later, at a synchronisation or the next check. */
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) lt_cuda_fail(o, op, e);
}

static lt_status cuda_check(const lt_ops *o, lt_error *err) {
    lt_cuda_ctx *c = lt_cuda_ctx_of(o);
    /* An error no op has recorded yet (an asynchronous fault that a later
     * runtime call reported): peek, then clear it. No synchronisation. */
    cudaError_t pending = cudaPeekAtLastError();
    if (pending != cudaSuccess) {
        (void)cudaGetLastError();
        lt_cuda_fail(o, "a kernel before this check", pending);
    }
    const cudaError_t e = c->sticky;
    if (e == cudaSuccess) return LT_OK;
    const char *op = c->sticky_op ? c->sticky_op : "?";
    c->sticky = cudaSuccess;
    c->sticky_op = NULL;
    return lt_fail(err, e == cudaErrorMemoryAllocation ? LT_ERR_NOMEM : LT_ERR_INTERNAL,
                   "CUDA backend on device %d: %s: %s (%s)", c->device, op, cudaGetErrorName(e),
                   cudaGetErrorString(e));
}

/* ---------------------------------------------------------------- memory */

/* cudaMalloc, zero-filled on the stream (so in order with every op that
 * uses the block), counted in the device column of the memory report. */
static void *cuda_alloc(const lt_ops *o, lt_mem_category cat, size_t bytes) {
    if (!bytes) return NULL;
    void *p = NULL;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        /* Out of memory is the caller's to report (NULL, as lt_alloc);
         * clear it so the next check does not report it again. */
        (void)cudaGetLastError();
        return NULL;
    }
    {
        std::lock_guard<std::mutex> hold(g_blocks_lock);
        try {
            (*g_blocks)[p] = lt_cuda_block{bytes, cat};
        } catch (const std::bad_alloc &) {
            cudaFree(p);
            return NULL;
        }
    }
    lt_mem_account(LT_SPACE_DEVICE, cat, (int64_t)bytes);
    lt_cuda_fail(o, "alloc (zero fill)", cudaMemsetAsync(p, 0, bytes, lt_cuda_stream(o)));
    return p;
}

static void cuda_free(const lt_ops *o, void *p) {
    if (!p) return;
    lt_cuda_block blk = {0, LT_MEM_OTHER};
    {
        std::lock_guard<std::mutex> hold(g_blocks_lock);
        auto it = g_blocks->find(p);
        if (it == g_blocks->end()) {
            lt_cuda_fail(o, "free (a pointer this backend did not allocate)",
                         cudaErrorInvalidDevicePointer);
            return;
        }
        blk = it->second;
        g_blocks->erase(it);
    }
    /* cudaFree waits for the work in flight, so no op still uses p. */
    lt_cuda_fail(o, "free", cudaFree(p));
    lt_mem_account(LT_SPACE_DEVICE, blk.cat, -(int64_t)blk.bytes);
}

/* The host buffer is pageable memory: cudaMemcpyAsync returns once it has
 * been staged, so the caller may reuse it at once. */
static void cuda_upload(const lt_ops *o, void *dst, const void *host_src, size_t bytes) {
    if (!bytes) return;
    lt_cuda_fail(o, "upload",
                 cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, lt_cuda_stream(o)));
}

static void cuda_download(const lt_ops *o, void *host_dst, const void *src, size_t bytes) {
    if (!bytes) return;
    cudaStream_t s = lt_cuda_stream(o);
    lt_cuda_fail(o, "download", cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, s));
    /* the caller reads host_dst next */
    lt_cuda_fail(o, "download (synchronise)", cudaStreamSynchronize(s));
}

static void cuda_copy(const lt_ops *o, void *dst, const void *src, size_t bytes) {
    if (!bytes || dst == src) return;
    lt_cuda_fail(o, "copy",
                 cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, lt_cuda_stream(o)));
}

static void cuda_zero(const lt_ops *o, void *dst, size_t bytes) {
    if (!bytes) return;
    lt_cuda_fail(o, "zero", cudaMemsetAsync(dst, 0, bytes, lt_cuda_stream(o)));
}

static void cuda_sync(const lt_ops *o) {
    lt_cuda_fail(o, "sync", cudaStreamSynchronize(lt_cuda_stream(o)));
}

void *lt_cuda_scratch(const lt_ops *o, const char *op, size_t bytes) {
    lt_cuda_ctx *c = lt_cuda_ctx_of(o);
    if (bytes <= c->scratch_bytes) return c->scratch;
    /* Grown by half again, so a slowly rising need does not reallocate at
     * every call; cudaFree waits for the ops that still use the old one. */
    size_t want = bytes + bytes / 2;
    if (c->scratch) {
        lt_cuda_fail(o, op, cudaFree(c->scratch));
        lt_mem_account(LT_SPACE_DEVICE, LT_MEM_WORKSPACE, -(int64_t)c->scratch_bytes);
        c->scratch = NULL;
        c->scratch_bytes = 0;
    }
    if (cudaMalloc(&c->scratch, want) != cudaSuccess) {
        (void)cudaGetLastError();
        c->scratch = NULL;
        want = bytes;
        if (cudaMalloc(&c->scratch, want) != cudaSuccess) {
            (void)cudaGetLastError();
            c->scratch = NULL;
            lt_cuda_fail(o, op, cudaErrorMemoryAllocation);
            return NULL;
        }
    }
    c->scratch_bytes = want;
    lt_mem_account(LT_SPACE_DEVICE, LT_MEM_WORKSPACE, (int64_t)want);
    return c->scratch;
}

/* ------------------------------------------------------------------ gemm */

/* C = alpha op(A) op(B) + beta C with C = beta C when K = 0, as the CPU
 * backend does (a BLAS may leave C alone there). */
__global__ void lt_gemm_scale_kernel(float *C, int ldc, int M, int N, float beta) {
    LT_GRID_STRIDE(e, (size_t)M * N) {
        const size_t i = e / (size_t)N, j = e % (size_t)N;
        C[i * (size_t)ldc + j] *= beta;
    }
}

/* Row-major to cuBLAS's column-major, done here once: a row-major X with
 * leading dimension ld is the column-major X^T with the same ld, so
 * C = op(A) op(B) (row-major) is C^T = op(B)^T op(A)^T (column-major):
 * cuBLAS multiplies B by A, with m = N and n = M. */
static void cuda_gemm(const lt_ops *o, int ta, int tb, int M, int N, int K, float alpha,
                      const float *A, int lda, const float *B, int ldb, float beta, float *C,
                      int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        LT_LAUNCH(lt_gemm_scale_kernel, lt_cuda_blocks_for((size_t)M * N), LT_CUDA_THREADS, 0,
                  lt_cuda_stream(o), C, ldc, M, N, beta);
        lt_cuda_after_launch(o, "gemm (K = 0)");
        return;
    }
    const cublasStatus_t s =
        cublasSgemm(lt_cuda_ctx_of(o)->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                    ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc);
    if (s != CUBLAS_STATUS_SUCCESS)
        lt_cuda_fail(o, "gemm (cublasSgemm)",
                     s == CUBLAS_STATUS_ALLOC_FAILED ? cudaErrorMemoryAllocation
                                                     : cudaErrorInvalidValue);
    lt_cuda_after_launch(o, "gemm");
}

/* ------------------------------------------------------------ the table */

static void fill_table(lt_ops *t) {
    memset(t, 0, sizeof *t);
    t->name = "cuda";
    t->ctx = &g_ctx;
    t->alloc = cuda_alloc;
    t->free = cuda_free;
    t->upload = cuda_upload;
    t->download = cuda_download;
    t->copy = cuda_copy;
    t->zero = cuda_zero;
    t->sync = cuda_sync;
    t->check = cuda_check;
    t->gemm = cuda_gemm;
    t->dequantize = lt_cuda_dequantize;
    t->embedding_fwd = lt_cuda_embedding_fwd;
    t->embedding_bwd = lt_cuda_embedding_bwd;
    t->rmsnorm_fwd = lt_cuda_rmsnorm_fwd;
    t->rmsnorm_bwd = lt_cuda_rmsnorm_bwd;
    t->rope = lt_cuda_rope;
    t->bias_add = lt_cuda_bias_add;
    t->bias_bwd = lt_cuda_bias_bwd;
    t->swiglu_fwd = lt_cuda_swiglu_fwd;
    t->swiglu_bwd = lt_cuda_swiglu_bwd;
    t->dropout = lt_cuda_dropout;
    t->sumsq = lt_cuda_sumsq;
    t->scale = lt_cuda_scale;
    t->adamw = lt_cuda_adamw;
    t->attention_fwd = lt_cuda_attention_fwd;
    t->attention_bwd = lt_cuda_attention_bwd;
    t->cross_entropy = lt_cuda_cross_entropy;
    t->ce_block = lt_cuda_ce_block;
    t->ce_finish = lt_cuda_ce_finish;
}

/* ------------------------------------------------------------ open/close */

extern "C" int lt_cuda_device_count(void) {
    /* Without a driver the runtime answers cudaErrorInsufficientDriver (35)
     * and leaves n unwritten; with a driver and no GPU, cudaErrorNoDevice. */
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n > 0 ? n : 0;
}

static lt_status open_fail(lt_error *err, lt_status code, const char *what, cudaError_t e) {
    (void)cudaGetLastError();
    return lt_fail(err, code, "device = cuda: %s: %s (%s)", what, cudaGetErrorName(e),
                   cudaGetErrorString(e));
}

extern "C" lt_status lt_ops_cuda_open(int device, int threads_unused, const lt_ops **ops,
                                      lt_error *err) {
    (void)threads_unused;
    *ops = NULL;
    if (g_opens > 0) {
        if (device != g_ctx.device)
            return lt_fail(err, LT_ERR_CONFIG,
                           "device = cuda: this process already drives GPU %d; one GPU per "
                           "process (asked for GPU %d)",
                           g_ctx.device, device);
        g_opens++;
        *ops = &g_ops;
        return LT_OK;
    }
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess)
        return open_fail(err, LT_ERR_CONFIG, "no usable CUDA GPU (cudaGetDeviceCount)", e);
    if (device < 0 || device >= n)
        return lt_fail(err, LT_ERR_CONFIG,
                       "device = cuda: GPU %d asked for, %d visible (CUDA_VISIBLE_DEVICES: %s)",
                       device, n,
                       getenv("CUDA_VISIBLE_DEVICES") ? getenv("CUDA_VISIBLE_DEVICES") : "unset");
    if ((e = cudaSetDevice(device)) != cudaSuccess)
        return open_fail(err, LT_ERR_CONFIG, "cudaSetDevice", e);
    cudaDeviceProp prop;
    memset(&prop, 0, sizeof prop);
    if ((e = cudaGetDeviceProperties(&prop, device)) != cudaSuccess)
        return open_fail(err, LT_ERR_CONFIG, "cudaGetDeviceProperties", e);

    lt_cuda_ctx *c = &g_ctx;
    memset(c, 0, sizeof *c);
    c->device = device;
    try {
        g_blocks = new std::unordered_map<void *, lt_cuda_block>();
    } catch (const std::bad_alloc &) {
        return lt_fail(err, LT_ERR_NOMEM, "device = cuda: cannot allocate the allocation table");
    }
    if ((e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        delete g_blocks;
        g_blocks = NULL;
        return open_fail(err, LT_ERR_CONFIG, "cudaStreamCreate", e);
    }
    cublasStatus_t bs = cublasCreate(&c->blas);
    if (bs == CUBLAS_STATUS_SUCCESS) bs = cublasSetStream(c->blas, c->stream);
    /* fp32 GEMMs in fp32: the default math mode, never TF32 tensor cores
     * (CUBLAS_TF32_TENSOR_OP_MATH), so results compare with the CPU's */
    if (bs == CUBLAS_STATUS_SUCCESS) bs = cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        if (c->blas) cublasDestroy(c->blas);
        cudaStreamDestroy(c->stream);
        delete g_blocks;
        g_blocks = NULL;
        memset(c, 0, sizeof *c);
        return lt_fail(err, LT_ERR_CONFIG,
                       "device = cuda: cuBLAS failed to start on GPU %d (status %d)", device,
                       (int)bs);
    }
    snprintf(g_gpu, sizeof g_gpu, "%.100s (sm_%d%d, %.1f GiB), device %d of %d", prop.name,
             prop.major, prop.minor, (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0),
             device, n);
    fill_table(&g_ops);
    g_opens = 1;
    *ops = &g_ops;
    return LT_OK;
}

extern "C" void lt_ops_cuda_close(const lt_ops *ops) {
    if (ops != &g_ops || g_opens <= 0 || --g_opens > 0) return;
    lt_cuda_ctx *c = &g_ctx;
    cudaStreamSynchronize(c->stream);
    if (c->scratch) {
        cudaFree(c->scratch);
        lt_mem_account(LT_SPACE_DEVICE, LT_MEM_WORKSPACE, -(int64_t)c->scratch_bytes);
    }
    cublasDestroy(c->blas);
    cudaStreamDestroy(c->stream);
    (void)cudaGetLastError();
    delete g_blocks;
    g_blocks = NULL;
    memset(c, 0, sizeof *c);
}

extern "C" void lt_ops_cuda_describe(const lt_ops *ops, char *buf, size_t size) {
    if (!size) return;
    snprintf(buf, size, "%s", ops == &g_ops && g_opens > 0 ? g_gpu : "(not open)");
}

extern "C" const char *lt_ops_cuda_gemm_kernels(const lt_ops *ops) {
    (void)ops;
    return "cuBLAS";
}

extern "C" int lt_ops_cuda_mem_info(const lt_ops *ops, size_t *free_bytes, size_t *total_bytes) {
    (void)ops;
    *free_bytes = *total_bytes = 0;
    if (cudaMemGetInfo(free_bytes, total_bytes) != cudaSuccess) {
        (void)cudaGetLastError();
        return -1;
    }
    return 0;
}
