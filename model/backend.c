/* The one file that knows which backends this build holds. A backend joins
 * by its name in the choices, a branch in lt_backend_open and one in
 * lt_backend_describe; nothing else in model/ includes model/cpu/ or
 * model/cuda/. */
#include "model/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/cpu/cpu.h"

/* The CUDA backend (model/cuda/cuda.h) is in the build when CMake's
 * LT_CUDA is on, which compiles this file with LT_HAVE_CUDA=1. */
#ifndef LT_HAVE_CUDA
#define LT_HAVE_CUDA 0
#endif
#if LT_HAVE_CUDA
#include "model/cuda/cuda.h"
#define LT_BACKEND_CHOICES "cpu, cuda, auto"
#else
#define LT_BACKEND_CHOICES "cpu, auto"
#endif

#if LT_HAVE_CUDA
/* This process's rank among those of its node, as the launcher tells it
 * (Open MPI's mpirun, Slurm's srun); 0 when launched alone. */
static int local_rank(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (!v || !*v) continue;
        char *end;
        long r = strtol(v, &end, 10);
        if (*end == '\0' && r >= 0 && r < 1 << 20) return (int)r;
    }
    return 0;
}

/* One GPU per rank: the local rank's, modulo the GPUs this process sees
 * (CUDA_VISIBLE_DEVICES, applied by the runtime, picks which those are). */
static lt_status open_cuda(int threads, const lt_ops **ops, lt_error *err) {
    const int n = lt_cuda_device_count();
    /* with none, open names the runtime's reason */
    return lt_ops_cuda_open(n > 0 ? local_rank() % n : 0, threads, ops, err);
}
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
        return open_cuda(threads, ops, err);
#else
        return lt_fail(err, LT_ERR_CONFIG,
                       "device = cuda: this loratrain was built without the CUDA backend; choices: "
                       LT_BACKEND_CHOICES);
#endif
    }
    if (!strcmp(device, "auto")) {
#if LT_HAVE_CUDA
        if (lt_cuda_device_count() > 0) return open_cuda(threads, ops, err);
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

int lt_backend_device_memory(const lt_ops *ops, size_t *free_bytes, size_t *total_bytes) {
    *free_bytes = *total_bytes = 0;
    if (is_cpu(ops)) return 0;
#if LT_HAVE_CUDA
    return lt_ops_cuda_mem_info(ops, free_bytes, total_bytes) == 0 ? 1 : -1;
#else
    return 0;
#endif
}
