/*
 * test_fit.c - csnn_trainer_fit on the synthetic faces: history and files,
 * early stopping, no-validation runs, the callback's stop, resume
 * equivalence (bit for bit on the CPU), class matching by name, evaluation.
 */
#include <math.h>
#include <sys/stat.h>

#include "test_util.h"

static csnn_context *ctx;
static char *dir;
static csnn_dataset *train_ds, *val_ds;

/* Small enough to train in seconds on 48x48 images. */
static const char *spec = "input 1x48x48\nsteps 2\nclasses 7\n"
                          "static: conv 6 k=3 s=2 p=1; bn\nif\nmaxpool 2\n"
                          "conv 8 k=3 p=1\nbn\nif\nmaxpool 2\nflatten\ndropout 0.2\n"
                          "linear 7\nlif\n";

static int setup(void **state)
{
    (void)state;
    csnn_context_options o;
    csnn_context_options_init(&o);
    o.device = test_device();
    if (csnn_context_create(&o, &ctx) != CSNN_OK) return -1;
    dir = test_tempdir();
    csnn_synth_options so;
    csnn_synth_options_init(&so);
    so.per_class = 12;
    so.seed = 3;
    size_t n = (size_t)so.per_class * 7;
    uint8_t *px = malloc(n * 48 * 48);
    int32_t *labels = malloc(n * sizeof(int32_t));
    const char *names[7] = {"angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"};
    csnn_dataset *all;
    if (csnn_synth_generate(&so, px, n * 48 * 48, labels, n) != CSNN_OK ||
        csnn_dataset_create_from_arrays(ctx, px, labels, n, 48, 48, names, 7, &all) != CSNN_OK ||
        csnn_dataset_split(all, 0.25, 1, &train_ds, &val_ds) != CSNN_OK) {
        fprintf(stderr, "setup: %s\n", csnn_last_error_message());
        return -1;
    }
    csnn_dataset_destroy(all);
    free(px);
    free(labels);
    return dir ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    csnn_dataset_destroy(train_ds);
    csnn_dataset_destroy(val_ds);
    csnn_context_destroy(ctx);
    test_rmtree(dir);
    free(dir);
    return 0;
}

static csnn_trainer *new_trainer(csnn_model **m, int epochs)
{
    csnn_trainer *t;
    CHECK_OK(csnn_model_create_from_spec(ctx, spec, 5, m));
    CHECK_OK(csnn_trainer_create(*m, &t));
    CHECK_OK(csnn_trainer_set_param(t, CSNN_TRAIN_EPOCHS, epochs));
    CHECK_OK(csnn_trainer_set_param(t, CSNN_TRAIN_BATCH_SIZE, 8));
    CHECK_OK(csnn_trainer_set_param(t, CSNN_TRAIN_SEED, 17));
    CHECK_OK(csnn_trainer_set_param(t, CSNN_TRAIN_LEARNING_RATE, 3e-3));
    return t;
}

static bool file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

typedef struct progress_log {
    int batches, epochs;
    int stop_after_epochs;
    double last_eta;
} progress_log;

static int on_progress(void *user, const csnn_progress *p)
{
    progress_log *log = user;
    assert_int_equal(p->size, sizeof *p);
    if (p->phase == CSNN_PHASE_BATCH) {
        log->batches++;
        assert_true(p->batch >= 1 && p->batch <= p->batches);
        assert_null(p->metrics);
        assert_true(p->samples_per_s > 0);
        assert_true(p->loss >= 0);
    } else {
        log->epochs++;
        assert_non_null(p->metrics);
        assert_int_equal(p->metrics->epoch, p->epoch);
    }
    log->last_eta = p->eta_s;
    return log->stop_after_epochs && log->epochs >= log->stop_after_epochs;
}

static void test_fit_files_and_history(void **state)
{
    (void)state;
    csnn_model *m;
    csnn_trainer *t = new_trainer(&m, 3);
    char out[4200], last[4300];
    snprintf(out, sizeof out, "%s/best.csnn", dir);
    snprintf(last, sizeof last, "%s.last", out);
    csnn_fit_options o;
    csnn_fit_options_init(&o);
    o.output = out;
    progress_log log = {0};
    o.progress = on_progress;
    o.progress_user_data = &log;
    int32_t reason;
    CHECK_OK(csnn_trainer_stop_reason(t, &reason));
    assert_int_equal(reason, CSNN_STOP_NONE);
    CHECK_OK(csnn_trainer_fit(t, train_ds, val_ds, &o));
    CHECK_OK(csnn_trainer_stop_reason(t, &reason));
    assert_int_equal(reason, CSNN_STOP_EPOCHS);
    size_t epochs;
    CHECK_OK(csnn_trainer_history(t, &epochs));
    assert_int_equal(epochs, 3);
    assert_int_equal(log.epochs, 3);
    csnn_dataset_info info;
    csnn_dataset_info_init(&info);
    CHECK_OK(csnn_dataset_get_info(train_ds, &info));
    assert_int_equal(log.batches, 3 * ((info.num_samples + 7) / 8));
    assert_true(log.last_eta == 0.0);
    double best = -1;
    for (size_t e = 0; e < epochs; e++) {
        csnn_epoch_metrics em;
        csnn_epoch_metrics_init(&em);
        CHECK_OK(csnn_trainer_epoch(t, e, &em));
        assert_int_equal(em.epoch, (int)e);
        assert_int_equal(em.samples, info.num_samples);
        assert_true(em.val_accuracy >= 0 && em.val_accuracy <= 1);
        assert_true(em.learning_rate == 3e-3);
        assert_int_equal(em.improved, em.val_accuracy > best);
        if (em.improved) best = em.val_accuracy;
    }
    assert_true(file_exists(out));
    assert_true(file_exists(last));
    /* the model takes the dataset's class names */
    const char *name;
    CHECK_OK(csnn_model_class_name(m, 3, &name));
    assert_string_equal(name, "happy");
    /* the best model's validation accuracy is the best of the history */
    csnn_model *bm;
    CHECK_OK(csnn_model_load(ctx, out, &bm));
    csnn_metrics *x;
    CHECK_OK(csnn_model_evaluate(bm, val_ds, &x));
    double acc, loss;
    int64_t n;
    int32_t k;
    CHECK_OK(csnn_metrics_overall(x, &loss, &acc, &n, &k));
    assert_true(fabs(acc - best) < 1e-12);
    assert_int_equal(k, 7);
    /* confusion rows sum to the class counts, F1 from precision/recall */
    int64_t conf[49];
    CHECK_OK(csnn_metrics_confusion(x, conf, 49));
    int64_t diag = 0, total = 0;
    for (int i = 0; i < 7; i++) {
        csnn_class_metrics c;
        csnn_class_metrics_init(&c);
        CHECK_OK(csnn_metrics_class(x, i, &c));
        int64_t row = 0;
        for (int j = 0; j < 7; j++) row += conf[i * 7 + j];
        assert_int_equal(row, c.support);
        diag += conf[i * 7 + i];
        total += row;
        if (c.precision + c.recall > 0)
            assert_true(fabs(c.f1 - 2 * c.precision * c.recall / (c.precision + c.recall)) < 1e-12);
    }
    assert_int_equal(total, n);
    assert_true(fabs((double)diag / (double)total - acc) < 1e-12);
    int32_t nr;
    CHECK_OK(csnn_metrics_num_rates(x, &nr));
    assert_int_equal(nr, 3);
    const char *lname;
    double rate;
    CHECK_OK(csnn_metrics_rate(x, 0, &lname, &rate));
    assert_string_equal(lname, "sn1");
    assert_true(rate > 0 && rate < 1);
    CHECK_STATUS(csnn_metrics_confusion(x, conf, 48), CSNN_ERR_SHAPE);
    csnn_metrics_destroy(x);
    csnn_model_destroy(bm);
    csnn_trainer_destroy(t);
    csnn_model_destroy(m);
}

static void compare_runs(csnn_trainer *a, csnn_model *ma, csnn_trainer *b, csnn_model *mb)
{
    size_t na, nb;
    CHECK_OK(csnn_trainer_history(a, &na));
    CHECK_OK(csnn_trainer_history(b, &nb));
    assert_int_equal(na, nb);
    for (size_t e = 0; e < na; e++) {
        csnn_epoch_metrics x, y;
        csnn_epoch_metrics_init(&x);
        csnn_epoch_metrics_init(&y);
        CHECK_OK(csnn_trainer_epoch(a, e, &x));
        CHECK_OK(csnn_trainer_epoch(b, e, &y));
        assert_true(x.train_loss == y.train_loss);
        assert_true(x.train_accuracy == y.train_accuracy);
        assert_true(x.val_loss == y.val_loss);
        assert_true(x.val_accuracy == y.val_accuracy);
        assert_int_equal(x.improved, y.improved);
    }
    size_t nw = 7 * 8 * 6 * 6;
    float *wa = malloc(nw * 4), *wb = malloc(nw * 4);
    CHECK_OK(csnn_model_get_tensor(ma, "fc1.weight", wa, nw));
    CHECK_OK(csnn_model_get_tensor(mb, "fc1.weight", wb, nw));
    assert_memory_equal(wa, wb, nw * 4);
    free(wa);
    free(wb);
}

static void test_resume_equivalence(void **state)
{
    (void)state;
    char out[4200], last[4300];
    snprintf(out, sizeof out, "%s/resume.csnn", dir);
    snprintf(last, sizeof last, "%s.last", out);
    /* uninterrupted: 4 epochs, cosine schedule */
    csnn_model *ma;
    csnn_trainer *a = new_trainer(&ma, 4);
    CHECK_OK(csnn_trainer_set_param(a, CSNN_TRAIN_LR_SCHEDULE, CSNN_LR_COSINE));
    CHECK_OK(csnn_trainer_fit(a, train_ds, val_ds, NULL));
    /* interrupted after 2 epochs by the callback, then resumed afresh */
    csnn_model *mb, *mc;
    csnn_trainer *b = new_trainer(&mb, 4);
    CHECK_OK(csnn_trainer_set_param(b, CSNN_TRAIN_LR_SCHEDULE, CSNN_LR_COSINE));
    csnn_fit_options o;
    csnn_fit_options_init(&o);
    o.output = out;
    progress_log log = {0};
    log.stop_after_epochs = 2;
    o.progress = on_progress;
    o.progress_user_data = &log;
    CHECK_STATUS(csnn_trainer_fit(b, train_ds, val_ds, &o), CSNN_STOPPED);
    int32_t reason;
    CHECK_OK(csnn_trainer_stop_reason(b, &reason));
    assert_int_equal(reason, CSNN_STOP_CALLBACK);
    size_t n;
    CHECK_OK(csnn_trainer_history(b, &n));
    assert_int_equal(n, 2);
    csnn_trainer_destroy(b);
    csnn_model_destroy(mb);
    csnn_trainer *c;
    CHECK_OK(csnn_model_create_from_spec(ctx, spec, 999, &mc));
    CHECK_OK(csnn_trainer_create(mc, &c));
    csnn_fit_options_init(&o);
    o.output = out;
    o.resume = last;
    CHECK_OK(csnn_trainer_fit(c, train_ds, val_ds, &o));
    compare_runs(a, ma, c, mc);
    csnn_epoch_metrics em;
    csnn_epoch_metrics_init(&em);
    CHECK_OK(csnn_trainer_epoch(c, 1, &em));
    assert_true(fabs(em.learning_rate - 3e-3 * 0.5 * (1 + cos(M_PI / 4))) < 1e-15);
    csnn_trainer_destroy(a);
    csnn_model_destroy(ma);
    csnn_trainer_destroy(c);
    csnn_model_destroy(mc);
}

static void test_early_stop_and_no_validation(void **state)
{
    (void)state;
    csnn_model *m;
    csnn_trainer *t = new_trainer(&m, 10);
    /* a learning rate so small that nothing changes: validation accuracy
     * never improves after the first epoch, so patience 2 stops at epoch 3 */
    CHECK_OK(csnn_trainer_set_param(t, CSNN_TRAIN_LEARNING_RATE, 1e-30));
    CHECK_OK(csnn_trainer_set_param(t, CSNN_TRAIN_PATIENCE, 2));
    CHECK_OK(csnn_trainer_fit(t, train_ds, val_ds, NULL));
    size_t n;
    CHECK_OK(csnn_trainer_history(t, &n));
    assert_int_equal(n, 3);
    int32_t reason;
    CHECK_OK(csnn_trainer_stop_reason(t, &reason));
    assert_int_equal(reason, CSNN_STOP_EARLY);
    /* a wall-time limit already spent: no epoch runs */
    CHECK_OK(csnn_trainer_set_param(t, CSNN_TRAIN_MAX_SECONDS, 1e-9));
    CHECK_OK(csnn_trainer_set_param(t, CSNN_TRAIN_PATIENCE, 0));
    CHECK_OK(csnn_trainer_fit(t, train_ds, val_ds, NULL));
    CHECK_OK(csnn_trainer_stop_reason(t, &reason));
    assert_int_equal(reason, CSNN_STOP_TIME);
    CHECK_OK(csnn_trainer_history(t, &n));
    assert_int_equal(n, 0);
    csnn_trainer_destroy(t);
    csnn_model_destroy(m);
    /* without validation: no early stop; every epoch saves the model */
    t = new_trainer(&m, 3);
    CHECK_OK(csnn_trainer_set_param(t, CSNN_TRAIN_LEARNING_RATE, 1e-30));
    CHECK_OK(csnn_trainer_set_param(t, CSNN_TRAIN_PATIENCE, 1));
    char out[4200];
    snprintf(out, sizeof out, "%s/noval.csnn", dir);
    csnn_fit_options o;
    csnn_fit_options_init(&o);
    o.output = out;
    CHECK_OK(csnn_trainer_fit(t, train_ds, NULL, &o));
    CHECK_OK(csnn_trainer_history(t, &n));
    assert_int_equal(n, 3);
    for (size_t e = 0; e < n; e++) {
        csnn_epoch_metrics em;
        csnn_epoch_metrics_init(&em);
        CHECK_OK(csnn_trainer_epoch(t, e, &em));
        assert_int_equal(em.improved, 1);
        assert_true(em.val_accuracy == -1);
    }
    assert_true(file_exists(out));
    csnn_trainer_destroy(t);
    csnn_model_destroy(m);
}

static void test_fit_errors(void **state)
{
    (void)state;
    csnn_model *m;
    csnn_trainer *t = new_trainer(&m, 1);
    /* a dataset of another image size */
    uint8_t px[4 * 16] = {0};
    int32_t y[4] = {0, 1, 0, 1};
    csnn_dataset *small;
    CHECK_OK(csnn_dataset_create_from_arrays(ctx, px, y, 4, 4, 4, NULL, 2, &small));
    CHECK_STATUS(csnn_trainer_fit(t, small, NULL, NULL), CSNN_ERR_SHAPE);
    csnn_dataset_destroy(small);
    /* a class the model does not know */
    uint8_t big[2 * 48 * 48] = {0};
    const char *names[2] = {"happy", "bored"};
    csnn_dataset *odd;
    CHECK_OK(csnn_dataset_create_from_arrays(ctx, big, y, 2, 48, 48, names, 2, &odd));
    CHECK_OK(csnn_trainer_fit(t, train_ds, NULL, NULL)); /* adopts the 7 names */
    CHECK_STATUS(csnn_trainer_fit(t, odd, NULL, NULL), CSNN_ERR_NOT_FOUND);
    assert_non_null(strstr(csnn_last_error_message(), "bored"));
    csnn_metrics *x = (csnn_metrics *)1;
    CHECK_STATUS(csnn_model_evaluate(m, odd, &x), CSNN_ERR_NOT_FOUND);
    assert_null(x);
    csnn_dataset_destroy(odd);
    csnn_fit_options o;
    csnn_fit_options_init(&o);
    o.progress_every = 0;
    CHECK_STATUS(csnn_trainer_fit(t, train_ds, NULL, &o), CSNN_ERR_INVALID_ARGUMENT);
    csnn_fit_options_init(&o);
    o.resume = "/nonexistent/x.last";
    CHECK_STATUS(csnn_trainer_fit(t, train_ds, NULL, &o), CSNN_ERR_IO);
    CHECK_STATUS(csnn_trainer_fit(NULL, train_ds, NULL, NULL), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_trainer_fit(t, NULL, NULL, NULL), CSNN_ERR_INVALID_ARGUMENT);
    csnn_epoch_metrics em;
    csnn_epoch_metrics_init(&em);
    CHECK_STATUS(csnn_trainer_epoch(t, 5, &em), CSNN_ERR_NOT_FOUND);
    csnn_trainer_destroy(t);
    csnn_model_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fit_files_and_history),
        cmocka_unit_test(test_resume_equivalence),
        cmocka_unit_test(test_early_stop_and_no_validation),
        cmocka_unit_test(test_fit_errors),
    };
    return cmocka_run_group_tests_name("fit", tests, setup, teardown);
}
