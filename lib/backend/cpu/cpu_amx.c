/* cpu_amx.c - a convolution's weight gradient on AMX tiles, for inputs whose
 * values are bfloat16 numbers (spikes: 0 and 1; dropped-out spikes: 0 and
 * 2), on CPUs with AMX-BF16 (Sapphire Rapids and later).
 *
 * dW[co, ci, ky, kx] = sum over positions of dy[co, oy, ox] x[ci, oy + ky -
 * pad_h, ox + kx - pad_w] (stride 1). An AMX product multiplies bfloat16
 * numbers exactly and adds in float. x is a bfloat16 number (checked per
 * image: the low 16 bits of every input are zero); dy is a float, cut
 * exactly into three bfloat16 parts, dy = hi + mid + lo (hi = dy with the
 * low 16 bits cleared, mid the same of dy - hi, lo = dy - hi - mid, which
 * has at most 8 significant bits; every subtraction is exact). So each
 * x * part is exact and the sum is a float sum of the same products as the
 * float kernels' (x * dy = x*hi + x*mid + x*lo exactly), grouped
 * differently: the result agrees with them to float rounding. (AMX treats
 * subnormal inputs as zero: parts below 2^-126, i.e. a gradient below about
 * 2^-110 in magnitude, lose those bits. An infinite or NaN dy is kept
 * whole in hi; images with an infinite or NaN input take the float
 * kernels.)
 *
 * Layout, per image: the input planes are padded and flattened with rows
 * WP = w_in + 2 pad_w wide, so that the output position (oy, ox) anchors at
 * a = oy WP + ox and tap (ky, kx) reads a + ky WP + kx: a tile of A is 16
 * channels x 32 consecutive anchors, shifted by the tap, straight from the
 * padded planes. dy goes into B in the pair-interleaved layout TDPBF16PS
 * wants ([a / 2][co][2], one array per part), zero at the anchors that are
 * not output positions (ox >= w_out). C is 16 channels x 16 output channels
 * of one tap of dW^T [(ci, tap), co], loaded from and stored back into the
 * caller's partial sum.
 *
 * The forward and the weight gradient of a 3 x 3, stride-1 convolution go
 * by Winograd's F(2 x 2, 3 x 3) where it applies (cpu_conv.h): V = B^T d B
 * of the input's 4 x 4 tiles is a sum of at most four inputs with signs
 * (small integers for spikes: bfloat16 numbers, checked per image), and the
 * other operand, a float, is cut into three parts as above: U = G g G^T of
 * each kernel for the forward (M_xi [c_out, tiles] = U_xi V_xi, then y =
 * A^T M A + bias per 2 x 2 block), the transform A g A^T of dy's 2 x 2
 * blocks for the weight gradient (the same algorithm turned round, F(3 x 3,
 * 2 x 2): dW = G^T [sum over tiles of (A g A^T) (.) V] G, A^T = [1 1 1 0;
 * 0 1 -1 -1]; M_xi [c_in, c_out] = V_xi [c_in, tiles] (A g A^T)_xi [tiles,
 * c_out] summed over the caller's images, G^T M G of the sum added to its
 * partial sum). The forward skips the right half of a last block of at
 * most 16 tiles (padding). 16 tile
 * products per 2 x 2 block instead of 36. The transforms round sums that
 * the direct sum keeps apart, so the results are the direct sums to float
 * rounding of Winograd's usual bound (the algorithm on absolute values), a
 * little looser than the tap-by-tap kernels' (tests/backend/test_cpu_sparse.c). */
#include <stdint.h>
#include <string.h>

#include "cpu_amx.h"

#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
#include <immintrin.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>
#define CSNN_HAVE_AMX_KERNELS 1
#define AMX_TARGET                                                                                 \
    __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512dq,avx512vl,bmi")))
#endif

#ifdef CSNN_HAVE_AMX_KERNELS
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static pthread_once_t amx_once = PTHREAD_ONCE_INIT;
static int amx_granted;

/* Linux hands out the tile state only to processes that ask for it. */
static void amx_request(void)
{
    amx_granted = __builtin_cpu_supports("amx-tile") && __builtin_cpu_supports("amx-bf16") &&
                  syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}
#endif

int csnn__cpu_amx_usable(void)
{
#ifdef CSNN_HAVE_AMX_KERNELS
    if (!csnn__cpu_use_avx512()) return 0;
    pthread_once(&amx_once, amx_request);
    return amx_granted;
#else
    return 0;
#endif
}

int csnn__cpu_amx_conv_plan(const csnn_conv2d_desc *d, cpu_amx_conv *a)
{
    memset(a, 0, sizeof *a);
    if (d->stride_h != 1 || d->stride_w != 1 || d->c_in % 32 != 0 || d->c_out % 32 != 0 ||
        d->pad_h >= d->kh || d->pad_w >= d->kw || d->h_out < 1 || d->w_out < 1)
        return 0;
    a->d = d;
    a->wp = d->w_in + 2 * d->pad_w;
    a->kk = d->kh * d->kw;
    a->kpad = ((int64_t)d->h_out * a->wp + 31) & ~(int64_t)31;
    a->ps = (a->kpad + (int64_t)(d->kh - 1) * a->wp + d->kw + 31) & ~(int64_t)31;
    /* x planes [c_in][ps] bf16; dy parts 3 x [kpad / 2][c_out] pairs; with
     * 16-float (64-byte) alignment of each */
    a->x_floats = ((size_t)d->c_in * (size_t)a->ps / 2 + 15) & ~(size_t)15;
    a->dy_floats = ((size_t)(a->kpad / 2) * (size_t)d->c_out + 15) & ~(size_t)15;
    return 1;
}

size_t csnn__cpu_amx_conv_floats(const cpu_amx_conv *a)
{
    return a->x_floats + 3 * a->dy_floats;
}

int csnn__cpu_amx_fwd_plan(const csnn_conv2d_desc *d, int input_grad, cpu_amx_fwd *f)
{
    memset(f, 0, sizeof *f);
    cpu_amx_conv shape;
    if (!csnn__cpu_amx_conv_plan(d, &shape)) return 0;
    f->kh = d->kh;
    f->kw = d->kw;
    f->split = input_grad;
    if (!input_grad) {
        f->m = d->c_out, f->k = d->c_in, f->h = d->h_in, f->w = d->w_in;
        f->pad_h = d->pad_h, f->pad_w = d->pad_w, f->oh = d->h_out, f->ow = d->w_out;
    } else {
        f->m = d->c_in, f->k = d->c_out, f->h = d->h_out, f->w = d->w_out;
        f->pad_h = d->kh - 1 - d->pad_h, f->pad_w = d->kw - 1 - d->pad_w;
        f->oh = d->h_in, f->ow = d->w_in;
    }
    f->wp = f->w + 2 * f->pad_w;
    f->kpad = ((int64_t)f->oh * f->wp + 31) & ~(int64_t)31;
    /* the last anchor's last tap, and the padded planes themselves */
    int64_t ps = f->kpad + (int64_t)(f->kh - 1) * f->wp + f->kw - 1;
    const int64_t plane = (int64_t)(f->h + 2 * f->pad_h) * f->wp;
    if (plane > ps) ps = plane;
    f->ps = (ps + 15) & ~(int64_t)15;
    f->in_part_floats = ((size_t)(f->k / 2) * (size_t)f->ps + 15) & ~(size_t)15;
    f->out_floats = ((size_t)f->m * (size_t)f->kpad + 15) & ~(size_t)15;
    f->a_part_floats = ((size_t)f->kh * f->kw * (size_t)f->m * (size_t)f->k / 2 + 15) & ~(size_t)15;
    return 1;
}

size_t csnn__cpu_amx_fwd_weight_floats(const cpu_amx_fwd *f)
{
    return 3 * f->a_part_floats;
}

size_t csnn__cpu_amx_fwd_floats(const cpu_amx_fwd *f)
{
    return (f->split ? 3 : 1) * f->in_part_floats + f->out_floats;
}

/* The three bfloat16 parts of a finite float: hi (its top 16 bits), mid
 * (those of v - hi), lo (v - hi - mid, at most 8 significant bits): every
 * subtraction is exact and hi + mid + lo = v. */
static void split3_scalar(float v, uint16_t part[3])
{
    for (int s = 0; s < 3; s++) {
        uint32_t bits;
        memcpy(&bits, &v, sizeof bits);
        part[s] = (uint16_t)(bits >> 16);
        bits &= 0xFFFF0000u;
        float h;
        memcpy(&h, &bits, sizeof h);
        v -= h;
    }
}

int csnn__cpu_amx_fwd_pack_weights(const cpu_amx_fwd *f, const float *w, int tap, uint16_t *a)
{
    const int kk = f->kh * f->kw;
    /* the input gradient's tap (ty, tx) is the forward's (kh-1-ty, kw-1-tx) */
    const int wtap = f->split ? kk - 1 - tap : tap;
    const size_t part = 2 * f->a_part_floats; /* in bfloat16 */
    int finite = 1;
    for (int r = 0; r < f->m; r++)
        for (int c = 0; c < f->k; c++) {
            /* forward: A[r = co][c = ci]; input gradient: A[r = ci][c = co] */
            const int64_t co = f->split ? c : r, ci = f->split ? r : c;
            const float v = w[(co * (f->split ? f->m : f->k) + ci) * kk + wtap];
            if (!(v - v == 0.0f)) finite = 0;
            uint16_t p3[3];
            split3_scalar(finite ? v : 0.0f, p3);
            const size_t o = ((size_t)tap * f->m + r) * f->k + c;
            a[o] = p3[0], a[part + o] = p3[1], a[2 * part + o] = p3[2];
        }
    return finite;
}

/* ---- the forward by Winograd's F(2 x 2, 3 x 3) ---- */

int csnn__cpu_amx_wino_plan(const csnn_conv2d_desc *d, cpu_amx_wino *f)
{
    memset(f, 0, sizeof *f);
    if (!csnn__cpu_wino_shape(d) || d->c_in % 32 != 0 || d->c_out % 32 != 0 || d->h_out < 1 ||
        d->w_out < 1)
        return 0;
    f->c_in = d->c_in;
    f->c_out = d->c_out;
    csnn__cpu_wino_geom(d, 0, &f->g);
    f->nt = f->g.th * f->g.tw;
    f->ntp = (f->nt + 31) & ~(int64_t)31;
    f->u_part = ((size_t)16 * (size_t)d->c_out * (size_t)d->c_in + 31) & ~(size_t)31;
    f->v_floats = ALIGN_FLOATS((size_t)16 * (size_t)(d->c_in / 2) * (size_t)f->ntp);
    f->m_floats = ALIGN_FLOATS((size_t)16 * 32 * (size_t)f->ntp);
    f->t_floats = ALIGN_FLOATS((size_t)2 * 16 * (size_t)f->ntp);
    return 1;
}

size_t csnn__cpu_amx_wino_u_floats(const cpu_amx_wino *f)
{
    return 3 * f->u_part / 2;
}

size_t csnn__cpu_amx_wino_floats(const cpu_amx_wino *f)
{
    return f->v_floats + f->m_floats + f->t_floats + ALIGN_FLOATS(csnn__cpu_wino_plane_floats(&f->g));
}

/* The weight gradient's scratch: V as A [16][c_in][ntp] (bfloat16); the
 * transformed dy of four xi as B, three parts [3][4][ntp / 2][c_out]
 * (uint32: the bfloat16 of tile 2k in the low half, of 2k + 1 in the high
 * half); M [16][c_in][c_out]; the float V of one channel [16][ntp]; the
 * plane. */
static size_t wdw_v_floats(const cpu_amx_wino *f)
{
    return ALIGN_FLOATS((size_t)16 * (size_t)f->c_in * (size_t)f->ntp / 2);
}

static size_t wdw_d_floats(const cpu_amx_wino *f)
{
    return ALIGN_FLOATS((size_t)4 * (size_t)(f->ntp / 2) * (size_t)f->c_out);
}

static size_t wdw_m_floats(const cpu_amx_wino *f)
{
    return ALIGN_FLOATS((size_t)16 * (size_t)f->c_in * (size_t)f->c_out);
}

/* Where M starts in the scratch, past V and dy's three parts. */
static size_t wdw_m_offset(const cpu_amx_wino *f)
{
    return wdw_v_floats(f) + 3 * wdw_d_floats(f);
}

size_t csnn__cpu_amx_wino_dw_floats(const cpu_amx_wino *f)
{
    return wdw_m_offset(f) + wdw_m_floats(f) +
           ALIGN_FLOATS((size_t)16 * (size_t)f->ntp) +
           ALIGN_FLOATS(csnn__cpu_wino_plane_floats(&f->g));
}

#ifdef CSNN_HAVE_AMX_KERNELS
static int wino_pack_u_avx512(const cpu_amx_wino *f, const float *w, int64_t co0, int64_t co1,
                              uint16_t *u);
#endif

int csnn__cpu_amx_wino_pack_u(const cpu_amx_wino *f, const float *w, int64_t co0, int64_t co1,
                              uint16_t *u)
{
#ifdef CSNN_HAVE_AMX_KERNELS
    if (csnn__cpu_amx_usable()) return wino_pack_u_avx512(f, w, co0, co1, u);
#endif
    (void)f, (void)w, (void)co0, (void)co1, (void)u;
    return 0; /* (only the AMX kernels read U) */
}

/* ---- a linear layer's weight gradient ---- */

static int64_t rows_pad(int64_t rows)
{
    return (rows + 31) & ~(int64_t)31;
}

int csnn__cpu_amx_linear_dw_shape(int64_t rows, int64_t in, int64_t out)
{
    return rows > 0 && in > 0 && out > 0 && in % 32 == 0 && out % 32 == 0;
}

size_t csnn__cpu_amx_linear_x_floats(int64_t rows, int64_t in)
{
    return ((size_t)(rows_pad(rows) / 2) * (size_t)in + 15) & ~(size_t)15;
}

size_t csnn__cpu_amx_linear_dy_floats(int64_t rows, int64_t out)
{
    return (3 * (size_t)out * (size_t)rows_pad(rows) / 2 + 15) & ~(size_t)15;
}

int csnn__cpu_amx_linear_pack_x(int64_t rows, int64_t in, const float *x, int64_t f0, int64_t f1,
                                uint32_t *xp)
{
    /* xp [rows_pad / 2][in]: the bfloat16 of row 2p in the low half, of row
     * 2p + 1 in the high half (zero past the last row) */
    uint32_t bad = 0;
    for (int64_t p = 0; p < rows_pad(rows) / 2; p++) {
        const float *r0 = 2 * p < rows ? x + 2 * p * in : NULL;
        const float *r1 = 2 * p + 1 < rows ? x + (2 * p + 1) * in : NULL;
        uint32_t *dst = xp + p * in;
        for (int64_t f = f0; f < f1; f++) {
            uint32_t b0 = 0, b1 = 0;
            if (r0) memcpy(&b0, r0 + f, sizeof b0);
            if (r1) memcpy(&b1, r1 + f, sizeof b1);
            /* low bits set, or an infinity or a NaN */
            bad |= (b0 | b1) & 0xFFFFu;
            bad |= ((b0 & 0x7F800000u) == 0x7F800000u) | ((b1 & 0x7F800000u) == 0x7F800000u);
            dst[f] = (b0 >> 16) | (b1 & 0xFFFF0000u);
        }
    }
    return bad == 0;
}

int csnn__cpu_amx_linear_pack_dy(int64_t rows, int64_t out, const float *dy, uint16_t *dyp)
{
    /* dyp [3][out][rows_pad]: part s of dy[r, o] at (s * out + o) * rows_pad + r */
    const int64_t rp = rows_pad(rows);
    int finite = 1;
    for (int64_t o = 0; o < out; o++)
        for (int64_t r = 0; r < rp; r++) {
            const float v = r < rows ? dy[r * out + o] : 0.0f;
            if (!(v - v == 0.0f)) finite = 0;
            uint16_t p3[3];
            split3_scalar(finite ? v : 0.0f, p3);
            for (int s = 0; s < 3; s++) dyp[((int64_t)s * out + o) * rp + r] = p3[s];
        }
    return finite;
}

#ifdef CSNN_HAVE_AMX_KERNELS

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_config;

/* Every tile 16 rows x 64 bytes. */
static AMX_TARGET void amx_configure(void)
{
    amx_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++) {
        c.colsb[t] = 64;
        c.rows[t] = 16;
    }
    _tile_loadconfig(&c);
}

/* Whether 32-bit lanes are finite bfloat16 numbers, noted vector by vector:
 * their bits OR-ed into *low (the low halves must stay zero), infinities
 * and NaNs into *bad; bf16_ok gives the verdict. */
static inline __attribute__((always_inline)) AMX_TARGET void bf16_note(__m512i b, __m512i *low,
                                                                     __mmask16 *bad)
{
    const __m512i expo = _mm512_set1_epi32(0x7F800000);
    *low = _mm512_or_si512(*low, b);
    *bad |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(b, expo), expo);
}

static inline __attribute__((always_inline)) AMX_TARGET int bf16_ok(__m512i low, __mmask16 bad)
{
    return !bad && _mm512_test_epi32_mask(low, _mm512_set1_epi32(0xFFFF)) == 0;
}

/* The padded bf16 planes of one image; 0 when an input is not a finite
 * bf16 number (its low 16 bits are not zero, or it is an infinity or a
 * NaN: inf * 0 in a part product would make a NaN where the float kernels
 * give an infinity). */
static AMX_TARGET int pack_x(const cpu_amx_conv *a, const float *xi, uint16_t *xp)
{
    const csnn_conv2d_desc *d = a->d;
    memset(xp, 0, (size_t)d->c_in * (size_t)a->ps * sizeof *xp);
    __m512i low = _mm512_setzero_si512();
    __mmask16 bad = 0;
    for (int ci = 0; ci < d->c_in; ci++)
        for (int iy = 0; iy < d->h_in; iy++) {
            const uint32_t *src = (const uint32_t *)(xi + ((int64_t)ci * d->h_in + iy) * d->w_in);
            uint16_t *dst = xp + (int64_t)ci * a->ps + (int64_t)(iy + d->pad_h) * a->wp + d->pad_w;
            for (int ix = 0; ix < d->w_in; ix += 16) {
                const __mmask16 m = d->w_in - ix >= 16 ? (__mmask16)0xFFFF
                                                       : (__mmask16)((1u << (d->w_in - ix)) - 1);
                const __m512i v = _mm512_maskz_loadu_epi32(m, src + ix);
                bf16_note(v, &low, &bad);
                _mm256_mask_storeu_epi16(dst + ix, m,
                                         _mm512_cvtepi32_epi16(_mm512_srli_epi32(v, 16)));
            }
        }
    return bf16_ok(low, bad);
}

/* The three parts of 16 floats (as bits): hi, mid, lo, each a bf16 in the
 * high half of a 32-bit lane. An infinity or a NaN is all hi (mid and lo
 * zero), so that x * dy keeps the float kernels' infinity or NaN. */
static inline __attribute__((always_inline)) AMX_TARGET void
split3(__m512 v, __m512i *hi, __m512i *mid, __m512i *lo)
{
    const __m512i top = _mm512_set1_epi32((int)0xFFFF0000u);
    const __m512i expo = _mm512_set1_epi32(0x7F800000);
    const __m512i bits = _mm512_castps_si512(v);
    /* a NaN whose payload is all in the low bits must stay a NaN */
    const __mmask16 nan =
        _mm512_cmpgt_epu32_mask(_mm512_and_si512(bits, _mm512_set1_epi32(0x7FFFFFFF)), expo);
    const __m512i h = _mm512_mask_or_epi32(_mm512_and_si512(bits, top), nan,
                                           _mm512_and_si512(bits, top),
                                           _mm512_set1_epi32(0x00400000));
    const __mmask16 finite =
        _mm512_cmpneq_epi32_mask(_mm512_and_si512(_mm512_castps_si512(v), expo), expo);
    const __m512 r1 = _mm512_sub_ps(v, _mm512_castsi512_ps(h));
    const __m512i m = _mm512_maskz_and_epi32(finite, _mm512_castps_si512(r1), top);
    const __m512 r2 = _mm512_sub_ps(r1, _mm512_castsi512_ps(m));
    *hi = h;
    *mid = m;
    *lo = _mm512_maskz_and_epi32(finite, _mm512_castps_si512(r2), top);
}

/* dy^T [P][c_out] (float) into the three pair-interleaved parts
 * [kpad / 2][c_out] (uint32: the bf16 of anchor 2k in the low half, of
 * anchor 2k + 1 in the high half), zero at the anchors that are not output
 * positions. */
static AMX_TARGET void pack_dy(const cpu_amx_conv *a, const float *dyt, uint32_t *parts)
{
    const csnn_conv2d_desc *d = a->d;
    const int c_out = d->c_out;
    uint32_t *p0 = parts, *p1 = parts + a->dy_floats, *p2 = parts + 2 * a->dy_floats;
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t k = 0; k < a->kpad / 2; k++) {
        const float *row[2];
        for (int e = 0; e < 2; e++) {
            const int64_t anchor = 2 * k + e, oy = anchor / a->wp, ox = anchor % a->wp;
            row[e] = oy < d->h_out && ox < d->w_out ? dyt + (oy * d->w_out + ox) * c_out : NULL;
        }
        for (int co = 0; co < c_out; co += 16) {
            __m512i h0, m0, l0, h1, m1, l1;
            split3(row[0] ? _mm512_loadu_ps(row[0] + co) : zero, &h0, &m0, &l0);
            split3(row[1] ? _mm512_loadu_ps(row[1] + co) : zero, &h1, &m1, &l1);
            const int64_t o = k * c_out + co;
            _mm512_store_si512(p0 + o, _mm512_or_si512(_mm512_srli_epi32(h0, 16), h1));
            _mm512_store_si512(p1 + o, _mm512_or_si512(_mm512_srli_epi32(m0, 16), m1));
            _mm512_store_si512(p2 + o, _mm512_or_si512(_mm512_srli_epi32(l0, 16), l1));
        }
    }
}

/* dwt [(ci kk + tap) * c_out + co] += the image's products. */
static AMX_TARGET void dw_tiles(const cpu_amx_conv *a, const uint16_t *xp, const uint32_t *parts,
                                float *dwt)
{
    const csnn_conv2d_desc *d = a->d;
    const int c_out = d->c_out, kk = a->kk;
    const int64_t cstride = (int64_t)kk * c_out * (int64_t)sizeof(float);
    const int64_t astride = a->ps * (int64_t)sizeof(uint16_t);
    const int64_t bstride = (int64_t)c_out * (int64_t)sizeof(uint32_t);
    const uint32_t *part[3] = {parts, parts + a->dy_floats, parts + 2 * a->dy_floats};
    for (int tap = 0; tap < kk; tap++) {
        const int64_t off = (int64_t)(tap / d->kw) * a->wp + tap % d->kw;
        for (int ci = 0; ci < d->c_in; ci += 32)
            for (int co = 0; co < c_out; co += 32) {
                float *c00 = dwt + ((int64_t)ci * kk + tap) * c_out + co;
                float *c10 = c00 + 16 * (int64_t)kk * c_out;
                _tile_loadd(0, c00, cstride);
                _tile_loadd(1, c00 + 16, cstride);
                _tile_loadd(2, c10, cstride);
                _tile_loadd(3, c10 + 16, cstride);
                const uint16_t *x0 = xp + (int64_t)ci * a->ps + off, *x1 = x0 + 16 * a->ps;
                for (int64_t an = 0; an < a->kpad; an += 32) {
                    _tile_loadd(4, x0 + an, astride);
                    _tile_loadd(5, x1 + an, astride);
                    for (int s = 0; s < 3; s++) {
                        const uint32_t *b = part[s] + (an / 2) * c_out + co;
                        _tile_loadd(6, b, bstride);
                        _tile_loadd(7, b + 16, bstride);
                        _tile_dpbf16ps(0, 4, 6);
                        _tile_dpbf16ps(1, 4, 7);
                        _tile_dpbf16ps(2, 5, 6);
                        _tile_dpbf16ps(3, 5, 7);
                    }
                }
                _tile_stored(0, c00, cstride);
                _tile_stored(1, c00 + 16, cstride);
                _tile_stored(2, c10, cstride);
                _tile_stored(3, c10 + 16, cstride);
            }
    }
}

static AMX_TARGET int dw_image(const cpu_amx_conv *a, const float *xi, const float *dyt,
                               float *scratch, float *dwt)
{
    uint16_t *xp = (uint16_t *)scratch;
    uint32_t *parts = (uint32_t *)(scratch + a->x_floats);
    if (!pack_x(a, xi, xp)) return 0;
    pack_dy(a, dyt, parts);
    amx_configure();
    dw_tiles(a, xp, parts, dwt);
    _tile_release();
    return 1;
}

/* The input planes of one image into nb pair-interleaved parts [k / 2][ps]
 * (uint32: the bfloat16 of plane 2p in the low half, of plane 2p + 1 in
 * the high half), zero in the border; 0 when an input is not acceptable. */
/* Zeros [a, b) of every plane of the nb parts. */
static void zero_planes(const cpu_amx_fwd *f, int nb, uint32_t *parts, int64_t a, int64_t b)
{
    if (b <= a) return;
    for (int s = 0; s < nb; s++)
        for (int p = 0; p < f->k / 2; p++)
            memset(parts + s * f->in_part_floats + (int64_t)p * f->ps + a, 0,
                   (size_t)(b - a) * sizeof(uint32_t));
}

static AMX_TARGET int pack_in(const cpu_amx_fwd *f, const float *in, uint32_t *parts)
{
    const int nb = f->split ? 3 : 1;
    /* the border only: above the first row, between the rows (right and
     * left padding), below the last one to the end of the plane */
    zero_planes(f, nb, parts, 0, (int64_t)f->pad_h * f->wp + f->pad_w);
    zero_planes(f, nb, parts, (int64_t)(f->h - 1 + f->pad_h) * f->wp + f->pad_w + f->w, f->ps);
    const __m512i expo = _mm512_set1_epi32(0x7F800000);
    const __m512i top = _mm512_set1_epi32((int)0xFFFF0000u);
    const int64_t plane = (int64_t)f->h * f->w;
    __m512i low = _mm512_setzero_si512();
    __mmask16 bad = 0;
    for (int p = 0; p < f->k / 2; p++)
        for (int iy = 0; iy < f->h; iy++) {
            const float *s0 = in + 2 * p * plane + (int64_t)iy * f->w, *s1 = s0 + plane;
            const int64_t o = (int64_t)p * f->ps + (int64_t)(iy + f->pad_h) * f->wp + f->pad_w;
            if (iy + 1 < f->h) /* the right padding of this row, the left of the next */
                for (int s = 0; s < nb; s++)
                    for (int c = 0; c < 2 * f->pad_w; c++)
                        parts[s * f->in_part_floats + o + f->w + c] = 0;
            for (int ix = 0; ix < f->w; ix += 16) {
                const __mmask16 m = f->w - ix >= 16 ? (__mmask16)0xFFFF
                                                    : (__mmask16)((1u << (f->w - ix)) - 1);
                const __m512 v0 = _mm512_maskz_loadu_ps(m, s0 + ix);
                const __m512 v1 = _mm512_maskz_loadu_ps(m, s1 + ix);
                const __m512i b0 = _mm512_castps_si512(v0), b1 = _mm512_castps_si512(v1);
                bad |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(b0, expo), expo) |
                       _mm512_cmpeq_epi32_mask(_mm512_and_si512(b1, expo), expo);
                if (!f->split) {
                    low = _mm512_or_si512(low, _mm512_or_si512(b0, b1));
                    _mm512_mask_storeu_epi32(
                        parts + o + ix, m,
                        _mm512_or_si512(_mm512_srli_epi32(b0, 16), _mm512_and_si512(b1, top)));
                    continue;
                }
                __m512i h0, m0, l0, h1, m1, l1;
                split3(v0, &h0, &m0, &l0);
                split3(v1, &h1, &m1, &l1);
                uint32_t *d = parts + o + ix;
                _mm512_mask_storeu_epi32(d, m, _mm512_or_si512(_mm512_srli_epi32(h0, 16), h1));
                _mm512_mask_storeu_epi32(d + f->in_part_floats, m,
                                         _mm512_or_si512(_mm512_srli_epi32(m0, 16), m1));
                _mm512_mask_storeu_epi32(d + 2 * f->in_part_floats, m,
                                         _mm512_or_si512(_mm512_srli_epi32(l0, 16), l1));
            }
        }
    if (bad) return 0;
    return f->split || _mm512_test_epi32_mask(low, _mm512_set1_epi32(0xFFFF)) == 0;
}

/* out [m][kpad] at every anchor: per 32 x 32 block of C (m x anchors), the
 * taps and the k planes 32 at a time; of the parts, the products whose part
 * indices sum to at most 2 (A's three parts times the one part of an exact
 * input; with a cut input the six products hi*hi, hi*mid, mid*hi, hi*lo,
 * mid*mid, lo*hi, leaving out the terms below 2^-24 of the product). (A
 * chunked order that keeps A in L1 across the anchor blocks measured no
 * faster: the tile loads bound the loop either way.) */
static AMX_TARGET void fwd_tiles(const cpu_amx_fwd *f, const uint16_t *a, const uint32_t *in,
                                 float *out)
{
    const int nb = f->split ? 3 : 1, kk = f->kh * f->kw;
    const int64_t astride = (int64_t)f->k * (int64_t)sizeof(uint16_t);
    const int64_t bstride = f->ps * (int64_t)sizeof(uint32_t);
    const int64_t cstride = f->kpad * (int64_t)sizeof(float);
    const int64_t apart = 2 * (int64_t)f->a_part_floats, bpart = (int64_t)f->in_part_floats;
    const int64_t arow = 16 * (int64_t)f->k;
    for (int m0 = 0; m0 < f->m; m0 += 32)
        for (int64_t a0 = 0; a0 < f->kpad; a0 += 32) {
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int tap = 0; tap < kk; tap++) {
                const int64_t off = (int64_t)(tap / f->kw) * f->wp + tap % f->kw;
                for (int k0 = 0; k0 < f->k; k0 += 32) {
                    const uint16_t *at = a + ((int64_t)tap * f->m + m0) * f->k + k0;
                    const uint32_t *bt = in + (int64_t)(k0 / 2) * f->ps + a0 + off;
                    for (int j = 0; j < nb; j++) {
                        _tile_loadd(6, bt + j * bpart, bstride);
                        _tile_loadd(7, bt + j * bpart + 16, bstride);
                        for (int i = 0; i + j <= 2; i++) {
                            _tile_loadd(4, at + i * apart, astride);
                            _tile_loadd(5, at + i * apart + arow, astride);
                            _tile_dpbf16ps(0, 4, 6);
                            _tile_dpbf16ps(1, 4, 7);
                            _tile_dpbf16ps(2, 5, 6);
                            _tile_dpbf16ps(3, 5, 7);
                        }
                    }
                }
            }
            float *c0 = out + (int64_t)m0 * f->kpad + a0, *c1 = c0 + 16 * f->kpad;
            _tile_stored(0, c0, cstride);
            _tile_stored(1, c0 + 16, cstride);
            _tile_stored(2, c1, cstride);
            _tile_stored(3, c1 + 16, cstride);
        }
}

static AMX_TARGET int fwd_image(const cpu_amx_fwd *f, const uint16_t *a, const float *in,
                                const float *bias, float *scratch, float *out)
{
    uint32_t *parts = (uint32_t *)scratch;
    float *acc = scratch + (f->split ? 3 : 1) * f->in_part_floats;
    if (!pack_in(f, in, parts)) return 0;
    amx_configure();
    fwd_tiles(f, a, parts, acc);
    _tile_release();
    for (int r = 0; r < f->m; r++) {
        const __m512 b = _mm512_set1_ps(bias ? bias[r] : 0.0f);
        for (int oy = 0; oy < f->oh; oy++) {
            const float *src = acc + (int64_t)r * f->kpad + (int64_t)oy * f->wp;
            float *dst = out + ((int64_t)r * f->oh + oy) * f->ow;
            for (int ox = 0; ox < f->ow; ox += 16) {
                const __mmask16 m = f->ow - ox >= 16 ? (__mmask16)0xFFFF
                                                     : (__mmask16)((1u << (f->ow - ox)) - 1);
                const __m512 v = _mm512_maskz_loadu_ps(m, src + ox);
                _mm512_mask_storeu_ps(dst + ox, m, bias ? _mm512_add_ps(v, b) : v);
            }
        }
    }
    return 1;
}

/* U [part][xi][co][ci] = the three bfloat16 parts of (G g G^T)[xi] of
 * kernel g = w[co][ci], G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
 * (sums rounded to float, exact halvings), 16 input channels at a time
 * (their taps gathered 9 floats apart). */
static AMX_TARGET int wino_pack_u_avx512(const cpu_amx_wino *f, const float *w, int64_t co0,
                                         int64_t co1, uint16_t *u)
{
    const __m512i nine = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6,
                                                             5, 4, 3, 2, 1, 0),
                                            _mm512_set1_epi32(9));
    const __m512i expo = _mm512_set1_epi32(0x7F800000);
    const __m512 half = _mm512_set1_ps(0.5f);
    __mmask16 bad = 0;
    for (int64_t co = co0; co < co1; co++)
        for (int64_t ci = 0; ci < f->c_in; ci += 16) {
            const float *k = w + (co * f->c_in + ci) * 9;
            __m512 g[9], t[4][3], v[16];
            for (int e = 0; e < 9; e++) g[e] = _mm512_i32gather_ps(nine, k + e, 4);
            for (int b = 0; b < 3; b++) { /* t = G g */
                t[0][b] = g[b];
                t[1][b] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(g[b], g[3 + b]), g[6 + b]));
                t[2][b] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(g[b], g[3 + b]), g[6 + b]));
                t[3][b] = g[6 + b];
            }
            for (int r = 0; r < 4; r++) { /* U = t G^T */
                v[4 * r + 0] = t[r][0];
                v[4 * r + 1] =
                    _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(t[r][0], t[r][1]), t[r][2]));
                v[4 * r + 2] =
                    _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(t[r][0], t[r][1]), t[r][2]));
                v[4 * r + 3] = t[r][2];
            }
            for (int xi = 0; xi < 16; xi++) {
                const __m512i bits = _mm512_castps_si512(v[xi]);
                bad |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(bits, expo), expo);
                __m512i hi, mid, lo;
                split3(v[xi], &hi, &mid, &lo);
                const size_t o = ((size_t)xi * (size_t)f->c_out + (size_t)co) * (size_t)f->c_in +
                                 (size_t)ci;
                _mm256_storeu_si256((__m256i *)(u + o), _mm512_cvtepi32_epi16(_mm512_srli_epi32(hi, 16)));
                _mm256_storeu_si256((__m256i *)(u + f->u_part + o),
                                    _mm512_cvtepi32_epi16(_mm512_srli_epi32(mid, 16)));
                _mm256_storeu_si256((__m256i *)(u + 2 * f->u_part + o),
                                    _mm512_cvtepi32_epi16(_mm512_srli_epi32(lo, 16)));
            }
        }
    return !bad;
}

/* V of one image in pairs of channels [16][c_in / 2][ntp] (uint32: the
 * bfloat16 of channel 2p in the low half, of 2p + 1 in the high half),
 * zero past the last tile; 0 when a value is not a finite bfloat16 number. */
static AMX_TARGET int wino_pack_v(const cpu_amx_wino *f, const float *x, uint32_t *vp, float *tv,
                                  float *plane)
{
    const int64_t ntp = f->ntp, nt = f->nt, hw = (int64_t)f->g.h * f->g.w;
    const int ci2 = f->c_in / 2;
    csnn__cpu_wino_plane_zero(&f->g, plane);
    for (int xi = 0; xi < 32; xi++) /* (the two channels' tiles past nt) */
        memset(tv + xi * ntp + nt, 0, sizeof(float) * (size_t)(ntp - nt));
    const __m512i top = _mm512_set1_epi32((int)0xFFFF0000u);
    __m512i low = _mm512_setzero_si512();
    __mmask16 bad = 0;
    for (int p = 0; p < ci2; p++) {
        csnn__cpu_wino_input(&f->g, 1, x + 2 * p * hw, plane, tv, ntp);
        csnn__cpu_wino_input(&f->g, 1, x + (2 * p + 1) * hw, plane, tv + 16 * ntp, ntp);
        for (int xi = 0; xi < 16; xi++) {
            const uint32_t *s0 = (const uint32_t *)(tv + xi * ntp);
            const uint32_t *s1 = (const uint32_t *)(tv + (16 + xi) * ntp);
            uint32_t *dst = vp + ((int64_t)xi * ci2 + p) * ntp;
            for (int64_t t = 0; t < ntp; t += 16) {
                const __m512i b0 = _mm512_loadu_si512(s0 + t), b1 = _mm512_loadu_si512(s1 + t);
                bf16_note(b0, &low, &bad);
                bf16_note(b1, &low, &bad);
                _mm512_storeu_si512(dst + t, _mm512_or_si512(_mm512_srli_epi32(b0, 16),
                                                             _mm512_and_si512(b1, top)));
            }
        }
    }
    return bf16_ok(low, bad);
}

/* Per block of 32 output channels: M [16][32][ntp] on the tiles (per 32 x
 * 32 block of C, the input channels 32 at a time, U's three parts times
 * the one of V), then A^T M A + bias into their planes of y. */
static AMX_TARGET int wino_fwd_image(const cpu_amx_wino *f, const uint16_t *u, const float *x,
                                     const float *bias, float *scratch, float *y)
{
    const int64_t ntp = f->ntp, c_in = f->c_in, ci2 = f->c_in / 2;
    const int64_t ohw = (int64_t)f->g.oh * f->g.ow;
    uint32_t *vp = (uint32_t *)scratch;
    float *m = scratch + f->v_floats, *tv = m + f->m_floats, *plane = tv + f->t_floats;
    if (!wino_pack_v(f, x, vp, tv, plane)) return 0;
    const int64_t bstride = ntp * (int64_t)sizeof(uint32_t), cstride = ntp * (int64_t)sizeof(float);
    const int64_t astride = c_in * (int64_t)sizeof(uint16_t), apart = (int64_t)f->u_part;
    amx_configure();
    for (int m0 = 0; m0 < f->c_out; m0 += 32) {
        for (int xi = 0; xi < 16; xi++)
            for (int64_t t0 = 0; t0 < ntp; t0 += 32) {
                /* a last block of at most 16 tiles: its right half is
                 * padding, which the output transform never reads */
                const int half = f->nt - t0 <= 16;
                _tile_zero(0);
                _tile_zero(1);
                _tile_zero(2);
                _tile_zero(3);
                for (int64_t k0 = 0; k0 < c_in; k0 += 32) {
                    const uint32_t *bt = vp + ((int64_t)xi * ci2 + k0 / 2) * ntp + t0;
                    _tile_loadd(6, bt, bstride);
                    if (!half) _tile_loadd(7, bt + 16, bstride);
                    const uint16_t *at = u + ((int64_t)xi * f->c_out + m0) * c_in + k0;
                    for (int i = 0; i < 3; i++) {
                        _tile_loadd(4, at + i * apart, astride);
                        _tile_loadd(5, at + i * apart + 16 * c_in, astride);
                        _tile_dpbf16ps(0, 4, 6);
                        if (!half) _tile_dpbf16ps(1, 4, 7);
                        _tile_dpbf16ps(2, 5, 6);
                        if (!half) _tile_dpbf16ps(3, 5, 7);
                    }
                }
                float *c0 = m + (int64_t)xi * 32 * ntp + t0, *c1 = c0 + 16 * ntp;
                _tile_stored(0, c0, cstride);
                _tile_stored(2, c1, cstride);
                if (!half) {
                    _tile_stored(1, c0 + 16, cstride);
                    _tile_stored(3, c1 + 16, cstride);
                }
            }
        for (int c = 0; c < 32; c++) {
            float *yc = y + (int64_t)(m0 + c) * ohw;
            csnn__cpu_wino_output(&f->g, 1, m + (int64_t)c * ntp, 32 * ntp, yc, plane);
            if (bias) {
                const __m512 b = _mm512_set1_ps(bias[m0 + c]);
                for (int64_t i = 0; i < ohw; i += 16) {
                    const __mmask16 k = ohw - i >= 16 ? (__mmask16)0xFFFF
                                                      : (__mmask16)((1u << (ohw - i)) - 1);
                    _mm512_mask_storeu_ps(yc + i, k,
                                          _mm512_add_ps(_mm512_maskz_loadu_ps(k, yc + i), b));
                }
            }
        }
    }
    _tile_release();
    return 1;
}

/* V of one image as A [16][c_in][ntp] (bfloat16), zero past the last
 * tile; 0 when a value is not a finite bfloat16 number. */
static AMX_TARGET int wdw_pack_v(const cpu_amx_wino *f, const float *x, uint16_t *va, float *tv,
                                 float *plane)
{
    const int64_t ntp = f->ntp, nt = f->nt, hw = (int64_t)f->g.h * f->g.w;
    csnn__cpu_wino_plane_zero(&f->g, plane);
    for (int xi = 0; xi < 16; xi++) memset(tv + xi * ntp + nt, 0, sizeof(float) * (size_t)(ntp - nt));
    __m512i low = _mm512_setzero_si512();
    __mmask16 bad = 0;
    for (int ci = 0; ci < f->c_in; ci++) {
        csnn__cpu_wino_input(&f->g, 1, x + ci * hw, plane, tv, ntp);
        for (int xi = 0; xi < 16; xi++) {
            const uint32_t *src = (const uint32_t *)(tv + xi * ntp);
            uint16_t *dst = va + ((int64_t)xi * f->c_in + ci) * ntp;
            for (int64_t t = 0; t < ntp; t += 16) {
                const __m512i b = _mm512_loadu_si512(src + t);
                bf16_note(b, &low, &bad);
                _mm256_storeu_si256((__m256i *)(dst + t),
                                    _mm512_cvtepi32_epi16(_mm512_srli_epi32(b, 16)));
            }
        }
    }
    return bf16_ok(low, bad);
}

/* Row p of (A g A^T) for the 16 output channels at co of tile t: out[q],
 * A = [1 0; 1 1; 1 -1; 0 -1] (exact negations, one float rounding per
 * sum); zero for the padding tiles and outside dy. */
static inline __attribute__((always_inline)) AMX_TARGET void
wdw_dy_row(const cpu_amx_wino *f, const float *dyt, int64_t t, int co, int p, __m512 out[4])
{
    const __m512 zero = _mm512_setzero_ps();
    if (t >= f->nt) {
        out[0] = out[1] = out[2] = out[3] = zero;
        return;
    }
    const int64_t ty = t / f->g.tw, tx = t % f->g.tw, c_out = f->c_out;
    const int ow = f->g.ow;
    __m512 g[2][2];
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            const int64_t oy = 2 * ty + a, ox = 2 * tx + b;
            g[a][b] = oy < f->g.oh && ox < ow ? _mm512_loadu_ps(dyt + (oy * ow + ox) * c_out + co)
                                              : zero;
        }
    __m512 h[2]; /* row p of A g */
    for (int b = 0; b < 2; b++)
        h[b] = p == 0   ? g[0][b]
               : p == 1 ? _mm512_add_ps(g[0][b], g[1][b])
               : p == 2 ? _mm512_sub_ps(g[0][b], g[1][b])
                        : _mm512_sub_ps(zero, g[1][b]);
    out[0] = h[0];
    out[1] = _mm512_add_ps(h[0], h[1]);
    out[2] = _mm512_sub_ps(h[0], h[1]);
    out[3] = _mm512_sub_ps(zero, h[1]);
}

/* The transformed dy of xi = 4 p + q, q = 0..3, in three parts [3][4][ntp
 * / 2][c_out], pairs of tiles interleaved. */
static AMX_TARGET void wdw_pack_dy(const cpu_amx_wino *f, const float *dyt, int p, uint32_t *dp,
                                   size_t part)
{
    const int64_t c_out = f->c_out, pairs = f->ntp / 2;
    for (int64_t k = 0; k < pairs; k++)
        for (int co = 0; co < c_out; co += 16) {
            __m512 r0[4], r1[4];
            wdw_dy_row(f, dyt, 2 * k, co, p, r0);
            wdw_dy_row(f, dyt, 2 * k + 1, co, p, r1);
            for (int q = 0; q < 4; q++) {
                __m512i h0, m0, l0, h1, m1, l1;
                split3(r0[q], &h0, &m0, &l0);
                split3(r1[q], &h1, &m1, &l1);
                uint32_t *d = dp + ((int64_t)q * pairs + k) * c_out + co;
                _mm512_storeu_si512(d, _mm512_or_si512(_mm512_srli_epi32(h0, 16), h1));
                _mm512_storeu_si512(d + part, _mm512_or_si512(_mm512_srli_epi32(m0, 16), m1));
                _mm512_storeu_si512(d + 2 * part,
                                    _mm512_or_si512(_mm512_srli_epi32(l0, 16), l1));
            }
        }
}

/* dwt [(ci * 9 + tap) * c_out + co] += (G^T M G)[tap] of each channel pair,
 * G^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1]. */
static AMX_TARGET void wdw_output(const cpu_amx_wino *f, const float *m, float *dwt)
{
    const int64_t c_in = f->c_in, c_out = f->c_out, plane = c_in * c_out;
    const __m512 half = _mm512_set1_ps(0.5f);
    for (int64_t ci = 0; ci < c_in; ci++)
        for (int64_t co = 0; co < c_out; co += 16) {
            __m512 t[3][4];
            for (int q = 0; q < 4; q++) { /* t = G^T M, column q */
                const float *mq = m + ci * c_out + co + q * plane;
                const __m512 m0 = _mm512_loadu_ps(mq), m1 = _mm512_loadu_ps(mq + 4 * plane);
                const __m512 m2 = _mm512_loadu_ps(mq + 8 * plane), m3 = _mm512_loadu_ps(mq + 12 * plane);
                const __m512 s = _mm512_mul_ps(half, _mm512_add_ps(m1, m2));
                t[0][q] = _mm512_add_ps(m0, s);
                t[1][q] = _mm512_mul_ps(half, _mm512_sub_ps(m1, m2));
                t[2][q] = _mm512_add_ps(s, m3);
            }
            float *d = dwt + ci * 9 * c_out + co;
            for (int r = 0; r < 3; r++) { /* (t G)[r] */
                const __m512 s = _mm512_mul_ps(half, _mm512_add_ps(t[r][1], t[r][2]));
                const __m512 y0 = _mm512_add_ps(t[r][0], s);
                const __m512 y1 = _mm512_mul_ps(half, _mm512_sub_ps(t[r][1], t[r][2]));
                const __m512 y2 = _mm512_add_ps(s, t[r][3]);
                float *dr = d + 3 * r * c_out;
                _mm512_storeu_ps(dr, _mm512_add_ps(_mm512_loadu_ps(dr), y0));
                _mm512_storeu_ps(dr + c_out, _mm512_add_ps(_mm512_loadu_ps(dr + c_out), y1));
                _mm512_storeu_ps(dr + 2 * c_out,
                                 _mm512_add_ps(_mm512_loadu_ps(dr + 2 * c_out), y2));
            }
        }
}

/* One image: V (refused when not bfloat16), then per row p of xi the
 * transformed dy and the products of its four xi: per 32 x 32 block of C
 * (input x output channels) the tiles 32 at a time, V times dy's three
 * parts, added to M [xi][c_in][c_out] (or into it, for the first image of
 * a sum); G^T M G goes into dwt once per sum (wdw_output). */
static AMX_TARGET int wino_dw_image(const cpu_amx_wino *f, const float *x, const float *dyt,
                                    float *scratch, int first)
{
    const int64_t ntp = f->ntp, c_in = f->c_in, c_out = f->c_out;
    /* dy finite (sums of infinities would not be the direct sum's) */
    const __m512i expo = _mm512_set1_epi32(0x7F800000);
    const int64_t ndy = (int64_t)f->g.oh * f->g.ow * c_out;
    __mmask16 bad = 0;
    for (int64_t i = 0; i < ndy; i += 16) {
        const __mmask16 k = ndy - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (ndy - i)) - 1);
        const __m512i b = _mm512_maskz_loadu_epi32(k, dyt + i);
        bad |= _mm512_mask_cmpeq_epi32_mask(k, _mm512_and_si512(b, expo), expo);
    }
    if (bad) return 0;
    uint16_t *va = (uint16_t *)scratch;
    uint32_t *dp = (uint32_t *)(scratch + wdw_v_floats(f));
    const size_t part = wdw_d_floats(f);
    float *m = scratch + wdw_m_offset(f);
    float *tv = m + wdw_m_floats(f), *plane = tv + ALIGN_FLOATS((size_t)16 * (size_t)ntp);
    if (!wdw_pack_v(f, x, va, tv, plane)) return 0;
    const int64_t astride = ntp * (int64_t)sizeof(uint16_t);
    const int64_t bstride = c_out * (int64_t)sizeof(uint32_t), cstride = bstride;
    const int64_t bq = ntp / 2 * c_out; /* one xi's part */
    for (int p = 0; p < 4; p++) {
        wdw_pack_dy(f, dyt, p, dp, part);
        amx_configure();
        for (int q = 0; q < 4; q++) {
            const int xi = 4 * p + q;
            for (int64_t ci = 0; ci < c_in; ci += 32)
                for (int64_t co = 0; co < c_out; co += 32) {
                    float *c0 = m + ((int64_t)xi * c_in + ci) * c_out + co, *c1 = c0 + 16 * c_out;
                    if (first) {
                        _tile_zero(0);
                        _tile_zero(1);
                        _tile_zero(2);
                        _tile_zero(3);
                    } else {
                        _tile_loadd(0, c0, cstride);
                        _tile_loadd(1, c0 + 16, cstride);
                        _tile_loadd(2, c1, cstride);
                        _tile_loadd(3, c1 + 16, cstride);
                    }
                    const uint16_t *a0 = va + ((int64_t)xi * c_in + ci) * ntp;
                    for (int64_t k = 0; k < ntp; k += 32) {
                        _tile_loadd(4, a0 + k, astride);
                        _tile_loadd(5, a0 + 16 * ntp + k, astride);
                        for (int s = 0; s < 3; s++) {
                            const uint32_t *b = dp + s * part + q * bq + (k / 2) * c_out + co;
                            _tile_loadd(6, b, bstride);
                            _tile_loadd(7, b + 16, bstride);
                            _tile_dpbf16ps(0, 4, 6);
                            _tile_dpbf16ps(1, 4, 7);
                            _tile_dpbf16ps(2, 5, 6);
                            _tile_dpbf16ps(3, 5, 7);
                        }
                    }
                    _tile_stored(0, c0, cstride);
                    _tile_stored(1, c0 + 16, cstride);
                    _tile_stored(2, c1, cstride);
                    _tile_stored(3, c1 + 16, cstride);
                }
        }
        _tile_release();
    }
    return 1;
}

/* dw[:, f0:f1]: per 32 x 32 block of C (outputs x inputs), the rows 32 at
 * a time, dy's three parts times x (exact products, float sums); C stored
 * straight into dw. The inputs go outside (their B tiles stay in L1), the
 * outputs inside (dy^T's parts, 3 * out * rows_pad bfloat16, from L2). */
static AMX_TARGET void linear_dw_tiles(int64_t rows, int64_t in, int64_t out,
                                       const uint16_t *dyp, const uint32_t *xp, int64_t f0,
                                       int64_t f1, float *dw)
{
    const int64_t rp = rows_pad(rows), apart = out * rp;
    const int64_t astride = rp * (int64_t)sizeof(uint16_t);
    const int64_t bstride = in * (int64_t)sizeof(uint32_t);
    const int aligned = ((uintptr_t)dw & 63) == 0;
    _Alignas(64) float buf[32 * 32];
    for (int64_t f = f0; f < f1; f += 32)
        for (int64_t o0 = 0; o0 < out; o0 += 32) {
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int64_t k0 = 0; k0 < rp; k0 += 32) {
                const uint32_t *bt = xp + (k0 / 2) * in + f;
                _tile_loadd(6, bt, bstride);
                _tile_loadd(7, bt + 16, bstride);
                for (int i = 0; i < 3; i++) {
                    const uint16_t *at = dyp + i * apart + o0 * rp + k0;
                    _tile_loadd(4, at, astride);
                    _tile_loadd(5, at + 16 * rp, astride);
                    _tile_dpbf16ps(0, 4, 6);
                    _tile_dpbf16ps(1, 4, 7);
                    _tile_dpbf16ps(2, 5, 6);
                    _tile_dpbf16ps(3, 5, 7);
                }
            }
            /* through L1 into dw with streaming stores: dw (85 MB for the
             * reference fc1) is only written, never read */
            _tile_stored(0, buf, 128);
            _tile_stored(1, buf + 16, 128);
            _tile_stored(2, buf + 512, 128);
            _tile_stored(3, buf + 528, 128);
            for (int r = 0; r < 32; r++) {
                float *d = dw + (o0 + r) * in + f;
                const __m512 v0 = _mm512_load_ps(buf + 32 * r), v1 = _mm512_load_ps(buf + 32 * r + 16);
                if (aligned) {
                    _mm512_stream_ps(d, v0);
                    _mm512_stream_ps(d + 16, v1);
                } else {
                    _mm512_storeu_ps(d, v0);
                    _mm512_storeu_ps(d + 16, v1);
                }
            }
        }
    _mm_sfence();
}

static AMX_TARGET void linear_dw(int64_t rows, int64_t in, int64_t out, const uint16_t *dyp,
                                 const uint32_t *xp, int64_t f0, int64_t f1, float *dw)
{
    amx_configure();
    linear_dw_tiles(rows, in, out, dyp, xp, f0, f1, dw);
    _tile_release();
}
#endif /* CSNN_HAVE_AMX_KERNELS */

int csnn__cpu_amx_dw_image(const cpu_amx_conv *a, const float *xi, const float *dyt,
                           float *scratch, float *dwt)
{
#ifdef CSNN_HAVE_AMX_KERNELS
    if (!csnn__cpu_amx_usable()) return 0;
    return dw_image(a, xi, dyt, scratch, dwt);
#else
    (void)a, (void)xi, (void)dyt, (void)scratch, (void)dwt;
    return 0;
#endif
}

int csnn__cpu_amx_fwd_image(const cpu_amx_fwd *f, const uint16_t *a, const float *in,
                            const float *bias, float *scratch, float *out)
{
#ifdef CSNN_HAVE_AMX_KERNELS
    if (!csnn__cpu_amx_usable()) return 0;
    return fwd_image(f, a, in, bias, scratch, out);
#else
    (void)f, (void)a, (void)in, (void)bias, (void)scratch, (void)out;
    return 0;
#endif
}

int csnn__cpu_amx_wino_fwd_image(const cpu_amx_wino *f, const uint16_t *u, const float *x,
                                 const float *bias, float *scratch, float *y)
{
#ifdef CSNN_HAVE_AMX_KERNELS
    if (!csnn__cpu_amx_usable()) return 0;
    return wino_fwd_image(f, u, x, bias, scratch, y);
#else
    (void)f, (void)u, (void)x, (void)bias, (void)scratch, (void)y;
    return 0;
#endif
}

int csnn__cpu_amx_wino_dw_image(const cpu_amx_wino *f, const float *xi, const float *dyt,
                                float *scratch, int first)
{
#ifdef CSNN_HAVE_AMX_KERNELS
    if (!csnn__cpu_amx_usable()) return 0;
    return wino_dw_image(f, xi, dyt, scratch, first);
#else
    (void)f, (void)xi, (void)dyt, (void)scratch, (void)first;
    return 0;
#endif
}

void csnn__cpu_amx_wino_dw_flush(const cpu_amx_wino *f, const float *scratch, float *dwt)
{
#ifdef CSNN_HAVE_AMX_KERNELS
    wdw_output(f, scratch + wdw_m_offset(f), dwt);
#else
    (void)f, (void)scratch, (void)dwt; /* (no image was ever summed) */
#endif
}

int csnn__cpu_amx_linear_dw(int64_t rows, int64_t in, int64_t out, const uint16_t *dyp,
                            const uint32_t *xp, int64_t f0, int64_t f1, float *dw)
{
#ifdef CSNN_HAVE_AMX_KERNELS
    if (!csnn__cpu_amx_usable()) return 0;
    linear_dw(rows, in, out, dyp, xp, f0, f1, dw);
    return 1;
#else
    (void)rows, (void)in, (void)out, (void)dyp, (void)xp, (void)f0, (void)f1, (void)dw;
    return 0;
#endif
}
