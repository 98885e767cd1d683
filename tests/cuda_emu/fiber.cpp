/* Fibers: the stacks the CUDA threads of a block run on, and the two ways
 * of switching between them and the scheduler.
 *
 * The assembly switch saves what the x86-64 System V ABI says a callee
 * keeps (rbx, rbp, r12-r15) on the old stack, stores the stack pointer and
 * loads the other one. The MXCSR and x87 control words, callee-saved too,
 * are left alone: every fiber runs with the launching thread's, which
 * kernel code has no way to change (saving them cost a third of a
 * switch). About 36 ns a
 * barrier arrival where swapcontext, which also saves the signal mask with
 * a system call, costs about 725 ns (benchmarks/bench_cuda_emu). swapcontext
 * stays as the second path (LT_CUDA_EMU_SWITCH=ucontext, the default in
 * sanitizer builds). Under AddressSanitizer both paths tell it about every
 * switch (__sanitizer_start/finish_switch_fiber), so it checks the right
 * stack's bounds, and a stack abandoned inside a kernel is unpoisoned
 * before it is used again.
 *
 * A fiber is a stack with a context that runs CUDA threads one after
 * another: when a thread returns, the fiber goes back to the pool and the
 * next thread to start takes it, so a kernel without barriers runs every
 * thread on one hot stack, and a block needs as many stacks as it has
 * threads alive at once. Stacks are mmap'd with a guard page below (an
 * overflow faults instead of corrupting the next stack) and kept for the
 * process; LT_CUDA_EMU_STACK_KIB sets their size when the first is made
 * (default 64 KiB, 256 KiB under the sanitizers, whose frames are larger). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "emu_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define LT_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LT_EMU_ASAN 1
#endif
#endif
#ifndef LT_EMU_ASAN
#define LT_EMU_ASAN 0
#endif
#if LT_EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if !defined(__x86_64__)
#error "the CUDA emulation's fiber switch is written for x86-64"
#endif

extern "C" {
/* Saves the callee-saved state on the current stack, stores the stack
 * pointer in *save_sp, switches to load_sp and restores what was saved
 * there. */
void lt_cuda_emu_switch_asm(void **save_sp, void *load_sp);
/* A fresh fiber's first return lands here: r12 holds the fiber, r13 the
 * function to call with it (which never returns). */
void lt_cuda_emu_fiber_trampoline(void);
}

__asm__(".text\n"
        ".globl lt_cuda_emu_switch_asm\n"
        ".hidden lt_cuda_emu_switch_asm\n"
        ".type lt_cuda_emu_switch_asm,@function\n"
        "lt_cuda_emu_switch_asm:\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    movq %rsp, (%rdi)\n"
        "    movq %rsi, %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size lt_cuda_emu_switch_asm, .-lt_cuda_emu_switch_asm\n"
        ".globl lt_cuda_emu_fiber_trampoline\n"
        ".hidden lt_cuda_emu_fiber_trampoline\n"
        ".type lt_cuda_emu_fiber_trampoline,@function\n"
        "lt_cuda_emu_fiber_trampoline:\n"
        "    movq %r12, %rdi\n"
        "    callq *%r13\n"
        "    ud2\n"
        ".size lt_cuda_emu_fiber_trampoline, .-lt_cuda_emu_fiber_trampoline\n");

namespace lt_cuda_emu {

struct Fiber {
    char *map; /* guard page + stack */
    size_t map_size;
    char *lo; /* the usable stack: [lo, lo + size) */
    size_t size;
    void *sp;        /* assembly path: the saved stack pointer */
    ucontext_t uc;   /* swapcontext path */
    SwitchKind kind; /* the path its context was built for */
    bool fresh;      /* its context must be (re)built before it is resumed */
    void *asan_fake; /* ASan's fake stack while it is switched out */
    Thread *thread;  /* the CUDA thread it runs */
    Fiber *next;     /* in the pool */
};

namespace {
void (*g_body)(Thread *) = nullptr;
/* The pool: a plain list, which no destructor empties before the leak
 * check at exit looks for its fibers. */
Fiber *g_free = nullptr;
size_t g_stack_bytes = 0;
void *g_sched_sp = nullptr;
ucontext_t g_sched_uc;
Fiber *g_starting = nullptr; /* the fiber a fresh ucontext starts with */
#if LT_EMU_ASAN
void *g_sched_fake = nullptr;
const void *g_sched_bottom = nullptr;
size_t g_sched_size = 0;
#endif

[[noreturn]] void die(const char *what) {
    fprintf(stderr, "lt_cuda_emu: %s\n", what);
    abort();
}

size_t stack_bytes() {
    if (g_stack_bytes)
        return g_stack_bytes;
    size_t kib = LT_EMU_ASAN ? 256 : 64;
    if (const char *env = getenv("LT_CUDA_EMU_STACK_KIB")) {
        char *end;
        unsigned long v = strtoul(env, &end, 10);
        if (*env == '\0' || *end != '\0' || v < 16 || v > 65536)
            die("LT_CUDA_EMU_STACK_KIB must be a number of KiB from 16 to 65536");
        kib = v;
    }
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    g_stack_bytes = (kib * 1024 + page - 1) / page * page;
    return g_stack_bytes;
}

/* Runs on the fiber's own stack, for ever: one CUDA thread, then back to
 * the scheduler until it hands the fiber another. */
[[noreturn]] void fiber_main(Fiber *f) {
#if LT_EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &g_sched_bottom, &g_sched_size);
#endif
    for (;;) {
        g_body(f->thread);
        fiber_yield(f);
    }
}

void fiber_main_uc() { fiber_main(g_starting); }

void build_context(Fiber *f, SwitchKind kind) {
#if LT_EMU_ASAN
    __asan_unpoison_memory_region(f->lo, f->size);
#endif
    f->kind = kind;
    f->asan_fake = nullptr;
    if (kind == SwitchKind::Asm) {
        /* The frame lt_cuda_emu_switch_asm pops, topped by the trampoline as
         * return address, placed so that the trampoline starts with rsp on
         * a 16-byte boundary and fiber_main, after its call, 8 below one, as
         * the ABI wants at a function's entry. */
        uintptr_t top = ((uintptr_t)(f->lo + f->size)) & ~(uintptr_t)15;
        uint64_t *p = (uint64_t *)top;
        *--p = (uint64_t)(uintptr_t)&lt_cuda_emu_fiber_trampoline;
        *--p = 0;                                /* rbp: ends frame-pointer walks */
        *--p = 0;                                /* rbx */
        *--p = (uint64_t)(uintptr_t)f;           /* r12: the argument */
        *--p = (uint64_t)(uintptr_t)&fiber_main; /* r13: the function */
        *--p = 0;                                /* r14 */
        *--p = 0;                                /* r15 */
        f->sp = p;
    } else {
        if (getcontext(&f->uc) != 0)
            die("getcontext failed");
        f->uc.uc_stack.ss_sp = f->lo;
        f->uc.uc_stack.ss_size = f->size;
        f->uc.uc_link = nullptr;
        makecontext(&f->uc, fiber_main_uc, 0);
    }
    f->fresh = false;
}

Fiber *new_fiber() {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    Fiber *f = new Fiber();
    f->size = stack_bytes();
    f->map_size = f->size + page;
    void *m = mmap(nullptr, f->map_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED)
        die("mmap of a fiber stack failed");
    if (mprotect(m, page, PROT_NONE) != 0)
        die("mprotect of a fiber stack's guard page failed");
    f->map = (char *)m;
    f->lo = f->map + page;
    f->fresh = true;
    return f;
}
} // namespace

void fiber_set_body(void (*body)(Thread *)) { g_body = body; }

size_t fiber_stack_bytes() { return stack_bytes(); }

Fiber *fiber_get(SwitchKind kind, Thread *t) {
    Fiber *f = g_free;
    if (f)
        g_free = f->next;
    else
        f = new_fiber();
    if (f->fresh || f->kind != kind)
        build_context(f, kind);
    f->thread = t;
    return f;
}

void fiber_put(Fiber *f, bool abandoned) {
    if (abandoned)
        f->fresh = true;
    f->thread = nullptr;
    f->next = g_free;
    g_free = f;
}

void fiber_resume(Fiber *f) {
#if LT_EMU_ASAN
    __sanitizer_start_switch_fiber(&g_sched_fake, f->lo, f->size);
#endif
    if (f->kind == SwitchKind::Asm) {
        lt_cuda_emu_switch_asm(&g_sched_sp, f->sp);
    } else {
        g_starting = f;
        if (swapcontext(&g_sched_uc, &f->uc) != 0)
            die("swapcontext to a fiber failed");
    }
#if LT_EMU_ASAN
    __sanitizer_finish_switch_fiber(g_sched_fake, nullptr, nullptr);
#endif
}

void fiber_yield(Fiber *f) {
#if LT_EMU_ASAN
    __sanitizer_start_switch_fiber(&f->asan_fake, g_sched_bottom, g_sched_size);
#endif
    if (f->kind == SwitchKind::Asm) {
        lt_cuda_emu_switch_asm(&f->sp, g_sched_sp);
    } else {
        if (swapcontext(&f->uc, &g_sched_uc) != 0)
            die("swapcontext to the scheduler failed");
    }
#if LT_EMU_ASAN
    __sanitizer_finish_switch_fiber(f->asan_fake, &g_sched_bottom, &g_sched_size);
#endif
}

} // namespace lt_cuda_emu
