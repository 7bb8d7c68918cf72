/* cpu_pool.c - max pooling (no padding, floor mode), parallel over planes.
 *
 * As PyTorch's CPU kernel, the argmax is the FIRST maximum of the window in
 * row-major order, and a NaN wins (the last NaN of the window). Backward
 * zeroes each plane of dx and adds dy at the argmax, so overlapping windows
 * (stride < k) accumulate. */
#include <math.h>
#include <string.h>

#include "cpu_pool.h"

typedef struct {
    const csnn_pool_desc *d;
    const float *x, *dy;
    float *y, *dx;
    uint8_t *argmax;
    const uint8_t *argmax_in;
} pool_job;

csnn_status csnn__cpu_pool_check(const char *op, const csnn_pool_desc *d)
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

static void pool_fwd_range(void *arg, int64_t p0, int64_t p1, int worker)
{
    (void)worker;
    const pool_job *j = arg;
    const csnn_pool_desc *d = j->d;
    const int64_t in_plane = (int64_t)d->h_in * d->w_in, out_plane = (int64_t)d->h_out * d->w_out;
    for (int64_t p = p0; p < p1; p++)
        pool_plane_forward(d, j->x + p * in_plane, j->y + p * out_plane,
                           j->argmax ? j->argmax + p * out_plane : NULL);
}

csnn_status csnn__cpu_maxpool_forward(void *dev, const csnn_pool_desc *d, const float *x,
                                      float *y, uint8_t *argmax)
{
    CSNN_TRY(csnn__cpu_pool_check("maxpool_forward", d));
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
    const int64_t in_plane = (int64_t)d->h_in * d->w_in, out_plane = (int64_t)d->h_out * d->w_out;
    memset(j->dx + p0 * in_plane, 0, sizeof(float) * (size_t)((p1 - p0) * in_plane));
    for (int64_t p = p0; p < p1; p++)
        pool_plane_backward(d, j->dy + p * out_plane, j->argmax_in + p * out_plane,
                            j->dx + p * in_plane);
}

csnn_status csnn__cpu_maxpool_backward(void *dev, const csnn_pool_desc *d, const float *dy,
                                       const uint8_t *argmax, float *dx)
{
    CSNN_TRY(csnn__cpu_pool_check("maxpool_backward", d));
    if (d->planes == 0) return CSNN_OK;
    CPU_NOT_NULL("maxpool_backward", dy);
    CPU_NOT_NULL("maxpool_backward", argmax);
    CPU_NOT_NULL("maxpool_backward", dx);
    pool_job j = {.d = d, .dy = dy, .dx = dx, .argmax_in = argmax};
    int64_t per_plane = (int64_t)d->h_in * d->w_in;
    csnn__cpu_parallel_for(dev, d->planes, 1 + (1 << 15) / per_plane, pool_bwd_range, &j);
    return CSNN_OK;
}
