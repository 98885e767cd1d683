#include "launch/metrics.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "launch/run_config.h"

/* ------------------------------------------------------------ writing */

void lt_metrics_init(lt_metrics *m) { lt_line_log_init(&m->log, ""); }

/* key with the value as printf writes it with fmt. Room for any double in
 * %.6f (309 integer digits). 0 when out of memory. */
static int add(cJSON *o, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int add(cJSON *o, const char *key, const char *fmt, ...) {
    char buf[400];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return o && n > 0 && (size_t)n < sizeof buf && cJSON_AddRawToObject(o, key, buf);
}

/* Appends o as one line (one write) and deletes it; ok 0: building it ran
 * out of memory. */
static lt_status write_line(lt_metrics *m, cJSON *o, int ok, lt_error *err) {
    char *json = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    const size_t n = json ? strlen(json) : 0;
    char *line = json ? malloc(n + 1) : NULL;
    if (line) {
        memcpy(line, json, n);
        line[n] = '\n';
    }
    free(json);
    if (!line) return lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", m->log.path);
    lt_status st = lt_line_log_append(&m->log, line, n + 1, err);
    free(line);
    return st;
}

lt_status lt_metrics_write_step(lt_metrics *m, const lt_metrics_step *s, lt_error *err) {
    const lt_step_stats *t = &s->stats;
    const uint64_t *bytes = s->comm.bytes;
    cJSON *o = cJSON_CreateObject();
    const int ok =
        add(o, "step", "%lld", (long long)s->step) && add(o, "epoch", "%.4f", s->epoch) &&
        add(o, "loss", "%.17g", t->loss) && add(o, "learning_rate", "%.9g", (double)t->lr) &&
        add(o, "grad_norm", "%.9g", t->grad_norm) && add(o, "target_tokens", "%lld", (long long)t->tokens) &&
        add(o, "tokens_seen", "%lld", (long long)s->tokens_seen) &&
        add(o, "tokens_per_s", "%.1f", s->tokens_per_s) && add(o, "mem_mib", "%.1f", s->mem_mib) &&
        add(o, "elapsed_s", "%.3f", s->elapsed_s) && add(o, "ranks", "%d", s->ranks) &&
        add(o, "allreduce_bytes", "%llu", (unsigned long long)bytes[LT_COLL_ALLREDUCE]) &&
        add(o, "allgather_bytes", "%llu", (unsigned long long)bytes[LT_COLL_ALLGATHER]) &&
        add(o, "reduce_bytes", "%llu", (unsigned long long)bytes[LT_COLL_REDUCE]) &&
        add(o, "reduce_scatter_bytes", "%llu", (unsigned long long)bytes[LT_COLL_REDUCE_SCATTER]) &&
        add(o, "comm_wait_s", "%.6f", s->comm.wait_s) && add(o, "grad_wait_s", "%.6f", t->grad_wait_s) &&
        add(o, "grad_overlapped_bytes", "%llu", (unsigned long long)t->grad_overlapped_bytes) &&
        add(o, "grad_started_bytes", "%llu", (unsigned long long)t->grad_started_bytes);
    return write_line(m, o, ok, err);
}

lt_status lt_metrics_write_eval(lt_metrics *m, int64_t step, double eval_loss, int64_t eval_tokens,
                                lt_error *err) {
    cJSON *o = cJSON_CreateObject();
    const int ok = add(o, "step", "%lld", (long long)step) && add(o, "eval_loss", "%.17g", eval_loss) &&
                   add(o, "eval_tokens", "%lld", (long long)eval_tokens);
    return write_line(m, o, ok, err);
}

lt_status lt_metrics_close(lt_metrics *m, lt_error *err) { return lt_line_log_close(&m->log, err); }

/* ------------------------------------------------------------ reading */

/* Calls fn for each line of path with the step it starts with (-1 for a
 * line without one); 0 when there is no file. */
static int each_line(const char *path, void (*fn)(void *, char *, long long), void *user) {
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

/* The first pass only learns whether a line goes; the second, if one
 * does, writes the others to the replacement. */
static lt_status keep_until(const char *path, int64_t step, lt_error *err) {
    keep_state k = {.step = step, .af = NULL, .st = LT_OK, .err = err, .dropped = 0};
    if (!each_line(path, keep_line, &k) || !k.dropped) return LT_OK;
    lt_atomic_file af;
    if ((k.st = lt_atomic_open(&af, path, err)) != LT_OK) return k.st;
    k.af = &af;
    each_line(path, keep_line, &k);
    if (k.st != LT_OK) {
        lt_atomic_abort(&af);
        return k.st;
    }
    return lt_atomic_commit(&af, err);
}

lt_status lt_metrics_open(lt_metrics *m, const char *dir, int64_t resumed_at, lt_error *err) {
    char path[LT_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    if (resumed_at > 0) {
        lt_status st = keep_until(path, resumed_at, err);
        if (st != LT_OK) return st;
    } else if (unlink(path) != 0 && errno != ENOENT) {
        return lt_fail(err, LT_ERR_IO, "%s: cannot replace: %s", path, strerror(errno));
    }
    lt_line_log_init(&m->log, path);
    return LT_OK;
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

int lt_metrics_logged(const char *dir, int64_t step, const char *key) {
    char path[LT_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    find_state f = {step, key, 0};
    each_line(path, find_line, &f);
    return f.found;
}
