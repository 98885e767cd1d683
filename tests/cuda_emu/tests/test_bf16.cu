/* bf16 conversions against a reference written another way: the value's
 * two bf16 neighbours found with double arithmetic (floor on the bf16
 * grid, ldexp), the nearer one taken, a tie to the even mantissa; NaN is
 * CUDA's canonical 0x7FFF. Every float bit pattern class is covered by
 * all 65,536 upper halves times lower halves that are zero, one, just
 * below, at and just above the tie, all ones, and random ones; doubles
 * and integers by hand-made cases (ties that a rounding through float
 * would get wrong) and random samples. `bf16-torch IN REF` compares with
 * torch's conversion (tests/cuda_emu/tests/bf16_torch.py). */
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>

#include <algorithm>
#include <random>
#include <vector>

#include "check.cuh"

namespace {

uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}
float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* The value of bf16 bits as a double; an all-ones exponent with a zero
 * mantissa is 2^128 (the first value past the largest finite bf16, where
 * rounding goes to infinity). */
double bf16_value(uint16_t b) {
    int e = b >> 7 & 0xff, m = b & 0x7f;
    double v = e == 0 ? ldexp(m, -133) : ldexp(128 + m, e - 134);
    return b & 0x8000 ? -v : v;
}

uint16_t reference(double x) {
    if (isnan(x))
        return 0x7fff;
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    double a = fabs(x);
    if (isinf(x) || a >= ldexp(1.0, 128))
        return sign | 0x7f80;
    /* the bf16 grid's spacing at a: 2^-133 below 2^-126, else 2^(e - 7) */
    int e;
    frexp(a, &e); /* a = f * 2^e, f in [0.5, 1) */
    int q = a < ldexp(1.0, -126) ? -133 : e - 1 - 7;
    double lo = ldexp(floor(ldexp(a, -q)), q);
    double hi = lo + ldexp(1.0, q);
    /* lo's bits, found by search from the bf16 encoding (monotonic) */
    uint16_t lob = 0;
    for (int bit = 14; bit >= 0; bit--)
        if (bf16_value((uint16_t)(lob | 1u << bit)) <= lo)
            lob = (uint16_t)(lob | 1u << bit);
    double dlo = a - lo, dhi = hi - a;
    uint16_t r = dlo < dhi ? lob : dhi < dlo ? (uint16_t)(lob + 1) : (lob & 1) ? lob + 1 : lob;
    return sign | r;
}

uint16_t bits16(__nv_bfloat16 h) { return __bfloat16_as_ushort(h); }

void float_patterns() {
    std::mt19937 rng(20260501);
    const uint32_t lows[] = {0x0000, 0x0001, 0x3fff, 0x7ffe, 0x7fff,
                             0x8000, 0x8001, 0xbfff, 0xfffe, 0xffff};
    size_t n = 0, bad = 0;
    for (uint32_t hi = 0; hi < 0x10000; hi++) {
        uint32_t extra[4];
        for (uint32_t &x : extra)
            x = (uint32_t)(rng() & 0xffff);
        for (int i = 0; i < 14; i++) {
            uint32_t u = hi << 16 | (i < 10 ? lows[i] : extra[i - 10]);
            float f = float_of(u);
            uint16_t got = bits16(__float2bfloat16_rn(f));
            uint16_t want = reference((double)f);
            n++;
            if (got != want && bad++ < 5)
                fprintf(stderr, "float %08x: bf16 %04x, reference %04x\n", u, got, want);
            /* the other spellings agree */
            if (bits16(__float2bfloat16(f)) != got || bits16(__nv_bfloat16(f)) != got)
                bad++;
        }
    }
    CHECK(bad == 0, "%zu of %zu float bit patterns rounded unlike the reference", bad, n);

    /* by hand, each a class */
    const struct {
        uint32_t f;
        uint16_t b;
    } cases[] = {
        {0x3f800000, 0x3f80}, /* 1 */
        {0x3f808000, 0x3f80}, /* tie, even below */
        {0x3f818000, 0x3f82}, /* tie, odd below: up */
        {0x3f808001, 0x3f81}, /* just past the tie */
        {0x3f807fff, 0x3f80}, /* just below it */
        {0xbf818000, 0xbf82}, /* negative tie */
        {0x7f7fffff, 0x7f80}, /* the largest float rounds to infinity */
        {0x7f7f7fff, 0x7f7f}, /* the largest bf16 stays */
        {0x7f7f8000, 0x7f80}, /* its tie goes up, to infinity */
        {0x7f800000, 0x7f80}, /* infinity */
        {0xff800000, 0xff80}, /* -infinity */
        {0x7f800001, 0x7fff}, /* a NaN whose upper half reads as infinity */
        {0x7fc00000, 0x7fff}, /* quiet NaN */
        {0xffc00001, 0x7fff}, /* negative NaN with a payload */
        {0x00000000, 0x0000}, /* zero */
        {0x80000000, 0x8000}, /* -0 */
        {0x00000001, 0x0000}, /* the smallest subnormal rounds to 0 */
        {0x00008000, 0x0000}, /* a subnormal tie, even below */
        {0x00018000, 0x0002}, /* a subnormal tie, odd below */
        {0x00008001, 0x0001}, /* the smallest bf16 subnormal, from above the tie */
        {0x007fffff, 0x0080}, /* the largest subnormal rounds to the smallest normal */
        {0x80018000, 0x8002}, /* negative subnormal tie */
    };
    for (const auto &c : cases) {
        uint16_t got = bits16(__float2bfloat16_rn(float_of(c.f)));
        CHECK(got == c.b && reference((double)float_of(c.f)) == c.b,
              "float %08x: bf16 %04x, reference %04x, want %04x", c.f, got,
              reference((double)float_of(c.f)), c.b);
    }

    /* bf16 -> float is exact for every pattern, NaN payloads included */
    size_t wrong = 0;
    for (uint32_t b = 0; b < 0x10000; b++) {
        __nv_bfloat16 h = __ushort_as_bfloat16((unsigned short)b);
        wrong += bits_of(__bfloat162float(h)) != b << 16 || bits_of((float)h) != b << 16;
    }
    CHECK(wrong == 0, "%zu bf16 patterns did not widen exactly", wrong);
}

void doubles_and_integers() {
    const struct {
        double d;
        uint16_t b;
    } cases[] = {
        {1.0 + ldexp(1, -8) + ldexp(1, -30), 0x3f81}, /* through float: a false tie, 0x3f80 */
        {1.0 + ldexp(1, -8), 0x3f80},                 /* a true tie, even below */
        {1.0 + 3 * ldexp(1, -8), 0x3f82},             /* a tie, odd below */
        {1.0 + ldexp(1, -8) - ldexp(1, -40), 0x3f80}, /* just below a tie */
        {1e300, 0x7f80},
        {-1e300, 0xff80},
        {1e-300, 0x0000},
        {-1e-300, 0x8000},
        {ldexp(1, -133), 0x0001},     /* the smallest bf16 subnormal */
        {ldexp(1, -134), 0x0000},     /* half of it: a tie, to 0 */
        {3 * ldexp(1, -134), 0x0002}, /* 1.5 of it: a tie, to 2 */
        {ldexp(1, -134) * 1.0000001, 0x0001},
        {NAN, 0x7fff},
        {-NAN, 0x7fff},
        {INFINITY, 0x7f80},
        {0.0, 0x0000},
        {-0.0, 0x8000},
        {5e-324, 0x0000}, /* a double subnormal */
    };
    for (const auto &c : cases) {
        uint16_t got = bits16(__double2bfloat16(c.d)), ctor = bits16(__nv_bfloat16(c.d));
        CHECK(got == c.b && ctor == c.b && reference(c.d) == c.b,
              "double %a: bf16 %04x (constructor %04x), reference %04x, want %04x", c.d, got, ctor,
              reference(c.d), c.b);
    }
    /* random doubles across bf16's range */
    std::mt19937_64 rng(77);
    size_t bad = 0;
    for (int i = 0; i < 1000000; i++) {
        uint64_t u = rng();
        int e = (int)(rng() % 300) - 150 + 1023; /* exponents around bf16's */
        u = (u & 0x800fffffffffffffull) | (uint64_t)e << 52;
        double d;
        memcpy(&d, &u, sizeof d);
        if (bits16(__double2bfloat16(d)) != reference(d) && bad++ < 5)
            fprintf(stderr, "double %a: bf16 %04x, reference %04x\n", d,
                    bits16(__double2bfloat16(d)), reference(d));
    }
    CHECK(bad == 0, "%zu of 1000000 random doubles rounded unlike the reference", bad);

    const struct {
        long long v;
        uint16_t b;
    } ints[] = {
        {0, 0x0000},
        {1, 0x3f80},
        {-1, 0xbf80},
        {257, 0x4380}, /* 256 + 1: a tie, even below */
        {259, 0x4382}, /* 258 + 1: a tie, odd below */
        {2147483647, 0x4f00},
        {-2147483647 - 1, 0xcf00},
        {(1ll << 62) + (1ll << 54), 0x5e80},     /* a tie at 2^62 */
        {(1ll << 62) + (1ll << 54) + 1, 0x5e81}, /* one past it: through double, a false tie */
        {9223372036854775807ll, 0x5f00},         /* 2^63 - 1 -> 2^63 */
        {-9223372036854775807ll - 1, 0xdf00},
    };
    for (const auto &c : ints) {
        uint16_t got = bits16(__nv_bfloat16(c.v));
        CHECK(got == c.b, "long long %lld: bf16 %04x, want %04x", c.v, got, c.b);
    }
    CHECK(bits16(__nv_bfloat16(18446744073709551615ull)) == 0x5f80, "2^64 - 1 -> 2^64");
    CHECK(bits16(__nv_bfloat16(259u)) == 0x4382 && bits16(__nv_bfloat16((short)-259)) == 0xc382 &&
              bits16(__int2bfloat16_rn(257)) == 0x4380,
          "int, unsigned, short");
    /* integers exact in a double: against the reference */
    size_t ibad = 0;
    for (int i = 0; i < 200000; i++) {
        long long v = (long long)(rng() >> (rng() % 60 + 4)) * (i % 2 ? 1 : -1);
        ibad += bits16(__nv_bfloat16(v)) != reference((double)v);
    }
    CHECK(ibad == 0, "%zu of 200000 integers rounded unlike the reference", ibad);
}

void pairs() {
    __nv_bfloat162 p = __floats2bfloat162_rn(float_of(0x3f818000), -2.5f);
    CHECK(bits16(p.x) == 0x3f82 && bits16(p.y) == 0xc020, "__floats2bfloat162_rn: %04x %04x",
          bits16(p.x), bits16(p.y));
    float2 f = __bfloat1622float2(p);
    CHECK(f.x == bf16_value(0x3f82) && f.y == -2.5f && __low2float(p) == f.x &&
              __high2float(p) == f.y,
          "__bfloat1622float2: %g %g", f.x, f.y);
    __nv_bfloat162 q = __halves2bfloat162(__low2bfloat16(p), __float2bfloat16_rn(3.0f));
    CHECK(bits16(q.x) == 0x3f82 && bits16(q.y) == 0x4040, "__halves2bfloat162");
    __nv_bfloat162 r = __float22bfloat162_rn(make_float2(1.0f, 0.0f));
    __nv_bfloat162 s = __float2bfloat162_rn(-1.0f);
    CHECK(bits16(r.x) == 0x3f80 && bits16(r.y) == 0 && bits16(s.x) == 0xbf80 &&
              bits16(s.y) == 0xbf80,
          "__float22bfloat162_rn, __float2bfloat162_rn");
    CHECK(sizeof(__nv_bfloat16) == 2 && alignof(__nv_bfloat16) == 2 &&
              sizeof(__nv_bfloat162) == 4 && alignof(__nv_bfloat162) == 4,
          "sizes and alignments as CUDA's");
}

/* IN: float bit patterns (uint32), REF: torch's bf16 bits (uint16). */
int against_torch(const char *in_path, const char *ref_path) {
    auto slurp = [](const char *path, std::vector<unsigned char> *out) {
        FILE *fp = fopen(path, "rb");
        if (!fp)
            return false;
        unsigned char buf[65536];
        size_t k;
        while ((k = fread(buf, 1, sizeof buf, fp)) > 0)
            out->insert(out->end(), buf, buf + k);
        fclose(fp);
        return true;
    };
    std::vector<unsigned char> in, ref;
    if (!slurp(in_path, &in) || !slurp(ref_path, &ref) || in.size() % 4 ||
        ref.size() * 2 != in.size()) {
        CHECK(false, "cannot read %s and %s as matching uint32 / uint16 arrays", in_path, ref_path);
        return 0;
    }
    size_t n = in.size() / 4, nan = 0, bad = 0;
    std::vector<uint16_t> torch_nans; /* the distinct NaN bits torch wrote */
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        uint16_t t;
        memcpy(&u, &in[4 * i], 4);
        memcpy(&t, &ref[2 * i], 2);
        uint16_t got = bits16(__float2bfloat16_rn(float_of(u)));
        if (isnan(float_of(u))) {
            /* both NaN: CUDA's canonical 0x7FFF, torch its own */
            nan++;
            if (torch_nans.size() < 8 &&
                std::find(torch_nans.begin(), torch_nans.end(), t) == torch_nans.end())
                torch_nans.push_back(t);
            if (!(got == 0x7fff && (t & 0x7f80) == 0x7f80 && (t & 0x7f)) && bad++ < 5)
                fprintf(stderr, "NaN %08x: ours %04x, torch %04x\n", u, got, t);
        } else if (got != t && bad++ < 5) {
            fprintf(stderr, "float %08x: ours %04x, torch %04x\n", u, got, t);
        }
    }
    CHECK(bad == 0, "%zu of %zu conversions differ from torch's", bad, n);
    CHECK(nan > 0 && n > 1000000, "the sample: %zu values, %zu NaN", n, nan);
    std::string seen;
    for (uint16_t t : torch_nans) {
        char hex[16];
        snprintf(hex, sizeof hex, "%s0x%04x", seen.empty() ? "" : ", ", t);
        seen += hex;
    }
    printf("%zu float patterns, %zu NaN (CUDA writes 0x7fff, torch wrote %s): the same "
           "bf16 as torch for every non-NaN\n",
           n, nan, seen.c_str());
    return 0;
}

} // namespace

int test_bf16(int argc, char **argv) {
    if (strcmp(argv[1], "bf16-torch") == 0) {
        if (argc != 4) {
            fprintf(stderr, "usage: test_cuda_emu bf16-torch IN REF\n");
            return 2;
        }
        return against_torch(argv[2], argv[3]);
    }
    float_patterns();
    doubles_and_integers();
    pairs();
    return 0;
}
