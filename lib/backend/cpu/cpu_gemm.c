/* cpu_gemm.c - dense math: gemm, bias add / grad, axpby, reductions.
 *
 * gemm splits big products into column (or row) blocks of C, one sgemm per
 * block on the pool. The blocking depends on the shape only, so every
 * element of C comes from the same sgemm call whatever the thread count.
 * Products with a side of at most 32 rows go to cpu_skinny.c instead. */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "cpu_internal.h"

/* ------------------------------------------------------------------------ */
/* gemm                                                                      */
/* ------------------------------------------------------------------------ */

#define GEMM_MIN_BLOCK_MACS (1 << 22) /* multiply-adds below which one call does it */
#define GEMM_MIN_BLOCK_DIM 64         /* smallest block edge */
/* Each block re-packs the operand that is not split, so blocks cost; 12
 * divides evenly among 2, 3, 4 or 6 threads. */
#define GEMM_MAX_BLOCKS 12

typedef struct {
    int trans_a, trans_b;
    int64_t m, n, k;
    float alpha, beta;
    const float *a, *b;
    float *c;
    int64_t lda, ldb, ldc;
    int split_n;     /* blocks of columns of C (else of rows) */
    int64_t dim, nb; /* the split dimension and the number of blocks */
} gemm_job;

static void sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                  const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                  int64_t ldc)
{
    csnn__cpu_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, a, (int)lda, b,
                (int)ldb, beta, c, (int)ldc);
}

/* Start of block t of nb over dim, a multiple of 16 except the end. */
static int64_t block_start(int64_t dim, int64_t nb, int64_t t)
{
    return t >= nb ? dim : (dim * t / nb) & ~(int64_t)15;
}

static void gemm_block(void *arg, int64_t t, int worker)
{
    (void)worker;
    const gemm_job *j = arg;
    int64_t i0 = block_start(j->dim, j->nb, t), len = block_start(j->dim, j->nb, t + 1) - i0;
    if (j->split_n)
        sgemm(j->trans_a, j->trans_b, j->m, len, j->k, j->alpha, j->a, j->lda,
              j->b + (j->trans_b ? i0 * j->ldb : i0), j->ldb, j->beta, j->c + i0, j->ldc);
    else
        sgemm(j->trans_a, j->trans_b, len, j->n, j->k, j->alpha,
              j->a + (j->trans_a ? i0 : i0 * j->lda), j->lda, j->b, j->ldb, j->beta,
              j->c + i0 * j->ldc, j->ldc);
}

csnn_status csnn__cpu_gemm(void *dev, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                           float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                           float beta, float *c, int64_t ldc)
{
    const cpu_device *d = dev;
    CPU_NONNEG("gemm", m);
    CPU_NONNEG("gemm", n);
    CPU_NONNEG("gemm", k);
    if (m > INT_MAX || n > INT_MAX || k > INT_MAX || lda > INT_MAX || ldb > INT_MAX ||
        ldc > INT_MAX)
        return csnn__error(CSNN_ERR_LIMIT, "cpu gemm: sizes beyond 2^31 (m %lld n %lld k %lld)",
                           (long long)m, (long long)n, (long long)k);
    /* Row-major leading dimensions: the stored row lengths. */
    int64_t need_a = trans_a ? m : k, need_b = trans_b ? k : n;
    if (lda < (need_a > 1 ? need_a : 1) || ldb < (need_b > 1 ? need_b : 1) ||
        ldc < (n > 1 ? n : 1))
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "cpu gemm: leading dimensions lda %lld ldb %lld ldc %lld too small for "
                           "m %lld n %lld k %lld (trans_a %d trans_b %d)",
                           (long long)lda, (long long)ldb, (long long)ldc, (long long)m,
                           (long long)n, (long long)k, trans_a, trans_b);
    if (m == 0 || n == 0) return CSNN_OK;
    CPU_NOT_NULL("gemm", c);
    if (k > 0) {
        CPU_NOT_NULL("gemm", a);
        CPU_NOT_NULL("gemm", b);
    }

    if (!(d && d->no_skinny) &&
        csnn__cpu_skinny_gemm(d, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc))
        return CSNN_OK;

    gemm_job j = {.trans_a = trans_a != 0, .trans_b = trans_b != 0, .m = m, .n = n, .k = k,
                  .alpha = alpha, .beta = beta, .a = a, .b = b, .c = c, .lda = lda, .ldb = ldb,
                  .ldc = ldc};
    /* Split the larger of m and n, so that the operand re-packed for every
     * block (the one not split) is the smaller one. */
    j.split_n = n >= m;
    j.dim = j.split_n ? n : m;
    double macs_blocks = (double)m * (double)n * (double)k / GEMM_MIN_BLOCK_MACS;
    j.nb = j.dim / GEMM_MIN_BLOCK_DIM;
    if ((double)j.nb > macs_blocks) j.nb = (int64_t)macs_blocks;
    if (j.nb > GEMM_MAX_BLOCKS) j.nb = GEMM_MAX_BLOCKS;
    if (j.nb <= 1) {
        sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return CSNN_OK;
    }
    csnn__pool_run(d ? d->pool : NULL, j.nb, gemm_block, &j);
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* bias                                                                      */
/* ------------------------------------------------------------------------ */

typedef struct {
    float *y;
    const float *b;
    int64_t channels, inner;
} bias_job;

static void bias_add_range(void *arg, int64_t o0, int64_t o1, int worker)
{
    (void)worker;
    const bias_job *j = arg;
    for (int64_t o = o0; o < o1; o++)
        for (int64_t c = 0; c < j->channels; c++) {
            float *row = j->y + (o * j->channels + c) * j->inner;
            const float bc = j->b[c];
            for (int64_t i = 0; i < j->inner; i++) row[i] += bc;
        }
}

csnn_status csnn__cpu_bias_add(void *dev, float *y, const float *b, int64_t outer,
                               int64_t channels, int64_t inner)
{
    CPU_NONNEG("bias_add", outer);
    CPU_NONNEG("bias_add", channels);
    CPU_NONNEG("bias_add", inner);
    if (outer == 0 || channels == 0 || inner == 0) return CSNN_OK;
    CPU_NOT_NULL("bias_add", y);
    CPU_NOT_NULL("bias_add", b);
    bias_job j = {y, b, channels, inner};
    csnn__cpu_parallel_for(dev, outer, 1 + (1 << 15) / (channels * inner), bias_add_range, &j);
    return CSNN_OK;
}

#define SUM_CHANNEL_BLOCK 16

typedef struct {
    const float *dy;
    float *db;
    int64_t outer, channels, inner;
} channel_sum_job;

#define SUM_LANES 16

/* Channels [c0, c1). With inner >= SUM_LANES each channel is summed in
 * SUM_LANES double lanes (lane k: the values at k, k + SUM_LANES, ... of
 * every row; the row's tail from lane 0; the lanes added pairwise at the
 * end), so that the adds are independent; else in blocks of
 * SUM_CHANNEL_BLOCK channels, each summed over o then i in order. Either
 * way the order depends on the shape only. */
CPU_INLINE void channel_sum_body(void *arg, int64_t c0, int64_t c1, int worker)
{
    (void)worker;
    const channel_sum_job *j = arg;
    if (j->inner >= SUM_LANES) {
        const int64_t inner = j->inner, main = inner - inner % SUM_LANES;
        for (int64_t c = c0; c < c1; c++) {
            double a[SUM_LANES] = {0};
            for (int64_t o = 0; o < j->outer; o++) {
                const float *row = j->dy + (o * j->channels + c) * inner;
                for (int64_t i = 0; i < main; i += SUM_LANES)
                    for (int k = 0; k < SUM_LANES; k++) a[k] += (double)row[i + k];
                for (int64_t i = main, k = 0; i < inner; i++, k++) a[k] += (double)row[i];
            }
            for (int w = SUM_LANES / 2; w >= 1; w /= 2)
                for (int k = 0; k < w; k++) a[k] += a[k + w];
            j->db[c] = (float)a[0];
        }
        return;
    }
    for (int64_t cb = c0; cb < c1; cb += SUM_CHANNEL_BLOCK) {
        int64_t nc = c1 - cb < SUM_CHANNEL_BLOCK ? c1 - cb : SUM_CHANNEL_BLOCK;
        double acc[SUM_CHANNEL_BLOCK] = {0};
        for (int64_t o = 0; o < j->outer; o++)
            for (int64_t c = 0; c < nc; c++) {
                const float *row = j->dy + (o * j->channels + cb + c) * j->inner;
                double s = acc[c];
                for (int64_t i = 0; i < j->inner; i++) s += row[i];
                acc[c] = s;
            }
        for (int64_t c = 0; c < nc; c++) j->db[cb + c] = (float)acc[c];
    }
}

CPU_RANGE_VARIANTS(channel_sum_range, channel_sum_body)

void csnn__cpu_channel_sum(const cpu_device *d, const float *dy, float *db, int64_t outer,
                           int64_t channels, int64_t inner)
{
    channel_sum_job j = {dy, db, outer, channels, inner};
    int64_t per_channel = outer * inner > 0 ? outer * inner : 1;
    csnn__cpu_parallel_for(d, channels, 1 + (1 << 15) / per_channel, channel_sum_range(), &j);
}

csnn_status csnn__cpu_bias_grad(void *dev, const float *dy, float *db, int64_t outer,
                                int64_t channels, int64_t inner)
{
    CPU_NONNEG("bias_grad", outer);
    CPU_NONNEG("bias_grad", channels);
    CPU_NONNEG("bias_grad", inner);
    if (channels == 0) return CSNN_OK;
    CPU_NOT_NULL("bias_grad", db);
    if (outer > 0 && inner > 0) CPU_NOT_NULL("bias_grad", dy);
    csnn__cpu_channel_sum(dev, dy, db, outer, channels, inner);
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* axpby                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct {
    float a, b;
    const float *x;
    float *y;
} axpby_job;

static void axpby_range(void *arg, int64_t i0, int64_t i1, int worker)
{
    (void)worker;
    const axpby_job *j = arg;
    const float a = j->a, b = j->b;
    const float *x = j->x;
    float *y = j->y;
    if (b == 0.0f)
        for (int64_t i = i0; i < i1; i++) y[i] = a * x[i];
    else
        for (int64_t i = i0; i < i1; i++) y[i] = a * x[i] + b * y[i];
}

csnn_status csnn__cpu_axpby(void *dev, int64_t n, float a, const float *x, float b, float *y)
{
    CPU_NONNEG("axpby", n);
    if (n == 0) return CSNN_OK;
    CPU_NOT_NULL("axpby", x);
    CPU_NOT_NULL("axpby", y);
    axpby_job j = {a, b, x, y};
    csnn__cpu_parallel_for(dev, n, 1 << 15, axpby_range, &j);
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* reduce                                                                    */
/* ------------------------------------------------------------------------ */

#define REDUCE_MAX_CHUNKS 256
#define REDUCE_MIN_CHUNK (1 << 16)

typedef struct {
    int kind;
    cpu_range_fn fn;
    const float *x;
    int64_t n, chunk;
    double partial[REDUCE_MAX_CHUNKS];
} reduce_job;

#define COUNT_BLOCK ((int64_t)1 << 30)

/* 1 when the float with these bits is an infinity or a NaN. */
CPU_INLINE int64_t nonfinite_bits(uint32_t u)
{
    return (u & 0x7f800000u) == 0x7f800000u;
}

/* Chunks [t0, t1): every chunk is one sequence of adds in index order (the
 * counts are integers, which the variants vectorise). */
CPU_INLINE void reduce_body(void *arg, int64_t t0, int64_t t1, int worker)
{
    (void)worker;
    reduce_job *j = arg;
    for (int64_t t = t0; t < t1; t++) {
        int64_t i0 = t * j->chunk, i1 = i0 + j->chunk < j->n ? i0 + j->chunk : j->n;
        const float *x = j->x;
        double s = 0.0;
        switch (j->kind) {
        case CSNN_REDUCE_SUM:
            for (int64_t i = i0; i < i1; i++) s += x[i];
            break;
        case CSNN_REDUCE_SUM_SQUARES:
            for (int64_t i = i0; i < i1; i++) s += (double)x[i] * x[i];
            break;
        /* the counts go through 32-bit counters (16 to a vector, where
         * 64-bit ones would need widening) over blocks of 2^30 values */
        case CSNN_REDUCE_COUNT_NONZERO: {
            int64_t c = 0;
            for (int64_t b0 = i0; b0 < i1; b0 += COUNT_BLOCK) {
                const int64_t b1 = i1 - b0 < COUNT_BLOCK ? i1 : b0 + COUNT_BLOCK;
                uint32_t cb = 0;
                for (int64_t i = b0; i < b1; i++) cb += x[i] != 0.0f;
                c += cb;
            }
            s = (double)c;
            break;
        }
        default: { /* CSNN_REDUCE_COUNT_NONFINITE */
            int64_t c = 0;
            for (int64_t b0 = i0; b0 < i1; b0 += COUNT_BLOCK) {
                const int64_t b1 = i1 - b0 < COUNT_BLOCK ? i1 : b0 + COUNT_BLOCK;
                uint32_t cb = 0;
                for (int64_t i = b0; i < b1; i++) {
                    uint32_t u;
                    memcpy(&u, x + i, sizeof u);
                    cb += (uint32_t)nonfinite_bits(u);
                }
                c += cb;
            }
            s = (double)c;
            break;
        }
        }
        j->partial[t] = s;
    }
}

CPU_RANGE_VARIANTS(reduce_range, reduce_body)

static void reduce_chunk(void *arg, int64_t t, int worker)
{
    const reduce_job *j = arg;
    j->fn(arg, t, t + 1, worker);
}

csnn_status csnn__cpu_reduce(void *dev, int kind, const float *x, int64_t n,
                             double *host_result)
{
    const cpu_device *d = dev;
    CPU_NONNEG("reduce", n);
    CPU_NOT_NULL("reduce", host_result);
    if (kind < CSNN_REDUCE_SUM || kind > CSNN_REDUCE_COUNT_NONFINITE)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "cpu reduce: unknown kind %d", kind);
    *host_result = 0.0;
    if (n == 0) return CSNN_OK;
    CPU_NOT_NULL("reduce", x);
    /* The chunks depend on n only, and the partial sums are added in order. */
    reduce_job j;
    j.kind = kind;
    j.fn = reduce_range();
    j.x = x;
    j.n = n;
    j.chunk = (n + REDUCE_MAX_CHUNKS - 1) / REDUCE_MAX_CHUNKS;
    if (j.chunk < REDUCE_MIN_CHUNK) j.chunk = REDUCE_MIN_CHUNK;
    int64_t chunks = (n + j.chunk - 1) / j.chunk;
    csnn__pool_run(d ? d->pool : NULL, chunks, reduce_chunk, &j);
    double s = 0.0;
    for (int64_t t = 0; t < chunks; t++) s += j.partial[t];
    *host_result = s;
    return CSNN_OK;
}
