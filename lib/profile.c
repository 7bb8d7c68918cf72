/* profile.c - the efficiency report: firing rates, synaptic operations
 * counted exactly from the spikes, the ANN twin's multiply-accumulates and
 * the energy estimate (docs/PERFORMANCE.md states the conventions). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"
#include "trainer.h"

struct csnn_profile {
    int32_t n;                  /* layers */
    int64_t samples;
    double mac_pj, ac_pj;
    csnn_layer_profile *layers; /* [n + 1]: the last is the total */
    char (*names)[CSNN_NAME_MAX];
};

void csnn_profile_options_init(csnn_profile_options *o)
{
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->mac_pj = 4.6;
    o->ac_pj = 0.9;
}

void csnn_layer_profile_init(csnn_layer_profile *p)
{
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->size = sizeof *p;
}

void csnn_profile_destroy(csnn_profile *p)
{
    if (!p) return;
    free(p->layers);
    free(p->names);
    free(p);
}

/* Per-batch counting state. */
typedef struct counter {
    float *ones;    /* [max C_in*k*k] of 1 */
    float *out;     /* [max rows*Ho*Wo] */
    void *workspace; /* when the model's is too small */
    size_t workspace_bytes;
} counter;

static csnn_conv2d_desc count_desc(const layer *l, int64_t rows)
{
    csnn_conv2d_desc d = {
        .n = (int32_t)rows,
        .c_in = l->ishape.c, .h_in = l->ishape.h, .w_in = l->ishape.w,
        .c_out = 1, .h_out = l->oshape.h, .w_out = l->oshape.w,
        .kh = l->s.k, .kw = l->s.k,
        .stride_h = l->s.stride, .stride_w = l->s.stride,
        .pad_h = l->s.pad, .pad_w = l->s.pad,
        .has_bias = 0,
    };
    return d;
}

/* Buffers for counting the fan-outs of every spike-fed conv layer. */
static csnn_status counter_init(csnn_model *m, int32_t batch, counter *c)
{
    memset(c, 0, sizeof *c);
    int64_t ones = 0, out = 0;
    size_t ws = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        if (l->s.type != LAYER_CONV || !csnn__layer_input_is_spikes(m, i)) continue;
        int64_t rows = csnn__model_layer_rows(m, i, batch);
        int64_t k = (int64_t)l->ishape.c * l->s.k * l->s.k;
        int64_t o = rows * l->oshape.h * l->oshape.w;
        ones = k > ones ? k : ones;
        out = o > out ? o : out;
        csnn_conv2d_desc d = count_desc(l, rows);
        size_t b = 0;
        CSNN_TRY(m->ops->conv2d_workspace(m->dev, &d, &b));
        ws = b > ws ? b : ws;
    }
    if (ones == 0) return CSNN_OK;
    CSNN_TRY(csnn__model_alloc(m, (size_t)ones * sizeof(float), (void **)&c->ones, "profile"));
    CSNN_TRY(m->ops->fill(m->dev, c->ones, 1.0f, ones));
    CSNN_TRY(csnn__model_alloc(m, (size_t)out * sizeof(float), (void **)&c->out, "profile"));
    if (ws > m->workspace_bytes) {
        CSNN_TRY(csnn__model_alloc(m, ws, &c->workspace, "profile workspace"));
        c->workspace_bytes = ws;
    }
    return CSNN_OK;
}

static void counter_free(csnn_model *m, counter *c)
{
    csnn__model_free(m, c->ones);
    csnn__model_free(m, c->out);
    csnn__model_free(m, c->workspace);
}

/* Accumulates, for the batch, layer i's synaptic operations (each input
 * spike times its fan-out) and its input spikes. A conv with all-ones
 * weights and one output channel sums, over its outputs, each input spike
 * once per output it reaches: times C_out, that is the exact count. */
static csnn_status count_layer(csnn_model *m, counter *c, int i, int32_t n, double *acs,
                               double *spikes)
{
    const layer *l = &m->layers[i];
    int64_t rows = csnn__model_layer_rows(m, i, n);
    const float *x = csnn__model_layer_input(m, i);
    CSNN_TRY(m->ops->reduce(m->dev, CSNN_REDUCE_SUM, x, rows * l->in_numel, spikes));
    if (l->s.type == LAYER_LINEAR) {
        *acs = *spikes * l->s.out;
        return CSNN_OK;
    }
    csnn_conv2d_desc d = count_desc(l, rows);
    void *ws = c->workspace ? c->workspace : m->workspace;
    CSNN_TRY(m->ops->conv2d_forward(m->dev, &d, x, c->ones, NULL, c->out, ws));
    double reached;
    CSNN_TRY(m->ops->reduce(m->dev, CSNN_REDUCE_SUM, c->out, rows * l->oshape.h * l->oshape.w,
                            &reached));
    *acs = reached * l->oshape.c;
    return CSNN_OK;
}

csnn_status csnn_model_profile(csnn_model *m, const csnn_dataset *ds,
                               const csnn_profile_options *user_opts, csnn_profile **out)
{
    CSNN_ARG_NOT_NULL(out);
    *out = NULL;
    CSNN_ARG_NOT_NULL(m);
    CSNN_ARG_NOT_NULL(ds);
    csnn_profile_options o;
    csnn_profile_options_init(&o);
    if (user_opts) {
        CSNN_TRY(csnn__check_struct(user_opts, offsetof(csnn_profile_options, reserved) +
                                                   sizeof(uint32_t),
                                    sizeof o, "csnn_profile_options"));
        memcpy(&o, user_opts, sizeof o);
        if (o.reserved || !(o.mac_pj >= 0) || !(o.ac_pj >= 0) || o.max_samples < 0)
            return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                               "csnn_model_profile: energies must be >= 0, max_samples >= 0, "
                               "reserved 0");
    }
    CSNN_TRY(csnn__check_dataset_shape(m, ds));
    if (ds->n == 0)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "csnn_model_profile: the dataset is empty");
    int64_t limit = o.max_samples > 0 && o.max_samples < ds->n ? o.max_samples : ds->n;
    const int L = m->n_layers;
    csnn_profile *p = csnn__calloc_array(1, sizeof *p, "profile");
    if (!p) return CSNN_ERR_OUT_OF_MEMORY;
    p->n = L;
    p->mac_pj = o.mac_pj;
    p->ac_pj = o.ac_pj;
    p->layers = csnn__calloc_array((size_t)L + 1, sizeof *p->layers, "profile");
    p->names = csnn__calloc_array((size_t)L + 1, sizeof *p->names, "profile");
    double *acs = csnn__calloc_array((size_t)L, sizeof(double), "profile");
    double *spikes = csnn__calloc_array((size_t)L, sizeof(double), "profile");
    double *rates = csnn__calloc_array((size_t)L, sizeof(double), "profile");
    int32_t batch = m->cap_batch > 0 ? m->cap_batch : 16;
    counter c;
    memset(&c, 0, sizeof c);
    csnn_batcher *b = NULL;
    csnn_status st = (p->layers && p->names && acs && spikes && rates) ? CSNN_OK
                                                                        : CSNN_ERR_OUT_OF_MEMORY;
    if (st == CSNN_OK) st = csnn__model_reserve(m, batch, false);
    if (st == CSNN_OK) st = counter_init(m, batch, &c);
    if (st == CSNN_OK) st = csnn__batcher_create(ds, batch, false, NULL, 0, NULL, &b);
    if (st == CSNN_OK) st = csnn__batcher_start_epoch(b, 0);
    const size_t per = (size_t)m->layers[0].in_numel;
    while (st == CSNN_OK && p->samples < limit) {
        const float *images;
        const int32_t *labels;
        int32_t n;
        if ((st = csnn__batcher_next(b, &images, &labels, &n)) != CSNN_OK || n == 0) break;
        if (p->samples + n > limit) n = (int32_t)(limit - p->samples);
        if ((st = m->ops->upload(m->dev, m->input, images, (size_t)n * per * sizeof(float))))
            break;
        if ((st = csnn__model_forward(m, n, false, 0, 0, rates))) break;
        for (int i = 0; i < L && st == CSNN_OK; i++) {
            layer_type t = m->layers[i].s.type;
            if ((t != LAYER_CONV && t != LAYER_LINEAR) || !csnn__layer_input_is_spikes(m, i))
                continue;
            double a = 0, s = 0;
            st = count_layer(m, &c, i, n, &a, &s);
            acs[i] += a;
            spikes[i] += s;
        }
        p->samples += n;
    }
    if (st == CSNN_OK) {
        csnn_layer_profile *total = &p->layers[L];
        csnn_layer_profile_init(total);
        snprintf(p->names[L], CSNN_NAME_MAX, "total");
        total->name = p->names[L];
        total->kind = "model";
        total->firing_rate = -1;
        int r = 0;
        const double S = (double)p->samples;
        for (int i = 0; i < L; i++) {
            const layer *l = &m->layers[i];
            csnn_layer_profile *x = &p->layers[i];
            csnn_layer_profile_init(x);
            snprintf(p->names[i], CSNN_NAME_MAX, "%s", l->s.name);
            x->name = p->names[i];
            x->kind = csnn__layer_keyword(&l->s);
            x->firing_rate = -1;
            if (l->s.type == LAYER_NEURON) x->firing_rate = rates[r++] / S;
            if (l->s.type == LAYER_CONV || l->s.type == LAYER_LINEAR) {
                x->ann_macs = (double)l->flops;
                if (csnn__layer_input_is_spikes(m, i)) {
                    x->counted_as = CSNN_OPS_AC;
                    x->acs = acs[i] / S;
                    x->firing_rate =
                        spikes[i] / S / ((double)l->in_numel * (double)m->spec.steps);
                } else {
                    x->counted_as = CSNN_OPS_MAC;
                    x->macs = (double)l->flops * (csnn__layer_static(m, i) ? 1 : m->spec.steps);
                }
            }
            x->energy_pj = x->macs * o.mac_pj + x->acs * o.ac_pj;
            x->ann_energy_pj = x->ann_macs * o.mac_pj;
            total->macs += x->macs;
            total->acs += x->acs;
            total->ann_macs += x->ann_macs;
            total->energy_pj += x->energy_pj;
            total->ann_energy_pj += x->ann_energy_pj;
        }
        *out = p;
        p = NULL;
    }
    csnn__batcher_destroy(b);
    counter_free(m, &c);
    free(acs);
    free(spikes);
    free(rates);
    csnn_profile_destroy(p);
    return st;
}

csnn_status csnn_profile_num_layers(const csnn_profile *p, int32_t *n)
{
    CSNN_ARG_NOT_NULL(p);
    CSNN_ARG_NOT_NULL(n);
    *n = p->n;
    return CSNN_OK;
}

csnn_status csnn_profile_layer(const csnn_profile *p, int32_t index, csnn_layer_profile *out)
{
    CSNN_ARG_NOT_NULL(p);
    CSNN_ARG_NOT_NULL(out);
    CSNN_TRY(csnn__check_struct(out, offsetof(csnn_layer_profile, ann_energy_pj) + sizeof(double),
                                sizeof *out, "csnn_layer_profile"));
    if (index < -1 || index >= p->n)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "csnn_profile_layer: index %d outside -1..%d", index, p->n - 1);
    csnn__copy_out(out, &p->layers[index < 0 ? p->n : index], sizeof *out);
    return CSNN_OK;
}

csnn_status csnn_profile_info(const csnn_profile *p, int64_t *samples, double *mac_pj,
                              double *ac_pj)
{
    CSNN_ARG_NOT_NULL(p);
    if (samples) *samples = p->samples;
    if (mac_pj) *mac_pj = p->mac_pj;
    if (ac_pj) *ac_pj = p->ac_pj;
    return CSNN_OK;
}
