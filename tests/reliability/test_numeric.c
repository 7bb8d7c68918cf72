/*
 * test_numeric.c - numerical faults in csnn_trainer_fit: a learning rate
 * far too high makes the loss or a gradient non-finite; fit then stops with
 * CSNN_ERR_NUMERIC and a message saying so (stop reason ERROR), the files
 * of the run (the best model, MODEL.last) stay byte for byte as they were,
 * the parameters in memory are the last finite ones, and the run resumes
 * from MODEL.last. Non-finite values in host arrays are refused by
 * csnn_trainer_step before anything runs. A weight gradient that overflows
 * while everything else stays finite is caught too.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "csnn/csnn.h"

#define OK(expr)                                                                                   \
    do {                                                                                           \
        csnn_status st_ = (expr);                                                                  \
        if (st_ != CSNN_OK)                                                                        \
            fail_msg("%s: %s: %s", #expr, csnn_status_name(st_), csnn_last_error_message());       \
    } while (0)

/* linear layers without activations: under plain SGD with a huge rate each
 * update scales the others, and the weights overflow within a few steps */
static const char SPEC[] = "input 1x8x8\nflatten\nlinear 16\nlinear 16\nlinear 3\n";

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

static void assert_same_file(const char *path, const uint8_t *want, size_t n)
{
    size_t m;
    uint8_t *got = slurp(path, &m);
    if (m != n || memcmp(got, want, n) != 0) fail_msg("%s changed", path);
    free(got);
}

static void assert_params_finite(csnn_model *m)
{
    csnn_model_info mi;
    csnn_model_info_init(&mi);
    OK(csnn_model_get_info(m, &mi));
    for (int64_t i = 0; i < mi.num_tensors; i++) {
        csnn_tensor_info ti;
        csnn_tensor_info_init(&ti);
        OK(csnn_model_tensor_info(m, (size_t)i, &ti));
        float *v = malloc((size_t)ti.numel * sizeof(float));
        assert_non_null(v);
        OK(csnn_model_get_tensor(m, ti.name, v, (size_t)ti.numel));
        for (int64_t e = 0; e < ti.numel; e++)
            if (!isfinite(v[e])) fail_msg("%s[%lld] is %g", ti.name, (long long)e, (double)v[e]);
        free(v);
    }
}

/* A CPU context with one host thread. */
static csnn_context *one_thread_context(void)
{
    csnn_context_options o;
    csnn_context_options_init(&o);
    o.n_threads = 1;
    csnn_context *ctx;
    OK(csnn_context_create(&o, &ctx));
    return ctx;
}

static void test_fit_diverges(void **state)
{
    (void)state;
    csnn_context *ctx = one_thread_context();
    enum { N = 64 };
    uint8_t px[N * 64];
    int32_t labels[N];
    for (int i = 0; i < N * 64; i++) px[i] = (uint8_t)((i * 97 + i / 64 * 13) & 255);
    for (int i = 0; i < N; i++) labels[i] = i % 3;
    csnn_dataset *all, *train, *val;
    OK(csnn_dataset_create_from_arrays(ctx, px, labels, N, 8, 8, NULL, 3, &all));
    OK(csnn_dataset_split(all, 0.25, 2, &train, &val));

    char dir[] = "/tmp/csnn-numeric.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char best[64], last[80];
    snprintf(best, sizeof best, "%s/m.csnn", dir);
    snprintf(last, sizeof last, "%s/m.csnn.last", dir);

    csnn_model *m;
    csnn_trainer *t;
    OK(csnn_model_create_from_spec(ctx, SPEC, 3, &m));
    OK(csnn_trainer_create(m, &t));
    OK(csnn_trainer_set_param(t, CSNN_TRAIN_BATCH_SIZE, 4));
    OK(csnn_trainer_set_param(t, CSNN_TRAIN_EPOCHS, 1));
    csnn_fit_options fo;
    csnn_fit_options_init(&fo);
    fo.output = best;
    OK(csnn_trainer_fit(t, train, val, &fo)); /* a good first run */
    size_t nb, nl;
    uint8_t *b_best = slurp(best, &nb), *b_last = slurp(last, &nl);

    /* a fresh run with a learning rate far too high (plain SGD, 10^3) */
    OK(csnn_trainer_set_param(t, CSNN_TRAIN_OPTIMIZER, CSNN_OPTIMIZER_SGD));
    OK(csnn_trainer_set_param(t, CSNN_TRAIN_MOMENTUM, 0));
    OK(csnn_trainer_set_param(t, CSNN_TRAIN_LEARNING_RATE, 1e3));
    OK(csnn_trainer_set_param(t, CSNN_TRAIN_EPOCHS, 3));
    csnn_status st = csnn_trainer_fit(t, train, val, &fo);
    printf("fit with lr 1e3: %s: %s\n", csnn_status_name(st), csnn_last_error_message());
    assert_int_equal(st, CSNN_ERR_NUMERIC);
    const char *msg = csnn_last_error_message();
    assert_true(strstr(msg, "not finite") || strstr(msg, "the loss is"));
    assert_non_null(strstr(msg, "epoch 1"));
    int32_t reason;
    OK(csnn_trainer_stop_reason(t, &reason));
    assert_int_equal(reason, CSNN_STOP_ERROR);
    assert_same_file(best, b_best, nb);
    assert_same_file(last, b_last, nl);
    assert_params_finite(m);

    /* the run of the files goes on from MODEL.last (its own settings) */
    fo.resume = last;
    OK(csnn_trainer_set_param(t, CSNN_TRAIN_EPOCHS, 3));
    OK(csnn_trainer_fit(t, train, val, &fo));
    size_t epochs;
    OK(csnn_trainer_history(t, &epochs));
    assert_int_equal(epochs, 1); /* the checkpoint's epoch limit is 1 */
    csnn_model *loaded;
    OK(csnn_model_load(ctx, best, &loaded));
    assert_params_finite(loaded);
    csnn_model_destroy(loaded);

    /* non-finite host arrays are refused before anything runs */
    float x[2 * 64];
    int32_t y[2] = {0, 1};
    for (int i = 0; i < 2 * 64; i++) x[i] = 0.5f;
    x[70] = INFINITY;
    assert_int_equal(csnn_trainer_step(t, x, y, 2, NULL), CSNN_ERR_NUMERIC);
    assert_non_null(strstr(csnn_last_error_message(), "image 1"));
    x[70] = NAN;
    assert_int_equal(csnn_trainer_step(t, x, y, 2, NULL), CSNN_ERR_NUMERIC);
    assert_params_finite(m);

    unlink(best);
    unlink(last);
    rmdir(dir);
    free(b_best);
    free(b_last);
    csnn_trainer_destroy(t);
    csnn_model_destroy(m);
    csnn_dataset_destroy(all);
    csnn_dataset_destroy(train);
    csnn_dataset_destroy(val);
    csnn_context_destroy(ctx);
}

/* A step whose only non-finite gradient is a linear layer's weight
 * gradient dW = dy^T x, with every input, output and other gradient of the
 * step finite: pixels of 3e38 into fc1 (zero weights and biases, so its
 * output is 0 and the loss finite), then fc2 with weights of 1e10 on its
 * diagonal, so that fc1's dy is ~1e10 and dy * x overflows. The backward
 * bounds linear gradients so as to skip reading them in the non-finite
 * check (prove_linear_grads, engine.c); the bound must not vouch for this
 * one: the step fails, and the model is left as it was. */
static void test_linear_grad_overflow(void **state)
{
    (void)state;
    csnn_context *ctx = one_thread_context();
    csnn_model *m;
    csnn_trainer *t;
    /* 16 -> 8 -> 4 at 2 rows: the bound is taken (rows (in + out) < in out) */
    OK(csnn_model_create_from_spec(ctx, "input 1x4x4\nflatten\nlinear 8\nlinear 4\n", 1, &m));
    OK(csnn_trainer_create(m, &t));
    float w1[8 * 16] = {0}, b1[8] = {0}, w2[4 * 8] = {0}, b2[4] = {0};
    for (int k = 0; k < 4; k++) w2[k * 8 + k] = 1e10f;
    OK(csnn_model_set_tensor(m, "fc1.weight", w1, 8 * 16));
    OK(csnn_model_set_tensor(m, "fc1.bias", b1, 8));
    OK(csnn_model_set_tensor(m, "fc2.weight", w2, 4 * 8));
    OK(csnn_model_set_tensor(m, "fc2.bias", b2, 4));
    float x[2 * 16];
    for (int i = 0; i < 2 * 16; i++) x[i] = 3e38f;
    const int32_t y[2] = {0, 3};
    assert_int_equal(csnn_trainer_step(t, x, y, 2, NULL), CSNN_ERR_NUMERIC);
    assert_non_null(strstr(csnn_last_error_message(), "gradient values are not finite"));
    float w[8 * 16], w2b[4 * 8];
    OK(csnn_model_get_tensor(m, "fc1.weight", w, 8 * 16));
    OK(csnn_model_get_tensor(m, "fc2.weight", w2b, 4 * 8));
    assert_memory_equal(w, w1, sizeof w);
    assert_memory_equal(w2b, w2, sizeof w2b);

    /* the same step with pixels of 1 is finite: fc1's weights move */
    for (int i = 0; i < 2 * 16; i++) x[i] = 1.0f;
    OK(csnn_trainer_step(t, x, y, 2, NULL));
    OK(csnn_model_get_tensor(m, "fc1.weight", w, 8 * 16));
    for (int e = 0; e < 4 * 16; e++) assert_true(isfinite(w[e]) && w[e] != 0.0f);
    csnn_trainer_destroy(t);
    csnn_model_destroy(m);
    csnn_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fit_diverges),
        cmocka_unit_test(test_linear_grad_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
