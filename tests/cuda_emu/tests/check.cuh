/* The self-tests' checks: CHECK counts and reports a failure with
 * file:line and goes on; main returns non-zero if any failed or none ran.
 * (tests/lib/check.h keeps its counters per C file; these .cu files share
 * theirs.) */
#ifndef LT_CUDA_EMU_TESTS_CHECK_CUH
#define LT_CUDA_EMU_TESTS_CHECK_CUH

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <initializer_list>
#include <string>

#include <cuda_runtime.h>

inline int emu_check_failures = 0;
inline int emu_check_count = 0;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        emu_check_count++;                                                                         \
        if (!(cond)) {                                                                             \
            emu_check_failures++;                                                                  \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

/* A CUDA call that must succeed. */
#define CUDA_OK(expr)                                                                              \
    do {                                                                                           \
        cudaError_t e_ = (expr);                                                                   \
        CHECK(e_ == cudaSuccess, "%s -> %s: %s", #expr, cudaGetErrorName(e_),                      \
              lt_cuda_emu_last_message());                                                         \
    } while (0)

/* The last launch failed with `want`, its message holds every one of the
 * given fragments, and cudaGetLastError cleared it. */
static inline void expect_launch_error(const char *file, int line, cudaError_t want,
                                       std::initializer_list<const char *> fragments) {
    emu_check_count++;
    cudaError_t got = cudaGetLastError();
    std::string msg = lt_cuda_emu_last_message();
    bool ok = got == want;
    for (const char *f : fragments)
        ok = ok && msg.find(f) != std::string::npos;
    ok = ok && cudaGetLastError() == cudaSuccess;
    if (!ok) {
        emu_check_failures++;
        fprintf(stderr,
                "FAIL %s:%d: expected %s, got %s with message \"%s\"; expected in it:", file, line,
                cudaGetErrorName(want), cudaGetErrorName(got), msg.c_str());
        for (const char *f : fragments)
            fprintf(stderr, " \"%s\"", f);
        fprintf(stderr, "\n");
    }
}
#define EXPECT_LAUNCH_ERROR(want, ...) expect_launch_error(__FILE__, __LINE__, want, {__VA_ARGS__})

/* Runs fn with LT_CUDA_EMU_ORDER set to order, then puts the variable back. */
template <class F> static inline void with_order(const char *order, F fn) {
    const char *old = getenv("LT_CUDA_EMU_ORDER");
    std::string saved = old ? old : "";
    setenv("LT_CUDA_EMU_ORDER", order, 1);
    fn();
    if (old)
        setenv("LT_CUDA_EMU_ORDER", saved.c_str(), 1);
    else
        unsetenv("LT_CUDA_EMU_ORDER");
}

static inline const char *current_order() {
    const char *o = getenv("LT_CUDA_EMU_ORDER");
    return o ? o : "forward";
}

/* Device buffers the tests fill from and read back to the host. */
template <class T> struct DeviceArray {
    T *d = nullptr;
    size_t n = 0;
    explicit DeviceArray(size_t count) : n(count) { CUDA_OK(cudaMalloc(&d, count * sizeof(T))); }
    DeviceArray(const DeviceArray &) = delete;
    DeviceArray &operator=(const DeviceArray &) = delete;
    ~DeviceArray() { CUDA_OK(cudaFree(d)); }
    void upload(const T *h) { CUDA_OK(cudaMemcpy(d, h, n * sizeof(T), cudaMemcpyHostToDevice)); }
    void download(T *h) const { CUDA_OK(cudaMemcpy(h, d, n * sizeof(T), cudaMemcpyDeviceToHost)); }
    void zero() { CUDA_OK(cudaMemset(d, 0, n * sizeof(T))); }
};

int test_barriers(void);
int test_warp(void);
int test_runtime(void);
int test_out_of_bounds(const char *which);
int test_guard(void);
int test_bf16(int argc, char **argv);
int test_cublas(void);

#endif
