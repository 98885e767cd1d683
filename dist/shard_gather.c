#include "dist/shard_gather.h"

#include <stdlib.h>
#include "core/clock.h"

typedef struct {
    uint8_t *buf;
    int item;         /* -1: empty */
    lt_comm_req *req; /* non-NULL while its gather is in flight */
} slot;

struct lt_shard_gather {
    lt_comm *comm;
    const uint8_t *local;
    size_t shard_bytes;
    int n_items;
    slot s[2];
    lt_shard_gather_stats stats;
};

lt_status lt_shard_gather_create(lt_comm *c, const uint8_t *local, size_t shard_bytes, int n_items,
                                 lt_shard_gather **out, lt_error *err) {
    *out = NULL;
    lt_shard_gather *g = calloc(1, sizeof *g);
    if (!g) return lt_fail(err, LT_ERR_NOMEM, "shard gather: out of memory");
    g->comm = c;
    g->local = local;
    g->shard_bytes = shard_bytes;
    g->n_items = n_items;
    const size_t whole = shard_bytes * (size_t)lt_comm_size(c);
    for (int i = 0; i < 2; i++) {
        g->s[i].item = -1;
        g->s[i].buf = lt_comm_alloc(c, LT_MEM_COMM, whole);
        if (!g->s[i].buf) {
            lt_shard_gather_free(g);
            return lt_fail(err, LT_ERR_NOMEM, "shard gather: cannot allocate two %zu-byte layer buffers",
                           whole);
        }
    }
    *out = g;
    return LT_OK;
}

void lt_shard_gather_free(lt_shard_gather *g) {
    if (!g) return;
    for (int i = 0; i < 2; i++) {
        if (g->s[i].req) lt_comm_wait(g->comm, g->s[i].req, NULL);
        lt_comm_free_buffer(g->comm, g->s[i].buf);
    }
    free(g);
}

static lt_status start(lt_shard_gather *g, slot *s, int item, lt_error *err) {
    s->item = item;
    g->stats.gathers++;
    return lt_comm_iallgather(g->comm, g->local + (size_t)item * g->shard_bytes, s->buf,
                              g->shard_bytes, &s->req, err);
}

static lt_status complete(lt_shard_gather *g, slot *s, lt_error *err) {
    lt_status st = lt_comm_wait(g->comm, s->req, err);
    s->req = NULL;
    if (st != LT_OK) s->item = -1;
    return st;
}

lt_status lt_shard_gather_get(lt_shard_gather *g, int item, int next, const uint8_t **whole,
                              lt_error *err) {
    if (item < 0 || item >= g->n_items || next >= g->n_items)
        return lt_fail(err, LT_ERR_INVALID, "shard gather: item %d (next %d) of %d", item, next,
                       g->n_items);
    double t0 = lt_now_s();
    lt_status st = LT_OK;
    slot *have = g->s[0].item == item ? &g->s[0] : g->s[1].item == item ? &g->s[1] : NULL;
    if (have) {
        g->stats.prefetched += have->req != NULL;
        st = complete(g, have, err);
    } else {
        /* Not predicted: finish whatever is in flight (every rank started
         * it) and gather into the first slot. */
        for (int i = 0; i < 2 && st == LT_OK; i++)
            if (g->s[i].req) st = complete(g, &g->s[i], err);
        have = &g->s[0];
        if (st == LT_OK) st = start(g, have, item, err);
        if (st == LT_OK) st = complete(g, have, err);
    }
    slot *other = have == &g->s[0] ? &g->s[1] : &g->s[0];
    if (st == LT_OK && next >= 0 && next != item && other->item != next) {
        if (other->req) st = complete(g, other, err);
        if (st == LT_OK) st = start(g, other, next, err);
    }
    g->stats.exposed_s += lt_now_s() - t0;
    if (st != LT_OK) return st;
    *whole = have->buf;
    return LT_OK;
}

void lt_shard_gather_get_stats(const lt_shard_gather *g, lt_shard_gather_stats *out) {
    *out = g->stats;
}
