/* The loader: a deterministic, resumable sampler that batches a dataset's
 * rows (io/data/dataset.h) for one rank or many. It reads no file. */
#ifndef LT_IO_DATA_LOADER_H
#define LT_IO_DATA_LOADER_H

#include <stdint.h>

#include "core/status.h"
#include "io/data/dataset.h"

typedef struct lt_loader lt_loader;

/* Where the loader is: position = rows already taken in epoch's order
 * (0 .. rows; rows means the epoch is used up and the next batch starts
 * epoch + 1). Saved with a checkpoint, it resumes the exact sequence. */
typedef struct {
    uint64_t epoch;
    uint64_t position;
} lt_data_cursor;

/* Epoch e visits every row once, in a Fisher-Yates permutation drawn from
 * core/rng.h's counter-based generator keyed by (seed, LT_LOADER_STREAM |
 * e), or in order when shuffle is 0. Depends on nothing but seed, e and the
 * row count, so every machine produces the same batches. The stream tag
 * keeps epoch e's draws apart from the small stream numbers other users of
 * the same seed take (LoRA initialisation uses layer * modules + module). */
#define LT_LOADER_STREAM (UINT64_C(1) << 63)

/* The loader reads ds on every next(); ds must outlive it. */
lt_status lt_loader_create(const lt_dataset *ds, int batch_size, uint64_t seed, int shuffle,
                           lt_loader **out, lt_error *err);
/* Fills batch_size rows, [batch_size, T] each for inputs and targets. Rows
 * are never split; when an epoch runs out mid-batch the batch continues
 * with the next epoch's order. */
void lt_loader_next(lt_loader *ld, int32_t *inputs, int32_t *targets);
/* The distributed sampler: takes the next batch_size rows exactly as
 * lt_loader_next does, but fills only rows [first, first + count) of it
 * (rank r of N with micro-batch b: first = r b, count = b, batch_size =
 * N b), so every rank walks the same global order, no row is seen twice
 * in an epoch, and N ranks x b rows are the rows 1 rank x N b would take.
 * *batch_targets (may be NULL) counts the targets of the whole batch, so
 * each rank can normalise by the global count without communicating. */
void lt_loader_next_part(lt_loader *ld, int first, int count, int32_t *inputs, int32_t *targets,
                         int64_t *batch_targets);
lt_data_cursor lt_loader_cursor(const lt_loader *ld);
/* After a seek, next() produces exactly what an uninterrupted loader at that
 * cursor would. position > rows is LT_ERR_INVALID. */
lt_status lt_loader_seek(lt_loader *ld, lt_data_cursor c, lt_error *err);
uint64_t lt_loader_rows_per_epoch(const lt_loader *ld);
void lt_loader_free(lt_loader *ld);

#endif
