/* The CPU backend of the ops interface (model/ops.h): OpenBLAS GEMMs and
 * OpenMP kernels, vectors as wide as the build target's. Commands reach it
 * through lt_backend_open (model/backend.h); the C unit tests that test the
 * kernels themselves call it directly. */
#ifndef LT_MODEL_CPU_CPU_H
#define LT_MODEL_CPU_CPU_H

#include "model/ops.h"

/* The CPU ops table, on `threads` threads (0: leave the runtime's default).
 * The thread count is process-wide: OpenMP's and OpenBLAS's one pool. */
const lt_ops *lt_ops_cpu(int threads);

/* The OpenBLAS kernel family in use (e.g. "SkylakeX"), for reports. */
const char *lt_ops_cpu_blas_core(void);

#endif
