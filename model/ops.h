/* The ops interface: every computation the model performs, as a table of
 * functions a backend implements (model/cpu/ now, model/cuda/ later). Model
 * code is written once against it and never dereferences a buffer pointer,
 * because on a GPU backend those pointers are device memory.
 *
 * Conventions: matrices are row-major; an activation with n rows of width w
 * is [n, w]; "n" counts tokens (batch * sequence). Backward ops accumulate
 * (+=) into gradients of inputs so residual branches add up without copies;
 * ops named _fwd overwrite their outputs. Sizes are element counts unless a
 * parameter says bytes. */
#ifndef LT_MODEL_OPS_H
#define LT_MODEL_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"
#include "core/optim_math.h"
#include "core/status.h"
#include "model/quant.h"

LT_EXTERN_C_BEGIN

typedef struct lt_ops lt_ops;

struct lt_ops {
    const char *name;
    void *ctx;

    /* ---- memory (zero-filled, tracked by category) ---- */
    void *(*alloc)(const lt_ops *o, lt_mem_category cat, size_t bytes);
    void (*free)(const lt_ops *o, void *p);
    void (*upload)(const lt_ops *o, void *dst, const void *host_src, size_t bytes);
    void (*download)(const lt_ops *o, void *host_dst, const void *src, size_t bytes);
    void (*copy)(const lt_ops *o, void *dst, const void *src, size_t bytes);
    void (*zero)(const lt_ops *o, void *dst, size_t bytes);
    void (*sync)(const lt_ops *o);
    /* Ops return nothing (on a GPU they run asynchronously); a failure inside
     * one (no scratch memory, a kernel fault) is recorded and reported here,
     * and cleared. The model checks after each forward and backward pass. */
    lt_status (*check)(const lt_ops *o, lt_error *err);

    /* C[M,N] = alpha * op(A) op(B) + beta * C with op(X) = X or X^T;
     * A is [M,K] (or [K,M] if trans_a), B is [K,N] (or [N,K] if trans_b). */
    void (*gemm)(const lt_ops *o, int trans_a, int trans_b, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

    /* out [t->rows, t->cols] = the quantized tensor t of blob (a device
     * pointer; t's offsets are bytes into it), bit for bit what
     * lt_dequantize_ref gives. */
    void (*dequantize)(const lt_ops *o, float *out, const uint8_t *blob, const lt_qtensor *t);

    /* out[i,:] = table[tokens[i],:]; tokens were validated by the caller. */
    void (*embedding_fwd)(const lt_ops *o, float *out, const int32_t *tokens, const float *table,
                          int n, int dim);
    /* dtable[tokens[i],:] += dout[i,:] */
    void (*embedding_bwd)(const lt_ops *o, float *dtable, const int32_t *tokens,
                          const float *dout, int n, int dim);

    /* out = x * rstd * w with rstd = 1/sqrt(mean(x^2) + eps), saved per row. */
    void (*rmsnorm_fwd)(const lt_ops *o, float *out, float *rstd, const float *x, const float *w,
                        int n, int dim, float eps);
    /* dx += d/dx, dw += d/dw (dw may be NULL when the weight is frozen). */
    void (*rmsnorm_bwd)(const lt_ops *o, float *dx, float *dw, const float *dout, const float *x,
                        const float *w, const float *rstd, int n, int dim);

    /* Rotates n_heads heads of head_dim at the start of each of B*T rows of
     * x (row stride `stride`), in place, by angle pos * freq (pos = row % T);
     * inverse rotates by the negative angle (the backward of the forward).
     * cos/sin are [T_max, head_dim/2]; layout is an lt_rope_layout. */
    void (*rope)(const lt_ops *o, float *x, int stride, int B, int T, int n_heads, int head_dim,
                 const float *cos_t, const float *sin_t, int layout, int inverse);

    /* Causal grouped-query attention over packed rows qkv = [q | k | v]
     * (widths nh*hd, nkv*hd, nkv*hd). out is [B*T, nh*hd]; lse [B, nh, T]
     * keeps each row's log-sum-exp of scores, from which backward
     * recomputes the softmax (no [T, T] matrix is stored). */
    void (*attention_fwd)(const lt_ops *o, float *out, float *lse, const float *qkv, int B,
                          int T, int nh, int nkv, int hd);
    /* Writes (not accumulates) dqkv, same packed layout as qkv. */
    void (*attention_bwd)(const lt_ops *o, float *dqkv, const float *dout, const float *out,
                          const float *lse, const float *qkv, int B, int T, int nh, int nkv,
                          int hd);

    /* y[i,:] += b over n rows of `cols` (q/k/v biases, Qwen2). */
    void (*bias_add)(const lt_ops *o, float *y, const float *b, int n, int cols);
    /* db += the column sums of dy [n, cols], rows summed in order (so the
     * result does not depend on the thread count). */
    void (*bias_bwd)(const lt_ops *o, float *db, const float *dy, int n, int cols);

    /* h = silu(g) * u where rows of gate_up are [g | u], each `hidden` wide. */
    void (*swiglu_fwd)(const lt_ops *o, float *h, const float *gate_up, int n, int hidden);
    /* Writes dgate_up. */
    void (*swiglu_bwd)(const lt_ops *o, float *dgate_up, const float *dh, const float *gate_up,
                       int n, int hidden);

    /* out (= or +=) x * keep / (1 - p) over an [n, cols] block where
     * keep = uniform(key, (first_row + i) * cols + j) >= p (core/rng.h):
     * rows are numbered in the whole global batch, so a rank holding rows
     * from first_row on draws the masks one process would. */
    void (*dropout)(const lt_ops *o, float *out, const float *x, int n, int cols, float p,
                    uint64_t key, uint64_t first_row, int accumulate);

    /* Cross-entropy over n rows of V logits. For each row: losses[i] =
     * logsumexp - logit[target] (0 when target < 0). With want_grad the
     * logits are overwritten by grad_scale * (softmax - onehot) (0 rows for
     * ignored targets). */
    void (*cross_entropy)(const lt_ops *o, float *logits, float *losses, const int32_t *targets,
                          int n, int V, float grad_scale, int want_grad);

    /* The same loss with the logits arriving a block of columns at a time,
     * so the classifier GEMM, the softmax and the input gradient's GEMM
     * share one cache-sized block (online softmax, as FlashAttention does
     * over keys). Per row, st keeps LT_CE_STATE floats of running state
     * (the max, the target's logit, exp-sums relative to the max).
     *
     * ce_block takes columns [col0, col0 + cols) of the n rows' logits
     * (blk, row stride ld; overwritten); col0 == 0 starts the rows' state.
     * When a row's max rises, its earlier sums and, with want_grad, its row
     * of dx ([n, dim]: the sum of the earlier blocks' blk W_block) are
     * scaled down to the new max. With want_grad the block becomes
     * exp(logit - max) with 0 at the target and on ignored rows, for the
     * caller's dx += blk W_block. */
    void (*ce_block)(const lt_ops *o, float *blk, int ld, int n, int cols, int col0,
                     const int32_t *targets, float *st, float *dx, int dim, int want_grad);
    /* After the last block: losses as cross_entropy gives them; with dx,
     * dx becomes grad_scale * (softmax - onehot) cls (cls [V, dim], the
     * classifier), d(loss)/d(classifier input); 0 rows for ignored targets. */
    void (*ce_finish)(const lt_ops *o, float *losses, const float *st, const int32_t *targets,
                      int n, float grad_scale, float *dx, int dim, const float *cls);

    /* ---- the optimizer's pieces, on the buffers where the backend keeps
     * them (parameters, gradients, AdamW moments); the arithmetic is
     * core/optim_math.h's, the step's scalars come from optim/. ---- */

    /* The sum of x[i]^2 over n floats, in double, in an order fixed by n
     * alone: the same bits on every run and every rank. The CPU's is
     * lt_sumsq's order exactly; another backend's order may differ (a
     * tree): the two agree within 2 n 2^-53 of the sum, relative (every
     * square is exact in double and >= 0, so any order of the sums lies
     * within (n - 1) 2^-53 of the exact sum, relative). Inf or NaN in x
     * gives inf or NaN. Waits for the ops before it (the host needs the
     * value); NaN when the backend fails (check says why). */
    double (*sumsq)(const lt_ops *o, const float *x, size_t n);
    /* x[i] *= c over n floats (clipping by the global norm). */
    void (*scale)(const lt_ops *o, float *x, size_t n, float c);
    /* One AdamW step, lt_adamw_update on every element: params, m and v
     * updated in place from grads; none of the four may overlap. */
    void (*adamw)(const lt_ops *o, float *params, const float *grads, float *m, float *v,
                  size_t n, const lt_adamw_scalars *s);
};

#define LT_CE_STATE 8 /* floats per row; 32 bytes keep rows aligned */

LT_EXTERN_C_END

/* The backends live in model/cpu/ and model/cuda/; model/backend.h picks
 * one by name. */

#endif
