/* libFuzzer target: the safetensors reader on arbitrary bytes. Every input
 * must open cleanly or fail with a message: never crash, never read past
 * the mapping (ASan watches), never hang. Inputs reach it as a file,
 * because the reader memory-maps a path as it does for real models. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "io/model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/lt_fuzz_st.%ld", (long)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    if (size && fwrite(data, 1, size, f) != size) {
        fclose(f);
        return 0;
    }
    fclose(f);
    lt_safetensors *st = NULL;
    lt_error err;
    if (lt_st_open(path, &st, &err) == LT_OK) {
        /* What the loaders do next: look every tensor up and convert it. */
        for (int i = 0; i < lt_st_count(st); i++) {
            const lt_st_tensor *t = lt_st_at(st, i);
            if (lt_st_find(st, t->name) != t) abort(); /* names are unique */
            if (t->numel > (1u << 20)) continue;
            float *dst = malloc((t->numel ? t->numel : 1) * sizeof *dst);
            if (dst) lt_st_read_f32(st, t, dst, (size_t)t->numel, &err);
            free(dst);
        }
        lt_st_metadata(st, "format");
        lt_st_close(st);
    }
    unlink(path);
    return 0;
}
