#include "tests/lib/tensorfile.h"

#include <stdlib.h>
#include <string.h>

static size_t dtype_size(tf_dtype d) { return d == TF_F64 ? 8 : 4; }

void tf_init(tf_archive *a) { memset(a, 0, sizeof *a); }

void tf_free(tf_archive *a) {
    for (int i = 0; i < a->n; i++) free(a->t[i].data);
    free(a->t);
    memset(a, 0, sizeof *a);
}

void tf_add(tf_archive *a, const char *name, tf_dtype dtype, int ndim, const int64_t *dims,
            const void *data) {
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 16;
        a->t = realloc(a->t, (size_t)a->cap * sizeof *a->t);
        if (!a->t) abort();
    }
    tf_tensor *t = &a->t[a->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dtype;
    t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) {
        t->dims[i] = dims[i];
        t->numel *= dims[i];
    }
    size_t bytes = (size_t)t->numel * dtype_size(dtype);
    t->data = malloc(bytes ? bytes : 1);
    if (!t->data) abort();
    memcpy(t->data, data, bytes);
}

int tf_write(const tf_archive *a, const char *path) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    uint32_t count = (uint32_t)a->n;
    fwrite("LTT1", 1, 4, f);
    fwrite(&count, 4, 1, f);
    for (int i = 0; i < a->n; i++) {
        const tf_tensor *t = &a->t[i];
        uint32_t nl = (uint32_t)strlen(t->name), dt = (uint32_t)t->dtype, nd = (uint32_t)t->ndim;
        fwrite(&nl, 4, 1, f);
        fwrite(t->name, 1, nl, f);
        fwrite(&dt, 4, 1, f);
        fwrite(&nd, 4, 1, f);
        fwrite(t->dims, 8, (size_t)nd, f);
        fwrite(t->data, dtype_size(t->dtype), (size_t)t->numel, f);
    }
    return fclose(f) == 0 ? 0 : -1;
}

int tf_read(tf_archive *a, const char *path) {
    tf_init(a);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char magic[4];
    uint32_t count;
    if (fread(magic, 1, 4, f) != 4 || memcmp(magic, "LTT1", 4) != 0 || fread(&count, 4, 1, f) != 1)
        goto bad;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t nl, dt, nd;
        char name[128];
        int64_t dims[8];
        if (fread(&nl, 4, 1, f) != 1 || nl >= sizeof name || fread(name, 1, nl, f) != nl) goto bad;
        name[nl] = '\0';
        if (fread(&dt, 4, 1, f) != 1 || dt > 2 || fread(&nd, 4, 1, f) != 1 || nd > 8) goto bad;
        if (fread(dims, 8, nd, f) != nd) goto bad;
        int64_t numel = 1;
        for (uint32_t d = 0; d < nd; d++) {
            if (dims[d] < 0 || dims[d] > (1LL << 32)) goto bad;
            numel *= dims[d];
        }
        size_t bytes = (size_t)numel * dtype_size((tf_dtype)dt);
        void *buf = malloc(bytes ? bytes : 1);
        if (!buf) goto bad;
        if (fread(buf, 1, bytes, f) != bytes) {
            free(buf);
            goto bad;
        }
        tf_add(a, name, (tf_dtype)dt, (int)nd, dims, buf);
        free(buf);
    }
    fclose(f);
    return 0;
bad:
    fclose(f);
    tf_free(a);
    return -1;
}

const tf_tensor *tf_get(const tf_archive *a, const char *name) {
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->t[i].name, name) == 0) return &a->t[i];
    return NULL;
}
