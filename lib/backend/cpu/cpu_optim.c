/* cpu_optim.c - one optimiser step, element-wise and parallel, in the float
 * arithmetic of torch.optim's single-tensor CPU paths (PyTorch 1.13):
 *
 * Adam   g = g + wd w (wd != 0);  m = m b1 + (1 - b1) g;
 *        v = v b2 + ((1 - b2) g) g;  denom = sqrt(v) / bias_correction2_sqrt + eps;
 *        w = w + (-step_size m) / denom
 * AdamW  w = w (1 - lr wd) first, then Adam without the L2 term
 * SGD    g = g + wd w (wd != 0); with momentum != 0:
 *        buf = g at step 1, else buf momentum + (1 - dampening) g;
 *        g = nesterov ? g + momentum buf : buf;  w = w + (-lr) g
 *
 * Scalar coefficients such as 1 - b1 are formed in double and rounded to
 * float, as PyTorch does with a Python float; step_size and
 * bias_correction2_sqrt come from the descriptor. The loops run as AVX-512
 * or AVX2 code where the CPU has it (CPU_RANGE_VARIANTS: +, -, *, / and
 * sqrt are correctly rounded at every width, so the bits are the same). */
#include <math.h>

#include "cpu_internal.h"

typedef struct {
    const csnn_optim_desc *d;
    float *w, *m, *v;
    const float *g;
    float b1, one_minus_b1, b2, one_minus_b2, eps, wd, neg_step_size, bc2_sqrt, decay;
    float momentum, one_minus_damp, neg_lr;
    int first;
} optim_job;

CPU_INLINE void adam_body(void *arg, int64_t i0, int64_t i1, int worker)
{
    (void)worker;
    const optim_job *j = arg;
    float *restrict w = j->w, *restrict m = j->m, *restrict v = j->v;
    const float *restrict g = j->g;
    const int l2 = j->d->kind == CSNN_OPTIMIZER_ADAM && j->wd != 0.0f;
    const int decoupled = j->d->kind == CSNN_OPTIMIZER_ADAMW && j->wd != 0.0f;
    const float b1 = j->b1, c1 = j->one_minus_b1, b2 = j->b2, c2 = j->one_minus_b2;
    const float eps = j->eps, wd = j->wd, decay = j->decay, bc2 = j->bc2_sqrt;
    const float neg_step = j->neg_step_size;
    for (int64_t i = i0; i < i1; i++) {
        float wi = w[i], gi = g[i];
        if (decoupled) wi = wi * decay;
        if (l2) gi = gi + wd * wi;
        const float mi = m[i] * b1 + c1 * gi;
        const float vi = v[i] * b2 + c2 * gi * gi;
        const float denom = sqrtf(vi) / bc2 + eps;
        m[i] = mi;
        v[i] = vi;
        w[i] = wi + neg_step * mi / denom;
    }
}

CPU_RANGE_VARIANTS(adam_range, adam_body)

CPU_INLINE void sgd_body(void *arg, int64_t i0, int64_t i1, int worker)
{
    (void)worker;
    const optim_job *j = arg;
    float *w = j->w, *buf = j->m;
    const float *g = j->g;
    const int l2 = j->wd != 0.0f, nesterov = j->d->nesterov != 0;
    for (int64_t i = i0; i < i1; i++) {
        float gi = g[i];
        if (l2) gi = gi + j->wd * w[i];
        if (buf) {
            const float b = j->first ? gi : buf[i] * j->momentum + j->one_minus_damp * gi;
            buf[i] = b;
            gi = nesterov ? gi + j->momentum * b : b;
        }
        w[i] = w[i] + j->neg_lr * gi;
    }
}

CPU_RANGE_VARIANTS(sgd_range, sgd_body)

csnn_status csnn__cpu_optim_step(void *dev, const csnn_optim_desc *d, int64_t n, float *w,
                                 const float *g, float *m, float *v)
{
    CPU_NOT_NULL("optim_step", d);
    CPU_NONNEG("optim_step", n);
    if (d->kind < CSNN_OPTIMIZER_ADAM || d->kind > CSNN_OPTIMIZER_SGD)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "cpu optim_step: unknown kind %d",
                           d->kind);
    if (d->step < 1)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "cpu optim_step: step %lld, must be >= 1",
                           (long long)d->step);
    const int adam = d->kind != CSNN_OPTIMIZER_SGD;
    if (adam && !(d->bias_correction2_sqrt > 0.0f))
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "cpu optim_step: bias_correction2_sqrt %g, must be > 0",
                           (double)d->bias_correction2_sqrt);
    if (n == 0) return CSNN_OK;
    CPU_NOT_NULL("optim_step", w);
    CPU_NOT_NULL("optim_step", g);
    optim_job j = {.d = d, .w = w, .g = g, .m = m, .v = v, .wd = d->weight_decay};
    if (adam) {
        CPU_NOT_NULL("optim_step", m);
        CPU_NOT_NULL("optim_step", v);
        j.b1 = d->beta1;
        j.one_minus_b1 = (float)(1.0 - (double)d->beta1);
        j.b2 = d->beta2;
        j.one_minus_b2 = (float)(1.0 - (double)d->beta2);
        j.eps = d->eps;
        j.neg_step_size = -d->step_size;
        j.bc2_sqrt = d->bias_correction2_sqrt;
        j.decay = (float)(1.0 - (double)d->lr * (double)d->weight_decay);
        csnn__cpu_parallel_for(dev, n, 1 << 14, adam_range(), &j);
    } else {
        if (d->momentum != 0.0f) {
            CPU_NOT_NULL("optim_step", m);
        } else {
            j.m = NULL; /* torch keeps no buffer without momentum */
        }
        j.momentum = d->momentum;
        j.one_minus_damp = (float)(1.0 - (double)d->dampening);
        j.neg_lr = -d->lr;
        j.first = d->step == 1;
        csnn__cpu_parallel_for(dev, n, 1 << 14, sgd_range(), &j);
    }
    return CSNN_OK;
}
