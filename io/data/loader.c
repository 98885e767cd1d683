#include "io/data/loader.h"

#include <stdint.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "model/llama.h"

struct lt_loader {
    const lt_dataset *ds;
    int batch;
    uint64_t seed;
    int shuffle;
    size_t rows;
    uint64_t epoch, position;
    size_t *perm; /* the order of perm_epoch; NULL when not shuffling */
    uint64_t perm_epoch;
    int perm_valid;
};

static void make_order(lt_loader *ld, uint64_t epoch) {
    if (!ld->shuffle || (ld->perm_valid && ld->perm_epoch == epoch)) return;
    for (size_t i = 0; i < ld->rows; i++) ld->perm[i] = i;
    lt_rng r;
    lt_rng_seed(&r, ld->seed, LT_LOADER_STREAM | epoch);
    for (size_t i = ld->rows; i-- > 1;) {
        size_t j = (size_t)lt_rng_next_below(&r, (uint64_t)i + 1);
        size_t t = ld->perm[i];
        ld->perm[i] = ld->perm[j];
        ld->perm[j] = t;
    }
    ld->perm_epoch = epoch;
    ld->perm_valid = 1;
}

lt_status lt_loader_create(const lt_dataset *ds, int batch_size, uint64_t seed, int shuffle,
                           lt_loader **out, lt_error *err) {
    if (out) *out = NULL;
    if (!ds || !out) return lt_fail(err, LT_ERR_INVALID, "loader: NULL dataset or output");
    if (batch_size < 1)
        return lt_fail(err, LT_ERR_CONFIG, "batch_size is %d, expected at least 1", batch_size);
    if (lt_dataset_rows(ds) == 0)
        return lt_fail(err, LT_ERR_INVALID, "loader: the dataset has no rows");
    lt_loader *ld = lt_alloc(LT_MEM_OTHER, sizeof *ld);
    if (!ld) return lt_fail(err, LT_ERR_NOMEM, "loader: cannot allocate");
    ld->ds = ds;
    ld->batch = batch_size;
    ld->seed = seed;
    ld->shuffle = shuffle != 0;
    ld->rows = lt_dataset_rows(ds);
    if (ld->shuffle) {
        if (ld->rows > SIZE_MAX / sizeof(size_t) ||
            !(ld->perm = lt_alloc(LT_MEM_OTHER, ld->rows * sizeof(size_t)))) {
            lt_free(ld);
            return lt_fail(err, LT_ERR_NOMEM, "loader: cannot allocate the order of %zu rows",
                           ld->rows);
        }
    }
    *out = ld;
    return LT_OK;
}

void lt_loader_next(lt_loader *ld, int32_t *inputs, int32_t *targets) {
    lt_loader_next_part(ld, 0, ld->batch, inputs, targets, NULL);
}

void lt_loader_next_part(lt_loader *ld, int first, int count, int32_t *inputs, int32_t *targets,
                         int64_t *batch_targets) {
    const size_t T = (size_t)lt_dataset_seq_len(ld->ds);
    int64_t n = 0;
    for (int b = 0; b < ld->batch; b++) {
        if (ld->position >= ld->rows) {
            ld->epoch++;
            ld->position = 0;
        }
        make_order(ld, ld->epoch);
        size_t row = ld->shuffle ? ld->perm[ld->position] : (size_t)ld->position;
        ld->position++;
        int mine = b >= first && b < first + count;
        if (!mine && !batch_targets) continue;
        const size_t at = mine ? (size_t)(b - first) * T : 0;
        if (mine) {
            lt_dataset_row(ld->ds, row, inputs + at, targets + at);
            if (batch_targets) n += lt_count_targets(targets + at, (int64_t)T);
        } else {
            n += lt_dataset_row_targets(ld->ds, row);
        }
    }
    if (batch_targets) *batch_targets = n;
}

lt_data_cursor lt_loader_cursor(const lt_loader *ld) {
    lt_data_cursor c = {ld->epoch, ld->position};
    return c;
}

lt_status lt_loader_seek(lt_loader *ld, lt_data_cursor c, lt_error *err) {
    if (c.position > ld->rows)
        return lt_fail(err, LT_ERR_INVALID,
                       "data cursor: position %llu is past the %zu rows of an epoch (a checkpoint "
                       "from different data or seq_len?)",
                       (unsigned long long)c.position, ld->rows);
    ld->epoch = c.epoch;
    ld->position = c.position;
    return LT_OK;
}

uint64_t lt_loader_rows_per_epoch(const lt_loader *ld) { return ld ? ld->rows : 0; }

void lt_loader_free(lt_loader *ld) {
    if (!ld) return;
    lt_free(ld->perm);
    lt_free(ld);
}
