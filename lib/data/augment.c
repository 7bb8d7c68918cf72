/*
 * augment.c - per-sample random augmentation of 8-bit grayscale images into
 * floats in [0, 1].
 *
 * Order: flips (horizontal, vertical), rotation (bilinear, about the image
 * centre, zero fill; a positive angle turns the picture counter-clockwise,
 * as torchvision), random crop of the zero-padded image, then brightness
 * and contrast jitter (each clamped to [0, 1], as torchvision's
 * ColorJitter). The geometric part is one resampling pass.
 *
 * Randomness: draw k of sample s in epoch e is
 * csnn_rng_uniform(seed ^ splitmix64(e), s, k), with fixed k per choice
 * (0 hflip, 1 vflip, 2 angle, 3 crop row, 4 crop column, 5 brightness,
 * 6 contrast), so turning one transform on or off does not change the others
 * and no result depends on the thread or the batch a sample lands in.
 */
#include <math.h>
#include <string.h>

#include "data_private.h"

enum { DRAW_HFLIP, DRAW_VFLIP, DRAW_ANGLE, DRAW_CROP_Y, DRAW_CROP_X, DRAW_BRIGHT, DRAW_CONTRAST };

void csnn__augment_recipe(csnn_augment *a)
{
    csnn__augment_none(a);
    a->hflip = 0.5f;
    a->rotate_deg = 10.0f;
    a->crop_pad = 4;
}

void csnn__augment_none(csnn_augment *a)
{
    memset(a, 0, sizeof *a);
}

/* The transform drawn for one sample. */
typedef struct {
    bool hflip, vflip;
    double angle_rad;
    int32_t dy, dx;        /* crop offset minus padding */
    float bright, contrast; /* factors; 1 = unchanged */
} draw;

static int32_t crop_shift(float u, int32_t pad)
{
    int32_t span = 2 * pad + 1;
    int32_t o = (int32_t)(u * (float)span);
    if (o > 2 * pad) o = 2 * pad;
    return o - pad;
}

static draw make_draw(const csnn_augment *a, uint64_t seed, uint64_t epoch, int64_t sample)
{
    uint64_t e = epoch;
    uint64_t key = seed ^ csnn__splitmix64(&e);
    uint64_t stream = (uint64_t)sample;
#define U(k) csnn_rng_uniform(key, stream, (uint64_t)(k))
    draw d = {false, false, 0.0, 0, 0, 1.0f, 1.0f};
    if (a->hflip > 0) d.hflip = U(DRAW_HFLIP) < a->hflip;
    if (a->vflip > 0) d.vflip = U(DRAW_VFLIP) < a->vflip;
    if (a->rotate_deg > 0) {
        double deg = (2.0 * U(DRAW_ANGLE) - 1.0) * a->rotate_deg;
        d.angle_rad = deg * (3.14159265358979323846 / 180.0);
    }
    if (a->crop_pad > 0) {
        d.dy = crop_shift(U(DRAW_CROP_Y), a->crop_pad);
        d.dx = crop_shift(U(DRAW_CROP_X), a->crop_pad);
    }
    if (a->brightness > 0) d.bright = 1.0f + a->brightness * (2.0f * U(DRAW_BRIGHT) - 1.0f);
    if (a->contrast > 0) d.contrast = 1.0f + a->contrast * (2.0f * U(DRAW_CONTRAST) - 1.0f);
#undef U
    return d;
}

/* Pixel (r, c) of the flipped source as a float in [0, 1]; 0 outside. */
static inline float flipped(const uint8_t *src, int32_t h, int32_t w, const draw *d, int32_t r,
                            int32_t c)
{
    if (r < 0 || r >= h || c < 0 || c >= w) return 0.0f;
    if (d->vflip) r = h - 1 - r;
    if (d->hflip) c = w - 1 - c;
    return (float)src[(size_t)r * (size_t)w + (size_t)c] / 255.0f;
}

static inline float clamp01(float v)
{
    return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
}

void csnn__augment_sample(const csnn_augment *a, uint64_t seed, uint64_t epoch, int64_t sample,
                          const uint8_t *src, int32_t h, int32_t w, float *dst)
{
    size_t n = (size_t)h * (size_t)w;
    if (!a) {
        for (size_t i = 0; i < n; i++) dst[i] = (float)src[i] / 255.0f;
        return;
    }
    draw d = make_draw(a, seed, epoch, sample);
    if (d.angle_rad == 0.0) {
        for (int32_t y = 0; y < h; y++)
            for (int32_t x = 0; x < w; x++)
                dst[(size_t)y * w + x] = flipped(src, h, w, &d, y + d.dy, x + d.dx);
    } else {
        /* Output (y, x) of the rotated image samples the flipped one at
         * centre + R(-angle) (offset), in image coordinates (y down). */
        const double cy = (h - 1) * 0.5, cx = (w - 1) * 0.5;
        const double cs = cos(d.angle_rad), sn = sin(d.angle_rad);
        for (int32_t y = 0; y < h; y++) {
            for (int32_t x = 0; x < w; x++) {
                float v = 0.0f;
                int32_t p = y + d.dy, q = x + d.dx;
                if (p >= 0 && p < h && q >= 0 && q < w) {
                    double oy = p - cy, ox = q - cx;
                    double sx = cx + ox * cs - oy * sn;
                    double sy = cy + ox * sn + oy * cs;
                    double fx0 = floor(sx), fy0 = floor(sy);
                    int32_t x0 = (int32_t)fx0, y0 = (int32_t)fy0;
                    float fx = (float)(sx - fx0), fy = (float)(sy - fy0);
                    float v00 = flipped(src, h, w, &d, y0, x0);
                    float v01 = flipped(src, h, w, &d, y0, x0 + 1);
                    float v10 = flipped(src, h, w, &d, y0 + 1, x0);
                    float v11 = flipped(src, h, w, &d, y0 + 1, x0 + 1);
                    v = clamp01((1.0f - fy) * ((1.0f - fx) * v00 + fx * v01) +
                                fy * ((1.0f - fx) * v10 + fx * v11));
                }
                dst[(size_t)y * w + x] = v;
            }
        }
    }
    if (d.bright != 1.0f)
        for (size_t i = 0; i < n; i++) dst[i] = clamp01(dst[i] * d.bright);
    if (d.contrast != 1.0f) {
        double sum = 0.0;
        for (size_t i = 0; i < n; i++) sum += dst[i];
        float mean = (float)(sum / (double)n);
        for (size_t i = 0; i < n; i++) dst[i] = clamp01((dst[i] - mean) * d.contrast + mean);
    }
}
