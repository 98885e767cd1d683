/* The backend a model test computes on, and host copies of its buffers.
 *
 * LT_TEST_DEVICE names the backend (cpu when unset; cuda runs the test on
 * the CUDA backend: a GPU in the gpu-labelled tests, the emulated CUDA in
 * the tests linked with lt_backends_emu). A test that reads or writes a
 * model's parameters or gradients goes through these copies, since on a
 * GPU those buffers are device memory. */
#ifndef LT_TESTS_LIB_BACKEND_ENV_H
#define LT_TESTS_LIB_BACKEND_ENV_H

#include <stddef.h>

#include "model/ops.h"

/* The backend, with `threads` CPU threads; NULL after printing one line
 * when it cannot be opened (the caller fails the test). Exits 77 (a skip)
 * when LT_TEST_DEVICE is cuda and this machine has no GPU, and
 * LT_TEST_SKIP_NO_GPU is set. */
const lt_ops *test_backend(int threads);

/* n floats of ops' memory copied into a new host buffer (free it). */
float *test_download(const lt_ops *ops, const float *src, size_t n);
/* n floats of host memory into ops' memory. */
void test_upload(const lt_ops *ops, float *dst, const float *host, size_t n);

#endif
