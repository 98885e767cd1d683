/* Communicators: unique ids, creation over MPI, destroy and abort, the
 * queries, errors, and the fault injection (LT_NCCL_EMU_FAIL).
 *
 * ncclCommInitRank is collective over every process of MPI_COMM_WORLD
 * (real NCCL's is over the communicator's members only): each process
 * gathers every process's id, nranks and rank, the processes holding the
 * same id bytes are one communicator, and each checks the same facts, so
 * a mismatch is refused on every member alike instead of hanging one. The
 * communicator is then an MPI_Comm_split keyed by the NCCL rank.
 *
 * ncclCommAbort makes no MPI call: another thread may call it while the
 * owner thread waits inside MPI (MPI_THREAD_FUNNELED is enough). It raises
 * the flag the waiting call polls and waits for that call to leave. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <string>

#include "emu.h"

namespace lt_nccl_emu {

std::mutex g_mutex;

namespace {

const char k_magic[16] = "lt-nccl-emu id";
const int k_tag_fail = 2;
/* A notice: the failure's origin (NCCL rank, its operation number), then
 * what the sender handed to MPI: collectives, sends to and receives from
 * the receiver. */
const int k_notice_len = 5;

/* Every communicator made (g_mutex). Allocated and never destroyed, so that
 * LeakSanitizer, which looks after the static destructors ran, still
 * reaches the communicators through it. */
std::set<ncclComm *> *const g_comms = new std::set<ncclComm *>;
MPI_Comm g_world = MPI_COMM_NULL; /* our own duplicate of MPI_COMM_WORLD */

std::mutex g_last_mutex;
char g_last[1024]; /* ncclGetLastError's text: one per process, as NCCL's */

/* LT_NCCL_EMU_FAIL=<world rank>:<operation number>, read once */
struct Fault {
    bool read = false;
    bool valid = true;
    int rank = -1;
    unsigned long long call = 0;
    std::string text;
} g_fault;

bool debug_on() {
    const char *d = getenv("NCCL_DEBUG");
    if (!d)
        return false;
    std::string s(d);
    for (char &ch : s)
        ch = (char)toupper((unsigned char)ch);
    return s == "WARN" || s == "INFO" || s == "TRACE";
}

int world_rank() {
    int init = 0, fin = 0, r = -1;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin)
        MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

/* Parses LT_NCCL_EMU_FAIL once; false (with why) when it is malformed. */
bool read_fault(std::string *why) {
    if (!g_fault.read) {
        g_fault.read = true;
        const char *e = getenv("LT_NCCL_EMU_FAIL");
        if (e && *e) {
            g_fault.text = e;
            char *end;
            errno = 0;
            long r = strtol(e, &end, 10);
            bool ok = end != e && *end == ':' && r >= 0 && r <= 1000000 && errno == 0;
            if (ok) {
                const char *c = end + 1;
                unsigned long long n = strtoull(c, &end, 10);
                ok = end != c && *end == '\0' && isdigit((unsigned char)*c) && n >= 1 &&
                     errno == 0;
                g_fault.rank = (int)r;
                g_fault.call = n;
            }
            g_fault.valid = ok;
        }
    }
    if (!g_fault.valid)
        *why = "LT_NCCL_EMU_FAIL=" + g_fault.text +
               ": expected <MPI_COMM_WORLD rank>:<operation number from 1>, e.g. 1:3";
    return g_fault.valid;
}

/* What a process tells the others in ncclCommInitRank. */
struct Entry {
    char id[NCCL_UNIQUE_ID_BYTES];
    int nranks;
    int rank;
    int ok; /* its own arguments passed its checks */
};

ncclResult_t mpi_failed(const char *fn, const char *what, int code) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "MPI error %d", code);
    return fail(ncclSystemError, "%s: %s failed: %s", fn, what, text);
}

} // namespace

ncclResult_t fail(ncclResult_t r, const char *fmt, ...) {
    char msg[sizeof g_last];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    {
        std::lock_guard<std::mutex> g(g_last_mutex);
        memcpy(g_last, msg, sizeof g_last);
    }
    if (debug_on())
        fprintf(stderr, "lt_nccl_emu: world rank %d: NCCL WARN %s\n", world_rank(), msg);
    return r;
}

/* c is a communicator ncclCommInitRank made, not destroyed or aborted
 * (g_mutex held); ncclInvalidArgument otherwise. */
static ncclResult_t known_locked(const ncclComm *c, const char *fn) {
    if (!g_comms->count(const_cast<ncclComm *>(c)))
        return fail(ncclInvalidArgument, "%s: comm %p is not a communicator ncclCommInitRank made",
                    fn, (const void *)c);
    if (!c->live)
        return fail(ncclInvalidArgument, "%s: the communicator was destroyed or aborted", fn);
    return ncclSuccess;
}

ncclResult_t comm_usable(ncclComm *c, const char *fn) {
    if (!c)
        return fail(ncclInvalidArgument, "%s: comm is NULL", fn);
    std::lock_guard<std::mutex> g(g_mutex);
    if (ncclResult_t r = known_locked(c, fn))
        return r;
    if (c->abort_flag.load())
        return fail(ncclInvalidUsage, "%s: the communicator is being aborted", fn);
    const int e = c->async_error.load();
    if (e != ncclSuccess)
        return fail((ncclResult_t)e, "%s: the communicator has an asynchronous error (%s): %s", fn,
                    ncclGetErrorString((ncclResult_t)e), c->reason.c_str());
    return ncclSuccess;
}

ncclResult_t comm_enter(ncclComm *c, const char *fn) {
    if (ncclResult_t r = comm_usable(c, fn))
        return r;
    {
        std::lock_guard<std::mutex> g(g_mutex);
        if (!c->live || c->abort_flag.load()) /* aborted since comm_usable */
            return fail(ncclInvalidUsage, "%s: the communicator is being aborted", fn);
        c->in_flight++;
    }
    poll_notices(c);
    if (c->async_error.load() != ncclSuccess) { /* a notice came: said as comm_usable says it */
        comm_leave(c);
        return comm_usable(c, fn);
    }
    return ncclSuccess;
}

void comm_leave(ncclComm *c) {
    std::lock_guard<std::mutex> g(g_mutex);
    c->in_flight--;
}

void comm_fail(ncclComm *c, ncclResult_t e, int64_t origin_rank, int64_t origin_op,
               const char *reason) {
    {
        std::lock_guard<std::mutex> g(g_mutex);
        int expected = ncclSuccess;
        if (c->async_error.compare_exchange_strong(expected, (int)e))
            c->reason = reason;
    }
    if (c->notified)
        return;
    c->notified = true;
    /* Small eager sends: they complete without the receiver; the payloads
     * live in the communicator, which is never freed. */
    c->notice.assign((size_t)c->nranks * k_notice_len, 0);
    for (int p = 0; p < c->nranks; p++) {
        if (p == c->rank)
            continue;
        int64_t *m = &c->notice[(size_t)p * k_notice_len];
        m[0] = origin_rank;
        m[1] = origin_op;
        m[2] = (int64_t)c->colls_posted;
        m[3] = (int64_t)c->sends_posted[(size_t)p];
        m[4] = (int64_t)c->recvs_posted[(size_t)p];
        MPI_Request q;
        if (MPI_Isend(m, k_notice_len, MPI_INT64_T, p, k_tag_fail, c->ctl, &q) == MPI_SUCCESS)
            MPI_Request_free(&q);
    }
}

void poll_notices(ncclComm *c) {
    for (;;) {
        int flag = 0;
        MPI_Status st;
        if (MPI_Iprobe(MPI_ANY_SOURCE, k_tag_fail, c->ctl, &flag, &st) != MPI_SUCCESS || !flag)
            return;
        int64_t m[k_notice_len];
        if (MPI_Recv(m, k_notice_len, MPI_INT64_T, st.MPI_SOURCE, k_tag_fail, c->ctl,
                     MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return;
        /* what the sender q handed to MPI before it stopped */
        const size_t q = (size_t)st.MPI_SOURCE;
        c->coll_cutoff = std::min(c->coll_cutoff, (unsigned long long)m[2]);
        c->recv_cutoff[q] = std::min(c->recv_cutoff[q], (unsigned long long)m[3]);
        c->send_cutoff[q] = std::min(c->send_cutoff[q], (unsigned long long)m[4]);
        const int origin = m[0] >= 0 && m[0] < c->nranks ? (int)m[0] : 0;
        char msg[320];
        snprintf(msg, sizeof msg,
                 "rank %d of the communicator (MPI_COMM_WORLD rank %d) failed in its operation "
                 "#%lld (LT_NCCL_EMU_FAIL); this rank's operations that need it are abandoned: "
                 "ncclCommAbort the communicator",
                 origin, c->world_rank[(size_t)origin], (long long)m[1]);
        if (c->async_error.load() == ncclSuccess)
            fail(ncclRemoteError, "%s", msg);
        comm_fail(c, ncclRemoteError, m[0], m[1], msg);
    }
}

bool fault_fires(unsigned long long n) {
    return g_fault.valid && g_fault.call == n && g_fault.rank == world_rank();
}

const char *fault_text() { return g_fault.text.c_str(); }

} // namespace lt_nccl_emu

using namespace lt_nccl_emu;

namespace {

ncclResult_t check_config(const ncclConfig_t *config, std::string *why) {
    if (!config)
        return ncclSuccess;
    char buf[256];
    if (config->magic != 0xcafebeef || config->size < offsetof(ncclConfig_t, cgaClusterSize) ||
        config->size > sizeof(ncclConfig_t)) {
        snprintf(buf, sizeof buf,
                 "config was not initialised with NCCL_CONFIG_INITIALIZER (magic 0x%x, size %zu)",
                 config->magic, config->size);
        *why = buf;
        return ncclInvalidArgument;
    }
    if (config->blocking != NCCL_CONFIG_UNDEF_INT && config->blocking != 1) {
        snprintf(buf, sizeof buf,
                 "config->blocking = %d: the emulation makes blocking communicators only",
                 config->blocking);
        *why = buf;
        return ncclInvalidArgument;
    }
    return ncclSuccess;
}

} // namespace

extern "C" {

ncclResult_t ncclGetVersion(int *version) {
    if (!version)
        return fail(ncclInvalidArgument, "ncclGetVersion: version is NULL");
    *version = NCCL_VERSION_CODE;
    return ncclSuccess;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId *uniqueId) {
    if (!uniqueId)
        return fail(ncclInvalidArgument, "ncclGetUniqueId: uniqueId is NULL");
    static std::atomic<unsigned long long> counter{0};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char host[64] = {0};
    gethostname(host, sizeof host - 1);
    /* magic, then what makes it unique: host, process, time, a counter */
    struct {
        char magic[16];
        char host[64];
        int64_t pid, world, sec, nsec;
        unsigned long long n;
    } body;
    memset(&body, 0, sizeof body);
    static_assert(sizeof body <= NCCL_UNIQUE_ID_BYTES, "the id holds its fields");
    memcpy(body.magic, k_magic, sizeof k_magic);
    memcpy(body.host, host, sizeof host);
    body.pid = getpid();
    body.world = world_rank();
    body.sec = ts.tv_sec;
    body.nsec = ts.tv_nsec;
    body.n = ++counter;
    memset(uniqueId, 0, sizeof *uniqueId);
    memcpy(uniqueId->internal, &body, sizeof body);
    return ncclSuccess;
}

ncclResult_t ncclCommInitRankConfig(ncclComm_t *comm, int nranks, ncclUniqueId commId, int rank,
                                    ncclConfig_t *config) {
    const char *fn = "ncclCommInitRank";
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin)
        return fail(ncclInvalidUsage,
                    "%s: MPI is not initialised (the emulation's transport; call MPI_Init first)",
                    fn);
    if (comm)
        *comm = nullptr;
    if (group_open())
        return fail(ncclInvalidUsage,
                    "%s: inside ncclGroupStart/ncclGroupEnd (the emulation creates communicators "
                    "outside groups only)",
                    fn);

    /* This process's own checks; the verdict is shared before anyone
     * returns, so that no member is left waiting for one that refused. */
    std::string why;
    ncclResult_t mine = ncclSuccess;
    char buf[256];
    if (!comm) {
        why = "comm is NULL";
        mine = ncclInvalidArgument;
    } else if (nranks < 1) {
        snprintf(buf, sizeof buf, "nranks %d: expected 1 or more", nranks);
        why = buf;
        mine = ncclInvalidArgument;
    } else if (rank < 0 || rank >= nranks) {
        snprintf(buf, sizeof buf, "rank %d outside 0..%d (nranks %d)", rank, nranks - 1, nranks);
        why = buf;
        mine = ncclInvalidArgument;
    } else if (memcmp(commId.internal, k_magic, sizeof k_magic) != 0) {
        why = "commId is not an id ncclGetUniqueId made (broadcast it to every rank unchanged)";
        mine = ncclInvalidArgument;
    } else if (check_config(config, &why) != ncclSuccess) {
        mine = ncclInvalidArgument;
    } else if (!read_fault(&why)) {
        mine = ncclInvalidArgument;
    }
    int dev = 0;
    if (mine == ncclSuccess && cudaGetDevice(&dev) != cudaSuccess) {
        why = "cudaGetDevice failed";
        mine = ncclUnhandledCudaError;
    }

    int rc;
    if (g_world == MPI_COMM_NULL) {
        if ((rc = MPI_Comm_dup(MPI_COMM_WORLD, &g_world)) != MPI_SUCCESS)
            return mpi_failed(fn, "MPI_Comm_dup(MPI_COMM_WORLD)", rc);
        MPI_Comm_set_errhandler(g_world, MPI_ERRORS_RETURN);
    }
    int wsize = 0;
    MPI_Comm_size(g_world, &wsize);
    Entry me;
    memcpy(me.id, commId.internal, sizeof me.id);
    me.nranks = nranks;
    me.rank = rank;
    me.ok = mine == ncclSuccess;
    std::vector<Entry> all((size_t)wsize);
    if ((rc = MPI_Allgather(&me, (int)sizeof me, MPI_BYTE, all.data(), (int)sizeof me, MPI_BYTE,
                            g_world)) != MPI_SUCCESS)
        return mpi_failed(fn, "MPI_Allgather", rc);

    /* The members: the processes that passed the same id bytes; each
     * member checks the same facts in the same order. */
    std::vector<int> members;
    for (int w = 0; w < wsize; w++)
        if (memcmp(all[(size_t)w].id, me.id, sizeof me.id) == 0)
            members.push_back(w);
    ncclResult_t verdict = mine;
    if (verdict == ncclSuccess) {
        std::vector<int> by_rank((size_t)nranks, -1);
        for (int w : members) {
            const Entry &e = all[(size_t)w];
            if (!e.ok) {
                snprintf(buf, sizeof buf,
                         "MPI_COMM_WORLD rank %d, a member, refused its own arguments (its "
                         "ncclGetLastError says why)",
                         w);
            } else if (e.nranks != nranks) {
                snprintf(buf, sizeof buf,
                         "MPI_COMM_WORLD rank %d passed nranks %d with this id, this process %d",
                         w, e.nranks, nranks);
            } else if (by_rank[(size_t)e.rank] >= 0) {
                snprintf(buf, sizeof buf, "rank %d passed by MPI_COMM_WORLD ranks %d and %d",
                         e.rank, by_rank[(size_t)e.rank], w);
            } else {
                by_rank[(size_t)e.rank] = w;
                continue;
            }
            why = buf;
            verdict = ncclInvalidArgument;
            break;
        }
        if (verdict == ncclSuccess && (int)members.size() != nranks) {
            snprintf(buf, sizeof buf,
                     "%zu processes passed this id and nranks is %d (a process passed another id, "
                     "or nranks is wrong)",
                     members.size(), nranks);
            why = buf;
            verdict = ncclInvalidArgument;
        }
    }
    MPI_Comm data = MPI_COMM_NULL, ctl = MPI_COMM_NULL;
    if ((rc = MPI_Comm_split(g_world, verdict == ncclSuccess ? members[0] : MPI_UNDEFINED, rank,
                             &data)) != MPI_SUCCESS)
        return mpi_failed(fn, "MPI_Comm_split", rc);
    if (verdict != ncclSuccess)
        return fail(verdict, "%s(nranks %d, rank %d): %s", fn, nranks, rank, why.c_str());
    if ((rc = MPI_Comm_dup(data, &ctl)) != MPI_SUCCESS)
        return mpi_failed(fn, "MPI_Comm_dup", rc);
    MPI_Comm_set_errhandler(data, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(ctl, MPI_ERRORS_RETURN);

    ncclComm *c = new ncclComm;
    c->rank = rank;
    c->nranks = nranks;
    c->cuda_dev = dev;
    c->data = data;
    c->ctl = ctl;
    c->world_rank.assign((size_t)nranks, -1);
    for (auto *v : {&c->sends_issued, &c->sends_posted, &c->recvs_issued, &c->recvs_posted})
        v->assign((size_t)nranks, 0);
    c->recv_cutoff.assign((size_t)nranks, ~0ull);
    c->send_cutoff.assign((size_t)nranks, ~0ull);
    for (int w : members)
        c->world_rank[(size_t)all[(size_t)w].rank] = w;
    {
        std::lock_guard<std::mutex> g(g_mutex);
        g_comms->insert(c);
    }
    *comm = c;
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId commId, int rank) {
    return ncclCommInitRankConfig(comm, nranks, commId, rank, nullptr);
}

/* NULL is accepted and does nothing, as NCCL's. */
ncclResult_t ncclCommAbort(ncclComm_t comm) {
    if (!comm)
        return ncclSuccess;
    {
        std::lock_guard<std::mutex> g(g_mutex);
        if (ncclResult_t r = known_locked(comm, "ncclCommAbort"))
            return r;
        comm->abort_flag.store(true);
    }
    /* The owner thread's call sees the flag within a poll (under a
     * millisecond) and leaves; its MPI operations stay abandoned. */
    for (;;) {
        {
            std::lock_guard<std::mutex> g(g_mutex);
            if (comm->in_flight == 0) {
                comm->live = false;
                return ncclSuccess;
            }
        }
        struct timespec ts = {0, 100000};
        nanosleep(&ts, nullptr);
    }
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
    if (!comm)
        return ncclSuccess;
    {
        std::lock_guard<std::mutex> g(g_mutex);
        if (ncclResult_t r = known_locked(comm, "ncclCommDestroy"))
            return r;
        if (group_holds(comm))
            return fail(ncclInvalidUsage, "ncclCommDestroy: the open group (ncclGroupStart) holds "
                                          "operations on the communicator");
        if (comm->in_flight)
            return fail(ncclInvalidUsage,
                        "ncclCommDestroy: an operation is in flight on another thread "
                        "(ncclCommAbort stops it)");
        comm->live = false;
    }
    /* A failed or aborting communicator may have abandoned operations on
     * its MPI communicators: it is dropped as ncclCommAbort drops it. */
    if (comm->async_error.load() == ncclSuccess && !comm->abort_flag.load()) {
        MPI_Comm_free(&comm->ctl);
        MPI_Comm_free(&comm->data);
    }
    return ncclSuccess;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *asyncError) {
    if (!asyncError)
        return fail(ncclInvalidArgument, "ncclCommGetAsyncError: asyncError is NULL");
    if (!comm)
        return fail(ncclInvalidArgument, "ncclCommGetAsyncError: comm is NULL");
    std::lock_guard<std::mutex> g(g_mutex);
    if (ncclResult_t r = known_locked(comm, "ncclCommGetAsyncError"))
        return r;
    *asyncError = (ncclResult_t)comm->async_error.load();
    return ncclSuccess;
}

} // extern "C"

namespace {

/* The three queries: a live communicator and somewhere to write. */
ncclResult_t query(const ncclComm *comm, const int *out, const char *fn) {
    if (!out)
        return fail(ncclInvalidArgument, "%s: the output pointer is NULL", fn);
    if (!comm)
        return fail(ncclInvalidArgument, "%s: comm is NULL", fn);
    std::lock_guard<std::mutex> g(g_mutex);
    return known_locked(comm, fn);
}

} // namespace

extern "C" {

ncclResult_t ncclCommCount(const ncclComm_t comm, int *count) {
    if (ncclResult_t r = query(comm, count, "ncclCommCount"))
        return r;
    *count = comm->nranks;
    return ncclSuccess;
}

ncclResult_t ncclCommCuDevice(const ncclComm_t comm, int *device) {
    if (ncclResult_t r = query(comm, device, "ncclCommCuDevice"))
        return r;
    *device = comm->cuda_dev;
    return ncclSuccess;
}

ncclResult_t ncclCommUserRank(const ncclComm_t comm, int *rank) {
    if (ncclResult_t r = query(comm, rank, "ncclCommUserRank"))
        return r;
    *rank = comm->rank;
    return ncclSuccess;
}

const char *ncclGetErrorString(ncclResult_t result) {
    int r; /* (any int a C caller passes: read as bytes, see ops.cpp's raw) */
    memcpy(&r, &result, sizeof r);
    switch (r) {
    case ncclSuccess:
        return "no error";
    case ncclUnhandledCudaError:
        return "unhandled cuda error (ncclGetLastError says which)";
    case ncclSystemError:
        return "unhandled system error (ncclGetLastError says which)";
    case ncclInternalError:
        return "internal error";
    case ncclInvalidArgument:
        return "invalid argument (ncclGetLastError says which)";
    case ncclInvalidUsage:
        return "invalid usage (ncclGetLastError says which)";
    case ncclRemoteError:
        return "remote process exited or there was a network error";
    case ncclInProgress:
        return "NCCL operation in progress";
    default:
        return "unknown result code";
    }
}

/* One text per process, whichever call failed last (as NCCL's). */
const char *ncclGetLastError(ncclComm_t comm) {
    (void)comm;
    return g_last;
}

} // extern "C"
