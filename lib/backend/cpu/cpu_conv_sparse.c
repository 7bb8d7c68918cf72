/* cpu_conv_sparse.c - convolution of mostly-zero inputs (spikes, pooled
 * spikes, dropped-out spikes): conv2d_forward_sparse, conv2d_backward_sparse.
 *
 * Per image, the product y^T [P, c_out] = col(x)^T [P, ckk] W^T [ckk, c_out]
 * (P = h_out*w_out output positions, ckk = c_in*kh*kw) is computed with
 * col(x) as a sparse matrix: only non-zero inputs cost work. The input
 * channels are cut into blocks of CB channels with CB*kh*kw <= 64, so that
 * the non-zero taps of one output position within one block form one 64-bit
 * mask M (bit tap*CB + c for channel c of the block at tap (ky, kx)):
 *   - per block, mask[q] (bit c: x[c, q] != 0) for every input position q;
 *   - per output position p, M = OR over the valid taps of mask[q(p, tap)]
 *     shifted to the tap's bits; then for each set bit (ascending):
 *       forward  acc[p, :] += x[c, q] * W^T[(c, tap), :]   (acc in registers)
 *       dW       dW^T[(c, tap), :] += x[c, q] * dy^T[p, :] (dy^T[p] in registers)
 *     with W^T (forward; made once per call) and dW^T (per lane) in
 *     [ckk, c_out padded to 16] layout, so that every add is a contiguous
 *     c_out vector, and a block's rows of W^T / dW^T (<= 64 rows) stay in
 *     the L1 cache while all P positions pass;
 *   - forward: acc [P, c_out] is transposed into y [c_out, P] with the bias
 *     added; dW: dy [c_out, P] is transposed into dy^T first, and the lanes'
 *     dW^T partials are summed in lane order and transposed into dw.
 * Values need not be 1 (dropout makes 2, any float works). dx is always
 * dense (dy is dense): col2im(W^T dy) as conv2d_backward, bit for bit; db is
 * the same channel sum as conv2d_backward's.
 *
 * Each image chooses its own path from its count of non-zero inputs: above
 * a density threshold (measured, see CONV_SPARSE_*_MAX_DENSITY) the dense
 * im2col + sgemm code of cpu_conv.c runs for that image. The choice depends
 * on the data only, and images are grouped into the same lanes as the dense
 * entries (by the descriptor only), so results do not depend on the thread
 * count.
 *
 * The inner loops have an AVX-512 version (chosen at run time) and a
 * portable C version that GCC vectorises for the baseline target. */
#include <string.h>

#include "cpu_conv.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define CSNN_HAVE_AVX512_KERNELS 1
#endif

/* Densities (non-zero inputs / inputs of an image) above which an image
 * goes the dense way. Measured on the reference conv2 (128 -> 128, 3x3,
 * 24x24) with AVX-512: see docs/PERFORMANCE.md and tests/backend/
 * bench_sparse.c. */
#define CONV_SPARSE_FWD_MAX_DENSITY 0.55
#define CONV_SPARSE_DW_MAX_DENSITY 0.45
/* The portable kernels are slower: dense wins earlier. */
#define CONV_SPARSE_GENERIC_MAX_DENSITY 0.2

#define SP_TILE 128 /* c_out columns per pass: 8 AVX-512 accumulators */

typedef struct {
    const conv_plan *p;
    const csnn_conv2d_desc *d;
    int kk, cb, blocks, copad;
    int64_t q;            /* h_in * w_in */
    int64_t toff[64];     /* per tap: ky * w_in + kx */
    int64_t xoff[64];     /* per mask bit: c * q + toff[tap] */
    int64_t woff[64];     /* per mask bit: (c * kk + tap) * copad */
    size_t wt_floats;     /* one W^T or dW^T [ckk, copad] (aligned) */
    size_t region_floats; /* per lane: masks + acc / dy^T, or a col buffer */
    size_t mask_floats;   /* the masks' part of the region */
} sp_geom;

/* Whether the sparse path applies at all: the taps of a block fit a mask. */
static int sp_possible(const csnn_conv2d_desc *d)
{
    return (int64_t)d->kh * d->kw <= 64;
}

static void sp_make_geom(const conv_plan *p, sp_geom *g)
{
    const csnn_conv2d_desc *d = p->d;
    memset(g, 0, sizeof *g);
    g->p = p;
    g->d = d;
    g->kk = d->kh * d->kw;
    g->cb = 64 / g->kk;
    if (g->cb > d->c_in) g->cb = d->c_in;
    g->blocks = (d->c_in + g->cb - 1) / g->cb;
    g->copad = (d->c_out + 15) & ~15;
    g->q = (int64_t)d->h_in * d->w_in;
    for (int ky = 0; ky < d->kh; ky++)
        for (int kx = 0; kx < d->kw; kx++) g->toff[ky * d->kw + kx] = (int64_t)ky * d->w_in + kx;
    for (int t = 0; t < g->kk; t++)
        for (int c = 0; c < g->cb; c++) {
            g->xoff[t * g->cb + c] = c * g->q + g->toff[t];
            g->woff[t * g->cb + c] = ((int64_t)c * g->kk + t) * g->copad;
        }
    g->wt_floats = ALIGN_FLOATS((size_t)p->ckk * (size_t)g->copad);
    g->mask_floats = ALIGN_FLOATS((size_t)g->q * 2); /* uint64 per position */
    size_t need = g->mask_floats + ALIGN_FLOATS((size_t)p->hw_out * (size_t)g->copad);
    g->region_floats = need > p->col_floats ? need : p->col_floats;
}

/* Workspace: W^T, then one region per lane, then one dW^T per lane. */
size_t csnn__cpu_conv_sparse_floats(const conv_plan *p)
{
    if (!sp_possible(p->d)) return 0;
    sp_geom g;
    sp_make_geom(p, &g);
    return g.wt_floats + (size_t)p->lanes * (g.region_floats + g.wt_floats);
}

static float *sp_region(const sp_geom *g, void *ws, int64_t lane)
{
    return (float *)ws + g->wt_floats + (size_t)lane * g->region_floats;
}

static float *sp_lane_dwt(const sp_geom *g, void *ws, int64_t lane)
{
    return (float *)ws + g->wt_floats + (size_t)g->p->lanes * g->region_floats +
           (size_t)lane * g->wt_floats;
}

/* ------------------------------------------------------------------------ */
/* Masks                                                                     */
/* ------------------------------------------------------------------------ */

static int64_t count_nonzero(const float *x, int64_t n)
{
    int64_t total = 0;
    for (int64_t i0 = 0; i0 < n; i0 += 1 << 16) {
        const int64_t i1 = n - i0 < (1 << 16) ? n : i0 + (1 << 16);
        int32_t c = 0;
        for (int64_t i = i0; i < i1; i++) c += x[i] != 0.0f;
        total += c;
    }
    return total;
}

/* mask[q] bit c = (xb[c, q] != 0) for the cbl channels of a block. */
static void build_masks(const sp_geom *g, const float *xb, int cbl, uint64_t *restrict mask)
{
    const int64_t q = g->q;
    for (int64_t i = 0; i < q; i++) mask[i] = 0;
    for (int c = 0; c < cbl; c++) {
        const float *restrict xc = xb + c * q;
        for (int64_t i = 0; i < q; i++) mask[i] |= (uint64_t)(xc[i] != 0.0f) << c;
    }
}

/* The taps mask M of the output position whose window starts at input
 * (iy0, ix0) (may be outside the image: only valid taps count). */
static inline uint64_t gather_mask(const sp_geom *g, const uint64_t *mask, int iy0, int ix0)
{
    const csnn_conv2d_desc *d = g->d;
    const int cb = g->cb;
    uint64_t m = 0;
    if (iy0 >= 0 && iy0 + d->kh <= d->h_in && ix0 >= 0 && ix0 + d->kw <= d->w_in) {
        const uint64_t *base = mask + (int64_t)iy0 * d->w_in + ix0;
        for (int t = 0; t < g->kk; t++) m |= base[g->toff[t]] << (t * cb);
        return m;
    }
    for (int ky = 0; ky < d->kh; ky++) {
        const int iy = iy0 + ky;
        if (iy < 0 || iy >= d->h_in) continue;
        for (int kx = 0; kx < d->kw; kx++) {
            const int ix = ix0 + kx;
            if (ix < 0 || ix >= d->w_in) continue;
            m |= mask[(int64_t)iy * d->w_in + ix] << ((ky * d->kw + kx) * cb);
        }
    }
    return m;
}

/* ------------------------------------------------------------------------ */
/* Kernels: one block of input channels, a tile of n = 16 nv columns        */
/* ------------------------------------------------------------------------ */

/* Forward: acc[p, 0:n] (+)= sum over the set bits of M(p) of
 * x * wb[woff[bit], 0:n] for every output position p. */
static void fwd_block_generic(const sp_geom *g, const float *xb, const uint64_t *mask,
                              const float *wb, float *acc, int first, int nv)
{
    const csnn_conv2d_desc *d = g->d;
    const int n = 16 * nv;
    float a[SP_TILE];
    for (int oy = 0; oy < d->h_out; oy++) {
        const int iy0 = oy * d->stride_h - d->pad_h;
        for (int ox = 0; ox < d->w_out; ox++) {
            const int ix0 = ox * d->stride_w - d->pad_w;
            const int64_t q0 = (int64_t)iy0 * d->w_in + ix0;
            float *ar = acc + ((int64_t)oy * d->w_out + ox) * g->copad;
            uint64_t m = gather_mask(g, mask, iy0, ix0);
            for (int o = 0; o < n; o++) a[o] = first ? 0.0f : ar[o];
            while (m) {
                const int bit = __builtin_ctzll(m);
                m &= m - 1;
                const float v = xb[q0 + g->xoff[bit]];
                const float *restrict wr = wb + g->woff[bit];
                for (int o = 0; o < n; o++) a[o] += v * wr[o];
            }
            for (int o = 0; o < n; o++) ar[o] = a[o];
        }
    }
}

/* dW: dwb[woff[bit], 0:n] += x * dyt[p, 0:n] over the set bits of M(p),
 * for every output position p. */
static void dw_block_generic(const sp_geom *g, const float *xb, const uint64_t *mask,
                             const float *dyt, float *dwb, int nv)
{
    const csnn_conv2d_desc *d = g->d;
    const int n = 16 * nv;
    for (int oy = 0; oy < d->h_out; oy++) {
        const int iy0 = oy * d->stride_h - d->pad_h;
        for (int ox = 0; ox < d->w_out; ox++) {
            const int ix0 = ox * d->stride_w - d->pad_w;
            const int64_t q0 = (int64_t)iy0 * d->w_in + ix0;
            const float *restrict dp = dyt + ((int64_t)oy * d->w_out + ox) * g->copad;
            uint64_t m = gather_mask(g, mask, iy0, ix0);
            while (m) {
                const int bit = __builtin_ctzll(m);
                m &= m - 1;
                const float v = xb[q0 + g->xoff[bit]];
                float *restrict r = dwb + g->woff[bit];
                for (int o = 0; o < n; o++) r[o] += v * dp[o];
            }
        }
    }
}

#ifdef CSNN_HAVE_AVX512_KERNELS
#define AVX512_TARGET __attribute__((target("avx512f,bmi")))

/* The AVX-512 kernels, specialised for each vector count NV (a constant at
 * every call: the accumulators live in registers). */
static inline __attribute__((always_inline)) AVX512_TARGET void
fwd_block_avx512_n(const sp_geom *g, const float *xb, const uint64_t *mask, const float *wb,
                   float *acc, int first, const int NV)
{
    const csnn_conv2d_desc *d = g->d;
    const int64_t *xoff = g->xoff, *woff = g->woff;
    for (int oy = 0; oy < d->h_out; oy++) {
        const int iy0 = oy * d->stride_h - d->pad_h;
        for (int ox = 0; ox < d->w_out; ox++) {
            const int ix0 = ox * d->stride_w - d->pad_w;
            const int64_t q0 = (int64_t)iy0 * d->w_in + ix0;
            float *ar = acc + ((int64_t)oy * d->w_out + ox) * g->copad;
            uint64_t m = gather_mask(g, mask, iy0, ix0);
            __m512 a[8];
#pragma GCC unroll 8
            for (int k = 0; k < NV; k++) a[k] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(ar + 16 * k);
            while (m) {
                const int bit = __builtin_ctzll(m);
                m &= m - 1;
                const __m512 v = _mm512_set1_ps(xb[q0 + xoff[bit]]);
                const float *wr = wb + woff[bit];
#pragma GCC unroll 8
                for (int k = 0; k < NV; k++)
                    a[k] = _mm512_fmadd_ps(v, _mm512_loadu_ps(wr + 16 * k), a[k]);
            }
#pragma GCC unroll 8
            for (int k = 0; k < NV; k++) _mm512_storeu_ps(ar + 16 * k, a[k]);
        }
    }
}

static AVX512_TARGET void fwd_block_avx512(const sp_geom *g, const float *xb,
                                           const uint64_t *mask, const float *wb, float *acc,
                                           int first, int nv)
{
    switch (nv) {
    case 8: fwd_block_avx512_n(g, xb, mask, wb, acc, first, 8); break;
    case 7: fwd_block_avx512_n(g, xb, mask, wb, acc, first, 7); break;
    case 6: fwd_block_avx512_n(g, xb, mask, wb, acc, first, 6); break;
    case 5: fwd_block_avx512_n(g, xb, mask, wb, acc, first, 5); break;
    case 4: fwd_block_avx512_n(g, xb, mask, wb, acc, first, 4); break;
    case 3: fwd_block_avx512_n(g, xb, mask, wb, acc, first, 3); break;
    case 2: fwd_block_avx512_n(g, xb, mask, wb, acc, first, 2); break;
    default: fwd_block_avx512_n(g, xb, mask, wb, acc, first, 1); break;
    }
}

static inline __attribute__((always_inline)) AVX512_TARGET void
dw_block_avx512_n(const sp_geom *g, const float *xb, const uint64_t *mask, const float *dyt,
                  float *dwb, const int NV)
{
    const csnn_conv2d_desc *d = g->d;
    const int64_t *xoff = g->xoff, *woff = g->woff;
    for (int oy = 0; oy < d->h_out; oy++) {
        const int iy0 = oy * d->stride_h - d->pad_h;
        for (int ox = 0; ox < d->w_out; ox++) {
            const int ix0 = ox * d->stride_w - d->pad_w;
            const int64_t q0 = (int64_t)iy0 * d->w_in + ix0;
            uint64_t m = gather_mask(g, mask, iy0, ix0);
            if (!m) continue;
            const float *dp = dyt + ((int64_t)oy * d->w_out + ox) * g->copad;
            __m512 dv[8];
#pragma GCC unroll 8
            for (int k = 0; k < NV; k++) dv[k] = _mm512_loadu_ps(dp + 16 * k);
            while (m) {
                const int bit = __builtin_ctzll(m);
                m &= m - 1;
                const __m512 v = _mm512_set1_ps(xb[q0 + xoff[bit]]);
                float *r = dwb + woff[bit];
#pragma GCC unroll 8
                for (int k = 0; k < NV; k++)
                    _mm512_storeu_ps(r + 16 * k,
                                     _mm512_fmadd_ps(v, dv[k], _mm512_loadu_ps(r + 16 * k)));
            }
        }
    }
}

static AVX512_TARGET void dw_block_avx512(const sp_geom *g, const float *xb, const uint64_t *mask,
                                          const float *dyt, float *dwb, int nv)
{
    switch (nv) {
    case 8: dw_block_avx512_n(g, xb, mask, dyt, dwb, 8); break;
    case 7: dw_block_avx512_n(g, xb, mask, dyt, dwb, 7); break;
    case 6: dw_block_avx512_n(g, xb, mask, dyt, dwb, 6); break;
    case 5: dw_block_avx512_n(g, xb, mask, dyt, dwb, 5); break;
    case 4: dw_block_avx512_n(g, xb, mask, dyt, dwb, 4); break;
    case 3: dw_block_avx512_n(g, xb, mask, dyt, dwb, 3); break;
    case 2: dw_block_avx512_n(g, xb, mask, dyt, dwb, 2); break;
    default: dw_block_avx512_n(g, xb, mask, dyt, dwb, 1); break;
    }
}
#endif /* CSNN_HAVE_AVX512_KERNELS */

/* ------------------------------------------------------------------------ */
/* Per image                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct {
    conv_plan p;
    sp_geom g;
    int avx512;
    double max_density;
    const float *x, *w, *b, *dy;
    float *y, *dx, *dw;
    float *wt; /* W^T [ckk, copad] (forward) */
    void *ws;
} sp_job;

/* Whether image xi goes the sparse way. */
static int image_is_sparse(const sp_job *j, const float *xi)
{
    const int64_t n = j->p.in_size;
    if (csnn__cpu_sparse_mode) return csnn__cpu_sparse_mode == 1;
    return (double)count_nonzero(xi, n) <= j->max_density * (double)n;
}

/* acc [P, copad] of one image: the sparse product of all blocks. */
static void sparse_image_forward(const sp_job *j, const float *xi, uint64_t *mask, float *acc)
{
    const sp_geom *g = &j->g;
    for (int blk = 0; blk < g->blocks; blk++) {
        const int c0 = blk * g->cb;
        const int cbl = g->d->c_in - c0 < g->cb ? g->d->c_in - c0 : g->cb;
        const float *xb = xi + c0 * g->q;
        build_masks(g, xb, cbl, mask);
        for (int co0 = 0; co0 < g->copad; co0 += SP_TILE) {
            const int nv = (g->copad - co0 < SP_TILE ? g->copad - co0 : SP_TILE) / 16;
            const float *wb = j->wt + (int64_t)c0 * g->kk * g->copad + co0;
#ifdef CSNN_HAVE_AVX512_KERNELS
            if (j->avx512) {
                fwd_block_avx512(g, xb, mask, wb, acc + co0, blk == 0, nv);
                continue;
            }
#endif
            fwd_block_generic(g, xb, mask, wb, acc + co0, blk == 0, nv);
        }
    }
}

/* y [c_out, P] = acc^T (+ b), in tiles of 16 x 16. */
static void write_output(const sp_job *j, const float *acc, float *yi)
{
    const int64_t P = j->p.hw_out, copad = j->g.copad;
    const int c_out = j->g.d->c_out;
    for (int64_t p0 = 0; p0 < P; p0 += 16) {
        const int64_t np = P - p0 < 16 ? P - p0 : 16;
        for (int co = 0; co < c_out; co++) {
            float *restrict yr = yi + (int64_t)co * P + p0;
            const float *ac = acc + p0 * copad + co;
            if (j->b) {
                const float bc = j->b[co];
                for (int64_t i = 0; i < np; i++) yr[i] = ac[i * copad] + bc;
            } else {
                for (int64_t i = 0; i < np; i++) yr[i] = ac[i * copad];
            }
        }
    }
}

static void sp_fwd_lane(void *arg, int64_t lane, int worker)
{
    (void)worker;
    const sp_job *j = arg;
    const conv_plan *p = &j->p;
    float *region = sp_region(&j->g, j->ws, lane);
    uint64_t *mask = (uint64_t *)region;
    float *acc = region + j->g.mask_floats;
    for (int64_t i = conv_lane_first(p, lane); i < conv_lane_first(p, lane + 1); i++) {
        const float *xi = j->x + i * p->in_size;
        float *yi = j->y + i * p->out_size;
        if (!image_is_sparse(j, xi)) {
            csnn__cpu_conv_image_forward(p, xi, j->w, j->b, yi, region);
            continue;
        }
        sparse_image_forward(j, xi, mask, acc);
        write_output(j, acc, yi);
    }
}

/* W^T [ckk, copad] from w [c_out, ckk], zero in the padding columns; rows
 * [r0, r1). */
static void make_wt_range(void *arg, int64_t r0, int64_t r1, int worker)
{
    (void)worker;
    const sp_job *j = arg;
    const int64_t ckk = j->p.ckk, copad = j->g.copad;
    const int c_out = j->g.d->c_out;
    for (int64_t r = r0; r < r1; r++) {
        float *restrict row = j->wt + r * copad;
        for (int co = 0; co < c_out; co++) row[co] = j->w[co * ckk + r];
        for (int64_t co = c_out; co < copad; co++) row[co] = 0.0f;
    }
}

static double max_density(int avx512, double tuned)
{
    return avx512 ? tuned : CONV_SPARSE_GENERIC_MAX_DENSITY;
}

csnn_status csnn__cpu_conv2d_forward_sparse(void *dev, const csnn_conv2d_desc *d, const float *x,
                                            const float *w, const float *b, float *y,
                                            void *workspace)
{
    static const char op[] = "conv2d_forward_sparse";
    const cpu_device *dv = dev;
    CSNN_TRY(csnn__cpu_conv_check(op, d));
    if (d->n == 0) return CSNN_OK;
    if (!sp_possible(d)) return csnn__cpu_conv2d_forward(dev, d, x, w, b, y, workspace);
    CPU_NOT_NULL(op, x);
    CPU_NOT_NULL(op, w);
    CPU_NOT_NULL(op, y);
    CPU_NOT_NULL(op, workspace);
    if (d->has_bias) CPU_NOT_NULL(op, b);
    sp_job j = {.x = x, .w = w, .b = d->has_bias ? b : NULL, .y = y, .ws = workspace};
    csnn__cpu_conv_plan(d, &j.p);
    sp_make_geom(&j.p, &j.g);
    j.avx512 = csnn__cpu_use_avx512();
    j.max_density = max_density(j.avx512, CONV_SPARSE_FWD_MAX_DENSITY);
    j.wt = workspace;
    csnn__cpu_parallel_for(dv, j.p.ckk, 1 + (1 << 14) / d->c_out, make_wt_range, &j);
    csnn__pool_run(dv ? dv->pool : NULL, j.p.lanes, sp_fwd_lane, &j);
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Backward                                                                  */
/* ------------------------------------------------------------------------ */

/* dyt [P, copad] = dyi^T, zero in the padding columns. */
static void transpose_dy(const sp_job *j, const float *dyi, float *dyt)
{
    const int64_t P = j->p.hw_out, copad = j->g.copad;
    const int c_out = j->g.d->c_out;
    for (int64_t p0 = 0; p0 < P; p0 += 16) {
        const int64_t np = P - p0 < 16 ? P - p0 : 16;
        for (int co = 0; co < c_out; co++) {
            const float *restrict src = dyi + (int64_t)co * P + p0;
            float *dst = dyt + p0 * copad + co;
            for (int64_t i = 0; i < np; i++) dst[i * copad] = src[i];
        }
        for (int64_t i = 0; i < np; i++)
            for (int64_t co = c_out; co < copad; co++) dyt[(p0 + i) * copad + co] = 0.0f;
    }
}

static void sparse_image_dw(const sp_job *j, const float *xi, const float *dyt, uint64_t *mask,
                            float *dwt)
{
    const sp_geom *g = &j->g;
    for (int blk = 0; blk < g->blocks; blk++) {
        const int c0 = blk * g->cb;
        const int cbl = g->d->c_in - c0 < g->cb ? g->d->c_in - c0 : g->cb;
        const float *xb = xi + c0 * g->q;
        build_masks(g, xb, cbl, mask);
        for (int co0 = 0; co0 < g->copad; co0 += SP_TILE) {
            const int nv = (g->copad - co0 < SP_TILE ? g->copad - co0 : SP_TILE) / 16;
            float *dwb = dwt + (int64_t)c0 * g->kk * g->copad + co0;
#ifdef CSNN_HAVE_AVX512_KERNELS
            if (j->avx512) {
                dw_block_avx512(g, xb, mask, dyt + co0, dwb, nv);
                continue;
            }
#endif
            dw_block_generic(g, xb, mask, dyt + co0, dwb, nv);
        }
    }
}

static void sp_bwd_lane(void *arg, int64_t lane, int worker)
{
    (void)worker;
    const sp_job *j = arg;
    const conv_plan *p = &j->p;
    const sp_geom *g = &j->g;
    const int hw = (int)p->hw_out, ckk = (int)p->ckk;
    float *region = sp_region(g, j->ws, lane);
    uint64_t *mask = (uint64_t *)region;
    float *dyt = region + g->mask_floats;
    float *dwt = sp_lane_dwt(g, j->ws, lane);
    memset(dwt, 0, sizeof(float) * (size_t)p->ckk * (size_t)g->copad);
    for (int64_t i = conv_lane_first(p, lane); i < conv_lane_first(p, lane + 1); i++) {
        const float *xi = j->x + i * p->in_size, *dyi = j->dy + i * p->out_size;
        if (image_is_sparse(j, xi)) {
            transpose_dy(j, dyi, dyt);
            sparse_image_dw(j, xi, dyt, mask, dwt);
        } else {
            /* dW^T [ckk, c_out] += col [ckk, hw] dy_i^T [hw, c_out] */
            if (!p->direct) csnn__cpu_im2col(p->d, (float *)xi, region, 1);
            csnn__cpu_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ckk, p->d->c_out, hw, 1.0f,
                            p->direct ? xi : region, hw, dyi, hw, 1.0f, dwt, g->copad);
        }
        if (j->dx) csnn__cpu_conv_image_dx(p, j->w, dyi, j->dx + i * p->in_size, region);
    }
}

/* dw [c_out, ckk] = sum over lanes (in order) of dW^T_lane, transposed;
 * rows r of W^T in [r0, r1). */
static void sum_dwt_range(void *arg, int64_t r0, int64_t r1, int worker)
{
    (void)worker;
    const sp_job *j = arg;
    const sp_geom *g = &j->g;
    const int64_t ckk = j->p.ckk, copad = g->copad;
    const int c_out = g->d->c_out;
    float tmp[SP_TILE];
    for (int64_t r = r0; r < r1; r++)
        for (int co0 = 0; co0 < c_out; co0 += SP_TILE) {
            const int n = c_out - co0 < SP_TILE ? c_out - co0 : SP_TILE;
            const float *src = sp_lane_dwt(g, j->ws, 0) + r * copad + co0;
            for (int o = 0; o < n; o++) tmp[o] = src[o];
            for (int64_t lane = 1; lane < j->p.lanes; lane++) {
                const float *restrict part = sp_lane_dwt(g, j->ws, lane) + r * copad + co0;
                for (int o = 0; o < n; o++) tmp[o] += part[o];
            }
            for (int o = 0; o < n; o++) j->dw[(int64_t)(co0 + o) * ckk + r] = tmp[o];
        }
}

csnn_status csnn__cpu_conv2d_backward_sparse(void *dev, const csnn_conv2d_desc *d,
                                             const float *x, const float *w, const float *dy,
                                             float *dx, float *dw, float *db, void *workspace)
{
    static const char op[] = "conv2d_backward_sparse";
    const cpu_device *dv = dev;
    CSNN_TRY(csnn__cpu_conv_check(op, d));
    if (d->n == 0 || !sp_possible(d))
        return csnn__cpu_conv2d_backward(dev, d, x, w, dy, dx, dw, db, workspace);
    CPU_NOT_NULL(op, dw);
    if (d->has_bias) CPU_NOT_NULL(op, db);
    CPU_NOT_NULL(op, x);
    CPU_NOT_NULL(op, w);
    CPU_NOT_NULL(op, dy);
    CPU_NOT_NULL(op, workspace);
    sp_job j = {.x = x, .w = w, .dy = dy, .dx = dx, .dw = dw, .ws = workspace};
    csnn__cpu_conv_plan(d, &j.p);
    sp_make_geom(&j.p, &j.g);
    j.avx512 = csnn__cpu_use_avx512();
    j.max_density = max_density(j.avx512, CONV_SPARSE_DW_MAX_DENSITY);
    csnn__pool_run(dv ? dv->pool : NULL, j.p.lanes, sp_bwd_lane, &j);
    csnn__cpu_parallel_for(dv, j.p.ckk, 1 + (1 << 12) / (d->c_out * j.p.lanes), sum_dwt_range,
                           &j);
    if (d->has_bias) csnn__cpu_channel_sum(dv, dy, db, d->n, d->c_out, j.p.hw_out);
    return CSNN_OK;
}
