/* cpu_neuron.h - the per-element arithmetic of the multi-step IF / LIF
 * neurons (see cpu_neuron.c for the equations), shared by the plain neuron
 * entries (cpu_neuron.c) and the fused neuron + max-pool entries
 * (cpu_neuron_pool.c), so that both compute bit for bit the same H, S and
 * gradients.
 *
 * Every helper works on `len` consecutive neurons of one time step; the
 * callers keep the state (V, dL/dV) of their neurons across the steps. */
#ifndef CSNN_CPU_NEURON_H
#define CSNN_CPU_NEURON_H

#include <math.h>

#include "cpu_internal.h"

#define NEURON_BLOCK 256 /* neurons handled together (state in local arrays) */

enum {
    CHARGE_IF,
    CHARGE_LIF_DECAY0,   /* decay_input, v_reset 0 or soft */
    CHARGE_LIF_DECAY,    /* decay_input, v_reset != 0 */
    CHARGE_LIF_NODECAY0, /* no decay_input, v_reset 0 or soft */
    CHARGE_LIF_NODECAY   /* no decay_input, v_reset != 0 */
};

typedef struct {
    const csnn_neuron_desc *d;
    int charge, hard, shared, sigmoid;
    float vth, vr, v0, tau, k_leak, c1, c2, alpha;
    /* Backward coefficients, each 0 or 1 so that the selections they make
     * are exact (x * 1 = x, y + 0 = y for finite values) and the loop has no
     * branches: see neuron_bwd_step. */
    float hard_f, keep_f, decay_f, cgh, cq, ck, tau_b;
    const float *x, *gs, *h;
    float *s, *h_out, *gx;
} neuron_job;

/** Checks the descriptor (errors name `op`) and fills the constants of *j
 *  (its pointers NULL). */
csnn_status csnn__cpu_neuron_setup(const char *op, const csnn_neuron_desc *d, neuron_job *j);

/* x >= 0 as 1 or 0 (0 for NaN), written so that GCC vectorises it under
 * -ftrapping-math. */
CPU_INLINE float heaviside(float x)
{
    return (float)(!(x < 0.0f) & (x == x));
}

/* h[i] = charge(v[i], x[i]) for i < len */
CPU_INLINE void neuron_charge(const neuron_job *j, const float *v, const float *x, float *h,
                                 int len)
{
    const float tau = j->tau, vr = j->vr, k = j->k_leak;
    switch (j->charge) {
    case CHARGE_IF:
        for (int i = 0; i < len; i++) h[i] = v[i] + x[i];
        break;
    case CHARGE_LIF_DECAY0:
        for (int i = 0; i < len; i++) h[i] = v[i] + (x[i] - v[i]) / tau;
        break;
    case CHARGE_LIF_DECAY:
        for (int i = 0; i < len; i++) h[i] = v[i] + (x[i] - (v[i] - vr)) / tau;
        break;
    case CHARGE_LIF_NODECAY0:
        for (int i = 0; i < len; i++) h[i] = v[i] * k + x[i];
        break;
    default: /* CHARGE_LIF_NODECAY */
        for (int i = 0; i < len; i++) h[i] = v[i] - (v[i] - vr) / tau + x[i];
        break;
    }
}

/* Fire and reset: s[i] = heaviside(h[i] - v_th), v[i] = the state after the
 * reset, for i < len. */
CPU_INLINE void neuron_fire(const neuron_job *j, const float *h, float *s, float *v, int len)
{
    const float vth = j->vth, vr = j->vr;
    if (j->hard)
        for (int i = 0; i < len; i++) {
            const float H = h[i], S = heaviside(H - vth);
            s[i] = S;
            v[i] = (1.0f - S) * H + S * vr;
        }
    else
        for (int i = 0; i < len; i++) {
            const float H = h[i], S = heaviside(H - vth);
            s[i] = S;
            v[i] = H - S * vth;
        }
}

/* One step back in time for neurons [0, len): from gs (dL/dS of this step)
 * and gv (dL/dV after this step, updated to dL/dV before it) into gx.
 * `sigmoid` is a constant at each call site, so each surrogate gets its own
 * loop. With x = H - v_th and S = heaviside(x):
 *   gS = gs + gv dV/dS   (dV/dS: hard v_reset - H, soft -v_th, 0 if detached)
 *   gH = surrogate(gS, x) + gv dV/dH   (dV/dH: hard 1 - S, soft 1) */
CPU_INLINE void neuron_bwd_step(const neuron_job *j, int len, const float *h, const float *gs,
                                   float *gv, float *gx, const int sigmoid, const int plain_if)
{
    const float vth = j->vth, vr = j->vr, hard = j->hard_f, keep = j->keep_f;
    const float tau = j->tau_b, k = j->k_leak, decay = j->decay_f;
    const float cgh = j->cgh, cq = j->cq, ck = j->ck;
    const float c1 = j->c1, c2 = j->c2, alpha = j->alpha;
    for (int i = 0; i < len; i++) {
        const float H = h[i], x = H - vth, S = heaviside(x), g = gv[i];
        const float gS = gs[i] + g * (hard * (vr - H) - (1.0f - hard) * vth) * keep;
        float sg;
        if (sigmoid) {
            const float sx = 1.0f / (1.0f + expf(-(x * alpha)));
            sg = gS * (1.0f - sx) * sx * alpha;
        } else {
            const float t = c2 * x;
            sg = 1.0f / (1.0f + t * t) * c1 * gS;
        }
        const float gH = sg + g * (1.0f - hard * S);
        if (plain_if) { /* IF: dX = dV = gH, as autograd has it for H = V + X */
            gx[i] = gH;
            gv[i] = gH;
            continue;
        }
        const float q = gH / tau;
        gx[i] = decay * q + (1.0f - decay) * gH;
        gv[i] = cgh * gH - cq * q + ck * (gH * k);
    }
}

/* neuron_bwd_step with the surrogate and the neuron chosen at run time
 * (four loops). For IF the general expressions reduce to dX = dV = gH for
 * finite values (0 * q, + 0 and * 1 change nothing), which the IF loop
 * writes directly: no division by tau = 1. */
CPU_INLINE void neuron_bwd(const neuron_job *j, int len, const float *h, const float *gs,
                              float *gv, float *gx)
{
    const int plain_if = j->charge == CHARGE_IF;
    if (j->sigmoid) {
        if (plain_if)
            neuron_bwd_step(j, len, h, gs, gv, gx, 1, 1);
        else
            neuron_bwd_step(j, len, h, gs, gv, gx, 1, 0);
    } else {
        if (plain_if)
            neuron_bwd_step(j, len, h, gs, gv, gx, 0, 1);
        else
            neuron_bwd_step(j, len, h, gs, gv, gx, 0, 0);
    }
}

#endif /* CSNN_CPU_NEURON_H */
