/* Dequantization on the CPU: the frozen base is expanded one layer at a
 * time into the fp32 workspace that the GEMMs read, twice per step, so it
 * must cost little next to them. Every element is one table lookup and one
 * multiply, exactly lt_dequantize_ref's (this file is compiled without FMA
 * contraction so the double-quant absmax keeps its two roundings). */
#include <omp.h>
#include <string.h>

#include "model/ops_cpu_internal.h"

/* Blocks per OpenMP chunk: a chunk must be big enough to amortise the
 * fork (a 288 x 288 tensor is 1296 blocks of 64). */
enum { BLOCKS_PER_CHUNK = 256 };

#if defined(__AVX512F__)
#include <immintrin.h>

/* 32 elements from 16 bytes: the high nibbles are the even elements. The
 * 16-entry table is one zmm register, so a lookup is one vpermps. (GCC's
 * generic vectors widen the bytes one by one here, 4x slower.) */
static inline void decode32(float *out, const uint8_t *codes, __m512 table, __m512 scale) {
    const __m512i idx = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)codes));
    const __m512 hi = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(idx, 4), table), scale);
    const __m512 lo = _mm512_mul_ps(
        _mm512_permutexvar_ps(_mm512_and_si512(idx, _mm512_set1_epi32(15)), table), scale);
    const __m512i even = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i odd = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    _mm512_storeu_ps(out, _mm512_permutex2var_ps(hi, even, lo));
    _mm512_storeu_ps(out + 16, _mm512_permutex2var_ps(hi, odd, lo));
}
#define LT_HAVE_DECODE32 1
#endif

/* n elements of one block, starting on a byte boundary. */
static void decode_block(float *out, const uint8_t *codes, int64_t n, float absmax,
                         const float *table) {
    int64_t i = 0;
#ifdef LT_HAVE_DECODE32
    const __m512 t = _mm512_loadu_ps(table), s = _mm512_set1_ps(absmax);
    for (; i + 32 <= n; i += 32) decode32(out + i, codes + i / 2, t, s);
#endif
    for (; i < n; i++) {
        const unsigned c = i & 1 ? codes[i / 2] & 15u : codes[i / 2] >> 4;
        out[i] = table[c] * absmax;
    }
}

static void dequantize_4bit(float *out, const uint8_t *blob, const lt_qtensor *t) {
    const float *table = t->format == LT_QUANT_NF4 ? lt_nf4_code : lt_fp4_code;
    const int64_t nb = t->nblocks, bs = t->blocksize, chunks = (nb + BLOCKS_PER_CHUNK - 1) / BLOCKS_PER_CHUNK;
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (int64_t ch = 0; ch < chunks; ch++) {
        const int64_t b1 = (ch + 1) * BLOCKS_PER_CHUNK < nb ? (ch + 1) * BLOCKS_PER_CHUNK : nb;
        for (int64_t b = ch * BLOCKS_PER_CHUNK; b < b1; b++) {
            const int64_t i0 = b * bs, n = t->numel - i0 < bs ? t->numel - i0 : bs;
            decode_block(out + i0, blob + t->codes + (uint64_t)i0 / 2, n,
                         lt_qtensor_block_absmax(t, blob, b), table);
        }
    }
}

static void dequantize_int8(float *out, const uint8_t *blob, const lt_qtensor *t) {
    const int8_t *q = (const int8_t *)(blob + t->codes);
    const int64_t cols = t->cols;
#pragma omp parallel for schedule(static) if (t->numel > 65536)
    for (int r = 0; r < t->rows; r++) {
        float rowmax;
        memcpy(&rowmax, blob + t->absmax + 4u * (uint64_t)r, sizeof rowmax);
        const int8_t *qr = q + r * cols;
        float *o = out + r * cols;
        for (int64_t c = 0; c < cols; c++) o[c] = ((float)qr[c] * rowmax) * 7.874015718698502e-3f;
    }
}

void lt_cpu_dequantize(const lt_ops *o, float *out, const uint8_t *blob, const lt_qtensor *t) {
    (void)o;
    if (t->format == LT_QUANT_INT8)
        dequantize_int8(out, blob, t);
    else if (t->format == LT_QUANT_NF4 || t->format == LT_QUANT_FP4)
        dequantize_4bit(out, blob, t);
    else
        lt_cpu_raise("dequantize: unknown quantization format");
}
