/* The LoRA gradient all-reduce, bucketed in backward order so that
 * communication overlaps the rest of the backward pass (as PyTorch DDP's
 * reducer, with layers as the unit).
 *
 * The flat gradient buffer is cut into per-layer ranges; consecutive
 * layers, from the last one down, are merged into a bucket until it holds
 * at least bucket_cap bytes (0: one bucket per layer). A bucket's
 * all-reduce (sum, non-blocking) starts as soon as its lowest layer's
 * gradients are final; finish() starts whatever has not started and waits
 * for all. The sum is the data-parallel gradient because every rank scales
 * its loss by 1 / (targets in the whole global batch): the token-level mean
 * over all ranks' tokens, which is DDP's average when ranks hold equal
 * token counts and the exact mean when they do not. */
#ifndef LT_DIST_GRAD_SYNC_H
#define LT_DIST_GRAD_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "dist/comm.h"

typedef struct lt_grad_sync lt_grad_sync;

/* layer_begin[l] .. layer_begin[l + 1] are layer l's gradient elements,
 * ascending and covering [0, layer_begin[n_layers]) = the whole buffer. */
lt_status lt_grad_sync_create(lt_comm *c, float *grads, const size_t *layer_begin, int n_layers,
                              size_t bucket_cap_bytes, lt_grad_sync **out, lt_error *err);
void lt_grad_sync_free(lt_grad_sync *g);

int lt_grad_sync_buckets(const lt_grad_sync *g);

/* Arms the buckets for the micro-batch whose backward completes the
 * step's gradients (earlier micro-batches only accumulate, as DDP's
 * no_sync). */
void lt_grad_sync_arm(lt_grad_sync *g);
/* Layer l's gradients are final: starts the bucket it completes, and
 * lets the transport progress those in flight. No-op unless armed. */
lt_status lt_grad_sync_layer_ready(lt_grad_sync *g, int layer, lt_error *err);
/* Lets in-flight buckets progress (between layers). */
lt_status lt_grad_sync_progress(lt_grad_sync *g, lt_error *err);
/* Starts the rest and waits for every bucket; disarms. *exposed_s: the
 * time this call spent blocked (communication not hidden by backward, and
 * waiting for slower ranks). */
lt_status lt_grad_sync_finish(lt_grad_sync *g, double *exposed_s, lt_error *err);
/* ZeRO-1: from now on each bucket is reduce-scattered instead of
 * all-reduced: rank r receives the sum of the elements in
 * [shard_begin[r], shard_begin[r + 1]) (contiguous shards in rank order,
 * covering the buffer) into shard_grads, its shard's gradient. */
lt_status lt_grad_sync_shard(lt_grad_sync *g, const size_t *shard_begin, float *shard_grads,
                             lt_error *err);
/* ZeRO-1, after each rank updated its shard of params: all-gathers every
 * bucket's parameters (bucket by bucket, all in flight at once) so every
 * rank holds the whole updated buffer. *exposed_s: the time blocked. */
lt_status lt_grad_sync_gather_params(lt_grad_sync *g, float *params, double *exposed_s,
                                     lt_error *err);

/* Of the last finished step's gradient bytes, those whose all-reduce had
 * completed before finish() was called: reduced while backward ran. */
uint64_t lt_grad_sync_overlapped_bytes(const lt_grad_sync *g);
/* Of the same, those whose reduction the layer hook had started by then,
 * finished or not: unlike the bytes above this does not depend on timing,
 * so tests can hold it to the bucket layout. */
uint64_t lt_grad_sync_started_bytes(const lt_grad_sync *g);

#endif
