#include "dist/grad_sync.h"

#include <stdlib.h>
#include "core/clock.h"

typedef struct {
    int low;              /* the bucket starts when this layer is ready */
    size_t begin, count;  /* elements of the gradient buffer */
    lt_comm_req *req;
    int started;
    /* ZeRO-1: elements of the bucket each rank owns, and where they start
     * (relative to begin) */
    size_t *counts, *displs;
} bucket;

struct lt_grad_sync {
    lt_comm *comm;
    float *grads;
    bucket *b;
    int nb, armed;
    int *of_layer; /* layer -> bucket it completes, -1 if none */
    int n_layers;
    uint64_t early, last_early; /* bytes reduced before finish() */
    uint64_t last_started;      /* bytes whose reduction began before finish() */
    /* ZeRO-1: reduce-scatter into this rank's shard */
    float *shard_grads;
    size_t shard_lo;
    int rank;
};

lt_status lt_grad_sync_create(lt_comm *c, float *grads, const size_t *layer_begin, int n_layers,
                              size_t bucket_cap_bytes, lt_grad_sync **out, lt_error *err) {
    *out = NULL;
    if (n_layers < 1 || layer_begin[0] != 0)
        return lt_fail(err, LT_ERR_INVALID, "gradient buckets: %d layers starting at %zu", n_layers,
                       n_layers > 0 ? layer_begin[0] : 0);
    for (int l = 0; l < n_layers; l++)
        if (layer_begin[l + 1] < layer_begin[l])
            return lt_fail(err, LT_ERR_INVALID, "gradient buckets: layer %d's range is reversed", l);
    lt_grad_sync *g = calloc(1, sizeof *g);
    if (g) g->b = calloc((size_t)n_layers, sizeof *g->b);
    if (g) g->of_layer = malloc((size_t)n_layers * sizeof *g->of_layer);
    if (!g || !g->b || !g->of_layer) {
        lt_grad_sync_free(g);
        return lt_fail(err, LT_ERR_NOMEM, "gradient buckets: out of memory");
    }
    g->comm = c;
    g->grads = grads;
    g->n_layers = n_layers;
    for (int l = 0; l < n_layers; l++) g->of_layer[l] = -1;
    /* From the last layer down: backward finishes layers in that order. */
    int hi = n_layers - 1;
    while (hi >= 0) {
        int lo = hi;
        while (lo > 0 && (layer_begin[hi + 1] - layer_begin[lo]) * sizeof(float) < bucket_cap_bytes)
            lo--;
        size_t begin = layer_begin[lo], count = layer_begin[hi + 1] - begin;
        if (count > 0) {
            g->b[g->nb] = (bucket){.low = lo, .begin = begin, .count = count};
            g->of_layer[lo] = g->nb++;
        }
        hi = lo - 1;
    }
    *out = g;
    return LT_OK;
}

void lt_grad_sync_free(lt_grad_sync *g) {
    if (!g) return;
    for (int i = 0; i < g->nb; i++) {
        if (g->b[i].req) lt_comm_wait(g->comm, g->b[i].req, NULL);
        free(g->b[i].counts);
        free(g->b[i].displs);
    }
    free(g->b);
    free(g->of_layer);
    free(g);
}

int lt_grad_sync_buckets(const lt_grad_sync *g) { return g->nb; }

uint64_t lt_grad_sync_overlapped_bytes(const lt_grad_sync *g) { return g->last_early; }

uint64_t lt_grad_sync_started_bytes(const lt_grad_sync *g) { return g->last_started; }

void lt_grad_sync_arm(lt_grad_sync *g) {
    g->armed = 1;
    g->early = 0;
    for (int i = 0; i < g->nb; i++) g->b[i].started = 0;
}

lt_status lt_grad_sync_shard(lt_grad_sync *g, const size_t *shard_begin, float *shard_grads,
                             lt_error *err) {
    const int N = lt_comm_size(g->comm);
    g->rank = lt_comm_rank(g->comm);
    g->shard_lo = shard_begin[g->rank];
    for (int i = 0; i < g->nb; i++) {
        bucket *b = &g->b[i];
        b->counts = calloc((size_t)N, sizeof *b->counts);
        b->displs = calloc((size_t)N, sizeof *b->displs);
        if (!b->counts || !b->displs) return lt_fail(err, LT_ERR_NOMEM, "ZeRO-1 buckets: out of memory");
        const size_t lo = b->begin, hi = b->begin + b->count;
        for (int r = 0; r < N; r++) {
            const size_t a = shard_begin[r] > lo ? shard_begin[r] : lo;
            const size_t z = shard_begin[r + 1] < hi ? shard_begin[r + 1] : hi;
            b->counts[r] = z > a ? z - a : 0;
            b->displs[r] = z > a ? a - lo : 0;
        }
    }
    g->shard_grads = shard_grads;
    return LT_OK;
}

static lt_status start(lt_grad_sync *g, bucket *b, lt_error *err) {
    b->started = 1;
    if (!g->shard_grads)
        return lt_comm_iallreduce(g->comm, g->grads + b->begin, b->count, LT_DT_F32, LT_RED_SUM,
                                  &b->req, err);
    /* The ranks' parts of a bucket are consecutive, in rank order: the
     * layout reduce-scatter sends. This rank's sum lands at its place in
     * the shard. */
    const size_t mine = b->begin + b->displs[g->rank];
    float *recv = g->shard_grads + (b->counts[g->rank] ? mine - g->shard_lo : 0);
    return lt_comm_ireduce_scatter(g->comm, g->grads + b->begin, recv, b->counts, LT_DT_F32,
                                   LT_RED_SUM, &b->req, err);
}

lt_status lt_grad_sync_gather_params(lt_grad_sync *g, float *params, double *exposed_s,
                                     lt_error *err) {
    double t0 = lt_now_s();
    lt_status st = LT_OK;
    for (int i = 0; i < g->nb && st == LT_OK; i++)
        st = lt_comm_iallgatherv(g->comm, params + g->b[i].begin, g->b[i].counts, g->b[i].displs,
                                 LT_DT_F32, &g->b[i].req, err);
    for (int i = 0; i < g->nb; i++) {
        lt_status w = g->b[i].req ? lt_comm_wait(g->comm, g->b[i].req, err) : LT_OK;
        g->b[i].req = NULL;
        if (st == LT_OK) st = w;
    }
    if (exposed_s) *exposed_s = lt_now_s() - t0;
    return st;
}

lt_status lt_grad_sync_progress(lt_grad_sync *g, lt_error *err) {
    for (int i = 0; i < g->nb; i++) {
        if (!g->b[i].req) continue;
        int done = 0;
        lt_status st = lt_comm_test(g->comm, g->b[i].req, &done, err);
        if (done || st != LT_OK) g->b[i].req = NULL;
        if (done && st == LT_OK) g->early += g->b[i].count * sizeof(float);
        if (st != LT_OK) return st;
    }
    return LT_OK;
}

lt_status lt_grad_sync_layer_ready(lt_grad_sync *g, int layer, lt_error *err) {
    if (!g->armed || layer < 0 || layer >= g->n_layers) return LT_OK;
    lt_status st = lt_grad_sync_progress(g, err);
    if (st != LT_OK) return st;
    int i = g->of_layer[layer];
    return i >= 0 && !g->b[i].started ? start(g, &g->b[i], err) : LT_OK;
}

lt_status lt_grad_sync_finish(lt_grad_sync *g, double *exposed_s, lt_error *err) {
    double t0 = lt_now_s();
    lt_status st = LT_OK;
    g->last_early = g->armed ? g->early : 0;
    g->last_started = 0;
    for (int i = 0; g->armed && i < g->nb; i++)
        if (g->b[i].started) g->last_started += g->b[i].count * sizeof(float);
    for (int i = 0; i < g->nb && st == LT_OK; i++)
        if (!g->armed || !g->b[i].started) st = start(g, &g->b[i], err);
    for (int i = 0; i < g->nb; i++) {
        lt_status w = lt_comm_wait(g->comm, g->b[i].req, err);
        g->b[i].req = NULL;
        if (st == LT_OK) st = w;
    }
    g->armed = 0;
    if (exposed_s) *exposed_s = lt_now_s() - t0;
    return st;
}
