/* Picks the backend that runs the ops interface (model/ops.h), by the name
 * the user gives as the `device` key or a command's --device option:
 *
 *   cpu    OpenBLAS + OpenMP (model/cpu/), always built
 *   cuda   cuBLAS + kernels (model/cuda/), in builds with the CUDA backend
 *   auto   cuda when it is built and a GPU is present, else cpu
 *
 * Every command and benchmark opens its backend here; this is the only
 * place that knows which backends exist (the model's own code sees an
 * lt_ops table only). */
#ifndef LT_MODEL_BACKEND_H
#define LT_MODEL_BACKEND_H

#include <stddef.h>

#include "core/status.h"
#include "model/ops.h"

/* The backend `device` names, with `threads` CPU threads (0: the runtime's
 * default; the count is process-wide). An unknown name, or one this build
 * lacks, fails with LT_ERR_CONFIG and one line naming the choices. */
lt_status lt_backend_open(const char *device, int threads, const lt_ops **ops, lt_error *err);

/* One line on what ops computes with, for logs: "cpu backend, OpenBLAS
 * SkylakeX kernels (OPENBLAS_CORETYPE unset)", led by "auto -> " when
 * `device` was auto (what the user asked for, then what it became). */
void lt_backend_describe(const char *device, const lt_ops *ops, char *buf, size_t size);

/* The kernel family ops' GEMMs run (OpenBLAS's core name on the CPU
 * backend), for benchmark reports; "?" for a table this file did not
 * open. */
const char *lt_backend_gemm_kernels(const lt_ops *ops);

/* The device memory of a GPU backend as its runtime reports it
 * (cudaMemGetInfo): 1 with free and total filled; 0 for the CPU backend,
 * whose memory the process's own figures (VmHWM) measure; -1 when the
 * query fails. */
int lt_backend_device_memory(const lt_ops *ops, size_t *free_bytes, size_t *total_bytes);

#endif
