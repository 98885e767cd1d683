/* Dequantization on the GPU (dequantize.cu): ops->dequantize, bit for bit
 * lt_dequantize_ref. */
#ifndef LT_MODEL_CUDA_DEQUANTIZE_CUH
#define LT_MODEL_CUDA_DEQUANTIZE_CUH

#include "model/ops.h"

void lt_cuda_dequantize(const lt_ops *o, float *out, const uint8_t *blob, const lt_qtensor *t);

#endif
