/* cuBLAS on OpenBLAS against a naive triple loop in double, column-major
 * as cuBLAS defines it: every transpose pair, padded leading dimensions
 * (the padding holds NaN, which must be neither read nor written),
 * strided batches (a stride of 0 included), bf16 operands with fp32 and
 * bf16 results, beta = 0 over a C full of NaN, k = 0 and alpha = 0; then
 * the argument checks and the refusals.
 *
 * Bound: each fp32 element within (k + 2) u / (1 - (k + 2) u) times
 * |alpha| sum |a b| + |beta c| (u = 2^-24: k products summed, the alpha
 * and beta terms), the classical bound for a dot product; a bf16 result
 * adds its own rounding, half a bf16 ulp (2^-8 of the magnitude). */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <math.h>

#include <random>
#include <vector>

#include "check.cuh"

namespace {

const float kNaN = NAN;

struct Shape {
    int m, n, k;
};

int rows_of(cublasOperation_t op, int r, int c) { return op == CUBLAS_OP_N ? r : c; }
int cols_of(cublasOperation_t op, int r, int c) { return op == CUBLAS_OP_N ? c : r; }

/* element (i, j) of op(X) for X stored column-major with ld */
template <class T>
double op_at(const std::vector<T> &x, size_t off, int ld, cublasOperation_t op, int i, int j) {
    size_t idx = op == CUBLAS_OP_N ? off + (size_t)j * ld + i : off + (size_t)i * ld + j;
    return (double)(float)x[idx];
}

struct Case {
    cublasOperation_t ta, tb;
    Shape s;
    int pad_a, pad_b, pad_c;
    float alpha, beta;
    int batches;
    long long extra_stride; /* added to each operand's packed batch stride */
    bool broadcast_b;       /* strideB = 0 */
    bool bf16_in, bf16_out;
};

std::mt19937 g_rng(1234);

float random_value() { return (float)((int)(g_rng() % 2001) - 1000) / 256.0f; }

/* Runs one case; false (with a line on stderr) when an element is off. */
bool run_case(cublasHandle_t h, const Case &c) {
    const int m = c.s.m, n = c.s.n, k = c.s.k;
    const int ar = rows_of(c.ta, m, k), ac = cols_of(c.ta, m, k);
    const int br = rows_of(c.tb, k, n), bc = cols_of(c.tb, k, n);
    const int lda = (ar > 0 ? ar : 1) + c.pad_a, ldb = (br > 0 ? br : 1) + c.pad_b,
              ldc = (m > 0 ? m : 1) + c.pad_c;
    const long long sa = (long long)lda * ac + c.extra_stride,
                    sb = c.broadcast_b ? 0 : (long long)ldb * bc + c.extra_stride,
                    sc = (long long)ldc * n + c.extra_stride;
    const int nb = c.batches;
    const size_t na = (size_t)(sa * (nb - 1) + (long long)lda * ac),
                 nbb = (size_t)(sb * (nb - 1) + (long long)ldb * bc),
                 nc = (size_t)(sc * (nb - 1) + (long long)ldc * n);
    /* host operands: values inside the matrices, NaN in the padding */
    std::vector<float> A(na ? na : 1, kNaN), B(nbb ? nbb : 1, kNaN), C(nc ? nc : 1, kNaN);
    auto fill = [](std::vector<float> &x, long long stride, int nb_, int ld, int r, int cl,
                   bool nan_inside) {
        for (int b = 0; b < nb_; b++)
            for (int j = 0; j < cl; j++)
                for (int i = 0; i < r; i++) {
                    float v = nan_inside ? kNaN : random_value();
                    x[(size_t)(stride * b) + (size_t)j * ld + i] = v;
                }
    };
    fill(A, sa, nb, lda, ar, ac, false);
    fill(B, sb, c.broadcast_b ? 1 : nb, ldb, br, bc, false);
    fill(C, sc, nb, ldc, m, n, c.beta == 0.0f);
    if (c.bf16_in) { /* values exact in bf16 */
        for (float &v : A)
            v = __bfloat162float(__float2bfloat16_rn(v));
        for (float &v : B)
            v = __bfloat162float(__float2bfloat16_rn(v));
    }
    if (c.bf16_out)
        for (float &v : C)
            v = __bfloat162float(__float2bfloat16_rn(v));

    /* the reference, from the host copies */
    const double u = ldexp(1.0, -24), gamma = (k + 2) * u / (1 - (k + 2) * u);
    std::vector<double> want(nc ? nc : 1), bound(nc ? nc : 1);
    for (int b = 0; b < nb; b++)
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                double acc = 0, mag = 0;
                for (int p = 0; p < k; p++) {
                    double x = op_at(A, (size_t)(sa * b), lda, c.ta, i, p) *
                               op_at(B, (size_t)(sb * b), ldb, c.tb, p, j);
                    acc += x;
                    mag += fabs(x);
                }
                size_t o = (size_t)(sc * b) + (size_t)j * ldc + i;
                double c0 = c.beta == 0.0f ? 0.0 : (double)C[o];
                want[o] = c.alpha * acc + c.beta * c0;
                bound[o] = gamma * (fabs(c.alpha) * mag + fabs(c.beta * c0));
                if (c.bf16_out)
                    bound[o] += ldexp(fabs(want[o]), -8);
            }

    /* device operands in the case's types */
    auto upload = [](const std::vector<float> &x, bool bf16) {
        void *d = nullptr;
        size_t bytes = x.size() * (bf16 ? 2 : 4);
        CUDA_OK(cudaMalloc(&d, bytes));
        if (bf16) {
            std::vector<__nv_bfloat16> hb(x.size());
            for (size_t i = 0; i < x.size(); i++)
                hb[i] = __float2bfloat16_rn(x[i]);
            CUDA_OK(cudaMemcpy(d, hb.data(), bytes, cudaMemcpyHostToDevice));
        } else {
            CUDA_OK(cudaMemcpy(d, x.data(), bytes, cudaMemcpyHostToDevice));
        }
        return d;
    };
    void *dA = upload(A, c.bf16_in), *dB = upload(B, c.bf16_in), *dC = upload(C, c.bf16_out);
    cudaDataType tin = c.bf16_in ? CUDA_R_16BF : CUDA_R_32F,
                 tout = c.bf16_out ? CUDA_R_16BF : CUDA_R_32F;
    cublasStatus_t st;
    if (!c.bf16_in && !c.bf16_out && nb == 1 && c.extra_stride == 0)
        st = cublasSgemm(h, c.ta, c.tb, m, n, k, &c.alpha, (const float *)dA, lda,
                         (const float *)dB, ldb, &c.beta, (float *)dC, ldc);
    else if (!c.bf16_in && !c.bf16_out)
        st = cublasSgemmStridedBatched(h, c.ta, c.tb, m, n, k, &c.alpha, (const float *)dA, lda, sa,
                                       (const float *)dB, ldb, sb, &c.beta, (float *)dC, ldc, sc,
                                       nb);
    else if (nb == 1 && c.extra_stride == 0)
        st = cublasGemmEx(h, c.ta, c.tb, m, n, k, &c.alpha, dA, tin, lda, dB, tin, ldb, &c.beta, dC,
                          tout, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    else
        st = cublasGemmStridedBatchedEx(h, c.ta, c.tb, m, n, k, &c.alpha, dA, tin, lda, sa, dB, tin,
                                        ldb, sb, &c.beta, dC, tout, ldc, sc, nb, CUBLAS_COMPUTE_32F,
                                        CUBLAS_GEMM_DEFAULT);
    std::vector<float> got(C.size());
    if (c.bf16_out) {
        std::vector<__nv_bfloat16> hb(C.size());
        CUDA_OK(cudaMemcpy(hb.data(), dC, hb.size() * 2, cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < hb.size(); i++)
            got[i] = __bfloat162float(hb[i]);
    } else {
        CUDA_OK(cudaMemcpy(got.data(), dC, got.size() * 4, cudaMemcpyDeviceToHost));
    }
    CUDA_OK(cudaFree(dA));
    CUDA_OK(cudaFree(dB));
    CUDA_OK(cudaFree(dC));
    if (st != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "status %d: %s\n", (int)st, lt_cuda_emu_last_message());
        return false;
    }
    /* inside C: within the bound; outside (padding, between batches): untouched */
    std::vector<char> inside(C.size(), 0);
    for (int b = 0; b < nb; b++)
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++)
                inside[(size_t)(sc * b) + (size_t)j * ldc + i] = 1;
    for (size_t o = 0; o < C.size(); o++) {
        bool ok = inside[o] ? fabs((double)got[o] - want[o]) <= bound[o]
                            : memcmp(&got[o], &C[o], sizeof(float)) == 0;
        if (!ok) {
            fprintf(stderr,
                    "ta %d tb %d m %d n %d k %d pads %d/%d/%d alpha %g beta %g batches %d "
                    "bf16 %d/%d: C[%zu] = %.9g, want %.9g (bound %.3g)%s\n",
                    c.ta, c.tb, m, n, k, c.pad_a, c.pad_b, c.pad_c, c.alpha, c.beta, nb, c.bf16_in,
                    c.bf16_out, o, got[o], inside[o] ? want[o] : C[o], bound[o],
                    inside[o] ? "" : " (outside C: must stay)");
            return false;
        }
    }
    return true;
}

void against_triple_loop(cublasHandle_t h) {
    const cublasOperation_t ops[] = {CUBLAS_OP_N, CUBLAS_OP_T, CUBLAS_OP_C};
    const Shape shapes[] = {{5, 7, 3}, {17, 9, 33}, {1, 1, 1}, {64, 3, 40}};
    int cases = 0, failed = 0;
    for (cublasOperation_t ta : ops)
        for (cublasOperation_t tb : ops)
            for (const Shape &s : shapes)
                for (int variant = 0; variant < 6; variant++) {
                    Case c{ta, tb, s, 0, 0, 0, 1.0f, 0.0f, 1, 0, false, false, false};
                    switch (variant) {
                    case 1: /* padded lds, alpha and beta */
                        c.pad_a = 3;
                        c.pad_b = 1;
                        c.pad_c = 2;
                        c.alpha = 0.5f;
                        c.beta = 2.0f;
                        break;
                    case 2: /* strided batches, B broadcast */
                        c.batches = 3;
                        c.extra_stride = 5;
                        c.broadcast_b = true;
                        c.alpha = -1.25f;
                        c.beta = 1.0f;
                        c.pad_c = 1;
                        break;
                    case 3: /* bf16 in, fp32 out, beta 0 over NaN */
                        c.bf16_in = true;
                        c.pad_a = 2;
                        break;
                    case 4: /* bf16 in and out, batched */
                        c.bf16_in = c.bf16_out = true;
                        c.batches = 2;
                        c.beta = -0.5f;
                        c.pad_b = 2;
                        break;
                    case 5: /* bf16 out, beta 0 over NaN, batched */
                        c.bf16_in = c.bf16_out = true;
                        c.batches = 2;
                        c.alpha = 3.0f;
                        break;
                    }
                    cases++;
                    failed += !run_case(h, c);
                }
    CHECK(failed == 0, "%d of %d GEMM cases off the triple loop", failed, cases);
    /* k = 0 and alpha = 0: C = beta C, A and B (NaN here) unread */
    Case k0{CUBLAS_OP_N, CUBLAS_OP_N, {4, 5, 0}, 0, 0, 0, 1.0f, 3.0f, 1, 0, false, false, false};
    CHECK(run_case(h, k0), "k = 0");
    Case m0{CUBLAS_OP_T, CUBLAS_OP_N, {0, 5, 4}, 0, 0, 1, 1.0f, 3.0f, 1, 0, false, false, false};
    CHECK(run_case(h, m0), "m = 0 leaves C alone");
}

void alpha_zero_reads_no_operand(cublasHandle_t h) {
    float *dA, *dB, *dC;
    CUDA_OK(cudaMalloc(&dA, 16 * sizeof(float)));
    CUDA_OK(cudaMalloc(&dB, 16 * sizeof(float)));
    CUDA_OK(cudaMalloc(&dC, 16 * sizeof(float)));
    std::vector<float> nan(16, kNaN), c(16, 2.0f), got(16);
    CUDA_OK(cudaMemcpy(dA, nan.data(), 64, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dB, nan.data(), 64, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dC, c.data(), 64, cudaMemcpyHostToDevice));
    float alpha = 0.0f, beta = 0.5f;
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &alpha, dA, 4, dB, 4, &beta, dC, 4) ==
              CUBLAS_STATUS_SUCCESS,
          "alpha 0");
    CUDA_OK(cudaMemcpy(got.data(), dC, 64, cudaMemcpyDeviceToHost));
    CHECK(got == std::vector<float>(16, 1.0f), "alpha 0: C = beta C, got %g", got[0]);
    CUDA_OK(cudaFree(dA));
    CUDA_OK(cudaFree(dB));
    CUDA_OK(cudaFree(dC));
}

void argument_checks(cublasHandle_t h) {
    float *d;
    CUDA_OK(cudaMalloc(&d, 1024 * sizeof(float)));
    const float one = 1.0f, zero = 0.0f;
    auto sgemm = [&](cublasHandle_t hh, int ta, int tb, int m, int n, int k, int lda, int ldb,
                     int ldc) {
        return cublasSgemm(hh, (cublasOperation_t)ta, (cublasOperation_t)tb, m, n, k, &one, d, lda,
                           d, ldb, &zero, d, ldc);
    };
    CHECK(sgemm(h, 0, 0, 4, 4, 4, 4, 4, 4) == CUBLAS_STATUS_SUCCESS, "a valid call");
    CHECK(sgemm(h, 0, 0, -1, 4, 4, 4, 4, 4) == CUBLAS_STATUS_INVALID_VALUE, "m < 0");
    CHECK(sgemm(h, 0, 0, 4, -1, 4, 4, 4, 4) == CUBLAS_STATUS_INVALID_VALUE, "n < 0");
    CHECK(sgemm(h, 0, 0, 4, 4, -1, 4, 4, 4) == CUBLAS_STATUS_INVALID_VALUE, "k < 0");
    CHECK(sgemm(h, 0, 0, 4, 4, 5, 3, 5, 4) == CUBLAS_STATUS_INVALID_VALUE, "lda < m");
    CHECK(sgemm(h, 1, 0, 4, 4, 5, 4, 5, 4) == CUBLAS_STATUS_INVALID_VALUE, "lda < k (A^T)");
    CHECK(sgemm(h, 1, 0, 4, 4, 5, 5, 5, 4) == CUBLAS_STATUS_SUCCESS, "lda = k (A^T)");
    CHECK(sgemm(h, 0, 0, 4, 4, 5, 4, 4, 4) == CUBLAS_STATUS_INVALID_VALUE, "ldb < k");
    CHECK(sgemm(h, 0, 1, 4, 6, 5, 4, 5, 4) == CUBLAS_STATUS_INVALID_VALUE, "ldb < n (B^T)");
    CHECK(sgemm(h, 0, 0, 4, 4, 4, 4, 4, 3) == CUBLAS_STATUS_INVALID_VALUE, "ldc < m");
    CHECK(sgemm(h, 0, 0, 0, 4, 4, 0, 4, 0) == CUBLAS_STATUS_INVALID_VALUE, "ld 0 (at least 1)");
    CHECK(sgemm(h, CUBLAS_OP_CONJG, 0, 4, 4, 4, 4, 4, 4) == CUBLAS_STATUS_INVALID_VALUE,
          "CUBLAS_OP_CONJG, which gemm does not take");
    CHECK(strstr(lt_cuda_emu_last_message(), "transa 3"), "the message: %s",
          lt_cuda_emu_last_message());
    CHECK(sgemm(nullptr, 0, 0, 4, 4, 4, 4, 4, 4) == CUBLAS_STATUS_NOT_INITIALIZED, "no handle");
    CHECK(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, d, 2, 4, d, 2, 4,
                                    &zero, d, 2, 4, -1) == CUBLAS_STATUS_INVALID_VALUE,
          "batchCount < 0");
    /* operands outside device memory: a GPU faults, the emulator says where */
    std::vector<float> host(64, 1.0f);
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, host.data(), 4, d, 4, &zero, d,
                      4) == CUBLAS_STATUS_EXECUTION_FAILED,
          "A in host memory");
    EXPECT_LAUNCH_ERROR(cudaErrorIllegalAddress, "cublasSgemm: A", "not in any cudaMalloc block");
    CHECK(cudaDeviceSynchronize() == cudaErrorIllegalAddress, "the fault at the next sync");
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, d, 4, d, 400, &zero, d, 4) ==
              CUBLAS_STATUS_EXECUTION_FAILED,
          "B's ld runs past its block");
    EXPECT_LAUNCH_ERROR(cudaErrorIllegalAddress, "cublasSgemm: B", "past the end");
    cudaDeviceSynchronize();
    /* reduced precision and other types are refused */
    CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, d, CUDA_R_32F, 4, d, CUDA_R_32F,
                       4, &zero, d, CUDA_R_32F, 4, CUBLAS_COMPUTE_32F_FAST_TF32,
                       CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_NOT_SUPPORTED,
          "TF32");
    CHECK(strstr(lt_cuda_emu_last_message(), "TF32"), "the message: %s",
          lt_cuda_emu_last_message());
    CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, d, CUDA_R_16F, 4, d, CUDA_R_16F,
                       4, &zero, d, CUDA_R_32F, 4, CUBLAS_COMPUTE_32F,
                       CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_NOT_SUPPORTED,
          "fp16 operands");
    CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, d, CUDA_R_32F, 4, d, CUDA_R_32F,
                       4, &zero, d, CUDA_R_16BF, 4, CUBLAS_COMPUTE_32F,
                       CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_NOT_SUPPORTED,
          "fp32 operands into a bf16 C");
    CHECK(cublasSetMathMode(h, CUBLAS_TF32_TENSOR_OP_MATH) == CUBLAS_STATUS_NOT_SUPPORTED,
          "TF32 math mode");
    CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH) == CUBLAS_STATUS_SUCCESS &&
              cublasSetMathMode(h,
                                (cublasMath_t)(CUBLAS_PEDANTIC_MATH |
                                               CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)) ==
                  CUBLAS_STATUS_SUCCESS,
          "default and pedantic math");
    cudaStream_t s;
    CUDA_OK(cudaStreamCreate(&s));
    CHECK(cublasSetStream(h, s) == CUBLAS_STATUS_SUCCESS, "a stream");
    CHECK(sgemm(h, 0, 0, 4, 4, 4, 4, 4, 4) == CUBLAS_STATUS_SUCCESS, "on a stream");
    CHECK(cublasSetStream(h, nullptr) == CUBLAS_STATUS_SUCCESS, "the default stream");
    CUDA_OK(cudaStreamDestroy(s));
    CUDA_OK(cudaFree(d));
    cudaGetLastError();
}

} // namespace

int test_cublas(void) {
    cublasHandle_t h;
    CHECK(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS, "cublasCreate");
    against_triple_loop(h);
    alpha_zero_reads_no_operand(h);
    argument_checks(h);
    CHECK(cublasDestroy(h) == CUBLAS_STATUS_SUCCESS, "cublasDestroy");
    CHECK(cublasDestroy(h) == CUBLAS_STATUS_NOT_INITIALIZED, "a handle destroyed twice");
    return 0;
}
