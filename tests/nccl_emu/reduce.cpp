/* Element types and the reductions: every reduction runs on the host over
 * all ranks' contributions gathered in rank order, so the result is the
 * same bits on every rank and does not depend on the MPI library's
 * algorithm. Real NCCL reduces along its ring or tree, in another order;
 * see the README for what that means for float sums. */
#include <string.h>

#include <type_traits>

#include "emu.h"

namespace lt_nccl_emu {

size_t type_size(int type) {
    switch (type) {
    case ncclInt8:
    case ncclUint8:
        return 1;
    case ncclFloat16:
    case ncclBfloat16:
        return 2;
    case ncclInt32:
    case ncclUint32:
    case ncclFloat32:
        return 4;
    case ncclInt64:
    case ncclUint64:
    case ncclFloat64:
        return 8;
    default:
        return 0; /* the fp8 types and anything else */
    }
}

const char *type_name(int type) {
    static const char *const names[] = {"ncclInt8",    "ncclUint8",      "ncclInt32",
                                        "ncclUint32",  "ncclInt64",      "ncclUint64",
                                        "ncclFloat16", "ncclFloat32",    "ncclFloat64",
                                        "ncclBfloat16", "ncclFloat8e4m3", "ncclFloat8e5m2"};
    return type >= 0 && type < ncclNumTypes ? names[type] : "?";
}

const char *op_name(int op) {
    static const char *const names[] = {"ncclSum", "ncclProd", "ncclMax", "ncclMin", "ncclAvg"};
    return op >= 0 && op < ncclNumOps ? names[op] : "?";
}

/* ---- float16 and bfloat16, bit by bit (no compiler support needed) ---- */

static uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* m >> s, rounded to nearest, ties to even (1 <= s <= 31). */
static uint32_t shift_rne(uint32_t m, unsigned s) {
    const uint32_t q = m >> s, r = m & ((1u << s) - 1), half = 1u << (s - 1);
    return q + (r > half || (r == half && (q & 1u)));
}

float half_to_float(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f) /* infinity, NaN (payload kept, quiet bit set) */
        return bits_float(sign | 0x7f800000u | (m << 13) | (m ? 0x400000u : 0));
    if (e != 0)
        return bits_float(sign | ((e + 112u) << 23) | (m << 13));
    /* zero or subnormal: m * 2^-24, exact in float */
    const float v = (float)m * bits_float(0x33800000u); /* 2^-24 */
    return sign ? -v : v;
}

uint16_t float_to_half(float f) {
    const uint32_t u = float_bits(f);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) /* NaN: quiet, the top of the payload kept */
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x1ffu));
    if (a >= 0x477ff000u) /* 65520 and up round to infinity (65504 is odd) */
        return (uint16_t)(sign | 0x7c00u);
    if (a >= 0x38800000u) { /* a normal half: 2^-14 and up */
        const uint32_t e = (a >> 23) - 112u, m = a & 0x7fffffu;
        /* the rounding carry may run into the exponent: still correct */
        return (uint16_t)(sign | shift_rne((e << 23 | m), 13));
    }
    if (a <= 0x33000000u) /* at most 2^-25: zero (2^-25 itself a tie to 0) */
        return sign;
    /* a subnormal half: value * 2^24 = m24 * 2^(e - 126), e < 113 */
    const uint32_t e = a >> 23, m24 = (a & 0x7fffffu) | 0x800000u;
    return (uint16_t)(sign | shift_rne(m24, 126u - e));
}

float bf16_to_float(uint16_t b) { return bits_float((uint32_t)b << 16); }

uint16_t float_to_bf16(float f) {
    const uint32_t u = float_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN stays NaN (quiet) */
        return (uint16_t)((u >> 16) | 0x40u);
    /* overflow rounds to infinity by the same carry */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* ---- the reductions ---- */

namespace {

/* An element type: how it is loaded into the type the reduction runs in,
 * and stored back. */
template <typename T> struct Native {
    using Acc = T;
    static constexpr size_t size = sizeof(T);
    static Acc load(const unsigned char *p) {
        T v;
        memcpy(&v, p, sizeof v);
        return v;
    }
    static void store(unsigned char *p, Acc v) { memcpy(p, &v, sizeof v); }
};
/* float16 and bfloat16: reduced in float, rounded once at the store. */
template <float (*Widen)(uint16_t), uint16_t (*Narrow)(float)> struct Short {
    using Acc = float;
    static constexpr size_t size = 2;
    static Acc load(const unsigned char *p) {
        uint16_t v;
        memcpy(&v, p, 2);
        return Widen(v);
    }
    static void store(unsigned char *p, Acc v) {
        const uint16_t b = Narrow(v);
        memcpy(p, &b, 2);
    }
};
using Half = Short<half_to_float, float_to_half>;
using Bf16 = Short<bf16_to_float, float_to_bf16>;

/* Integer sums and products wrap around (two's complement, as the GPU's
 * integer units do); the arithmetic is done unsigned, where C++ defines it. */
template <typename A> A add(A a, A b) {
    if constexpr (std::is_integral_v<A>) {
        using U = std::make_unsigned_t<A>;
        return (A)(U)((U)a + (U)b);
    } else {
        return a + b;
    }
}
template <typename A> A mul(A a, A b) {
    if constexpr (std::is_integral_v<A>) {
        using U = std::make_unsigned_t<A>;
        /* (uint8 promotes to int: 255 * 255 still fits) */
        return (A)(U)((U)a * (U)b);
    } else {
        return a * b;
    }
}

template <typename E, ncclRedOp_t OP>
void reduce_as(const unsigned char *src, int n, size_t count, unsigned char *dst) {
    using A = typename E::Acc;
    const size_t es = E::size;
    const size_t stride = count * es;
    for (size_t i = 0; i < count; i++) {
        A acc = E::load(src + i * es);
        for (int r = 1; r < n; r++) {
            const A x = E::load(src + (size_t)r * stride + i * es);
            if constexpr (OP == ncclSum || OP == ncclAvg)
                acc = add(acc, x);
            else if constexpr (OP == ncclProd)
                acc = mul(acc, x);
            else if constexpr (OP == ncclMax)
                acc = x > acc ? x : acc;
            else
                acc = x < acc ? x : acc;
        }
        if constexpr (OP == ncclAvg)
            acc = (A)(acc / (A)n); /* integers: C's division, toward zero */
        E::store(dst + i * es, acc);
    }
}

template <typename E>
void reduce_type(ncclRedOp_t op, const unsigned char *src, int n, size_t count,
                 unsigned char *dst) {
    switch (op) {
    case ncclSum:
        return reduce_as<E, ncclSum>(src, n, count, dst);
    case ncclProd:
        return reduce_as<E, ncclProd>(src, n, count, dst);
    case ncclMax:
        return reduce_as<E, ncclMax>(src, n, count, dst);
    case ncclMin:
        return reduce_as<E, ncclMin>(src, n, count, dst);
    case ncclAvg:
        return reduce_as<E, ncclAvg>(src, n, count, dst);
    default:
        return; /* refused before any data moved */
    }
}

} // namespace

void reduce(ncclDataType_t type, ncclRedOp_t op, const unsigned char *src, int n, size_t count,
            void *dst) {
    unsigned char *d = (unsigned char *)dst;
    switch (type) {
    case ncclInt8:
        return reduce_type<Native<int8_t>>(op, src, n, count, d);
    case ncclUint8:
        return reduce_type<Native<uint8_t>>(op, src, n, count, d);
    case ncclInt32:
        return reduce_type<Native<int32_t>>(op, src, n, count, d);
    case ncclUint32:
        return reduce_type<Native<uint32_t>>(op, src, n, count, d);
    case ncclInt64:
        return reduce_type<Native<int64_t>>(op, src, n, count, d);
    case ncclUint64:
        return reduce_type<Native<uint64_t>>(op, src, n, count, d);
    case ncclFloat16:
        return reduce_type<Half>(op, src, n, count, d);
    case ncclFloat32:
        return reduce_type<Native<float>>(op, src, n, count, d);
    case ncclFloat64:
        return reduce_type<Native<double>>(op, src, n, count, d);
    case ncclBfloat16:
        return reduce_type<Bf16>(op, src, n, count, d);
    default:
        return; /* refused before any data moved */
    }
}

} // namespace lt_nccl_emu
