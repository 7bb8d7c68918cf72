/*
 * loss.cu - MSE and softmax cross-entropy on out[N, K] against integer
 * labels, with label smoothing: target = (1 - s) one_hot + s / K.
 *
 *   MSE: loss = sum (out - target)^2 / (N K);  grad = (float)(2/(N K)) * (out - target)
 *   CE:  loss = sum_n sum_k target_k (lse_n - out_nk) / N, lse = log sum exp;
 *        grad = (softmax - target) / N
 *
 * One block; each thread takes whole rows (row sums in double), then a
 * fixed-order tree gives the total: deterministic. Labels are checked on
 * the device: an out-of-range label sets a device flag that is read back
 * (so loss() waits for the stream) and turns into CSNN_ERR_INVALID_ARGUMENT.
 */
#include <math.h>

#include "cuda_common.cuh"

__global__ void k_loss(int kind, int n, int k, float smoothing, const float *out,
                       const int32_t *labels, float *loss, float *grad, int *bad_label)
{
    __shared__ double sh[CU_THREADS];
    float off = smoothing / (float)k;
    float on = (1.0f - smoothing) + off;
    float mse_norm = (float)(2.0 / ((double)n * (double)k));
    double acc = 0.0;
    for (int r = threadIdx.x; r < n; r += blockDim.x) {
        int32_t label = labels[r];
        if (label < 0 || label >= k) {
            *bad_label = 1;
            continue;
        }
        const float *o = out + (int64_t)r * k;
        float *g = grad ? grad + (int64_t)r * k : NULL;
        if (kind == CSNN_LOSS_MSE) {
            for (int j = 0; j < k; j++) {
                float tgt = j == label ? on : off;
                float diff = o[j] - tgt;
                acc += (double)diff * (double)diff;
                if (g) g[j] = mse_norm * diff;
            }
        } else {
            double mx = (double)o[0];
            for (int j = 1; j < k; j++) mx = fmax(mx, (double)o[j]);
            double se = 0.0;
            for (int j = 0; j < k; j++) se += exp((double)o[j] - mx);
            double lse = mx + log(se);
            double row = 0.0;
            for (int j = 0; j < k; j++) {
                double tgt = (double)(j == label ? on : off);
                row += tgt * (lse - (double)o[j]);
                if (g) g[j] = (float)((exp((double)o[j] - lse) - tgt) / (double)n);
            }
            acc += row;
        }
    }
    double total = cu_block_sum(acc, sh);
    if (threadIdx.x == 0) {
        double denom = kind == CSNN_LOSS_MSE ? (double)n * (double)k : (double)n;
        loss[0] = (float)(total / denom);
    }
}

csnn_status cu_loss(void *dev, const csnn_loss_desc *desc, const float *out,
                    const int32_t *labels, float *loss, float *grad)
{
    const char *op = "loss";
    CU_ENTER(dev, op);
    if (!desc) return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda loss: NULL descriptor");
    if (desc->kind != CSNN_LOSS_MSE && desc->kind != CSNN_LOSS_CE)
        return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda loss: unknown kind %d", (int)desc->kind);
    if (desc->n < 1 || desc->k < 1)
        return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda loss: bad sizes N=%d K=%d", (int)desc->n,
                        (int)desc->k);
    if (!(desc->smoothing >= 0.0f && desc->smoothing <= 1.0f))
        return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda loss: smoothing %g is outside [0, 1]",
                        (double)desc->smoothing);
    CU_NOT_NULL(op, out);
    CU_NOT_NULL(op, labels);
    CU_NOT_NULL(op, loss);
    CU_TRY(op, cudaMemsetAsync(d->d_flag, 0, sizeof(int), d->stream));
    k_loss<<<1, CU_THREADS, 0, d->stream>>>(desc->kind, desc->n, desc->k, desc->smoothing, out,
                                            labels, loss, grad, d->d_flag);
    CU_LAUNCH_CHECK(op, "k_loss");
    int *h_flag = (int *)d->h_scratch;
    CU_TRY(op, cudaMemcpyAsync(h_flag, d->d_flag, sizeof(int), cudaMemcpyDeviceToHost, d->stream));
    CU_TRY(op, cudaStreamSynchronize(d->stream));
    if (*h_flag)
        return cu_error(CSNN_ERR_INVALID_ARGUMENT,
                        "cuda loss: a label is outside [0, %d) (N=%d)", (int)desc->k,
                        (int)desc->n);
    return CSNN_OK;
}
