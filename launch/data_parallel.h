/* The trainer's data parallelism: connects the model's hooks to dist/ (the
 * bucketed all-reduce of the trainable gradients -- LoRA's, or every
 * weight's in full fine-tuning, optionally ZeRO-1 sharded -- and the shard
 * gather of a sharded base),
 * splits evaluation across ranks, checks replicas, and gathers per-rank
 * figures for the reports. One process is the same code with a world of 1:
 * no buckets, no gather, no communication. */
#ifndef LT_LAUNCH_DATA_PARALLEL_H
#define LT_LAUNCH_DATA_PARALLEL_H

#include <stdint.h>

#include "core/status.h"
#include "dist/comm.h"
#include "dist/grad_sync.h"
#include "dist/shard_gather.h"
#include "model/llama.h"
#include "optim/adamw.h"

typedef struct {
    lt_comm *comm; /* the world */
    int rank, size;
    lt_model *model;
    lt_grad_sync *sync;      /* NULL with one rank */
    lt_shard_gather *gather; /* NULL unless the base is sharded */
    int unit_shift;          /* model layer l is gradient unit l + shift */
    /* ZeRO-1 (full fine-tuning on several ranks): this rank owns parameters
     * [shard_lo, shard_lo + shard_len) of the flat trainable buffer, their
     * reduced gradient (shard_grads) and their AdamW moments. */
    int zero1;
    size_t shard_lo, shard_len;
    size_t *shard_begin; /* size + 1 boundaries */
    float *shard_grads;
    /* Set by the caller before each lt_train_step: */
    int64_t global_targets; /* targets in the step's whole global batch */
    uint64_t first_row;     /* this rank's first row in each global micro-batch */
} lt_dp;

/* Wires the hooks of m (LoRA added or full training enabled, shards
 * loaded) to comm; zero1 shards the optimizer state (full fine-tuning). */
lt_status lt_dp_setup(lt_dp *dp, lt_comm *comm, lt_model *m, double bucket_cap_mb, int zero1,
                      lt_error *err);

/* ZeRO-1's split of n parameters over size ranks: contiguous shards of
 * ceil(n / size) rounded up to 16 elements (64-byte aligned), the last
 * ones shorter or empty. begin has size + 1 entries. */
void lt_zero1_shards(size_t n, int size, size_t *begin);
void lt_dp_free(lt_dp *dp);

/* Every rank holds the same bits of params and both Adam moments (only
 * params with ZeRO-1, whose moments are per rank), or an error naming the
 * step and the ranks that differ. */
lt_status lt_dp_check_replicas(lt_dp *dp, const float *params, const lt_adamw *opt, int64_t step,
                               lt_error *err);

/* Per-rank memory and loading figures, gathered to every rank. */
typedef struct {
    uint64_t tracked_peak[LT_MEM_NCATEGORIES];
    uint64_t tracked_total_peak;
    uint64_t vm_hwm;
    uint64_t quant_resident_bytes;
    uint64_t model_bytes_read;
} lt_rank_memory;

/* out[r] for each rank r (out has dp->size entries). */
lt_status lt_dp_gather_memory(lt_dp *dp, uint64_t model_bytes_read, lt_rank_memory *out,
                              lt_error *err);

#endif
