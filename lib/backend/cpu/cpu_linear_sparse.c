/* cpu_linear_sparse.c - fully connected layers with a mostly-zero input
 * (dropped-out, pooled spikes): linear_forward_sparse, linear_weight_grad_sparse.
 *
 * w is [out, in] row-major: a column W[:, f] (what an active input f adds
 * to the outputs) is strided. A transposed copy of all of w would cost as
 * much memory traffic as the dense product (85 MB for the reference fc1),
 * so w is transposed tile by tile into a per-worker buffer that stays in
 * the L1/L2 cache: OB outputs x FB inputs, 16 x 16 blocks in registers.
 *
 * forward  y[r, o] = b[o] + sum over non-zero x[r, f] of x[r, f] W[o, f].
 *          First each row's non-zero inputs are listed (f relative to its
 *          block of FB inputs, and the value), with a start per block; then
 *          one task per block of OB outputs: for each block of inputs, the
 *          tile W[o-block, f-block] is transposed, and every row r adds
 *          x[r, f] W^T[f, o-block] for its listed f (OB accumulators in
 *          registers), into a [rows, OB] accumulator; the bias is added at
 *          the end (as bias_add after gemm does).
 * dW       dW[o, f] = sum over rows r with x[r, f] != 0 of dy[r, o] x[r, f].
 *          One task per block of FB inputs: it lists, per input column f,
 *          the rows with a non-zero x[r, f]; then per block of OB outputs it
 *          sums dy[r, o-block] x[r, f] for each column f (zero when the column
 *          is all zero) into a tile [FB, OB] and writes the tile transposed
 *          into dw. db is bias_grad's channel sum, bit for bit.
 * Every output element is summed by one task in a fixed order (ascending
 * f, ascending r): the results do not depend on the thread count.
 *
 * The entries go the dense way (gemm, bias_add, bias_grad) when the input is
 * too dense or the problem too small for the sparse kernels to win (the
 * thresholds below, measured with tests/backend/bench_sparse.c).
 *
 * On CPUs with AMX-BF16, dW of a problem past LIN_DW_MIN_MACS with in and
 * out multiples of 32 and inputs that are finite bfloat16 numbers runs on
 * AMX tiles instead, whatever the density (linear_dw_amx below, cpu_amx.c:
 * exact products, float sums in an order fixed by the shape). */
#include <limits.h>
#include <string.h>

#include "cpu_amx.h"
#include "cpu_simd.h"

#define ALIGN16(n) (((n) + 15) & ~(size_t)15) /* floats in 64-byte multiples */
#define LIN_OB 64     /* forward: outputs per tile (4 AVX-512 accumulators) */
#define LIN_DW_OB 128 /* dW: outputs per tile (8 AVX-512 accumulators) */
#define LIN_FB 128 /* inputs per tile */
/* The forward transposes W's tile of LIN_OB rows x LIN_FB inputs: 64 rows
 * read side by side, 73 KB apart for the reference fc1, more streams than
 * the hardware prefetcher follows; the rows of the tile LIN_PF ahead are
 * prefetched (bench_sparse 1 8 linear, fc1 at densities 0.1 / 0.2 / 0.3:
 * 20.4 / 25.1 / 30.4 -> 15.4-16.5 / 19.8-20.5 / 25.3-25.6 ms; two tiles
 * ahead measured the same). */
#define LIN_PF 1

/* Densities (non-zero inputs / all inputs) above which the dense path runs,
 * and the size (rows * in * out multiply-adds) below which it always runs.
 * Measured with tests/backend/bench_sparse.c on the reference fc1
 * ([64, 18432] -> 1152, input 0/2), one thread, process CPU time, min of 7
 * runs, on a 2-core Xeon (Emerald Rapids, AVX-512) at load average ~2-4:
 * forward dense ~29.5 ms, sparse 9.7 / 16 / 20 / 25 / 35 ms at densities
 * 0.02 / 0.1 / 0.2 / 0.3 / 0.6 (crossover ~0.4); dW dense ~30 ms, sparse
 * 13 / 17 / 22 / 27 / 38 ms at 0.02 / 0.1 / 0.2 / 0.3 / 0.5 (crossover
 * ~0.33). The floor of both is the memory traffic of w or dw (85 MB). The
 * portable kernels are 3-5x slower. */
#define LIN_FWD_MAX_DENSITY 0.4
#define LIN_DW_MAX_DENSITY 0.3
#define LIN_GENERIC_MAX_DENSITY 0.05
#define LIN_MIN_MACS ((int64_t)1 << 22)
/* dW has a larger fixed cost (lists per block of inputs, the tile
 * transposes): the reference fc2 ([64, 1152] -> 128, 9.4 M multiply-adds)
 * measured 0.4 ms sparse against 0.25 ms dense at any density. */
#define LIN_DW_MIN_MACS ((int64_t)1 << 26)

static csnn_status lin_check(const char *op, int64_t rows, int64_t in, int64_t out)
{
    CPU_NONNEG(op, rows);
    CPU_NONNEG(op, in);
    CPU_NONNEG(op, out);
    if (rows > INT_MAX || in > INT_MAX || out > INT_MAX)
        return csnn__error(CSNN_ERR_LIMIT, "cpu %s: sizes beyond 2^31 (rows %lld in %lld out %lld)",
                           op, (long long)rows, (long long)in, (long long)out);
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Forward                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct {
    int64_t rows, in, out, nfb;
    int avx512;
    const float *x, *w, *b;
    const float *packed; /* linear_pack's layout, or NULL: tiles transposed here */
    float *y;
    /* row r's non-zero inputs: idx / val [r * in + k] (f - f0 of its block
     * and x[r, f]), block fb's from start[r * (nfb + 1) + fb] on */
    int32_t *idx, *start;
    float *val;
    int64_t *row_nnz;
    float *work; /* per worker: work_floats */
    size_t work_floats;
} lin_fwd_job;

#ifdef CSNN_HAVE_AVX512_KERNELS
/* list_rows with compress-stores: the same lists, 16 inputs at a time. */
static AVX512_TARGET void list_rows_avx512(const lin_fwd_job *j, int64_t r0, int64_t r1)
{
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = j->x + r * j->in;
        int32_t *idx = j->idx + r * j->in;
        float *val = j->val + r * j->in;
        int32_t *start = j->start + r * (j->nfb + 1);
        int32_t k = 0;
        for (int64_t fb = 0; fb < j->nfb; fb++) {
            const int64_t f0 = fb * LIN_FB, f1 = f0 + LIN_FB < j->in ? f0 + LIN_FB : j->in;
            start[fb] = k;
            for (int64_t f = f0; f < f1; f += 16) {
                const int n = f1 - f < 16 ? (int)(f1 - f) : 16;
                const __mmask16 in = (__mmask16)((1u << n) - 1u);
                const __m512 v = _mm512_maskz_loadu_ps(in, xr + f);
                /* not-equal, unordered: a NaN is listed, as v != 0 */
                const __mmask16 nz = _mm512_mask_cmp_ps_mask(in, v, zero, _CMP_NEQ_UQ);
                const __m512i fi = _mm512_add_epi32(lane, _mm512_set1_epi32((int)(f - f0)));
                _mm512_mask_compressstoreu_ps(val + k, nz, v);
                _mm512_mask_compressstoreu_epi32(idx + k, nz, fi);
                k += __builtin_popcount((unsigned)nz);
            }
        }
        start[j->nfb] = k;
        j->row_nnz[r] = k;
    }
}
#endif

static void list_rows(void *arg, int64_t r0, int64_t r1, int worker)
{
    (void)worker;
    const lin_fwd_job *j = arg;
#ifdef CSNN_HAVE_AVX512_KERNELS
    if (j->avx512) {
        list_rows_avx512(j, r0, r1);
        return;
    }
#endif
    for (int64_t r = r0; r < r1; r++) {
        const float *restrict xr = j->x + r * j->in;
        int32_t *restrict idx = j->idx + r * j->in;
        float *restrict val = j->val + r * j->in;
        int32_t *restrict start = j->start + r * (j->nfb + 1);
        int32_t k = 0;
        for (int64_t fb = 0; fb < j->nfb; fb++) {
            const int64_t f0 = fb * LIN_FB, f1 = f0 + LIN_FB < j->in ? f0 + LIN_FB : j->in;
            start[fb] = k;
            for (int64_t f = f0; f < f1; f++) {
                const float v = xr[f];
                idx[k] = (int32_t)(f - f0);
                val[k] = v;
                k += v != 0.0f;
            }
        }
        start[j->nfb] = k;
        j->row_nnz[r] = k;
    }
}

/* acc[r, 0:n] += sum over row r's listed inputs of val * wt[f, 0:n] for the
 * rows, one block of inputs; wt rows are LIN_OB apart. */
static void fwd_tile_generic(const lin_fwd_job *j, int64_t fb, const float *wt, float *acc, int n)
{
    for (int64_t r = 0; r < j->rows; r++) {
        const int32_t *start = j->start + r * (j->nfb + 1);
        const int32_t *idx = j->idx + r * j->in;
        const float *val = j->val + r * j->in;
        float *restrict a = acc + r * LIN_OB;
        for (int32_t k = start[fb]; k < start[fb + 1]; k++) {
            const float v = val[k];
            const float *restrict wr = wt + (int64_t)idx[k] * LIN_OB;
            for (int o = 0; o < n; o++) a[o] += v * wr[o];
        }
    }
}

#ifdef CSNN_HAVE_AVX512_KERNELS
static AVX512_TARGET void fwd_tile_avx512(const lin_fwd_job *j, int64_t fb, const float *wt,
                                          float *acc)
{
    for (int64_t r = 0; r < j->rows; r++) {
        const int32_t *start = j->start + r * (j->nfb + 1);
        const int32_t *idx = j->idx + r * j->in;
        const float *val = j->val + r * j->in;
        float *a = acc + r * LIN_OB;
        const int32_t k1 = start[fb + 1];
        int32_t k = start[fb];
        if (k == k1) continue;
        __m512 a0 = _mm512_loadu_ps(a), a1 = _mm512_loadu_ps(a + 16);
        __m512 a2 = _mm512_loadu_ps(a + 32), a3 = _mm512_loadu_ps(a + 48);
        for (; k < k1; k++) {
            const __m512 v = _mm512_set1_ps(val[k]);
            const float *wr = wt + (int64_t)idx[k] * LIN_OB;
            a0 = _mm512_fmadd_ps(v, _mm512_loadu_ps(wr), a0);
            a1 = _mm512_fmadd_ps(v, _mm512_loadu_ps(wr + 16), a1);
            a2 = _mm512_fmadd_ps(v, _mm512_loadu_ps(wr + 32), a2);
            a3 = _mm512_fmadd_ps(v, _mm512_loadu_ps(wr + 48), a3);
        }
        _mm512_storeu_ps(a, a0);
        _mm512_storeu_ps(a + 16, a1);
        _mm512_storeu_ps(a + 32, a2);
        _mm512_storeu_ps(a + 48, a3);
    }
}
#endif

/* Task: outputs [o0, o0 + LIN_OB). */
static void fwd_oblock(void *arg, int64_t ob, int worker)
{
    const lin_fwd_job *j = arg;
    const int64_t o0 = ob * LIN_OB;
    const int n = (int)(j->out - o0 < LIN_OB ? j->out - o0 : LIN_OB);
    float *wt = j->work + (size_t)worker * j->work_floats; /* [LIN_FB][LIN_OB] */
    float *acc = wt + LIN_FB * LIN_OB;                      /* [rows][LIN_OB] */
    memset(acc, 0, sizeof(float) * (size_t)j->rows * LIN_OB);
    if (n < LIN_OB && !j->packed) memset(wt, 0, sizeof(float) * LIN_FB * LIN_OB); /* padding */
    for (int64_t fb = 0; fb < j->nfb; fb++) {
        const int64_t f0 = fb * LIN_FB;
        const int nf = (int)(j->in - f0 < LIN_FB ? j->in - f0 : LIN_FB);
        if (j->packed) {
            wt = (float *)j->packed + (ob * j->in + f0) * LIN_OB;
        } else {
            if (fb + LIN_PF < j->nfb) {
                const float *nx = j->w + o0 * j->in + f0 + LIN_PF * LIN_FB;
                const int64_t left = j->in - (f0 + LIN_PF * LIN_FB);
                const int64_t lines = ((left < LIN_FB ? left : LIN_FB) + 15) / 16;
                for (int o = 0; o < n; o++)
                    for (int64_t l = 0; l < lines; l++)
                        __builtin_prefetch(nx + (int64_t)o * j->in + 16 * l, 0, 3);
            }
            simd_transpose(j->avx512, j->w + o0 * j->in + f0, j->in, n, nf, wt, LIN_OB, NULL);
        }
#ifdef CSNN_HAVE_AVX512_KERNELS
        if (j->avx512) {
            fwd_tile_avx512(j, fb, wt, acc);
            continue;
        }
#endif
        fwd_tile_generic(j, fb, wt, acc, n);
    }
    for (int64_t r = 0; r < j->rows; r++) {
        float *restrict yr = j->y + r * j->out + o0;
        const float *restrict a = acc + r * LIN_OB;
        if (j->b)
            for (int o = 0; o < n; o++) yr[o] = a[o] + j->b[o0 + o];
        else
            for (int o = 0; o < n; o++) yr[o] = a[o];
    }
}

static int lin_small(int64_t rows, int64_t in, int64_t out, int64_t min_macs)
{
    if (csnn__cpu_sparse_mode) return csnn__cpu_sparse_mode == 2;
    return out < 16 || (double)rows * (double)in * (double)out < (double)min_macs;
}

/* ------------------------------------------------------------------------ */
/* Packed weights (inference)                                                */
/* ------------------------------------------------------------------------ */

/* The forward's tiles, transposed once: packed[ob][f][0:LIN_OB] =
 * W[ob * LIN_OB + o][f] (0 past `out`), so that a model whose weights do not
 * change reads only the rows W^T[f] of its active inputs instead of all of w
 * at every call (85 MB for the reference fc1: the whole cost of a one-image
 * inference). */
int64_t csnn__cpu_linear_packed_floats(void *dev, int64_t in, int64_t out)
{
    (void)dev;
    if (in <= 0 || out <= 0 || in > INT_MAX || out > INT_MAX) return 0;
    return (out + LIN_OB - 1) / LIN_OB * LIN_OB * in;
}

typedef struct {
    int64_t in, out;
    int avx512;
    const float *w;
    float *packed;
} lin_pack_job;

static void pack_oblock(void *arg, int64_t ob, int worker)
{
    (void)worker;
    const lin_pack_job *j = arg;
    const int64_t o0 = ob * LIN_OB;
    const int n = (int)(j->out - o0 < LIN_OB ? j->out - o0 : LIN_OB);
    float *dst = j->packed + ob * j->in * LIN_OB;
    if (n < LIN_OB) memset(dst, 0, sizeof(float) * (size_t)j->in * LIN_OB);
    for (int64_t f0 = 0; f0 < j->in; f0 += LIN_FB) {
        const int nf = (int)(j->in - f0 < LIN_FB ? j->in - f0 : LIN_FB);
        simd_transpose(j->avx512, j->w + o0 * j->in + f0, j->in, n, nf, dst + f0 * LIN_OB, LIN_OB,
                       NULL);
    }
}

csnn_status csnn__cpu_linear_pack(void *dev, int64_t in, int64_t out, const float *w,
                                  float *packed)
{
    static const char op[] = "linear_pack";
    cpu_device *dv = dev;
    CSNN_TRY(lin_check(op, 1, in, out));
    if (in == 0 || out == 0) return CSNN_OK;
    CPU_NOT_NULL(op, w);
    CPU_NOT_NULL(op, packed);
    lin_pack_job j = {.in = in, .out = out, .avx512 = csnn__cpu_use_avx512(), .w = w,
                      .packed = packed};
    csnn__pool_run(dv ? dv->pool : NULL, (out + LIN_OB - 1) / LIN_OB, pack_oblock, &j);
    return CSNN_OK;
}

static csnn_status linear_forward(void *dev, const char *op, int64_t rows, int64_t in,
                                  int64_t out, const float *x, const float *w,
                                  const float *packed, const float *b, float *y);

csnn_status csnn__cpu_linear_forward_sparse(void *dev, int64_t rows, int64_t in, int64_t out,
                                            const float *x, const float *w, const float *b,
                                            float *y)
{
    return linear_forward(dev, "linear_forward_sparse", rows, in, out, x, w, NULL, b, y);
}

csnn_status csnn__cpu_linear_forward_packed(void *dev, int64_t rows, int64_t in, int64_t out,
                                            const float *x, const float *w,
                                            const float *packed, const float *b, float *y)
{
    if (in > 0 && out > 0 && rows > 0 && !packed)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "cpu linear_forward_packed: packed is NULL");
    return linear_forward(dev, "linear_forward_packed", rows, in, out, x, w, packed, b, y);
}

static csnn_status linear_forward(void *dev, const char *op, int64_t rows, int64_t in,
                                  int64_t out, const float *x, const float *w,
                                  const float *packed, const float *b, float *y)
{
    cpu_device *dv = dev;
    CSNN_TRY(lin_check(op, rows, in, out));
    if (rows == 0 || out == 0) return CSNN_OK;
    CPU_NOT_NULL(op, y);
    if (in > 0) {
        CPU_NOT_NULL(op, x);
        CPU_NOT_NULL(op, w);
    }
    const int avx512 = csnn__cpu_use_avx512();
    if (in == 0 || lin_small(rows, in, out, LIN_MIN_MACS)) goto dense;
    {
        lin_fwd_job j = {.rows = rows, .in = in, .out = out, .avx512 = avx512, .x = x, .w = w,
                         .b = b, .packed = packed, .y = y};
        j.nfb = (in + LIN_FB - 1) / LIN_FB;
        j.work_floats = ALIGN16((size_t)LIN_FB * LIN_OB + (size_t)rows * LIN_OB);
        const size_t list = ALIGN16((size_t)rows * (size_t)in);
        const size_t starts = ALIGN16((size_t)rows * (size_t)(j.nfb + 1));
        const size_t nnz = ALIGN16((size_t)rows * 2);
        const size_t floats = 2 * list + starts + nnz + j.work_floats * csnn__cpu_workers(dv);
        float *s = csnn__cpu_scratch(dv, floats * sizeof(float), op);
        if (!s) return CSNN_ERR_OUT_OF_MEMORY;
        j.idx = (int32_t *)s;
        j.val = s + list;
        j.start = (int32_t *)(s + 2 * list);
        j.row_nnz = (int64_t *)(s + 2 * list + starts);
        j.work = s + 2 * list + starts + nnz;
        csnn__cpu_parallel_for(dv, rows, 1 + (1 << 15) / in, list_rows, &j);
        int64_t total = 0;
        for (int64_t r = 0; r < rows; r++) total += j.row_nnz[r];
        const double max = avx512 ? LIN_FWD_MAX_DENSITY : LIN_GENERIC_MAX_DENSITY;
        if (!csnn__cpu_sparse_mode && (double)total > max * (double)rows * (double)in)
            goto dense;
        csnn__pool_run(dv ? dv->pool : NULL, (out + LIN_OB - 1) / LIN_OB, fwd_oblock, &j);
        return CSNN_OK;
    }
dense:
    if (in == 0) {
        for (int64_t r = 0; r < rows; r++)
            for (int64_t o = 0; o < out; o++) y[r * out + o] = b ? b[o] : 0.0f;
        return CSNN_OK;
    }
    CSNN_TRY(csnn__cpu_gemm(dev, 0, 1, rows, out, in, 1.0f, x, in, w, in, 0.0f, y, out));
    if (b) CSNN_TRY(csnn__cpu_bias_add(dev, y, b, rows, out, 1));
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Weight gradient                                                           */
/* ------------------------------------------------------------------------ */

typedef struct {
    int64_t rows, in, out;
    int avx512;
    const float *x, *dy;
    float *dw;
    float *work; /* per worker: work_floats */
    size_t work_floats;
} lin_dw_job;

/* Column lists of one block of inputs: for input f0 + c, its ccount[c]
 * rows with a non-zero x, in crow / cval [c * rows + k] (ascending rows).
 * Branch-free: a zero is written too, then overwritten by the next row. */
static void list_columns(const lin_dw_job *j, int64_t f0, int nf, int32_t *restrict ccount,
                         int32_t *restrict crow, float *restrict cval)
{
    const int64_t rows = j->rows;
    for (int c = 0; c < nf; c++) ccount[c] = 0;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = j->x + r * j->in + f0;
        for (int c = 0; c < nf; c++) {
            const float v = xr[c];
            const int64_t at = c * rows + ccount[c];
            crow[at] = (int32_t)r;
            cval[at] = v;
            ccount[c] += v != 0.0f;
        }
    }
}

/* tile[c, 0:n] = sum over column c's rows of val * dy[r, o0:o0 + n]. */
static void dw_tile_generic(const lin_dw_job *j, int64_t o0, int n, int nf, const int32_t *ccount,
                            const int32_t *crow, const float *cval, float *tile)
{
    for (int c = 0; c < nf; c++) {
        float *restrict t = tile + (int64_t)c * LIN_DW_OB;
        for (int o = 0; o < n; o++) t[o] = 0.0f;
        for (int64_t k = c * j->rows; k < c * j->rows + ccount[c]; k++) {
            const float v = cval[k];
            const float *restrict d = j->dy + (int64_t)crow[k] * j->out + o0;
            for (int o = 0; o < n; o++) t[o] += v * d[o];
        }
    }
}

#ifdef CSNN_HAVE_AVX512_KERNELS
static AVX512_TARGET void dw_tile_avx512(const lin_dw_job *j, int64_t o0, int n, int nf,
                                         const int32_t *ccount, const int32_t *crow,
                                         const float *cval, float *tile)
{
    /* the last vectors of a partial block of outputs are masked */
    __mmask16 mk[LIN_DW_OB / 16];
    for (int v = 0; v < LIN_DW_OB / 16; v++) {
        const int left = n - 16 * v;
        mk[v] = left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
    }
    for (int c = 0; c < nf; c++) {
        __m512 a[LIN_DW_OB / 16];
#pragma GCC unroll 8
        for (int v = 0; v < LIN_DW_OB / 16; v++) a[v] = _mm512_setzero_ps();
        for (int64_t k = c * j->rows; k < c * j->rows + ccount[c]; k++) {
            const __m512 x = _mm512_set1_ps(cval[k]);
            const float *d = j->dy + (int64_t)crow[k] * j->out + o0;
#pragma GCC unroll 8
            for (int v = 0; v < LIN_DW_OB / 16; v++)
                a[v] = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(mk[v], d + 16 * v), a[v]);
        }
        float *t = tile + (int64_t)c * LIN_DW_OB;
#pragma GCC unroll 8
        for (int v = 0; v < LIN_DW_OB / 16; v++) _mm512_storeu_ps(t + 16 * v, a[v]);
    }
}
#endif

/* Task: inputs [f0, f0 + LIN_FB), every output. */
static void dw_fblock(void *arg, int64_t fb, int worker)
{
    const lin_dw_job *j = arg;
    const int64_t f0 = fb * LIN_FB;
    const int nf = (int)(j->in - f0 < LIN_FB ? j->in - f0 : LIN_FB);
    float *tile = j->work + (size_t)worker * j->work_floats; /* [LIN_FB][LIN_DW_OB] */
    int32_t *ccount = (int32_t *)(tile + LIN_FB * LIN_DW_OB);   /* LIN_FB */
    int32_t *crow = ccount + LIN_FB;                         /* LIN_FB * rows */
    float *cval = (float *)(crow + (size_t)j->rows * LIN_FB);
    list_columns(j, f0, nf, ccount, crow, cval);
    for (int64_t o0 = 0; o0 < j->out; o0 += LIN_DW_OB) {
        const int n = (int)(j->out - o0 < LIN_DW_OB ? j->out - o0 : LIN_DW_OB);
#ifdef CSNN_HAVE_AVX512_KERNELS
        if (j->avx512)
            dw_tile_avx512(j, o0, n, nf, ccount, crow, cval, tile);
        else
#endif
            dw_tile_generic(j, o0, n, nf, ccount, crow, cval, tile);
        /* dw[o0 + o, f0 + c] = tile[c, o] */
        simd_transpose_stream(j->avx512, tile, LIN_DW_OB, nf, n, j->dw + o0 * j->in + f0, j->in);
    }
}

/* ---- on AMX tiles ---- */

#define LIN_AMX_FB 256 /* inputs per task (a multiple of 32) */

typedef struct {
    int64_t rows, in, out;
    const float *x;
    const uint16_t *dyp;
    uint32_t *xp;
    float *dw;
    int product;       /* 0: pack x's columns; 1: their dw columns */
    unsigned char *ok; /* per task: its inputs are finite bfloat16 numbers */
} lin_amx_job;

/* Tasks [t0, t1): LIN_AMX_FB inputs each, packed or multiplied. */
static void amx_range(void *arg, int64_t t0, int64_t t1, int worker)
{
    (void)worker;
    const lin_amx_job *j = arg;
    for (int64_t t = t0; t < t1; t++) {
        const int64_t f0 = t * LIN_AMX_FB, f1 = f0 + LIN_AMX_FB < j->in ? f0 + LIN_AMX_FB : j->in;
        if (j->product)
            csnn__cpu_amx_linear_dw(j->rows, j->in, j->out, j->dyp, j->xp, f0, f1, j->dw);
        else
            j->ok[t] =
                (unsigned char)csnn__cpu_amx_linear_pack_x(j->rows, j->in, j->x, f0, f1, j->xp);
    }
}

/* dw on AMX tiles (cpu_amx.c; dense over the rows, exact products, float
 * sums in an order fixed by the shape): 1 when done, 0 when not taken (no
 * AMX, a shape or an input it does not take, a test forcing the kernels,
 * CSNN_DISABLE=amx), -1 when scratch memory cannot be had. */
static int linear_dw_amx(cpu_device *dv, const char *op, int64_t rows, int64_t in, int64_t out,
                         const float *x, const float *dy, float *dw)
{
    if (csnn__cpu_sparse_mode != 0 || (dv && dv->no_amx) ||
        !csnn__cpu_amx_linear_dw_shape(rows, in, out) || !csnn__cpu_amx_usable())
        return 0;
    const int64_t tasks = (in + LIN_AMX_FB - 1) / LIN_AMX_FB;
    const size_t xf = csnn__cpu_amx_linear_x_floats(rows, in);
    const size_t df = csnn__cpu_amx_linear_dy_floats(rows, out);
    float *s = csnn__cpu_scratch(dv, (xf + df) * sizeof(float) + (size_t)tasks, op);
    if (!s) return -1;
    lin_amx_job j = {.rows = rows, .in = in, .out = out, .x = x, .dyp = (uint16_t *)(s + xf),
                     .xp = (uint32_t *)s, .dw = dw, .ok = (unsigned char *)(s + xf + df)};
    if (!csnn__cpu_amx_linear_pack_dy(rows, out, dy, (uint16_t *)(s + xf))) return 0;
    csnn__cpu_parallel_for(dv, tasks, 1, amx_range, &j);
    for (int64_t t = 0; t < tasks; t++)
        if (!j.ok[t]) return 0;
    j.product = 1;
    csnn__cpu_parallel_for(dv, tasks, 1, amx_range, &j);
    return 1;
}

csnn_status csnn__cpu_linear_weight_grad_sparse(void *dev, int64_t rows, int64_t in, int64_t out,
                                                const float *x, const float *dy, float *dw,
                                                float *db)
{
    static const char op[] = "linear_weight_grad_sparse";
    cpu_device *dv = dev;
    CSNN_TRY(lin_check(op, rows, in, out));
    if (out == 0) return CSNN_OK;
    if (in > 0) CPU_NOT_NULL(op, dw);
    if (rows > 0) {
        CPU_NOT_NULL(op, dy);
        if (in > 0) CPU_NOT_NULL(op, x);
    }
    const int avx512 = csnn__cpu_use_avx512();
    if (in > 0) {
        if (rows == 0) {
            memset(dw, 0, sizeof(float) * (size_t)in * (size_t)out);
        } else {
            const double max = avx512 ? LIN_DW_MAX_DENSITY : LIN_GENERIC_MAX_DENSITY;
            double dens = 0.0;
            const int small = lin_small(rows, in, out, LIN_DW_MIN_MACS);
            const int amx = small ? 0 : linear_dw_amx(dv, op, rows, in, out, x, dy, dw);
            if (amx < 0) return CSNN_ERR_OUT_OF_MEMORY;
            if (!amx && !small && !csnn__cpu_sparse_mode) {
                double nz = 0.0;
                CSNN_TRY(csnn__cpu_reduce(dev, CSNN_REDUCE_COUNT_NONZERO, x, rows * in, &nz));
                dens = nz / ((double)rows * (double)in);
            }
            if (amx) {
                /* done on AMX tiles */
            } else if (small || dens > max) {
                CSNN_TRY(csnn__cpu_gemm(dev, 1, 0, out, in, rows, 1.0f, dy, out, x, in, 0.0f, dw,
                                        in));
            } else {
                lin_dw_job j = {.rows = rows, .in = in, .out = out, .avx512 = avx512, .x = x,
                                .dy = dy, .dw = dw};
                j.work_floats =
                    ALIGN16((size_t)LIN_FB * LIN_DW_OB + LIN_FB + 2 * (size_t)rows * LIN_FB);
                float *s = csnn__cpu_scratch(
                    dv, j.work_floats * sizeof(float) * csnn__cpu_workers(dv), op);
                if (!s) return CSNN_ERR_OUT_OF_MEMORY;
                j.work = s;
                csnn__pool_run(dv ? dv->pool : NULL, (in + LIN_FB - 1) / LIN_FB, dw_fblock, &j);
            }
        }
    }
    if (db) CSNN_TRY(csnn__cpu_bias_grad(dev, dy, db, rows, out, 1));
    return CSNN_OK;
}
