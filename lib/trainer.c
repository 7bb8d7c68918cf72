/* trainer.c - settings, the training step (forward, loss, backward,
 * optimiser) and trainer checkpoints. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer.h"

/* ------------------------------------------------------------------------ */
/* Settings                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct param_def {
    csnn_train_param id;
    const char *key; /* checkpoint record name */
    double def, lo, hi;
    bool lo_open, integral;
    size_t offset; /* in train_settings */
    int kind;      /* 0 double, 1 int, 2 uint64 */
} param_def;

#define D(field) offsetof(train_settings, field), 0
#define I(field) offsetof(train_settings, field), 1

static const param_def params[] = {
    {CSNN_TRAIN_OPTIMIZER, "optimizer", CSNN_OPTIMIZER_ADAM, 0, 2, false, true, I(optimizer)},
    {CSNN_TRAIN_LEARNING_RATE, "lr", 1e-3, 0, 1e3, true, false, D(lr)},
    {CSNN_TRAIN_BETA1, "beta1", 0.9, 0, 1, false, false, D(beta1)},
    {CSNN_TRAIN_BETA2, "beta2", 0.999, 0, 1, false, false, D(beta2)},
    {CSNN_TRAIN_EPS, "eps", 1e-8, 0, 1, true, false, D(eps)},
    {CSNN_TRAIN_WEIGHT_DECAY, "weight_decay", 0, 0, 1e3, false, false, D(weight_decay)},
    {CSNN_TRAIN_MOMENTUM, "momentum", 0.9, 0, 1, false, false, D(momentum)},
    {CSNN_TRAIN_DAMPENING, "dampening", 0, 0, 1, false, false, D(dampening)},
    {CSNN_TRAIN_NESTEROV, "nesterov", 0, 0, 1, false, true, I(nesterov)},
    {CSNN_TRAIN_LOSS, "loss", -1, 0, 1, false, true, I(loss)},
    {CSNN_TRAIN_LABEL_SMOOTHING, "label_smoothing", 0.1, 0, 1, false, false, D(label_smoothing)},
    {CSNN_TRAIN_SEED, "seed", 0, 0, 9007199254740992.0, false, true,
     offsetof(train_settings, seed), 2},
    {CSNN_TRAIN_BATCH_SIZE, "batch_size", 16, 1, 65536, false, true, I(batch_size)},
    {CSNN_TRAIN_EPOCHS, "epochs", 100, 1, 1e6, false, true, I(epochs)},
    {CSNN_TRAIN_PATIENCE, "patience", 10, 0, 1e6, false, true, I(patience)},
    {CSNN_TRAIN_MAX_SECONDS, "max_seconds", 0, 0, 1e9, false, false, D(max_seconds)},
    {CSNN_TRAIN_LR_SCHEDULE, "lr_schedule", CSNN_LR_CONSTANT, 0, 1, false, true, I(lr_schedule)},
    {CSNN_TRAIN_MIN_LR, "min_lr", 0, 0, 1e3, false, false, D(min_lr)},
    {CSNN_TRAIN_AUG_HFLIP, "aug_hflip", 0.5, 0, 1, false, false, D(aug_hflip)},
    {CSNN_TRAIN_AUG_VFLIP, "aug_vflip", 0, 0, 1, false, false, D(aug_vflip)},
    {CSNN_TRAIN_AUG_ROTATE, "aug_rotate", 10, 0, 180, false, false, D(aug_rotate)},
    {CSNN_TRAIN_AUG_CROP_PAD, "aug_crop_pad", 4, 0, 64, false, true, I(aug_crop_pad)},
    {CSNN_TRAIN_AUG_BRIGHTNESS, "aug_brightness", 0, 0, 1, false, false, D(aug_brightness)},
    {CSNN_TRAIN_AUG_CONTRAST, "aug_contrast", 0, 0, 1, false, false, D(aug_contrast)},
};
#undef D
#undef I

static const param_def *find_param(csnn_train_param id)
{
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++)
        if (params[i].id == id) return &params[i];
    return NULL;
}

static double get_value(const train_settings *s, const param_def *p)
{
    const char *base = (const char *)s + p->offset;
    if (p->kind == 0) return *(const double *)base;
    if (p->kind == 1) return *(const int *)base;
    return (double)*(const uint64_t *)base;
}

static void put_value(train_settings *s, const param_def *p, double v)
{
    char *base = (char *)s + p->offset;
    if (p->kind == 0)
        *(double *)base = v;
    else if (p->kind == 1)
        *(int *)base = (int)v;
    else
        *(uint64_t *)base = (uint64_t)v;
}

static csnn_status check_value(const param_def *p, double v)
{
    if (!isfinite(v) || v < p->lo || v > p->hi || (p->lo_open && v == p->lo) ||
        (p->id == CSNN_TRAIN_BETA1 && v >= 1) || (p->id == CSNN_TRAIN_BETA2 && v >= 1) ||
        (p->id == CSNN_TRAIN_LABEL_SMOOTHING && v >= 1))
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "training setting %s: %g is out of range",
                           p->key, v);
    if (p->integral && v != floor(v))
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "training setting %s: %g must be a whole number", p->key, v);
    return CSNN_OK;
}

csnn_status csnn_train_param_bounds(csnn_train_param param, double *lo, double *hi)
{
    CSNN_ARG_NOT_NULL(lo);
    CSNN_ARG_NOT_NULL(hi);
    const param_def *p = find_param(param);
    if (!p)
        return csnn__error(CSNN_ERR_UNSUPPORTED, "unknown training setting %d", (int)param);
    *lo = p->lo;
    *hi = p->hi;
    return CSNN_OK;
}

csnn_status csnn_trainer_set_param(csnn_trainer *t, csnn_train_param param, double value)
{
    CSNN_ARG_NOT_NULL(t);
    const param_def *p = find_param(param);
    if (!p)
        return csnn__error(CSNN_ERR_UNSUPPORTED, "unknown training setting %d", (int)param);
    CSNN_TRY(check_value(p, value));
    put_value(&t->s, p, value);
    if (param == CSNN_TRAIN_LEARNING_RATE) t->current_lr = value;
    return CSNN_OK;
}

int csnn__trainer_loss_kind(const csnn_trainer *t)
{
    if (t->s.loss >= 0) return t->s.loss;
    const csnn_model *m = t->model;
    return m->layers[m->n_layers - 1].s.type == LAYER_NEURON ? CSNN_LOSS_MSE : CSNN_LOSS_CE;
}

csnn_status csnn_trainer_get_param(const csnn_trainer *t, csnn_train_param param, double *value)
{
    CSNN_ARG_NOT_NULL(t);
    CSNN_ARG_NOT_NULL(value);
    const param_def *p = find_param(param);
    if (!p)
        return csnn__error(CSNN_ERR_UNSUPPORTED, "unknown training setting %d", (int)param);
    *value = param == CSNN_TRAIN_LOSS ? csnn__trainer_loss_kind(t) : get_value(&t->s, p);
    return CSNN_OK;
}

/* One history record in a checkpoint: little-endian, fixed layout. */
#define HISTORY_RECORD 72

static void put_le(uint8_t *b, uint64_t v)
{
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

static void put_f64(uint8_t *b, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    put_le(b, u);
}

static double get_f64(const uint8_t *b)
{
    uint64_t u = get_le(b);
    double v;
    memcpy(&v, &u, 8);
    return v;
}

static void add_int(ckpt_kv *kv, int *n, const char *key, int64_t v)
{
    memset(&kv[*n], 0, sizeof kv[*n]);
    snprintf(kv[*n].key, sizeof kv[*n].key, "%s", key);
    kv[*n].type = 1;
    kv[*n].i = v;
    (*n)++;
}

int csnn__trainer_kv(csnn_trainer *t, ckpt_kv *kv)
{
    int n = 0;
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
        memset(&kv[n], 0, sizeof kv[n]);
        snprintf(kv[n].key, sizeof kv[n].key, "%s", params[i].key);
        kv[n].type = 0;
        kv[n].f = get_value(&t->s, &params[i]);
        n++;
    }
    add_int(kv, &n, "step", t->step);
    add_int(kv, &n, "fit_next_epoch", t->fit.next_epoch);
    add_int(kv, &n, "fit_best_epoch", t->fit.best_epoch);
    add_int(kv, &n, "fit_bad_epochs", t->fit.bad_epochs);
    memset(&kv[n], 0, sizeof kv[n]);
    snprintf(kv[n].key, sizeof kv[n].key, "fit_best_accuracy");
    kv[n].f = t->fit.best_accuracy;
    n++;
    /* the history, serialised into the trainer's scratch buffer */
    size_t bytes = t->fit.n_history * HISTORY_RECORD;
    uint8_t *blob = realloc(t->history_blob, bytes ? bytes : 1);
    if (blob) {
        t->history_blob = blob;
        for (size_t e = 0; e < t->fit.n_history; e++) {
            const csnn_epoch_metrics *h = &t->fit.history[e];
            uint8_t *r = blob + e * HISTORY_RECORD;
            put_le(r, (uint64_t)(int64_t)h->epoch);
            put_le(r + 8, (uint64_t)(int64_t)h->improved);
            put_f64(r + 16, h->train_loss);
            put_f64(r + 24, h->train_accuracy);
            put_f64(r + 32, h->val_loss);
            put_f64(r + 40, h->val_accuracy);
            put_f64(r + 48, h->learning_rate);
            put_f64(r + 56, h->seconds);
            put_le(r + 64, (uint64_t)h->samples);
        }
        memset(&kv[n], 0, sizeof kv[n]);
        snprintf(kv[n].key, sizeof kv[n].key, "fit_history");
        kv[n].type = 2;
        kv[n].bytes = blob;
        kv[n].n_bytes = bytes;
        n++;
    }
    return n;
}

csnn_status csnn__trainer_apply_kv(csnn_trainer *t, const ckpt_kv *kv, int n)
{
    train_settings s = t->s;
    int64_t step = t->step;
    fit_state f = {0};
    f.best_accuracy = -1;
    const ckpt_kv *history = NULL;
    for (int k = 0; k < n; k++) {
        const ckpt_kv *r = &kv[k];
        if (r->type == 1) {
            if (r->i < 0 || r->i > INT32_MAX)
                return csnn__error(CSNN_ERR_FORMAT, "checkpoint: record %s = %lld is out of range",
                                   r->key, (long long)r->i);
            if (strcmp(r->key, "step") == 0) step = r->i;
            else if (strcmp(r->key, "fit_next_epoch") == 0) f.next_epoch = (int32_t)r->i;
            else if (strcmp(r->key, "fit_best_epoch") == 0) f.best_epoch = (int32_t)r->i;
            else if (strcmp(r->key, "fit_bad_epochs") == 0) f.bad_epochs = (int32_t)r->i;
            continue;
        }
        if (r->type == 2 && strcmp(r->key, "fit_history") == 0) {
            history = r;
            continue;
        }
        if (r->type != 0) continue;
        if (strcmp(r->key, "fit_best_accuracy") == 0) {
            /* -1 before the first validation, else an accuracy */
            if (!(r->f == -1 || (r->f >= 0 && r->f <= 1)))
                return csnn__error(CSNN_ERR_FORMAT,
                                   "checkpoint: record fit_best_accuracy = %g is out of range",
                                   r->f);
            f.best_accuracy = r->f;
            continue;
        }
        for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
            if (strcmp(r->key, params[i].key) != 0) continue;
            /* loss -1 (automatic) is stored as such */
            if (!(params[i].id == CSNN_TRAIN_LOSS && r->f == -1) &&
                check_value(&params[i], r->f) != CSNN_OK)
                return csnn__error_prefix(CSNN_ERR_FORMAT, "checkpoint");
            put_value(&s, &params[i], r->f);
        }
    }
    if (history) {
        if (history->n_bytes % HISTORY_RECORD != 0 ||
            history->n_bytes / HISTORY_RECORD != (size_t)f.next_epoch)
            return csnn__error(CSNN_ERR_FORMAT, "checkpoint: the training history is malformed");
        f.n_history = f.cap_history = history->n_bytes / HISTORY_RECORD;
        f.history = csnn__calloc_array(f.n_history ? f.n_history : 1, sizeof *f.history,
                                       "training history");
        if (!f.history) return CSNN_ERR_OUT_OF_MEMORY;
        for (size_t e = 0; e < f.n_history; e++) {
            const uint8_t *b = history->bytes + e * HISTORY_RECORD;
            csnn_epoch_metrics *h = &f.history[e];
            h->size = sizeof *h;
            h->epoch = (int32_t)get_le(b);
            h->improved = (int32_t)get_le(b + 8);
            h->train_loss = get_f64(b + 16);
            h->train_accuracy = get_f64(b + 24);
            h->val_loss = get_f64(b + 32);
            h->val_accuracy = get_f64(b + 40);
            h->learning_rate = get_f64(b + 48);
            h->seconds = get_f64(b + 56);
            h->samples = (int64_t)get_le(b + 64);
            /* epochs are recorded in order, each once */
            if (get_le(b) != (uint64_t)e || get_le(b + 8) > 1 || h->samples < 0) {
                free(f.history);
                return csnn__error(CSNN_ERR_FORMAT,
                                   "checkpoint: the training history is malformed (epoch %zu)",
                                   e + 1);
            }
        }
    } else if (f.next_epoch != 0) {
        return csnn__error(CSNN_ERR_FORMAT, "checkpoint: the training history is missing");
    }
    free(t->fit.history);
    t->s = s;
    t->step = step;
    t->current_lr = s.lr;
    t->fit = f;
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                 */
/* ------------------------------------------------------------------------ */

csnn_status csnn_trainer_create(csnn_model *m, csnn_trainer **out)
{
    CSNN_ARG_NOT_NULL(out);
    *out = NULL;
    CSNN_ARG_NOT_NULL(m);
    if (m->trainer_attached)
        return csnn__error(CSNN_ERR_STATE, "csnn_trainer_create: the model already has a trainer");
    if (m->num_params == 0)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "csnn_trainer_create: the model has no parameters to train");
    csnn_trainer *t = csnn__calloc_array(1, sizeof *t, "csnn_trainer");
    if (!t) return CSNN_ERR_OUT_OF_MEMORY;
    t->model = m;
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++)
        put_value(&t->s, &params[i], params[i].def);
    t->current_lr = t->s.lr;
    t->fit.best_accuracy = -1;
    csnn_status st = csnn__model_alloc_grads(m);
    int64_t arena = csnn__model_arena_numel(m);
    size_t bytes = (size_t)arena * sizeof(float);
    if (st == CSNN_OK) st = m->ops->alloc(m->dev, bytes ? bytes : 64, (void **)&t->state_m);
    if (st == CSNN_OK) st = m->ops->alloc(m->dev, bytes ? bytes : 64, (void **)&t->state_v);
    if (st == CSNN_OK) st = m->ops->fill(m->dev, t->state_m, 0.0f, arena);
    if (st == CSNN_OK) st = m->ops->fill(m->dev, t->state_v, 0.0f, arena);
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].kind == CSNN_TENSOR_BUFFER) t->bn_backup_numel += m->tensors[i].numel;
    if (st == CSNN_OK && t->bn_backup_numel > 0)
        st = m->ops->alloc(m->dev, (size_t)t->bn_backup_numel * sizeof(float),
                           (void **)&t->bn_backup);
    if (st == CSNN_OK) {
        t->count_backup = csnn__calloc_array((size_t)m->n_layers, sizeof(int64_t), "trainer");
        if (!t->count_backup) st = CSNN_ERR_OUT_OF_MEMORY;
    }
    if (st != CSNN_OK) {
        csnn__error_prefix(st, "csnn_trainer_create");
        csnn_trainer_destroy(t);
        return st;
    }
    csnn__model_set_opt_arenas(m, t->state_m, t->state_v);
    m->trainer_attached = true;
    csnn__model_drop_packs(m); /* training memory is not spent on packed weights */
    *out = t;
    return CSNN_OK;
}

void csnn_trainer_destroy(csnn_trainer *t)
{
    if (!t) return;
    csnn_model *m = t->model;
    if (t->state_m && m->tensors && csnn__model_arena(m, 2) == t->state_m) {
        csnn__model_set_opt_arenas(m, NULL, NULL);
        m->trainer_attached = false;
    }
    if (t->state_m) m->ops->free(m->dev, t->state_m);
    if (t->state_v) m->ops->free(m->dev, t->state_v);
    if (t->bn_backup) m->ops->free(m->dev, t->bn_backup);
    free(t->count_backup);
    free(t->host_out);
    free(t->fit.history);
    free(t->history_blob);
    free(t);
}

csnn_status csnn_trainer_steps(const csnn_trainer *t, int64_t *steps)
{
    CSNN_ARG_NOT_NULL(t);
    CSNN_ARG_NOT_NULL(steps);
    *steps = t->step;
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* The step                                                                  */
/* ------------------------------------------------------------------------ */

/* Saves / restores the BN running statistics and counters, so that a step
 * rejected for a non-finite value leaves the model as it was. */
static csnn_status bn_state(csnn_trainer *t, bool save)
{
    csnn_model *m = t->model;
    int64_t off = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        model_tensor *mt = &m->tensors[i];
        if (mt->kind != CSNN_TENSOR_BUFFER) continue;
        size_t bytes = (size_t)mt->numel * sizeof(float);
        if (save)
            CSNN_TRY(m->ops->copy(m->dev, t->bn_backup + off, mt->data, bytes));
        else
            CSNN_TRY(m->ops->copy(m->dev, mt->data, t->bn_backup + off, bytes));
        off += mt->numel;
    }
    for (int i = 0; i < m->n_layers; i++) {
        if (save)
            t->count_backup[i] = m->layers[i].num_batches_tracked;
        else
            m->layers[i].num_batches_tracked = t->count_backup[i];
    }
    return CSNN_OK;
}

static csnn_status optimiser_step(csnn_trainer *t)
{
    csnn_model *m = t->model;
    const train_settings *s = &t->s;
    int64_t step = t->step + 1;
    csnn_optim_desc d = {
        .kind = s->optimizer,
        .nesterov = s->nesterov,
        .step = step,
        .lr = (float)t->current_lr,
        .beta1 = (float)s->beta1,
        .beta2 = (float)s->beta2,
        .eps = (float)s->eps,
        .weight_decay = (float)s->weight_decay,
        .momentum = (float)s->momentum,
        .dampening = (float)s->dampening,
    };
    /* PyTorch forms the bias corrections in double precision */
    double bc1 = 1.0 - pow(s->beta1, (double)step);
    double bc2 = 1.0 - pow(s->beta2, (double)step);
    d.step_size = (float)(t->current_lr / bc1);
    d.bias_correction2_sqrt = (float)sqrt(bc2);
    return m->ops->optim_step(m->dev, &d, csnn__model_arena_numel(m), csnn__model_arena(m, 0),
                              csnn__model_arena(m, 1), t->state_m, t->state_v);
}

csnn_status csnn__trainer_step_uploaded(csnn_trainer *t, int32_t n, const int32_t *labels,
                                        double *loss_out, int32_t *correct)
{
    csnn_model *m = t->model;
    const int64_t K = m->spec.classes;
    if (t->host_cap < n) {
        float *h = csnn__alloc_array((size_t)n * (size_t)K, sizeof(float), "trainer outputs");
        if (!h) return CSNN_ERR_OUT_OF_MEMORY;
        free(t->host_out);
        t->host_out = h;
        t->host_cap = n;
    }
    CSNN_TRY(bn_state(t, true));
    csnn_status st = csnn__model_forward(m, n, true, t->s.seed, (uint64_t)t->step, NULL);
    csnn_loss_desc ld = {
        .kind = csnn__trainer_loss_kind(t),
        .n = n,
        .k = (int32_t)K,
        .smoothing = (float)t->s.label_smoothing,
    };
    if (st == CSNN_OK) st = m->ops->loss(m->dev, &ld, m->output, m->labels, m->loss, m->grad_out);
    float loss = 0;
    if (st == CSNN_OK) st = m->ops->download(m->dev, &loss, m->loss, sizeof loss);
    if (st == CSNN_OK && !isfinite(loss))
        st = csnn__error(CSNN_ERR_NUMERIC,
                         "training step %lld: the loss is %g (learning rate too high, or NaN in "
                         "the input?); the model was left as it was before the step",
                         (long long)t->step + 1, (double)loss);
    if (st == CSNN_OK) st = csnn__model_backward(m, n);
    double bad = 0;
    if (st == CSNN_OK)
        st = csnn__model_count_nonfinite_grads(m, &bad);
    if (st == CSNN_OK && bad > 0)
        st = csnn__error(CSNN_ERR_NUMERIC,
                         "training step %lld: %.0f gradient values are not finite; the model was "
                         "left as it was before the step",
                         (long long)t->step + 1, bad);
    if (st != CSNN_OK) {
        /* keep the message of the first failure */
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", csnn_last_error_message());
        bn_state(t, false);
        return csnn__error(st, "%s", msg);
    }
    m->param_version++; /* before: a step that fails halfway has changed parameters */
    CSNN_TRY(optimiser_step(t));
    t->step++;
    CSNN_TRY(m->ops->download(m->dev, t->host_out, m->output, (size_t)n * (size_t)K * sizeof(float)));
    *loss_out = loss;
    *correct = 0;
    for (int32_t i = 0; i < n; i++) {
        const float *o = t->host_out + (size_t)i * (size_t)K;
        int32_t best = 0;
        for (int32_t k = 1; k < K; k++)
            if (o[k] > o[best]) best = k;
        *correct += best == labels[i];
    }
    return CSNN_OK;
}

void csnn_step_result_init(csnn_step_result *res)
{
    if (!res) return;
    memset(res, 0, sizeof *res);
    res->size = sizeof *res;
}

csnn_status csnn_trainer_step(csnn_trainer *t, const float *images, const int32_t *labels,
                              size_t n, csnn_step_result *result)
{
    CSNN_ARG_NOT_NULL(t);
    CSNN_ARG_NOT_NULL(images);
    CSNN_ARG_NOT_NULL(labels);
    if (result)
        CSNN_TRY(csnn__check_struct(result, offsetof(csnn_step_result, n) + sizeof(int32_t),
                                    sizeof *result, "csnn_step_result"));
    csnn_model *m = t->model;
    if (n == 0 || n > (1u << 20))
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "csnn_trainer_step: batch of %zu images", n);
    const int32_t K = m->spec.classes;
    for (size_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= K)
            return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                               "csnn_trainer_step: labels[%zu] = %d is outside 0..%d", i,
                               labels[i], K - 1);
    const size_t per = (size_t)m->layers[0].in_numel;
    for (size_t i = 0; i < n * per; i++)
        if (!isfinite(images[i]))
            return csnn__error(CSNN_ERR_NUMERIC,
                               "csnn_trainer_step: image %zu has a non-finite pixel at %zu",
                               i / per, i % per);
    CSNN_TRY(csnn__model_reserve(m, (int32_t)n, true));
    CSNN_TRY(m->ops->upload(m->dev, m->input, images, n * per * sizeof(float)));
    CSNN_TRY(m->ops->upload(m->dev, m->labels, labels, n * sizeof(int32_t)));
    double loss;
    int32_t correct;
    CSNN_TRY(csnn__trainer_step_uploaded(t, (int32_t)n, labels, &loss, &correct));
    if (result) {
        csnn_step_result r;
        memset(&r, 0, sizeof r);
        r.loss = loss;
        r.correct = correct;
        r.n = (int32_t)n;
        csnn__copy_out(result, &r, sizeof r);
    }
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Checkpoints                                                               */
/* ------------------------------------------------------------------------ */

csnn_status csnn_trainer_save_checkpoint(csnn_trainer *t, const char *path)
{
    CSNN_ARG_NOT_NULL(t);
    CSNN_ARG_NOT_NULL(path);
    ckpt_kv kv[CSNN_TRAINER_KV];
    ckpt_extra extra = {true, csnn__trainer_kv(t, kv), kv};
    return csnn__checkpoint_save(t->model, &extra, path);
}

csnn_status csnn__trainer_restore(csnn_trainer *t, const ckpt_file *f, const char *path)
{
    csnn_status st = CSNN_OK;
    if (strcmp(csnn__checkpoint_spec(f), t->model->spec_text) != 0)
        st = csnn__error(CSNN_ERR_SHAPE, "'%s' holds another model than the trainer's", path);
    else if (!csnn__checkpoint_has_optimizer(f))
        st = csnn__error(CSNN_ERR_STATE, "'%s' is a model without optimiser state", path);
    const ckpt_kv *kv = NULL;
    int n_kv = csnn__checkpoint_kv(f, &kv);
    /* apply to a copy of the trainer's state first: on error nothing changes */
    csnn_trainer copy = *t;
    copy.fit.history = NULL;
    if (st == CSNN_OK) st = csnn__trainer_apply_kv(&copy, kv, n_kv);
    if (st == CSNN_OK) st = csnn__checkpoint_apply(f, t->model, true);
    if (st == CSNN_OK) {
        free(t->fit.history);
        t->s = copy.s;
        t->step = copy.step;
        t->current_lr = copy.current_lr;
        t->fit = copy.fit;
    } else {
        free(copy.fit.history);
    }
    return st;
}

csnn_status csnn_trainer_load_checkpoint(csnn_trainer *t, const char *path)
{
    CSNN_ARG_NOT_NULL(t);
    CSNN_ARG_NOT_NULL(path);
    ckpt_file *f;
    CSNN_TRY(csnn__checkpoint_read(path, &f));
    csnn_status st = csnn__trainer_restore(t, f, path);
    csnn__checkpoint_free(f);
    return st;
}
