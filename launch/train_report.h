/* What a run prints as it goes and at its end, besides the banner, the
 * evaluations and the checkpoints: each step's progress (a bar redrawn on
 * a terminal, else a line at the first and last step and every
 * logging_steps) and, on several ranks, the communication summary. */
#ifndef LT_LAUNCH_TRAIN_REPORT_H
#define LT_LAUNCH_TRAIN_REPORT_H

#include <stdint.h>

#include "dist/comm.h"
#include "launch/data_parallel.h"
#include "launch/trainer.h"
#include "model/llama.h"

typedef struct {
    int tty;       /* a bar redrawn in place, else lines */
    int every;     /* logging_steps */
    int64_t total; /* the run's steps */
    double t0;     /* when the steps began (lt_now_s) */
} lt_progress;

/* Tracked host and device bytes now, in MiB. */
double lt_tracked_mib(void);

/* step: steps done, s the last one's figures. */
void lt_progress_show(const lt_progress *p, int64_t step, const lt_step_stats *s, double tok_s);

/* The steps' communication on this rank, added up for the summary. */
typedef struct {
    int64_t steps;
    lt_comm_counters lo, hi;  /* each collective's least and most bytes in a step */
    double comm_s;            /* blocked in collectives */
    double grad_wait_s;       /* of it, waiting for gradient buckets after backward */
    double step_s;            /* the steps' time */
    double overlapped_bytes;  /* gradient bytes reduced while backward ran */
} lt_comm_totals;

/* d: the collectives between two readings of lt_comm_get_counters. */
void lt_comm_step(const lt_comm_counters *now, const lt_comm_counters *before, lt_comm_counters *d);
/* Adds one step: d its collectives, s its figures, step_s its time. */
void lt_comm_totals_add(lt_comm_totals *t, const lt_comm_counters *d, const lt_step_stats *s, double step_s);

/* The summary's communication lines: what a step moved and what the same
 * model would all-reduce as a full fine-tune, and where the time went.
 * Steps need not move the same bytes (a sharded base gathers one layer
 * more after an evaluation), so each collective is the figure every step
 * shared, or its least and most; metrics.jsonl has each step's. */
void lt_comm_summary_print(const lt_comm_totals *t, const lt_dp *dp, const lt_model *m);

#endif
