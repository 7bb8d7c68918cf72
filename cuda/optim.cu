/*
 * optim.cu - one fused optimiser step per parameter tensor, element by
 * element, with PyTorch's formulas in PyTorch's evaluation order
 * (torch.optim single-tensor path; addcdiv/addcmul evaluate
 * self + value * t1 / t2 and self + value * t1 * t2 left to right):
 *
 *   Adam:  g = g + wd*w (if wd); m = b1*m + (1-b1)*g; v = v*b2 + (1-b2)*g*g;
 *          denom = sqrt(v) / bias_correction2_sqrt + eps; w = w - step_size*m / denom
 *   AdamW: w = w * (1 - lr*wd) first, then Adam without the L2 term
 *   SGD:   g = g + wd*w (if wd); if momentum: buf = g at step 1 else
 *          momentum*buf + (1-dampening)*g; g = nesterov ? g + momentum*buf : buf;
 *          w = w - lr*g
 */
#include <math.h>

#include "cuda_common.cuh"

typedef struct optim_params {
    int kind;
    int nesterov;
    int first_step;
    float lr, beta1, beta2, eps, wd, momentum, dampening;
    float one_minus_beta1, one_minus_beta2, one_minus_dampening;
    float adamw_decay; /* (float)(1 - lr*wd) */
    float step_size, bc2_sqrt;
} optim_params;

__global__ void k_adam(optim_params p, int64_t n, float *w, const float *g, float *m, float *v)
{
    CU_FOR(i, n)
    {
        float wi = w[i];
        float gi = g[i];
        if (p.kind == CSNN_OPTIMIZER_ADAMW) {
            if (p.wd != 0.0f) wi = wi * p.adamw_decay;
        } else if (p.wd != 0.0f) {
            gi = gi + p.wd * wi;
        }
        float mi = p.beta1 * m[i] + p.one_minus_beta1 * gi;
        float vi = v[i] * p.beta2 + p.one_minus_beta2 * gi * gi;
        float denom = sqrtf(vi) / p.bc2_sqrt + p.eps;
        w[i] = wi - p.step_size * mi / denom;
        m[i] = mi;
        v[i] = vi;
    }
}

__global__ void k_sgd(optim_params p, int64_t n, float *w, const float *g, float *buf)
{
    CU_FOR(i, n)
    {
        float wi = w[i];
        float gi = g[i];
        if (p.wd != 0.0f) gi = gi + p.wd * wi;
        if (p.momentum != 0.0f) {
            float b = p.first_step ? gi : p.momentum * buf[i] + p.one_minus_dampening * gi;
            buf[i] = b;
            gi = p.nesterov ? gi + p.momentum * b : b;
        }
        w[i] = wi - p.lr * gi;
    }
}

csnn_status cu_optim_step(void *dev, const csnn_optim_desc *desc, int64_t n, float *w,
                          const float *g, float *m, float *v)
{
    const char *op = "optim_step";
    CU_ENTER(dev, op);
    if (!desc) return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda optim_step: NULL descriptor");
    if (desc->kind != CSNN_OPTIMIZER_ADAM && desc->kind != CSNN_OPTIMIZER_ADAMW &&
        desc->kind != CSNN_OPTIMIZER_SGD)
        return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda optim_step: unknown optimiser %d",
                        (int)desc->kind);
    if (n < 0) return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda optim_step: negative n");
    if (desc->step < 1)
        return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda optim_step: step %lld < 1",
                        (long long)desc->step);
    if (n == 0) return CSNN_OK;
    CU_NOT_NULL(op, w);
    CU_NOT_NULL(op, g);
    optim_params p;
    p.kind = desc->kind;
    p.nesterov = desc->nesterov != 0;
    p.first_step = desc->step == 1;
    p.lr = desc->lr;
    p.beta1 = desc->beta1;
    p.beta2 = desc->beta2;
    p.eps = desc->eps;
    p.wd = desc->weight_decay;
    p.momentum = desc->momentum;
    p.dampening = desc->dampening;
    p.one_minus_beta1 = 1.0f - desc->beta1;
    p.one_minus_beta2 = 1.0f - desc->beta2;
    p.one_minus_dampening = 1.0f - desc->dampening;
    p.adamw_decay = (float)(1.0 - (double)desc->lr * (double)desc->weight_decay);
    p.step_size = desc->step_size;
    p.bc2_sqrt = desc->bias_correction2_sqrt;
    if (desc->kind == CSNN_OPTIMIZER_SGD) {
        if (desc->momentum != 0.0f) CU_NOT_NULL(op, m);
        k_sgd<<<cu_blocks(n), CU_THREADS, 0, d->stream>>>(p, n, w, g, m);
        CU_LAUNCH_CHECK(op, "k_sgd");
    } else {
        CU_NOT_NULL(op, m);
        CU_NOT_NULL(op, v);
        if (!(desc->bias_correction2_sqrt > 0.0f))
            return cu_error(CSNN_ERR_INVALID_ARGUMENT,
                            "cuda optim_step: bias_correction2_sqrt %g must be > 0",
                            (double)desc->bias_correction2_sqrt);
        k_adam<<<cu_blocks(n), CU_THREADS, 0, d->stream>>>(p, n, w, g, m, v);
        CU_LAUNCH_CHECK(op, "k_adam");
    }
    return CSNN_OK;
}
