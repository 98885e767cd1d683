/* Token files: a corpus tokenised once, so large corpora are not re-encoded
 * on every run.
 *
 * Layout (all little-endian):
 *     offset  0  magic "LTTK"            4 bytes
 *     offset  4  version (1)             uint32
 *     offset  8  dtype: the byte width   uint32 (2: uint16 ids, 4: uint32 ids)
 *     offset 12  vocab_size it was made for   uint32
 *     offset 16  token count             uint64
 *     offset 24  the tokens              count * width bytes, nothing after
 */
#ifndef LT_IO_DATA_TOKEN_FILE_H
#define LT_IO_DATA_TOKEN_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define LT_TOKEN_FILE_MAGIC "LTTK"
#define LT_TOKEN_FILE_VERSION 1u
#define LT_TOKEN_FILE_HEADER_BYTES 24u

/* Writes n ids (each in [0, vocab_size)) as uint16 when vocab_size <= 65536,
 * else uint32. The file appears under path only once complete (temporary
 * name, fsync, rename). An id out of range is LT_ERR_INVALID naming its
 * position, and nothing is written. */
lt_status lt_token_file_write(const char *path, const int32_t *ids, size_t n, int vocab_size,
                              lt_error *err);

/* Reads a token file for a model with vocab_size entries. The header's
 * vocab_size may be smaller (a file made for a prefix of the vocabulary) but
 * not larger; the size must be exactly header + count * width; every id must
 * be below the header's vocab_size. *ids is from lt_alloc (LT_MEM_OTHER;
 * NULL when *n is 0), freed with lt_free. */
lt_status lt_token_file_read(const char *path, int vocab_size, int32_t **ids, size_t *n,
                             lt_error *err);

/* 1 when the file at path starts with the token-file magic (0 when it does
 * not, or cannot be read: the caller's own open reports that). */
int lt_token_file_is(const char *path);

#endif
