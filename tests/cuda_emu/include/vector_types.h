/* The CUDA vector types of the emulation (tests/cuda_emu/): the
 * built-in index types (uint3, dim3) and the small vectors kernels load
 * and store (float2, float4, int4, ...), with CUDA's sizes and alignments
 * so that a reinterpret_cast<const float4 *> means the same thing on the
 * CPU. Usable from C; dim3's constructors only in C++. */
#ifndef LT_CUDA_EMU_VECTOR_TYPES_H
#define LT_CUDA_EMU_VECTOR_TYPES_H

#define LT_EMU_VEC2(T, name, align)                                                                \
    struct __attribute__((aligned(align))) name {                                                  \
        T x, y;                                                                                    \
    }
#define LT_EMU_VEC3(T, name)                                                                       \
    struct name {                                                                                  \
        T x, y, z;                                                                                 \
    }
#define LT_EMU_VEC4(T, name, align)                                                                \
    struct __attribute__((aligned(align))) name {                                                  \
        T x, y, z, w;                                                                              \
    }

LT_EMU_VEC2(int, int2, 8);
LT_EMU_VEC3(int, int3);
LT_EMU_VEC4(int, int4, 16);
LT_EMU_VEC2(unsigned int, uint2, 8);
LT_EMU_VEC3(unsigned int, uint3);
LT_EMU_VEC4(unsigned int, uint4, 16);
LT_EMU_VEC2(float, float2, 8);
LT_EMU_VEC3(float, float3);
LT_EMU_VEC4(float, float4, 16);
LT_EMU_VEC2(double, double2, 16);
LT_EMU_VEC2(short, short2, 4);
LT_EMU_VEC2(unsigned short, ushort2, 4);
LT_EMU_VEC2(long long, longlong2, 16);
LT_EMU_VEC2(unsigned long long, ulonglong2, 16);

#undef LT_EMU_VEC2
#undef LT_EMU_VEC3
#undef LT_EMU_VEC4

#ifdef __cplusplus
/* A grid or block shape: unspecified dimensions are 1, and an integer
 * converts to (n, 1, 1), as nvcc's dim3 does. */
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1)
        : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};

#define LT_EMU_MAKE2(T, name)                                                                      \
    static inline name make_##name(T x, T y) {                                                     \
        name v;                                                                                    \
        v.x = x;                                                                                   \
        v.y = y;                                                                                   \
        return v;                                                                                  \
    }
#define LT_EMU_MAKE3(T, name)                                                                      \
    static inline name make_##name(T x, T y, T z) {                                                \
        name v;                                                                                    \
        v.x = x;                                                                                   \
        v.y = y;                                                                                   \
        v.z = z;                                                                                   \
        return v;                                                                                  \
    }
#define LT_EMU_MAKE4(T, name)                                                                      \
    static inline name make_##name(T x, T y, T z, T w) {                                           \
        name v;                                                                                    \
        v.x = x;                                                                                   \
        v.y = y;                                                                                   \
        v.z = z;                                                                                   \
        v.w = w;                                                                                   \
        return v;                                                                                  \
    }
LT_EMU_MAKE2(int, int2)
LT_EMU_MAKE3(int, int3)
LT_EMU_MAKE4(int, int4)
LT_EMU_MAKE2(unsigned int, uint2)
LT_EMU_MAKE3(unsigned int, uint3)
LT_EMU_MAKE4(unsigned int, uint4)
LT_EMU_MAKE2(float, float2)
LT_EMU_MAKE3(float, float3)
LT_EMU_MAKE4(float, float4)
LT_EMU_MAKE2(double, double2)
#undef LT_EMU_MAKE2
#undef LT_EMU_MAKE3
#undef LT_EMU_MAKE4
#else
typedef struct int2 int2;
typedef struct int3 int3;
typedef struct int4 int4;
typedef struct uint2 uint2;
typedef struct uint3 uint3;
typedef struct uint4 uint4;
typedef struct float2 float2;
typedef struct float3 float3;
typedef struct float4 float4;
typedef struct double2 double2;
typedef struct short2 short2;
typedef struct ushort2 ushort2;
typedef struct longlong2 longlong2;
typedef struct ulonglong2 ulonglong2;
typedef struct dim3 {
    unsigned int x, y, z;
} dim3;
#endif

#endif
