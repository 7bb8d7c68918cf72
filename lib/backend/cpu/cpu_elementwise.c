/* cpu_elementwise.c - ReLU, dropout masks, broadcasting over time, and the
 * time-axis ops (mean, its backward, repeat, sum); all parallel over the
 * elements of one step. */
#include <math.h>
#include <string.h>

#include "cpu_internal.h"

#define ELEM_GRAIN (1 << 15)

typedef struct {
    int32_t steps;
    int64_t n;
    const float *x, *y_in, *dy, *mask;
    float *y, *dx;
    float p, scale;
    uint64_t seed, stream;
} elem_job;

static csnn_status elem_check(const char *op, int32_t steps, int64_t n)
{
    if (steps < 1)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "cpu %s: steps = %d, must be >= 1", op,
                           steps);
    CPU_NONNEG(op, n);
    return CSNN_OK;
}

/* ---- ReLU ---- */

static void relu_fwd_range(void *arg, int64_t i0, int64_t i1, int worker)
{
    (void)worker;
    const elem_job *j = arg;
    for (int64_t i = i0; i < i1; i++) {
        float v = j->x[i];
        j->y[i] = v < 0.0f ? 0.0f : v; /* NaN passes through, as torch.relu */
    }
}

csnn_status csnn__cpu_relu_forward(void *dev, int64_t n, const float *x, float *y)
{
    CSNN_TRY(elem_check("relu_forward", 1, n));
    if (n == 0) return CSNN_OK;
    CPU_NOT_NULL("relu_forward", x);
    CPU_NOT_NULL("relu_forward", y);
    elem_job j = {.x = x, .y = y};
    csnn__cpu_parallel_for(dev, n, ELEM_GRAIN, relu_fwd_range, &j);
    return CSNN_OK;
}

static void relu_bwd_range(void *arg, int64_t i0, int64_t i1, int worker)
{
    (void)worker;
    const elem_job *j = arg;
    const float *y = j->y_in, *dy = j->dy;
    float *dx = j->dx;
    /* y > 0, written so that GCC vectorises it under -ftrapping-math */
    for (int64_t i = i0; i < i1; i++) {
        const float yi = y[i], g = dy[i];
        dx[i] = (!(yi <= 0.0f) & (yi == yi)) ? g : 0.0f;
    }
}

csnn_status csnn__cpu_relu_backward(void *dev, int64_t n, const float *y, const float *dy,
                                    float *dx)
{
    CSNN_TRY(elem_check("relu_backward", 1, n));
    if (n == 0) return CSNN_OK;
    CPU_NOT_NULL("relu_backward", y);
    CPU_NOT_NULL("relu_backward", dy);
    CPU_NOT_NULL("relu_backward", dx);
    elem_job j = {.y_in = y, .dy = dy, .dx = dx};
    csnn__cpu_parallel_for(dev, n, ELEM_GRAIN, relu_bwd_range, &j);
    return CSNN_OK;
}

/* ---- dropout ---- */

static void dropout_range(void *arg, int64_t i0, int64_t i1, int worker)
{
    (void)worker;
    const elem_job *j = arg;
    int64_t i = i0;
    /* Whole groups of four share one Philox block: the same numbers as
     * csnn_rng_uniform(seed, stream, i), one block computed per group. */
    for (; i < i1 && (i & 3); i++)
        j->y[i] = csnn_rng_uniform(j->seed, j->stream, (uint64_t)i) >= j->p ? j->scale : 0.0f;
    for (; i + 4 <= i1; i += 4) {
        uint64_t block = (uint64_t)i >> 2;
        uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)j->stream,
                           (uint32_t)(j->stream >> 32)};
        csnn_philox4x32(ctr, j->seed);
        for (int r = 0; r < 4; r++) {
            float u = (float)(ctr[r] >> 8) * (1.0f / 16777216.0f);
            j->y[i + r] = u >= j->p ? j->scale : 0.0f;
        }
    }
    for (; i < i1; i++)
        j->y[i] = csnn_rng_uniform(j->seed, j->stream, (uint64_t)i) >= j->p ? j->scale : 0.0f;
}

csnn_status csnn__cpu_dropout_mask(void *dev, float *mask, int64_t n, float p, uint64_t seed,
                                   uint64_t stream)
{
    CSNN_TRY(elem_check("dropout_mask", 1, n));
    if (!(p >= 0.0f && p <= 1.0f))
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "cpu dropout_mask: p = %g is outside [0, 1]",
                           (double)p);
    if (n == 0) return CSNN_OK;
    CPU_NOT_NULL("dropout_mask", mask);
    elem_job j = {.y = mask, .p = p, .seed = seed, .stream = stream};
    j.scale = p < 1.0f ? (float)(1.0 / (1.0 - (double)p)) : 0.0f;
    csnn__cpu_parallel_for(dev, n, ELEM_GRAIN / 4, dropout_range, &j);
    return CSNN_OK;
}

/* ---- [T, n] ops: items are (t, i) pairs or i, as each op needs ---- */

/* Items are the flat (t, i) indices, taken a row segment at a time. */
static void mul_bt_range(void *arg, int64_t k0, int64_t k1, int worker)
{
    (void)worker;
    const elem_job *j = arg;
    for (int64_t k = k0; k < k1;) {
        const int64_t i0 = k % j->n, len = j->n - i0 < k1 - k ? j->n - i0 : k1 - k;
        const float *x = j->x + k, *mask = j->mask + i0;
        float *y = j->y + k;
        for (int64_t r = 0; r < len; r++) y[r] = x[r] * mask[r];
        k += len;
    }
}

csnn_status csnn__cpu_mul_broadcast_t(void *dev, int32_t steps, int64_t n, const float *x,
                                      const float *mask, float *y)
{
    CSNN_TRY(elem_check("mul_broadcast_t", steps, n));
    if (n == 0) return CSNN_OK;
    CPU_NOT_NULL("mul_broadcast_t", x);
    CPU_NOT_NULL("mul_broadcast_t", mask);
    CPU_NOT_NULL("mul_broadcast_t", y);
    elem_job j = {.steps = steps, .n = n, .x = x, .mask = mask, .y = y};
    csnn__cpu_parallel_for(dev, (int64_t)steps * n, ELEM_GRAIN, mul_bt_range, &j);
    return CSNN_OK;
}

/* y[i] = sum_t x[t, i] in float, t in order; times `scale` unless 0. */
static void time_sum_range(void *arg, int64_t i0, int64_t i1, int worker)
{
    (void)worker;
    const elem_job *j = arg;
    for (int64_t i = i0; i < i1; i++) {
        float s = j->x[i];
        for (int32_t t = 1; t < j->steps; t++) s += j->x[(int64_t)t * j->n + i];
        j->y[i] = j->scale != 0.0f ? s / j->scale : s;
    }
}

static csnn_status time_reduce(const char *op, void *dev, int32_t steps, int64_t n,
                               const float *x, float *y, float divisor)
{
    CSNN_TRY(elem_check(op, steps, n));
    if (n == 0) return CSNN_OK;
    CPU_NOT_NULL(op, x);
    CPU_NOT_NULL(op, y);
    elem_job j = {.steps = steps, .n = n, .x = x, .y = y, .scale = divisor};
    csnn__cpu_parallel_for(dev, n, ELEM_GRAIN / steps + 1, time_sum_range, &j);
    return CSNN_OK;
}

csnn_status csnn__cpu_time_mean(void *dev, int32_t steps, int64_t n, const float *x, float *y)
{
    /* torch's mean: the float sum over t, divided by T */
    return time_reduce("time_mean", dev, steps, n, x, y, (float)(steps > 0 ? steps : 1));
}

csnn_status csnn__cpu_time_sum(void *dev, int32_t steps, int64_t n, const float *x, float *y)
{
    return time_reduce("time_sum", dev, steps, n, x, y, 0.0f);
}

/* y[t, i] = x[i] / scale (scale 0: a copy) */
static void time_spread_range(void *arg, int64_t i0, int64_t i1, int worker)
{
    (void)worker;
    const elem_job *j = arg;
    for (int32_t t = 0; t < j->steps; t++) {
        float *yt = j->y + (int64_t)t * j->n;
        if (j->scale != 0.0f)
            for (int64_t i = i0; i < i1; i++) yt[i] = j->x[i] / j->scale;
        else
            memcpy(yt + i0, j->x + i0, sizeof(float) * (size_t)(i1 - i0));
    }
}

static csnn_status time_spread(const char *op, void *dev, int32_t steps, int64_t n,
                               const float *x, float *y, float divisor)
{
    CSNN_TRY(elem_check(op, steps, n));
    if (n == 0) return CSNN_OK;
    CPU_NOT_NULL(op, x);
    CPU_NOT_NULL(op, y);
    elem_job j = {.steps = steps, .n = n, .x = x, .y = y, .scale = divisor};
    csnn__cpu_parallel_for(dev, n, ELEM_GRAIN / steps + 1, time_spread_range, &j);
    return CSNN_OK;
}

csnn_status csnn__cpu_time_mean_backward(void *dev, int32_t steps, int64_t n, const float *dy,
                                         float *dx)
{
    return time_spread("time_mean_backward", dev, steps, n, dy, dx,
                       (float)(steps > 0 ? steps : 1));
}

csnn_status csnn__cpu_time_repeat(void *dev, int32_t steps, int64_t n, const float *x, float *y)
{
    return time_spread("time_repeat", dev, steps, n, x, y, 0.0f);
}
