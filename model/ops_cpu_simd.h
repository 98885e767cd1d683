/* Vector helpers shared by the CPU kernels (private to model/ops_cpu*.c).
 *
 * v16 is GCC/Clang's portable vector extension: sixteen floats, one zmm
 * register with AVX-512, two ymm with AVX2, scalar code elsewhere, so the
 * kernels keep explicit register blocking without intrinsics. */
#ifndef LT_MODEL_OPS_CPU_SIMD_H
#define LT_MODEL_OPS_CPU_SIMD_H

#include <stdint.h>
#include <string.h>

typedef float v16 __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));

#define LT_V 16

static inline v16 v16_load(const float *p) {
    v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void v16_store(float *p, v16 v) { memcpy(p, &v, sizeof v); }
static inline v16 v16_set1(float x) { return (v16){0} + x; }
typedef float v8f __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));

/* Tree reductions (a fixed order, so results do not vary run to run). */
static inline float v16_hsum(v16 v) {
    v8f a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
            __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    v4f b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
    return (b[0] + b[2]) + (b[1] + b[3]);
}
/* Four horizontal sums at once through a shuffle tree: about a third of
 * the instructions of four separate v16_hsum calls. */
static inline v4f v16_hsum4(v16 a, v16 b, v16 c, v16 d) {
    v16 ab = __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
             __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    v16 cd = __builtin_shufflevector(c, d, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
             __builtin_shufflevector(c, d, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    /* ab = [a (8) | b (8)], cd = [c (8) | d (8)] */
    v16 u = __builtin_shufflevector(ab, cd, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
            __builtin_shufflevector(ab, cd, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
    /* u = [a (4) | b (4) | c (4) | d (4)] */
    v8f v = __builtin_shufflevector(u, u, 0, 1, 4, 5, 8, 9, 12, 13) +
            __builtin_shufflevector(u, u, 2, 3, 6, 7, 10, 11, 14, 15);
    /* v = [a (2) | b (2) | c (2) | d (2)] */
    return __builtin_shufflevector(v, v, 0, 2, 4, 6) + __builtin_shufflevector(v, v, 1, 3, 5, 7);
}

static inline float v16_hmax(v16 v) {
    float m = v[0];
    for (int i = 1; i < LT_V; i++) m = v[i] > m ? v[i] : m;
    return m;
}
/* C has no vector ?:, and lane-by-lane loops do not reliably compile to
 * single instructions once inlined into larger loops, so max, min, select
 * and round use AVX-512 intrinsics where available and mask arithmetic
 * elsewhere. Masks are comparison results (all ones or zero per lane). */
#if defined(__AVX512F__)
#include <immintrin.h>
static inline v16 v16_max(v16 a, v16 b) { return (v16)_mm512_max_ps((__m512)a, (__m512)b); }
static inline v16 v16_min(v16 a, v16 b) { return (v16)_mm512_min_ps((__m512)a, (__m512)b); }
static inline v16 v16_select(v16i mask, v16 a, v16 b) {
    __mmask16 k = _mm512_test_epi32_mask((__m512i)mask, (__m512i)mask);
    return (v16)_mm512_mask_blend_ps(k, (__m512)b, (__m512)a);
}
static inline v16 v16_round(v16 a) {
    return (v16)_mm512_roundscale_ps((__m512)a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
#else
static inline v16 v16_select(v16i mask, v16 a, v16 b) {
    v16i ai, bi, r;
    memcpy(&ai, &a, sizeof ai);
    memcpy(&bi, &b, sizeof bi);
    r = (ai & mask) | (bi & ~mask);
    v16 out;
    memcpy(&out, &r, sizeof out);
    return out;
}
static inline v16 v16_max(v16 a, v16 b) { return v16_select(a > b, a, b); }
static inline v16 v16_min(v16 a, v16 b) { return v16_select(a < b, a, b); }
/* 1.5 * 2^23: adding and subtracting it rounds to nearest even for |a| < 2^22 */
static inline v16 v16_round(v16 a) { return (a + 12582912.0f) - 12582912.0f; }
#endif

/* exp for the ranges softmax and SiLU use: Cody-Waite reduction to
 * [-ln2/2, ln2/2] and a degree-6 polynomial; relative error below 2 ulp.
 * Inputs below -87 give 0 (denormals are not worth their cost here). */
static inline v16 v16_exp(v16 x) {
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    v16 lo = v16_set1(-87.0f), hi = v16_set1(88.0f);
    v16i under = x < lo; /* also true for -inf */
    x = v16_min(v16_max(x, lo), hi);
    v16 t = x * log2e;
    v16 n = v16_round(t);
    v16 r = x - n * ln2_hi;
    r = r - n * ln2_lo;
    v16 p = v16_set1(1.0f / 720.0f);
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    v16i e = (__builtin_convertvector(n, v16i) + 127) << 23;
    v16 s;
    memcpy(&s, &e, sizeof s);
    return v16_select(under, (v16){0}, p * s);
}

static inline float lt_expf_scalar(float x) {
    v16 v = v16_set1(x);
    return v16_exp(v)[0];
}

#endif
