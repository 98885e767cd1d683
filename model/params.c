#include "model/params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lt_table_init(lt_param_table *tab) { memset(tab, 0, sizeof *tab); }

void lt_table_free(lt_param_table *tab) {
    free(tab->t);
    memset(tab, 0, sizeof *tab);
}

lt_status lt_table_add(lt_param_table *tab, const char *name, int layer, int rows, int cols,
                       lt_error *err) {
    if (rows <= 0 || cols <= 0)
        return lt_fail(err, LT_ERR_INVALID, "tensor %s: shape [%d, %d] must be positive", name,
                       rows, cols);
    if (strlen(name) >= LT_TENSOR_NAME_MAX)
        return lt_fail(err, LT_ERR_INVALID, "tensor name %s longer than %d characters", name,
                       LT_TENSOR_NAME_MAX - 1);
    if (tab->count == tab->cap) {
        int cap = tab->cap ? tab->cap * 2 : 64;
        lt_tensor_desc *t = realloc(tab->t, (size_t)cap * sizeof *t);
        if (!t) return lt_fail(err, LT_ERR_NOMEM, "parameter table: cannot grow to %d entries", cap);
        tab->t = t;
        tab->cap = cap;
    }
    lt_tensor_desc *d = &tab->t[tab->count++];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    d->offset = tab->numel;
    d->rows = rows;
    d->cols = cols;
    d->layer = layer;
    tab->numel += (size_t)rows * (size_t)cols;
    return LT_OK;
}

const lt_tensor_desc *lt_table_find(const lt_param_table *tab, const char *name) {
    for (int i = 0; i < tab->count; i++)
        if (strcmp(tab->t[i].name, name) == 0) return &tab->t[i];
    return NULL;
}

int lt_table_layer_range(const lt_param_table *tab, int layer, size_t *begin, size_t *end) {
    int found = 0;
    for (int i = 0; i < tab->count; i++) {
        const lt_tensor_desc *d = &tab->t[i];
        if (d->layer != layer) continue;
        size_t b = d->offset, e = d->offset + lt_tensor_numel(d);
        if (!found || b < *begin) *begin = b;
        if (!found || e > *end) *end = e;
        found = 1;
    }
    return found;
}
