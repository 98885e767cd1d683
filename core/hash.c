#include "core/hash.h"

#include <xxhash.h>

uint64_t lt_hash64(const void *data, size_t n) { return XXH3_64bits(data, n); }

uint64_t lt_hash64_seeded(uint64_t seed, const void *data, size_t n) {
    return XXH3_64bits_withSeed(data, n, seed);
}

/* An lt_hasher * is an XXH3_state_t *: callers never see xxhash.h. */
lt_hasher *lt_hasher_new(void) {
    XXH3_state_t *s = XXH3_createState();
    if (!s || XXH3_64bits_reset(s) != XXH_OK) {
        XXH3_freeState(s);
        return NULL;
    }
    return (lt_hasher *)s;
}

void lt_hasher_update(lt_hasher *h, const void *data, size_t n) {
    if (n) XXH3_64bits_update((XXH3_state_t *)h, data, n);
}

uint64_t lt_hasher_digest(const lt_hasher *h) { return XXH3_64bits_digest((const XXH3_state_t *)h); }

void lt_hasher_free(lt_hasher *h) { XXH3_freeState((XXH3_state_t *)h); }
