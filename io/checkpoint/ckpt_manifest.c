#include "io/checkpoint/ckpt_manifest.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"

#define HEADER "loratrain-manifest 1"
#define DIGEST_ATTR "xxh3_64"
#define MANIFEST_PATH "/manifest"
/* Bounds on what a damaged file can make us allocate. */
#define MAX_TEXT ((size_t)64 << 20)
#define MAX_SEGMENTS (1 << 20)
#define SLICE_VALUES ((size_t)1 << 20)

static const char *k_kinds[] = {"i64", "u64", "f64", "str", "u64s"};

typedef struct {
    char type;  /* 'a' attribute, 't' tensor, 'f' flat dataset */
    char *obj;  /* the object (a, the attribute's owner) or the dataset */
    char *name; /* a: the attribute; "" otherwise */
    lt_mf_kind kind;
    uint64_t n1, n2; /* a: count, -; t: rows, cols; f: values, segments */
    uint64_t *hash;  /* 1, or n2 for f */
} entry;

struct lt_manifest {
    entry *e;
    size_t n, cap;
};

lt_manifest *lt_manifest_new(void) { return calloc(1, sizeof(lt_manifest)); }

void lt_manifest_free(lt_manifest *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n; i++) {
        free(m->e[i].obj);
        free(m->e[i].name);
        free(m->e[i].hash);
    }
    free(m->e);
    free(m);
}

/* Names go into space-separated lines: none may hold a space or a
 * control character, or be empty. */
static int plain_name(const char *s) {
    if (!s || !*s) return 0;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f) return 0;
    return 1;
}

static entry *add(lt_manifest *m, char type, const char *obj, const char *name, uint64_t nhash) {
    if (!m || !plain_name(obj) || (type == 'a' && !plain_name(name))) return NULL;
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 64;
        entry *grown = realloc(m->e, cap * sizeof *grown);
        if (!grown) return NULL;
        m->e = grown;
        m->cap = cap;
    }
    entry *e = &m->e[m->n];
    memset(e, 0, sizeof *e);
    e->type = type;
    e->obj = strdup(obj);
    e->name = strdup(name ? name : "");
    e->hash = calloc(nhash ? nhash : 1, sizeof *e->hash);
    if (!e->obj || !e->name || !e->hash) {
        free(e->obj);
        free(e->name);
        free(e->hash);
        return NULL;
    }
    m->n++;
    return e;
}

/* The canonical bytes of a value (see the header): little-endian hosts
 * (x86-64, aarch64) store them as they are in memory. */
static uint64_t value_hash(lt_mf_kind kind, const void *value, size_t count) {
    switch (kind) {
    case LT_MF_STR: return lt_hash64(value, strlen(value));
    case LT_MF_U64S: return lt_hash64(value, count * sizeof(uint64_t));
    default: return lt_hash64(value, 8);
    }
}

int lt_manifest_add_attr(lt_manifest *m, const char *obj, const char *name, lt_mf_kind kind,
                         const void *value, size_t count) {
    entry *e = add(m, 'a', obj, name, 1);
    if (!e) return 0;
    e->kind = kind;
    e->n1 = kind == LT_MF_U64S ? count : 1;
    e->hash[0] = value_hash(kind, value, count);
    return 1;
}

int lt_manifest_add_tensor(lt_manifest *m, const char *path, uint64_t rows, uint64_t cols,
                           uint64_t hash) {
    entry *e = add(m, 't', path, NULL, 1);
    if (!e) return 0;
    e->n1 = rows;
    e->n2 = cols;
    e->hash[0] = hash;
    return 1;
}

int lt_manifest_add_flat(lt_manifest *m, const char *path, uint64_t values, int segments,
                         const uint64_t *hashes) {
    if (segments < 1 || segments > MAX_SEGMENTS) return 0;
    entry *e = add(m, 'f', path, NULL, (uint64_t)segments);
    if (!e) return 0;
    e->n1 = values;
    e->n2 = (uint64_t)segments;
    memcpy(e->hash, hashes, (size_t)segments * sizeof *hashes);
    return 1;
}

/* One entry's line, without the newline, into a malloc'd string. */
static char *line_of(const entry *e) {
    size_t cap = strlen(e->obj) + strlen(e->name) + 96 + (e->type == 'f' ? 17 * e->n2 : 0);
    char *s = malloc(cap);
    if (!s) return NULL;
    int k;
    if (e->type == 'a')
        k = snprintf(s, cap, "a %s %s %s %" PRIu64 " %016" PRIx64, e->obj, e->name, k_kinds[e->kind],
                     e->n1, e->hash[0]);
    else
        k = snprintf(s, cap, "%c %s %" PRIu64 " %" PRIu64 " ", e->type, e->obj, e->n1, e->n2);
    for (uint64_t i = 0; e->type != 'a' && i < (e->type == 'f' ? e->n2 : 1); i++)
        k += snprintf(s + k, cap - (size_t)k, "%s%016" PRIx64, i ? "," : "", e->hash[i]);
    return s;
}

static int by_text(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The manifest's text: the header, then the sorted lines. */
static char *manifest_text(const lt_manifest *m) {
    char **lines = calloc(m->n ? m->n : 1, sizeof *lines);
    size_t total = strlen(HEADER) + 2;
    int ok = lines != NULL;
    for (size_t i = 0; ok && i < m->n; i++) {
        ok = (lines[i] = line_of(&m->e[i])) != NULL;
        if (ok) total += strlen(lines[i]) + 1;
    }
    char *text = ok ? malloc(total) : NULL;
    if (text) {
        qsort(lines, m->n, sizeof *lines, by_text);
        size_t at = (size_t)snprintf(text, total, "%s\n", HEADER);
        for (size_t i = 0; i < m->n; i++) at += (size_t)snprintf(text + at, total - at, "%s\n", lines[i]);
    }
    for (size_t i = 0; lines && i < m->n; i++) free(lines[i]);
    free(lines);
    return text;
}

int lt_manifest_write(const lt_manifest *m, hid_t f, int write_data) {
    char *text = manifest_text(m);
    if (!text) return 0;
    const size_t len = strlen(text);
    const uint64_t digest = lt_hash64(text, len);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, len + 1);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t d = H5Dcreate2(f, "manifest", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int ok = d >= 0 && (!write_data || H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, text) >= 0);
    hid_t a = ok ? H5Acreate2(d, DIGEST_ATTR, H5T_STD_U64LE, sp, H5P_DEFAULT, H5P_DEFAULT) : -1;
    ok = ok && a >= 0 && H5Awrite(a, H5T_NATIVE_UINT64, &digest) >= 0;
    if (a >= 0) H5Aclose(a);
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    H5Tclose(t);
    free(text);
    return ok;
}

/* ------------------------------------------------------------- values */

/* The number of elements of an attribute, or -1. */
static hssize_t attr_points(hid_t a) {
    hid_t sp = H5Aget_space(a);
    if (sp < 0) return -1;
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    return n;
}

static int attr_class(hid_t a) {
    hid_t t = H5Aget_type(a);
    if (t < 0) return -1;
    int c = (int)H5Tget_class(t);
    H5Tclose(t);
    return c;
}

/* An attribute's u64 values, count of them exactly. */
static int attr_u64s(hid_t obj, const char *name, uint64_t *out, size_t count) {
    if (H5Aexists(obj, name) <= 0) return 0;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    int ok = a >= 0 && attr_class(a) == H5T_INTEGER && attr_points(a) == (hssize_t)count &&
             H5Aread(a, H5T_NATIVE_UINT64, out) >= 0;
    if (a >= 0) H5Aclose(a);
    return ok;
}

int lt_h5_attr_number(hid_t obj, const char *name, lt_mf_kind kind, void *out) {
    if (kind == LT_MF_STR || kind == LT_MF_U64S) return 0;
    if (H5Aexists(obj, name) <= 0) return 0;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    const int cls = kind == LT_MF_F64 ? H5T_FLOAT : H5T_INTEGER;
    hid_t mt = kind == LT_MF_I64 ? H5T_NATIVE_INT64 : kind == LT_MF_U64 ? H5T_NATIVE_UINT64 : H5T_NATIVE_DOUBLE;
    int ok = a >= 0 && attr_class(a) == cls && attr_points(a) == 1 && H5Aread(a, mt, out) >= 0;
    if (a >= 0) H5Aclose(a);
    return ok;
}

/* A string of an attribute (dataset 0) or a scalar dataset (dataset 1). */
static int read_string(hid_t obj, int dataset, size_t max_len, char **str) {
    *str = NULL;
    hid_t ft = dataset ? H5Dget_type(obj) : H5Aget_type(obj);
    hid_t sp = dataset ? H5Dget_space(obj) : H5Aget_space(obj);
    int ok = ft >= 0 && sp >= 0 && H5Tget_class(ft) == H5T_STRING && H5Sget_simple_extent_npoints(sp) == 1;
    htri_t var = ok ? H5Tis_variable_str(ft) : -1;
    ok = ok && var >= 0;
    hid_t mt = ok ? H5Tcopy(H5T_C_S1) : -1;
    /* HDF5 converts no string between character sets: h5py writes UTF-8. */
    ok = ok && mt >= 0 && H5Tset_cset(mt, H5Tget_cset(ft)) >= 0;
    if (ok && var) {
        char *p = NULL;
        ok = H5Tset_size(mt, H5T_VARIABLE) >= 0 &&
             (dataset ? H5Dread(obj, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, &p) : H5Aread(obj, mt, &p)) >= 0;
        ok = ok && p && strlen(p) <= max_len && (*str = strdup(p)) != NULL;
        if (p) H5free_memory(p);
    } else if (ok) {
        /* Read as NUL-terminated one byte longer than stored: HDF5 then
         * keeps every character of a null- or space-padded string. */
        size_t n = H5Tget_size(ft);
        ok = n > 0 && n <= max_len + 1 && (*str = calloc(1, n + 1)) != NULL &&
             H5Tset_size(mt, n + 1) >= 0 && H5Tset_strpad(mt, H5T_STR_NULLTERM) >= 0 &&
             (dataset ? H5Dread(obj, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, *str)
                      : H5Aread(obj, mt, *str)) >= 0;
        ok = ok && strlen(*str) <= max_len;
    }
    if (mt >= 0) H5Tclose(mt);
    if (sp >= 0) H5Sclose(sp);
    if (ft >= 0) H5Tclose(ft);
    if (!ok) {
        free(*str);
        *str = NULL;
    }
    return ok;
}

int lt_h5_attr_string(hid_t obj, const char *name, size_t max_len, char **str) {
    *str = NULL;
    if (H5Aexists(obj, name) <= 0) return 0;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    int ok = a >= 0 && read_string(a, 0, max_len, str);
    if (a >= 0) H5Aclose(a);
    return ok;
}

/* ------------------------------------------------------------ reading */

static int by_key(const void *a, const void *b) {
    const entry *x = a, *y = b;
    int c = strcmp(x->obj, y->obj);
    return c ? c : strcmp(x->name, y->name);
}

static const entry *find(const lt_manifest *m, const char *obj, const char *name) {
    entry key = {.obj = (char *)(uintptr_t)obj, .name = (char *)(uintptr_t)name};
    return bsearch(&key, m->e, m->n, sizeof *m->e, by_key);
}

static int parse_u64(const char *s, int base, uint64_t *v) {
    if (!*s || *s == '-' || *s == '+' || *s == ' ') return 0;
    char *end;
    unsigned long long x = strtoull(s, &end, base);
    if (*end) return 0;
    *v = x;
    return 1;
}

/* Splits line (modified) at single spaces into at most cap fields. */
static int split(char *line, char **f, int cap) {
    int n = 0;
    for (char *p = line; n < cap;) {
        f[n++] = p;
        char *sp = strchr(p, ' ');
        if (!sp) return n;
        *sp = '\0';
        p = sp + 1;
    }
    return -1;
}

static int parse_line(lt_manifest *m, char *line) {
    char *f[7];
    int n = split(line, f, 7);
    uint64_t a, b;
    if (n == 6 && !strcmp(f[0], "a")) {
        int kind = -1;
        for (int k = 0; k < 5; k++)
            if (!strcmp(f[3], k_kinds[k])) kind = k;
        entry *e = kind >= 0 && parse_u64(f[4], 10, &a) && a <= MAX_SEGMENTS + 1 ? add(m, 'a', f[1], f[2], 1) : NULL;
        if (!e) return 0;
        e->kind = (lt_mf_kind)kind;
        e->n1 = a;
        return strlen(f[5]) == 16 && parse_u64(f[5], 16, &e->hash[0]) && (kind == LT_MF_U64S || a == 1);
    }
    if (n == 5 && (!strcmp(f[0], "t") || !strcmp(f[0], "f")) && parse_u64(f[2], 10, &a) && parse_u64(f[3], 10, &b)) {
        const int flat = f[0][0] == 'f';
        if (flat ? (b < 1 || b > MAX_SEGMENTS) : b == 0) return 0;
        const uint64_t nh = flat ? b : 1;
        if (strlen(f[4]) != 17 * nh - 1) return 0;
        entry *e = add(m, f[0][0], f[1], NULL, nh);
        if (!e) return 0;
        e->n1 = a;
        e->n2 = b;
        for (uint64_t i = 0; i < nh; i++) {
            char h[17];
            memcpy(h, f[4] + 17 * i, 16);
            h[16] = '\0';
            if ((i + 1 < nh && f[4][17 * i + 16] != ',') || !parse_u64(h, 16, &e->hash[i])) return 0;
        }
        return 1;
    }
    return 0;
}

static lt_status fail(lt_error *err, const char *path, const char *what) {
    return lt_fail(err, LT_ERR_FORMAT, "%s: %s", path, what);
}

lt_status lt_manifest_read(hid_t f, const char *path, lt_manifest **out, lt_error *err) {
    *out = NULL;
    if (H5Lexists(f, "manifest", H5P_DEFAULT) <= 0)
        return fail(err, path, "/manifest is missing (not a loratrain checkpoint of format_version 2, or damaged)");
    hid_t d = H5Dopen2(f, "manifest", H5P_DEFAULT);
    char *text = NULL;
    uint64_t digest = 0;
    int ok = d >= 0 && read_string(d, 1, MAX_TEXT, &text);
    int have_digest = ok && lt_h5_attr_number(d, DIGEST_ATTR, LT_MF_U64, &digest);
    if (d >= 0) H5Dclose(d);
    if (!ok) return fail(err, path, "/manifest cannot be read (damaged file)");
    if (!have_digest || lt_hash64(text, strlen(text)) != digest) {
        free(text);
        return fail(err, path, "/manifest fails its xxh3_64 digest (the file is damaged)");
    }
    lt_manifest *m = lt_manifest_new();
    char *line = text, *next;
    int lineno = 0;
    ok = m != NULL;
    for (; ok && *line; line = next, lineno++) {
        next = strchr(line, '\n');
        if (!next) {
            ok = 0;
            break;
        }
        *next++ = '\0';
        ok = lineno == 0 ? !strcmp(line, HEADER) : parse_line(m, line);
    }
    free(text);
    if (ok && m) qsort(m->e, m->n, sizeof *m->e, by_key);
    for (size_t i = 1; ok && i < m->n; i++) ok = by_key(&m->e[i - 1], &m->e[i]) != 0;
    if (!ok) {
        lt_manifest_free(m);
        char msg[96];
        snprintf(msg, sizeof msg, "/manifest line %d is not a manifest entry", lineno + 1);
        return m ? fail(err, path, msg) : lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", path);
    }
    *out = m;
    return LT_OK;
}

int lt_manifest_tensor_hash(const lt_manifest *m, const char *path, uint64_t *hash) {
    const entry *e = find(m, path, "");
    if (!e || e->type != 't') return 0;
    *hash = e->hash[0];
    return 1;
}

int lt_manifest_segment_hash(const lt_manifest *m, const char *path, int seg, uint64_t *hash) {
    const entry *e = find(m, path, "");
    if (!e || e->type != 'f' || seg < 0 || (uint64_t)seg >= e->n2) return 0;
    *hash = e->hash[seg];
    return 1;
}

/* ---------------------------------------------------------- verifying */

typedef struct {
    const lt_manifest *m;
    const char *path;
    lt_error *err;
    int data;
    unsigned char *seen; /* per entry */
    const char *obj;     /* the object whose attributes are iterated */
    lt_status st;
    float *buf; /* SLICE_VALUES floats, for hashing data */
} walker;

__attribute__((format(printf, 2, 3))) static herr_t stop_with(walker *w, const char *fmt, ...) {
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    w->st = fail(w->err, w->path, msg);
    return -1;
}

/* The hash of an attribute's value read as kind. */
static int attr_value_hash(hid_t obj, const char *name, const entry *e, uint64_t *h) {
    if (e->kind == LT_MF_STR) {
        char *s = NULL;
        if (!lt_h5_attr_string(obj, name, MAX_TEXT, &s)) return 0;
        *h = value_hash(LT_MF_STR, s, 0);
        free(s);
        return 1;
    }
    if (e->kind == LT_MF_U64S) {
        uint64_t *v = malloc((size_t)e->n1 * sizeof *v + 1);
        int ok = v && attr_u64s(obj, name, v, (size_t)e->n1);
        if (ok) *h = value_hash(LT_MF_U64S, v, (size_t)e->n1);
        free(v);
        return ok;
    }
    unsigned char v[8];
    if (!lt_h5_attr_number(obj, name, e->kind, v)) return 0;
    *h = value_hash(e->kind, v, 1);
    return 1;
}

static herr_t visit_attr(hid_t obj, const char *name, const H5A_info_t *info, void *op) {
    (void)info;
    walker *w = op;
    if (!strcmp(w->obj, MANIFEST_PATH) && !strcmp(name, DIGEST_ATTR)) return 0;
    const entry *e = find(w->m, w->obj, name);
    if (!e || e->type != 'a')
        return stop_with(w, "attribute %s of %s is not in the manifest (added after the checkpoint was "
                         "written?)", name, w->obj);
    uint64_t h = 0;
    if (!attr_value_hash(obj, name, e, &h))
        return stop_with(w, "attribute %s of %s cannot be read as the manifest's type (damaged file)", name,
                         w->obj);
    if (h != e->hash[0])
        return stop_with(w, "attribute %s of %s differs from the value the checkpoint was written with "
                         "(edited or damaged)", name, w->obj);
    w->seen[e - w->m->e] = 1;
    return 0;
}

static int check_attrs(walker *w, hid_t obj, const char *objpath) {
    w->obj = objpath;
    hsize_t idx = 0;
    herr_t r = H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, visit_attr, w);
    if (r < 0 && w->st == LT_OK) stop_with(w, "the attributes of %s cannot be read (damaged file)", objpath);
    return w->st == LT_OK;
}

/* Hashes values [lo, hi) of the 1-D or 2-D float dataset d (flattened). */
static int hash_values(walker *w, hid_t d, hid_t fs, int ndims, const hsize_t *dims, uint64_t lo,
                       uint64_t hi, uint64_t *out) {
    lt_hasher *h = lt_hasher_new();
    if (!h) return 0;
    const uint64_t cols = ndims == 2 ? dims[1] : 1;
    /* 2-D: whole rows at a time (at least one). */
    const uint64_t step = ndims == 2 ? (cols >= SLICE_VALUES ? cols : SLICE_VALUES / cols * cols) : SLICE_VALUES;
    float *buf = w->buf;
    float *big = NULL;
    if (step > SLICE_VALUES && !(buf = big = malloc(step * sizeof(float)))) {
        lt_hasher_free(h);
        return 0;
    }
    int ok = 1;
    for (uint64_t at = lo; ok && at < hi; at += step) {
        const uint64_t c = hi - at < step ? hi - at : step;
        hsize_t start[2], count[2];
        if (ndims == 2) {
            start[0] = at / cols, start[1] = 0, count[0] = c / cols, count[1] = cols;
        } else {
            start[0] = at, count[0] = c;
        }
        hsize_t mcount = c;
        hid_t ms = H5Screate_simple(1, &mcount, NULL);
        ok = ms >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
             H5Dread(d, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, buf) >= 0;
        if (ms >= 0) H5Sclose(ms);
        if (ok) lt_hasher_update(h, buf, (size_t)c * sizeof(float));
    }
    *out = lt_hasher_digest(h);
    lt_hasher_free(h);
    free(big);
    return ok;
}

static int check_dataset(walker *w, hid_t d, const char *path) {
    const entry *e = find(w->m, path, "");
    if (!e || e->type == 'a') {
        stop_with(w, "dataset %s is not in the manifest (added after the checkpoint was written?)", path);
        return 0;
    }
    hid_t t = H5Dget_type(d), fs = H5Dget_space(d);
    hsize_t dims[2] = {0, 0};
    const int want = e->type == 't' ? 2 : 1;
    int nd = fs >= 0 ? H5Sget_simple_extent_ndims(fs) : -1;
    if (nd == want) H5Sget_simple_extent_dims(fs, dims, NULL);
    int ok = t >= 0 && H5Tget_class(t) == H5T_FLOAT && nd == want && dims[0] == e->n1 &&
             (want == 1 || dims[1] == e->n2);
    if (t >= 0) H5Tclose(t);
    if (!ok) {
        if (fs >= 0) H5Sclose(fs);
        stop_with(w, "dataset %s is not the float32 array of the shape the manifest records (edited or "
                  "damaged)", path);
        return 0;
    }
    w->seen[e - w->m->e] = 1;
    if (w->data && e->type == 't') {
        uint64_t h = 0;
        ok = hash_values(w, d, fs, 2, dims, 0, e->n1 * e->n2, &h);
        if (!ok) stop_with(w, "dataset %s cannot be read (truncated or damaged)", path);
        else if (h != e->hash[0]) ok = 0, stop_with(w, "dataset %s fails its checksum (the file is damaged)", path);
    } else if (w->data) {
        uint64_t *bounds = malloc(((size_t)e->n2 + 1) * sizeof *bounds);
        ok = bounds && attr_u64s(d, "segment_offsets", bounds, (size_t)e->n2 + 1) && bounds[0] == 0 &&
             bounds[e->n2] == e->n1;
        for (uint64_t s = 0; ok && s < e->n2; s++) ok = bounds[s] <= bounds[s + 1];
        if (!ok) stop_with(w, "dataset %s has no valid segment_offsets", path);
        for (uint64_t s = 0; ok && s < e->n2; s++) {
            uint64_t h = 0;
            ok = hash_values(w, d, fs, 1, dims, bounds[s], bounds[s + 1], &h);
            if (!ok) stop_with(w, "dataset %s cannot be read (truncated or damaged)", path);
            else if (h != e->hash[s]) {
                char seg[1200];
                snprintf(seg, sizeof seg, "%s segment %llu (values %llu..%llu)", path, (unsigned long long)s,
                         (unsigned long long)bounds[s], (unsigned long long)bounds[s + 1]);
                ok = 0;
                stop_with(w, "dataset %s fails its checksum (the file is damaged)", seg);
            }
        }
        free(bounds);
    }
    H5Sclose(fs);
    return ok;
}

static herr_t visit_link(hid_t g, const char *name, const H5L_info_t *info, void *op) {
    walker *w = op;
    char path[1100];
    if (snprintf(path, sizeof path, "/%s", name) >= (int)sizeof path)
        return stop_with(w, "an object name is too long (%.40s...)", name);
    if (info->type != H5L_TYPE_HARD)
        return stop_with(w, "%s is a soft or external link, which a checkpoint never holds", path);
    H5O_info_t oi;
    if (H5Oget_info_by_name2(g, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0)
        return stop_with(w, "%s cannot be read (damaged file)", path);
    if (oi.type == H5O_TYPE_GROUP) {
        hid_t o = H5Gopen2(g, name, H5P_DEFAULT);
        if (o < 0) return stop_with(w, "group %s cannot be opened (damaged file)", path);
        int ok = check_attrs(w, o, path);
        H5Gclose(o);
        return ok ? 0 : -1;
    }
    if (oi.type != H5O_TYPE_DATASET)
        return stop_with(w, "%s is neither a group nor a dataset", path);
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0) return stop_with(w, "dataset %s cannot be opened (damaged file)", path);
    int ok = !strcmp(path, MANIFEST_PATH) ? check_attrs(w, d, path) : check_attrs(w, d, path) && check_dataset(w, d, path);
    H5Dclose(d);
    return ok ? 0 : -1;
}

lt_status lt_manifest_verify(const lt_manifest *m, hid_t f, const char *path, int data, lt_error *err) {
    walker w = {.m = m, .path = path, .err = err, .data = data, .st = LT_OK};
    w.seen = calloc(m->n ? m->n : 1, 1);
    w.buf = malloc(SLICE_VALUES * sizeof(float));
    if (!w.seen || !w.buf) {
        free(w.seen);
        free(w.buf);
        return lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", path);
    }
    if (check_attrs(&w, f, "/")) {
        herr_t r = H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, visit_link, &w);
        if (r < 0 && w.st == LT_OK) stop_with(&w, "the file's objects cannot be listed (damaged file)");
    }
    for (size_t i = 0; w.st == LT_OK && i < m->n; i++) {
        const entry *e = &m->e[i];
        if (w.seen[i]) continue;
        if (e->type == 'a')
            stop_with(&w, "attribute %s of %s is missing (the manifest lists it)", e->name, e->obj);
        else
            stop_with(&w, "dataset %s is missing (the manifest lists it)", e->obj);
    }
    free(w.seen);
    free(w.buf);
    return w.st;
}
