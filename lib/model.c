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
    {"small-csnn",
     "# A compact CSNN (7,607 parameters) for the same 48x48 grayscale, 7-class\n"
     "# input: trains in a minute or two; the main job's model for the built-in\n"
     "# synthetic faces.\n"
     "input 1x48x48\n"
     "steps 4\n"
     "classes 7\n"
     "static: conv 8 k=3 p=1; bn\n"
     "if\n"
     "maxpool 2\n"
     "conv 16 k=3 p=1\n"
     "bn\n"
     "if\n"
     "maxpool 2\n"
     "conv 16 k=3 p=1\n"
     "bn\n"
     "if\n"
     "maxpool 2\n"
     "flatten\n"
     "linear 7\n"
     "lif\n"},
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
    return csnn__error(CSNN_ERR_NOT_FOUND,
                       "unknown preset '%.64s' (known: fer-csnn, fer-cnn, small-csnn)", name);
}

/* ------------------------------------------------------------------------ */
/* Building                                                                  */
/* ------------------------------------------------------------------------ */

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
/* CSNN_DISABLE: a comma-separated list of levers of the execution plan to
 * switch off ("fusion", "sparse", "bnfold", "pack", "temporal";
 * docs/PERFORMANCE.md). */
static unsigned disabled_levers(void)
{
    const char *env = getenv("CSNN_DISABLE");
    unsigned flags = 0;
    if (!env) return 0;
    if (strstr(env, "fusion")) flags |= CSNN__NO_FUSION;
    if (strstr(env, "sparse")) flags |= CSNN__NO_SPARSE;
    if (strstr(env, "bnfold")) flags |= CSNN__NO_BNFOLD;
    if (strstr(env, "pack")) flags |= CSNN__NO_PACK;
    if (strstr(env, "temporal")) flags |= CSNN__NO_TEMPORAL;
    return flags;
}

void csnn__model_set_disabled(csnn_model *m, unsigned flags)
{
    csnn__model_free_runtime(m);
    csnn__model_drop_packs(m);
    m->disabled = flags;
    csnn__model_plan(m);
}

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

csnn_status csnn__model_alloc(csnn_model *m, size_t bytes, void **out, const char *what)
{
    csnn_status st = m->ops->alloc(m->dev, bytes ? bytes : 64, out);
    if (st != CSNN_OK) return csnn__error_prefix(st, "model: allocating %s", what);
    return CSNN_OK;
}

void csnn__model_free(csnn_model *m, void *p)
{
    if (p) m->ops->free(m->dev, p);
}

static const size_t arena_fields[4] = {offsetof(model_tensor, data), offsetof(model_tensor, grad),
                                       offsetof(model_tensor, opt_m),
                                       offsetof(model_tensor, opt_v)};

/* Records arena `which` (0 parameters, 1 gradients, 2 and 3 optimiser
 * state; NULL clears) and points each PARAM tensor into it, in order. */
static void arena_assign(csnn_model *m, int which, float *base)
{
    m->arenas[which] = base;
    int64_t off = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        model_tensor *t = &m->tensors[i];
        if (t->kind != CSNN_TENSOR_PARAM) continue;
        *(float **)((char *)t + arena_fields[which]) = base ? base + off : NULL;
        off += (t->numel + 15) & ~15;
    }
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
                /* csnn_rng_uniform(seed, stream, e), four values per Philox block */
                for (int64_t e = 0; e < t->numel; e += 4) {
                    uint32_t ctr[4] = {(uint32_t)(e >> 2), (uint32_t)((uint64_t)e >> 34),
                                       (uint32_t)ids[k], 0};
                    csnn_philox4x32(ctr, seed);
                    for (int64_t j = 0; j < 4 && e + j < t->numel; j++) {
                        double u = (float)(ctr[j] >> 8) * (1.0f / 16777216.0f);
                        host[e + j] = (float)(bound * (2.0 * u - 1.0));
                    }
                }
            }
            st = m->ops->upload(m->dev, t->data, host, (size_t)t->numel * sizeof(float));
        }
        l->num_batches_tracked = 0;
    }
    free(host);
    return st;
}

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
    if (m->spec.file_values > 0) {
        int64_t need = 0;
        for (int i = 0; i < m->n_tensors; i++) need += m->tensors[i].numel;
        if (need > m->spec.file_values) {
            st = csnn__error(CSNN_ERR_FORMAT,
                             "the model's spec needs %lld tensor values but the file holds %lld",
                             (long long)need, (long long)m->spec.file_values);
            goto fail;
        }
    }
    m->disabled = disabled_levers();
    csnn__model_plan(m);

    /* parameters: one arena; buffers: one allocation each */
    int64_t arena = param_arena_numel(m);
    void *p;
    if ((st = csnn__model_alloc(m, (size_t)arena * sizeof(float), &p, "parameters")) != CSNN_OK)
        goto fail;
    if ((st = m->ops->fill(m->dev, p, 0.0f, arena)) != CSNN_OK) {
        csnn__model_free(m, p);
        goto fail;
    }
    arena_assign(m, 0, p);
    for (int i = 0; i < m->n_tensors && st == CSNN_OK; i++) {
        model_tensor *t = &m->tensors[i];
        if (t->kind == CSNN_TENSOR_BUFFER)
            st = csnn__model_alloc(m, (size_t)t->numel * sizeof(float), (void **)&t->data, t->name);
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
    csnn__model_free_runtime(m);
    for (int i = 0; i < m->n_layers && m->layers; i++) {
        csnn__model_free(m, m->layers[i].fold_w);
        csnn__model_free(m, m->layers[i].fold_b);
    }
    csnn__model_drop_packs(m);
    if (m->tensors) {
        csnn__model_free(m, m->arenas[0]);
        csnn__model_free(m, m->arenas[1]);
        free(m->grad_proven);
        for (int i = 0; i < m->n_tensors; i++)
            if (m->tensors[i].kind == CSNN_TENSOR_BUFFER) csnn__model_free(m, m->tensors[i].data);
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
    if (!m->grad_proven) {
        m->grad_proven = csnn__calloc_array((size_t)(m->n_tensors > 0 ? m->n_tensors : 1), 1,
                                            "gradient flags");
        if (!m->grad_proven) return CSNN_ERR_OUT_OF_MEMORY;
    }
    void *p;
    CSNN_TRY(csnn__model_alloc(m, (size_t)arena * sizeof(float), &p, "gradients"));
    csnn_status st = m->ops->fill(m->dev, p, 0.0f, arena);
    if (st != CSNN_OK) {
        csnn__model_free(m, p);
        return st;
    }
    arena_assign(m, 1, p);
    m->has_grads = true;
    return CSNN_OK;
}

int64_t csnn__model_arena_numel(const csnn_model *m)
{
    return param_arena_numel(m);
}

float *csnn__model_arena(const csnn_model *m, int which)
{
    return m->arenas[which];
}

void csnn__model_set_opt_arenas(csnn_model *m, float *state_m, float *state_v)
{
    arena_assign(m, 2, state_m);
    arena_assign(m, 3, state_v);
}

int csnn__model_find_tensor(const csnn_model *m, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return i;
    return -1;
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
    csnn_model_info v;
    memset(&v, 0, sizeof v);
    v.in_channels = m->spec.in_c;
    v.in_height = m->spec.in_h;
    v.in_width = m->spec.in_w;
    v.num_classes = m->spec.classes;
    v.time_steps = m->spec.steps;
    v.num_layers = m->n_layers;
    v.spiking_output = m->layers[m->n_layers - 1].s.type == LAYER_NEURON;
    v.num_params = m->num_params;
    v.num_tensors = m->n_tensors;
    csnn__copy_out(info, &v, sizeof v);
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
    v.name = t->name;
    v.kind = t->kind;
    v.ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++) v.shape[d] = t->shape[d];
    v.numel = t->numel;
    csnn__copy_out(info, &v, sizeof v);
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
    const size_t len = strlen(t->name), vlen = strlen("running_var");
    if (t->kind == CSNN_TENSOR_BUFFER && len >= vlen && !strcmp(t->name + len - vlen, "running_var"))
        for (size_t i = 0; i < n; i++)
            if (src[i] < 0)
                return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                                   "csnn_model_set_tensor: %s[%zu] = %g: a variance is not negative",
                                   name, i, (double)src[i]);
    if (t->kind == CSNN_TENSOR_COUNTER) {
        if (src[0] < 0 || src[0] != floorf(src[0]))
            return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                               "csnn_model_set_tensor: counter %s must be a whole number >= 0",
                               name);
        *t->counter = (int64_t)src[0];
        return CSNN_OK;
    }
    m->param_version++;
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

void csnn_layer_time_init(csnn_layer_time *t)
{
    if (!t) return;
    memset(t, 0, sizeof *t);
    t->size = sizeof *t;
}

csnn_status csnn_model_set_layer_timing(csnn_model *m, int enable)
{
    CSNN_ARG_NOT_NULL(m);
    m->layer_timing = enable != 0;
    if (enable)
        for (int i = 0; i < m->n_layers; i++) {
            layer *l = &m->layers[i];
            l->time_fwd = l->time_bwd = 0.0;
            l->calls_fwd = l->calls_bwd = 0;
        }
    return CSNN_OK;
}

csnn_status csnn_model_layer_time(const csnn_model *m, int32_t index, csnn_layer_time *out)
{
    CSNN_ARG_NOT_NULL(m);
    CSNN_ARG_NOT_NULL(out);
    CSNN_TRY(csnn__check_struct(out, offsetof(csnn_layer_time, backward_calls) + sizeof(int64_t),
                                sizeof *out, "csnn_layer_time"));
    if (index < 0 || index >= m->n_layers)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "csnn_model_layer_time: layer %d of a model with %d layers", index,
                           m->n_layers);
    const layer *l = &m->layers[index];
    csnn_layer_time v;
    memset(&v, 0, sizeof v);
    v.name = l->s.name;
    v.kind = csnn__layer_keyword(&l->s);
    v.forward_s = l->time_fwd;
    v.backward_s = l->time_bwd;
    v.forward_calls = l->calls_fwd;
    v.backward_calls = l->calls_bwd;
    csnn__copy_out(out, &v, sizeof v);
    return CSNN_OK;
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
        int32_t steps = (csnn__layer_static(m, i) || T == 1) ? 0 : T;
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
    const int64_t per = m->layers[0].in_numel;
    for (size_t i = 0; i < n * (size_t)per; i++)
        if (!isfinite(images[i]))
            return csnn__error(CSNN_ERR_NUMERIC,
                               "csnn_model_predict: image %zu has a non-finite pixel at %zu",
                               i / (size_t)per, i % (size_t)per);
    int32_t chunk = m->cap_batch > PREDICT_CHUNK ? m->cap_batch : PREDICT_CHUNK;
    if ((size_t)chunk > n) chunk = (int32_t)n;
    CSNN_TRY(csnn__model_reserve(m, chunk, false));
    for (size_t done = 0; done < n;) {
        int32_t b = (int32_t)((n - done) < (size_t)chunk ? (n - done) : (size_t)chunk);
        CSNN_TRY(m->ops->upload(m->dev, m->input, images + done * (size_t)per,
                                (size_t)b * (size_t)per * sizeof(float)));
        CSNN_TRY(csnn__model_forward(m, b, false, 0, 0, NULL));
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
