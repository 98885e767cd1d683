#include "optim/lr_schedule.h"

#include <math.h>
#include <string.h>

/* M_PI is X/Open, not ISO C or POSIX; this is the double Python's math.pi holds. */
static const double k_pi = 3.14159265358979323846;

static const char *const k_names[] = {"constant", "constant_with_warmup", "linear", "cosine"};
enum { K_NKINDS = (int)(sizeof k_names / sizeof k_names[0]) };

lt_status lt_lr_schedule_parse(const char *name, lt_sched_kind *out, lt_error *err) {
    if (!name || !out) return lt_fail(err, LT_ERR_INVALID, "lr_scheduler_type: NULL argument");
    for (int k = 0; k < K_NKINDS; k++)
        if (!strcmp(name, k_names[k])) {
            *out = (lt_sched_kind)k;
            return LT_OK;
        }
    return lt_fail(err, LT_ERR_CONFIG,
                   "lr_scheduler_type = \"%.64s\", expected one of constant, "
                   "constant_with_warmup, linear, cosine",
                   name);
}

const char *lt_lr_schedule_name(lt_sched_kind k) {
    return (unsigned)k < (unsigned)K_NKINDS ? k_names[k] : "unknown";
}

lt_status lt_lr_schedule_validate(const lt_lr_schedule *s, lt_error *err) {
    if (!s) return lt_fail(err, LT_ERR_INVALID, "lr schedule: NULL");
    if ((unsigned)s->kind >= (unsigned)K_NKINDS)
        return lt_fail(err, LT_ERR_CONFIG,
                       "lr_scheduler_type = %d, expected 0..%d (constant, "
                       "constant_with_warmup, linear, cosine)",
                       (int)s->kind, K_NKINDS - 1);
    if (!(s->lr >= 0.0) || !isfinite(s->lr))
        return lt_fail(err, LT_ERR_CONFIG, "learning_rate = %g, expected a finite number >= 0",
                       (double)s->lr);
    if (s->total_steps < 1)
        return lt_fail(err, LT_ERR_CONFIG, "total_steps = %lld, expected >= 1",
                       (long long)s->total_steps);
    /* A warmup longer than the run is what transformers takes too: the lr
     * then rises for the whole run (s / W at every step s < T <= W). */
    if (s->warmup_steps < 0)
        return lt_fail(err, LT_ERR_CONFIG, "warmup_steps = %lld, expected 0 or more",
                       (long long)s->warmup_steps);
    return LT_OK;
}

/* The multiplier, term for term as transformers.optimization writes it
 * (Python floats are doubles; int64 steps convert exactly below 2^53). */
static double lr_lambda(const lt_lr_schedule *s, int64_t step) {
    const int64_t W = s->warmup_steps, T = s->total_steps;
    if (s->kind == LT_SCHED_CONSTANT) return 1.0;
    if (step < W) return (double)step / (double)(W > 1 ? W : 1);
    switch (s->kind) {
    case LT_SCHED_CONSTANT_WITH_WARMUP: return 1.0;
    case LT_SCHED_LINEAR: {
        double f = (double)(T - step) / (double)(T - W > 1 ? T - W : 1);
        return f > 0.0 ? f : 0.0;
    }
    case LT_SCHED_COSINE: {
        double progress = (double)(step - W) / (double)(T - W > 1 ? T - W : 1);
        /* HF: math.pi * float(num_cycles) * 2.0 * progress with num_cycles
         * 0.5; the * 0.5 * 2.0 is exact, leaving pi * progress. */
        double f = 0.5 * (1.0 + cos(k_pi * progress));
        return f > 0.0 ? f : 0.0;
    }
    case LT_SCHED_CONSTANT: break;
    }
    return 1.0;
}

float lt_lr_at(const lt_lr_schedule *s, int64_t step) {
    return (float)(s->lr * lr_lambda(s, step));
}

int64_t lt_warmup_steps_from_ratio(double warmup_ratio, int64_t total_steps) {
    if (!(warmup_ratio >= 0.0 && warmup_ratio <= 1.0) || total_steps < 0) return -1;
    return (int64_t)ceil((double)total_steps * warmup_ratio);
}
