/* cpu_skinny.c - AVX-512 products with one short side (at most 32 rows of
 * the batch), where OpenBLAS runs at a quarter of its rate: the linear
 * layers of a model trained at a small batch (the ANN twin's fc1 at batch
 * 16: 16 x 18,432 inputs against 1,152 x 18,432 weights).
 *
 *   NN  C[m x n] = A[m x k] B[k x n]      m <= 32 (input gradient)
 *   NT  C[m x n] = A[m x k] B[n x k]^T    m <= 32 (forward)
 *   TN  C[m x n] = A[k x m]^T B[k x n]    k <= 32 (weight gradient)
 *
 * Every element of C is one sum in a fixed order that depends on k only:
 * NN and TN add the k products in order in one float (a register or, between
 * k blocks, C itself: the same chain of roundings), NT keeps 16 lane sums
 * over each block of SK_KC products and adds the blocks in order. So the
 * result does not depend on the thread count or on how C is split. They
 * need alpha = 1 and beta = 0 (what the engine's linear layers pass). */
#include <stdint.h>

#include "cpu_simd.h"

#ifdef CSNN_HAVE_AVX512_KERNELS

#define SK_MAX_SHORT 32 /* the longest short side taken here */
#define SK_RB 8         /* rows of C per register block */
#define SK_CB 48        /* columns of C per register block (3 vectors) */
#define SK_NN_JB 96     /* NN: columns of B packed together (384 bytes a row) */
#define SK_NN_KB 64     /* NN: rows of B packed together (24 KiB on the stack) */
#define SK_KC 512       /* NT: products per lane-sum block */
#define SK_BLOCKS 12    /* parts of C run on the pool (a shape constant) */

#define SK_TARGET                                                                                  \
    __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,prefer-vector-width=512")))

static inline SK_TARGET __mmask16 cols_mask(int64_t nc)
{
    return nc >= 16 ? (__mmask16)0xFFFF : nc <= 0 ? 0 : (__mmask16)((1u << nc) - 1);
}

/* R rows x 48 columns of C: acc = (first ? 0 : C) + sum over p < k of
 * A(r, p) B[p, :], A(r, p) = a[r * sar + p * sap]; stored back into C. */
static inline __attribute__((always_inline)) SK_TARGET void
outer_block(const int R, int64_t k, const float *a, int64_t sar, int64_t sap, const float *b,
            int64_t ldb, float *c, int64_t ldc, const __mmask16 mk[3], int first)
{
    __m512 acc[SK_RB][3];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 3
        for (int v = 0; v < 3; v++)
            acc[r][v] = first ? _mm512_setzero_ps()
                              : _mm512_maskz_loadu_ps(mk[v], c + r * ldc + 16 * v);
    for (int64_t p = 0; p < k; p++) {
        const float *bp = b + p * ldb;
        const __m512 b0 = _mm512_maskz_loadu_ps(mk[0], bp),
                     b1 = _mm512_maskz_loadu_ps(mk[1], bp + 16),
                     b2 = _mm512_maskz_loadu_ps(mk[2], bp + 32);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const __m512 av = _mm512_set1_ps(a[r * sar + p * sap]);
            acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(av, b2, acc[r][2]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 3
        for (int v = 0; v < 3; v++) _mm512_mask_storeu_ps(c + r * ldc + 16 * v, mk[v], acc[r][v]);
}

/* outer_block over m rows (blocks of 8) and nc <= 48 columns. */
static SK_TARGET void outer_rows(int64_t m, int64_t k, const float *a, int64_t sar, int64_t sap,
                                 const float *b, int64_t ldb, float *c, int64_t ldc, int64_t nc,
                                 int first)
{
    const __mmask16 mk[3] = {cols_mask(nc), cols_mask(nc - 16), cols_mask(nc - 32)};
    for (int64_t i = 0; i < m; i += SK_RB) {
        const int R = m - i < SK_RB ? (int)(m - i) : SK_RB;
        const float *ai = a + i * sar;
        float *ci = c + i * ldc;
        switch (R) {
#define SK_CASE(n)                                                                                 \
    case n: outer_block(n, k, ai, sar, sap, b, ldb, ci, ldc, mk, first); break;
            SK_CASE(1)
            SK_CASE(2)
            SK_CASE(3)
            SK_CASE(4)
            SK_CASE(5)
            SK_CASE(6)
            SK_CASE(7)
            SK_CASE(8)
#undef SK_CASE
        }
    }
}

/* NN on columns [j0, j1) of C. B's rows are a whole row of C apart, which
 * for the long rows here puts a panel's lines into few cache sets: each
 * block of SK_NN_KB x SK_NN_JB of B is first copied into contiguous
 * 48-column panels. */
static SK_TARGET void nn_columns(int64_t m, int64_t k, const float *a, int64_t lda,
                                 const float *b, int64_t ldb, float *c, int64_t ldc, int64_t j0,
                                 int64_t j1)
{
    float buf[SK_NN_KB * SK_NN_JB] __attribute__((aligned(64)));
    for (int64_t jb = j0; jb < j1; jb += SK_NN_JB) {
        const int64_t nb = j1 - jb < SK_NN_JB ? j1 - jb : SK_NN_JB;
        for (int64_t p0 = 0; p0 < k; p0 += SK_NN_KB) {
            const int64_t kb = k - p0 < SK_NN_KB ? k - p0 : SK_NN_KB;
            for (int64_t p = 0; p < kb; p++) {
                const float *bp = b + (p0 + p) * ldb + jb;
                for (int64_t s = 0; s < nb; s += 16)
                    _mm512_store_ps(buf + (s / SK_CB) * kb * SK_CB + p * SK_CB + s % SK_CB,
                                    _mm512_maskz_loadu_ps(cols_mask(nb - s), bp + s));
            }
            for (int64_t s = 0; s < nb; s += SK_CB)
                outer_rows(m, kb, a + p0, lda, 1, buf + (s / SK_CB) * kb * SK_CB, SK_CB,
                           c + jb + s, ldc, nb - s < SK_CB ? nb - s : SK_CB, p0 == 0);
        }
    }
}

/* TN on rows [i0, i1) of C, all n columns. */
static SK_TARGET void tn_rows(int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                              int64_t ldb, float *c, int64_t ldc, int64_t i0, int64_t i1)
{
    for (int64_t i = i0; i < i1; i += SK_RB) {
        const int64_t rows = i1 - i < SK_RB ? i1 - i : SK_RB;
        for (int64_t j = 0; j < n; j += SK_CB)
            outer_rows(rows, k, a + i, 1, lda, b + j, ldb, c + i * ldc + j, ldc,
                       n - j < SK_CB ? n - j : SK_CB, 1);
    }
}

/* NT: R rows of A against S rows of B over products [p0, p1): 16 lane sums
 * each, reduced and added to C (or stored, for the first block). */
static inline __attribute__((always_inline)) SK_TARGET void
dot_block(const int R, const int S, int64_t p0, int64_t p1, const float *a, int64_t lda,
          const float *b, int64_t ldb, float *c, int64_t ldc, int first)
{
    __m512 acc[SK_RB][3];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 3
        for (int s = 0; s < S; s++) acc[r][s] = _mm512_setzero_ps();
    for (int64_t p = p0; p < p1; p += 16) {
        const __mmask16 mk = cols_mask(p1 - p);
        __m512 bv[3];
#pragma GCC unroll 3
        for (int s = 0; s < S; s++) bv[s] = _mm512_maskz_loadu_ps(mk, b + s * ldb + p);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const __m512 av = _mm512_maskz_loadu_ps(mk, a + r * lda + p);
#pragma GCC unroll 3
            for (int s = 0; s < S; s++) acc[r][s] = _mm512_fmadd_ps(av, bv[s], acc[r][s]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 3
        for (int s = 0; s < S; s++) {
            const float v = _mm512_reduce_add_ps(acc[r][s]);
            c[r * ldc + s] = first ? v : c[r * ldc + s] + v;
        }
}

static SK_TARGET void dot_any(int R, int S, int64_t p0, int64_t p1, const float *a, int64_t lda,
                              const float *b, int64_t ldb, float *c, int64_t ldc, int first)
{
    switch (R * 4 + S) {
#define SK_D(r, s)                                                                                 \
    case r * 4 + s: dot_block(r, s, p0, p1, a, lda, b, ldb, c, ldc, first); break;
#define SK_DR(r) SK_D(r, 1) SK_D(r, 2) SK_D(r, 3)
        SK_DR(1) SK_DR(2) SK_DR(3) SK_DR(4) SK_DR(5) SK_DR(6) SK_DR(7) SK_DR(8)
#undef SK_DR
#undef SK_D
    }
}

/* NT on columns [j0, j1) of C, blocks of SK_KC products outermost so that
 * the rows of A being used stay in cache while B streams. */
static SK_TARGET void nt_columns(int64_t m, int64_t k, const float *a, int64_t lda,
                                 const float *b, int64_t ldb, float *c, int64_t ldc, int64_t j0,
                                 int64_t j1)
{
    int64_t p0 = 0;
    do {
        const int64_t p1 = p0 + SK_KC < k ? p0 + SK_KC : k;
        for (int64_t j = j0; j < j1; j += 3)
            for (int64_t i = 0; i < m; i += SK_RB)
                dot_any(m - i < SK_RB ? (int)(m - i) : SK_RB, j1 - j < 3 ? (int)(j1 - j) : 3, p0,
                        p1, a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc, p0 == 0);
        p0 = p1;
    } while (p0 < k);
}

typedef struct {
    int kind; /* 0 NN, 1 NT, 2 TN */
    int64_t m, n, k, dim, align;
    const float *a, *b;
    float *c;
    int64_t lda, ldb, ldc;
} skinny_job;

static void skinny_block(void *arg, int64_t t, int worker)
{
    (void)worker;
    const skinny_job *j = arg;
    int64_t s0 = j->dim * t / SK_BLOCKS / j->align * j->align;
    int64_t s1 = t + 1 == SK_BLOCKS ? j->dim : j->dim * (t + 1) / SK_BLOCKS / j->align * j->align;
    if (s0 >= s1) return;
    if (j->kind == 0)
        nn_columns(j->m, j->k, j->a, j->lda, j->b, j->ldb, j->c, j->ldc, s0, s1);
    else if (j->kind == 1)
        nt_columns(j->m, j->k, j->a, j->lda, j->b, j->ldb, j->c, j->ldc, s0, s1);
    else
        tn_rows(j->n, j->k, j->a, j->lda, j->b, j->ldb, j->c, j->ldc, s0, s1);
}

#endif /* CSNN_HAVE_AVX512_KERNELS */

int csnn__cpu_skinny_mode;

int csnn__cpu_skinny_gemm(const cpu_device *d, int trans_a, int trans_b, int64_t m, int64_t n,
                          int64_t k, float alpha, const float *a, int64_t lda, const float *b,
                          int64_t ldb, float beta, float *c, int64_t ldc)
{
#ifdef CSNN_HAVE_AVX512_KERNELS
    if (csnn__cpu_skinny_mode == 1 || alpha != 1.0f || beta != 0.0f || k <= 0 ||
        !csnn__cpu_use_avx512())
        return 0;
    skinny_job j = {.m = m, .n = n, .k = k, .a = a, .b = b, .c = c, .lda = lda, .ldb = ldb,
                    .ldc = ldc};
    /* The shapes where these beat OpenBLAS on the development machine (M =
     * 16 by 1.2-1.5x, M = 64 not), or every shape they take when a test
     * forces them. */
    const int force = csnn__cpu_skinny_mode == 2;
    if (!trans_a && !trans_b && m <= SK_MAX_SHORT && (force || (n >= 256 && k >= 64))) {
        j.kind = 0;
        j.dim = n;
        j.align = SK_NN_JB;
    } else if (!trans_a && trans_b && m <= SK_MAX_SHORT && (force || (n >= 64 && k >= 256))) {
        j.kind = 1;
        j.dim = n;
        j.align = 3;
    } else if (trans_a && !trans_b && k <= SK_MAX_SHORT && (force || (m >= 64 && n >= 256))) {
        j.kind = 2;
        j.dim = m;
        j.align = SK_RB;
    } else {
        return 0;
    }
    csnn__pool_run(d ? d->pool : NULL, SK_BLOCKS, skinny_block, &j);
    return 1;
#else
    (void)d, (void)trans_a, (void)trans_b, (void)m, (void)n, (void)k, (void)alpha, (void)a;
    (void)lda, (void)b, (void)ldb, (void)beta, (void)c, (void)ldc;
    return 0;
#endif
}
