/*
 * blas.cu - dense math of the CUDA backend: gemm (cuBLAS), bias add and
 * gradient, axpby and reductions.
 *
 * Reductions are deterministic: per-thread partial sums in double over a
 * grid whose shape depends only on the sizes, a fixed-order tree in shared
 * memory, and a second pass over the block partials. No float atomics.
 */
#include <limits.h>

#include "cuda_common.cuh"

/* ------------------------------------------------------------------------ */
/* gemm                                                                      */
/* ------------------------------------------------------------------------ */

/* c[r * ldc + j] = beta * c (0 when beta == 0: c is not read), for the
 * k == 0 case that cuBLAS need not handle. */
__global__ void k_scale_matrix(float *c, int64_t m, int64_t n, int64_t ldc, float beta)
{
    CU_FOR(idx, m * n)
    {
        int64_t r = idx / n, j = idx % n;
        float *p = c + r * ldc + j;
        *p = beta == 0.0f ? 0.0f : beta * *p;
    }
}

/* Row-major C[M,N] = alpha op(A) op(B) + beta C (cblas semantics). cuBLAS is
 * column-major: a row-major matrix is its transpose in column-major, so
 * C^T = op(B)^T op(A)^T is computed with the operands swapped. */
csnn_status cu_gemm(void *dev, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                    float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                    float beta, float *c, int64_t ldc)
{
    const char *op = "gemm";
    CU_ENTER(dev, op);
    if (m < 0 || n < 0 || k < 0)
        return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda gemm: negative size m=%lld n=%lld k=%lld",
                        (long long)m, (long long)n, (long long)k);
    if (m == 0 || n == 0) return CSNN_OK;
    CU_NOT_NULL(op, c);
    if (ldc < n)
        return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda gemm: ldc %lld < n %lld", (long long)ldc,
                        (long long)n);
    if (k == 0) {
        k_scale_matrix<<<cu_blocks(m * n), CU_THREADS, 0, d->stream>>>(c, m, n, ldc, beta);
        CU_LAUNCH_CHECK(op, "k_scale_matrix");
        return CSNN_OK;
    }
    CU_NOT_NULL(op, a);
    CU_NOT_NULL(op, b);
    int64_t a_cols = trans_a ? m : k, b_cols = trans_b ? k : n;
    if (lda < a_cols || ldb < b_cols)
        return cu_error(CSNN_ERR_INVALID_ARGUMENT,
                        "cuda gemm: lda %lld (needs >= %lld) or ldb %lld (needs >= %lld) too small",
                        (long long)lda, (long long)a_cols, (long long)ldb, (long long)b_cols);
    cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    bool fits = m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && lda <= INT_MAX &&
                ldb <= INT_MAX && ldc <= INT_MAX;
    if (fits) {
        CUBLAS_TRY(op, cublasSgemm(d->cublas, op_b, op_a, (int)n, (int)m, (int)k, &alpha, b,
                                   (int)ldb, a, (int)lda, &beta, c, (int)ldc));
    } else {
        CUBLAS_TRY(op, cublasSgemm_64(d->cublas, op_b, op_a, n, m, k, &alpha, b, ldb, a, lda,
                                      &beta, c, ldc));
    }
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* bias_add / bias_grad                                                      */
/* ------------------------------------------------------------------------ */

/* Flat form: any inner size (used when inner is small, e.g. linear layers). */
__global__ void k_bias_add_flat(float *y, const float *b, int64_t total, int64_t channels,
                                int64_t inner)
{
    CU_FOR(idx, total)
    {
        int64_t c = (idx / inner) % channels;
        y[idx] = y[idx] + b[c];
    }
}

/* Row form: one block per (o, c) row of `inner` elements. */
__global__ void k_bias_add_rows(float *y, const float *b, int64_t rows, int64_t channels,
                                int64_t inner)
{
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        float bc = b[r % channels];
        float *yr = y + r * inner;
        for (int64_t i = threadIdx.x; i < inner; i += blockDim.x) yr[i] = yr[i] + bc;
    }
}

csnn_status cu_bias_add_impl(cuda_device *d, const char *op, float *y, const float *b,
                             int64_t outer, int64_t channels, int64_t inner)
{
    if (outer < 0 || channels < 0 || inner < 0)
        return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda %s: negative size", op);
    int64_t total = outer * channels * inner;
    if (total == 0) return CSNN_OK;
    CU_NOT_NULL(op, y);
    CU_NOT_NULL(op, b);
    if (inner >= 64) {
        int64_t rows = outer * channels;
        unsigned blocks = (unsigned)(rows < 65536 ? rows : 65536);
        k_bias_add_rows<<<blocks, CU_THREADS, 0, d->stream>>>(y, b, rows, channels, inner);
        CU_LAUNCH_CHECK(op, "k_bias_add_rows");
    } else {
        k_bias_add_flat<<<cu_blocks(total), CU_THREADS, 0, d->stream>>>(y, b, total, channels,
                                                                         inner);
        CU_LAUNCH_CHECK(op, "k_bias_add_flat");
    }
    return CSNN_OK;
}

csnn_status cu_bias_add(void *dev, float *y, const float *b, int64_t outer, int64_t channels,
                        int64_t inner)
{
    CU_ENTER(dev, "bias_add");
    return cu_bias_add_impl(d, "bias_add", y, b, outer, channels, inner);
}

/* One block per channel: db[c] = sum over (o, i) of dy[o, c, i], summed in
 * double in a fixed order. */
__global__ void k_bias_grad_blocks(const float *dy, float *db, int64_t outer, int64_t channels,
                                   int64_t inner)
{
    __shared__ double sh[CU_THREADS];
    int64_t count = outer * inner;
    for (int64_t c = blockIdx.x; c < channels; c += gridDim.x) {
        double acc = 0.0;
        for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
            int64_t o = j / inner, i = j - o * inner;
            acc += (double)dy[(o * channels + c) * inner + i];
        }
        double s = cu_block_sum(acc, sh);
        if (threadIdx.x == 0) db[c] = (float)s;
    }
}

/* inner == 1 and few rows: one thread per channel walks the rows
 * (coalesced across channels). */
__global__ void k_bias_grad_cols(const float *dy, float *db, int64_t outer, int64_t channels)
{
    CU_FOR(c, channels)
    {
        double acc = 0.0;
        for (int64_t o = 0; o < outer; o++) acc += (double)dy[o * channels + c];
        db[c] = (float)acc;
    }
}

csnn_status cu_bias_grad_impl(cuda_device *d, const char *op, const float *dy, float *db,
                              int64_t outer, int64_t channels, int64_t inner)
{
    if (outer < 0 || channels < 0 || inner < 0)
        return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda %s: negative size", op);
    if (channels == 0) return CSNN_OK;
    CU_NOT_NULL(op, db);
    if (outer == 0 || inner == 0) {
        return cu_fill_impl(d, op, db, 0.0f, channels);
    }
    CU_NOT_NULL(op, dy);
    if (inner == 1 && outer <= 4096) {
        k_bias_grad_cols<<<cu_blocks(channels), CU_THREADS, 0, d->stream>>>(dy, db, outer,
                                                                             channels);
        CU_LAUNCH_CHECK(op, "k_bias_grad_cols");
    } else {
        unsigned blocks = (unsigned)(channels < 65536 ? channels : 65536);
        k_bias_grad_blocks<<<blocks, CU_THREADS, 0, d->stream>>>(dy, db, outer, channels, inner);
        CU_LAUNCH_CHECK(op, "k_bias_grad_blocks");
    }
    return CSNN_OK;
}

csnn_status cu_bias_grad(void *dev, const float *dy, float *db, int64_t outer, int64_t channels,
                         int64_t inner)
{
    CU_ENTER(dev, "bias_grad");
    return cu_bias_grad_impl(d, "bias_grad", dy, db, outer, channels, inner);
}

/* ------------------------------------------------------------------------ */
/* axpby                                                                     */
/* ------------------------------------------------------------------------ */

__global__ void k_axpby(int64_t n, float a, const float *x, float b, float *y)
{
    CU_FOR(i, n) { y[i] = a * x[i] + b * y[i]; }
}

__global__ void k_ax(int64_t n, float a, const float *x, float *y)
{
    CU_FOR(i, n) { y[i] = a * x[i]; }
}

csnn_status cu_axpby(void *dev, int64_t n, float a, const float *x, float b, float *y)
{
    const char *op = "axpby";
    CU_ENTER(dev, op);
    if (n < 0) return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda axpby: negative n");
    if (n == 0) return CSNN_OK;
    CU_NOT_NULL(op, x);
    CU_NOT_NULL(op, y);
    if (b == 0.0f) {
        k_ax<<<cu_blocks(n), CU_THREADS, 0, d->stream>>>(n, a, x, y);
        CU_LAUNCH_CHECK(op, "k_ax");
    } else {
        k_axpby<<<cu_blocks(n), CU_THREADS, 0, d->stream>>>(n, a, x, b, y);
        CU_LAUNCH_CHECK(op, "k_axpby");
    }
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* reduce                                                                    */
/* ------------------------------------------------------------------------ */

static __device__ __forceinline__ double reduce_term(int kind, float v)
{
    switch (kind) {
    case CSNN_REDUCE_SUM: return (double)v;
    case CSNN_REDUCE_SUM_SQUARES: return (double)v * (double)v;
    case CSNN_REDUCE_COUNT_NONZERO: return v != 0.0f ? 1.0 : 0.0; /* NaN counts */
    default: return isfinite(v) ? 0.0 : 1.0;                      /* COUNT_NONFINITE */
    }
}

__global__ void k_reduce_partials(int kind, const float *x, int64_t n, double *partials)
{
    __shared__ double sh[CU_THREADS];
    double acc = 0.0;
    CU_FOR(i, n) { acc += reduce_term(kind, x[i]); }
    double s = cu_block_sum(acc, sh);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

__global__ void k_reduce_final(const double *partials, int count, double *result)
{
    __shared__ double sh[CU_THREADS];
    double acc = 0.0;
    for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partials[i];
    double s = cu_block_sum(acc, sh);
    if (threadIdx.x == 0) *result = s;
}

csnn_status cu_reduce(void *dev, int kind, const float *x, int64_t n, double *host_result)
{
    const char *op = "reduce";
    CU_ENTER(dev, op);
    CU_NOT_NULL(op, host_result);
    if (kind < CSNN_REDUCE_SUM || kind > CSNN_REDUCE_COUNT_NONFINITE)
        return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda reduce: unknown kind %d", kind);
    if (n < 0) return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda reduce: negative n");
    if (n == 0) {
        *host_result = 0.0;
        return CSNN_OK;
    }
    CU_NOT_NULL(op, x);
    int64_t want = (n + CU_THREADS * 4 - 1) / (CU_THREADS * 4);
    int blocks = (int)(want < CU_REDUCE_BLOCKS ? want : CU_REDUCE_BLOCKS);
    double *partials = d->d_scratch;
    double *result = d->d_scratch + CU_REDUCE_BLOCKS;
    k_reduce_partials<<<blocks, CU_THREADS, 0, d->stream>>>(kind, x, n, partials);
    CU_LAUNCH_CHECK(op, "k_reduce_partials");
    k_reduce_final<<<1, CU_THREADS, 0, d->stream>>>(partials, blocks, result);
    CU_LAUNCH_CHECK(op, "k_reduce_final");
    double *h = (double *)d->h_scratch;
    CU_TRY(op, cudaMemcpyAsync(h, result, sizeof(double), cudaMemcpyDeviceToHost, d->stream));
    CU_TRY(op, cudaStreamSynchronize(d->stream));
    *host_result = *h;
    return CSNN_OK;
}
