#include "io/data/token_file.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "io/fileutil.h"

/* Ids are converted through a small buffer so the byte order on disk does
 * not depend on the host's. */
#define TF_CHUNK_BYTES 65536u

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p) {
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

lt_status lt_token_file_write(const char *path, const int32_t *ids, size_t n, int vocab_size,
                              lt_error *err) {
    if (!path || (n > 0 && !ids))
        return lt_fail(err, LT_ERR_INVALID, "token file write: NULL path or ids");
    if (vocab_size <= 0)
        return lt_fail(err, LT_ERR_INVALID, "%s: vocab_size %d, expected a positive size", path,
                       vocab_size);
    /* Checked before anything is created, so a bad id leaves no file behind. */
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab_size)
            return lt_fail(err, LT_ERR_INVALID,
                           "%s: token %zu is %d, expected 0 <= id < vocab_size %d", path, i,
                           (int)ids[i], vocab_size);
    const uint32_t width = vocab_size <= 65536 ? 2u : 4u;

    uint8_t hdr[LT_TOKEN_FILE_HEADER_BYTES];
    memcpy(hdr, LT_TOKEN_FILE_MAGIC, 4);
    put_u32(hdr + 4, LT_TOKEN_FILE_VERSION);
    put_u32(hdr + 8, width);
    put_u32(hdr + 12, (uint32_t)vocab_size);
    put_u64(hdr + 16, (uint64_t)n);

    lt_atomic_file af;
    lt_status st = lt_atomic_open(&af, path, err);
    if (st != LT_OK) return st;
    st = lt_atomic_write(&af, hdr, sizeof hdr, err);
    uint8_t buf[TF_CHUNK_BYTES];
    const size_t per = TF_CHUNK_BYTES / width;
    for (size_t i = 0; st == LT_OK && i < n; i += per) {
        size_t m = n - i < per ? n - i : per;
        for (size_t k = 0; k < m; k++) {
            uint32_t v = (uint32_t)ids[i + k];
            if (width == 2) {
                buf[2 * k] = (uint8_t)v;
                buf[2 * k + 1] = (uint8_t)(v >> 8);
            } else {
                put_u32(buf + 4 * k, v);
            }
        }
        st = lt_atomic_write(&af, buf, m * width, err);
    }
    if (st != LT_OK) {
        lt_atomic_abort(&af);
        return st;
    }
    return lt_atomic_commit(&af, err);
}

int lt_token_file_is(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char magic[4];
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    return got == 4 && memcmp(magic, LT_TOKEN_FILE_MAGIC, 4) == 0;
}

lt_status lt_token_file_read(const char *path, int vocab_size, int32_t **ids, size_t *n,
                             lt_error *err) {
    if (!path || !ids || !n)
        return lt_fail(err, LT_ERR_INVALID, "token file read: NULL path, ids or n");
    *ids = NULL;
    *n = 0;
    if (vocab_size <= 0)
        return lt_fail(err, LT_ERR_INVALID, "%s: model vocab_size %d, expected a positive size",
                       path, vocab_size);
    uint64_t size = 0;
    lt_status st = lt_file_size(path, &size, err);
    if (st != LT_OK) return st;
    if (size < LT_TOKEN_FILE_HEADER_BYTES)
        return lt_fail(err, LT_ERR_FORMAT,
                       "%s: file is %llu bytes, expected at least the %u-byte token file header",
                       path, (unsigned long long)size, LT_TOKEN_FILE_HEADER_BYTES);
    FILE *f = fopen(path, "rb");
    if (!f) return lt_fail(err, LT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t hdr[LT_TOKEN_FILE_HEADER_BYTES];
    st = lt_read_exact(f, hdr, sizeof hdr, path, "header", err);
    if (st != LT_OK) goto fail;

    if (memcmp(hdr, LT_TOKEN_FILE_MAGIC, 4) != 0) {
        st = lt_fail(err, LT_ERR_FORMAT,
                     "%s: byte 0: magic is %02x %02x %02x %02x, expected \"LTTK\" (a token file)",
                     path, hdr[0], hdr[1], hdr[2], hdr[3]);
        goto fail;
    }
    const uint32_t version = get_u32(hdr + 4), width = get_u32(hdr + 8);
    const uint32_t file_vocab = get_u32(hdr + 12);
    const uint64_t count = get_u64(hdr + 16);
    if (version != LT_TOKEN_FILE_VERSION) {
        st = lt_fail(err, LT_ERR_FORMAT, "%s: byte 4: version is %u, expected %u", path, version,
                     LT_TOKEN_FILE_VERSION);
        goto fail;
    }
    if (width != 2 && width != 4) {
        st = lt_fail(err, LT_ERR_FORMAT,
                     "%s: byte 8: dtype is %u, expected 2 (uint16) or 4 (uint32)", path, width);
        goto fail;
    }
    if (file_vocab == 0 || file_vocab > (uint32_t)vocab_size) {
        st = lt_fail(err, LT_ERR_FORMAT,
                     "%s: byte 12: vocab_size is %u, expected 1..%d (the model's vocab_size)", path,
                     file_vocab, vocab_size);
        goto fail;
    }
    if (width == 2 && file_vocab > 65536u) {
        st = lt_fail(err, LT_ERR_FORMAT,
                     "%s: byte 8: dtype 2 (uint16) cannot hold ids of a %u-token vocabulary, "
                     "expected 4",
                     path, file_vocab);
        goto fail;
    }
    const uint64_t body = size - LT_TOKEN_FILE_HEADER_BYTES;
    if (count > body / width || count * width != body) {
        st = lt_fail(err, LT_ERR_FORMAT,
                     "%s: byte 16: token count is %llu, so the file should be %u + %llu * %u "
                     "bytes, but it is %llu bytes",
                     path, (unsigned long long)count, LT_TOKEN_FILE_HEADER_BYTES,
                     (unsigned long long)count, width, (unsigned long long)size);
        goto fail;
    }
    if (count > SIZE_MAX / sizeof(int32_t)) {
        st = lt_fail(err, LT_ERR_NOMEM, "%s: %llu tokens do not fit in memory", path,
                     (unsigned long long)count);
        goto fail;
    }
    if (count == 0) {
        fclose(f);
        return LT_OK;
    }
    int32_t *out = lt_alloc(LT_MEM_OTHER, (size_t)count * sizeof *out);
    if (!out) {
        st = lt_fail(err, LT_ERR_NOMEM, "%s: cannot allocate %llu tokens", path,
                     (unsigned long long)count);
        goto fail;
    }
    uint8_t buf[TF_CHUNK_BYTES];
    const size_t per = TF_CHUNK_BYTES / width;
    for (size_t i = 0; i < (size_t)count; i += per) {
        size_t m = (size_t)count - i < per ? (size_t)count - i : per;
        st = lt_read_exact(f, buf, m * width, path, "tokens", err);
        if (st != LT_OK) {
            lt_free(out);
            goto fail;
        }
        for (size_t k = 0; k < m; k++) {
            uint32_t v = width == 2 ? (uint32_t)buf[2 * k] | (uint32_t)buf[2 * k + 1] << 8
                                    : get_u32(buf + 4 * k);
            if (v >= file_vocab) {
                st = lt_fail(err, LT_ERR_FORMAT,
                             "%s: token %zu (byte %llu) is %u, expected < vocab_size %u", path,
                             i + k,
                             (unsigned long long)LT_TOKEN_FILE_HEADER_BYTES +
                                 (unsigned long long)(i + k) * width,
                             v, file_vocab);
                lt_free(out);
                goto fail;
            }
            out[i + k] = (int32_t)v;
        }
    }
    fclose(f);
    *ids = out;
    *n = (size_t)count;
    return LT_OK;
fail:
    fclose(f);
    return st;
}
