#include "core/alloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* A header in front of each block records its size and category so lt_free
 * can un-account it; 64 bytes keeps the user pointer cache-line aligned. */
typedef struct {
    uint64_t bytes;
    uint32_t category;
    uint32_t magic;
    unsigned char pad[48];
} block_header;

_Static_assert(sizeof(block_header) == 64, "header must preserve 64-byte alignment");

#define LT_ALLOC_MAGIC 0x4c54414cu /* "LTAL" */

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
    if (posix_memalign(&raw, 64, sizeof(block_header) + bytes) != 0) return NULL;
    /* calloc semantics: callers rely on zeroed gradients and activations. */
    memset(raw, 0, sizeof(block_header) + bytes);
    block_header *h = raw;
    h->bytes = bytes;
    h->category = (uint32_t)cat;
    h->magic = LT_ALLOC_MAGIC;
    lt_mem_account(LT_SPACE_HOST, cat, (int64_t)bytes);
    return (unsigned char *)raw + sizeof(block_header);
}

static block_header *header_of(const void *p) {
    return (block_header *)((unsigned char *)(uintptr_t)p - sizeof(block_header));
}

size_t lt_alloc_size(const void *p) {
    return p ? (size_t)header_of(p)->bytes : 0;
}

void lt_free(void *p) {
    if (!p) return;
    block_header *h = header_of(p);
    if (h->magic != LT_ALLOC_MAGIC) abort(); /* freeing a pointer we did not allocate */
    h->magic = 0;
    lt_mem_account(LT_SPACE_HOST, (lt_mem_category)h->category, -(int64_t)h->bytes);
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
