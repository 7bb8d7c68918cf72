/* engine.c - running a model: the execution plan (fused neuron + max-pool,
 * spike-sparse kernels, BN folded into conv weights for inference),
 * batch-sized buffers allocated once and reused, forward and backward
 * through time. Layer code calls only the backend table. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

/* Neurons recomputed per chunk to count the spikes of a fused layer with a
 * shared input (its spikes are never stored). */
#define RATE_CHUNK ((int64_t)1 << 16)

int64_t csnn__model_layer_rows(const csnn_model *m, int i, int32_t n)
{
    return csnn__layer_static(m, i) ? (int64_t)n : (int64_t)m->spec.steps * n;
}

const float *csnn__model_layer_input(const csnn_model *m, int i)
{
    if (i == 0 && m->n_static > 0) return m->input;
    if (i == m->n_static)
        return csnn__boundary_shared(m) ? csnn__static_output(m) : m->repeat;
    return m->layers[i - 1].y;
}

/* ------------------------------------------------------------------------ */
/* The plan                                                                  */
/* ------------------------------------------------------------------------ */

/* Whether layer i's input is spikes: it comes from a neuron layer through
 * max-pooling, flattening and dropout only. */
bool csnn__layer_input_is_spikes(const csnn_model *m, int i)
{
    if (i == m->n_static) return false; /* the static output (or the image) */
    for (int j = i - 1; j >= 0; j--) {
        layer_type t = m->layers[j].s.type;
        if (t == LAYER_NEURON) return true;
        if (t != LAYER_MAXPOOL && t != LAYER_FLATTEN && t != LAYER_DROPOUT) return false;
        if (j == m->n_static) return false;
    }
    return false;
}

void csnn__model_plan(csnn_model *m)
{
    const csnn_backend_ops *o = m->ops;
    for (int i = 0; i < m->n_layers; i++) {
        layer *l = &m->layers[i];
        const layer *next = i + 1 < m->n_layers ? &m->layers[i + 1] : NULL;
        bool same_block = next && csnn__layer_static(m, i) == csnn__layer_static(m, i + 1);
        l->fused = l->s.type == LAYER_NEURON && next && next->s.type == LAYER_MAXPOOL &&
                   same_block && o->neuron_pool_forward && o->neuron_pool_backward &&
                   !(m->disabled & CSNN__NO_FUSION);
        bool sparse_ok = l->s.type == LAYER_CONV
                             ? o->conv2d_forward_sparse && o->conv2d_backward_sparse
                             : o->linear_forward_sparse && o->linear_weight_grad_sparse;
        l->sparse_in = (l->s.type == LAYER_CONV || l->s.type == LAYER_LINEAR) && sparse_ok &&
                       !(m->disabled & CSNN__NO_SPARSE) && csnn__layer_input_is_spikes(m, i);
        l->folds_bn = l->s.type == LAYER_CONV && next && next->s.type == LAYER_BN && same_block &&
                      !(m->disabled & CSNN__NO_BNFOLD);
        l->packs = l->s.type == LAYER_LINEAR && l->sparse_in && o->linear_packed_floats &&
                   o->linear_pack && o->linear_forward_packed && !(m->disabled & CSNN__NO_PACK);
        l->temporal = l->s.type == LAYER_CONV && l->sparse_in && !csnn__layer_static(m, i) &&
                      m->spec.steps > 1 && o->conv2d_forward_temporal &&
                      o->conv2d_backward_temporal && !(m->disabled & CSNN__NO_TEMPORAL);
    }
}

/* ------------------------------------------------------------------------ */
/* Descriptors                                                               */
/* ------------------------------------------------------------------------ */

static csnn_conv2d_desc conv_desc(const layer *l, int64_t rows)
{
    csnn_conv2d_desc d = {
        .n = (int32_t)rows,
        .c_in = l->ishape.c, .h_in = l->ishape.h, .w_in = l->ishape.w,
        .c_out = l->oshape.c, .h_out = l->oshape.h, .w_out = l->oshape.w,
        .kh = l->s.k, .kw = l->s.k,
        .stride_h = l->s.stride, .stride_w = l->s.stride,
        .pad_h = l->s.pad, .pad_w = l->s.pad,
        .has_bias = l->s.bias,
    };
    return d;
}

static csnn_bn_desc bn_desc(const layer *l, int64_t rows)
{
    csnn_bn_desc d = {
        .n = (int32_t)rows,
        .c = l->ishape.c,
        .hw = (int64_t)l->ishape.h * l->ishape.w,
        .eps = l->s.eps,
        .momentum = l->s.momentum,
    };
    return d;
}

static csnn_pool_desc pool_desc(const layer *l, int64_t rows)
{
    csnn_pool_desc d = {
        .planes = rows * l->ishape.c,
        .h_in = l->ishape.h, .w_in = l->ishape.w, .h_out = l->oshape.h, .w_out = l->oshape.w,
        .k = l->s.k, .stride = l->s.stride,
    };
    return d;
}

static csnn_neuron_desc neuron_desc(const csnn_model *m, int i, int32_t n)
{
    csnn_neuron_desc d = m->layers[i].s.neuron;
    d.t = m->spec.steps;
    d.x_shared = (i == m->n_static && csnn__boundary_shared(m)) ? 1 : 0;
    d.m = (int64_t)n * m->layers[i].out_numel;
    return d;
}

static float *tensor_data(const csnn_model *m, int index)
{
    return index >= 0 ? m->tensors[index].data : NULL;
}

static float *tensor_grad(const csnn_model *m, int index)
{
    return index >= 0 ? m->tensors[index].grad : NULL;
}

/* ------------------------------------------------------------------------ */
/* Buffers                                                                   */
/* ------------------------------------------------------------------------ */

void csnn__model_free_runtime(csnn_model *m)
{
    for (int i = 0; i < m->n_layers && m->layers; i++) {
        layer *l = &m->layers[i];
        if (!l->y_alias) csnn__model_free(m, l->y);
        csnn__model_free(m, l->h);
        csnn__model_free(m, l->argmax);
        csnn__model_free(m, l->save_mean);
        csnn__model_free(m, l->save_invstd);
        csnn__model_free(m, l->mask);
        l->y = l->h = l->save_mean = l->save_invstd = l->mask = NULL;
        l->argmax = NULL;
        l->y_alias = false;
    }
    csnn__model_free(m, m->input);
    if (m->repeat_owned) csnn__model_free(m, m->repeat);
    m->repeat_owned = false;
    csnn__model_free(m, m->output);
    csnn__model_free(m, m->grad_out);
    csnn__model_free(m, m->gbuf[0]);
    csnn__model_free(m, m->gbuf[1]);
    csnn__model_free(m, m->labels);
    csnn__model_free(m, m->loss);
    csnn__model_free(m, m->workspace);
    csnn__model_free(m, m->rate_scratch);
    m->input = m->repeat = m->output = m->grad_out = m->gbuf[0] = m->gbuf[1] = NULL;
    m->rate_scratch = NULL;
    m->rate_scratch_elems = 0;
    m->labels = NULL;
    m->loss = NULL;
    m->workspace = NULL;
    m->workspace_bytes = 0;
    m->cap_batch = 0;
    m->cap_train = false;
}

static bool layer_aliases(const layer *l, bool train)
{
    return l->s.type == LAYER_FLATTEN || (l->s.type == LAYER_DROPOUT && !train);
}

/* Elements of the gradient buffers: every gradient that backward
 * materialises (a fused neuron's output gradient never is). */
static int64_t grad_elems(const csnn_model *m, int32_t cap)
{
    int64_t g = (int64_t)m->spec.steps * cap * m->spec.classes;
    for (int i = m->first_param_layer; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        int64_t rows = csnn__model_layer_rows(m, i, cap);
        int64_t in = rows * l->in_numel, out = rows * l->out_numel;
        if (l->s.type == LAYER_NEURON && i == m->n_static && csnn__boundary_shared(m))
            in = (int64_t)cap * l->in_numel; /* summed over T */
        if (l->fused) out = 0;
        if (l->s.type == LAYER_MAXPOOL && i > 0 && m->layers[i - 1].fused) in = 0;
        g = in > g ? in : g;
        g = out > g ? out : g;
    }
    return g;
}

csnn_status csnn__model_reserve(csnn_model *m, int32_t n, bool train)
{
    if (n <= 0) return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "model: batch size %d", n);
    if (n <= m->cap_batch && (!train || m->cap_train)) return CSNN_OK;
    int32_t cap = n > m->cap_batch ? n : m->cap_batch;
    bool want_train = train || m->cap_train;
    csnn__model_free_runtime(m);
    const int32_t T = m->spec.steps;
    const int64_t K = m->spec.classes;
    csnn_status st;
#define ALLOC(ptr, count, elem, what)                                                              \
    do {                                                                                           \
        size_t bytes_;                                                                             \
        if (!csnn__mul_size((size_t)(count), (elem), &bytes_)) {                                   \
            st = csnn__error(CSNN_ERR_LIMIT, "model: %s for batch %d overflows", what, cap);       \
            goto fail;                                                                             \
        }                                                                                          \
        if ((st = csnn__model_alloc(m, bytes_, (void **)&(ptr), what)) != CSNN_OK) goto fail;      \
    } while (0)

    const layer *first = &m->layers[0];
    ALLOC(m->input, (int64_t)cap * first->in_numel, sizeof(float), "input batch");
    if (m->n_static == 0 && !csnn__boundary_shared(m)) {
        /* no static block: the input itself is repeated over T */
        if (T == 1) {
            m->repeat = m->input;
        } else {
            ALLOC(m->repeat, (int64_t)T * cap * first->in_numel, sizeof(float), "repeat buffer");
            m->repeat_owned = true;
        }
    }
    size_t ws = 0;
    for (int i = 0; i < m->n_layers; i++) {
        layer *l = &m->layers[i];
        int64_t rows = csnn__model_layer_rows(m, i, cap);
        int64_t out_elems = rows * l->out_numel;
        bool x_shared = l->s.type == LAYER_NEURON && i == m->n_static && csnn__boundary_shared(m);
        if (layer_aliases(l, want_train)) {
            l->y = (float *)csnn__model_layer_input(m, i);
            l->y_alias = true;
        } else if (!l->fused) {
            ALLOC(l->y, out_elems, sizeof(float), l->s.name);
        }
        switch (l->s.type) {
        case LAYER_CONV: {
            csnn_conv2d_desc d = conv_desc(l, rows);
            size_t b = 0;
            if ((st = m->ops->conv2d_workspace(m->dev, &d, &b)) != CSNN_OK) goto fail;
            if (b > ws) ws = b;
            break;
        }
        case LAYER_BN:
            ALLOC(l->save_mean, l->ishape.c, sizeof(float), "bn statistics");
            ALLOC(l->save_invstd, l->ishape.c, sizeof(float), "bn statistics");
            break;
        case LAYER_MAXPOOL:
            if (want_train) ALLOC(l->argmax, out_elems, 1, "maxpool indices");
            break;
        case LAYER_NEURON:
            /* a fused layer with a shared input recomputes H in backward */
            if (want_train && !(l->fused && x_shared))
                ALLOC(l->h, out_elems, sizeof(float), "membrane potentials");
            break;
        case LAYER_DROPOUT:
            if (want_train) ALLOC(l->mask, (int64_t)cap * l->in_numel, sizeof(float), "dropout mask");
            break;
        default: break;
        }
        /* the static output repeated over T feeds a non-neuron first dynamic layer */
        if (i == m->n_static - 1 && m->n_static < m->n_layers && !csnn__boundary_shared(m)) {
            if (T == 1) {
                m->repeat = l->y;
            } else {
                ALLOC(m->repeat, (int64_t)T * cap * l->out_numel, sizeof(float), "repeat buffer");
                m->repeat_owned = true;
            }
        }
    }
    ALLOC(m->output, cap * K, sizeof(float), "outputs");
    ALLOC(m->labels, cap, sizeof(int32_t), "labels");
    ALLOC(m->loss, 1, sizeof(float), "loss");
    if (want_train) {
        int64_t g = grad_elems(m, cap);
        ALLOC(m->grad_out, cap * K, sizeof(float), "output gradient");
        ALLOC(m->gbuf[0], g, sizeof(float), "gradients");
        ALLOC(m->gbuf[1], g, sizeof(float), "gradients");
    }
    if (ws) {
        if ((st = csnn__model_alloc(m, ws, &m->workspace, "workspace")) != CSNN_OK) goto fail;
        m->workspace_bytes = ws;
    }
#undef ALLOC
    m->cap_batch = cap;
    m->cap_train = want_train;
    return CSNN_OK;
fail:
    csnn__model_free_runtime(m);
    return st;
}

/* Scratch for the spikes of fused layers when firing rates are asked for. */
static csnn_status reserve_rate_scratch(csnn_model *m)
{
    int64_t need = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        if (!l->fused) continue;
        bool shared = i == m->n_static && csnn__boundary_shared(m);
        int64_t e = shared ? (int64_t)m->spec.steps * RATE_CHUNK
                           : csnn__model_layer_rows(m, i, m->cap_batch) * l->out_numel;
        need = e > need ? e : need;
    }
    if (need <= m->rate_scratch_elems) return CSNN_OK;
    csnn__model_free(m, m->rate_scratch);
    m->rate_scratch = NULL;
    m->rate_scratch_elems = 0;
    CSNN_TRY(csnn__model_alloc(m, (size_t)need * sizeof(float), (void **)&m->rate_scratch,
                               "spike counts"));
    m->rate_scratch_elems = need;
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* BN folded into conv weights (inference)                                   */
/* ------------------------------------------------------------------------ */

/* W' = W * s, b' = (b - mean) * s + beta with s = gamma / sqrt(var + eps),
 * computed in double from the current parameters. */
static csnn_status fold_bn(csnn_model *m, int i)
{
    layer *l = &m->layers[i];
    const layer *bn = &m->layers[i + 1];
    const model_tensor *w = &m->tensors[l->t_weight];
    int64_t c_out = w->shape[0], per = w->numel / c_out;
    if (!l->fold_w) {
        CSNN_TRY(csnn__model_alloc(m, (size_t)w->numel * sizeof(float), (void **)&l->fold_w,
                                   "folded weights"));
        CSNN_TRY(csnn__model_alloc(m, (size_t)c_out * sizeof(float), (void **)&l->fold_b,
                                   "folded bias"));
    }
    float *host = csnn__alloc_array((size_t)w->numel + 5 * (size_t)c_out, sizeof(float),
                                    "folding");
    if (!host) return CSNN_ERR_OUT_OF_MEMORY;
    float *b = host + w->numel, *g = b + c_out, *beta = g + c_out, *mean = beta + c_out,
          *var = mean + c_out;
    csnn_status st = m->ops->download(m->dev, host, w->data, (size_t)w->numel * sizeof(float));
    const int src[5] = {l->t_bias, bn->t_weight, bn->t_bias, bn->t_mean, bn->t_var};
    float *dst[5] = {b, g, beta, mean, var};
    for (int k = 0; k < 5 && st == CSNN_OK; k++) {
        if (src[k] < 0) {
            memset(dst[k], 0, (size_t)c_out * sizeof(float));
            continue;
        }
        st = m->ops->download(m->dev, dst[k], m->tensors[src[k]].data,
                              (size_t)c_out * sizeof(float));
    }
    if (st == CSNN_OK) {
        for (int64_t o = 0; o < c_out; o++) {
            double s = (double)g[o] / sqrt((double)var[o] + (double)bn->s.eps);
            for (int64_t e = 0; e < per; e++) host[o * per + e] = (float)(host[o * per + e] * s);
            b[o] = (float)(((double)b[o] - mean[o]) * s + beta[o]);
        }
        st = m->ops->upload(m->dev, l->fold_w, host, (size_t)w->numel * sizeof(float));
        if (st == CSNN_OK)
            st = m->ops->upload(m->dev, l->fold_b, b, (size_t)c_out * sizeof(float));
    }
    free(host);
    return st;
}

static csnn_status refresh_folds(csnn_model *m)
{
    if (m->folded_version == m->param_version + 1) return CSNN_OK;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].folds_bn) CSNN_TRY(fold_bn(m, i));
    m->folded_version = m->param_version + 1;
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Packed weights of spike-fed linear layers (inference)                     */
/* ------------------------------------------------------------------------ */

/* Packing costs a copy of the weights (85 MB for the reference fc1), so only
 * a model without a trainer packs: in deployment, inference reads the packed
 * rows of its active inputs only; during training (validation included) the
 * backend transposes tiles as it goes and the memory is not spent. */
void csnn__model_drop_packs(csnn_model *m)
{
    for (int i = 0; i < m->n_layers && m->layers; i++) {
        csnn__model_free(m, m->layers[i].pack_w);
        m->layers[i].pack_w = NULL;
    }
    m->packed_version = 0;
}

/* Packing is an optimisation: when it fails (memory, a backend error) the
 * model runs unpacked from then on, with the caller's error state as it was. */
static void refresh_packs(csnn_model *m)
{
    if (m->packed_version == m->param_version + 1) return;
    const csnn_backend_ops *o = m->ops;
    char saved[1024]; /* the size of the thread's message (error.c) */
    snprintf(saved, sizeof saved, "%s", csnn_last_error_message());
    for (int i = 0; i < m->n_layers; i++) {
        layer *l = &m->layers[i];
        if (!l->packs) continue;
        const int64_t in = l->ishape.c, out = l->s.out;
        csnn_status st = CSNN_OK;
        if (!l->pack_w) {
            int64_t floats = o->linear_packed_floats(m->dev, in, out);
            if (floats <= 0) continue; /* the backend does not pack this shape */
            if ((uint64_t)floats > SIZE_MAX / sizeof(float))
                st = CSNN_ERR_LIMIT;
            else
                st = csnn__model_alloc(m, (size_t)floats * sizeof(float), (void **)&l->pack_w,
                                       "packed weights");
        }
        if (st == CSNN_OK)
            st = o->linear_pack(m->dev, in, out, tensor_data(m, l->t_weight), l->pack_w);
        if (st != CSNN_OK) {
            csnn__model_drop_packs(m);
            m->pack_failed = true;
            csnn__error(CSNN_OK, "%s", saved); /* the message as it was */
            return;
        }
    }
    m->packed_version = m->param_version + 1;
}

/* ------------------------------------------------------------------------ */
/* Forward                                                                   */
/* ------------------------------------------------------------------------ */

#define OPS_TRY(expr, l)                                                                           \
    do {                                                                                           \
        csnn_status st_ = (expr);                                                                  \
        if (st_ != CSNN_OK) return csnn__error_prefix(st_, "layer %s", (l)->s.name);               \
    } while (0)

/* csnn_model_set_layer_timing: waits for the device, then books the time
 * since t0 to layer l. */
static csnn_status layer_timed(csnn_model *m, layer *l, double t0, bool backward)
{
    if (m->ops->synchronize) OPS_TRY(m->ops->synchronize(m->dev), l);
    const double dt = csnn__now() - t0;
    if (backward) {
        l->time_bwd += dt;
        l->calls_bwd++;
    } else {
        l->time_fwd += dt;
        l->calls_fwd++;
    }
    return CSNN_OK;
}

/* Adds the spikes of `count` elements of s to *sum as a per-image rate. */
static csnn_status add_rate(csnn_model *m, const layer *l, const float *s, int64_t count,
                            double *sum)
{
    double spikes;
    OPS_TRY(m->ops->reduce(m->dev, CSNN_REDUCE_SUM, s, count, &spikes), l);
    *sum += spikes / (double)l->out_numel / m->spec.steps;
    return CSNN_OK;
}

/* Whether static conv i, its BN (folded in inference) and a fused neuron +
 * max-pool pair fed by them (x_shared) can run as one conv_neuron_pool
 * pass. Batches of fewer than 4 images keep the separate passes: those
 * spread the pair's planes over the threads, the fused pass its images
 * (the results are the same bits either way). */
static bool static_fusable(const csnn_model *m, int i, int32_t n)
{
    const layer *l = &m->layers[i];
    return m->ops->conv_neuron_pool_forward && !(m->disabled & CSNN__NO_FUSION) && n >= 4 &&
           i + 3 < m->n_layers && csnn__layer_static(m, i) && l->folds_bn &&
           !csnn__layer_static(m, i + 2) && m->layers[i + 2].s.type == LAYER_NEURON &&
           m->layers[i + 2].fused && i + 2 == m->n_static && !m->repeat_owned &&
           neuron_desc(m, i + 2, n).x_shared;
}

/* A fused neuron layer i and the max-pool after it. In inference with firing
 * rates wanted the spikes must be counted: a shared-input layer recomputes
 * them chunk by chunk, another runs unfused through the scratch buffer. */
static csnn_status forward_fused(csnn_model *m, int i, int32_t n, bool train, const float *x,
                                 double *rate)
{
    const csnn_backend_ops *o = m->ops;
    layer *l = &m->layers[i], *pool = &m->layers[i + 1];
    csnn_neuron_desc nd = neuron_desc(m, i, n);
    csnn_pool_desc pd = pool_desc(pool, csnn__model_layer_rows(m, i + 1, n));
    if (!rate || nd.x_shared) {
        float *h = train && !nd.x_shared ? l->h : NULL;
        OPS_TRY(o->neuron_pool_forward(m->dev, &nd, &pd, x, pool->y, train ? pool->argmax : NULL, h),
                l);
        if (!rate) return CSNN_OK;
        for (int64_t off = 0; off < nd.m; off += RATE_CHUNK) {
            csnn_neuron_desc cd = nd;
            cd.m = nd.m - off < RATE_CHUNK ? nd.m - off : RATE_CHUNK;
            OPS_TRY(o->neuron_forward(m->dev, &cd, x + off, m->rate_scratch, NULL), l);
            CSNN_TRY(add_rate(m, l, m->rate_scratch, cd.t * cd.m, rate));
        }
        return CSNN_OK;
    }
    OPS_TRY(o->neuron_forward(m->dev, &nd, x, m->rate_scratch, NULL), l);
    OPS_TRY(o->maxpool_forward(m->dev, &pd, m->rate_scratch, pool->y, NULL), pool);
    return add_rate(m, l, m->rate_scratch, nd.t * nd.m, rate);
}

csnn_status csnn__model_forward(csnn_model *m, int32_t n, bool train, uint64_t dropout_seed,
                                uint64_t dropout_stream, double *rate_sums)
{
    const csnn_backend_ops *o = m->ops;
    void *dev = m->dev;
    const int32_t T = m->spec.steps;
    bool fold = !train && !(m->disabled & CSNN__NO_BNFOLD);
    if (fold) CSNN_TRY(refresh_folds(m));
    if (!train && !m->trainer_attached && !m->pack_failed) /* the weights stay as they are */
        refresh_packs(m);
    else if (m->packed_version)
        csnn__model_drop_packs(m);
    if (rate_sums) CSNN_TRY(reserve_rate_scratch(m));
    int rate_index = 0;
    for (int i = 0; i < m->n_layers; i++) {
        layer *l = &m->layers[i];
        const double t0 = m->layer_timing ? csnn__now() : 0.0;
        int64_t rows = csnn__model_layer_rows(m, i, n);
        if (i == m->n_static && m->repeat_owned)
            OPS_TRY(o->time_repeat(dev, T, (int64_t)n * l->in_numel, csnn__static_output(m),
                                   m->repeat),
                    l);
        const float *x = csnn__model_layer_input(m, i);
        switch (l->s.type) {
        case LAYER_CONV: {
            csnn_conv2d_desc d = conv_desc(l, rows);
            bool folded = fold && l->folds_bn;
            if (folded && !rate_sums && static_fusable(m, i, n)) {
                /* the static conv, its BN, and the first neuron + max-pool */
                layer *nl = &m->layers[i + 2], *pool = &m->layers[i + 3];
                csnn_neuron_desc nd = neuron_desc(m, i + 2, n);
                csnn_pool_desc pd = pool_desc(pool, csnn__model_layer_rows(m, i + 3, n));
                d.has_bias = 1;
                OPS_TRY(o->conv_neuron_pool_forward(dev, &d, x, l->fold_w, l->fold_b, &nd, &pd,
                                                    pool->y),
                        nl);
                i += 3;
                break;
            }
            const float *w = folded ? l->fold_w : tensor_data(m, l->t_weight);
            const float *b = folded ? l->fold_b : tensor_data(m, l->t_bias);
            float *y = folded ? m->layers[i + 1].y : l->y; /* the BN is skipped */
            if (folded) d.has_bias = 1;
            if (l->temporal)
                OPS_TRY(o->conv2d_forward_temporal(dev, &d, m->spec.steps, x, w, b, y,
                                                   m->workspace),
                        l);
            else if (l->sparse_in)
                OPS_TRY(o->conv2d_forward_sparse(dev, &d, x, w, b, y, m->workspace), l);
            else
                OPS_TRY(o->conv2d_forward(dev, &d, x, w, b, y, m->workspace), l);
            if (folded) i++;
            break;
        }
        case LAYER_LINEAR:
            if (l->sparse_in && l->pack_w && m->packed_version) {
                OPS_TRY(o->linear_forward_packed(dev, rows, l->ishape.c, l->s.out, x,
                                                 tensor_data(m, l->t_weight), l->pack_w,
                                                 tensor_data(m, l->t_bias), l->y),
                        l);
                break;
            }
            if (l->sparse_in) {
                OPS_TRY(o->linear_forward_sparse(dev, rows, l->ishape.c, l->s.out, x,
                                                 tensor_data(m, l->t_weight),
                                                 tensor_data(m, l->t_bias), l->y),
                        l);
                break;
            }
            OPS_TRY(o->gemm(dev, 0, 1, rows, l->s.out, l->ishape.c, 1.0f, x, l->ishape.c,
                            tensor_data(m, l->t_weight), l->ishape.c, 0.0f, l->y, l->s.out),
                    l);
            if (l->t_bias >= 0)
                OPS_TRY(o->bias_add(dev, l->y, tensor_data(m, l->t_bias), rows, l->s.out, 1), l);
            break;
        case LAYER_BN: {
            csnn_bn_desc d = bn_desc(l, rows);
            if (train) {
                OPS_TRY(o->bn_forward_train(dev, &d, x, tensor_data(m, l->t_weight),
                                            tensor_data(m, l->t_bias), l->y, l->save_mean,
                                            l->save_invstd, tensor_data(m, l->t_mean),
                                            tensor_data(m, l->t_var)),
                        l);
                l->num_batches_tracked++;
                m->param_version++;
            } else {
                OPS_TRY(o->bn_forward_infer(dev, &d, x, tensor_data(m, l->t_weight),
                                            tensor_data(m, l->t_bias), tensor_data(m, l->t_mean),
                                            tensor_data(m, l->t_var), l->y),
                        l);
            }
            break;
        }
        case LAYER_MAXPOOL: {
            csnn_pool_desc d = pool_desc(l, rows);
            OPS_TRY(o->maxpool_forward(dev, &d, x, l->y, train ? l->argmax : NULL), l);
            break;
        }
        case LAYER_NEURON: {
            double *rate = rate_sums ? &rate_sums[rate_index++] : NULL;
            if (l->fused) {
                CSNN_TRY(forward_fused(m, i, n, train, x, rate));
                i++; /* the max-pool is done */
                break;
            }
            csnn_neuron_desc d = neuron_desc(m, i, n);
            OPS_TRY(o->neuron_forward(dev, &d, x, l->y, train ? l->h : NULL), l);
            if (rate) CSNN_TRY(add_rate(m, l, l->y, rows * l->out_numel, rate));
            break;
        }
        case LAYER_RELU: OPS_TRY(o->relu_forward(dev, rows * l->out_numel, x, l->y), l); break;
        case LAYER_FLATTEN: break;
        case LAYER_DROPOUT:
            if (train) {
                /* one mask per sample, shared by every time step */
                int64_t per = (int64_t)n * l->in_numel;
                OPS_TRY(o->dropout_mask(dev, l->mask, per, l->s.p, dropout_seed,
                                        (dropout_stream << 8) | (uint64_t)i),
                        l);
                OPS_TRY(o->mul_broadcast_t(dev, (int32_t)(rows / n), per, x, l->mask, l->y), l);
            } else if (!l->y_alias) {
                /* buffers made for training: the identity must still be written */
                OPS_TRY(o->copy(dev, l->y, x, (size_t)(rows * l->out_numel) * sizeof(float)), l);
            }
            break;
        }
        if (m->layer_timing) CSNN_TRY(layer_timed(m, l, t0, false));
    }
    /* the output: mean over T of the last layer (firing rates for spikes) */
    const layer *last = &m->layers[m->n_layers - 1];
    int64_t nk = (int64_t)n * m->spec.classes;
    if (m->n_layers == m->n_static)
        OPS_TRY(o->copy(dev, m->output, last->y, (size_t)nk * sizeof(float)), last);
    else
        OPS_TRY(o->time_mean(dev, T, nk, last->y, m->output), last);
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Backward                                                                  */
/* ------------------------------------------------------------------------ */

/* Whether the gradients of linear layer l just computed - dW = dy^T x and
 * db = the column sums of dy, rows x in inputs and rows x out gradients -
 * are all finite, from a bound instead of reading them. With Sx = sum of
 * x^2 and Sdy = sum of dy^2, sums in double that are finite only when every
 * value is: |dW[o, f]| <= sum over r of |dy[r, o] x[r, f]| <= sqrt(Sx Sdy)
 * (Cauchy-Schwarz) and |db[o]| <= sqrt(rows Sdy). However a backend adds
 * those terms (float products, or exact products of bfloat16 parts whose
 * magnitudes add up to at most 1.004 |dy x|; at most 3 rows roundings per
 * value), its result stays below 1.25 times the bound for rows <= 2^20, so
 * a bound under FLT_MAX / 8 proves every value finite and the trainer's
 * non-finite check skips those gradients. Taken where it reads less than
 * the check would (rows (in + out) < in out): for the reference fc1, 4.8 MB
 * of x and dy instead of 85 MB of dW. */
static csnn_status prove_linear_grads(csnn_model *m, const layer *l, const float *x,
                                      const float *dy, int64_t rows)
{
    const int64_t in = l->ishape.c, out = l->s.out;
    if (rows <= 0 || rows > ((int64_t)1 << 20) ||
        (double)rows * (double)(in + out) >= (double)in * (double)out)
        return CSNN_OK;
    double sx = 0.0, sdy = 0.0;
    OPS_TRY(m->ops->reduce(m->dev, CSNN_REDUCE_SUM_SQUARES, x, rows * in, &sx), l);
    OPS_TRY(m->ops->reduce(m->dev, CSNN_REDUCE_SUM_SQUARES, dy, rows * out, &sdy), l);
    if (!isfinite(sx) || !isfinite(sdy)) return CSNN_OK;
    const double limit = FLT_MAX / 8.0;
    if (sqrt(sx) * sqrt(sdy) <= limit) m->grad_proven[l->t_weight] = 1;
    if (l->t_bias >= 0 && sqrt((double)rows) * sqrt(sdy) <= limit) m->grad_proven[l->t_bias] = 1;
    return CSNN_OK;
}

csnn_status csnn__model_count_nonfinite_grads(csnn_model *m, double *count)
{
    *count = 0.0;
    if (!m->has_grads) return CSNN_OK;
    const float *base = csnn__model_arena(m, 1);
    /* the PARAM tensors lie in the arena in tensor order: runs of unproven
     * ones (with the zero padding between them) are read together */
    int64_t start = -1, end = 0;
    for (int i = 0; i <= m->n_tensors; i++) {
        const model_tensor *t = i < m->n_tensors ? &m->tensors[i] : NULL;
        if (t && t->kind != CSNN_TENSOR_PARAM) continue;
        if (t && !m->grad_proven[i]) {
            const int64_t off = t->grad - base;
            if (start < 0) start = off;
            end = off + t->numel;
            continue;
        }
        if (start >= 0) {
            double bad = 0.0;
            CSNN_TRY(m->ops->reduce(m->dev, CSNN_REDUCE_COUNT_NONFINITE, base + start, end - start,
                                    &bad));
            *count += bad;
            start = -1;
        }
    }
    return CSNN_OK;
}

csnn_status csnn__model_backward(csnn_model *m, int32_t n)
{
    if (!m->cap_train || !m->has_grads || n > m->cap_batch)
        return csnn__error(CSNN_ERR_STATE, "model: backward without a training forward");
    const csnn_backend_ops *o = m->ops;
    void *dev = m->dev;
    const int32_t T = m->spec.steps;
    const int64_t nk = (int64_t)n * m->spec.classes;
    memset(m->grad_proven, 0, (size_t)m->n_tensors);
    int cur = 0;
    float *g = m->gbuf[cur];
    const layer *last = &m->layers[m->n_layers - 1];
    if (m->n_layers == m->n_static)
        OPS_TRY(o->copy(dev, g, m->grad_out, (size_t)nk * sizeof(float)), last);
    else
        OPS_TRY(o->time_mean_backward(dev, T, nk, m->grad_out, g), last);

    for (int i = m->n_layers - 1; i >= m->first_param_layer; i--) {
        layer *l = &m->layers[i];
        const double t0 = m->layer_timing ? csnn__now() : 0.0;
        if (l->s.type == LAYER_MAXPOOL && i > 0 && m->layers[i - 1].fused) {
            i--; /* the fused neuron and this max-pool, backward in one pass */
            l = &m->layers[i];
        }
        int64_t rows = csnn__model_layer_rows(m, i, n);
        bool need_dx = i > m->first_param_layer;
        const float *x = csnn__model_layer_input(m, i);
        float *dx = m->gbuf[1 - cur];
        bool swap = true;
        switch (l->s.type) {
        case LAYER_CONV: {
            csnn_conv2d_desc d = conv_desc(l, rows);
            if (l->temporal) {
                OPS_TRY(o->conv2d_backward_temporal(dev, &d, m->spec.steps, x,
                                                    tensor_data(m, l->t_weight), g,
                                                    need_dx ? dx : NULL,
                                                    tensor_grad(m, l->t_weight),
                                                    tensor_grad(m, l->t_bias), m->workspace),
                        l);
                break;
            }
            __typeof__(o->conv2d_backward) bwd =
                l->sparse_in ? o->conv2d_backward_sparse : o->conv2d_backward;
            OPS_TRY(bwd(dev, &d, x, tensor_data(m, l->t_weight), g, need_dx ? dx : NULL,
                        tensor_grad(m, l->t_weight), tensor_grad(m, l->t_bias), m->workspace),
                    l);
            break;
        }
        case LAYER_LINEAR:
            if (l->sparse_in) {
                OPS_TRY(o->linear_weight_grad_sparse(dev, rows, l->ishape.c, l->s.out, x, g,
                                                     tensor_grad(m, l->t_weight),
                                                     tensor_grad(m, l->t_bias)),
                        l);
            } else {
                OPS_TRY(o->gemm(dev, 1, 0, l->s.out, l->ishape.c, rows, 1.0f, g, l->s.out, x,
                                l->ishape.c, 0.0f, tensor_grad(m, l->t_weight), l->ishape.c),
                        l);
                if (l->t_bias >= 0)
                    OPS_TRY(o->bias_grad(dev, g, tensor_grad(m, l->t_bias), rows, l->s.out, 1), l);
            }
            CSNN_TRY(prove_linear_grads(m, l, x, g, rows));
            if (need_dx)
                OPS_TRY(o->gemm(dev, 0, 0, rows, l->ishape.c, l->s.out, 1.0f, g, l->s.out,
                                tensor_data(m, l->t_weight), l->ishape.c, 0.0f, dx, l->ishape.c),
                        l);
            break;
        case LAYER_BN: {
            csnn_bn_desc d = bn_desc(l, rows);
            OPS_TRY(o->bn_backward(dev, &d, x, g, tensor_data(m, l->t_weight), l->save_mean,
                                   l->save_invstd, need_dx ? dx : NULL,
                                   tensor_grad(m, l->t_weight), tensor_grad(m, l->t_bias)),
                    l);
            break;
        }
        case LAYER_MAXPOOL: {
            csnn_pool_desc d = pool_desc(l, rows);
            OPS_TRY(o->maxpool_backward(dev, &d, g, l->argmax, dx), l);
            break;
        }
        case LAYER_NEURON: {
            csnn_neuron_desc d = neuron_desc(m, i, n);
            if (l->fused) {
                const layer *pool = &m->layers[i + 1];
                csnn_pool_desc pd = pool_desc(pool, csnn__model_layer_rows(m, i + 1, n));
                OPS_TRY(o->neuron_pool_backward(dev, &d, &pd, x, l->h, pool->argmax, g, dx), l);
            } else {
                OPS_TRY(o->neuron_backward(dev, &d, g, l->h, dx), l);
            }
            break;
        }
        case LAYER_RELU:
            OPS_TRY(o->relu_backward(dev, rows * l->out_numel, l->y, g, dx), l);
            break;
        case LAYER_FLATTEN: swap = false; break;
        case LAYER_DROPOUT: {
            int64_t per = (int64_t)n * l->in_numel;
            OPS_TRY(o->mul_broadcast_t(dev, (int32_t)(rows / n), per, g, l->mask, dx), l);
            break;
        }
        }
        if (swap) {
            cur = 1 - cur;
            g = m->gbuf[cur];
        }
        /* crossing from the time steps back into the static block */
        if (i == m->n_static && need_dx && !csnn__boundary_shared(m) && T > 1) {
            OPS_TRY(o->time_sum(dev, T, (int64_t)n * l->in_numel, g, m->gbuf[1 - cur]), l);
            cur = 1 - cur;
            g = m->gbuf[cur];
        }
        if (m->layer_timing) CSNN_TRY(layer_timed(m, l, t0, true));
    }
    return CSNN_OK;
}
