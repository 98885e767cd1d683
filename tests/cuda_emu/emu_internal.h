/* What the emulator's own files share (not seen by kernel code). */
#ifndef LT_CUDA_EMU_INTERNAL_H
#define LT_CUDA_EMU_INTERNAL_H

#include <stddef.h>

#include <string>

#include <cuda_runtime.h>

namespace lt_cuda_emu {

/* ---- errors (runtime.cpp) ---- */
/* Records e as the calling host thread's last error (cudaGetLastError)
 * with a printf-style message (lt_cuda_emu_last_message); returns e. */
cudaError_t fail(cudaError_t e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A failure during execution (a block that cannot finish, an operand
 * outside device memory): recorded as fail() does, and also returned once
 * by the next synchronising call (cudaDeviceSynchronize,
 * cudaStreamSynchronize, cudaEventSynchronize, cudaMemcpy), which is where
 * a GPU reports an asynchronous fault. */
cudaError_t fail_execution(cudaError_t e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* True when [p, p + bytes) lies inside one live cudaMalloc block;
 * otherwise false, with why saying where it is. */
bool device_range(const void *p, size_t bytes, std::string *why);
/* 0, the legacy and per-thread handles, or a live cudaStreamCreate one. */
bool stream_valid(cudaStream_t s);

/* The guard (LT_CUDA_EMU_GUARD=1): device memory is mapped with no access
 * except while the device itself works on it -- a launch, a copy or
 * memset, a cuBLAS call, each between device_open and device_close (they
 * nest) -- so host code that reads or writes a device pointer directly,
 * which works here and faults on a GPU, faults here too, with a message
 * naming the block. No effect without the variable. */
void device_open();
void device_close();

/* ---- fibers (fiber.cpp) ---- */
enum class SwitchKind { Asm, Ucontext };
struct Thread;
struct Fiber;
/* The function every fiber runs, once per CUDA thread handed to it. */
void fiber_set_body(void (*body)(Thread *));
/* A fiber ready to run t from its start (a stack from the pool,
 * initialised for kind if it was not or was abandoned). */
Fiber *fiber_get(SwitchKind kind, Thread *t);
/* Hands f back; abandoned: it stopped inside a kernel and its context must
 * be rebuilt before it is used again. */
void fiber_put(Fiber *f, bool abandoned);
/* Scheduler side: runs f until it yields. */
void fiber_resume(Fiber *f);
/* Fiber side: back to the scheduler; returns when resumed. */
void fiber_yield(Fiber *f);
/* The stack size chosen (bytes), for messages and the README's claims. */
size_t fiber_stack_bytes();

} // namespace lt_cuda_emu

#endif
