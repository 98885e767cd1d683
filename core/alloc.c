/* MAP_ANONYMOUS is not POSIX; _POSIX_C_SOURCE hides it without this. */
#define _DEFAULT_SOURCE
#include "core/alloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* A header in front of each block records its size and category so lt_free
 * can un-account it; 64 bytes keeps the user pointer cache-line aligned. */
typedef struct {
    uint64_t bytes;
    uint32_t category;
    uint32_t magic;
    uint64_t mapped; /* bytes mapped with mmap, or 0 from the heap */
    unsigned char pad[40];
} block_header;

_Static_assert(sizeof(block_header) == 64, "header must preserve 64-byte alignment");

#define LT_ALLOC_MAGIC 0x4c54414cu /* "LTAL" */

/* Blocks from 1 MiB up are mapped and unmapped directly. From the heap,
 * glibc raises its mmap threshold to the size of each mapped block freed
 * (the tokenizer's 7 MiB buffer, once), after which blocks below it come
 * from the brk heap, whose free space is reused or not by the order of
 * earlier frees: the process peak then moved by 3 MiB between builds that
 * allocate exactly the same blocks. Sanitizer builds keep the heap, whose
 * red zones catch overruns of these blocks too. */
#if defined(__SANITIZE_ADDRESS__)
#define LT_ALLOC_MAPS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LT_ALLOC_MAPS 0
#endif
#endif
#ifndef LT_ALLOC_MAPS
#define LT_ALLOC_MAPS 1
#endif
#define LT_ALLOC_MAP_MIN ((size_t)1 << 20)

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static lt_mem_stats g_stats;

void lt_mem_account(lt_mem_space space, lt_mem_category cat, int64_t delta) {
    if ((unsigned)space >= LT_SPACE_COUNT || (unsigned)cat >= LT_MEM_NCATEGORIES) return;
    pthread_mutex_lock(&g_lock);
    uint64_t *cur = &g_stats.current[space][cat];
    if (delta < 0 && (uint64_t)(-delta) > *cur) delta = -(int64_t)*cur;
    *cur += (uint64_t)delta;
    g_stats.total_current[space] += (uint64_t)delta;
    if (*cur > g_stats.peak[space][cat]) g_stats.peak[space][cat] = *cur;
    if (g_stats.total_current[space] > g_stats.total_peak[space])
        g_stats.total_peak[space] = g_stats.total_current[space];
    pthread_mutex_unlock(&g_lock);
}

void *lt_alloc(lt_mem_category cat, size_t bytes) {
    if (bytes == 0 || (unsigned)cat >= LT_MEM_NCATEGORIES) return NULL;
    if (bytes > SIZE_MAX - sizeof(block_header)) return NULL;
    void *raw = NULL;
    const size_t total = sizeof(block_header) + bytes;
    size_t mapped = 0;
    if (LT_ALLOC_MAPS && total >= LT_ALLOC_MAP_MIN) {
        raw = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (raw == MAP_FAILED) return NULL;
        mapped = total;
    } else if (posix_memalign(&raw, 64, total) != 0) {
        return NULL;
    }
    /* calloc semantics: callers rely on zeroed gradients and activations.
     * Mapped pages are zero already; writing them anyway makes the block
     * resident now, so the process peak follows what is tracked. */
    memset(raw, 0, total);
    block_header *h = raw;
    h->bytes = bytes;
    h->mapped = mapped;
    h->category = (uint32_t)cat;
    h->magic = LT_ALLOC_MAGIC;
    lt_mem_account(LT_SPACE_HOST, cat, (int64_t)bytes);
    return (unsigned char *)raw + sizeof(block_header);
}

static block_header *header_of(const void *p) {
    return (block_header *)((unsigned char *)(uintptr_t)p - sizeof(block_header));
}

size_t lt_alloc_map_min(void) { return LT_ALLOC_MAPS ? LT_ALLOC_MAP_MIN : 0; }

size_t lt_alloc_size(const void *p) {
    return p ? (size_t)header_of(p)->bytes : 0;
}

void lt_free(void *p) {
    if (!p) return;
    block_header *h = header_of(p);
    if (h->magic != LT_ALLOC_MAGIC) abort(); /* freeing a pointer we did not allocate */
    h->magic = 0;
    lt_mem_account(LT_SPACE_HOST, (lt_mem_category)h->category, -(int64_t)h->bytes);
    if (h->mapped)
        munmap(h, (size_t)h->mapped);
    else
        free(h);
}

void lt_mem_get_stats(lt_mem_stats *out) {
    pthread_mutex_lock(&g_lock);
    *out = g_stats;
    pthread_mutex_unlock(&g_lock);
}

const char *lt_mem_category_name(lt_mem_category cat) {
    static const char *names[LT_MEM_NCATEGORIES] = {
        "base_weights", "quantized_base", "lora_params", "gradients", "optimizer_state",
        "activations",  "communication",  "workspace",   "other"};
    return (unsigned)cat < LT_MEM_NCATEGORIES ? names[cat] : "invalid";
}
