/* cpu_neuron.c - fused multi-step IF / LIF neurons, forward and backward
 * through time, with SpikingJelly 0.0.0.0.14's float32 arithmetic
 * (torch backend, see docs/SEMANTICS.md and the fixtures' README):
 *
 *   IF                         H = V + X
 *   LIF decay, v_reset 0/soft  H = V + (X - V) / tau
 *   LIF decay, v_reset         H = V + (X - (V - v_reset)) / tau
 *   LIF no decay, 0/soft       H = V * (float)(1 - 1/tau) + X   (1 - 1/tau in double)
 *   LIF no decay, v_reset      H = V - (V - v_reset) / tau + X
 *   S = (H - v_th >= 0);  hard: V = (1 - S) H + S v_reset;  soft: V = H - S v_th
 *
 * "/ tau" is a float division, as PyTorch 1.13's CPU kernel for a tensor
 * divided by a Python float (true division, not a reciprocal multiply).
 * The backward mirrors what autograd computes for those expressions
 * (e.g. LIF decay: dX = gH / tau, dV = gH - gH / tau); the surrogates:
 *   ATan     g * ((1 / (1 + (c2 x)^2)) * c1), c1 = alpha/2, c2 = pi/2 alpha
 *            (both formed in double, rounded to float; torch's
 *            `(alpha/2) / t` is t.reciprocal() * (alpha/2))
 *   Sigmoid  s = 1 / (1 + exp(-(x alpha)));  ((g (1 - s)) s) alpha
 *
 * Neurons are independent: the pool works on ranges of neurons, each range
 * in blocks of NEURON_BLOCK with the time loop outside and the neurons of the
 * block (vectorisable) inside, the state kept in small local arrays. The
 * per-element code lives in cpu_neuron.h, shared with the fused neuron +
 * max-pool entries (cpu_neuron_pool.c); the loops run as AVX-512 or AVX2
 * code where the CPU has it (CPU_RANGE_VARIANTS: the same bits). */
#include "cpu_neuron.h"

#define NEURON_GRAIN 4096

csnn_status csnn__cpu_neuron_setup(const char *op, const csnn_neuron_desc *d, neuron_job *j)
{
    CPU_NOT_NULL(op, d);
    if (d->kind != CSNN_NEURON_IF && d->kind != CSNN_NEURON_LIF)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "cpu %s: unknown neuron kind %d", op,
                           d->kind);
    if (d->surrogate != CSNN_SURROGATE_ATAN && d->surrogate != CSNN_SURROGATE_SIGMOID)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "cpu %s: unknown surrogate %d", op,
                           d->surrogate);
    if (d->t < 1 || d->m < 0)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "cpu %s: T = %d, M = %lld", op, d->t,
                           (long long)d->m);
    if (!isfinite(d->v_threshold) || !isfinite(d->v_reset) || !isfinite(d->alpha))
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "cpu %s: v_threshold %g, v_reset %g, alpha %g must be finite", op,
                           (double)d->v_threshold, (double)d->v_reset, (double)d->alpha);
    if (d->kind == CSNN_NEURON_LIF && !(d->tau > 0.0f && isfinite(d->tau)))
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "cpu %s: LIF tau = %g must be > 0", op,
                           (double)d->tau);
    *j = (neuron_job){.d = d};
    j->hard = d->hard_reset != 0;
    j->shared = d->x_shared != 0;
    j->sigmoid = d->surrogate == CSNN_SURROGATE_SIGMOID;
    j->vth = d->v_threshold;
    j->vr = d->v_reset;
    j->v0 = j->hard ? d->v_reset : 0.0f;
    j->tau = d->tau;
    int reset0 = !j->hard || d->v_reset == 0.0f;
    if (d->kind == CSNN_NEURON_IF)
        j->charge = CHARGE_IF;
    else if (d->decay_input)
        j->charge = reset0 ? CHARGE_LIF_DECAY0 : CHARGE_LIF_DECAY;
    else
        j->charge = reset0 ? CHARGE_LIF_NODECAY0 : CHARGE_LIF_NODECAY;
    j->k_leak = d->kind == CSNN_NEURON_LIF ? (float)(1.0 - 1.0 / (double)d->tau) : 1.0f;
    /* backward: dx = decay ? gH / tau : gH;
     * dV = cgh gH - cq gH / tau + ck gH k_leak, i.e. IF: gH; LIF with
     * decay_input or v_reset != 0: gH - gH / tau; otherwise gH k_leak */
    j->hard_f = (float)j->hard;
    j->keep_f = d->detach_reset ? 0.0f : 1.0f;
    j->decay_f = j->charge == CHARGE_LIF_DECAY0 || j->charge == CHARGE_LIF_DECAY;
    j->tau_b = d->kind == CSNN_NEURON_LIF ? d->tau : 1.0f;
    j->ck = j->charge == CHARGE_LIF_NODECAY0;
    j->cgh = 1.0f - j->ck;
    j->cq = j->charge != CHARGE_IF && !j->ck;
    j->alpha = d->alpha;
    j->c1 = (float)((double)d->alpha / 2.0);
    j->c2 = (float)(3.14159265358979323846 / 2.0 * (double)d->alpha);
    return CSNN_OK;
}

CPU_INLINE void neuron_fwd_body(void *arg, int64_t m0, int64_t m1, int worker)
{
    (void)worker;
    const neuron_job *j = arg;
    const int64_t M = j->d->m;
    float v[NEURON_BLOCK], hbuf[NEURON_BLOCK];
    for (int64_t b = m0; b < m1; b += NEURON_BLOCK) {
        const int len = (int)(m1 - b < NEURON_BLOCK ? m1 - b : NEURON_BLOCK);
        for (int i = 0; i < len; i++) v[i] = j->v0;
        for (int32_t t = 0; t < j->d->t; t++) {
            const int64_t off = (int64_t)t * M + b;
            float *h = j->h_out ? j->h_out + off : hbuf;
            neuron_charge(j, v, j->x + (j->shared ? b : off), h, len);
            neuron_fire(j, h, j->s + off, v, len);
        }
    }
}

CPU_RANGE_VARIANTS(neuron_fwd_range, neuron_fwd_body)

csnn_status csnn__cpu_neuron_forward(void *dev, const csnn_neuron_desc *d, const float *x,
                                     float *s, float *h)
{
    neuron_job j;
    CSNN_TRY(csnn__cpu_neuron_setup("neuron_forward", d, &j));
    if (d->m == 0) return CSNN_OK;
    CPU_NOT_NULL("neuron_forward", x);
    CPU_NOT_NULL("neuron_forward", s);
    j.x = x;
    j.s = s;
    j.h_out = h;
    csnn__cpu_parallel_for(dev, d->m, NEURON_GRAIN, neuron_fwd_range(), &j);
    return CSNN_OK;
}

CPU_INLINE void neuron_bwd_body(void *arg, int64_t m0, int64_t m1, int worker)
{
    (void)worker;
    const neuron_job *j = arg;
    const int64_t M = j->d->m;
    float gv[NEURON_BLOCK], acc[NEURON_BLOCK], tmp[NEURON_BLOCK];
    for (int64_t b = m0; b < m1; b += NEURON_BLOCK) {
        const int len = (int)(m1 - b < NEURON_BLOCK ? m1 - b : NEURON_BLOCK);
        for (int i = 0; i < len; i++) gv[i] = acc[i] = 0.0f;
        for (int32_t t = j->d->t - 1; t >= 0; t--) {
            const int64_t off = (int64_t)t * M + b;
            float *gx = j->shared ? tmp : j->gx + off;
            neuron_bwd(j, len, j->h + off, j->gs + off, gv, gx);
            if (j->shared)
                for (int i = 0; i < len; i++) acc[i] += tmp[i];
        }
        if (j->shared)
            for (int i = 0; i < len; i++) j->gx[b + i] = acc[i];
    }
}

CPU_RANGE_VARIANTS(neuron_bwd_range, neuron_bwd_body)

csnn_status csnn__cpu_neuron_backward(void *dev, const csnn_neuron_desc *d, const float *grad_s,
                                      const float *h, float *grad_x)
{
    neuron_job j;
    CSNN_TRY(csnn__cpu_neuron_setup("neuron_backward", d, &j));
    if (d->m == 0) return CSNN_OK;
    CPU_NOT_NULL("neuron_backward", grad_s);
    CPU_NOT_NULL("neuron_backward", h);
    CPU_NOT_NULL("neuron_backward", grad_x);
    j.gs = grad_s;
    j.h = h;
    j.gx = grad_x;
    csnn__cpu_parallel_for(dev, d->m, NEURON_GRAIN, neuron_bwd_range(), &j);
    return CSNN_OK;
}
