/* cpu_simd.h - small AVX-512 helpers of the spike-sparse kernels
 * (cpu_conv_sparse.c, cpu_linear_sparse.c).
 *
 * libcsnn is built for the baseline x86-64; these functions carry their own
 * target attribute and run only when csnn__cpu_use_avx512() says so. Each
 * user also has a portable path. */
#ifndef CSNN_CPU_SIMD_H
#define CSNN_CPU_SIMD_H

#include "cpu_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define CSNN_HAVE_AVX512_KERNELS 1
#define AVX512_TARGET __attribute__((target("avx512f,bmi,popcnt")))

/* One 16 x 16 block: dst[c * ldd + r] = src[r * lds + c] (+ add[c] when add
 * is not NULL), for r, c < 16. */
static inline __attribute__((always_inline)) AVX512_TARGET void
simd_transpose16(const float *src, int64_t lds, float *dst, int64_t ldd, const float *add,
                 const int stream)
{
    __m512 r[16], t[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * lds);
    /* t[2i], t[2i+1]: rows 2i and 2i+1 interleaved */
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* r[4i + j]: in each 128-bit lane L, column 4L + j of rows 4i .. 4i+3 */
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0xEE);
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    /* t[j], t[4+j]: lanes {0, 2} / {1, 3} of rows 0..7; t[8+j], t[12+j]: rows 8..15 */
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        t[j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88);
        t[4 + j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xDD);
        t[8 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88);
        t[12 + j] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xDD);
    }
    /* column j: lane 0 of all rows; 8 + j: lane 2; 4 + j: lane 1; 12 + j: lane 3 */
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        __m512 c0 = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
        __m512 c8 = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xDD);
        __m512 c4 = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0x88);
        __m512 c12 = _mm512_shuffle_f32x4(t[4 + j], t[12 + j], 0xDD);
        if (add) {
            c0 = _mm512_add_ps(c0, _mm512_set1_ps(add[j]));
            c8 = _mm512_add_ps(c8, _mm512_set1_ps(add[8 + j]));
            c4 = _mm512_add_ps(c4, _mm512_set1_ps(add[4 + j]));
            c12 = _mm512_add_ps(c12, _mm512_set1_ps(add[12 + j]));
        }
        if (stream) { /* non-temporal: dst is 64-byte aligned, and not read soon */
            _mm512_stream_ps(dst + (0 + j) * ldd, c0);
            _mm512_stream_ps(dst + (8 + j) * ldd, c8);
            _mm512_stream_ps(dst + (4 + j) * ldd, c4);
            _mm512_stream_ps(dst + (12 + j) * ldd, c12);
        } else {
            _mm512_storeu_ps(dst + (0 + j) * ldd, c0);
            _mm512_storeu_ps(dst + (8 + j) * ldd, c8);
            _mm512_storeu_ps(dst + (4 + j) * ldd, c4);
            _mm512_storeu_ps(dst + (12 + j) * ldd, c12);
        }
    }
}
#endif

/* dst[c * ldd + r] = src[r * lds + c] (+ add[c] when add is not NULL) for
 * r < nr, c < nc, portable. */
static inline void simd_transpose_generic(const float *src, int64_t lds, int64_t nr, int64_t nc,
                                          float *dst, int64_t ldd, const float *add)
{
    for (int64_t r0 = 0; r0 < nr; r0 += 16)
        for (int64_t c = 0; c < nc; c++) {
            const float a = add ? add[c] : 0.0f;
            for (int64_t r = r0; r < nr && r < r0 + 16; r++)
                dst[c * ldd + r] = add ? src[r * lds + c] + a : src[r * lds + c];
        }
}

#ifdef CSNN_HAVE_AVX512_KERNELS
static AVX512_TARGET __attribute__((unused)) void
simd_transpose_avx512(const float *src, int64_t lds, int64_t nr, int64_t nc, float *dst,
                      int64_t ldd, const float *add, int stream)
{
    const int64_t fr = nr & ~(int64_t)15, fc = nc & ~(int64_t)15;
    /* streaming stores only when every 16-float row of dst is 64-byte aligned */
    stream = stream && !add && ((uintptr_t)dst & 63) == 0 && (ldd & 15) == 0;
    for (int64_t c = 0; c < fc; c += 16)
        for (int64_t r = 0; r < fr; r += 16) {
            if (stream)
                simd_transpose16(src + r * lds + c, lds, dst + c * ldd + r, ldd, NULL, 1);
            else
                simd_transpose16(src + r * lds + c, lds, dst + c * ldd + r, ldd,
                                 add ? add + c : NULL, 0);
        }
    if (stream) _mm_sfence();
    if (fc < nc)
        simd_transpose_generic(src + fc, lds, fr, nc - fc, dst + fc * ldd, ldd,
                               add ? add + fc : NULL);
    if (fr < nr) simd_transpose_generic(src + fr * lds, lds, nr - fr, nc, dst + fr, ldd, add);
}
#endif

/** dst[c * ldd + r] = src[r * lds + c] (+ add[c] when add is not NULL) for
 *  r < nr, c < nc, with AVX-512 when `avx512`. */
static inline void simd_transpose(int avx512, const float *src, int64_t lds, int64_t nr,
                                  int64_t nc, float *dst, int64_t ldd, const float *add)
{
#ifdef CSNN_HAVE_AVX512_KERNELS
    if (avx512) {
        simd_transpose_avx512(src, lds, nr, nc, dst, ldd, add, 0);
        return;
    }
#endif
    (void)avx512;
    simd_transpose_generic(src, lds, nr, nc, dst, ldd, add);
}

/** simd_transpose for a destination that is not read again soon: with
 *  AVX-512 and a 64-byte aligned dst whose rows are too, non-temporal
 *  stores (no read for ownership, no cache pollution). */
static inline void simd_transpose_stream(int avx512, const float *src, int64_t lds, int64_t nr,
                                         int64_t nc, float *dst, int64_t ldd)
{
#ifdef CSNN_HAVE_AVX512_KERNELS
    if (avx512) {
        simd_transpose_avx512(src, lds, nr, nc, dst, ldd, NULL, 1);
        return;
    }
#endif
    (void)avx512;
    simd_transpose_generic(src, lds, nr, nc, dst, ldd, NULL);
}

#endif /* CSNN_CPU_SIMD_H */
