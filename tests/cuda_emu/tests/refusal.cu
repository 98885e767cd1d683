/* What the contract leaves out must not compile under the emulation
 * either (tests/cuda_emu/tests/refusals.sh compiles each variant). */
#include <cuda_bf16.h>
#include <cuda_runtime.h>

__global__ void refused(float *f, __nv_bfloat16 *h) {
#if defined(REFUSE_FLOAT_ATOMIC)
    atomicAdd(f, 1.0f);
#elif defined(REFUSE_BF16_ARITHMETIC)
    h[0] = h[0] * h[1];
#elif defined(REFUSE_EXTERN_SHARED)
    extern __shared__ float dyn[];
    f[0] = dyn[0];
#else
    atomicAdd((int *)f, 1);
    h[0] = __float2bfloat16_rn(__bfloat162float(h[0]) * __bfloat162float(h[1]));
#endif
}
