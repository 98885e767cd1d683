/* Filling a created model's base weights from any tensor source (a
 * llama2.c file read in order, a Hugging Face directory read by name), so
 * every loader skips what a shard does not keep, rejects non-finite
 * values and holds at most one tensor in fp32 the same way. */
#ifndef LT_IO_MODEL_WEIGHT_FILL_H
#define LT_IO_MODEL_WEIGHT_FILL_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "model/config.h"
#include "model/llama.h"
#include "model/params.h"

/* One base tensor of the architecture: its Hugging Face name and shape
 * (rows 1: a vector of cols values). */
typedef struct {
    char name[LT_TENSOR_NAME_MAX];
    int rows, cols;
} lt_base_tensor_spec;

/* Every base tensor of cfg, in llama2.c's file order (each kind stacked
 * over layers; lm_head last, only when the classifier is not tied). *specs
 * is from malloc; *n its length. */
lt_status lt_base_tensor_specs(const lt_model_config *cfg, lt_base_tensor_spec **specs, int *n,
                               lt_error *err);

typedef struct {
    /* Reads tensor t's count values as fp32 into dst; adds the bytes it
     * read from the source to *bytes. */
    lt_status (*read)(void *user, const lt_base_tensor_spec *t, float *dst, size_t count,
                      uint64_t *bytes, lt_error *err);
    /* Passes over tensor t without reading it (NULL: nothing to do). */
    lt_status (*skip)(void *user, const lt_base_tensor_spec *t, lt_error *err);
    void *user;
} lt_tensor_source;

/* Fills m from src, tensor by tensor in lt_base_tensor_specs order.
 * source names the file or directory for messages; *bytes_read (may be
 * NULL) gets the bytes read. */
lt_status lt_model_fill(lt_model *m, const lt_tensor_source *src, const char *source,
                        uint64_t *bytes_read, lt_error *err);

#endif
