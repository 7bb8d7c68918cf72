/*
 * bn.cu - batch normalisation over x[n, c, hw], statistics per channel.
 *
 * Training forward and backward use one block per channel: the block sums in
 * double (fixed-order tree, no atomics: the result does not vary from run
 * to run), then normalises / writes dx for its channel. Two passes for the
 * variance (sum of squared deviations from the mean), as PyTorch's CPU
 * kernel, so no cancellation. M = n*hw values per channel.
 *
 *   mean = sum x / M; var = sum (x - mean)^2 / M (biased, for normalising)
 *   invstd = 1 / sqrt(var + eps)              (double, rounded once)
 *   y = (x - mean) * invstd * gamma + beta    (float)
 *   running_mean = (1 - momentum) running_mean + momentum mean
 *   running_var  = (1 - momentum) running_var  + momentum var * M / (M - 1)
 * Backward (xhat = (x - mean) invstd):
 *   dbeta = sum dy; dgamma = sum dy xhat
 *   dx = (dy - dbeta/M - (x - mean) * (sum dy (x - mean)) invstd^2 / M) * invstd * gamma
 */
#include <math.h>

#include "cuda_common.cuh"

#define BN_GRID_MAX 65535

static __device__ __forceinline__ int64_t bn_index(int64_t j, int64_t c, int64_t channels,
                                                   int64_t hw)
{
    int64_t o = j / hw, i = j - o * hw;
    return (o * channels + c) * hw + i;
}

__global__ void k_bn_forward_train(const float *x, const float *gamma, const float *beta,
                                   float *y, float *save_mean, float *save_invstd,
                                   float *running_mean, float *running_var, int64_t n,
                                   int64_t channels, int64_t hw, float eps, float momentum)
{
    __shared__ double sh[CU_THREADS];
    int64_t count = n * hw;
    for (int64_t c = blockIdx.x; c < channels; c += gridDim.x) {
        double acc = 0.0;
        for (int64_t j = threadIdx.x; j < count; j += blockDim.x)
            acc += (double)x[bn_index(j, c, channels, hw)];
        double mean = cu_block_sum(acc, sh) / (double)count;
        acc = 0.0;
        for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
            double dv = (double)x[bn_index(j, c, channels, hw)] - mean;
            acc += dv * dv;
        }
        double var = cu_block_sum(acc, sh) / (double)count;
        double invstd_d = 1.0 / sqrt(var + (double)eps);
        float mean_f = (float)mean, invstd = (float)invstd_d;
        float g = gamma ? gamma[c] : 1.0f;
        float b = beta ? beta[c] : 0.0f;
        for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
            int64_t idx = bn_index(j, c, channels, hw);
            y[idx] = (x[idx] - mean_f) * invstd * g + b;
        }
        if (threadIdx.x == 0) {
            save_mean[c] = mean_f;
            save_invstd[c] = invstd;
            double mom = (double)momentum;
            if (running_mean)
                running_mean[c] = (float)((1.0 - mom) * (double)running_mean[c] + mom * mean);
            if (running_var) {
                double unbiased = var * (double)count / (double)(count - 1);
                running_var[c] = (float)((1.0 - mom) * (double)running_var[c] + mom * unbiased);
            }
        }
    }
}

__global__ void k_bn_forward_infer(const float *x, const float *gamma, const float *beta,
                                   const float *running_mean, const float *running_var, float *y,
                                   int64_t total, int64_t channels, int64_t hw, float eps)
{
    CU_FOR(idx, total)
    {
        int64_t c = (idx / hw) % channels;
        float invstd = 1.0f / sqrtf(running_var[c] + eps);
        float g = gamma ? gamma[c] : 1.0f;
        float b = beta ? beta[c] : 0.0f;
        y[idx] = (x[idx] - running_mean[c]) * invstd * g + b;
    }
}

__global__ void k_bn_backward(const float *x, const float *dy, const float *gamma,
                              const float *save_mean, const float *save_invstd, float *dx,
                              float *dgamma, float *dbeta, int64_t n, int64_t channels,
                              int64_t hw)
{
    __shared__ double sh[CU_THREADS];
    int64_t count = n * hw;
    for (int64_t c = blockIdx.x; c < channels; c += gridDim.x) {
        float mean = save_mean[c];
        float invstd = save_invstd[c];
        double sdy = 0.0, sdyx = 0.0;
        for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
            int64_t idx = bn_index(j, c, channels, hw);
            double g = (double)dy[idx];
            sdy += g;
            sdyx += g * ((double)x[idx] - (double)mean);
        }
        sdy = cu_block_sum(sdy, sh);
        sdyx = cu_block_sum(sdyx, sh);
        if (threadIdx.x == 0) {
            if (dgamma) dgamma[c] = (float)(sdyx * (double)invstd);
            if (dbeta) dbeta[c] = (float)sdy;
        }
        if (dx) {
            float gm = (float)(sdy / (double)count);
            float k = (float)(sdyx * (double)invstd * (double)invstd / (double)count);
            float scale = invstd * (gamma ? gamma[c] : 1.0f);
            for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
                int64_t idx = bn_index(j, c, channels, hw);
                dx[idx] = (dy[idx] - gm - (x[idx] - mean) * k) * scale;
            }
        }
    }
}

static csnn_status check_desc(const char *op, const csnn_bn_desc *bd, bool training)
{
    if (!bd) return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda %s: NULL descriptor", op);
    if (bd->n < 0 || bd->c < 0 || bd->hw < 0)
        return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda %s: negative size", op);
    if (!(bd->eps >= 0.0f) || !isfinite(bd->eps))
        return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda %s: bad eps %g", op, (double)bd->eps);
    if (training && bd->c > 0 && (int64_t)bd->n * bd->hw < 2)
        return cu_error(CSNN_ERR_INVALID_ARGUMENT,
                        "cuda %s: batch statistics need more than one value per channel "
                        "(n*hw = %lld)",
                        op, (long long)bd->n * bd->hw);
    return CSNN_OK;
}

csnn_status cu_bn_forward_train(void *dev, const csnn_bn_desc *desc, const float *x,
                                const float *gamma, const float *beta, float *y, float *save_mean,
                                float *save_invstd, float *running_mean, float *running_var)
{
    const char *op = "bn_forward_train";
    CU_ENTER(dev, op);
    CSNN_CU_RETURN_IF(check_desc(op, desc, true));
    if (desc->c == 0) return CSNN_OK;
    CU_NOT_NULL(op, x);
    CU_NOT_NULL(op, y);
    CU_NOT_NULL(op, save_mean);
    CU_NOT_NULL(op, save_invstd);
    unsigned blocks = (unsigned)(desc->c < BN_GRID_MAX ? desc->c : BN_GRID_MAX);
    k_bn_forward_train<<<blocks, CU_THREADS, 0, d->stream>>>(
        x, gamma, beta, y, save_mean, save_invstd, running_mean, running_var, desc->n, desc->c,
        desc->hw, desc->eps, desc->momentum);
    CU_LAUNCH_CHECK(op, "k_bn_forward_train");
    return CSNN_OK;
}

csnn_status cu_bn_forward_infer(void *dev, const csnn_bn_desc *desc, const float *x,
                                const float *gamma, const float *beta, const float *running_mean,
                                const float *running_var, float *y)
{
    const char *op = "bn_forward_infer";
    CU_ENTER(dev, op);
    CSNN_CU_RETURN_IF(check_desc(op, desc, false));
    int64_t total = (int64_t)desc->n * desc->c * desc->hw;
    if (total == 0) return CSNN_OK;
    CU_NOT_NULL(op, x);
    CU_NOT_NULL(op, y);
    CU_NOT_NULL(op, running_mean);
    CU_NOT_NULL(op, running_var);
    k_bn_forward_infer<<<cu_blocks(total), CU_THREADS, 0, d->stream>>>(
        x, gamma, beta, running_mean, running_var, y, total, desc->c, desc->hw, desc->eps);
    CU_LAUNCH_CHECK(op, "k_bn_forward_infer");
    return CSNN_OK;
}

csnn_status cu_bn_backward(void *dev, const csnn_bn_desc *desc, const float *x, const float *dy,
                           const float *gamma, const float *save_mean, const float *save_invstd,
                           float *dx, float *dgamma, float *dbeta)
{
    const char *op = "bn_backward";
    CU_ENTER(dev, op);
    CSNN_CU_RETURN_IF(check_desc(op, desc, true));
    if (desc->c == 0) return CSNN_OK;
    CU_NOT_NULL(op, x);
    CU_NOT_NULL(op, dy);
    CU_NOT_NULL(op, save_mean);
    CU_NOT_NULL(op, save_invstd);
    unsigned blocks = (unsigned)(desc->c < BN_GRID_MAX ? desc->c : BN_GRID_MAX);
    k_bn_backward<<<blocks, CU_THREADS, 0, d->stream>>>(x, dy, gamma, save_mean, save_invstd, dx,
                                                        dgamma, dbeta, desc->n, desc->c, desc->hw);
    CU_LAUNCH_CHECK(op, "k_bn_backward");
    return CSNN_OK;
}
