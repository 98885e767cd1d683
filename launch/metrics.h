/* metrics.jsonl, the run's log: one JSON object a line, written by rank 0,
 * each line whole or not at all (io/fileutil.h's lt_line_log).
 *
 * Every line starts with its "step" key, and readers rely on it: a resumed
 * run keeps the lines of the steps it resumes after, the finished-run check
 * looks for the last step's lines, and the tests grep for the prefix. A
 * training step's line records its loss, learning rate, gradient norm,
 * tokens, throughput, memory and each collective's bytes; an evaluation's
 * its eval_loss and eval_tokens.
 *
 * Numbers are written with fixed printf formats (the losses with 17
 * significant digits, which read back bit for bit), not with cJSON's own
 * printer: that stops at 15 digits when those are within an epsilon, and
 * the tests compare losses bitwise across runs and resumes. */
#ifndef LT_LAUNCH_METRICS_H
#define LT_LAUNCH_METRICS_H

#include <stdint.h>

#include "core/status.h"
#include "dist/comm.h"
#include "io/fileutil.h"
#include "launch/trainer.h"

typedef struct {
    lt_line_log log;
} lt_metrics;

/* What a training step's line records, in this order. */
typedef struct {
    int64_t step;           /* steps done, this one included */
    double epoch;           /* epochs done, fractional */
    lt_step_stats stats;    /* loss, learning rate, gradient norm, target tokens, gradient sync */
    int64_t tokens_seen;    /* sequence tokens of every step so far, all ranks */
    double tokens_per_s;    /* the step's sequence tokens over its time */
    double mem_mib;         /* tracked host and device bytes now */
    double elapsed_s;       /* since the step loop began */
    int ranks;
    lt_comm_counters comm;  /* the step's collectives on this rank */
} lt_metrics_step;

/* A writer with no file: writes nothing until lt_metrics_open, and
 * lt_metrics_close is safe on it. */
void lt_metrics_init(lt_metrics *m);

/* dir/metrics.jsonl for a run that starts after resumed_at steps. A fresh
 * run (0) replaces the file: it is removed now and the first line creates
 * it again. A resumed run keeps the lines of steps up to resumed_at (the
 * later ones, written before the interruption, are dropped atomically; a
 * file with none leaves as it is) and appends after them. */
lt_status lt_metrics_open(lt_metrics *m, const char *dir, int64_t resumed_at, lt_error *err);

/* A line that cannot be written ends the run with an error naming the
 * file. */
lt_status lt_metrics_write_step(lt_metrics *m, const lt_metrics_step *s, lt_error *err);
lt_status lt_metrics_write_eval(lt_metrics *m, int64_t step, double eval_loss, int64_t eval_tokens,
                                lt_error *err);

/* fsyncs and closes (checked; err NULL: unchecked, for cleanup after a
 * failure). */
lt_status lt_metrics_close(lt_metrics *m, lt_error *err);

/* dir/metrics.jsonl has a line for step holding key ("\"loss\":" or
 * "\"eval_loss\":"); 0 when there is no file. */
int lt_metrics_logged(const char *dir, int64_t step, const char *key);

#endif
