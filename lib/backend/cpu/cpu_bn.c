/* cpu_bn.c - batch normalisation over [N, C, HW], one pool task per channel.
 *
 * As PyTorch's CPU kernels: statistics accumulated in double (mean, then the
 * sum of squared deviations), save_invstd = 1/sqrt(var + eps) rounded once;
 * the output is x * alpha + shift with alpha = invstd * gamma and
 * shift = beta - mean * alpha in float; the running variance uses the
 * unbiased variance var * M / (M - 1), M = n * hw. */
#include <math.h>

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
static void bn_apply(const csnn_bn_desc *d, int64_t c, const float *x, float *y, float alpha,
                     float shift)
{
    for (int32_t o = 0; o < d->n; o++) {
        const float *xr = x + ((int64_t)o * d->c + c) * d->hw;
        float *yr = y + ((int64_t)o * d->c + c) * d->hw;
        for (int64_t i = 0; i < d->hw; i++) yr[i] = xr[i] * alpha + shift;
    }
}

static void bn_train_channel(void *arg, int64_t c, int worker)
{
    (void)worker;
    const bn_job *j = arg;
    const csnn_bn_desc *d = j->d;
    const int64_t count = (int64_t)d->n * d->hw;
    double sum = 0.0;
    for (int32_t o = 0; o < d->n; o++) {
        const float *xr = j->x + ((int64_t)o * d->c + c) * d->hw;
        for (int64_t i = 0; i < d->hw; i++) sum += xr[i];
    }
    const double mean = sum / (double)count;
    double ssd = 0.0;
    for (int32_t o = 0; o < d->n; o++) {
        const float *xr = j->x + ((int64_t)o * d->c + c) * d->hw;
        for (int64_t i = 0; i < d->hw; i++) {
            double t = xr[i] - mean;
            ssd += t * t;
        }
    }
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
    csnn__pool_run(dv ? dv->pool : NULL, d->c, bn_train_channel, &j);
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
static void bn_backward_channel(void *arg, int64_t c, int worker)
{
    (void)worker;
    const bn_job *j = arg;
    const csnn_bn_desc *d = j->d;
    const int64_t count = (int64_t)d->n * d->hw;
    const float mean = j->mean[c], invstd = j->invstd[c];
    double sum = 0.0, dot = 0.0;
    for (int32_t o = 0; o < d->n; o++) {
        const int64_t off = ((int64_t)o * d->c + c) * d->hw;
        const float *xr = j->x + off, *gr = j->dy + off;
        for (int64_t i = 0; i < d->hw; i++) {
            sum += gr[i];
            dot += (double)gr[i] * (double)(xr[i] - mean);
        }
    }
    j->dgamma[c] = (float)(dot * invstd);
    j->dbeta[c] = (float)sum;
    if (!j->dx) return;
    const float k = (float)(dot * invstd * invstd / (double)count);
    const float gmean = (float)(sum / (double)count);
    const float scale = invstd * j->gamma[c];
    for (int32_t o = 0; o < d->n; o++) {
        const int64_t off = ((int64_t)o * d->c + c) * d->hw;
        const float *xr = j->x + off, *gr = j->dy + off;
        float *dxr = j->dx + off;
        for (int64_t i = 0; i < d->hw; i++)
            dxr[i] = (gr[i] - gmean - (xr[i] - mean) * k) * scale;
    }
}

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
    csnn__pool_run(dv ? dv->pool : NULL, d->c, bn_backward_channel, &j);
    return CSNN_OK;
}
