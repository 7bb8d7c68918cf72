/*
 * elementwise.cu - fill, ReLU, dropout masks, the time-axis helpers.
 * All memory-bound grid-stride kernels with 64-bit indices.
 */
#include <math.h>

#include "cuda_common.cuh"

/* ------------------------------------------------------------------------ */
/* fill                                                                      */
/* ------------------------------------------------------------------------ */

__global__ void k_fill(float *dst, float value, int64_t n)
{
    CU_FOR(i, n) { dst[i] = value; }
}

csnn_status cu_fill_impl(cuda_device *d, const char *op, float *dst, float value, int64_t n)
{
    if (n < 0) return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda %s: negative n", op);
    if (n == 0) return CSNN_OK;
    CU_NOT_NULL(op, dst);
    k_fill<<<cu_blocks(n), CU_THREADS, 0, d->stream>>>(dst, value, n);
    CU_LAUNCH_CHECK(op, "k_fill");
    return CSNN_OK;
}

csnn_status cu_fill(void *dev, float *dst, float value, int64_t n)
{
    CU_ENTER(dev, "fill");
    return cu_fill_impl(d, "fill", dst, value, n);
}

/* ------------------------------------------------------------------------ */
/* ReLU                                                                      */
/* ------------------------------------------------------------------------ */

__global__ void k_relu_forward(int64_t n, const float *x, float *y)
{
    /* max(x, 0) as torch.relu: NaN stays NaN */
    CU_FOR(i, n)
    {
        float v = x[i];
        y[i] = v > 0.0f ? v : (v != v ? v : 0.0f);
    }
}

__global__ void k_relu_backward(int64_t n, const float *y, const float *dy, float *dx)
{
    CU_FOR(i, n) { dx[i] = y[i] > 0.0f ? dy[i] : 0.0f; }
}

csnn_status cu_relu_forward(void *dev, int64_t n, const float *x, float *y)
{
    const char *op = "relu_forward";
    CU_ENTER(dev, op);
    if (n < 0) return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda %s: negative n", op);
    if (n == 0) return CSNN_OK;
    CU_NOT_NULL(op, x);
    CU_NOT_NULL(op, y);
    k_relu_forward<<<cu_blocks(n), CU_THREADS, 0, d->stream>>>(n, x, y);
    CU_LAUNCH_CHECK(op, "k_relu_forward");
    return CSNN_OK;
}

csnn_status cu_relu_backward(void *dev, int64_t n, const float *y, const float *dy, float *dx)
{
    const char *op = "relu_backward";
    CU_ENTER(dev, op);
    if (n < 0) return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda %s: negative n", op);
    if (n == 0) return CSNN_OK;
    CU_NOT_NULL(op, y);
    CU_NOT_NULL(op, dy);
    CU_NOT_NULL(op, dx);
    k_relu_backward<<<cu_blocks(n), CU_THREADS, 0, d->stream>>>(n, y, dy, dx);
    CU_LAUNCH_CHECK(op, "k_relu_backward");
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Dropout                                                                   */
/* ------------------------------------------------------------------------ */

/* Number i of the mask comes from csnn_rng_uniform(seed, stream, i) of the
 * public header (a __host__ __device__ function under nvcc): the CPU backend
 * calls the same function, so the masks are equal bit for bit. */
__global__ void k_dropout_mask(float *mask, int64_t n, float p, float scale, uint64_t seed,
                               uint64_t stream)
{
    CU_FOR(i, n)
    {
        float u = csnn_rng_uniform(seed, stream, (uint64_t)i);
        mask[i] = u >= p ? scale : 0.0f;
    }
}

csnn_status cu_dropout_mask(void *dev, float *mask, int64_t n, float p, uint64_t seed,
                            uint64_t stream)
{
    const char *op = "dropout_mask";
    CU_ENTER(dev, op);
    if (n < 0) return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda %s: negative n", op);
    if (!(p >= 0.0f && p <= 1.0f))
        return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda dropout_mask: p %g is outside [0, 1]",
                        (double)p);
    if (n == 0) return CSNN_OK;
    CU_NOT_NULL(op, mask);
    /* 1/(1-p) formed in double and rounded once; with p == 1 nothing is
     * kept (u < 1 always) and the scale is never used. */
    float scale = p < 1.0f ? (float)(1.0 / (1.0 - (double)p)) : 0.0f;
    k_dropout_mask<<<cu_blocks(n), CU_THREADS, 0, d->stream>>>(mask, n, p, scale, seed, stream);
    CU_LAUNCH_CHECK(op, "k_dropout_mask");
    return CSNN_OK;
}

__global__ void k_mul_broadcast_t(int64_t total, int64_t n, const float *x, const float *mask,
                                  float *y)
{
    CU_FOR(j, total) { y[j] = x[j] * mask[j % n]; }
}

csnn_status cu_mul_broadcast_t(void *dev, int32_t steps, int64_t n, const float *x,
                               const float *mask, float *y)
{
    const char *op = "mul_broadcast_t";
    CU_ENTER(dev, op);
    if (steps < 0 || n < 0) return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda %s: negative size", op);
    int64_t total = (int64_t)steps * n;
    if (total == 0) return CSNN_OK;
    CU_NOT_NULL(op, x);
    CU_NOT_NULL(op, mask);
    CU_NOT_NULL(op, y);
    k_mul_broadcast_t<<<cu_blocks(total), CU_THREADS, 0, d->stream>>>(total, n, x, mask, y);
    CU_LAUNCH_CHECK(op, "k_mul_broadcast_t");
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Time axis: x[t, i], t < steps, i < n                                      */
/* ------------------------------------------------------------------------ */

/* Sum over t in ascending order, in float (as the CPU loop). With
 * mean != 0 the sum is divided by steps. */
__global__ void k_time_sum(int32_t steps, int64_t n, const float *x, float *y, int mean)
{
    CU_FOR(i, n)
    {
        float s = 0.0f;
        for (int32_t t = 0; t < steps; t++) s += x[(int64_t)t * n + i];
        y[i] = mean ? s / (float)steps : s;
    }
}

__global__ void k_time_mean_backward(int32_t steps, int64_t n, const float *dy, float *dx)
{
    int64_t total = (int64_t)steps * n;
    CU_FOR(j, total) { dx[j] = dy[j % n] / (float)steps; }
}

__global__ void k_time_repeat(int32_t steps, int64_t n, const float *x, float *y)
{
    int64_t total = (int64_t)steps * n;
    CU_FOR(j, total) { y[j] = x[j % n]; }
}

static csnn_status time_args(const char *op, int32_t steps, int64_t n, const void *in,
                             const void *out)
{
    if (steps < 1 || n < 0)
        return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda %s: bad sizes steps=%d n=%lld", op,
                        (int)steps, (long long)n);
    if (n > 0) {
        CU_NOT_NULL(op, in);
        CU_NOT_NULL(op, out);
    }
    return CSNN_OK;
}

csnn_status cu_time_mean(void *dev, int32_t steps, int64_t n, const float *x, float *y)
{
    const char *op = "time_mean";
    CU_ENTER(dev, op);
    CSNN_CU_RETURN_IF(time_args(op, steps, n, x, y));
    if (n == 0) return CSNN_OK;
    k_time_sum<<<cu_blocks(n), CU_THREADS, 0, d->stream>>>(steps, n, x, y, 1);
    CU_LAUNCH_CHECK(op, "k_time_sum");
    return CSNN_OK;
}

csnn_status cu_time_mean_backward(void *dev, int32_t steps, int64_t n, const float *dy, float *dx)
{
    const char *op = "time_mean_backward";
    CU_ENTER(dev, op);
    CSNN_CU_RETURN_IF(time_args(op, steps, n, dy, dx));
    if (n == 0) return CSNN_OK;
    k_time_mean_backward<<<cu_blocks((int64_t)steps * n), CU_THREADS, 0, d->stream>>>(steps, n,
                                                                                        dy, dx);
    CU_LAUNCH_CHECK(op, "k_time_mean_backward");
    return CSNN_OK;
}

csnn_status cu_time_repeat(void *dev, int32_t steps, int64_t n, const float *x, float *y)
{
    const char *op = "time_repeat";
    CU_ENTER(dev, op);
    CSNN_CU_RETURN_IF(time_args(op, steps, n, x, y));
    if (n == 0) return CSNN_OK;
    k_time_repeat<<<cu_blocks((int64_t)steps * n), CU_THREADS, 0, d->stream>>>(steps, n, x, y);
    CU_LAUNCH_CHECK(op, "k_time_repeat");
    return CSNN_OK;
}

csnn_status cu_time_sum(void *dev, int32_t steps, int64_t n, const float *x, float *y)
{
    const char *op = "time_sum";
    CU_ENTER(dev, op);
    CSNN_CU_RETURN_IF(time_args(op, steps, n, x, y));
    if (n == 0) return CSNN_OK;
    k_time_sum<<<cu_blocks(n), CU_THREADS, 0, d->stream>>>(steps, n, x, y, 0);
    CU_LAUNCH_CHECK(op, "k_time_sum");
    return CSNN_OK;
}
