/* The tracked allocator: zeroed blocks, accounting per category, and large
 * blocks given back to the OS when freed whatever was freed before them
 * (from glibc's heap, a 3 MiB block freed after a 7 MiB one stayed
 * resident, and the process peak then depended on the order of frees). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "tests/lib/check.h"

static double resident_mib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, rss = 0;
    if (!f) return -1.0;
    int ok = fscanf(f, "%lu %lu", &size, &rss) == 2;
    fclose(f);
    return ok ? (double)rss * (double)sysconf(_SC_PAGESIZE) / (1 << 20) : -1.0;
}

static uint64_t current(lt_mem_category cat) {
    lt_mem_stats s;
    lt_mem_get_stats(&s);
    return s.current[LT_SPACE_HOST][cat];
}

static void check_block(size_t bytes, lt_mem_category cat) {
    const uint64_t before = current(cat);
    unsigned char *p = lt_alloc(cat, bytes);
    CHECK(p != NULL, "lt_alloc(%zu) failed", bytes);
    if (!p) return;
    CHECK(((uintptr_t)p & 63) == 0, "block of %zu bytes not 64-byte aligned", bytes);
    CHECK(lt_alloc_size(p) == bytes, "lt_alloc_size %zu, expected %zu", lt_alloc_size(p), bytes);
    CHECK(current(cat) == before + bytes, "%s grew by %llu, expected %zu", lt_mem_category_name(cat),
          (unsigned long long)(current(cat) - before), bytes);
    size_t nonzero = 0;
    for (size_t i = 0; i < bytes; i += 4093) nonzero += p[i] != 0;
    nonzero += p[bytes - 1] != 0;
    CHECK(nonzero == 0, "block of %zu bytes not zeroed", bytes);
    memset(p, 0xab, bytes);
    lt_free(p);
    CHECK(current(cat) == before, "%s not back to %llu after free", lt_mem_category_name(cat),
          (unsigned long long)before);
}

/* A 7 MiB block freed, then a 3 MiB one: RSS must come back. */
static void check_freed_blocks_return(void) {
    const double r0 = resident_mib();
    void *big = lt_alloc(LT_MEM_OTHER, (size_t)7 << 20);
    lt_free(big);
    void *mid = lt_alloc(LT_MEM_OTHER, (size_t)3 << 20);
    const double r1 = resident_mib();
    lt_free(mid);
    const double r2 = resident_mib();
    printf("resident: %.2f MiB, %.2f with a 3 MiB block after a freed 7 MiB one, %.2f after\n", r0,
           r1, r2);
    CHECK(r0 > 0 && r1 - r0 >= 2.9, "the 3 MiB block is not resident (%.2f -> %.2f MiB)", r0, r1);
    CHECK(r2 - r0 < 0.5, "freed large blocks still resident: %.2f -> %.2f MiB", r0, r2);
}

int main(void) {
    check_block(1000, LT_MEM_OTHER);
    check_block((size_t)1 << 20, LT_MEM_ACTIVATIONS);
    CHECK(lt_alloc_map_min() == 0 || lt_alloc_map_min() == ((size_t)1 << 20),
          "mapping size %zu", lt_alloc_map_min());
    check_block(((size_t)1 << 20) - 64, LT_MEM_WORKSPACE); /* header + block = 1 MiB */
    check_block((size_t)5 << 20, LT_MEM_GRADS);
    CHECK(lt_alloc(LT_MEM_OTHER, 0) == NULL, "a zero-byte block was allocated");
    /* The sanitizer's heap keeps freed blocks in quarantine. */
    if (lt_alloc_map_min()) check_freed_blocks_return();
    return check_exit_code();
}
