/* fit.c - training on datasets: epochs of augmented, shuffled batches,
 * validation, best-model and last-checkpoint files, early stopping, the
 * learning-rate schedule, time limits, progress reports and resuming. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"
#include "trainer.h"

void csnn_fit_options_init(csnn_fit_options *o)
{
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->progress_every = 1;
}

void csnn_epoch_metrics_init(csnn_epoch_metrics *m)
{
    if (!m) return;
    memset(m, 0, sizeof *m);
    m->size = sizeof *m;
}

csnn_status csnn_trainer_stop_reason(const csnn_trainer *t, int32_t *reason)
{
    CSNN_ARG_NOT_NULL(t);
    CSNN_ARG_NOT_NULL(reason);
    *reason = t->fit.stop_reason;
    return CSNN_OK;
}

csnn_status csnn_trainer_history(const csnn_trainer *t, size_t *epochs)
{
    CSNN_ARG_NOT_NULL(t);
    CSNN_ARG_NOT_NULL(epochs);
    *epochs = t->fit.n_history;
    return CSNN_OK;
}

csnn_status csnn_trainer_epoch(const csnn_trainer *t, size_t index, csnn_epoch_metrics *out)
{
    CSNN_ARG_NOT_NULL(t);
    CSNN_ARG_NOT_NULL(out);
    CSNN_TRY(csnn__check_struct(out, offsetof(csnn_epoch_metrics, samples) + sizeof(int64_t),
                                sizeof *out, "csnn_epoch_metrics"));
    if (index >= t->fit.n_history)
        return csnn__error(CSNN_ERR_NOT_FOUND, "csnn_trainer_epoch: %zu epochs recorded, not %zu",
                           t->fit.n_history, index + 1);
    csnn__copy_out(out, &t->fit.history[index], sizeof *out);
    return CSNN_OK;
}

static csnn_status history_append(fit_state *f, const csnn_epoch_metrics *m)
{
    if (f->n_history == f->cap_history) {
        size_t cap = f->cap_history ? 2 * f->cap_history : 16;
        csnn_epoch_metrics *h = realloc(f->history, cap * sizeof *h);
        if (!h) return csnn__error(CSNN_ERR_OUT_OF_MEMORY, "training history: out of memory");
        f->history = h;
        f->cap_history = cap;
    }
    f->history[f->n_history++] = *m;
    return CSNN_OK;
}

/* The learning rate of an epoch under the schedule (CosineAnnealingLR with
 * T_max = epochs, stepped once per epoch). */
static double epoch_lr(const train_settings *s, int32_t epoch)
{
    if (s->lr_schedule != CSNN_LR_COSINE) return s->lr;
    return s->min_lr + (s->lr - s->min_lr) * 0.5 * (1.0 + cos(M_PI * epoch / s->epochs));
}

/* A model whose classes still have the default names "0".."K-1" takes the
 * training set's names. */
static csnn_status adopt_class_names(csnn_model *m, const csnn_dataset *ds)
{
    for (int32_t k = 0; k < m->spec.classes; k++) {
        char num[16];
        snprintf(num, sizeof num, "%d", k);
        if (strcmp(m->class_names[k], num) != 0) return CSNN_OK;
    }
    if (ds->n_classes != m->spec.classes) return CSNN_OK; /* matched by name later */
    return csnn_model_set_class_names(m, (const char *const *)ds->class_names,
                                      (size_t)ds->n_classes);
}

static char *last_path(const char *output)
{
    size_t n = strlen(output) + 6;
    char *p = csnn__alloc_array(n, 1, "path");
    if (p) snprintf(p, n, "%s.last", output);
    return p;
}

static csnn_status save_last(csnn_trainer *t, const char *path)
{
    ckpt_kv kv[CSNN_TRAINER_KV];
    ckpt_extra extra = {true, csnn__trainer_kv(t, kv), kv};
    return csnn__checkpoint_save(t->model, &extra, path);
}

typedef struct run {
    csnn_trainer *t;
    const csnn_fit_options *o;
    double start;
    int64_t batches;
} run;

static int report(const run *r, csnn_progress *p)
{
    if (!r->o->progress) return 0;
    return r->o->progress(r->o->progress_user_data, p);
}

/* One epoch of training; *stop is set when time ran out or the callback
 * asked to stop. */
static csnn_status train_epoch(run *r, csnn_batcher *b, int32_t epoch, csnn_epoch_metrics *em,
                               int *stop)
{
    csnn_trainer *t = r->t;
    csnn_model *m = t->model;
    const train_settings *s = &t->s;
    double t0 = csnn__now(), loss_sum = 0;
    int64_t correct = 0, samples = 0, done = 0;
    CSNN_TRY(csnn__batcher_start_epoch(b, (uint64_t)epoch));
    const size_t per = (size_t)m->layers[0].in_numel;
    for (;;) {
        if (s->max_seconds > 0 && csnn__now() - r->start >= s->max_seconds) {
            *stop = 1;
            return CSNN_OK;
        }
        const float *images;
        const int32_t *labels;
        int32_t n;
        CSNN_TRY(csnn__batcher_next(b, &images, &labels, &n));
        if (n == 0) break;
        CSNN_TRY(m->ops->upload(m->dev, m->input, images, (size_t)n * per * sizeof(float)));
        CSNN_TRY(m->ops->upload(m->dev, m->labels, labels, (size_t)n * sizeof(int32_t)));
        double loss;
        int32_t ok;
        csnn_status st = csnn__trainer_step_uploaded(t, n, labels, &loss, &ok);
        if (st != CSNN_OK)
            return csnn__error_prefix(st, "epoch %d, batch %lld", epoch + 1, (long long)done + 1);
        loss_sum += loss * n;
        correct += ok;
        samples += n;
        done++;
        if (r->o->progress && (done % r->o->progress_every == 0 || done == r->batches)) {
            double now = csnn__now(), elapsed = now - t0;
            double per_batch = elapsed / (double)done;
            int64_t left = (r->batches - done) + (int64_t)(s->epochs - epoch - 1) * r->batches;
            double eta = per_batch * (double)left;
            if (s->max_seconds > 0 && s->max_seconds - (now - r->start) < eta)
                eta = fmax(0.0, s->max_seconds - (now - r->start));
            csnn_progress p = {
                .size = sizeof p,
                .phase = CSNN_PHASE_BATCH,
                .epoch = epoch,
                .epochs = s->epochs,
                .batch = done,
                .batches = r->batches,
                .loss = loss_sum / (double)samples,
                .accuracy = (double)correct / (double)samples,
                .samples_per_s = (double)samples / fmax(elapsed, 1e-9),
                .elapsed_s = now - r->start,
                .eta_s = eta,
            };
            if (report(r, &p)) {
                *stop = 2;
                return CSNN_OK;
            }
        }
    }
    em->train_loss = samples ? loss_sum / (double)samples : 0;
    em->train_accuracy = samples ? (double)correct / (double)samples : 0;
    em->samples = samples;
    em->seconds = csnn__now() - t0;
    return CSNN_OK;
}

csnn_status csnn_trainer_fit(csnn_trainer *t, const csnn_dataset *train, const csnn_dataset *val,
                             const csnn_fit_options *user_opts)
{
    CSNN_ARG_NOT_NULL(t);
    CSNN_ARG_NOT_NULL(train);
    csnn_fit_options o;
    csnn_fit_options_init(&o);
    if (user_opts) {
        CSNN_TRY(csnn__check_struct(user_opts, offsetof(csnn_fit_options, reserved) +
                                                   sizeof(uint32_t),
                                    sizeof o, "csnn_fit_options"));
        memcpy(&o, user_opts, sizeof o);
        if (o.reserved != 0)
            return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "csnn_trainer_fit: reserved must be 0");
        if (o.progress_every < 1)
            return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                               "csnn_trainer_fit: progress_every %d must be >= 1",
                               o.progress_every);
    }
    csnn_model *m = t->model;
    t->fit.stop_reason = CSNN_STOP_ERROR;
    CSNN_TRY(csnn__check_dataset_shape(m, train));
    if (train->n == 0)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "csnn_trainer_fit: the training set is empty");
    if (val) {
        CSNN_TRY(csnn__check_dataset_shape(m, val));
        if (val->n == 0) val = NULL; /* an empty validation split: as none */
    }
    if (o.resume) {
        double max_seconds = t->s.max_seconds;
        CSNN_TRY(csnn_trainer_load_checkpoint(t, o.resume));
        t->s.max_seconds = max_seconds;
    } else {
        CSNN_TRY(adopt_class_names(m, train));
        t->fit.next_epoch = 0;
        t->fit.best_accuracy = -1;
        t->fit.best_epoch = 0;
        t->fit.bad_epochs = 0;
        t->fit.n_history = 0;
    }
    int32_t *train_map = csnn__alloc_array((size_t)train->n_classes, sizeof(int32_t), "class map");
    int32_t *val_map = val ? csnn__alloc_array((size_t)val->n_classes, sizeof(int32_t), "class map")
                           : NULL;
    char *last = o.output ? last_path(o.output) : NULL;
    csnn_batcher *tb = NULL;
    csnn_status st = CSNN_OK;
    if (!train_map || (val && !val_map) || (o.output && !last)) st = CSNN_ERR_OUT_OF_MEMORY;
    if (st == CSNN_OK) st = csnn__class_map(m, train, train_map);
    if (st == CSNN_OK && val) st = csnn__class_map(m, val, val_map);
    const train_settings *s = &t->s;
    csnn_augment aug = {
        .hflip = (float)s->aug_hflip,
        .vflip = (float)s->aug_vflip,
        .rotate_deg = (float)s->aug_rotate,
        .crop_pad = s->aug_crop_pad,
        .brightness = (float)s->aug_brightness,
        .contrast = (float)s->aug_contrast,
    };
    if (st == CSNN_OK) st = csnn__model_reserve(m, s->batch_size, true);
    if (st == CSNN_OK)
        st = csnn__batcher_create(train, s->batch_size, true, &aug, s->seed, train_map, &tb);
    run r = {t, &o, csnn__now(), tb ? csnn__batcher_num_batches(tb) : 0};
    const int32_t first_epoch = t->fit.next_epoch;
    int stop = 0;
    while (st == CSNN_OK && !stop && t->fit.next_epoch < s->epochs) {
        int32_t epoch = t->fit.next_epoch;
        if (val && s->patience > 0 && t->fit.bad_epochs >= s->patience) {
            t->fit.stop_reason = CSNN_STOP_EARLY;
            break;
        }
        csnn_epoch_metrics em;
        csnn_epoch_metrics_init(&em);
        em.epoch = epoch;
        em.learning_rate = epoch_lr(s, epoch);
        t->current_lr = em.learning_rate;
        double e0 = csnn__now();
        st = train_epoch(&r, tb, epoch, &em, &stop);
        if (st != CSNN_OK || stop) break;
        em.val_loss = em.val_accuracy = -1;
        if (val) {
            csnn_metrics *vm;
            st = csnn__evaluate(m, val, csnn__trainer_loss_kind(t), (float)s->label_smoothing,
                                s->batch_size, &vm);
            if (st != CSNN_OK) break;
            csnn_metrics_overall(vm, &em.val_loss, &em.val_accuracy, NULL, NULL);
            csnn_metrics_destroy(vm);
            em.improved = em.val_accuracy > t->fit.best_accuracy;
        } else {
            em.improved = 1; /* without validation the last model is the best */
        }
        if (em.improved) {
            if (val) t->fit.best_accuracy = em.val_accuracy;
            t->fit.best_epoch = epoch;
            t->fit.bad_epochs = 0;
            if (o.output && (st = csnn__checkpoint_save(m, NULL, o.output)) != CSNN_OK) break;
        } else {
            t->fit.bad_epochs++;
        }
        em.seconds = csnn__now() - e0;
        if ((st = history_append(&t->fit, &em)) != CSNN_OK) break;
        t->fit.next_epoch = epoch + 1;
        if (last && (st = save_last(t, last)) != CSNN_OK) break;
        csnn__log(m->ctx, CSNN_LOG_INFO,
                  "epoch %d: loss %.4f acc %.4f val_loss %.4f val_acc %.4f (%.1f s)", epoch + 1,
                  em.train_loss, em.train_accuracy, em.val_loss, em.val_accuracy, em.seconds);
        if (o.progress) {
            double now = csnn__now();
            double per_epoch = (now - r.start) / (double)(epoch + 1 - first_epoch);
            csnn_progress p = {
                .size = sizeof p,
                .phase = CSNN_PHASE_EPOCH_END,
                .epoch = epoch,
                .epochs = s->epochs,
                .batch = r.batches,
                .batches = r.batches,
                .loss = em.train_loss,
                .accuracy = em.train_accuracy,
                .samples_per_s = (double)em.samples / fmax(em.seconds, 1e-9),
                .elapsed_s = now - r.start,
                .eta_s = per_epoch * (double)(s->epochs - epoch - 1),
                .metrics = &t->fit.history[t->fit.n_history - 1],
            };
            if (report(&r, &p)) stop = 2;
        }
    }
    t->current_lr = s->lr;
    if (st != CSNN_OK)
        t->fit.stop_reason = CSNN_STOP_ERROR;
    else if (stop)
        t->fit.stop_reason = stop == 2 ? CSNN_STOP_CALLBACK : CSNN_STOP_TIME;
    else if (t->fit.stop_reason != CSNN_STOP_EARLY)
        t->fit.stop_reason = val && s->patience > 0 && t->fit.bad_epochs >= s->patience
                                 ? CSNN_STOP_EARLY
                                 : CSNN_STOP_EPOCHS;
    csnn__batcher_destroy(tb);
    free(train_map);
    free(val_map);
    free(last);
    if (st != CSNN_OK) return st;
    return stop == 2 ? CSNN_STOPPED : CSNN_OK;
}
