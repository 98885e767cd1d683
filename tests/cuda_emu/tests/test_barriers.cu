/* Blocks, barriers, shared memory, atomics and launch shapes, in the order
 * LT_CUDA_EMU_ORDER names (the reduction races compare both orders). */
#include <limits.h>

#include <vector>

#include "check.cuh"
#include "model/cuda/launch.cuh"

namespace {

const int kBlock = 256;

/* Tree reductions of 256 ints per block into s[0] ("to first") or into
 * s[255] ("to last", the mirror image), with or without the barrier
 * between the tree's levels. Without it, a thread reads a partial sum its
 * neighbour has not finished: which neighbour runs first decides. */
template <bool kLevelBarrier> __global__ void reduce_to_first(const int *in, int *out) {
    __shared__ int s[kBlock];
    unsigned t = threadIdx.x;
    s[t] = in[blockIdx.x * kBlock + t];
    __syncthreads();
    for (unsigned stride = kBlock / 2; stride > 0; stride >>= 1) {
        if (t < stride)
            s[t] += s[t + stride];
        if (kLevelBarrier)
            __syncthreads();
    }
    if (t == 0)
        out[blockIdx.x] = s[0];
}

template <bool kLevelBarrier> __global__ void reduce_to_last(const int *in, int *out) {
    __shared__ int s[kBlock];
    unsigned t = threadIdx.x;
    s[t] = in[blockIdx.x * kBlock + t];
    __syncthreads();
    for (unsigned stride = kBlock / 2; stride > 0; stride >>= 1) {
        if (t >= kBlock - stride)
            s[t] += s[t - stride];
        if (kLevelBarrier)
            __syncthreads();
    }
    if (t == kBlock - 1)
        out[blockIdx.x] = s[kBlock - 1];
}

const int kBlocks = 8;

struct Sums {
    std::vector<int> in, want;
    DeviceArray<int> d_in{kBlocks * kBlock}, d_out{kBlocks};
    Sums() : in(kBlocks * kBlock), want(kBlocks, 0) {
        for (int i = 0; i < kBlocks * kBlock; i++) {
            in[i] = (i * 7919) % 1000 + 1;
            want[i / kBlock] += in[i];
        }
        d_in.upload(in.data());
    }
    /* Runs launch (an LT_LAUNCH of one of the kernels above on d_in, d_out)
     * and says whether every block's sum is right. */
    template <class F> bool right(F launch) {
        d_out.zero();
        launch();
        cudaError_t e = cudaGetLastError();
        CHECK(e == cudaSuccess, "%s", lt_cuda_emu_last_message());
        std::vector<int> got(kBlocks);
        d_out.download(got.data());
        return got == want;
    }
};

#define SUM_RIGHT(s, kernel)                                                                       \
    (s).right([&] {                                                                                \
        int *in_ = (s).d_in.d, *out_ = (s).d_out.d;                                                \
        LT_LAUNCH(kernel, kBlocks, kBlock, 0, nullptr, in_, out_);                                 \
    })

void reductions() {
    Sums s;
    /* the ones with their barriers: right in this run's order */
    int *in = s.d_in.d, *out = s.d_out.d;
    s.d_out.zero();
    LT_LAUNCH(reduce_to_first<true>, kBlocks, kBlock, 0, nullptr, in, out);
    CUDA_OK(cudaGetLastError());
    std::vector<int> got(kBlocks);
    s.d_out.download(got.data());
    CHECK(got == s.want, "reduce_to_first with its barriers: block 0 sums to %d, not %d", got[0],
          s.want[0]);
    s.d_out.zero();
    LT_LAUNCH(reduce_to_last<true>, kBlocks, kBlock, 0, nullptr, in, out);
    CUDA_OK(cudaGetLastError());
    s.d_out.download(got.data());
    CHECK(got == s.want, "reduce_to_last with its barriers: block 0 sums to %d, not %d", got[0],
          s.want[0]);

    /* Without the level barrier each order misses one of the two races:
     * forward runs thread 0 through every level before the threads whose
     * partial sums it reads, reverse does so to thread 255. */
    bool first_fwd = false, first_rev = false, last_fwd = false, last_rev = false;
    bool good_fwd = false, good_rev = false;
    with_order("forward", [&] {
        first_fwd = SUM_RIGHT(s, reduce_to_first<false>);
        last_fwd = SUM_RIGHT(s, reduce_to_last<false>);
        good_fwd = SUM_RIGHT(s, reduce_to_first<true>) && SUM_RIGHT(s, reduce_to_last<true>);
    });
    with_order("reverse", [&] {
        first_rev = SUM_RIGHT(s, reduce_to_first<false>);
        last_rev = SUM_RIGHT(s, reduce_to_last<false>);
        good_rev = SUM_RIGHT(s, reduce_to_first<true>) && SUM_RIGHT(s, reduce_to_last<true>);
    });
    CHECK(good_fwd && good_rev, "the reductions with barriers: forward %d, reverse %d", good_fwd,
          good_rev);
    CHECK(!first_fwd && first_rev,
          "reduce_to_first without its level barrier: right in forward order %d (want 0), in "
          "reverse %d (want 1)",
          first_fwd, first_rev);
    CHECK(last_fwd && !last_rev,
          "reduce_to_last without its level barrier: right in forward order %d (want 1), in "
          "reverse %d (want 0)",
          last_fwd, last_rev);
}

/* ---- barriers that not every thread reaches ---- */
__global__ void divergent_barrier(int *out) {
    if (threadIdx.x < 64)
        __syncthreads();
    out[threadIdx.x] = 1;
}

__global__ void early_return(const int *in, int *out, int n) {
    __shared__ int s[kBlock];
    unsigned t = threadIdx.x;
    if ((int)t >= n)
        return;
    s[t] = in[t];
    __syncthreads();
    out[t] = s[n - 1 - (int)t];
}

__global__ void extra_barrier(int *out) {
    __syncthreads();
    if (threadIdx.x == 7)
        __syncthreads();
    out[threadIdx.x] = 2;
}

__global__ void uneven_loop(int *out) {
    for (unsigned i = 0; i < threadIdx.x % 3 + 1; i++)
        __syncthreads();
    out[threadIdx.x] = 3;
}

/* Two call sites, each thread calling one of them once: the same, first,
 * barrier of every thread (the hardware's barrier counts arrivals too). */
__global__ void barrier_two_sites(const int *in, int *out) {
    __shared__ int s[kBlock];
    unsigned t = threadIdx.x;
    s[t] = in[t];
    if (t % 2)
        __syncthreads();
    else
        __syncthreads();
    out[t] = s[kBlock - 1 - t];
}

__global__ void barrier_against_shuffle(int *out) {
    int v = (int)threadIdx.x;
    if (threadIdx.x == 0)
        __syncthreads();
    else
        v = __shfl_xor_sync(0xffffffffu, v, 1);
    out[threadIdx.x] = v;
}

void barrier_faults() {
    DeviceArray<int> out(kBlock), in(kBlock);
    std::vector<int> h(kBlock);
    for (int i = 0; i < kBlock; i++)
        h[i] = i * 3;
    in.upload(h.data());
    int *o = out.d, *i_ = in.d;

    LT_LAUNCH(divergent_barrier, 1, kBlock, 0, nullptr, o);
    EXPECT_LAUNCH_ERROR(cudaErrorLaunchFailure, "kernel divergent_barrier", "block (0,0,0)",
                        "__syncthreads", "every thread of a block must reach the same barriers");
    /* reported again, once, where a GPU reports a fault: the next sync */
    CHECK(cudaDeviceSynchronize() == cudaErrorLaunchFailure, "the fault at the next sync");
    CUDA_OK(cudaDeviceSynchronize());

    LT_LAUNCH(early_return, 1, kBlock, 0, nullptr, i_, o, 200);
    EXPECT_LAUNCH_ERROR(cudaErrorLaunchFailure, "kernel early_return", "__syncthreads");
    cudaDeviceSynchronize();
    LT_LAUNCH(extra_barrier, 1, kBlock, 0, nullptr, o);
    EXPECT_LAUNCH_ERROR(cudaErrorLaunchFailure, "kernel extra_barrier", "thread (7,0,0)",
                        "__syncthreads number 2");
    cudaDeviceSynchronize();
    LT_LAUNCH(uneven_loop, 1, kBlock, 0, nullptr, o);
    EXPECT_LAUNCH_ERROR(cudaErrorLaunchFailure, "kernel uneven_loop", "__syncthreads");
    cudaDeviceSynchronize();
    LT_LAUNCH(barrier_against_shuffle, 1, 32, 0, nullptr, o);
    EXPECT_LAUNCH_ERROR(cudaErrorLaunchFailure, "kernel barrier_against_shuffle",
                        "neither can go on");
    cudaDeviceSynchronize();

    /* the same block size again, on fibers abandoned mid-kernel above */
    LT_LAUNCH(barrier_two_sites, 1, kBlock, 0, nullptr, i_, o);
    CUDA_OK(cudaGetLastError());
    std::vector<int> got(kBlock);
    out.download(got.data());
    bool ok = true;
    for (int t = 0; t < kBlock; t++)
        ok = ok && got[t] == h[kBlock - 1 - t];
    CHECK(ok, "barrier_two_sites: out[0] = %d, want %d", got[0], h[kBlock - 1]);
    Sums s;
    CHECK(SUM_RIGHT(s, reduce_to_first<true>), "a reduction after the failed launches");
}

/* ---- launch shapes ---- */
/* Each thread writes its built-ins at its global linear id. */
__global__ void record_ids(unsigned *out) {
    unsigned block = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    unsigned per_block = blockDim.x * blockDim.y * blockDim.z;
    unsigned id =
        block * per_block + (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
    unsigned *r = out + (size_t)id * 12;
    r[0]++;
    r[1] = threadIdx.x;
    r[2] = threadIdx.y;
    r[3] = threadIdx.z;
    r[4] = blockIdx.x;
    r[5] = blockIdx.y;
    r[6] = blockIdx.z;
    r[7] = blockDim.x;
    r[8] = blockDim.y;
    r[9] = blockDim.z;
    r[10] = gridDim.x * 10000 + gridDim.y * 100 + gridDim.z;
    r[11] = (unsigned)warpSize;
}

void check_ids(dim3 grid, dim3 block) {
    size_t n = (size_t)grid.x * grid.y * grid.z * block.x * block.y * block.z;
    DeviceArray<unsigned> out(n * 12);
    out.zero();
    unsigned *o = out.d;
    LT_LAUNCH(record_ids, grid, block, 0, nullptr, o);
    CUDA_OK(cudaGetLastError());
    std::vector<unsigned> h(n * 12);
    out.download(h.data());
    size_t bad = 0, first_bad = 0;
    size_t id = 0;
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++)
                for (unsigned tz = 0; tz < block.z; tz++)
                    for (unsigned ty = 0; ty < block.y; ty++)
                        for (unsigned tx = 0; tx < block.x; tx++, id++) {
                            const unsigned *r = &h[id * 12];
                            unsigned want[12] = {1,
                                                 tx,
                                                 ty,
                                                 tz,
                                                 bx,
                                                 by,
                                                 bz,
                                                 block.x,
                                                 block.y,
                                                 block.z,
                                                 grid.x * 10000 + grid.y * 100 + grid.z,
                                                 32};
                            if (memcmp(r, want, sizeof want) != 0 && bad++ == 0)
                                first_bad = id;
                        }
    CHECK(bad == 0, "grid (%u,%u,%u) block (%u,%u,%u): %zu of %zu threads wrong, first id %zu",
          grid.x, grid.y, grid.z, block.x, block.y, block.z, bad, n, first_bad);
}

/* A reduction over any block shape of up to 1024 threads. */
__global__ void block_sum(const int *in, int *out) {
    __shared__ int s[1024];
    unsigned n = blockDim.x * blockDim.y * blockDim.z;
    unsigned t = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
    s[t] = in[t];
    __syncthreads();
    for (unsigned stride = 512; stride > 0; stride >>= 1) {
        if (t < stride && t + stride < n)
            s[t] += s[t + stride];
        __syncthreads();
    }
    if (t == 0)
        *out = s[0];
}

void shapes() {
    check_ids(dim3(3, 2, 2), dim3(4, 3, 2));
    check_ids(dim3(2, 3, 1), dim3(1, 1, 64));
    check_ids(dim3(5), dim3(7, 5));
    /* integers for grid and block, as LT_LAUNCH allows */
    DeviceArray<unsigned> out(3 * 64 * 12);
    out.zero();
    unsigned *o = out.d;
    LT_LAUNCH(record_ids, 3, 64, 0, nullptr, o);
    CUDA_OK(cudaGetLastError());
    std::vector<unsigned> h(3 * 64 * 12);
    out.download(h.data());
    CHECK(h[(2 * 64 + 63) * 12 + 1] == 63 && h[(2 * 64 + 63) * 12 + 4] == 2 &&
              h[(2 * 64 + 63) * 12 + 7] == 64,
          "integer grid 3, block 64: the last thread saw threadIdx.x %u blockIdx.x %u",
          h[(2 * 64 + 63) * 12 + 1], h[(2 * 64 + 63) * 12 + 4]);

    /* 1024-thread blocks in three shapes */
    std::vector<int> hin(1024);
    for (int i = 0; i < 1024; i++)
        hin[i] = (i * 37) % 101 - 50;
    DeviceArray<int> in(1024), sum(1);
    in.upload(hin.data());
    int *pi = in.d, *ps = sum.d;
    const dim3 shapes[] = {dim3(1024), dim3(32, 32), dim3(16, 8, 8), dim3(1000)};
    for (dim3 b : shapes) {
        int w = 0;
        for (unsigned i = 0; i < b.x * b.y * b.z; i++)
            w += hin[i];
        sum.zero();
        LT_LAUNCH(block_sum, 1, b, 0, nullptr, pi, ps);
        CUDA_OK(cudaGetLastError());
        int got = -1;
        sum.download(&got);
        CHECK(got == w, "block_sum over block (%u,%u,%u): %d, want %d", b.x, b.y, b.z, got, w);
    }
    check_ids(dim3(2), dim3(1024));
}

/* ---- shared memory ---- */
__global__ void reverse_in_dynamic_shared(const float *in, float *out, unsigned *before,
                                          unsigned long long *addr) {
    LT_DYNAMIC_SHARED(float, buf);
    unsigned t = threadIdx.x, n = blockDim.x;
    unsigned g = blockIdx.x * n + t;
    memcpy(&before[g], &buf[t], sizeof(unsigned)); /* its own slot, not yet written */
    buf[t] = in[g];
    buf[n + t] = 2.0f * in[g]; /* the second half of the buffer */
    __syncthreads();
    out[g] = buf[n - 1 - t] + buf[2 * n - 1 - t];
    if (t == 0)
        addr[blockIdx.x] = (unsigned long long)(uintptr_t)buf;
}

void dynamic_shared() {
    const unsigned n = 128, blocks = 3;
    std::vector<float> hin(n * blocks);
    for (unsigned i = 0; i < n * blocks; i++)
        hin[i] = 0.5f * (float)i - 7.0f;
    DeviceArray<float> in(n * blocks), out(n * blocks);
    DeviceArray<unsigned> before(n * blocks);
    DeviceArray<unsigned long long> addr(blocks);
    in.upload(hin.data());
    float *pi = in.d, *po = out.d;
    unsigned *pb = before.d;
    unsigned long long *pa = addr.d;
    LT_LAUNCH(reverse_in_dynamic_shared, blocks, n, 2 * n * sizeof(float), nullptr, pi, po, pb, pa);
    CUDA_OK(cudaGetLastError());
    std::vector<float> got(n * blocks);
    std::vector<unsigned> hb(n * blocks);
    std::vector<unsigned long long> ha(blocks);
    out.download(got.data());
    before.download(hb.data());
    addr.download(ha.data());
    size_t bad = 0, poison = 0;
    for (unsigned b = 0; b < blocks; b++)
        for (unsigned t = 0; t < n; t++) {
            float src = hin[b * n + n - 1 - t];
            bad += got[b * n + t] != src + 2.0f * src;
            poison += hb[b * n + t] == 0xffffffffu;
        }
    CHECK(bad == 0, "reverse_in_dynamic_shared: %zu of %u values wrong", bad, n * blocks);
    CHECK(poison == n * blocks,
          "dynamic shared memory read before any write: %zu of %u slots held 0xffffffff (the "
          "fill at each block's start)",
          poison, n * blocks);
    CHECK(ha[0] % 16 == 0, "dynamic shared memory at %llx is not 16-byte aligned", ha[0]);
}

/* ---- atomics ---- */
__global__ void atomics(int *counter, int *seen, unsigned *ucounter, int *imax, unsigned *umax,
                        int *slot, int *winners, int *wrap) {
    int tid = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    int old = atomicAdd(counter, 1);
    seen[old] += 1;
    atomicAdd(ucounter, 1u);
    atomicMax(imax, (tid * 7919) % 4099 - 2000);
    atomicMax(umax, (unsigned)((tid * 104729) % 65521));
    if (atomicCAS(slot, -1, tid) == -1)
        atomicAdd(winners, 1);
    atomicAdd(wrap, 1);
    unsigned u = (unsigned)atomicCAS((unsigned *)slot, 0xdeadbeefu, 0u); /* never equal */
    (void)u;
}

void atomic_ops() {
    const int blocks = 4, threads = 256, n = blocks * threads;
    DeviceArray<int> counter(1), seen(n), imax(1), slot(1), winners(1), wrap(1);
    DeviceArray<unsigned> ucounter(1), umax(1);
    counter.zero();
    seen.zero();
    winners.zero();
    int m1 = -1, imin = INT_MIN, wrap0 = INT_MAX - n / 2;
    unsigned u0 = 0xfffffff0u, uz = 0;
    slot.upload(&m1);
    imax.upload(&imin);
    wrap.upload(&wrap0);
    ucounter.upload(&u0);
    umax.upload(&uz);
    int *c = counter.d, *se = seen.d, *im = imax.d, *sl = slot.d, *wi = winners.d, *wr = wrap.d;
    unsigned *uc = ucounter.d, *um = umax.d;
    LT_LAUNCH(atomics, blocks, threads, 0, nullptr, c, se, uc, im, um, sl, wi, wr);
    CUDA_OK(cudaGetLastError());
    int hc, hm, hs, hw, hwrap;
    unsigned huc, hum;
    std::vector<int> hseen(n);
    counter.download(&hc);
    seen.download(hseen.data());
    imax.download(&hm);
    slot.download(&hs);
    winners.download(&hw);
    wrap.download(&hwrap);
    ucounter.download(&huc);
    umax.download(&hum);
    int want_max = INT_MIN;
    unsigned want_umax = 0;
    for (int t = 0; t < n; t++) {
        want_max = (t * 7919) % 4099 - 2000 > want_max ? (t * 7919) % 4099 - 2000 : want_max;
        want_umax = (unsigned)((t * 104729) % 65521) > want_umax ? (unsigned)((t * 104729) % 65521)
                                                                 : want_umax;
    }
    size_t once = 0;
    for (int v : hseen)
        once += v == 1;
    CHECK(hc == n, "atomicAdd counter: %d, want %d", hc, n);
    CHECK(once == (size_t)n, "atomicAdd's old values: %zu of %d seen exactly once", once, n);
    CHECK(huc == 0xfffffff0u + (unsigned)n, "unsigned atomicAdd wraps: %08x, want %08x", huc,
          0xfffffff0u + (unsigned)n);
    CHECK(hwrap == INT_MIN + n / 2 - 1, "int atomicAdd wraps past INT_MAX: %d, want %d", hwrap,
          INT_MIN + n / 2 - 1);
    CHECK(hm == want_max, "atomicMax int: %d, want %d", hm, want_max);
    CHECK(hum == want_umax, "atomicMax unsigned: %u, want %u", hum, want_umax);
    CHECK(hw == 1 && hs >= 0 && hs < n, "atomicCAS: %d winners (want 1), slot %d", hw, hs);
}

} // namespace

int test_barriers(void) {
    reductions();
    barrier_faults();
    shapes();
    dynamic_shared();
    atomic_ops();
    return 0;
}
