/* A tiny named-tensor archive used to exchange inputs and reference outputs
 * between the C tests and the Python (PyTorch) reference scripts.
 *
 * Layout (little-endian): "LTT1", uint32 count, then per tensor:
 *   uint32 name_len, name bytes (no NUL), uint32 dtype (0 f32, 1 i32, 2 f64),
 *   uint32 ndim, int64 dims[ndim], data (product(dims) elements).
 * tests/lib/tensorfile.py reads and writes the same format. */
#ifndef LT_TESTS_TENSORFILE_H
#define LT_TESTS_TENSORFILE_H

#include <stdint.h>
#include <stdio.h>

typedef enum { TF_F32 = 0, TF_I32 = 1, TF_F64 = 2 } tf_dtype;

typedef struct {
    char name[128];
    tf_dtype dtype;
    int ndim;
    int64_t dims[8];
    int64_t numel;
    void *data;
} tf_tensor;

typedef struct {
    tf_tensor *t;
    int n, cap;
} tf_archive;

void tf_init(tf_archive *a);
void tf_free(tf_archive *a);
/* Copies data. */
void tf_add(tf_archive *a, const char *name, tf_dtype dtype, int ndim, const int64_t *dims,
            const void *data);
int tf_write(const tf_archive *a, const char *path);
int tf_read(tf_archive *a, const char *path);
const tf_tensor *tf_get(const tf_archive *a, const char *name);

#endif
