/* The one file that knows which backends this build holds. A backend joins
 * by its name in the choices, a branch in lt_backend_open and one in
 * lt_backend_describe; nothing else in model/ includes model/cpu/ or
 * model/cuda/. */
#include "model/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/cpu/cpu.h"

/* ---- the CUDA backend plugs in here ----------------------------------
 * LT_HAVE_CUDA is 1 only in a build that compiles model/cuda/ into
 * lt_backends (CMakeLists.txt will define it then; none does yet, so it is
 * 0 and the branches below are not compiled). model/cuda/cuda.h is to
 * declare:
 *   int lt_cuda_device_count(void);
 *       GPUs this process can use; 0 without a driver or a GPU
 *   lt_status lt_ops_cuda_open(int threads, const lt_ops **ops, lt_error *err);
 *       LT_ERR_CONFIG naming why (no driver, no GPU) when it cannot
 *   void lt_ops_cuda_describe(const lt_ops *ops, char *buf, size_t size);
 *       the GPU and the libraries, e.g. "NVIDIA H100 (sm_90), cuBLAS 12.4"
 *   const char *lt_ops_cuda_gemm_kernels(const lt_ops *ops);
 * -------------------------------------------------------------------- */
#ifndef LT_HAVE_CUDA
#define LT_HAVE_CUDA 0
#endif
#if LT_HAVE_CUDA
#include "model/cuda/cuda.h"
#define LT_BACKEND_CHOICES "cpu, cuda, auto"
#else
#define LT_BACKEND_CHOICES "cpu, auto"
#endif

/* The CPU table is one static table; lt_ops_cpu(0) returns it and leaves
 * the thread count alone. */
static int is_cpu(const lt_ops *ops) { return ops == lt_ops_cpu(0); }

lt_status lt_backend_open(const char *device, int threads, const lt_ops **ops, lt_error *err) {
    *ops = NULL;
    if (!device) device = "auto";
    if (!strcmp(device, "cpu")) {
        *ops = lt_ops_cpu(threads);
        return LT_OK;
    }
    if (!strcmp(device, "cuda")) {
#if LT_HAVE_CUDA
        return lt_ops_cuda_open(threads, ops, err);
#else
        return lt_fail(err, LT_ERR_CONFIG,
                       "device = cuda: this loratrain was built without the CUDA backend; choices: "
                       LT_BACKEND_CHOICES);
#endif
    }
    if (!strcmp(device, "auto")) {
#if LT_HAVE_CUDA
        if (lt_cuda_device_count() > 0) return lt_ops_cuda_open(threads, ops, err);
#endif
        *ops = lt_ops_cpu(threads);
        return LT_OK;
    }
    return lt_fail(err, LT_ERR_CONFIG, "device = \"%s\": expected cpu, cuda or auto (this build: "
                   LT_BACKEND_CHOICES ")", device);
}

void lt_backend_describe(const char *device, const lt_ops *ops, char *buf, size_t size) {
    if (!size) return;
    if (!device) device = "auto";
    char lead[48] = "";
    if (strcmp(device, ops->name) != 0) snprintf(lead, sizeof lead, "%.32s -> ", device);
    if (is_cpu(ops)) {
        /* OpenBLAS picks its kernels from the CPU at load time and falls
         * back to older ones on CPUs it does not know, so say which it took. */
        const char *coretype = getenv("OPENBLAS_CORETYPE");
        snprintf(buf, size, "%scpu backend, OpenBLAS %s kernels (OPENBLAS_CORETYPE %s)", lead,
                 lt_ops_cpu_blas_core(), coretype && *coretype ? coretype : "unset");
        return;
    }
#if LT_HAVE_CUDA
    char what[200];
    lt_ops_cuda_describe(ops, what, sizeof what);
    snprintf(buf, size, "%s%s backend, %s", lead, ops->name, what);
#else
    snprintf(buf, size, "%s%s backend", lead, ops->name);
#endif
}

const char *lt_backend_gemm_kernels(const lt_ops *ops) {
    if (is_cpu(ops)) return lt_ops_cpu_blas_core();
#if LT_HAVE_CUDA
    return lt_ops_cuda_gemm_kernels(ops);
#else
    return "?";
#endif
}
