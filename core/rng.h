/* Counter-based random numbers: a value is a pure function of (seed,
 * stream, index), so dropout masks are regenerated in backward instead of
 * stored, come out the same on every backend, and do not depend on thread
 * scheduling. Shared by the CPU and CUDA code (the model's dropout and
 * initialisation) and by the data loader's shuffle. Header only: the
 * kernels inline it on the device. */
#ifndef LT_CORE_RNG_H
#define LT_CORE_RNG_H

#include <stdint.h>

#include "core/hostdev.h"

/* splitmix64's finaliser: a bijective mix with full avalanche. */
LT_HOST_DEVICE static inline uint64_t lt_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Key for one stream of a seed (e.g. one module's dropout at one step). */
LT_HOST_DEVICE static inline uint64_t lt_rng_key(uint64_t seed, uint64_t stream) {
    return lt_mix64(seed ^ lt_mix64(stream + 0x9e3779b97f4a7c15ULL));
}

/* Uniform in [0, 1) with 24 random bits, exactly representable in float. */
LT_HOST_DEVICE static inline float lt_rng_uniform(uint64_t key, uint64_t index) {
    uint64_t z = lt_mix64(key + index * 0x9e3779b97f4a7c15ULL);
    return (float)(z >> 40) * (1.0f / 16777216.0f);
}

/* Sequential generator for host-side initialisation (LoRA A, sampling). */
typedef struct {
    uint64_t key;
    uint64_t counter;
} lt_rng;

static inline void lt_rng_seed(lt_rng *r, uint64_t seed, uint64_t stream) {
    r->key = lt_rng_key(seed, stream);
    r->counter = 0;
}

static inline float lt_rng_next_uniform(lt_rng *r) { return lt_rng_uniform(r->key, r->counter++); }

/* The 64-bit values behind lt_rng_uniform's 24-bit floats: the same
 * (key, counter) stream, at full width so large datasets shuffle without
 * bias. */
static inline uint64_t lt_rng_next_u64(lt_rng *r) {
    return lt_mix64(r->key + r->counter++ * 0x9e3779b97f4a7c15ULL);
}

/* Uniform in [0, bound) by rejection: 2^64 mod bound values are refused so
 * the rest divide evenly. bound > 0. */
static inline uint64_t lt_rng_next_below(lt_rng *r, uint64_t bound) {
    const uint64_t reject = (0 - bound) % bound;
    for (;;) {
        uint64_t z = lt_rng_next_u64(r);
        if (z >= reject) return z % bound;
    }
}

#endif
