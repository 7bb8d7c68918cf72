/*
 * neuron_common.cuh - the spiking neurons' constants and per-step device
 * functions, shared by neuron.cu (neuron_forward / neuron_backward) and
 * neuron_pool.cu (neuron_pool_forward / neuron_pool_backward), so that both
 * compute every H, spike and gradient with the same float operations in the
 * same order (DESIGN.md section 3; the formulas are listed in neuron.cu).
 *
 * A neuron's forward, per step t:
 *     h = neuron_charge(p, v, x[t]);  s = neuron_fire(p, h, &v);
 * starting from v = neuron_v0(p). Its backward, t = T-1 .. 0, from gv = 0:
 *     dx[t] = neuron_backward_step(p, h[t], grad_s[t], &gv);
 */
#ifndef CSNN_CUDA_NEURON_COMMON_CUH
#define CSNN_CUDA_NEURON_COMMON_CUH

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

/* Checks the descriptor (errors name `op`) and fills *p (neuron.cu). */
CU_HIDDEN csnn_status cu_neuron_params(const char *op, const csnn_neuron_desc *nd,
                                       neuron_params *p);

/* The state before the first step: v_reset (hard reset), else 0. */
static __device__ __forceinline__ float neuron_v0(const neuron_params &p)
{
    return p.hard ? p.vr : 0.0f;
}

/* H[t] from V[t-1] and X[t]. */
static __device__ __forceinline__ float neuron_charge(const neuron_params &p, float v, float x)
{
    if (!p.lif) return v + x;
    if (p.decay_input) return p.general ? v + (x - (v - p.vr)) / p.tau : v + (x - v) / p.tau;
    return p.general ? v - (v - p.vr) / p.tau + x : v * p.k_decay + x;
}

/* S[t] = (H - v_th >= 0); *v receives V[t] (the state after the reset). */
static __device__ __forceinline__ bool neuron_fire(const neuron_params &p, float h, float *v)
{
    bool spike = h - p.vth >= 0.0f;
    *v = spike ? (p.hard ? p.vr : h - p.vth) : h;
    return spike;
}

/* The surrogate's backward: incoming gradient g times g'(x), in the order of
 * SpikingJelly's autograd functions. */
static __device__ __forceinline__ float neuron_surrogate_backward(const neuron_params &p, float g,
                                                                  float x)
{
    if (p.sigmoid) {
        float sg = 1.0f / (1.0f + expf(-(p.alpha * x)));
        return g * (1.0f - sg) * sg * p.alpha;
    }
    float cx = p.c2 * x;
    return p.c1 / (1.0f + cx * cx) * g;
}

/* One step back through time, with gV = dL/dV[t] carried back in *gv:
 *   gS = grad_s[t] + gV * dV/dS          (dV/dS = v_reset - H hard, -v_th soft, 0 detached)
 *   gH = surrogate(gS, H - v_th) + gV * dV/dH     (dV/dH = 1 - S hard, 1 soft)
 *   returns dx[t] = gH / tau (LIF decay_input) or gH;  *gv = gH * dH[t]/dV[t-1] */
static __device__ __forceinline__ float neuron_backward_step(const neuron_params &p, float ht,
                                                             float gs, float *gv)
{
    float xm = ht - p.vth;
    bool spike = xm >= 0.0f;
    float g = *gv;
    if (!p.detach) gs = gs + g * (p.hard ? (p.vr - ht) : -p.vth);
    float gh = neuron_surrogate_backward(p, gs, xm);
    if (!p.hard) {
        gh = gh + g;
    } else if (!spike) {
        gh = gh + g;
    }
    *gv = p.lif ? gh * p.k_decay : gh;
    return p.decay_input ? gh / p.tau : gh;
}

#endif /* CSNN_CUDA_NEURON_COMMON_CUH */
