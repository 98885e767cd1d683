/* Named-offset tables over flat parameter buffers.
 *
 * Parameters, gradients and optimizer moments each live in one contiguous
 * buffer; a table gives every tensor's name, shape, layer and offset (in
 * elements), so one all-reduce, one optimizer loop and one checkpoint
 * dataset cover all of them, and a layer's tensors form one bucket. */
#ifndef LT_MODEL_PARAMS_H
#define LT_MODEL_PARAMS_H

#include <stddef.h>

#include "core/status.h"

#define LT_TENSOR_NAME_MAX 96

typedef struct {
    char name[LT_TENSOR_NAME_MAX];
    size_t offset; /* elements from the buffer start */
    int rows;      /* 1-D tensors have rows == 1 */
    int cols;
    int layer;     /* -1 for tensors outside the decoder layers */
} lt_tensor_desc;

typedef struct {
    lt_tensor_desc *t;
    int count;
    int cap;
    size_t numel; /* total elements; tensors are packed without gaps */
} lt_param_table;

static inline size_t lt_tensor_numel(const lt_tensor_desc *d) {
    return (size_t)d->rows * (size_t)d->cols;
}

void lt_table_init(lt_param_table *tab);
void lt_table_free(lt_param_table *tab);
/* Appends a tensor at the current end of the buffer. */
lt_status lt_table_add(lt_param_table *tab, const char *name, int layer, int rows, int cols,
                       lt_error *err);
const lt_tensor_desc *lt_table_find(const lt_param_table *tab, const char *name);
/* Element range [begin, end) holding all tensors of one layer; layers must
 * have been added contiguously. Returns 0 if the layer has no tensors. */
int lt_table_layer_range(const lt_param_table *tab, int layer, size_t *begin, size_t *end);

#endif
