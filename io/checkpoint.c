#include "io/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    int ok = put_str(f, "format", LT_CHECKPOINT_FORMAT) && put_i64(f, "format_version", LT_CHECKPOINT_VERSION) &&
             put_i64(f, "global_step", meta->global_step) && put_i64(f, "tokens_seen", meta->tokens_seen) &&
             put_u64(f, "data_epoch", meta->cursor.epoch) && put_u64(f, "data_position", meta->cursor.position) &&
             put_u64(f, "seed", meta->seed) && put_i64(f, "world_size", meta->world_size) &&
             put_str(f, "base_model_path", meta->base_path) && put_u64(f, "base_model_bytes", meta->base_bytes) &&
             put_u64(f, "base_model_fingerprint", meta->base_fingerprint) && put_i64(f, "lora_r", lc->r) &&
             put_f64(f, "lora_alpha", lc->alpha) && put_i64(f, "use_rslora", lc->use_rslora) &&
             put_str(f, "target_modules", targets) && put_str(f, "run_config", config_json ? config_json : "{}");
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
        if (ok && g == 1) {
            hid_t o = H5Gopen2(f, "optimizer", H5P_DEFAULT);
            ok = o >= 0 && put_i64(o, "step", opt->step) && put_f64(o, "beta1", opt->cfg.beta1) &&
                 put_f64(o, "beta2", opt->cfg.beta2) && put_f64(o, "eps", opt->cfg.eps) &&
                 put_f64(o, "weight_decay", opt->cfg.weight_decay);
            if (o >= 0) H5Gclose(o);
        }
        if (grp >= 0) H5Gclose(grp);
    }
    H5Pclose(lcpl);
    hid_t s = ok ? H5Gcreate2(f, "scheduler", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    ok = ok && s >= 0 && put_str(s, "lr_scheduler_type", lt_lr_schedule_name(meta->sched.kind)) &&
         put_f64(s, "learning_rate", meta->sched.lr) && put_i64(s, "warmup_steps", meta->sched.warmup_steps) &&
         put_i64(s, "total_steps", meta->sched.total_steps);
    if (s >= 0) H5Gclose(s);
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
    fault_point("before_rename", meta->global_step);
    if ((st = lt_atomic_commit(&af, err)) != LT_OK)
        return lt_fail_context(err, "checkpoint not saved (the previous one is kept)");
    fault_point("before_pointer", meta->global_step);
    char ptr[4096 + 32];
    snprintf(ptr, sizeof ptr, "%s/" POINTER_FILE, output_dir);
    if ((st = lt_atomic_write_text(ptr, strrchr(path, '/') + 1, err)) != LT_OK) return st;
    if (written) snprintf(written, cap, "%s", path);
    if (keep > 0) {
        int64_t *steps;
        size_t n = list_checkpoints(output_dir, &steps);
        for (size_t i = (size_t)keep; i < n; i++) {
            if (steps[i] == meta->global_step) continue;
            char old[4096 + 64];
            snprintf(old, sizeof old, "%s/checkpoint-%lld.h5", output_dir, (long long)steps[i]);
            unlink(old);
        }
        free(steps);
    }
    fault_point("after_save", meta->global_step);
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

lt_status lt_checkpoint_load(const char *path, lt_model *m, lt_adamw *opt, uint64_t base_bytes,
                             uint64_t base_fingerprint, lt_ckpt_meta *meta, lt_error *err) {
    reader r = {path, -1, err};
    lt_status st = open_checked(&r);
    if (st != LT_OK) return st;
    const lt_lora_config *lc = lt_model_lora_config(m);
    const lt_param_table *t = lt_model_lora_table(m);
    int64_t rr = 0, rs = 0, step = 0;
    double alpha = 0;
    char *targets = NULL, want[256];
    if ((st = read_meta(&r, meta)) != LT_OK) goto done;
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
static lt_status verify(const char *path, FILE *out, lt_error *err) {
    reader r = {path, -1, err};
    lt_status st = open_checked(&r);
    if (st != LT_OK) return st;
    lt_ckpt_meta meta;
    char *cfg = NULL, *targets = NULL;
    int64_t rr = 0;
    if ((st = read_meta(&r, &meta)) == LT_OK && (st = get_str(&r, r.f, "run_config", &cfg)) == LT_OK &&
        (st = get_str(&r, r.f, "target_modules", &targets)) == LT_OK)
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

lt_status lt_checkpoint_inspect(const char *path, FILE *out, lt_error *err) { return verify(path, out, err); }

lt_status lt_checkpoint_resolve(const char *spec, const char *output_dir, char *path, size_t cap,
                                lt_error *err) {
    if (strcmp(spec, "latest") != 0) {
        snprintf(path, cap, "%s", spec);
        return LT_OK;
    }
    char ptr[4096 + 32], name[512] = "";
    snprintf(ptr, sizeof ptr, "%s/" POINTER_FILE, output_dir);
    FILE *f = fopen(ptr, "r");
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
        if (verify(path, NULL, &e2) == LT_OK) return LT_OK;
        fprintf(stderr, "loratrain: %s names %s, which does not verify (%s); trying older checkpoints\n",
                ptr, name, e2.msg);
    }
    int64_t *steps;
    size_t n = list_checkpoints(output_dir, &steps);
    for (size_t i = 0; i < n; i++) {
        if (steps[i] == pointed) continue;
        snprintf(path, cap, "%s/checkpoint-%lld.h5", output_dir, (long long)steps[i]);
        if (verify(path, NULL, &e2) == LT_OK) {
            free(steps);
            return LT_OK;
        }
        fprintf(stderr, "loratrain: skipping %s: %s\n", path, e2.msg);
    }
    free(steps);
    return lt_fail(err, LT_ERR_IO, "resume_from_checkpoint latest: no checkpoint in %s verifies", output_dir);
}
