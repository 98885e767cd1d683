/* The runtime API: launch configurations CUDA refuses, device memory and
 * its checks, the one device, streams and events as ordered no-ops, error
 * names. Also compiles the CUDA backend's shared header as it is. */
#include <vector>

#include "check.cuh"
#include "model/cuda/internal.cuh"

namespace {

__global__ void mark(int *flag, int value) {
    if (threadIdx.x == 0 && blockIdx.x == 0)
        *flag = value;
}

__global__ void fill_shared(int *out, int n) {
    LT_DYNAMIC_SHARED(int, s);
    for (int i = (int)threadIdx.x; i < n; i += (int)blockDim.x)
        s[i] = i;
    __syncthreads();
    int sum = 0;
    if (threadIdx.x == 0)
        for (int i = 0; i < n; i++)
            sum += s[i];
    if (threadIdx.x == 0)
        *out = sum;
}

/* The launch did not run: flag still holds before. */
void expect_not_run(DeviceArray<int> &flag, int before) {
    int h = 0;
    flag.download(&h);
    CHECK(h == before, "a refused launch ran (flag %d)", h);
}

void launch_configurations() {
    DeviceArray<int> flag(1), out(1);
    int zero = 0;
    flag.upload(&zero);
    int *f = flag.d, *o = out.d;

    LT_LAUNCH(mark, 1, 1025, 0, nullptr, f, 1);
    EXPECT_LAUNCH_ERROR(cudaErrorInvalidConfiguration, "kernel mark", "block (1025,1,1)",
                        "at most");
    LT_LAUNCH(mark, 1, dim3(32, 32, 2), 0, nullptr, f, 1);
    EXPECT_LAUNCH_ERROR(cudaErrorInvalidConfiguration, "kernel mark", "2048 threads a block");
    LT_LAUNCH(mark, 1, dim3(1, 1, 65), 0, nullptr, f, 1);
    EXPECT_LAUNCH_ERROR(cudaErrorInvalidConfiguration, "kernel mark", "(1024, 1024, 64)");
    LT_LAUNCH(mark, 1, dim3(0, 1, 1), 0, nullptr, f, 1);
    EXPECT_LAUNCH_ERROR(cudaErrorInvalidConfiguration, "kernel mark", "dimension is 0");
    LT_LAUNCH(mark, dim3(2, 0), 32, 0, nullptr, f, 1);
    EXPECT_LAUNCH_ERROR(cudaErrorInvalidConfiguration, "kernel mark", "dimension is 0");
    LT_LAUNCH(mark, dim3(1, 65536), 32, 0, nullptr, f, 1);
    EXPECT_LAUNCH_ERROR(cudaErrorInvalidConfiguration, "kernel mark", "65535");
    expect_not_run(flag, 0);

    /* dynamic shared memory: 48 KiB unless the kernel's attribute allows more */
    LT_LAUNCH(fill_shared, 1, 256, 48 * 1024 + 4, nullptr, o, 12289);
    EXPECT_LAUNCH_ERROR(cudaErrorInvalidValue, "kernel fill_shared", "49156 bytes",
                        "cudaFuncSetAttribute(fill_shared");
    LT_LAUNCH(fill_shared, 1, 256, 48 * 1024, nullptr, o, 12288);
    CUDA_OK(cudaGetLastError());
    CUDA_OK(
        cudaFuncSetAttribute(fill_shared, cudaFuncAttributeMaxDynamicSharedMemorySize, 96 * 1024));
    CUDA_OK(
        cudaFuncSetAttribute(&fill_shared, cudaFuncAttributePreferredSharedMemoryCarveout, 100));
    LT_LAUNCH(fill_shared, 1, 256, 96 * 1024, nullptr, o, 24576);
    CUDA_OK(cudaGetLastError());
    int sum = 0;
    out.download(&sum);
    CHECK(sum == 24576 * 24575 / 2, "fill_shared over 96 KiB: %d", sum);
    LT_LAUNCH(fill_shared, 1, 256, 96 * 1024 + 4, nullptr, o, 24577);
    EXPECT_LAUNCH_ERROR(cudaErrorInvalidValue, "kernel fill_shared", "98308 bytes", "98304 bytes");
    CHECK(cudaFuncSetAttribute(fill_shared, cudaFuncAttributeMaxDynamicSharedMemorySize, 166913) ==
              cudaErrorInvalidValue,
          "an attribute past the device's 166912 bytes");
    EXPECT_LAUNCH_ERROR(cudaErrorInvalidValue, "cudaFuncSetAttribute(fill_shared", "166912");
    /* another kernel is not raised by fill_shared's attribute */
    LT_LAUNCH(mark, 1, 32, 64 * 1024, nullptr, f, 1);
    EXPECT_LAUNCH_ERROR(cudaErrorInvalidValue, "kernel mark");
    expect_not_run(flag, 0);

    /* a destroyed stream */
    cudaStream_t s;
    CUDA_OK(cudaStreamCreate(&s));
    CUDA_OK(cudaStreamDestroy(s));
    LT_LAUNCH(mark, 1, 32, 0, s, f, 1);
    EXPECT_LAUNCH_ERROR(cudaErrorInvalidResourceHandle, "kernel mark", "stream");
    expect_not_run(flag, 0);

    /* the thread order variable is checked */
    with_order("sideways", [&] {
        LT_LAUNCH(mark, 1, 32, 0, nullptr, f, 1);
        EXPECT_LAUNCH_ERROR(cudaErrorInvalidValue, "LT_CUDA_EMU_ORDER=sideways");
    });
    expect_not_run(flag, 0);

    /* Peek keeps the error, Get clears it */
    LT_LAUNCH(mark, 1, 2000, 0, nullptr, f, 1);
    CHECK(cudaPeekAtLastError() == cudaErrorInvalidConfiguration, "peek");
    CHECK(cudaPeekAtLastError() == cudaErrorInvalidConfiguration, "peek again");
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "get");
    CHECK(cudaGetLastError() == cudaSuccess, "get clears");
    /* a configuration error is not an execution fault: the next sync is clean */
    CUDA_OK(cudaDeviceSynchronize());

    LT_LAUNCH(mark, 2, 32, 0, nullptr, f, 7);
    CUDA_OK(cudaGetLastError());
    expect_not_run(flag, 7);
}

__global__ void slow_sum(const float *in, float *out, int n, int reps) {
    __shared__ float s[256];
    float acc = 0.0f;
    for (int r = 0; r < reps; r++)
        for (int i = (int)threadIdx.x; i < n; i += (int)blockDim.x)
            acc += in[i];
    s[threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        float t = 0.0f;
        for (unsigned i = 0; i < blockDim.x; i++)
            t += s[i];
        *out = t;
    }
}

void streams_and_events() {
    const int n = 4096;
    std::vector<float> h(n, 0.25f);
    DeviceArray<float> in(n), out(1), copy(n);
    float *pi = in.d, *po = out.d;
    cudaStream_t s1, s2;
    cudaEvent_t start, end, untimed, never;
    CUDA_OK(cudaStreamCreate(&s1));
    CUDA_OK(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
    CUDA_OK(cudaEventCreate(&start));
    CUDA_OK(cudaEventCreateWithFlags(&end, cudaEventDefault));
    CUDA_OK(cudaEventCreate(&untimed, cudaEventDisableTiming));
    CUDA_OK(cudaEventCreate(&never));
    CUDA_OK(cudaMemcpyAsync(pi, h.data(), n * sizeof(float), cudaMemcpyHostToDevice, s1));
    CUDA_OK(cudaEventRecord(start, s1));
    LT_LAUNCH(slow_sum, 1, 256, 0, s1, pi, po, n, 50);
    CUDA_OK(cudaGetLastError());
    /* a launch runs at the call: its result is there without a sync */
    float got = 0;
    CUDA_OK(cudaMemcpyAsync(&got, po, sizeof got, cudaMemcpyDeviceToHost, s1));
    CHECK(got == 0.25f * n * 50, "slow_sum read before any sync: %g", got);
    CUDA_OK(cudaMemcpyAsync(copy.d, pi, n * sizeof(float), cudaMemcpyDeviceToDevice, s2));
    CUDA_OK(cudaMemsetAsync(po, 0, sizeof(float), s2));
    CUDA_OK(cudaEventRecord(end, s1));
    CUDA_OK(cudaEventRecord(untimed, s1));
    CUDA_OK(cudaStreamWaitEvent(s2, end, 0));
    CUDA_OK(cudaStreamWaitEvent(s2, end));
    CUDA_OK(cudaEventQuery(end));
    CUDA_OK(cudaEventQuery(never));
    CUDA_OK(cudaEventSynchronize(end));
    float ms = -1;
    CUDA_OK(cudaEventElapsedTime(&ms, start, end));
    CHECK(ms > 0.0f && ms < 60000.0f, "elapsed %g ms between the events around slow_sum", ms);
    CHECK(cudaEventElapsedTime(&ms, start, untimed) == cudaErrorInvalidResourceHandle,
          "elapsed time to an event without timing");
    EXPECT_LAUNCH_ERROR(cudaErrorInvalidResourceHandle, "cudaEventDisableTiming");
    CHECK(cudaEventElapsedTime(&ms, start, never) == cudaErrorInvalidResourceHandle,
          "elapsed time to an event never recorded");
    EXPECT_LAUNCH_ERROR(cudaErrorInvalidResourceHandle, "never recorded");
    CUDA_OK(cudaStreamSynchronize(s1));
    CUDA_OK(cudaStreamSynchronize(s2));
    CUDA_OK(cudaStreamSynchronize(nullptr));
    CUDA_OK(cudaStreamSynchronize(cudaStreamPerThread));
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<float> hc(n);
    copy.download(hc.data());
    CHECK(hc == h, "cudaMemcpyAsync device to device");
    CUDA_OK(cudaEventDestroy(start));
    CUDA_OK(cudaEventDestroy(end));
    CUDA_OK(cudaEventDestroy(untimed));
    CUDA_OK(cudaEventDestroy(never));
    CUDA_OK(cudaStreamDestroy(s1));
    CUDA_OK(cudaStreamDestroy(s2));
    CHECK(cudaStreamDestroy(s1) == cudaErrorInvalidResourceHandle, "a stream destroyed twice");
    CHECK(cudaEventDestroy(end) == cudaErrorInvalidResourceHandle, "an event destroyed twice");
    CHECK(cudaEventRecord(end, nullptr) == cudaErrorInvalidResourceHandle,
          "recording a destroyed event");
    CHECK(cudaMemcpyAsync(pi, h.data(), 4, cudaMemcpyHostToDevice, s1) ==
              cudaErrorInvalidResourceHandle,
          "a copy on a destroyed stream");
    CHECK(cudaStreamCreateWithFlags(&s1, 8) == cudaErrorInvalidValue, "unknown stream flags");
    cudaGetLastError();
}

void memory() {
    size_t free0, total, free1, free2;
    CUDA_OK(cudaMemGetInfo(&free0, &total));
    CHECK(total == (size_t)16384 << 20 || getenv("LT_CUDA_EMU_MEM_MIB"), "total %zu", total);
    void *p = nullptr;
    const size_t bytes = 3 * 1000 * 1000 + 17;
    CUDA_OK(cudaMalloc(&p, bytes));
    CHECK(((uintptr_t)p & 255) == 0, "cudaMalloc's %p is not 256-byte aligned", p);
    CUDA_OK(cudaMemGetInfo(&free1, &total));
    CHECK(free0 - free1 == bytes, "free fell by %zu, allocated %zu", free0 - free1, bytes);
    /* not zeroed: every byte 0xff */
    std::vector<unsigned char> h(bytes);
    CUDA_OK(cudaMemcpy(h.data(), p, bytes, cudaMemcpyDeviceToHost));
    size_t ff = 0;
    for (unsigned char c : h)
        ff += c == 0xff;
    CHECK(ff == bytes, "a new block holds %zu of %zu 0xff bytes", ff, bytes);
    CUDA_OK(cudaMemset(p, 0x5a, bytes));
    CUDA_OK(cudaMemcpy(h.data(), p, bytes, cudaMemcpyDefault));
    CHECK(h[0] == 0x5a && h[bytes - 1] == 0x5a, "cudaMemset");
    float *q = nullptr;
    CUDA_OK(cudaMalloc(&q, 64 * sizeof(float)));
    std::vector<float> src(64), back(64);
    for (int i = 0; i < 64; i++)
        src[i] = (float)i * 1.5f;
    CUDA_OK(cudaMemcpy(q, src.data(), 64 * sizeof(float), cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(p, q, 64 * sizeof(float), cudaMemcpyDeviceToDevice));
    CUDA_OK(cudaMemcpy(back.data(), p, 64 * sizeof(float), cudaMemcpyDeviceToHost));
    CHECK(back == src, "host -> device -> device -> host");

    /* the device side of every copy is checked */
    CHECK(cudaMemcpy(back.data(), src.data(), 64 * sizeof(float), cudaMemcpyHostToDevice) ==
              cudaErrorInvalidValue,
          "host to device into host memory");
    EXPECT_LAUNCH_ERROR(cudaErrorInvalidValue, "cudaMemcpy(cudaMemcpyHostToDevice)",
                        "not in any cudaMalloc block");
    CHECK(cudaMemcpy(back.data(), q, 65 * sizeof(float), cudaMemcpyDeviceToHost) ==
              cudaErrorInvalidValue,
          "a copy past the end of a block");
    EXPECT_LAUNCH_ERROR(cudaErrorInvalidValue, "source", "run 4 bytes past the end");
    CHECK(cudaMemcpy(q, src.data(), 4, cudaMemcpyDeviceToDevice) == cudaErrorInvalidValue,
          "device to device from host memory");
    EXPECT_LAUNCH_ERROR(cudaErrorInvalidValue, "source");
    CHECK(cudaMemcpy(back.data(), q, 4, cudaMemcpyHostToHost) == cudaErrorInvalidValue,
          "host to host from device memory");
    EXPECT_LAUNCH_ERROR(cudaErrorInvalidValue, "device memory, the kind says host");
    CHECK(cudaMemset(q + 60, 0, 5 * sizeof(float)) == cudaErrorInvalidValue,
          "a memset past the end");
    EXPECT_LAUNCH_ERROR(cudaErrorInvalidValue, "cudaMemset", "past the end");
    CHECK(cudaMemcpy(q, src.data(), 4, (cudaMemcpyKind)7) == cudaErrorInvalidMemcpyDirection,
          "a bad kind");
    cudaGetLastError();

    CUDA_OK(cudaFree(q));
    CUDA_OK(cudaFree(p));
    CUDA_OK(cudaFree(nullptr));
    CHECK(cudaFree(p) == cudaErrorInvalidValue, "a block freed twice");
    EXPECT_LAUNCH_ERROR(cudaErrorInvalidValue, "cudaFree", "freed twice");
    CUDA_OK(cudaMemGetInfo(&free2, &total));
    CHECK(free2 == free0, "free %zu after freeing everything, %zu before", free2, free0);
    void *big = nullptr;
    CHECK(cudaMalloc(&big, total + 1) == cudaErrorMemoryAllocation && big == nullptr,
          "more than the device holds");
    EXPECT_LAUNCH_ERROR(cudaErrorMemoryAllocation, "cudaMalloc", "LT_CUDA_EMU_MEM_MIB");
    void *none = &big;
    CUDA_OK(cudaMalloc(&none, 0));
    CHECK(none == nullptr, "cudaMalloc of 0 bytes gives NULL");
}

void device() {
    int count = -1, dev = -1;
    CUDA_OK(cudaGetDeviceCount(&count));
    CHECK(count == 1, "device count %d", count);
    CUDA_OK(cudaSetDevice(0));
    CUDA_OK(cudaGetDevice(&dev));
    CHECK(dev == 0, "device %d", dev);
    CHECK(cudaSetDevice(1) == cudaErrorInvalidDevice, "device 1");
    EXPECT_LAUNCH_ERROR(cudaErrorInvalidDevice, "cudaSetDevice(1)");
    cudaDeviceProp prop;
    CUDA_OK(cudaGetDeviceProperties(&prop, 0));
    CHECK(strcmp(prop.name, "emulated") == 0 && prop.warpSize == 32 &&
              prop.maxThreadsPerBlock == 1024 && prop.sharedMemPerBlock == 48 * 1024 &&
              prop.sharedMemPerBlockOptin == 166912 && prop.major == 8,
          "properties: %s, warp %d, %d threads, %zu shared", prop.name, prop.warpSize,
          prop.maxThreadsPerBlock, prop.sharedMemPerBlock);
    CHECK(cudaGetDeviceProperties(&prop, 1) == cudaErrorInvalidDevice, "properties of device 1");
    cudaGetLastError();
}

void error_names() {
    struct {
        cudaError_t e;
        int value;
        const char *name, *text;
    } want[] = {
        {cudaSuccess, 0, "cudaSuccess", "no error"},
        {cudaErrorInvalidValue, 1, "cudaErrorInvalidValue", "invalid argument"},
        {cudaErrorMemoryAllocation, 2, "cudaErrorMemoryAllocation", "out of memory"},
        {cudaErrorInvalidConfiguration, 9, "cudaErrorInvalidConfiguration",
         "invalid configuration argument"},
        {cudaErrorInvalidDevice, 101, "cudaErrorInvalidDevice", "invalid device ordinal"},
        {cudaErrorInvalidResourceHandle, 400, "cudaErrorInvalidResourceHandle",
         "invalid resource handle"},
        {cudaErrorIllegalAddress, 700, "cudaErrorIllegalAddress",
         "an illegal memory access was encountered"},
        {cudaErrorLaunchFailure, 719, "cudaErrorLaunchFailure", "unspecified launch failure"},
        {cudaErrorNotSupported, 801, "cudaErrorNotSupported", "operation not supported"},
    };
    for (const auto &w : want) {
        CHECK((int)w.e == w.value && strcmp(cudaGetErrorName(w.e), w.name) == 0 &&
                  strcmp(cudaGetErrorString(w.e), w.text) == 0,
              "%d: %s / %s", w.value, cudaGetErrorName(w.e), cudaGetErrorString(w.e));
    }
    CHECK(strcmp(cudaGetErrorString((cudaError_t)1000), "unrecognized error code") == 0,
          "an unknown code");
}

__global__ void past_device(float *p) { p[blockIdx.x * blockDim.x + threadIdx.x] = 1.0f; }

__global__ void past_shared(float *p) {
    __shared__ float s[32];
    float *q = s; /* through a pointer, as kernels index shared memory */
    q[threadIdx.x] = 1.0f;
    __syncthreads();
    p[0] = s[0];
}

} // namespace

/* For the sanitizer build only: a kernel writing one float past its
 * cudaMalloc block, or past a static shared array, which AddressSanitizer
 * must report (the CTest test matches its report); without the sanitizers
 * the write goes unseen. */
int test_out_of_bounds(const char *which) {
    float *d = nullptr;
    CUDA_OK(cudaMalloc(&d, 100 * sizeof(float)));
    if (strcmp(which, "device") == 0)
        LT_LAUNCH(past_device, 1, 101, 0, nullptr, d);
    else
        LT_LAUNCH(past_shared, 1, 33, 0, nullptr, d);
    CUDA_OK(cudaGetLastError());
    CUDA_OK(cudaFree(d));
    printf("no out-of-bounds access reported\n");
    return 0;
}

__global__ void add_one(float *p, int n) {
    const int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (i < n)
        p[i] += 1.0f;
}

/* Under LT_CUDA_EMU_GUARD=1 (the CTest test sets it): a launch, copies,
 * a memset and a cuBLAS call reach device memory as on a GPU; then the
 * host writes through the device pointer, which must fault with the
 * guard's message (the test matches it; without the guard the write
 * would pass unseen and this prints that). */
int test_guard(void) {
    float *d = nullptr, h[100];
    for (int i = 0; i < 100; i++)
        h[i] = (float)i;
    CUDA_OK(cudaMalloc(&d, sizeof h));
    CUDA_OK(cudaMemcpy(d, h, sizeof h, cudaMemcpyHostToDevice));
    LT_LAUNCH(add_one, 1, 128, 0, nullptr, d, 100);
    CUDA_OK(cudaGetLastError());
    cublasHandle_t blas;
    CHECK(cublasCreate(&blas) == CUBLAS_STATUS_SUCCESS, "cublasCreate");
    const float one = 1.0f, zero = 0.0f;
    /* d[0..9] = d[0..9] (a 10 x 1 by 1 x 1 product) */
    CHECK(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, 10, 1, 1, &one, d, 10, d + 99, 1, &zero,
                      d + 50, 10) == CUBLAS_STATUS_SUCCESS,
          "cublasSgemm on guarded memory");
    cublasDestroy(blas);
    CUDA_OK(cudaMemset(d + 90, 0, 10 * sizeof(float)));
    CUDA_OK(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost));
    CHECK(h[0] == 1.0f && h[49] == 50.0f && h[50] == 100.0f && h[59] == 10.0f * 100.0f &&
              h[90] == 0.0f,
          "guarded memory: %g %g %g %g %g", h[0], h[49], h[50], h[59], h[90]);
    printf("legal uses work (%d failed checks)\n", emu_check_failures);
    fflush(stdout);
    d[3] = 7.0f; /* host code through a device pointer */
    printf("the host wrote device memory unseen\n");
    return 1;
}

int test_runtime(void) {
    /* model/cuda/internal.cuh compiles against these headers as it is */
    lt_cuda_ctx ctx{};
    CHECK(ctx.sticky == cudaSuccess && sizeof ctx.blas == sizeof(void *), "lt_cuda_ctx");
    launch_configurations();
    streams_and_events();
    memory();
    device();
    error_names();
    return 0;
}
