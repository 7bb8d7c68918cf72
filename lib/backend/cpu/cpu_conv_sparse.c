/* cpu_conv_sparse.c - convolution of mostly-zero inputs (spikes, pooled
 * spikes, dropped-out spikes): conv2d_forward_sparse, conv2d_backward_sparse.
 *
 * Per image, the product y^T [P, c_out] = col(x)^T [P, ckk] W^T [ckk, c_out]
 * (P = h_out*w_out output positions, ckk = c_in*kh*kw) is computed with
 * col(x) as a sparse matrix: only non-zero inputs cost work. The input
 * channels are cut into blocks of CB channels with CB*kh*kw <= 64, so that
 * the non-zero taps of one output position within one block form one 64-bit
 * mask M (bit tap*CB + c for channel c of the block at tap (ky, kx)):
 *   - per block, mask[q] (bit c: x[c, q] != 0) for every input position q,
 *     and hm[iy, ox], the masks of the kw taps of a row already shifted into
 *     place, so that M(p) is kh loads, shifts and ORs;
 *   - forward: per output position p, acc[p, :] (in registers, 8 AVX-512
 *     vectors for 128 channels) += x[c, q] * W^T[(c, tap), :] for each set
 *     bit of M(p), with W^T [ckk, c_out padded to 16] made once per call so
 *     that every add is a contiguous c_out vector, and a block's <= 64 rows
 *     of W^T stay in L1 while all P positions pass; then acc [P, c_out] is
 *     transposed into y [c_out, P] with the bias added;
 *   - dW: dy [c_out, P] is transposed into dy^T first; per band of 32
 *     positions the bits of their masks are transposed (per W^T row, the
 *     band positions whose tap is non-zero), and each dW^T row accumulates
 *     x * dy^T[p] over them in registers. Each lane keeps a dW^T partial;
 *     the partials are summed in lane order and transposed into dw.
 * Values need not be 1 (dropout makes 2, any float works). dx is always
 * dense (dy is dense): col2im(W^T dy) as conv2d_backward, bit for bit; db is
 * the same channel sum as conv2d_backward's.
 *
 * Each image chooses its own path from its count of non-zero inputs: above
 * a density threshold (measured: CONV_SPARSE_*_MAX_DENSITY below) the dense
 * im2col + sgemm code of cpu_conv.c runs for that image. The choice depends
 * on the data only, and images are grouped into lanes by the descriptor only
 * (the dense entries' lanes, fewer where the sparse layout of the workspace
 * would pass its budget), so results do not depend on the thread count.
 *
 * The inner loops have an AVX-512 version (chosen at run time) and a
 * portable C version for other CPUs (slow: see the thresholds).
 *
 * On CPUs with AMX-BF16, for the shapes cpu_amx.c takes, images go to AMX
 * tiles instead (dense over the positions, float sums): the forward of an
 * image whose inputs are bfloat16 numbers and which is dense enough
 * (CONV_AMX_FWD_MIN_DENSITY; amx_image_forward: weights cut exactly into
 * three bfloat16 parts; then the temporal entry runs image by image), the
 * weight gradient of every image whose inputs are bfloat16 numbers
 * (image_bwd_lane; exact products) and the input gradient of every image
 * whose dy is finite (six part products); other images, and all of them
 * when a weight is not finite, take the kernels above. For 3 x 3, stride-1
 * shapes the forward and the weight gradient on AMX tiles go by Winograd's
 * F(2 x 2, 3 x 3) (cpu_amx.c; not under CSNN_DISABLE=winograd), an image
 * whose transformed input is not bfloat16 (or whose dy is not finite)
 * falling back to the tap-by-tap AMX weight gradient or to the float
 * forward. */
#include <string.h>

#include "cpu_amx.h"
#include "cpu_conv.h"
#include "cpu_simd.h"

/* Densities (non-zero inputs / inputs of an image) above which an image
 * goes the dense way. Measured with tests/backend/bench_sparse.c on the
 * reference conv2 (64 x [128, 24, 24] -> 128, 3x3, pad 1, random binary
 * input), one thread, process CPU time, min of 7-12 runs, on a 2-core
 * Xeon (Emerald Rapids, AVX-512) at load average ~2-4: dense forward
 * ~105 ms, sparse 16 / 27 / 39 / 55 / 63 / 72 / 84 / 93 / 99 / 114 ms at
 * densities 0.02 / 0.1 / 0.2 / 0.4 / 0.5 / 0.6 / 0.7 / 0.8 / 0.85 / 1
 * (crossover ~0.9); dense dW (+ db) ~102 ms, sparse 24 / 47 / 61 / 85 / 94 /
 * 106 / 116 / 125 ms at 0.02 / 0.1 / 0.2 / 0.4 / 0.5 / 0.6 / 0.7 / 0.8
 * (crossover ~0.57). The portable kernels (no AVX-512) are 3-5x slower
 * than the AVX-512 ones: they win only on very sparse input. */
#define CONV_SPARSE_FWD_MAX_DENSITY 0.85
/* The density from which an image's forward goes to AMX tiles (cpu_amx.c)
 * where they are used. The same bench, "conv" (process CPU time, min of 5,
 * the forward by Winograd on AMX tiles at every density against the sparse
 * kernels forced): AMX 30-32 ms at any density; sparse 20 / 28 / 28 / 37 /
 * 46 / 58 ms at 0.02 / 0.05 / 0.1 / 0.2 / 0.3 / 0.4 - the crossover near
 * 0.12; in the slow phases of this VM's AMX (docs/PERFORMANCE.md) AMX took
 * ~50 ms and the sparse kernels ~40-58 at 0.2. (With the tap-by-tap AMX
 * forward, 25 ms fast and ~68 slow, the threshold was 0.3.) Training the
 * reference model feeds conv2 ~0.67; inference ~0.01 at the first time
 * step and 0.23 / 0.29 / 0.37 at the next three (random images). */
#define CONV_AMX_FWD_MIN_DENSITY 0.15
#define CONV_SPARSE_DW_MAX_DENSITY 0.55
#define CONV_SPARSE_GENERIC_MAX_DENSITY 0.05

#define SP_TILE 128 /* c_out columns per pass: 8 AVX-512 accumulators */

typedef struct {
    const conv_plan *p;
    const csnn_conv2d_desc *d;
    int kk, cb, blocks, copad;
    int64_t q;            /* h_in * w_in */
    int64_t xoff[64];     /* per mask bit: c * q + ky * w_in + kx */
    int64_t woff[64];     /* per mask bit: (c * kk + tap) * copad */
    int ox0[64], ox1[64]; /* per kx: the output columns whose tap kx is inside */
    size_t wt_floats;     /* one W^T or dW^T [ckk, copad] (aligned) */
    size_t head_floats;   /* the workspace's first block: W^T (forward) or W in
                             the input gradient's form (backward) */
    size_t region_floats; /* per lane: masks + acc / dy^T, or a col buffer; then
                             delta and dsum */
    size_t mask_floats;   /* the masks' part of the region */
    size_t delta_off;     /* x[t] - x[t-1] of one image (temporal entries) */
    size_t dsum_off;      /* dy^T summed over steps [P, copad] (temporal backward) */
    cpu_amx_conv amx;     /* the AMX weight gradient's geometry ... */
    int amx_shape;        /* ... when the shape suits it; then also */
    cpu_amx_fwd amx_fwd;  /* the AMX forward's ... */
    cpu_amx_fwd amx_dx;   /* ... and input gradient's */
    cpu_amx_wino wino;    /* the AMX forward by Winograd's F(2x2, 3x3) ... */
    int wino_shape;       /* ... when the shape suits it too */
    size_t amx_off;       /* their scratch in the region, past dy^T */
    size_t amx_w_floats;  /* their packed weights, past the lanes' dW^T */
} sp_geom;

/* Whether the sparse path applies at all: the taps of a block fit a mask. */
static int sp_possible(const csnn_conv2d_desc *d)
{
    return (int64_t)d->kh * d->kw <= 64;
}

/* The geometry of plan p; lowers p->lanes (the dense plan's) while the
 * sparse layout of the workspace would pass CONV_WORKSPACE_BUDGET: the
 * lanes still depend on the descriptor only, and the region of a lane still
 * holds a col buffer for the images that go the dense way. */
static void sp_make_geom(conv_plan *p, sp_geom *g)
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
        for (int kx = 0; kx < d->kw; kx++)
            for (int c = 0; c < g->cb; c++) {
                const int t = ky * d->kw + kx, bit = t * g->cb + c;
                g->xoff[bit] = c * g->q + (int64_t)ky * d->w_in + kx;
                g->woff[bit] = ((int64_t)c * g->kk + t) * g->copad;
            }
    for (int kx = 0; kx < d->kw; kx++)
        csnn__cpu_conv_valid_range(kx, d->pad_w, d->stride_w, d->w_in, d->w_out, &g->ox0[kx],
                                   &g->ox1[kx]);
    g->wt_floats = ALIGN_FLOATS((size_t)p->ckk * (size_t)g->copad);
    const size_t dx_w = csnn__cpu_conv_dx_w_floats(p);
    g->head_floats = dx_w > g->wt_floats ? dx_w : g->wt_floats;
    /* mask: uint64 per input position; hmask: uint64 per (input row,
     * output column), plus a zero row */
    g->mask_floats = ALIGN_FLOATS((size_t)g->q * 2) +
                     ALIGN_FLOATS(((size_t)d->h_in + 1) * (size_t)d->w_out * 2);
    size_t need = g->mask_floats + ALIGN_FLOATS((size_t)p->hw_out * (size_t)g->copad);
    g->amx_shape = csnn__cpu_amx_conv_plan(d, &g->amx) &&
                   csnn__cpu_amx_fwd_plan(d, 0, &g->amx_fwd) &&
                   csnn__cpu_amx_fwd_plan(d, 1, &g->amx_dx);
    if (g->amx_shape) {
        /* one image's scratch of whichever kernel runs */
        size_t amx = csnn__cpu_amx_conv_floats(&g->amx);
        if (csnn__cpu_amx_fwd_floats(&g->amx_fwd) > amx) amx = csnn__cpu_amx_fwd_floats(&g->amx_fwd);
        if (csnn__cpu_amx_fwd_floats(&g->amx_dx) > amx) amx = csnn__cpu_amx_fwd_floats(&g->amx_dx);
        g->amx_w_floats = ALIGN_FLOATS(csnn__cpu_amx_fwd_weight_floats(&g->amx_fwd));
        /* Winograd on AMX tiles only where its scratch fits the region the
         * other paths give a lane anyway (the col buffer, for the reference
         * conv2): its weight gradient keeps 16 products [c_in, c_out] per
         * image, which for many channels on small planes would multiply
         * the workspace */
        g->wino_shape = csnn__cpu_amx_wino_plan(d, &g->wino);
        if (g->wino_shape) {
            size_t wino = csnn__cpu_amx_wino_floats(&g->wino);
            if (csnn__cpu_amx_wino_dw_floats(&g->wino) > wino)
                wino = csnn__cpu_amx_wino_dw_floats(&g->wino);
            const size_t region = need + amx > p->col_floats ? need + amx : p->col_floats;
            g->wino_shape = need + wino <= region;
            if (g->wino_shape) {
                if (wino > amx) amx = wino;
                const size_t u = ALIGN_FLOATS(csnn__cpu_amx_wino_u_floats(&g->wino));
                if (u > g->amx_w_floats) g->amx_w_floats = u;
            }
        }
        g->amx_off = need;
        need += amx;
    }
    g->region_floats = need > p->col_floats ? need : p->col_floats;
    /* the temporal entries' step difference and dy suffix sum, past the
     * buffers of the per-image paths */
    g->delta_off = g->region_floats;
    g->dsum_off = g->delta_off + ALIGN_FLOATS((size_t)p->in_size);
    g->region_floats = g->dsum_off + ALIGN_FLOATS((size_t)p->hw_out * (size_t)g->copad);
    while (p->lanes > 1 && (g->head_floats + (size_t)p->lanes * (g->region_floats + g->wt_floats) +
                            g->amx_w_floats) * sizeof(float) >
                               CONV_WORKSPACE_BUDGET)
        p->lanes--;
}

int csnn__cpu_conv_sparse_wino(const conv_plan *p)
{
    if (!sp_possible(p->d)) return 0;
    conv_plan sp = *p;
    sp_geom g;
    sp_make_geom(&sp, &g);
    return g.amx_shape && g.wino_shape;
}

/* Workspace: W^T, then one region per lane, one dW^T per lane, and the AMX
 * kernels' packed weights. */
size_t csnn__cpu_conv_sparse_floats(const conv_plan *p)
{
    if (!sp_possible(p->d)) return 0;
    conv_plan sp = *p;
    sp_geom g;
    sp_make_geom(&sp, &g);
    return g.head_floats + (size_t)sp.lanes * (g.region_floats + g.wt_floats) + g.amx_w_floats;
}

static float *sp_region(const sp_geom *g, void *ws, int64_t lane)
{
    return (float *)ws + g->head_floats + (size_t)lane * g->region_floats;
}

static float *sp_lane_dwt(const sp_geom *g, void *ws, int64_t lane)
{
    return (float *)ws + g->head_floats + (size_t)g->p->lanes * g->region_floats +
           (size_t)lane * g->wt_floats;
}

static uint16_t *sp_amx_weights(const sp_geom *g, void *ws)
{
    return (uint16_t *)sp_lane_dwt(g, ws, g->p->lanes);
}

/* ------------------------------------------------------------------------ */
/* Masks                                                                     */
/* ------------------------------------------------------------------------ */

/* dst = a - b over n values; returns the count of non-zero differences, or
 * -1 when a or b holds a NaN or an infinity (then dst is not to be used:
 * a difference cannot stand for such a step). In the same pass, what
 * count_nonzero(a) gives: *nonzero and *other. */
static inline __attribute__((always_inline)) int64_t
step_difference_body(const float *a, const float *b, int64_t n, float *dst, int64_t *nonzero,
                     int64_t *other)
{
    int64_t changed = 0, bad = 0, nz = 0, not_one = 0;
    for (int64_t i0 = 0; i0 < n; i0 += 1 << 16) {
        const int64_t i1 = n - i0 < (1 << 16) ? n : i0 + (1 << 16);
        int32_t c = 0, f = 0, z = 0, o = 0;
        for (int64_t i = i0; i < i1; i++) {
            const float v = a[i] - b[i];
            dst[i] = v;
            c += v != 0.0f;
            f += v - v != 0.0f; /* NaN - NaN, inf - inf are NaN */
            z += a[i] != 0.0f;
            o += a[i] != 0.0f && a[i] != 1.0f;
        }
        changed += c;
        bad += f;
        nz += z;
        not_one += o;
    }
    *nonzero = nz;
    *other = not_one;
    return bad ? -1 : changed;
}

/* The count of non-zero values of x[0, n), and in *other the count of those
 * that are not 1 (a NaN counts in both, as x != 0 and x != 1 hold). */
static inline __attribute__((always_inline)) int64_t count_nonzero_body(const float *x, int64_t n,
                                                                        int64_t *other)
{
    int64_t total = 0, not_one = 0;
    for (int64_t i0 = 0; i0 < n; i0 += 1 << 16) {
        const int64_t i1 = n - i0 < (1 << 16) ? n : i0 + (1 << 16);
        int32_t c = 0, o = 0;
        for (int64_t i = i0; i < i1; i++) {
            c += x[i] != 0.0f;
            o += x[i] != 0.0f && x[i] != 1.0f;
        }
        total += c;
        not_one += o;
    }
    *other = not_one;
    return total;
}

/* The two scans, compiled for the baseline and for AVX-512 (integer counts
 * and IEEE differences: the same results). */
static int64_t step_difference_base(const float *a, const float *b, int64_t n, float *dst,
                                    int64_t *nonzero, int64_t *other)
{
    return step_difference_body(a, b, n, dst, nonzero, other);
}

static int64_t count_nonzero_base(const float *x, int64_t n, int64_t *other)
{
    return count_nonzero_body(x, n, other);
}

#ifdef CSNN_HAVE_AVX512_KERNELS
static AVX512_TARGET int64_t step_difference_avx512(const float *a, const float *b, int64_t n,
                                                    float *dst, int64_t *nonzero, int64_t *other)
{
    return step_difference_body(a, b, n, dst, nonzero, other);
}

static AVX512_TARGET int64_t count_nonzero_avx512(const float *x, int64_t n, int64_t *other)
{
    return count_nonzero_body(x, n, other);
}
#endif

static int64_t step_difference(int avx512, const float *a, const float *b, int64_t n, float *dst,
                               int64_t *nonzero, int64_t *other)
{
#ifdef CSNN_HAVE_AVX512_KERNELS
    if (avx512) return step_difference_avx512(a, b, n, dst, nonzero, other);
#endif
    (void)avx512;
    return step_difference_base(a, b, n, dst, nonzero, other);
}

static int64_t count_nonzero(int avx512, const float *x, int64_t n, int64_t *other)
{
#ifdef CSNN_HAVE_AVX512_KERNELS
    if (avx512) return count_nonzero_avx512(x, n, other);
#endif
    (void)avx512;
    return count_nonzero_base(x, n, other);
}

/* mask[q] bit c = (xb[c, q] != 0) for the cbl channels of a block. */
static void build_masks_generic(const sp_geom *g, const float *xb, int cbl, uint64_t *mask)
{
    const int64_t q = g->q;
    for (int64_t i = 0; i < q; i++) {
        uint64_t m = 0;
        for (int c = 0; c < cbl; c++) m |= (uint64_t)(xb[c * q + i] != 0.0f) << c;
        mask[i] = m;
    }
}

#ifdef CSNN_HAVE_AVX512_KERNELS
static AVX512_TARGET void build_masks_avx512(const sp_geom *g, const float *xb, int cbl,
                                             uint64_t *mask)
{
    const int64_t q = g->q, q16 = q & ~(int64_t)15;
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t i = 0; i < q16; i += 16) {
        __m512i lo = _mm512_setzero_si512(), hi = lo;
        for (int c = 0; c < cbl; c++) {
            /* not-equal, unordered: a NaN counts as non-zero, as x != 0 */
            const __mmask16 k = _mm512_cmp_ps_mask(_mm512_loadu_ps(xb + c * q + i), zero,
                                                   _CMP_NEQ_UQ);
            const __m512i bit = _mm512_set1_epi64((long long)((uint64_t)1 << c));
            lo = _mm512_mask_or_epi64(lo, (__mmask8)k, lo, bit);
            hi = _mm512_mask_or_epi64(hi, (__mmask8)(k >> 8), hi, bit);
        }
        _mm512_storeu_si512(mask + i, lo);
        _mm512_storeu_si512(mask + i + 8, hi);
    }
    for (int64_t i = q16; i < q; i++) {
        uint64_t m = 0;
        for (int c = 0; c < cbl; c++) m |= (uint64_t)(xb[c * q + i] != 0.0f) << c;
        mask[i] = m;
    }
}
#endif

/* hm[iy, ox] = OR over the taps kx inside the image of
 * mask[iy, ox * stride - pad + kx] << (kx * cb); row h_in is all zero (it
 * stands for the rows outside the image). */
static inline void build_hmask(const sp_geom *g, const uint64_t *restrict mask,
                               uint64_t *restrict hm)
{
    const csnn_conv2d_desc *d = g->d;
    const int wo = d->w_out, sw = d->stride_w;
    for (int64_t i = 0; i < ((int64_t)d->h_in + 1) * wo; i++) hm[i] = 0;
    for (int iy = 0; iy < d->h_in; iy++) {
        uint64_t *restrict row = hm + (int64_t)iy * wo;
        for (int kx = 0; kx < d->kw; kx++) {
            const uint64_t *restrict src = mask + (int64_t)iy * d->w_in - d->pad_w + kx;
            const int sh = kx * g->cb;
            if (sw == 1)
                for (int ox = g->ox0[kx]; ox < g->ox1[kx]; ox++) row[ox] |= src[ox] << sh;
            else
                for (int ox = g->ox0[kx]; ox < g->ox1[kx]; ox++)
                    row[ox] |= src[(int64_t)ox * sw] << sh;
        }
    }
}

/* The hmask rows of output row oy's taps ky (the zero row outside). */
static inline void tap_rows(const sp_geom *g, const uint64_t *hm, int oy, const uint64_t **rows)
{
    const csnn_conv2d_desc *d = g->d;
    for (int ky = 0; ky < d->kh; ky++) {
        const int iy = oy * d->stride_h - d->pad_h + ky;
        rows[ky] = hm + (int64_t)(iy >= 0 && iy < d->h_in ? iy : d->h_in) * d->w_out;
    }
}

/* The taps mask M of output (oy, ox): bit (ky * kw + kx) * cb + c. */
static inline uint64_t tap_mask(const sp_geom *g, const uint64_t *const *rows, int ox)
{
    const int kh = g->d->kh, step = g->d->kw * g->cb;
    uint64_t m = rows[0][ox];
    for (int ky = 1; ky < kh; ky++) m |= rows[ky][ox] << (ky * step);
    return m;
}

/* ------------------------------------------------------------------------ */
/* Kernels: one block of input channels, one tile of n = 16 nv output      */
/* channels. (Grouping two or four blocks with half or quarter tiles, which */
/* halves the passes over acc, measured slower: the per-bit work counts     */
/* more than that traffic.)                                                 */
/* ------------------------------------------------------------------------ */

/* Forward: acc[p, 0:n] (+)= sum over the set bits of M(p) of
 * x * wb[woff[bit], 0:n] for every output position p. */
static void fwd_block_generic(const sp_geom *g, const float *xb, const uint64_t *hm,
                              const float *wb, float *acc, int first, int nv)
{
    const csnn_conv2d_desc *d = g->d;
    const int n = 16 * nv;
    const uint64_t *rows[64];
    float a[SP_TILE];
    for (int oy = 0; oy < d->h_out; oy++) {
        tap_rows(g, hm, oy, rows);
        const int iy0 = oy * d->stride_h - d->pad_h;
        for (int ox = 0; ox < d->w_out; ox++) {
            const int64_t q0 = (int64_t)iy0 * d->w_in + (ox * d->stride_w - d->pad_w);
            float *ar = acc + ((int64_t)oy * d->w_out + ox) * g->copad;
            uint64_t m = tap_mask(g, rows, ox);
            if (!m && !first) continue;
            for (int o = 0; o < n; o++) a[o] = first ? 0.0f : ar[o];
            for (; m; m &= m - 1) {
                const int bit = __builtin_ctzll(m);
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
static void dw_block_generic(const sp_geom *g, const float *xb, const uint64_t *hm,
                             const float *dyt, float *dwb, int nv)
{
    const csnn_conv2d_desc *d = g->d;
    const int n = 16 * nv;
    const uint64_t *rows[64];
    for (int oy = 0; oy < d->h_out; oy++) {
        tap_rows(g, hm, oy, rows);
        const int iy0 = oy * d->stride_h - d->pad_h;
        for (int ox = 0; ox < d->w_out; ox++) {
            const int64_t q0 = (int64_t)iy0 * d->w_in + (ox * d->stride_w - d->pad_w);
            const float *restrict dp = dyt + ((int64_t)oy * d->w_out + ox) * g->copad;
            for (uint64_t m = tap_mask(g, rows, ox); m; m &= m - 1) {
                const int bit = __builtin_ctzll(m);
                const float v = xb[q0 + g->xoff[bit]];
                float *restrict r = dwb + g->woff[bit];
                for (int o = 0; o < n; o++) r[o] += v * dp[o];
            }
        }
    }
}

#ifdef CSNN_HAVE_AVX512_KERNELS
/* The AVX-512 kernels, specialised for each vector count NV (a constant at
 * every call: the accumulators live in registers). */
static inline __attribute__((always_inline)) AVX512_TARGET void
fwd_block_avx512_n(const sp_geom *g, const float *xb, const uint64_t *hm, const float *wb,
                   float *acc, int first, const int BIN, const int NV)
{
    const csnn_conv2d_desc *d = g->d;
    const int64_t *xoff = g->xoff, *woff = g->woff;
    const uint64_t *rows[64];
    for (int oy = 0; oy < d->h_out; oy++) {
        tap_rows(g, hm, oy, rows);
        const int iy0 = oy * d->stride_h - d->pad_h;
        for (int ox = 0; ox < d->w_out; ox++) {
            const int64_t q0 = (int64_t)iy0 * d->w_in + (ox * d->stride_w - d->pad_w);
            float *ar = acc + ((int64_t)oy * d->w_out + ox) * g->copad;
            uint64_t m = tap_mask(g, rows, ox);
            if (!m && !first) continue;
            __m512 a[8];
#pragma GCC unroll 8
            for (int k = 0; k < NV; k++)
                a[k] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(ar + 16 * k);
            if (BIN) {
                /* every non-zero input is 1: fma(1, w, a) is a + w, bit for bit */
                for (; m; m &= m - 1) {
                    const float *wr = wb + woff[__builtin_ctzll(m)];
#pragma GCC unroll 8
                    for (int k = 0; k < NV; k++)
                        a[k] = _mm512_add_ps(a[k], _mm512_loadu_ps(wr + 16 * k));
                }
            } else {
                for (; m; m &= m - 1) {
                    const int bit = __builtin_ctzll(m);
                    const __m512 v = _mm512_set1_ps(xb[q0 + xoff[bit]]);
                    const float *wr = wb + woff[bit];
#pragma GCC unroll 8
                    for (int k = 0; k < NV; k++)
                        a[k] = _mm512_fmadd_ps(v, _mm512_loadu_ps(wr + 16 * k), a[k]);
                }
            }
#pragma GCC unroll 8
            for (int k = 0; k < NV; k++) _mm512_storeu_ps(ar + 16 * k, a[k]);
        }
    }
}

/* dW for bands of DW_BAND output positions (raster order): the bits of the
 * band's masks are first transposed into, per W^T row (bit) j, the set of
 * band positions whose tap j is non-zero; then each row j accumulates
 * x * dy^T[p] over its positions in registers (dy^T of the band, 16 KB for
 * 128 channels, stays in L1), so that each row is loaded and stored once
 * per band instead of once per non-zero tap. Measured on the reference
 * conv2: scattering x dy^T[p] into the rows position by position (one load
 * and store per FMA) was ~1.35x slower at density 0.6; 64-position bands
 * no faster. */
#define DW_BAND 32

static inline __attribute__((always_inline)) AVX512_TARGET void
dw_block_avx512_n(const sp_geom *g, const float *xb, const uint64_t *hm, const float *dyt,
                  float *dwb, const int NV)
{
    const csnn_conv2d_desc *d = g->d;
    const int64_t *xoff = g->xoff, *woff = g->woff;
    const int64_t P = (int64_t)d->h_out * d->w_out;
    const uint64_t *rows[64];
    int64_t qpos[DW_BAND];
    uint32_t col[64];
    int oy = 0, ox = 0;
    tap_rows(g, hm, 0, rows);
    for (int64_t p0 = 0; p0 < P; p0 += DW_BAND) {
        const int np = P - p0 < DW_BAND ? (int)(P - p0) : DW_BAND;
        uint64_t any = 0;
        for (int j = 0; j < 64; j++) col[j] = 0;
        for (int i = 0; i < np; i++) {
            qpos[i] = (int64_t)(oy * d->stride_h - d->pad_h) * d->w_in +
                      (ox * d->stride_w - d->pad_w);
            uint64_t m = tap_mask(g, rows, ox);
            any |= m;
            for (; m; m &= m - 1) col[__builtin_ctzll(m)] |= (uint32_t)1 << i;
            if (++ox == d->w_out) {
                ox = 0;
                if (++oy < d->h_out) tap_rows(g, hm, oy, rows);
            }
        }
        const float *dband = dyt + p0 * g->copad;
        for (; any; any &= any - 1) {
            const int j = __builtin_ctzll(any);
            float *r = dwb + woff[j];
            const float *xj = xb + xoff[j];
            __m512 a[8];
#pragma GCC unroll 8
            for (int k = 0; k < NV; k++) a[k] = _mm512_loadu_ps(r + 16 * k);
            for (uint32_t c = col[j]; c; c &= c - 1) {
                const int i = __builtin_ctz(c);
                const __m512 v = _mm512_set1_ps(xj[qpos[i]]);
                const float *dp = dband + (int64_t)i * g->copad;
#pragma GCC unroll 8
                for (int k = 0; k < NV; k++)
                    a[k] = _mm512_fmadd_ps(v, _mm512_loadu_ps(dp + 16 * k), a[k]);
            }
#pragma GCC unroll 8
            for (int k = 0; k < NV; k++) _mm512_storeu_ps(r + 16 * k, a[k]);
        }
    }
}

#define SP_DISPATCH(fn, ...)                                                                       \
    switch (nv) {                                                                                  \
    case 8: fn(__VA_ARGS__, 8); break;                                                             \
    case 7: fn(__VA_ARGS__, 7); break;                                                             \
    case 6: fn(__VA_ARGS__, 6); break;                                                             \
    case 5: fn(__VA_ARGS__, 5); break;                                                             \
    case 4: fn(__VA_ARGS__, 4); break;                                                             \
    case 3: fn(__VA_ARGS__, 3); break;                                                             \
    case 2: fn(__VA_ARGS__, 2); break;                                                             \
    default: fn(__VA_ARGS__, 1); break;                                                            \
    }

static AVX512_TARGET void fwd_block_avx512(const sp_geom *g, const float *xb, const uint64_t *hm,
                                           const float *wb, float *acc, int first, int binary,
                                           int nv)
{
    if (binary) {
        SP_DISPATCH(fwd_block_avx512_n, g, xb, hm, wb, acc, first, 1)
    } else {
        SP_DISPATCH(fwd_block_avx512_n, g, xb, hm, wb, acc, first, 0)
    }
}

static AVX512_TARGET void dw_block_avx512(const sp_geom *g, const float *xb, const uint64_t *hm,
                                          const float *dyt, float *dwb, int nv)
{
    SP_DISPATCH(dw_block_avx512_n, g, xb, hm, dyt, dwb)
}

static AVX512_TARGET void build_hmask_avx512(const sp_geom *g, const uint64_t *mask, uint64_t *hm)
{
    build_hmask(g, mask, hm); /* vectorised for AVX-512 here */
}
#endif /* CSNN_HAVE_AVX512_KERNELS */

/* The masks of one block: mask [q] and hm [(h_in + 1) * w_out]. */
static void prepare_block(int avx512, const sp_geom *g, const float *xb, int cbl, uint64_t *mask,
                          uint64_t *hm)
{
#ifdef CSNN_HAVE_AVX512_KERNELS
    if (avx512) {
        build_masks_avx512(g, xb, cbl, mask);
        build_hmask_avx512(g, mask, hm);
        return;
    }
#endif
    (void)avx512;
    build_masks_generic(g, xb, cbl, mask);
    build_hmask(g, mask, hm);
}

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
    float *wt; /* W^T [ckk, copad] (forward), W in the input gradient's form (backward) */
    void *ws;
    int32_t steps; /* temporal entries: images [steps, seqs] */
    int64_t seqs;
    int amx;             /* the weight gradient on AMX tiles (backward) */
    int amx_dx;          /* the input gradient on AMX tiles (backward) */
    int wino;            /* the forward by Winograd on AMX tiles: apk is its U */
    int wino_dw;         /* the weight gradient by Winograd on AMX tiles */
    const uint16_t *apk; /* the AMX forward's or input gradient's weights */
} sp_job;

/* Whether image xi goes the sparse way; *binary: whether its non-zero values
 * are all exactly 1 (spikes, pooled spikes), where the forward kernels add
 * weight rows instead of multiplying them by the input. */
static int sparse_by_count(const sp_job *j, int64_t nonzero)
{
    if (csnn__cpu_sparse_mode) return csnn__cpu_sparse_mode == 1;
    return (double)nonzero <= j->max_density * (double)j->p.in_size;
}

static int image_is_sparse(const sp_job *j, const float *xi, int *binary)
{
    int64_t other;
    const int64_t nonzero = count_nonzero(j->avx512, xi, j->p.in_size, &other);
    *binary = other == 0;
    return sparse_by_count(j, nonzero);
}

static uint64_t *region_hmask(const sp_geom *g, float *region)
{
    return (uint64_t *)(region + ALIGN_FLOATS((size_t)g->q * 2));
}

static int block_channels(const sp_geom *g, int blk)
{
    const int c0 = blk * g->cb;
    return g->d->c_in - c0 < g->cb ? g->d->c_in - c0 : g->cb;
}

/* acc [P, copad] of one image: the sparse product of all blocks (added to
 * acc when `accumulate`, else acc is overwritten). */
static void sparse_image_forward(const sp_job *j, const float *xi, int binary, int accumulate,
                                 float *region, float *acc)
{
    const sp_geom *g = &j->g;
    uint64_t *mask = (uint64_t *)region, *hm = region_hmask(g, region);
    for (int blk = 0; blk < g->blocks; blk++) {
        const int c0 = blk * g->cb;
        const float *xb = xi + c0 * g->q;
        prepare_block(j->avx512, g, xb, block_channels(g, blk), mask, hm);
        for (int co0 = 0; co0 < g->copad; co0 += SP_TILE) {
            const int nv = (g->copad - co0 < SP_TILE ? g->copad - co0 : SP_TILE) / 16;
            const float *wb = j->wt + (int64_t)c0 * g->kk * g->copad + co0;
#ifdef CSNN_HAVE_AVX512_KERNELS
            if (j->avx512) {
                fwd_block_avx512(g, xb, hm, wb, acc + co0, !accumulate && blk == 0, binary, nv);
                continue;
            }
#endif
            fwd_block_generic(g, xb, hm, wb, acc + co0, !accumulate && blk == 0, nv);
        }
    }
}

/* yi of one image on AMX tiles when they are used for this call and the
 * image has `nonzero` inputs from CONV_AMX_FWD_MIN_DENSITY on; 0 when not
 * done (then the other kernels). */
static int amx_image_forward(const sp_job *j, int64_t nonzero, const float *xi, float *yi,
                             float *region)
{
    if (!j->apk || (double)nonzero < CONV_AMX_FWD_MIN_DENSITY * (double)j->p.in_size) return 0;
    if (j->wino)
        return csnn__cpu_amx_wino_fwd_image(&j->g.wino, j->apk, xi, j->b, region + j->g.amx_off,
                                            yi);
    return csnn__cpu_amx_fwd_image(&j->g.amx_fwd, j->apk, xi, j->b, region + j->g.amx_off, yi);
}

/* yi of one image the per-image way: AMX, dense or sparse by its count. */
static void image_forward(const sp_job *j, const float *xi, float *yi, float *region)
{
    const conv_plan *p = &j->p;
    int64_t other;
    const int64_t nonzero = count_nonzero(j->avx512, xi, p->in_size, &other);
    if (amx_image_forward(j, nonzero, xi, yi, region)) return;
    const int binary = other == 0;
    if (!sparse_by_count(j, nonzero)) {
        csnn__cpu_conv_image_forward(p, xi, j->w, j->b, yi, region);
        return;
    }
    float *acc = region + j->g.mask_floats;
    sparse_image_forward(j, xi, binary, 0, region, acc);
    /* y [c_out, P] = acc^T + b */
    simd_transpose(j->avx512, acc, j->g.copad, p->hw_out, p->d->c_out, yi, p->hw_out, j->b);
}

/* Image by image; also the temporal entry's lanes when the AMX forward is
 * prepared (the batch's first image is dense enough: AMX, image by image,
 * in lanes of n / lanes consecutive images, where whole sequences would
 * give uneven lanes when the samples are not a multiple of the lanes). */
static void sp_fwd_lane(void *arg, int64_t lane, int worker)
{
    (void)worker;
    const sp_job *j = arg;
    const conv_plan *p = &j->p;
    float *region = sp_region(&j->g, j->ws, lane);
    for (int64_t i = conv_lane_first(p, lane); i < conv_lane_first(p, lane + 1); i++)
        image_forward(j, j->x + i * p->in_size, j->y + i * p->out_size, region);
}

typedef struct {
    const cpu_amx_fwd *f;
    const float *w;
    uint16_t *a;
    unsigned char finite[64]; /* per tap (sp_possible: at most 64) */
} amx_pack_job;

static void amx_pack_range(void *arg, int64_t t0, int64_t t1, int worker)
{
    (void)worker;
    amx_pack_job *pj = arg;
    for (int64_t t = t0; t < t1; t++)
        pj->finite[t] = (unsigned char)csnn__cpu_amx_fwd_pack_weights(pj->f, pj->w, (int)t, pj->a);
}

/* Packs w for an AMX forward-shaped kernel; 1 when every weight is finite
 * (else the kernel is not to be used). */
static int amx_pack(const cpu_device *dv, const cpu_amx_fwd *f, const float *w, uint16_t *a)
{
    amx_pack_job pj = {.f = f, .w = w, .a = a};
    const int kk = f->kh * f->kw;
    csnn__cpu_parallel_for(dv, kk, 1, amx_pack_range, &pj);
    for (int t = 0; t < kk; t++)
        if (!pj.finite[t]) return 0;
    return 1;
}

typedef struct {
    const cpu_amx_wino *f;
    const float *w;
    uint16_t *u;
    unsigned char finite[16];
} wino_pack_job;

static void wino_pack_range(void *arg, int64_t k0, int64_t k1, int worker)
{
    (void)worker;
    wino_pack_job *pj = arg;
    const int64_t c_out = pj->f->c_out;
    for (int64_t k = k0; k < k1; k++)
        pj->finite[k] = (unsigned char)csnn__cpu_amx_wino_pack_u(pj->f, pj->w, c_out * k / 16,
                                                                 c_out * (k + 1) / 16, pj->u);
}

/* U of the Winograd forward on AMX tiles, in 16 parts of the output
 * channels; 1 when all of it is finite (else the kernel is not to be used). */
static int amx_wino_pack(const cpu_device *dv, const cpu_amx_wino *f, const float *w, uint16_t *u)
{
    wino_pack_job pj = {.f = f, .w = w, .u = u};
    csnn__cpu_parallel_for(dv, 16, 1, wino_pack_range, &pj);
    for (int k = 0; k < 16; k++)
        if (!pj.finite[k]) return 0;
    return 1;
}

/* Whether the AMX kernels are to run (not when a test forces the sparse or
 * the dense kernels, nor under CSNN_DISABLE=amx). */
static int amx_wanted(const cpu_device *dv, const sp_geom *g)
{
    return g->amx_shape && csnn__cpu_sparse_mode == 0 && !(dv && dv->no_amx) &&
           csnn__cpu_amx_usable();
}

/* Whether the AMX kernels go by Winograd where they run (the shape suits,
 * not under CSNN_DISABLE=winograd nor when a test turns Winograd off). */
static int wino_wanted(const cpu_device *dv, const sp_geom *g)
{
    return g->wino_shape && csnn__cpu_wino_mode != 2 && !(dv && dv->no_winograd);
}

/* W^T [ckk, copad] from w [c_out, ckk], zero in the padding columns; rows
 * [r0, r1). */
static void make_wt_range(void *arg, int64_t r0, int64_t r1, int worker)
{
    (void)worker;
    const sp_job *j = arg;
    const int64_t ckk = j->p.ckk, copad = j->g.copad;
    const int c_out = j->g.d->c_out;
    simd_transpose(j->avx512, j->w + r0, ckk, c_out, r1 - r0, j->wt + r0 * copad, copad, NULL);
    for (int64_t r = r0; r < r1; r++)
        for (int64_t co = c_out; co < copad; co++) j->wt[r * copad + co] = 0.0f;
}

static double max_density(int avx512, double tuned)
{
    return avx512 ? tuned : CONV_SPARSE_GENERIC_MAX_DENSITY;
}

static void tp_fwd_lane(void *arg, int64_t lane, int worker);
static void tp_bwd_lane(void *arg, int64_t lane, int worker);

/* The job of a spike-sparse entry; with steps > 1 the images are [steps,
 * seqs] and the lanes (at most seqs) take whole sequences (the temporal
 * entries). */
static void sp_job_setup(sp_job *j, const csnn_conv2d_desc *d, int32_t steps, double tuned)
{
    csnn__cpu_conv_plan(d, &j->p);
    sp_make_geom(&j->p, &j->g);
    j->avx512 = csnn__cpu_use_avx512();
    j->max_density = max_density(j->avx512, tuned);
    if (steps > 1) {
        j->steps = steps;
        j->seqs = d->n / steps;
        if (j->p.lanes > j->seqs) j->p.lanes = (int)j->seqs;
    }
}

/* conv2d_forward_sparse / _temporal once their shapes are checked and the
 * other paths are ruled out (steps 1: image by image). */
static csnn_status sp_forward(const cpu_device *dv, const char *op, const csnn_conv2d_desc *d,
                              int32_t steps, const float *x, const float *w, const float *b,
                              float *y, void *workspace)
{
    CPU_NOT_NULL(op, x);
    CPU_NOT_NULL(op, w);
    CPU_NOT_NULL(op, y);
    CPU_NOT_NULL(op, workspace);
    if (d->has_bias) CPU_NOT_NULL(op, b);
    sp_job j = {.x = x, .w = w, .b = d->has_bias ? b : NULL, .y = y, .ws = workspace};
    sp_job_setup(&j, d, steps, CONV_SPARSE_FWD_MAX_DENSITY);
    j.wt = workspace;
    csnn__cpu_parallel_for(dv, j.p.ckk, 16 + (1 << 14) / d->c_out, make_wt_range, &j);
    /* (the temporal kernels when a test forces them) */
    int amx = amx_wanted(dv, &j.g) && csnn__cpu_temporal_mode == 0;
    if (amx) {
        /* the weights are packed only when the batch's first or last image
         * is dense enough for AMX (the images of a step have like
         * densities, and spiking layers fire least at the first step, which
         * comes first in [T, N]; the images are still chosen one by one) */
        int64_t other;
        const int64_t first = count_nonzero(j.avx512, x, j.p.in_size, &other);
        const int64_t last =
            count_nonzero(j.avx512, x + (int64_t)(d->n - 1) * j.p.in_size, j.p.in_size, &other);
        amx = (double)(first > last ? first : last) >=
              CONV_AMX_FWD_MIN_DENSITY * (double)j.p.in_size;
    }
    if (amx) {
        /* by Winograd where it applies and is not turned off, else (also
         * when U overflows) tap by tap; else no AMX */
        uint16_t *apk = sp_amx_weights(&j.g, workspace);
        j.wino = wino_wanted(dv, &j.g) && amx_wino_pack(dv, &j.g.wino, w, apk);
        if (j.wino || amx_pack(dv, &j.g.amx_fwd, w, apk)) j.apk = apk;
    }
    csnn__pool_run(dv ? dv->pool : NULL, j.p.lanes, steps > 1 && !j.apk ? tp_fwd_lane : sp_fwd_lane,
                   &j);
    return CSNN_OK;
}

csnn_status csnn__cpu_conv2d_forward_sparse(void *dev, const csnn_conv2d_desc *d, const float *x,
                                            const float *w, const float *b, float *y,
                                            void *workspace)
{
    static const char op[] = "conv2d_forward_sparse";
    CSNN_TRY(csnn__cpu_conv_check(op, d));
    if (d->n == 0) return CSNN_OK;
    if (!sp_possible(d)) return csnn__cpu_conv2d_forward(dev, d, x, w, b, y, workspace);
    return sp_forward(dev, op, d, 1, x, w, b, y, workspace);
}

/* ------------------------------------------------------------------------ */
/* Backward                                                                  */
/* ------------------------------------------------------------------------ */

static void sparse_image_dw(const sp_job *j, const float *xi, const float *dyt, float *region,
                            float *dwt)
{
    const sp_geom *g = &j->g;
    uint64_t *mask = (uint64_t *)region, *hm = region_hmask(g, region);
    for (int blk = 0; blk < g->blocks; blk++) {
        const int c0 = blk * g->cb;
        const float *xb = xi + c0 * g->q;
        prepare_block(j->avx512, g, xb, block_channels(g, blk), mask, hm);
        for (int co0 = 0; co0 < g->copad; co0 += SP_TILE) {
            const int nv = (g->copad - co0 < SP_TILE ? g->copad - co0 : SP_TILE) / 16;
            float *dwb = dwt + (int64_t)c0 * g->kk * g->copad + co0;
#ifdef CSNN_HAVE_AVX512_KERNELS
            if (j->avx512) {
                dw_block_avx512(g, xb, hm, dyt + co0, dwb, nv);
                continue;
            }
#endif
            dw_block_generic(g, xb, hm, dyt + co0, dwb, nv);
        }
    }
}

/* dy^T [P, copad] of one image, zero in the padding columns. */
static void dy_transposed(const sp_job *j, const float *dyi, float *dyt)
{
    const sp_geom *g = &j->g;
    const int64_t hw = j->p.hw_out;
    const int c_out = j->p.d->c_out;
    simd_transpose(j->avx512, dyi, hw, c_out, hw, dyt, g->copad, NULL);
    if (c_out < g->copad)
        for (int64_t q = 0; q < hw; q++)
            for (int64_t co = c_out; co < g->copad; co++) dyt[q * g->copad + co] = 0.0f;
}

/* dW^T += one image's weight gradient with the float kernels: sparse (from
 * dy^T in dyt, transposed here unless `dyt_ready`) or dense by its count
 * of non-zero inputs. */
static void float_image_dw(const sp_job *j, const float *xi, const float *dyi, float *dyt,
                           int dyt_ready, float *region, float *dwt)
{
    const conv_plan *p = &j->p;
    int binary;
    if (image_is_sparse(j, xi, &binary)) {
        /* dy^T [P, copad], zero in the padding columns */
        if (!dyt_ready) dy_transposed(j, dyi, dyt);
        sparse_image_dw(j, xi, dyt, region, dwt);
    } else {
        /* dW^T [ckk, c_out] += col [ckk, hw] dy_i^T [hw, c_out] */
        const int hw = (int)p->hw_out;
        if (!p->direct) csnn__cpu_im2col(p->d, (float *)xi, region, 1);
        csnn__cpu_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)p->ckk, p->d->c_out, hw,
                        1.0f, p->direct ? xi : region, hw, dyi, hw, 1.0f, dwt, j->g.copad);
    }
}

/* The backward image by image (steps 1, or on AMX tiles): the weight
 * gradient on AMX tiles when j->amx and the image's inputs are bfloat16
 * numbers (by Winograd: the products of the lane's consecutive such images
 * summed before one output transform), else with the float kernels
 * (float_image_dw); the input gradient
 * on AMX tiles when j->amx_dx (not taken where Winograd's F(2x2, 3x3) is)
 * and dy is finite, else by Winograd, tap by tap or by
 * col2im through sgemm. */
static void image_bwd_lane(void *arg, int64_t lane, int worker)
{
    (void)worker;
    const sp_job *j = arg;
    const conv_plan *p = &j->p;
    const sp_geom *g = &j->g;
    float *region = sp_region(g, j->ws, lane);
    float *dyt = region + g->mask_floats, *scratch = region + g->amx_off;
    float *dwt = sp_lane_dwt(g, j->ws, lane);
    memset(dwt, 0, sizeof(float) * (size_t)p->ckk * (size_t)g->copad);
    const int64_t i0 = conv_lane_first(p, lane), i1 = conv_lane_first(p, lane + 1);
    int summing = 0; /* images summed in the Winograd weight gradient's M */
    for (int64_t i = i0; i < i1; i++) {
        const float *xi = j->x + i * p->in_size, *dyi = j->dy + i * p->out_size;
        if (j->amx) {
            dy_transposed(j, dyi, dyt);
            if (j->wino_dw && csnn__cpu_amx_wino_dw_image(&g->wino, xi, dyt, scratch, !summing)) {
                summing = 1;
                continue;
            }
            if (summing) { /* (the other kernels overwrite M) */
                csnn__cpu_amx_wino_dw_flush(&g->wino, scratch, dwt);
                summing = 0;
            }
            if (!csnn__cpu_amx_dw_image(&g->amx, xi, dyt, scratch, dwt))
                float_image_dw(j, xi, dyi, dyt, 1, region, dwt);
        } else {
            float_image_dw(j, xi, dyi, dyt, 0, region, dwt);
        }
    }
    if (summing) csnn__cpu_amx_wino_dw_flush(&g->wino, scratch, dwt);
    /* the input gradients after all the lane's weight gradients: the
     * weights in the input gradient's form (1 MB for the reference conv2)
     * then stay in the cache from one image to the next */
    for (int64_t i = i0; j->dx && i < i1; i++) {
        const float *dyi = j->dy + i * p->out_size;
        float *dxi = j->dx + i * p->in_size;
        if (!(j->amx_dx && csnn__cpu_amx_fwd_image(&g->amx_dx, j->apk, dyi, NULL, scratch, dxi)))
            csnn__cpu_conv_image_dx(p, j->w, j->wt, dyi, dxi, region);
    }
}

#define SUM_ROWS 16

/* dw [c_out, ckk] = sum over lanes (in order) of dW^T_lane, transposed:
 * row blocks [rb0, rb1) of SUM_ROWS rows of W^T. */
static void sum_dwt_range(void *arg, int64_t rb0, int64_t rb1, int worker)
{
    (void)worker;
    const sp_job *j = arg;
    const sp_geom *g = &j->g;
    const int64_t ckk = j->p.ckk, copad = g->copad;
    const int c_out = g->d->c_out;
    float tmp[SUM_ROWS * SP_TILE];
    for (int64_t rb = rb0; rb < rb1; rb++) {
        const int64_t r0 = rb * SUM_ROWS, nr = ckk - r0 < SUM_ROWS ? ckk - r0 : SUM_ROWS;
        for (int co0 = 0; co0 < c_out; co0 += SP_TILE) {
            const int n = c_out - co0 < SP_TILE ? c_out - co0 : SP_TILE;
            for (int64_t r = 0; r < nr; r++) {
                float *restrict t = tmp + r * SP_TILE;
                const float *src = sp_lane_dwt(g, j->ws, 0) + (r0 + r) * copad + co0;
                for (int o = 0; o < n; o++) t[o] = src[o];
                for (int64_t lane = 1; lane < j->p.lanes; lane++) {
                    const float *restrict part =
                        sp_lane_dwt(g, j->ws, lane) + (r0 + r) * copad + co0;
                    for (int o = 0; o < n; o++) t[o] += part[o];
                }
            }
            /* dw[co0 + o, r0 + r] = tmp[r, o] */
            simd_transpose(j->avx512, tmp, SP_TILE, nr, n, j->dw + (int64_t)co0 * ckk + r0, ckk,
                           NULL);
        }
    }
}

/* conv2d_backward_sparse / _temporal once their shapes are checked and the
 * other paths are ruled out (steps 1: image by image). */
static csnn_status sp_backward(const cpu_device *dv, const char *op, const csnn_conv2d_desc *d,
                               int32_t steps, const float *x, const float *w, const float *dy,
                               float *dx, float *dw, float *db, void *workspace)
{
    CPU_NOT_NULL(op, dw);
    if (d->has_bias) CPU_NOT_NULL(op, db);
    CPU_NOT_NULL(op, x);
    CPU_NOT_NULL(op, w);
    CPU_NOT_NULL(op, dy);
    CPU_NOT_NULL(op, workspace);
    sp_job j = {.x = x, .w = w, .dy = dy, .dx = dx, .dw = dw, .ws = workspace};
    sp_job_setup(&j, d, steps, CONV_SPARSE_DW_MAX_DENSITY);
    if (dv && dv->no_winograd) j.p.wino_dx = 0;
    if (dx && csnn__cpu_conv_dx_w_floats(&j.p)) { /* where the forward keeps its W^T */
        j.wt = workspace;
        csnn__cpu_conv_prepare_dx(dv, &j.p, w, j.wt);
    }
    j.amx = amx_wanted(dv, &j.g);
    j.wino_dw = j.amx && wino_wanted(dv, &j.g);
    if (j.amx && dx && !j.p.wino_dx) {
        uint16_t *apk = sp_amx_weights(&j.g, workspace);
        j.amx_dx = amx_pack(dv, &j.g.amx_dx, w, apk);
        j.apk = apk;
    }
    csnn__pool_run(dv ? dv->pool : NULL, j.p.lanes,
                   steps > 1 && !j.amx ? tp_bwd_lane : image_bwd_lane, &j);
    const int64_t row_blocks = (j.p.ckk + SUM_ROWS - 1) / SUM_ROWS;
    csnn__cpu_parallel_for(dv, row_blocks, 1 + (1 << 12) / ((int64_t)d->c_out * j.p.lanes),
                           sum_dwt_range, &j);
    if (d->has_bias) csnn__cpu_channel_sum(dv, dy, db, d->n, d->c_out, j.p.hw_out);
    return CSNN_OK;
}

csnn_status csnn__cpu_conv2d_backward_sparse(void *dev, const csnn_conv2d_desc *d,
                                             const float *x, const float *w, const float *dy,
                                             float *dx, float *dw, float *db, void *workspace)
{
    static const char op[] = "conv2d_backward_sparse";
    CSNN_TRY(csnn__cpu_conv_check(op, d));
    if (d->n == 0 || !sp_possible(d))
        return csnn__cpu_conv2d_backward(dev, d, x, w, dy, dx, dw, db, workspace);
    return sp_backward(dev, op, d, 1, x, w, dy, dx, dw, db, workspace);
}

/* ------------------------------------------------------------------------ */
/* Spike trains: the temporal entries                                        */
/* ------------------------------------------------------------------------ */

/* The images are [steps, seqs]: the steps of one sequence (one sample) are
 * seqs images apart, and the spikes of consecutive steps mostly agree. By
 * linearity the product of step t is the product of step t - 1 plus that
 * of the difference x[t] - x[t-1]; for the weight gradient, summation by
 * parts gives sum_t dy[t] x[t] = sum_t D[t] (x[t] - x[t-1]) with the suffix
 * sums D[t] = dy[t] + ... + dy[T-1] (x[-1] = 0). Each step takes the
 * difference when it has at most 3/4 of the non-zeros of x[t] (and both
 * steps are finite), else restarts from x[t] (sparse or dense as the
 * per-image entries decide):
 * the forward keeps acc from step to step, the weight gradient runs from the
 * last step down with D of the current run of differences. Sequences are
 * whole in one lane, the lanes depend on the descriptor and the steps only,
 * and the choice on the data only: the results do not depend on the thread
 * count. They equal the per-image entries' within float rounding (the sums
 * are grouped differently). csnn__cpu_temporal_mode: 0 choose, 1 take every
 * usable difference, 2 never (tests and benchmarks). */
int csnn__cpu_temporal_mode;

/* A sequence runs in one lane: with fewer sequences than this the entries
 * go image by image (the per-image entries), which spreads the steps of a
 * few samples over the threads. The choice depends on the descriptor and
 * the steps only. */
#define TEMPORAL_MIN_SEQS 8

static int64_t seq_first(const sp_job *j, int64_t lane)
{
    return j->seqs * lane / j->p.lanes;
}

/* The non-zeros of x[t] (*nonzero; *other: those that are not 1) and, when
 * `want`, the count of non-zeros of x[t] - x[t-1] (written to delta); -1
 * when the difference is not to be taken. */
static int64_t temporal_scan(const sp_job *j, const float *xi, int want, int64_t *nonzero,
                             int64_t *other, float *delta)
{
    const int64_t n = j->p.in_size;
    if (!want || csnn__cpu_temporal_mode == 2) {
        *nonzero = count_nonzero(j->avx512, xi, n, other);
        return -1;
    }
    const int64_t changed =
        step_difference(j->avx512, xi, xi - j->seqs * n, n, delta, nonzero, other);
    /* a difference costs a little more per non-zero (values +-1 are
     * multiplied, not added, and it is formed first): it must save 1/4 */
    if (changed < 0 || (csnn__cpu_temporal_mode == 0 && 4 * changed >= 3 * *nonzero)) return -1;
    return changed;
}

static void tp_fwd_lane(void *arg, int64_t lane, int worker)
{
    (void)worker;
    const sp_job *j = arg;
    const conv_plan *p = &j->p;
    float *region = sp_region(&j->g, j->ws, lane);
    float *acc = region + j->g.mask_floats, *delta = region + j->g.delta_off;
    for (int64_t b = seq_first(j, lane); b < seq_first(j, lane + 1); b++) {
        int valid = 0; /* acc holds the product of the step before */
        for (int32_t t = 0; t < j->steps; t++) {
            const int64_t i = (int64_t)t * j->seqs + b;
            const float *xi = j->x + i * p->in_size;
            float *yi = j->y + i * p->out_size;
            int64_t nonzero, other;
            const int64_t changed = temporal_scan(j, xi, valid, &nonzero, &other, delta);
            if (changed > 0) {
                sparse_image_forward(j, delta, 0, 1, region, acc);
            } else if (changed < 0) {
                if (!sparse_by_count(j, nonzero)) {
                    csnn__cpu_conv_image_forward(p, xi, j->w, j->b, yi, region);
                    valid = 0;
                    continue;
                }
                sparse_image_forward(j, xi, other == 0, 0, region, acc);
                valid = 1;
            } /* changed == 0: the same input, the same product */
            simd_transpose(j->avx512, acc, j->g.copad, p->hw_out, p->d->c_out, yi, p->hw_out,
                           j->b);
        }
    }
}

static csnn_status temporal_check(const char *op, const csnn_conv2d_desc *d, int32_t steps)
{
    CSNN_TRY(csnn__cpu_conv_check(op, d));
    if (steps < 1 || d->n % steps != 0)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "cpu %s: %d images are not %d time steps of one batch", op, d->n,
                           steps);
    return CSNN_OK;
}

csnn_status csnn__cpu_conv2d_forward_temporal(void *dev, const csnn_conv2d_desc *d, int32_t steps,
                                              const float *x, const float *w, const float *b,
                                              float *y, void *workspace)
{
    static const char op[] = "conv2d_forward_temporal";
    CSNN_TRY(temporal_check(op, d, steps));
    if (steps == 1 || d->n / steps < TEMPORAL_MIN_SEQS || !sp_possible(d))
        return csnn__cpu_conv2d_forward_sparse(dev, d, x, w, b, y, workspace);
    return sp_forward(dev, op, d, steps, x, w, b, y, workspace);
}

static void tp_bwd_lane(void *arg, int64_t lane, int worker)
{
    (void)worker;
    const sp_job *j = arg;
    const conv_plan *p = &j->p;
    const sp_geom *g = &j->g;
    const int hw = (int)p->hw_out, ckk = (int)p->ckk, c_out = p->d->c_out;
    const int64_t pc = (int64_t)hw * g->copad;
    float *region = sp_region(g, j->ws, lane);
    float *dyt = region + g->mask_floats, *delta = region + g->delta_off;
    float *dsum = region + g->dsum_off;
    float *dwt = sp_lane_dwt(g, j->ws, lane);
    memset(dwt, 0, sizeof(float) * (size_t)p->ckk * (size_t)g->copad);
    for (int64_t b = seq_first(j, lane); b < seq_first(j, lane + 1); b++) {
        int live = 0; /* dsum holds the sum of dy over the run so far */
        for (int32_t t = j->steps - 1; t >= 0; t--) {
            const int64_t i = (int64_t)t * j->seqs + b;
            const float *xi = j->x + i * p->in_size, *dyi = j->dy + i * p->out_size;
            /* dy^T [P, copad], zero in the padding columns, added to dsum */
            if (live) {
                dy_transposed(j, dyi, dyt);
                for (int64_t k = 0; k < pc; k++) dsum[k] += dyt[k];
            } else {
                dy_transposed(j, dyi, dsum); /* a run starts: dsum = dy^T */
            }
            live = 1;
            int64_t nonzero, other;
            const int64_t changed = temporal_scan(j, xi, t > 0, &nonzero, &other, delta);
            if (changed > 0) {
                sparse_image_dw(j, delta, dsum, region, dwt);
            } else if (changed < 0) {
                /* the run starts here: dW^T += x[t] dsum */
                if (sparse_by_count(j, nonzero)) {
                    sparse_image_dw(j, xi, dsum, region, dwt);
                } else {
                    if (!p->direct) csnn__cpu_im2col(p->d, (float *)xi, region, 1);
                    csnn__cpu_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ckk, c_out, hw,
                                    1.0f, p->direct ? xi : region, hw, dsum, g->copad, 1.0f, dwt,
                                    g->copad);
                }
                live = 0;
            }
            if (j->dx) csnn__cpu_conv_image_dx(p, j->w, j->wt, dyi, j->dx + i * p->in_size, region);
        }
    }
}

csnn_status csnn__cpu_conv2d_backward_temporal(void *dev, const csnn_conv2d_desc *d,
                                               int32_t steps, const float *x, const float *w,
                                               const float *dy, float *dx, float *dw, float *db,
                                               void *workspace)
{
    static const char op[] = "conv2d_backward_temporal";
    CSNN_TRY(temporal_check(op, d, steps));
    if (steps == 1 || d->n / steps < TEMPORAL_MIN_SEQS || !sp_possible(d))
        return csnn__cpu_conv2d_backward_sparse(dev, d, x, w, dy, dx, dw, db, workspace);
    return sp_backward(dev, op, d, steps, x, w, dy, dx, dw, db, workspace);
}
