/* The MPI transport. Errors come back as return codes (MPI_ERRORS_RETURN)
 * and become messages; only lt_comm_abort ends the job. MPI is called from
 * the main thread only (MPI_THREAD_FUNNELED): the OpenMP threads compute. */
#include <limits.h>
#include <mpi.h>
#if defined(OPEN_MPI) && OPEN_MPI
#include <mpi-ext.h> /* MPIX_CUDA_AWARE_SUPPORT, MPIX_Query_cuda_support */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/comm_backend.h"

typedef struct {
    MPI_Comm world;
} mpi_ctx;

static lt_status mpi_fail(lt_error *err, int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", rc);
    return lt_fail(err, LT_ERR_IO, "MPI %s failed: %s", what, msg);
}

static MPI_Datatype mpi_type(lt_dtype t) {
    switch (t) {
    case LT_DT_F32: return MPI_FLOAT;
    case LT_DT_F64: return MPI_DOUBLE;
    case LT_DT_I64: return MPI_INT64_T;
    default: return MPI_UINT64_T;
    }
}

static MPI_Op mpi_op(lt_redop op) {
    return op == LT_RED_MAX ? MPI_MAX : op == LT_RED_MIN ? MPI_MIN : MPI_SUM;
}

/* MPI-3 counts are ints; LoRA buffers and layer shards are far below. */
static lt_status fits_int(size_t n, const char *what, lt_error *err) {
    if (n > (size_t)INT_MAX)
        return lt_fail(err, LT_ERR_UNSUPPORTED, "MPI %s of %zu elements exceeds the int count MPI-3 takes",
                       what, n);
    return LT_OK;
}

/* A non-blocking operation in flight. ints holds the int counts and
 * displacements a v-collective was started with: MPI reads them until the
 * operation completes, so they live (and are freed) with the request. */
typedef struct {
    MPI_Request r;
    int *ints;
} m_req;

/* Takes ownership of ints whatever happens. */
static lt_status take_request(MPI_Request r, int *ints, void **req, lt_error *err) {
    m_req *h = malloc(sizeof *h);
    if (!h) {
        MPI_Wait(&r, MPI_STATUS_IGNORE);
        free(ints);
        return lt_fail(err, LT_ERR_NOMEM, "MPI: cannot allocate a request");
    }
    h->r = r;
    h->ints = ints;
    *req = h;
    return LT_OK;
}

static void free_request(m_req *h) {
    free(h->ints);
    free(h);
}

/* n size_t values as the ints MPI takes, or a message naming the first
 * that does not fit: a truncated count would move the wrong data silently. */
static lt_status to_ints(const size_t *v, int n, int *out, const char *what, const char *field,
                         lt_error *err) {
    for (int r = 0; r < n; r++) {
        if (v[r] > (size_t)INT_MAX)
            return lt_fail(err, LT_ERR_UNSUPPORTED,
                           "MPI %s: %s[%d] = %zu elements exceeds the int MPI-3 takes (at most %d)", what,
                           field, r, v[r], INT_MAX);
        out[r] = (int)v[r];
    }
    return LT_OK;
}

static lt_status m_allreduce(void *ctx, void *buf, size_t count, lt_dtype t, lt_redop op, void **req,
                             lt_error *err) {
    mpi_ctx *m = ctx;
    lt_status st = fits_int(count, "all-reduce", err);
    if (st != LT_OK) return st;
    int rc;
    if (!req) {
        rc = MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, mpi_type(t), mpi_op(op), m->world);
        return rc == MPI_SUCCESS ? LT_OK : mpi_fail(err, rc, "all-reduce");
    }
    MPI_Request r;
    rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)count, mpi_type(t), mpi_op(op), m->world, &r);
    return rc == MPI_SUCCESS ? take_request(r, NULL, req, err) : mpi_fail(err, rc, "all-reduce (non-blocking)");
}

static lt_status m_allgather(void *ctx, const void *send, void *recv, size_t bytes, void **req,
                             lt_error *err) {
    mpi_ctx *m = ctx;
    lt_status st = fits_int(bytes, "all-gather", err);
    if (st != LT_OK) return st;
    int rank;
    MPI_Comm_rank(m->world, &rank);
    const void *sb = send == (const uint8_t *)recv + (size_t)rank * bytes ? MPI_IN_PLACE : send;
    int rc;
    if (!req) {
        rc = MPI_Allgather(sb, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, m->world);
        return rc == MPI_SUCCESS ? LT_OK : mpi_fail(err, rc, "all-gather");
    }
    MPI_Request r;
    rc = MPI_Iallgather(sb, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, m->world, &r);
    return rc == MPI_SUCCESS ? take_request(r, NULL, req, err) : mpi_fail(err, rc, "all-gather (non-blocking)");
}

static lt_status m_broadcast(void *ctx, void *buf, size_t bytes, int root, lt_error *err) {
    mpi_ctx *m = ctx;
    lt_status st = fits_int(bytes, "broadcast", err);
    if (st != LT_OK) return st;
    int rc = MPI_Bcast(buf, (int)bytes, MPI_BYTE, root, m->world);
    return rc == MPI_SUCCESS ? LT_OK : mpi_fail(err, rc, "broadcast");
}

static lt_status m_reduce(void *ctx, const void *send, void *recv, size_t count, lt_dtype t,
                          lt_redop op, int root, lt_error *err) {
    mpi_ctx *m = ctx;
    lt_status st = fits_int(count, "reduce", err);
    if (st != LT_OK) return st;
    int rank;
    MPI_Comm_rank(m->world, &rank);
    const void *sb = rank == root && send == recv ? MPI_IN_PLACE : send;
    int rc = MPI_Reduce(sb, rank == root ? recv : NULL, (int)count, mpi_type(t), mpi_op(op), root,
                        m->world);
    return rc == MPI_SUCCESS ? LT_OK : mpi_fail(err, rc, "reduce");
}

static lt_status m_reduce_scatter(void *ctx, const void *send, void *recv, const size_t *counts,
                                  lt_dtype t, lt_redop op, void **req, lt_error *err) {
    mpi_ctx *m = ctx;
    int n;
    MPI_Comm_size(m->world, &n);
    int *ic = malloc((size_t)n * sizeof *ic);
    if (!ic) return lt_fail(err, LT_ERR_NOMEM, "MPI reduce-scatter: cannot allocate %d counts", n);
    lt_status st = to_ints(counts, n, ic, "reduce-scatter", "counts", err);
    /* Open MPI sums the counts (and offsets into send) in an int too. */
    size_t total = 0;
    for (int r = 0; r < n; r++) total += counts[r];
    if (st == LT_OK && total > (size_t)INT_MAX)
        st = lt_fail(err, LT_ERR_UNSUPPORTED,
                     "MPI reduce-scatter: the send buffer of %zu elements (sum of counts) exceeds the "
                     "int Open MPI indexes it with (at most %d)",
                     total, INT_MAX);
    if (st != LT_OK) {
        free(ic);
        return st;
    }
    int rc;
    if (!req) {
        rc = MPI_Reduce_scatter(send, recv, ic, mpi_type(t), mpi_op(op), m->world);
        free(ic);
        return rc == MPI_SUCCESS ? LT_OK : mpi_fail(err, rc, "reduce-scatter");
    }
    MPI_Request r;
    rc = MPI_Ireduce_scatter(send, recv, ic, mpi_type(t), mpi_op(op), m->world, &r);
    if (rc != MPI_SUCCESS) {
        free(ic);
        return mpi_fail(err, rc, "reduce-scatter (non-blocking)");
    }
    return take_request(r, ic, req, err);
}

static lt_status m_allgatherv(void *ctx, void *buf, const size_t *counts, const size_t *displs,
                              lt_dtype t, void **req, lt_error *err) {
    mpi_ctx *m = ctx;
    int n;
    MPI_Comm_size(m->world, &n);
    int *ints = malloc(2 * (size_t)n * sizeof *ints); /* counts, then displacements */
    if (!ints) return lt_fail(err, LT_ERR_NOMEM, "MPI all-gatherv: cannot allocate %d counts", n);
    lt_status st = to_ints(counts, n, ints, "all-gatherv", "counts", err);
    if (st == LT_OK) st = to_ints(displs, n, ints + n, "all-gatherv", "displs", err);
    if (st != LT_OK) {
        free(ints);
        return st;
    }
    const MPI_Datatype dt = mpi_type(t);
    int rc;
    if (!req) {
        rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, ints, ints + n, dt, m->world);
        free(ints);
        return rc == MPI_SUCCESS ? LT_OK : mpi_fail(err, rc, "all-gatherv");
    }
    MPI_Request r;
    rc = MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, ints, ints + n, dt, m->world, &r);
    if (rc != MPI_SUCCESS) {
        free(ints);
        return mpi_fail(err, rc, "all-gatherv (non-blocking)");
    }
    return take_request(r, ints, req, err);
}

static lt_status m_barrier(void *ctx, lt_error *err) {
    mpi_ctx *m = ctx;
    int rc = MPI_Barrier(m->world);
    return rc == MPI_SUCCESS ? LT_OK : mpi_fail(err, rc, "barrier");
}

static lt_status m_wait(void *ctx, void *req, lt_error *err) {
    (void)ctx;
    m_req *h = req;
    int rc = MPI_Wait(&h->r, MPI_STATUS_IGNORE);
    free_request(h);
    return rc == MPI_SUCCESS ? LT_OK : mpi_fail(err, rc, "wait");
}

static lt_status m_test(void *ctx, void *req, int *done, lt_error *err) {
    (void)ctx;
    m_req *h = req;
    int flag = 0, rc = MPI_Test(&h->r, &flag, MPI_STATUS_IGNORE);
    *done = flag;
    if (flag || rc != MPI_SUCCESS) free_request(h);
    return rc == MPI_SUCCESS ? LT_OK : mpi_fail(err, rc, "test");
}

static void *m_alloc(void *ctx, lt_mem_category cat, size_t bytes) {
    (void)ctx;
    return lt_alloc(cat, bytes);
}

static void m_free_buffer(void *ctx, void *p) {
    (void)ctx;
    lt_free(p);
}

static void m_abort(void *ctx, int code) {
    mpi_ctx *m = ctx;
    MPI_Abort(m->world, code);
}

static void m_finalize(void *ctx) {
    mpi_ctx *m = ctx;
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) {
        MPI_Comm_free(&m->world);
        MPI_Finalize();
    }
    free(m);
}

static void *m_native(void *ctx) { return &((mpi_ctx *)ctx)->world; }

/* Open MPI says at build time whether it can be CUDA-aware and at run time
 * whether it is; any other MPI is taken as host memory only. */
static int m_device_buffers(void *ctx) {
    (void)ctx;
#if defined(MPIX_CUDA_AWARE_SUPPORT) && MPIX_CUDA_AWARE_SUPPORT
    return MPIX_Query_cuda_support() == 1;
#else
    return 0;
#endif
}

static const lt_comm_backend k_mpi = {
    .name = "mpi",
    .allreduce = m_allreduce,
    .allgather = m_allgather,
    .broadcast = m_broadcast,
    .reduce = m_reduce,
    .barrier = m_barrier,
    .reduce_scatter = m_reduce_scatter,
    .allgatherv = m_allgatherv,
    .device_buffers = m_device_buffers,
    .wait = m_wait,
    .test = m_test,
    .alloc = m_alloc,
    .free_buffer = m_free_buffer,
    .abort = m_abort,
    .finalize = m_finalize,
    .native = m_native,
};

lt_status lt_comm_mpi_open(int *argc, char ***argv, lt_rank_info *info, void **ctx,
                           const lt_comm_backend **backend, lt_error *err) {
    int provided = 0, rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return lt_fail(err, LT_ERR_IO, "MPI_Init_thread failed (code %d)", rc);
    mpi_ctx *m = calloc(1, sizeof *m);
    if (!m) {
        MPI_Abort(MPI_COMM_WORLD, 1);
        return lt_fail(err, LT_ERR_NOMEM, "MPI: out of memory");
    }
    /* A private duplicate: library collectives never match a caller's. */
    MPI_Comm_dup(MPI_COMM_WORLD, &m->world);
    MPI_Comm_set_errhandler(m->world, MPI_ERRORS_RETURN);
    MPI_Comm_rank(m->world, &info->rank);
    MPI_Comm_size(m->world, &info->size);
    MPI_Comm node;
    MPI_Comm_split_type(m->world, MPI_COMM_TYPE_SHARED, info->rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &info->local_rank);
    MPI_Comm_size(node, &info->local_size);
    MPI_Comm_free(&node);
    int len = 0;
    char host[MPI_MAX_PROCESSOR_NAME];
    MPI_Get_processor_name(host, &len);
    host[len < (int)sizeof info->host ? len : (int)sizeof info->host - 1] = '\0';
    memcpy(info->host, host, strlen(host) + 1);
    *ctx = m;
    *backend = &k_mpi;
    return LT_OK;
}
