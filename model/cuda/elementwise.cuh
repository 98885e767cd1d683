/* The CUDA backend's row-wise and element-wise ops (elementwise.cu), with
 * the ops table's signatures (model/ops.h says what each computes). */
#ifndef LT_MODEL_CUDA_ELEMENTWISE_CUH
#define LT_MODEL_CUDA_ELEMENTWISE_CUH

#include "model/ops.h"

void lt_cuda_embedding_fwd(const lt_ops *o, float *out, const int32_t *tokens, const float *table,
                           int n, int dim);
void lt_cuda_embedding_bwd(const lt_ops *o, float *dtable, const int32_t *tokens,
                           const float *dout, int n, int dim);
void lt_cuda_rmsnorm_fwd(const lt_ops *o, float *out, float *rstd, const float *x, const float *w,
                         int n, int dim, float eps);
void lt_cuda_rmsnorm_bwd(const lt_ops *o, float *dx, float *dw, const float *dout, const float *x,
                         const float *w, const float *rstd, int n, int dim);
void lt_cuda_rope(const lt_ops *o, float *x, int stride, int B, int T, int n_heads, int head_dim,
                  const float *cos_t, const float *sin_t, int layout, int inverse);
void lt_cuda_bias_add(const lt_ops *o, float *y, const float *b, int n, int cols);
void lt_cuda_bias_bwd(const lt_ops *o, float *db, const float *dy, int n, int cols);
void lt_cuda_swiglu_fwd(const lt_ops *o, float *h, const float *gate_up, int n, int hidden);
void lt_cuda_swiglu_bwd(const lt_ops *o, float *dgate_up, const float *dh, const float *gate_up,
                        int n, int hidden);
void lt_cuda_dropout(const lt_ops *o, float *out, const float *x, int n, int cols, float p,
                     uint64_t key, uint64_t first_row, int accumulate);

#endif
