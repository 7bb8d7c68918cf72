/*
 * test_model.c - model specs, presets, summaries, tensors, initialisation,
 * the training step (falling loss, numerical faults, determinism) and a
 * finite-difference check of the whole engine's gradients.
 */
#include <math.h>

#include "test_util.h"
#include "trainer.h"

static csnn_context *ctx;

static int setup(void **state)
{
    (void)state;
    csnn_context_options o;
    csnn_context_options_init(&o);
    o.device = test_device();
    return csnn_context_create(&o, &ctx) == CSNN_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    csnn_context_destroy(ctx);
    return 0;
}

static int64_t tensor_numel(csnn_model *m, const char *name)
{
    csnn_model_info info;
    csnn_model_info_init(&info);
    CHECK_OK(csnn_model_get_info(m, &info));
    for (int64_t i = 0; i < info.num_tensors; i++) {
        csnn_tensor_info t;
        csnn_tensor_info_init(&t);
        CHECK_OK(csnn_model_tensor_info(m, (size_t)i, &t));
        if (strcmp(t.name, name) == 0) return t.numel;
    }
    fail_msg("no tensor %s", name);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Presets                                                                   */
/* ------------------------------------------------------------------------ */

static void test_presets(void **state)
{
    (void)state;
    assert_string_equal(csnn_preset_name(0), "fer-csnn");
    assert_string_equal(csnn_preset_name(1), "fer-cnn");
    assert_string_equal(csnn_preset_name(2), "small-csnn");
    assert_null(csnn_preset_name(3));
    const char *names[2] = {"fer-csnn", "fer-cnn"};
    for (int p = 0; p < 2; p++) {
        csnn_model *m;
        CHECK_OK(csnn_model_create_preset(ctx, names[p], 0, &m));
        csnn_model_info info;
        csnn_model_info_init(&info);
        CHECK_OK(csnn_model_get_info(m, &info));
        assert_int_equal(info.num_params, 21532679);
        assert_int_equal(info.num_classes, 7);
        assert_int_equal(info.in_channels, 1);
        assert_int_equal(info.in_height, 48);
        assert_int_equal(info.in_width, 48);
        assert_int_equal(info.time_steps, p == 0 ? 4 : 1);
        assert_int_equal(info.spiking_output, p == 0 ? 1 : 0);
        /* the seed's table, layer by layer */
        assert_int_equal(tensor_numel(m, "conv1.weight") + tensor_numel(m, "conv1.bias"), 1280);
        assert_int_equal(tensor_numel(m, "bn1.weight") + tensor_numel(m, "bn1.bias"), 256);
        assert_int_equal(tensor_numel(m, "conv2.weight") + tensor_numel(m, "conv2.bias"), 147584);
        assert_int_equal(tensor_numel(m, "bn2.weight") + tensor_numel(m, "bn2.bias"), 256);
        assert_int_equal(tensor_numel(m, "fc1.weight") + tensor_numel(m, "fc1.bias"), 21234816);
        assert_int_equal(tensor_numel(m, "fc2.weight") + tensor_numel(m, "fc2.bias"), 147584);
        assert_int_equal(tensor_numel(m, "fc3.weight") + tensor_numel(m, "fc3.bias"), 903);
        csnn_model_destroy(m);
    }
    csnn_model *m = (csnn_model *)1;
    CHECK_STATUS(csnn_model_create_preset(ctx, "fer-snn", 0, &m), CSNN_ERR_NOT_FOUND);
    assert_null(m);
    assert_non_null(strstr(csnn_last_error_message(), "fer-snn"));
}

/* ------------------------------------------------------------------------ */
/* Specs                                                                     */
/* ------------------------------------------------------------------------ */

static char *canonical(const char *spec)
{
    csnn_model *m;
    CHECK_OK(csnn_model_create_from_spec(ctx, spec, 0, &m));
    const char *text;
    CHECK_OK(csnn_model_spec(m, &text));
    char *copy = strdup(text);
    csnn_model_destroy(m);
    return copy;
}

static void test_spec_syntax(void **state)
{
    (void)state;
    /* comments, ';' separators, static: lines, shorthand options, names */
    const char *spec = "# a comment\n"
                       "input 3x10x12   # trailing comment\n"
                       "steps 3; classes 5\n"
                       "static: conv 4 k3 p1 s2; bn eps=1e-3 momentum=0.2\n"
                       "lif tau=3 decay_input=0 v_reset=none surrogate=sigmoid name=first\n"
                       "maxpool 2 stride=1; conv 6 k=1 bias=0\n"
                       "if v_threshold=0.5 v_reset=-0.25 detach_reset=1 alpha=3\n"
                       "flatten; dropout 0.25; linear 5\n"
                       "relu\n";
    char *c1 = canonical(spec);
    char *c2 = canonical(c1);
    assert_string_equal(c1, c2); /* the canonical form is a fixed point */
    assert_non_null(strstr(c1, "input 3x10x12\nsteps 3\nclasses 5\n"));
    assert_non_null(strstr(c1, "static: conv 4 k=3 s=2 p=1 bias=1 name=conv1\n"));
    assert_non_null(strstr(c1, "static: bn eps=0.00100000005 momentum=0.200000003 name=bn1\n"));
    assert_non_null(strstr(c1, "lif tau=3 decay_input=0 v_threshold=1 v_reset=none detach_reset=0 "
                               "surrogate=sigmoid alpha=4 name=first\n"));
    assert_non_null(strstr(c1, "maxpool 2 stride=1 name=pool1\n"));
    assert_non_null(strstr(c1, "conv 6 k=1 s=1 p=0 bias=0 name=conv2\n"));
    assert_non_null(strstr(c1, "if v_threshold=0.5 v_reset=-0.25 detach_reset=1 surrogate=atan "
                               "alpha=3 name=sn2\n"));
    assert_non_null(strstr(c1, "dropout 0.25 name=dropout1\nlinear 5 bias=1 name=fc1\n"));
    free(c1);
    free(c2);

    /* shapes: 3x10x12 -conv k3 p1 s2-> 4x5x6 -pool 2 s1-> 4x4x5 -conv k1-> 6x4x5 */
    csnn_model *m;
    CHECK_OK(csnn_model_create_from_spec(ctx, spec, 0, &m));
    assert_int_equal(tensor_numel(m, "fc1.weight"), 5 * 6 * 4 * 5);
    assert_int_equal(tensor_numel(m, "bn1.running_var"), 4);
    csnn_model_destroy(m);
}

typedef struct bad_spec {
    const char *text;
    csnn_status status;
    const char *where; /* expected in the message */
} bad_spec;

static void test_spec_errors(void **state)
{
    (void)state;
    static const bad_spec cases[] = {
        {"", CSNN_ERR_SPEC, "line 1, column 1"},
        {"conv 4\n", CSNN_ERR_SPEC, "line 1, column 1: the spec must begin with 'input"},
        {"input 1x8x8\nconv\n", CSNN_ERR_SPEC, "line 2, column 1"},
        {"input 1x8x8\nconv 4 k=0\n", CSNN_ERR_SPEC, "line 2, column 8"},
        {"input 1x8x8\nconv 4 q=1\n", CSNN_ERR_SPEC, "unknown option 'q'"},
        {"input 65536x65536x1\nflatten\nlinear 2\n", CSNN_ERR_SPEC,
         "line 1, column 7: input: 4294967296 elements per sample exceed the limit of 268435456"},
        {"input 1x8\n", CSNN_ERR_SPEC, "line 1, column 7: input: expected CxHxW"},
        {"input 1x8x8\nflatten\nlinear 3\nfrobnicate\n", CSNN_ERR_SPEC, "line 4, column 1: unknown statement"},
        {"input 1x8x8\n  linear 3\n", CSNN_ERR_SPEC, "line 2, column 3: linear needs a flat input"},
        {"input 1x8x8\nflatten\nconv 3\n", CSNN_ERR_SPEC, "line 3, column 1: conv needs"},
        {"input 1x8x8\nconv 2 k=9\nflatten\n", CSNN_ERR_SPEC, "does not fit"},
        {"input 1x8x8\nmaxpool 17\n", CSNN_ERR_SPEC, "line 2, column 9"},
        {"input 1x8x8\nif tau=2\nflatten\n", CSNN_ERR_SPEC, "tau applies to lif only"},
        {"input 1x8x8\nlif decay_input=2\nflatten\n", CSNN_ERR_SPEC, "decay_input: expected 0 or 1"},
        {"input 1x8x8\nlif tau=1\nflatten\n", CSNN_ERR_SPEC, "tau: 1 is outside (1"},
        {"input 1x8x8\nif surrogate=relu\nflatten\n", CSNN_ERR_SPEC, "expected atan or sigmoid"},
        {"input 1x8x8\nflatten\ndropout 1\n", CSNN_ERR_SPEC, "below 1"},
        {"input 1x8x8\nflatten\nlinear 3\nlinear 4 name=fc1\n", CSNN_ERR_SPEC, "used twice"},
        {"input 1x8x8\nconv 2\n", CSNN_ERR_SPEC, "must end with a flat output"},
        {"input 1x8x8\nclasses 3\nflatten\nlinear 4\n", CSNN_ERR_SPEC, "classes is 3 but the last layer has 4"},
        {"input 1x8x8\nflatten\nstatic: linear 4\n", CSNN_ERR_SPEC, "line 3, column 9: static layers must come first"},
        {"input 1x8x8\nstatic: if\nflatten\n", CSNN_ERR_SPEC, "if cannot be static"},
        {"input 1x8x8\nflatten; static: linear 2\n", CSNN_ERR_SPEC, "'static:' must begin its line"},
        {"input 1x8x8\nsteps 0\nflatten\n", CSNN_ERR_SPEC, "steps: 0 is outside 1..1024"},
        {"input 1x8x8\nflatten\nsteps 2\n", CSNN_ERR_SPEC, "must come before the first layer"},
        {"input 1x8x8\ninput 1x8x8\n", CSNN_ERR_SPEC, "line 2, column 1: 'input' is given twice"},
        {"input 1x8x8\nflatten\nlinear 99999999\n", CSNN_ERR_SPEC, "line 3, column 8"},
        {"input 1x8x8\nflatten\nlinear 3 name=9x\n", CSNN_ERR_SPEC, "name: use letters"},
        {"input 1x8x8\nflatten\x01\n", CSNN_ERR_SPEC, "line 2, column 8: unexpected character"},
        {"input 1x8x8\nbn eps=nan\nflatten\n", CSNN_ERR_SPEC, "not a finite number"},
        {"input 1x8x8\nflatten\nlinear 3 bias\n", CSNN_ERR_SPEC, "options are written key=value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        csnn_model *m = (csnn_model *)1;
        csnn_clear_last_error();
        csnn_status st = csnn_model_create_from_spec(ctx, cases[i].text, 0, &m);
        if (st != cases[i].status)
            fail_msg("case %zu: %s, expected %s (%s)", i, csnn_status_name(st),
                     csnn_status_name(cases[i].status), csnn_last_error_message());
        assert_null(m);
        if (!strstr(csnn_last_error_message(), cases[i].where))
            fail_msg("case %zu: message '%s' lacks '%s'", i, csnn_last_error_message(),
                     cases[i].where);
    }
    /* too many layers is a limit */
    size_t cap = 20 + 300 * 10;
    char *big = malloc(cap);
    strcpy(big, "input 1x2x2\nflatten\n");
    for (int i = 0; i < 300; i++) strcat(big, "relu\n");
    csnn_model *m;
    CHECK_STATUS(csnn_model_create_from_spec(ctx, big, 0, &m), CSNN_ERR_LIMIT);
    free(big);
}

/* ------------------------------------------------------------------------ */
/* Summary                                                                   */
/* ------------------------------------------------------------------------ */

static void test_summary(void **state)
{
    (void)state;
    csnn_model *m;
    CHECK_OK(csnn_model_create_preset(ctx, "fer-csnn", 0, &m));
    size_t need = 0;
    CHECK_OK(csnn_model_summary(m, 16, NULL, 0, &need));
    assert_true(need > 100);
    char *buf = malloc(need);
    size_t need2 = 0;
    CHECK_OK(csnn_model_summary(m, 16, buf, need, &need2));
    assert_int_equal(need, need2);
    assert_int_equal(strlen(buf) + 1, need);
    assert_non_null(strstr(buf, "conv1 (Conv2d)               [16, 1, 48, 48]          [16, 128, 48, 48]               1,280"));
    assert_non_null(strstr(buf, "sn1 (IFNode)                 [4, 16, 128, 48, 48]     [4, 16, 128, 48, 48]               --"));
    assert_non_null(strstr(buf, "fc1 (Linear)                 [4, 16, 18432]           [4, 16, 1152]              21,234,816"));
    assert_non_null(strstr(buf, "sn5 (LIFNode)                [4, 16, 7]               [4, 16, 7]"));
    assert_non_null(strstr(buf, "Total params: 21,532,679\n"));
    /* truncation keeps a terminated string */
    char small[40];
    CHECK_OK(csnn_model_summary(m, 16, small, sizeof small, &need2));
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_int_equal(need2, need);
    CHECK_STATUS(csnn_model_summary(m, 0, buf, need, NULL), CSNN_ERR_INVALID_ARGUMENT);
    free(buf);
    csnn_model_destroy(m);
}

/* ------------------------------------------------------------------------ */
/* Tensors and initialisation                                                */
/* ------------------------------------------------------------------------ */

static const char *tiny_snn =
    "input 1x8x8\nsteps 3\nclasses 3\n"
    "static: conv 4 k=3 p=1; bn\nif\nmaxpool 2\nconv 5 k=3 p=1\nbn\nlif\nmaxpool 2\n"
    "flatten\ndropout 0.2\nlinear 8\nlif\nlinear 3\nlif\n";

static void test_tensors(void **state)
{
    (void)state;
    csnn_model *m;
    CHECK_OK(csnn_model_create_from_spec(ctx, tiny_snn, 7, &m));
    float w[36], v[36];
    CHECK_OK(csnn_model_get_tensor(m, "conv1.weight", w, 36));
    for (int i = 0; i < 36; i++) assert_true(fabsf(w[i]) <= 1.0f / 3.0f); /* 1/sqrt(fan_in 9) */
    for (int i = 0; i < 36; i++) v[i] = (float)i * 0.5f;
    CHECK_OK(csnn_model_set_tensor(m, "conv1.weight", v, 36));
    CHECK_OK(csnn_model_get_tensor(m, "conv1.weight", w, 36));
    assert_memory_equal(w, v, sizeof v);
    float one;
    CHECK_OK(csnn_model_get_tensor(m, "bn2.num_batches_tracked", &one, 1));
    assert_true(one == 0.0f);
    one = 41;
    CHECK_OK(csnn_model_set_tensor(m, "bn2.num_batches_tracked", &one, 1));
    CHECK_OK(csnn_model_get_tensor(m, "bn2.num_batches_tracked", &one, 1));
    assert_true(one == 41.0f);
    one = 1.5f;
    CHECK_STATUS(csnn_model_set_tensor(m, "bn2.num_batches_tracked", &one, 1),
                 CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_get_tensor(m, "conv1.weight", w, 35), CSNN_ERR_SHAPE);
    CHECK_STATUS(csnn_model_get_tensor(m, "conv9.weight", w, 36), CSNN_ERR_NOT_FOUND);
    v[3] = NAN;
    CHECK_STATUS(csnn_model_set_tensor(m, "conv1.weight", v, 36), CSNN_ERR_NUMERIC);
    float bnv[4];
    CHECK_OK(csnn_model_get_tensor(m, "bn1.running_var", bnv, 4));
    for (int i = 0; i < 4; i++) assert_true(bnv[i] == 1.0f);
    /* tensor enumeration: kinds and shapes */
    csnn_tensor_info t;
    csnn_tensor_info_init(&t);
    CHECK_OK(csnn_model_tensor_info(m, 0, &t));
    assert_string_equal(t.name, "conv1.weight");
    assert_int_equal(t.kind, CSNN_TENSOR_PARAM);
    assert_int_equal(t.ndim, 4);
    assert_int_equal(t.shape[0], 4);
    assert_int_equal(t.shape[1], 1);
    assert_int_equal(t.shape[3], 3);
    CHECK_OK(csnn_model_tensor_info(m, 4, &t));
    assert_string_equal(t.name, "bn1.running_mean");
    assert_int_equal(t.kind, CSNN_TENSOR_BUFFER);
    CHECK_OK(csnn_model_tensor_info(m, 6, &t));
    assert_string_equal(t.name, "bn1.num_batches_tracked");
    assert_int_equal(t.kind, CSNN_TENSOR_COUNTER);
    CHECK_STATUS(csnn_model_tensor_info(m, 999, &t), CSNN_ERR_NOT_FOUND);
    csnn_model_destroy(m);
}

static void test_init_distribution(void **state)
{
    (void)state;
    csnn_model *a, *b, *c;
    CHECK_OK(csnn_model_create_preset(ctx, "fer-cnn", 3, &a));
    CHECK_OK(csnn_model_create_preset(ctx, "fer-cnn", 3, &b));
    CHECK_OK(csnn_model_create_preset(ctx, "fer-cnn", 4, &c));
    size_t n = 1152 * 128;
    float *wa = malloc(n * 4), *wb = malloc(n * 4), *wc = malloc(n * 4);
    CHECK_OK(csnn_model_get_tensor(a, "fc2.weight", wa, n));
    CHECK_OK(csnn_model_get_tensor(b, "fc2.weight", wb, n));
    CHECK_OK(csnn_model_get_tensor(c, "fc2.weight", wc, n));
    assert_memory_equal(wa, wb, n * 4);
    assert_memory_not_equal(wa, wc, n * 4);
    /* U(-1/sqrt(1152), 1/sqrt(1152)): mean 0, variance bound^2/3 */
    double bound = 1.0 / sqrt(1152.0), sum = 0, sq = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        sum += wa[i];
        sq += (double)wa[i] * wa[i];
        mx = fmax(mx, fabs(wa[i]));
    }
    double mean = sum / (double)n, var = sq / (double)n - mean * mean;
    assert_true(mx <= bound);
    assert_true(mx > 0.999 * bound);
    assert_true(fabs(mean) < 4 * bound / sqrt(3.0 * (double)n));
    assert_true(fabs(var / (bound * bound / 3.0) - 1.0) < 0.02);
    free(wa);
    free(wb);
    free(wc);
    csnn_model_destroy(a);
    csnn_model_destroy(b);
    csnn_model_destroy(c);
}

static void test_class_names(void **state)
{
    (void)state;
    csnn_model *m;
    CHECK_OK(csnn_model_create_from_spec(ctx, tiny_snn, 0, &m));
    const char *name;
    CHECK_OK(csnn_model_class_name(m, 2, &name));
    assert_string_equal(name, "2");
    const char *names[3] = {"cat", "dog", "emu"};
    CHECK_OK(csnn_model_set_class_names(m, names, 3));
    CHECK_OK(csnn_model_class_name(m, 1, &name));
    assert_string_equal(name, "dog");
    CHECK_STATUS(csnn_model_class_name(m, 3, &name), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_set_class_names(m, names, 2), CSNN_ERR_SHAPE);
    const char *dup[3] = {"a", "b", "a"};
    CHECK_STATUS(csnn_model_set_class_names(m, dup, 3), CSNN_ERR_INVALID_ARGUMENT);
    const char *ctl[3] = {"a", "b\n", "c"};
    CHECK_STATUS(csnn_model_set_class_names(m, ctl, 3), CSNN_ERR_INVALID_ARGUMENT);
    char longname[80];
    memset(longname, 'x', 79);
    longname[79] = '\0';
    const char *lng[3] = {"a", longname, "c"};
    CHECK_STATUS(csnn_model_set_class_names(m, lng, 3), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_OK(csnn_model_class_name(m, 1, &name)); /* unchanged after the failures */
    assert_string_equal(name, "dog");
    csnn_model_destroy(m);
}

/* ------------------------------------------------------------------------ */
/* Training                                                                  */
/* ------------------------------------------------------------------------ */

static void random_batch(uint64_t seed, int n, int hw, int classes, float *x, int32_t *y)
{
    for (int i = 0; i < n * hw; i++) x[i] = test_uniform(&seed, 0.0f, 1.0f);
    for (int i = 0; i < n; i++) y[i] = i % classes;
}

static void test_training_loss_falls(void **state)
{
    (void)state;
    const char *specs[2] = {tiny_snn, "input 1x8x8\nstatic: conv 4 k=3 p=1; bn\nrelu\nmaxpool 2\n"
                                      "flatten\ndropout 0.2\nlinear 8\nrelu\nlinear 3\n"};
    for (int s = 0; s < 2; s++) {
        csnn_model *m;
        csnn_trainer *t;
        CHECK_OK(csnn_model_create_from_spec(ctx, specs[s], 1, &m));
        CHECK_OK(csnn_trainer_create(m, &t));
        double loss_kind;
        CHECK_OK(csnn_trainer_get_param(t, CSNN_TRAIN_LOSS, &loss_kind));
        assert_true(loss_kind == (s == 0 ? CSNN_LOSS_MSE : CSNN_LOSS_CE));
        CHECK_OK(csnn_trainer_set_param(t, CSNN_TRAIN_LEARNING_RATE, 1e-2));
        CHECK_OK(csnn_trainer_set_param(t, CSNN_TRAIN_LABEL_SMOOTHING, 0.0));
        float x[6 * 64];
        int32_t y[6];
        random_batch(5, 6, 64, 3, x, y);
        csnn_step_result r;
        csnn_step_result_init(&r);
        double first = 0, last = 0;
        for (int i = 0; i < 80; i++) {
            CHECK_OK(csnn_trainer_step(t, x, y, 6, &r));
            if (i == 0) first = r.loss;
            last = r.loss;
        }
        if (!(last < 0.5 * first)) fail_msg("spec %d: loss %g -> %g", s, first, last);
        assert_int_equal(r.n, 6);
        int64_t steps;
        CHECK_OK(csnn_trainer_steps(t, &steps));
        assert_int_equal(steps, 80);
        /* predictions agree with the step's own accuracy measure */
        float scores[18];
        int32_t labels[6];
        CHECK_OK(csnn_model_predict(m, x, 6, scores, 18, labels));
        for (int i = 0; i < 6; i++) {
            int best = 0;
            for (int k = 1; k < 3; k++)
                if (scores[i * 3 + k] > scores[i * 3 + best]) best = k;
            assert_int_equal(labels[i], best);
            if (s == 0)
                for (int k = 0; k < 3; k++) /* T = 3: rates are multiples of 1/3 */
                    assert_true(fabsf(scores[i * 3 + k] * 3 - roundf(scores[i * 3 + k] * 3)) < 1e-6f);
        }
        csnn_trainer_destroy(t);
        csnn_model_destroy(m);
    }
}

static void test_training_deterministic(void **state)
{
    (void)state;
    float *w[2];
    for (int run = 0; run < 2; run++) {
        csnn_model *m;
        csnn_trainer *t;
        CHECK_OK(csnn_model_create_from_spec(ctx, tiny_snn, 11, &m));
        CHECK_OK(csnn_trainer_create(m, &t));
        CHECK_OK(csnn_trainer_set_param(t, CSNN_TRAIN_SEED, 99));
        float x[4 * 64];
        int32_t y[4];
        random_batch(8, 4, 64, 3, x, y);
        for (int i = 0; i < 5; i++) CHECK_OK(csnn_trainer_step(t, x, y, 4, NULL));
        w[run] = malloc(8 * 20 * 4);
        CHECK_OK(csnn_model_get_tensor(m, "fc1.weight", w[run], 160));
        csnn_trainer_destroy(t);
        csnn_model_destroy(m);
    }
    assert_memory_equal(w[0], w[1], 160 * 4);
    free(w[0]);
    free(w[1]);
}

static void test_numeric_faults(void **state)
{
    (void)state;
    csnn_model *m;
    csnn_trainer *t;
    CHECK_OK(csnn_model_create_from_spec(ctx, "input 1x4x4\nflatten\nlinear 6\nrelu\nlinear 3\n", 0, &m));
    CHECK_OK(csnn_trainer_create(m, &t));
    float x[2 * 16];
    int32_t y[2] = {0, 2};
    random_batch(1, 2, 16, 3, x, y);
    y[0] = 0;
    y[1] = 2;
    float before[96], after[96];
    CHECK_OK(csnn_model_get_tensor(m, "fc1.weight", before, 96));
    x[5] = NAN;
    CHECK_STATUS(csnn_trainer_step(t, x, y, 2, NULL), CSNN_ERR_NUMERIC);
    assert_non_null(strstr(csnn_last_error_message(), "image 0"));
    x[5] = 0.5f;
    float scores[6] = {-1, -1, -1, -1, -1, -1};
    x[20] = INFINITY;
    CHECK_STATUS(csnn_model_predict(m, x, 2, scores, 6, NULL), CSNN_ERR_NUMERIC);
    assert_non_null(strstr(csnn_last_error_message(), "image 1 has a non-finite pixel at 4"));
    for (int i = 0; i < 6; i++) assert_true(scores[i] == -1.0f); /* nothing written */
    x[20] = 0.25f;
    int32_t bad[2] = {0, 3};
    CHECK_STATUS(csnn_trainer_step(t, x, bad, 2, NULL), CSNN_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(csnn_last_error_message(), "labels[1] = 3"));
    /* a learning rate far too high: the loss overflows and the model stays */
    CHECK_OK(csnn_trainer_set_param(t, CSNN_TRAIN_OPTIMIZER, CSNN_OPTIMIZER_SGD));
    CHECK_OK(csnn_trainer_set_param(t, CSNN_TRAIN_LEARNING_RATE, 1e3));
    CHECK_OK(csnn_trainer_set_param(t, CSNN_TRAIN_MOMENTUM, 0.0));
    for (int i = 0; i < 4; i++) x[i] = 1e30f;
    csnn_status st = CSNN_OK;
    int steps = 0;
    while (st == CSNN_OK && steps < 50) {
        CHECK_OK(csnn_model_get_tensor(m, "fc1.weight", before, 96));
        st = csnn_trainer_step(t, x, y, 2, NULL);
        steps++;
    }
    assert_int_equal(st, CSNN_ERR_NUMERIC);
    CHECK_OK(csnn_model_get_tensor(m, "fc1.weight", after, 96));
    assert_memory_equal(before, after, sizeof before);
    csnn_trainer_destroy(t);
    csnn_model_destroy(m);
}

/* The gradients of the whole engine (conv, BN, ReLU, pooling, linear,
 * flatten, CE and MSE losses) against central differences of the loss. */
static double loss_now(csnn_model *m, csnn_trainer *t, int n)
{
    CHECK_OK(csnn__model_forward(m, n, true, 0, 0, NULL));
    csnn_loss_desc d = {csnn__trainer_loss_kind(t), n, m->spec.classes, (float)t->s.label_smoothing};
    CHECK_OK(m->ops->loss(m->dev, &d, m->output, m->labels, m->loss, m->grad_out));
    float l;
    CHECK_OK(m->ops->download(m->dev, &l, m->loss, 4));
    return l;
}

static void test_engine_gradients(void **state)
{
    (void)state;
    const char *spec = "input 2x5x5\nstatic: conv 3 k=3 p=1\nbn\nrelu\nmaxpool 2 stride=1\n"
                       "conv 2 k=2 s=2 p=1\nflatten\nlinear 4\nrelu\nlinear 3\n";
    for (int loss = 0; loss < 2; loss++) {
        csnn_model *m;
        csnn_trainer *t;
        CHECK_OK(csnn_model_create_from_spec(ctx, spec, 21, &m));
        CHECK_OK(csnn_trainer_create(m, &t));
        CHECK_OK(csnn_trainer_set_param(t, CSNN_TRAIN_LOSS, loss));
        const int n = 3;
        float x[3 * 50];
        int32_t y[3] = {0, 2, 1};
        uint64_t seed = 77;
        for (int i = 0; i < n * 50; i++) x[i] = test_uniform(&seed, 0.0f, 1.0f);
        CHECK_OK(csnn__model_reserve(m, n, true));
        CHECK_OK(m->ops->upload(m->dev, m->input, x, sizeof x));
        CHECK_OK(m->ops->upload(m->dev, m->labels, y, sizeof y));
        loss_now(m, t, n);
        CHECK_OK(csnn__model_backward(m, n));
        for (int ti = 0; ti < m->n_tensors; ti++) {
            model_tensor *mt = &m->tensors[ti];
            if (mt->kind != CSNN_TENSOR_PARAM) continue;
            size_t k = (size_t)mt->numel;
            float *w = malloc(k * 4), *g = malloc(k * 4);
            CHECK_OK(m->ops->download(m->dev, g, mt->grad, k * 4));
            CHECK_OK(m->ops->download(m->dev, w, mt->data, k * 4));
            double gmax = 0;
            for (size_t e = 0; e < k; e++) gmax = fmax(gmax, fabs(g[e]));
            for (size_t e = 0; e < k; e += 1 + k / 7) {
                float orig = w[e];
                /* small enough that no ReLU or max-pool choice flips (the
                 * overlapping pooling windows have kinks nearby at 1e-2) */
                const float h = 1e-3f;
                w[e] = orig + h;
                CHECK_OK(m->ops->upload(m->dev, mt->data, w, k * 4));
                double lp = loss_now(m, t, n);
                w[e] = orig - h;
                CHECK_OK(m->ops->upload(m->dev, mt->data, w, k * 4));
                double lm = loss_now(m, t, n);
                w[e] = orig;
                CHECK_OK(m->ops->upload(m->dev, mt->data, w, k * 4));
                double fd = (lp - lm) / (2.0 * (double)h);
                /* float32 forward: differences carry ~1e-7/h absolute noise */
                double tol = 2e-3 * fmax(gmax, 1e-3) + 2e-4;
                if (fabs(fd - g[e]) > tol)
                    fail_msg("loss %d, %s[%zu]: backward %.6g, finite difference %.6g", loss,
                             mt->name, e, g[e], fd);
            }
            free(w);
            free(g);
        }
        csnn_trainer_destroy(t);
        csnn_model_destroy(m);
    }
}

/* Every lever of the execution plan computes the same thing: BN folded into
 * the conv weights (inference), fused neuron + max-pool and the spike-sparse
 * kernels (training and inference; spikes near the threshold may flip under
 * another summation order, so rates are compared with a tolerance). */
static void run_levers(const char *spec, unsigned disabled, float *out, double *loss,
                       double *rates)
{
    csnn_model *m;
    csnn_trainer *t;
    CHECK_OK(csnn_model_create_from_spec(ctx, spec, 31, &m));
    csnn__model_set_disabled(m, disabled);
    CHECK_OK(csnn_trainer_create(m, &t));
    float x[8 * 64];
    int32_t y[8];
    random_batch(3, 8, 64, 3, x, y);
    csnn_step_result r;
    csnn_step_result_init(&r);
    for (int i = 0; i < 4; i++) CHECK_OK(csnn_trainer_step(t, x, y, 8, &r));
    *loss = r.loss;
    CHECK_OK(csnn_model_predict(m, x, 8, out, 24, NULL));
    uint8_t px[8 * 64];
    for (int i = 0; i < 8 * 64; i++) px[i] = (uint8_t)(x[i] * 255.0f);
    csnn_dataset *ds;
    CHECK_OK(csnn_dataset_create_from_arrays(ctx, px, y, 8, 8, 8, NULL, 3, &ds));
    csnn_metrics *mt;
    CHECK_OK(csnn_model_evaluate(m, ds, &mt));
    int32_t nr;
    CHECK_OK(csnn_metrics_num_rates(mt, &nr));
    for (int k = 0; k < nr; k++) CHECK_OK(csnn_metrics_rate(mt, k, NULL, &rates[k]));
    csnn_metrics_destroy(mt);
    csnn_dataset_destroy(ds);
    csnn_trainer_destroy(t);
    csnn_model_destroy(m);
}

static void test_levers_agree(void **state)
{
    (void)state;
    const unsigned all = CSNN__NO_FUSION | CSNN__NO_SPARSE | CSNN__NO_BNFOLD | CSNN__NO_TEMPORAL;
    /* an ANN: raw outputs, so folding differences show directly */
    const char *ann = "input 1x8x8\nstatic: conv 4 k=3 p=1; bn\nrelu\nmaxpool 2\n"
                      "conv 5 k=3 p=1\nbn\nrelu\nflatten\nlinear 3\n";
    float a[24], b[24];
    double la, lb, ra[8], rb[8];
    run_levers(ann, all, a, &la, ra);
    run_levers(ann, 0, b, &lb, rb);
    assert_true(la == lb); /* training does not fold */
    for (int i = 0; i < 24; i++)
        if (fabsf(a[i] - b[i]) > 1e-4f * (1.0f + fabsf(a[i])))
            fail_msg("bnfold: output %d is %g, unfolded %g", i, b[i], a[i]);
    /* an SNN with neuron + max-pool pairs after both conv blocks */
    run_levers(tiny_snn, all, a, &la, ra);
    run_levers(tiny_snn, 0, b, &lb, rb);
    assert_true(fabs(la - lb) <= 0.02 * la + 1e-6);
    for (int k = 0; k < 4; k++)
        if (fabs(ra[k] - rb[k]) > 0.02) fail_msg("rate %d: %g with every lever, %g without", k, rb[k], ra[k]);
    for (int i = 0; i < 24; i++) assert_true(fabsf(a[i] - b[i]) <= 1.0f / 3.0f + 1e-6f);
    /* the temporal lever alone: its conv (the one after the static block) */
    csnn_model *m;
    CHECK_OK(csnn_model_create_from_spec(ctx, tiny_snn, 31, &m));
    assert_int_equal(m->layers[4].s.type, LAYER_CONV);
    assert_true(m->layers[4].temporal && !m->layers[0].temporal);
    csnn__model_set_disabled(m, CSNN__NO_TEMPORAL);
    assert_true(!m->layers[4].temporal && m->layers[4].sparse_in);
    csnn_model_destroy(m);
    run_levers(tiny_snn, CSNN__NO_TEMPORAL, a, &la, ra);
    assert_true(fabs(la - lb) <= 0.02 * la + 1e-6);
    for (int k = 0; k < 4; k++)
        if (fabs(ra[k] - rb[k]) > 0.02) fail_msg("rate %d: %g with temporal, %g without", k, rb[k], ra[k]);
    for (int i = 0; i < 24; i++) assert_true(fabsf(a[i] - b[i]) <= 1.0f / 3.0f + 1e-6f);
}

/* Per-layer timing: counters start at zero when switched on, count each
 * pass of each layer that runs (a fused max-pool books nothing, its neuron
 * layer everything), stop when switched off; times are >= 0 and together
 * within the wall-clock time of the calls. */
static void test_layer_timing(void **state)
{
    (void)state;
    csnn_model *m;
    csnn_trainer *t;
    CHECK_OK(csnn_model_create_from_spec(ctx, tiny_snn, 3, &m));
    CHECK_OK(csnn_trainer_create(m, &t));
    float x[8 * 64], out[24];
    int32_t y[8];
    random_batch(4, 8, 64, 3, x, y);
    csnn_step_result r;
    csnn_step_result_init(&r);
    CHECK_OK(csnn_trainer_step(t, x, y, 8, &r)); /* before: not counted */
    CHECK_OK(csnn_model_set_layer_timing(m, 1));
    const double t0 = csnn__now();
    for (int k = 0; k < 2; k++) CHECK_OK(csnn_trainer_step(t, x, y, 8, &r));
    CHECK_OK(csnn_model_predict(m, x, 8, out, 24, NULL));
    const double wall = csnn__now() - t0;
    CHECK_OK(csnn_model_set_layer_timing(m, 0));
    CHECK_OK(csnn_model_predict(m, x, 8, out, 24, NULL)); /* after: not counted */
    csnn_model_info mi;
    csnn_model_info_init(&mi);
    CHECK_OK(csnn_model_get_info(m, &mi));
    double total = 0;
    for (int32_t i = 0; i < mi.num_layers; i++) {
        csnn_layer_time lt;
        csnn_layer_time_init(&lt);
        CHECK_OK(csnn_model_layer_time(m, i, &lt));
        const layer *l = &m->layers[i];
        assert_string_equal(lt.name, l->s.name);
        const bool pooled = l->s.type == LAYER_MAXPOOL && m->layers[i - 1].fused;
        const bool folded = l->s.type == LAYER_BN && m->layers[i - 1].folds_bn;
        const bool with_conv = i == 2; /* sn1: with conv1 in the prediction */
        /* every layer runs forward 3 times (2 steps, 1 prediction; a BN
         * folded into its conv, and the first neuron layer run in one pass
         * with the static conv, only twice: the prediction books them under
         * the conv), backward twice from the first layer with parameters on */
        assert_int_equal(lt.forward_calls, pooled ? 0 : folded || with_conv ? 2 : 3);
        assert_int_equal(lt.backward_calls, pooled || i < m->first_param_layer ? 0 : 2);
        assert_true(lt.forward_s >= 0 && lt.backward_s >= 0);
        if (lt.forward_calls) assert_true(lt.forward_s > 0);
        total += lt.forward_s + lt.backward_s;
    }
    assert_true(total > 0 && total <= wall);
    assert_string_equal(m->layers[0].s.name, "conv1");
    csnn_layer_time lt;
    csnn_layer_time_init(&lt);
    CHECK_OK(csnn_model_layer_time(m, 0, &lt));
    assert_string_equal(lt.kind, "conv");
    /* switching on again restarts the counters */
    CHECK_OK(csnn_model_set_layer_timing(m, 1));
    CHECK_OK(csnn_model_layer_time(m, 0, &lt));
    assert_true(lt.forward_calls == 0 && lt.forward_s == 0.0);
    CHECK_OK(csnn_model_set_layer_timing(m, 0));
    CHECK_STATUS(csnn_model_layer_time(m, mi.num_layers, &lt), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_layer_time(m, -1, &lt), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_layer_time(m, 0, NULL), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_set_layer_timing(NULL, 1), CSNN_ERR_INVALID_ARGUMENT);
    lt.size = 8;
    CHECK_STATUS(csnn_model_layer_time(m, 0, &lt), CSNN_ERR_ABI_STRUCT_SIZE);
    csnn_trainer_destroy(t);
    csnn_model_destroy(m);
}

/* In inference the static conv (BN folded), the first neuron layer and its
 * max-pool run as one pass from 4 images on: the same outputs, bit for bit,
 * as the separate passes that smaller batches take (the temporal lever,
 * which also depends on the batch, off in both). */
static void test_static_fusion(void **state)
{
    (void)state;
    csnn_model *m;
    CHECK_OK(csnn_model_create_from_spec(ctx, tiny_snn, 13, &m));
    csnn__model_set_disabled(m, CSNN__NO_TEMPORAL);
    /* larger conv weights, so that the first layer fires */
    float w[4 * 9];
    CHECK_OK(csnn_model_get_tensor(m, "conv1.weight", w, 36));
    for (int i = 0; i < 36; i++) w[i] *= 6.0f;
    CHECK_OK(csnn_model_set_tensor(m, "conv1.weight", w, 36));
    float x[8 * 64], a[24], b[24];
    int32_t y[8];
    random_batch(6, 8, 64, 3, x, y);
    CHECK_OK(csnn_model_predict(m, x, 8, a, 24, NULL));
    for (int k = 0; k < 4; k++)
        CHECK_OK(csnn_model_predict(m, x + k * 2 * 64, 2, b + k * 2 * 3, 6, NULL));
    assert_memory_equal(a, b, sizeof a);
    /* the fused pass ran: per-layer timing books sn1 nothing for 8 images */
    CHECK_OK(csnn_model_set_layer_timing(m, 1));
    CHECK_OK(csnn_model_predict(m, x, 8, a, 24, NULL));
    csnn_layer_time lt;
    csnn_layer_time_init(&lt);
    CHECK_OK(csnn_model_layer_time(m, 2, &lt));
    assert_int_equal(m->layers[2].s.type, LAYER_NEURON);
    assert_int_equal(lt.forward_calls, 0);
    CHECK_OK(csnn_model_predict(m, x, 2, a, 6, NULL));
    CHECK_OK(csnn_model_layer_time(m, 2, &lt));
    assert_int_equal(lt.forward_calls, 1);
    csnn_model_destroy(m);
}

/* Inference without a trainer reads packed weights in its spike-fed linear
 * layers: the same outputs, bit for bit, as the tile-by-tile path, also
 * after the weights change (the packs follow the parameters). */
static void test_packed_weights(void **state)
{
    (void)state;
    const char *snn = "input 1x32x32\nsteps 4\nstatic: conv 8 k=3 p=1; bn\nif\nmaxpool 2\n"
                      "flatten\nlinear 512\nif\nlinear 5\nif\n";
    const int n = 8, per = 32 * 32;
    float *x = malloc(sizeof(float) * (size_t)n * per);
    uint64_t sd = 9;
    for (int i = 0; i < n * per; i++) x[i] = test_uniform(&sd, 0, 1);
    float a[8 * 5], b[8 * 5];
    csnn_model *m[2];
    for (int k = 0; k < 2; k++) {
        CHECK_OK(csnn_model_create_from_spec(ctx, snn, 5, &m[k]));
        if (k) csnn__model_set_disabled(m[k], CSNN__NO_PACK);
        /* larger weights, so that the layers fire */
        float *w = malloc(sizeof(float) * 2048 * 512);
        CHECK_OK(csnn_model_get_tensor(m[k], "fc1.weight", w, 2048 * 512));
        for (int i = 0; i < 2048 * 512; i++) w[i] *= 8.0f;
        CHECK_OK(csnn_model_set_tensor(m[k], "fc1.weight", w, 2048 * 512));
        free(w);
    }
    assert_true(m[0]->layers[5].packs && !m[1]->layers[5].packs);
    for (int round = 0; round < 2; round++) {
        CHECK_OK(csnn_model_predict(m[0], x, (size_t)n, a, sizeof a / sizeof *a, NULL));
        CHECK_OK(csnn_model_predict(m[1], x, (size_t)n, b, sizeof b / sizeof *b, NULL));
        assert_non_null(m[0]->layers[5].pack_w);
        assert_null(m[1]->layers[5].pack_w);
        assert_memory_equal(a, b, sizeof a);
        double sum = 0;
        for (int i = 0; i < n * 5; i++) sum += a[i];
        assert_true(sum > 0); /* spikes reached the output */
        /* change fc1 in both: the packs must follow */
        float *w = malloc(sizeof(float) * 2048 * 512);
        for (int k = 0; k < 2; k++) {
            CHECK_OK(csnn_model_get_tensor(m[k], "fc1.weight", w, 2048 * 512));
            for (int i = 0; i < 2048 * 512; i += 3) w[i] = -w[i];
            CHECK_OK(csnn_model_set_tensor(m[k], "fc1.weight", w, 2048 * 512));
        }
        free(w);
    }
    /* a trainer drops them: training memory is not spent on packs */
    csnn_trainer *t;
    CHECK_OK(csnn_trainer_create(m[0], &t));
    CHECK_OK(csnn_model_predict(m[0], x, (size_t)n, a, sizeof a / sizeof *a, NULL));
    assert_null(m[0]->layers[5].pack_w);
    CHECK_OK(csnn_model_predict(m[1], x, (size_t)n, b, sizeof b / sizeof *b, NULL));
    assert_memory_equal(a, b, sizeof a);
    /* and once the trainer is gone, the model packs again */
    csnn_trainer_destroy(t);
    CHECK_OK(csnn_model_predict(m[0], x, (size_t)n, a, sizeof a / sizeof *a, NULL));
    assert_non_null(m[0]->layers[5].pack_w);
    assert_memory_equal(a, b, sizeof a);
    /* a negative BN variance is refused, as the file reader refuses it */
    float var[8];
    CHECK_OK(csnn_model_get_tensor(m[0], "bn1.running_var", var, 8));
    var[3] = -0.5f;
    CHECK_STATUS(csnn_model_set_tensor(m[0], "bn1.running_var", var, 8), CSNN_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(csnn_last_error_message(), "bn1.running_var[3]"));
    csnn_model_destroy(m[0]);
    csnn_model_destroy(m[1]);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presets),
        cmocka_unit_test(test_spec_syntax),
        cmocka_unit_test(test_spec_errors),
        cmocka_unit_test(test_summary),
        cmocka_unit_test(test_tensors),
        cmocka_unit_test(test_init_distribution),
        cmocka_unit_test(test_class_names),
        cmocka_unit_test(test_training_loss_falls),
        cmocka_unit_test(test_training_deterministic),
        cmocka_unit_test(test_numeric_faults),
        cmocka_unit_test(test_engine_gradients),
        cmocka_unit_test(test_levers_agree),
        cmocka_unit_test(test_layer_timing),
        cmocka_unit_test(test_static_fusion),
        cmocka_unit_test(test_packed_weights),
    };
    return cmocka_run_group_tests_name("model", tests, setup, teardown);
}
