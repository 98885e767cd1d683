/* FNV-1a 64: the checksum of checkpoint tensors and the replica check's
 * fingerprint of parameters. Any changed byte changes it; it is not meant
 * to resist deliberate collisions. Chain calls by passing the last result
 * as h (start with LT_FNV1A64_BASIS). */
#ifndef LT_CORE_HASH_H
#define LT_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define LT_FNV1A64_BASIS 0xcbf29ce484222325ULL

uint64_t lt_fnv1a64(uint64_t h, const void *data, size_t n);

#endif
