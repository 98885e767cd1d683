/* Full fine-tuning checkpoints: the whole model and its AdamW moments,
 * written by one rank or, with ZeRO-1 sharded moments, by every rank
 * together through parallel HDF5 (MPI-IO). Layout in
 * io/checkpoint/checkpoint.h. */
#include <errno.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/hash.h"
#include "io/checkpoint/checkpoint_internal.h"

static const char *k_flat[2] = {"exp_avg", "exp_avg_sq"};

/* ------------------------------------------------ the moments in file order
 * A rank holds moments [lo, hi) of the flat buffer in the model's row
 * order; the file holds them in Hugging Face's. A rotary tensor inside
 * [lo, hi) is permuted locally; one split between ranks (a shard boundary
 * inside it) needs the other ranks' rows, so each is all-gathered once per
 * save and every rank keeps its part of the permuted tensor. */

typedef struct {
    const lt_param_table *t;
    const lt_model_config *c;
    size_t lo, hi;
    /* The moments live where the model's backend keeps its buffers: they
     * reach the host through ops->download, stage_cap floats at a time. */
    const lt_ops *ops;
    float *stage;
    size_t stage_cap; /* at least the largest rotary tensor */
    float *scratch; /* the largest rotary tensor */
    int nparts;     /* split rotary tensors overlapping [lo, hi): at most one per end */
    int part_tensor[2];
    float *part[2][2]; /* [part][moment]: this rank's range of it, file order */
} flat_view;

static void view_free(flat_view *v) {
    for (int p = 0; p < 2; p++)
        for (int w = 0; w < 2; w++) free(v->part[p][w]);
    free(v->scratch);
    free(v->stage);
}

static int is_split(const lt_tensor_desc *d, const size_t *shard_begin, int N) {
    for (int k = 1; k < N; k++)
        if (shard_begin[k] > d->offset && shard_begin[k] < d->offset + lt_tensor_numel(d)) return 1;
    return 0;
}

/* All-gathers every split rotary tensor of both moments (every rank calls
 * it with the same table and shards) and keeps this rank's permuted part.
 * gather: a buffer of the largest rotary tensor. */
static lt_status gather_split(flat_view *v, lt_comm *comm, const size_t *shard_begin, const lt_adamw *opt,
                              float *gather, lt_error *err) {
    const int N = lt_comm_size(comm);
    size_t *counts = calloc((size_t)N, sizeof *counts), *displs = calloc((size_t)N, sizeof *displs);
    lt_status st = counts && displs ? LT_OK : lt_fail(err, LT_ERR_NOMEM, "checkpoint: out of memory");
    for (int i = 0; i < v->t->count && st == LT_OK; i++) {
        const lt_tensor_desc *d = &v->t->t[i];
        if (!lt_rope_rotary_heads(v->c, d->name) || !is_split(d, shard_begin, N)) continue;
        const size_t o = d->offset, n = lt_tensor_numel(d);
        for (int r = 0; r < N; r++) {
            size_t a = shard_begin[r] > o ? shard_begin[r] : o, b = shard_begin[r + 1] < o + n ? shard_begin[r + 1] : o + n;
            counts[r] = b > a ? b - a : 0;
            displs[r] = b > a ? a - o : 0;
        }
        const size_t a = v->lo > o ? v->lo : o, b = v->hi < o + n ? v->hi : o + n;
        const int mine = b > a;
        if (mine && v->nparts == 2) /* a tensor that splits twice is the same one at both ends */
            st = lt_fail(err, LT_ERR_INVALID, "checkpoint: more than two split tensors in one shard");
        for (int w = 0; w < 2 && st == LT_OK; w++) {
            const float *src = w ? opt->v : opt->m;
            if (mine) v->ops->download(v->ops, gather + (a - o), src + (a - v->lo), (b - a) * sizeof(float));
            st = lt_comm_allgatherv(comm, gather, counts, displs, LT_DT_F32, err);
            if (st != LT_OK || !mine) continue;
            lt_rope_permute_rows(gather, v->scratch, lt_rope_rotary_heads(v->c, d->name), lt_head_dim(v->c), d->cols, 1);
            if (!(v->part[v->nparts][w] = malloc((b - a) * sizeof(float))))
                st = lt_fail(err, LT_ERR_NOMEM, "checkpoint: out of memory");
            else
                memcpy(v->part[v->nparts][w], v->scratch + (a - o), (b - a) * sizeof(float));
        }
        if (mine && st == LT_OK) v->part_tensor[v->nparts++] = i;
    }
    free(counts);
    free(displs);
    return st;
}

typedef int (*piece_fn)(void *ctx, size_t file_at, const float *x, size_t n);

/* Calls fn on this rank's range of moment w in file order, piece by piece
 * (src: the rank's moments in the backend's memory, index 0 at lo). */
static int each_piece(flat_view *v, const float *src, int w, piece_fn fn, void *ctx) {
    for (int i = 0; i < v->t->count; i++) {
        const lt_tensor_desc *d = &v->t->t[i];
        const size_t o = d->offset, n = lt_tensor_numel(d);
        const size_t a = v->lo > o ? v->lo : o, b = v->hi < o + n ? v->hi : o + n;
        if (b <= a) continue;
        if (lt_rope_rotary_heads(v->c, d->name)) {
            int p = v->nparts > 0 && v->part_tensor[0] == i ? 0 : v->nparts > 1 && v->part_tensor[1] == i ? 1 : -1;
            const float *x;
            if (p >= 0) {
                x = v->part[p][w];
            } else { /* whole inside the range */
                v->ops->download(v->ops, v->stage, src + (o - v->lo), n * sizeof(float));
                lt_rope_permute_rows(v->stage, v->scratch, lt_rope_rotary_heads(v->c, d->name),
                                     lt_head_dim(v->c), d->cols, 1);
                x = v->scratch;
            }
            if (!fn(ctx, a, x, b - a)) return 0;
            continue;
        }
        for (size_t at = a; at < b; at += v->stage_cap) {
            const size_t k = b - at < v->stage_cap ? b - at : v->stage_cap;
            v->ops->download(v->ops, v->stage, src + (at - v->lo), k * sizeof(float));
            if (!fn(ctx, at, v->stage, k)) return 0;
        }
    }
    return 1;
}

static int hash_piece(void *ctx, size_t at, const float *x, size_t n) {
    (void)at;
    lt_hasher_update(ctx, x, n * sizeof(float));
    return 1;
}

typedef struct {
    hid_t d, fs;
} dset_out;

static int write_piece(void *ctx, size_t at, const float *x, size_t n) {
    dset_out *o = ctx;
    hsize_t lo = at, cnt = n;
    hid_t ms = H5Screate_simple(1, &cnt, NULL);
    int ok = ms >= 0 && H5Sselect_hyperslab(o->fs, H5S_SELECT_SET, &lo, NULL, &cnt, NULL) >= 0 &&
             H5Dwrite(o->d, H5T_NATIVE_FLOAT, ms, o->fs, H5P_DEFAULT, x) >= 0;
    if (ms >= 0) H5Sclose(ms);
    return ok;
}

/* Writes the checkpoint's contents into the open file f. With several
 * writers (parallel HDF5) every rank makes every call that creates
 * objects or attributes, with the same values (HDF5 requires metadata
 * operations to be collective); data goes in independently: the weights,
 * the same on every rank, from rank 0; each moment shard from its owner.
 * seg[0..nseg] are the shards' boundaries, seg_hash their hashes. Every
 * rank makes the same sequence of collective calls whatever happens to its
 * own raw-data writes: a rank that stopped early would leave the others
 * waiting in the next collective call for ever. A failed write of this
 * rank's data clears *data_ok instead, and the caller agrees on the
 * outcome after the file is closed. */
static int write_full(hid_t f, const float *params, flat_view *v, const lt_adamw *opt, int rank,
                      const size_t *seg, int nseg, const uint64_t (*seg_hash)[2], const lt_ckpt_meta *meta,
                      const char *json, int *data_ok) {
    const lt_param_table *t = v->t;
    lt_manifest *mf = lt_manifest_new();
    int ok = mf && lt_ck_put_root_attrs(mf, f, meta, json, "full");
    hid_t g = ok ? lt_ck_group(f, "model") : -1;
    ok = ok && g >= 0;
    for (int i = 0; i < t->count && ok; i++) {
        const lt_tensor_desc *d = &t->t[i];
        const float *x = params + d->offset;
        if (lt_rope_rotary_heads(v->c, d->name)) {
            lt_rope_permute_rows(x, v->scratch, lt_rope_rotary_heads(v->c, d->name), lt_head_dim(v->c), d->cols, 1);
            x = v->scratch;
        }
        hid_t ds = -1;
        ok = lt_ck_put_tensor(mf, g, d->name, x, d->rows, d->cols, rank == 0, data_ok, &ds) &&
             lt_ck_put_u64(mf, ds, "offset", (uint64_t)d->offset);
        if (ds >= 0) H5Dclose(ds);
    }
    if (g >= 0) H5Gclose(g);
    hid_t o = ok ? lt_ck_group(f, "optimizer") : -1;
    ok = ok && o >= 0 &&
         lt_ck_put_str(mf, o, "layout", "exp_avg and exp_avg_sq are flat: the tensors of /model back to back, "
                                        "each at its offset attribute, rows in /model's order; hashed by segment");
    if (o >= 0) H5Gclose(o);
    ok = ok && lt_ck_put_optimizer_attrs(mf, f, opt);
    uint64_t *bounds = malloc(((size_t)nseg + 1) * sizeof *bounds), *hashes = malloc((size_t)nseg * sizeof *hashes);
    ok = ok && bounds && hashes;
    for (int k = 0; ok && k <= nseg; k++) bounds[k] = seg[k];
    for (int w = 0; w < 2 && ok; w++) {
        char name[64];
        snprintf(name, sizeof name, "/optimizer/%s", k_flat[w]);
        hsize_t dim = t->numel;
        dset_out out = {-1, H5Screate_simple(1, &dim, NULL)};
        out.d = H5Dcreate2(f, name, H5T_IEEE_F32LE, out.fs, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        ok = out.d >= 0;
        if (ok && !each_piece(v, w ? opt->v : opt->m, w, write_piece, &out)) *data_ok = 0;
        for (int k = 0; k < nseg; k++) hashes[k] = seg_hash[k][w];
        ok = ok && lt_ck_put_u64s(mf, out.d, "segment_offsets", bounds, (size_t)nseg + 1) &&
             lt_manifest_add_flat(mf, name, t->numel, nseg, hashes);
        if (out.d >= 0) H5Dclose(out.d);
        H5Sclose(out.fs);
    }
    free(bounds);
    free(hashes);
    ok = ok && lt_ck_put_scheduler(mf, f, meta) && lt_manifest_write(mf, f, rank == 0);
    lt_manifest_free(mf);
    return ok;
}

lt_status lt_checkpoint_save_full(const char *output_dir, lt_model *m, const lt_adamw *opt,
                                  lt_comm *comm, const size_t *shard_begin,
                                  const lt_ckpt_meta *meta, const char *run_config_json, int keep,
                                  char *written, size_t cap, lt_error *err) {
    lt_ck_quiet();
    const int rank = lt_comm_rank(comm), N = lt_comm_size(comm);
    const int parallel = shard_begin && N > 1;
    if (!parallel && rank != 0) return LT_OK; /* replicated state: rank 0 writes it */
    const lt_param_table *t = lt_model_base_table(m);
    const lt_model_config *c = lt_model_get_config(m);
    const size_t my_lo = parallel ? shard_begin[rank] : 0;
    if (!lt_model_is_full_training(m) || opt->n != (parallel ? shard_begin[rank + 1] - my_lo : t->numel))
        return lt_fail(err, LT_ERR_INVALID, "checkpoint: the optimizer does not hold this rank's "
                       "moments of the model");
    void *mpi_comm = parallel ? lt_comm_native(comm) : NULL;
    if (parallel && !mpi_comm)
        return lt_fail(err, LT_ERR_UNSUPPORTED, "checkpoint: sharded moments need parallel HDF5 over MPI");
    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoint-%lld.h5", output_dir, (long long)meta->global_step);
    /* Rank 0 names the temporary file; HDF5 (every rank with MPI-IO)
     * writes it; rank 0 flushes and renames it once all have closed it. */
    lt_atomic_file af;
    memset(&af, 0, sizeof af);
    char tmp[sizeof af.tmp] = "";
    /* The room the file needs (the data and a generous allowance for
     * HDF5's metadata, the manifest and the run config) is reserved before
     * the first collective call: once every rank is writing, a full disk
     * cannot stop them cleanly together (MPI-IO reports it on one rank,
     * mid-write). */
    const uint64_t need = (uint64_t)t->numel * 3 * sizeof(float) + ((uint64_t)64 << 10) +
                          (uint64_t)t->count * 4096 + (uint64_t)N * 64 +
                          2 * (run_config_json ? strlen(run_config_json) : 0);
    if (rank == 0 && lt_atomic_open(&af, path, err) == LT_OK) {
        fclose(af.f);
        af.f = NULL;
        if (lt_reserve_space(af.tmp, need, err) == LT_OK)
            snprintf(tmp, sizeof tmp, "%s", af.tmp);
        else
            unlink(af.tmp);
    }
    if (parallel && lt_comm_broadcast(comm, tmp, sizeof tmp, 0, err) != LT_OK) {
        if (tmp[0] && rank == 0) unlink(tmp);
        return lt_fail_context(err, "checkpoint not saved (the previous one is kept)");
    }
    if (!tmp[0])
        return rank ? lt_fail(err, LT_ERR_IO, "checkpoint: rank 0 could not create %s", path)
                    : lt_fail_context(err, "checkpoint not saved (the previous one is kept)");
    /* Each shard's hashes, known to every rank (attributes and the
     * manifest are written collectively). */
    const int nseg = parallel ? N : 1;
    size_t one[2] = {0, t->numel};
    const size_t *seg = parallel ? shard_begin : one;
    uint64_t (*hash)[2] = calloc((size_t)nseg, sizeof *hash);
    float *params = malloc(t->numel * sizeof(float));
    const size_t rot = lt_ck_largest_rotary(c, t);
    flat_view v = {.t = t, .c = c, .lo = my_lo, .hi = my_lo + opt->n, .ops = lt_model_get_ops(m)};
    v.scratch = malloc(rot * sizeof(float) + 1);
    v.stage_cap = opt->n < ((size_t)1 << 20) ? opt->n : (size_t)1 << 20;
    if (v.stage_cap < rot) v.stage_cap = rot;
    v.stage = malloc(v.stage_cap * sizeof(float) + 1);
    float *gather = parallel ? malloc(rot * sizeof(float) + 1) : NULL;
    lt_hasher *hs = lt_hasher_new();
    /* Whether every rank can go on, decided together before each collective
     * step so that all ranks take the same path. */
    lt_error agree_err;
    int64_t go = hash && params && v.scratch && v.stage && (gather || !parallel) && hs;
    if (parallel && lt_comm_allreduce(comm, &go, 1, LT_DT_I64, LT_RED_MIN, &agree_err) != LT_OK) go = 0;
    if (go) {
        const lt_ops *o = lt_model_get_ops(m);
        o->download(o, params, lt_model_base(m), t->numel * sizeof(float));
        if (parallel) {
            lt_error ge;
            go = gather_split(&v, comm, shard_begin, opt, gather, &ge) == LT_OK;
            if (lt_comm_allreduce(comm, &go, 1, LT_DT_I64, LT_RED_MIN, &agree_err) != LT_OK) go = 0;
        }
    }
    free(gather);
    if (go) {
        uint64_t mine[2];
        for (int w = 0; w < 2; w++) {
            lt_hasher *h = lt_hasher_new();
            if (!h || !each_piece(&v, w ? opt->v : opt->m, w, hash_piece, h)) go = 0;
            mine[w] = h ? lt_hasher_digest(h) : 0;
            lt_hasher_free(h);
        }
        if (parallel)
            go = lt_comm_allgather(comm, mine, hash, sizeof mine, &agree_err) == LT_OK && go;
        else
            memcpy(hash[0], mine, sizeof mine);
        if (parallel && lt_comm_allreduce(comm, &go, 1, LT_DT_I64, LT_RED_MIN, &agree_err) != LT_OK) go = 0;
    }
    lt_hasher_free(hs);
    hid_t fapl = lt_ck_fapl();
    if (parallel && fapl >= 0) H5Pset_fapl_mpio(fapl, *(MPI_Comm *)mpi_comm, MPI_INFO_NULL);
    hid_t fcpl = lt_ck_fcpl();
    hid_t f = go && fapl >= 0 && fcpl >= 0 ? H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, fapl) : -1;
    if (fapl >= 0) H5Pclose(fapl);
    if (fcpl >= 0) H5Pclose(fcpl);
    /* Creating the file truncated it, which may have given the reserved
     * blocks back: rank 0 reserves them again before anyone writes. */
    int reserved = 1;
    if (go) {
        if (rank == 0) reserved = lt_reserve_space(tmp, need, err) == LT_OK;
        int64_t ready = f >= 0 && reserved;
        if (parallel && lt_comm_allreduce(comm, &ready, 1, LT_DT_I64, LT_RED_MIN, &agree_err) != LT_OK) ready = 0;
        go = ready;
    }
    int data_ok = 1;
    int ok = go && write_full(f, params, &v, opt, rank, seg, nseg, (const uint64_t(*)[2])hash, meta,
                              run_config_json, &data_ok) && data_ok;
    if (f >= 0 && H5Fclose(f) < 0) ok = 0;
    free(params);
    free(hash);
    view_free(&v);
    if (parallel) { /* the file is good only if every rank's part is */
        int64_t all = ok;
        if (lt_comm_allreduce(comm, &all, 1, LT_DT_I64, LT_RED_MIN, &agree_err) != LT_OK) all = 0;
        ok = (int)all;
    }
    if (rank != 0) {
        if (!ok) return lt_fail(err, LT_ERR_IO, "checkpoint: %s could not be written (rank 0 reports why)", path);
        return LT_OK;
    }
    if (!ok || !(af.f = fopen(tmp, "r+b"))) {
        unlink(tmp);
        if (!reserved) return lt_fail_context(err, "checkpoint not saved (the previous one is kept)");
        return lt_fail(err, LT_ERR_IO, "%s: cannot write the checkpoint (disk full or unwritable?); the "
                       "previous checkpoint is kept", path);
    }
    return lt_ck_place(&af, output_dir, path, meta->global_step, keep, written, cap, err);
}

/* ----------------------------------------------------------- loading */

/* A part of the file's range [at, at + n) goes to dst: host memory, or
 * with ops the backend's (through ops->upload). */
typedef struct {
    size_t at, n;
    float *dst;
    const lt_ops *ops;
} range_out;

/* n floats from the host's src to out's dst + off. */
static void range_put(const range_out *out, size_t off, const float *src, size_t n) {
    if (out->ops)
        out->ops->upload(out->ops, out->dst + off, src, n * sizeof(float));
    else
        memcpy(out->dst + off, src, n * sizeof(float));
}

/* Every segment of the flat dataset /optimizer/<name> (numel floats) that
 * overlaps [lo, hi) is read in slices and checked against the manifest;
 * what falls in one of out[0..nout) is copied there. */
static lt_status read_flat(lt_ck_reader *r, const char *name, size_t numel, size_t lo, size_t hi,
                           const range_out *out, int nout) {
    char msg[256], full[64];
    snprintf(full, sizeof full, "/optimizer/%s", name);
    if (H5Lexists(r->f, "optimizer", H5P_DEFAULT) <= 0 || H5Lexists(r->f, full, H5P_DEFAULT) <= 0) {
        snprintf(msg, sizeof msg, "%s is missing", full);
        return lt_ck_bad(r, msg);
    }
    hid_t d = H5Dopen2(r->f, full, H5P_DEFAULT), fs = d >= 0 ? H5Dget_space(d) : -1;
    hsize_t dim = 0;
    lt_status st = LT_OK;
    if (fs < 0 || H5Sget_simple_extent_ndims(fs) != 1 || (H5Sget_simple_extent_dims(fs, &dim, NULL), dim) != numel) {
        snprintf(msg, sizeof msg, "%s holds %llu values, this model has %zu parameters", full,
                 (unsigned long long)dim, numel);
        st = lt_fail(r->err, LT_ERR_CONFIG, "%s: %s", r->path, msg);
    }
    /* The segment table (verified against the manifest on opening): k + 1
     * ascending offsets from 0 to numel. */
    uint64_t *bounds = NULL;
    size_t k = 0;
    hid_t a = st == LT_OK && H5Aexists(d, "segment_offsets") > 0 ? H5Aopen(d, "segment_offsets", H5P_DEFAULT) : -1;
    hid_t as = a >= 0 ? H5Aget_space(a) : -1;
    hssize_t cnt = as >= 0 ? H5Sget_simple_extent_npoints(as) : 0;
    if (as >= 0) H5Sclose(as);
    if (st == LT_OK && (cnt < 2 || cnt > (1 << 20))) {
        snprintf(msg, sizeof msg, "%s has no valid segment_offsets", full);
        st = lt_ck_bad(r, msg);
    }
    if (st == LT_OK) {
        k = (size_t)cnt - 1;
        bounds = malloc((size_t)cnt * sizeof *bounds);
        int okk = bounds && H5Aread(a, H5T_NATIVE_UINT64, bounds) >= 0 && bounds[0] == 0 && bounds[k] == numel;
        for (size_t i = 0; okk && i < k; i++) okk = bounds[i] <= bounds[i + 1];
        if (!okk) {
            snprintf(msg, sizeof msg, "%s: its segment table is damaged", full);
            st = lt_ck_bad(r, msg);
        }
    }
    if (a >= 0) H5Aclose(a);
    const size_t slice = (size_t)1 << 20;
    float *buf = st == LT_OK ? malloc(slice * sizeof(float)) : NULL;
    if (st == LT_OK && !buf) st = lt_fail(r->err, LT_ERR_NOMEM, "%s: out of memory", r->path);
    for (size_t s = 0; s < k && st == LT_OK; s++) {
        const size_t a0 = bounds[s], a1 = bounds[s + 1];
        if (a1 <= lo || a0 >= hi) continue;
        lt_hasher *h = lt_hasher_new();
        if (!h) st = lt_fail(r->err, LT_ERR_NOMEM, "%s: out of memory", r->path);
        for (size_t at = a0; at < a1 && st == LT_OK; at += slice) {
            hsize_t off = at, c = a1 - at < slice ? a1 - at : slice;
            hid_t ms = H5Screate_simple(1, &c, NULL);
            if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, &off, NULL, &c, NULL) < 0 ||
                H5Dread(d, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, buf) < 0) {
                snprintf(msg, sizeof msg, "%s cannot be read (truncated or damaged)", full);
                st = lt_ck_bad(r, msg);
            }
            H5Sclose(ms);
            if (st != LT_OK) break;
            lt_hasher_update(h, buf, (size_t)c * sizeof(float));
            for (int p = 0; p < nout; p++) {
                const size_t x0 = at > out[p].at ? at : out[p].at;
                const size_t x1 = at + c < out[p].at + out[p].n ? at + c : out[p].at + out[p].n;
                if (x1 > x0) range_put(&out[p], x0 - out[p].at, buf + (x0 - at), x1 - x0);
            }
        }
        uint64_t want = 0;
        if (st == LT_OK && (!lt_manifest_segment_hash(r->mf, full, (int)s, &want) || lt_hasher_digest(h) != want)) {
            snprintf(msg, sizeof msg, "%s segment %zu (values %zu..%zu) fails its checksum (the file is damaged)",
                     full, s, a0, a1);
            st = lt_ck_bad(r, msg);
        }
        lt_hasher_free(h);
    }
    free(buf);
    free(bounds);
    if (fs >= 0) H5Sclose(fs);
    if (d >= 0) H5Dclose(d);
    return st;
}

/* The rotary tensor holding flat index at, when it starts before lo (first
 * end) or ends after hi (last end), widens [lo, hi) to cover it. */
static void widen(const lt_model_config *c, const lt_param_table *t, size_t *lo, size_t *hi) {
    for (int i = 0; i < t->count; i++) {
        const lt_tensor_desc *d = &t->t[i];
        const size_t o = d->offset, e = o + lt_tensor_numel(d);
        if (!lt_rope_rotary_heads(c, d->name)) continue;
        if (o < *lo && e > *lo) *lo = o;
        if (o < *hi && e > *hi) *hi = e;
    }
}

/* Moment name's values [lo, lo + n) of the model's order into dst, in
 * ops' memory. */
static lt_status read_moment(lt_ck_reader *r, const char *name, const lt_model_config *c, const lt_param_table *t,
                             size_t lo, size_t n, const lt_ops *ops, float *dst, float *scratch, float *whole) {
    size_t flo = lo, fhi = lo + n;
    widen(c, t, &flo, &fhi);
    float *head = malloc((lo - flo) * sizeof(float) + 1), *tail = malloc((fhi - lo - n) * sizeof(float) + 1);
    lt_status st = head && tail ? LT_OK : lt_fail(r->err, LT_ERR_NOMEM, "%s: out of memory", r->path);
    const range_out parts[3] = {{flo, lo - flo, head, NULL}, {lo, n, dst, ops}, {lo + n, fhi - lo - n, tail, NULL}};
    if (st == LT_OK) st = read_flat(r, name, t->numel, flo, fhi, parts, 3);
    for (int i = 0; i < t->count && st == LT_OK; i++) {
        const lt_tensor_desc *d = &t->t[i];
        const size_t o = d->offset, e = o + lt_tensor_numel(d);
        const int heads = lt_rope_rotary_heads(c, d->name);
        if (!heads || e <= lo || o >= lo + n) continue;
        /* The tensor in file order, from whichever parts hold it. */
        for (int p = 0; p < 3; p++) {
            const size_t x0 = o > parts[p].at ? o : parts[p].at;
            const size_t x1 = e < parts[p].at + parts[p].n ? e : parts[p].at + parts[p].n;
            if (x1 <= x0) continue;
            const float *from = parts[p].dst + (x0 - parts[p].at);
            if (parts[p].ops)
                parts[p].ops->download(parts[p].ops, whole + (x0 - o), from, (x1 - x0) * sizeof(float));
            else
                memcpy(whole + (x0 - o), from, (x1 - x0) * sizeof(float));
        }
        lt_rope_permute_rows(whole, scratch, heads, lt_head_dim(c), d->cols, 0);
        const size_t x0 = o > lo ? o : lo, x1 = e < lo + n ? e : lo + n;
        range_put(&parts[1], x0 - lo, scratch + (x0 - o), x1 - x0);
    }
    free(head);
    free(tail);
    return st;
}

/* The /model tensors of m's table into host, in the model's row order. */
static lt_status read_model(lt_ck_reader *r, const lt_model_config *c, const lt_param_table *t, float *host,
                            float *scratch) {
    hid_t g = H5Gopen2(r->f, "model", H5P_DEFAULT);
    if (g < 0) return lt_ck_bad(r, "group model is missing");
    lt_status st = LT_OK;
    for (int i = 0; i < t->count && st == LT_OK; i++) {
        const lt_tensor_desc *d = &t->t[i];
        st = lt_ck_read_tensor(r, g, "model", d->name, d->rows, d->cols, host + d->offset);
        if (st == LT_OK) lt_ck_reorder(c, d, host + d->offset, scratch, 0);
    }
    H5Gclose(g);
    return st;
}

lt_status lt_checkpoint_load_full(const char *path, lt_model *m, lt_adamw *opt, size_t shard_lo,
                                  uint64_t base_bytes, uint64_t base_fingerprint, lt_ckpt_meta *meta,
                                  lt_error *err) {
    lt_ck_reader r = {path, -1, err, NULL};
    lt_status st = lt_ck_open(&r, 0);
    if (st != LT_OK) return st;
    const lt_param_table *t = lt_model_base_table(m);
    const lt_model_config *c = lt_model_get_config(m);
    char type[32];
    float *host = NULL, *scratch = NULL, *whole = NULL;
    int64_t step = 0;
    if ((st = lt_ck_read_type(&r, type, sizeof type)) != LT_OK || (st = lt_ck_read_meta(&r, meta)) != LT_OK) goto done;
    if (strcmp(type, "full") != 0) {
        st = lt_fail(err, LT_ERR_CONFIG, "%s: holds a %s checkpoint; this run is full fine-tuning "
                     "(finetuning_type full)", path, type);
        goto done;
    }
    if (base_bytes && (meta->base_bytes != base_bytes || meta->base_fingerprint != base_fingerprint)) {
        st = lt_fail(err, LT_ERR_CONFIG, "%s: was fine-tuned from base model %s (%llu bytes), not this "
                     "run's (%llu bytes)", path, meta->base_path, (unsigned long long)meta->base_bytes,
                     (unsigned long long)base_bytes);
        goto done;
    }
    if (shard_lo + opt->n > t->numel) {
        st = lt_fail(err, LT_ERR_INVALID, "%s: moments %zu..%zu are outside the model", path, shard_lo,
                     shard_lo + opt->n);
        goto done;
    }
    const size_t rot = lt_ck_largest_rotary(c, t);
    host = lt_alloc(LT_MEM_WORKSPACE, t->numel * sizeof(float));
    scratch = malloc(rot * sizeof(float) + 1);
    whole = malloc(rot * sizeof(float) + 1);
    if (!host || !scratch || !whole) {
        st = lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    if ((st = read_model(&r, c, t, host, scratch)) != LT_OK) goto done;
    for (int w = 0; w < 2 && st == LT_OK; w++)
        st = read_moment(&r, k_flat[w], c, t, shard_lo, opt->n, lt_model_get_ops(m), w ? opt->v : opt->m,
                         scratch, whole);
    if (st != LT_OK) goto done;
    hid_t o = H5Gopen2(r.f, "optimizer", H5P_DEFAULT);
    st = lt_ck_get_num(&r, o, "step", LT_MF_I64, &step);
    H5Gclose(o);
    if (st == LT_OK && step != meta->global_step)
        st = lt_ck_bad(&r, "the optimizer's step is not global_step (damaged or assembled from two checkpoints)");
    if (st == LT_OK) {
        const lt_ops *ops = lt_model_get_ops(m);
        ops->upload(ops, lt_model_base(m), host, t->numel * sizeof(float));
        opt->step = step;
    }
done:
    lt_free(host);
    free(scratch);
    free(whole);
    lt_ck_close(&r);
    return st;
}
