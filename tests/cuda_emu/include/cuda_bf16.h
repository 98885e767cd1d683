/* The emulation's bfloat16 (tests/cuda_emu/): __nv_bfloat16 and
 * __nv_bfloat162 with CUDA's conversions, bit for bit.
 *
 * float -> bf16 rounds to nearest, ties to even, on the bit pattern; every
 * NaN (either sign, any payload) becomes 0x7FFF, CUDA's canonical bf16 NaN
 * (torch's CPU conversion writes other NaN bits); infinities and
 * subnormals are kept (no flush to zero). double and integers round once, directly to bf16, as
 * CUDA's __double2bfloat16 and __int2bfloat16_rn do (never through float,
 * which would round twice). bf16 -> float is exact.
 *
 * Arithmetic between two bf16 values is deleted: CUDA rounds each such
 * result to bf16, C++ would compute it in float through the conversion,
 * and the two builds would silently differ. Kernels convert to float,
 * compute, and round once when they store (fp32 accumulation, as the
 * contract's bf16 path does). Comparisons go through float, which is what
 * CUDA's bf16 comparisons compute. */
#ifndef LT_CUDA_EMU_CUDA_BF16_H
#define LT_CUDA_EMU_CUDA_BF16_H

#include <stdint.h>
#include <string.h>

#include "cuda_runtime.h"

struct __nv_bfloat16_raw {
    unsigned short x;
};
struct __nv_bfloat162_raw {
    unsigned short x;
    unsigned short y;
};

namespace lt_cuda_emu {
/* Round to nearest even on float's bits: the 16 bits dropped are compared
 * with half of the kept part's last bit; a carry out of the mantissa moves
 * the exponent up, and out of the largest finite value to infinity. */
static inline unsigned short bf16_bits_from_float(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return 0x7fff;
    uint32_t kept = u >> 16, dropped = u & 0xffffu;
    if (dropped > 0x8000u || (dropped == 0x8000u && (kept & 1u)))
        kept++;
    return (unsigned short)kept;
}

/* The bf16 nearest to (-1)^sign * sig * 2^exp2 (sig > 0), ties to even,
 * rounded once: normal results keep 8 significant bits, subnormal ones
 * the bits at or above 2^-133. */
static inline unsigned short bf16_bits_round(unsigned sign, uint64_t sig, int exp2) {
    int msb = 63 - __builtin_clzll(sig);
    int e = msb + exp2; /* the value's binary exponent */
    int shift = msb - 7;
    if (e < -126)
        shift += -126 - e;
    uint64_t kept;
    bool up = false;
    if (shift <= 0) {
        kept = sig << -shift;
    } else if (shift >= 64) {
        kept = 0; /* below half the smallest subnormal: sig < 2^63 here */
    } else {
        kept = sig >> shift;
        uint64_t dropped = sig & ((1ull << shift) - 1), half = 1ull << (shift - 1);
        up = dropped > half || (dropped == half && (kept & 1));
    }
    kept += up;
    unsigned short s = (unsigned short)(sign << 15);
    if (e < -126) /* subnormal; 128 after rounding is the smallest normal */
        return (unsigned short)(s | kept);
    if (kept == 256) {
        kept = 128;
        e++;
    }
    if (e > 127)
        return (unsigned short)(s | 0x7f80u);
    return (unsigned short)(s | (unsigned)(e + 127) << 7 | (unsigned)(kept & 0x7f));
}

static inline unsigned short bf16_bits_from_double(double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    unsigned sign = (unsigned)(u >> 63);
    unsigned bexp = (unsigned)(u >> 52) & 0x7ffu;
    uint64_t mant = u & ((1ull << 52) - 1);
    if (bexp == 0x7ffu)
        return mant ? (unsigned short)0x7fff : (unsigned short)(sign << 15 | 0x7f80u);
    if (bexp == 0 && mant == 0)
        return (unsigned short)(sign << 15);
    if (bexp == 0)
        return bf16_bits_round(sign, mant, -1074);
    return bf16_bits_round(sign, mant | 1ull << 52, (int)bexp - 1075);
}

static inline unsigned short bf16_bits_from_ull(unsigned long long v) {
    return v == 0 ? (unsigned short)0 : bf16_bits_round(0, v, 0);
}
static inline unsigned short bf16_bits_from_ll(long long v) {
    if (v >= 0)
        return bf16_bits_from_ull((unsigned long long)v);
    return bf16_bits_round(1, 0ull - (unsigned long long)v, 0);
}

static inline float float_from_bf16_bits(unsigned short b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
} // namespace lt_cuda_emu

struct __attribute__((aligned(2))) __nv_bfloat16 {
  protected:
    unsigned short __x;

  public:
    __nv_bfloat16() = default;
    constexpr __nv_bfloat16(const __nv_bfloat16_raw &hr) : __x(hr.x) {}
    __nv_bfloat16(float f) : __x(lt_cuda_emu::bf16_bits_from_float(f)) {}
    __nv_bfloat16(double d) : __x(lt_cuda_emu::bf16_bits_from_double(d)) {}
    __nv_bfloat16(short v) : __x(lt_cuda_emu::bf16_bits_from_ll(v)) {}
    __nv_bfloat16(unsigned short v) : __x(lt_cuda_emu::bf16_bits_from_ull(v)) {}
    __nv_bfloat16(int v) : __x(lt_cuda_emu::bf16_bits_from_ll(v)) {}
    __nv_bfloat16(unsigned int v) : __x(lt_cuda_emu::bf16_bits_from_ull(v)) {}
    __nv_bfloat16(long v) : __x(lt_cuda_emu::bf16_bits_from_ll(v)) {}
    __nv_bfloat16(unsigned long v) : __x(lt_cuda_emu::bf16_bits_from_ull(v)) {}
    __nv_bfloat16(long long v) : __x(lt_cuda_emu::bf16_bits_from_ll(v)) {}
    __nv_bfloat16(unsigned long long v) : __x(lt_cuda_emu::bf16_bits_from_ull(v)) {}
    __nv_bfloat16 &operator=(const __nv_bfloat16_raw &hr) {
        __x = hr.x;
        return *this;
    }
    __nv_bfloat16 &operator=(float f) {
        __x = lt_cuda_emu::bf16_bits_from_float(f);
        return *this;
    }
    __nv_bfloat16 &operator=(double d) {
        __x = lt_cuda_emu::bf16_bits_from_double(d);
        return *this;
    }
    operator __nv_bfloat16_raw() const {
        __nv_bfloat16_raw r;
        r.x = __x;
        return r;
    }
    operator float() const { return lt_cuda_emu::float_from_bf16_bits(__x); }
};

__nv_bfloat16 operator+(const __nv_bfloat16 &, const __nv_bfloat16 &) = delete;
__nv_bfloat16 operator-(const __nv_bfloat16 &, const __nv_bfloat16 &) = delete;
__nv_bfloat16 operator*(const __nv_bfloat16 &, const __nv_bfloat16 &) = delete;
__nv_bfloat16 operator/(const __nv_bfloat16 &, const __nv_bfloat16 &) = delete;

struct __attribute__((aligned(4))) __nv_bfloat162 {
    __nv_bfloat16 x;
    __nv_bfloat16 y;
    __nv_bfloat162() = default;
    __nv_bfloat162(const __nv_bfloat16 &a, const __nv_bfloat16 &b) : x(a), y(b) {}
    __nv_bfloat162(const __nv_bfloat162_raw &h) {
        __nv_bfloat16_raw a, b;
        a.x = h.x;
        b.x = h.y;
        x = a;
        y = b;
    }
    operator __nv_bfloat162_raw() const {
        __nv_bfloat162_raw r;
        r.x = static_cast<__nv_bfloat16_raw>(x).x;
        r.y = static_cast<__nv_bfloat16_raw>(y).x;
        return r;
    }
};

static inline unsigned short __bfloat16_as_ushort(const __nv_bfloat16 h) {
    return static_cast<__nv_bfloat16_raw>(h).x;
}
static inline __nv_bfloat16 __ushort_as_bfloat16(const unsigned short bits) {
    __nv_bfloat16_raw r;
    r.x = bits;
    return r;
}
static inline __nv_bfloat16 __float2bfloat16_rn(const float a) { return __nv_bfloat16(a); }
static inline __nv_bfloat16 __float2bfloat16(const float a) { return __nv_bfloat16(a); }
static inline __nv_bfloat16 __double2bfloat16(const double a) { return __nv_bfloat16(a); }
static inline __nv_bfloat16 __int2bfloat16_rn(const int i) { return __nv_bfloat16(i); }
static inline float __bfloat162float(const __nv_bfloat16 a) { return static_cast<float>(a); }

static inline __nv_bfloat162 __halves2bfloat162(const __nv_bfloat16 a, const __nv_bfloat16 b) {
    return __nv_bfloat162(a, b);
}
static inline __nv_bfloat162 __floats2bfloat162_rn(const float a, const float b) {
    return __nv_bfloat162(__nv_bfloat16(a), __nv_bfloat16(b));
}
static inline __nv_bfloat162 __float2bfloat162_rn(const float a) {
    return __floats2bfloat162_rn(a, a);
}
static inline __nv_bfloat162 __float22bfloat162_rn(const float2 a) {
    return __floats2bfloat162_rn(a.x, a.y);
}
static inline float2 __bfloat1622float2(const __nv_bfloat162 a) {
    return make_float2(static_cast<float>(a.x), static_cast<float>(a.y));
}
static inline float __low2float(const __nv_bfloat162 a) { return static_cast<float>(a.x); }
static inline float __high2float(const __nv_bfloat162 a) { return static_cast<float>(a.y); }
static inline __nv_bfloat16 __low2bfloat16(const __nv_bfloat162 a) { return a.x; }
static inline __nv_bfloat16 __high2bfloat16(const __nv_bfloat162 a) { return a.y; }

LT_EMU_SHUFFLES(__nv_bfloat16)
LT_EMU_SHUFFLES(__nv_bfloat162)

#endif
