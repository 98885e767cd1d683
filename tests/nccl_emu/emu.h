/* What the NCCL emulation's files share (README.md here says what it does
 * and why). */
#ifndef LT_NCCL_EMU_EMU_H
#define LT_NCCL_EMU_EMU_H

#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include <nccl.h>

/* One rank's communicator. Never freed: a destroyed or aborted handle stays
 * recognisable (calls on it are refused instead of reading freed memory),
 * and an abandoned MPI operation may still name it. */
struct ncclComm {
    int rank = 0;
    int nranks = 0;
    int cuda_dev = 0;
    MPI_Comm data = MPI_COMM_NULL; /* the operations, ranks in NCCL rank order */
    MPI_Comm ctl = MPI_COMM_NULL;  /* failure notices between the ranks */
    std::vector<int> world_rank;   /* MPI_COMM_WORLD rank of each NCCL rank */
    /* under lt_nccl_emu::g_mutex */
    bool live = true;
    int in_flight = 0;  /* calls between comm_enter and comm_leave */
    std::string reason; /* why the asynchronous error was set */
    /* read by any thread without the lock */
    std::atomic<bool> abort_flag{false};
    std::atomic<int> async_error{ncclSuccess};
    /* The calling thread's. Operations issued (numbered at their call, from
     * 0) and handed to MPI (count-0 ones count as handed), by kind: the
     * collectives, and the sends and receives per peer. Every rank numbers
     * a communicator's collectives alike, and the n-th send from a to b
     * matches b's n-th receive from a, so a number names the same
     * operation on both sides. */
    unsigned long long colls_issued = 0, colls_posted = 0;
    std::vector<unsigned long long> sends_issued, sends_posted, recvs_issued, recvs_posted;
    /* From the failure notices received: the first collective, and per
     * peer the first receive from it and send to it, that a failed rank
     * never handed to MPI. An operation at or past one never completes. */
    unsigned long long coll_cutoff = ~0ull;
    std::vector<unsigned long long> recv_cutoff, send_cutoff;
    bool notified = false;       /* this rank's own notice went out */
    std::vector<int64_t> notice; /* its payloads, one per peer: they outlive the sends */
};

namespace lt_nccl_emu {

extern std::mutex g_mutex; /* the communicators' registry and states */

/* ---- errors (comm.cpp) ---- */
/* Records the message as ncclGetLastError's (and prints it with NCCL_DEBUG
 * set to WARN, INFO or TRACE); returns r. */
ncclResult_t fail(ncclResult_t r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- communicators (comm.cpp) ---- */
/* A communicator the caller may use: ncclInvalidArgument for NULL, a
 * pointer ncclCommInitRank never returned, or a destroyed one;
 * ncclInvalidUsage once aborted; the asynchronous error when it has one
 * (as NCCL's enqueue returns it). Takes g_mutex. */
ncclResult_t comm_usable(ncclComm *c, const char *fn);
/* comm_usable, then marks a call in flight (ncclCommAbort waits for it to
 * leave) and reads the failure notices the peers sent; the communicator's
 * asynchronous error if one arrived. Calling thread only (MPI). */
ncclResult_t comm_enter(ncclComm *c, const char *fn);
void comm_leave(ncclComm *c);
/* Receives the failure notices that have arrived: each lowers the
 * cutoffs above and fails the communicator (ncclRemoteError). */
void poll_notices(ncclComm *c);
/* Fails c: its asynchronous error (the first one stays, with its reason),
 * then, once, a notice to every peer naming where the failure began
 * (origin_rank's operation origin_op) and what this rank handed to MPI, so
 * that each peer gives up exactly the operations that would wait on this
 * rank, and passes its own notice on. Nothing more on c is handed to MPI
 * after this. Calling thread only (MPI). */
void comm_fail(ncclComm *c, ncclResult_t e, int64_t origin_rank, int64_t origin_op,
               const char *reason);
/* LT_NCCL_EMU_FAIL: true when this process's operation number n (from 1,
 * every communicator) is the one to fail. */
bool fault_fires(unsigned long long n);
/* The variable's value, for messages. */
const char *fault_text();

/* ---- groups (ops.cpp) ---- */
/* A ncclGroupStart is open on the calling thread. */
bool group_open();
/* The calling thread's open group holds an operation on c. */
bool group_holds(const ncclComm *c);

/* ---- element types and reductions (reduce.cpp) ---- */
/* Bytes of an element; 0 for a type the emulation does not reduce. */
size_t type_size(int type);
const char *type_name(int type);
const char *op_name(int op);
/* Reduces n contributions of count elements, stored one after another in
 * src (contribution r at src + r * count * type_size), in rank order
 * 0, 1, ..., n-1 into dst. float16 and bfloat16 are widened to float and
 * rounded once, to nearest even; ncclAvg is the sum divided by n. */
void reduce(ncclDataType_t type, ncclRedOp_t op, const unsigned char *src, int n, size_t count,
            void *dst);
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
float bf16_to_float(uint16_t b);
uint16_t float_to_bf16(float f);

} // namespace lt_nccl_emu

#endif
