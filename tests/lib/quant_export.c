#include "tests/lib/quant_export.h"

#include <stdio.h>
#include <stdlib.h>

static void add_bytes(tf_archive *a, const char *name, const uint8_t *p, int64_t n) {
    int32_t *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = p[i];
    tf_add(a, name, TF_I32, 1, &n, v);
    free(v);
}

void tf_add_qtensor(tf_archive *a, const char *prefix, const lt_qtensor *t, const uint8_t *blob) {
    char name[160];
    int64_t one = 1;
    int64_t ncodes = t->format == LT_QUANT_INT8 ? t->numel : (t->numel + 1) / 2;
    snprintf(name, sizeof name, "%scodes", prefix);
    add_bytes(a, name, blob + t->codes, ncodes);
    snprintf(name, sizeof name, "%sabsmax", prefix);
    if (!t->double_quant) {
        tf_add(a, name, TF_F32, 1, &t->nblocks, blob + t->absmax);
        return;
    }
    add_bytes(a, name, blob + t->absmax, t->nblocks);
    snprintf(name, sizeof name, "%sabsmax2", prefix);
    tf_add(a, name, TF_F32, 1, &t->nblocks2, blob + t->absmax2);
    snprintf(name, sizeof name, "%soffset", prefix);
    tf_add(a, name, TF_F32, 1, &one, blob + t->offset);
}
