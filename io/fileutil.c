#include "io/fileutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

lt_status lt_file_size(const char *path, uint64_t *size, lt_error *err) {
    struct stat st;
    if (stat(path, &st) != 0)
        return lt_fail(err, LT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return lt_fail(err, LT_ERR_IO, "%s: not a regular file", path);
    *size = (uint64_t)st.st_size;
    return LT_OK;
}

lt_status lt_read_file(const char *path, uint64_t max_bytes, char **data, uint64_t *size,
                       lt_error *err) {
    *data = NULL;
    *size = 0;
    uint64_t n = 0;
    lt_status st = lt_file_size(path, &n, err);
    if (st != LT_OK) return st;
    if (n > max_bytes)
        return lt_fail(err, LT_ERR_FORMAT, "%s: file is %llu bytes, expected at most %llu", path,
                       (unsigned long long)n, (unsigned long long)max_bytes);
    FILE *f = fopen(path, "rb");
    if (!f) return lt_fail(err, LT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = malloc((size_t)n + 1);
    if (!buf) {
        fclose(f);
        return lt_fail(err, LT_ERR_NOMEM, "%s: cannot allocate %llu bytes", path,
                       (unsigned long long)n + 1);
    }
    st = lt_read_exact(f, buf, (size_t)n, path, "contents", err);
    fclose(f);
    if (st != LT_OK) {
        free(buf);
        return st;
    }
    buf[n] = '\0';
    *data = buf;
    *size = n;
    return LT_OK;
}

lt_status lt_read_exact(FILE *f, void *dst, size_t n, const char *path, const char *what,
                        lt_error *err) {
    if (n == 0) return LT_OK;
    size_t got = fread(dst, 1, n, f);
    if (got != n) {
        if (ferror(f))
            return lt_fail(err, LT_ERR_IO, "%s: read error in %s: %s", path, what, strerror(errno));
        return lt_fail(err, LT_ERR_FORMAT, "%s: truncated in %s: expected %zu bytes, got %zu",
                       path, what, n, got);
    }
    return LT_OK;
}
