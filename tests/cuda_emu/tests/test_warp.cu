/* Warp functions against their definitions in the CUDA C++ Programming
 * Guide (written here from its prose, not from the emulator's PTX
 * formulas), and the ways a warp function can be misused. */
#include <cuda_bf16.h>

#include <vector>

#include "check.cuh"
#include "model/cuda/launch.cuh"

namespace {

const unsigned kFull = 0xffffffffu;

enum Op { SHFL, UP, DOWN, XOR };
struct Case {
    int op, param, width;
};

/* The Guide: __shfl_sync reads lane srcLane modulo width of the caller's
 * width-group; __shfl_up_sync lane - delta, or keeps its own value when
 * that falls below the group; __shfl_down_sync lane + delta, or its own
 * value past the group; __shfl_xor_sync lane ^ laneMask, or its own value
 * when that is in a later group (earlier groups may be read). */
unsigned guide_source(const Case &c, unsigned lane) {
    unsigned w = (unsigned)c.width, group = lane / w * w;
    switch (c.op) {
    case SHFL:
        return group + (unsigned)(((c.param % c.width) + c.width) % c.width);
    case UP:
        return lane % w >= (unsigned)c.param ? lane - (unsigned)c.param : lane;
    case DOWN:
        return lane % w + (unsigned)c.param < w ? lane + (unsigned)c.param : lane;
    default: {
        unsigned src = lane ^ (unsigned)c.param;
        return src >= group + w ? lane : src;
    }
    }
}

__global__ void shuffles(const Case *cases, int ncases, const int *vi, const float *vf,
                         const unsigned *vu, const double *vd, int *oi, float *of, unsigned *ou,
                         double *od) {
    unsigned n = blockDim.x * blockDim.y;
    unsigned lin = threadIdx.x + threadIdx.y * blockDim.x;
    for (int c = 0; c < ncases; c++) {
        Case k = cases[c];
        size_t o = (size_t)c * n + lin;
        switch (k.op) {
        case SHFL:
            oi[o] = __shfl_sync(kFull, vi[lin], k.param, k.width);
            of[o] = __shfl_sync(kFull, vf[lin], k.param, k.width);
            ou[o] = __shfl_sync(kFull, vu[lin], k.param, k.width);
            od[o] = __shfl_sync(kFull, vd[lin], k.param, k.width);
            break;
        case UP:
            oi[o] = __shfl_up_sync(kFull, vi[lin], (unsigned)k.param, k.width);
            of[o] = __shfl_up_sync(kFull, vf[lin], (unsigned)k.param, k.width);
            ou[o] = __shfl_up_sync(kFull, vu[lin], (unsigned)k.param, k.width);
            od[o] = __shfl_up_sync(kFull, vd[lin], (unsigned)k.param, k.width);
            break;
        case DOWN:
            oi[o] = __shfl_down_sync(kFull, vi[lin], (unsigned)k.param, k.width);
            of[o] = __shfl_down_sync(kFull, vf[lin], (unsigned)k.param, k.width);
            ou[o] = __shfl_down_sync(kFull, vu[lin], (unsigned)k.param, k.width);
            od[o] = __shfl_down_sync(kFull, vd[lin], (unsigned)k.param, k.width);
            break;
        default:
            oi[o] = __shfl_xor_sync(kFull, vi[lin], k.param, k.width);
            of[o] = __shfl_xor_sync(kFull, vf[lin], k.param, k.width);
            ou[o] = __shfl_xor_sync(kFull, vu[lin], k.param, k.width);
            od[o] = __shfl_xor_sync(kFull, vd[lin], k.param, k.width);
            break;
        }
    }
}

void shuffles_against_guide(dim3 block) {
    std::vector<Case> cases;
    const int widths[] = {32, 16, 8, 4, 2, 1};
    const int idx[] = {0, 3, 17, 31, -1, 40};
    const int deltas[] = {0, 1, 3, 5, 16, 31};
    for (int w : widths) {
        for (int p : idx)
            cases.push_back({SHFL, p, w});
        for (int d : deltas) {
            cases.push_back({UP, d, w});
            cases.push_back({DOWN, d, w});
            cases.push_back({XOR, d, w});
        }
    }
    const unsigned n = block.x * block.y;
    const int nc = (int)cases.size();
    std::vector<int> hi(n);
    std::vector<float> hf(n);
    std::vector<unsigned> hu(n);
    std::vector<double> hd(n);
    for (unsigned i = 0; i < n; i++) {
        hi[i] = (int)(i * 2654435761u >> 7) - 1000000;
        hf[i] = (float)hi[i] * 0.37f + 0.001f;
        hu[i] = 0x80000000u ^ (i * 40503u);
        hd[i] = (double)hi[i] * 1.0000001 + 1e-9;
    }
    DeviceArray<Case> dc(cases.size());
    DeviceArray<int> di(n), oi(n * nc);
    DeviceArray<float> df(n), of(n * nc);
    DeviceArray<unsigned> du(n), ou(n * nc);
    DeviceArray<double> dd(n), od(n * nc);
    dc.upload(cases.data());
    di.upload(hi.data());
    df.upload(hf.data());
    du.upload(hu.data());
    dd.upload(hd.data());
    const Case *pc = dc.d;
    const int *pi = di.d;
    const float *pf = df.d;
    const unsigned *pu = du.d;
    const double *pd = dd.d;
    int *qi = oi.d;
    float *qf = of.d;
    unsigned *qu = ou.d;
    double *qd = od.d;
    LT_LAUNCH(shuffles, 1, block, 0, nullptr, pc, nc, pi, pf, pu, pd, qi, qf, qu, qd);
    CUDA_OK(cudaGetLastError());
    std::vector<int> ri(n * nc);
    std::vector<float> rf(n * nc);
    std::vector<unsigned> ru(n * nc);
    std::vector<double> rd(n * nc);
    oi.download(ri.data());
    of.download(rf.data());
    ou.download(ru.data());
    od.download(rd.data());
    int bad = 0;
    for (int c = 0; c < nc; c++)
        for (unsigned lin = 0; lin < n; lin++) {
            unsigned src = (lin & ~31u) + guide_source(cases[c], lin & 31u);
            size_t o = (size_t)c * n + lin;
            bool ok = ri[o] == hi[src] && memcmp(&rf[o], &hf[src], sizeof(float)) == 0 &&
                      ru[o] == hu[src] && memcmp(&rd[o], &hd[src], sizeof(double)) == 0;
            if (!ok && bad++ < 5)
                fprintf(stderr,
                        "shuffle op %d param %d width %d, block (%u,%u), lane %u: got %d from "
                        "lane %u's %d?\n",
                        cases[c].op, cases[c].param, cases[c].width, block.x, block.y, lin, ri[o],
                        src, hi[src]);
        }
    CHECK(bad == 0, "%d of %d shuffle results differ from the Guide's definitions", bad, nc * n);

    /* a few by hand: lane values 0..31 */
    std::vector<int> lanes(n);
    for (unsigned i = 0; i < n; i++)
        lanes[i] = (int)i;
    di.upload(lanes.data());
    LT_LAUNCH(shuffles, 1, block, 0, nullptr, pc, nc, pi, pf, pu, pd, qi, qf, qu, qd);
    oi.download(ri.data());
    /* case 1 is SHFL 3 at width 32: every lane of warp 0 reads lane 3 */
    CHECK(ri[(size_t)1 * n + 0] == 3 && ri[(size_t)1 * n + 31] == 3, "shfl 3: %d %d",
          ri[(size_t)1 * n + 0], ri[(size_t)1 * n + 31]);
    /* cases 6.. are UP, DOWN, XOR by 0, then 9.. by 1 */
    /* case 10 is DOWN 1 at width 32: lane 30 reads 31, lane 31 keeps 31 */
    CHECK(ri[(size_t)10 * n + 30] == 31 && ri[(size_t)10 * n + 31] == 31, "down 1: %d %d",
          ri[(size_t)10 * n + 30], ri[(size_t)10 * n + 31]);
    /* case 9 is UP 1: lane 0 keeps 0, lane 5 reads 4 */
    CHECK(ri[(size_t)9 * n + 0] == 0 && ri[(size_t)9 * n + 5] == 4, "up 1: %d %d",
          ri[(size_t)9 * n + 0], ri[(size_t)9 * n + 5]);
    /* case 11 is XOR 1: lane 6 reads 7 */
    CHECK(ri[(size_t)11 * n + 6] == 7, "xor 1: %d", ri[(size_t)11 * n + 6]);
    if (n > 32)
        CHECK(ri[(size_t)1 * n + 32] == 35, "shfl 3 in warp 1: %d", ri[(size_t)1 * n + 32]);
}

__global__ void votes(const int *pred, unsigned *ballot, int *any, int *all, unsigned *half,
                      int *half_all) {
    unsigned t = threadIdx.x, lane = t & 31u;
    int p = pred[t];
    ballot[t] = __ballot_sync(kFull, p);
    any[t] = __any_sync(kFull, p);
    all[t] = __all_sync(kFull, p);
    unsigned mask = lane < 16 ? 0x0000ffffu : 0xffff0000u;
    half[t] = __ballot_sync(mask, p);
    half_all[t] = __all_sync(mask, p);
    __syncwarp();
    __syncwarp(mask);
}

void vote_functions() {
    const unsigned n = 96; /* warp 0 mixed, warp 1 all true, warp 2 all false */
    std::vector<int> pred(n);
    for (unsigned i = 0; i < n; i++)
        pred[i] = i < 32 ? (int)((i * 7 % 5 == 0) * (i + 1)) : i < 64 ? -3 : 0;
    pred[20] = 1; /* lanes 16..31 of warp 0: all true */
    for (unsigned i = 16; i < 32; i++)
        pred[i] = 1;
    DeviceArray<int> dp(n), any(n), all(n), hall(n);
    DeviceArray<unsigned> ballot(n), half(n);
    dp.upload(pred.data());
    const int *pp = dp.d;
    unsigned *pb = ballot.d, *ph = half.d;
    int *pa = any.d, *pl = all.d, *pha = hall.d;
    LT_LAUNCH(votes, 1, n, 0, nullptr, pp, pb, pa, pl, ph, pha);
    CUDA_OK(cudaGetLastError());
    std::vector<unsigned> gb(n), gh(n);
    std::vector<int> ga(n), gl(n), gha(n);
    ballot.download(gb.data());
    half.download(gh.data());
    any.download(ga.data());
    all.download(gl.data());
    hall.download(gha.data());
    int bad = 0;
    for (unsigned w = 0; w < 3; w++) {
        unsigned want = 0;
        for (unsigned l = 0; l < 32; l++)
            want |= (unsigned)(pred[w * 32 + l] != 0) << l;
        for (unsigned l = 0; l < 32; l++) {
            unsigned t = w * 32 + l, mask = l < 16 ? 0x0000ffffu : 0xffff0000u;
            bad += gb[t] != want;
            bad += ga[t] != (want != 0);
            bad += gl[t] != (want == kFull);
            bad += gh[t] != (want & mask);
            bad += gha[t] != ((want & mask) == mask);
        }
    }
    CHECK(bad == 0, "%d vote results wrong (warp 0's ballot 0x%08x)", bad, gb[0]);
    CHECK(gb[0] == 0xffff8421u && ga[64] == 0 && gl[32] == 1 && gha[16] == 1 && gha[0] == 0,
          "by hand: ballot 0x%08x, any %d, all %d, half all %d %d", gb[0], ga[64], gl[32], gha[16],
          gha[0]);
}

/* Lanes exchange through shared memory, with or without __syncwarp. */
template <bool kSync> __global__ void rotate_in_warp(const int *in, int *out) {
    __shared__ int s[64];
    unsigned t = threadIdx.x, base = t & ~31u;
    s[t] = in[t];
    if (kSync)
        __syncwarp();
    out[t] = s[base + ((t + 1) & 31u)];
}

void syncwarp_exchange() {
    static int run = 0;
    DeviceArray<int> in(64), out(64);
    int *pi = in.d, *po = out.d;
    /* fresh values each launch, so a racy read of the static shared
     * array's previous contents cannot look right */
    auto right = [&](bool sync) {
        std::vector<int> h(64), got(64);
        run++;
        for (int i = 0; i < 64; i++)
            h[i] = run * 1000 + i;
        in.upload(h.data());
        if (sync)
            LT_LAUNCH(rotate_in_warp<true>, 1, 64, 0, nullptr, pi, po);
        else
            LT_LAUNCH(rotate_in_warp<false>, 1, 64, 0, nullptr, pi, po);
        CUDA_OK(cudaGetLastError());
        out.download(got.data());
        bool ok = true;
        for (int t = 0; t < 64; t++)
            ok = ok && got[t] == h[(t & ~31) + ((t + 1) & 31)];
        return ok;
    };
    bool sync_f = false, sync_r = false, race_f = true, race_r = true;
    with_order("forward", [&] {
        sync_f = right(true);
        race_f = right(false);
    });
    with_order("reverse", [&] {
        sync_r = right(true);
        race_r = right(false);
    });
    CHECK(sync_f && sync_r, "rotate_in_warp with __syncwarp: forward %d reverse %d", sync_f,
          sync_r);
    CHECK(!(race_f && race_r), "rotate_in_warp without __syncwarp was right in both orders");
}

__global__ void bf16_shuffles(const float *in, float *out) {
    unsigned t = threadIdx.x;
    __nv_bfloat16 h = __float2bfloat16_rn(in[t]);
    __nv_bfloat162 h2 = __floats2bfloat162_rn(in[t], -in[t]);
    __nv_bfloat16 r = __shfl_xor_sync(kFull, h, 1);
    __nv_bfloat162 r2 = __shfl_down_sync(kFull, h2, 2);
    out[3 * t] = __bfloat162float(r);
    out[3 * t + 1] = __low2float(r2);
    out[3 * t + 2] = __high2float(r2);
}

void bf16_shuffle() {
    std::vector<float> h(32), got(96);
    for (int i = 0; i < 32; i++)
        h[i] = 1.0f + (float)i / 64.0f; /* exact in bf16 */
    DeviceArray<float> in(32), out(96);
    in.upload(h.data());
    float *pi = in.d, *po = out.d;
    LT_LAUNCH(bf16_shuffles, 1, 32, 0, nullptr, pi, po);
    CUDA_OK(cudaGetLastError());
    out.download(got.data());
    int bad = 0;
    for (int l = 0; l < 32; l++) {
        int d = l + 2 < 32 ? l + 2 : l;
        bad += got[3 * l] != h[l ^ 1] || got[3 * l + 1] != h[d] || got[3 * l + 2] != -h[d];
    }
    CHECK(bad == 0, "%d bf16 / bf162 shuffles wrong", bad);
}

/* ---- misuse: each fails the launch with a message, never hangs ---- */
__global__ void lane_returns_early(int *out) {
    int v = (int)threadIdx.x;
    if (threadIdx.x == 5)
        return;
    out[threadIdx.x] = __shfl_xor_sync(kFull, v, 1);
}
__global__ void lane_not_in_mask(int *out) {
    out[threadIdx.x] = __shfl_sync(0x0000ffffu, (int)threadIdx.x, 0);
}
__global__ void masks_differ(int *out) {
    unsigned mask = threadIdx.x < 16 ? kFull : 0xffff0000u;
    out[threadIdx.x] = __shfl_sync(mask, (int)threadIdx.x, 20);
}
__global__ void partial_warp_full_mask(int *out) {
    out[threadIdx.x] = __shfl_xor_sync(kFull, (int)threadIdx.x, 1);
}
__global__ void reads_outside_mask(int *out) {
    if (threadIdx.x < 16)
        out[threadIdx.x] = __shfl_sync(0x0000ffffu, (int)threadIdx.x, 20, 32);
}
__global__ void functions_differ(int *out) {
    out[threadIdx.x] = threadIdx.x == 0 ? (int)__ballot_sync(kFull, 1) : __any_sync(kFull, 1);
}
__global__ void width_not_power_of_two(int *out) {
    out[threadIdx.x] = __shfl_xor_sync(kFull, (int)threadIdx.x, 1, 12);
}
__global__ void delta_past_warp(int *out) {
    out[threadIdx.x] = __shfl_down_sync(kFull, (int)threadIdx.x, 32u);
}

void warp_faults() {
    DeviceArray<int> out(64);
    int *o = out.d;
    LT_LAUNCH(lane_returns_early, 1, 32, 0, nullptr, o);
    EXPECT_LAUNCH_ERROR(cudaErrorLaunchFailure, "kernel lane_returns_early", "lane 5");
    LT_LAUNCH(lane_not_in_mask, 1, 32, 0, nullptr, o);
    EXPECT_LAUNCH_ERROR(cudaErrorLaunchFailure, "kernel lane_not_in_mask",
                        "does not name the calling lane");
    LT_LAUNCH(masks_differ, 1, 32, 0, nullptr, o);
    /* forward: lane 16 meets lane 0's wider mask; reverse: lanes 16-31
     * finish on their own and lane 0 finds them returned */
    EXPECT_LAUNCH_ERROR(cudaErrorLaunchFailure, "kernel masks_differ", "mask 0xffffffff");
    LT_LAUNCH(partial_warp_full_mask, 1, 48, 0, nullptr, o);
    EXPECT_LAUNCH_ERROR(cudaErrorLaunchFailure, "kernel partial_warp_full_mask",
                        "names lanes from 16 on");
    LT_LAUNCH(reads_outside_mask, 1, 32, 0, nullptr, o);
    EXPECT_LAUNCH_ERROR(cudaErrorLaunchFailure, "kernel reads_outside_mask", "reads lane 20",
                        "not in the mask");
    LT_LAUNCH(functions_differ, 1, 32, 0, nullptr, o);
    EXPECT_LAUNCH_ERROR(cudaErrorLaunchFailure, "kernel functions_differ", "__ballot_sync",
                        "__any_sync");
    LT_LAUNCH(width_not_power_of_two, 1, 32, 0, nullptr, o);
    EXPECT_LAUNCH_ERROR(cudaErrorLaunchFailure, "kernel width_not_power_of_two", "width 12");
    LT_LAUNCH(delta_past_warp, 1, 32, 0, nullptr, o);
    EXPECT_LAUNCH_ERROR(cudaErrorLaunchFailure, "kernel delta_past_warp", "delta 32");
    cudaDeviceSynchronize();
}

} // namespace

int test_warp(void) {
    shuffles_against_guide(dim3(64));
    shuffles_against_guide(dim3(8, 8));
    vote_functions();
    syncwarp_exchange();
    bf16_shuffle();
    warp_faults();
    return 0;
}
