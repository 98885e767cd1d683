#include "tests/lib/backend_env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/backend.h"

const lt_ops *test_backend(int threads) {
    const char *device = getenv("LT_TEST_DEVICE");
    if (!device || !*device) device = "cpu";
    const lt_ops *ops = NULL;
    lt_error err = {0};
    if (lt_backend_open(device, threads, &ops, &err) != LT_OK) {
        if (getenv("LT_TEST_SKIP_NO_GPU") && strcmp(device, "cpu") != 0) {
            printf("skip: LT_TEST_DEVICE=%s: %s\n", device, err.msg);
            exit(77);
        }
        fprintf(stderr, "FAIL LT_TEST_DEVICE=%s: %s\n", device, err.msg);
        return NULL;
    }
    char desc[256];
    lt_backend_describe(device, ops, desc, sizeof desc);
    printf("backend: %s\n", desc);
    return ops;
}

float *test_download(const lt_ops *ops, const float *src, size_t n) {
    float *h = malloc((n ? n : 1) * sizeof *h);
    if (h && n) ops->download(ops, h, src, n * sizeof *h);
    return h;
}

void test_upload(const lt_ops *ops, float *dst, const float *host, size_t n) {
    if (n) ops->upload(ops, dst, host, n * sizeof *host);
}
