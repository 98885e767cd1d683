/* madvise and MADV_DONTNEED are outside POSIX (posix_madvise's
 * POSIX_MADV_DONTNEED is a no-op on glibc), and the build defines
 * _POSIX_C_SOURCE, which hides them without this. */
#define _DEFAULT_SOURCE
#include "io/model/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/fileutil.h"
#include "io/json.h"

/* Headers of real models are a few hundred KiB; anything near this is an
 * attack or corruption, refused before it is read. */
#define LT_ST_MAX_HEADER (100u << 20)

struct lt_safetensors {
    char path[4096];
    const unsigned char *map;
    size_t map_size;
    size_t page; /* the system page size, for lt_st_release */
    const unsigned char *data; /* start of the data section */
    uint64_t data_size;
    lt_st_tensor *t;
    int count;
    char **meta; /* key, value pairs */
    int n_meta;
};

static const struct {
    const char *name;
    lt_st_dtype dtype;
    int size;
} k_dtypes[] = {{"F32", LT_ST_F32, 4}, {"F16", LT_ST_F16, 2}, {"BF16", LT_ST_BF16, 2},
                {"F64", LT_ST_F64, 8}, {"I64", LT_ST_I64, 8}, {"I32", LT_ST_I32, 4},
                {"I16", LT_ST_I16, 2}, {"I8", LT_ST_I8, 1},   {"U8", LT_ST_U8, 1},
                {"BOOL", LT_ST_BOOL, 1}};

const char *lt_st_dtype_name(lt_st_dtype d) {
    for (size_t i = 0; i < sizeof k_dtypes / sizeof k_dtypes[0]; i++)
        if (k_dtypes[i].dtype == d) return k_dtypes[i].name;
    return "?";
}

static int dtype_size(lt_st_dtype d) {
    for (size_t i = 0; i < sizeof k_dtypes / sizeof k_dtypes[0]; i++)
        if (k_dtypes[i].dtype == d) return k_dtypes[i].size;
    return 0;
}

void lt_st_close(lt_safetensors *st) {
    if (!st) return;
    if (st->map) munmap((void *)(uintptr_t)st->map, st->map_size);
    free(st->t);
    for (int i = 0; i < 2 * st->n_meta; i++) free(st->meta[i]);
    free(st->meta);
    free(st);
}

static int by_offset(const void *a, const void *b) {
    const lt_st_tensor *x = *(const lt_st_tensor *const *)a, *y = *(const lt_st_tensor *const *)b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

static lt_status parse_entry(lt_safetensors *st, const cJSON *item, lt_st_tensor *t, lt_error *err) {
    const char *p = st->path, *name = item->string;
    if (strlen(name) >= LT_ST_NAME_MAX)
        return lt_fail(err, LT_ERR_FORMAT, "%s: tensor name \"%.40s...\" longer than %d bytes", p,
                       name, LT_ST_NAME_MAX - 1);
    snprintf(t->name, sizeof t->name, "%s", name);
    if (!cJSON_IsObject(item))
        return lt_fail(err, LT_ERR_FORMAT, "%s: tensor %s: expected an object", p, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dt))
        return lt_fail(err, LT_ERR_FORMAT, "%s: tensor %s: missing string field \"dtype\"", p, name);
    int found = 0;
    for (size_t i = 0; i < sizeof k_dtypes / sizeof k_dtypes[0]; i++)
        if (!strcmp(dt->valuestring, k_dtypes[i].name)) {
            t->dtype = k_dtypes[i].dtype;
            found = 1;
        }
    if (!found)
        return lt_fail(err, LT_ERR_FORMAT, "%s: tensor %s: dtype \"%.20s\" is not supported", p,
                       name, dt->valuestring);
    if (!cJSON_IsArray(shape))
        return lt_fail(err, LT_ERR_FORMAT, "%s: tensor %s: missing array field \"shape\"", p, name);
    int nd = cJSON_GetArraySize(shape);
    if (nd > LT_ST_MAX_DIMS)
        return lt_fail(err, LT_ERR_FORMAT, "%s: tensor %s: %d dimensions, at most %d supported", p,
                       name, nd, LT_ST_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    for (int d = 0; d < nd; d++) {
        const cJSON *v = cJSON_GetArrayItem(shape, d);
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9.0e15 ||
            v->valuedouble != floor(v->valuedouble))
            return lt_fail(err, LT_ERR_FORMAT, "%s: tensor %s: shape[%d] is not a non-negative integer",
                           p, name, d);
        t->shape[d] = (int64_t)v->valuedouble;
        if (t->shape[d] && numel > UINT64_MAX / (uint64_t)t->shape[d] / 8)
            return lt_fail(err, LT_ERR_FORMAT, "%s: tensor %s: shape overflows", p, name);
        numel *= (uint64_t)t->shape[d];
    }
    t->numel = numel;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return lt_fail(err, LT_ERR_FORMAT, "%s: tensor %s: \"data_offsets\" must be [begin, end]", p,
                       name);
    double b = cJSON_GetArrayItem(offs, 0)->valuedouble, e = cJSON_GetArrayItem(offs, 1)->valuedouble;
    if (!cJSON_IsNumber(cJSON_GetArrayItem(offs, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(offs, 1)) ||
        b < 0 || e < b || b != floor(b) || e != floor(e) || e > (double)st->data_size)
        return lt_fail(err, LT_ERR_FORMAT,
                       "%s: tensor %s: data_offsets [%.0f, %.0f] outside the %llu-byte data section",
                       p, name, b, e, (unsigned long long)st->data_size);
    t->offset = (uint64_t)b;
    t->nbytes = (uint64_t)e - (uint64_t)b;
    if (t->nbytes != numel * (uint64_t)dtype_size(t->dtype))
        return lt_fail(err, LT_ERR_FORMAT,
                       "%s: tensor %s: %llu bytes, but shape x %s size is %llu", p, name,
                       (unsigned long long)t->nbytes, dt->valuestring,
                       (unsigned long long)(numel * (uint64_t)dtype_size(t->dtype)));
    return LT_OK;
}

static lt_status parse_header(lt_safetensors *st, const char *json, size_t len, lt_error *err) {
    const char *p = st->path;
    cJSON *root = NULL;
    /* the header follows the file's 8-byte length */
    lt_status pst = lt_json_parse_part(json, len, p, "header", 8, &root, err);
    if (pst != LT_OK) return pst;
    lt_status st_ = LT_OK;
    if (!cJSON_IsObject(root)) {
        st_ = lt_fail(err, LT_ERR_FORMAT, "%s: header must be a JSON object", p);
        goto done;
    }
    int n = 0;
    for (const cJSON *it = root->child; it; it = it->next) n += strcmp(it->string, "__metadata__") != 0;
    st->t = calloc(n ? (size_t)n : 1, sizeof *st->t);
    if (!st->t) {
        st_ = lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", p);
        goto done;
    }
    for (const cJSON *it = root->child; it; it = it->next) {
        if (!strcmp(it->string, "__metadata__")) {
            if (!cJSON_IsObject(it)) {
                st_ = lt_fail(err, LT_ERR_FORMAT, "%s: __metadata__ must be an object", p);
                goto done;
            }
            /* cJSON keeps duplicate keys: a second map must not append to
             * the first one's array (found by fuzz_safetensors). */
            if (st->meta) {
                st_ = lt_fail(err, LT_ERR_FORMAT, "%s: __metadata__ appears twice", p);
                goto done;
            }
            int k = cJSON_GetArraySize(it);
            st->meta = calloc(2 * (size_t)k + 1, sizeof *st->meta);
            if (!st->meta) {
                st_ = lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", p);
                goto done;
            }
            for (const cJSON *kv = it->child; kv; kv = kv->next) {
                if (!cJSON_IsString(kv)) {
                    st_ = lt_fail(err, LT_ERR_FORMAT, "%s: __metadata__ value of \"%.40s\" is not a string", p,
                                  kv->string);
                    goto done;
                }
                st->meta[2 * st->n_meta] = strdup(kv->string);
                st->meta[2 * st->n_meta + 1] = strdup(kv->valuestring);
                st->n_meta++;
            }
            continue;
        }
        for (int i = 0; i < st->count; i++)
            if (!strcmp(st->t[i].name, it->string)) {
                st_ = lt_fail(err, LT_ERR_FORMAT, "%s: tensor %.80s appears twice", p, it->string);
                goto done;
            }
        if ((st_ = parse_entry(st, it, &st->t[st->count], err)) != LT_OK) goto done;
        st->count++;
    }
    /* Ranges must not overlap: sort by start and compare neighbours. */
    lt_st_tensor **order = malloc((st->count ? (size_t)st->count : 1) * sizeof *order);
    if (!order) {
        st_ = lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", p);
        goto done;
    }
    for (int i = 0; i < st->count; i++) order[i] = &st->t[i];
    qsort(order, (size_t)st->count, sizeof *order, by_offset);
    for (int i = 1; i < st->count; i++)
        if (order[i]->offset < order[i - 1]->offset + order[i - 1]->nbytes) {
            st_ = lt_fail(err, LT_ERR_FORMAT, "%s: tensors %s and %s overlap in the data section", p,
                          order[i - 1]->name, order[i]->name);
            break;
        }
    free(order);
done:
    cJSON_Delete(root);
    return st_;
}

lt_status lt_st_open(const char *path, lt_safetensors **out, lt_error *err) {
    *out = NULL;
    lt_safetensors *st = calloc(1, sizeof *st);
    if (!st) return lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", path);
    snprintf(st->path, sizeof st->path, "%s", path);
    lt_status s = LT_OK;
    int fd = open(path, O_RDONLY);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        s = lt_fail(err, LT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode) || sb.st_size < 8) {
        s = lt_fail(err, LT_ERR_FORMAT, "%s: %lld bytes, too short for the 8-byte safetensors header length",
                    path, (long long)sb.st_size);
        goto fail;
    }
    st->map_size = (size_t)sb.st_size;
    void *m = mmap(NULL, st->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
        s = lt_fail(err, LT_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
        goto fail;
    }
    st->map = m;
    long page = sysconf(_SC_PAGESIZE);
    st->page = page > 0 ? (size_t)page : 4096;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | st->map[i];
    if (hlen > st->map_size - 8 || hlen > LT_ST_MAX_HEADER) {
        s = lt_fail(err, LT_ERR_FORMAT, "%s: header length %llu exceeds the file (%zu bytes) or %u MiB",
                    path, (unsigned long long)hlen, st->map_size, LT_ST_MAX_HEADER >> 20);
        goto fail;
    }
    st->data = st->map + 8 + hlen;
    st->data_size = st->map_size - 8 - hlen;
    if ((s = parse_header(st, (const char *)st->map + 8, (size_t)hlen, err)) != LT_OK) goto fail;
    close(fd);
    *out = st;
    return LT_OK;
fail:
    if (fd >= 0) close(fd);
    lt_st_close(st);
    return s;
}

int lt_st_count(const lt_safetensors *st) { return st->count; }
const lt_st_tensor *lt_st_at(const lt_safetensors *st, int i) {
    return i >= 0 && i < st->count ? &st->t[i] : NULL;
}
const lt_st_tensor *lt_st_find(const lt_safetensors *st, const char *name) {
    for (int i = 0; i < st->count; i++)
        if (!strcmp(st->t[i].name, name)) return &st->t[i];
    return NULL;
}
const char *lt_st_metadata(const lt_safetensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta[2 * i], key)) return st->meta[2 * i + 1];
    return NULL;
}

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                man <<= 1;
                e++;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

lt_status lt_st_read_f32(const lt_safetensors *st, const lt_st_tensor *t, float *dst, size_t count,
                         lt_error *err) {
    if (count != t->numel)
        return lt_fail(err, LT_ERR_FORMAT, "%s: tensor %s has %llu elements, expected %zu", st->path,
                       t->name, (unsigned long long)t->numel, count);
    const unsigned char *src = st->data + t->offset;
    switch (t->dtype) {
    case LT_ST_F32: memcpy(dst, src, count * 4); break;
    case LT_ST_F64:
        for (size_t i = 0; i < count; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            dst[i] = (float)d;
        }
        break;
    case LT_ST_F16:
        for (size_t i = 0; i < count; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = half_to_float(h);
        }
        break;
    case LT_ST_BF16:
        for (size_t i = 0; i < count; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&dst[i], &bits, 4);
        }
        break;
    default:
        return lt_fail(err, LT_ERR_FORMAT, "%s: tensor %s is %s, expected a floating-point dtype",
                       st->path, t->name, lt_st_dtype_name(t->dtype));
    }
    return LT_OK;
}

void lt_st_release(const lt_safetensors *st, const lt_st_tensor *t) {
    if (!st || !t || !st->map || !t->nbytes) return;
    /* Rounded outward: a page shared with a neighbour is dropped too and
     * re-faults from the file if that neighbour is read later, since the
     * mapping is read-only and never dirtied. */
    size_t begin = (size_t)(st->data - st->map) + (size_t)t->offset;
    size_t end = begin + (size_t)t->nbytes;
    begin -= begin % st->page;
    end = end > st->map_size ? st->map_size : end;
#ifdef MADV_DONTNEED
    /* Only a hint: should it fail, the pages just stay until lt_st_close. */
    (void)madvise((void *)(uintptr_t)(st->map + begin), end - begin, MADV_DONTNEED);
#endif
}

/* Round to nearest even, as torch's .to(float16) and .to(bfloat16) do. */
static uint16_t float_to_bf16(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    if ((b & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((b >> 16) | 0x40); /* quiet NaN */
    b += 0x7fffu + ((b >> 16) & 1);
    return (uint16_t)(b >> 16);
}

static uint16_t float_to_half(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    const uint32_t sign = (b >> 16) & 0x8000u, a = b & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds past 65504: inf */
    if (a < 0x38800000u) {                                    /* subnormal or zero in half */
        float v;
        memcpy(&v, &a, 4);
        /* Scaled so the half subnormal step is 1; nearbyint rounds to even. */
        return (uint16_t)(sign | (uint32_t)nearbyintf(v * 16777216.0f));
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1);
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

lt_status lt_st_write_f32(const char *path, const lt_st_out *tensors, int n, const char *const *meta,
                          int n_meta, lt_error *err) {
    return lt_st_write(path, tensors, n, LT_ST_F32, meta, n_meta, err);
}

lt_status lt_st_write(const char *path, const lt_st_out *tensors, int n, lt_st_dtype dtype,
                      const char *const *meta, int n_meta, lt_error *err) {
    if (dtype != LT_ST_F32 && dtype != LT_ST_F16 && dtype != LT_ST_BF16)
        return lt_fail(err, LT_ERR_INVALID, "%s: cannot write dtype %s (F32, F16 or BF16)", path,
                       lt_st_dtype_name(dtype));
    const uint64_t width = (uint64_t)dtype_size(dtype);
    cJSON *root = cJSON_CreateObject();
    if (!root) return lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", path);
    if (n_meta > 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; m && i < n_meta; i++) cJSON_AddStringToObject(m, meta[2 * i], meta[2 * i + 1]);
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_AddObjectToObject(root, tensors[i].name);
        uint64_t numel = 1;
        for (int d = 0; d < tensors[i].ndim; d++) numel *= (uint64_t)tensors[i].shape[d];
        double shape[LT_ST_MAX_DIMS], offs[2] = {(double)off, (double)(off + width * numel)};
        for (int d = 0; d < tensors[i].ndim; d++) shape[d] = (double)tensors[i].shape[d];
        if (!e || !cJSON_AddStringToObject(e, "dtype", lt_st_dtype_name(dtype)) ||
            !cJSON_AddItemToObject(e, "shape", cJSON_CreateDoubleArray(shape, tensors[i].ndim)) ||
            !cJSON_AddItemToObject(e, "data_offsets", cJSON_CreateDoubleArray(offs, 2))) {
            cJSON_Delete(root);
            return lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", path);
        }
        off += width * numel;
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!json) return lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", path);
    /* Pad the header with spaces to 8 bytes so the data stays aligned. */
    size_t jl = strlen(json), padded = (jl + 7) / 8 * 8;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    lt_atomic_file af;
    lt_status s = lt_atomic_open(&af, path, err);
    if (s == LT_OK) s = lt_atomic_write(&af, len8, 8, err);
    if (s == LT_OK) s = lt_atomic_write(&af, json, jl, err);
    for (size_t i = jl; s == LT_OK && i < padded; i++) s = lt_atomic_write(&af, " ", 1, err);
    for (int i = 0; s == LT_OK && i < n; i++) {
        uint64_t numel = 1;
        for (int d = 0; d < tensors[i].ndim; d++) numel *= (uint64_t)tensors[i].shape[d];
        if (dtype == LT_ST_F32) {
            s = lt_atomic_write(&af, tensors[i].data, (size_t)numel * 4, err);
            continue;
        }
        uint16_t chunk[4096];
        for (uint64_t at = 0; s == LT_OK && at < numel; at += 4096) {
            size_t k = numel - at < 4096 ? (size_t)(numel - at) : 4096;
            for (size_t j = 0; j < k; j++)
                chunk[j] = dtype == LT_ST_F16 ? float_to_half(tensors[i].data[at + j])
                                              : float_to_bf16(tensors[i].data[at + j]);
            s = lt_atomic_write(&af, chunk, k * 2, err);
        }
    }
    free(json);
    if (s != LT_OK) {
        lt_atomic_abort(&af);
        return s;
    }
    return lt_atomic_commit(&af, err);
}
