/* evaluate.c - inference over a dataset: loss, accuracy, confusion matrix,
 * per-class precision/recall/F1 and per-layer firing rates. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"
#include "trainer.h"

struct csnn_metrics {
    int32_t k;
    char **names;     /* [k], the model's class names */
    int64_t n;
    double loss, accuracy;
    int64_t *confusion; /* [k, k] */
    int32_t n_rates;
    char (*rate_names)[CSNN_NAME_MAX];
    double *rates;
};

csnn_status csnn__check_dataset_shape(const csnn_model *m, const csnn_dataset *ds)
{
    if (m->spec.in_c != 1 || ds->height != m->spec.in_h || ds->width != m->spec.in_w)
        return csnn__error(CSNN_ERR_SHAPE,
                           "the dataset's images are 1x%dx%d, the model expects %dx%dx%d (load "
                           "the dataset at the model's size)",
                           ds->height, ds->width, m->spec.in_c, m->spec.in_h, m->spec.in_w);
    if (ds->n_classes > m->spec.classes)
        return csnn__error(CSNN_ERR_SHAPE, "the dataset has %d classes, the model %d",
                           ds->n_classes, m->spec.classes);
    return CSNN_OK;
}

csnn_status csnn__class_map(const csnn_model *m, const csnn_dataset *ds, int32_t *map)
{
    for (int32_t c = 0; c < ds->n_classes; c++) {
        map[c] = -1;
        for (int32_t k = 0; k < m->spec.classes; k++)
            if (strcmp(ds->class_names[c], m->class_names[k]) == 0) map[c] = k;
        if (map[c] < 0) {
            char known[512] = "";
            for (int32_t k = 0; k < m->spec.classes && strlen(known) < 400; k++) {
                strcat(known, k ? ", " : "");
                strncat(known, m->class_names[k], 64);
            }
            return csnn__error(CSNN_ERR_NOT_FOUND,
                               "the dataset's class '%s' is not one of the model's classes (%s)",
                               ds->class_names[c], known);
        }
    }
    return CSNN_OK;
}

void csnn_metrics_destroy(csnn_metrics *x)
{
    if (!x) return;
    if (x->names)
        for (int32_t k = 0; k < x->k; k++) free(x->names[k]);
    free(x->names);
    free(x->confusion);
    free(x->rate_names);
    free(x->rates);
    free(x);
}

static csnn_status metrics_alloc(const csnn_model *m, csnn_metrics **out)
{
    csnn_metrics *x = csnn__calloc_array(1, sizeof *x, "metrics");
    if (!x) return CSNN_ERR_OUT_OF_MEMORY;
    x->k = m->spec.classes;
    for (int i = 0; i < m->n_layers; i++) x->n_rates += m->layers[i].s.type == LAYER_NEURON;
    x->names = csnn__calloc_array((size_t)x->k, sizeof(char *), "metrics");
    x->confusion = csnn__calloc_array((size_t)x->k * (size_t)x->k, sizeof(int64_t), "metrics");
    x->rate_names = csnn__calloc_array((size_t)x->n_rates + 1, sizeof *x->rate_names, "metrics");
    x->rates = csnn__calloc_array((size_t)x->n_rates + 1, sizeof(double), "metrics");
    bool ok = x->names && x->confusion && x->rate_names && x->rates;
    for (int32_t k = 0; ok && k < x->k; k++) ok = (x->names[k] = csnn__strdup(m->class_names[k]));
    if (!ok) {
        csnn_metrics_destroy(x);
        return CSNN_ERR_OUT_OF_MEMORY;
    }
    int r = 0;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].s.type == LAYER_NEURON)
            snprintf(x->rate_names[r++], CSNN_NAME_MAX, "%s", m->layers[i].s.name);
    *out = x;
    return CSNN_OK;
}

csnn_status csnn__evaluate(csnn_model *m, const csnn_dataset *ds, int loss_kind, float smoothing,
                           int32_t batch, csnn_metrics **out)
{
    *out = NULL;
    CSNN_TRY(csnn__check_dataset_shape(m, ds));
    if (ds->n == 0) return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "evaluate: the dataset is empty");
    int32_t *map = csnn__alloc_array((size_t)ds->n_classes, sizeof(int32_t), "class map");
    if (!map) return CSNN_ERR_OUT_OF_MEMORY;
    csnn_metrics *x = NULL;
    csnn_batcher *b = NULL;
    float *host = NULL;
    double *rate_sums = NULL;
    csnn_status st = csnn__class_map(m, ds, map);
    if (st == CSNN_OK) st = metrics_alloc(m, &x);
    if (batch <= 0) batch = m->cap_batch > 0 ? m->cap_batch : 16;
    if (st == CSNN_OK) st = csnn__model_reserve(m, batch, false);
    if (st == CSNN_OK) st = csnn__batcher_create(ds, batch, false, NULL, 0, map, &b);
    if (st == CSNN_OK) st = csnn__batcher_start_epoch(b, 0);
    const int64_t K = m->spec.classes;
    if (st == CSNN_OK) {
        host = csnn__alloc_array((size_t)batch * (size_t)K, sizeof(float), "evaluate");
        rate_sums = csnn__calloc_array((size_t)x->n_rates + 1, sizeof(double), "evaluate");
        if (!host || !rate_sums) st = CSNN_ERR_OUT_OF_MEMORY;
    }
    double loss_sum = 0, rate_count = 0;
    int64_t correct = 0;
    while (st == CSNN_OK) {
        const float *images;
        const int32_t *labels;
        int32_t n;
        if ((st = csnn__batcher_next(b, &images, &labels, &n)) != CSNN_OK || n == 0) break;
        size_t per = (size_t)m->layers[0].in_numel;
        if ((st = m->ops->upload(m->dev, m->input, images, (size_t)n * per * sizeof(float))))
            break;
        if ((st = m->ops->upload(m->dev, m->labels, labels, (size_t)n * sizeof(int32_t)))) break;
        if ((st = csnn__model_forward(m, n, false, 0, 0, rate_sums))) break;
        csnn_loss_desc ld = {loss_kind, n, (int32_t)K, smoothing};
        if ((st = m->ops->loss(m->dev, &ld, m->output, m->labels, m->loss, NULL))) break;
        float loss;
        if ((st = m->ops->download(m->dev, &loss, m->loss, sizeof loss))) break;
        if ((st = m->ops->download(m->dev, host, m->output, (size_t)n * (size_t)K * sizeof(float))))
            break;
        loss_sum += (double)loss * n;
        for (int32_t i = 0; i < n; i++) {
            const float *o = host + (size_t)i * (size_t)K;
            int32_t best = 0;
            for (int32_t k = 1; k < K; k++)
                if (o[k] > o[best]) best = k;
            x->confusion[(size_t)labels[i] * (size_t)K + (size_t)best]++;
            correct += best == labels[i];
        }
        x->n += n;
        rate_count += n;
    }
    if (st == CSNN_OK) {
        x->loss = loss_sum / (double)x->n;
        x->accuracy = (double)correct / (double)x->n;
        for (int r = 0; r < x->n_rates; r++) x->rates[r] = rate_sums[r] / rate_count;
        *out = x;
        x = NULL;
    }
    csnn__batcher_destroy(b);
    csnn_metrics_destroy(x);
    free(host);
    free(rate_sums);
    free(map);
    return st;
}

csnn_status csnn_model_evaluate(csnn_model *m, const csnn_dataset *ds, csnn_metrics **out)
{
    CSNN_ARG_NOT_NULL(out);
    *out = NULL;
    CSNN_ARG_NOT_NULL(m);
    CSNN_ARG_NOT_NULL(ds);
    int kind = m->layers[m->n_layers - 1].s.type == LAYER_NEURON ? CSNN_LOSS_MSE : CSNN_LOSS_CE;
    return csnn__evaluate(m, ds, kind, 0.1f, 0, out);
}

csnn_status csnn_trainer_evaluate(csnn_trainer *t, const csnn_dataset *ds, csnn_metrics **out)
{
    CSNN_ARG_NOT_NULL(out);
    *out = NULL;
    CSNN_ARG_NOT_NULL(t);
    CSNN_ARG_NOT_NULL(ds);
    return csnn__evaluate(t->model, ds, csnn__trainer_loss_kind(t), (float)t->s.label_smoothing,
                          t->s.batch_size, out);
}

csnn_status csnn_metrics_overall(const csnn_metrics *x, double *loss, double *accuracy,
                                 int64_t *samples, int32_t *num_classes)
{
    CSNN_ARG_NOT_NULL(x);
    if (loss) *loss = x->loss;
    if (accuracy) *accuracy = x->accuracy;
    if (samples) *samples = x->n;
    if (num_classes) *num_classes = x->k;
    return CSNN_OK;
}

csnn_status csnn_metrics_confusion(const csnn_metrics *x, int64_t *dst, size_t cap)
{
    CSNN_ARG_NOT_NULL(x);
    CSNN_ARG_NOT_NULL(dst);
    size_t need = (size_t)x->k * (size_t)x->k;
    if (cap < need)
        return csnn__error(CSNN_ERR_SHAPE, "csnn_metrics_confusion: %zu elements needed, %zu given",
                           need, cap);
    memcpy(dst, x->confusion, need * sizeof(int64_t));
    return CSNN_OK;
}

void csnn_class_metrics_init(csnn_class_metrics *c)
{
    if (!c) return;
    memset(c, 0, sizeof *c);
    c->size = sizeof *c;
}

csnn_status csnn_metrics_class(const csnn_metrics *x, int32_t index, csnn_class_metrics *out)
{
    CSNN_ARG_NOT_NULL(x);
    CSNN_ARG_NOT_NULL(out);
    CSNN_TRY(csnn__check_struct(out, offsetof(csnn_class_metrics, support) + sizeof(int64_t),
                                sizeof *out, "csnn_class_metrics"));
    if (index < 0 || index >= x->k)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "csnn_metrics_class: index %d outside 0..%d",
                           index, x->k - 1);
    int64_t tp = x->confusion[(size_t)index * (size_t)x->k + (size_t)index], support = 0, predicted = 0;
    for (int32_t j = 0; j < x->k; j++) {
        support += x->confusion[(size_t)index * (size_t)x->k + (size_t)j];
        predicted += x->confusion[(size_t)j * (size_t)x->k + (size_t)index];
    }
    csnn_class_metrics c;
    memset(&c, 0, sizeof c);
    c.name = x->names[index];
    c.precision = predicted ? (double)tp / (double)predicted : 0.0;
    c.recall = support ? (double)tp / (double)support : 0.0;
    c.f1 = c.precision + c.recall > 0 ? 2 * c.precision * c.recall / (c.precision + c.recall) : 0.0;
    c.support = support;
    csnn__copy_out(out, &c, sizeof c);
    return CSNN_OK;
}

csnn_status csnn_metrics_num_rates(const csnn_metrics *x, int32_t *n)
{
    CSNN_ARG_NOT_NULL(x);
    CSNN_ARG_NOT_NULL(n);
    *n = x->n_rates;
    return CSNN_OK;
}

csnn_status csnn_metrics_rate(const csnn_metrics *x, int32_t index, const char **layer_name,
                              double *rate)
{
    CSNN_ARG_NOT_NULL(x);
    if (index < 0 || index >= x->n_rates)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "csnn_metrics_rate: index %d outside 0..%d",
                           index, x->n_rates - 1);
    if (layer_name) *layer_name = x->rate_names[index];
    if (rate) *rate = x->rates[index];
    return CSNN_OK;
}
