/* cpu_loss.c - losses on out[N, K] against int32 labels, with label
 * smoothing: target q = (1 - smoothing) one_hot + smoothing / K.
 *
 *   MSE  loss = mean over N*K of (out - q)^2;
 *        grad = (out - q) * (float)(2 / (N K))   (torch's mse_loss_backward)
 *   CE   loss = mean over N of -sum_k q_k log softmax(out)_k
 *        (= torch's cross_entropy with label_smoothing);
 *        grad = (softmax(out) - q) / N
 *
 * Sums and the softmax are computed in double and rounded once. The output
 * is small ([N, K], K = classes), so this runs on the calling thread. */
#include <math.h>

#include "cpu_internal.h"

csnn_status csnn__cpu_loss(void *dev, const csnn_loss_desc *d, const float *out,
                           const int32_t *labels, float *loss, float *grad)
{
    (void)dev;
    CPU_NOT_NULL("loss", d);
    if (d->kind != CSNN_LOSS_MSE && d->kind != CSNN_LOSS_CE)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "cpu loss: unknown kind %d", d->kind);
    if (d->n < 1 || d->k < 1)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "cpu loss: shape [%d, %d], need N, K >= 1",
                           d->n, d->k);
    if (!(d->smoothing >= 0.0f && d->smoothing <= 1.0f))
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "cpu loss: smoothing %g is outside [0, 1]", (double)d->smoothing);
    CPU_NOT_NULL("loss", out);
    CPU_NOT_NULL("loss", labels);
    CPU_NOT_NULL("loss", loss);
    for (int32_t i = 0; i < d->n; i++)
        if (labels[i] < 0 || labels[i] >= d->k)
            return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                               "cpu loss: labels[%d] = %d is outside [0, %d)", i, labels[i],
                               d->k);

    const int32_t n = d->n, k = d->k;
    const double s = d->smoothing;
    const double q_off = s / k, q_on = 1.0 - s + s / k;
    double total = 0.0;
    if (d->kind == CSNN_LOSS_MSE) {
        const float q_on_f = (float)q_on, q_off_f = (float)q_off;
        const float norm = (float)(2.0 / ((double)n * k));
        for (int32_t i = 0; i < n; i++)
            for (int32_t c = 0; c < k; c++) {
                const int64_t e = (int64_t)i * k + c;
                const float diff = out[e] - (c == labels[i] ? q_on_f : q_off_f);
                total += (double)diff * diff;
                if (grad) grad[e] = diff * norm;
            }
        *loss = (float)(total / ((double)n * k));
        return CSNN_OK;
    }
    for (int32_t i = 0; i < n; i++) {
        const float *o = out + (int64_t)i * k;
        double mx = o[0];
        for (int32_t c = 1; c < k; c++) mx = o[c] > mx ? o[c] : mx;
        double z = 0.0;
        for (int32_t c = 0; c < k; c++) z += exp(o[c] - mx);
        const double lse = mx + log(z);
        for (int32_t c = 0; c < k; c++) {
            const double q = c == labels[i] ? q_on : q_off;
            total -= q * (o[c] - lse);
            if (grad) grad[(int64_t)i * k + c] = (float)((exp(o[c] - lse) - q) / n);
        }
    }
    *loss = (float)(total / n);
    return CSNN_OK;
}
