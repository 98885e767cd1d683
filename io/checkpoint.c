#include "io/checkpoint.h"

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
#include "io/fileutil.h"

#define PEFT_PREFIX "base_model.model."
#define POINTER_FILE "latest_checkpoint"
#define MAX_STR 65536

static const char *k_groups[3] = {"adapter", "optimizer/exp_avg", "optimizer/exp_avg_sq"};


/* HDF5 prints an error stack on every failed call; we report one line. */
static void quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

lt_status lt_file_fingerprint(const char *path, uint64_t *bytes, uint64_t *fingerprint,
                              lt_error *err) {
    lt_status st = lt_file_size(path, bytes, err);
    if (st != LT_OK) return st;
    FILE *f = fopen(path, "rb");
    if (!f) return lt_fail(err, LT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    const size_t MiB = 1u << 20;
    unsigned char *buf = malloc(MiB);
    uint64_t h = lt_fnv1a64(LT_FNV1A64_BASIS, bytes, sizeof *bytes);
    for (int part = 0; part < 2 && buf && st == LT_OK; part++) {
        uint64_t at = part == 0 ? 0 : (*bytes > MiB ? *bytes - MiB : 0);
        size_t n = *bytes - at < MiB ? (size_t)(*bytes - at) : MiB;
        if (fseek(f, (long)at, SEEK_SET) != 0) st = lt_fail(err, LT_ERR_IO, "%s: seek failed", path);
        if (st == LT_OK) st = lt_read_exact(f, buf, n, path, "fingerprint", err);
        if (st == LT_OK) h = lt_fnv1a64(h, buf, n);
    }
    if (!buf) st = lt_fail(err, LT_ERR_NOMEM, "%s: fingerprint: out of memory", path);
    free(buf);
    fclose(f);
    *fingerprint = h;
    return st;
}

/* ------------------------------------------------------------- writing */

static int put_attr(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, const void *v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, file_type, sp, H5P_DEFAULT, H5P_DEFAULT);
    int ok = a >= 0 && H5Awrite(a, mem_type, v) >= 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return ok;
}
static int put_i64(hid_t o, const char *n, int64_t v) { return put_attr(o, n, H5T_STD_I64LE, H5T_NATIVE_INT64, &v); }
static int put_u64(hid_t o, const char *n, uint64_t v) { return put_attr(o, n, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v); }
static int put_f64(hid_t o, const char *n, double v) { return put_attr(o, n, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v); }
static int put_str(hid_t o, const char *n, const char *v) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) + 1);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    int ok = put_attr(o, n, t, t, v);
    H5Tclose(t);
    return ok;
}

static int put_tensor(hid_t g, const char *name, const float *data, int rows, int cols) {
    hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t d = H5Dcreate2(g, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int ok = d >= 0 && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    /* The host is little-endian (x86-64, aarch64): these are the file's bytes. */
    ok = ok && put_u64(d, "checksum_fnv1a64",
                       lt_fnv1a64(LT_FNV1A64_BASIS, data, (size_t)rows * (size_t)cols * sizeof(float)));
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    return ok;
}

/* The root attributes every checkpoint has. */
static int put_root_attrs(hid_t f, const lt_ckpt_meta *meta, const char *config_json, const char *type) {
    return put_str(f, "format", LT_CHECKPOINT_FORMAT) && put_i64(f, "format_version", LT_CHECKPOINT_VERSION) &&
           put_str(f, "finetuning_type", type) &&
           put_i64(f, "global_step", meta->global_step) && put_i64(f, "tokens_seen", meta->tokens_seen) &&
           put_u64(f, "data_epoch", meta->cursor.epoch) && put_u64(f, "data_position", meta->cursor.position) &&
           put_u64(f, "seed", meta->seed) && put_i64(f, "world_size", meta->world_size) &&
           put_str(f, "base_model_path", meta->base_path) && put_u64(f, "base_model_bytes", meta->base_bytes) &&
           put_u64(f, "base_model_fingerprint", meta->base_fingerprint) &&
           put_str(f, "run_config", config_json ? config_json : "{}");
}

/* /optimizer's attributes (the group exists). */
static int put_optimizer_attrs(hid_t f, const lt_adamw *opt) {
    hid_t o = H5Gopen2(f, "optimizer", H5P_DEFAULT);
    int ok = o >= 0 && put_i64(o, "step", opt->step) && put_f64(o, "beta1", opt->cfg.beta1) &&
             put_f64(o, "beta2", opt->cfg.beta2) && put_f64(o, "eps", opt->cfg.eps) &&
             put_f64(o, "weight_decay", opt->cfg.weight_decay);
    if (o >= 0) H5Gclose(o);
    return ok;
}

static int put_scheduler(hid_t f, const lt_ckpt_meta *meta) {
    hid_t s = H5Gcreate2(f, "scheduler", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int ok = s >= 0 && put_str(s, "lr_scheduler_type", lt_lr_schedule_name(meta->sched.kind)) &&
             put_f64(s, "learning_rate", meta->sched.lr) && put_i64(s, "warmup_steps", meta->sched.warmup_steps) &&
             put_i64(s, "total_steps", meta->sched.total_steps);
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

/* Builds the checkpoint as an HDF5 file image in memory (the core driver,
 * no backing store) and returns it in *image (malloc). HDF5 never writes
 * the disk itself: a full disk then fails our own fwrite with errno set,
 * instead of leaving HDF5 a half-flushed open file that its exit handler
 * trips over. */
static int build_image(lt_model *m, const lt_adamw *opt, const lt_ckpt_meta *meta,
                       const char *config_json, const float *params, void **image, size_t *size) {
    *image = NULL;
    /* One allocation for the image: the three tensors sets plus room for
     * HDF5's metadata (growing by small increments copies it repeatedly). */
    const size_t guess = 3 * lt_model_lora_table(m)->numel * sizeof(float) + ((size_t)4 << 20);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_core(fapl, guess, 0) < 0) return 0;
    hid_t f = H5Fcreate("checkpoint.h5", H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0) return 0;
    const lt_lora_config *lc = lt_model_lora_config(m);
    char targets[256];
    targets_text(lc->targets, targets, sizeof targets);
    int ok = put_root_attrs(f, meta, config_json, "lora") && put_i64(f, "lora_r", lc->r) &&
             put_f64(f, "lora_alpha", lc->alpha) && put_i64(f, "use_rslora", lc->use_rslora) &&
             put_str(f, "target_modules", targets);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    const lt_param_table *t = lt_model_lora_table(m);
    const float *src[3] = {params, opt->m, opt->v};
    for (int g = 0; g < 3 && ok; g++) {
        hid_t grp = H5Gcreate2(f, k_groups[g], lcpl, H5P_DEFAULT, H5P_DEFAULT);
        ok = grp >= 0;
        for (int i = 0; i < t->count && ok; i++) {
            char name[LT_TENSOR_NAME_MAX + 32];
            snprintf(name, sizeof name, PEFT_PREFIX "%s", t->t[i].name);
            ok = put_tensor(grp, name, src[g] + t->t[i].offset, t->t[i].rows, t->t[i].cols);
        }
        if (ok && g == 1) ok = put_optimizer_attrs(f, opt);
        if (grp >= 0) H5Gclose(grp);
    }
    H5Pclose(lcpl);
    ok = ok && put_scheduler(f, meta);
    ok = ok && H5Fflush(f, H5F_SCOPE_GLOBAL) >= 0;
    ssize_t n = ok ? H5Fget_file_image(f, NULL, 0) : -1;
    ok = ok && n > 0 && (*image = malloc((size_t)n)) != NULL &&
         H5Fget_file_image(f, *image, (size_t)n) == n;
    *size = ok ? (size_t)n : 0;
    ok = H5Fclose(f) >= 0 && ok;
    if (!ok) {
        free(*image);
        *image = NULL;
    }
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

static lt_status place(lt_atomic_file *af, const char *output_dir, const char *path, int64_t step,
                       int keep, char *written, size_t cap, lt_error *err);

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

lt_status lt_checkpoint_save(const char *output_dir, lt_model *m, const lt_adamw *opt,
                             const lt_ckpt_meta *meta, const char *run_config_json, int keep,
                             char *written, size_t cap, lt_error *err) {
    quiet();
    const lt_param_table *t = lt_model_lora_table(m);
    if (!t || !lt_model_lora_config(m) || opt->n != t->numel)
        return lt_fail(err, LT_ERR_INVALID, "checkpoint: the model's LoRA state and the optimizer disagree");
    float *params = malloc(t->numel * sizeof(float));
    if (!params) return lt_fail(err, LT_ERR_NOMEM, "checkpoint: out of memory");
    const lt_ops *o = lt_model_get_ops(m);
    o->download(o, params, lt_model_lora_params(m), t->numel * sizeof(float));
    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoint-%lld.h5", output_dir, (long long)meta->global_step);
    void *image = NULL;
    size_t size = 0;
    int ok = build_image(m, opt, meta, run_config_json, params, &image, &size);
    free(params);
    if (!ok)
        return lt_fail(err, LT_ERR_NOMEM, "%s: cannot build the checkpoint in memory (HDF5 failed or "
                       "out of memory); the previous checkpoint is kept", path);
    lt_atomic_file af;
    lt_status st = lt_atomic_open(&af, path, err);
    if (st == LT_OK) st = lt_atomic_write(&af, image, size, err);
    free(image);
    if (st == LT_OK && fflush(af.f) != 0)
        st = lt_fail(err, LT_ERR_IO, "%s: write failed: %s", af.tmp, strerror(errno));
    if (st != LT_OK) {
        lt_atomic_abort(&af);
        return lt_fail_context(err, "checkpoint not saved (the previous one is kept)");
    }
    return place(&af, output_dir, path, meta->global_step, keep, written, cap, err);
}

/* The written temporary file of af: flushed, renamed into place, then the
 * pointer moved to it and the oldest checkpoints beyond keep removed. */
static lt_status place(lt_atomic_file *af, const char *output_dir, const char *path, int64_t step,
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

typedef struct {
    const char *path;
    hid_t f;
    lt_error *err;
} reader;

static lt_status bad(reader *r, const char *what) {
    return lt_fail(r->err, LT_ERR_FORMAT, "%s: %s", r->path, what);
}

static lt_status get_attr(reader *r, hid_t obj, const char *name, hid_t mem_type, void *v) {
    if (H5Aexists(obj, name) <= 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "attribute %s is missing (not a loratrain checkpoint, or damaged)", name);
        return bad(r, msg);
    }
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    int ok = a >= 0 && H5Aread(a, mem_type, v) >= 0;
    if (a >= 0) H5Aclose(a);
    if (!ok) {
        char msg[160];
        snprintf(msg, sizeof msg, "attribute %s cannot be read (damaged file)", name);
        return bad(r, msg);
    }
    return LT_OK;
}

static lt_status get_str(reader *r, hid_t obj, const char *name, char **out) {
    *out = NULL;
    if (H5Aexists(obj, name) <= 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "attribute %s is missing (not a loratrain checkpoint, or damaged)", name);
        return bad(r, msg);
    }
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), ft = a >= 0 ? H5Aget_type(a) : -1;
    size_t n = ft >= 0 && H5Tget_class(ft) == H5T_STRING && !H5Tis_variable_str(ft) ? H5Tget_size(ft) : 0;
    int ok = n > 0 && n <= MAX_STR;
    if (ok) {
        *out = calloc(1, n + 1);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, n);
        ok = *out && H5Aread(a, mt, *out) >= 0;
        H5Tclose(mt);
    }
    if (ft >= 0) H5Tclose(ft);
    if (a >= 0) H5Aclose(a);
    if (!ok) {
        free(*out);
        *out = NULL;
        char msg[160];
        snprintf(msg, sizeof msg, "attribute %s is not a string of at most %d bytes", name, MAX_STR);
        return bad(r, msg);
    }
    return LT_OK;
}

static lt_status open_checked(reader *r) {
    quiet();
    r->f = -1;
    if (access(r->path, R_OK) != 0)
        return lt_fail(r->err, LT_ERR_IO, "%s: cannot open: %s", r->path, strerror(errno));
    if (H5Fis_hdf5(r->path) <= 0 ||
        (r->f = H5Fopen(r->path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
        return bad(r, "not a readable HDF5 file (truncated or damaged?)");
    char *fmt = NULL;
    lt_status st = get_str(r, r->f, "format", &fmt);
    if (st == LT_OK && strcmp(fmt, LT_CHECKPOINT_FORMAT) != 0) st = bad(r, "format is not " LT_CHECKPOINT_FORMAT);
    free(fmt);
    int64_t v = 0;
    if (st == LT_OK) st = get_attr(r, r->f, "format_version", H5T_NATIVE_INT64, &v);
    if (st == LT_OK && v != LT_CHECKPOINT_VERSION)
        st = lt_fail(r->err, LT_ERR_FORMAT, "%s: format_version %lld, this loratrain reads version %d",
                     r->path, (long long)v, LT_CHECKPOINT_VERSION);
    if (st != LT_OK) {
        H5Fclose(r->f);
        r->f = -1;
    }
    return st;
}

/* Reads dataset g/name, which must be rows x cols, into dst and checks its
 * checksum. */
static lt_status read_tensor(reader *r, hid_t g, const char *gname, const char *name, int rows, int cols,
                             float *dst) {
    char msg[LT_TENSOR_NAME_MAX + 200];
    if (H5Lexists(g, name, H5P_DEFAULT) <= 0) {
        snprintf(msg, sizeof msg, "%s/%s is missing (a checkpoint of other target modules?)", gname, name);
        return bad(r, msg);
    }
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT), sp = d >= 0 ? H5Dget_space(d) : -1;
    hsize_t dims[2] = {0, 0};
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (nd == 2) H5Sget_simple_extent_dims(sp, dims, NULL);
    lt_status st = LT_OK;
    if (nd != 2 || dims[0] != (hsize_t)rows || dims[1] != (hsize_t)cols) {
        snprintf(msg, sizeof msg, "%s/%s is %llu x %llu, this run's adapter expects %d x %d (another r?)",
                 gname, name, (unsigned long long)dims[0], (unsigned long long)dims[1], rows, cols);
        st = lt_fail(r->err, LT_ERR_CONFIG, "%s: %s", r->path, msg);
    }
    uint64_t want = 0;
    if (st == LT_OK && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0) {
        snprintf(msg, sizeof msg, "%s/%s cannot be read (truncated or damaged)", gname, name);
        st = bad(r, msg);
    }
    if (st == LT_OK) st = get_attr(r, d, "checksum_fnv1a64", H5T_NATIVE_UINT64, &want);
    if (st == LT_OK && lt_fnv1a64(LT_FNV1A64_BASIS, dst, (size_t)rows * (size_t)cols * sizeof(float)) != want) {
        snprintf(msg, sizeof msg, "%s/%s fails its checksum (the file is damaged)", gname, name);
        st = bad(r, msg);
    }
    if (sp >= 0) H5Sclose(sp);
    if (d >= 0) H5Dclose(d);
    return st;
}

static lt_status read_meta(reader *r, lt_ckpt_meta *meta) {
    memset(meta, 0, sizeof *meta);
    int64_t ws = 0;
    char *base = NULL, *kind = NULL;
    lt_status st = get_attr(r, r->f, "global_step", H5T_NATIVE_INT64, &meta->global_step);
    if (st == LT_OK) st = get_attr(r, r->f, "tokens_seen", H5T_NATIVE_INT64, &meta->tokens_seen);
    if (st == LT_OK) st = get_attr(r, r->f, "data_epoch", H5T_NATIVE_UINT64, &meta->cursor.epoch);
    if (st == LT_OK) st = get_attr(r, r->f, "data_position", H5T_NATIVE_UINT64, &meta->cursor.position);
    if (st == LT_OK) st = get_attr(r, r->f, "seed", H5T_NATIVE_UINT64, &meta->seed);
    if (st == LT_OK) st = get_attr(r, r->f, "world_size", H5T_NATIVE_INT64, &ws);
    if (st == LT_OK) st = get_attr(r, r->f, "base_model_bytes", H5T_NATIVE_UINT64, &meta->base_bytes);
    if (st == LT_OK) st = get_attr(r, r->f, "base_model_fingerprint", H5T_NATIVE_UINT64, &meta->base_fingerprint);
    if (st == LT_OK) st = get_str(r, r->f, "base_model_path", &base);
    if (st == LT_OK) snprintf(meta->base_path, sizeof meta->base_path, "%s", base);
    meta->world_size = (int)ws;
    hid_t s = st == LT_OK ? H5Gopen2(r->f, "scheduler", H5P_DEFAULT) : -1;
    if (st == LT_OK && s < 0) st = bad(r, "group scheduler is missing");
    if (st == LT_OK) st = get_str(r, s, "lr_scheduler_type", &kind);
    if (st == LT_OK && lt_lr_schedule_parse(kind, &meta->sched.kind, r->err) != LT_OK) st = bad(r, "unknown lr_scheduler_type");
    if (st == LT_OK) st = get_attr(r, s, "learning_rate", H5T_NATIVE_DOUBLE, &meta->sched.lr);
    if (st == LT_OK) st = get_attr(r, s, "warmup_steps", H5T_NATIVE_INT64, &meta->sched.warmup_steps);
    if (st == LT_OK) st = get_attr(r, s, "total_steps", H5T_NATIVE_INT64, &meta->sched.total_steps);
    if (s >= 0) H5Gclose(s);
    free(base);
    free(kind);
    if (st == LT_OK && (meta->global_step < 0 || meta->tokens_seen < 0))
        st = bad(r, "global_step or tokens_seen is negative");
    return st;
}

static lt_status read_type(reader *r, char *type, size_t cap);
static lt_status verify_full(reader *r, FILE *out, int tensors);

lt_status lt_checkpoint_read_header(const char *path, lt_ckpt_meta *meta, char *type, size_t cap,
                                    char **run_config, lt_error *err) {
    *run_config = NULL;
    reader r = {path, -1, err};
    lt_status st = open_checked(&r);
    if (st != LT_OK) return st;
    if ((st = read_type(&r, type, cap)) == LT_OK && (st = read_meta(&r, meta)) == LT_OK)
        st = get_str(&r, r.f, "run_config", run_config);
    H5Fclose(r.f);
    if (st != LT_OK) {
        free(*run_config);
        *run_config = NULL;
    }
    return st;
}

lt_status lt_checkpoint_load(const char *path, lt_model *m, lt_adamw *opt, uint64_t base_bytes,
                             uint64_t base_fingerprint, lt_ckpt_meta *meta, lt_error *err) {
    reader r = {path, -1, err};
    lt_status st = open_checked(&r);
    if (st != LT_OK) return st;
    const lt_lora_config *lc = lt_model_lora_config(m);
    const lt_param_table *t = lt_model_lora_table(m);
    int64_t rr = 0, rs = 0, step = 0;
    double alpha = 0;
    char *targets = NULL, want[256], type[32];
    if ((st = read_type(&r, type, sizeof type)) != LT_OK || (st = read_meta(&r, meta)) != LT_OK) goto done;
    if (strcmp(type, "lora") != 0) {
        st = lt_fail(err, LT_ERR_CONFIG, "%s: holds a %s fine-tuning checkpoint; this run trains LoRA "
                     "adapters", path, type);
        goto done;
    }
    if ((st = get_attr(&r, r.f, "lora_r", H5T_NATIVE_INT64, &rr)) != LT_OK) goto done;
    if ((st = get_attr(&r, r.f, "lora_alpha", H5T_NATIVE_DOUBLE, &alpha)) != LT_OK) goto done;
    if ((st = get_attr(&r, r.f, "use_rslora", H5T_NATIVE_INT64, &rs)) != LT_OK) goto done;
    if ((st = get_str(&r, r.f, "target_modules", &targets)) != LT_OK) goto done;
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
    float *params = malloc(t->numel * sizeof(float));
    if (!params) {
        st = lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    float *dst[3] = {params, opt->m, opt->v};
    for (int g = 0; g < 3 && st == LT_OK; g++) {
        hid_t grp = H5Gopen2(r.f, k_groups[g], H5P_DEFAULT);
        if (grp < 0) {
            char msg[96];
            snprintf(msg, sizeof msg, "group %s is missing", k_groups[g]);
            st = bad(&r, msg);
            break;
        }
        for (int i = 0; i < t->count && st == LT_OK; i++) {
            char name[LT_TENSOR_NAME_MAX + 32];
            snprintf(name, sizeof name, PEFT_PREFIX "%s", t->t[i].name);
            st = read_tensor(&r, grp, k_groups[g], name, t->t[i].rows, t->t[i].cols, dst[g] + t->t[i].offset);
        }
        if (st == LT_OK && g == 1) {
            hid_t o = H5Gopen2(r.f, "optimizer", H5P_DEFAULT);
            st = get_attr(&r, o, "step", H5T_NATIVE_INT64, &step);
            H5Gclose(o);
        }
        H5Gclose(grp);
    }
    if (st == LT_OK) {
        const lt_ops *o = lt_model_get_ops(m);
        o->upload(o, lt_model_lora_params(m), params, t->numel * sizeof(float));
        opt->step = step;
    }
    free(params);
done:
    free(targets);
    H5Fclose(r.f);
    return st;
}

/* Format, version and every checksum, without a model. */
/* tensors: also one line per tensor (name and shape) as it verifies. */
static lt_status verify(const char *path, FILE *out, int tensors, lt_error *err) {
    reader r = {path, -1, err};
    lt_status st = open_checked(&r);
    if (st != LT_OK) return st;
    lt_ckpt_meta meta;
    char *cfg = NULL, *targets = NULL, type[32];
    int64_t rr = 0;
    if ((st = read_type(&r, type, sizeof type)) == LT_OK && (st = read_meta(&r, &meta)) == LT_OK &&
        (st = get_str(&r, r.f, "run_config", &cfg)) == LT_OK && strcmp(type, "full") == 0) {
        if (out)
            fprintf(out, "%s: %s version %d\n  global_step %lld, tokens_seen %lld, data cursor epoch %llu "
                    "position %llu, seed %llu, written by %d rank(s)\n  base model %s (%llu bytes)\n",
                    path, LT_CHECKPOINT_FORMAT, LT_CHECKPOINT_VERSION, (long long)meta.global_step,
                    (long long)meta.tokens_seen, (unsigned long long)meta.cursor.epoch,
                    (unsigned long long)meta.cursor.position, (unsigned long long)meta.seed,
                    meta.world_size, meta.base_path, (unsigned long long)meta.base_bytes);
        st = verify_full(&r, out, tensors);
        if (st == LT_OK && out) fprintf(out, "  run_config: %s\n", cfg);
        free(cfg);
        H5Fclose(r.f);
        return st;
    }
    if (st == LT_OK && (st = get_str(&r, r.f, "target_modules", &targets)) == LT_OK)
        st = get_attr(&r, r.f, "lora_r", H5T_NATIVE_INT64, &rr);
    if (st == LT_OK && out)
        fprintf(out,
                "%s: %s version %d\n  global_step %lld, tokens_seen %lld, data cursor epoch %llu position "
                "%llu, seed %llu, written by %d rank(s)\n  base model %s (%llu bytes, fingerprint %016llx)\n"
                "  LoRA r %lld on %s; %s schedule, lr %g, warmup %lld of %lld steps\n",
                path, LT_CHECKPOINT_FORMAT, LT_CHECKPOINT_VERSION, (long long)meta.global_step,
                (long long)meta.tokens_seen, (unsigned long long)meta.cursor.epoch,
                (unsigned long long)meta.cursor.position, (unsigned long long)meta.seed, meta.world_size,
                meta.base_path, (unsigned long long)meta.base_bytes,
                (unsigned long long)meta.base_fingerprint, (long long)rr, targets,
                lt_lr_schedule_name(meta.sched.kind), meta.sched.lr, (long long)meta.sched.warmup_steps,
                (long long)meta.sched.total_steps);
    for (int g = 0; g < 3 && st == LT_OK; g++) {
        hid_t grp = H5Gopen2(r.f, k_groups[g], H5P_DEFAULT);
        H5G_info_t gi;
        if (grp < 0 || H5Gget_info(grp, &gi) < 0) {
            if (grp >= 0) H5Gclose(grp);
            st = bad(&r, "a group of tensors is missing");
            break;
        }
        uint64_t elements = 0;
        for (hsize_t i = 0; i < gi.nlinks && st == LT_OK; i++) {
            char name[LT_TENSOR_NAME_MAX + 64];
            if (H5Lget_name_by_idx(grp, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) < 0) {
                st = bad(&r, "a tensor name cannot be read");
                break;
            }
            hid_t d = H5Dopen2(grp, name, H5P_DEFAULT), sp = d >= 0 ? H5Dget_space(d) : -1;
            hsize_t dims[2] = {0, 0};
            int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
            if (nd == 2) H5Sget_simple_extent_dims(sp, dims, NULL);
            if (sp >= 0) H5Sclose(sp);
            if (d >= 0) H5Dclose(d);
            if (nd != 2 || dims[0] * dims[1] > (hsize_t)1 << 31) {
                st = bad(&r, "a tensor is not a 2-D array of plausible size");
                break;
            }
            float *buf = malloc((size_t)(dims[0] * dims[1]) * sizeof(float) + 1);
            st = buf ? read_tensor(&r, grp, k_groups[g], name, (int)dims[0], (int)dims[1], buf)
                     : lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", path);
            free(buf);
            elements += dims[0] * dims[1];
            if (st == LT_OK && out && tensors && g == 0) /* the moments share names and shapes */
                fprintf(out, "    %s [%llu, %llu]\n", name, (unsigned long long)dims[0], (unsigned long long)dims[1]);
        }
        if (st == LT_OK && out)
            fprintf(out, "  /%s: %llu tensors, %llu float32 values, checksums verified\n", k_groups[g],
                    (unsigned long long)gi.nlinks, (unsigned long long)elements);
        H5Gclose(grp);
    }
    if (st == LT_OK && out) fprintf(out, "  run_config: %s\n", cfg);
    free(cfg);
    free(targets);
    H5Fclose(r.f);
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

/* ------------------------------------------------- full fine-tuning */

static const char *k_flat[2] = {"exp_avg", "exp_avg_sq"};

static int put_u64_array(hid_t o, const char *name, const uint64_t *v, size_t n) {
    hsize_t dim = n;
    hid_t sp = H5Screate_simple(1, &dim, NULL);
    hid_t a = H5Acreate2(o, name, H5T_STD_U64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    int ok = a >= 0 && H5Awrite(a, H5T_NATIVE_UINT64, v) >= 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return ok;
}

/* Writes the checkpoint's contents into the open file f. With several
 * writers (parallel HDF5) every rank makes every call that creates
 * objects or attributes, with the same values (HDF5 requires metadata
 * operations to be collective); data goes in independently: the weights,
 * the same on every rank, from rank 0; each moment shard from its owner.
 * seg[0..nseg] are the shards' boundaries, seg_hash their checksums.
 * Every rank makes the same sequence of collective calls whatever happens
 * to its own raw-data writes: a rank that stopped early would leave the
 * others waiting in the next collective call for ever. A failed write of
 * this rank's data clears *data_ok instead, and the caller agrees on the
 * outcome after the file is closed. */
static int write_full(hid_t f, lt_model *m, const float *params, const lt_adamw *opt, int rank,
                      size_t my_lo, const size_t *seg, int nseg, const uint64_t (*seg_hash)[2],
                      const lt_ckpt_meta *meta, const char *json, int *data_ok) {
    const lt_param_table *t = lt_model_base_table(m);
    int ok = put_root_attrs(f, meta, json, "full");
    hid_t g = ok ? H5Gcreate2(f, "model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    ok = ok && g >= 0;
    for (int i = 0; i < t->count && ok; i++) {
        const lt_tensor_desc *d = &t->t[i];
        hsize_t dims[2] = {(hsize_t)d->rows, (hsize_t)d->cols};
        hid_t sp = H5Screate_simple(2, dims, NULL);
        hid_t ds = H5Dcreate2(g, d->name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        ok = ds >= 0;
        if (ok && rank == 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, params + d->offset) < 0)
            *data_ok = 0;
        ok = ok && put_u64(ds, "checksum_fnv1a64",
                           lt_fnv1a64(LT_FNV1A64_BASIS, params + d->offset, lt_tensor_numel(d) * sizeof(float)));
        ok = ok && put_u64(ds, "offset", (uint64_t)d->offset);
        if (ds >= 0) H5Dclose(ds);
        H5Sclose(sp);
    }
    if (g >= 0) H5Gclose(g);
    hid_t o = ok ? H5Gcreate2(f, "optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    ok = ok && o >= 0 &&
         put_str(o, "layout", "exp_avg and exp_avg_sq are flat: the tensors of /model back to back, "
                              "each at its offset attribute; checksummed by segment");
    if (o >= 0) H5Gclose(o);
    ok = ok && put_optimizer_attrs(f, opt);
    uint64_t *bounds = malloc(((size_t)nseg + 1) * sizeof *bounds), *hashes = malloc((size_t)nseg * sizeof *hashes);
    ok = ok && bounds && hashes;
    for (int k = 0; ok && k <= nseg; k++) bounds[k] = seg[k];
    for (int w = 0; w < 2 && ok; w++) {
        char name[64];
        snprintf(name, sizeof name, "optimizer/%s", k_flat[w]);
        hsize_t dim = t->numel, lo = my_lo, cnt = opt->n;
        hid_t fs = H5Screate_simple(1, &dim, NULL), ms = H5Screate_simple(1, &cnt, NULL);
        hid_t ds = H5Dcreate2(f, name, H5T_IEEE_F32LE, fs, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        ok = ds >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, &lo, NULL, &cnt, NULL) >= 0;
        if (ok && H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, w ? opt->v : opt->m) < 0) *data_ok = 0;
        for (int k = 0; k < nseg; k++) hashes[k] = seg_hash[k][w];
        ok = ok && put_u64_array(ds, "segment_offsets", bounds, (size_t)nseg + 1) &&
             put_u64_array(ds, "segment_checksums_fnv1a64", hashes, (size_t)nseg);
        if (ds >= 0) H5Dclose(ds);
        H5Sclose(ms);
        H5Sclose(fs);
    }
    free(bounds);
    free(hashes);
    return ok && put_scheduler(f, meta);
}

lt_status lt_checkpoint_save_full(const char *output_dir, lt_model *m, const lt_adamw *opt,
                                  lt_comm *comm, const size_t *shard_begin,
                                  const lt_ckpt_meta *meta, const char *run_config_json, int keep,
                                  char *written, size_t cap, lt_error *err) {
    quiet();
    const int rank = lt_comm_rank(comm), N = lt_comm_size(comm);
    const int parallel = shard_begin && N > 1;
    if (!parallel && rank != 0) return LT_OK; /* replicated state: rank 0 writes it */
    const lt_param_table *t = lt_model_base_table(m);
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
     * HDF5's metadata and the run config) is reserved before the first
     * collective call: once every rank is writing, a full disk cannot stop
     * them cleanly together (MPI-IO reports it on one rank, mid-write). */
    const uint64_t need = (uint64_t)t->numel * 3 * sizeof(float) + ((uint64_t)64 << 10) +
                          (uint64_t)t->count * 2048 + 2 * (run_config_json ? strlen(run_config_json) : 0);
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
    /* Each shard's checksum, known to every rank (attributes are written
     * collectively). */
    const int nseg = parallel ? N : 1;
    size_t one[2] = {0, t->numel};
    const size_t *seg = parallel ? shard_begin : one;
    uint64_t (*hash)[2] = calloc((size_t)nseg, sizeof *hash);
    float *params = malloc(t->numel * sizeof(float));
    /* Whether every rank can go on, decided together before each collective
     * step so that all ranks take the same path. */
    lt_error agree_err;
    int64_t go = hash && params;
    if (parallel && lt_comm_allreduce(comm, &go, 1, LT_DT_I64, LT_RED_MIN, &agree_err) != LT_OK) go = 0;
    if (go) {
        const lt_ops *o = lt_model_get_ops(m);
        o->download(o, params, lt_model_base(m), t->numel * sizeof(float));
        uint64_t mine[2] = {lt_fnv1a64(LT_FNV1A64_BASIS, opt->m, opt->n * sizeof(float)),
                            lt_fnv1a64(LT_FNV1A64_BASIS, opt->v, opt->n * sizeof(float))};
        if (parallel)
            go = lt_comm_allgather(comm, mine, hash, sizeof mine, &agree_err) == LT_OK;
        else
            memcpy(hash[0], mine, sizeof mine);
    }
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (parallel) H5Pset_fapl_mpio(fapl, *(MPI_Comm *)mpi_comm, MPI_INFO_NULL);
    hid_t f = go ? H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl) : -1;
    H5Pclose(fapl);
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
    int ok = go && write_full(f, m, params, opt, rank, my_lo, seg, nseg, (const uint64_t(*)[2])hash, meta,
                              run_config_json, &data_ok) && data_ok;
    if (f >= 0 && H5Fclose(f) < 0) ok = 0;
    free(params);
    free(hash);
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
    return place(&af, output_dir, path, meta->global_step, keep, written, cap, err);
}

/* Every segment of the flat dataset optimizer/<name> (numel floats) that
 * overlaps [lo, lo + n) is read in slices, its checksum verified, and the
 * overlap copied to dst[0..n); dst NULL verifies them all. */
static lt_status read_flat(reader *r, const char *name, size_t numel, size_t lo, size_t n, float *dst) {
    char msg[256], full[64];
    snprintf(full, sizeof full, "optimizer/%s", name);
    if (H5Lexists(r->f, "optimizer", H5P_DEFAULT) <= 0 || H5Lexists(r->f, full, H5P_DEFAULT) <= 0) {
        snprintf(msg, sizeof msg, "%s is missing", full);
        return bad(r, msg);
    }
    hid_t d = H5Dopen2(r->f, full, H5P_DEFAULT), fs = d >= 0 ? H5Dget_space(d) : -1;
    hsize_t dim = 0;
    lt_status st = LT_OK;
    if (fs < 0 || H5Sget_simple_extent_ndims(fs) != 1 || (H5Sget_simple_extent_dims(fs, &dim, NULL), dim) != numel) {
        snprintf(msg, sizeof msg, "%s holds %llu values, this model has %zu parameters", full,
                 (unsigned long long)dim, numel);
        st = lt_fail(r->err, LT_ERR_CONFIG, "%s: %s", r->path, msg);
    }
    /* The segment table: k + 1 ascending offsets from 0 to numel. */
    uint64_t *bounds = NULL, *sums = NULL;
    size_t k = 0;
    hid_t a = st == LT_OK && H5Aexists(d, "segment_offsets") > 0 ? H5Aopen(d, "segment_offsets", H5P_DEFAULT) : -1;
    hid_t as = a >= 0 ? H5Aget_space(a) : -1;
    hssize_t cnt = as >= 0 ? H5Sget_simple_extent_npoints(as) : 0;
    if (st == LT_OK && (cnt < 2 || cnt > (1 << 24))) {
        snprintf(msg, sizeof msg, "%s has no valid segment_offsets", full);
        st = bad(r, msg);
    }
    if (st == LT_OK) {
        k = (size_t)cnt - 1;
        bounds = malloc((size_t)cnt * sizeof *bounds);
        sums = malloc(k * sizeof *sums);
        hid_t b = H5Aexists(d, "segment_checksums_fnv1a64") > 0
                      ? H5Aopen(d, "segment_checksums_fnv1a64", H5P_DEFAULT) : -1;
        hid_t bs = b >= 0 ? H5Aget_space(b) : -1;
        int okk = bounds && sums && H5Aread(a, H5T_NATIVE_UINT64, bounds) >= 0 && bs >= 0 &&
                  H5Sget_simple_extent_npoints(bs) == (hssize_t)k && H5Aread(b, H5T_NATIVE_UINT64, sums) >= 0;
        okk = okk && bounds[0] == 0 && bounds[k] == numel;
        for (size_t i = 0; okk && i < k; i++) okk = bounds[i] <= bounds[i + 1];
        if (bs >= 0) H5Sclose(bs);
        if (b >= 0) H5Aclose(b);
        if (!okk) {
            snprintf(msg, sizeof msg, "%s: its segment table is damaged", full);
            st = bad(r, msg);
        }
    }
    if (as >= 0) H5Sclose(as);
    if (a >= 0) H5Aclose(a);
    const size_t slice = (size_t)1 << 20;
    float *buf = st == LT_OK ? malloc(slice * sizeof(float)) : NULL;
    if (st == LT_OK && !buf) st = lt_fail(r->err, LT_ERR_NOMEM, "%s: out of memory", r->path);
    for (size_t s = 0; s < k && st == LT_OK; s++) {
        const size_t a0 = bounds[s], a1 = bounds[s + 1];
        if (dst && (a1 <= lo || a0 >= lo + n)) continue;
        uint64_t h = LT_FNV1A64_BASIS;
        for (size_t at = a0; at < a1 && st == LT_OK; at += slice) {
            hsize_t off = at, c = a1 - at < slice ? a1 - at : slice;
            hid_t ms = H5Screate_simple(1, &c, NULL);
            if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, &off, NULL, &c, NULL) < 0 ||
                H5Dread(d, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, buf) < 0) {
                snprintf(msg, sizeof msg, "%s cannot be read (truncated or damaged)", full);
                st = bad(r, msg);
            }
            H5Sclose(ms);
            if (st != LT_OK) break;
            h = lt_fnv1a64(h, buf, (size_t)c * sizeof(float));
            const size_t x0 = at > lo ? at : lo, x1 = at + c < lo + n ? at + c : lo + n;
            if (dst && x1 > x0) memcpy(dst + (x0 - lo), buf + (x0 - at), (x1 - x0) * sizeof(float));
        }
        if (st == LT_OK && h != sums[s]) {
            snprintf(msg, sizeof msg, "%s segment %zu (values %zu..%zu) fails its checksum (the file is damaged)",
                     full, s, a0, a1);
            st = bad(r, msg);
        }
    }
    free(buf);
    free(bounds);
    free(sums);
    if (fs >= 0) H5Sclose(fs);
    if (d >= 0) H5Dclose(d);
    return st;
}

/* The finetuning_type attribute ("lora" when absent: files before it). */
static lt_status read_type(reader *r, char *type, size_t cap) {
    snprintf(type, cap, "lora");
    if (H5Aexists(r->f, "finetuning_type") <= 0) return LT_OK;
    char *s = NULL;
    lt_status st = get_str(r, r->f, "finetuning_type", &s);
    if (st == LT_OK) snprintf(type, cap, "%s", s);
    free(s);
    return st;
}

/* The /model tensors of m's table into host (NULL: verify only). */
static lt_status read_model(reader *r, const lt_param_table *t, float *host) {
    hid_t g = H5Gopen2(r->f, "model", H5P_DEFAULT);
    if (g < 0) return bad(r, "group model is missing");
    lt_status st = LT_OK;
    for (int i = 0; i < t->count && st == LT_OK; i++) {
        const lt_tensor_desc *d = &t->t[i];
        float *dst = host ? host + d->offset : malloc(lt_tensor_numel(d) * sizeof(float) + 1);
        st = dst ? read_tensor(r, g, "model", d->name, d->rows, d->cols, dst)
                 : lt_fail(r->err, LT_ERR_NOMEM, "%s: out of memory", r->path);
        if (!host) free(dst);
    }
    H5Gclose(g);
    return st;
}

lt_status lt_checkpoint_load_full(const char *path, lt_model *m, lt_adamw *opt, size_t shard_lo,
                                  uint64_t base_bytes, uint64_t base_fingerprint, lt_ckpt_meta *meta,
                                  lt_error *err) {
    reader r = {path, -1, err};
    lt_status st = open_checked(&r);
    if (st != LT_OK) return st;
    const lt_param_table *t = lt_model_base_table(m);
    char type[32];
    float *host = NULL;
    int64_t step = 0;
    if ((st = read_type(&r, type, sizeof type)) != LT_OK || (st = read_meta(&r, meta)) != LT_OK) goto done;
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
    if (!(host = lt_alloc(LT_MEM_WORKSPACE, t->numel * sizeof(float)))) {
        st = lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    if ((st = read_model(&r, t, host)) != LT_OK) goto done;
    for (int w = 0; w < 2 && st == LT_OK; w++)
        st = read_flat(&r, k_flat[w], t->numel, shard_lo, opt->n, w ? opt->v : opt->m);
    if (st != LT_OK) goto done;
    hid_t o = H5Gopen2(r.f, "optimizer", H5P_DEFAULT);
    st = get_attr(&r, o, "step", H5T_NATIVE_INT64, &step);
    H5Gclose(o);
    if (st == LT_OK) {
        const lt_ops *ops = lt_model_get_ops(m);
        ops->upload(ops, lt_model_base(m), host, t->numel * sizeof(float));
        opt->step = step;
    }
done:
    lt_free(host);
    H5Fclose(r.f);
    return st;
}

/* verify() for a full fine-tuning checkpoint: the model's tensors as the
 * file lists them and every moment segment. */
static lt_status verify_full(reader *r, FILE *out, int tensors) {
    hid_t g = H5Gopen2(r->f, "model", H5P_DEFAULT);
    H5G_info_t gi;
    if (g < 0 || H5Gget_info(g, &gi) < 0) {
        if (g >= 0) H5Gclose(g);
        return bad(r, "group model is missing");
    }
    lt_param_table t;
    lt_table_init(&t);
    lt_status st = LT_OK;
    /* The tensors the file holds, in name order (the sizes are what count). */
    for (hsize_t i = 0; i < gi.nlinks && st == LT_OK; i++) {
        char name[LT_TENSOR_NAME_MAX + 64];
        hid_t d = -1, sp = -1;
        hsize_t dims[2] = {0, 0};
        uint64_t off = 0;
        if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) < 0 ||
            strlen(name) >= LT_TENSOR_NAME_MAX || (d = H5Dopen2(g, name, H5P_DEFAULT)) < 0 ||
            (sp = H5Dget_space(d)) < 0 || H5Sget_simple_extent_ndims(sp) != 2 ||
            H5Sget_simple_extent_dims(sp, dims, NULL) < 0 || dims[0] * dims[1] > (hsize_t)1 << 31 ||
            get_attr(r, d, "offset", H5T_NATIVE_UINT64, &off) != LT_OK)
            st = bad(r, "a tensor of /model is not a 2-D array with an offset");
        if (sp >= 0) H5Sclose(sp);
        if (d >= 0) H5Dclose(d);
        if (st == LT_OK) st = lt_table_add(&t, name, -1, (int)dims[0], (int)dims[1], r->err);
        if (st == LT_OK && out && tensors) /* listed as read, verified below */
            fprintf(out, "    %s [%llu, %llu] at offset %llu\n", name, (unsigned long long)dims[0],
                    (unsigned long long)dims[1], (unsigned long long)off);
    }
    H5Gclose(g);
    if (st == LT_OK) st = read_model(r, &t, NULL);
    for (int w = 0; w < 2 && st == LT_OK; w++) st = read_flat(r, k_flat[w], t.numel, 0, t.numel, NULL);
    if (st == LT_OK && out)
        fprintf(out, "  full fine-tuning: /model %d tensors, %zu float32 values; /optimizer/exp_avg and "
                     "exp_avg_sq flat, %zu values each; checksums verified\n", t.count, t.numel, t.numel);
    lt_table_free(&t);
    return st;
}
