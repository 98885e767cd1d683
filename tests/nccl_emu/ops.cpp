/* The operations: argument checks, groups, and their execution over MPI.
 *
 * The emulated streams are synchronous, so an operation runs at its call
 * (inside a group: at the outermost ncclGroupEnd, in call order), as a
 * nonblocking MPI operation on the communicator polled until it completes,
 * the communicator is aborted (ncclCommAbort, on another thread) or a
 * failure notice shows it never can (LT_NCCL_EMU_FAIL). Data moves through host
 * staging buffers: device memory is opened (tests/cuda_emu's guard) only to
 * copy in and to write the result, never while waiting on peers, and an
 * abandoned MPI operation keeps its staging buffers (they are never freed)
 * instead of writing into device memory its caller may have freed since. */
#include <limits.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include <algorithm>
#include <memory>
#include <string>

#include "emu.h"
#include "emu_internal.h" /* tests/cuda_emu: device_range, stream_valid, the guard */

using namespace lt_nccl_emu;

namespace {

const int k_tag_p2p = 1;

/* (kind_fn names them in this order) */
enum class Kind { AllReduce, Broadcast, Reduce, AllGather, ReduceScatter, Send, Recv };

/* An enum argument's value as the caller passed it. A C caller may pass
 * any int (NCCL checks for negative ones); in C++ reading an enum outside
 * its enumerators' range is undefined (UBSan's enum check), so the bytes
 * are copied instead. */
template <typename E> int raw(const E *e) {
    static_assert(sizeof(E) == sizeof(int), "NCCL's enums are int-sized");
    int v;
    memcpy(&v, e, sizeof v);
    return v;
}

const char *kind_fn(Kind k) {
    static const char *const names[] = {"ncclAllReduce", "ncclBroadcast",     "ncclReduce",
                                        "ncclAllGather", "ncclReduceScatter", "ncclSend",
                                        "ncclRecv"};
    return names[(int)k];
}

bool is_p2p(Kind k) { return k == Kind::Send || k == Kind::Recv; }
bool reduces(Kind k) {
    return k == Kind::AllReduce || k == Kind::Reduce || k == Kind::ReduceScatter;
}

struct Op {
    Kind kind;
    ncclComm *comm;
    const void *send;
    void *recv;
    size_t count;
    int type; /* ncclDataType_t and ncclRedOp_t as the caller passed them */
    int red;
    int root; /* the root, or the peer of a send or receive */
    unsigned long long number = 0; /* this process's operation number (from 1) */
    unsigned long long seq = 0;    /* its number on the communicator, by kind (ncclComm) */
    bool fault = false;
};

/* An operation handed to MPI. */
struct Running {
    Op op;
    std::vector<unsigned char> in, out; /* staging: what is sent, what arrives */
    std::vector<MPI_Request> reqs;
    bool done = false;
    bool abandoned = false;
};

/* Operations given up on, with their staging buffers: MPI may still write
 * into them. Never destroyed (not even at exit, where LeakSanitizer looks),
 * so they stay reachable. */
std::mutex g_abandoned_mutex;
std::vector<std::unique_ptr<Running>> *const g_abandoned =
    new std::vector<std::unique_ptr<Running>>;

std::atomic<unsigned long long> g_operations{0};

/* The calling thread's group (NCCL's groups are per thread too). */
struct Group {
    int depth = 0;
    ncclResult_t error = ncclSuccess; /* the first refused call inside */
    std::vector<Op> ops;
};
thread_local Group t_group;

ncclResult_t check_buffer(const char *fn, const char *name, const void *p, size_t bytes) {
    std::string why;
    if (lt_cuda_emu::device_range(p, bytes, &why))
        return ncclSuccess;
    return fail(ncclInvalidArgument, "%s: %s (%zu bytes): %s; NCCL takes device memory only", fn,
                name, bytes, why.c_str());
}

/* NCCL's argument checks, plus the buffers: each must lie in one live
 * cudaMalloc block (real NCCL checks pointers with NCCL_CHECK_POINTERS=1;
 * here always). */
ncclResult_t validate(const Op &op, cudaStream_t stream) {
    const char *fn = kind_fn(op.kind);
    if (ncclResult_t r = comm_usable(op.comm, fn))
        return r;
    const int n = op.comm->nranks;
    if (op.type < 0 || op.type >= ncclNumTypes)
        return fail(ncclInvalidArgument, "%s: datatype %d is not an ncclDataType_t", fn, op.type);
    const size_t es = type_size(op.type);
    if (es == 0)
        return fail(ncclInvalidArgument, "%s: datatype %s is not emulated", fn,
                    type_name(op.type));
    if (reduces(op.kind) && (op.red < 0 || op.red >= ncclNumOps))
        return fail(ncclInvalidArgument,
                    "%s: reduction operation %d is not ncclSum, ncclProd, ncclMax, ncclMin or "
                    "ncclAvg (ncclRedOpCreatePreMulSum is not emulated)",
                    fn, op.red);
    if ((op.kind == Kind::Broadcast || op.kind == Kind::Reduce) && (op.root < 0 || op.root >= n))
        return fail(ncclInvalidArgument, "%s: root %d outside 0..%d", fn, op.root, n - 1);
    if (is_p2p(op.kind) && (op.root < 0 || op.root >= n))
        return fail(ncclInvalidArgument, "%s: peer %d outside 0..%d", fn, op.root, n - 1);
    if (!lt_cuda_emu::stream_valid(stream))
        return fail(ncclUnhandledCudaError,
                    "%s: stream %p is not a live stream (cudaErrorInvalidResourceHandle)", fn,
                    (void *)stream);
    /* Each message MPI moves is count * es bytes (an int), the whole
     * buffer n times that for the gathering and scattering operations. */
    if (op.count > (size_t)INT_MAX / es)
        return fail(ncclInvalidArgument,
                    "%s: count %zu: the emulation moves at most %d bytes per rank and operation",
                    fn, op.count, INT_MAX);
    const size_t bytes = op.count * es;
    if (op.count == 0) /* nothing moves and nothing is read (NCCL's too) */
        return ncclSuccess;
    const size_t all = bytes * (size_t)n;
    const int me = op.comm->rank;
    ncclResult_t r = ncclSuccess;
    switch (op.kind) {
    case Kind::AllReduce:
        if (!(r = check_buffer(fn, "sendbuff", op.send, bytes)))
            r = check_buffer(fn, "recvbuff", op.recv, bytes);
        break;
    case Kind::Broadcast: /* sendbuff is the root's only */
        if (me == op.root)
            r = check_buffer(fn, "sendbuff", op.send, bytes);
        if (!r)
            r = check_buffer(fn, "recvbuff", op.recv, bytes);
        break;
    case Kind::Reduce: /* recvbuff is the root's only */
        r = check_buffer(fn, "sendbuff", op.send, bytes);
        if (!r && me == op.root)
            r = check_buffer(fn, "recvbuff", op.recv, bytes);
        break;
    case Kind::AllGather:
        if (!(r = check_buffer(fn, "sendbuff", op.send, bytes)))
            r = check_buffer(fn, "recvbuff", op.recv, all);
        break;
    case Kind::ReduceScatter:
        if (!(r = check_buffer(fn, "sendbuff", op.send, all)))
            r = check_buffer(fn, "recvbuff", op.recv, bytes);
        break;
    case Kind::Send:
        r = check_buffer(fn, "sendbuff", op.send, bytes);
        break;
    case Kind::Recv:
        r = check_buffer(fn, "recvbuff", op.recv, bytes);
        break;
    }
    return r;
}

void copy_in(std::vector<unsigned char> *dst, const void *src, size_t bytes) {
    dst->resize(bytes);
    lt_cuda_emu::device_open();
    memcpy(dst->data(), src, bytes);
    lt_cuda_emu::device_close();
}

void copy_out(void *dst, const std::vector<unsigned char> &src, size_t bytes) {
    lt_cuda_emu::device_open();
    memcpy(dst, src.data(), bytes);
    lt_cuda_emu::device_close();
}

/* The communicator of an operation MPI refused fails (as a network error
 * fails NCCL's), and gives up everything it has in flight. */
ncclResult_t mpi_failed(const Op &op, const char *what, int rc) {
    char text[MPI_MAX_ERROR_STRING], msg[MPI_MAX_ERROR_STRING + 128];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "MPI error %d", rc);
    snprintf(msg, sizeof msg, "%s: %s failed: %s", kind_fn(op.kind), what, text);
    ncclComm *c = op.comm;
    comm_fail(c, ncclSystemError, c->rank, (int64_t)op.number, msg);
    c->coll_cutoff = 0;
    std::fill(c->recv_cutoff.begin(), c->recv_cutoff.end(), 0);
    std::fill(c->send_cutoff.begin(), c->send_cutoff.end(), 0);
    return fail(ncclSystemError, "%s", msg);
}

/* Hands op to MPI; the staging buffers are filled from device memory here,
 * at the point NCCL's kernel would read them. */
ncclResult_t post(const Op &op, std::unique_ptr<Running> *out) {
    auto run = std::make_unique<Running>();
    run->op = op;
    const size_t es = type_size(op.type), bytes = op.count * es;
    const int n = op.comm->nranks, b = (int)bytes;
    const bool root = op.comm->rank == op.root;
    const MPI_Comm c = op.comm->data;
    MPI_Request q = MPI_REQUEST_NULL;
    int rc = MPI_SUCCESS;
    const char *what = "";
    switch (op.kind) {
    case Kind::AllReduce:
    case Kind::AllGather:
        /* every contribution to every rank, reduced (or kept) in rank order */
        copy_in(&run->in, op.send, bytes);
        run->out.resize(bytes * (size_t)n);
        what = "MPI_Iallgather";
        rc = MPI_Iallgather(run->in.data(), b, MPI_BYTE, run->out.data(), b, MPI_BYTE, c, &q);
        break;
    case Kind::Reduce:
        copy_in(&run->in, op.send, bytes);
        if (root)
            run->out.resize(bytes * (size_t)n);
        what = "MPI_Igather";
        rc = MPI_Igather(run->in.data(), b, MPI_BYTE, root ? run->out.data() : nullptr, b,
                         MPI_BYTE, op.root, c, &q);
        break;
    case Kind::Broadcast:
        if (root)
            copy_in(&run->out, op.send, bytes);
        else
            run->out.resize(bytes);
        what = "MPI_Ibcast";
        rc = MPI_Ibcast(run->out.data(), b, MPI_BYTE, op.root, c, &q);
        break;
    case Kind::ReduceScatter:
        /* block j of each rank's sendbuff to rank j, reduced there */
        copy_in(&run->in, op.send, bytes * (size_t)n);
        run->out.resize(bytes * (size_t)n);
        what = "MPI_Ialltoall";
        rc = MPI_Ialltoall(run->in.data(), b, MPI_BYTE, run->out.data(), b, MPI_BYTE, c, &q);
        break;
    case Kind::Send:
        copy_in(&run->in, op.send, bytes);
        what = "MPI_Isend";
        rc = MPI_Isend(run->in.data(), b, MPI_BYTE, op.root, k_tag_p2p, c, &q);
        break;
    case Kind::Recv:
        run->out.resize(bytes);
        what = "MPI_Irecv";
        rc = MPI_Irecv(run->out.data(), b, MPI_BYTE, op.root, k_tag_p2p, c, &q);
        break;
    }
    if (rc != MPI_SUCCESS)
        return mpi_failed(op, what, rc);
    run->reqs.push_back(q);
    *out = std::move(run);
    return ncclSuccess;
}

/* The result written where NCCL's kernel would write it. */
void finish(const Running &run) {
    const Op &op = run.op;
    const size_t bytes = op.count * type_size(op.type);
    const int n = op.comm->nranks;
    switch (op.kind) {
    case Kind::AllReduce:
    case Kind::ReduceScatter:
    case Kind::Reduce: /* (the root's only) */
        if (op.kind != Kind::Reduce || op.comm->rank == op.root) {
            lt_cuda_emu::device_open();
            reduce((ncclDataType_t)op.type, (ncclRedOp_t)op.red, run.out.data(), n, op.count,
                   op.recv);
            lt_cuda_emu::device_close();
        }
        break;
    case Kind::AllGather:
        copy_out(op.recv, run.out, bytes * (size_t)n);
        break;
    case Kind::Broadcast:
    case Kind::Recv:
        copy_out(op.recv, run.out, bytes);
        break;
    case Kind::Send:
        break;
    }
}

void abandon(std::unique_ptr<Running> run) {
    std::lock_guard<std::mutex> g(g_abandoned_mutex);
    g_abandoned->push_back(std::move(run));
}

/* An operation that can never complete: it is at or past what a failed
 * rank handed to MPI before it stopped (the notices' cutoffs). */
bool needs_failed(const Op &op) {
    const ncclComm *c = op.comm;
    switch (op.kind) {
    case Kind::Send:
        return op.seq >= c->send_cutoff[(size_t)op.root];
    case Kind::Recv:
        return op.seq >= c->recv_cutoff[(size_t)op.root];
    default:
        return op.seq >= c->coll_cutoff;
    }
}

/* What a call returns for an operation given up on: after ncclCommAbort,
 * ncclInvalidUsage (the communicator went away under the call); when a
 * failed rank never handed its part to MPI, the asynchronous error
 * (ncclRemoteError, or ncclSystemError after MPI refused something). */
ncclResult_t given_up(const Op &op) {
    if (op.comm->abort_flag.load())
        return fail(ncclInvalidUsage,
                    "%s: the communicator was aborted (ncclCommAbort) while this call waited; "
                    "its operation #%llu is abandoned",
                    kind_fn(op.kind), op.number);
    std::string reason;
    {
        std::lock_guard<std::mutex> g(g_mutex);
        reason = op.comm->reason;
    }
    return fail((ncclResult_t)op.comm->async_error.load(), "%s: operation #%llu abandoned: %s",
                kind_fn(op.kind), op.number, reason.c_str());
}

/* Polls MPI until every running operation completed or was given up on:
 * after an abort, or when it needs what a failed rank never handed to MPI
 * (an operation that the failed rank did hand over still completes). The
 * first polls yield the processor (ranks often outnumber cores in tests),
 * later ones sleep 200 us. */
ncclResult_t wait(std::vector<std::unique_ptr<Running>> *runs) {
    ncclResult_t result = ncclSuccess;
    for (unsigned long spins = 0;; spins++) {
        bool pending = false;
        for (auto &run : *runs) {
            if (!run || run->done || run->abandoned)
                continue;
            int flag = 0;
            const int rc = MPI_Testall((int)run->reqs.size(), run->reqs.data(), &flag,
                                       MPI_STATUSES_IGNORE);
            if (rc != MPI_SUCCESS) {
                run->abandoned = true;
                if (ncclResult_t r = mpi_failed(run->op, "MPI_Testall", rc); !result)
                    result = r;
            } else if (flag) {
                run->done = true;
            } else if (run->op.comm->abort_flag.load() || needs_failed(run->op)) {
                run->abandoned = true;
                if (ncclResult_t r = given_up(run->op); r && !result)
                    result = r;
            } else {
                pending = true;
            }
        }
        if (!pending)
            return result;
        for (auto &run : *runs)
            if (run && !run->done && !run->abandoned)
                poll_notices(run->op.comm);
        if (spins < 2000) {
            sched_yield();
        } else {
            struct timespec ts = {0, 200000};
            nanosleep(&ts, nullptr);
        }
    }
}

/* Settles one operation after wait: its result written, or it is kept. */
void settle(std::unique_ptr<Running> run) {
    if (run->done)
        finish(*run);
    else
        abandon(std::move(run));
}

/* The failing rank's side of LT_NCCL_EMU_FAIL: the call succeeds (an
 * enqueue does), the asynchronous error is ncclSystemError, and the peers'
 * notices say what this rank handed to MPI before. */
void inject_fault(const Op &op) {
    char msg[320];
    snprintf(msg, sizeof msg,
             "%s: LT_NCCL_EMU_FAIL=%s: this process's operation #%llu (rank %d of %d) failed "
             "without running; its peers are told (ncclRemoteError there); ncclCommAbort the "
             "communicator",
             kind_fn(op.kind), fault_text(), op.number, op.comm->rank, op.comm->nranks);
    fail(ncclSystemError, "%s", msg);
    comm_fail(op.comm, ncclSystemError, op.comm->rank, (int64_t)op.number, msg);
}

/* Runs ops in NCCL's order: the sends and receives all posted first (as a
 * group launches them together, so pairs never deadlock), the collectives
 * one after another in call order (each sees the previous one's result),
 * then the sends and receives completed. Count-0 operations do nothing. */
ncclResult_t execute(const std::vector<Op> &ops) {
    std::vector<ncclComm *> entered;
    ncclResult_t result = ncclSuccess;
    for (const Op &op : ops) {
        if (std::find(entered.begin(), entered.end(), op.comm) != entered.end())
            continue;
        if ((result = comm_enter(op.comm, kind_fn(op.kind))) != ncclSuccess)
            break;
        entered.push_back(op.comm);
    }
    if (result) {
        for (ncclComm *c : entered)
            comm_leave(c);
        return result;
    }
    /* LT_NCCL_EMU_FAIL: the failing operation's communicator runs nothing
     * of this call or group; its peers are told what it did run. */
    for (const Op &op : ops)
        if (op.fault && op.comm->async_error.load() == ncclSuccess)
            inject_fault(op);
    /* Whether op reaches MPI (not on a failed communicator), counted as
     * handed over by kind in call order; count 0 counts but moves nothing. */
    auto reaches_mpi = [](const Op &op) {
        ncclComm *c = op.comm;
        if (c->async_error.load() != ncclSuccess)
            return false;
        if (op.kind == Kind::Send)
            c->sends_posted[(size_t)op.root]++;
        else if (op.kind == Kind::Recv)
            c->recvs_posted[(size_t)op.root]++;
        else
            c->colls_posted++;
        return op.count != 0;
    };
    auto note = [&result](ncclResult_t r) {
        if (r && !result)
            result = r;
    };
    std::vector<std::unique_ptr<Running>> p2p;
    for (const Op &op : ops) {
        if (!is_p2p(op.kind) || !reaches_mpi(op))
            continue;
        std::unique_ptr<Running> run;
        note(post(op, &run));
        if (run)
            p2p.push_back(std::move(run));
    }
    for (const Op &op : ops) {
        if (is_p2p(op.kind) || !reaches_mpi(op))
            continue;
        std::vector<std::unique_ptr<Running>> one(1);
        if (ncclResult_t r = post(op, &one[0])) {
            note(r);
            continue;
        }
        note(wait(&one));
        settle(std::move(one[0]));
    }
    note(wait(&p2p));
    for (auto &run : p2p)
        settle(std::move(run));
    for (ncclComm *c : entered)
        comm_leave(c);
    return result;
}

/* Every operation's way in: checked at the call (inside a group a refused
 * call also fails the group), numbered, then run now or at the group's end. */
ncclResult_t submit(Op op, cudaStream_t stream) {
    if (ncclResult_t r = validate(op, stream)) {
        if (t_group.depth > 0 && t_group.error == ncclSuccess)
            t_group.error = r;
        return r;
    }
    op.number = ++g_operations;
    op.fault = fault_fires(op.number);
    ncclComm *c = op.comm;
    if (op.kind == Kind::Send)
        op.seq = c->sends_issued[(size_t)op.root]++;
    else if (op.kind == Kind::Recv)
        op.seq = c->recvs_issued[(size_t)op.root]++;
    else
        op.seq = c->colls_issued++;
    if (t_group.depth > 0) {
        t_group.ops.push_back(op);
        return ncclSuccess;
    }
    return execute({op});
}

} // namespace

extern "C" {

ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count,
                           ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t stream) {
    return submit({Kind::AllReduce, comm, sendbuff, recvbuff, count, raw(&datatype), raw(&op), 0},
                  stream);
}

ncclResult_t ncclBroadcast(const void *sendbuff, void *recvbuff, size_t count,
                           ncclDataType_t datatype, int root, ncclComm_t comm,
                           cudaStream_t stream) {
    return submit({Kind::Broadcast, comm, sendbuff, recvbuff, count, raw(&datatype), ncclSum, root},
                  stream);
}

ncclResult_t ncclReduce(const void *sendbuff, void *recvbuff, size_t count,
                        ncclDataType_t datatype, ncclRedOp_t op, int root, ncclComm_t comm,
                        cudaStream_t stream) {
    return submit({Kind::Reduce, comm, sendbuff, recvbuff, count, raw(&datatype), raw(&op), root},
                  stream);
}

ncclResult_t ncclAllGather(const void *sendbuff, void *recvbuff, size_t sendcount,
                           ncclDataType_t datatype, ncclComm_t comm, cudaStream_t stream) {
    return submit(
        {Kind::AllGather, comm, sendbuff, recvbuff, sendcount, raw(&datatype), ncclSum, 0}, stream);
}

ncclResult_t ncclReduceScatter(const void *sendbuff, void *recvbuff, size_t recvcount,
                               ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                               cudaStream_t stream) {
    return submit({Kind::ReduceScatter, comm, sendbuff, recvbuff, recvcount, raw(&datatype),
                   raw(&op), 0},
                  stream);
}

ncclResult_t ncclSend(const void *sendbuff, size_t count, ncclDataType_t datatype, int peer,
                      ncclComm_t comm, cudaStream_t stream) {
    return submit({Kind::Send, comm, sendbuff, nullptr, count, raw(&datatype), ncclSum, peer},
                  stream);
}

ncclResult_t ncclRecv(void *recvbuff, size_t count, ncclDataType_t datatype, int peer,
                      ncclComm_t comm, cudaStream_t stream) {
    return submit({Kind::Recv, comm, nullptr, recvbuff, count, raw(&datatype), ncclSum, peer},
                  stream);
}

ncclResult_t ncclGroupStart(void) {
    if (t_group.depth++ == 0) {
        t_group.error = ncclSuccess;
        t_group.ops.clear();
    }
    return ncclSuccess;
}

/* The outermost end runs what the group collected, unless a call inside
 * was refused: then nothing runs and the end returns that call's error
 * (NCCL discards such a group too). */
ncclResult_t ncclGroupEnd(void) {
    if (t_group.depth == 0)
        return fail(ncclInvalidUsage, "ncclGroupEnd: no ncclGroupStart is open on this thread");
    if (--t_group.depth > 0)
        return ncclSuccess;
    std::vector<Op> ops;
    ops.swap(t_group.ops);
    if (t_group.error != ncclSuccess)
        return t_group.error;
    return execute(ops);
}

} // extern "C"

namespace lt_nccl_emu {
/* (comm.cpp: ncclCommDestroy and ncclCommInitRank refuse inside a group) */
bool group_open() { return t_group.depth > 0; }
bool group_holds(const ncclComm *c) {
    for (const Op &op : t_group.ops)
        if (op.comm == c)
            return true;
    return false;
}
} // namespace lt_nccl_emu
