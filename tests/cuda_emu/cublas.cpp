/* cuBLAS on OpenBLAS (what cublas_v2.h promises). cuBLAS is column-major,
 * as is cblas_sgemm with CblasColMajor, so the arguments map one to one;
 * bf16 operands are widened into float scratch (exact), and a bf16 C is
 * widened before and rounded to nearest even after. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* OpenBLAS's header spells its complex types with C99's _Complex, which
 * -Wpedantic questions in C++. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#include <cblas.h>
#pragma GCC diagnostic pop

#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <cublas_v2.h>
#include <cuda_bf16.h>

#include "emu_internal.h"

struct cublasContext {
    cudaStream_t stream;
    cublasMath_t math;
};

namespace {

std::mutex g_mutex;
std::set<cublasContext *> g_handles;

/* A cuBLAS failure: its reason goes to lt_cuda_emu_last_message() without
 * touching the CUDA last error (cuBLAS reports through its status). */
cublasStatus_t refuse(cublasStatus_t s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
cublasStatus_t refuse(cublasStatus_t s, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    cudaError_t keep = cudaPeekAtLastError();
    lt_cuda_emu::fail(keep, "%s", buf);
    return s;
}

bool handle_valid(cublasHandle_t h) {
    std::lock_guard<std::mutex> g(g_mutex);
    return h && g_handles.count(h) != 0;
}

enum class Elem { F32, BF16 };

size_t elem_bytes(Elem e) { return e == Elem::F32 ? 4 : 2; }

struct Matrix {
    const char *name;
    const void *p;
    Elem type;
    int rows, cols, ld; /* as stored, column-major */
    long long stride;   /* elements between batches */
};

/* The bytes a batch of stored matrices spans, from the first element. */
size_t span_bytes(const Matrix &m, int batches) {
    if (m.rows == 0 || m.cols == 0 || batches == 0)
        return 0;
    long long last = (long long)(m.cols - 1) * m.ld + m.rows - 1;
    long long lo = 0, hi = last;
    if (m.stride >= 0)
        hi += m.stride * (batches - 1);
    else
        lo += m.stride * (batches - 1);
    (void)lo;
    return (size_t)(hi + 1) * elem_bytes(m.type);
}

cublasStatus_t check_device(const char *fn, const Matrix &m, int batches) {
    size_t bytes = span_bytes(m, batches);
    if (bytes == 0)
        return CUBLAS_STATUS_SUCCESS;
    if (m.stride < 0)
        return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "%s: a negative stride for %s is not emulated",
                      fn, m.name);
    std::string why;
    if (!lt_cuda_emu::device_range(m.p, bytes, &why)) {
        lt_cuda_emu::fail_execution(cudaErrorIllegalAddress,
                                    "%s: %s (%d x %d, ld %d, %d batch(es)): %s", fn, m.name, m.rows,
                                    m.cols, m.ld, batches, why.c_str());
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

/* A stored matrix as packed float (ld = rows), widened if it is bf16. */
const float *as_float(const Matrix &m, const void *p, std::vector<float> *scratch) {
    if (m.type == Elem::F32)
        return (const float *)p;
    scratch->resize((size_t)m.rows * m.cols);
    const __nv_bfloat16 *src = (const __nv_bfloat16 *)p;
    for (int c = 0; c < m.cols; c++)
        for (int r = 0; r < m.rows; r++)
            (*scratch)[(size_t)c * m.rows + r] = __bfloat162float(src[(size_t)c * m.ld + r]);
    return scratch->data();
}

int ld_of(const Matrix &m) {
    if (m.type == Elem::F32)
        return m.ld;
    return m.rows > 0 ? m.rows : 1;
}

struct Gemm {
    const char *fn;
    cublasOperation_t ta, tb;
    int m, n, k;
    float alpha, beta;
    Matrix A, B, C;
    int batches;
};

bool op_valid(cublasOperation_t op) {
    return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C;
}

/* cuBLAS's argument checks, then every batch. */
cublasStatus_t run_checked(cublasHandle_t handle, Gemm &g) {
    if (!handle_valid(handle))
        return refuse(CUBLAS_STATUS_NOT_INITIALIZED, "%s: the handle is not one cublasCreate made",
                      g.fn);
    if (!op_valid(g.ta) || !op_valid(g.tb))
        return refuse(CUBLAS_STATUS_INVALID_VALUE,
                      "%s: transa %d / transb %d: expected "
                      "CUBLAS_OP_N, _T or _C",
                      g.fn, (int)g.ta, (int)g.tb);
    if (g.m < 0 || g.n < 0 || g.k < 0)
        return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: m %d, n %d, k %d: none may be negative",
                      g.fn, g.m, g.n, g.k);
    g.A.rows = g.ta == CUBLAS_OP_N ? g.m : g.k;
    g.A.cols = g.ta == CUBLAS_OP_N ? g.k : g.m;
    g.B.rows = g.tb == CUBLAS_OP_N ? g.k : g.n;
    g.B.cols = g.tb == CUBLAS_OP_N ? g.n : g.k;
    g.C.rows = g.m;
    g.C.cols = g.n;
    const Matrix *mats[3] = {&g.A, &g.B, &g.C};
    for (const Matrix *x : mats)
        if (x->ld < (x->rows > 1 ? x->rows : 1))
            return refuse(CUBLAS_STATUS_INVALID_VALUE,
                          "%s: ld%c %d is less than the %d rows %s holds as stored", g.fn,
                          x->name[0] + ('a' - 'A'), x->ld, x->rows, x->name);
    if (g.batches < 0)
        return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: batchCount %d is negative", g.fn,
                      g.batches);
    if (g.m == 0 || g.n == 0 || g.batches == 0)
        return CUBLAS_STATUS_SUCCESS;
    /* alpha == 0 or k == 0: C = beta * C, A and B unread, as BLAS defines */
    const bool use_ab = g.k > 0 && g.alpha != 0.0f;
    cublasStatus_t s;
    if (use_ab && ((s = check_device(g.fn, g.A, g.batches)) != CUBLAS_STATUS_SUCCESS ||
                   (s = check_device(g.fn, g.B, g.batches)) != CUBLAS_STATUS_SUCCESS))
        return s;
    if ((s = check_device(g.fn, g.C, g.batches)) != CUBLAS_STATUS_SUCCESS)
        return s;

    std::vector<float> sa, sb, sc;
    for (int i = 0; i < g.batches; i++) {
        const char *a = (const char *)g.A.p + (size_t)(i * g.A.stride) * elem_bytes(g.A.type);
        const char *b = (const char *)g.B.p + (size_t)(i * g.B.stride) * elem_bytes(g.B.type);
        char *c =
            (char *)const_cast<void *>(g.C.p) + (size_t)(i * g.C.stride) * elem_bytes(g.C.type);
        /* C as float: itself, or a packed widened copy */
        float *cf;
        int ldc;
        if (g.C.type == Elem::F32) {
            cf = (float *)c;
            ldc = g.C.ld;
        } else {
            sc.assign((size_t)g.m * g.n, 0.0f);
            cf = sc.data();
            ldc = g.m;
            if (g.beta != 0.0f)
                as_float(g.C, c, &sc);
        }
        /* beta == 0: C is written, never read */
        if (g.beta == 0.0f)
            for (int col = 0; col < g.n; col++)
                memset(cf + (size_t)col * ldc, 0, (size_t)g.m * sizeof(float));
        if (use_ab) {
            const float *af = as_float(g.A, a, &sa);
            const float *bf = as_float(g.B, b, &sb);
            cblas_sgemm(CblasColMajor, g.ta == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
                        g.tb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, g.m, g.n, g.k, g.alpha, af,
                        ld_of(g.A), bf, ld_of(g.B), g.beta, cf, ldc);
        } else if (g.beta != 0.0f && g.beta != 1.0f) {
            for (int col = 0; col < g.n; col++)
                for (int r = 0; r < g.m; r++)
                    cf[(size_t)col * ldc + r] *= g.beta;
        }
        if (g.C.type == Elem::BF16) {
            __nv_bfloat16 *cb = (__nv_bfloat16 *)c;
            for (int col = 0; col < g.n; col++)
                for (int r = 0; r < g.m; r++)
                    cb[(size_t)col * g.C.ld + r] = __float2bfloat16_rn(cf[(size_t)col * ldc + r]);
        }
    }
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t run(cublasHandle_t handle, Gemm &g) {
    lt_cuda_emu::device_open();
    const cublasStatus_t s = run_checked(handle, g);
    lt_cuda_emu::device_close();
    return s;
}

bool elem_of(cudaDataType t, Elem *e) {
    if (t == CUDA_R_32F)
        *e = Elem::F32;
    else if (t == CUDA_R_16BF)
        *e = Elem::BF16;
    else
        return false;
    return true;
}

const char *compute_refusal(cublasComputeType_t c) {
    switch (c) {
    case CUBLAS_COMPUTE_32F:
    case CUBLAS_COMPUTE_32F_PEDANTIC:
        return nullptr;
    case CUBLAS_COMPUTE_32F_FAST_TF32:
        return "CUBLAS_COMPUTE_32F_FAST_TF32 rounds inputs to TF32 (10 mantissa bits) on a GPU, "
               "which the emulation does not reproduce: use CUBLAS_COMPUTE_32F";
    case CUBLAS_COMPUTE_32F_FAST_16F:
    case CUBLAS_COMPUTE_32F_FAST_16BF:
    case CUBLAS_COMPUTE_32F_EMULATED_16BFX9:
        return "a reduced-precision 32F compute type rounds inputs on a GPU, which the emulation "
               "does not reproduce: use CUBLAS_COMPUTE_32F";
    default:
        return "only CUBLAS_COMPUTE_32F (and _PEDANTIC) is emulated";
    }
}

cublasStatus_t gemm_ex(const char *fn, cublasHandle_t handle, cublasOperation_t ta,
                       cublasOperation_t tb, int m, int n, int k, const void *alpha, const void *A,
                       cudaDataType at, int lda, long long sa, const void *B, cudaDataType bt,
                       int ldb, long long sb, const void *beta, void *C, cudaDataType ct, int ldc,
                       long long sc, int batches, cublasComputeType_t compute) {
    if (const char *why = compute_refusal(compute))
        return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "%s: computeType %d: %s", fn, (int)compute, why);
    Elem ea, eb, ec;
    if (!elem_of(at, &ea) || !elem_of(bt, &eb) || !elem_of(ct, &ec) || ea != eb ||
        (ea == Elem::F32 && ec != Elem::F32))
        return refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                      "%s: Atype %d, Btype %d, Ctype %d: emulated are 32F/32F/32F, "
                      "16BF/16BF/16BF and 16BF/16BF/32F",
                      fn, (int)at, (int)bt, (int)ct);
    if (!alpha || !beta)
        return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: alpha or beta is NULL", fn);
    Gemm g{fn,
           ta,
           tb,
           m,
           n,
           k,
           *(const float *)alpha,
           *(const float *)beta,
           {"A", A, ea, 0, 0, lda, sa},
           {"B", B, eb, 0, 0, ldb, sb},
           {"C", C, ec, 0, 0, ldc, sc},
           batches};
    return run(handle, g);
}

} // namespace

extern "C" {

cublasStatus_t cublasCreate(cublasHandle_t *handle) {
    if (!handle)
        return refuse(CUBLAS_STATUS_INVALID_VALUE, "cublasCreate: handle is NULL");
    cublasContext *h = new cublasContext{nullptr, CUBLAS_DEFAULT_MATH};
    std::lock_guard<std::mutex> g(g_mutex);
    g_handles.insert(h);
    *handle = h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
    std::lock_guard<std::mutex> g(g_mutex);
    if (!g_handles.erase(handle))
        return refuse(CUBLAS_STATUS_NOT_INITIALIZED,
                      "cublasDestroy: the handle is not one cublasCreate made");
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t streamId) {
    if (!handle_valid(handle))
        return refuse(CUBLAS_STATUS_NOT_INITIALIZED,
                      "cublasSetStream: the handle is not one cublasCreate made");
    if (!lt_cuda_emu::stream_valid(streamId))
        return refuse(CUBLAS_STATUS_INVALID_VALUE, "cublasSetStream: stream %p is not live",
                      (void *)streamId);
    handle->stream = streamId;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    if (!handle_valid(handle))
        return refuse(CUBLAS_STATUS_NOT_INITIALIZED,
                      "cublasSetMathMode: the handle is not one cublasCreate made");
    unsigned base = (unsigned)mode & ~(unsigned)CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
    if (base != CUBLAS_DEFAULT_MATH && base != CUBLAS_PEDANTIC_MATH)
        return refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                      "cublasSetMathMode(%d): only CUBLAS_DEFAULT_MATH and CUBLAS_PEDANTIC_MATH "
                      "are emulated (the others let a GPU round fp32 inputs to TF32 or fp16)",
                      (int)mode);
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa,
                           cublasOperation_t transb, int m, int n, int k, const float *alpha,
                           const float *A, int lda, const float *B, int ldb, const float *beta,
                           float *C, int ldc) {
    return gemm_ex("cublasSgemm", handle, transa, transb, m, n, k, alpha, A, CUDA_R_32F, lda, 0, B,
                   CUDA_R_32F, ldb, 0, beta, C, CUDA_R_32F, ldc, 0, 1, CUBLAS_COMPUTE_32F);
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa,
                                         cublasOperation_t transb, int m, int n, int k,
                                         const float *alpha, const float *A, int lda,
                                         long long int strideA, const float *B, int ldb,
                                         long long int strideB, const float *beta, float *C,
                                         int ldc, long long int strideC, int batchCount) {
    return gemm_ex("cublasSgemmStridedBatched", handle, transa, transb, m, n, k, alpha, A,
                   CUDA_R_32F, lda, strideA, B, CUDA_R_32F, ldb, strideB, beta, C, CUDA_R_32F, ldc,
                   strideC, batchCount, CUBLAS_COMPUTE_32F);
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                            cublasOperation_t transb, int m, int n, int k, const void *alpha,
                            const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C,
                            cudaDataType Ctype, int ldc, cublasComputeType_t computeType,
                            cublasGemmAlgo_t algo) {
    (void)algo;
    return gemm_ex("cublasGemmEx", handle, transa, transb, m, n, k, alpha, A, Atype, lda, 0, B,
                   Btype, ldb, 0, beta, C, Ctype, ldc, 0, 1, computeType);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa,
                                          cublasOperation_t transb, int m, int n, int k,
                                          const void *alpha, const void *A, cudaDataType Atype,
                                          int lda, long long int strideA, const void *B,
                                          cudaDataType Btype, int ldb, long long int strideB,
                                          const void *beta, void *C, cudaDataType Ctype, int ldc,
                                          long long int strideC, int batchCount,
                                          cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
    (void)algo;
    return gemm_ex("cublasGemmStridedBatchedEx", handle, transa, transb, m, n, k, alpha, A, Atype,
                   lda, strideA, B, Btype, ldb, strideB, beta, C, Ctype, ldc, strideC, batchCount,
                   computeType);
}

} // extern "C"
