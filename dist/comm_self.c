/* One process, no launcher: every collective is a local copy or nothing. */
#include <string.h>

#include "dist/comm_backend.h"

static lt_status self_allreduce(void *ctx, void *buf, size_t count, lt_dtype t, lt_redop op,
                                void **req, lt_error *err) {
    (void)ctx, (void)buf, (void)count, (void)t, (void)op, (void)err;
    if (req) *req = NULL;
    return LT_OK;
}

static lt_status self_allgather(void *ctx, const void *send, void *recv, size_t bytes, void **req,
                                lt_error *err) {
    (void)ctx, (void)err;
    if (send != recv) memmove(recv, send, bytes);
    if (req) *req = NULL;
    return LT_OK;
}

static lt_status self_broadcast(void *ctx, void *buf, size_t bytes, int root, lt_error *err) {
    (void)ctx, (void)buf, (void)bytes, (void)root, (void)err;
    return LT_OK;
}

static lt_status self_reduce(void *ctx, const void *send, void *recv, size_t count, lt_dtype t,
                             lt_redop op, int root, lt_error *err) {
    (void)ctx, (void)op, (void)root, (void)err;
    if (recv && send != recv) memmove(recv, send, count * lt_dtype_size(t));
    return LT_OK;
}

/* One rank: its part is the whole send buffer, already reduced. */
static lt_status self_reduce_scatter(void *ctx, const void *send, void *recv, const size_t *counts,
                                     lt_dtype t, lt_redop op, void **req, lt_error *err) {
    (void)ctx, (void)op, (void)err;
    if (counts[0]) memcpy(recv, send, counts[0] * lt_dtype_size(t));
    if (req) *req = NULL;
    return LT_OK;
}

/* One rank: its own part is the only one and already in place. */
static lt_status self_allgatherv(void *ctx, void *buf, const size_t *counts, const size_t *displs,
                                 lt_dtype t, void **req, lt_error *err) {
    (void)ctx, (void)buf, (void)counts, (void)displs, (void)t, (void)err;
    if (req) *req = NULL;
    return LT_OK;
}

static lt_status self_barrier(void *ctx, lt_error *err) {
    (void)ctx, (void)err;
    return LT_OK;
}

static lt_status self_wait(void *ctx, void *req, lt_error *err) {
    (void)ctx, (void)req, (void)err;
    return LT_OK;
}

static lt_status self_test(void *ctx, void *req, int *done, lt_error *err) {
    (void)ctx, (void)req, (void)err;
    *done = 1;
    return LT_OK;
}

static void *self_alloc(void *ctx, lt_mem_category cat, size_t bytes) {
    (void)ctx;
    return lt_alloc(cat, bytes);
}

static void self_free_buffer(void *ctx, void *p) {
    (void)ctx;
    lt_free(p);
}

static void self_abort(void *ctx, int code) {
    (void)ctx, (void)code; /* the caller's return from main ends the process */
}

static void self_finalize(void *ctx) { (void)ctx; }

const lt_comm_backend lt_comm_self_backend = {
    .name = "self",
    .allreduce = self_allreduce,
    .allgather = self_allgather,
    .broadcast = self_broadcast,
    .reduce = self_reduce,
    .barrier = self_barrier,
    .reduce_scatter = self_reduce_scatter,
    .allgatherv = self_allgatherv,
    .wait = self_wait,
    .test = self_test,
    .alloc = self_alloc,
    .free_buffer = self_free_buffer,
    .abort = self_abort,
    .finalize = self_finalize,
};
