/* The tracked allocator: every large allocation names its category, so the
 * memory report can say where the bytes went and be checked against the
 * process's measured peak. Host allocations are made here; device backends
 * report theirs through lt_mem_account with LT_SPACE_DEVICE. */
#ifndef LT_CORE_ALLOC_H
#define LT_CORE_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "core/hostdev.h"

LT_EXTERN_C_BEGIN

typedef enum {
    LT_MEM_BASE_WEIGHTS = 0, /* fp32 frozen (or trainable, full mode) base */
    LT_MEM_QUANT_BASE,       /* quantized base blocks */
    LT_MEM_LORA_PARAMS,
    LT_MEM_GRADS,
    LT_MEM_OPTIM_STATE,
    LT_MEM_ACTIVATIONS,
    LT_MEM_COMM,
    LT_MEM_WORKSPACE,
    LT_MEM_OTHER,
    LT_MEM_NCATEGORIES
} lt_mem_category;

typedef enum { LT_SPACE_HOST = 0, LT_SPACE_DEVICE = 1, LT_SPACE_COUNT } lt_mem_space;

/* Zero-filled, 64-byte aligned; NULL when bytes is 0 or the system refuses. */
void *lt_alloc(lt_mem_category cat, size_t bytes);
void lt_free(void *p);
size_t lt_alloc_size(const void *p);
/* The smallest block (header included) mapped from the OS and unmapped on
 * lt_free, or 0 when every block comes from the heap (sanitizer builds). */
size_t lt_alloc_map_min(void);

/* For allocators outside this file (cudaMalloc): add or remove bytes. */
void lt_mem_account(lt_mem_space space, lt_mem_category cat, int64_t delta);

typedef struct {
    uint64_t current[LT_SPACE_COUNT][LT_MEM_NCATEGORIES];
    uint64_t peak[LT_SPACE_COUNT][LT_MEM_NCATEGORIES];
    uint64_t total_current[LT_SPACE_COUNT];
    uint64_t total_peak[LT_SPACE_COUNT];
} lt_mem_stats;

void lt_mem_get_stats(lt_mem_stats *out);
const char *lt_mem_category_name(lt_mem_category cat);

LT_EXTERN_C_END

#endif
