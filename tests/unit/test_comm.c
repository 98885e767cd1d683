/* The communicator on however many ranks mpirun starts (CTest: 1, 2 and 4,
 * and once without mpirun for the self transport): every collective's
 * result against values each rank computes on its own, non-blocking calls
 * completed out of order, the byte counters, the shard gather schedule and
 * the gradient buckets, and the reduce-scatter and all-gatherv ZeRO-1
 * shards its optimizer state with. Values are small integers, halves and
 * quarters, so sums are exact in any reduction order.
 * Usage: test_comm EXPECTED_SIZE EXPECTED_BACKEND */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "tests/lib/check.h"
#include "dist/comm.h"
#include "dist/grad_sync.h"
#include "dist/shard_gather.h"

static int g_rank, g_size;

static int test_collectives(lt_comm *c) {
    lt_error err;
    const size_t n = 1000;
    float *f = lt_comm_alloc(c, LT_MEM_COMM, n * sizeof *f);
    for (size_t i = 0; i < n; i++) f[i] = (float)(g_rank + 1) + 0.5f * (float)i;
    CHECK_OK(lt_comm_allreduce(c, f, n, LT_DT_F32, LT_RED_SUM, &err), &err);
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += f[i] != (float)(g_size * (g_size + 1) / 2) + 0.5f * (float)i * (float)g_size;
    CHECK(bad == 0, "all-reduce sum: %d of %zu elements wrong (f[1] = %g)", bad, n, (double)f[1]);

    double d[2] = {(double)g_rank, -(double)g_rank};
    CHECK_OK(lt_comm_allreduce(c, d, 1, LT_DT_F64, LT_RED_MAX, &err), &err);
    CHECK_OK(lt_comm_allreduce(c, d + 1, 1, LT_DT_F64, LT_RED_MIN, &err), &err);
    CHECK(d[0] == g_size - 1 && d[1] == -(g_size - 1), "max %g min %g", d[0], d[1]);
    int64_t big = (int64_t)1 << 40;
    big += g_rank;
    CHECK_OK(lt_comm_allreduce(c, &big, 1, LT_DT_I64, LT_RED_SUM, &err), &err);
    CHECK(big == ((int64_t)g_size << 40) + g_size * (g_size - 1) / 2, "int64 sum %lld", (long long)big);

    /* Three all-reduces in flight, completed in reverse order. */
    float *b[3];
    lt_comm_req *req[3];
    for (int k = 0; k < 3; k++) {
        b[k] = lt_comm_alloc(c, LT_MEM_COMM, 257 * sizeof(float));
        for (int i = 0; i < 257; i++) b[k][i] = (float)(k * 1000 + i + g_rank);
        CHECK_OK(lt_comm_iallreduce(c, b[k], 257, LT_DT_F32, LT_RED_SUM, &req[k], &err), &err);
    }
    int done = 0;
    for (int spins = 0; !done && spins < 1000000; spins++)
        CHECK_OK(lt_comm_test(c, req[2], &done, &err), &err);
    CHECK(done, "non-blocking all-reduce never completed under test()");
    CHECK_OK(lt_comm_wait(c, req[1], &err), &err);
    CHECK_OK(lt_comm_wait(c, req[0], &err), &err);
    for (int k = 0; k < 3; k++) {
        int wrong = 0;
        for (int i = 0; i < 257; i++)
            wrong += b[k][i] != (float)(g_size * (k * 1000 + i) + g_size * (g_size - 1) / 2);
        CHECK(wrong == 0, "non-blocking all-reduce %d: %d elements wrong", k, wrong);
        lt_comm_free_buffer(c, b[k]);
    }

    /* All-gather, out of place and in place, blocking and not. */
    const size_t bytes = 37;
    unsigned char *mine = malloc(bytes), *all = lt_comm_alloc(c, LT_MEM_COMM, bytes * (size_t)g_size);
    for (size_t i = 0; i < bytes; i++) mine[i] = (unsigned char)(g_rank * 31 + (int)i);
    CHECK_OK(lt_comm_allgather(c, mine, all, bytes, &err), &err);
    int wrong = 0;
    for (int r = 0; r < g_size; r++)
        for (size_t i = 0; i < bytes; i++) wrong += all[(size_t)r * bytes + i] != (unsigned char)(r * 31 + (int)i);
    CHECK(wrong == 0, "all-gather: %d bytes wrong", wrong);
    memset(all, 0, bytes * (size_t)g_size);
    memcpy(all + (size_t)g_rank * bytes, mine, bytes);
    lt_comm_req *rq;
    CHECK_OK(lt_comm_iallgather(c, all + (size_t)g_rank * bytes, all, bytes, &rq, &err), &err);
    CHECK_OK(lt_comm_wait(c, rq, &err), &err);
    wrong = 0;
    for (int r = 0; r < g_size; r++)
        for (size_t i = 0; i < bytes; i++) wrong += all[(size_t)r * bytes + i] != (unsigned char)(r * 31 + (int)i);
    CHECK(wrong == 0, "in-place non-blocking all-gather: %d bytes wrong", wrong);

    /* Broadcast from the last rank, reduce to rank 0. */
    uint64_t v[4] = {0, 0, 0, 0};
    if (g_rank == g_size - 1) v[0] = 7, v[1] = 11, v[2] = 13, v[3] = 17;
    CHECK_OK(lt_comm_broadcast(c, v, sizeof v, g_size - 1, &err), &err);
    CHECK(v[0] == 7 && v[3] == 17, "broadcast gave %llu %llu", (unsigned long long)v[0], (unsigned long long)v[3]);
    double s = g_rank + 0.25, total = -1;
    CHECK_OK(lt_comm_reduce(c, &s, g_rank == 0 ? &total : NULL, 1, LT_DT_F64, LT_RED_SUM, 0, &err), &err);
    if (g_rank == 0)
        CHECK(total == g_size * (g_size - 1) / 2.0 + 0.25 * g_size, "reduce to 0 gave %g", total);
    CHECK_OK(lt_comm_barrier(c, &err), &err);
    CHECK(lt_comm_broadcast(c, v, 8, g_size, &err) == LT_ERR_INVALID, "broadcast from root %d accepted", g_size);
    CHECK(strstr(err.msg, "root"), "bad root message: %s", err.msg);

    /* Counters: exactly what was asked, per kind (payload bytes). */
    lt_comm_counters k;
    lt_comm_get_counters(c, &k);
    CHECK(k.calls[LT_COLL_ALLREDUCE] == 7, "%llu all-reduce calls counted, expected 7",
          (unsigned long long)k.calls[LT_COLL_ALLREDUCE]);
    const uint64_t ar = n * 4 + 8 + 8 + 8 + 3 * 257 * 4;
    CHECK(k.bytes[LT_COLL_ALLREDUCE] == ar, "all-reduce bytes %llu, expected %llu",
          (unsigned long long)k.bytes[LT_COLL_ALLREDUCE], (unsigned long long)ar);
    CHECK(k.bytes[LT_COLL_ALLGATHER] == 2 * bytes * (uint64_t)g_size, "all-gather bytes %llu",
          (unsigned long long)k.bytes[LT_COLL_ALLGATHER]);
    CHECK(k.bytes[LT_COLL_BROADCAST] == sizeof v && k.bytes[LT_COLL_REDUCE] == 8 &&
              k.calls[LT_COLL_BARRIER] == 1,
          "broadcast %llu reduce %llu barrier calls %llu", (unsigned long long)k.bytes[LT_COLL_BROADCAST],
          (unsigned long long)k.bytes[LT_COLL_REDUCE], (unsigned long long)k.calls[LT_COLL_BARRIER]);
    free(mine);
    lt_comm_free_buffer(c, all);
    lt_comm_free_buffer(c, f);
    return 0;
}

/* Rank r's part in the v-collectives: uneven, and empty for rank 1. */
static size_t part_count(int r) { return r == 1 ? 0 : (size_t)(7 + 5 * r); }

/* Element j of rank r's reduce-scatter input: at most a few hundred in
 * quarters, so a float sum over four ranks is exact. */
static double rs_value(int r, size_t j) { return (double)(j % 61) * (r + 1) + 0.25 * r; }
static double rs_max_value(int r, size_t j) { return (double)((j * 7 + (size_t)r * 13) % 23) - 0.5 * r; }

enum { GUARD = 5 }; /* elements after a part that must stay untouched */
#define SENTINEL (-99.5)

/* counts[rank] elements of recv then GUARD sentinels, against want. */
static int wrong_part(const double *want, size_t n, const float *f32, const double *f64) {
    int wrong = 0;
    for (size_t i = 0; i < n + GUARD; i++) {
        const double w = i < n ? want[i] : SENTINEL;
        wrong += f32 ? f32[i] != (float)w : f64[i] != w;
    }
    return wrong;
}

static int test_reduce_scatter(lt_comm *c) {
    lt_error err;
    size_t *counts = calloc((size_t)g_size, sizeof *counts), *reuse = calloc((size_t)g_size, sizeof *reuse);
    size_t total = 0, off = 0;
    for (int r = 0; r < g_size; r++) {
        counts[r] = part_count(r);
        if (r < g_rank) off += counts[r];
        total += counts[r];
    }
    const size_t mine = counts[g_rank];
    float *s32 = lt_comm_alloc(c, LT_MEM_COMM, total * sizeof *s32);
    double *s64 = lt_comm_alloc(c, LT_MEM_COMM, total * sizeof *s64);
    double *smax = lt_comm_alloc(c, LT_MEM_COMM, total * sizeof *smax);
    float *r32 = lt_comm_alloc(c, LT_MEM_COMM, (mine + GUARD) * sizeof *r32);
    double *r64 = lt_comm_alloc(c, LT_MEM_COMM, (mine + GUARD) * sizeof *r64);
    double *sum = malloc((mine + 1) * sizeof *sum), *max = malloc((mine + 1) * sizeof *max);
    for (size_t j = 0; j < total; j++) {
        s32[j] = (float)rs_value(g_rank, j);
        s64[j] = rs_value(g_rank, j);
        smax[j] = rs_max_value(g_rank, j);
    }
    for (size_t i = 0; i < mine; i++) {
        sum[i] = 0;
        max[i] = rs_max_value(0, off + i);
        for (int r = 0; r < g_size; r++) {
            sum[i] += rs_value(r, off + i);
            if (rs_max_value(r, off + i) > max[i]) max[i] = rs_max_value(r, off + i);
        }
    }
    lt_comm_counters before, after;
    lt_comm_get_counters(c, &before);

    for (size_t i = 0; i < mine + GUARD; i++) r32[i] = (float)SENTINEL, r64[i] = SENTINEL;
    CHECK_OK(lt_comm_reduce_scatter(c, s32, r32, counts, LT_DT_F32, LT_RED_SUM, &err), &err);
    int wrong = wrong_part(sum, mine, r32, NULL);
    CHECK(wrong == 0, "reduce-scatter f32 sum on rank %d: %d of %zu elements (+%d guard) wrong (r32[0] = %g)",
          g_rank, wrong, mine, GUARD, mine ? (double)r32[0] : 0.0);
    CHECK_OK(lt_comm_reduce_scatter(c, smax, r64, counts, LT_DT_F64, LT_RED_MAX, &err), &err);
    wrong = wrong_part(max, mine, NULL, r64);
    CHECK(wrong == 0, "reduce-scatter f64 max on rank %d: %d of %zu elements (+%d guard) wrong", g_rank, wrong,
          mine, GUARD);
    int changed = 0;
    for (size_t j = 0; j < total; j++) changed += s32[j] != (float)rs_value(g_rank, j);
    CHECK(changed == 0, "reduce-scatter changed %d elements of its send buffer", changed);

    /* Two in flight, the second completed first; the counts array is
     * reused before either completes. */
    for (size_t i = 0; i < mine + GUARD; i++) r32[i] = (float)SENTINEL, r64[i] = SENTINEL;
    lt_comm_req *q32, *q64;
    memcpy(reuse, counts, (size_t)g_size * sizeof *reuse);
    CHECK_OK(lt_comm_ireduce_scatter(c, s32, r32, reuse, LT_DT_F32, LT_RED_SUM, &q32, &err), &err);
    CHECK_OK(lt_comm_ireduce_scatter(c, s64, r64, reuse, LT_DT_F64, LT_RED_SUM, &q64, &err), &err);
    for (int r = 0; r < g_size; r++) reuse[r] = 0x7fffffffu;
    int done = 0;
    for (int spins = 0; !done && spins < 1000000; spins++) CHECK_OK(lt_comm_test(c, q64, &done, &err), &err);
    CHECK(done, "non-blocking reduce-scatter never completed under test()");
    if (!done) CHECK_OK(lt_comm_wait(c, q64, &err), &err);
    CHECK_OK(lt_comm_wait(c, q32, &err), &err);
    wrong = wrong_part(sum, mine, r32, NULL);
    CHECK(wrong == 0, "non-blocking reduce-scatter f32 on rank %d: %d of %zu elements (+%d guard) wrong", g_rank,
          wrong, mine, GUARD);
    wrong = wrong_part(sum, mine, NULL, r64);
    CHECK(wrong == 0, "non-blocking reduce-scatter f64 on rank %d: %d of %zu elements (+%d guard) wrong", g_rank,
          wrong, mine, GUARD);

    /* Nothing to reduce: no buffers needed. */
    for (int r = 0; r < g_size; r++) reuse[r] = 0;
    CHECK_OK(lt_comm_reduce_scatter(c, NULL, NULL, reuse, LT_DT_F32, LT_RED_SUM, &err), &err);

    /* Rejected before any rank communicates (the same on every rank), so
     * not counted: recv inside send, and no counts. */
    for (int r = 0; r < g_size; r++) reuse[r] = 1;
    CHECK(lt_comm_reduce_scatter(c, s64, s64 + g_rank, reuse, LT_DT_F64, LT_RED_SUM, &err) == LT_ERR_INVALID,
          "reduce-scatter into its own send buffer accepted");
    CHECK(strstr(err.msg, "overlaps"), "overlap message: %s", err.msg);
    CHECK(lt_comm_reduce_scatter(c, s64, r64, NULL, LT_DT_F64, LT_RED_SUM, &err) == LT_ERR_INVALID,
          "reduce-scatter without counts accepted");
    CHECK(lt_comm_reduce_scatter(c, s64, r64, counts, LT_DT_COUNT, LT_RED_SUM, &err) == LT_ERR_INVALID,
          "reduce-scatter of an unknown data type accepted");

    lt_comm_get_counters(c, &after);
    const uint64_t calls = after.calls[LT_COLL_REDUCE_SCATTER] - before.calls[LT_COLL_REDUCE_SCATTER];
    const uint64_t bytes = after.bytes[LT_COLL_REDUCE_SCATTER] - before.bytes[LT_COLL_REDUCE_SCATTER];
    CHECK(calls == 5, "%llu reduce-scatter calls counted, expected 5", (unsigned long long)calls);
    CHECK(bytes == total * (4 + 8 + 4 + 8), "reduce-scatter bytes %llu, expected %llu (sum of counts %zu)",
          (unsigned long long)bytes, (unsigned long long)(total * 24), total);
    CHECK(after.calls[LT_COLL_ALLREDUCE] == before.calls[LT_COLL_ALLREDUCE] &&
              after.calls[LT_COLL_REDUCE] == before.calls[LT_COLL_REDUCE],
          "reduce-scatter counted as another kind");
    CHECK(!strcmp(lt_coll_kind_name(LT_COLL_REDUCE_SCATTER), "reduce_scatter"), "kind name %s",
          lt_coll_kind_name(LT_COLL_REDUCE_SCATTER));

    /* MPI takes int counts: a larger one is an error on every rank, not a
     * truncated count (never dereferenced: MPI is not called). */
    if (!strcmp(lt_comm_backend_name(c), "mpi") && g_size > 1) {
        for (int r = 0; r < g_size; r++) reuse[r] = r == (g_rank + 1) % g_size ? (size_t)INT_MAX + 1 : 0;
        CHECK(lt_comm_reduce_scatter(c, s64, NULL, reuse, LT_DT_F64, LT_RED_SUM, &err) == LT_ERR_UNSUPPORTED,
              "reduce-scatter count of INT_MAX + 1 accepted");
        CHECK(strstr(err.msg, "counts[") && strstr(err.msg, "int"), "count limit message: %s", err.msg);
        if (g_size > 2) {
            for (int r = 0; r < g_size; r++) reuse[r] = r == g_rank ? 0 : (size_t)INT_MAX;
            CHECK(lt_comm_reduce_scatter(c, s64, NULL, reuse, LT_DT_F64, LT_RED_SUM, &err) == LT_ERR_UNSUPPORTED,
                  "reduce-scatter whose counts sum past INT_MAX accepted");
            CHECK(strstr(err.msg, "sum of counts"), "sum limit message: %s", err.msg);
        }
    }
    free(sum);
    free(max);
    lt_comm_free_buffer(c, s32);
    lt_comm_free_buffer(c, s64);
    lt_comm_free_buffer(c, smax);
    lt_comm_free_buffer(c, r32);
    lt_comm_free_buffer(c, r64);
    free(counts);
    free(reuse);
    return 0;
}

/* Element i of rank r's all-gatherv part. */
static double ag_value(int r, size_t i) { return 1000.0 * r + (double)i + 0.5; }

static int test_allgatherv(lt_comm *c) {
    lt_error err;
    size_t *counts = calloc((size_t)g_size, sizeof *counts), *displs = calloc((size_t)g_size, sizeof *displs);
    size_t *rc = calloc((size_t)g_size, sizeof *rc), *rd = calloc((size_t)g_size, sizeof *rd);
    /* Parts in reverse rank order with a gap before each and after the
     * last: the gaps must come back untouched, and hold different values
     * on each rank so a part that spills over one is seen. */
    size_t len = 3, total = 0;
    for (int r = g_size - 1; r >= 0; r--) {
        counts[r] = part_count(r);
        displs[r] = len;
        len += counts[r] + (size_t)r + 2;
        total += counts[r];
    }
    len += 3;
    double *want = malloc(len * sizeof *want);
    const double gap = SENTINEL - g_rank;
    for (size_t i = 0; i < len; i++) want[i] = gap;
    for (int r = 0; r < g_size; r++)
        for (size_t i = 0; i < counts[r]; i++) want[displs[r] + i] = ag_value(r, i);
    float *f = lt_comm_alloc(c, LT_MEM_COMM, len * sizeof *f);
    double *d = lt_comm_alloc(c, LT_MEM_COMM, len * sizeof *d);
    int64_t *q = lt_comm_alloc(c, LT_MEM_COMM, len * sizeof *q);
    for (size_t i = 0; i < len; i++) f[i] = (float)gap, d[i] = gap, q[i] = -7 - g_rank;
    for (size_t i = 0; i < counts[g_rank]; i++) {
        f[displs[g_rank] + i] = (float)ag_value(g_rank, i);
        d[displs[g_rank] + i] = ag_value(g_rank, i);
        q[displs[g_rank] + i] = (int64_t)(2 * ag_value(g_rank, i));
    }
    lt_comm_counters before, after;
    lt_comm_get_counters(c, &before);

    CHECK_OK(lt_comm_allgatherv(c, f, counts, displs, LT_DT_F32, &err), &err);
    int wrong = 0;
    for (size_t i = 0; i < len; i++) wrong += f[i] != (float)want[i];
    CHECK(wrong == 0, "all-gatherv f32 on rank %d: %d of %zu elements wrong (parts and gaps)", g_rank, wrong, len);

    /* Two in flight, the second completed first; counts and displs are
     * reused before either completes. */
    memcpy(rc, counts, (size_t)g_size * sizeof *rc);
    memcpy(rd, displs, (size_t)g_size * sizeof *rd);
    lt_comm_req *qd, *qq;
    CHECK_OK(lt_comm_iallgatherv(c, d, rc, rd, LT_DT_F64, &qd, &err), &err);
    CHECK_OK(lt_comm_iallgatherv(c, q, rc, rd, LT_DT_I64, &qq, &err), &err);
    for (int r = 0; r < g_size; r++) rc[r] = 1, rd[r] = 0;
    int done = 0;
    for (int spins = 0; !done && spins < 1000000; spins++) CHECK_OK(lt_comm_test(c, qq, &done, &err), &err);
    CHECK(done, "non-blocking all-gatherv never completed under test()");
    if (!done) CHECK_OK(lt_comm_wait(c, qq, &err), &err);
    CHECK_OK(lt_comm_wait(c, qd, &err), &err);
    int wrong_d = 0, wrong_q = 0;
    for (size_t i = 0; i < len; i++) {
        wrong_d += d[i] != want[i];
        wrong_q += q[i] != (want[i] == gap ? -7 - g_rank : (int64_t)(2 * want[i]));
    }
    CHECK(wrong_d == 0 && wrong_q == 0,
          "non-blocking all-gatherv on rank %d: %d f64 and %d i64 of %zu elements wrong (parts and gaps)", g_rank,
          wrong_d, wrong_q, len);

    /* Rejected on every rank before communicating, so not counted. */
    if (g_size > 1) {
        for (int r = 0; r < g_size; r++) rc[r] = 2, rd[r] = (size_t)r;
        CHECK(lt_comm_allgatherv(c, d, rc, rd, LT_DT_F64, &err) == LT_ERR_INVALID, "overlapping parts accepted");
        CHECK(strstr(err.msg, "overlaps"), "overlap message: %s", err.msg);
    }
    CHECK(lt_comm_allgatherv(c, d, counts, NULL, LT_DT_F64, &err) == LT_ERR_INVALID, "all-gatherv without displs accepted");
    CHECK(strstr(err.msg, "displs"), "missing displs message: %s", err.msg);

    lt_comm_get_counters(c, &after);
    const uint64_t calls = after.calls[LT_COLL_ALLGATHER] - before.calls[LT_COLL_ALLGATHER];
    const uint64_t bytes = after.bytes[LT_COLL_ALLGATHER] - before.bytes[LT_COLL_ALLGATHER];
    CHECK(calls == 3, "%llu all-gatherv calls counted, expected 3", (unsigned long long)calls);
    CHECK(bytes == total * (4 + 8 + 8), "all-gatherv bytes %llu, expected %llu (sum of counts %zu)",
          (unsigned long long)bytes, (unsigned long long)(total * 20), total);

    /* MPI takes int counts and displacements: larger ones are errors. */
    if (!strcmp(lt_comm_backend_name(c), "mpi")) {
        for (int r = 0; r < g_size; r++) rc[r] = 0, rd[r] = 0;
        rc[0] = (size_t)INT_MAX + 1;
        CHECK(lt_comm_allgatherv(c, d, rc, rd, LT_DT_F64, &err) == LT_ERR_UNSUPPORTED,
              "all-gatherv count of INT_MAX + 1 accepted");
        CHECK(strstr(err.msg, "counts[0]") && strstr(err.msg, "int"), "count limit message: %s", err.msg);
        rc[0] = 1, rd[0] = (size_t)INT_MAX + 1;
        CHECK(lt_comm_allgatherv(c, d, rc, rd, LT_DT_F64, &err) == LT_ERR_UNSUPPORTED,
              "all-gatherv displacement of INT_MAX + 1 accepted");
        CHECK(strstr(err.msg, "displs[0]") && strstr(err.msg, "int"), "displacement limit message: %s", err.msg);
    }
    free(want);
    lt_comm_free_buffer(c, f);
    lt_comm_free_buffer(c, d);
    lt_comm_free_buffer(c, q);
    free(counts);
    free(displs);
    free(rc);
    free(rd);
    return 0;
}

/* Shards of item i on rank r hold bytes (i, r, j); the gather returns the
 * item whole whatever order and prefetch hints it is asked with. */
static int test_shard_gather(lt_comm *c) {
    lt_error err;
    const int items = 5;
    const size_t shard = 192;
    uint8_t *local = lt_alloc(LT_MEM_QUANT_BASE, (size_t)items * shard);
    for (int i = 0; i < items; i++)
        for (size_t j = 0; j < shard; j++) local[(size_t)i * shard + j] = (uint8_t)(i * 50 + g_rank * 7 + (int)j);
    lt_shard_gather *g;
    CHECK_OK(lt_shard_gather_create(c, local, shard, items, &g, &err), &err);
    /* forward with prefetch, backward with prefetch, then a mispredicted hint */
    const int order[] = {0, 1, 2, 3, 4, 3, 2, 1, 0, 2, 4};
    const int next[] = {1, 2, 3, 4, 3, 2, 1, 0, 3, 4, -1};
    int wrong = 0;
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
        const uint8_t *whole;
        CHECK_OK(lt_shard_gather_get(g, order[k], next[k], &whole, &err), &err);
        for (int r = 0; r < g_size; r++)
            for (size_t j = 0; j < shard; j++)
                wrong += whole[(size_t)r * shard + j] != (uint8_t)(order[k] * 50 + r * 7 + (int)j);
    }
    CHECK(wrong == 0, "shard gather: %d bytes of the whole items wrong", wrong);
    lt_shard_gather_stats gs;
    lt_shard_gather_get_stats(g, &gs);
    /* 0 is gathered on demand, 1..4 prefetched; 3 is still in the other
     * buffer (no gather), 2 1 0 prefetched; 3 was prefetched in vain, so 2
     * is gathered on demand and 4 prefetched: 11 gathers, 8 of them
     * prefetched. */
    CHECK(gs.prefetched == 8 && gs.gathers == 11, "shard gather: %llu gathers, %llu prefetched; expected 11, 8",
          (unsigned long long)gs.gathers, (unsigned long long)gs.prefetched);
    lt_shard_gather_free(g);
    lt_free(local);
    return 0;
}

/* Buckets start as their lowest layer is ready and the sum comes back. */
static int test_grad_sync(lt_comm *c) {
    lt_error err;
    const int L = 4;
    const size_t begin[] = {0, 10, 10, 35, 60}; /* layer 1 has no parameters */
    float *grads = lt_alloc(LT_MEM_GRADS, 60 * sizeof(float));
    lt_grad_sync *gs;
    CHECK_OK(lt_grad_sync_create(c, grads, begin, L, 0, &gs, &err), &err);
    CHECK(lt_grad_sync_buckets(gs) == 3, "%d buckets for layers of 10, 0, 25, 25 elements, expected 3",
          lt_grad_sync_buckets(gs));
    for (int step = 0; step < 2; step++) {
        for (int i = 0; i < 60; i++) grads[i] = (float)(i + g_rank + step);
        lt_comm_counters before, after;
        lt_comm_get_counters(c, &before);
        lt_grad_sync_arm(gs);
        /* Buckets in backward order: layer 3's starts when layer 3 is
         * ready, layer 2's with layer 2, layers 1 and 0 (one bucket, layer
         * 1 being empty) with layer 0. */
        const int started_after[4] = {3, 2, 2, 1}; /* indexed by layer */
        for (int l = L - 1; l >= 0; l--) {
            CHECK_OK(lt_grad_sync_layer_ready(gs, l, &err), &err);
            lt_comm_counters now;
            lt_comm_get_counters(c, &now);
            CHECK(now.calls[LT_COLL_ALLREDUCE] - before.calls[LT_COLL_ALLREDUCE] == (uint64_t)started_after[l],
                  "after layer %d is ready %llu buckets started, expected %d", l,
                  (unsigned long long)(now.calls[LT_COLL_ALLREDUCE] - before.calls[LT_COLL_ALLREDUCE]),
                  started_after[l]);
        }
        double exposed;
        CHECK_OK(lt_grad_sync_finish(gs, &exposed, &err), &err);
        lt_comm_get_counters(c, &after);
        int wrong = 0;
        for (int i = 0; i < 60; i++) wrong += grads[i] != (float)(g_size * (i + step) + g_size * (g_size - 1) / 2);
        CHECK(wrong == 0, "bucketed all-reduce step %d: %d elements wrong", step, wrong);
        CHECK(after.bytes[LT_COLL_ALLREDUCE] - before.bytes[LT_COLL_ALLREDUCE] == 60 * 4,
              "a step all-reduced %llu bytes, expected the whole 240-byte buffer once",
              (unsigned long long)(after.bytes[LT_COLL_ALLREDUCE] - before.bytes[LT_COLL_ALLREDUCE]));
    }
    lt_grad_sync_free(gs);
    /* A cap of 120 bytes merges layers 3 and 2 (200 bytes), then 1 and 0. */
    CHECK_OK(lt_grad_sync_create(c, grads, begin, L, 120, &gs, &err), &err);
    CHECK(lt_grad_sync_buckets(gs) == 2, "%d buckets with a 120-byte cap, expected 2", lt_grad_sync_buckets(gs));
    lt_grad_sync_free(gs);
    const size_t bad[] = {0, 10, 5, 35, 60};
    CHECK(lt_grad_sync_create(c, grads, bad, L, 0, &gs, &err) == LT_ERR_INVALID, "reversed range accepted");
    lt_free(grads);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_comm EXPECTED_SIZE EXPECTED_BACKEND\n");
        return 2;
    }
    lt_error err;
    lt_comm *c;
    if (lt_comm_init_world(&argc, &argv, &c, &err) != LT_OK) {
        fprintf(stderr, "FAIL: %s\n", err.msg);
        return 1;
    }
    g_rank = lt_comm_rank(c);
    g_size = lt_comm_size(c);
    const lt_rank_info *ri = lt_comm_info(c);
    CHECK(g_size == atoi(argv[1]), "world of %d, expected %s", g_size, argv[1]);
    CHECK(!strcmp(lt_comm_backend_name(c), argv[2]), "backend %s, expected %s", lt_comm_backend_name(c), argv[2]);
    CHECK(ri->local_rank >= 0 && ri->local_rank < ri->local_size && ri->local_size <= g_size,
          "local rank %d of %d", ri->local_rank, ri->local_size);
    test_collectives(c);
    test_reduce_scatter(c);
    test_allgatherv(c);
    test_shard_gather(c);
    test_grad_sync(c);
    int code = check_exit_code();
    /* Every rank's verdict: one failing rank fails the test on all. */
    int64_t failed = code != 0;
    if (lt_comm_allreduce(c, &failed, 1, LT_DT_I64, LT_RED_SUM, &err) != LT_OK) failed = 1;
    lt_comm_free(c);
    return failed ? 1 : 0;
}
