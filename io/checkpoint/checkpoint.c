#include "io/checkpoint/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <mpi.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/hash.h"
#include "io/checkpoint/checkpoint_internal.h"
#include "io/checkpoint/ckpt_manifest.h"
#include "io/fileutil.h"

#define PEFT_PREFIX "base_model.model."
#define POINTER_FILE "latest_checkpoint"
#define MAX_STR 65536

static const char *k_groups[3] = {"adapter", "optimizer/exp_avg", "optimizer/exp_avg_sq"};

/* HDF5 prints an error stack on every failed call; we report one line. */
void lt_ck_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* The 1.8 file format and later: the superblock, object headers and
 * B-trees carry checksums, so a damaged header is an HDF5 error rather
 * than a value read wrong (h5py and h5dump read it). */
hid_t lt_ck_fapl(void) {
    hid_t p = H5Pcreate(H5P_FILE_ACCESS);
    if (p >= 0 && H5Pset_libver_bounds(p, H5F_LIBVER_V18, H5F_LIBVER_LATEST) < 0) {
        H5Pclose(p);
        return -1;
    }
    return p;
}

/* Groups keep their links and every object its attributes in its own
 * object header, which the 1.8 format checksums: past 8 of either HDF5
 * moves them to a fractal heap whose blocks carry no checksum, and a
 * flipped bit there crashed HDF5 1.10's link iteration in the byte-flip
 * test. (An object header grows by checksummed continuation chunks.) */
static int compact_storage(hid_t plist) {
    return plist >= 0 && H5Pset_link_phase_change(plist, 65535, 65535) >= 0 &&
           H5Pset_attr_phase_change(plist, 65535, 65535) >= 0;
}

hid_t lt_ck_fcpl(void) {
    hid_t p = H5Pcreate(H5P_FILE_CREATE);
    if (p >= 0 && !compact_storage(p)) {
        H5Pclose(p);
        return -1;
    }
    return p;
}

hid_t lt_ck_group(hid_t loc, const char *name) {
    hid_t p = H5Pcreate(H5P_GROUP_CREATE);
    hid_t g = compact_storage(p) ? H5Gcreate2(loc, name, H5P_DEFAULT, p, H5P_DEFAULT) : -1;
    if (p >= 0) H5Pclose(p);
    return g;
}

/* ------------------------------------------------------- row order
 * Files hold q_proj / k_proj rows (weights, LoRA B and their moments) in
 * Hugging Face's rotate-half order whatever layout the model computes in;
 * these move one tensor between the two in place. */

size_t lt_ck_largest_rotary(const lt_model_config *c, const lt_param_table *t) {
    size_t n = 0;
    for (int i = 0; i < t->count; i++)
        if (lt_rope_rotary_heads(c, t->t[i].name) && lt_tensor_numel(&t->t[i]) > n) n = lt_tensor_numel(&t->t[i]);
    return n;
}

void lt_ck_reorder(const lt_model_config *c, const lt_tensor_desc *d, float *x, float *scratch,
                    int to_file) {
    const int heads = lt_rope_rotary_heads(c, d->name);
    if (!heads) return;
    lt_rope_permute_rows(x, scratch, heads, lt_head_dim(c), d->cols, to_file);
    memcpy(x, scratch, lt_tensor_numel(d) * sizeof(float));
}

/* ------------------------------------------------------------- writing
 * Every put_* records what it writes in the manifest. */

static const char *path_of(hid_t o, char *buf, size_t cap) {
    ssize_t n = H5Iget_name(o, buf, cap);
    return n > 0 && (size_t)n < cap ? buf : NULL;
}

static int put_attr(lt_manifest *mf, hid_t obj, const char *name, hid_t file_type, hid_t mem_type,
                    lt_mf_kind kind, const void *v, size_t count) {
    char owner[1024];
    const char *p = path_of(obj, owner, sizeof owner);
    hsize_t dim = count;
    hid_t sp = kind == LT_MF_U64S ? H5Screate_simple(1, &dim, NULL) : H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, file_type, sp, H5P_DEFAULT, H5P_DEFAULT);
    int ok = p && a >= 0 && H5Awrite(a, mem_type, v) >= 0 && lt_manifest_add_attr(mf, p, name, kind, v, count);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return ok;
}
static int put_i64(lt_manifest *mf, hid_t o, const char *n, int64_t v) {
    return put_attr(mf, o, n, H5T_STD_I64LE, H5T_NATIVE_INT64, LT_MF_I64, &v, 1);
}
int lt_ck_put_u64(lt_manifest *mf, hid_t o, const char *n, uint64_t v) {
    return put_attr(mf, o, n, H5T_STD_U64LE, H5T_NATIVE_UINT64, LT_MF_U64, &v, 1);
}
static int put_f64(lt_manifest *mf, hid_t o, const char *n, double v) {
    return put_attr(mf, o, n, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, LT_MF_F64, &v, 1);
}
int lt_ck_put_u64s(lt_manifest *mf, hid_t o, const char *n, const uint64_t *v, size_t count) {
    return put_attr(mf, o, n, H5T_STD_U64LE, H5T_NATIVE_UINT64, LT_MF_U64S, v, count);
}
int lt_ck_put_str(lt_manifest *mf, hid_t o, const char *n, const char *v) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) + 1);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    int ok = put_attr(mf, o, n, t, t, LT_MF_STR, v, 1);
    H5Tclose(t);
    return ok;
}

/* Dataset g/name, float32 [rows, cols], with its hash in the manifest;
 * *out (NULL: closed) gets the open dataset. write_data: this process
 * writes the values (one writer under parallel HDF5, where every rank
 * creates the dataset); a failed write clears *data_ok and returns 1, so
 * that every rank goes on making the same collective calls. 0: the
 * dataset or the manifest entry could not be made. */
int lt_ck_put_tensor(lt_manifest *mf, hid_t g, const char *name, const float *data, int rows, int cols,
                     int write_data, int *data_ok, hid_t *out) {
    char gp[1024], full[1200];
    const char *p = path_of(g, gp, sizeof gp);
    if (!p) return 0;
    snprintf(full, sizeof full, "%s/%s", strcmp(p, "/") ? p : "", name);
    hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t d = H5Dcreate2(g, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (d >= 0 && write_data && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        *data_ok = 0;
    /* The host is little-endian (x86-64, aarch64): these are the file's bytes. */
    int ok = d >= 0 && lt_manifest_add_tensor(mf, full, (uint64_t)rows, (uint64_t)cols,
                                              lt_hash64(data, (size_t)rows * (size_t)cols * sizeof(float)));
    if (out && ok)
        *out = d;
    else if (d >= 0)
        H5Dclose(d);
    H5Sclose(sp);
    return ok;
}

/* The root attributes every checkpoint has. */
int lt_ck_put_root_attrs(lt_manifest *mf, hid_t f, const lt_ckpt_meta *meta, const char *config_json,
                          const char *type) {
    return lt_ck_put_str(mf, f, "format", LT_CHECKPOINT_FORMAT) &&
           put_i64(mf, f, "format_version", LT_CHECKPOINT_VERSION) && lt_ck_put_str(mf, f, "finetuning_type", type) &&
           lt_ck_put_str(mf, f, "tensor_row_order", LT_CHECKPOINT_ROW_ORDER) &&
           put_i64(mf, f, "global_step", meta->global_step) && put_i64(mf, f, "tokens_seen", meta->tokens_seen) &&
           lt_ck_put_u64(mf, f, "data_epoch", meta->cursor.epoch) && lt_ck_put_u64(mf, f, "data_position", meta->cursor.position) &&
           lt_ck_put_u64(mf, f, "seed", meta->seed) && put_i64(mf, f, "world_size", meta->world_size) &&
           lt_ck_put_str(mf, f, "base_model_path", meta->base_path) && lt_ck_put_u64(mf, f, "base_model_bytes", meta->base_bytes) &&
           lt_ck_put_u64(mf, f, "base_model_fingerprint", meta->base_fingerprint) &&
           lt_ck_put_str(mf, f, "run_config", config_json ? config_json : "{}");
}

/* /optimizer's attributes (the group exists). */
int lt_ck_put_optimizer_attrs(lt_manifest *mf, hid_t f, const lt_adamw *opt) {
    hid_t o = H5Gopen2(f, "optimizer", H5P_DEFAULT);
    int ok = o >= 0 && put_i64(mf, o, "step", opt->step) && put_f64(mf, o, "beta1", opt->cfg.beta1) &&
             put_f64(mf, o, "beta2", opt->cfg.beta2) && put_f64(mf, o, "eps", opt->cfg.eps) &&
             put_f64(mf, o, "weight_decay", opt->cfg.weight_decay);
    if (o >= 0) H5Gclose(o);
    return ok;
}

int lt_ck_put_scheduler(lt_manifest *mf, hid_t f, const lt_ckpt_meta *meta) {
    hid_t s = lt_ck_group(f, "scheduler");
    int ok = s >= 0 && lt_ck_put_str(mf, s, "lr_scheduler_type", lt_lr_schedule_name(meta->sched.kind)) &&
             put_f64(mf, s, "learning_rate", meta->sched.lr) &&
             put_i64(mf, s, "warmup_steps", meta->sched.warmup_steps) &&
             put_i64(mf, s, "total_steps", meta->sched.total_steps);
    if (s >= 0) H5Gclose(s);
    return ok;
}

static void targets_text(unsigned mask, char *buf, size_t cap) {
    buf[0] = '\0';
    for (int m = 0; m < LT_MOD_COUNT; m++)
        if (mask & (1u << m)) {
            if (buf[0]) strncat(buf, ",", cap - strlen(buf) - 1);
            strncat(buf, lt_module_name((lt_module)m), cap - strlen(buf) - 1);
        }
}

/* The core driver's memory, kept when the file closes: an image taken
 * with H5Fget_file_image while a 1.8-format file is open carries a
 * superblock whose checksum does not match (HDF5 1.10 marks it open), so
 * the image is the driver's own buffer after H5Fclose has finished it. */
typedef struct {
    void *kept;
} image_keeper;

static void *img_malloc(size_t n, H5FD_file_image_op_t op, void *u) {
    (void)op, (void)u;
    return calloc(1, n ? n : 1);
}
static void *img_memcpy(void *d, const void *s, size_t n, H5FD_file_image_op_t op, void *u) {
    (void)op, (void)u;
    return memcpy(d, s, n);
}
static void *img_realloc(void *p, size_t n, H5FD_file_image_op_t op, void *u) {
    (void)op, (void)u;
    return realloc(p, n ? n : 1);
}
static herr_t img_free(void *p, H5FD_file_image_op_t op, void *u) {
    image_keeper *k = u;
    if (op == H5FD_FILE_IMAGE_OP_FILE_CLOSE && !k->kept)
        k->kept = p;
    else
        free(p);
    return 0;
}
static void *img_udata_copy(void *u) { return u; }
static herr_t img_udata_free(void *u) {
    (void)u;
    return 0;
}

/* Builds the checkpoint as an HDF5 file image in memory (the core driver,
 * no backing store) and returns it in *image (malloc). HDF5 never writes
 * the disk itself: a full disk then fails our own fwrite with errno set,
 * instead of leaving HDF5 a half-flushed open file that its exit handler
 * trips over. state: the LoRA parameters and both moments, numel floats
 * each, in the file's row order. */
static int build_image(lt_model *m, const lt_adamw *opt, const lt_ckpt_meta *meta,
                       const char *config_json, const float *state, void **image, size_t *size) {
    *image = NULL;
    const lt_param_table *t = lt_model_lora_table(m);
    /* One allocation for the image: the three tensors sets plus room for
     * HDF5's metadata and the manifest (growing by small increments
     * copies it repeatedly). */
    const size_t guess = 3 * t->numel * sizeof(float) + (size_t)t->count * 1024 + ((size_t)4 << 20);
    image_keeper keeper = {NULL};
    H5FD_file_image_callbacks_t cb = {img_malloc, img_memcpy, img_realloc, img_free,
                                      img_udata_copy, img_udata_free, &keeper};
    hid_t fapl = lt_ck_fapl();
    if (fapl < 0 || H5Pset_fapl_core(fapl, guess, 0) < 0 || H5Pset_file_image_callbacks(fapl, &cb) < 0) {
        if (fapl >= 0) H5Pclose(fapl);
        return 0;
    }
    hid_t fcpl = lt_ck_fcpl();
    hid_t f = fcpl >= 0 ? H5Fcreate("checkpoint.h5", H5F_ACC_TRUNC, fcpl, fapl) : -1;
    H5Pclose(fapl);
    if (fcpl >= 0) H5Pclose(fcpl);
    if (f < 0) return 0;
    lt_manifest *mf = lt_manifest_new();
    const lt_lora_config *lc = lt_model_lora_config(m);
    char targets[256];
    targets_text(lc->targets, targets, sizeof targets);
    int data_ok = 1;
    int ok = mf && lt_ck_put_root_attrs(mf, f, meta, config_json, "lora") && put_i64(mf, f, "lora_r", lc->r) &&
             put_f64(mf, f, "lora_alpha", lc->alpha) && put_i64(mf, f, "use_rslora", lc->use_rslora) &&
             lt_ck_put_str(mf, f, "target_modules", targets);
    hid_t og = ok ? lt_ck_group(f, "optimizer") : -1;
    ok = ok && og >= 0;
    if (og >= 0) H5Gclose(og);
    for (int g = 0; g < 3 && ok; g++) {
        hid_t grp = lt_ck_group(f, k_groups[g]);
        ok = grp >= 0;
        for (int i = 0; i < t->count && ok; i++) {
            char name[LT_TENSOR_NAME_MAX + 32];
            snprintf(name, sizeof name, PEFT_PREFIX "%s", t->t[i].name);
            ok = lt_ck_put_tensor(mf, grp, name, state + (size_t)g * t->numel + t->t[i].offset, t->t[i].rows,
                                  t->t[i].cols, 1, &data_ok, NULL) &&
                 data_ok;
        }
        if (ok && g == 1) ok = lt_ck_put_optimizer_attrs(mf, f, opt);
        if (grp >= 0) H5Gclose(grp);
    }
    ok = ok && lt_ck_put_scheduler(mf, f, meta) && lt_manifest_write(mf, f, 1);
    lt_manifest_free(mf);
    ok = ok && H5Fflush(f, H5F_SCOPE_GLOBAL) >= 0;
    /* The file's size: the driver's buffer may be rounded up past it. */
    ssize_t n = ok ? H5Fget_file_image(f, NULL, 0) : -1;
    ok = H5Fclose(f) >= 0 && ok && n > 0 && keeper.kept;
    *size = ok ? (size_t)n : 0;
    if (ok)
        *image = keeper.kept;
    else
        free(keeper.kept);
    return ok;
}

/* The test hook for kills around a save: LT_FAULT_CHECKPOINT=before_rename
 * kills the process with the temporary file written but not renamed,
 * before_pointer with the file in place but latest_checkpoint not yet
 * updated, after_save once the save is complete (a crash between steps);
 * "where:N" only when saving step N. */
static void fault_point(const char *where, int64_t step) {
    const char *f = getenv("LT_FAULT_CHECKPOINT");
    if (!f) return;
    size_t n = strlen(where);
    if (strncmp(f, where, n) != 0 || (f[n] != '\0' && f[n] != ':')) return;
    if (f[n] == ':' && strtoll(f + n + 1, NULL, 10) != step) return;
    raise(SIGKILL);
}

static int step_of(const char *name, int64_t *step) {
    long long s;
    int used = 0;
    if (sscanf(name, "checkpoint-%lld.h5%n", &s, &used) != 1 || name[used] != '\0' || s < 0) return 0;
    *step = s;
    return 1;
}

static int newest_first(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x < y) - (x > y);
}

/* The steps of checkpoint-*.h5 in dir, newest first, in *steps (malloc;
 * NULL when there are none). */
static size_t list_checkpoints(const char *dir, int64_t **steps) {
    *steps = NULL;
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t s;
        if (!step_of(e->d_name, &s)) continue;
        if (n == cap) {
            int64_t *grown = realloc(*steps, (cap = cap ? 2 * cap : 64) * sizeof *grown);
            if (!grown) break;
            *steps = grown;
        }
        (*steps)[n++] = s;
    }
    closedir(d);
    if (n) qsort(*steps, n, sizeof **steps, newest_first);
    return n;
}

/* A save killed before its rename leaves its temporary (a whole
 * checkpoint's size) behind; a preempted run would collect one per kill.
 * Called once a save of this run has completed, when no other save of it
 * can be in flight. Only names our atomic writer makes are removed. */
static void remove_stale_temporaries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        long long s;
        long pid;
        int used = 0;
        if ((sscanf(e->d_name, "checkpoint-%lld.h5.tmp.%ld%n", &s, &pid, &used) == 2 ||
             sscanf(e->d_name, POINTER_FILE ".tmp.%ld%n", &pid, &used) == 1) &&
            e->d_name[used] == '\0') {
            char full[4096 + 300];
            snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
            unlink(full);
        }
    }
    closedir(d);
}

static lt_status verify(const char *path, FILE *out, int tensors, lt_error *err);

lt_status lt_checkpoint_save(const char *output_dir, lt_model *m, const lt_adamw *opt,
                             const lt_ckpt_meta *meta, const char *run_config_json, int keep,
                             char *written, size_t cap, lt_error *err) {
    lt_ck_quiet();
    const lt_param_table *t = lt_model_lora_table(m);
    if (!t || !lt_model_lora_config(m) || opt->n != t->numel)
        return lt_fail(err, LT_ERR_INVALID, "checkpoint: the model's LoRA state and the optimizer disagree");
    const lt_model_config *c = lt_model_get_config(m);
    float *state = malloc(3 * t->numel * sizeof(float) + 1);
    float *scratch = malloc(lt_ck_largest_rotary(c, t) * sizeof(float) + 1);
    if (!state || !scratch) {
        free(state);
        free(scratch);
        return lt_fail(err, LT_ERR_NOMEM, "checkpoint: out of memory");
    }
    const lt_ops *o = lt_model_get_ops(m);
    o->download(o, state, lt_model_lora_params(m), t->numel * sizeof(float));
    o->download(o, state + t->numel, opt->m, t->numel * sizeof(float));
    o->download(o, state + 2 * t->numel, opt->v, t->numel * sizeof(float));
    for (int g = 0; g < 3; g++)
        for (int i = 0; i < t->count; i++) lt_ck_reorder(c, &t->t[i], state + (size_t)g * t->numel + t->t[i].offset, scratch, 1);
    free(scratch);
    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoint-%lld.h5", output_dir, (long long)meta->global_step);
    void *image = NULL;
    size_t size = 0;
    int ok = build_image(m, opt, meta, run_config_json, state, &image, &size);
    free(state);
    if (!ok)
        return lt_fail(err, LT_ERR_NOMEM, "%s: cannot build the checkpoint in memory (HDF5 failed or "
                       "out of memory); the previous checkpoint is kept", path);
    lt_atomic_file af;
    lt_status st = lt_atomic_open(&af, path, err);
    if (st == LT_OK) st = lt_atomic_write(&af, image, size, err);
    free(image);
    if (st == LT_OK && fflush(af.f) != 0)
        st = lt_fail(err, LT_ERR_IO, "%s: write failed: %s", af.tmp, strerror(errno));
    /* What reached the file is read back and verified before it replaces
     * anything: save_total_limit may delete the checkpoint it supersedes. */
    lt_error ve;
    if (st == LT_OK && verify(af.tmp, NULL, 0, &ve) != LT_OK)
        st = lt_fail(err, LT_ERR_IO, "%s: the written checkpoint does not verify (%s)", path, ve.msg);
    if (st != LT_OK) {
        lt_atomic_abort(&af);
        return lt_fail_context(err, "checkpoint not saved (the previous one is kept)");
    }
    return lt_ck_place(&af, output_dir, path, meta->global_step, keep, written, cap, err);
}

/* The written temporary file of af: flushed, renamed into place, then the
 * pointer moved to it and the oldest checkpoints beyond keep removed. */
lt_status lt_ck_place(lt_atomic_file *af, const char *output_dir, const char *path, int64_t step,
                       int keep, char *written, size_t cap, lt_error *err) {
    fault_point("before_rename", step);
    lt_status st = lt_atomic_commit(af, err);
    if (st != LT_OK) return lt_fail_context(err, "checkpoint not saved (the previous one is kept)");
    fault_point("before_pointer", step);
    char ptr[4096 + 32];
    snprintf(ptr, sizeof ptr, "%s/" POINTER_FILE, output_dir);
    if ((st = lt_atomic_write_text(ptr, strrchr(path, '/') + 1, err)) != LT_OK) return st;
    if (written) snprintf(written, cap, "%s", path);
    remove_stale_temporaries(output_dir);
    if (keep > 0) {
        int64_t *steps;
        size_t n = list_checkpoints(output_dir, &steps);
        for (size_t i = (size_t)keep; i < n; i++) {
            if (steps[i] == step) continue;
            char old[4096 + 64];
            snprintf(old, sizeof old, "%s/checkpoint-%lld.h5", output_dir, (long long)steps[i]);
            unlink(old);
        }
        free(steps);
    }
    fault_point("after_save", step);
    return LT_OK;
}

/* ------------------------------------------------------------- reading */

lt_status lt_ck_bad(lt_ck_reader *r, const char *what) {
    return lt_fail(r->err, LT_ERR_FORMAT, "%s: %s", r->path, what);
}

/* Attribute values: the manifest has vouched for them by the time any is
 * read (open_checked), so these only convert. */
lt_status lt_ck_get_num(lt_ck_reader *r, hid_t obj, const char *name, lt_mf_kind kind, void *v) {
    if (lt_h5_attr_number(obj, name, kind, v)) return LT_OK;
    char msg[160];
    snprintf(msg, sizeof msg, "attribute %s is missing or not a number (not a loratrain checkpoint, or damaged)",
             name);
    return lt_ck_bad(r, msg);
}

lt_status lt_ck_get_str(lt_ck_reader *r, hid_t obj, const char *name, char **out) {
    if (lt_h5_attr_string(obj, name, MAX_STR, out)) return LT_OK;
    char msg[160];
    snprintf(msg, sizeof msg, "attribute %s is missing or not a string of at most %d bytes", name, MAX_STR);
    return lt_ck_bad(r, msg);
}

void lt_ck_close(lt_ck_reader *r) {
    lt_manifest_free(r->mf);
    r->mf = NULL;
    if (r->f >= 0) H5Fclose(r->f);
    r->f = -1;
}

/* Opens r->path, checks format and version, reads the manifest and checks
 * every attribute and the shape of every dataset against it (data: the
 * values of every dataset too). */
lt_status lt_ck_open(lt_ck_reader *r, int data) {
    lt_ck_quiet();
    r->f = -1;
    r->mf = NULL;
    if (access(r->path, R_OK) != 0)
        return lt_fail(r->err, LT_ERR_IO, "%s: cannot open: %s", r->path, strerror(errno));
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (H5Fis_hdf5(r->path) > 0) r->f = H5Fopen(r->path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (r->f < 0) return lt_ck_bad(r, "not a readable HDF5 file (truncated or damaged?)");
    char *fmt = NULL;
    lt_status st = lt_ck_get_str(r, r->f, "format", &fmt);
    if (st == LT_OK && strcmp(fmt, LT_CHECKPOINT_FORMAT) != 0) st = lt_ck_bad(r, "format is not " LT_CHECKPOINT_FORMAT);
    free(fmt);
    int64_t v = 0;
    if (st == LT_OK) st = lt_ck_get_num(r, r->f, "format_version", LT_MF_I64, &v);
    if (st == LT_OK && v == 1)
        st = lt_fail(r->err, LT_ERR_FORMAT, "%s: format_version 1, written by an older loratrain whose "
                     "checkpoints have no checksum over their metadata; this loratrain reads version %d "
                     "(continue or export that run with the loratrain that wrote it)",
                     r->path, LT_CHECKPOINT_VERSION);
    else if (st == LT_OK && v != LT_CHECKPOINT_VERSION)
        st = lt_fail(r->err, LT_ERR_FORMAT, "%s: format_version %lld, this loratrain reads version %d",
                     r->path, (long long)v, LT_CHECKPOINT_VERSION);
    if (st == LT_OK) st = lt_manifest_read(r->f, r->path, &r->mf, r->err);
    if (st == LT_OK) st = lt_manifest_verify(r->mf, r->f, r->path, data, r->err);
    char *order = NULL;
    if (st == LT_OK && (st = lt_ck_get_str(r, r->f, "tensor_row_order", &order)) == LT_OK &&
        strcmp(order, LT_CHECKPOINT_ROW_ORDER) != 0)
        st = lt_ck_bad(r, "tensor_row_order is not " LT_CHECKPOINT_ROW_ORDER);
    free(order);
    if (st != LT_OK) lt_ck_close(r);
    return st;
}

/* Reads dataset gname/name, which must be rows x cols, into dst (the
 * file's row order) and checks it against the manifest's hash. */
lt_status lt_ck_read_tensor(lt_ck_reader *r, hid_t g, const char *gname, const char *name, int rows, int cols,
                             float *dst) {
    char msg[LT_TENSOR_NAME_MAX + 300], full[LT_TENSOR_NAME_MAX + 128];
    snprintf(full, sizeof full, "/%s/%s", gname, name);
    if (H5Lexists(g, name, H5P_DEFAULT) <= 0) {
        snprintf(msg, sizeof msg, "%s is missing (a checkpoint of other target modules?)", full);
        return lt_ck_bad(r, msg);
    }
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT), sp = d >= 0 ? H5Dget_space(d) : -1;
    hsize_t dims[2] = {0, 0};
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (nd == 2) H5Sget_simple_extent_dims(sp, dims, NULL);
    lt_status st = LT_OK;
    if (nd != 2 || dims[0] != (hsize_t)rows || dims[1] != (hsize_t)cols) {
        snprintf(msg, sizeof msg, "%s is %llu x %llu, this run expects %d x %d (another r or model?)", full,
                 (unsigned long long)dims[0], (unsigned long long)dims[1], rows, cols);
        st = lt_fail(r->err, LT_ERR_CONFIG, "%s: %s", r->path, msg);
    }
    uint64_t want = 0;
    if (st == LT_OK && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0) {
        snprintf(msg, sizeof msg, "%s cannot be read (truncated or damaged)", full);
        st = lt_ck_bad(r, msg);
    }
    if (st == LT_OK && !lt_manifest_tensor_hash(r->mf, full, &want)) {
        snprintf(msg, sizeof msg, "%s is not in the manifest", full);
        st = lt_ck_bad(r, msg);
    }
    if (st == LT_OK && lt_hash64(dst, (size_t)rows * (size_t)cols * sizeof(float)) != want) {
        snprintf(msg, sizeof msg, "%s fails its checksum (the file is damaged)", full);
        st = lt_ck_bad(r, msg);
    }
    if (sp >= 0) H5Sclose(sp);
    if (d >= 0) H5Dclose(d);
    return st;
}

lt_status lt_ck_read_meta(lt_ck_reader *r, lt_ckpt_meta *meta) {
    memset(meta, 0, sizeof *meta);
    int64_t ws = 0;
    char *base = NULL, *kind = NULL;
    lt_status st = lt_ck_get_num(r, r->f, "global_step", LT_MF_I64, &meta->global_step);
    if (st == LT_OK) st = lt_ck_get_num(r, r->f, "tokens_seen", LT_MF_I64, &meta->tokens_seen);
    if (st == LT_OK) st = lt_ck_get_num(r, r->f, "data_epoch", LT_MF_U64, &meta->cursor.epoch);
    if (st == LT_OK) st = lt_ck_get_num(r, r->f, "data_position", LT_MF_U64, &meta->cursor.position);
    if (st == LT_OK) st = lt_ck_get_num(r, r->f, "seed", LT_MF_U64, &meta->seed);
    if (st == LT_OK) st = lt_ck_get_num(r, r->f, "world_size", LT_MF_I64, &ws);
    if (st == LT_OK) st = lt_ck_get_num(r, r->f, "base_model_bytes", LT_MF_U64, &meta->base_bytes);
    if (st == LT_OK) st = lt_ck_get_num(r, r->f, "base_model_fingerprint", LT_MF_U64, &meta->base_fingerprint);
    if (st == LT_OK) st = lt_ck_get_str(r, r->f, "base_model_path", &base);
    if (st == LT_OK && strlen(base) >= sizeof meta->base_path) st = lt_ck_bad(r, "base_model_path is too long");
    if (st == LT_OK) snprintf(meta->base_path, sizeof meta->base_path, "%s", base);
    if (st == LT_OK && (ws < 1 || ws > (1 << 24))) st = lt_ck_bad(r, "world_size is not a number of ranks");
    meta->world_size = (int)ws;
    hid_t s = st == LT_OK ? H5Gopen2(r->f, "scheduler", H5P_DEFAULT) : -1;
    if (st == LT_OK && s < 0) st = lt_ck_bad(r, "group scheduler is missing");
    if (st == LT_OK) st = lt_ck_get_str(r, s, "lr_scheduler_type", &kind);
    if (st == LT_OK && lt_lr_schedule_parse(kind, &meta->sched.kind, r->err) != LT_OK) st = lt_ck_bad(r, "unknown lr_scheduler_type");
    if (st == LT_OK) st = lt_ck_get_num(r, s, "learning_rate", LT_MF_F64, &meta->sched.lr);
    if (st == LT_OK) st = lt_ck_get_num(r, s, "warmup_steps", LT_MF_I64, &meta->sched.warmup_steps);
    if (st == LT_OK) st = lt_ck_get_num(r, s, "total_steps", LT_MF_I64, &meta->sched.total_steps);
    if (s >= 0) H5Gclose(s);
    free(base);
    free(kind);
    if (st == LT_OK && (meta->global_step < 0 || meta->tokens_seen < 0))
        st = lt_ck_bad(r, "global_step or tokens_seen is negative");
    return st;
}

/* The finetuning_type attribute. */
lt_status lt_ck_read_type(lt_ck_reader *r, char *type, size_t cap) {
    char *s = NULL;
    lt_status st = lt_ck_get_str(r, r->f, "finetuning_type", &s);
    if (st == LT_OK && strcmp(s, "lora") != 0 && strcmp(s, "full") != 0) st = lt_ck_bad(r, "finetuning_type is neither lora nor full");
    if (st == LT_OK) snprintf(type, cap, "%s", s);
    free(s);
    return st;
}

lt_status lt_checkpoint_read_header(const char *path, lt_ckpt_meta *meta, char *type, size_t cap,
                                    char **run_config, lt_error *err) {
    *run_config = NULL;
    lt_ck_reader r = {path, -1, err, NULL};
    lt_status st = lt_ck_open(&r, 0);
    if (st != LT_OK) return st;
    if ((st = lt_ck_read_type(&r, type, cap)) == LT_OK && (st = lt_ck_read_meta(&r, meta)) == LT_OK)
        st = lt_ck_get_str(&r, r.f, "run_config", run_config);
    lt_ck_close(&r);
    if (st != LT_OK) {
        free(*run_config);
        *run_config = NULL;
    }
    return st;
}

lt_status lt_checkpoint_load(const char *path, lt_model *m, lt_adamw *opt, uint64_t base_bytes,
                             uint64_t base_fingerprint, lt_ckpt_meta *meta, lt_error *err) {
    lt_ck_reader r = {path, -1, err, NULL};
    lt_status st = lt_ck_open(&r, 0);
    if (st != LT_OK) return st;
    const lt_lora_config *lc = lt_model_lora_config(m);
    const lt_param_table *t = lt_model_lora_table(m);
    const lt_model_config *c = lt_model_get_config(m);
    int64_t rr = 0, rs = 0, step = 0;
    double alpha = 0;
    char *targets = NULL, want[256], type[32];
    float *params = NULL, *scratch = NULL;
    if (!t || !lc || opt->n != t->numel) {
        st = lt_fail(err, LT_ERR_INVALID, "checkpoint: the model's LoRA state and the optimizer disagree");
        goto done;
    }
    if ((st = lt_ck_read_type(&r, type, sizeof type)) != LT_OK || (st = lt_ck_read_meta(&r, meta)) != LT_OK) goto done;
    if (strcmp(type, "lora") != 0) {
        st = lt_fail(err, LT_ERR_CONFIG, "%s: holds a %s fine-tuning checkpoint; this run trains LoRA "
                     "adapters", path, type);
        goto done;
    }
    if ((st = lt_ck_get_num(&r, r.f, "lora_r", LT_MF_I64, &rr)) != LT_OK) goto done;
    if ((st = lt_ck_get_num(&r, r.f, "lora_alpha", LT_MF_F64, &alpha)) != LT_OK) goto done;
    if ((st = lt_ck_get_num(&r, r.f, "use_rslora", LT_MF_I64, &rs)) != LT_OK) goto done;
    if ((st = lt_ck_get_str(&r, r.f, "target_modules", &targets)) != LT_OK) goto done;
    targets_text(lc->targets, want, sizeof want);
    if (rr != lc->r || alpha != (double)lc->alpha || rs != lc->use_rslora || strcmp(targets, want) != 0) {
        st = lt_fail(err, LT_ERR_CONFIG,
                     "%s: holds LoRA r %lld, lora_alpha %g, use_rslora %lld on %s; this run has r %d, "
                     "lora_alpha %g, use_rslora %d on %s",
                     path, (long long)rr, alpha, (long long)rs, targets, lc->r, (double)lc->alpha,
                     lc->use_rslora, want);
        goto done;
    }
    if (base_bytes && (meta->base_bytes != base_bytes || meta->base_fingerprint != base_fingerprint)) {
        st = lt_fail(err, LT_ERR_CONFIG,
                     "%s: was trained on base model %s (%llu bytes, fingerprint %016llx), not on this "
                     "run's (%llu bytes, fingerprint %016llx)",
                     path, meta->base_path, (unsigned long long)meta->base_bytes,
                     (unsigned long long)meta->base_fingerprint, (unsigned long long)base_bytes,
                     (unsigned long long)base_fingerprint);
        goto done;
    }
    /* Parameters and both moments are read into host memory and reach
     * the model's buffers (on its device) only once all of them verify. */
    params = malloc(3 * t->numel * sizeof(float) + 1);
    scratch = malloc(lt_ck_largest_rotary(c, t) * sizeof(float) + 1);
    if (!params || !scratch) {
        st = lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    float *dst[3] = {params, params + t->numel, params + 2 * t->numel};
    for (int g = 0; g < 3 && st == LT_OK; g++) {
        hid_t grp = H5Gopen2(r.f, k_groups[g], H5P_DEFAULT);
        if (grp < 0) {
            char msg[96];
            snprintf(msg, sizeof msg, "group %s is missing", k_groups[g]);
            st = lt_ck_bad(&r, msg);
            break;
        }
        for (int i = 0; i < t->count && st == LT_OK; i++) {
            char name[LT_TENSOR_NAME_MAX + 32];
            snprintf(name, sizeof name, PEFT_PREFIX "%s", t->t[i].name);
            float *x = dst[g] + t->t[i].offset;
            st = lt_ck_read_tensor(&r, grp, k_groups[g], name, t->t[i].rows, t->t[i].cols, x);
            if (st == LT_OK) lt_ck_reorder(c, &t->t[i], x, scratch, 0);
        }
        if (st == LT_OK && g == 1) {
            hid_t o = H5Gopen2(r.f, "optimizer", H5P_DEFAULT);
            st = lt_ck_get_num(&r, o, "step", LT_MF_I64, &step);
            H5Gclose(o);
        }
        H5Gclose(grp);
    }
    if (st == LT_OK && step != meta->global_step)
        st = lt_ck_bad(&r, "the optimizer's step is not global_step (damaged or assembled from two checkpoints)");
    if (st == LT_OK) {
        const lt_ops *o = lt_model_get_ops(m);
        o->upload(o, lt_model_lora_params(m), dst[0], t->numel * sizeof(float));
        o->upload(o, opt->m, dst[1], t->numel * sizeof(float));
        o->upload(o, opt->v, dst[2], t->numel * sizeof(float));
        opt->step = step;
    }
done:
    free(params);
    free(scratch);
    free(targets);
    lt_ck_close(&r);
    return st;
}

/* ---------------------------------------------------------- verifying */

/* A LoRA checkpoint's tensors as PEFT would need them: every name a LoRA
 * weight of a targeted module, A [r, in] and B [out, r], the same shapes
 * for a module in every layer, every layer from 0 up holding both of every
 * targeted module, and the moments holding exactly the adapter's tensors.
 * (The manifest already says nothing changed since the save; this says
 * the save itself describes a usable adapter.) */
static lt_status check_lora_layout(lt_ck_reader *r, int64_t rank, const char *targets, FILE *out, int tensors) {
    unsigned mask = 0;
    lt_error e2;
    if (lt_lora_parse_targets(targets, &mask, &e2) != LT_OK) return lt_ck_bad(r, "target_modules is not a list of modules");
    if (rank < 1 || rank > (1 << 20)) return lt_ck_bad(r, "lora_r is not a LoRA rank");
    /* [module][A or B]: shape seen, and a bit per layer present. */
    hsize_t shape[LT_MOD_COUNT][2][2];
    int layers = -1;
    memset(shape, 0, sizeof shape);
    unsigned char *present = NULL;
    size_t present_cap = 0;
    lt_status st = LT_OK;
    uint64_t counts[3] = {0, 0, 0};
    for (int g = 0; g < 3 && st == LT_OK; g++) {
        hid_t grp = H5Gopen2(r->f, k_groups[g], H5P_DEFAULT);
        H5G_info_t gi;
        if (grp < 0 || H5Gget_info(grp, &gi) < 0) {
            if (grp >= 0) H5Gclose(grp);
            char msg[96];
            snprintf(msg, sizeof msg, "group %s is missing", k_groups[g]);
            return lt_ck_bad(r, msg);
        }
        counts[g] = gi.nlinks;
        for (hsize_t i = 0; i < gi.nlinks && st == LT_OK; i++) {
            char name[LT_TENSOR_NAME_MAX + 64], block[16], module[16], ab = 0, msg[LT_TENSOR_NAME_MAX + 200];
            int layer = -1, used = 0;
            hsize_t dims[2] = {0, 0};
            if (H5Lget_name_by_idx(grp, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) < 0) {
                st = lt_ck_bad(r, "a tensor name cannot be read");
                break;
            }
            int m = -1;
            if (sscanf(name, PEFT_PREFIX "model.layers.%d.%15[a-z_].%15[a-z_].lora_%c.weight%n", &layer, block,
                       module, &ab, &used) == 4 && name[used] == '\0' && layer >= 0 && layer < (1 << 16) &&
                (ab == 'A' || ab == 'B'))
                for (int k = 0; k < LT_MOD_COUNT; k++)
                    if (!strcmp(module, lt_module_name((lt_module)k))) m = k;
            if (m < 0 || !(mask & (1u << m))) {
                snprintf(msg, sizeof msg, "/%s/%s is not a LoRA weight of a module in target_modules (%s)",
                         k_groups[g], name, targets);
                st = lt_ck_bad(r, msg);
                break;
            }
            hid_t d = H5Dopen2(grp, name, H5P_DEFAULT), sp = d >= 0 ? H5Dget_space(d) : -1;
            int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
            if (nd == 2) H5Sget_simple_extent_dims(sp, dims, NULL);
            if (sp >= 0) H5Sclose(sp);
            if (d >= 0) H5Dclose(d);
            const int b = ab == 'B';
            const char *rule = NULL;
            if (nd != 2 || dims[0] == 0 || dims[1] == 0 || dims[0] > (1u << 24) || dims[1] > (1u << 24))
                rule = "is not a 2-D array";
            else if (!b && dims[0] != (hsize_t)rank)
                rule = "has not lora_r rows (lora_A is [r, in_features]: transposed?)";
            else if (b && dims[1] != (hsize_t)rank)
                rule = "has not lora_r columns (lora_B is [out_features, r]: transposed?)";
            else if (shape[m][b][0] && (shape[m][b][0] != dims[0] || shape[m][b][1] != dims[1]))
                rule = "has another shape than the same weight of other layers";
            if (rule) {
                snprintf(msg, sizeof msg, "/%s/%s is %llu x %llu: it %s", k_groups[g], name,
                         (unsigned long long)dims[0], (unsigned long long)dims[1], rule);
                st = lt_ck_bad(r, msg);
                break;
            }
            shape[m][b][0] = dims[0];
            shape[m][b][1] = dims[1];
            if (layer > layers) layers = layer;
            const size_t bit = ((size_t)layer * LT_MOD_COUNT + (size_t)m) * 2 + (size_t)b;
            if (bit / 8 >= present_cap) {
                size_t cap = (bit / 8 + 1) * 2;
                unsigned char *grown = realloc(present, cap);
                if (!grown) {
                    st = lt_fail(r->err, LT_ERR_NOMEM, "%s: out of memory", r->path);
                    break;
                }
                memset(grown + present_cap, 0, cap - present_cap);
                present = grown, present_cap = cap;
            }
            if (g == 0) present[bit / 8] |= (unsigned char)(1u << (bit % 8));
            if (g == 0 && out && tensors)
                fprintf(out, "    %s [%llu, %llu]\n", name, (unsigned long long)dims[0], (unsigned long long)dims[1]);
        }
        H5Gclose(grp);
    }
    /* Every layer 0..layers has both weights of every targeted module. */
    for (int l = 0; st == LT_OK && l <= layers; l++)
        for (int m = 0; st == LT_OK && m < LT_MOD_COUNT; m++)
            for (int b = 0; st == LT_OK && (mask & (1u << m)) && b < 2; b++) {
                const size_t bit = ((size_t)l * LT_MOD_COUNT + (size_t)m) * 2 + (size_t)b;
                if (!present || bit / 8 >= present_cap || !(present[bit / 8] & (1u << (bit % 8)))) {
                    char msg[200];
                    snprintf(msg, sizeof msg, "/adapter lacks the %s lora_%c weight of layer %d (the other layers "
                             "have it)", lt_module_name((lt_module)m), b ? 'B' : 'A', l);
                    st = lt_ck_bad(r, msg);
                }
            }
    free(present);
    if (st == LT_OK && layers < 0) st = lt_ck_bad(r, "/adapter holds no tensor");
    if (st == LT_OK && (counts[1] != counts[0] || counts[2] != counts[0]))
        st = lt_ck_bad(r, "the optimizer's moments do not hold exactly the adapter's tensors");
    /* The moments' names and shapes equal the adapter's: each group was
     * checked against the same rules and holds as many tensors; the
     * manifest walk matched every dataset by name, so a moment absent
     * from /adapter would have failed the layer check above or the counts. */
    return st;
}

/* The tensors of /model (a full fine-tuning checkpoint) as a table in the
 * order of their offsets, which must tile the flat moments without gaps;
 * lists them when tensors is set. */
static lt_status model_table(lt_ck_reader *r, lt_param_table *t, FILE *out, int tensors) {
    hid_t g = H5Gopen2(r->f, "model", H5P_DEFAULT);
    H5G_info_t gi;
    if (g < 0 || H5Gget_info(g, &gi) < 0) {
        if (g >= 0) H5Gclose(g);
        return lt_ck_bad(r, "group model is missing");
    }
    typedef struct {
        char name[LT_TENSOR_NAME_MAX];
        uint64_t off, rows, cols;
    } item;
    item *items = calloc(gi.nlinks ? gi.nlinks : 1, sizeof *items);
    lt_status st = items ? LT_OK : lt_fail(r->err, LT_ERR_NOMEM, "%s: out of memory", r->path);
    for (hsize_t i = 0; i < gi.nlinks && st == LT_OK; i++) {
        char name[LT_TENSOR_NAME_MAX + 64];
        hid_t d = -1, sp = -1;
        hsize_t dims[2] = {0, 0};
        uint64_t off = 0;
        if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) < 0 ||
            strlen(name) >= LT_TENSOR_NAME_MAX || (d = H5Dopen2(g, name, H5P_DEFAULT)) < 0 ||
            (sp = H5Dget_space(d)) < 0 || H5Sget_simple_extent_ndims(sp) != 2 ||
            H5Sget_simple_extent_dims(sp, dims, NULL) < 0 || dims[0] == 0 || dims[1] == 0 ||
            dims[0] * dims[1] > (hsize_t)1 << 31 || !lt_h5_attr_number(d, "offset", LT_MF_U64, &off))
            st = lt_ck_bad(r, "a tensor of /model is not a 2-D array with an offset");
        if (sp >= 0) H5Sclose(sp);
        if (d >= 0) H5Dclose(d);
        if (st == LT_OK) {
            snprintf(items[i].name, sizeof items[i].name, "%s", name);
            items[i].off = off, items[i].rows = dims[0], items[i].cols = dims[1];
        }
    }
    H5Gclose(g);
    /* By offset: a selection sort keeps this free of a comparison callback
     * over a local type; /model holds hundreds of tensors at most. */
    for (hsize_t i = 0; st == LT_OK && i < gi.nlinks; i++) {
        hsize_t best = i;
        for (hsize_t j = i + 1; j < gi.nlinks; j++)
            if (items[j].off < items[best].off) best = j;
        item tmp = items[i];
        items[i] = items[best];
        items[best] = tmp;
        if (items[i].off != t->numel) {
            char msg[LT_TENSOR_NAME_MAX + 160];
            snprintf(msg, sizeof msg, "/model/%s starts at offset %llu, where %zu was expected (a tensor is "
                     "missing or overlaps)", items[i].name, (unsigned long long)items[i].off, t->numel);
            st = lt_ck_bad(r, msg);
            break;
        }
        st = lt_table_add(t, items[i].name, -1, (int)items[i].rows, (int)items[i].cols, r->err);
        if (st == LT_OK && out && tensors)
            fprintf(out, "    %s [%llu, %llu] at offset %llu\n", items[i].name, (unsigned long long)items[i].rows,
                    (unsigned long long)items[i].cols, (unsigned long long)items[i].off);
    }
    free(items);
    if (st == LT_OK && t->count == 0) st = lt_ck_bad(r, "/model holds no tensor");
    return st;
}

/* Format, version, the manifest over every attribute and dataset, and the
 * layout; tensors: also one line per tensor (name and shape). */
static lt_status verify(const char *path, FILE *out, int tensors, lt_error *err) {
    lt_ck_reader r = {path, -1, err, NULL};
    lt_status st = lt_ck_open(&r, 1);
    if (st != LT_OK) return st;
    lt_ckpt_meta meta;
    char *cfg = NULL, *targets = NULL, type[32];
    int64_t rr = 0;
    if ((st = lt_ck_read_type(&r, type, sizeof type)) == LT_OK && (st = lt_ck_read_meta(&r, &meta)) == LT_OK)
        st = lt_ck_get_str(&r, r.f, "run_config", &cfg);
    const int full = st == LT_OK && !strcmp(type, "full");
    if (st == LT_OK && !full && (st = lt_ck_get_str(&r, r.f, "target_modules", &targets)) == LT_OK)
        st = lt_ck_get_num(&r, r.f, "lora_r", LT_MF_I64, &rr);
    if (st == LT_OK && out) {
        fprintf(out, "%s: %s version %d, every attribute and tensor verified against its manifest\n"
                "  global_step %lld, tokens_seen %lld, data cursor epoch %llu position %llu, seed %llu, "
                "written by %d rank(s)\n  base model %s (%llu bytes, fingerprint %016llx)\n",
                path, LT_CHECKPOINT_FORMAT, LT_CHECKPOINT_VERSION, (long long)meta.global_step,
                (long long)meta.tokens_seen, (unsigned long long)meta.cursor.epoch,
                (unsigned long long)meta.cursor.position, (unsigned long long)meta.seed, meta.world_size,
                meta.base_path, (unsigned long long)meta.base_bytes, (unsigned long long)meta.base_fingerprint);
        if (!full) fprintf(out, "  LoRA r %lld on %s\n", (long long)rr, targets);
        fprintf(out, "  %s schedule, lr %g, warmup %lld of %lld steps; rows of q_proj/k_proj in Hugging Face's "
                "order\n", lt_lr_schedule_name(meta.sched.kind), meta.sched.lr, (long long)meta.sched.warmup_steps,
                (long long)meta.sched.total_steps);
    }
    if (st == LT_OK && full) {
        lt_param_table t;
        lt_table_init(&t);
        st = model_table(&r, &t, out, tensors);
        for (int w = 0; w < 2 && st == LT_OK; w++) {
            char name[64];
            snprintf(name, sizeof name, "/optimizer/%s", w ? "exp_avg_sq" : "exp_avg");
            uint64_t h;
            if (!lt_manifest_segment_hash(r.mf, name, 0, &h)) st = lt_ck_bad(&r, "the optimizer's flat moments are missing");
            hid_t d = st == LT_OK ? H5Dopen2(r.f, name, H5P_DEFAULT) : -1;
            hid_t sp = d >= 0 ? H5Dget_space(d) : -1;
            hsize_t n = 0;
            if (sp >= 0) H5Sget_simple_extent_dims(sp, &n, NULL);
            if (st == LT_OK && n != t.numel) {
                char msg[160];
                snprintf(msg, sizeof msg, "%s holds %llu values, /model %zu", name, (unsigned long long)n, t.numel);
                st = lt_ck_bad(&r, msg);
            }
            if (sp >= 0) H5Sclose(sp);
            if (d >= 0) H5Dclose(d);
        }
        if (st == LT_OK && out)
            fprintf(out, "  full fine-tuning: /model %d tensors, %zu float32 values; /optimizer/exp_avg and "
                         "exp_avg_sq flat, %zu values each\n", t.count, t.numel, t.numel);
        lt_table_free(&t);
    } else if (st == LT_OK) {
        st = check_lora_layout(&r, rr, targets, out, tensors);
    }
    if (st == LT_OK && out) fprintf(out, "  run_config: %s\n", cfg);
    free(cfg);
    free(targets);
    lt_ck_close(&r);
    return st;
}

lt_status lt_checkpoint_inspect(const char *path, FILE *out, int tensors, lt_error *err) {
    return verify(path, out, tensors, err);
}

lt_status lt_checkpoint_resolve(const char *spec, const char *output_dir, FILE *notes, char *path,
                                size_t cap, lt_error *err) {
    if (strcmp(spec, "latest") != 0) {
        snprintf(path, cap, "%s", spec);
        return LT_OK;
    }
    char ptr[4096 + 32], name[512] = "";
    snprintf(ptr, sizeof ptr, "%s/" POINTER_FILE, output_dir);
    FILE *f = fopen(ptr, "r");
    const int has_pointer = f != NULL;
    if (f) {
        if (!fgets(name, sizeof name, f)) name[0] = '\0';
        fclose(f);
        name[strcspn(name, "\r\n")] = '\0';
    }
    lt_error e2;
    int64_t pointed = -1, step;
    if (step_of(name, &step)) {
        pointed = step;
        snprintf(path, cap, "%s/%s", output_dir, name);
        if (verify(path, NULL, 0, &e2) == LT_OK) return LT_OK;
        if (notes)
            fprintf(notes, "loratrain: %s names %s, which does not verify (%s); trying older checkpoints\n",
                    ptr, name, e2.msg);
    }
    int64_t *steps;
    size_t n = list_checkpoints(output_dir, &steps);
    if (n == 0 && !has_pointer) {
        /* Nothing was ever saved here: a job's first run (a requeued
         * job's script passes `latest` every time). */
        path[0] = '\0';
        return LT_OK;
    }
    for (size_t i = 0; i < n; i++) {
        if (steps[i] == pointed) continue;
        snprintf(path, cap, "%s/checkpoint-%lld.h5", output_dir, (long long)steps[i]);
        if (verify(path, NULL, 0, &e2) == LT_OK) {
            free(steps);
            return LT_OK;
        }
        if (notes) fprintf(notes, "loratrain: skipping %s: %s\n", path, e2.msg);
    }
    free(steps);
    return lt_fail(err, LT_ERR_IO, "resume_from_checkpoint latest: no checkpoint in %s verifies", output_dir);
}
