/* The emulation's cuda_runtime.h (tests/cuda_emu/): what a .cu file of the
 * CUDA backend may use (the contract in tests/cuda_emu/README.md), so that
 * the host C++ compiler builds the same source nvcc builds, and the CPU
 * runs every CUDA thread of a block as a fiber.
 *
 * Kernel code sees: the built-in variables (threadIdx, blockIdx, blockDim,
 * gridDim as read-only references to the running fiber's values; warpSize),
 * the qualifiers (empty, except __shared__, which is `static`: blocks run
 * one after another, so one static per kernel is the block's shared
 * memory), __syncthreads, the _sync warp functions, int atomics, the math
 * CUDA adds to the C library, and the launch that model/cuda/launch.cuh's
 * LT_LAUNCH expands to. What the contract leaves out is absent or deleted
 * on purpose, so that code relying on it fails to compile here as well
 * (float atomics, for one). */
#ifndef LT_CUDA_EMU_CUDA_RUNTIME_H
#define LT_CUDA_EMU_CUDA_RUNTIME_H

#ifndef LT_CUDA_EMU
#error "the CUDA emulation's headers need -DLT_CUDA_EMU (lt_cuda_emu_library sets it)"
#endif

#include "cuda_runtime_api.h"
#include "vector_types.h"

#ifdef __cplusplus
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <type_traits>

#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
/* Blocks run one at a time, so a static is the block's shared memory. Its
 * contents at a block's start are whatever the previous block left (a GPU
 * promises nothing either; the emulator does not zero or poison them). */
#define __shared__ static

/* The running fiber's built-in variables, set by the scheduler before it
 * resumes a thread. */
struct lt_cuda_emu_builtins_t {
    uint3 thread_idx;
    uint3 block_idx;
    dim3 block_dim;
    dim3 grid_dim;
};
extern lt_cuda_emu_builtins_t lt_cuda_emu_builtins;
#define threadIdx (static_cast<const uint3 &>(lt_cuda_emu_builtins.thread_idx))
#define blockIdx (static_cast<const uint3 &>(lt_cuda_emu_builtins.block_idx))
#define blockDim (static_cast<const dim3 &>(lt_cuda_emu_builtins.block_dim))
#define gridDim (static_cast<const dim3 &>(lt_cuda_emu_builtins.grid_dim))
constexpr int warpSize = 32;

namespace lt_cuda_emu {
enum warp_op {
    WARP_SHFL,
    WARP_SHFL_UP,
    WARP_SHFL_DOWN,
    WARP_SHFL_XOR,
    WARP_BALLOT,
    WARP_ANY,
    WARP_ALL,
    WARP_SYNC
};
void syncthreads();
/* One lane's arrival at a warp function: blocks until every lane of mask
 * has arrived at the same function with the same mask (or fails the
 * launch), then returns this lane's result bits. */
unsigned long long warp_exchange(warp_op op, const char *fn, unsigned mask, unsigned long long bits,
                                 int size, int param, int width);
void launch(const char *kernel, const void *func, dim3 grid, dim3 block, size_t shmem,
            cudaStream_t stream, void (*thunk)(const void *), const void *callable);
void *dynamic_shared();
cudaError_t func_set_attribute(const char *spelled_args, const void *func,
                               enum cudaFuncAttribute attr, int value);

template <class T>
static inline T shuffle(warp_op op, const char *fn, unsigned mask, T var, int param, int width) {
    static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 8,
                  "warp shuffles move values of at most 8 bytes");
    unsigned long long bits = 0;
    memcpy(&bits, static_cast<const void *>(&var), sizeof var);
    bits = warp_exchange(op, fn, mask, bits, (int)sizeof var, param, width);
    T r;
    memcpy(static_cast<void *>(&r), &bits, sizeof r);
    return r;
}

template <class F> static void call_thunk(const void *f) { (*static_cast<const F *>(f))(); }

template <class F>
static inline cudaError_t func_set_attribute_spelled(const char *spelled, F *func,
                                                     enum cudaFuncAttribute attr, int value) {
    return func_set_attribute(spelled, reinterpret_cast<const void *>(func), attr, value);
}
} // namespace lt_cuda_emu

/* ---- synchronisation and warp functions ---- */
static inline void __syncthreads() { lt_cuda_emu::syncthreads(); }
static inline void __syncwarp(unsigned mask = 0xffffffffu) {
    lt_cuda_emu::warp_exchange(lt_cuda_emu::WARP_SYNC, "__syncwarp", mask, 0, 0, 0, 32);
}
static inline unsigned __ballot_sync(unsigned mask, int predicate) {
    return (unsigned)lt_cuda_emu::warp_exchange(lt_cuda_emu::WARP_BALLOT, "__ballot_sync", mask,
                                                predicate != 0, 4, 0, 32);
}
static inline int __any_sync(unsigned mask, int predicate) {
    return (int)lt_cuda_emu::warp_exchange(lt_cuda_emu::WARP_ANY, "__any_sync", mask,
                                           predicate != 0, 4, 0, 32);
}
static inline int __all_sync(unsigned mask, int predicate) {
    return (int)lt_cuda_emu::warp_exchange(lt_cuda_emu::WARP_ALL, "__all_sync", mask,
                                           predicate != 0, 4, 0, 32);
}

/* CUDA's overloads of the shuffles (cuda_bf16.h adds the bf16 ones). */
#define LT_EMU_SHUFFLES(T)                                                                         \
    static inline T __shfl_sync(unsigned mask, T var, int srcLane, int width = 32) {               \
        return lt_cuda_emu::shuffle(lt_cuda_emu::WARP_SHFL, "__shfl_sync", mask, var, srcLane,     \
                                    width);                                                        \
    }                                                                                              \
    static inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32) {         \
        return lt_cuda_emu::shuffle(lt_cuda_emu::WARP_SHFL_UP, "__shfl_up_sync", mask, var,        \
                                    (int)delta, width);                                            \
    }                                                                                              \
    static inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32) {       \
        return lt_cuda_emu::shuffle(lt_cuda_emu::WARP_SHFL_DOWN, "__shfl_down_sync", mask, var,    \
                                    (int)delta, width);                                            \
    }                                                                                              \
    static inline T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = 32) {          \
        return lt_cuda_emu::shuffle(lt_cuda_emu::WARP_SHFL_XOR, "__shfl_xor_sync", mask, var,      \
                                    laneMask, width);                                              \
    }
LT_EMU_SHUFFLES(int)
LT_EMU_SHUFFLES(unsigned int)
LT_EMU_SHUFFLES(long)
LT_EMU_SHUFFLES(unsigned long)
LT_EMU_SHUFFLES(long long)
LT_EMU_SHUFFLES(unsigned long long)
LT_EMU_SHUFFLES(float)
LT_EMU_SHUFFLES(double)

/* ---- atomics: int and unsigned only (the contract). Fibers switch only at
 * __syncthreads and warp functions, so a plain read-modify-write is
 * atomic; unsigned arithmetic wraps as the GPU's does. ---- */
static inline int atomicAdd(int *address, int val) {
    int old = *address;
    *address = (int)((unsigned)old + (unsigned)val);
    return old;
}
static inline unsigned atomicAdd(unsigned *address, unsigned val) {
    unsigned old = *address;
    *address = old + val;
    return old;
}
static inline int atomicMax(int *address, int val) {
    int old = *address;
    *address = old > val ? old : val;
    return old;
}
static inline unsigned atomicMax(unsigned *address, unsigned val) {
    unsigned old = *address;
    *address = old > val ? old : val;
    return old;
}
static inline int atomicCAS(int *address, int compare, int val) {
    int old = *address;
    if (old == compare)
        *address = val;
    return old;
}
static inline unsigned atomicCAS(unsigned *address, unsigned compare, unsigned val) {
    unsigned old = *address;
    if (old == compare)
        *address = val;
    return old;
}
/* No float atomics in any reduction: their order, hence their bits, vary
 * run to run on a GPU (the replica check hashes bits across ranks). */
float atomicAdd(float *address, float val) = delete;
double atomicAdd(double *address, double val) = delete;

static inline void __threadfence() {}
static inline void __threadfence_block() {}
template <class T> static inline T __ldg(const T *p) { return *p; }

/* ---- math CUDA adds to the C library (exact on both builds, except
 * rsqrtf, which the GPU computes to within 2 ulp) ---- */
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
static inline int __float_as_int(float x) {
    int r;
    memcpy(&r, &x, sizeof r);
    return r;
}
static inline unsigned __float_as_uint(float x) {
    unsigned r;
    memcpy(&r, &x, sizeof r);
    return r;
}
static inline float __int_as_float(int x) {
    float r;
    memcpy(&r, &x, sizeof r);
    return r;
}
static inline float __uint_as_float(unsigned x) {
    float r;
    memcpy(&r, &x, sizeof r);
    return r;
}
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
static inline int __clzll(long long x) {
    return x == 0 ? 64 : __builtin_clzll((unsigned long long)x);
}
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int __ffsll(long long x) { return __builtin_ffsll(x); }

#define LT_EMU_MINMAX(R, A, B)                                                                     \
    static inline R min(A a, B b) { return (R)a < (R)b ? (R)a : (R)b; }                            \
    static inline R max(A a, B b) { return (R)a > (R)b ? (R)a : (R)b; }
LT_EMU_MINMAX(int, int, int)
LT_EMU_MINMAX(unsigned, unsigned, unsigned)
LT_EMU_MINMAX(unsigned, int, unsigned)
LT_EMU_MINMAX(unsigned, unsigned, int)
LT_EMU_MINMAX(long, long, long)
LT_EMU_MINMAX(unsigned long, unsigned long, unsigned long)
LT_EMU_MINMAX(long long, long long, long long)
LT_EMU_MINMAX(unsigned long long, unsigned long long, unsigned long long)
#undef LT_EMU_MINMAX
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline double min(double a, double b) { return fmin(a, b); }
static inline double max(double a, double b) { return fmax(a, b); }
static inline double min(float a, double b) { return fmin(a, b); }
static inline double max(float a, double b) { return fmax(a, b); }
static inline double min(double a, float b) { return fmin(a, b); }
static inline double max(double a, float b) { return fmax(a, b); }

/* ---- the launch model/cuda/launch.cuh's LT_LAUNCH expands to: runs the
 * whole grid before it returns; a bad configuration or a failed block is
 * reported by the next cudaGetLastError ---- */
template <class F>
static inline void lt_cuda_emu_launch(const char *kernel, const void *func, dim3 grid, dim3 block,
                                      size_t shmem, cudaStream_t stream, const F &callable) {
    lt_cuda_emu::launch(kernel, func, grid, block, shmem, stream, &lt_cuda_emu::call_thunk<F>,
                        &callable);
}
/* The block's dynamic shared memory (LT_DYNAMIC_SHARED): the launch's shmem
 * bytes, 16-byte aligned, filled with 0xff at each block's start so that a
 * read before a write shows (as NaN, for floats). */
static inline void *lt_cuda_emu_dynamic_shared() { return lt_cuda_emu::dynamic_shared(); }

/* ---- the C++ conveniences of nvcc's cuda_runtime.h ---- */
template <class T> static inline cudaError_t cudaMalloc(T **devPtr, size_t size) {
    return ::cudaMalloc(reinterpret_cast<void **>(devPtr), size);
}
static inline cudaError_t cudaEventCreate(cudaEvent_t *event, unsigned int flags) {
    return ::cudaEventCreateWithFlags(event, flags);
}
/* A kernel's attributes are keyed by its address, as CUDA keys them
 * (LT_LAUNCH hands the emulator the address too); the spelling names the
 * kernel in messages. */
#define cudaFuncSetAttribute(...) lt_cuda_emu::func_set_attribute_spelled(#__VA_ARGS__, __VA_ARGS__)

#endif /* __cplusplus */

#endif
