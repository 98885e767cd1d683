/* The NCCL emulation (tests/nccl_emu/) on however many ranks mpirun starts
 * (CTest: 1, 2 and 4, with tests/cuda_emu's guard on in the release
 * build). Every buffer is emulated device memory, read and written only
 * through cudaMemcpy.
 *
 *   test_nccl_emu all    every collective, datatype and reduction against
 *                        a reference computed here; in-place forms; groups,
 *                        their order and send/receive rings; communicator
 *                        creation and what it refuses; argument refusals;
 *                        a wait that only ncclCommAbort ends
 *   test_nccl_emu fault collective|group|chain
 *                        LT_NCCL_EMU_FAIL=<rank>:<n> (2: an all-reduce; 3:
 *                        a send inside a ring group; 2:2: a send whose
 *                        receiver had to send on): the failing rank's
 *                        asynchronous error, the ranks waiting on it
 *                        unblocked with ncclRemoteError, no hang, then a
 *                        new communicator
 *   test_nccl_emu bad-fault
 *                        a malformed LT_NCCL_EMU_FAIL refused by
 *                        ncclCommInitRank on every rank
 *
 * The references: each rank generates every rank's inputs itself and
 * reduces them in rank order (the emulation's documented order), integers
 * wrapping modulo 2^bits (computed in 64-bit unsigned arithmetic and
 * masked), float16 through the compiler's _Float16 conversions, bfloat16
 * rounded with frexp/nearbyint (not bit tricks), so neither shares code
 * with the emulation's conversions. */
#include <math.h>
#include <mpi.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime.h>
#include <nccl.h>

#include "tests/lib/check.h"

__extension__ typedef _Float16 f16;

static int g_rank, g_size;
static cudaStream_t g_stream;

#define CHECK_NCCL(expr)                                                                           \
    do {                                                                                           \
        ncclResult_t r_ = (expr);                                                                  \
        CHECK(r_ == ncclSuccess, "%s: %s", ncclGetErrorString(r_), ncclGetLastError(NULL));        \
    } while (0)

/* The call returned want and ncclGetLastError holds text. */
#define CHECK_REFUSED(expr, want, text)                                                            \
    do {                                                                                           \
        ncclResult_t r_ = (expr);                                                                  \
        CHECK(r_ == (want) && strstr(ncclGetLastError(NULL), (text)) != NULL,                      \
              "returned %d (%s), expected %d; last error \"%s\", expected it to say \"%s\"",       \
              (int)r_, ncclGetErrorString(r_), (int)(want), ncclGetLastError(NULL), (text));       \
    } while (0)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- device buffers (through cudaMemcpy only: the guard is on) ---- */

static void *dev_alloc(size_t bytes) {
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        fprintf(stderr, "cudaMalloc(%zu): %s\n", bytes, cudaGetErrorString(e));
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return p;
}

static void to_dev(void *d, const void *h, size_t bytes) {
    if (bytes && cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice) != cudaSuccess)
        MPI_Abort(MPI_COMM_WORLD, 1);
}

static void from_dev(void *h, const void *d, size_t bytes) {
    if (bytes && cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost) != cudaSuccess)
        MPI_Abort(MPI_COMM_WORLD, 1);
}

/* A device block of bytes filled with the sentinel 0xA5. */
static void *dev_sentinel(size_t bytes) {
    void *d = dev_alloc(bytes);
    if (bytes && cudaMemset(d, 0xA5, bytes) != cudaSuccess)
        MPI_Abort(MPI_COMM_WORLD, 1);
    return d;
}

/* Bytes of d still all 0xA5. */
static int still_sentinel(const void *d, size_t bytes) {
    unsigned char *h = malloc(bytes ? bytes : 1);
    from_dev(h, d, bytes);
    int ok = 1;
    for (size_t i = 0; i < bytes; i++)
        ok &= h[i] == 0xA5;
    free(h);
    return ok;
}

/* ---- the datatypes, inputs and references ---- */

typedef struct {
    ncclDataType_t t;
    const char *name;
    size_t size;
    int is_signed; /* integers */
} type_info;

static const type_info k_types[] = {
    {ncclInt8, "int8", 1, 1},         {ncclUint8, "uint8", 1, 0},
    {ncclInt32, "int32", 4, 1},       {ncclUint32, "uint32", 4, 0},
    {ncclInt64, "int64", 8, 1},       {ncclUint64, "uint64", 8, 0},
    {ncclFloat16, "float16", 2, 0},   {ncclBfloat16, "bfloat16", 2, 0},
    {ncclFloat32, "float32", 4, 0},   {ncclFloat64, "float64", 8, 0},
};
#define N_TYPES (sizeof k_types / sizeof k_types[0])
static const ncclRedOp_t k_ops[] = {ncclSum, ncclProd, ncclMax, ncclMin, ncclAvg};
static const char *const k_op_names[] = {"sum", "prod", "max", "min", "avg"};

static int is_int(ncclDataType_t t) { return t <= ncclUint64; }

static uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Element i of rank r's input for a case (seed): every integer bit
 * pattern; floats of both signs with exponents over a few binades and
 * every mantissa bit, so that sums round. */
static void gen(const type_info *ti, int r, size_t i, unsigned seed, unsigned char *out) {
    const uint64_t x = mix(mix(mix(seed) ^ (uint64_t)r) ^ (uint64_t)i);
    const uint64_t sign = x >> 63, e = (x >> 32) & 0xffff;
    uint64_t bits;
    switch (ti->t) {
    case ncclFloat16:
        bits = sign << 15 | (9 + e % 13) << 10 | (x & 0x3ff); /* 2^-6 .. 2^7 */
        break;
    case ncclBfloat16:
        bits = sign << 15 | (121 + e % 13) << 7 | (x & 0x7f);
        break;
    case ncclFloat32:
        bits = sign << 31 | (117 + e % 21) << 23 | (x & 0x7fffff);
        break;
    case ncclFloat64:
        bits = sign << 63 | (1013 + e % 21) << 52 | (x & 0xfffffffffffffull);
        break;
    default:
        bits = x;
        break;
    }
    memcpy(out, &bits, ti->size); /* little-endian: the low bytes */
}

static uint64_t load_bits(const unsigned char *p, size_t size) {
    uint64_t v = 0;
    memcpy(&v, p, size);
    return v;
}

/* w-bit two's complement bits as a signed value. */
static int64_t as_signed(uint64_t bits, unsigned w) {
    if (w == 64)
        return (bits >> 63) ? -(int64_t)(~bits) - 1 : (int64_t)bits;
    const uint64_t mask = ((uint64_t)1 << w) - 1;
    bits &= mask;
    return (bits >> (w - 1)) ? (int64_t)bits - ((int64_t)1 << w) : (int64_t)bits;
}

/* float -> bfloat16, round to nearest even, by arithmetic: f's value
 * rounded to a multiple of 2^(e-8) (8 significant bits), or of 2^-133
 * below the normal range; nearbyint rounds ties to even. */
static uint16_t ref_bf16(float f) {
    if (f == 0.0f || isinf(f)) {
        uint32_t u;
        memcpy(&u, &f, 4);
        return (uint16_t)(u >> 16);
    }
    int e;
    frexp((double)f, &e);
    int q = e - 8;
    if (q < -133)
        q = -133;
    const float r = (float)ldexp(nearbyint(ldexp((double)f, -q)), q);
    uint32_t u;
    memcpy(&u, &r, 4);
    return (uint16_t)(u >> 16);
}

static float bf16_widen(uint16_t b) {
    const uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* The reduction of n values (packed in vals) as the emulation defines it. */
static void ref_reduce(const type_info *ti, ncclRedOp_t op, int n, const unsigned char *vals,
                       unsigned char *out) {
    const size_t es = ti->size;
    if (is_int(ti->t)) {
        const unsigned w = (unsigned)(es * 8);
        const uint64_t mask = w == 64 ? ~(uint64_t)0 : ((uint64_t)1 << w) - 1;
        uint64_t acc = load_bits(vals, es);
        for (int r = 1; r < n; r++) {
            const uint64_t x = load_bits(vals + (size_t)r * es, es);
            int greater = ti->is_signed ? as_signed(x, w) > as_signed(acc, w) : x > acc;
            int less = ti->is_signed ? as_signed(x, w) < as_signed(acc, w) : x < acc;
            if (op == ncclSum || op == ncclAvg)
                acc = (acc + x) & mask;
            else if (op == ncclProd)
                acc = (acc * x) & mask;
            else if ((op == ncclMax && greater) || (op == ncclMin && less))
                acc = x;
        }
        if (op == ncclAvg)
            acc = ti->is_signed ? (uint64_t)(as_signed(acc, w) / n) & mask : acc / (uint64_t)n;
        memcpy(out, &acc, es);
        return;
    }
    float facc = 0.0f;
    double dacc = 0.0;
    for (int r = 0; r < n; r++) {
        const unsigned char *p = vals + (size_t)r * es;
        float fx = 0.0f;
        double dx = 0.0;
        switch (ti->t) {
        case ncclFloat16: {
            f16 h;
            memcpy(&h, p, 2);
            fx = (float)h;
            break;
        }
        case ncclBfloat16: {
            uint16_t b;
            memcpy(&b, p, 2);
            fx = bf16_widen(b);
            break;
        }
        case ncclFloat32:
            memcpy(&fx, p, 4);
            break;
        default:
            memcpy(&dx, p, 8);
            break;
        }
        if (r == 0) {
            facc = fx;
            dacc = dx;
        } else if (op == ncclSum || op == ncclAvg) {
            facc += fx;
            dacc += dx;
        } else if (op == ncclProd) {
            facc *= fx;
            dacc *= dx;
        } else if (op == ncclMax) {
            facc = fx > facc ? fx : facc;
            dacc = dx > dacc ? dx : dacc;
        } else {
            facc = fx < facc ? fx : facc;
            dacc = dx < dacc ? dx : dacc;
        }
    }
    if (op == ncclAvg) {
        facc /= (float)n;
        dacc /= (double)n;
    }
    switch (ti->t) {
    case ncclFloat16: {
        const f16 h = (f16)facc;
        memcpy(out, &h, 2);
        break;
    }
    case ncclBfloat16: {
        const uint16_t b = ref_bf16(facc);
        memcpy(out, &b, 2);
        break;
    }
    case ncclFloat32:
        memcpy(out, &facc, 4);
        break;
    default:
        memcpy(out, &dacc, 8);
        break;
    }
}

/* Mismatched elements of got against want (bit for bit); the first one
 * printed. */
static int compare(const char *what, const type_info *ti, const unsigned char *got,
                   const unsigned char *want, size_t count) {
    int bad = 0;
    for (size_t i = 0; i < count; i++) {
        if (memcmp(got + i * ti->size, want + i * ti->size, ti->size) == 0)
            continue;
        if (bad++ == 0)
            fprintf(stderr, "rank %d: %s %s: element %zu is 0x%llx, expected 0x%llx\n", g_rank,
                    what, ti->name, i, (unsigned long long)load_bits(got + i * ti->size, ti->size),
                    (unsigned long long)load_bits(want + i * ti->size, ti->size));
    }
    return bad;
}

/* Rank r's input of a case, count elements starting at element first. */
static unsigned char *inputs(const type_info *ti, int r, size_t first, size_t count,
                             unsigned seed) {
    unsigned char *h = malloc(count * ti->size + 1);
    for (size_t i = 0; i < count; i++)
        gen(ti, r, first + i, seed, h + i * ti->size);
    return h;
}

/* The reduction over every rank of element first + i, i < count. */
static unsigned char *reference(const type_info *ti, ncclRedOp_t op, int n, size_t first,
                                size_t count, unsigned seed) {
    unsigned char *want = malloc(count * ti->size + 1);
    unsigned char *vals = malloc((size_t)n * ti->size);
    for (size_t i = 0; i < count; i++) {
        for (int r = 0; r < n; r++)
            gen(ti, r, first + i, seed, vals + (size_t)r * ti->size);
        ref_reduce(ti, op, n, vals, want + i * ti->size);
    }
    free(vals);
    return want;
}

/* ---- communicators ---- */

/* An id made by rank 0 of over, broadcast to the others (NCCL's recipe). */
static ncclUniqueId shared_id(MPI_Comm over) {
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    int r = 0;
    MPI_Comm_rank(over, &r);
    if (r == 0)
        CHECK_NCCL(ncclGetUniqueId(&id));
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, over);
    return id;
}

/* A communicator over MPI_COMM_WORLD with NCCL rank = rank (a permutation
 * of the world ranks), the id made by world rank 0 and broadcast. */
static ncclComm_t world_comm(int rank) {
    ncclUniqueId id = shared_id(MPI_COMM_WORLD);
    ncclComm_t c = NULL;
    CHECK_NCCL(ncclCommInitRank(&c, g_size, id, rank));
    if (!c) {
        fprintf(stderr, "rank %d: no communicator: %s\n", g_rank, ncclGetLastError(NULL));
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return c;
}

/* ---- each collective against the reference ---- */

static unsigned g_seed = 1;

static void test_allreduce(ncclComm_t c, int n, int me, const type_info *ti, int opi, size_t count,
                           int in_place) {
    const unsigned seed = g_seed++;
    const size_t bytes = count * ti->size;
    unsigned char *in = inputs(ti, me, 0, count, seed);
    unsigned char *d_send = dev_alloc(bytes);
    to_dev(d_send, in, bytes);
    unsigned char *d_recv = in_place ? d_send : dev_sentinel(bytes + ti->size);
    CHECK_NCCL(ncclAllReduce(d_send, d_recv, count, ti->t, k_ops[opi], c, g_stream));
    unsigned char *want = reference(ti, k_ops[opi], n, 0, count, seed);
    unsigned char *got = malloc(bytes + 1);
    from_dev(got, d_recv, bytes);
    char what[64];
    snprintf(what, sizeof what, "all-reduce %s%s", k_op_names[opi], in_place ? " in place" : "");
    CHECK(compare(what, ti, got, want, count) == 0, "%s %s count %zu", what, ti->name, count);
    if (!in_place)
        CHECK(still_sentinel(d_recv + bytes, ti->size), "all-reduce wrote past recvbuff");
    cudaFree(d_send);
    if (!in_place)
        cudaFree(d_recv);
    free(in);
    free(want);
    free(got);
}

/* root's result against the reference; the other ranks pass recvbuff NULL
 * (NCCL reads it on the root only). In place: the root's sendbuff. */
static void test_reduce(ncclComm_t c, int n, int me, const type_info *ti, int opi, size_t count,
                        int root, int in_place) {
    const unsigned seed = g_seed++;
    const size_t bytes = count * ti->size;
    unsigned char *in = inputs(ti, me, 0, count, seed);
    unsigned char *d_send = dev_alloc(bytes);
    to_dev(d_send, in, bytes);
    unsigned char *d_recv = NULL;
    if (me == root)
        d_recv = in_place ? d_send : dev_sentinel(bytes);
    CHECK_NCCL(ncclReduce(d_send, d_recv, count, ti->t, k_ops[opi], root, c, g_stream));
    if (me == root) {
        unsigned char *want = reference(ti, k_ops[opi], n, 0, count, seed);
        unsigned char *got = malloc(bytes + 1);
        from_dev(got, d_recv, bytes);
        char what[64];
        snprintf(what, sizeof what, "reduce %s root %d%s", k_op_names[opi], root,
                 in_place ? " in place" : "");
        CHECK(compare(what, ti, got, want, count) == 0, "%s %s", what, ti->name);
        free(want);
        free(got);
        if (!in_place)
            cudaFree(d_recv);
    } else {
        unsigned char *back = malloc(bytes + 1);
        from_dev(back, d_send, bytes);
        CHECK(memcmp(back, in, bytes) == 0, "reduce changed a non-root's sendbuff");
        free(back);
    }
    cudaFree(d_send);
    free(in);
}

/* Rank me gets block me of the reduction of every rank's n blocks; in
 * place its recvbuff is block me of its sendbuff. */
static void test_reduce_scatter(ncclComm_t c, int n, int me, const type_info *ti, int opi,
                                size_t rc, int in_place) {
    const unsigned seed = g_seed++;
    const size_t bytes = rc * ti->size;
    unsigned char *in = inputs(ti, me, 0, rc * (size_t)n, seed);
    unsigned char *d_send = dev_alloc(bytes * (size_t)n);
    to_dev(d_send, in, bytes * (size_t)n);
    unsigned char *d_recv = in_place ? d_send + (size_t)me * bytes : dev_sentinel(bytes + ti->size);
    CHECK_NCCL(ncclReduceScatter(d_send, d_recv, rc, ti->t, k_ops[opi], c, g_stream));
    unsigned char *want = reference(ti, k_ops[opi], n, (size_t)me * rc, rc, seed);
    unsigned char *got = malloc(bytes + 1);
    from_dev(got, d_recv, bytes);
    char what[64];
    snprintf(what, sizeof what, "reduce-scatter %s%s", k_op_names[opi],
             in_place ? " in place" : "");
    CHECK(compare(what, ti, got, want, rc) == 0, "%s %s recvcount %zu", what, ti->name, rc);
    if (!in_place) {
        CHECK(still_sentinel(d_recv + bytes, ti->size), "reduce-scatter wrote past recvbuff");
        cudaFree(d_recv);
    }
    cudaFree(d_send);
    free(in);
    free(want);
    free(got);
}

/* Every rank's count elements, in NCCL rank order; in place the sendbuff
 * is recvbuff + me * count (the other blocks hold the sentinel before). */
static void test_allgather(ncclComm_t c, int n, int me, const type_info *ti, size_t count,
                           int in_place) {
    const unsigned seed = g_seed++;
    const size_t bytes = count * ti->size;
    unsigned char *in = inputs(ti, me, 0, count, seed);
    unsigned char *d_recv = dev_sentinel(bytes * (size_t)n + ti->size);
    unsigned char *d_send = in_place ? d_recv + (size_t)me * bytes : dev_alloc(bytes);
    to_dev(d_send, in, bytes);
    CHECK_NCCL(ncclAllGather(d_send, d_recv, count, ti->t, c, g_stream));
    unsigned char *got = malloc(bytes * (size_t)n + 1);
    from_dev(got, d_recv, bytes * (size_t)n);
    int bad = 0;
    for (int r = 0; r < n; r++) {
        unsigned char *want = inputs(ti, r, 0, count, seed);
        bad += compare(in_place ? "all-gather in place" : "all-gather", ti,
                       got + (size_t)r * bytes, want, count);
        free(want);
    }
    CHECK(bad == 0, "all-gather %s count %zu%s: %d elements wrong", ti->name, count,
          in_place ? " in place" : "", bad);
    CHECK(still_sentinel(d_recv + bytes * (size_t)n, ti->size), "all-gather wrote past recvbuff");
    if (!in_place)
        cudaFree(d_send);
    cudaFree(d_recv);
    free(in);
    free(got);
}

/* The root's sendbuff everywhere; non-roots pass sendbuff NULL (NCCL reads
 * it on the root only); in place the root's recvbuff holds the data. */
static void test_broadcast(ncclComm_t c, int me, const type_info *ti, size_t count, int root,
                           int in_place) {
    const unsigned seed = g_seed++;
    const size_t bytes = count * ti->size;
    unsigned char *data = inputs(ti, root, 0, count, seed);
    unsigned char *d_recv = dev_sentinel(bytes + ti->size);
    unsigned char *d_send = NULL;
    if (me == root) {
        d_send = in_place ? d_recv : dev_alloc(bytes);
        to_dev(d_send, data, bytes);
    }
    CHECK_NCCL(ncclBroadcast(d_send, d_recv, count, ti->t, root, c, g_stream));
    unsigned char *got = malloc(bytes + 1);
    from_dev(got, d_recv, bytes);
    CHECK(compare(in_place ? "broadcast in place" : "broadcast", ti, got, data, count) == 0,
          "broadcast %s from %d", ti->name, root);
    CHECK(still_sentinel(d_recv + bytes, ti->size), "broadcast wrote past recvbuff");
    if (me == root && !in_place)
        cudaFree(d_send);
    cudaFree(d_recv);
    free(data);
    free(got);
}

static void test_collectives(ncclComm_t c) {
    int n = 0, me = -1;
    CHECK_NCCL(ncclCommCount(c, &n));
    CHECK_NCCL(ncclCommUserRank(c, &me));
    const size_t counts[] = {1, 1031};
    for (size_t t = 0; t < N_TYPES; t++) {
        const type_info *ti = &k_types[t];
        for (int opi = 0; opi < 5; opi++) {
            for (int k = 0; k < 2; k++) {
                test_allreduce(c, n, me, ti, opi, counts[k], 0);
                test_allreduce(c, n, me, ti, opi, counts[k], 1);
                test_reduce_scatter(c, n, me, ti, opi, counts[k], k);
            }
            for (int root = 0; root < n; root++)
                test_reduce(c, n, me, ti, opi, 257, root, 0);
            test_reduce(c, n, me, ti, opi, 257, n - 1, 1);
        }
        for (int k = 0; k < 2; k++) {
            test_allgather(c, n, me, ti, counts[k], k);
            for (int root = 0; root < n; root++)
                test_broadcast(c, me, ti, counts[k], root, k);
        }
    }
}

/* float16 sums are rounded once: on 4 ranks 1 + 3 * 2^-12 is 1.00073,
 * which rounds to 1 + 2^-10 (0x3c01); rounding after each addition would
 * leave 1.0 (0x3c00), each 2^-12 being under half an ulp of 1. */
static void test_half_rounding(ncclComm_t c) {
    const uint16_t one = 0x3c00, tiny = 0x0c00; /* 1.0, 2^-12 */
    const uint16_t mine = g_rank == 0 ? one : tiny;
    uint16_t *d = dev_alloc(2);
    to_dev(d, &mine, 2);
    CHECK_NCCL(ncclAllReduce(d, d, 1, ncclFloat16, ncclSum, c, g_stream));
    uint16_t got = 0;
    from_dev(&got, d, 2);
    if (g_size == 4)
        CHECK(got == 0x3c01, "float16 sum of 1 and three 2^-12: 0x%04x, expected 0x3c01", got);
    cudaFree(d);
}

/* ---- order: at the call outside groups, at the outermost end inside ---- */

static void test_order(ncclComm_t c) {
    const int count = 64;
    int32_t a[64], got[64];
    for (int i = 0; i < count; i++)
        a[i] = g_rank * 1000 + i;
    const int32_t sum_rank = g_size * (g_size - 1) / 2;
    int32_t *d_a = dev_alloc(sizeof a), *d_b = dev_sentinel(sizeof a);
    int32_t *d_c = dev_sentinel(sizeof a);
    to_dev(d_a, a, sizeof a);

    /* outside a group: done when the call returns, in call order */
    CHECK_NCCL(ncclAllReduce(d_a, d_b, count, ncclInt32, ncclSum, c, g_stream));
    CHECK_NCCL(ncclAllReduce(d_b, d_b, count, ncclInt32, ncclSum, c, g_stream));
    from_dev(got, d_b, sizeof got);
    int bad = 0;
    for (int i = 0; i < count; i++)
        bad += got[i] != g_size * (sum_rank * 1000 + g_size * i);
    CHECK(bad == 0, "two all-reduces in a row: %d elements wrong (got[1] = %d)", bad, got[1]);

    /* a nested group: nothing runs before the outermost end, then in call
     * order (the second all-reduce reads the first one's result) */
    cudaMemset(d_b, 0xA5, sizeof a);
    CHECK_NCCL(ncclGroupStart());
    CHECK_NCCL(ncclGroupStart());
    CHECK_NCCL(ncclAllReduce(d_a, d_b, count, ncclInt32, ncclSum, c, g_stream));
    CHECK_NCCL(ncclGroupEnd());
    CHECK(still_sentinel(d_b, sizeof a), "an operation ran at an inner ncclGroupEnd");
    CHECK_NCCL(ncclAllReduce(d_b, d_c, count, ncclInt32, ncclMax, c, g_stream));
    CHECK(still_sentinel(d_b, sizeof a) && still_sentinel(d_c, sizeof a),
          "an operation ran inside its group");
    CHECK_NCCL(ncclGroupEnd());
    from_dev(got, d_c, sizeof got);
    bad = 0;
    for (int i = 0; i < count; i++)
        bad += got[i] != sum_rank * 1000 + g_size * i;
    CHECK(bad == 0, "a group's collectives out of order: %d elements wrong", bad);
    CHECK(ncclGroupEnd() == ncclInvalidUsage, "ncclGroupEnd without ncclGroupStart accepted");
    cudaFree(d_a);
    cudaFree(d_b);
    cudaFree(d_c);
}

/* ---- point to point ---- */

static float ring_value(int sender, int dir, size_t i) {
    return (float)sender * 4096.0f + (float)dir * 2048.0f + (float)(i % 2000);
}

/* Each rank sends 4 MiB to both neighbours and receives from both, in one
 * group, sends first (blocking MPI sends of that size would deadlock);
 * then a send and a receive outside groups between ranks 0 and 1. */
static void test_p2p(ncclComm_t c) {
    const size_t count = (size_t)1 << 20, bytes = count * sizeof(float);
    const int right = (g_rank + 1) % g_size, left = (g_rank + g_size - 1) % g_size;
    float *h = malloc(bytes);
    float *d_out[2], *d_in[2];
    for (int dir = 0; dir < 2; dir++) {
        for (size_t i = 0; i < count; i++)
            h[i] = ring_value(g_rank, dir, i);
        d_out[dir] = dev_alloc(bytes);
        to_dev(d_out[dir], h, bytes);
        d_in[dir] = dev_sentinel(bytes);
    }
    CHECK_NCCL(ncclGroupStart());
    CHECK_NCCL(ncclSend(d_out[0], count, ncclFloat32, right, c, g_stream));
    CHECK_NCCL(ncclSend(d_out[1], count, ncclFloat32, left, c, g_stream));
    CHECK_NCCL(ncclRecv(d_in[0], count, ncclFloat32, left, c, g_stream));
    CHECK_NCCL(ncclRecv(d_in[1], count, ncclFloat32, right, c, g_stream));
    CHECK_NCCL(ncclGroupEnd());
    /* what my left neighbour sent rightwards, my right one leftwards */
    const int from[2] = {left, right};
    for (int dir = 0; dir < 2; dir++) {
        from_dev(h, d_in[dir], bytes);
        size_t bad = 0;
        for (size_t i = 0; i < count; i++)
            bad += h[i] != ring_value(from[dir], dir, i);
        CHECK(bad == 0, "ring direction %d: %zu of %zu floats wrong (h[7] = %g)", dir, bad, count,
              (double)h[7]);
        cudaFree(d_out[dir]);
        cudaFree(d_in[dir]);
    }
    free(h);

    if (g_size >= 2 && g_rank <= 1) {
        int64_t v[3] = {11, -22, 33}, got[3] = {0, 0, 0};
        int64_t *d = dev_sentinel(sizeof v);
        if (g_rank == 0) {
            to_dev(d, v, sizeof v);
            CHECK_NCCL(ncclSend(d, 3, ncclInt64, 1, c, 0));
        } else {
            CHECK_NCCL(ncclRecv(d, 3, ncclInt64, 0, c, 0));
            from_dev(got, d, sizeof got);
            CHECK(memcmp(got, v, sizeof v) == 0, "send/receive outside a group: %lld %lld %lld",
                  (long long)got[0], (long long)got[1], (long long)got[2]);
        }
        cudaFree(d);
    }
}

/* ---- what is refused ---- */

static void test_refusals(ncclComm_t c) {
    const size_t count = 16;
    float *d = dev_alloc(count * sizeof(float)), *d2 = dev_alloc(count * sizeof(float));
    float host[16] = {0};
    to_dev(d, host, sizeof host);
    /* (every rank refuses alike, so no collective is left half-matched) */
    CHECK_REFUSED(ncclAllReduce(host, d, count, ncclFloat32, ncclSum, c, g_stream),
                  ncclInvalidArgument, "sendbuff");
    CHECK_REFUSED(ncclAllReduce(d, host, count, ncclFloat32, ncclSum, c, g_stream),
                  ncclInvalidArgument, "not in any cudaMalloc block");
    CHECK_REFUSED(ncclAllReduce(d, d2, count + 1, ncclFloat32, ncclSum, c, g_stream),
                  ncclInvalidArgument, "past the end");
    CHECK_REFUSED(ncclAllReduce(d, d2, (size_t)INT_MAX, ncclFloat32, ncclSum, c, g_stream),
                  ncclInvalidArgument, "bytes per rank");
    CHECK_REFUSED(ncclBroadcast(d, d2, count, ncclFloat32, -1, c, g_stream), ncclInvalidArgument,
                  "root -1");
    CHECK_REFUSED(ncclReduce(d, d2, count, ncclFloat32, ncclSum, g_size, c, g_stream),
                  ncclInvalidArgument, "root");
    CHECK_REFUSED(ncclSend(d, count, ncclFloat32, g_size, c, g_stream), ncclInvalidArgument,
                  "peer");
    CHECK_REFUSED(ncclRecv(host, count, ncclFloat32, 0, c, g_stream), ncclInvalidArgument,
                  "recvbuff");
    CHECK_REFUSED(ncclAllReduce(d, d2, count, ncclNumTypes, ncclSum, c, g_stream),
                  ncclInvalidArgument, "datatype 12");
    CHECK_REFUSED(ncclAllReduce(d, d2, count, (ncclDataType_t)-1, ncclSum, c, g_stream),
                  ncclInvalidArgument, "datatype -1");
    CHECK_REFUSED(ncclAllGather(d, d2, 4, ncclFloat8e4m3, c, g_stream), ncclInvalidArgument,
                  "not emulated");
    CHECK_REFUSED(ncclAllReduce(d, d2, count, ncclFloat32, ncclNumOps, c, g_stream),
                  ncclInvalidArgument, "reduction operation 5");
    CHECK_REFUSED(ncclReduceScatter(d, d2, 1, ncclFloat32, (ncclRedOp_t)-1, c, g_stream),
                  ncclInvalidArgument, "reduction operation -1");
    if (g_size >= 2) /* recvbuff holds count, needs size * count */
        CHECK_REFUSED(ncclAllGather(d, d2, count, ncclFloat32, c, g_stream), ncclInvalidArgument,
                      "recvbuff");
    CHECK_REFUSED(ncclAllReduce(d, d2, count, ncclFloat32, ncclSum, NULL, g_stream),
                  ncclInvalidArgument, "comm is NULL");
    int not_a_comm = 0;
    ncclComm_t fake = (ncclComm_t)(void *)&not_a_comm;
    CHECK_REFUSED(ncclAllReduce(d, d2, count, ncclFloat32, ncclSum, fake, g_stream),
                  ncclInvalidArgument, "not a communicator");
    cudaStream_t gone;
    cudaStreamCreate(&gone);
    cudaStreamDestroy(gone);
    CHECK_REFUSED(ncclAllReduce(d, d2, count, ncclFloat32, ncclSum, c, gone),
                  ncclUnhandledCudaError, "not a live stream");
    int out = 0;
    CHECK_REFUSED(ncclCommCount(c, NULL), ncclInvalidArgument, "NULL");
    CHECK_REFUSED(ncclGetVersion(NULL), ncclInvalidArgument, "NULL");
    /* count 0 moves nothing and reads no buffer */
    CHECK_NCCL(ncclAllReduce(NULL, NULL, 0, ncclFloat32, ncclSum, c, g_stream));

    /* a refused call inside a group fails the group: nothing runs */
    float *d3 = dev_sentinel(count * sizeof(float));
    CHECK_NCCL(ncclGroupStart());
    CHECK_NCCL(ncclAllReduce(d, d3, count, ncclFloat32, ncclSum, c, g_stream));
    CHECK_REFUSED(ncclAllReduce(host, d2, count, ncclFloat32, ncclSum, c, g_stream),
                  ncclInvalidArgument, "sendbuff");
    CHECK(ncclGroupEnd() == ncclInvalidArgument, "a group with a refused call ended well");
    CHECK(still_sentinel(d3, count * sizeof(float)), "a refused group ran an operation");
    CHECK_NCCL(ncclAllReduce(d, d3, count, ncclFloat32, ncclSum, c, g_stream));
    CHECK(!still_sentinel(d3, count * sizeof(float)), "the next call did not run");

    /* a communicator the open group has operations on stays */
    CHECK_NCCL(ncclGroupStart());
    CHECK_NCCL(ncclAllReduce(d, d3, count, ncclFloat32, ncclSum, c, g_stream));
    CHECK_REFUSED(ncclCommDestroy(c), ncclInvalidUsage, "open group");
    CHECK_NCCL(ncclGroupEnd());

    /* a destroyed communicator */
    ncclComm_t gone_comm = world_comm(g_rank);
    CHECK_NCCL(ncclCommDestroy(gone_comm));
    CHECK_REFUSED(ncclAllReduce(d, d2, count, ncclFloat32, ncclSum, gone_comm, g_stream),
                  ncclInvalidArgument, "destroyed");
    CHECK_REFUSED(ncclCommCount(gone_comm, &out), ncclInvalidArgument, "destroyed");
    CHECK_REFUSED(ncclCommDestroy(gone_comm), ncclInvalidArgument, "destroyed");
    CHECK_NCCL(ncclCommDestroy(NULL));
    CHECK_NCCL(ncclCommAbort(NULL));
    cudaFree(d);
    cudaFree(d2);
    cudaFree(d3);
}

/* Every rank passes its arguments; all must get want, with text. */
static void init_refused(int nranks, const ncclUniqueId *id, int rank, ncclConfig_t *config,
                         ncclResult_t want, const char *text) {
    ncclComm_t c = (ncclComm_t)(void *)&c;
    CHECK_REFUSED(ncclCommInitRankConfig(&c, nranks, *id, rank, config), want, text);
    CHECK(c == NULL, "a refused ncclCommInitRank left a communicator");
}

static void test_init(void) {
    int v = 0;
    CHECK_NCCL(ncclGetVersion(&v));
    CHECK(v == NCCL_VERSION_CODE && v == 22809, "version %d", v);
    CHECK(strcmp(ncclGetErrorString(ncclRemoteError), ncclGetErrorString(ncclSystemError)) != 0,
          "error strings");

    ncclUniqueId id = shared_id(MPI_COMM_WORLD), other, zero;
    memset(&zero, 0, sizeof zero);
    CHECK_NCCL(ncclGetUniqueId(&other)); /* a different id on every rank */
    CHECK(memcmp(&id, &other, sizeof id) != 0, "two ncclGetUniqueId calls gave the same id");

    init_refused(g_size + 1, &id, g_rank, NULL, ncclInvalidArgument, "processes passed this id");
    init_refused(g_size, &zero, g_rank, NULL, ncclInvalidArgument, "not an id ncclGetUniqueId");
    init_refused(g_size, &id, -1, NULL, ncclInvalidArgument, "rank -1");
    init_refused(0, &id, 0, NULL, ncclInvalidArgument, "nranks 0");
    if (g_size >= 2) {
        /* world rank 0 disagrees on nranks; world rank 1 repeats rank 0;
         * the last rank holds another id */
        init_refused(g_rank == 0 ? g_size + 1 : g_size, &id, g_rank, NULL, ncclInvalidArgument,
                     "nranks");
        init_refused(g_size, &id, g_rank == 1 ? 0 : g_rank, NULL, ncclInvalidArgument,
                     "rank 0 passed by MPI_COMM_WORLD ranks 0 and 1");
        init_refused(g_size, g_rank == g_size - 1 ? &other : &id, g_rank, NULL,
                     ncclInvalidArgument, "processes passed this id");
    }
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    init_refused(g_size, &id, g_rank, &config, ncclInvalidArgument, "blocking");
    ncclConfig_t raw;
    memset(&raw, 0, sizeof raw);
    init_refused(g_size, &id, g_rank, &raw, ncclInvalidArgument, "NCCL_CONFIG_INITIALIZER");
    CHECK_NCCL(ncclGroupStart());
    init_refused(g_size, &id, g_rank, NULL, ncclInvalidUsage, "inside ncclGroupStart");
    CHECK_NCCL(ncclGroupEnd());

    /* after the refusals the same id works, with a default configuration */
    ncclConfig_t good = NCCL_CONFIG_INITIALIZER;
    ncclComm_t c = NULL;
    CHECK_NCCL(ncclCommInitRankConfig(&c, g_size, id, g_rank, &good));
    int n = 0, r = -1, dev = -1;
    CHECK_NCCL(ncclCommCount(c, &n));
    CHECK_NCCL(ncclCommUserRank(c, &r));
    CHECK_NCCL(ncclCommCuDevice(c, &dev));
    CHECK(n == g_size && r == g_rank && dev == 0, "count %d rank %d device %d", n, r, dev);
    ncclResult_t async = ncclInternalError;
    CHECK_NCCL(ncclCommGetAsyncError(c, &async));
    CHECK(async == ncclSuccess, "a new communicator's asynchronous error is %d", (int)async);
    CHECK_NCCL(ncclCommDestroy(c));

    /* NCCL ranks in reverse world order: contributions are ordered by the
     * NCCL rank */
    c = world_comm(g_size - 1 - g_rank);
    CHECK_NCCL(ncclCommUserRank(c, &r));
    CHECK(r == g_size - 1 - g_rank, "user rank %d", r);
    int32_t *d = dev_alloc(sizeof(int32_t) * (size_t)g_size), mine = g_rank;
    int32_t got[64];
    to_dev(d + r, &mine, sizeof mine);
    CHECK_NCCL(ncclAllGather(d + r, d, 1, ncclInt32, c, g_stream));
    from_dev(got, d, sizeof(int32_t) * (size_t)g_size);
    int bad = 0;
    for (int p = 0; p < g_size; p++)
        bad += got[p] != g_size - 1 - p;
    CHECK(bad == 0, "reversed ranks: position 0 holds world rank %d", got[0]);
    cudaFree(d);
    CHECK_NCCL(ncclCommDestroy(c));

    /* two communicators at once, over the even and the odd world ranks */
    if (g_size >= 2) {
        MPI_Comm half;
        MPI_Comm_split(MPI_COMM_WORLD, g_rank % 2, g_rank, &half);
        int hr, hn;
        MPI_Comm_rank(half, &hr);
        MPI_Comm_size(half, &hn);
        ncclUniqueId hid = shared_id(half);
        ncclComm_t hc = NULL;
        CHECK_NCCL(ncclCommInitRank(&hc, hn, hid, hr));
        CHECK_NCCL(ncclCommCount(hc, &n));
        int64_t *dv = dev_alloc(sizeof(int64_t)), val = g_rank, sum = 0, want = 0;
        to_dev(dv, &val, sizeof val);
        CHECK_NCCL(ncclAllReduce(dv, dv, 1, ncclInt64, ncclSum, hc, g_stream));
        from_dev(&sum, dv, sizeof sum);
        for (int w = g_rank % 2; w < g_size; w += 2)
            want += w;
        CHECK(n == hn && sum == want, "parity communicator: size %d, sum %lld (expected %lld)", n,
              (long long)sum, (long long)want);
        cudaFree(dv);
        CHECK_NCCL(ncclCommDestroy(hc));
        MPI_Comm_free(&half);
    }
}

/* ---- a wait only ncclCommAbort ends ---- */

typedef struct {
    ncclComm_t comm;
    volatile int *calling;  /* set by the main thread just before its call */
    double delay;           /* seconds after that */
    int error_seen;         /* ncclCommGetAsyncError said something */
    ncclResult_t aborted;   /* what ncclCommAbort returned */
} watchdog;

/* NCCL's documented pattern: poll ncclCommGetAsyncError, ncclCommAbort on
 * an error or when the caller's own deadline passes (here: the deadline). */
static void *watchdog_main(void *arg) {
    watchdog *w = arg;
    while (!*w->calling)
        sleep_ms(1);
    const double t0 = now_s();
    while (now_s() - t0 < w->delay) {
        ncclResult_t e = ncclSuccess;
        if (ncclCommGetAsyncError(w->comm, &e) != ncclSuccess || e != ncclSuccess)
            w->error_seen = 1;
        sleep_ms(10);
    }
    w->aborted = ncclCommAbort(w->comm);
    return NULL;
}

/* A receive no one sends to (every rank; on one rank, from itself), and
 * (on 2 ranks or more) an all-reduce only world rank 0 joins: each waits
 * until the watchdog thread aborts its communicator, then returns
 * ncclInvalidUsage. */
static void test_abort(void) {
    for (int kind = 0; kind < (g_size > 1 ? 2 : 1); kind++) {
        ncclComm_t c = world_comm(g_rank);
        const int joins = kind == 0 || g_rank == 0;
        float *d = dev_sentinel(64 * sizeof(float));
        if (!joins) {
            CHECK_NCCL(ncclCommAbort(c));
            cudaFree(d);
            continue;
        }
        volatile int calling = 0;
        watchdog w = {c, &calling, 0.5, 0, ncclInternalError};
        pthread_t th;
        pthread_create(&th, NULL, watchdog_main, &w);
        calling = 1;
        const double t0 = now_s();
        ncclResult_t r = kind == 0
                             ? ncclRecv(d, 64, ncclFloat32, (g_rank + 1) % g_size, c, g_stream)
                             : ncclAllReduce(d, d, 64, ncclFloat32, ncclSum, c, g_stream);
        const double took = now_s() - t0;
        const char *text = ncclGetLastError(NULL);
        pthread_join(th, NULL);
        const char *what = kind == 0 ? "receive" : "all-reduce";
        CHECK(r == ncclInvalidUsage && strstr(text, "aborted") != NULL,
              "%s aborted while waiting returned %d (%s)", what, (int)r, text);
        CHECK(took >= 0.45 && took < 20.0, "%s returned after %.2f s (abort after 0.5 s)", what,
              took);
        CHECK(w.aborted == ncclSuccess && !w.error_seen,
              "watchdog: ncclCommAbort %d, an asynchronous error seen %d", (int)w.aborted,
              w.error_seen);
        CHECK(still_sentinel(d, 64 * sizeof(float)), "an abandoned %s wrote its buffer", what);
        CHECK_REFUSED(ncclAllReduce(d, d, 64, ncclFloat32, ncclSum, c, g_stream),
                      ncclInvalidArgument, "destroyed or aborted");
        cudaFree(d);
    }
}

/* ---- LT_NCCL_EMU_FAIL ---- */

/* scenario: collective (the failing operation is number 2, an all-reduce),
 * group (number 3, a send in a ring group) or chain (rank 2's operation 2,
 * a send to rank 1 that then sends to rank 0; 3 ranks or more). */
static int run_fault(const char *scenario) {
    const char *spec = getenv("LT_NCCL_EMU_FAIL");
    int fail_rank = -1, fail_op = 0;
    const int chain = strcmp(scenario, "chain") == 0;
    const int want_op = strcmp(scenario, "group") == 0 ? 3 : 2;
    if (!spec || sscanf(spec, "%d:%d", &fail_rank, &fail_op) != 2 || fail_op != want_op ||
        (chain && (fail_rank != 2 || g_size < 3))) {
        fprintf(stderr, "fault %s: LT_NCCL_EMU_FAIL=%s does not fit it\n", scenario,
                spec ? spec : "(unset)");
        return 1;
    }
    const int failing = g_rank == fail_rank;
    ncclComm_t c = world_comm(g_rank);
    const size_t count = 1000;
    int32_t h[1000], got[1000];
    for (size_t i = 0; i < count; i++)
        h[i] = g_rank + (int32_t)i;
    int32_t *d_in = dev_alloc(sizeof h), *d_out = dev_sentinel(sizeof h);
    to_dev(d_in, h, sizeof h);
    const int32_t ranks = g_size * (g_size - 1) / 2;

    /* operation 1 (and 2 when 3 fails): done on every rank, though a notice
     * of the failure may reach a peer while it still waits on them */
    for (int k = 1; k < fail_op; k++) {
        CHECK_NCCL(ncclAllReduce(d_in, d_out, count, ncclInt32, ncclSum, c, g_stream));
        from_dev(got, d_out, sizeof got);
        CHECK(got[0] == ranks && got[999] == ranks + 999 * g_size, "operation %d: %d %d", k,
              got[0], got[999]);
    }
    cudaMemset(d_out, 0xA5, sizeof h);
    const double t0 = now_s();
    ncclResult_t r;
    if (chain) {
        /* rank 0 waits on rank 1, which never sends: its receive from the
         * failing rank 2 fails first. Only rank 1's notice, passed on when
         * its communicator fails, can end rank 0's wait. */
        r = ncclSuccess;
        if (g_rank == 2) {
            r = ncclSend(d_in, count, ncclInt32, 1, c, g_stream);
        } else if (g_rank == 1) {
            r = ncclRecv(d_out, count, ncclInt32, 2, c, g_stream);
            ncclResult_t r2 = ncclSend(d_in, count, ncclInt32, 0, c, g_stream);
            CHECK(r2 == ncclRemoteError, "rank 1's send after its failed receive: %d", (int)r2);
        } else if (g_rank == 0) {
            r = ncclRecv(d_out, count, ncclInt32, 1, c, g_stream);
        }
    } else if (fail_op == 2) {
        r = ncclAllReduce(d_in, d_out, count, ncclInt32, ncclSum, c, g_stream);
    } else { /* operations 3 and 4: a ring; the failing rank's group does not run */
        CHECK_NCCL(ncclGroupStart());
        ncclResult_t rs = ncclSend(d_in, count, ncclInt32, (g_rank + 1) % g_size, c, g_stream);
        ncclResult_t rr =
            ncclRecv(d_out, count, ncclInt32, (g_rank + g_size - 1) % g_size, c, g_stream);
        r = ncclGroupEnd();
        /* a peer may have heard of the failure already (a notice can arrive
         * while it finishes operation 2): its calls are refused at once */
        CHECK((rs == ncclSuccess && rr == ncclSuccess) ||
                  (!failing && rs == ncclRemoteError && rr == ncclRemoteError && r == rs),
              "ring calls: send %d, receive %d, group end %d", (int)rs, (int)rr, (int)r);
    }
    const double took = now_s() - t0;
    ncclResult_t async = ncclInternalError;
    CHECK_NCCL(ncclCommGetAsyncError(c, &async));
    const char *text = ncclGetLastError(NULL);
    /* who is left waiting on the failing rank: every rank in the
     * all-reduce; in the ring its right neighbour, whose receive it feeds;
     * in the chain ranks 1 and 0 (through rank 1) */
    const int waits_on_it =
        !failing && (chain ? g_rank <= 1
                           : fail_op == 2 || g_rank == (fail_rank + 1) % g_size);
    if (failing) {
        CHECK(r == ncclSuccess && async == ncclSystemError && strstr(text, "LT_NCCL_EMU_FAIL"),
              "the failing rank: call %d, asynchronous error %d, \"%s\"", (int)r, (int)async, text);
        if (fail_op == 2)
            CHECK(still_sentinel(d_out, sizeof h), "the failed all-reduce wrote its recvbuff");
    } else if (waits_on_it) {
        char want[160];
        snprintf(want, sizeof want, "rank %d of the communicator (MPI_COMM_WORLD rank %d) failed "
                 "in its operation #%d", fail_rank, fail_rank, fail_op);
        CHECK(r == ncclRemoteError && async == ncclRemoteError && strstr(text, want),
              "a peer: call %d, asynchronous error %d, \"%s\"", (int)r, (int)async, text);
        CHECK(took < 10.0, "a peer waited %.1f s for the failed rank", took);
        printf("rank %d: unblocked %.3f s after its call began\n", g_rank, took);
        CHECK(still_sentinel(d_out, sizeof h), "an abandoned operation wrote its recvbuff");
    } else if (chain) { /* ranks 3 and up: idle */
        CHECK(r == ncclSuccess, "an idle rank: %d", (int)r);
    } else { /* a ring member not fed by the failing rank: done, or told */
        CHECK(r == ncclSuccess || r == ncclRemoteError, "a ring member: %d", (int)r);
        if (r == ncclSuccess) {
            from_dev(got, d_out, sizeof got);
            const int from = (g_rank + g_size - 1) % g_size;
            CHECK(got[5] == from + 5, "ring member received %d, expected %d", got[5], from + 5);
        }
    }
    /* the next operation on the communicator: the failing rank's own error
     * at once, the peers' remote error (at once, or when the notice comes) */
    const double t1 = now_s();
    r = ncclAllReduce(d_in, d_out, count, ncclInt32, ncclSum, c, g_stream);
    CHECK(r == (failing ? ncclSystemError : ncclRemoteError) && now_s() - t1 < 10.0,
          "the operation after the failure returned %d after %.1f s", (int)r, now_s() - t1);
    CHECK_NCCL(ncclCommGetAsyncError(c, &async));
    CHECK(async == (failing ? ncclSystemError : ncclRemoteError), "asynchronous error %d",
          (int)async);
    CHECK_NCCL(ncclCommAbort(c));
    CHECK_REFUSED(ncclCommGetAsyncError(c, &async), ncclInvalidArgument, "destroyed or aborted");

    /* a new communicator works (the fault fires once) */
    c = world_comm(g_rank);
    CHECK_NCCL(ncclAllReduce(d_in, d_out, count, ncclInt32, ncclSum, c, g_stream));
    from_dev(got, d_out, sizeof got);
    CHECK(got[0] == ranks && got[999] == ranks + 999 * g_size, "after the failure: %d %d", got[0],
          got[999]);
    CHECK_NCCL(ncclCommDestroy(c));
    cudaFree(d_in);
    cudaFree(d_out);
    return 0;
}

int main(int argc, char **argv) {
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    const char *mode = argc > 1 ? argv[1] : "";
    if (g_size > 64 || (strcmp(mode, "all") != 0 && strcmp(mode, "fault") != 0 &&
                        strcmp(mode, "bad-fault") != 0)) {
        fprintf(stderr, "usage: mpirun -np N (N <= 64) test_nccl_emu all|fault|bad-fault\n");
        MPI_Finalize();
        return 2;
    }
    cudaStreamCreate(&g_stream);
    const double t0 = now_s();
    if (strcmp(mode, "bad-fault") == 0) {
        /* a malformed LT_NCCL_EMU_FAIL: every rank refused, none left waiting */
        ncclUniqueId id = shared_id(MPI_COMM_WORLD);
        init_refused(g_size, &id, g_rank, NULL, ncclInvalidArgument, "LT_NCCL_EMU_FAIL=");
    } else if (strcmp(mode, "fault") == 0) {
        if (run_fault(argc > 2 ? argv[2] : ""))
            check_failures_++;
    } else {
        test_init();
        ncclComm_t c = world_comm(g_rank);
        test_collectives(c);
        test_half_rounding(c);
        test_order(c);
        test_p2p(c);
        test_refusals(c);
        CHECK_NCCL(ncclCommDestroy(c));
        test_abort();
    }
    cudaStreamDestroy(g_stream);
    if (g_rank == 0)
        printf("%s on %d ranks: %.2f s\n", mode, g_size, now_s() - t0);
    const int code = check_exit_code();
    MPI_Finalize();
    return code;
}
