/*
 * neuron.cu - fused multi-step IF / LIF neurons (DESIGN.md section 3).
 *
 * One thread per neuron loops over the T steps in one launch, as
 * SpikingJelly's CuPy kernels do. The forward keeps only H (the membrane
 * before the spike); the backward recomputes S = (H - v_th >= 0) and the
 * surrogate gradient from H. Accesses x[t*M + i] are coalesced across the
 * threads of a warp for every t.
 *
 * The float formulas are those of the fixtures README (SpikingJelly's torch
 * code), evaluated in the same order and, thanks to --fmad=false, rounded
 * the same way as the CPU backend:
 *   IF                              H = V + X
 *   LIF decay_input, v_reset 0/soft H = V + (X - V) / tau
 *   LIF decay_input, general        H = V + (X - (V - v_reset)) / tau
 *   LIF no decay,    v_reset 0/soft H = V * (float)(1 - 1/tau) + X
 *   LIF no decay,    general        H = V - (V - v_reset) / tau + X
 *   S = (H - v_th >= 0); hard: V = S ? v_reset : H; soft: V = S ? H - v_th : H
 * Surrogates (x = H - v_th, g = incoming gradient):
 *   ATan:    c1 / (1 + (c2 x)^2) * g, c1 = (float)(alpha/2), c2 = (float)(pi/2 alpha)
 *   Sigmoid: g * (1 - sg) * sg * alpha, sg = 1 / (1 + exp(-alpha x))
 * These per-step device functions live in neuron_common.cuh, shared with the
 * fused neurons + max-pool of neuron_pool.cu.
 */
#include <math.h>

#include "neuron_common.cuh"

csnn_status cu_neuron_params(const char *op, const csnn_neuron_desc *nd, neuron_params *p)
{
    if (!nd) return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda %s: NULL descriptor", op);
    if (nd->kind != CSNN_NEURON_IF && nd->kind != CSNN_NEURON_LIF)
        return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda %s: unknown neuron kind %d", op,
                        (int)nd->kind);
    if (nd->surrogate != CSNN_SURROGATE_ATAN && nd->surrogate != CSNN_SURROGATE_SIGMOID)
        return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda %s: unknown surrogate %d", op,
                        (int)nd->surrogate);
    if (nd->t < 1 || nd->m < 0)
        return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda %s: bad sizes T=%d M=%lld", op,
                        (int)nd->t, (long long)nd->m);
    if (nd->kind == CSNN_NEURON_LIF && !(nd->tau > 0.0f && isfinite(nd->tau)))
        return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda %s: LIF tau %g must be > 0", op,
                        (double)nd->tau);
    p->lif = nd->kind == CSNN_NEURON_LIF;
    p->hard = nd->hard_reset != 0;
    p->vr = p->hard ? nd->v_reset : 0.0f;
    p->general = p->hard && nd->v_reset != 0.0f;
    p->detach = nd->detach_reset != 0;
    p->decay_input = p->lif && nd->decay_input != 0;
    p->x_shared = nd->x_shared != 0;
    p->sigmoid = nd->surrogate == CSNN_SURROGATE_SIGMOID;
    p->t = nd->t;
    p->m = nd->m;
    p->vth = nd->v_threshold;
    p->tau = p->lif ? nd->tau : 1.0f;
    p->k_decay = p->lif ? (float)(1.0 - 1.0 / (double)nd->tau) : 1.0f;
    p->c1 = (float)((double)nd->alpha / 2.0);
    p->c2 = (float)(3.14159265358979323846 / 2.0 * (double)nd->alpha);
    p->alpha = nd->alpha;
    return CSNN_OK;
}

__global__ void k_neuron_forward(neuron_params p, const float *x, float *s, float *h)
{
    CU_FOR(i, p.m)
    {
        float v = neuron_v0(p);
        for (int t = 0; t < p.t; t++) {
            int64_t idx = (int64_t)t * p.m + i;
            float ht = neuron_charge(p, v, x[p.x_shared ? i : idx]);
            s[idx] = neuron_fire(p, ht, &v) ? 1.0f : 0.0f;
            if (h) h[idx] = ht;
        }
    }
}

/* Backward through time, t = T-1 .. 0 (neuron_backward_step); with x_shared
 * the gradient summed over T, in that order. */
__global__ void k_neuron_backward(neuron_params p, const float *grad_s, const float *h,
                                  float *grad_x)
{
    CU_FOR(i, p.m)
    {
        float gv = 0.0f;
        float acc = 0.0f; /* x_shared: sum over T */
        for (int t = p.t - 1; t >= 0; t--) {
            int64_t idx = (int64_t)t * p.m + i;
            float dx = neuron_backward_step(p, h[idx], grad_s[idx], &gv);
            if (p.x_shared) {
                acc += dx;
            } else {
                grad_x[idx] = dx;
            }
        }
        if (p.x_shared) grad_x[i] = acc;
    }
}

csnn_status cu_neuron_forward(void *dev, const csnn_neuron_desc *desc, const float *x, float *s,
                              float *h)
{
    const char *op = "neuron_forward";
    CU_ENTER(dev, op);
    neuron_params p;
    CSNN_CU_RETURN_IF(cu_neuron_params(op, desc, &p));
    if (p.m == 0) return CSNN_OK;
    CU_NOT_NULL(op, x);
    CU_NOT_NULL(op, s);
    k_neuron_forward<<<cu_blocks(p.m), CU_THREADS, 0, d->stream>>>(p, x, s, h);
    CU_LAUNCH_CHECK(op, "k_neuron_forward");
    return CSNN_OK;
}

csnn_status cu_neuron_backward(void *dev, const csnn_neuron_desc *desc, const float *grad_s,
                               const float *h, float *grad_x)
{
    const char *op = "neuron_backward";
    CU_ENTER(dev, op);
    neuron_params p;
    CSNN_CU_RETURN_IF(cu_neuron_params(op, desc, &p));
    if (p.m == 0) return CSNN_OK;
    CU_NOT_NULL(op, grad_s);
    CU_NOT_NULL(op, h);
    CU_NOT_NULL(op, grad_x);
    k_neuron_backward<<<cu_blocks(p.m), CU_THREADS, 0, d->stream>>>(p, grad_s, h, grad_x);
    CU_LAUNCH_CHECK(op, "k_neuron_backward");
    return CSNN_OK;
}
