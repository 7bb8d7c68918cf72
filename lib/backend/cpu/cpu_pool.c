/* cpu_pool.c - max pooling (no padding, floor mode), parallel over planes.
 *
 * As PyTorch's CPU kernel, the argmax is the FIRST maximum of the window in
 * row-major order, and a NaN wins (the last NaN of the window). Backward
 * zeroes each plane of dx and adds dy at the argmax, so overlapping windows
 * (stride < k) accumulate. */
#include <math.h>
#include <string.h>

#include "cpu_internal.h"

typedef struct {
    const csnn_pool_desc *d;
    const float *x, *dy;
    float *y, *dx;
    uint8_t *argmax;
    const uint8_t *argmax_in;
} pool_job;

static csnn_status pool_check(const char *op, const csnn_pool_desc *d)
{
    CPU_NOT_NULL(op, d);
    if (d->planes < 0 || d->k < 1 || d->k > 16 || d->stride < 1 || d->h_out < 1 ||
        d->w_out < 1 || (int64_t)(d->h_out - 1) * d->stride + d->k > d->h_in ||
        (int64_t)(d->w_out - 1) * d->stride + d->k > d->w_in)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "cpu %s: bad descriptor planes %lld, %dx%d -> %dx%d, k %d (1..16), "
                           "stride %d",
                           op, (long long)d->planes, d->h_in, d->w_in, d->h_out, d->w_out, d->k,
                           d->stride);
    return CSNN_OK;
}

#define POOL_ROW 128 /* outputs of one row handled together */

/* Row segments of outputs are processed window element by window element,
 * so that the inner loop runs across outputs without branches. In window
 * order, v replaces the best so far when v > best or v is NaN (PyTorch's
 * rule): written as !(v <= best) & (best == best) | (v != v), which is the
 * same for every input and lets GCC vectorise under -ftrapping-math. */
static inline void pool_window_step(const float *win, const int s, int n, int32_t idx,
                                    float *best, int32_t *arg_best)
{
    for (int i = 0; i < n; i++) {
        const float v = win[(int64_t)i * s], bv = best[i];
        const int take = (!(v <= bv) & (bv == bv)) | (v != v);
        best[i] = take ? v : bv;
        arg_best[i] = take ? idx : arg_best[i];
    }
}

static void pool_fwd_range(void *arg, int64_t p0, int64_t p1, int worker)
{
    (void)worker;
    const pool_job *j = arg;
    const csnn_pool_desc *d = j->d;
    const int k = d->k, s = d->stride;
    const int64_t in_plane = (int64_t)d->h_in * d->w_in, out_plane = (int64_t)d->h_out * d->w_out;
    float best[POOL_ROW];
    int32_t arg_best[POOL_ROW];
    for (int64_t p = p0; p < p1; p++)
        for (int oh = 0; oh < d->h_out; oh++)
            for (int ow0 = 0; ow0 < d->w_out; ow0 += POOL_ROW) {
                const int n = d->w_out - ow0 < POOL_ROW ? d->w_out - ow0 : POOL_ROW;
                const float *base =
                    j->x + p * in_plane + (int64_t)oh * s * d->w_in + (int64_t)ow0 * s;
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
                const int64_t o = p * out_plane + (int64_t)oh * d->w_out + ow0;
                memcpy(j->y + o, best, sizeof(float) * (size_t)n);
                if (j->argmax)
                    for (int i = 0; i < n; i++) j->argmax[o + i] = (uint8_t)arg_best[i];
            }
}

csnn_status csnn__cpu_maxpool_forward(void *dev, const csnn_pool_desc *d, const float *x,
                                      float *y, uint8_t *argmax)
{
    CSNN_TRY(pool_check("maxpool_forward", d));
    if (d->planes == 0) return CSNN_OK;
    CPU_NOT_NULL("maxpool_forward", x);
    CPU_NOT_NULL("maxpool_forward", y);
    pool_job j = {.d = d, .x = x, .y = y, .argmax = argmax};
    int64_t per_plane = (int64_t)d->h_out * d->w_out * d->k * d->k;
    csnn__cpu_parallel_for(dev, d->planes, 1 + (1 << 15) / per_plane, pool_fwd_range, &j);
    return CSNN_OK;
}

static void pool_bwd_range(void *arg, int64_t p0, int64_t p1, int worker)
{
    (void)worker;
    const pool_job *j = arg;
    const csnn_pool_desc *d = j->d;
    const int k = d->k, s = d->stride;
    const int64_t in_plane = (int64_t)d->h_in * d->w_in, out_plane = (int64_t)d->h_out * d->w_out;
    memset(j->dx + p0 * in_plane, 0, sizeof(float) * (size_t)((p1 - p0) * in_plane));
    for (int64_t p = p0; p < p1; p++) {
        float *dx = j->dx + p * in_plane;
        const float *dy = j->dy + p * out_plane;
        const uint8_t *am = j->argmax_in + p * out_plane;
        for (int oh = 0; oh < d->h_out; oh++)
            for (int ow = 0; ow < d->w_out; ow++) {
                int a = am[oh * d->w_out + ow];
                dx[(int64_t)(oh * s + a / k) * d->w_in + ow * s + a % k] +=
                    dy[oh * d->w_out + ow];
            }
    }
}

csnn_status csnn__cpu_maxpool_backward(void *dev, const csnn_pool_desc *d, const float *dy,
                                       const uint8_t *argmax, float *dx)
{
    CSNN_TRY(pool_check("maxpool_backward", d));
    if (d->planes == 0) return CSNN_OK;
    CPU_NOT_NULL("maxpool_backward", dy);
    CPU_NOT_NULL("maxpool_backward", argmax);
    CPU_NOT_NULL("maxpool_backward", dx);
    pool_job j = {.d = d, .dy = dy, .dx = dx, .argmax_in = argmax};
    int64_t per_plane = (int64_t)d->h_in * d->w_in;
    csnn__cpu_parallel_for(dev, d->planes, 1 + (1 << 15) / per_plane, pool_bwd_range, &j);
    return CSNN_OK;
}
