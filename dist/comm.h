/* The communicator: the one interface for collectives the rest of the code
 * uses, with the transport behind a function table (as the ops are behind
 * theirs). MPI is the transport now; a single process not started by a
 * launcher gets a self communicator that needs no MPI at all. NCCL slots in
 * behind the same table later: buffers passed here live in the memory the
 * communicator allocates (lt_comm_alloc: host for MPI, device for NCCL) and
 * non-blocking calls return a handle that lt_comm_wait completes.
 *
 * Every collective is counted: calls and payload bytes per kind (the size
 * of the buffer the collective produces, as nccl-tests' "size": for an
 * all-reduce the buffer, for an all-gather the whole gathered buffer, for
 * a reduce-scatter the whole buffer reduced before it is scattered), so the
 * trainer can report what a step moved. */
#ifndef LT_DIST_COMM_H
#define LT_DIST_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"
#include "core/status.h"

typedef struct lt_comm lt_comm;
typedef struct lt_comm_req lt_comm_req;

typedef enum { LT_DT_F32 = 0, LT_DT_F64, LT_DT_I64, LT_DT_U64, LT_DT_COUNT } lt_dtype;
typedef enum { LT_RED_SUM = 0, LT_RED_MAX, LT_RED_MIN } lt_redop;

typedef enum {
    LT_COLL_ALLREDUCE = 0,
    LT_COLL_ALLGATHER,
    LT_COLL_BROADCAST,
    LT_COLL_REDUCE,
    LT_COLL_BARRIER,
    LT_COLL_REDUCE_SCATTER,
    LT_COLL_COUNT
} lt_coll_kind;

typedef struct {
    uint64_t calls[LT_COLL_COUNT];
    uint64_t bytes[LT_COLL_COUNT];
    double wait_s; /* time blocked in collectives and waits on this rank */
} lt_comm_counters;

/* Who this process is. */
typedef struct {
    int rank, size;             /* world */
    int local_rank, local_size; /* on this node, for binding a device later */
    char launcher[16];          /* "mpirun", "srun" or "single" */
    char host[64];
} lt_rank_info;

/* Discovers the ranks: under mpirun (Open MPI's OMPI_COMM_WORLD_*, or any
 * PMI/PMIx environment, as `srun --mpi=pmix` gives) it initialises MPI;
 * otherwise the process is rank 0 of 1 without MPI. A Slurm job step of
 * several tasks (SLURM_STEP_NUM_TASKS) that MPI cannot join as one job is
 * an error, not N independent runs. Call once per process. */
lt_status lt_comm_init_world(int *argc, char ***argv, lt_comm **out, lt_error *err);
/* Finalises the transport and frees c. */
void lt_comm_free(lt_comm *c);
/* Ends every rank of the job with code, from the command's main only:
 * a failing rank must not leave the others blocked in a collective. */
void lt_comm_abort(lt_comm *c, int code);

const lt_rank_info *lt_comm_info(const lt_comm *c);
int lt_comm_rank(const lt_comm *c);
int lt_comm_size(const lt_comm *c);
const char *lt_comm_backend_name(const lt_comm *c); /* "mpi", "self" */
/* 1 when this transport's collectives may be handed GPU memory (Open
 * MPI built CUDA-aware, as MPIX_Query_cuda_support says at run time), 0
 * when they need host memory. */
int lt_comm_device_buffers(const lt_comm *c);
/* With the MPI backend a pointer to its MPI_Comm (for parallel HDF5);
 * NULL for one process without MPI. */
void *lt_comm_native(const lt_comm *c);

/* Buffers collectives read and write (zero-filled, tracked by category). */
void *lt_comm_alloc(const lt_comm *c, lt_mem_category cat, size_t bytes);
void lt_comm_free_buffer(const lt_comm *c, void *p);

size_t lt_dtype_size(lt_dtype t);

/* In place over count elements of buf. */
lt_status lt_comm_allreduce(lt_comm *c, void *buf, size_t count, lt_dtype t, lt_redop op,
                            lt_error *err);
/* Starts the same; buf must stay untouched until lt_comm_wait(*req). */
lt_status lt_comm_iallreduce(lt_comm *c, void *buf, size_t count, lt_dtype t, lt_redop op,
                             lt_comm_req **req, lt_error *err);
/* recv[r * bytes .. (r+1) * bytes) = rank r's send; send may be recv + rank * bytes. */
lt_status lt_comm_allgather(lt_comm *c, const void *send, void *recv, size_t bytes,
                            lt_error *err);
lt_status lt_comm_iallgather(lt_comm *c, const void *send, void *recv, size_t bytes,
                             lt_comm_req **req, lt_error *err);
lt_status lt_comm_broadcast(lt_comm *c, void *buf, size_t bytes, int root, lt_error *err);
/* recv (on root only; may be NULL elsewhere) = op over the ranks' send. */
lt_status lt_comm_reduce(lt_comm *c, const void *send, void *recv, size_t count, lt_dtype t,
                         lt_redop op, int root, lt_error *err);
lt_status lt_comm_barrier(lt_comm *c, lt_error *err);

/* Reduce-scatter with a count per rank (MPI_Reduce_scatter): counts[r]
 * (size entries, in elements, zeros allowed) is rank r's part; send holds
 * the sum of counts elements, part by part in rank order, and recv gets
 * this rank's part reduced with op over every rank's send. send and recv
 * must not overlap (ZeRO-1 reduces the whole gradient into a separate
 * shard). send may be NULL when the sum is 0, recv when counts[rank] is 0.
 * Every rank passes the same counts. Counted as LT_COLL_REDUCE_SCATTER with
 * sum(counts) * lt_dtype_size(t) bytes. */
lt_status lt_comm_reduce_scatter(lt_comm *c, const void *send, void *recv, const size_t *counts,
                                 lt_dtype t, lt_redop op, lt_error *err);
/* Starts the same; counts may be reused at once, send and recv must stay
 * untouched until lt_comm_wait(*req). */
lt_status lt_comm_ireduce_scatter(lt_comm *c, const void *send, void *recv, const size_t *counts,
                                  lt_dtype t, lt_redop op, lt_comm_req **req, lt_error *err);
/* In-place all-gather with a count per rank (MPI_Allgatherv with
 * MPI_IN_PLACE): rank r's part is counts[r] elements at buf + displs[r]
 * (both in elements, size entries each); each rank's own part is already
 * there and afterwards every rank has every part. Parts must not overlap;
 * what lies between them is left untouched. buf may be NULL when every
 * count is 0. Every rank passes the same counts and displs. Counted as
 * LT_COLL_ALLGATHER with sum(counts) * lt_dtype_size(t) bytes. */
lt_status lt_comm_allgatherv(lt_comm *c, void *buf, const size_t *counts, const size_t *displs,
                             lt_dtype t, lt_error *err);
/* Starts the same; counts and displs may be reused at once, buf must stay
 * untouched until lt_comm_wait(*req). */
lt_status lt_comm_iallgatherv(lt_comm *c, void *buf, const size_t *counts, const size_t *displs,
                              lt_dtype t, lt_comm_req **req, lt_error *err);

/* Completes and frees req (NULL is a no-op). */
lt_status lt_comm_wait(lt_comm *c, lt_comm_req *req, lt_error *err);
/* *done = 1 (and req freed) when req has completed; lets the transport
 * progress the operation meanwhile. */
lt_status lt_comm_test(lt_comm *c, lt_comm_req *req, int *done, lt_error *err);

void lt_comm_get_counters(const lt_comm *c, lt_comm_counters *out);
const char *lt_coll_kind_name(lt_coll_kind k);

#endif
