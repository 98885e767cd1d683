/* The transport-independent half of the communicator: rank discovery,
 * argument checks, byte counters and wait timing. */
#include "dist/comm.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist/comm_backend.h"
#include "core/clock.h"

struct lt_comm {
    const lt_comm_backend *be;
    void *ctx;
    lt_rank_info info;
    lt_comm_counters counters;
};

/* A non-blocking operation in flight: the backend's handle. */
struct lt_comm_req {
    void *impl;
};

size_t lt_dtype_size(lt_dtype t) {
    switch (t) {
    case LT_DT_F32: return 4;
    case LT_DT_F64: return 8;
    case LT_DT_I64: return 8;
    case LT_DT_U64: return 8;
    default: return 0;
    }
}

const char *lt_coll_kind_name(lt_coll_kind k) {
    static const char *names[LT_COLL_COUNT] = {"all_reduce", "all_gather", "broadcast",
                                               "reduce",     "barrier",    "reduce_scatter"};
    return k >= 0 && k < LT_COLL_COUNT ? names[k] : "?";
}

/* A process manager interface MPI can join: Open MPI's mpirun, another
 * MPI's PMI, or PMIx (srun --mpi=pmix). */
static int has_pmi(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

/* How many processes the launcher says it started, and which variable
 * says so (0 when none does): Open MPI's mpirun, a PMI launcher such as
 * MPICH's or Intel MPI's mpiexec, or srun's step. mpirun comes first: on
 * several nodes it starts its daemons with srun, so its ranks also see
 * that step's task count (one per node). */
static long launcher_size(const char **var) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) {
            *var = vars[i];
            return strtol(v, NULL, 10);
        }
    }
    *var = NULL;
    return 0;
}

lt_status lt_comm_init_world(int *argc, char ***argv, lt_comm **out, lt_error *err) {
    *out = NULL;
    /* A Slurm job step sets SLURM_STEP_NUM_TASKS (the batch script itself
     * does not): tasks started without PMIx would each be a world of one,
     * N independent runs writing the same output. */
    const char *steps = getenv("SLURM_STEP_NUM_TASKS"), *var;
    const long want = launcher_size(&var);
    if (want > 1 && !has_pmi())
        return lt_fail(err, LT_ERR_CONFIG,
                       "srun started %ld tasks (SLURM_STEP_NUM_TASKS) without a process manager "
                       "interface MPI can join: use `srun --mpi=pmix` (Open MPI) or mpirun inside "
                       "the allocation",
                       want);
    lt_comm *c = calloc(1, sizeof *c);
    if (!c) return lt_fail(err, LT_ERR_NOMEM, "communicator: out of memory");
    if (has_pmi()) {
        lt_status st = lt_comm_mpi_open(argc, argv, &c->info, &c->ctx, &c->be, err);
        if (st != LT_OK) {
            free(c);
            return st;
        }
    } else {
        c->be = &lt_comm_self_backend;
        c->info.size = c->info.local_size = 1;
        if (gethostname(c->info.host, sizeof c->info.host) != 0) strcpy(c->info.host, "?");
        c->info.host[sizeof c->info.host - 1] = '\0';
    }
    snprintf(c->info.launcher, sizeof c->info.launcher, "%s",
             !has_pmi() ? (steps ? "srun" : "single")
                        : (steps && !getenv("OMPI_COMM_WORLD_SIZE") ? "srun" : "mpirun"));
    if (want > 1 && c->info.size != want) {
        /* Each process initialised MPI as a world of its own: the
         * launcher is not one this MPI library can join. */
        int size = c->info.size;
        lt_comm_free(c);
        return lt_fail(err, LT_ERR_CONFIG,
                       "the launcher started %ld processes (%s) but MPI sees a job of %d: "
                       "loratrain's MPI library (Open MPI) cannot join this launcher; use Open "
                       "MPI's mpirun or `srun --mpi=pmix`",
                       want, var, size);
    }
    *out = c;
    return LT_OK;
}

void lt_comm_free(lt_comm *c) {
    if (!c) return;
    c->be->finalize(c->ctx);
    free(c);
}

void lt_comm_abort(lt_comm *c, int code) {
    if (c) c->be->abort(c->ctx, code);
}

const lt_rank_info *lt_comm_info(const lt_comm *c) { return &c->info; }
int lt_comm_rank(const lt_comm *c) { return c->info.rank; }
int lt_comm_size(const lt_comm *c) { return c->info.size; }
const char *lt_comm_backend_name(const lt_comm *c) { return c->be->name; }
int lt_comm_device_buffers(const lt_comm *c) {
    return c->be->device_buffers ? c->be->device_buffers(c->ctx) : 0;
}

void *lt_comm_native(const lt_comm *c) { return c->be->native ? c->be->native(c->ctx) : NULL; }

void *lt_comm_alloc(const lt_comm *c, lt_mem_category cat, size_t bytes) {
    return c->be->alloc(c->ctx, cat, bytes);
}
void lt_comm_free_buffer(const lt_comm *c, void *p) {
    if (p) c->be->free_buffer(c->ctx, p);
}

void lt_comm_get_counters(const lt_comm *c, lt_comm_counters *out) { *out = c->counters; }

static void count(lt_comm *c, lt_coll_kind k, size_t bytes) {
    c->counters.calls[k]++;
    c->counters.bytes[k] += bytes;
}

static lt_status check_dtype(lt_dtype t, lt_error *err) {
    if (lt_dtype_size(t) == 0) return lt_fail(err, LT_ERR_INVALID, "collective: unknown data type %d", (int)t);
    return LT_OK;
}

/* Allocated before the backend starts the operation: once it is in flight
 * there must be a handle to complete it with, or the transport would keep
 * writing into buffers the caller believes are free. impl stays NULL when
 * the backend completes at once. */
static lt_status new_req(lt_comm_req **req, lt_error *err) {
    *req = calloc(1, sizeof **req);
    if (!*req) return lt_fail(err, LT_ERR_NOMEM, "collective: cannot allocate a request");
    return LT_OK;
}

/* The generic half of a non-blocking start: *req keeps the backend's
 * handle on success and is NULL on failure. */
static lt_status finish_start(lt_status st, lt_comm_req **req) {
    if (st != LT_OK) {
        free(*req);
        *req = NULL;
    }
    return st;
}

lt_status lt_comm_allreduce(lt_comm *c, void *buf, size_t count_, lt_dtype t, lt_redop op,
                            lt_error *err) {
    lt_status st = check_dtype(t, err);
    if (st != LT_OK) return st;
    count(c, LT_COLL_ALLREDUCE, count_ * lt_dtype_size(t));
    double t0 = lt_now_s();
    st = c->be->allreduce(c->ctx, buf, count_, t, op, NULL, err);
    c->counters.wait_s += lt_now_s() - t0;
    return st;
}

lt_status lt_comm_iallreduce(lt_comm *c, void *buf, size_t count_, lt_dtype t, lt_redop op,
                             lt_comm_req **req, lt_error *err) {
    *req = NULL;
    lt_status st = check_dtype(t, err);
    if (st != LT_OK) return st;
    if ((st = new_req(req, err)) != LT_OK) return st;
    count(c, LT_COLL_ALLREDUCE, count_ * lt_dtype_size(t));
    double t0 = lt_now_s();
    st = c->be->allreduce(c->ctx, buf, count_, t, op, &(*req)->impl, err);
    c->counters.wait_s += lt_now_s() - t0;
    return finish_start(st, req);
}

lt_status lt_comm_allgather(lt_comm *c, const void *send, void *recv, size_t bytes,
                            lt_error *err) {
    count(c, LT_COLL_ALLGATHER, bytes * (size_t)c->info.size);
    double t0 = lt_now_s();
    lt_status st = c->be->allgather(c->ctx, send, recv, bytes, NULL, err);
    c->counters.wait_s += lt_now_s() - t0;
    return st;
}

lt_status lt_comm_iallgather(lt_comm *c, const void *send, void *recv, size_t bytes,
                             lt_comm_req **req, lt_error *err) {
    lt_status st = new_req(req, err);
    if (st != LT_OK) return st;
    count(c, LT_COLL_ALLGATHER, bytes * (size_t)c->info.size);
    double t0 = lt_now_s();
    st = c->be->allgather(c->ctx, send, recv, bytes, &(*req)->impl, err);
    c->counters.wait_s += lt_now_s() - t0;
    return finish_start(st, req);
}

lt_status lt_comm_broadcast(lt_comm *c, void *buf, size_t bytes, int root, lt_error *err) {
    if (root < 0 || root >= c->info.size)
        return lt_fail(err, LT_ERR_INVALID, "broadcast: root %d is not a rank of %d", root, c->info.size);
    count(c, LT_COLL_BROADCAST, bytes);
    double t0 = lt_now_s();
    lt_status st = c->be->broadcast(c->ctx, buf, bytes, root, err);
    c->counters.wait_s += lt_now_s() - t0;
    return st;
}

lt_status lt_comm_reduce(lt_comm *c, const void *send, void *recv, size_t count_, lt_dtype t,
                         lt_redop op, int root, lt_error *err) {
    lt_status st = check_dtype(t, err);
    if (st != LT_OK) return st;
    if (root < 0 || root >= c->info.size)
        return lt_fail(err, LT_ERR_INVALID, "reduce: root %d is not a rank of %d", root, c->info.size);
    count(c, LT_COLL_REDUCE, count_ * lt_dtype_size(t));
    double t0 = lt_now_s();
    st = c->be->reduce(c->ctx, send, recv, count_, t, op, root, err);
    c->counters.wait_s += lt_now_s() - t0;
    return st;
}

lt_status lt_comm_barrier(lt_comm *c, lt_error *err) {
    count(c, LT_COLL_BARRIER, 0);
    double t0 = lt_now_s();
    lt_status st = c->be->barrier(c->ctx, err);
    c->counters.wait_s += lt_now_s() - t0;
    return st;
}

/* Byte ranges [a, a + na) and [b, b + nb) share a byte; empty ones never
 * do. Compared as integers: the pointers may belong to different objects. */
static int overlaps(const void *a, size_t na, const void *b, size_t nb) {
    const uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return na && nb && x < y + nb && y < x + na;
}

/* Checks a reduce-scatter's arguments; *total gets sum(counts). */
static lt_status check_reduce_scatter(const lt_comm *c, const void *send, const void *recv,
                                      const size_t *counts, lt_dtype t, size_t *total,
                                      lt_error *err) {
    lt_status st = check_dtype(t, err);
    if (st != LT_OK) return st;
    if (!counts) return lt_fail(err, LT_ERR_INVALID, "reduce-scatter: counts is NULL, expected %d entries", c->info.size);
    const size_t es = lt_dtype_size(t);
    size_t sum = 0;
    for (int r = 0; r < c->info.size; r++) {
        if (counts[r] > SIZE_MAX / es - sum)
            return lt_fail(err, LT_ERR_INVALID,
                           "reduce-scatter: counts[%d] = %zu makes the send buffer larger than size_t "
                           "can address",
                           r, counts[r]);
        sum += counts[r];
    }
    const size_t mine = counts[c->info.rank];
    if (sum && !send)
        return lt_fail(err, LT_ERR_INVALID, "reduce-scatter: send is NULL, expected %zu elements", sum);
    if (mine && !recv)
        return lt_fail(err, LT_ERR_INVALID, "reduce-scatter: recv is NULL, expected counts[%d] = %zu elements",
                       c->info.rank, mine);
    if (overlaps(send, sum * es, recv, mine * es))
        return lt_fail(err, LT_ERR_INVALID,
                       "reduce-scatter: recv (%zu elements) overlaps send (%zu elements); expected "
                       "separate buffers",
                       mine, sum);
    *total = sum;
    return LT_OK;
}

typedef struct {
    size_t lo, hi; /* elements [lo, hi) of buf */
    int rank;
} part_range;

static int by_lo(const void *a, const void *b) {
    const part_range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Checks an all-gatherv's arguments; *total gets sum(counts). Overlapping
 * parts would make the result depend on the order the transport writes
 * them, so they are an error, found by sorting the parts by start. */
static lt_status check_allgatherv(const lt_comm *c, const void *buf, const size_t *counts,
                                  const size_t *displs, lt_dtype t, size_t *total, lt_error *err) {
    lt_status st = check_dtype(t, err);
    if (st != LT_OK) return st;
    const int n = c->info.size;
    if (!counts || !displs)
        return lt_fail(err, LT_ERR_INVALID, "all-gatherv: %s is NULL, expected %d entries",
                       !counts ? "counts" : "displs", n);
    const size_t es = lt_dtype_size(t);
    for (int r = 0; r < n; r++)
        if (displs[r] > SIZE_MAX / es || counts[r] > SIZE_MAX / es - displs[r])
            return lt_fail(err, LT_ERR_INVALID,
                           "all-gatherv: part %d (displs[%d] = %zu, counts[%d] = %zu) ends beyond what "
                           "size_t can address",
                           r, r, displs[r], r, counts[r]);
    part_range *p = malloc((size_t)n * sizeof *p);
    if (!p) return lt_fail(err, LT_ERR_NOMEM, "all-gatherv: cannot allocate %d part ranges", n);
    int m = 0;
    for (int r = 0; r < n; r++)
        if (counts[r]) p[m++] = (part_range){displs[r], displs[r] + counts[r], r};
    qsort(p, (size_t)m, sizeof *p, by_lo);
    size_t sum = m ? p[0].hi - p[0].lo : 0; /* disjoint ranges below SIZE_MAX / es: no wrap */
    for (int i = 1; i < m && st == LT_OK; i++) {
        if (p[i].lo < p[i - 1].hi)
            st = lt_fail(err, LT_ERR_INVALID,
                         "all-gatherv: part %d (displs %zu, counts %zu) overlaps part %d (displs %zu, "
                         "counts %zu); expected disjoint parts",
                         p[i].rank, p[i].lo, p[i].hi - p[i].lo, p[i - 1].rank, p[i - 1].lo,
                         p[i - 1].hi - p[i - 1].lo);
        sum += p[i].hi - p[i].lo;
    }
    free(p);
    if (st == LT_OK && sum && !buf)
        st = lt_fail(err, LT_ERR_INVALID, "all-gatherv: buf is NULL, expected parts of %zu elements in all", sum);
    *total = sum;
    return st;
}

lt_status lt_comm_reduce_scatter(lt_comm *c, const void *send, void *recv, const size_t *counts,
                                 lt_dtype t, lt_redop op, lt_error *err) {
    size_t total = 0;
    lt_status st = check_reduce_scatter(c, send, recv, counts, t, &total, err);
    if (st != LT_OK) return st;
    count(c, LT_COLL_REDUCE_SCATTER, total * lt_dtype_size(t));
    double t0 = lt_now_s();
    st = c->be->reduce_scatter(c->ctx, send, recv, counts, t, op, NULL, err);
    c->counters.wait_s += lt_now_s() - t0;
    return st;
}

lt_status lt_comm_ireduce_scatter(lt_comm *c, const void *send, void *recv, const size_t *counts,
                                  lt_dtype t, lt_redop op, lt_comm_req **req, lt_error *err) {
    *req = NULL;
    size_t total = 0;
    lt_status st = check_reduce_scatter(c, send, recv, counts, t, &total, err);
    if (st != LT_OK || (st = new_req(req, err)) != LT_OK) return st;
    count(c, LT_COLL_REDUCE_SCATTER, total * lt_dtype_size(t));
    double t0 = lt_now_s();
    st = c->be->reduce_scatter(c->ctx, send, recv, counts, t, op, &(*req)->impl, err);
    c->counters.wait_s += lt_now_s() - t0;
    return finish_start(st, req);
}

lt_status lt_comm_allgatherv(lt_comm *c, void *buf, const size_t *counts, const size_t *displs,
                             lt_dtype t, lt_error *err) {
    size_t total = 0;
    lt_status st = check_allgatherv(c, buf, counts, displs, t, &total, err);
    if (st != LT_OK) return st;
    count(c, LT_COLL_ALLGATHER, total * lt_dtype_size(t));
    double t0 = lt_now_s();
    st = c->be->allgatherv(c->ctx, buf, counts, displs, t, NULL, err);
    c->counters.wait_s += lt_now_s() - t0;
    return st;
}

lt_status lt_comm_iallgatherv(lt_comm *c, void *buf, const size_t *counts, const size_t *displs,
                              lt_dtype t, lt_comm_req **req, lt_error *err) {
    *req = NULL;
    size_t total = 0;
    lt_status st = check_allgatherv(c, buf, counts, displs, t, &total, err);
    if (st != LT_OK || (st = new_req(req, err)) != LT_OK) return st;
    count(c, LT_COLL_ALLGATHER, total * lt_dtype_size(t));
    double t0 = lt_now_s();
    st = c->be->allgatherv(c->ctx, buf, counts, displs, t, &(*req)->impl, err);
    c->counters.wait_s += lt_now_s() - t0;
    return finish_start(st, req);
}

lt_status lt_comm_wait(lt_comm *c, lt_comm_req *req, lt_error *err) {
    if (!req) return LT_OK;
    lt_status st = LT_OK;
    if (req->impl) {
        double t0 = lt_now_s();
        st = c->be->wait(c->ctx, req->impl, err);
        c->counters.wait_s += lt_now_s() - t0;
    }
    free(req);
    return st;
}

lt_status lt_comm_test(lt_comm *c, lt_comm_req *req, int *done, lt_error *err) {
    *done = 1;
    if (!req) return LT_OK;
    lt_status st = LT_OK;
    if (req->impl) {
        double t0 = lt_now_s();
        st = c->be->test(c->ctx, req->impl, done, err);
        c->counters.wait_s += lt_now_s() - t0;
    }
    if (*done || st != LT_OK) free(req);
    return st;
}
