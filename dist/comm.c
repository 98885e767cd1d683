/* The transport-independent half of the communicator: rank discovery,
 * argument checks, byte counters and wait timing. */
#include "dist/comm.h"

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
    static const char *names[LT_COLL_COUNT] = {"all_reduce", "all_gather", "broadcast", "reduce",
                                               "barrier"};
    return k >= 0 && k < LT_COLL_COUNT ? names[k] : "?";
}

/* A process manager interface MPI can join: Open MPI's mpirun, another
 * MPI's PMI, or PMIx (srun --mpi=pmix). */
static int has_pmi(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

lt_status lt_comm_init_world(int *argc, char ***argv, lt_comm **out, lt_error *err) {
    *out = NULL;
    /* A Slurm job step sets SLURM_STEP_NUM_TASKS (the batch script itself
     * does not): tasks started without PMIx would each be a world of one,
     * N independent runs writing the same output. */
    const char *steps = getenv("SLURM_STEP_NUM_TASKS");
    const long want = steps ? strtol(steps, NULL, 10) : 0;
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
        int size = c->info.size;
        lt_comm_free(c);
        return lt_fail(err, LT_ERR_CONFIG,
                       "srun started %ld tasks (SLURM_STEP_NUM_TASKS) but MPI sees a job of %d: "
                       "use `srun --mpi=pmix` (Open MPI) or mpirun inside the allocation",
                       want, size);
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

/* Wraps a backend's handle; a NULL handle means it completed at once. */
static lt_status make_req(void *impl, lt_comm_req **req, lt_error *err) {
    *req = malloc(sizeof **req);
    if (!*req) return lt_fail(err, LT_ERR_NOMEM, "collective: cannot allocate a request");
    (*req)->impl = impl;
    return LT_OK;
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
    count(c, LT_COLL_ALLREDUCE, count_ * lt_dtype_size(t));
    void *impl = NULL;
    double t0 = lt_now_s();
    st = c->be->allreduce(c->ctx, buf, count_, t, op, &impl, err);
    c->counters.wait_s += lt_now_s() - t0;
    return st == LT_OK ? make_req(impl, req, err) : st;
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
    *req = NULL;
    count(c, LT_COLL_ALLGATHER, bytes * (size_t)c->info.size);
    void *impl = NULL;
    double t0 = lt_now_s();
    lt_status st = c->be->allgather(c->ctx, send, recv, bytes, &impl, err);
    c->counters.wait_s += lt_now_s() - t0;
    return st == LT_OK ? make_req(impl, req, err) : st;
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
