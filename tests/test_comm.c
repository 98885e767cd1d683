/* The communicator on however many ranks mpirun starts (CTest: 1, 2 and 4,
 * and once without mpirun for the self transport): every collective's
 * result against values each rank computes on its own, non-blocking calls
 * completed out of order, the byte counters, the shard gather schedule and
 * the gradient buckets. Values are small integers and halves, so sums are
 * exact in any reduction order.
 * Usage: test_comm EXPECTED_SIZE EXPECTED_BACKEND */
#include <stdlib.h>
#include <string.h>

#include "check.h"
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
    test_shard_gather(c);
    test_grad_sync(c);
    int code = check_exit_code();
    /* Every rank's verdict: one failing rank fails the test on all. */
    int64_t failed = code != 0;
    if (lt_comm_allreduce(c, &failed, 1, LT_DT_I64, LT_RED_SUM, &err) != LT_OK) failed = 1;
    lt_comm_free(c);
    return failed ? 1 : 0;
}
