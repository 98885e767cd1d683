#include "launch/train_report.h"

#include <stdio.h>

#include "core/alloc.h"
#include "core/clock.h"

/* ------------------------------------------------------------ progress */

static void fmt_duration(double s, char *buf, size_t cap) {
    long t = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;
    if (t >= 3600)
        snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
}

double lt_tracked_mib(void) {
    lt_mem_stats ms;
    lt_mem_get_stats(&ms);
    return (double)(ms.total_current[LT_SPACE_HOST] + ms.total_current[LT_SPACE_DEVICE]) / (1 << 20);
}

void lt_progress_show(const lt_progress *p, int64_t step, const lt_step_stats *s, double tok_s) {
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
               lt_tracked_mib(), e1, e2);
        if (step == p->total) printf("\n");
        fflush(stdout);
    } else if (step == 1 || step == p->total || step % p->every == 0) {
        printf("step %lld/%lld | loss %.4f | lr %.3e | grad_norm %.4f | %.0f tok/s | mem %.1f MiB | "
               "elapsed %s | eta %s\n",
               (long long)step, (long long)p->total, s->loss, (double)s->lr, s->grad_norm, tok_s,
               lt_tracked_mib(), e1, e2);
        fflush(stdout);
    }
}

/* ------------------------------------------------------------ communication */

void lt_comm_step(const lt_comm_counters *now, const lt_comm_counters *before, lt_comm_counters *d) {
    for (int k = 0; k < LT_COLL_COUNT; k++) {
        d->calls[k] = now->calls[k] - before->calls[k];
        d->bytes[k] = now->bytes[k] - before->bytes[k];
    }
    d->wait_s = now->wait_s - before->wait_s;
}

void lt_comm_totals_add(lt_comm_totals *t, const lt_comm_counters *d, const lt_step_stats *s, double step_s) {
    /* Widens [lo, hi] to each collective's bytes of step d; the first
     * step sets both. */
    if (t->steps++ == 0) {
        t->lo = t->hi = *d;
    } else {
        for (int k = 0; k < LT_COLL_COUNT; k++) {
            if (d->bytes[k] < t->lo.bytes[k]) t->lo.bytes[k] = d->bytes[k];
            if (d->bytes[k] > t->hi.bytes[k]) t->hi.bytes[k] = d->bytes[k];
        }
    }
    t->grad_wait_s += s->grad_wait_s;
    t->overlapped_bytes += (double)s->grad_overlapped_bytes;
    t->comm_s += d->wait_s;
    t->step_s += step_s;
}

void lt_comm_summary_print(const lt_comm_totals *t, const lt_dp *dp, const lt_model *m) {
    const int64_t steps = t->steps;
    const lt_comm_counters *lo = &t->lo, *hi = &t->hi;
    const double comm_s = t->comm_s, grad_wait_s = t->grad_wait_s, step_s = t->step_s;
    const double overlapped_bytes = t->overlapped_bytes;
    lt_base_memory bm;
    lt_model_base_memory(m, &bm);
    const double grad_bytes = (double)lt_model_train_table(m)->numel * 4.0;
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
           dp->size, lt_comm_backend_name(dp->comm), (long long)steps);
    for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++) {
        const uint64_t a = lo->bytes[shown[i].k], b = hi->bytes[shown[i].k];
        printf("%s %llu", shown[i].name, (unsigned long long)a);
        if (b != a) printf(" to %llu", (unsigned long long)b);
        printf(" bytes%s", i + 1 < sizeof shown / sizeof shown[0] ? ", " : "; ");
    }
    if (lt_model_is_full_training(m))
        printf("full fine-tuning: gradients of %.0f bytes%s\n", grad_bytes,
               dp->zero1 ? " reduce-scattered to their ZeRO-1 owners, parameters all-gathered" : "");
    else
        printf("LoRA gradients %.0f bytes (a full fine-tune would all-reduce %.0f bytes, %.0fx more)\n",
               grad_bytes, full_bytes, full_bytes / grad_bytes);
    printf("communication time on rank 0 over %lld steps: %.3f s blocked in collectives (%.1f%% of "
           "step time; includes waiting for slower ranks), of which %.3f s waiting for gradient "
           "buckets after backward",
           (long long)steps, comm_s, step_s > 0 ? 100.0 * comm_s / step_s : 0.0, grad_wait_s);
    printf("; %.0f%% of the gradient bytes were all-reduced while backward ran",
           100.0 * overlapped_bytes / (grad_bytes * (double)steps));
    if (dp->gather) {
        lt_shard_gather_stats gs;
        lt_shard_gather_get_stats(dp->gather, &gs);
        printf("; sharded base (whole run, evaluation included): %llu layer gathers, %llu "
               "prefetched, %.3f s blocked",
               (unsigned long long)gs.gathers, (unsigned long long)gs.prefetched, gs.exposed_s);
    }
    printf("\n");
}
