/* safetensors: an 8-byte little-endian header length, a JSON header
 * mapping tensor names to dtype, shape and [begin, end) byte offsets into
 * the data that follows, and an optional "__metadata__" string map.
 *
 * The reader memory-maps the file and trusts nothing: header length within
 * the file, valid JSON, known dtypes, shapes whose size times the dtype
 * width equals the byte range, ranges inside the data and not overlapping,
 * unique names. The writer writes to a temporary name, fsyncs and renames,
 * so a crash never leaves a half-written file under the final name. */
#ifndef LT_IO_MODEL_SAFETENSORS_H
#define LT_IO_MODEL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define LT_ST_MAX_DIMS 8
#define LT_ST_NAME_MAX 256

typedef enum {
    LT_ST_F32,
    LT_ST_F16,
    LT_ST_BF16,
    LT_ST_F64,
    LT_ST_I64,
    LT_ST_I32,
    LT_ST_I16,
    LT_ST_I8,
    LT_ST_U8,
    LT_ST_BOOL
} lt_st_dtype;

typedef struct {
    char name[LT_ST_NAME_MAX];
    lt_st_dtype dtype;
    int ndim;
    int64_t shape[LT_ST_MAX_DIMS];
    uint64_t numel;
    uint64_t offset; /* from the start of the data section */
    uint64_t nbytes;
} lt_st_tensor;

typedef struct lt_safetensors lt_safetensors;

lt_status lt_st_open(const char *path, lt_safetensors **out, lt_error *err);
void lt_st_close(lt_safetensors *st);

int lt_st_count(const lt_safetensors *st);
const lt_st_tensor *lt_st_at(const lt_safetensors *st, int i);
const lt_st_tensor *lt_st_find(const lt_safetensors *st, const char *name);
/* A "__metadata__" value, or NULL. */
const char *lt_st_metadata(const lt_safetensors *st, const char *key);

/* Converts a tensor (F32, F16, BF16 or F64) to fp32; count must equal its
 * number of elements. */
lt_status lt_st_read_f32(const lt_safetensors *st, const lt_st_tensor *t, float *dst, size_t count,
                         lt_error *err);

/* Drops the process's resident pages of t's bytes in the mapping, after
 * they have been copied out: a loader that converts one tensor at a time
 * then keeps at most about one tensor of the file resident, not the whole
 * file until lt_st_close. t stays readable (its pages re-fault from the
 * file); a hint, so nothing to report. */
void lt_st_release(const lt_safetensors *st, const lt_st_tensor *t);

typedef struct {
    const char *name;
    const float *data;
    int ndim;
    int64_t shape[LT_ST_MAX_DIMS];
} lt_st_out;

/* Writes fp32 tensors in the order given. meta holds key/value pairs
 * (2 * n_meta strings) for "__metadata__". */
lt_status lt_st_write_f32(const char *path, const lt_st_out *tensors, int n, const char *const *meta,
                          int n_meta, lt_error *err);
/* The same stored as dtype (F32, F16 or BF16; rounded to nearest even,
 * as torch converts). */
lt_status lt_st_write(const char *path, const lt_st_out *tensors, int n, lt_st_dtype dtype,
                      const char *const *meta, int n_meta, lt_error *err);

const char *lt_st_dtype_name(lt_st_dtype d);

#endif
