/* Hashes of bytes: XXH3-64 from xxHash (Debian's libxxhash), for the
 * checkpoint manifest, a base model's fingerprint and the replica check's
 * fingerprint of parameters. Any changed byte changes it with probability
 * 1 - 2^-64; it is not meant to resist deliberate collisions (a checkpoint
 * is protected against damage and accidental edits, not forgery).
 * XXH3 reads at memory speed (tens of GB/s), so verifying what is read
 * costs nothing next to reading it. */
#ifndef LT_CORE_HASH_H
#define LT_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

/* XXH3-64 of n bytes; seeded: the same with a seed, to chain parts. */
uint64_t lt_hash64(const void *data, size_t n);
uint64_t lt_hash64_seeded(uint64_t seed, const void *data, size_t n);

/* Streaming: the digest of everything updated equals lt_hash64 of the
 * concatenation. */
typedef struct lt_hasher lt_hasher;
lt_hasher *lt_hasher_new(void); /* NULL: out of memory */
void lt_hasher_update(lt_hasher *h, const void *data, size_t n);
uint64_t lt_hasher_digest(const lt_hasher *h);
void lt_hasher_free(lt_hasher *h); /* NULL is a no-op */

#endif
