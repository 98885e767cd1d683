#include "launch/data_parallel.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/hash.h"
#include "launch/memory_report.h"
#include "model/ops.h"

static lt_status on_acquire(void *user, int layer, int next, const uint8_t **blob, lt_error *err) {
    lt_dp *dp = user;
    if (dp->sync) {
        lt_status st = lt_grad_sync_progress(dp->sync, err);
        if (st != LT_OK) return st;
    }
    return lt_shard_gather_get(dp->gather, layer, next, blob, err);
}

static lt_status on_grads_ready(void *user, int layer, lt_error *err) {
    lt_dp *dp = user;
    return lt_grad_sync_layer_ready(dp->sync, layer + dp->unit_shift, err);
}

void lt_zero1_shards(size_t n, int size, size_t *begin) {
    size_t per = (n + (size_t)size - 1) / (size_t)size;
    per = (per + 15) / 16 * 16;
    for (int r = 0; r <= size; r++) begin[r] = per * (size_t)r < n ? per * (size_t)r : n;
}

/* The gradient units in buffer order, each one range: the decoder layers;
 * in full fine-tuning also the tensors before them (the embedding) as unit
 * 0 and those after (final norm, classifier) as the last. Backward
 * finishes them from the last down, as the buckets expect. */
static lt_status gradient_units(const lt_param_table *tab, int L, int full, size_t *begin,
                                int *units, lt_error *err) {
    const int shift = full ? 1 : 0;
    size_t at = 0;
    if (full) {
        size_t lo = 0, hi = 0;
        at = lt_table_layer_range(tab, 0, &lo, &hi) ? lo : tab->numel;
    }
    begin[0] = 0;
    begin[shift] = at;
    for (int l = 0; l < L; l++) {
        size_t lo = 0, hi = 0;
        int found = lt_table_layer_range(tab, l, &lo, &hi);
        if (found && lo != at)
            return lt_fail(err, LT_ERR_INVALID, "gradient buckets: the tensors of layer %d do not "
                           "follow layer %d's", l, l - 1);
        at = found ? hi : at;
        begin[l + shift + 1] = at;
    }
    *units = L + 2 * shift;
    begin[*units] = tab->numel;
    if (!full && at != tab->numel)
        return lt_fail(err, LT_ERR_INVALID, "gradient buckets: %zu LoRA parameters outside the "
                       "layers", tab->numel - at);
    return LT_OK;
}

lt_status lt_dp_setup(lt_dp *dp, lt_comm *comm, lt_model *m, double bucket_cap_mb, int zero1,
                      lt_error *err) {
    memset(dp, 0, sizeof *dp);
    dp->comm = comm;
    dp->rank = lt_comm_rank(comm);
    dp->size = lt_comm_size(comm);
    dp->model = m;
    const int L = lt_model_get_config(m)->n_layers, full = lt_model_is_full_training(m);
    lt_model_hooks h = {.acquire_layer = NULL, .grads_ready = NULL, .user = dp};
    lt_status st;
    if (dp->size > 1) {
        const lt_param_table *tab = lt_model_train_table(m);
        size_t *begin = malloc(((size_t)L + 3) * sizeof *begin);
        if (!begin) return lt_fail(err, LT_ERR_NOMEM, "gradient buckets: out of memory");
        int units = 0;
        st = gradient_units(tab, L, full, begin, &units, err);
        if (st == LT_OK)
            st = lt_grad_sync_create(comm, lt_model_train_grads(m), begin, units,
                                     (size_t)(bucket_cap_mb * 1048576.0), &dp->sync, err);
        free(begin);
        if (st != LT_OK) return st;
        dp->unit_shift = full ? 1 : 0;
        h.grads_ready = on_grads_ready;
        if (zero1) {
            dp->shard_begin = malloc(((size_t)dp->size + 1) * sizeof *dp->shard_begin);
            if (!dp->shard_begin) return lt_fail(err, LT_ERR_NOMEM, "ZeRO-1: out of memory");
            lt_zero1_shards(tab->numel, dp->size, dp->shard_begin);
            dp->shard_lo = dp->shard_begin[dp->rank];
            dp->shard_len = dp->shard_begin[dp->rank + 1] - dp->shard_lo;
            if (dp->shard_len == 0)
                return lt_fail(err, LT_ERR_CONFIG, "zero1: %zu parameters leave rank %d of %d no "
                               "shard; use fewer ranks or drop zero1", tab->numel, dp->rank, dp->size);
            /* Beside the model's gradients, where the backend's sumsq,
             * scale and adamw ops reach it. */
            const lt_ops *o = lt_model_get_ops(m);
            dp->shard_grads = o->alloc(o, LT_MEM_GRADS, dp->shard_len * sizeof(float));
            if (!dp->shard_grads)
                return lt_fail(err, LT_ERR_NOMEM, "ZeRO-1: cannot allocate %zu bytes of gradient shard",
                               dp->shard_len * sizeof(float));
            if ((st = lt_grad_sync_shard(dp->sync, dp->shard_begin, dp->shard_grads, err)) != LT_OK)
                return st;
            dp->zero1 = 1;
        }
    }
    if (lt_model_shard_count(m) > 1) {
        if (lt_model_shard_count(m) != dp->size)
            return lt_fail(err, LT_ERR_INVALID, "the base is sharded %d ways on %d ranks",
                           lt_model_shard_count(m), dp->size);
        st = lt_shard_gather_create(comm, lt_model_layer_blob(m, 0), lt_model_shard_bytes(m), L,
                                    &dp->gather, err);
        if (st != LT_OK) return st;
        h.acquire_layer = on_acquire;
    }
    lt_model_set_hooks(m, &h);
    return LT_OK;
}

void lt_dp_free(lt_dp *dp) {
    if (dp->model) lt_model_set_hooks(dp->model, NULL);
    lt_grad_sync_free(dp->sync);
    lt_shard_gather_free(dp->gather);
    if (dp->shard_grads) {
        const lt_ops *o = lt_model_get_ops(dp->model);
        o->free(o, dp->shard_grads);
    }
    free(dp->shard_begin);
    dp->sync = NULL;
    dp->gather = NULL;
    dp->shard_grads = NULL;
    dp->shard_begin = NULL;
}

/* lt_hash64 of n floats in the backend's memory into *out, brought to the
 * host a slice at a time (a full fine-tune's weights need not fit twice);
 * 0 when out of memory. */
static int backend_hash(const lt_ops *o, const float *x, size_t n, float *slice, size_t cap,
                        uint64_t *out) {
    lt_hasher *h = lt_hasher_new();
    if (!h) return 0;
    for (size_t at = 0; at < n; at += cap) {
        const size_t k = n - at < cap ? n - at : cap;
        o->download(o, slice, x + at, k * sizeof(float));
        lt_hasher_update(h, slice, k * sizeof(float));
    }
    *out = lt_hasher_digest(h);
    lt_hasher_free(h);
    return 1;
}

lt_status lt_dp_check_replicas(lt_dp *dp, const float *params, const lt_adamw *opt, int64_t step,
                               lt_error *err) {
    const size_t n = lt_model_train_table(dp->model)->numel;
    const lt_ops *o = lt_model_get_ops(dp->model);
    const size_t cap = (size_t)1 << 20;
    float *slice = malloc(cap * sizeof(float));
    uint64_t h[3] = {0, 0, 0};
    int ok = slice && backend_hash(o, params, n, slice, cap, &h[0]) &&
             (dp->zero1 || (backend_hash(o, opt->m, opt->n, slice, cap, &h[1]) &&
                            backend_hash(o, opt->v, opt->n, slice, cap, &h[2])));
    free(slice);
    if (!ok) return lt_fail(err, LT_ERR_NOMEM, "replica check: out of memory");
    uint64_t *all = malloc((size_t)dp->size * sizeof h);
    if (!all) return lt_fail(err, LT_ERR_NOMEM, "replica check: out of memory");
    lt_status st = lt_comm_allgather(dp->comm, h, all, sizeof h, err);
    for (int r = 1; r < dp->size && st == LT_OK; r++)
        for (int k = 0; k < 3; k++)
            if (all[3 * r + k] != all[k]) {
                const char *what[3] = {lt_model_is_full_training(dp->model) ? "weights" : "LoRA parameters",
                                       "first moments", "second moments"};
                st = lt_fail(err, LT_ERR_INVALID,
                             "ddp_check_replicas: after step %lld the %s of rank %d differ from "
                             "rank 0's (hash %016llx vs %016llx)",
                             (long long)step + 1, what[k], r, (unsigned long long)all[3 * r + k],
                             (unsigned long long)all[k]);
                break;
            }
    free(all);
    return st;
}

lt_status lt_dp_gather_memory(lt_dp *dp, uint64_t model_bytes_read, lt_rank_memory *out,
                              lt_error *err) {
    lt_rank_memory me;
    memset(&me, 0, sizeof me);
    lt_mem_stats ms;
    lt_mem_get_stats(&ms);
    for (int c = 0; c < LT_MEM_NCATEGORIES; c++) me.tracked_peak[c] = ms.peak[LT_SPACE_HOST][c];
    me.tracked_total_peak = ms.total_peak[LT_SPACE_HOST];
    uint64_t rss;
    lt_process_memory(&me.vm_hwm, &rss);
    lt_base_memory bm;
    lt_model_base_memory(dp->model, &bm);
    me.quant_resident_bytes = bm.quant_resident_bytes;
    me.model_bytes_read = model_bytes_read;
    return lt_comm_allgather(dp->comm, &me, out, sizeof me, err);
}
