/* The MPI transport. Errors come back as return codes (MPI_ERRORS_RETURN)
 * and become messages; only lt_comm_abort ends the job. MPI is called from
 * the main thread only (MPI_THREAD_FUNNELED): the OpenMP threads compute. */
#include <limits.h>
#include <mpi.h>
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

static lt_status take_request(MPI_Request r, void **req, lt_error *err) {
    MPI_Request *h = malloc(sizeof *h);
    if (!h) {
        MPI_Wait(&r, MPI_STATUS_IGNORE);
        return lt_fail(err, LT_ERR_NOMEM, "MPI: cannot allocate a request");
    }
    *h = r;
    *req = h;
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
    return rc == MPI_SUCCESS ? take_request(r, req, err) : mpi_fail(err, rc, "all-reduce (non-blocking)");
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
    return rc == MPI_SUCCESS ? take_request(r, req, err) : mpi_fail(err, rc, "all-gather (non-blocking)");
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

static lt_status m_barrier(void *ctx, lt_error *err) {
    mpi_ctx *m = ctx;
    int rc = MPI_Barrier(m->world);
    return rc == MPI_SUCCESS ? LT_OK : mpi_fail(err, rc, "barrier");
}

static lt_status m_wait(void *ctx, void *req, lt_error *err) {
    (void)ctx;
    MPI_Request *h = req;
    int rc = MPI_Wait(h, MPI_STATUS_IGNORE);
    free(h);
    return rc == MPI_SUCCESS ? LT_OK : mpi_fail(err, rc, "wait");
}

static lt_status m_test(void *ctx, void *req, int *done, lt_error *err) {
    (void)ctx;
    MPI_Request *h = req;
    int flag = 0, rc = MPI_Test(h, &flag, MPI_STATUS_IGNORE);
    *done = flag;
    if (flag || rc != MPI_SUCCESS) free(h);
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

static const lt_comm_backend k_mpi = {
    "mpi",  m_allreduce, m_allgather, m_broadcast,   m_reduce, m_barrier,
    m_wait, m_test,      m_alloc,     m_free_buffer, m_abort,  m_finalize,
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
