/* Dequantization on the CPU: the frozen base is expanded one layer at a
 * time into the fp32 workspace that the GEMMs read, twice per step, so it
 * must cost little next to them. Every element is one table lookup and one
 * multiply, exactly lt_dequantize_ref's (this file is compiled without FMA
 * contraction so the double-quant absmax keeps its two roundings). Vector
 * paths: AVX-512 (32 elements a step) and AVX2 (16); scalar elsewhere. */
#include <omp.h>
#include <string.h>

#include "model/cpu/internal.h"

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
#elif defined(__AVX2__)
#include <immintrin.h>

/* The table's 16 entries: t0 holds 0-7, t1 8-15; bit 3 of the code picks
 * the half (vpermps looks at the low three bits only). */
static inline __m256 lookup16(__m256i idx, __m256 t0, __m256 t1) {
    const __m256 upper = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)); /* sign = bit 3 */
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(t0, idx), _mm256_permutevar8x32_ps(t1, idx), upper);
}

/* 16 elements from 8 bytes, the AVX2 twin of decode32 below. */
static inline void decode16(float *out, const uint8_t *codes, __m256 t0, __m256 t1, __m256 scale) {
    const __m256i idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)codes));
    const __m256 hi = _mm256_mul_ps(lookup16(_mm256_srli_epi32(idx, 4), t0, t1), scale);
    const __m256 lo = _mm256_mul_ps(lookup16(_mm256_and_si256(idx, _mm256_set1_epi32(15)), t0, t1), scale);
    /* per 128-bit lane: [h0 l0 h1 l1 | h4 l4 h5 l5] and [h2 l2 h3 l3 | h6 l6 h7 l7] */
    const __m256 a = _mm256_unpacklo_ps(hi, lo), b = _mm256_unpackhi_ps(hi, lo);
    _mm256_storeu_ps(out, _mm256_permute2f128_ps(a, b, 0x20));
    _mm256_storeu_ps(out + 8, _mm256_permute2f128_ps(a, b, 0x31));
}
#define LT_HAVE_DECODE16 1
#endif

/* n elements of one block, starting on a byte boundary. */
static void decode_block(float *out, const uint8_t *codes, int64_t n, float absmax,
                         const float *table) {
    int64_t i = 0;
#ifdef LT_HAVE_DECODE32
    const __m512 t = _mm512_loadu_ps(table), s = _mm512_set1_ps(absmax);
    for (; i + 32 <= n; i += 32) decode32(out + i, codes + i / 2, t, s);
#elif defined(LT_HAVE_DECODE16)
    const __m256 t0 = _mm256_loadu_ps(table), t1 = _mm256_loadu_ps(table + 8), s = _mm256_set1_ps(absmax);
    for (; i + 16 <= n; i += 16) decode16(out + i, codes + i / 2, t0, t1, s);
#endif
    for (; i < n; i++) out[i] = lt_q4_value(table, lt_q4_code(codes, i), absmax);
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
        for (int64_t c = 0; c < cols; c++) o[c] = lt_int8_value(qr[c], rowmax);
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
