#include "launch/trainer.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "io/checkpoint/checkpoint.h"
#include "io/data/loader.h"
#include "io/fileutil.h"
#include "io/model/adapter.h"
#include "io/model/any_format.h"
#include "io/model/hf_model.h"
#include "io/model/llama2c.h"
#include "io/text/tokenizer.h"
#include "launch/memory_report.h"
#include "launch/stop_signal.h"
#include "model/backend.h"
#include "optim/grad_clip.h"
#include "core/clock.h"

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
    const lt_param_table *tab = lt_model_train_table(m);
    float *params = lt_model_train_params(m), *grads = lt_model_train_grads(m);
    size_t n = tab->numel;
    float norm;
    if (dp && dp->zero1) {
        /* ZeRO-1: this rank holds the reduced gradient of its shard only;
         * the norm adds up every shard's squares. */
        double sq = lt_grad_sumsq(dp->shard_grads, dp->shard_len);
        lt_status st = lt_comm_allreduce(dp->comm, &sq, 1, LT_DT_F64, LT_RED_SUM, err);
        if (st != LT_OK) return st;
        params += dp->shard_lo;
        grads = dp->shard_grads;
        n = dp->shard_len;
        norm = lt_clip_grad_norm_total(grads, n, sqrt(sq), max_grad_norm);
    } else {
        norm = lt_clip_grad_norm(grads, n, max_grad_norm);
    }
    if (!isfinite(norm) || !isfinite(loss_sum))
        return lt_fail(err, LT_ERR_INVALID,
                       "step %lld: the %s is not finite (loss %g, gradient norm %g); lower "
                       "learning_rate or check the data",
                       (long long)step + 1, isfinite(loss_sum) ? "gradient" : "loss",
                       loss_sum / (double)total, (double)norm);
    float lr = lt_lr_at(sched, step);
    lt_adamw_step(opt, params, grads, lr);
    if (dp && dp->zero1) {
        double wait = 0;
        lt_status st = lt_grad_sync_gather_params(dp->sync, lt_model_train_params(m), &wait, err);
        out->grad_wait_s += wait;
        if (st != LT_OK) return st;
    }
    out->loss = loss_sum / (double)total;
    out->grad_norm = norm;
    out->lr = lr;
    out->tokens = total;
    return LT_OK;
}

/* Any rank signalled stops every rank at the same point: the flag is
 * all-reduced (MAX), a few bytes that no step counter sees. */
static lt_status agree_on_stop(lt_dp *dp, int *sig, lt_error *err) {
    int64_t v = lt_stop_requested();
    if (dp && dp->size > 1) {
        lt_status st = lt_comm_allreduce(dp->comm, &v, 1, LT_DT_I64, LT_RED_MAX, err);
        if (st != LT_OK) return st;
    }
    *sig = (int)v;
    return LT_OK;
}

/* The test hook for slow phases: LT_FAULT_SLOW="load:S,eval:S,step:S"
 * pauses S seconds once loading is done (while a signal still ends the
 * process at once), before every evaluation batch, and after every
 * optimizer step, so that a test can land a signal or fill a disk there;
 * "eval@K:S" pauses in the evaluation at step K only. A signal does not
 * cut the pause short: what ends it early is the handler or the trainer's
 * own poll, as in a slow phase of a real run. */
static void fault_slow(const char *where, int64_t step) {
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

/* stop_sig non-NULL: every rank polls the stop signal before each batch
 * (agreeing, as every rank runs the same number of batches) and the
 * evaluation ends early, *stop_sig set and no loss, when one arrived.
 * step: the run's step (for the test hook). */
static lt_status evaluate(lt_model *m, const lt_dataset *ds, int batch, size_t max_rows, lt_dp *dp,
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
            fault_slow("eval", step);
            if ((st = agree_on_stop(dp, stop_sig, err)) != LT_OK || *stop_sig) break;
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
    return evaluate(m, ds, batch, max_rows, dp, 0, NULL, loss, tokens, err);
}

/* ------------------------------------------------------------ progress */

typedef struct {
    int tty;
    int every;
    int64_t total;
    double t0;
} progress;

static void fmt_duration(double s, char *buf, size_t cap) {
    long t = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;
    if (t >= 3600)
        snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
}

static double mem_mib(void) {
    lt_mem_stats ms;
    lt_mem_get_stats(&ms);
    return (double)(ms.total_current[LT_SPACE_HOST] + ms.total_current[LT_SPACE_DEVICE]) / (1 << 20);
}

static void show(const progress *p, int64_t step, const lt_step_stats *s, double tok_s) {
    double el = lt_now_s() - p->t0, eta = el / (double)step * (double)(p->total - step);
    char e1[32], e2[32];
    fmt_duration(el, e1, sizeof e1);
    fmt_duration(eta, e2, sizeof e2);
    if (p->tty) {
        const int width = 24;
        int fill = (int)((double)width * (double)step / (double)p->total);
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
        bar[width] = '\0';
        printf("\r[%s] %lld/%lld loss %.4f lr %.2e gnorm %.3f %.0f tok/s mem %.0f MiB %s<%s   ", bar,
               (long long)step, (long long)p->total, s->loss, (double)s->lr, s->grad_norm, tok_s,
               mem_mib(), e1, e2);
        if (step == p->total) printf("\n");
        fflush(stdout);
    } else if (step == 1 || step == p->total || step % p->every == 0) {
        printf("step %lld/%lld | loss %.4f | lr %.3e | grad_norm %.4f | %.0f tok/s | mem %.1f MiB | "
               "elapsed %s | eta %s\n",
               (long long)step, (long long)p->total, s->loss, (double)s->lr, s->grad_norm, tok_s,
               mem_mib(), e1, e2);
        fflush(stdout);
    }
}

/* ------------------------------------------------------------ the run */

typedef struct {
    lt_model *model;
    lt_tokenizer *tok;
    lt_dataset *train, *eval;
    lt_loader *loader;
    lt_adamw opt;
    int opt_ready;
    int32_t *inputs, *targets;
    lt_line_log metrics; /* rank 0 */
    lt_dp dp;
    int lead; /* rank 0: prints and writes the outputs */
    uint64_t base_bytes, base_fingerprint;
    uint64_t model_bytes_read;
    int64_t last_saved; /* the step of the newest checkpoint on disk */
} run_state;

/* failed: on several ranks the collectives in flight are abandoned, not
 * completed: the other ranks may never join them, and main is about to
 * end the whole job. */
static void run_free(run_state *r, int failed) {
    lt_line_log_close(&r->metrics, NULL);
    free(r->inputs);
    free(r->targets);
    if (r->opt_ready) lt_adamw_free(&r->opt);
    if (!(failed && r->dp.size > 1)) lt_dp_free(&r->dp);
    lt_loader_free(r->loader);
    lt_dataset_free(r->train);
    lt_dataset_free(r->eval);
    lt_tokenizer_free(r->tok);
    lt_model_free(r->model);
}

static lt_status load_data(const lt_run_config *c, run_state *r, int T, lt_error *err) {
    lt_data_config dc = lt_run_config_data(c, T);
    const int V = lt_model_get_config(r->model)->vocab_size;
    dc.holdout_fraction = c->validation_split_percentage / 100.0;
    lt_status st = lt_dataset_load(c->train_file, r->tok, V, &dc, &r->train,
                                   dc.holdout_fraction > 0 ? &r->eval : NULL, err);
    if (st != LT_OK || !c->validation_file[0]) return st;
    dc.holdout_fraction = 0;
    return lt_dataset_load(c->validation_file, r->tok, V, &dc, &r->eval, NULL, err);
}

/* One line of metrics.jsonl (rank 0); a line that cannot be written ends
 * the run with an error naming the file. */
static lt_status log_line(run_state *r, lt_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static lt_status log_line(run_state *r, lt_error *err, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line)
        return lt_fail(err, LT_ERR_INTERNAL, "%s: a line of %d bytes does not fit the buffer",
                       r->metrics.path, n);
    return lt_line_log_append(&r->metrics, line, (size_t)n, err);
}

/* Evaluates at step and logs it; a stop signal agreed during the
 * evaluation ends it early with *stop_sig set (nothing logged). */
static lt_status evaluate_and_log(const lt_run_config *c, run_state *r, int64_t step, int tty,
                                  int *stop_sig, lt_error *err) {
    *stop_sig = 0;
    if (!r->eval) return LT_OK;
    double loss;
    int64_t tokens;
    lt_status st = evaluate(r->model, r->eval, c->per_device_eval_batch_size,
                            (size_t)c->max_eval_samples, &r->dp, step, stop_sig, &loss, &tokens, err);
    if (st != LT_OK || *stop_sig || !r->lead) return st;
    if ((st = log_line(r, err, "{\"step\":%lld,\"eval_loss\":%.17g,\"eval_tokens\":%lld}\n", (long long)step,
                       loss, (long long)tokens)) != LT_OK)
        return st;
    if (tty) printf("\n");
    printf("eval at step %lld: eval_loss %.4f (perplexity %.2f) over %lld tokens\n", (long long)step,
           loss, exp(loss), (long long)tokens);
    fflush(stdout);
    return LT_OK;
}

/* Calls fn for each line of path with the step it starts with (-1 for a
 * line without one); 0 when there is no file. */
static int each_metrics_line(const char *path, void (*fn)(void *, char *, long long), void *user) {
    char *text = NULL;
    uint64_t size = 0;
    lt_error e2;
    if (lt_read_file(path, (uint64_t)1 << 32, &text, &size, &e2) != LT_OK) return 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        long long s = -1;
        if (sscanf(line, "{\"step\":%lld", &s) != 1) s = -1;
        fn(user, line, s);
    }
    free(text);
    return 1;
}

typedef struct {
    int64_t step;
    lt_atomic_file *af;
    lt_status st;
    lt_error *err;
    int dropped;
} keep_state;

static void keep_line(void *user, char *line, long long step) {
    keep_state *k = user;
    if (step < 0 || step > k->step) {
        k->dropped = 1;
        return;
    }
    if (k->af && k->st == LT_OK) k->st = lt_atomic_write(k->af, line, strlen(line), k->err);
    if (k->af && k->st == LT_OK) k->st = lt_atomic_write(k->af, "\n", 1, k->err);
}

/* A resumed run keeps the metrics of the steps it resumes after (those of
 * later steps, written before the interruption, are replaced; a file with
 * none of those is left as it is). */
static lt_status keep_metrics_until(const char *path, int64_t step, lt_error *err) {
    keep_state k = {.step = step, .af = NULL, .st = LT_OK, .err = err, .dropped = 0};
    if (!each_metrics_line(path, keep_line, &k) || !k.dropped) return LT_OK;
    lt_atomic_file af;
    if ((k.st = lt_atomic_open(&af, path, err)) != LT_OK) return k.st;
    k.af = &af;
    each_metrics_line(path, keep_line, &k);
    if (k.st != LT_OK) {
        lt_atomic_abort(&af);
        return k.st;
    }
    return lt_atomic_commit(&af, err);
}

/* Writes the run's files: only rank 0 does, the others return at once.
 * run_config.json is replaced atomically; a fresh run starts its own
 * metrics.jsonl with its first line. */
static lt_status write_start_files(const lt_run_config *c, run_state *r, int64_t resumed_at,
                                   lt_error *err) {
    if (!r->lead) return LT_OK;
    /* What a killed run of this output_dir left half-written. */
    static const char *const ours[] = {".loratrain-probe", "run_config.json", "metrics.jsonl",
                                       "memory.json", "adapter_config.json", "adapter_model.safetensors",
                                       "model.safetensors", NULL};
    lt_atomic_remove_stale(c->output_dir, ours);
    char path[LT_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/run_config.json", c->output_dir);
    char *json = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&json, &len);
    if (!mf) return lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", path);
    lt_run_config_write_json(c, mf);
    lt_status st = fclose(mf) == 0 && json ? lt_atomic_write_text(path, json, err)
                                           : lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", path);
    free(json);
    if (st != LT_OK) return st;
    snprintf(path, sizeof path, "%s/metrics.jsonl", c->output_dir);
    if (resumed_at > 0) {
        if ((st = keep_metrics_until(path, resumed_at, err)) != LT_OK) return st;
    } else if (unlink(path) != 0 && errno != ENOENT) {
        return lt_fail(err, LT_ERR_IO, "%s: cannot replace: %s", path, strerror(errno));
    }
    lt_line_log_init(&r->metrics, path);
    return LT_OK;
}

static lt_status save_checkpoint(const lt_run_config *c, run_state *r, const lt_lr_schedule *sched,
                                 int64_t steps_done, int64_t tokens_seen, lt_error *err) {
    lt_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.global_step = steps_done;
    meta.tokens_seen = tokens_seen;
    meta.cursor = lt_loader_cursor(r->loader);
    meta.seed = c->seed;
    meta.world_size = r->dp.size;
    snprintf(meta.base_path, sizeof meta.base_path, "%s", c->model);
    meta.base_bytes = r->base_bytes;
    meta.base_fingerprint = r->base_fingerprint;
    meta.sched = *sched;
    char *json = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&json, &len);
    if (!mf) return lt_fail(err, LT_ERR_NOMEM, "checkpoint: out of memory");
    lt_run_config_write_json(c, mf);
    fclose(mf);
    char written[4096];
    /* Full fine-tuning: every rank takes part (with ZeRO-1 each writes its
     * moments through parallel HDF5). */
    lt_status st = lt_model_is_full_training(r->model)
                       ? lt_checkpoint_save_full(c->output_dir, r->model, &r->opt, r->dp.comm,
                                                 r->dp.zero1 ? r->dp.shard_begin : NULL, &meta, json,
                                                 c->save_total_limit, written, sizeof written, err)
                       : lt_checkpoint_save(c->output_dir, r->model, &r->opt, &meta, json,
                                            c->save_total_limit, written, sizeof written, err);
    free(json);
    if (st == LT_OK && r->lead) {
        printf("checkpoint: step %lld saved to %s\n", (long long)steps_done, written);
        fflush(stdout);
    }
    return st;
}

/* adapter_name_or_path: PEFT's from_pretrained(is_trainable=True) for a
 * run whose LoRA setup is the adapter's (so that its checkpoints, which
 * record the run's setup, describe what trains); dropout is the run's. */
static lt_status start_from_adapter(const lt_run_config *c, run_state *r, const lt_lora_config *lc,
                                    lt_error *err) {
    lt_lora_config a;
    lt_status st = lt_adapter_read_config(c->adapter_name_or_path, &a, err);
    if (st != LT_OK) return st;
    if (a.r != lc->r || a.alpha != lc->alpha || a.use_rslora != lc->use_rslora || a.targets != lc->targets) {
        char have[256], want[256];
        lt_lora_format_targets(a.targets, have, (int)sizeof have);
        lt_lora_format_targets(lc->targets, want, (int)sizeof want);
        return lt_fail(err, LT_ERR_CONFIG,
                       "adapter_name_or_path %s: the adapter has r %d, lora_alpha %g, use_rslora %d on %s; "
                       "this run has r %d, lora_alpha %g, use_rslora %d on %s (set them to the adapter's)",
                       c->adapter_name_or_path, a.r, (double)a.alpha, a.use_rslora, have, lc->r,
                       (double)lc->alpha, lc->use_rslora, want);
    }
    if ((st = lt_adapter_load_weights(r->model, c->adapter_name_or_path, err)) != LT_OK) return st;
    if (r->lead) printf("starting from the PEFT adapter in %s\n", c->adapter_name_or_path);
    return LT_OK;
}

static void counters_delta(const lt_comm_counters *now, const lt_comm_counters *before,
                           lt_comm_counters *d) {
    for (int k = 0; k < LT_COLL_COUNT; k++) {
        d->calls[k] = now->calls[k] - before->calls[k];
        d->bytes[k] = now->bytes[k] - before->bytes[k];
    }
    d->wait_s = now->wait_s - before->wait_s;
}

/* Widens [lo, hi] to each collective's bytes of step d; first sets both. */
static void counters_range(const lt_comm_counters *d, int first, lt_comm_counters *lo,
                           lt_comm_counters *hi) {
    if (first) {
        *lo = *hi = *d;
        return;
    }
    for (int k = 0; k < LT_COLL_COUNT; k++) {
        if (d->bytes[k] < lo->bytes[k]) lo->bytes[k] = d->bytes[k];
        if (d->bytes[k] > hi->bytes[k]) hi->bytes[k] = d->bytes[k];
    }
}

/* The run summary's communication part: what a step moved and what the
 * same model would all-reduce as a full fine-tune. Steps need not move the
 * same bytes (a sharded base gathers one layer more after an evaluation),
 * so each collective is the figure every step shared, or its least and
 * most; metrics.jsonl has each step's. */
static void print_comm_summary(const run_state *r, int64_t steps, const lt_comm_counters *lo,
                               const lt_comm_counters *hi, double comm_s, double grad_wait_s,
                               double step_s, double overlapped_bytes) {
    lt_base_memory bm;
    lt_model_base_memory(r->model, &bm);
    const double grad_bytes = (double)lt_model_train_table(r->model)->numel * 4.0;
    const double full_bytes = (double)(bm.fp32_params + bm.quant_params) * 4.0;
    static const struct {
        lt_coll_kind k;
        const char *name;
    } shown[] = {{LT_COLL_ALLREDUCE, "all-reduce"},
                 {LT_COLL_REDUCE_SCATTER, "reduce-scatter"},
                 {LT_COLL_ALLGATHER, "all-gather"},
                 {LT_COLL_REDUCE, "reduce"}};
    printf("communication: %d ranks (%s); per step over %lld steps (least to most where steps "
           "differ): ",
           r->dp.size, lt_comm_backend_name(r->dp.comm), (long long)steps);
    for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++) {
        const uint64_t a = lo->bytes[shown[i].k], b = hi->bytes[shown[i].k];
        printf("%s %llu", shown[i].name, (unsigned long long)a);
        if (b != a) printf(" to %llu", (unsigned long long)b);
        printf(" bytes%s", i + 1 < sizeof shown / sizeof shown[0] ? ", " : "; ");
    }
    if (lt_model_is_full_training(r->model))
        printf("full fine-tuning: gradients of %.0f bytes%s\n", grad_bytes,
               r->dp.zero1 ? " reduce-scattered to their ZeRO-1 owners, parameters all-gathered" : "");
    else
        printf("LoRA gradients %.0f bytes (a full fine-tune would all-reduce %.0f bytes, %.0fx more)\n",
               grad_bytes, full_bytes, full_bytes / grad_bytes);
    printf("communication time on rank 0 over %lld steps: %.3f s blocked in collectives (%.1f%% of "
           "step time; includes waiting for slower ranks), of which %.3f s waiting for gradient "
           "buckets after backward",
           (long long)steps, comm_s, step_s > 0 ? 100.0 * comm_s / step_s : 0.0, grad_wait_s);
    printf("; %.0f%% of the gradient bytes were all-reduced while backward ran",
           100.0 * overlapped_bytes / (grad_bytes * (double)steps));
    if (r->dp.gather) {
        lt_shard_gather_stats gs;
        lt_shard_gather_get_stats(r->dp.gather, &gs);
        printf("; sharded base (whole run, evaluation included): %llu layer gathers, %llu "
               "prefetched, %.3f s blocked",
               (unsigned long long)gs.gathers, (unsigned long long)gs.prefetched, gs.exposed_s);
    }
    printf("\n");
}

void lt_estimate_outputs(const lt_run_config *c, size_t trainable, size_t config_bytes, int64_t start,
                         int64_t total, int64_t existing_checkpoints, int ranks, int evaluates,
                         lt_output_estimate *e) {
    const uint64_t MiB = 1 << 20, params = (uint64_t)trainable * 4;
    memset(e, 0, sizeof *e);
    e->checkpoint_bytes = 3 * params + MiB + config_bytes;
    int64_t fresh = 0;
    if (start < total) {
        const int64_t every = c->save_steps;
        fresh = every ? total / every - start / every : 0;
        /* A stop signal saves the step it stops at; past the last save
         * step (or with no save_steps) that is one more. */
        if (!every || total % every) fresh++;
    }
    int64_t at_once = existing_checkpoints + fresh;
    if (c->save_total_limit > 0 && at_once > c->save_total_limit + 1) at_once = c->save_total_limit + 1;
    e->checkpoints = at_once > existing_checkpoints ? at_once - existing_checkpoints : 0;
    e->final_bytes = params + MiB;
    const int64_t steps = total - start, evals = (c->eval_steps ? steps / c->eval_steps : 0) + 2;
    e->log_bytes = (uint64_t)steps * 768 + (evaluates ? (uint64_t)evals * 160 : 0) + config_bytes +
                   16 * 1024 + (uint64_t)ranks * 1024;
    e->total = (uint64_t)e->checkpoints * e->checkpoint_bytes + e->final_bytes + e->log_bytes;
}

/* checkpoint-N.h5 files in dir. */
static int64_t count_checkpoints(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long long s;
        int used = 0;
        if (sscanf(e->d_name, "checkpoint-%lld.h5%n", &s, &used) == 1 && e->d_name[used] == '\0') n++;
    }
    closedir(d);
    return n;
}

static double to_mib(uint64_t b) { return (double)b / (1 << 20); }

/* Rank 0, before the run writes anything: output_dir takes a write and
 * has room for what lt_estimate_outputs says the run writes. */
static lt_status check_output_space(const lt_run_config *c, const run_state *r, size_t config_bytes,
                                    int64_t start, int64_t total, lt_error *err) {
    if (!r->lead) return LT_OK;
    lt_output_estimate e;
    lt_estimate_outputs(c, lt_model_train_table(r->model)->numel, config_bytes, start, total,
                        count_checkpoints(c->output_dir), r->dp.size, r->eval != NULL, &e);
    uint64_t free_bytes = 0;
    lt_status st = lt_dir_free_space(c->output_dir, &free_bytes, err);
    if (st != LT_OK || free_bytes >= e.total) return st;
    char ckpts[160] = "", limit[32] = "no save_total_limit";
    if (c->save_total_limit) snprintf(limit, sizeof limit, "save_total_limit %d", c->save_total_limit);
    if (e.checkpoints)
        snprintf(ckpts, sizeof ckpts, "%lld checkpoint%s of %.2f MiB at once (save_steps %d, %s), ",
                 (long long)e.checkpoints, e.checkpoints == 1 ? "" : "s", to_mib(e.checkpoint_bytes),
                 c->save_steps, limit);
    return lt_fail(err, LT_ERR_IO,
                   "output_dir %s: %.2f MiB free, and this run writes up to %.2f MiB there: %sthe %s "
                   "%.2f MiB, logs %.2f MiB; free some space%s or choose another output_dir",
                   c->output_dir, to_mib(free_bytes), to_mib(e.total), ckpts,
                   lt_run_config_full(c) ? "model" : "adapter", to_mib(e.final_bytes), to_mib(e.log_bytes),
                   e.checkpoints < 2         ? ""
                   : c->save_total_limit ? ", lower save_total_limit"
                                         : ", set save_total_limit");
}

typedef struct {
    int64_t step;
    const char *key;
    int found;
} find_state;

static void find_line(void *user, char *line, long long step) {
    find_state *f = user;
    if (step == f->step && strstr(line, f->key)) f->found = 1;
}

/* metrics.jsonl in dir has step's line with key ("\"loss\":" or
 * "\"eval_loss\":"). */
static int logged(const char *dir, int64_t step, const char *key) {
    char path[LT_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    find_state f = {step, key, 0};
    each_metrics_line(path, find_line, &f);
    return f.found;
}

/* The run's outputs for its last step are all there, written after ck
 * (that step's checkpoint): the memory report and the adapter (or model),
 * and in metrics.jsonl the step's line and, for a run that evaluates, its
 * final eval_loss. A run stopped between ck and its outputs fails this. */
static int outputs_complete(const lt_run_config *c, const char *ck, int evaluates, int64_t total) {
    struct stat cs, fs;
    if (stat(ck, &cs) != 0) return 0;
    static const char *const lora[] = {"memory.json", "adapter_config.json", "adapter_model.safetensors",
                                       NULL};
    static const char *const full[] = {"memory.json", "model.safetensors", NULL};
    for (const char *const *n = lt_run_config_full(c) ? full : lora; *n; n++) {
        char path[LT_PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/%s", c->output_dir, *n);
        if (stat(path, &fs) != 0 || !S_ISREG(fs.st_mode) || fs.st_size == 0) return 0;
        if (fs.st_mtim.tv_sec < cs.st_mtim.tv_sec ||
            (fs.st_mtim.tv_sec == cs.st_mtim.tv_sec && fs.st_mtim.tv_nsec < cs.st_mtim.tv_nsec))
            return 0;
    }
    return logged(c->output_dir, total, "\"loss\":") &&
           (!evaluates || logged(c->output_dir, total, "\"eval_loss\":"));
}

/* Rank 0 decides from the files, every rank learns it. */
static lt_status lead_decides(run_state *r, int *v, lt_error *err) {
    int64_t x = *v;
    if (r->dp.size > 1) {
        lt_status st = lt_comm_broadcast(r->dp.comm, &x, sizeof x, 0, err);
        if (st != LT_OK) return st;
    }
    *v = (int)x;
    return LT_OK;
}

lt_status lt_train(const lt_run_config *c, lt_comm *world, lt_error *err) {
    run_state r;
    memset(&r, 0, sizeof r);
    lt_line_log_init(&r.metrics, "");
    const int rank = lt_comm_rank(world), N = lt_comm_size(world);
    /* threads 0 means all cores; ranks sharing a node split them, as
     * torchrun's one thread per process avoids N pools fighting. */
    int threads = c->threads;
    const int per_node = lt_comm_info(world)->local_size;
    if (threads == 0 && per_node > 1) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus / per_node > 1 ? (int)(cpus / per_node) : 1;
    }
    r.lead = rank == 0;
    /* Until the run has loaded, a stop signal ends the process at once:
     * there is nothing to save yet, and loading a large model can outlast
     * the time a scheduler gives between its signal and SIGKILL. */
    lt_stop_install(r.lead);
    lt_status st;
    char *config_json = NULL;
    const lt_ops *ops = NULL;
    if ((st = lt_backend_open(c->device, threads, &ops, err)) != LT_OK) goto done;
    if (r.lead && (st = lt_make_dirs(c->output_dir, err)) != LT_OK) goto done;
    lt_quant_config qc;
    if ((st = lt_run_config_quant(c, &qc, err)) != LT_OK) goto done;
    /* The same answer on any number of ranks (one rank has nothing to
     * split, but the setting would be refused on two). */
    if (c->shard_base && qc.format == LT_QUANT_NONE) {
        st = lt_fail(err, LT_ERR_CONFIG, "shard_base needs a quantized base (load_in_4bit or load_in_8bit); "
                     "an fp32 base is kept whole on every rank");
        goto done;
    }
    const int shards = c->shard_base ? N : 1;
    if ((st = lt_model_file_load_sharded(c->model, &qc, shards > 1 ? rank : 0, shards, ops, &r.model,
                                         &r.model_bytes_read, err)) != LT_OK)
        goto done;
    const lt_model_config *mc = lt_model_get_config(r.model);
    if (c->tokenizer[0] &&
        (st = lt_tokenizer_load(c->tokenizer, mc->vocab_size, &r.tok, err)) != LT_OK)
        goto done;
    const int full = lt_run_config_full(c);
    lt_lora_config lc;
    if ((st = lt_run_config_lora(c, &lc, err)) != LT_OK) goto done;
    if (full)
        st = lt_model_enable_full_training(r.model, err);
    else
        st = lt_model_add_lora(r.model, &lc, c->seed, err);
    if (st == LT_OK && !full && c->adapter_name_or_path[0]) st = start_from_adapter(c, &r, &lc, err);
    if (st != LT_OK) goto done;
    lt_model_set_gradient_checkpointing(r.model, c->gradient_checkpointing);
    if ((st = lt_dp_setup(&r.dp, world, r.model, c->ddp_bucket_cap_mb, c->zero1, err)) != LT_OK) goto done;

    const int T = c->max_seq_length ? c->max_seq_length : mc->seq_len;
    if (T > mc->seq_len) {
        st = lt_fail(err, LT_ERR_CONFIG, "max_seq_length = %d exceeds the model's seq_len %d", T,
                     mc->seq_len);
        goto done;
    }
    if ((st = load_data(c, &r, T, err)) != LT_OK) goto done;
    const int B = c->per_device_train_batch_size, GA = c->gradient_accumulation_steps;
    /* The global micro-batch is N x B rows; this rank takes its B. */
    if ((st = lt_loader_create(r.train, B * N, c->seed, 1, &r.loader, err)) != LT_OK) goto done;
    const uint64_t rows = lt_loader_rows_per_epoch(r.loader);
    const int64_t total = c->max_steps > 0
                              ? c->max_steps
                              : (int64_t)ceil(c->num_train_epochs * (double)rows /
                                              ((double)B * N * GA));
    if (total < 1) {
        st = lt_fail(err, LT_ERR_CONFIG, "num_train_epochs = %g gives no optimizer step", c->num_train_epochs);
        goto done;
    }
    lt_lr_schedule sched = {.lr = c->learning_rate, .total_steps = total,
                            .warmup_steps = c->warmup_steps > 0
                                                ? c->warmup_steps
                                                : lt_warmup_steps_from_ratio(c->warmup_ratio, total)};
    if ((st = lt_lr_schedule_parse(c->lr_scheduler_type, &sched.kind, err)) != LT_OK) goto done;
    if ((st = lt_lr_schedule_validate(&sched, err)) != LT_OK) goto done;
    const lt_param_table *tab = lt_model_train_table(r.model);
    lt_adamw_config ac = {.beta1 = c->adam_beta1, .beta2 = c->adam_beta2, .eps = c->adam_epsilon,
                          .weight_decay = c->weight_decay};
    /* ZeRO-1: moments for this rank's shard only. */
    if ((st = lt_adamw_init(&r.opt, r.dp.zero1 ? r.dp.shard_len : tab->numel, &ac, err)) != LT_OK) goto done;
    r.opt_ready = 1;
    if ((st = lt_model_reserve(r.model, B, T, err)) != LT_OK) goto done;
    r.inputs = malloc((size_t)GA * B * T * sizeof *r.inputs);
    r.targets = malloc((size_t)GA * B * T * sizeof *r.targets);
    if (!r.inputs || !r.targets) {
        st = lt_fail(err, LT_ERR_NOMEM, "batch buffers: out of memory");
        goto done;
    }
    /* Resume: every rank reads the same checkpoint (the LoRA state is
     * replicated) and continues from its step, sampler cursor and moments. */
    if ((st = lt_model_file_fingerprint(c->model, &r.base_bytes, &r.base_fingerprint, err)) != LT_OK) goto done;
    int64_t start = 0, tokens_seen = 0;
    char ck[4096] = "";
    if (c->resume_from_checkpoint[0]) {
        if ((st = lt_checkpoint_resolve(c->resume_from_checkpoint, c->output_dir,
                                        r.lead ? stderr : NULL, ck, sizeof ck, err)) != LT_OK)
            goto done;
    }
    if (c->resume_from_checkpoint[0] && !ck[0]) {
        if (r.lead) printf("resume_from_checkpoint %s: no checkpoint in %s yet; starting at step 0\n",
                           c->resume_from_checkpoint, c->output_dir);
    } else if (c->resume_from_checkpoint[0]) {
        lt_ckpt_meta meta;
        if ((st = full ? lt_checkpoint_load_full(ck, r.model, &r.opt, r.dp.zero1 ? r.dp.shard_lo : 0,
                                                 r.base_bytes, r.base_fingerprint, &meta, err)
                       : lt_checkpoint_load(ck, r.model, &r.opt, r.base_bytes, r.base_fingerprint, &meta, err)) != LT_OK ||
            (st = lt_loader_seek(r.loader, meta.cursor, err)) != LT_OK)
            goto done;
        /* At exactly the last step the run was stopped after its final
         * checkpoint but before its final evaluation and outputs (killed,
         * or preempted): resuming runs no step and writes those. */
        if (meta.global_step > total) {
            st = lt_fail(err, LT_ERR_CONFIG, "%s is at step %lld, beyond this run's %lld steps",
                         ck, (long long)meta.global_step, (long long)total);
            goto done;
        }
        start = meta.global_step;
        tokens_seen = meta.tokens_seen;
        /* ...unless those are there already: a finished run resumed (a job
         * script that always passes `latest`) leaves its outputs alone. */
        int finished = start == total && r.lead && outputs_complete(c, ck, r.eval != NULL, total);
        if ((st = lead_decides(&r, &finished, err)) != LT_OK) goto done;
        if (finished) {
            if (r.lead) {
                printf("%s is the last step (%lld) of this run, and its outputs in %s are complete: "
                       "nothing to do, nothing rewritten\n", ck, (long long)total, c->output_dir);
                fflush(stdout);
            }
            goto done;
        }
        if (r.lead) {
            printf("resuming from %s at step %lld (written by %d rank(s), now %d)\n", ck,
                   (long long)start, meta.world_size, N);
            if (meta.sched.kind != sched.kind || meta.sched.lr != sched.lr ||
                meta.sched.total_steps != sched.total_steps || meta.sched.warmup_steps != sched.warmup_steps)
                printf("note: the checkpoint's schedule (%s, lr %g, warmup %lld of %lld steps) differs from "
                       "this run's (%s, lr %g, warmup %lld of %lld): the learning rate follows this run's\n",
                       lt_lr_schedule_name(meta.sched.kind), meta.sched.lr, (long long)meta.sched.warmup_steps,
                       (long long)meta.sched.total_steps, lt_lr_schedule_name(sched.kind), sched.lr,
                       (long long)sched.warmup_steps, (long long)sched.total_steps);
        }
    }
    r.last_saved = start;
    fault_slow("load", start);
    /* Loaded: from here a stop signal is honoured at the next point where
     * every rank can agree on it (an evaluation batch, the end of a step). */
    lt_stop_defer();
    if (r.lead) {
        size_t len = 0;
        FILE *mf = open_memstream(&config_json, &len);
        if (!mf) {
            st = lt_fail(err, LT_ERR_NOMEM, "run config: out of memory");
            goto done;
        }
        lt_run_config_write_json(c, mf);
        fclose(mf);
        if ((st = check_output_space(c, &r, len, start, total, err)) != LT_OK) goto done;
    }
    if ((st = write_start_files(c, &r, start, err)) != LT_OK) goto done;

    if (r.lead) {
        if (full)
            printf("training %s: %d layers, dim %d; full fine-tuning: all %zu parameters train in "
                   "fp32%s%s\n", c->model, mc->n_layers, mc->dim, tab->numel,
                   r.dp.zero1 ? "; AdamW moments sharded across the ranks (ZeRO-1)" : "",
                   c->gradient_checkpointing ? "; gradient checkpointing" : "");
        else
            printf("training %s: %d layers, dim %d; LoRA r %d on %s: %zu trainable parameters%s\n",
                   c->model, mc->n_layers, mc->dim, lc.r, c->target_modules, tab->numel,
                   c->gradient_checkpointing ? "; gradient checkpointing" : "");
        char base[320];
        lt_describe_base(r.model, base, sizeof base);
        printf("base: %s\n", base);
        char compute[320];
        lt_backend_describe(c->device, ops, compute, sizeof compute);
        printf("compute: %s\n", compute);
        if (N > 1) {
            const lt_rank_info *ri = lt_comm_info(world);
            char th[32] = "all cores";
            if (threads) snprintf(th, sizeof th, "%d thread%s", threads, threads == 1 ? "" : "s");
            printf("data parallel: %d ranks (%s, %s backend), %d per node, %s each; global batch "
                   "%d x %d x %d sequences; %d gradient buckets%s\n",
                   N, ri->launcher, lt_comm_backend_name(world), ri->local_size, th, N, GA, B,
                   lt_grad_sync_buckets(r.dp.sync),
                   r.dp.gather ? "; base sharded: each rank stores 1/N of every layer" : "");
        }
        printf("data: %zu training sequences of %d tokens (%lld target tokens)%s; %lld steps of %d x %d "
               "sequences, %s schedule, warmup %lld\n",
               lt_dataset_rows(r.train), T, (long long)lt_dataset_target_tokens(r.train),
               r.eval ? ", held-out set for eval_loss" : "", (long long)total, GA, B * N,
               lt_lr_schedule_name(sched.kind), (long long)sched.warmup_steps);
        fflush(stdout);
    }
    /* The bar is for a single process on a terminal. A launcher's ranks
     * (mpirun's, srun's, even one of them) write to a pseudo-terminal when
     * the job's output is a file: they log lines. */
    const int tty = r.lead && N == 1 && !strcmp(lt_comm_info(world)->launcher, "single") &&
                    isatty(STDOUT_FILENO) && !c->disable_tqdm;
    /* Where the run stopped (a stop signal every rank agreed on) and in
     * which phase: NULL after a step, else "loading" or "evaluation". */
    int stop_sig = 0, stopped = 0;
    int64_t stopped_at = start;
    const char *stopped_in = NULL;
    if ((st = agree_on_stop(&r.dp, &stop_sig, err)) != LT_OK) goto done;
    if (stop_sig) stopped = 1, stopped_in = "loading";
    /* The evaluation of the step the run starts at: step 0's, or that of a
     * resumed step whose eval_loss line is missing (a run stopped during
     * it). The final step's is the one after the loop. */
    int eval_first = r.eval && (start == 0 || (c->eval_steps && start % c->eval_steps == 0 && start < total &&
                                               r.lead && !logged(c->output_dir, start, "\"eval_loss\":")));
    if (!stopped && (st = lead_decides(&r, &eval_first, err)) != LT_OK) goto done;
    if (!stopped && eval_first) {
        if ((st = evaluate_and_log(c, &r, start, 0, &stop_sig, err)) != LT_OK) goto done;
        if (stop_sig) stopped = 1, stopped_in = "evaluation";
    }

    progress p = {.tty = tty, .every = c->logging_steps, .total = total, .t0 = lt_now_s()};
    const double global_tokens = (double)GA * B * T * N;
    lt_comm_counters step_lo = {{0}, {0}, 0}, step_hi = step_lo;
    double grad_wait_total = 0, step_time_total = 0, comm_total = 0, overlapped_total = 0;
    for (int64_t step = start; !stopped && step < total; step++) {
        r.dp.global_targets = 0;
        r.dp.first_row = (uint64_t)rank * (uint64_t)B;
        for (int g = 0; g < GA; g++) {
            int64_t bt = 0;
            lt_loader_next_part(r.loader, rank * B, B, r.inputs + (size_t)g * B * T,
                                r.targets + (size_t)g * B * T, &bt);
            r.dp.global_targets += bt;
        }
        lt_comm_counters before, after, d;
        lt_comm_get_counters(world, &before);
        double t0 = lt_now_s();
        lt_step_stats s;
        st = lt_train_step(r.model, &r.opt, &sched, step, c->max_grad_norm, r.inputs, r.targets, GA,
                           B, T, c->seed, &r.dp, &s, err);
        if (st != LT_OK) goto done;
        double dt = lt_now_s() - t0;
        lt_comm_get_counters(world, &after);
        counters_delta(&after, &before, &d);
        counters_range(&d, step == start, &step_lo, &step_hi);
        grad_wait_total += s.grad_wait_s;
        overlapped_total += (double)s.grad_overlapped_bytes;
        comm_total += d.wait_s;
        step_time_total += dt;
        if (c->ddp_check_replicas && N > 1 &&
            (st = lt_dp_check_replicas(&r.dp, lt_model_train_params(r.model), &r.opt, step, err)) != LT_OK)
            goto done;
        tokens_seen += (int64_t)global_tokens;
        lt_data_cursor cur = lt_loader_cursor(r.loader);
        double epoch = (double)cur.epoch + (double)cur.position / (double)rows;
        if (r.lead) {
            st = log_line(&r, err,
                          "{\"step\":%lld,\"epoch\":%.4f,\"loss\":%.17g,\"learning_rate\":%.9g,\"grad_norm\":%.9g,"
                          "\"target_tokens\":%lld,\"tokens_seen\":%lld,\"tokens_per_s\":%.1f,\"mem_mib\":%.1f,"
                          "\"elapsed_s\":%.3f,\"ranks\":%d,\"allreduce_bytes\":%llu,\"allgather_bytes\":%llu,"
                          "\"reduce_bytes\":%llu,\"reduce_scatter_bytes\":%llu,\"comm_wait_s\":%.6f,\"grad_wait_s\":%.6f,"
                          "\"grad_overlapped_bytes\":%llu,\"grad_started_bytes\":%llu}\n",
                          (long long)step + 1, epoch, s.loss, (double)s.lr, s.grad_norm, (long long)s.tokens,
                          (long long)tokens_seen, global_tokens / dt, mem_mib(), lt_now_s() - p.t0, N,
                          (unsigned long long)d.bytes[LT_COLL_ALLREDUCE],
                          (unsigned long long)d.bytes[LT_COLL_ALLGATHER],
                          (unsigned long long)d.bytes[LT_COLL_REDUCE],
                          (unsigned long long)d.bytes[LT_COLL_REDUCE_SCATTER], d.wait_s, s.grad_wait_s,
                          (unsigned long long)s.grad_overlapped_bytes, (unsigned long long)s.grad_started_bytes);
            if (st != LT_OK) goto done;
            show(&p, step + 1, &s, global_tokens / dt);
        }
        fault_slow("step", step + 1);
        if (c->eval_steps && (step + 1) % c->eval_steps == 0 && step + 1 < total) {
            if ((st = evaluate_and_log(c, &r, step + 1, tty, &stop_sig, err)) != LT_OK) goto done;
            if (stop_sig) stopped = 1, stopped_at = step + 1, stopped_in = "evaluation";
        }
        if (c->save_steps && (step + 1) % c->save_steps == 0) {
            if ((r.lead || full) && (st = save_checkpoint(c, &r, &sched, step + 1, tokens_seen, err)) != LT_OK)
                goto done;
            r.last_saved = step + 1;
        }
        if (!stopped && step + 1 < total) {
            if ((st = agree_on_stop(&r.dp, &stop_sig, err)) != LT_OK) goto done;
            if (stop_sig) stopped = 1, stopped_at = step + 1;
        }
        if (stopped && tty) printf("\n");
    }
    if (!stopped) {
        if ((st = evaluate_and_log(c, &r, total, 0, &stop_sig, err)) != LT_OK) goto done;
        if (stop_sig) stopped = 1, stopped_at = total, stopped_in = "evaluation";
    }
    /* Stopped with steps since the last checkpoint: save them. */
    if (stopped && stopped_at != r.last_saved) {
        if ((r.lead || full) && (st = save_checkpoint(c, &r, &sched, stopped_at, tokens_seen, err)) != LT_OK)
            goto done;
        r.last_saved = stopped_at;
    }
    if (r.lead && (st = lt_line_log_close(&r.metrics, err)) != LT_OK) goto done;
    /* Stopped before its first step: no report of training, at once. */
    if (stopped && stopped_at == start) {
        if (r.lead) {
            printf("stopped by %s %s step %lld of %lld: %s; run again with --resume_from_checkpoint latest "
                   "to continue (exit status %d)\n",
                   lt_stop_signal_name(stop_sig),
                   !strcmp(stopped_in, "loading") ? "while loading, before" : "during the evaluation at",
                   (long long)start, (long long)total,
                   start ? "the checkpoint it started from is complete" : "no step taken, nothing to save",
                   LT_EXIT_STOPPED);
            fflush(stdout);
        }
        st = LT_STOPPED;
        goto done;
    }
    lt_rank_memory *mem = calloc((size_t)N, sizeof *mem);
    if (!mem) {
        st = lt_fail(err, LT_ERR_NOMEM, "memory report: out of memory");
        goto done;
    }
    st = lt_dp_gather_memory(&r.dp, r.model_bytes_read, mem, err);
    if (st == LT_OK && r.lead) {
        /* The report covers training: written before the final save stages
         * the weights. */
        char path[LT_PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/memory.json", c->output_dir);
        st = lt_memory_report_write(path, r.model, mem, N, err);
        if (st == LT_OK) lt_memory_report_print(stdout, mem, N);
        if (st == LT_OK && stopped) {
            char where[96];
            snprintf(where, sizeof where, "%s step %lld of %lld",
                     !stopped_in ? "after" : "during the evaluation at", (long long)stopped_at, (long long)total);
            printf("stopped by %s %s: the checkpoint of step %lld in %s is complete; run again with "
                   "--resume_from_checkpoint latest to continue (exit status %d)\n",
                   lt_stop_signal_name(stop_sig), where, (long long)stopped_at, c->output_dir, LT_EXIT_STOPPED);
            fflush(stdout);
        } else if (st == LT_OK)
            st = full ? lt_model_save_safetensors(r.model, c->output_dir, err)
                      : lt_adapter_save(r.model, c->output_dir, c->model, err);
        if (st == LT_OK && !stopped) {
            printf("done: %lld steps in %.1f s; %s written to %s/%s\n", (long long)total,
                   lt_now_s() - p.t0, full ? "model" : "adapter", c->output_dir,
                   full ? "model.safetensors" : "adapter_model.safetensors");
            if (N > 1 && total > start)
                print_comm_summary(&r, total - start, &step_lo, &step_hi, comm_total,
                                   grad_wait_total, step_time_total, overlapped_total);
        }
    }
    free(mem);
    if (st == LT_OK && stopped) st = LT_STOPPED;
done:
    free(config_json);
    lt_stop_restore();
    run_free(&r, st != LT_OK && st != LT_STOPPED);
    return st;
}
