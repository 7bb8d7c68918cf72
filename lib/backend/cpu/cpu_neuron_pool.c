/* cpu_neuron_pool.c - spiking neurons followed by max pooling, fused.
 *
 * The composition neuron_forward + maxpool_forward writes and re-reads the
 * full-resolution spikes [T, M] (and backward the full-resolution dL/dS);
 * here each task owns whole planes (one channel of one image, h_in x w_in
 * neurons) and runs all T steps of a plane in a row, the plane's state and
 * spikes in small per-worker buffers that stay in the L1/L2 cache:
 *
 *   forward   per step t: H, S, V of the plane's neurons (cpu_neuron.h),
 *             H written to h only when h != NULL, then the plane's spikes
 *             pooled (cpu_pool.h) into y[t] and argmax[t];
 *   backward  H from h, or recomputed by re-running the forward recurrence
 *             from x when h == NULL (T steps per neuron: cheap, and x_shared
 *             layers then keep no [T, M] buffer at all); then from t = T-1
 *             down: dL/dS[t] of the plane = dy[t] routed to each window's
 *             argmax (zero elsewhere; overlapping windows accumulate in
 *             window order), one step of the neurons' backward through time
 *             (which carries dL/dV through every neuron, fired or not, argmax
 *             or not, and through neurons no window covers).
 *
 * Every element is computed by the same code and in the same order as by
 * the composition, so the results are bit for bit those of neuron_forward +
 * maxpool_forward and maxpool_backward + neuron_backward (the loops run as
 * AVX-512 or AVX2 code where the CPU has it, with the same bits: see
 * CPU_RANGE_VARIANTS). Planes are independent: the results do not depend on
 * the thread count. */
#include <string.h>

#include "cpu_conv.h"
#include "cpu_neuron.h"
#include "cpu_pool.h"

typedef struct {
    neuron_job j; /* the neuron constants (its pointers unused) */
    const csnn_pool_desc *pd;
    int64_t plane, out_plane, planes_per_step, m;
    int32_t steps;
    const float *x, *h_in, *dy;
    const uint8_t *argmax_in;
    float *y, *h_out, *dx;
    uint8_t *argmax;
    float *scratch;       /* per worker: ws_floats floats */
    size_t ws_floats;
    int avx512;           /* pool_2x2_backward_avx512 may run */
} npool_job;

/* Checks both descriptors and that they describe the same tensor. */
static csnn_status npool_setup(const char *op, const csnn_neuron_desc *nd,
                               const csnn_pool_desc *pd, npool_job *np)
{
    memset(np, 0, sizeof *np);
    np->avx512 = csnn__cpu_isa() == CPU_ISA_AVX512;
    CSNN_TRY(csnn__cpu_neuron_setup(op, nd, &np->j));
    CSNN_TRY(csnn__cpu_pool_check(op, pd));
    const int64_t plane = (int64_t)pd->h_in * pd->w_in;
    if (nd->m % plane != 0 || pd->planes != (int64_t)nd->t * (nd->m / plane))
        return csnn__error(CSNN_ERR_SHAPE,
                           "cpu %s: %lld neurons per step over %d steps are not %lld planes of "
                           "%dx%d",
                           op, (long long)nd->m, nd->t, (long long)pd->planes, pd->h_in, pd->w_in);
    np->pd = pd;
    np->plane = plane;
    np->out_plane = (int64_t)pd->h_out * pd->w_out;
    np->planes_per_step = nd->m / plane;
    np->m = nd->m;
    np->steps = nd->t;
    return CSNN_OK;
}

static float *worker_scratch(const npool_job *np, int worker)
{
    return np->scratch + (size_t)worker * np->ws_floats;
}

#define ROW_CHUNK 64 /* outputs of a row handled together by pool_spikes_2x2 */

/* Max pooling of a plane of spikes (exactly 0 or 1, never NaN) with 2 x 2
 * windows and stride 2, the reference model's: the first spiking neuron of
 * each window in row-major order, else window index 0 - what
 * pool_plane_forward gives for such input. Written as loops without
 * branches over contiguous arrays (the window's four neurons de-interleaved
 * first), which GCC vectorises. */
CPU_INLINE void pool_spikes_2x2(const csnn_pool_desc *d, const float *s, float *y,
                                uint8_t *argmax)
{
    const int wi = d->w_in, wo = d->w_out;
    float q[4][ROW_CHUNK];
    for (int oh = 0; oh < d->h_out; oh++)
        for (int ow0 = 0; ow0 < wo; ow0 += ROW_CHUNK) {
            const int n = wo - ow0 < ROW_CHUNK ? wo - ow0 : ROW_CHUNK;
            const float *r0 = s + (int64_t)2 * oh * wi + 2 * ow0, *r1 = r0 + wi;
            for (int i = 0; i < n; i++) {
                q[0][i] = r0[2 * i];
                q[1][i] = r0[2 * i + 1];
                q[2][i] = r1[2 * i];
                q[3][i] = r1[2 * i + 1];
            }
            /* the spikes are 0 or 1: max, and the first 1, by arithmetic */
            float *restrict yr = y + (int64_t)oh * wo + ow0;
            for (int i = 0; i < n; i++) {
                const float m01 = q[0][i] > q[1][i] ? q[0][i] : q[1][i];
                const float m23 = q[2][i] > q[3][i] ? q[2][i] : q[3][i];
                yr[i] = m01 > m23 ? m01 : m23;
            }
            if (!argmax) continue;
            uint8_t *restrict ar = argmax + (int64_t)oh * wo + ow0;
            int32_t k[ROW_CHUNK]; /* (a float -> byte conversion in one loop stays scalar) */
            for (int i = 0; i < n; i++) {
                const float k3 = 3.0f * q[3][i];
                const float k2 = 2.0f * q[2][i] + (1.0f - q[2][i]) * k3;
                const float k1 = q[1][i] + (1.0f - q[1][i]) * k2;
                k[i] = (int32_t)((1.0f - q[0][i]) * k1);
            }
            for (int i = 0; i < n; i++) ar[i] = (uint8_t)k[i];
        }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* pool_spikes_2x2 with AVX-512, 16 windows at a time and a masked rest of
 * the row (the reference sn1's rows are 24 windows: GCC's loops left 8 of
 * them scalar): the same operations in the same order, so the same bits.
 * Call it only where csnn__cpu_isa() is CPU_ISA_AVX512. */
static CPU_TARGET_AVX512 void pool_spikes_2x2_avx512(const csnn_pool_desc *d, const float *s,
                                                     float *y, uint8_t *argmax)
{
    const int wi = d->w_in, wo = d->w_out;
    /* the even and the odd elements of two vectors */
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    const __m512 one = _mm512_set1_ps(1.0f), two = _mm512_set1_ps(2.0f),
                 three = _mm512_set1_ps(3.0f);
    for (int oh = 0; oh < d->h_out; oh++) {
        const float *r0 = s + (int64_t)2 * oh * wi, *r1 = r0 + wi;
        float *yr = y + (int64_t)oh * wo;
        uint8_t *ar = argmax ? argmax + (int64_t)oh * wo : NULL;
        for (int i = 0; i < wo; i += 16) {
            const int n = wo - i < 16 ? wo - i : 16;
            const __mmask16 m = (__mmask16)((1u << n) - 1);
            const __mmask16 lo = (__mmask16)((1u << (n < 8 ? 2 * n : 16)) - 1);
            const __mmask16 hi = (__mmask16)((1u << (n > 8 ? 2 * (n - 8) : 0)) - 1);
            const __m512 a0 = _mm512_maskz_loadu_ps(lo, r0 + 2 * i),
                         a1 = _mm512_maskz_loadu_ps(hi, r0 + 2 * i + 16);
            const __m512 b0 = _mm512_maskz_loadu_ps(lo, r1 + 2 * i),
                         b1 = _mm512_maskz_loadu_ps(hi, r1 + 2 * i + 16);
            const __m512 q0 = _mm512_permutex2var_ps(a0, even, a1),
                         q1 = _mm512_permutex2var_ps(a0, odd, a1);
            const __m512 q2 = _mm512_permutex2var_ps(b0, even, b1),
                         q3 = _mm512_permutex2var_ps(b0, odd, b1);
            /* m01 = q0 > q1 ? q0 : q1, as max_ps(q0, q1) is */
            const __m512 m01 = _mm512_max_ps(q0, q1), m23 = _mm512_max_ps(q2, q3);
            _mm512_mask_storeu_ps(yr + i, m, _mm512_max_ps(m01, m23));
            if (!ar) continue;
            const __m512 k3 = _mm512_mul_ps(three, q3);
            const __m512 k2 =
                _mm512_add_ps(_mm512_mul_ps(two, q2), _mm512_mul_ps(_mm512_sub_ps(one, q2), k3));
            const __m512 k1 = _mm512_add_ps(q1, _mm512_mul_ps(_mm512_sub_ps(one, q1), k2));
            const __m512i k = _mm512_cvttps_epi32(_mm512_mul_ps(_mm512_sub_ps(one, q0), k1));
            _mm512_mask_cvtepi32_storeu_epi8(ar + i, m, k);
        }
    }
}
#endif

/* The forward recurrence of plane p: H of step t into hs(t) (h_out's plane
 * when writing h, else `hbuf`), spikes into s; `pool` pools them as it goes.
 * xs, when not NULL, is the plane's (shared) input instead of np->x's. */
CPU_INLINE void plane_forward(const npool_job *np, int64_t p, float *v, float *hbuf,
                              size_t hbuf_step, float *s, int pool, const float *xs)
{
    const neuron_job *j = &np->j;
    const int64_t plane = np->plane;
    for (int64_t i = 0; i < plane; i++) v[i] = j->v0;
    for (int32_t t = 0; t < np->steps; t++) {
        const int64_t off = (int64_t)t * np->m + p * plane;
        const float *xt = xs ? xs : np->x + (j->shared ? p * plane : off);
        float *ht = np->h_out ? np->h_out + off : hbuf + (size_t)t * hbuf_step;
        /* the next plane's input, while this one computes (the input is
         * read once, from memory: the hardware prefetcher stops at pages) */
        const float *next = NULL; /* (an xs plane was computed into the cache) */
        if (!xs && (j->shared ? t == 0 && p + 1 < np->planes_per_step : t + 1 < np->steps))
            next = xt + (j->shared ? plane : np->m);
        for (int64_t b = 0; b < plane; b += NEURON_BLOCK) {
            const int len = (int)(plane - b < NEURON_BLOCK ? plane - b : NEURON_BLOCK);
            if (next)
                for (int k = 0; k < len; k += 16) __builtin_prefetch(next + b + k, 0, 3);
            neuron_charge(j, v + b, xt + b, ht + b, len);
            neuron_fire(j, ht + b, s + b, v + b, len);
        }
        if (pool) {
            const int64_t o = ((int64_t)t * np->planes_per_step + p) * np->out_plane;
            if (np->pd->k == 2 && np->pd->stride == 2) {
#if defined(__x86_64__) && defined(__GNUC__)
                if (np->avx512)
                    pool_spikes_2x2_avx512(np->pd, s, np->y + o,
                                           np->argmax ? np->argmax + o : NULL);
                else
#endif
                    pool_spikes_2x2(np->pd, s, np->y + o, np->argmax ? np->argmax + o : NULL);
            }
            else
                pool_plane_forward(np->pd, s, np->y + o, np->argmax ? np->argmax + o : NULL);
        }
    }
}

CPU_INLINE void npool_fwd_body(void *arg, int64_t p0, int64_t p1, int worker)
{
    const npool_job *np = arg;
    float *v = worker_scratch(np, worker), *hbuf = v + np->plane, *s = hbuf + np->plane;
    for (int64_t p = p0; p < p1; p++) plane_forward(np, p, v, hbuf, 0, s, 1, NULL);
}

CPU_RANGE_VARIANTS(npool_fwd_range, npool_fwd_body)

/* Planes per task: about 32K neuron-steps, at least one plane. */
static int64_t npool_grain(const npool_job *np)
{
    return 1 + (1 << 15) / (np->plane * np->steps);
}

csnn_status csnn__cpu_neuron_pool_forward(void *dev, const csnn_neuron_desc *nd,
                                          const csnn_pool_desc *pd, const float *x, float *y,
                                          uint8_t *argmax, float *h)
{
    static const char op[] = "neuron_pool_forward";
    npool_job np;
    CSNN_TRY(npool_setup(op, nd, pd, &np));
    if (nd->m == 0) return CSNN_OK;
    CPU_NOT_NULL(op, x);
    CPU_NOT_NULL(op, y);
    np.x = x;
    np.y = y;
    np.argmax = argmax;
    np.h_out = h;
    /* v, H (when h is NULL) and S of one plane per worker */
    np.ws_floats = ((size_t)np.plane * 3 + 15) & ~(size_t)15;
    np.scratch = csnn__cpu_scratch(dev, np.ws_floats * sizeof(float) * csnn__cpu_workers(dev), op);
    if (!np.scratch) return CSNN_ERR_OUT_OF_MEMORY;
    csnn__cpu_parallel_for(dev, np.planes_per_step, npool_grain(&np), npool_fwd_range(), &np);
    return CSNN_OK;
}

CPU_INLINE void npool_bwd_body(void *arg, int64_t p0, int64_t p1, int worker)
{
    const npool_job *np = arg;
    const neuron_job *j = &np->j;
    const int64_t plane = np->plane;
    float *gv = worker_scratch(np, worker), *gs = gv + plane, *tmp = gs + plane;
    float *acc = tmp + plane, *hs = acc + plane; /* hs: [T][plane] when recomputing */
    for (int64_t p = p0; p < p1; p++) {
        if (!np->h_in) {
            /* tmp and gs serve as the state and the spikes here */
            plane_forward(np, p, tmp, hs, (size_t)plane, gs, 0, NULL);
        }
        for (int64_t i = 0; i < plane; i++) gv[i] = acc[i] = 0.0f;
        for (int32_t t = np->steps - 1; t >= 0; t--) {
            const int64_t off = (int64_t)t * np->m + p * plane;
            const int64_t o = ((int64_t)t * np->planes_per_step + p) * np->out_plane;
            const csnn_pool_desc *pd = np->pd;
            if (pd->k == 2 && pd->stride == 2) {
                if (pd->h_in % 2 || pd->w_in % 2) memset(gs, 0, sizeof(float) * (size_t)plane);
#if defined(__x86_64__) && defined(__GNUC__)
                if (np->avx512)
                    pool_2x2_backward_avx512(pd, np->dy + o, np->argmax_in + o, gs);
                else
#endif
                    pool_2x2_backward(pd, np->dy + o, np->argmax_in + o, gs);
            } else {
                memset(gs, 0, sizeof(float) * (size_t)plane);
                pool_plane_backward(pd, np->dy + o, np->argmax_in + o, gs);
            }
            const float *ht = np->h_in ? np->h_in + off : hs + (size_t)t * plane;
            float *gx = j->shared ? tmp : np->dx + off;
            for (int64_t b = 0; b < plane; b += NEURON_BLOCK) {
                const int len = (int)(plane - b < NEURON_BLOCK ? plane - b : NEURON_BLOCK);
                neuron_bwd(j, len, ht + b, gs + b, gv + b, gx + b);
            }
            if (j->shared)
                for (int64_t i = 0; i < plane; i++) acc[i] += tmp[i];
        }
        if (j->shared) memcpy(np->dx + p * plane, acc, sizeof(float) * (size_t)plane);
    }
}

CPU_RANGE_VARIANTS(npool_bwd_range, npool_bwd_body)

csnn_status csnn__cpu_neuron_pool_backward(void *dev, const csnn_neuron_desc *nd,
                                           const csnn_pool_desc *pd, const float *x,
                                           const float *h, const uint8_t *argmax, const float *dy,
                                           float *dx)
{
    static const char op[] = "neuron_pool_backward";
    npool_job np;
    CSNN_TRY(npool_setup(op, nd, pd, &np));
    if (nd->m == 0) return CSNN_OK;
    if (!h && !x)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "cpu %s: arguments 'h' and 'x' are both NULL (one is needed)", op);
    CPU_NOT_NULL(op, argmax);
    CPU_NOT_NULL(op, dy);
    CPU_NOT_NULL(op, dx);
    np.x = x;
    np.h_in = h;
    np.argmax_in = argmax;
    np.dy = dy;
    np.dx = dx;
    /* gv, gs, tmp, acc and, when recomputing, H of all steps */
    size_t floats = (size_t)np.plane * (4 + (h ? 0 : (size_t)np.steps));
    np.ws_floats = (floats + 15) & ~(size_t)15;
    np.scratch = csnn__cpu_scratch(dev, np.ws_floats * sizeof(float) * csnn__cpu_workers(dev), op);
    if (!np.scratch) return CSNN_ERR_OUT_OF_MEMORY;
    csnn__cpu_parallel_for(dev, np.planes_per_step, npool_grain(&np), npool_bwd_range(), &np);
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* A convolution (the static block's) fused with the neurons and pooling     */
/* ------------------------------------------------------------------------ */

/* Inference: image by image, the convolution's output for all channels goes
 * to a per-worker buffer (csnn__cpu_conv_image_forward: the same call, and
 * so the same bits, as conv2d_forward), and each of its planes runs through
 * the neurons (x_shared over the T steps) and the pooling straight from it.
 * The [N, C, H, W] output is never written to memory and read back. */
typedef struct {
    npool_job np;
    conv_plan cp;
    const float *x, *w, *b;
    size_t conv_floats; /* per worker: col buffer, then one image's output */
} cnp_job;

CPU_INLINE void cnp_body(void *arg, int64_t i0, int64_t i1, int worker)
{
    const cnp_job *j = arg;
    const npool_job *np = &j->np;
    const int64_t plane = np->plane, c_out = j->cp.d->c_out;
    float *v = worker_scratch(np, worker), *hbuf = v + np->plane, *s = hbuf + np->plane;
    float *col = s + ((np->plane + 15) & ~(int64_t)15);
    float *yi = col + j->cp.col_floats;
    for (int64_t i = i0; i < i1; i++) {
        csnn__cpu_conv_image_forward(&j->cp, j->x + i * j->cp.in_size, j->w, j->b, yi, col);
        for (int64_t c = 0; c < c_out; c++)
            plane_forward(np, i * c_out + c, v, hbuf, 0, s, 1, yi + c * plane);
    }
}

CPU_RANGE_VARIANTS(cnp_range, cnp_body)

csnn_status csnn__cpu_conv_neuron_pool_forward(void *dev, const csnn_conv2d_desc *cd,
                                               const float *x, const float *w, const float *b,
                                               const csnn_neuron_desc *nd,
                                               const csnn_pool_desc *pd, float *y)
{
    static const char op[] = "conv_neuron_pool_forward";
    cnp_job j;
    CSNN_TRY(csnn__cpu_conv_check(op, cd));
    CSNN_TRY(npool_setup(op, nd, pd, &j.np));
    if (!nd->x_shared)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "cpu %s: the neurons must take the convolution's output as the input "
                           "of every step (x_shared)",
                           op);
    if (nd->m != (int64_t)cd->n * cd->c_out * cd->h_out * cd->w_out ||
        (int64_t)pd->h_in * pd->w_in != (int64_t)cd->h_out * cd->w_out)
        return csnn__error(CSNN_ERR_SHAPE,
                           "cpu %s: %lld neurons of %dx%d planes per step, the convolution gives "
                           "%d images x %d channels of %dx%d",
                           op, (long long)nd->m, pd->h_in, pd->w_in, cd->n, cd->c_out, cd->h_out,
                           cd->w_out);
    if (cd->n == 0) return CSNN_OK;
    CPU_NOT_NULL(op, x);
    CPU_NOT_NULL(op, w);
    CPU_NOT_NULL(op, y);
    if (cd->has_bias) CPU_NOT_NULL(op, b);
    csnn__cpu_conv_plan(cd, &j.cp);
    j.x = x;
    j.w = w;
    j.b = cd->has_bias ? b : NULL;
    j.np.y = y;
    const size_t plane16 = ((size_t)j.np.plane + 15) & ~(size_t)15;
    j.np.ws_floats = plane16 * 3 + j.cp.col_floats + (size_t)j.cp.out_size;
    j.np.ws_floats = (j.np.ws_floats + 15) & ~(size_t)15;
    j.np.scratch =
        csnn__cpu_scratch(dev, j.np.ws_floats * sizeof(float) * csnn__cpu_workers(dev), op);
    if (!j.np.scratch) return CSNN_ERR_OUT_OF_MEMORY;
    csnn__cpu_parallel_for(dev, cd->n, 1, cnp_range(), &j);
    return CSNN_OK;
}
