/* Dequantization on the GPU, bit for bit lt_dequantize_ref: every element
 * is decoded by model/quant.h's LT_HOST_DEVICE functions, the ones the CPU
 * calls, and this file is compiled with --fmad=false so the double-quant
 * absmax keeps bitsandbytes' two roundings (a multiply, then an add).
 *
 * The value tables travel with each launch as a kernel parameter (1 KiB,
 * copied from the host's lt_nf4_code, lt_fp4_code and lt_dynamic8_code),
 * so the device holds no second copy to keep in step, and each block puts
 * them in shared memory for the lookups. */
#include <string.h>

#include "model/cuda/dequantize.cuh"
#include "model/cuda/grid.cuh"
#include "model/cuda/internal.cuh"

namespace {

struct tables {
    float code4[16];    /* the NF4 or FP4 values */
    float dynamic[256]; /* the double-quant map */
};

} // namespace

static __device__ float load_f32(const uint8_t *blob, uint64_t at) {
    /* the layout keeps every float array 4-byte aligned in the blob */
    return *(const float *)(const void *)(blob + at);
}

/* One thread per byte: the two elements of one byte share a block (blocks
 * are an even number of elements), so one absmax serves both. */
__global__ void lt_dequantize_4bit_kernel(float *out, const uint8_t *blob, lt_qtensor t,
                                          tables tab) {
    __shared__ float code4[16];
    __shared__ float dynamic[256];
    for (int k = (int)threadIdx.x; k < 16; k += (int)blockDim.x) code4[k] = tab.code4[k];
    if (t.double_quant)
        for (int k = (int)threadIdx.x; k < 256; k += (int)blockDim.x) dynamic[k] = tab.dynamic[k];
    __syncthreads();
    const uint8_t *codes = blob + t.codes;
    const int64_t bytes = (t.numel + 1) / 2;
    LT_GRID_STRIDE(k, bytes) {
        const int64_t i = 2 * (int64_t)k, b = i / t.blocksize;
        const float absmax =
            t.double_quant
                ? lt_dq_absmax(
                      dynamic[blob[t.absmax + (uint64_t)b]],
                      load_f32(blob, t.absmax2 + 4u * (uint64_t)(b / LT_QUANT_DQ_BLOCKSIZE)),
                      load_f32(blob, t.offset))
                : load_f32(blob, t.absmax + 4u * (uint64_t)b);
        out[i] = lt_q4_value(code4, lt_q4_code(codes, i), absmax);
        if (i + 1 < t.numel) out[i + 1] = lt_q4_value(code4, lt_q4_code(codes, i + 1), absmax);
    }
}

__global__ void lt_dequantize_int8_kernel(float *out, const uint8_t *blob, lt_qtensor t) {
    const int8_t *q = (const int8_t *)(const void *)(blob + t.codes);
    LT_GRID_STRIDE(e, t.numel)
    out[e] = lt_int8_value(q[e], load_f32(blob, t.absmax + 4u * (uint64_t)(e / (size_t)t.cols)));
}

void lt_cuda_dequantize(const lt_ops *o, float *out, const uint8_t *blob, const lt_qtensor *t) {
    if (t->numel <= 0) return;
    cudaStream_t s = lt_cuda_stream(o);
    if (t->format == LT_QUANT_INT8) {
        LT_LAUNCH(lt_dequantize_int8_kernel, lt_cuda_blocks_for((size_t)t->numel), LT_CUDA_THREADS,
                  0, s, out, blob, *t);
        lt_cuda_after_launch(o, "dequantize (int8)");
        return;
    }
    if (t->format != LT_QUANT_NF4 && t->format != LT_QUANT_FP4) {
        lt_cuda_fail(o, "dequantize (unknown quantization format)", cudaErrorInvalidValue);
        return;
    }
    tables tab;
    memcpy(tab.code4, t->format == LT_QUANT_NF4 ? lt_nf4_code : lt_fp4_code, sizeof tab.code4);
    memcpy(tab.dynamic, lt_dynamic8_code, sizeof tab.dynamic);
    LT_LAUNCH(lt_dequantize_4bit_kernel, lt_cuda_blocks_for((size_t)(t->numel + 1) / 2),
              LT_CUDA_THREADS, 0, s, out, blob, *t, tab);
    lt_cuda_after_launch(o, "dequantize (4-bit)");
}
