/* model.c - the layer graph: building from a spec, PyTorch-style
 * initialisation, device buffers, forward and backward through time, and the
 * public model API (presets, info, tensors, summary, prediction). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

/* ------------------------------------------------------------------------ */
/* Presets                                                                   */
/* ------------------------------------------------------------------------ */

static const struct {
    const char *name;
    const char *spec;
} presets[] = {
    {"fer-csnn",
     "# The seed's CSNN for FER2013 (48x48 grayscale, 7 classes), T = 4.\n"
     "input 1x48x48\n"
     "steps 4\n"
     "classes 7\n"
     "# computed once per image, repeated over the time steps\n"
     "static: conv 128 k=3 p=1; bn\n"
     "if\n"
     "maxpool 2\n"
     "conv 128 k=3 p=1\n"
     "bn\n"
     "if\n"
     "maxpool 2\n"
     "flatten\n"
     "dropout 0.5\n"
     "linear 1152\n"
     "lif tau=2\n"
     "dropout 0.5\n"
     "linear 128\n"
     "lif tau=2\n"
     "linear 7\n"
     "lif tau=2\n"},
    {"fer-cnn",
     "# The ANN twin of fer-csnn: ReLU in place of every spiking neuron but the\n"
     "# last, whose outputs are the logits; T = 1.\n"
     "input 1x48x48\n"
     "steps 1\n"
     "classes 7\n"
     "static: conv 128 k=3 p=1; bn\n"
     "relu\n"
     "maxpool 2\n"
     "conv 128 k=3 p=1\n"
     "bn\n"
     "relu\n"
     "maxpool 2\n"
     "flatten\n"
     "dropout 0.5\n"
     "linear 1152\n"
     "relu\n"
     "dropout 0.5\n"
     "linear 128\n"
     "relu\n"
     "linear 7\n"},
};

const char *csnn_preset_name(size_t index)
{
    return index < sizeof presets / sizeof presets[0] ? presets[index].name : NULL;
}

csnn_status csnn_preset_spec(const char *name, const char **spec)
{
    CSNN_ARG_NOT_NULL(name);
    CSNN_ARG_NOT_NULL(spec);
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (strcmp(presets[i].name, name) == 0) {
            *spec = presets[i].spec;
            return CSNN_OK;
        }
    return csnn__error(CSNN_ERR_NOT_FOUND, "unknown preset '%.64s' (known: fer-csnn, fer-cnn)",
                       name);
}

/* ------------------------------------------------------------------------ */
/* Building                                                                  */
/* ------------------------------------------------------------------------ */

static bool layer_static(const csnn_model *m, int i)
{
    return i < m->n_static;
}

int64_t csnn__model_layer_rows(const csnn_model *m, int i, int32_t n)
{
    return layer_static(m, i) ? (int64_t)n : (int64_t)m->spec.steps * n;
}

/* True when the first dynamic layer reads the static output directly,
 * as a neuron whose input is the same at every step. */
static bool boundary_shared(const csnn_model *m)
{
    return m->n_static < m->n_layers && m->layers[m->n_static].s.type == LAYER_NEURON;
}

/* The static block's output (or the network input when there is none). */
static float *static_output(const csnn_model *m)
{
    return m->n_static == 0 ? m->input : m->layers[m->n_static - 1].y;
}

const float *csnn__model_layer_input(const csnn_model *m, int i)
{
    if (i == 0 && m->n_static > 0) return m->input;
    if (i == m->n_static) return boundary_shared(m) ? static_output(m) : m->repeat;
    return m->layers[i - 1].y;
}

static csnn_status add_tensor(csnn_model *m, int *index, const layer *l, const char *suffix,
                              csnn_tensor_kind kind, int ndim, const int64_t *shape)
{
    model_tensor *t = &m->tensors[m->n_tensors];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s.%s", l->s.name, suffix);
    t->kind = kind;
    t->ndim = ndim;
    t->numel = 1;
    for (int d = 0; d < ndim; d++) {
        t->shape[d] = shape[d];
        t->numel *= shape[d];
    }
    if (kind == CSNN_TENSOR_PARAM) m->num_params += t->numel;
    *index = m->n_tensors++;
    return CSNN_OK;
}

/* Shapes, tensors and FLOP counts of every layer. */
static csnn_status plan_layers(csnn_model *m)
{
    const model_spec *sp = &m->spec;
    shape3 s = {sp->in_c, sp->in_h, sp->in_w, false};
    m->n_static = 0;
    while (m->n_static < sp->n_layers && sp->layers[m->n_static].is_static) m->n_static++;
    m->first_param_layer = -1;
    for (int i = 0; i < m->n_layers; i++) {
        layer *l = &m->layers[i];
        l->s = sp->layers[i];
        l->ishape = s;
        l->t_weight = l->t_bias = l->t_mean = l->t_var = l->t_count = -1;
        switch (l->s.type) {
        case LAYER_CONV: {
            s.c = l->s.out;
            s.h = (l->ishape.h + 2 * l->s.pad - l->s.k) / l->s.stride + 1;
            s.w = (l->ishape.w + 2 * l->s.pad - l->s.k) / l->s.stride + 1;
            int64_t shape[4] = {l->s.out, l->ishape.c, l->s.k, l->s.k};
            CSNN_TRY(add_tensor(m, &l->t_weight, l, "weight", CSNN_TENSOR_PARAM, 4, shape));
            if (l->s.bias) CSNN_TRY(add_tensor(m, &l->t_bias, l, "bias", CSNN_TENSOR_PARAM, 1, shape));
            l->flops = (int64_t)s.c * s.h * s.w * l->ishape.c * l->s.k * l->s.k;
            break;
        }
        case LAYER_LINEAR: {
            s.c = l->s.out;
            int64_t shape[2] = {l->s.out, l->ishape.c};
            CSNN_TRY(add_tensor(m, &l->t_weight, l, "weight", CSNN_TENSOR_PARAM, 2, shape));
            if (l->s.bias) CSNN_TRY(add_tensor(m, &l->t_bias, l, "bias", CSNN_TENSOR_PARAM, 1, shape));
            l->flops = (int64_t)l->ishape.c * l->s.out;
            break;
        }
        case LAYER_BN: {
            int64_t shape[1] = {s.c};
            CSNN_TRY(add_tensor(m, &l->t_weight, l, "weight", CSNN_TENSOR_PARAM, 1, shape));
            CSNN_TRY(add_tensor(m, &l->t_bias, l, "bias", CSNN_TENSOR_PARAM, 1, shape));
            CSNN_TRY(add_tensor(m, &l->t_mean, l, "running_mean", CSNN_TENSOR_BUFFER, 1, shape));
            CSNN_TRY(add_tensor(m, &l->t_var, l, "running_var", CSNN_TENSOR_BUFFER, 1, shape));
            int64_t one[1] = {1};
            CSNN_TRY(add_tensor(m, &l->t_count, l, "num_batches_tracked", CSNN_TENSOR_COUNTER, 1,
                                one));
            m->tensors[l->t_count].counter = &l->num_batches_tracked;
            break;
        }
        case LAYER_MAXPOOL:
            s.h = (s.h - l->s.k) / l->s.stride + 1;
            s.w = (s.w - l->s.k) / l->s.stride + 1;
            break;
        case LAYER_FLATTEN:
            s.c = s.c * s.h * s.w;
            s.h = s.w = 1;
            s.flat = true;
            break;
        default: break;
        }
        l->oshape = s;
        l->in_numel = (int64_t)l->ishape.c * l->ishape.h * l->ishape.w;
        l->out_numel = (int64_t)s.c * s.h * s.w;
        if (m->first_param_layer < 0 && l->t_weight >= 0) m->first_param_layer = i;
    }
    if (m->num_params > CSNN_MAX_PARAMS)
        return csnn__error(CSNN_ERR_LIMIT, "model: %lld parameters exceed the limit of %lld",
                           (long long)m->num_params, (long long)CSNN_MAX_PARAMS);
    return CSNN_OK;
}

/* Parameters live in one arena (and so do their gradients and the
 * optimiser's state) so that an optimiser step is one call. Each tensor
 * starts on a 16-float boundary; the padding stays zero. */
static int64_t param_arena_numel(const csnn_model *m)
{
    int64_t total = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].kind == CSNN_TENSOR_PARAM) total += (m->tensors[i].numel + 15) & ~15;
    return total;
}

static csnn_status device_alloc(csnn_model *m, size_t bytes, void **out, const char *what)
{
    csnn_status st = m->ops->alloc(m->dev, bytes ? bytes : 64, out);
    if (st != CSNN_OK) return csnn__error_prefix(st, "model: allocating %s", what);
    return CSNN_OK;
}

static void device_free(csnn_model *m, void *p)
{
    if (p) m->ops->free(m->dev, p);
}

/* Each PARAM tensor's offset in the arena, in order. */
static void arena_assign(csnn_model *m, float *base, size_t field_offset)
{
    int64_t off = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        model_tensor *t = &m->tensors[i];
        if (t->kind != CSNN_TENSOR_PARAM) continue;
        *(float **)((char *)t + field_offset) = base + off;
        off += (t->numel + 15) & ~15;
    }
}

static float *arena_base(const csnn_model *m, size_t field_offset)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].kind == CSNN_TENSOR_PARAM)
            return *(float *const *)((const char *)&m->tensors[i] + field_offset);
    return NULL;
}

/* PyTorch's default initialisation: weights and biases of conv and linear
 * layers uniform in +-1/sqrt(fan_in) (kaiming_uniform with a = sqrt(5)); BN
 * weight 1, bias 0, running mean 0, running var 1. Drawn from the
 * counter-based generator: stream = tensor index. */
static csnn_status init_params(csnn_model *m, uint64_t seed)
{
    int64_t max_numel = 1;
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].numel > max_numel) max_numel = m->tensors[i].numel;
    float *host = csnn__alloc_array((size_t)max_numel, sizeof(float), "model initialisation");
    if (!host) return CSNN_ERR_OUT_OF_MEMORY;
    csnn_status st = CSNN_OK;
    for (int li = 0; li < m->n_layers && st == CSNN_OK; li++) {
        layer *l = &m->layers[li];
        int ids[4] = {l->t_weight, l->t_bias, l->t_mean, l->t_var};
        for (int k = 0; k < 4 && st == CSNN_OK; k++) {
            if (ids[k] < 0) continue;
            model_tensor *t = &m->tensors[ids[k]];
            if (l->s.type == LAYER_BN) {
                float v = (k == 0 || k == 3) ? 1.0f : 0.0f;
                for (int64_t e = 0; e < t->numel; e++) host[e] = v;
            } else {
                int64_t fan_in = m->tensors[l->t_weight].numel / m->tensors[l->t_weight].shape[0];
                double bound = 1.0 / sqrt((double)fan_in);
                for (int64_t e = 0; e < t->numel; e++) {
                    double u = csnn_rng_uniform(seed, (uint64_t)ids[k], (uint64_t)e);
                    host[e] = (float)(bound * (2.0 * u - 1.0));
                }
            }
            st = m->ops->upload(m->dev, t->data, host, (size_t)t->numel * sizeof(float));
        }
        l->num_batches_tracked = 0;
    }
    free(host);
    return st;
}

static void model_free_runtime(csnn_model *m);

csnn_status csnn__model_build(csnn_context *ctx, model_spec *spec, uint64_t seed,
                              csnn_model **out)
{
    *out = NULL;
    csnn_model *m = csnn__calloc_array(1, sizeof *m, "csnn_model");
    if (!m) {
        csnn__spec_free(spec);
        return CSNN_ERR_OUT_OF_MEMORY;
    }
    m->ctx = ctx;
    m->ops = ctx->ops;
    m->dev = ctx->dev;
    m->spec = *spec;
    memset(spec, 0, sizeof *spec);
    m->n_layers = m->spec.n_layers;
    csnn_status st = CSNN_OK;
    m->spec_text = csnn__spec_format(&m->spec);
    m->layers = csnn__calloc_array((size_t)m->n_layers, sizeof *m->layers, "model layers");
    m->tensors = csnn__calloc_array((size_t)m->n_layers * 5, sizeof *m->tensors, "model tensors");
    m->class_names = csnn__calloc_array((size_t)m->spec.classes, sizeof(char *), "class names");
    if (!m->spec_text || !m->layers || !m->tensors || !m->class_names) {
        st = CSNN_ERR_OUT_OF_MEMORY;
        goto fail;
    }
    for (int c = 0; c < m->spec.classes; c++) {
        char num[16];
        snprintf(num, sizeof num, "%d", c);
        if (!(m->class_names[c] = csnn__strdup(num))) {
            st = CSNN_ERR_OUT_OF_MEMORY;
            goto fail;
        }
    }
    if ((st = plan_layers(m)) != CSNN_OK) goto fail;

    /* parameters: one arena; buffers: one allocation each */
    int64_t arena = param_arena_numel(m);
    void *p;
    if ((st = device_alloc(m, (size_t)arena * sizeof(float), &p, "parameters")) != CSNN_OK)
        goto fail;
    if ((st = m->ops->fill(m->dev, p, 0.0f, arena)) != CSNN_OK) {
        device_free(m, p);
        goto fail;
    }
    arena_assign(m, p, offsetof(model_tensor, data));
    for (int i = 0; i < m->n_tensors && st == CSNN_OK; i++) {
        model_tensor *t = &m->tensors[i];
        if (t->kind == CSNN_TENSOR_BUFFER)
            st = device_alloc(m, (size_t)t->numel * sizeof(float), (void **)&t->data, t->name);
    }
    if (st != CSNN_OK) goto fail;
    if ((st = init_params(m, seed)) != CSNN_OK) goto fail;
    *out = m;
    return CSNN_OK;
fail:
    csnn_model_destroy(m);
    return st;
}

csnn_status csnn_model_create_from_spec(csnn_context *ctx, const char *spec_text, uint64_t seed,
                                        csnn_model **out)
{
    CSNN_ARG_NOT_NULL(out);
    *out = NULL;
    CSNN_ARG_NOT_NULL(ctx);
    CSNN_ARG_NOT_NULL(spec_text);
    model_spec spec;
    CSNN_TRY(csnn__spec_parse(spec_text, &spec));
    return csnn__model_build(ctx, &spec, seed, out);
}

csnn_status csnn_model_create_preset(csnn_context *ctx, const char *name, uint64_t seed,
                                     csnn_model **out)
{
    CSNN_ARG_NOT_NULL(out);
    *out = NULL;
    CSNN_ARG_NOT_NULL(ctx);
    const char *spec;
    CSNN_TRY(csnn_preset_spec(name, &spec));
    return csnn_model_create_from_spec(ctx, spec, seed, out);
}

void csnn_model_destroy(csnn_model *m)
{
    if (!m) return;
    model_free_runtime(m);
    if (m->tensors) {
        device_free(m, arena_base(m, offsetof(model_tensor, data)));
        device_free(m, arena_base(m, offsetof(model_tensor, grad)));
        for (int i = 0; i < m->n_tensors; i++)
            if (m->tensors[i].kind == CSNN_TENSOR_BUFFER) device_free(m, m->tensors[i].data);
    }
    if (m->class_names)
        for (int c = 0; c < m->spec.classes; c++) free(m->class_names[c]);
    free(m->class_names);
    free(m->tensors);
    free(m->layers);
    free(m->spec_text);
    csnn__spec_free(&m->spec);
    free(m);
}

csnn_status csnn__model_alloc_grads(csnn_model *m)
{
    if (m->has_grads) return CSNN_OK;
    int64_t arena = param_arena_numel(m);
    void *p;
    CSNN_TRY(device_alloc(m, (size_t)arena * sizeof(float), &p, "gradients"));
    csnn_status st = m->ops->fill(m->dev, p, 0.0f, arena);
    if (st != CSNN_OK) {
        device_free(m, p);
        return st;
    }
    arena_assign(m, p, offsetof(model_tensor, grad));
    m->has_grads = true;
    return CSNN_OK;
}

int64_t csnn__model_arena_numel(const csnn_model *m)
{
    return param_arena_numel(m);
}

float *csnn__model_arena(const csnn_model *m, int which)
{
    static const size_t offsets[4] = {offsetof(model_tensor, data), offsetof(model_tensor, grad),
                                      offsetof(model_tensor, opt_m), offsetof(model_tensor, opt_v)};
    return arena_base(m, offsets[which]);
}

void csnn__model_set_opt_arenas(csnn_model *m, float *state_m, float *state_v)
{
    if (state_m) arena_assign(m, state_m, offsetof(model_tensor, opt_m));
    if (state_v) arena_assign(m, state_v, offsetof(model_tensor, opt_v));
    if (!state_m || !state_v)
        for (int i = 0; i < m->n_tensors; i++) {
            if (!state_m) m->tensors[i].opt_m = NULL;
            if (!state_v) m->tensors[i].opt_v = NULL;
        }
}

int csnn__model_find_tensor(const csnn_model *m, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return i;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Run-time buffers                                                          */
/* ------------------------------------------------------------------------ */

static void model_free_runtime(csnn_model *m)
{
    for (int i = 0; i < m->n_layers && m->layers; i++) {
        layer *l = &m->layers[i];
        if (!l->y_alias) device_free(m, l->y);
        device_free(m, l->h);
        device_free(m, l->argmax);
        device_free(m, l->save_mean);
        device_free(m, l->save_invstd);
        device_free(m, l->mask);
        l->y = l->h = l->save_mean = l->save_invstd = l->mask = NULL;
        l->argmax = NULL;
        l->y_alias = false;
    }
    device_free(m, m->input);
    if (m->repeat_owned) device_free(m, m->repeat);
    m->repeat_owned = false;
    device_free(m, m->output);
    device_free(m, m->grad_out);
    device_free(m, m->gbuf[0]);
    device_free(m, m->gbuf[1]);
    device_free(m, m->labels);
    device_free(m, m->loss);
    device_free(m, m->workspace);
    m->input = m->repeat = m->output = m->grad_out = m->gbuf[0] = m->gbuf[1] = NULL;
    m->labels = NULL;
    m->loss = NULL;
    m->workspace = NULL;
    m->workspace_bytes = 0;
    m->cap_batch = 0;
    m->cap_train = false;
}

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
    d.x_shared = (i == m->n_static && boundary_shared(m)) ? 1 : 0;
    d.m = (int64_t)n * m->layers[i].out_numel;
    return d;
}

static bool layer_aliases(const layer *l, bool train)
{
    return l->s.type == LAYER_FLATTEN || (l->s.type == LAYER_DROPOUT && !train);
}

csnn_status csnn__model_reserve(csnn_model *m, int32_t n, bool train)
{
    if (n <= 0) return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "model: batch size %d", n);
    if (n <= m->cap_batch && (!train || m->cap_train)) return CSNN_OK;
    int32_t cap = n > m->cap_batch ? n : m->cap_batch;
    bool want_train = train || m->cap_train;
    model_free_runtime(m);
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
        if ((st = device_alloc(m, bytes_, (void **)&(ptr), what)) != CSNN_OK) goto fail;           \
    } while (0)

    const layer *first = &m->layers[0];
    ALLOC(m->input, (int64_t)cap * first->in_numel, sizeof(float), "input batch");
    int64_t max_grad = (int64_t)T * cap * K;
    size_t ws = 0;
    if (m->n_static == 0 && !boundary_shared(m)) {
        /* no static block: the input itself is repeated over T */
        if (T == 1) {
            m->repeat = m->input;
        } else {
            ALLOC(m->repeat, (int64_t)T * cap * first->in_numel, sizeof(float), "repeat buffer");
            m->repeat_owned = true;
        }
    }
    for (int i = 0; i < m->n_layers; i++) {
        layer *l = &m->layers[i];
        int64_t rows = csnn__model_layer_rows(m, i, cap);
        int64_t out_elems = rows * l->out_numel;
        if (layer_aliases(l, want_train)) {
            l->y = (float *)csnn__model_layer_input(m, i);
            l->y_alias = true;
        } else {
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
            if (want_train) ALLOC(l->h, out_elems, sizeof(float), "membrane potentials");
            break;
        case LAYER_DROPOUT:
            if (want_train) ALLOC(l->mask, (int64_t)cap * l->in_numel, sizeof(float), "dropout mask");
            break;
        default: break;
        }
        if (want_train && i >= m->first_param_layer) {
            int64_t g = rows * (l->in_numel > l->out_numel ? l->in_numel : l->out_numel);
            if (g > max_grad) max_grad = g;
        }
        /* the static output repeated over T feeds a non-neuron first dynamic layer */
        if (i == m->n_static - 1 && m->n_static < m->n_layers && !boundary_shared(m)) {
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
        ALLOC(m->grad_out, cap * K, sizeof(float), "output gradient");
        ALLOC(m->gbuf[0], max_grad, sizeof(float), "gradients");
        ALLOC(m->gbuf[1], max_grad, sizeof(float), "gradients");
    }
    if (ws) {
        if ((st = device_alloc(m, ws, &m->workspace, "workspace")) != CSNN_OK) goto fail;
        m->workspace_bytes = ws;
    }
#undef ALLOC
    m->cap_batch = cap;
    m->cap_train = want_train;
    return CSNN_OK;
fail:
    model_free_runtime(m);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Forward                                                                   */
/* ------------------------------------------------------------------------ */

#define OPS_TRY(expr, l)                                                                           \
    do {                                                                                           \
        csnn_status st_ = (expr);                                                                  \
        if (st_ != CSNN_OK) return csnn__error_prefix(st_, "layer %s", (l)->s.name);               \
    } while (0)

static float *tensor_data(const csnn_model *m, int index)
{
    return index >= 0 ? m->tensors[index].data : NULL;
}

static float *tensor_grad(const csnn_model *m, int index)
{
    return index >= 0 ? m->tensors[index].grad : NULL;
}

csnn_status csnn__model_forward(csnn_model *m, int32_t n, bool train, uint64_t dropout_seed,
                                uint64_t dropout_stream)
{
    const csnn_backend_ops *o = m->ops;
    void *dev = m->dev;
    const int32_t T = m->spec.steps;
    for (int i = 0; i < m->n_layers; i++) {
        layer *l = &m->layers[i];
        int64_t rows = csnn__model_layer_rows(m, i, n);
        if (i == m->n_static && m->repeat_owned)
            OPS_TRY(o->time_repeat(dev, T, (int64_t)n * l->in_numel, static_output(m), m->repeat),
                    l);
        const float *x = csnn__model_layer_input(m, i);
        switch (l->s.type) {
        case LAYER_CONV: {
            csnn_conv2d_desc d = conv_desc(l, rows);
            OPS_TRY(o->conv2d_forward(dev, &d, x, tensor_data(m, l->t_weight),
                                      tensor_data(m, l->t_bias), l->y, m->workspace),
                    l);
            break;
        }
        case LAYER_LINEAR:
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
            csnn_neuron_desc d = neuron_desc(m, i, n);
            OPS_TRY(o->neuron_forward(dev, &d, x, l->y, train ? l->h : NULL), l);
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
    }
    /* the output: mean over T of the last layer (firing rates for spikes) */
    const layer *last = &m->layers[m->n_layers - 1];
    int64_t nk = (int64_t)n * m->spec.classes;
    if (m->n_layers == m->n_static) {
        OPS_TRY(o->copy(dev, m->output, last->y, (size_t)nk * sizeof(float)), last);
    } else {
        OPS_TRY(o->time_mean(dev, T, nk, last->y, m->output), last);
    }
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Backward                                                                  */
/* ------------------------------------------------------------------------ */

csnn_status csnn__model_backward(csnn_model *m, int32_t n)
{
    if (!m->cap_train || !m->has_grads || n > m->cap_batch)
        return csnn__error(CSNN_ERR_STATE, "model: backward without a training forward");
    const csnn_backend_ops *o = m->ops;
    void *dev = m->dev;
    const int32_t T = m->spec.steps;
    const int64_t nk = (int64_t)n * m->spec.classes;
    int cur = 0;
    float *g = m->gbuf[cur];
    const layer *last = &m->layers[m->n_layers - 1];
    if (m->n_layers == m->n_static)
        OPS_TRY(o->copy(dev, g, m->grad_out, (size_t)nk * sizeof(float)), last);
    else
        OPS_TRY(o->time_mean_backward(dev, T, nk, m->grad_out, g), last);

    for (int i = m->n_layers - 1; i >= m->first_param_layer; i--) {
        layer *l = &m->layers[i];
        int64_t rows = csnn__model_layer_rows(m, i, n);
        bool need_dx = i > m->first_param_layer;
        const float *x = csnn__model_layer_input(m, i);
        float *dx = m->gbuf[1 - cur];
        bool swap = true;
        switch (l->s.type) {
        case LAYER_CONV: {
            csnn_conv2d_desc d = conv_desc(l, rows);
            OPS_TRY(o->conv2d_backward(dev, &d, x, tensor_data(m, l->t_weight), g,
                                       need_dx ? dx : NULL, tensor_grad(m, l->t_weight),
                                       tensor_grad(m, l->t_bias), m->workspace),
                    l);
            break;
        }
        case LAYER_LINEAR:
            OPS_TRY(o->gemm(dev, 1, 0, l->s.out, l->ishape.c, rows, 1.0f, g, l->s.out, x, l->ishape.c,
                            0.0f, tensor_grad(m, l->t_weight), l->ishape.c),
                    l);
            if (l->t_bias >= 0)
                OPS_TRY(o->bias_grad(dev, g, tensor_grad(m, l->t_bias), rows, l->s.out, 1), l);
            if (need_dx)
                OPS_TRY(o->gemm(dev, 0, 0, rows, l->ishape.c, l->s.out, 1.0f, g, l->s.out,
                                tensor_data(m, l->t_weight), l->ishape.c, 0.0f, dx, l->ishape.c),
                        l);
            break;
        case LAYER_BN: {
            csnn_bn_desc d = bn_desc(l, rows);
            OPS_TRY(o->bn_backward(dev, &d, x, g, tensor_data(m, l->t_weight), l->save_mean,
                                   l->save_invstd, dx, tensor_grad(m, l->t_weight),
                                   tensor_grad(m, l->t_bias)),
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
            OPS_TRY(o->neuron_backward(dev, &d, g, l->h, dx), l);
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
        if (i == m->n_static && need_dx && !boundary_shared(m) && T > 1) {
            OPS_TRY(o->time_sum(dev, T, (int64_t)n * l->in_numel, g, m->gbuf[1 - cur]), l);
            cur = 1 - cur;
            g = m->gbuf[cur];
        }
    }
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Public queries                                                            */
/* ------------------------------------------------------------------------ */

void csnn_model_info_init(csnn_model_info *info)
{
    if (!info) return;
    memset(info, 0, sizeof *info);
    info->size = sizeof *info;
}

csnn_status csnn_model_get_info(const csnn_model *m, csnn_model_info *info)
{
    CSNN_ARG_NOT_NULL(m);
    CSNN_ARG_NOT_NULL(info);
    CSNN_TRY(csnn__check_struct(info, offsetof(csnn_model_info, num_tensors) + sizeof(int64_t),
                                sizeof *info, "csnn_model_info"));
    size_t size = info->size < sizeof *info ? info->size : sizeof *info;
    csnn_model_info v;
    memset(&v, 0, sizeof v);
    v.size = size;
    v.in_channels = m->spec.in_c;
    v.in_height = m->spec.in_h;
    v.in_width = m->spec.in_w;
    v.num_classes = m->spec.classes;
    v.time_steps = m->spec.steps;
    v.num_layers = m->n_layers;
    v.spiking_output = m->layers[m->n_layers - 1].s.type == LAYER_NEURON;
    v.num_params = m->num_params;
    v.num_tensors = m->n_tensors;
    memcpy(info, &v, size);
    return CSNN_OK;
}

csnn_status csnn_model_spec(const csnn_model *m, const char **spec)
{
    CSNN_ARG_NOT_NULL(m);
    CSNN_ARG_NOT_NULL(spec);
    *spec = m->spec_text;
    return CSNN_OK;
}

csnn_status csnn_model_class_name(const csnn_model *m, int32_t index, const char **name)
{
    CSNN_ARG_NOT_NULL(m);
    CSNN_ARG_NOT_NULL(name);
    if (index < 0 || index >= m->spec.classes)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "csnn_model_class_name: index %d outside 0..%d", index,
                           m->spec.classes - 1);
    *name = m->class_names[index];
    return CSNN_OK;
}

csnn_status csnn_model_set_class_names(csnn_model *m, const char *const *names, size_t n)
{
    CSNN_ARG_NOT_NULL(m);
    CSNN_ARG_NOT_NULL(names);
    if (n != (size_t)m->spec.classes)
        return csnn__error(CSNN_ERR_SHAPE,
                           "csnn_model_set_class_names: %zu names for a model of %d classes", n,
                           m->spec.classes);
    for (size_t i = 0; i < n; i++) {
        if (!names[i])
            return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                               "csnn_model_set_class_names: name %zu is NULL", i);
        CSNN_TRY(csnn__check_class_name(names[i]));
        for (size_t j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                                   "csnn_model_set_class_names: '%s' appears twice", names[i]);
    }
    char **copy = csnn__calloc_array(n, sizeof(char *), "class names");
    if (!copy) return CSNN_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; i < n; i++) {
        if (!(copy[i] = csnn__strdup(names[i]))) {
            for (size_t j = 0; j < i; j++) free(copy[j]);
            free(copy);
            return CSNN_ERR_OUT_OF_MEMORY;
        }
    }
    for (size_t i = 0; i < n; i++) free(m->class_names[i]);
    free(m->class_names);
    m->class_names = copy;
    return CSNN_OK;
}

void csnn_tensor_info_init(csnn_tensor_info *info)
{
    if (!info) return;
    memset(info, 0, sizeof *info);
    info->size = sizeof *info;
}

csnn_status csnn_model_tensor_info(const csnn_model *m, size_t index, csnn_tensor_info *info)
{
    CSNN_ARG_NOT_NULL(m);
    CSNN_ARG_NOT_NULL(info);
    CSNN_TRY(csnn__check_struct(info, offsetof(csnn_tensor_info, numel) + sizeof(int64_t),
                                sizeof *info, "csnn_tensor_info"));
    if (index >= (size_t)m->n_tensors)
        return csnn__error(CSNN_ERR_NOT_FOUND, "csnn_model_tensor_info: index %zu, model has %d",
                           index, m->n_tensors);
    const model_tensor *t = &m->tensors[index];
    csnn_tensor_info v;
    memset(&v, 0, sizeof v);
    v.size = info->size < sizeof v ? info->size : sizeof v;
    v.name = t->name;
    v.kind = t->kind;
    v.ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++) v.shape[d] = t->shape[d];
    v.numel = t->numel;
    memcpy(info, &v, v.size);
    return CSNN_OK;
}

static csnn_status lookup_tensor(const csnn_model *m, const char *name, size_t n, const char *fn,
                                 const model_tensor **out)
{
    int i = csnn__model_find_tensor(m, name);
    if (i < 0)
        return csnn__error(CSNN_ERR_NOT_FOUND, "%s: the model has no tensor '%.80s'", fn, name);
    *out = &m->tensors[i];
    if ((int64_t)n != (*out)->numel)
        return csnn__error(CSNN_ERR_SHAPE, "%s: tensor '%s' has %lld elements, not %zu", fn, name,
                           (long long)(*out)->numel, n);
    return CSNN_OK;
}

csnn_status csnn_model_get_tensor(csnn_model *m, const char *name, float *dst, size_t n)
{
    CSNN_ARG_NOT_NULL(m);
    CSNN_ARG_NOT_NULL(name);
    CSNN_ARG_NOT_NULL(dst);
    const model_tensor *t = NULL;
    CSNN_TRY(lookup_tensor(m, name, n, "csnn_model_get_tensor", &t));
    if (t->kind == CSNN_TENSOR_COUNTER) {
        dst[0] = (float)*t->counter;
        return CSNN_OK;
    }
    return m->ops->download(m->dev, dst, t->data, n * sizeof(float));
}

csnn_status csnn_model_set_tensor(csnn_model *m, const char *name, const float *src, size_t n)
{
    CSNN_ARG_NOT_NULL(m);
    CSNN_ARG_NOT_NULL(name);
    CSNN_ARG_NOT_NULL(src);
    const model_tensor *t = NULL;
    CSNN_TRY(lookup_tensor(m, name, n, "csnn_model_set_tensor", &t));
    for (size_t i = 0; i < n; i++)
        if (!isfinite(src[i]))
            return csnn__error(CSNN_ERR_NUMERIC, "csnn_model_set_tensor: %s[%zu] is not finite",
                               name, i);
    if (t->kind == CSNN_TENSOR_COUNTER) {
        if (src[0] < 0 || src[0] != floorf(src[0]))
            return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                               "csnn_model_set_tensor: counter %s must be a whole number >= 0",
                               name);
        *t->counter = (int64_t)src[0];
        return CSNN_OK;
    }
    return m->ops->upload(m->dev, t->data, src, n * sizeof(float));
}

/* ------------------------------------------------------------------------ */
/* Summary                                                                   */
/* ------------------------------------------------------------------------ */

static const char *type_title(const layer *l)
{
    switch (l->s.type) {
    case LAYER_CONV: return "Conv2d";
    case LAYER_BN: return l->ishape.flat ? "BatchNorm1d" : "BatchNorm2d";
    case LAYER_MAXPOOL: return "MaxPool2d";
    case LAYER_NEURON: return l->s.neuron.kind == CSNN_NEURON_LIF ? "LIFNode" : "IFNode";
    case LAYER_RELU: return "ReLU";
    case LAYER_FLATTEN: return "Flatten";
    case LAYER_DROPOUT: return "Dropout";
    case LAYER_LINEAR: return "Linear";
    }
    return "?";
}

static void format_shape(char *buf, size_t cap, int32_t steps, int32_t batch, shape3 s)
{
    char tpart[24] = "";
    if (steps > 0) snprintf(tpart, sizeof tpart, "%d, ", steps);
    if (s.flat)
        snprintf(buf, cap, "[%s%d, %d]", tpart, batch, s.c);
    else
        snprintf(buf, cap, "[%s%d, %d, %d, %d]", tpart, batch, s.c, s.h, s.w);
}

static void format_count(char *buf, size_t cap, int64_t v)
{
    char digits[32];
    snprintf(digits, sizeof digits, "%lld", (long long)v);
    size_t nd = strlen(digits), o = 0;
    for (size_t i = 0; i < nd && o + 2 < cap; i++) {
        if (i > 0 && (nd - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
}

typedef struct out_buf {
    char *buf;
    size_t cap, len;
} out_buf;

static void ob_printf(out_buf *b, const char *fmt, ...) CSNN_PRINTF(2, 3);
static void ob_printf(out_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = b->len < b->cap ? b->cap - b->len : 0;
    int n = vsnprintf(room ? b->buf + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0) b->len += (size_t)n;
}

csnn_status csnn_model_summary(const csnn_model *m, int32_t batch, char *buf, size_t cap,
                               size_t *needed)
{
    CSNN_ARG_NOT_NULL(m);
    if (!buf && cap > 0) return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "csnn_model_summary: buf is NULL");
    if (batch < 1 || batch > (1 << 24))
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "csnn_model_summary: batch %d", batch);
    out_buf b = {buf, cap, 0};
    const int32_t T = m->spec.steps;
    const int w_name = 28, w_shape = 24;
    const char *rule = "=========================================================================="
                       "=================";
    ob_printf(&b, "%-*s %-*s %-*s %12s\n%s\n", w_name, "Layer (type)", w_shape, "Input Shape",
              w_shape, "Output Shape", "Param #", rule);
    int64_t buffers = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        char title[64], in[48], outs[48], params[32];
        snprintf(title, sizeof title, "%s (%s)", l->s.name, type_title(l));
        int32_t steps = (layer_static(m, i) || T == 1) ? 0 : T;
        shape3 ins = l->ishape;
        format_shape(in, sizeof in, steps, batch, ins);
        format_shape(outs, sizeof outs, steps, batch, l->oshape);
        int64_t np = 0;
        int ids[2] = {l->t_weight, l->t_bias};
        for (int k = 0; k < 2; k++)
            if (ids[k] >= 0) np += m->tensors[ids[k]].numel;
        if (l->t_mean >= 0) buffers += m->tensors[l->t_mean].numel + m->tensors[l->t_var].numel;
        if (np)
            format_count(params, sizeof params, np);
        else
            snprintf(params, sizeof params, "--");
        ob_printf(&b, "%-*s %-*s %-*s %12s\n", w_name, title, w_shape, in, w_shape, outs, params);
    }
    char total[32], nb[32];
    format_count(total, sizeof total, m->num_params);
    format_count(nb, sizeof nb, buffers);
    ob_printf(&b, "%s\nTotal params: %s\nTrainable params: %s\n", rule, total, total);
    ob_printf(&b, "Non-trainable buffers (BN running statistics): %s\n", nb);
    ob_printf(&b, "Params size (MB): %.2f\n", (double)m->num_params * 4.0 / 1e6);
    ob_printf(&b, "Time steps: %d", T);
    if (m->n_static > 0) {
        ob_printf(&b, "; static block (once per image%s):", T > 1 ? ", repeated over T" : "");
        for (int i = 0; i < m->n_static; i++) ob_printf(&b, " %s", m->layers[i].s.name);
    }
    const layer *last = &m->layers[m->n_layers - 1];
    if (last->s.type == LAYER_NEURON)
        ob_printf(&b, "\nOutput: firing rate of %s (mean of its spikes over T)\n", last->s.name);
    else
        ob_printf(&b, "\nOutput: values of %s%s\n", last->s.name, T > 1 ? " (mean over T)" : "");
    if (needed) *needed = b.len + 1;
    if (cap > 0 && b.len >= cap) buf[cap - 1] = '\0';
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Inference                                                                 */
/* ------------------------------------------------------------------------ */

/** Images per forward pass in inference: the training batch when buffers for
 *  it exist, else this many. */
#define PREDICT_CHUNK 16

csnn_status csnn_model_predict(csnn_model *m, const float *images, size_t n, float *scores,
                               size_t scores_cap, int32_t *labels)
{
    CSNN_ARG_NOT_NULL(m);
    CSNN_ARG_NOT_NULL(images);
    CSNN_ARG_NOT_NULL(scores);
    if (n == 0) return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "csnn_model_predict: n is 0");
    const int64_t K = m->spec.classes;
    if (n > ((size_t)1 << 40) || scores_cap < n * (size_t)K)
        return csnn__error(CSNN_ERR_SHAPE,
                           "csnn_model_predict: scores holds %zu floats, %zu images x %lld classes "
                           "need %zu",
                           scores_cap, n, (long long)K, n * (size_t)K);
    int32_t chunk = m->cap_batch > PREDICT_CHUNK ? m->cap_batch : PREDICT_CHUNK;
    if ((size_t)chunk > n) chunk = (int32_t)n;
    CSNN_TRY(csnn__model_reserve(m, chunk, false));
    const int64_t per = m->layers[0].in_numel;
    for (size_t done = 0; done < n;) {
        int32_t b = (int32_t)((n - done) < (size_t)chunk ? (n - done) : (size_t)chunk);
        CSNN_TRY(m->ops->upload(m->dev, m->input, images + done * (size_t)per,
                                (size_t)b * (size_t)per * sizeof(float)));
        CSNN_TRY(csnn__model_forward(m, b, false, 0, 0));
        float *out = scores + done * (size_t)K;
        CSNN_TRY(m->ops->download(m->dev, out, m->output, (size_t)b * (size_t)K * sizeof(float)));
        if (labels)
            for (int32_t i = 0; i < b; i++) {
                int32_t best = 0;
                for (int64_t k = 1; k < K; k++)
                    if (out[i * K + k] > out[i * K + best]) best = (int32_t)k;
                labels[done + (size_t)i] = best;
            }
        done += (size_t)b;
    }
    return CSNN_OK;
}
