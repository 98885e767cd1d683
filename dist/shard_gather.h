/* The gather schedule of a sharded base: n items (layers), each stored as
 * one shard of `shard_bytes` per rank; get(i) returns item i whole, the
 * all-gather of every rank's shard, in one of two buffers, and starts the
 * gather of the item the caller will want next into the other, so it runs
 * while item i computes. At most two whole items exist at a time. It knows
 * nothing of what the bytes are. */
#ifndef LT_DIST_SHARD_GATHER_H
#define LT_DIST_SHARD_GATHER_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "dist/comm.h"

typedef struct lt_shard_gather lt_shard_gather;

typedef struct {
    uint64_t gathers;        /* all-gathers started */
    uint64_t prefetched;     /* get() calls served by a gather started earlier */
    double exposed_s;        /* time get() spent blocked */
} lt_shard_gather_stats;

/* local: this rank's shards, item i at local + i * shard_bytes (device
 * memory, outliving the gather). */
lt_status lt_shard_gather_create(lt_comm *c, const uint8_t *local, size_t shard_bytes, int n_items,
                                 lt_shard_gather **out, lt_error *err);
/* Completes any gather in flight (every rank started the same ones). */
void lt_shard_gather_free(lt_shard_gather *g);

/* *whole = item `item` (valid until the next call); next >= 0 starts
 * gathering that item. Every rank must make the same calls. */
lt_status lt_shard_gather_get(lt_shard_gather *g, int item, int next, const uint8_t **whole,
                              lt_error *err);
void lt_shard_gather_get_stats(const lt_shard_gather *g, lt_shard_gather_stats *out);

#endif
