/* The optimizer step and the evaluation: what every rank runs, in step with
 * the others (launch/trainer.h says what a step is). */
#include "launch/trainer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "launch/stop_signal.h"
#include "launch/trainer_internal.h"
#include "optim/grad_clip.h"

static void *ops_alloc(const void *ctx, lt_mem_category cat, size_t bytes) {
    const lt_ops *o = ctx;
    return o->alloc(o, cat, bytes);
}

static void ops_free(const void *ctx, void *p) {
    const lt_ops *o = ctx;
    o->free(o, p);
}

lt_status lt_train_optimizer_init(lt_adamw *opt, const lt_ops *ops, size_t n,
                                  const lt_adamw_config *cfg, lt_error *err) {
    const lt_adamw_memory mem = {ops_alloc, ops_free, ops};
    return lt_adamw_init_in(opt, n, cfg, &mem, err);
}

lt_status lt_train_step(lt_model *m, lt_adamw *opt, const lt_lr_schedule *sched, int64_t step,
                        float max_grad_norm, const int32_t *inputs, const int32_t *targets, int ga,
                        int B, int T, uint64_t seed, lt_dp *dp, lt_step_stats *out, lt_error *err) {
    const size_t per = (size_t)B * T;
    int64_t total = dp ? dp->global_targets : lt_count_targets(targets, (int64_t)per * ga);
    const uint64_t first_token = dp ? dp->first_row * (uint64_t)T : 0;
    lt_grad_sync *sync = dp ? dp->sync : NULL;
    if (total == 0)
        return lt_fail(err, LT_ERR_INVALID,
                       "step %lld: the batch has no target tokens (every label is masked)",
                       (long long)step + 1);
    lt_model_zero_grads(m);
    double loss_sum = 0.0;
    for (int g = 0; g < ga; g++) {
        double s = 0.0;
        int64_t n = 0;
        lt_model_set_dropout_state(m, seed, (uint64_t)step * (uint64_t)ga + (uint64_t)g,
                                   first_token);
        if (sync && g == ga - 1) lt_grad_sync_arm(sync);
        lt_status st = lt_model_forward_backward(m, inputs + g * per, targets + g * per, B, T,
                                                 (float)(1.0 / (double)total), &s, &n, err);
        if (st != LT_OK) return st;
        loss_sum += s;
    }
    out->grad_wait_s = 0;
    out->grad_overlapped_bytes = 0;
    out->grad_started_bytes = 0;
    if (sync) {
        lt_status st = lt_grad_sync_finish(sync, &out->grad_wait_s, err);
        out->grad_overlapped_bytes = lt_grad_sync_overlapped_bytes(sync);
        out->grad_started_bytes = lt_grad_sync_started_bytes(sync);
        if (st == LT_OK) st = lt_comm_reduce(dp->comm, &loss_sum, &loss_sum, 1, LT_DT_F64, LT_RED_SUM, 0, err);
        if (st != LT_OK) return st;
    }
    /* Norm, clipping and AdamW run where the backend keeps the buffers
     * (ops): the host sees the sum of squares and nothing else. */
    const lt_ops *o = lt_model_get_ops(m);
    const lt_param_table *tab = lt_model_train_table(m);
    float *params = lt_model_train_params(m), *grads = lt_model_train_grads(m);
    size_t n = tab->numel;
    if (dp && dp->zero1) {
        /* ZeRO-1: this rank holds the reduced gradient of its shard only;
         * the norm adds up every shard's squares. */
        params += dp->shard_lo;
        grads = dp->shard_grads;
        n = dp->shard_len;
    }
    double sq = o->sumsq(o, grads, n);
    lt_status st = o->check(o, err);
    if (st == LT_OK && dp && dp->zero1) st = lt_comm_allreduce(dp->comm, &sq, 1, LT_DT_F64, LT_RED_SUM, err);
    if (st != LT_OK) return st;
    const double global_norm = sqrt(sq);
    const float norm = (float)global_norm;
    float coef;
    if (lt_clip_grad_coef(global_norm, max_grad_norm, &coef)) o->scale(o, grads, n, coef);
    if (!isfinite(norm) || !isfinite(loss_sum))
        return lt_fail(err, LT_ERR_INVALID,
                       "step %lld: the %s is not finite (loss %g, gradient norm %g); lower "
                       "learning_rate or check the data",
                       (long long)step + 1, isfinite(loss_sum) ? "gradient" : "loss",
                       loss_sum / (double)total, (double)norm);
    float lr = lt_lr_at(sched, step);
    const lt_adamw_scalars sc = lt_adamw_next(opt, lr);
    o->adamw(o, params, grads, opt->m, opt->v, n, &sc);
    if ((st = o->check(o, err)) != LT_OK) return st;
    if (dp && dp->zero1) {
        double wait = 0;
        st = lt_grad_sync_gather_params(dp->sync, lt_model_train_params(m), &wait, err);
        out->grad_wait_s += wait;
        if (st != LT_OK) return st;
    }
    out->loss = loss_sum / (double)total;
    out->grad_norm = norm;
    out->lr = lr;
    out->tokens = total;
    return LT_OK;
}

lt_status lt_train_agree_on_stop(lt_dp *dp, int *sig, lt_error *err) {
    int64_t v = lt_stop_requested();
    if (dp && dp->size > 1) {
        lt_status st = lt_comm_allreduce(dp->comm, &v, 1, LT_DT_I64, LT_RED_MAX, err);
        if (st != LT_OK) return st;
    }
    *sig = (int)v;
    return LT_OK;
}

void lt_train_fault_slow(const char *where, int64_t step) {
    const char *f = getenv("LT_FAULT_SLOW");
    const size_t n = strlen(where);
    for (const char *p = f; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
        if (strncmp(p, where, n) != 0) continue;
        const char *q = p + n;
        if (*q == '@') {
            char *end;
            if (strtoll(q + 1, &end, 10) != step) continue;
            q = end;
        }
        if (*q != ':') continue;
        const double until = lt_now_s() + strtod(q + 1, NULL);
        for (double left; (left = until - lt_now_s()) > 0;) {
            struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
            nanosleep(&ts, NULL);
        }
        return;
    }
}

lt_status lt_train_evaluate(lt_model *m, const lt_dataset *ds, int batch, size_t max_rows, lt_dp *dp,
                            int64_t step, int *stop_sig, double *loss, int64_t *tokens, lt_error *err) {
    const int T = lt_dataset_seq_len(ds);
    size_t rows = lt_dataset_rows(ds);
    if (max_rows && rows > max_rows) rows = max_rows;
    /* Rank r evaluates rows [lo, hi); every rank runs the same number of
     * batches, because a sharded base gathers each layer collectively (a
     * rank out of rows runs one padding row and drops it). */
    const int N = dp ? dp->size : 1, r = dp ? dp->rank : 0;
    const size_t share = (rows + (size_t)N - 1) / (size_t)N;
    const size_t lo = share * (size_t)r < rows ? share * (size_t)r : rows;
    const size_t hi = lo + share < rows ? lo + share : rows;
    const size_t batches = (share + (size_t)batch - 1) / (size_t)batch;
    int32_t *in = malloc((size_t)batch * T * sizeof *in), *tg = malloc((size_t)batch * T * sizeof *tg);
    if (!in || !tg) {
        free(in);
        free(tg);
        return lt_fail(err, LT_ERR_NOMEM, "evaluation: out of memory");
    }
    double sum = 0.0;
    int64_t count = 0;
    lt_status st = LT_OK;
    if (stop_sig) *stop_sig = 0;
    for (size_t k = 0; k < batches && st == LT_OK; k++) {
        if (stop_sig) {
            lt_train_fault_slow("eval", step);
            if ((st = lt_train_agree_on_stop(dp, stop_sig, err)) != LT_OK || *stop_sig) break;
        }
        const size_t r0 = lo + k * (size_t)batch;
        int b = r0 >= hi ? 0 : (hi - r0 < (size_t)batch ? (int)(hi - r0) : batch);
        if (b == 0 && !(dp && dp->gather)) continue;
        for (int i = 0; i < b; i++) lt_dataset_row(ds, r0 + (size_t)i, in + (size_t)i * T, tg + (size_t)i * T);
        if (b == 0) lt_dataset_row(ds, 0, in, tg);
        double s = 0.0;
        int64_t n = 0;
        st = lt_model_loss(m, in, tg, b ? b : 1, T, &s, &n, err);
        if (b == 0) s = 0.0, n = 0;
        sum += s;
        count += n;
    }
    free(in);
    free(tg);
    if (st != LT_OK || (stop_sig && *stop_sig)) return st;
    if (dp && dp->size > 1) {
        double v[2] = {sum, (double)count};
        if ((st = lt_comm_reduce(dp->comm, v, v, 2, LT_DT_F64, LT_RED_SUM, 0, err)) != LT_OK) return st;
        sum = v[0];
        count = (int64_t)v[1];
    }
    *loss = count ? sum / (double)count : NAN;
    *tokens = count;
    return LT_OK;
}

lt_status lt_evaluate(lt_model *m, const lt_dataset *ds, int batch, size_t max_rows, lt_dp *dp,
                      double *loss, int64_t *tokens, lt_error *err) {
    return lt_train_evaluate(m, ds, batch, max_rows, dp, 0, NULL, loss, tokens, err);
}
