#include "model/quant.h"

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* The layout the CPU and CUDA kernels both read: any change here is a
 * change of the format, so it is pinned. */
_Static_assert(sizeof(lt_qtensor) == 96, "lt_qtensor is shared with device code");
_Static_assert(offsetof(lt_qtensor, numel) == 24, "lt_qtensor layout");
_Static_assert(offsetof(lt_qtensor, begin) == 48, "lt_qtensor layout");
_Static_assert(offsetof(lt_qtensor, end) == 88, "lt_qtensor layout");
_Static_assert(LT_QUANT_BLOCKSIZE_DEFAULT % 2 == 0 && LT_QUANT_DQ_BLOCKSIZE % 2 == 0,
               "4-bit blocks must start on a byte");

const float lt_nf4_code[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

/* bitsandbytes' dDequantizeFP4Tree constants; the sign is folded into the
 * table, which is exact: (v * absmax) * -1 == (-v) * absmax. */
const float lt_fp4_code[16] = {
    0.0f, 5.208333333e-03f, 0.66666667f, 1.0f, 0.33333333f, 0.5f, 0.16666667f, 0.25f,
    -0.0f, -5.208333333e-03f, -0.66666667f, -1.0f, -0.33333333f, -0.5f, -0.16666667f, -0.25f};

/* bitsandbytes.functional.create_dynamic_map(signed=True), as float32
 * (generated with torch; tests/ref/quant_ref.py regenerates it and compares). */
const float lt_dynamic8_code[256] = {
    -0x1.fc6666p-1f, -0x1.f53332p-1f, -0x1.eep-1f, -0x1.e6ccccp-1f, -0x1.df9998p-1f, -0x1.d86666p-1f,
    -0x1.d13334p-1f, -0x1.cap-1f, -0x1.c2ccccp-1f, -0x1.bb9998p-1f, -0x1.b46666p-1f, -0x1.ad3332p-1f,
    -0x1.a6p-1f, -0x1.9eccccp-1f, -0x1.979998p-1f, -0x1.906666p-1f, -0x1.893334p-1f, -0x1.82p-1f,
    -0x1.7acccep-1f, -0x1.73999ap-1f, -0x1.6c6668p-1f, -0x1.653334p-1f, -0x1.5ep-1f, -0x1.56cccep-1f,
    -0x1.4f999ap-1f, -0x1.486666p-1f, -0x1.413334p-1f, -0x1.3ap-1f, -0x1.32ccccp-1f, -0x1.2b999ap-1f,
    -0x1.246668p-1f, -0x1.1d3334p-1f, -0x1.16p-1f, -0x1.0eccccp-1f, -0x1.07999ap-1f, -0x1.006666p-1f,
    -0x1.f26668p-2f, -0x1.e4p-2f, -0x1.d59998p-2f, -0x1.c73334p-2f, -0x1.b8ccccp-2f, -0x1.aa6664p-2f,
    -0x1.9cp-2f, -0x1.8d9998p-2f, -0x1.7f3334p-2f, -0x1.70ccccp-2f, -0x1.626664p-2f, -0x1.54p-2f,
    -0x1.459998p-2f, -0x1.373334p-2f, -0x1.28ccccp-2f, -0x1.1a6668p-2f, -0x1.0cp-2f, -0x1.fb3334p-3f,
    -0x1.de6668p-3f, -0x1.c1999ap-3f, -0x1.a4ccccp-3f, -0x1.88p-3f, -0x1.6b3332p-3f, -0x1.4e6666p-3f,
    -0x1.31999ap-3f, -0x1.14ccccp-3f, -0x1.fp-4f, -0x1.b66668p-4f, -0x1.93d70ap-4f, -0x1.8851eap-4f,
    -0x1.7ccccep-4f, -0x1.7147aep-4f, -0x1.65c29p-4f, -0x1.5a3d7p-4f, -0x1.4eb85p-4f, -0x1.433334p-4f,
    -0x1.37ae14p-4f, -0x1.2c28f6p-4f, -0x1.20a3d6p-4f, -0x1.151ebap-4f, -0x1.09999ap-4f, -0x1.fc28f4p-5f,
    -0x1.e51ebap-5f, -0x1.ce147ap-5f, -0x1.b70a3ep-5f, -0x1.ap-5f, -0x1.88f5c2p-5f, -0x1.71eb86p-5f,
    -0x1.5ae146p-5f, -0x1.43d70ap-5f, -0x1.2ccccep-5f, -0x1.15c28ep-5f, -0x1.fd70a4p-6f, -0x1.cf5c26p-6f,
    -0x1.a147aep-6f, -0x1.733334p-6f, -0x1.451eb8p-6f, -0x1.170a3ep-6f, -0x1.d1eb86p-7f, -0x1.75c29p-7f,
    -0x1.3e76c8p-7f, -0x1.2c083p-7f, -0x1.19999ap-7f, -0x1.072b02p-7f, -0x1.e978d4p-8f, -0x1.c49ba6p-8f,
    -0x1.9fbe76p-8f, -0x1.7ae148p-8f, -0x1.56041ap-8f, -0x1.3126e8p-8f, -0x1.0c49bap-8f, -0x1.ced914p-9f,
    -0x1.851eb8p-9f, -0x1.3b645ap-9f, -0x1.e353f8p-10f, -0x1.4fdf3ap-10f, -0x1.eecbfep-11f, -0x1.b3d07cp-11f,
    -0x1.78d5p-11f, -0x1.3dd982p-11f, -0x1.02de02p-11f, -0x1.8fc506p-12f, -0x1.19ce0ap-12f, -0x1.47ae16p-13f,
    -0x1.743e96p-14f, -0x1.15df66p-14f, -0x1.6f0068p-15f, -0x1.64840cp-16f, -0x1.040bfep-17f, -0x1.b43528p-19f,
    -0x1.27476ep-21f, 0.0f, 0x1.27476ep-21f, 0x1.b43528p-19f, 0x1.040bfep-17f, 0x1.64840cp-16f,
    0x1.6f0068p-15f, 0x1.15df66p-14f, 0x1.743e96p-14f, 0x1.47ae16p-13f, 0x1.19ce0ap-12f, 0x1.8fc506p-12f,
    0x1.02de02p-11f, 0x1.3dd982p-11f, 0x1.78d5p-11f, 0x1.b3d07cp-11f, 0x1.eecbfep-11f, 0x1.4fdf3ap-10f,
    0x1.e353f8p-10f, 0x1.3b645ap-9f, 0x1.851eb8p-9f, 0x1.ced914p-9f, 0x1.0c49bap-8f, 0x1.3126e8p-8f,
    0x1.56041ap-8f, 0x1.7ae148p-8f, 0x1.9fbe76p-8f, 0x1.c49ba6p-8f, 0x1.e978d4p-8f, 0x1.072b02p-7f,
    0x1.19999ap-7f, 0x1.2c083p-7f, 0x1.3e76c8p-7f, 0x1.75c29p-7f, 0x1.d1eb86p-7f, 0x1.170a3ep-6f,
    0x1.451eb8p-6f, 0x1.733334p-6f, 0x1.a147aep-6f, 0x1.cf5c26p-6f, 0x1.fd70a4p-6f, 0x1.15c28ep-5f,
    0x1.2ccccep-5f, 0x1.43d70ap-5f, 0x1.5ae146p-5f, 0x1.71eb86p-5f, 0x1.88f5c2p-5f, 0x1.ap-5f,
    0x1.b70a3ep-5f, 0x1.ce147ap-5f, 0x1.e51ebap-5f, 0x1.fc28f4p-5f, 0x1.09999ap-4f, 0x1.151ebap-4f,
    0x1.20a3d6p-4f, 0x1.2c28f6p-4f, 0x1.37ae14p-4f, 0x1.433334p-4f, 0x1.4eb85p-4f, 0x1.5a3d7p-4f,
    0x1.65c29p-4f, 0x1.7147aep-4f, 0x1.7ccccep-4f, 0x1.8851eap-4f, 0x1.93d70ap-4f, 0x1.b66668p-4f,
    0x1.fp-4f, 0x1.14ccccp-3f, 0x1.31999ap-3f, 0x1.4e6666p-3f, 0x1.6b3332p-3f, 0x1.88p-3f,
    0x1.a4ccccp-3f, 0x1.c1999ap-3f, 0x1.de6668p-3f, 0x1.fb3334p-3f, 0x1.0cp-2f, 0x1.1a6668p-2f,
    0x1.28ccccp-2f, 0x1.373334p-2f, 0x1.459998p-2f, 0x1.54p-2f, 0x1.626664p-2f, 0x1.70ccccp-2f,
    0x1.7f3334p-2f, 0x1.8d9998p-2f, 0x1.9cp-2f, 0x1.aa6664p-2f, 0x1.b8ccccp-2f, 0x1.c73334p-2f,
    0x1.d59998p-2f, 0x1.e4p-2f, 0x1.f26668p-2f, 0x1.006666p-1f, 0x1.07999ap-1f, 0x1.0eccccp-1f,
    0x1.16p-1f, 0x1.1d3334p-1f, 0x1.246668p-1f, 0x1.2b999ap-1f, 0x1.32ccccp-1f, 0x1.3ap-1f,
    0x1.413334p-1f, 0x1.486666p-1f, 0x1.4f999ap-1f, 0x1.56cccep-1f, 0x1.5ep-1f, 0x1.653334p-1f,
    0x1.6c6668p-1f, 0x1.73999ap-1f, 0x1.7acccep-1f, 0x1.82p-1f, 0x1.893334p-1f, 0x1.906666p-1f,
    0x1.979998p-1f, 0x1.9eccccp-1f, 0x1.a6p-1f, 0x1.ad3332p-1f, 0x1.b46666p-1f, 0x1.bb9998p-1f,
    0x1.c2ccccp-1f, 0x1.cap-1f, 0x1.d13334p-1f, 0x1.d86666p-1f, 0x1.df9998p-1f, 0x1.e6ccccp-1f,
    0x1.eep-1f, 0x1.f53332p-1f, 0x1.fc6666p-1f, 0x1p+0f,
};

/* ------------------------------------------------------------ formats */

const char *lt_quant_format_name(lt_quant_format f) {
    switch (f) {
    case LT_QUANT_NONE: return "none";
    case LT_QUANT_NF4: return "nf4";
    case LT_QUANT_FP4: return "fp4";
    case LT_QUANT_INT8: return "int8";
    }
    return "invalid";
}

lt_status lt_quant_format_parse(const char *name, lt_quant_format *f, lt_error *err) {
    const lt_quant_format all[] = {LT_QUANT_NF4, LT_QUANT_FP4, LT_QUANT_INT8};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(name, lt_quant_format_name(all[i]))) {
            *f = all[i];
            return LT_OK;
        }
    return lt_fail(err, LT_ERR_CONFIG, "quantization type \"%s\": expected nf4, fp4 or int8", name);
}

lt_quant_config lt_quant_defaults(lt_quant_format f) {
    lt_quant_config qc = {f, LT_QUANT_BLOCKSIZE_DEFAULT, 0};
    return qc;
}

static int is_4bit(int format) { return format == LT_QUANT_NF4 || format == LT_QUANT_FP4; }

lt_status lt_quant_config_validate(const lt_quant_config *qc, lt_error *err) {
    if (qc->format != LT_QUANT_NF4 && qc->format != LT_QUANT_FP4 && qc->format != LT_QUANT_INT8)
        return lt_fail(err, LT_ERR_CONFIG, "quantization format %d: expected nf4, fp4 or int8",
                       (int)qc->format);
    if (!is_4bit(qc->format)) {
        if (qc->double_quant)
            return lt_fail(err, LT_ERR_CONFIG,
                           "bnb_4bit_use_double_quant applies to 4-bit formats, not int8");
        return LT_OK;
    }
    if (qc->blocksize < 2 || qc->blocksize > LT_QUANT_BLOCKSIZE_MAX || qc->blocksize % 2 != 0)
        return lt_fail(err, LT_ERR_CONFIG,
                       "bnb_4bit_blocksize = %d: expected an even number of elements per block "
                       "from 2 to %d (two 4-bit codes share a byte; bitsandbytes uses 64)",
                       qc->blocksize, LT_QUANT_BLOCKSIZE_MAX);
    return LT_OK;
}

lt_status lt_quant_select(int load_in_4bit, int load_in_8bit, const lt_quant_config *four_bit,
                          lt_quant_config *out, lt_error *err) {
    if (load_in_4bit && load_in_8bit)
        return lt_fail(err, LT_ERR_CONFIG,
                       "load_in_4bit and load_in_8bit are both set; choose one (as in BitsAndBytesConfig)");
    *out = load_in_8bit   ? lt_quant_defaults(LT_QUANT_INT8)
           : load_in_4bit ? *four_bit
                          : lt_quant_defaults(LT_QUANT_NONE);
    return out->format == LT_QUANT_NONE ? LT_OK : lt_quant_config_validate(out, err);
}

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

lt_status lt_qtensor_layout(const lt_quant_config *qc, int rows, int cols, uint64_t at,
                            lt_qtensor *t, lt_error *err) {
    lt_status st = lt_quant_config_validate(qc, err);
    if (st != LT_OK) return st;
    if (rows < 1 || cols < 1)
        return lt_fail(err, LT_ERR_INVALID, "quantized tensor shape [%d, %d] must be positive", rows,
                       cols);
    memset(t, 0, sizeof *t);
    t->format = (int32_t)qc->format;
    t->rows = rows;
    t->cols = cols;
    t->numel = (int64_t)rows * cols;
    t->begin = align_up(at, 64);
    t->codes = t->begin;
    if (qc->format == LT_QUANT_INT8) {
        t->blocksize = cols;
        t->nblocks = rows;
        t->absmax = align_up(t->codes + (uint64_t)t->numel, 16);
        t->end = t->absmax + 4u * (uint64_t)t->nblocks;
        return LT_OK;
    }
    t->blocksize = qc->blocksize;
    t->double_quant = qc->double_quant;
    t->nblocks = (t->numel + qc->blocksize - 1) / qc->blocksize;
    t->absmax = align_up(t->codes + (uint64_t)(t->numel + 1) / 2, 16);
    if (!qc->double_quant) {
        t->end = t->absmax + 4u * (uint64_t)t->nblocks;
        return LT_OK;
    }
    t->nblocks2 = (t->nblocks + LT_QUANT_DQ_BLOCKSIZE - 1) / LT_QUANT_DQ_BLOCKSIZE;
    t->absmax2 = align_up(t->absmax + (uint64_t)t->nblocks, 16);
    t->offset = t->absmax2 + 4u * (uint64_t)t->nblocks2;
    t->end = t->offset + 4;
    return LT_OK;
}

double lt_qtensor_bits(const lt_qtensor *t) {
    return t->numel ? 8.0 * (double)(t->end - t->begin) / (double)t->numel : 0.0;
}

/* --------------------------------------------------- value quantizers */

/* bitsandbytes' per-value quantizers; x is already scaled by 1/absmax. */

/* dQuantizeNF4's decision tree: its thresholds in ascending order; the
 * tree returns how many of them x exceeds (NaN exceeds none). */
static const float k_nf4_thresholds[15] = {
    -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
    -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
    0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
    0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f};

static uint8_t lt_nf4_quantize(float x) {
    unsigned c = 0;
    for (int i = 0; i < 15; i++) c += x > k_nf4_thresholds[i];
    return (uint8_t)c;
}

/* dQuantizeFP4: a sign bit, then a tree over |x| with its own pivots. */
static uint8_t lt_fp4_quantize(float x) {
    const unsigned sign = x < 0.0f ? 8u : 0u;
    const float a = fabsf(x);
    unsigned m;
    if (a > 0.29166667f)
        m = a > 0.583333f ? (a > 0.8333333f ? 3u : 2u) : (a > 0.4166667f ? 5u : 4u);
    else
        m = a > 0.0859375f ? (a > 0.20833333f ? 7u : 6u) : (a > 0.00260417f ? 1u : 0u);
    return (uint8_t)(m + sign);
}

/* kQuantizeBlockwise's dQuantize<0>: a seven-step binary search over the
 * sorted map, then the nearer neighbour by float midpoint. */
static uint8_t lt_dynamic8_quantize(float x) {
    const float *code = lt_dynamic8_code;
    int pivot = 127, upper_pivot = 255, lower_pivot = 0;
    float lower = -1.0f, upper = 1.0f, val = code[pivot];
    for (int step = 64; step > 0; step >>= 1) {
        if (x > val) {
            lower_pivot = pivot;
            lower = val;
            pivot += step;
        } else {
            upper_pivot = pivot;
            upper = val;
            pivot -= step;
        }
        val = code[pivot];
    }
    if (upper_pivot == 255) upper = code[upper_pivot];
    if (lower_pivot == 0) lower = code[lower_pivot];
    if (x > val) return (uint8_t)(x > (upper + val) * 0.5f ? upper_pivot : pivot);
    return (uint8_t)(x < (lower + val) * 0.5f ? lower_pivot : pivot);
}

/* -------------------------------------------------------- quantization */

static float load_f32(const uint8_t *p) {
    float v;
    memcpy(&v, p, sizeof v);
    return v;
}
static void store_f32(uint8_t *p, float v) { memcpy(p, &v, sizeof v); }

static lt_status check_finite(const lt_qtensor *t, const float *w, const char *name,
                              lt_error *err) {
    for (int64_t i = 0; i < t->numel; i++)
        if (!isfinite(w[i]))
            return lt_fail(err, LT_ERR_INVALID,
                           "quantizing %s [%d x %d]: element (%lld, %lld) is %g; only finite "
                           "weights can be quantized",
                           name, t->rows, t->cols, (long long)(i / t->cols),
                           (long long)(i % t->cols), (double)w[i]);
    return LT_OK;
}

static float block_max_abs(const float *w, int64_t n) {
    float m = 0.0f;
    for (int64_t i = 0; i < n; i++) m = fmaxf(m, fabsf(w[i]));
    return m;
}

static void quantize_int8(const lt_qtensor *t, const float *w, uint8_t *blob) {
    int8_t *q = (int8_t *)(blob + t->codes);
    for (int r = 0; r < t->rows; r++) {
        const float *row = w + (size_t)r * t->cols;
        const float rowmax = block_max_abs(row, t->cols);
        store_f32(blob + t->absmax + 4u * (uint64_t)r, rowmax);
        const float scale = 127.0f / rowmax;
        for (int c = 0; c < t->cols; c++)
            q[(size_t)r * t->cols + c] = rowmax > 0.0f ? (int8_t)rintf(row[c] * scale) : 0;
    }
}

/* Double quantization of the block absmax values (already in absmax[]). */
static void quantize_absmax(const lt_qtensor *t, const float *absmax, uint8_t *blob) {
    double sum = 0.0;
    for (int64_t b = 0; b < t->nblocks; b++) sum += absmax[b];
    const float offset = (float)(sum / (double)t->nblocks);
    store_f32(blob + t->offset, offset);
    for (int64_t j = 0; j < t->nblocks2; j++) {
        const int64_t b0 = j * LT_QUANT_DQ_BLOCKSIZE;
        const int64_t n = t->nblocks - b0 < LT_QUANT_DQ_BLOCKSIZE ? t->nblocks - b0
                                                                  : LT_QUANT_DQ_BLOCKSIZE;
        float m = 0.0f;
        for (int64_t b = 0; b < n; b++) m = fmaxf(m, fabsf(absmax[b0 + b] - offset));
        store_f32(blob + t->absmax2 + 4u * (uint64_t)j, m);
        const float inv = 1.0f / m;
        for (int64_t b = 0; b < n; b++)
            blob[t->absmax + (uint64_t)(b0 + b)] = lt_dynamic8_quantize((absmax[b0 + b] - offset) * inv);
    }
}

lt_status lt_quantize(const lt_qtensor *t, const float *w, uint8_t *blob, const char *name,
                      lt_error *err) {
    lt_status st = check_finite(t, w, name, err);
    if (st != LT_OK) return st;
    if (t->format == LT_QUANT_INT8) {
        quantize_int8(t, w, blob);
        return LT_OK;
    }
    uint8_t (*const quant)(float) = t->format == LT_QUANT_NF4 ? lt_nf4_quantize : lt_fp4_quantize;
    float *absmax = NULL;
    if (t->double_quant) {
        absmax = lt_alloc(LT_MEM_WORKSPACE, (size_t)t->nblocks * sizeof(float));
        if (!absmax)
            return lt_fail(err, LT_ERR_NOMEM, "quantizing %s: cannot allocate %lld absmax values",
                           name, (long long)t->nblocks);
    }
    uint8_t *codes = blob + t->codes;
    for (int64_t b = 0; b < t->nblocks; b++) {
        const int64_t i0 = b * t->blocksize;
        const int64_t n = t->numel - i0 < t->blocksize ? t->numel - i0 : t->blocksize;
        const float am = block_max_abs(w + i0, n);
        if (absmax)
            absmax[b] = am;
        else
            store_f32(blob + t->absmax + 4u * (uint64_t)b, am);
        /* Multiplying by the reciprocal, not dividing, is what the kernels
         * do; the element past an odd end is a padded 0.0f, as they load it. */
        const float inv = 1.0f / am;
        for (int64_t i = 0; i < n; i += 2) {
            const float hi = w[i0 + i], lo = i + 1 < n ? w[i0 + i + 1] : 0.0f;
            codes[(i0 + i) / 2] = (uint8_t)((quant(hi * inv) << 4) | quant(lo * inv));
        }
    }
    if (absmax) {
        quantize_absmax(t, absmax, blob);
        lt_free(absmax);
    }
    return LT_OK;
}

/* ------------------------------------------------------ dequantization */

float lt_qtensor_block_absmax(const lt_qtensor *t, const uint8_t *blob, int64_t b) {
    if (!t->double_quant) return load_f32(blob + t->absmax + 4u * (uint64_t)b);
    const float a2 = load_f32(blob + t->absmax2 + 4u * (uint64_t)(b / LT_QUANT_DQ_BLOCKSIZE));
    return lt_dq_absmax(lt_dynamic8_code[blob[t->absmax + (uint64_t)b]], a2,
                        load_f32(blob + t->offset));
}

void lt_dequantize_ref(const lt_qtensor *t, const uint8_t *blob, float *out) {
    if (t->format == LT_QUANT_INT8) {
        const int8_t *q = (const int8_t *)(blob + t->codes);
        for (int64_t i = 0; i < t->numel; i++) {
            const float rowmax = load_f32(blob + t->absmax + 4u * (uint64_t)(i / t->cols));
            out[i] = lt_int8_value(q[i], rowmax);
        }
        return;
    }
    const float *table = t->format == LT_QUANT_NF4 ? lt_nf4_code : lt_fp4_code;
    const uint8_t *codes = blob + t->codes;
    for (int64_t i = 0; i < t->numel; i++) {
        out[i] = lt_q4_value(table, lt_q4_code(codes, i),
                             lt_qtensor_block_absmax(t, blob, i / t->blocksize));
    }
}
