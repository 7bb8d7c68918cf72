/* cpu_bn.c - batch normalisation over [N, C, HW], parallel over channels.
 *
 * As PyTorch's CPU kernels: statistics accumulated in double (mean, then the
 * sum of squared deviations; in BN_LANES lanes, see below), save_invstd =
 * 1/sqrt(var + eps) rounded once; the output is x * alpha + shift with
 * alpha = invstd * gamma and
 * shift = beta - mean * alpha in float; the running variance uses the
 * unbiased variance var * M / (M - 1), M = n * hw. */
#include <math.h>
#include <string.h>

#include "cpu_internal.h"

typedef struct {
    const csnn_bn_desc *d;
    const float *x, *dy, *gamma, *beta, *mean, *invstd, *run_mean, *run_var;
    float *y, *dx, *save_mean, *save_invstd, *dgamma, *dbeta, *new_run_mean, *new_run_var;
} bn_job;

static csnn_status bn_check(const char *op, const csnn_bn_desc *d, int64_t min_count)
{
    CPU_NOT_NULL(op, d);
    if (d->n < 0 || d->c < 0 || d->hw < 0)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "cpu %s: bad shape n %d c %d hw %lld", op,
                           d->n, d->c, (long long)d->hw);
    if ((int64_t)d->n * d->hw < min_count && d->c > 0)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "cpu %s: %lld values per channel, training needs at least %lld", op,
                           (long long)((int64_t)d->n * d->hw), (long long)min_count);
    if (!(d->eps >= 0.0f) || !isfinite(d->eps) || !isfinite(d->momentum))
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "cpu %s: eps %g, momentum %g", op,
                           (double)d->eps, (double)d->momentum);
    return CSNN_OK;
}

/* Applies y = x * alpha + shift to channel c. */
CPU_INLINE void bn_apply(const csnn_bn_desc *d, int64_t c, const float *x, float *y, float alpha,
                     float shift)
{
    for (int32_t o = 0; o < d->n; o++) {
        const float *xr = x + ((int64_t)o * d->c + c) * d->hw;
        float *yr = y + ((int64_t)o * d->c + c) * d->hw;
        for (int64_t i = 0; i < d->hw; i++) yr[i] = xr[i] * alpha + shift;
    }
}

/* Double accumulation in BN_LANES independent lanes: lane k takes the values
 * at k, k + BN_LANES, ... of every row (each row starts at lane 0), and the
 * lanes are added pairwise at the end. The order depends on the shape only,
 * and the lanes let every variant run the adds as vectors (CPU_RANGE_VARIANTS:
 * the same bits at every width): a single running sum is one dependent
 * double add per value. */
#define BN_LANES 16

typedef float bn_v8f __attribute__((vector_size(32)));
typedef double bn_v8d __attribute__((vector_size(64)));

/* Values i .. i + 7 of row r as doubles (a macro: a function returning a
 * 64-byte vector draws -Wpsabi in the baseline build). */
#define bn_load8(r, i)                                                                             \
    __extension__({                                                                                \
        bn_v8f v_;                                                                                 \
        memcpy(&v_, (r) + (i), sizeof v_);                                                         \
        __builtin_convertvector(v_, bn_v8d);                                                       \
    })

CPU_INLINE void bn_lanes_store(double *a, const bn_v8d *lo, const bn_v8d *hi)
{
    memcpy(a, lo, sizeof *lo);
    memcpy(a + 8, hi, sizeof *hi);
}

CPU_INLINE double bn_lanes_total(double *a)
{
    for (int w = BN_LANES / 2; w >= 1; w /= 2)
        for (int k = 0; k < w; k++) a[k] += a[k + w];
    return a[0];
}

/* The first pass over a channel reads its n rows from memory, hw floats
 * each, d->c * hw apart: too many short streams for the hardware
 * prefetcher, so that pass prefetches the row about BN_PF_BYTES ahead of
 * row o of channel c in `base` (x or dy): a later row of c, past its last
 * row one of the next channel of the range [c0, c1), past the range row o
 * itself. One thread, data not in the cache, [64, 128, 576] (bn2): forward
 * 5.8-7.1 -> 5.1-5.7 ms, backward 7.0-8.7 -> 5.5-5.8 ms; [16, 128, 2304]
 * (bn1): 5.7-6.2 -> 4.8-5.5 and 5.8-6.7 -> 5.2-6.0 ms. (Prefetching dx's
 * rows for writing in the last pass made the backward slower.) */
#define BN_PF_BYTES 4096

CPU_INLINE const float *bn_ahead(const csnn_bn_desc *d, const float *base, int64_t c, int64_t c1,
                                 int32_t o)
{
    const int64_t rows = 1 + (BN_PF_BYTES / 4 - 1) / (d->hw > 0 ? d->hw : 1);
    int64_t q = o + rows, cc = c;
    if (q >= d->n) q -= d->n, cc++;
    if (cc >= c1 || q >= d->n) q = o, cc = c;
    return base + (q * d->c + cc) * d->hw;
}

CPU_INLINE void bn_train_body(void *arg, int64_t c0, int64_t c1, int worker)
{
    (void)worker;
    const bn_job *j = arg;
    const csnn_bn_desc *d = j->d;
    const int64_t count = (int64_t)d->n * d->hw, hw = d->hw;
    for (int64_t c = c0; c < c1; c++) {
        double a[BN_LANES], b[BN_LANES];
        bn_v8d lo = {0}, hi = {0};
        for (int32_t o = 0; o < d->n; o++) {
            const float *xr = j->x + ((int64_t)o * d->c + c) * hw;
            const float *pf = bn_ahead(d, j->x, c, c1, o);
            for (int64_t i = 0; i + BN_LANES <= hw; i += BN_LANES) {
                __builtin_prefetch(pf + i, 0, 3);
                lo += bn_load8(xr, i);
                hi += bn_load8(xr, i + 8);
            }
        }
        bn_lanes_store(a, &lo, &hi);
        for (int32_t o = 0; o < d->n; o++) { /* the tails of the rows */
            const float *xr = j->x + ((int64_t)o * d->c + c) * hw;
            for (int64_t i = hw - hw % BN_LANES, k = 0; i < hw; i++, k++) a[k] += (double)xr[i];
        }
        const double mean = bn_lanes_total(a) / (double)count;
        const bn_v8d vmean = {mean, mean, mean, mean, mean, mean, mean, mean};
        lo = hi = (bn_v8d){0};
        for (int32_t o = 0; o < d->n; o++) {
            const float *xr = j->x + ((int64_t)o * d->c + c) * hw;
            for (int64_t i = 0; i + BN_LANES <= hw; i += BN_LANES) {
                const bn_v8d t0 = bn_load8(xr, i) - vmean, t1 = bn_load8(xr, i + 8) - vmean;
                lo += t0 * t0;
                hi += t1 * t1;
            }
        }
        bn_lanes_store(b, &lo, &hi);
        for (int32_t o = 0; o < d->n; o++) {
            const float *xr = j->x + ((int64_t)o * d->c + c) * hw;
            for (int64_t i = hw - hw % BN_LANES, k = 0; i < hw; i++, k++) {
                const double t = (double)xr[i] - mean;
                b[k] += t * t;
            }
        }
        const double ssd = bn_lanes_total(b);
        const double var = ssd / (double)count;
        const float mean_f = (float)mean, invstd_f = (float)(1.0 / sqrt(var + (double)d->eps));
        j->save_mean[c] = mean_f;
        j->save_invstd[c] = invstd_f;
        const double mom = d->momentum;
        if (j->new_run_mean)
            j->new_run_mean[c] = (float)(mom * mean + (1.0 - mom) * (double)j->new_run_mean[c]);
        if (j->new_run_var)
            j->new_run_var[c] = (float)(mom * (ssd / (double)(count - 1)) +
                                        (1.0 - mom) * (double)j->new_run_var[c]);
        const float alpha = invstd_f * j->gamma[c];
        bn_apply(d, c, j->x, j->y, alpha, j->beta[c] - mean_f * alpha);
    }
}

CPU_RANGE_VARIANTS(bn_train_range, bn_train_body)

csnn_status csnn__cpu_bn_forward_train(void *dev, const csnn_bn_desc *d, const float *x,
                                       const float *gamma, const float *beta, float *y,
                                       float *save_mean, float *save_invstd, float *running_mean,
                                       float *running_var)
{
    const cpu_device *dv = dev;
    CSNN_TRY(bn_check("bn_forward_train", d, 2));
    if (d->c == 0) return CSNN_OK;
    CPU_NOT_NULL("bn_forward_train", x);
    CPU_NOT_NULL("bn_forward_train", gamma);
    CPU_NOT_NULL("bn_forward_train", beta);
    CPU_NOT_NULL("bn_forward_train", y);
    CPU_NOT_NULL("bn_forward_train", save_mean);
    CPU_NOT_NULL("bn_forward_train", save_invstd);
    bn_job j = {.d = d, .x = x, .gamma = gamma, .beta = beta, .y = y, .save_mean = save_mean,
                .save_invstd = save_invstd, .new_run_mean = running_mean,
                .new_run_var = running_var};
    csnn__cpu_parallel_for(dv, d->c, 1, bn_train_range(), &j);
    return CSNN_OK;
}

static void bn_infer_range(void *arg, int64_t c0, int64_t c1, int worker)
{
    (void)worker;
    const bn_job *j = arg;
    for (int64_t c = c0; c < c1; c++) {
        const float invstd = 1.0f / sqrtf(j->run_var[c] + j->d->eps);
        const float alpha = invstd * j->gamma[c];
        bn_apply(j->d, c, j->x, j->y, alpha, j->beta[c] - j->run_mean[c] * alpha);
    }
}

csnn_status csnn__cpu_bn_forward_infer(void *dev, const csnn_bn_desc *d, const float *x,
                                       const float *gamma, const float *beta,
                                       const float *running_mean, const float *running_var,
                                       float *y)
{
    CSNN_TRY(bn_check("bn_forward_infer", d, 0));
    if (d->c == 0 || d->n == 0 || d->hw == 0) return CSNN_OK;
    CPU_NOT_NULL("bn_forward_infer", x);
    CPU_NOT_NULL("bn_forward_infer", gamma);
    CPU_NOT_NULL("bn_forward_infer", beta);
    CPU_NOT_NULL("bn_forward_infer", running_mean);
    CPU_NOT_NULL("bn_forward_infer", running_var);
    CPU_NOT_NULL("bn_forward_infer", y);
    bn_job j = {.d = d, .x = x, .gamma = gamma, .beta = beta, .run_mean = running_mean,
                .run_var = running_var, .y = y};
    csnn__cpu_parallel_for(dev, d->c, 1 + (1 << 15) / ((int64_t)d->n * d->hw), bn_infer_range,
                           &j);
    return CSNN_OK;
}

/* dbeta = sum dy; dgamma = sum dy * xhat;
 * dx = (dy - dbeta / M - (x - mean) * k) * invstd * gamma,
 * k = sum(dy * (x - mean)) * invstd^2 / M  (PyTorch's formulation). */
CPU_INLINE void bn_backward_body(void *arg, int64_t c0, int64_t c1, int worker)
{
    (void)worker;
    const bn_job *j = arg;
    const csnn_bn_desc *d = j->d;
    const int64_t count = (int64_t)d->n * d->hw, hw = d->hw;
    for (int64_t c = c0; c < c1; c++) {
        const float mean = j->mean[c], invstd = j->invstd[c];
        double a[BN_LANES], b[BN_LANES];
        const bn_v8f vmean = {mean, mean, mean, mean, mean, mean, mean, mean};
        bn_v8d alo = {0}, ahi = {0}, blo = {0}, bhi = {0};
        for (int32_t o = 0; o < d->n; o++) {
            const int64_t off = ((int64_t)o * d->c + c) * hw;
            const float *xr = j->x + off, *gr = j->dy + off;
            const float *px = bn_ahead(d, j->x, c, c1, o), *pg = bn_ahead(d, j->dy, c, c1, o);
            for (int64_t i = 0; i + BN_LANES <= hw; i += BN_LANES) {
                __builtin_prefetch(px + i, 0, 3);
                __builtin_prefetch(pg + i, 0, 3);
                bn_v8f x0, x1;
                memcpy(&x0, xr + i, sizeof x0);
                memcpy(&x1, xr + i + 8, sizeof x1);
                const bn_v8d g0 = bn_load8(gr, i), g1 = bn_load8(gr, i + 8);
                alo += g0;
                ahi += g1;
                blo += g0 * __builtin_convertvector(x0 - vmean, bn_v8d);
                bhi += g1 * __builtin_convertvector(x1 - vmean, bn_v8d);
            }
        }
        bn_lanes_store(a, &alo, &ahi);
        bn_lanes_store(b, &blo, &bhi);
        for (int32_t o = 0; o < d->n; o++) { /* the tails of the rows */
            const int64_t off = ((int64_t)o * d->c + c) * hw;
            const float *xr = j->x + off, *gr = j->dy + off;
            for (int64_t i = hw - hw % BN_LANES, k = 0; i < hw; i++, k++) {
                a[k] += (double)gr[i];
                b[k] += (double)gr[i] * (double)(xr[i] - mean);
            }
        }
        const double sum = bn_lanes_total(a), dot = bn_lanes_total(b);
        j->dgamma[c] = (float)(dot * invstd);
        j->dbeta[c] = (float)sum;
        if (!j->dx) continue;
        const float k = (float)(dot * invstd * invstd / (double)count);
        const float gmean = (float)(sum / (double)count);
        const float scale = invstd * j->gamma[c];
        for (int32_t o = 0; o < d->n; o++) {
            const int64_t off = ((int64_t)o * d->c + c) * hw;
            const float *xr = j->x + off, *gr = j->dy + off;
            float *dxr = j->dx + off;
            for (int64_t i = 0; i < hw; i++) dxr[i] = (gr[i] - gmean - (xr[i] - mean) * k) * scale;
        }
    }
}

CPU_RANGE_VARIANTS(bn_backward_range, bn_backward_body)

csnn_status csnn__cpu_bn_backward(void *dev, const csnn_bn_desc *d, const float *x,
                                  const float *dy, const float *gamma, const float *save_mean,
                                  const float *save_invstd, float *dx, float *dgamma,
                                  float *dbeta)
{
    const cpu_device *dv = dev;
    CSNN_TRY(bn_check("bn_backward", d, 1));
    if (d->c == 0) return CSNN_OK;
    CPU_NOT_NULL("bn_backward", x);
    CPU_NOT_NULL("bn_backward", dy);
    CPU_NOT_NULL("bn_backward", gamma);
    CPU_NOT_NULL("bn_backward", save_mean);
    CPU_NOT_NULL("bn_backward", save_invstd);
    CPU_NOT_NULL("bn_backward", dgamma);
    CPU_NOT_NULL("bn_backward", dbeta);
    bn_job j = {.d = d, .x = x, .dy = dy, .gamma = gamma, .mean = save_mean,
                .invstd = save_invstd, .dx = dx, .dgamma = dgamma, .dbeta = dbeta};
    csnn__cpu_parallel_for(dv, d->c, 1, bn_backward_range(), &j);
    return CSNN_OK;
}
