/* cpu_pool.h - max pooling's per-window code, shared by the max-pool
 * entries (cpu_pool.c) and the fused neuron + max-pool entries
 * (cpu_neuron_pool.c). */
#ifndef CSNN_CPU_POOL_H
#define CSNN_CPU_POOL_H

#include <string.h>

#include "cpu_internal.h"

/** Checks a pooling descriptor (no padding, floor mode, 1 <= k <= 16);
 *  errors name `op`. */
csnn_status csnn__cpu_pool_check(const char *op, const csnn_pool_desc *d);

#define POOL_ROW 128 /* outputs of one row handled together */

/* Row segments of outputs are processed window element by window element,
 * so that the inner loop runs across outputs without branches. In window
 * order, v replaces the best so far when v > best or v is NaN (PyTorch's
 * rule): written as !(v <= best) & (best == best) | (v != v), which is the
 * same for every input and lets GCC vectorise under -ftrapping-math. */
CPU_INLINE void pool_window_step(const float *win, const int s, int n, int32_t idx,
                                    float *best, int32_t *arg_best)
{
    for (int i = 0; i < n; i++) {
        const float v = win[(int64_t)i * s], bv = best[i];
        const int take = (!(v <= bv) & (bv == bv)) | (v != v);
        best[i] = take ? v : bv;
        arg_best[i] = take ? idx : arg_best[i];
    }
}

/* Pools one plane x [h_in, w_in] into y [h_out, w_out] and, when argmax is
 * not NULL, the window index of each first maximum. */
CPU_INLINE void pool_plane_forward(const csnn_pool_desc *d, const float *x, float *y,
                                      uint8_t *argmax)
{
    const int k = d->k, s = d->stride;
    float best[POOL_ROW];
    int32_t arg_best[POOL_ROW];
    for (int oh = 0; oh < d->h_out; oh++)
        for (int ow0 = 0; ow0 < d->w_out; ow0 += POOL_ROW) {
            const int n = d->w_out - ow0 < POOL_ROW ? d->w_out - ow0 : POOL_ROW;
            const float *base = x + (int64_t)oh * s * d->w_in + (int64_t)ow0 * s;
            for (int i = 0; i < n; i++) {
                best[i] = base[(int64_t)i * s];
                arg_best[i] = 0;
            }
            for (int a = 0; a < k; a++)
                for (int b = a == 0; b < k; b++) { /* (0, 0) is the seed */
                    const float *win = base + (int64_t)a * d->w_in + b;
                    const int32_t idx = a * k + b;
                    if (s == 2) /* the usual case, as a constant stride */
                        pool_window_step(win, 2, n, idx, best, arg_best);
                    else
                        pool_window_step(win, s, n, idx, best, arg_best);
                }
            const int64_t o = (int64_t)oh * d->w_out + ow0;
            memcpy(y + o, best, sizeof(float) * (size_t)n);
            if (argmax)
                for (int i = 0; i < n; i++) argmax[o + i] = (uint8_t)arg_best[i];
        }
}

/* dx [h_in, w_in] (zeroed by the caller) += dy [h_out, w_out] routed to each
 * window's argmax, window by window in row-major order (so overlapping
 * windows accumulate in the same order everywhere). */
CPU_INLINE void pool_plane_backward(const csnn_pool_desc *d, const float *dy,
                                       const uint8_t *argmax, float *dx)
{
    const int k = d->k, s = d->stride;
    for (int oh = 0; oh < d->h_out; oh++)
        for (int ow = 0; ow < d->w_out; ow++) {
            int a = argmax[oh * d->w_out + ow];
            dx[(int64_t)(oh * s + a / k) * d->w_in + ow * s + a % k] += dy[oh * d->w_out + ow];
        }
}

/* pool_plane_backward for 2 x 2 windows with stride 2 (which do not
 * overlap): every input a window covers is written, 0 + dy where it is the
 * window's argmax and 0 + 0 elsewhere - the bits the zeroed dx += dy of
 * pool_plane_backward gives, -0 included - with loops that vectorise. The
 * inputs no window covers (an odd last row or column) are left to the
 * caller (zeroed). */
CPU_INLINE void pool_2x2_backward(const csnn_pool_desc *d, const float *dy,
                                  const uint8_t *argmax, float *dx)
{
    const int wi = d->w_in, wo = d->w_out;
    for (int oh = 0; oh < d->h_out; oh++) {
        const float *restrict g = dy + (int64_t)oh * wo;
        const uint8_t *restrict a = argmax + (int64_t)oh * wo;
        float *restrict r0 = dx + (int64_t)2 * oh * wi, *restrict r1 = r0 + wi;
        for (int ow = 0; ow < wo; ow++) {
            /* v or +0 by masking its bits (no branch, no multiply: 0 * inf
             * would be NaN), then 0 + that */
            uint32_t u;
            memcpy(&u, &g[ow], sizeof u);
            const uint32_t am = a[ow];
            const uint32_t b0 = u & -(uint32_t)(am == 0), b1 = u & -(uint32_t)(am == 1);
            const uint32_t b2 = u & -(uint32_t)(am == 2), b3 = u & -(uint32_t)(am == 3);
            float f0, f1, f2, f3;
            memcpy(&f0, &b0, sizeof f0);
            memcpy(&f1, &b1, sizeof f1);
            memcpy(&f2, &b2, sizeof f2);
            memcpy(&f3, &b3, sizeof f3);
            r0[2 * ow] = 0.0f + f0;
            r0[2 * ow + 1] = 0.0f + f1;
            r1[2 * ow] = 0.0f + f2;
            r1[2 * ow + 1] = 0.0f + f3;
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* pool_2x2_backward with AVX-512, 16 windows at a time and a masked rest of
 * the row (the reference sn1's rows are 24 windows: a third of them went
 * through the scalar loop) - the same bits: the masked move keeps v's bits
 * or gives +0, then 0 + that; call it only where csnn__cpu_isa() is
 * CPU_ISA_AVX512. */
static CPU_TARGET_AVX512 __attribute__((unused)) void
pool_2x2_backward_avx512(const csnn_pool_desc *d, const float *dy, const uint8_t *argmax,
                         float *dx)
{
    const int wi = d->w_in, wo = d->w_out;
    /* out[2j] = a[j], out[2j + 1] = b[j]: j < 8 (lo), j >= 8 (hi) */
    const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi =
        _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    const __m512 zero = _mm512_setzero_ps();
    for (int oh = 0; oh < d->h_out; oh++) {
        const float *g = dy + (int64_t)oh * wo;
        const uint8_t *a = argmax + (int64_t)oh * wo;
        float *r0 = dx + (int64_t)2 * oh * wi, *r1 = r0 + wi;
        for (int ow = 0; ow < wo; ow += 16) {
            const int n = wo - ow < 16 ? wo - ow : 16;
            /* n windows; their 2n outputs per row in two vectors */
            const __mmask16 m = (__mmask16)((1u << n) - 1);
            const __mmask16 m0 = (__mmask16)((1u << (n < 8 ? 2 * n : 16)) - 1);
            const __mmask16 m1 = (__mmask16)((1u << (n > 8 ? 2 * (n - 8) : 0)) - 1);
            const __m512 gv = _mm512_maskz_loadu_ps(m, g + ow);
            const __m512i av = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, a + ow));
            const __m512 f0 = _mm512_add_ps(
                zero, _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(av, _mm512_set1_epi32(0)), gv));
            const __m512 f1 = _mm512_add_ps(
                zero, _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(av, _mm512_set1_epi32(1)), gv));
            const __m512 f2 = _mm512_add_ps(
                zero, _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(av, _mm512_set1_epi32(2)), gv));
            const __m512 f3 = _mm512_add_ps(
                zero, _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(av, _mm512_set1_epi32(3)), gv));
            _mm512_mask_storeu_ps(r0 + 2 * ow, m0, _mm512_permutex2var_ps(f0, lo, f1));
            _mm512_mask_storeu_ps(r0 + 2 * ow + 16, m1, _mm512_permutex2var_ps(f0, hi, f1));
            _mm512_mask_storeu_ps(r1 + 2 * ow, m0, _mm512_permutex2var_ps(f2, lo, f3));
            _mm512_mask_storeu_ps(r1 + 2 * ow + 16, m1, _mm512_permutex2var_ps(f2, hi, f3));
        }
    }
}
#endif

#endif /* CSNN_CPU_POOL_H */
