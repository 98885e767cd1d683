/* The runtime API of the emulation: errors, device memory, the one device,
 * streams and events.
 *
 * Errors: each host thread has its last error (cudaGetLastError returns
 * and clears it, cudaPeekAtLastError returns it) and the message of its
 * last failure. A failure during execution is also returned, once, by the
 * next synchronising call. Unlike a GPU's, such errors are not sticky: the
 * process can go on launching, so one test can check many failures.
 *
 * Device memory is host memory (malloc, 256-byte aligned, as cudaMalloc's
 * is), so AddressSanitizer reports a kernel's out-of-bounds access. New
 * blocks are filled with 0xff bytes (NaN as floats), because cudaMalloc
 * does not zero and code that forgets to must show it. The emulated device
 * has LT_CUDA_EMU_MEM_MIB MiB (default 16384); cudaMemGetInfo's free is
 * that minus the bytes allocated, exactly. Copies and memsets check the
 * device side against the live blocks: a host pointer where a device one is
 * expected, or a range past a block's end, is cudaErrorInvalidValue with
 * the reason in lt_cuda_emu_last_message(). */
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <set>
#include <string>

#include "emu_internal.h"

struct CUstream_st {
    unsigned flags;
};
struct CUevent_st {
    unsigned flags;
    bool recorded;
    double ms; /* CLOCK_MONOTONIC at the record */
};

namespace lt_cuda_emu {
namespace {

thread_local cudaError_t t_last = cudaSuccess;
thread_local char t_message[2048];
std::mutex g_mutex; /* the allocations, streams, events and the pending error */
cudaError_t g_pending = cudaSuccess;
std::map<uintptr_t, size_t> g_allocs; /* base -> bytes */
size_t g_allocated = 0;
size_t g_total = 0;
std::set<CUstream_st *> g_streams;
std::set<CUevent_st *> g_events;

/* ---- the guard (emu_internal.h) ---- */
int g_guard = -1;        /* LT_CUDA_EMU_GUARD, read once */
unsigned g_open = 0;     /* device_open depth */
struct sigaction g_old_segv;

bool guard_on() {
    if (g_guard < 0) {
        const char *e = getenv("LT_CUDA_EMU_GUARD");
        g_guard = e && *e && strcmp(e, "0") != 0;
    }
    return g_guard == 1;
}

size_t mapped_bytes(size_t bytes) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (bytes + page - 1) / page * page;
}

/* (g_mutex held) */
void protect_all(int prot) {
    for (const auto &a : g_allocs)
        if (mprotect((void *)a.first, mapped_bytes(a.second), prot) != 0) {
            perror("lt_cuda_emu: mprotect");
            abort();
        }
}

/* A fault inside a guarded block: host code touched device memory. Says
 * so, then lets the fault happen again under the previous handler (the
 * default's core dump, or the sanitizer's report with its stack). */
void on_segv(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    const uintptr_t a = (uintptr_t)si->si_addr;
    auto it = g_allocs.upper_bound(a);
    if (it != g_allocs.begin() && (--it, a < it->first + mapped_bytes(it->second)) && g_open == 0) {
        char msg[256];
        int n = snprintf(msg, sizeof msg,
                         "lt_cuda_emu: host code touched device memory at %p (in the %zu-byte "
                         "cudaMalloc block at %p) outside a launch, copy or cuBLAS call: on a "
                         "GPU an illegal access\n",
                         si->si_addr, it->second, (void *)it->first);
        if (n > 0 && write(2, msg, (size_t)n) < 0) {
        }
    }
    sigaction(sig, &g_old_segv, nullptr);
}

void install_segv_handler() {
    static bool done = false;
    if (done)
        return;
    done = true;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_old_segv);
}

void vrecord(cudaError_t e, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void vrecord(cudaError_t e, const char *fmt, va_list ap) {
    t_last = e;
    vsnprintf(t_message, sizeof t_message, fmt, ap);
}

size_t total_bytes() {
    if (g_total)
        return g_total;
    unsigned long long mib = 16384;
    if (const char *env = getenv("LT_CUDA_EMU_MEM_MIB")) {
        char *end;
        mib = strtoull(env, &end, 10);
        if (*env == '\0' || *end != '\0' || mib == 0) {
            fprintf(stderr, "lt_cuda_emu: LT_CUDA_EMU_MEM_MIB=%s: expected a number of MiB\n", env);
            abort();
        }
    }
    g_total = (size_t)mib << 20;
    return g_total;
}

/* The live block holding p, if any (g_mutex held). */
bool find_block(const void *p, uintptr_t *base, size_t *bytes) {
    uintptr_t a = (uintptr_t)p;
    auto it = g_allocs.upper_bound(a);
    if (it == g_allocs.begin())
        return false;
    --it;
    if (a >= it->first + it->second && !(it->second == 0 && a == it->first))
        return false;
    *base = it->first;
    *bytes = it->second;
    return true;
}

bool range_locked(const void *p, size_t bytes, std::string *why) {
    uintptr_t base;
    size_t size;
    char buf[256];
    if (!find_block(p, &base, &size)) {
        snprintf(buf, sizeof buf, "%p is not in any cudaMalloc block (a host pointer, or freed)",
                 p);
        *why = buf;
        return false;
    }
    uintptr_t a = (uintptr_t)p;
    if (bytes > size - (a - base)) {
        snprintf(buf, sizeof buf,
                 "%zu bytes at %p run %zu bytes past the end of their cudaMalloc block (%p, %zu "
                 "bytes)",
                 bytes, p, bytes - (size - (a - base)), (void *)base, size);
        *why = buf;
        return false;
    }
    return true;
}

bool is_device(const void *p) {
    uintptr_t base;
    size_t size;
    return find_block(p, &base, &size);
}

cudaError_t take_pending() {
    std::lock_guard<std::mutex> g(g_mutex);
    cudaError_t e = g_pending;
    g_pending = cudaSuccess;
    return e;
}

double now_ms() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

const char *kind_name(enum cudaMemcpyKind k) {
    switch (k) {
    case cudaMemcpyHostToHost:
        return "cudaMemcpyHostToHost";
    case cudaMemcpyHostToDevice:
        return "cudaMemcpyHostToDevice";
    case cudaMemcpyDeviceToHost:
        return "cudaMemcpyDeviceToHost";
    case cudaMemcpyDeviceToDevice:
        return "cudaMemcpyDeviceToDevice";
    case cudaMemcpyDefault:
        return "cudaMemcpyDefault";
    }
    return "?";
}

cudaError_t copy(const char *fn, void *dst, const void *src, size_t count,
                 enum cudaMemcpyKind kind) {
    if (count == 0)
        return cudaSuccess;
    if (!dst || !src)
        return fail(cudaErrorInvalidValue, "%s: a NULL pointer", fn);
    std::string why;
    {
        std::lock_guard<std::mutex> g(g_mutex);
        bool dst_dev, src_dev;
        switch (kind) {
        case cudaMemcpyHostToHost:
            dst_dev = src_dev = false;
            break;
        case cudaMemcpyHostToDevice:
            dst_dev = true;
            src_dev = false;
            break;
        case cudaMemcpyDeviceToHost:
            dst_dev = false;
            src_dev = true;
            break;
        case cudaMemcpyDeviceToDevice:
            dst_dev = src_dev = true;
            break;
        case cudaMemcpyDefault:
            dst_dev = is_device(dst);
            src_dev = is_device(src);
            break;
        default:
            return fail(cudaErrorInvalidMemcpyDirection, "%s: kind %d is not a cudaMemcpyKind", fn,
                        (int)kind);
        }
        if (dst_dev && !range_locked(dst, count, &why))
            return fail(cudaErrorInvalidValue, "%s(%s): destination: %s", fn, kind_name(kind),
                        why.c_str());
        if (src_dev && !range_locked(src, count, &why))
            return fail(cudaErrorInvalidValue, "%s(%s): source: %s", fn, kind_name(kind),
                        why.c_str());
        if (kind != cudaMemcpyDefault && !dst_dev && is_device(dst))
            return fail(cudaErrorInvalidValue,
                        "%s(%s): the destination %p is device memory, the kind says host", fn,
                        kind_name(kind), dst);
        if (kind != cudaMemcpyDefault && !src_dev && is_device(src))
            return fail(cudaErrorInvalidValue,
                        "%s(%s): the source %p is device memory, the kind "
                        "says host",
                        fn, kind_name(kind), src);
    }
    device_open();
    memmove(dst, src, count);
    device_close();
    return cudaSuccess;
}

cudaError_t set(const char *fn, void *p, int value, size_t count) {
    if (count == 0)
        return cudaSuccess;
    std::string why;
    {
        std::lock_guard<std::mutex> g(g_mutex);
        if (!range_locked(p, count, &why))
            return fail(cudaErrorInvalidValue, "%s: %s", fn, why.c_str());
    }
    device_open();
    memset(p, value, count);
    device_close();
    return cudaSuccess;
}

} // namespace

void device_open() {
    if (!guard_on())
        return;
    std::lock_guard<std::mutex> g(g_mutex);
    if (g_open++ == 0)
        protect_all(PROT_READ | PROT_WRITE);
}

void device_close() {
    if (!guard_on())
        return;
    std::lock_guard<std::mutex> g(g_mutex);
    if (--g_open == 0)
        protect_all(PROT_NONE);
}

cudaError_t fail(cudaError_t e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vrecord(e, fmt, ap);
    va_end(ap);
    return e;
}

cudaError_t fail_execution(cudaError_t e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vrecord(e, fmt, ap);
    va_end(ap);
    std::lock_guard<std::mutex> g(g_mutex);
    g_pending = e;
    return e;
}

bool device_range(const void *p, size_t bytes, std::string *why) {
    std::lock_guard<std::mutex> g(g_mutex);
    return range_locked(p, bytes, why);
}

bool stream_valid(cudaStream_t s) {
    if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread)
        return true;
    std::lock_guard<std::mutex> g(g_mutex);
    return g_streams.count(s) != 0;
}

} // namespace lt_cuda_emu

using namespace lt_cuda_emu;

namespace {
bool event_valid(cudaEvent_t e) {
    std::lock_guard<std::mutex> g(g_mutex);
    return e && g_events.count(e) != 0;
}
} // namespace

extern "C" {

cudaError_t cudaMalloc(void **devPtr, size_t size) {
    if (!devPtr)
        return fail(cudaErrorInvalidValue, "cudaMalloc: devPtr is NULL");
    *devPtr = nullptr;
    if (size == 0)
        return cudaSuccess;
    std::lock_guard<std::mutex> g(g_mutex);
    size_t total = total_bytes();
    if (size > total - g_allocated)
        return fail(cudaErrorMemoryAllocation,
                    "cudaMalloc(%zu): the emulated device has %zu of %zu bytes free "
                    "(LT_CUDA_EMU_MEM_MIB sets its size)",
                    size, total - g_allocated, total);
    void *p = nullptr;
    if (guard_on()) {
        install_segv_handler();
        p = mmap(nullptr, mapped_bytes(size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
        if (p == MAP_FAILED)
            return fail(cudaErrorMemoryAllocation, "cudaMalloc(%zu): the host is out of memory",
                        size);
        memset(p, 0xff, size);
        if (g_open == 0 && mprotect(p, mapped_bytes(size), PROT_NONE) != 0) {
            perror("lt_cuda_emu: mprotect");
            abort();
        }
    } else if (posix_memalign(&p, 256, size) != 0) {
        return fail(cudaErrorMemoryAllocation, "cudaMalloc(%zu): the host is out of memory", size);
    } else {
        memset(p, 0xff, size);
    }
    g_allocs[(uintptr_t)p] = size;
    g_allocated += size;
    *devPtr = p;
    return cudaSuccess;
}

cudaError_t cudaFree(void *devPtr) {
    if (!devPtr)
        return cudaSuccess;
    std::lock_guard<std::mutex> g(g_mutex);
    auto it = g_allocs.find((uintptr_t)devPtr);
    if (it == g_allocs.end())
        return fail(cudaErrorInvalidValue,
                    "cudaFree(%p): not the start of a live cudaMalloc block (freed twice, or "
                    "never allocated)",
                    devPtr);
    g_allocated -= it->second;
    const size_t bytes = it->second;
    g_allocs.erase(it);
    if (guard_on())
        munmap(devPtr, mapped_bytes(bytes));
    else
        free(devPtr);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind) {
    if (cudaError_t e = take_pending())
        return e;
    return copy("cudaMemcpy", dst, src, count, kind);
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind,
                            cudaStream_t stream) {
    if (!stream_valid(stream))
        return fail(cudaErrorInvalidResourceHandle, "cudaMemcpyAsync: stream %p is not live",
                    (void *)stream);
    return copy("cudaMemcpyAsync", dst, src, count, kind);
}

cudaError_t cudaMemset(void *devPtr, int value, size_t count) {
    return set("cudaMemset", devPtr, value, count);
}

cudaError_t cudaMemsetAsync(void *devPtr, int value, size_t count, cudaStream_t stream) {
    if (!stream_valid(stream))
        return fail(cudaErrorInvalidResourceHandle, "cudaMemsetAsync: stream %p is not live",
                    (void *)stream);
    return set("cudaMemsetAsync", devPtr, value, count);
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total) {
    if (!free_bytes || !total)
        return fail(cudaErrorInvalidValue, "cudaMemGetInfo: a NULL pointer");
    std::lock_guard<std::mutex> g(g_mutex);
    *total = total_bytes();
    *free_bytes = *total - g_allocated;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) { return take_pending(); }

cudaError_t cudaGetDeviceCount(int *count) {
    if (!count)
        return fail(cudaErrorInvalidValue, "cudaGetDeviceCount: count is NULL");
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
    if (device != 0)
        return fail(cudaErrorInvalidDevice, "cudaSetDevice(%d): the emulation has device 0 only",
                    device);
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device) {
    if (!device)
        return fail(cudaErrorInvalidValue, "cudaGetDevice: device is NULL");
    *device = 0;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device) {
    if (!prop)
        return fail(cudaErrorInvalidValue, "cudaGetDeviceProperties: prop is NULL");
    if (device != 0)
        return fail(cudaErrorInvalidDevice,
                    "cudaGetDeviceProperties(%d): the emulation has device 0 only", device);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "emulated");
    {
        std::lock_guard<std::mutex> g(g_mutex);
        prop->totalGlobalMem = total_bytes();
    }
    prop->sharedMemPerBlock = 48 * 1024;
    prop->regsPerBlock = 65536;
    prop->warpSize = 32;
    prop->memPitch = 2147483647;
    prop->maxThreadsPerBlock = 1024;
    prop->maxThreadsDim[0] = 1024;
    prop->maxThreadsDim[1] = 1024;
    prop->maxThreadsDim[2] = 64;
    prop->maxGridSize[0] = 2147483647;
    prop->maxGridSize[1] = 65535;
    prop->maxGridSize[2] = 65535;
    prop->totalConstMem = 65536;
    prop->major = 8;
    prop->minor = 0;
    prop->multiProcessorCount = 108;
    prop->l2CacheSize = 40 * 1024 * 1024;
    prop->maxThreadsPerMultiProcessor = 2048;
    prop->sharedMemPerMultiprocessor = 167936;
    prop->regsPerMultiprocessor = 65536;
    prop->sharedMemPerBlockOptin = 166912;
    prop->memoryBusWidth = 5120;
    prop->concurrentKernels = 1;
    prop->asyncEngineCount = 2;
    prop->unifiedAddressing = 1;
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *pStream, unsigned int flags) {
    if (!pStream)
        return fail(cudaErrorInvalidValue, "cudaStreamCreate: pStream is NULL");
    if (flags & ~(unsigned)cudaStreamNonBlocking)
        return fail(cudaErrorInvalidValue, "cudaStreamCreateWithFlags: unknown flags 0x%x", flags);
    CUstream_st *s = new CUstream_st{flags};
    std::lock_guard<std::mutex> g(g_mutex);
    g_streams.insert(s);
    *pStream = s;
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *pStream) {
    return cudaStreamCreateWithFlags(pStream, cudaStreamDefault);
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    std::lock_guard<std::mutex> g(g_mutex);
    if (!g_streams.erase(stream))
        return fail(cudaErrorInvalidResourceHandle,
                    "cudaStreamDestroy(%p): not a stream cudaStreamCreate made, or destroyed",
                    (void *)stream);
    delete stream;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    if (!stream_valid(stream))
        return fail(cudaErrorInvalidResourceHandle, "cudaStreamSynchronize: stream %p is not live",
                    (void *)stream);
    return take_pending();
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags) {
    if (!stream_valid(stream))
        return fail(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent: stream %p is not live",
                    (void *)stream);
    if (!event_valid(event))
        return fail(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent: event %p is not live",
                    (void *)event);
    if (flags != 0)
        return fail(cudaErrorInvalidValue, "cudaStreamWaitEvent: flags 0x%x, expected 0", flags);
    return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned int flags) {
    if (!event)
        return fail(cudaErrorInvalidValue, "cudaEventCreate: event is NULL");
    unsigned known = cudaEventBlockingSync | cudaEventDisableTiming | cudaEventInterprocess;
    if (flags & ~known)
        return fail(cudaErrorInvalidValue, "cudaEventCreateWithFlags: unknown flags 0x%x", flags);
    if ((flags & cudaEventInterprocess) && !(flags & cudaEventDisableTiming))
        return fail(cudaErrorInvalidValue,
                    "cudaEventCreateWithFlags: cudaEventInterprocess needs cudaEventDisableTiming");
    CUevent_st *e = new CUevent_st{flags, false, 0.0};
    std::lock_guard<std::mutex> g(g_mutex);
    g_events.insert(e);
    *event = e;
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *event) {
    return cudaEventCreateWithFlags(event, cudaEventDefault);
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
    std::lock_guard<std::mutex> g(g_mutex);
    if (!g_events.erase(event))
        return fail(cudaErrorInvalidResourceHandle,
                    "cudaEventDestroy(%p): not an event cudaEventCreate made, or destroyed",
                    (void *)event);
    delete event;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
    if (!event_valid(event))
        return fail(cudaErrorInvalidResourceHandle, "cudaEventRecord: event %p is not live",
                    (void *)event);
    if (!stream_valid(stream))
        return fail(cudaErrorInvalidResourceHandle, "cudaEventRecord: stream %p is not live",
                    (void *)stream);
    event->recorded = true;
    event->ms = now_ms();
    return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    if (!event_valid(event))
        return fail(cudaErrorInvalidResourceHandle, "cudaEventSynchronize: event %p is not live",
                    (void *)event);
    return take_pending();
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
    if (!event_valid(event))
        return fail(cudaErrorInvalidResourceHandle, "cudaEventQuery: event %p is not live",
                    (void *)event);
    return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
    if (!ms)
        return fail(cudaErrorInvalidValue, "cudaEventElapsedTime: ms is NULL");
    if (!event_valid(start) || !event_valid(end))
        return fail(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: an event is not live");
    if ((start->flags | end->flags) & cudaEventDisableTiming)
        return fail(cudaErrorInvalidResourceHandle,
                    "cudaEventElapsedTime: an event was created with cudaEventDisableTiming");
    if (!start->recorded || !end->recorded)
        return fail(cudaErrorInvalidResourceHandle,
                    "cudaEventElapsedTime: an event was never recorded");
    *ms = (float)(end->ms - start->ms);
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
    cudaError_t e = t_last;
    t_last = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) { return t_last; }

#define LT_EMU_ERRORS(X)                                                                           \
    X(cudaSuccess, "no error")                                                                     \
    X(cudaErrorInvalidValue, "invalid argument")                                                   \
    X(cudaErrorMemoryAllocation, "out of memory")                                                  \
    X(cudaErrorInitializationError, "initialization error")                                        \
    X(cudaErrorInvalidConfiguration, "invalid configuration argument")                             \
    X(cudaErrorInvalidPitchValue, "invalid pitch argument")                                        \
    X(cudaErrorInvalidSymbol, "invalid device symbol")                                             \
    X(cudaErrorInvalidDevicePointer, "invalid device pointer")                                     \
    X(cudaErrorInvalidMemcpyDirection, "invalid copy direction for memcpy")                        \
    X(cudaErrorInsufficientDriver, "CUDA driver version is insufficient for CUDA runtime version") \
    X(cudaErrorInvalidDeviceFunction, "invalid device function")                                   \
    X(cudaErrorNoDevice, "no CUDA-capable device is detected")                                     \
    X(cudaErrorInvalidDevice, "invalid device ordinal")                                            \
    X(cudaErrorInvalidResourceHandle, "invalid resource handle")                                   \
    X(cudaErrorNotReady, "device not ready")                                                       \
    X(cudaErrorIllegalAddress, "an illegal memory access was encountered")                         \
    X(cudaErrorLaunchOutOfResources, "too many resources requested for launch")                    \
    X(cudaErrorAssert, "device-side assert triggered")                                             \
    X(cudaErrorLaunchFailure, "unspecified launch failure")                                        \
    X(cudaErrorNotPermitted, "operation not permitted")                                            \
    X(cudaErrorNotSupported, "operation not supported")                                            \
    X(cudaErrorUnknown, "unknown error")

const char *cudaGetErrorString(cudaError_t error) {
    switch (error) {
#define LT_EMU_STRING(name, text)                                                                  \
    case name:                                                                                     \
        return text;
        LT_EMU_ERRORS(LT_EMU_STRING)
#undef LT_EMU_STRING
    }
    return "unrecognized error code";
}

const char *cudaGetErrorName(cudaError_t error) {
    switch (error) {
#define LT_EMU_NAME(name, text)                                                                    \
    case name:                                                                                     \
        return #name;
        LT_EMU_ERRORS(LT_EMU_NAME)
#undef LT_EMU_NAME
    }
    return "cudaErrorUnknown";
}

const char *lt_cuda_emu_last_message(void) { return t_message; }

} // extern "C"
