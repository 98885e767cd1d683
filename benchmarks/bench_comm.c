/* Time of one blocking all-reduce of COUNT floats on the ranks mpirun
 * starts (median of REPS after a warm-up): what the LoRA gradient
 * all-reduce costs when nothing hides it, against which the trainer's
 * exposed wait gives the overlap. Prints one JSON line on rank 0.
 * Usage: mpirun -np N bench_comm COUNT [REPS] */
#include <stdio.h>
#include <stdlib.h>

#include "dist/comm.h"
#include "core/clock.h"

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_comm COUNT [REPS]\n");
        return 2;
    }
    const size_t count = (size_t)strtoull(argv[1], NULL, 10);
    const int reps = argc > 2 ? atoi(argv[2]) : 50;
    lt_error err;
    lt_comm *c;
    if (lt_comm_init_world(&argc, &argv, &c, &err) != LT_OK) {
        fprintf(stderr, "bench_comm: %s\n", err.msg);
        return 1;
    }
    float *buf = lt_comm_alloc(c, LT_MEM_COMM, count * sizeof(float));
    double *t = malloc((size_t)reps * sizeof *t);
    int rc = 0;
    if (!buf || !t || reps < 1) {
        fprintf(stderr, "bench_comm: out of memory or bad REPS\n");
        rc = 1;
    }
    for (int i = -5; i < reps && rc == 0; i++) {
        if (lt_comm_barrier(c, &err) != LT_OK) rc = 1;
        double t0 = lt_now_s();
        if (rc == 0 && lt_comm_allreduce(c, buf, count, LT_DT_F32, LT_RED_SUM, &err) != LT_OK) rc = 1;
        if (i >= 0) t[i] = lt_now_s() - t0;
    }
    if (rc == 0 && lt_comm_rank(c) == 0) {
        qsort(t, (size_t)reps, sizeof *t, cmp);
        printf("{\"impl\":\"bench_comm\",\"ranks\":%d,\"bytes\":%zu,\"allreduce_ms_median\":%.4f,"
               "\"allreduce_ms_min\":%.4f}\n",
               lt_comm_size(c), count * sizeof(float), 1e3 * t[reps / 2], 1e3 * t[0]);
    }
    if (rc) fprintf(stderr, "bench_comm: %s\n", err.msg);
    free(t);
    lt_comm_free_buffer(c, buf);
    lt_comm_free(c);
    return rc;
}
