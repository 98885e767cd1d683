/* Whole-file reads with size bounds, and exact-size reads from an open file,
 * so every loader reports a short or oversized file the same way. */
#ifndef LT_IO_FILEUTIL_H
#define LT_IO_FILEUTIL_H

#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

/* Size of the file at path in bytes. */
lt_status lt_file_size(const char *path, uint64_t *size, lt_error *err);

/* Reads the whole file into a NUL-terminated buffer from malloc (caller
 * frees with free()). Files larger than max_bytes are refused. */
lt_status lt_read_file(const char *path, uint64_t max_bytes, char **data, uint64_t *size,
                       lt_error *err);

/* fread that fails unless exactly n bytes arrive; what names the field. */
lt_status lt_read_exact(FILE *f, void *dst, size_t n, const char *path, const char *what,
                        lt_error *err);

#endif
