/* The CUDA emulation's fiber switch (tests/cuda_emu/): nanoseconds per
 * barrier arrival, for the assembly switch and for swapcontext, on blocks
 * of 256 and 1024 threads that do nothing but __syncthreads in a loop
 * (each arrival is a switch from the thread to the scheduler and one back),
 * and per thread of a kernel without barriers (a fiber's start and end).
 * Both switches run in this one invocation, best of 5 each.
 *
 * Usage: bench_cuda_emu [barriers per thread, default 200] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "model/cuda/launch.cuh"

namespace {

__global__ void barriers(int *out, int n) {
    int acc = 0;
    for (int i = 0; i < n; i++) {
        acc += (int)threadIdx.x ^ i;
        __syncthreads();
    }
    if (acc == 42)
        *out = acc;
}

__global__ void no_barrier(int *out) {
    if (threadIdx.x + blockIdx.x == 0xffffffffu)
        *out = 1;
}

double now() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

template <class F> double best_of(int reps, F f) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        f();
        double t = now() - t0;
        best = t < best ? t : best;
    }
    return best;
}

} // namespace

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 200;
    if (n <= 0) {
        fprintf(stderr, "usage: bench_cuda_emu [barriers per thread]\n");
        return 2;
    }
    int *out = nullptr;
    if (cudaMalloc(&out, sizeof(int)) != cudaSuccess)
        return 1;
    const char *switches[] = {"asm", "ucontext"};
    printf("%-9s %22s %22s %24s\n", "switch", "ns/arrival (256 thr)", "ns/arrival (1024 thr)",
           "ns/thread (no barrier)");
    for (const char *sw : switches) {
        setenv("LT_CUDA_EMU_SWITCH", sw, 1);
        double t256 = best_of(5, [&] { LT_LAUNCH(barriers, 4, 256, 0, nullptr, out, n); });
        double t1024 = best_of(5, [&] { LT_LAUNCH(barriers, 1, 1024, 0, nullptr, out, n); });
        double tfree = best_of(5, [&] { LT_LAUNCH(no_barrier, 1024, 256, 0, nullptr, out); });
        if (cudaGetLastError() != cudaSuccess) {
            fprintf(stderr, "bench_cuda_emu: %s\n", lt_cuda_emu_last_message());
            return 1;
        }
        printf("%-9s %22.1f %22.1f %24.1f\n", sw, t256 * 1e9 / (4.0 * 256 * n),
               t1024 * 1e9 / (1024.0 * n), tfree * 1e9 / (1024.0 * 256));
    }
    cudaFree(out);
    return 0;
}
