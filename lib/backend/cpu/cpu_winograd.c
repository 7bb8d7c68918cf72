/* cpu_winograd.c - the input gradient of a 3 x 3, stride-1 convolution by
 * Winograd's minimal filtering F(2 x 2, 3 x 3).
 *
 * dx_i [c_in, h_in, w_in] is the correlation of dy_i, padded by 2 - pad on
 * each side, with the kernel turned by 180 degrees, summed over c_out:
 *   dx[ci][y][x] = sum over co, a, b of rot(W)[co][ci][a][b] dyp[co][y + a][x + b]
 * F(2 x 2, 3 x 3) computes a 2 x 2 block of that from a 4 x 4 tile of dyp
 * with 16 products instead of 36 (Lavin and Gray, 2016):
 *   block = A^T [ (G g G^T) (.) (B^T d B) ] A,
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],
 *   G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
 *   A^T = [1 1 1 0; 0 1 -1 -1].
 * The products for all tiles and channels are 16 matrix products, one per
 * position xi of the 4 x 4 transformed tile:
 *   M_xi [c_in, tiles] = U_xi [c_in, c_out] V_xi [c_out, tiles],
 * U = the transformed kernels (once per call, csnn__cpu_wino_make_u), V =
 * the transformed tiles of one image. 36 / 16 = 2.25 times fewer products
 * than the direct sum; the transforms use additions and exact halvings only,
 * and the result equals the direct sum to float rounding
 * (tests/backend/test_cpu_conv.c checks it against a double reference).
 *
 * The products run in an own kernel rather than sgemm: blocks of 8 input
 * channels x 48 tiles in 24 AVX-512 accumulators over the c_out sum (U laid
 * out [xi][c_in / 8][c_out][8], so the 8 values a step broadcasts are
 * adjacent; V's panel of 48 tiles stays in L1 across the channel blocks).
 * OpenBLAS spends ~35 % of the time on packing and edges at these sizes
 * (128 x 144 x 128 for the reference conv2). Where AVX-512 is missing a
 * portable loop computes the same sums (to float rounding: no FMA).
 * One image's result depends on its own data and on the shape only, so
 * every entry that calls it (dense, sparse, temporal) gives the same bits. */
#include <string.h>

#include "cpu_conv.h"
#include "cpu_simd.h"

int csnn__cpu_wino_mode;

#define WINO_CB 8  /* input channels per block of the product */
#define WINO_TB 48 /* tiles per panel of the product: three vectors */

void csnn__cpu_wino_geom(const csnn_conv2d_desc *d, int input_grad, wino_geom *g)
{
    if (input_grad) { /* dy, padded by 2 - pad, into dx */
        g->h = d->h_out, g->w = d->w_out, g->pt = 2 - d->pad_h, g->pl = 2 - d->pad_w;
        g->oh = d->h_in, g->ow = d->w_in;
    } else { /* x, padded by pad, into y */
        g->h = d->h_in, g->w = d->w_in, g->pt = d->pad_h, g->pl = d->pad_w;
        g->oh = d->h_out, g->ow = d->w_out;
    }
    g->th = (g->oh + 1) / 2;
    g->tw = (g->ow + 1) / 2;
}

/* The padded input plane: rows 2 th + 2, columns 2 tw + 2. */
static size_t padded_floats(const wino_geom *g)
{
    return ALIGN_FLOATS((size_t)(2 * g->th + 2) * (size_t)(2 * g->tw + 2));
}

/* The row buffers of the transforms: four rows of the input pass, each
 * long enough for whole vectors of 16 tiles read at an offset of up to 2
 * (2 * 16 * ceil(tw / 16) + 34 floats), or two output rows. */
static size_t row_stride(const wino_geom *g)
{
    return ALIGN_FLOATS((size_t)(2 * ((g->tw + 15) / 16 * 16) + 34));
}

size_t csnn__cpu_wino_plane_floats(const wino_geom *g)
{
    return padded_floats(g) + 4 * row_stride(g);
}

void csnn__cpu_wino_plane_zero(const wino_geom *g, float *plane)
{
    memset(plane, 0, sizeof(float) * csnn__cpu_wino_plane_floats(g));
}

/* The input gradient's geometry. */
static wino_geom dx_geom(const csnn_conv2d_desc *d)
{
    wino_geom g;
    csnn__cpu_wino_geom(d, 1, &g);
    return g;
}

/* Tiles rounded up to whole vectors, the row length of V and M. */
static int64_t tiles_padded(const csnn_conv2d_desc *d)
{
    const wino_geom g = dx_geom(d);
    return (g.th * g.tw + 15) & ~(int64_t)15;
}

/* Input channels rounded up to whole blocks (U and M have zero rows past
 * c_in). */
static int64_t cin_padded(const csnn_conv2d_desc *d)
{
    return ((int64_t)d->c_in + WINO_CB - 1) / WINO_CB * WINO_CB;
}

int csnn__cpu_wino_shape(const csnn_conv2d_desc *d)
{
    return d->kh == 3 && d->kw == 3 && d->stride_h == 1 && d->stride_w == 1 && d->pad_h <= 2 &&
           d->pad_w <= 2;
}

size_t csnn__cpu_wino_u_floats(const csnn_conv2d_desc *d)
{
    return ALIGN_FLOATS((size_t)16 * (size_t)cin_padded(d) * (size_t)d->c_out);
}

size_t csnn__cpu_wino_scratch_floats(const csnn_conv2d_desc *d)
{
    const size_t ntp = (size_t)tiles_padded(d);
    const wino_geom g = dx_geom(d);
    return ALIGN_FLOATS((size_t)16 * (size_t)d->c_out * ntp) +
           ALIGN_FLOATS((size_t)16 * (size_t)cin_padded(d) * ntp) +
           csnn__cpu_wino_plane_floats(&g);
}

/* ------------------------------------------------------------------------ */
/* The kernels' transform                                                    */
/* ------------------------------------------------------------------------ */

typedef struct {
    const csnn_conv2d_desc *d;
    const float *w;
    float *u;
} make_u_job;

/* U[xi][ci / 8][co][ci % 8] = (G g G^T)[xi], g = W[co][ci] turned by 180
 * degrees (0 for the padding channels); rows co of W in [co0, co1). */
static void make_u_range(void *arg, int64_t co0, int64_t co1, int worker)
{
    (void)worker;
    const make_u_job *j = arg;
    const int c_in = j->d->c_in, c_out = j->d->c_out;
    const int64_t cinp = cin_padded(j->d), plane = cinp * c_out;
    for (int64_t co = co0; co < co1; co++)
        for (int64_t ci = 0; ci < cinp; ci++) {
            float g[3][3] = {{0}}, t[4][3];
            if (ci < c_in) {
                const float *k = j->w + (co * c_in + ci) * 9;
                for (int a = 0; a < 3; a++)
                    for (int b = 0; b < 3; b++) g[a][b] = k[(2 - a) * 3 + (2 - b)];
            }
            for (int b = 0; b < 3; b++) { /* t = G g */
                t[0][b] = g[0][b];
                t[1][b] = 0.5f * (g[0][b] + g[1][b] + g[2][b]);
                t[2][b] = 0.5f * (g[0][b] - g[1][b] + g[2][b]);
                t[3][b] = g[2][b];
            }
            float *dst = j->u + (ci / WINO_CB * c_out + co) * WINO_CB + ci % WINO_CB;
            for (int r = 0; r < 4; r++) { /* U = t G^T */
                dst[(4 * r + 0) * plane] = t[r][0];
                dst[(4 * r + 1) * plane] = 0.5f * (t[r][0] + t[r][1] + t[r][2]);
                dst[(4 * r + 2) * plane] = 0.5f * (t[r][0] - t[r][1] + t[r][2]);
                dst[(4 * r + 3) * plane] = t[r][2];
            }
        }
}

void csnn__cpu_wino_make_u(const cpu_device *dv, const csnn_conv2d_desc *d, const float *w,
                           float *u)
{
    make_u_job j = {d, w, u};
    csnn__cpu_parallel_for(dv, d->c_out, 1, make_u_range, &j);
}

/* ------------------------------------------------------------------------ */
/* Portable transforms and product                                           */
/* ------------------------------------------------------------------------ */

/* B^T on four rows a, b, c, e of the plane (n columns) into r0..r3. */
static inline __attribute__((always_inline)) void rows_bt(const float *restrict a,
                                                          const float *restrict b,
                                                          const float *restrict c,
                                                          const float *restrict e, int64_t n,
                                                          float *restrict r, int64_t rs)
{
    for (int64_t x = 0; x < n; x++) {
        r[x] = a[x] - c[x];
        r[rs + x] = b[x] + c[x];
        r[2 * rs + x] = c[x] - b[x];
        r[3 * rs + x] = b[x] - e[x];
    }
}

/* V[xi][t] (xi planes vplane apart) of the tiles of tile row ti, from the
 * plane p [2 th + 2, pw]; r: four rows of rs floats. */
static void input_row_generic(const float *p, int64_t ti, int64_t tw, int64_t pw, float *v,
                              int64_t vplane, float *r, int64_t rs)
{
    const float *a = p + 2 * ti * pw;
    rows_bt(a, a + pw, a + 2 * pw, a + 3 * pw, pw, r, rs);
    for (int k = 0; k < 4; k++) { /* B^T on the columns */
        const float *restrict s = r + k * rs;
        float *restrict v0 = v + (4 * k + 0) * vplane + ti * tw;
        float *restrict v1 = v + (4 * k + 1) * vplane + ti * tw;
        float *restrict v2 = v + (4 * k + 2) * vplane + ti * tw;
        float *restrict v3 = v + (4 * k + 3) * vplane + ti * tw;
        for (int64_t tj = 0; tj < tw; tj++) {
            const float s0 = s[2 * tj], s1 = s[2 * tj + 1], s2 = s[2 * tj + 2],
                        s3 = s[2 * tj + 3];
            v0[tj] = s0 - s2;
            v1[tj] = s1 + s2;
            v2[tj] = s2 - s1;
            v3[tj] = s1 - s3;
        }
    }
}

/* Rows 2 ti and 2 ti + 1 of dx (w columns, the second only when `two`)
 * from M[xi][t] (xi planes mplane apart): A^T m A of each tile. */
static void output_row_generic(const float *m, int64_t mplane, int64_t ti, int64_t tw, int w,
                               int two, float *dx, float *out)
{
    const float *mt = m + ti * tw;
    float *o0 = out, *o1 = out + 2 * tw;
    for (int64_t tj = 0; tj < tw; tj++) {
        float s0[4], s1[4];
        for (int c = 0; c < 4; c++) {
            const float a = mt[(0 + c) * mplane + tj], b = mt[(4 + c) * mplane + tj],
                        e = mt[(8 + c) * mplane + tj], f = mt[(12 + c) * mplane + tj];
            s0[c] = a + b + e;
            s1[c] = b - e - f;
        }
        o0[2 * tj] = s0[0] + s0[1] + s0[2];
        o0[2 * tj + 1] = s0[1] - s0[2] - s0[3];
        o1[2 * tj] = s1[0] + s1[1] + s1[2];
        o1[2 * tj + 1] = s1[1] - s1[2] - s1[3];
    }
    memcpy(dx, o0, sizeof(float) * (size_t)w);
    if (two) memcpy(dx + w, o1, sizeof(float) * (size_t)w);
}

/* m [8][ldm] = u [k][8]^T v [k][ldv], n tiles (a multiple of 16). */
static void product_generic(const float *u, const float *v, int64_t ldv, int k, int64_t n,
                            float *m, int64_t ldm)
{
    for (int i = 0; i < WINO_CB; i++) memset(m + i * ldm, 0, sizeof(float) * (size_t)n);
    for (int c = 0; c < k; c++) {
        const float *restrict vr = v + c * ldv;
        for (int i = 0; i < WINO_CB; i++) {
            const float a = u[c * WINO_CB + i];
            float *restrict mr = m + i * ldm;
            for (int64_t t = 0; t < n; t++) mr[t] += a * vr[t];
        }
    }
}

/* ------------------------------------------------------------------------ */
/* AVX-512 transforms and product                                            */
/* ------------------------------------------------------------------------ */

#ifdef CSNN_HAVE_AVX512_KERNELS
/* input_row_generic in registers: the B^T rows at column offsets 0, 16, 2
 * and 18 of each chunk of 16 tiles, then the even / odd columns (vectors
 * may read up to 2 * 16 * ceil(tw / 16) + 34 floats from a row start, past
 * the plane into the zeroed row buffers that follow it: those lanes are
 * not stored). */
static AVX512_TARGET void input_row_avx512(const float *p, int64_t ti, int64_t tw, int64_t pw,
                                           float *v, int64_t vplane)
{
    const float *a = p + 2 * ti * pw, *b = a + pw, *c = b + pw, *e = c + pw;
    const __m512i even =
        _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd =
        _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    for (int64_t tj = 0; tj < tw; tj += 16) {
        const __mmask16 k = tw - tj >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (tw - tj)) - 1);
        __m512 r[4][4]; /* r[q][o]: B^T row q at offset 0, 16, 2, 18 */
        static const int off[4] = {0, 16, 2, 18};
        for (int o = 0; o < 4; o++) {
            const int64_t x = 2 * tj + off[o];
            const __m512 va = _mm512_loadu_ps(a + x), vb = _mm512_loadu_ps(b + x);
            const __m512 vc = _mm512_loadu_ps(c + x), ve = _mm512_loadu_ps(e + x);
            r[0][o] = _mm512_sub_ps(va, vc);
            r[1][o] = _mm512_add_ps(vb, vc);
            r[2][o] = _mm512_sub_ps(vc, vb);
            r[3][o] = _mm512_sub_ps(vb, ve);
        }
        for (int q = 0; q < 4; q++) {
            const __m512 s0 = _mm512_permutex2var_ps(r[q][0], even, r[q][1]);
            const __m512 s1 = _mm512_permutex2var_ps(r[q][0], odd, r[q][1]);
            const __m512 s2 = _mm512_permutex2var_ps(r[q][2], even, r[q][3]);
            const __m512 s3 = _mm512_permutex2var_ps(r[q][2], odd, r[q][3]);
            float *dst = v + (4 * q) * vplane + ti * tw + tj;
            _mm512_mask_storeu_ps(dst, k, _mm512_sub_ps(s0, s2));
            _mm512_mask_storeu_ps(dst + vplane, k, _mm512_add_ps(s1, s2));
            _mm512_mask_storeu_ps(dst + 2 * vplane, k, _mm512_sub_ps(s2, s1));
            _mm512_mask_storeu_ps(dst + 3 * vplane, k, _mm512_sub_ps(s1, s3));
        }
    }
}

/* Rows [h, w] of src into dst (rows ld apart), by masked vectors: the
 * planes are small (the reference conv2's rows are 24 floats), where a
 * memcpy call per row cost more than the copy. */
static AVX512_TARGET void copy_rows_avx512(const float *src, int h, int w, float *dst, int64_t ld)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x += 16) {
            const __mmask16 k = w - x >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (w - x)) - 1);
            _mm512_mask_storeu_ps(dst + y * ld + x, k,
                                  _mm512_maskz_loadu_ps(k, src + (int64_t)y * w + x));
        }
}

static AVX512_TARGET void output_row_avx512(const float *m, int64_t mplane, int64_t ti,
                                            int64_t tw, int w, int two, float *dx)
{
    const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi =
        _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    const float *mt = m + ti * tw;
    for (int64_t tj = 0; tj < tw; tj += 16) {
        const __mmask16 k = tw - tj >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (tw - tj)) - 1);
        __m512 s0[4], s1[4];
        for (int c = 0; c < 4; c++) {
            const __m512 a = _mm512_maskz_loadu_ps(k, mt + (0 + c) * mplane + tj);
            const __m512 b = _mm512_maskz_loadu_ps(k, mt + (4 + c) * mplane + tj);
            const __m512 e = _mm512_maskz_loadu_ps(k, mt + (8 + c) * mplane + tj);
            const __m512 f = _mm512_maskz_loadu_ps(k, mt + (12 + c) * mplane + tj);
            s0[c] = _mm512_add_ps(_mm512_add_ps(a, b), e);
            s1[c] = _mm512_sub_ps(_mm512_sub_ps(b, e), f);
        }
        const int64_t x0 = 2 * tj, nx = w - x0; /* columns of this chunk: min(32, nx) */
        const __mmask16 k0 = nx >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nx) - 1);
        const __mmask16 k1 = nx >= 32   ? (__mmask16)0xFFFF
                             : nx > 16 ? (__mmask16)((1u << (nx - 16)) - 1)
                                       : (__mmask16)0;
        for (int row = 0; row < 1 + two; row++) {
            const __m512 *s = row ? s1 : s0;
            const __m512 y0 = _mm512_add_ps(_mm512_add_ps(s[0], s[1]), s[2]);
            const __m512 y1 = _mm512_sub_ps(_mm512_sub_ps(s[1], s[2]), s[3]);
            float *d = dx + row * w + x0;
            _mm512_mask_storeu_ps(d, k0, _mm512_permutex2var_ps(y0, lo, y1));
            _mm512_mask_storeu_ps(d + 16, k1, _mm512_permutex2var_ps(y0, hi, y1));
        }
    }
}

/* m [8][ldm] = u [k][8]^T v [k][ldv] for nv vectors of 16 tiles. */
static inline __attribute__((always_inline)) AVX512_TARGET void
product_avx512_n(const float *u, const float *v, int64_t ldv, int k, float *m, int64_t ldm,
                 const int nv)
{
    __m512 acc[WINO_CB][3];
#pragma GCC unroll 8
    for (int i = 0; i < WINO_CB; i++)
#pragma GCC unroll 3
        for (int q = 0; q < nv; q++) acc[i][q] = _mm512_setzero_ps();
    for (int c = 0; c < k; c++) {
        const float *vr = v + c * ldv, *ur = u + c * WINO_CB;
        __m512 b[3];
#pragma GCC unroll 3
        for (int q = 0; q < nv; q++) b[q] = _mm512_loadu_ps(vr + 16 * q);
#pragma GCC unroll 8
        for (int i = 0; i < WINO_CB; i++) {
            const __m512 a = _mm512_set1_ps(ur[i]);
#pragma GCC unroll 3
            for (int q = 0; q < nv; q++) acc[i][q] = _mm512_fmadd_ps(a, b[q], acc[i][q]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < WINO_CB; i++)
#pragma GCC unroll 3
        for (int q = 0; q < nv; q++) _mm512_storeu_ps(m + i * ldm + 16 * q, acc[i][q]);
}

static AVX512_TARGET void product_avx512(const float *u, const float *v, int64_t ldv, int k,
                                         int64_t n, float *m, int64_t ldm)
{
    if (n == 48)
        product_avx512_n(u, v, ldv, k, m, ldm, 3);
    else if (n == 32)
        product_avx512_n(u, v, ldv, k, m, ldm, 2);
    else
        product_avx512_n(u, v, ldv, k, m, ldm, 1);
}
#endif

/* ------------------------------------------------------------------------ */
/* One image                                                                 */
/* ------------------------------------------------------------------------ */

void csnn__cpu_wino_input(const wino_geom *g, int avx512, const float *src, float *plane,
                          float *v, int64_t vplane)
{
    const int64_t pw = 2 * g->tw + 2;
    float *rows = plane + padded_floats(g);
#ifdef CSNN_HAVE_AVX512_KERNELS
    if (avx512) {
        copy_rows_avx512(src, g->h, g->w, plane + g->pt * pw + g->pl, pw);
        for (int64_t ti = 0; ti < g->th; ti++) input_row_avx512(plane, ti, g->tw, pw, v, vplane);
        return;
    }
#endif
    for (int y = 0; y < g->h; y++)
        memcpy(plane + (g->pt + y) * pw + g->pl, src + (int64_t)y * g->w,
               sizeof(float) * (size_t)g->w);
    for (int64_t ti = 0; ti < g->th; ti++) {
        input_row_generic(plane, ti, g->tw, pw, v, vplane, rows, (int64_t)row_stride(g));
    }
    (void)avx512;
}

void csnn__cpu_wino_output(const wino_geom *g, int avx512, const float *m, int64_t mplane,
                           float *dst, float *plane)
{
    for (int64_t ti = 0; ti < g->th; ti++) {
        const int two = 2 * ti + 1 < g->oh;
        float *d = dst + 2 * ti * g->ow;
#ifdef CSNN_HAVE_AVX512_KERNELS
        if (avx512) {
            output_row_avx512(m, mplane, ti, g->tw, g->ow, two, d);
            continue;
        }
#endif
        output_row_generic(m, mplane, ti, g->tw, g->ow, two, d, plane + padded_floats(g));
    }
    (void)avx512;
}

void csnn__cpu_wino_image_dx(const csnn_conv2d_desc *d, const float *u, const float *dyi,
                             float *dxi, float *scratch)
{
#ifdef CSNN_HAVE_AVX512_KERNELS
    const int avx512 = csnn__cpu_use_avx512();
#else
    const int avx512 = 0;
#endif
    const wino_geom g = dx_geom(d);
    const int64_t ntp = tiles_padded(d), cinp = cin_padded(d), nt = g.th * g.tw;
    const int c_out = d->c_out;
    const int64_t vplane = (int64_t)c_out * ntp, mplane = cinp * ntp;
    float *v = scratch, *m = v + ALIGN_FLOATS((size_t)16 * (size_t)vplane);
    float *plane = m + ALIGN_FLOATS((size_t)16 * (size_t)mplane);
    /* V: the transformed tiles, channel by channel; the padding tiles 0 */
    if (ntp > nt)
        for (int xi = 0; xi < 16; xi++)
            for (int co = 0; co < c_out; co++)
                memset(v + xi * vplane + co * ntp + nt, 0, sizeof(float) * (size_t)(ntp - nt));
    csnn__cpu_wino_plane_zero(&g, plane); /* (the vectors read past the plane) */
    for (int co = 0; co < c_out; co++)
        csnn__cpu_wino_input(&g, avx512, dyi + (int64_t)co * g.h * g.w, plane,
                             v + (int64_t)co * ntp, vplane);
    /* M_xi = U_xi V_xi, by panels of tiles and blocks of input channels */
    for (int xi = 0; xi < 16; xi++) {
        const float *uxi = u + (int64_t)xi * cinp * c_out, *vxi = v + xi * vplane;
        float *mxi = m + xi * mplane;
        for (int64_t t0 = 0; t0 < ntp; t0 += WINO_TB) {
            const int64_t n = ntp - t0 < WINO_TB ? ntp - t0 : WINO_TB;
            for (int64_t cb = 0; cb < cinp / WINO_CB; cb++) {
                const float *ub = uxi + cb * c_out * WINO_CB;
                float *mb = mxi + cb * WINO_CB * ntp + t0;
#ifdef CSNN_HAVE_AVX512_KERNELS
                if (avx512) {
                    product_avx512(ub, vxi + t0, ntp, c_out, n, mb, ntp);
                    continue;
                }
#endif
                product_generic(ub, vxi + t0, ntp, c_out, n, mb, ntp);
            }
        }
    }
    /* dx, two rows per tile row */
    for (int ci = 0; ci < d->c_in; ci++)
        csnn__cpu_wino_output(&g, avx512, m + (int64_t)ci * ntp, mplane,
                              dxi + (int64_t)ci * g.oh * g.ow, plane);
}
