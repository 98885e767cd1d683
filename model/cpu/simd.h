/* Vector helpers shared by the CPU kernels (private to model/cpu/).
 *
 * vf is GCC/Clang's portable vector extension, as wide as the target's
 * vector registers: sixteen floats (one zmm) with AVX-512, eight (one ymm)
 * otherwise. The kernels keep explicit register blocking without
 * intrinsics, and their blocking assumes one register per vf: a 64-byte
 * vector on an AVX2 machine is lowered to register pairs that GCC spills to
 * the stack, which made attention about 20 times slower there. Sums run in
 * a fixed order for a given width, so a build gives the same bits run to
 * run; builds for different widths round differently. */
#ifndef LT_MODEL_CPU_SIMD_H
#define LT_MODEL_CPU_SIMD_H

#include <stdint.h>
#include <string.h>

#if defined(__AVX512F__)
#define LT_V 16
#else
#define LT_V 8
#endif

typedef float vf __attribute__((vector_size(LT_V * 4)));
typedef int32_t vfi __attribute__((vector_size(LT_V * 4)));
typedef float v8f __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));

static inline vf vf_load(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void vf_store(float *p, vf v) { memcpy(p, &v, sizeof v); }
static inline vf vf_set1(float x) { return (vf){0} + x; }

/* The halves of an 8-float vector, summed: the last steps of every tree. */
static inline float v8f_hsum(v8f a) {
    v4f b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
    return (b[0] + b[2]) + (b[1] + b[3]);
}

#if LT_V == 16
/* Tree reductions (a fixed order, so results do not vary run to run). */
static inline float vf_hsum(vf v) {
    return v8f_hsum(__builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                    __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15));
}
/* Four horizontal sums at once through a shuffle tree: about a third of
 * the instructions of four separate vf_hsum calls. */
static inline v4f vf_hsum4(vf a, vf b, vf c, vf d) {
    vf ab = __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
            __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    vf cd = __builtin_shufflevector(c, d, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
            __builtin_shufflevector(c, d, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    /* ab = [a (8) | b (8)], cd = [c (8) | d (8)] */
    vf u = __builtin_shufflevector(ab, cd, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
           __builtin_shufflevector(ab, cd, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
    /* u = [a (4) | b (4) | c (4) | d (4)] */
    v8f v = __builtin_shufflevector(u, u, 0, 1, 4, 5, 8, 9, 12, 13) +
            __builtin_shufflevector(u, u, 2, 3, 6, 7, 10, 11, 14, 15);
    /* v = [a (2) | b (2) | c (2) | d (2)] */
    return __builtin_shufflevector(v, v, 0, 2, 4, 6) + __builtin_shufflevector(v, v, 1, 3, 5, 7);
}
#else
static inline float vf_hsum(vf v) { return v8f_hsum(v); }
static inline v4f vf_hsum4(vf a, vf b, vf c, vf d) {
    vf ab = __builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11) +
            __builtin_shufflevector(a, b, 4, 5, 6, 7, 12, 13, 14, 15);
    vf cd = __builtin_shufflevector(c, d, 0, 1, 2, 3, 8, 9, 10, 11) +
            __builtin_shufflevector(c, d, 4, 5, 6, 7, 12, 13, 14, 15);
    /* ab = [a (4) | b (4)], cd = [c (4) | d (4)] */
    vf u = __builtin_shufflevector(ab, cd, 0, 1, 4, 5, 8, 9, 12, 13) +
           __builtin_shufflevector(ab, cd, 2, 3, 6, 7, 10, 11, 14, 15);
    /* u = [a (2) | b (2) | c (2) | d (2)] */
    return __builtin_shufflevector(u, u, 0, 2, 4, 6) + __builtin_shufflevector(u, u, 1, 3, 5, 7);
}
#endif

static inline float vf_hmax(vf v) {
    float m = v[0];
    for (int i = 1; i < LT_V; i++) m = v[i] > m ? v[i] : m;
    return m;
}
/* C has no vector ?:, and lane-by-lane loops do not reliably compile to
 * single instructions once inlined into larger loops, so max, min, select
 * and round use intrinsics where available and mask arithmetic elsewhere.
 * Masks are comparison results (all ones or zero per lane). */
#if LT_V == 16
#include <immintrin.h>
static inline vf vf_max(vf a, vf b) { return (vf)_mm512_max_ps((__m512)a, (__m512)b); }
static inline vf vf_min(vf a, vf b) { return (vf)_mm512_min_ps((__m512)a, (__m512)b); }
static inline vf vf_select(vfi mask, vf a, vf b) {
    __mmask16 k = _mm512_test_epi32_mask((__m512i)mask, (__m512i)mask);
    return (vf)_mm512_mask_blend_ps(k, (__m512)b, (__m512)a);
}
static inline vf vf_round(vf a) {
    return (vf)_mm512_roundscale_ps((__m512)a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
#elif defined(__AVX__)
#include <immintrin.h>
static inline vf vf_max(vf a, vf b) { return (vf)_mm256_max_ps((__m256)a, (__m256)b); }
static inline vf vf_min(vf a, vf b) { return (vf)_mm256_min_ps((__m256)a, (__m256)b); }
static inline vf vf_select(vfi mask, vf a, vf b) {
    return (vf)_mm256_blendv_ps((__m256)b, (__m256)a, (__m256)mask);
}
static inline vf vf_round(vf a) {
    return (vf)_mm256_round_ps((__m256)a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
#else
static inline vf vf_select(vfi mask, vf a, vf b) {
    vfi ai, bi, r;
    memcpy(&ai, &a, sizeof ai);
    memcpy(&bi, &b, sizeof bi);
    r = (ai & mask) | (bi & ~mask);
    vf out;
    memcpy(&out, &r, sizeof out);
    return out;
}
static inline vf vf_max(vf a, vf b) { return vf_select(a > b, a, b); }
static inline vf vf_min(vf a, vf b) { return vf_select(a < b, a, b); }
/* 1.5 * 2^23: adding and subtracting it rounds to nearest even for |a| < 2^22 */
static inline vf vf_round(vf a) { return (a + 12582912.0f) - 12582912.0f; }
#endif

/* exp for the ranges softmax and SiLU use: Cody-Waite reduction to
 * [-ln2/2, ln2/2] and a degree-6 polynomial; relative error below 2 ulp.
 * Inputs below -87 give 0 (denormals are not worth their cost here). */
static inline vf vf_exp(vf x) {
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    vf lo = vf_set1(-87.0f), hi = vf_set1(88.0f);
    vfi under = x < lo; /* also true for -inf */
    x = vf_min(vf_max(x, lo), hi);
    vf t = x * log2e;
    vf n = vf_round(t);
    vf r = x - n * ln2_hi;
    r = r - n * ln2_lo;
    vf p = vf_set1(1.0f / 720.0f);
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    vfi e = (__builtin_convertvector(n, vfi) + 127) << 23;
    vf s;
    memcpy(&s, &e, sizeof s);
    return vf_select(under, (vf){0}, p * s);
}

static inline float lt_expf_scalar(float x) {
    vf v = vf_set1(x);
    return vf_exp(v)[0];
}

#endif
