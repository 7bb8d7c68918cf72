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
 */
#include <math.h>

#include "cuda_common.cuh"

typedef struct neuron_params {
    int lif;         /* 0: IF, 1: LIF */
    int hard;        /* hard reset */
    int general;     /* hard reset with v_reset != 0 */
    int detach;      /* detach_reset */
    int decay_input; /* LIF */
    int x_shared;
    int sigmoid;     /* surrogate: 0 ATan, 1 Sigmoid */
    int t;
    int64_t m;
    float vth, vr, tau;
    float k_decay; /* (float)(1 - 1/tau): LIF leak factor and dH[t+1]/dV[t] */
    float c1, c2;  /* ATan constants */
    float alpha;   /* Sigmoid */
} neuron_params;

static csnn_status make_params(const char *op, const csnn_neuron_desc *nd, neuron_params *p)
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

static __device__ __forceinline__ float charge(const neuron_params &p, float v, float x)
{
    if (!p.lif) return v + x;
    if (p.decay_input) return p.general ? v + (x - (v - p.vr)) / p.tau : v + (x - v) / p.tau;
    return p.general ? v - (v - p.vr) / p.tau + x : v * p.k_decay + x;
}

/* The surrogate's backward: incoming gradient g times g'(x), in the order of
 * SpikingJelly's autograd functions. */
static __device__ __forceinline__ float surrogate_backward(const neuron_params &p, float g,
                                                           float x)
{
    if (p.sigmoid) {
        float sg = 1.0f / (1.0f + expf(-(p.alpha * x)));
        return g * (1.0f - sg) * sg * p.alpha;
    }
    float cx = p.c2 * x;
    return p.c1 / (1.0f + cx * cx) * g;
}

__global__ void k_neuron_forward(neuron_params p, const float *x, float *s, float *h)
{
    CU_FOR(i, p.m)
    {
        float v = p.hard ? p.vr : 0.0f;
        for (int t = 0; t < p.t; t++) {
            int64_t idx = (int64_t)t * p.m + i;
            float xt = x[p.x_shared ? i : idx];
            float ht = charge(p, v, xt);
            bool spike = ht - p.vth >= 0.0f;
            s[idx] = spike ? 1.0f : 0.0f;
            if (h) h[idx] = ht;
            v = spike ? (p.hard ? p.vr : ht - p.vth) : ht;
        }
    }
}

/* Backward through time, t = T-1 .. 0, with gV = dL/dV[t] carried back:
 *   gS = grad_s[t] + gV * dV/dS          (dV/dS = v_reset - H hard, -v_th soft, 0 detached)
 *   gH = surrogate(gS, H - v_th) + gV * dV/dH     (dV/dH = 1 - S hard, 1 soft)
 *   dx[t] = gH / tau (LIF decay_input) or gH;     gV = gH * dH[t]/dV[t-1]  */
__global__ void k_neuron_backward(neuron_params p, const float *grad_s, const float *h,
                                  float *grad_x)
{
    CU_FOR(i, p.m)
    {
        float gv = 0.0f;
        float acc = 0.0f; /* x_shared: sum over T */
        for (int t = p.t - 1; t >= 0; t--) {
            int64_t idx = (int64_t)t * p.m + i;
            float ht = h[idx];
            float xm = ht - p.vth;
            bool spike = xm >= 0.0f;
            float gs = grad_s[idx];
            if (!p.detach) gs = gs + gv * (p.hard ? (p.vr - ht) : -p.vth);
            float gh = surrogate_backward(p, gs, xm);
            if (!p.hard) {
                gh = gh + gv;
            } else if (!spike) {
                gh = gh + gv;
            }
            float dx = p.decay_input ? gh / p.tau : gh;
            if (p.x_shared) {
                acc += dx;
            } else {
                grad_x[idx] = dx;
            }
            gv = p.lif ? gh * p.k_decay : gh;
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
    CSNN_CU_RETURN_IF(make_params(op, desc, &p));
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
    CSNN_CU_RETURN_IF(make_params(op, desc, &p));
    if (p.m == 0) return CSNN_OK;
    CU_NOT_NULL(op, grad_s);
    CU_NOT_NULL(op, h);
    CU_NOT_NULL(op, grad_x);
    k_neuron_backward<<<cu_blocks(p.m), CU_THREADS, 0, d->stream>>>(p, grad_s, h, grad_x);
    CU_LAUNCH_CHECK(op, "k_neuron_backward");
    return CSNN_OK;
}
