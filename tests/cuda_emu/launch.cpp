/* Launches: the configuration checks CUDA makes, then every block of the
 * grid in turn, each thread of a block a fiber, resumed in forward or
 * reverse thread order (LT_CUDA_EMU_ORDER, read at each launch; reverse
 * also runs the blocks last to first), each running until it returns,
 * waits at __syncthreads or waits at a warp function.
 *
 * The barrier rule is CUDA's own (Programming Guide: __syncthreads in
 * conditional code only where the condition is the same for the whole
 * block): every thread of a block calls __syncthreads the same number of
 * times. A barrier releases when every thread of the block has arrived.
 * The launch fails, at the first moment the rule is certainly broken and so
 * in whichever order the threads run, when a thread returns while another
 * waits at a barrier, or a thread reaches a barrier after another thread of
 * its block has returned. So the early return `if (i >= n) return;` ahead
 * of a __syncthreads fails in both orders: current GPUs happen to count an
 * exited thread as arrived, but the guide does not promise it. Barriers at
 * different call sites reached as the same, n-th, barrier of every thread
 * are one barrier, as for the hardware's counting barrier.
 *
 * Warp functions are rendezvous of the lanes their mask names (lanes are
 * threads in order of threadIdx.x + threadIdx.y * blockDim.x + ..., 32 a
 * warp): each lane in the mask must call the same function with the same
 * mask (and width); the last to arrive computes every lane's result. The
 * launch fails when the calling lane is not in its mask, the mask names a
 * lane that does not exist (a partial last warp), has returned, waits at
 * __syncthreads or waits at another warp function or mask, a shuffle reads
 * a lane outside the mask, or a lane returns while others wait for it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "emu_internal.h"

lt_cuda_emu_builtins_t lt_cuda_emu_builtins;

namespace lt_cuda_emu {

enum ThreadState : unsigned char { T_NEW, T_RUNNABLE, T_WAIT_BAR, T_WAIT_WARP, T_DONE, T_FAILED };

struct Thread {
    uint3 idx;
    unsigned lin; /* x + y * bx + z * bx * by: its lane is lin % 32 */
    ThreadState state;
    unsigned barriers; /* __syncthreads calls so far */
    /* while T_WAIT_WARP: the call, and the result the group computes */
    warp_op wop;
    const char *wfn;
    unsigned wmask;
    int wparam, wwidth, wsize;
    unsigned long long wval, wres;
    Fiber *fiber;
};

namespace {

/* Limits of the emulated device (an A100, sm_80). */
const size_t kSharedDefault = 48 * 1024;
const size_t kSharedOptin = 166912;

struct Launch {
    const char *kernel = nullptr;
    dim3 grid, block;
    const char *order = "forward";
    bool reverse = false;
    SwitchKind kind = SwitchKind::Asm;
    void (*thunk)(const void *) = nullptr;
    const void *callable = nullptr;
    std::vector<Thread> threads;
    std::vector<unsigned> warp_waiting; /* lanes of each warp in T_WAIT_WARP */
    /* of those, the lanes waiting with a mask that is not the whole warp,
     * and the last lane to start waiting (warp_exchange's fast path) */
    std::vector<unsigned> warp_partial, warp_last;
    unsigned nthreads = 0, done = 0, at_barrier = 0;
    unsigned char *shared = nullptr;
    size_t shmem = 0;
    Thread *cur = nullptr; /* the thread running now, nullptr in the scheduler */
    bool failed = false;
    std::string message;
};

Launch L;
thread_local bool t_in_launch = false; /* this host thread runs a grid now */
std::mutex g_launch_mutex;
std::mutex g_attr_mutex;
std::map<const void *, int> g_max_dynamic_shared; /* by the kernel's address */

std::string fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char *f, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    return buf;
}

/* A shape as text, without the heap: failures inside a fiber never return
 * to destroy temporaries, so what they format must not own memory. */
struct Text {
    char s[48];
};
Text dims(unsigned x, unsigned y, unsigned z) {
    Text t;
    snprintf(t.s, sizeof t.s, "(%u,%u,%u)", x, y, z);
    return t;
}
Text dims(dim3 d) { return dims(d.x, d.y, d.z); }
Text dims(uint3 d) { return dims(d.x, d.y, d.z); }

std::string where(const Thread *t) {
    return fmt("kernel %s (grid %s, block %s, %s order): block %s, thread %s", L.kernel,
               dims(L.grid).s, dims(L.block).s, L.order, dims(lt_cuda_emu_builtins.block_idx).s,
               dims(t->idx).s);
}

/* Records the launch's failure (the first one counts). */
void record_failure(const Thread *t, const char *format, ...) __attribute__((format(printf, 2, 3)));
void record_failure(const Thread *t, const char *format, ...) {
    if (L.failed)
        return;
    char what[1024];
    va_list ap;
    va_start(ap, format);
    vsnprintf(what, sizeof what, format, ap);
    va_end(ap);
    L.failed = true;
    L.message = where(t) + ": " + what;
}

/* Fails the launch from inside thread t, which never runs again (so
 * nothing on its stack may own memory). */
[[noreturn]] void fail_here(Thread *t, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
[[noreturn]] void fail_here(Thread *t, const char *format, ...) {
    char what[1024];
    va_list ap;
    va_start(ap, format);
    vsnprintf(what, sizeof what, format, ap);
    va_end(ap);
    record_failure(t, "%s", what);
    t->state = T_FAILED;
    fiber_yield(t->fiber);
    fprintf(stderr, "lt_cuda_emu: a failed thread was resumed\n");
    abort();
}

Thread *running(const char *fn) {
    if (!L.cur) {
        fprintf(stderr, "lt_cuda_emu: %s called outside a kernel\n", fn);
        abort();
    }
    return L.cur;
}

const char *op_name(const Thread *o) { return o->wfn; }

/* A lane of t's warp waiting at a warp function whose mask names t: it
 * can only be released by t, which is elsewhere. */
const Thread *waiting_for(const Thread *t) {
    if (L.warp_waiting[t->lin >> 5] == 0)
        return nullptr;
    unsigned base = t->lin & ~31u, lane = t->lin & 31u;
    for (unsigned l = 0; l < 32 && base + l < L.nthreads; l++) {
        const Thread *o = &L.threads[base + l];
        if (o != t && o->state == T_WAIT_WARP && (o->wmask >> lane & 1u))
            return o;
    }
    return nullptr;
}

/* The first thread of the block in state s (one is known to be). */
const Thread *first_in(ThreadState s) {
    for (const Thread &o : L.threads)
        if (o.state == s)
            return &o;
    return &L.threads[0];
}

void body(Thread *t) {
    L.thunk(L.callable);
    if (L.at_barrier > 0) {
        const Thread *w = first_in(T_WAIT_BAR);
        record_failure(t,
                       "returned after %u __syncthreads while %u thread(s) of its block "
                       "wait at __syncthreads number %u (thread %s among them): every "
                       "thread of a block must reach the same barriers",
                       t->barriers, L.at_barrier, w->barriers, dims(w->idx).s);
    } else if (const Thread *o = waiting_for(t)) {
        record_failure(t,
                       "lane %u returned while lane %u waits at %s with mask 0x%08x, "
                       "which names it",
                       t->lin & 31u, o->lin & 31u, op_name(o), o->wmask);
    }
    t->state = T_DONE;
    L.done++;
}

void release_group(unsigned base, unsigned mask) {
    for (unsigned l = 0; l < 32; l++)
        if (mask >> l & 1u)
            L.threads[base + l].state = T_RUNNABLE;
    L.warp_waiting[base >> 5] -= (unsigned)__builtin_popcount(mask);
    if (mask != 0xffffffffu)
        L.warp_partial[base >> 5] -= (unsigned)__builtin_popcount(mask);
}

/* Every lane of the group has arrived: each lane's result, from the PTX
 * definition of shfl.sync (CUDA passes c = ((32 - width) << 8) | 0x1f for
 * idx, down and bfly, (32 - width) << 8 for up): the segment is the
 * width-aligned run of lanes holding the lane; up/down/xor take their
 * source from the lane +-^ the operand, or keep their own value when the
 * source falls outside the segment (xor may read an earlier segment). */
void complete_group(Thread *t, unsigned base, unsigned mask) {
    warp_op op = t->wop;
    if (op == WARP_BALLOT || op == WARP_ANY || op == WARP_ALL) {
        unsigned ballot = 0;
        for (unsigned l = 0; l < 32; l++)
            if ((mask >> l & 1u) && L.threads[base + l].wval)
                ballot |= 1u << l;
        unsigned long long r = op == WARP_BALLOT ? ballot
                               : op == WARP_ANY  ? ballot != 0
                                                 : ballot == mask;
        for (unsigned l = 0; l < 32; l++)
            if (mask >> l & 1u)
                L.threads[base + l].wres = r;
        return;
    }
    if (op == WARP_SYNC)
        return;
    unsigned w = (unsigned)t->wwidth;
    unsigned segmask = (32u - w) & 31u;
    for (unsigned l = 0; l < 32; l++) {
        if (!(mask >> l & 1u))
            continue;
        Thread *me = &L.threads[base + l];
        unsigned b = (unsigned)me->wparam & 31u;
        int lo = (int)(l & segmask), hi = (int)((l & segmask) | (31u & ~segmask));
        int j;
        bool inside;
        switch (op) {
        case WARP_SHFL_UP:
            j = (int)l - (int)b;
            inside = j >= lo;
            break;
        case WARP_SHFL_DOWN:
            j = (int)l + (int)b;
            inside = j <= hi;
            break;
        case WARP_SHFL_XOR:
            j = (int)(l ^ b);
            inside = j <= hi;
            break;
        default: /* WARP_SHFL */
            j = lo | (int)(b & ~segmask);
            inside = j <= hi;
            break;
        }
        if (!inside)
            j = (int)l;
        if (!(mask >> j & 1u))
            fail_here(t,
                      "%s: lane %u reads lane %d, which is not in the mask 0x%08x (its value "
                      "is undefined on a GPU)",
                      t->wfn, l, j, mask);
        me->wres = L.threads[base + (unsigned)j].wval;
    }
}

} // namespace

void syncthreads() {
    Thread *t = running("__syncthreads");
    if (L.done > 0) {
        const Thread *d = first_in(T_DONE);
        fail_here(t,
                  "reaches __syncthreads number %u after thread %s of its block returned "
                  "(after %u __syncthreads): every thread of a block must reach the same "
                  "barriers",
                  t->barriers + 1, dims(d->idx).s, d->barriers);
    }
    if (const Thread *o = waiting_for(t))
        fail_here(t,
                  "reaches __syncthreads while lane %u of its warp waits at %s with mask "
                  "0x%08x naming this lane (%u): neither can go on",
                  o->lin & 31u, op_name(o), o->wmask, t->lin & 31u);
    t->barriers++;
    t->state = T_WAIT_BAR;
    if (++L.at_barrier == L.nthreads) {
        for (Thread &o : L.threads)
            o.state = T_RUNNABLE;
        L.at_barrier = 0;
    }
    fiber_yield(t->fiber);
}

namespace {

/* t waits at a warp function with this call; the last lane of its group
 * to arrive (complete) computes every lane's result and releases them. */
unsigned long long wait_at_warp(Thread *t, warp_op op, const char *fn, unsigned mask,
                                unsigned long long bits, int size, int param, int width,
                                bool complete) {
    const unsigned base = t->lin & ~31u, w = base >> 5;
    t->wop = op;
    t->wfn = fn;
    t->wmask = mask;
    t->wparam = param;
    t->wwidth = width;
    t->wsize = size;
    t->wval = bits;
    t->state = T_WAIT_WARP;
    L.warp_waiting[w]++;
    L.warp_last[w] = t->lin;
    if (mask != 0xffffffffu)
        L.warp_partial[w]++;
    if (complete) {
        complete_group(t, base, mask);
        release_group(base, mask);
    }
    fiber_yield(t->fiber);
    return t->wres;
}

} // namespace

unsigned long long warp_exchange(warp_op op, const char *fn, unsigned mask, unsigned long long bits,
                                 int size, int param, int width) {
    Thread *t = running(fn);
    unsigned base = t->lin & ~31u, lane = t->lin & 31u;
    if (op <= WARP_SHFL_XOR) {
        if (width < 1 || width > 32 || (width & (width - 1)) != 0)
            fail_here(t, "%s with width %d: the width must be a power of 2 from 1 to 32", fn,
                      width);
        if (op != WARP_SHFL && (param < 0 || param > 31))
            fail_here(t,
                      "%s with %s %d: CUDA's documentation and the hardware disagree "
                      "outside 0..31",
                      fn, op == WARP_SHFL_XOR ? "laneMask" : "delta", param);
    }
    if (!(mask >> lane & 1u))
        fail_here(t, "%s with mask 0x%08x, which does not name the calling lane %u", fn, mask,
                  lane);
    unsigned present = L.nthreads - base < 32 ? L.nthreads - base : 32;
    const unsigned w = base >> 5;
    /* The common case in O(1): the whole warp's mask, nothing returned or
     * at a barrier, and every waiting lane of the warp (if any) waiting
     * with the whole mask too -- each was checked against the one before
     * it on arrival, so they all made the same call, and comparing with
     * the last of them is comparing with each. Anything else (a mismatch
     * among them) takes the full checks below, which say what is wrong. */
    if (mask == 0xffffffffu && present == 32 && L.done == 0 && L.at_barrier == 0 &&
        L.warp_partial[w] == 0) {
        const unsigned waiting = L.warp_waiting[w];
        const Thread *o = waiting ? &L.threads[L.warp_last[w]] : nullptr;
        if (!o || (o->wop == op && o->wmask == mask && o->wwidth == width && o->wsize == size)) {
            return wait_at_warp(t, op, fn, mask, bits, size, param, width, waiting == 31);
        }
    }
    if (present < 32 && (mask >> present) != 0)
        fail_here(t,
                  "%s with mask 0x%08x, which names lanes from %u on that this warp does "
                  "not have (a block of %u threads)",
                  fn, mask, present, L.nthreads);
    /* Any lane waiting at a warp function that this call belongs with
     * (it names this lane, or this call's mask names it) must be waiting
     * at the same function with the same mask. */
    for (unsigned l = 0; l < 32 && base + l < L.nthreads; l++) {
        const Thread *o = &L.threads[base + l];
        if (l == lane || o->state != T_WAIT_WARP || !((mask >> l & 1u) || (o->wmask >> lane & 1u)))
            continue;
        if (o->wop != op || o->wmask != mask || o->wwidth != width || o->wsize != size)
            fail_here(t,
                      "%s with mask 0x%08x (width %d): lane %u waits at %s with mask "
                      "0x%08x (width %d): the lanes of a mask must call the same "
                      "function with the same mask",
                      fn, mask, width, l, o->wfn, o->wmask, o->wwidth);
    }
    bool all = true;
    for (unsigned l = 0; l < 32; l++) {
        if (!(mask >> l & 1u) || l == lane)
            continue;
        const Thread *o = &L.threads[base + l];
        switch (o->state) {
        case T_DONE:
            fail_here(t, "%s with mask 0x%08x: lane %u (thread %s) returned without calling it", fn,
                      mask, l, dims(o->idx).s);
        case T_WAIT_BAR:
            fail_here(t,
                      "%s with mask 0x%08x: lane %u waits at __syncthreads, which needs this "
                      "lane: neither can go on",
                      fn, mask, l);
        case T_WAIT_WARP:
            break;
        default:
            all = false;
        }
    }
    return wait_at_warp(t, op, fn, mask, bits, size, param, width, all);
}

void *dynamic_shared() {
    running("LT_DYNAMIC_SHARED");
    return L.shared;
}

namespace {

/* How a kernel is spelled, without what does not change which kernel it
 * is: whitespace, a leading & or ::, enclosing parentheses. */
std::string normalize(const std::string &spelled) {
    std::string s;
    for (char c : spelled)
        if (c != ' ' && c != '\t' && c != '\n')
            s += c;
    for (;;) {
        if (!s.empty() && s[0] == '&')
            s.erase(0, 1);
        else if (s.compare(0, 2, "::") == 0)
            s.erase(0, 2);
        else if (s.size() >= 2 && s.front() == '(' && s.back() == ')')
            s = s.substr(1, s.size() - 2);
        else
            return s;
    }
}

bool parse_order(const char **name, bool *reverse) {
    const char *env = getenv("LT_CUDA_EMU_ORDER");
    if (!env || strcmp(env, "forward") == 0) {
        *name = "forward";
        *reverse = false;
        return true;
    }
    if (strcmp(env, "reverse") == 0) {
        *name = "reverse";
        *reverse = true;
        return true;
    }
    return false;
}

bool parse_switch(SwitchKind *kind) {
    const char *env = getenv("LT_CUDA_EMU_SWITCH");
#if defined(__SANITIZE_ADDRESS__)
    const SwitchKind dflt = SwitchKind::Ucontext;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    const SwitchKind dflt = SwitchKind::Ucontext;
#else
    const SwitchKind dflt = SwitchKind::Asm;
#endif
#else
    const SwitchKind dflt = SwitchKind::Asm;
#endif
    if (!env || !*env)
        *kind = dflt;
    else if (strcmp(env, "asm") == 0)
        *kind = SwitchKind::Asm;
    else if (strcmp(env, "ucontext") == 0)
        *kind = SwitchKind::Ucontext;
    else
        return false;
    return true;
}

/* CUDA's launch checks, in the order a bad launch is most likely to be
 * told apart; cudaSuccess when the launch may run. */
cudaError_t check_config(const char *kernel, const void *func, dim3 grid, dim3 block,
                         size_t shmem, cudaStream_t stream) {
    std::string cfg = fmt("kernel %s (grid %s, block %s, %zu bytes of dynamic shared memory)",
                          kernel, dims(grid).s, dims(block).s, shmem);
    if (!grid.x || !grid.y || !grid.z || !block.x || !block.y || !block.z)
        return fail(cudaErrorInvalidConfiguration, "%s: a grid or block dimension is 0",
                    cfg.c_str());
    if (block.x > 1024 || block.y > 1024 || block.z > 64)
        return fail(cudaErrorInvalidConfiguration,
                    "%s: a block is at most (1024, 1024, 64) threads per dimension", cfg.c_str());
    if ((unsigned long long)block.x * block.y * block.z > 1024)
        return fail(cudaErrorInvalidConfiguration, "%s: %llu threads a block, at most 1024",
                    cfg.c_str(), (unsigned long long)block.x * block.y * block.z);
    if (grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535)
        return fail(cudaErrorInvalidConfiguration,
                    "%s: a grid is at most (2^31 - 1, 65535, 65535) blocks", cfg.c_str());
    if (shmem > kSharedDefault) {
        int allowed = -1;
        {
            std::lock_guard<std::mutex> g(g_attr_mutex);
            auto it = g_max_dynamic_shared.find(func);
            if (it != g_max_dynamic_shared.end())
                allowed = it->second;
        }
        if (allowed < 0)
            return fail(cudaErrorInvalidValue,
                        "%s: more than the %zu bytes allowed without "
                        "cudaFuncSetAttribute(%s, cudaFuncAttributeMaxDynamicSharedMemorySize, "
                        "...)",
                        cfg.c_str(), kSharedDefault, normalize(kernel).c_str());
        if (shmem > (size_t)allowed)
            return fail(cudaErrorInvalidValue,
                        "%s: more than the %d bytes its "
                        "cudaFuncAttributeMaxDynamicSharedMemorySize allows",
                        cfg.c_str(), allowed);
    }
    if (!stream_valid(stream))
        return fail(cudaErrorInvalidResourceHandle,
                    "%s: stream %p was not created by cudaStreamCreate or was destroyed",
                    cfg.c_str(), (void *)stream);
    return cudaSuccess;
}

/* Runs the block L.threads describe; false when it failed. */
bool run_block() {
    const unsigned n = L.nthreads;
    L.done = 0;
    L.at_barrier = 0;
    L.warp_waiting.assign((n + 31) / 32, 0);
    L.warp_partial.assign((n + 31) / 32, 0);
    L.warp_last.assign((n + 31) / 32, 0);
    const dim3 b = L.block;
    for (unsigned i = 0; i < n; i++) {
        Thread &t = L.threads[i];
        t.lin = i;
        t.idx = uint3{i % b.x, i / b.x % b.y, i / (b.x * b.y)};
        t.state = T_NEW;
        t.barriers = 0;
        t.fiber = nullptr;
    }
    if (L.shmem)
        memset(L.shared, 0xff, L.shmem);
    for (;;) {
        bool progress = false;
        for (unsigned k = 0; k < n && !L.failed; k++) {
            Thread *t = &L.threads[L.reverse ? n - 1 - k : k];
            if (t->state == T_NEW) {
                t->fiber = fiber_get(L.kind, t);
                t->state = T_RUNNABLE;
            }
            if (t->state != T_RUNNABLE)
                continue;
            progress = true;
            L.cur = t;
            lt_cuda_emu_builtins.thread_idx = t->idx;
            fiber_resume(t->fiber);
            L.cur = nullptr;
            if (t->state == T_DONE) {
                fiber_put(t->fiber, false);
                t->fiber = nullptr;
            }
        }
        if (L.failed)
            break;
        if (L.done == n)
            return true;
        if (!progress) { /* every rule above should have caught it first */
            record_failure(&L.threads[0], "no thread of the block can go on (deadlock)");
            break;
        }
    }
    for (Thread &t : L.threads)
        if (t.fiber) {
            fiber_put(t.fiber, true);
            t.fiber = nullptr;
        }
    return false;
}

} // namespace

cudaError_t func_set_attribute(const char *spelled_args, const void *func,
                               enum cudaFuncAttribute attr, int value) {
    /* spelled_args is "kernel, attr, value": the kernel is what precedes
     * the last two commas outside parentheses. */
    std::string args = spelled_args;
    int depth = 0, commas = 0;
    size_t cut = std::string::npos;
    for (size_t i = args.size(); i-- > 0;) {
        char c = args[i];
        if (c == ')' || c == ']' || c == '}')
            depth++;
        else if (c == '(' || c == '[' || c == '{')
            depth--;
        else if (c == ',' && depth == 0 && ++commas == 2) {
            cut = i;
            break;
        }
    }
    if (cut == std::string::npos)
        return fail(cudaErrorInvalidValue,
                    "cudaFuncSetAttribute(%s): expected (kernel, attr, value)", spelled_args);
    std::string kernel = normalize(args.substr(0, cut));
    switch (attr) {
    case cudaFuncAttributeMaxDynamicSharedMemorySize:
        if (value < 0 || (size_t)value > kSharedOptin)
            return fail(
                cudaErrorInvalidValue,
                "cudaFuncSetAttribute(%s, cudaFuncAttributeMaxDynamicSharedMemorySize, %d): "
                "the device allows 0 to %zu bytes",
                kernel.c_str(), value, kSharedOptin);
        {
            std::lock_guard<std::mutex> g(g_attr_mutex);
            g_max_dynamic_shared[func] = value;
        }
        return cudaSuccess;
    case cudaFuncAttributePreferredSharedMemoryCarveout:
        if (value < -1 || value > 100)
            return fail(cudaErrorInvalidValue,
                        "cudaFuncSetAttribute(%s, cudaFuncAttributePreferredSharedMemoryCarveout, "
                        "%d): expected -1 or a percentage",
                        kernel.c_str(), value);
        return cudaSuccess;
    }
    return fail(cudaErrorNotSupported, "cudaFuncSetAttribute(%s, attribute %d): not emulated",
                kernel.c_str(), (int)attr);
}

void launch(const char *kernel, const void *func, dim3 grid, dim3 block, size_t shmem,
            cudaStream_t stream, void (*thunk)(const void *), const void *callable) {
    if (t_in_launch) {
        fail(cudaErrorNotSupported, "kernel %s launched from inside kernel %s: not emulated",
             kernel, L.kernel);
        return;
    }
    const char *order;
    bool reverse;
    SwitchKind kind;
    if (!parse_order(&order, &reverse)) {
        fail(cudaErrorInvalidValue, "kernel %s: LT_CUDA_EMU_ORDER=%s, expected forward or reverse",
             kernel, getenv("LT_CUDA_EMU_ORDER"));
        return;
    }
    if (!parse_switch(&kind)) {
        fail(cudaErrorInvalidValue, "kernel %s: LT_CUDA_EMU_SWITCH=%s, expected asm or ucontext",
             kernel, getenv("LT_CUDA_EMU_SWITCH"));
        return;
    }
    if (check_config(kernel, func, grid, block, shmem, stream) != cudaSuccess)
        return;

    std::lock_guard<std::mutex> guard(g_launch_mutex);
    static bool body_set = false;
    if (!body_set) {
        fiber_set_body(body);
        body_set = true;
    }
    L.kernel = kernel;
    L.grid = grid;
    L.block = block;
    L.order = order;
    L.reverse = reverse;
    L.kind = kind;
    L.thunk = thunk;
    L.callable = callable;
    L.nthreads = block.x * block.y * block.z;
    L.threads.assign(L.nthreads, Thread());
    L.shmem = shmem;
    L.shared = (unsigned char *)malloc(shmem ? shmem : 1);
    L.failed = false;
    L.message.clear();
    lt_cuda_emu_builtins.grid_dim = grid;
    lt_cuda_emu_builtins.block_dim = block;
    const unsigned long long nblocks = (unsigned long long)grid.x * grid.y * grid.z;
    t_in_launch = true;
    device_open();
    for (unsigned long long k = 0; k < nblocks; k++) {
        unsigned long long bl = reverse ? nblocks - 1 - k : k;
        lt_cuda_emu_builtins.block_idx =
            uint3{(unsigned)(bl % grid.x), (unsigned)(bl / grid.x % grid.y),
                  (unsigned)(bl / ((unsigned long long)grid.x * grid.y))};
        if (!run_block())
            break;
    }
    device_close();
    t_in_launch = false;
    free(L.shared);
    L.shared = nullptr;
    if (L.failed) {
        fail_execution(cudaErrorLaunchFailure, "%s", L.message.c_str());
        if (!getenv("LT_CUDA_EMU_QUIET"))
            fprintf(stderr, "lt_cuda_emu: %s\n", L.message.c_str());
    }
}

} // namespace lt_cuda_emu
