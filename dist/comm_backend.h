/* What a transport implements behind lt_comm (dist/comm.h). The generic
 * layer checks arguments, counts bytes and times waits; a backend only
 * moves data. A non-NULL req argument asks for the non-blocking form: the
 * backend stores its handle there and completes it in wait/test. */
#ifndef LT_DIST_COMM_BACKEND_H
#define LT_DIST_COMM_BACKEND_H

#include "dist/comm.h"

typedef struct {
    const char *name;
    lt_status (*allreduce)(void *ctx, void *buf, size_t count, lt_dtype t, lt_redop op,
                           void **req, lt_error *err);
    lt_status (*allgather)(void *ctx, const void *send, void *recv, size_t bytes, void **req,
                           lt_error *err);
    lt_status (*broadcast)(void *ctx, void *buf, size_t bytes, int root, lt_error *err);
    lt_status (*reduce)(void *ctx, const void *send, void *recv, size_t count, lt_dtype t,
                        lt_redop op, int root, lt_error *err);
    lt_status (*barrier)(void *ctx, lt_error *err);
    /* counts (and displs) have one entry per rank; the generic layer has
     * checked that the buffers do not overlap and that byte sizes fit in
     * size_t. The caller may reuse counts and displs as soon as the call
     * returns, so a backend that reads them later keeps its own copy. */
    lt_status (*reduce_scatter)(void *ctx, const void *send, void *recv, const size_t *counts,
                                lt_dtype t, lt_redop op, void **req, lt_error *err);
    lt_status (*allgatherv)(void *ctx, void *buf, const size_t *counts, const size_t *displs,
                            lt_dtype t, void **req, lt_error *err);
    lt_status (*wait)(void *ctx, void *req, lt_error *err);
    lt_status (*test)(void *ctx, void *req, int *done, lt_error *err);
    void *(*alloc)(void *ctx, lt_mem_category cat, size_t bytes);
    void (*free_buffer)(void *ctx, void *p);
    void (*abort)(void *ctx, int code);
    /* The transport's own communicator (MPI: a pointer to the MPI_Comm), for
     * libraries that take one (parallel HDF5); NULL where there is none. */
    void *(*native)(void *ctx);
    /* 1 when collectives may take GPU memory (a CUDA-aware transport);
     * NULL: host memory only. */
    int (*device_buffers)(void *ctx);
    void (*finalize)(void *ctx);
} lt_comm_backend;

/* The self transport (one process, no MPI). */
extern const lt_comm_backend lt_comm_self_backend;

/* The MPI transport: initialises MPI and fills info; *ctx is its state. */
lt_status lt_comm_mpi_open(int *argc, char ***argv, lt_rank_info *info, void **ctx,
                           const lt_comm_backend **backend, lt_error *err);

#endif
