/*
 * test_api.c - every public entry point on bad input: NULL handles and
 * pointers, bad sizes, size-versioned structs, device strings, backend
 * registration. Each must return the documented status with a non-empty
 * message, never crash, never leak (run under valgrind and ASan).
 */
#include <float.h>
#include <stdarg.h>

#include "test_util.h"
#include "csnn/csnn_backend.h"

static void test_status_strings(void **state)
{
    (void)state;
    const csnn_status all[] = {
        CSNN_OK, CSNN_STOPPED, CSNN_ERR_INVALID_ARGUMENT, CSNN_ERR_OUT_OF_MEMORY,
        CSNN_ERR_DEVICE_OUT_OF_MEMORY, CSNN_ERR_UNSUPPORTED, CSNN_ERR_BACKEND_UNAVAILABLE,
        CSNN_ERR_IO, CSNN_ERR_FORMAT, CSNN_ERR_VERSION, CSNN_ERR_ABI_STRUCT_SIZE, CSNN_ERR_STATE,
        CSNN_ERR_SHAPE, CSNN_ERR_NUMERIC, CSNN_ERR_DEVICE, CSNN_ERR_SPEC, CSNN_ERR_NOT_FOUND,
        CSNN_ERR_LIMIT, CSNN_ERR_INTERNAL};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        assert_non_null(strstr(csnn_status_name(all[i]), "CSNN_"));
        assert_string_not_equal(csnn_status_string(all[i]), "unknown status");
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(csnn_status_name(all[i]), csnn_status_name(all[j]));
    }
    assert_string_equal(csnn_status_name(CSNN_ERR_SHAPE), "CSNN_ERR_SHAPE");
    assert_string_equal(csnn_status_name((csnn_status)-1000), "CSNN_UNKNOWN_STATUS");
    assert_string_equal(csnn_status_string((csnn_status)77), "unknown status");
    /* the pinned numeric values are ABI */
    assert_int_equal(CSNN_ERR_INVALID_ARGUMENT, -1);
    assert_int_equal(CSNN_ERR_LIMIT, -16);
    assert_int_equal(CSNN_ERR_INTERNAL, -17);
    csnn_clear_last_error();
    assert_string_equal(csnn_last_error_message(), "");
}

static void test_version(void **state)
{
    (void)state;
    assert_int_equal(csnn_version_number(), CSNN_VERSION_NUMBER);
    assert_string_equal(csnn_version_string(), CSNN_VERSION_STRING);
    assert_int_equal(csnn_abi_version(), CSNN_ABI_VERSION);
    char buf[32];
    snprintf(buf, sizeof buf, "%d.%d.%d", CSNN_VERSION_MAJOR, CSNN_VERSION_MINOR,
             CSNN_VERSION_PATCH);
    assert_string_equal(buf, CSNN_VERSION_STRING);
}

static void test_context_errors(void **state)
{
    (void)state;
    csnn_context *ctx = (csnn_context *)1;
    CHECK_STATUS(csnn_context_create(NULL, NULL), CSNN_ERR_INVALID_ARGUMENT);
    csnn_context_options o;
    const char *bad_devices[] = {"CPU", "", "cpu:", "cpu:x", "cpu:-1", ":0", "cu da", "cpu:99999"};
    for (size_t i = 0; i < sizeof bad_devices / sizeof bad_devices[0]; i++) {
        csnn_context_options_init(&o);
        o.device = bad_devices[i];
        CHECK_STATUS(csnn_context_create(&o, &ctx), CSNN_ERR_INVALID_ARGUMENT);
        assert_null(ctx);
    }
    csnn_context_options_init(&o);
    o.device = "cpu:1";
    CHECK_STATUS(csnn_context_create(&o, &ctx), CSNN_ERR_BACKEND_UNAVAILABLE);
    assert_non_null(strstr(csnn_last_error_message(), "index 1 out of range"));
    o.device = "nosuchbackend";
    CHECK_STATUS(csnn_context_create(&o, &ctx), CSNN_ERR_BACKEND_UNAVAILABLE);
    assert_non_null(strstr(csnn_last_error_message(), "libcsnn-nosuchbackend.so"));
    /* remembered failures repeat their message */
    CHECK_STATUS(csnn_device_available("nosuchbackend:0"), CSNN_ERR_BACKEND_UNAVAILABLE);
    CHECK_STATUS(csnn_device_available(NULL), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_OK(csnn_device_available("cpu"));
    CHECK_OK(csnn_device_available("auto"));
    csnn_context_options_init(&o);
    o.n_threads = -1;
    CHECK_STATUS(csnn_context_create(&o, &ctx), CSNN_ERR_INVALID_ARGUMENT);
    csnn_context_options_init(&o);
    o.log_level = 9;
    CHECK_STATUS(csnn_context_create(&o, &ctx), CSNN_ERR_INVALID_ARGUMENT);
    csnn_context_options_init(&o);
    o.reserved = 1;
    CHECK_STATUS(csnn_context_create(&o, &ctx), CSNN_ERR_INVALID_ARGUMENT);

    /* size-versioned struct: too small, or larger with a non-zero tail */
    struct {
        csnn_context_options o;
        uint64_t tail;
    } big;
    memset(&big, 0, sizeof big);
    csnn_context_options_init(&big.o);
    big.o.size = sizeof big;
    CHECK_OK(csnn_context_create(&big.o, &ctx)); /* zero tail: accepted */
    csnn_context_destroy(ctx);
    big.tail = 5;
    CHECK_STATUS(csnn_context_create(&big.o, &ctx), CSNN_ERR_ABI_STRUCT_SIZE);
    csnn_context_options_init(&o);
    o.size = 8;
    CHECK_STATUS(csnn_context_create(&o, &ctx), CSNN_ERR_ABI_STRUCT_SIZE);

    csnn_context_destroy(NULL);
    assert_null(csnn_context_device(NULL));
    assert_null(csnn_context_device_description(NULL));
    assert_int_equal(csnn_context_threads(NULL), 0);
    CHECK_STATUS(csnn_context_set_threads(NULL, 1), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_context_set_log(NULL, CSNN_LOG_INFO, NULL, NULL), CSNN_ERR_INVALID_ARGUMENT);

    csnn_context_options_init(&o);
    o.n_threads = 3;
    CHECK_OK(csnn_context_create(&o, &ctx));
    assert_string_equal(csnn_context_device(ctx), "cpu");
    assert_int_equal(csnn_context_threads(ctx), 3);
    assert_true(strlen(csnn_context_device_description(ctx)) > 0);
    CHECK_STATUS(csnn_context_set_threads(ctx, -2), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_OK(csnn_context_set_threads(ctx, 1));
    assert_int_equal(csnn_context_threads(ctx), 1);
    CHECK_STATUS(csnn_context_set_log(ctx, (csnn_log_level)17, NULL, NULL),
                 CSNN_ERR_INVALID_ARGUMENT);
    csnn_context_destroy(ctx);
}

static void test_model_errors(void **state)
{
    (void)state;
    csnn_context *ctx;
    CHECK_OK(csnn_context_create(NULL, &ctx));
    csnn_model *m = (csnn_model *)1;
    const char *s;
    CHECK_STATUS(csnn_preset_spec(NULL, &s), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_preset_spec("fer-csnn", NULL), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_create_preset(NULL, "fer-csnn", 0, &m), CSNN_ERR_INVALID_ARGUMENT);
    assert_null(m);
    CHECK_STATUS(csnn_model_create_preset(ctx, NULL, 0, &m), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_create_preset(ctx, "fer-csnn", 0, NULL), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_create_from_spec(ctx, NULL, 0, &m), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_create_from_spec(NULL, "input 1x1x1\nflatten\n", 0, &m),
                 CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_load(ctx, NULL, &m), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_load(NULL, "x", &m), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_load(ctx, "x", NULL), CSNN_ERR_INVALID_ARGUMENT);
    csnn_model_destroy(NULL);

    CHECK_OK(csnn_model_create_from_spec(ctx, "input 1x2x2\nflatten\nlinear 2\n", 0, &m));
    csnn_model_info info;
    csnn_model_info_init(&info);
    CHECK_STATUS(csnn_model_get_info(NULL, &info), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_get_info(m, NULL), CSNN_ERR_INVALID_ARGUMENT);
    info.size = 4;
    CHECK_STATUS(csnn_model_get_info(m, &info), CSNN_ERR_ABI_STRUCT_SIZE);
    CHECK_STATUS(csnn_model_spec(NULL, &s), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_spec(m, NULL), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_summary(NULL, 1, NULL, 0, NULL), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_summary(m, 1, NULL, 10, NULL), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_class_name(NULL, 0, &s), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_class_name(m, -1, &s), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_class_name(m, 0, NULL), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_set_class_names(NULL, NULL, 0), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_set_class_names(m, NULL, 2), CSNN_ERR_INVALID_ARGUMENT);
    const char *with_null[2] = {"a", NULL};
    CHECK_STATUS(csnn_model_set_class_names(m, with_null, 2), CSNN_ERR_INVALID_ARGUMENT);
    csnn_tensor_info ti;
    csnn_tensor_info_init(&ti);
    CHECK_STATUS(csnn_model_tensor_info(NULL, 0, &ti), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_tensor_info(m, 0, NULL), CSNN_ERR_INVALID_ARGUMENT);
    float v[8];
    CHECK_STATUS(csnn_model_get_tensor(NULL, "fc1.weight", v, 8), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_get_tensor(m, NULL, v, 8), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_get_tensor(m, "fc1.weight", NULL, 8), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_set_tensor(NULL, "fc1.weight", v, 8), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_set_tensor(m, "fc1.weight", NULL, 8), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_save(NULL, "x"), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_save(m, NULL), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_save(m, ""), CSNN_ERR_INVALID_ARGUMENT);

    float img[8] = {0}, scores[4];
    int32_t labels[2];
    CHECK_STATUS(csnn_model_predict(NULL, img, 2, scores, 4, labels), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_predict(m, NULL, 2, scores, 4, labels), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_predict(m, img, 2, NULL, 4, labels), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_predict(m, img, 0, scores, 4, labels), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_model_predict(m, img, 2, scores, 3, labels), CSNN_ERR_SHAPE);
    CHECK_OK(csnn_model_predict(m, img, 2, scores, 4, NULL));
    /* ties go to the first index, as torch.argmax */
    CHECK_OK(csnn_model_set_tensor(m, "fc1.weight", (float[8]){0}, 8));
    CHECK_OK(csnn_model_set_tensor(m, "fc1.bias", (float[2]){0.5f, 0.5f}, 2));
    labels[0] = labels[1] = -1;
    CHECK_OK(csnn_model_predict(m, img, 2, scores, 4, labels));
    assert_int_equal(labels[0], 0);
    assert_int_equal(labels[1], 0);
    csnn_model_destroy(m);
    csnn_context_destroy(ctx);
}

static void test_trainer_errors(void **state)
{
    (void)state;
    csnn_context *ctx;
    CHECK_OK(csnn_context_create(NULL, &ctx));
    csnn_model *m, *noparams;
    CHECK_OK(csnn_model_create_from_spec(ctx, "input 1x2x2\nflatten\nlinear 2\n", 0, &m));
    CHECK_OK(csnn_model_create_from_spec(ctx, "input 1x2x2\nflatten\nrelu\n", 0, &noparams));
    csnn_trainer *t = (csnn_trainer *)1;
    CHECK_STATUS(csnn_trainer_create(NULL, &t), CSNN_ERR_INVALID_ARGUMENT);
    assert_null(t);
    CHECK_STATUS(csnn_trainer_create(m, NULL), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_trainer_create(noparams, &t), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_OK(csnn_trainer_create(m, &t));
    csnn_trainer *t2;
    CHECK_STATUS(csnn_trainer_create(m, &t2), CSNN_ERR_STATE);
    csnn_trainer_destroy(NULL);

    double v, lo, hi;
    CHECK_STATUS(csnn_trainer_set_param(NULL, CSNN_TRAIN_LEARNING_RATE, 1), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_trainer_set_param(t, (csnn_train_param)12345, 1), CSNN_ERR_UNSUPPORTED);
    CHECK_STATUS(csnn_trainer_set_param(t, CSNN_TRAIN_LEARNING_RATE, 0), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_trainer_set_param(t, CSNN_TRAIN_LEARNING_RATE, -1), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_trainer_set_param(t, CSNN_TRAIN_LEARNING_RATE, 0.0 / 0.0),
                 CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_trainer_set_param(t, CSNN_TRAIN_BETA1, 1.0), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_trainer_set_param(t, CSNN_TRAIN_OPTIMIZER, 1.5), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_trainer_set_param(t, CSNN_TRAIN_OPTIMIZER, 3), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_trainer_set_param(t, CSNN_TRAIN_LABEL_SMOOTHING, 1), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_OK(csnn_trainer_set_param(t, CSNN_TRAIN_LEARNING_RATE, 0.5));
    CHECK_OK(csnn_trainer_get_param(t, CSNN_TRAIN_LEARNING_RATE, &v));
    assert_true(v == 0.5);
    CHECK_OK(csnn_trainer_get_param(t, CSNN_TRAIN_BETA2, &v));
    assert_true(v == 0.999);
    CHECK_OK(csnn_trainer_get_param(t, CSNN_TRAIN_LABEL_SMOOTHING, &v));
    assert_true(v == 0.1);
    CHECK_STATUS(csnn_trainer_get_param(t, CSNN_TRAIN_LEARNING_RATE, NULL), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_trainer_get_param(t, (csnn_train_param)7, &v), CSNN_ERR_UNSUPPORTED);
    CHECK_OK(csnn_train_param_bounds(CSNN_TRAIN_OPTIMIZER, &lo, &hi));
    assert_true(lo == 0 && hi == 2);
    CHECK_STATUS(csnn_train_param_bounds((csnn_train_param)7, &lo, &hi), CSNN_ERR_UNSUPPORTED);
    CHECK_STATUS(csnn_train_param_bounds(CSNN_TRAIN_EPS, NULL, &hi), CSNN_ERR_INVALID_ARGUMENT);

    float x[8] = {0};
    int32_t y[2] = {0, 1};
    csnn_step_result r;
    csnn_step_result_init(&r);
    CHECK_STATUS(csnn_trainer_step(NULL, x, y, 2, &r), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_trainer_step(t, NULL, y, 2, &r), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_trainer_step(t, x, NULL, 2, &r), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_trainer_step(t, x, y, 0, &r), CSNN_ERR_INVALID_ARGUMENT);
    r.size = 3;
    CHECK_STATUS(csnn_trainer_step(t, x, y, 2, &r), CSNN_ERR_ABI_STRUCT_SIZE);
    int64_t steps;
    CHECK_STATUS(csnn_trainer_steps(NULL, &steps), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_trainer_steps(t, NULL), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_trainer_save_checkpoint(NULL, "x"), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_trainer_save_checkpoint(t, NULL), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_trainer_load_checkpoint(NULL, "x"), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_trainer_load_checkpoint(t, NULL), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_trainer_load_checkpoint(t, "/nonexistent/ck"), CSNN_ERR_IO);
    /* a second trainer may attach once the first is gone */
    csnn_trainer_destroy(t);
    CHECK_OK(csnn_trainer_create(m, &t2));
    csnn_trainer_destroy(t2);
    csnn_model_destroy(noparams);
    csnn_model_destroy(m);
    csnn_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Backend registration                                                      */
/* ------------------------------------------------------------------------ */

/* A backend made of the CPU backend's entries, found through the registry
 * (a context on "cpu" exposes nothing of the table publicly, so the test
 * builds its own table from a module-like copy). */
extern const csnn_backend_ops csnn__cpu_backend_ops;

static void test_backend_registration(void **state)
{
    (void)state;
    static csnn_backend_ops mine;
    mine = csnn__cpu_backend_ops;
    mine.name = "mirror";
    CHECK_OK(csnn_backend_register(&mine));
    CHECK_STATUS(csnn_backend_register(&mine), CSNN_ERR_INVALID_ARGUMENT); /* twice */
    CHECK_STATUS(csnn_backend_register(NULL), CSNN_ERR_INVALID_ARGUMENT);

    static csnn_backend_ops bad;
    bad = csnn__cpu_backend_ops;
    bad.name = "bad1";
    bad.abi_version = CSNN_BACKEND_ABI_VERSION + 1;
    CHECK_STATUS(csnn_backend_register(&bad), CSNN_ERR_VERSION);
    bad.abi_version = CSNN_BACKEND_ABI_VERSION;
    bad.struct_size = 16;
    CHECK_STATUS(csnn_backend_register(&bad), CSNN_ERR_ABI_STRUCT_SIZE);
    bad.struct_size = sizeof bad;
    bad.name = "Bad Name";
    CHECK_STATUS(csnn_backend_register(&bad), CSNN_ERR_INVALID_ARGUMENT);
    bad.name = "bad2";
    bad.neuron_forward = NULL;
    CHECK_STATUS(csnn_backend_register(&bad), CSNN_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(csnn_last_error_message(), "neuron_forward"));

    /* the registered backend serves contexts and trains like the CPU */
    float w[2][12];
    const char *devices[2] = {"cpu", "mirror:0"};
    for (int d = 0; d < 2; d++) {
        csnn_context_options o;
        csnn_context_options_init(&o);
        o.device = devices[d];
        csnn_context *ctx;
        CHECK_OK(csnn_context_create(&o, &ctx));
        assert_string_equal(csnn_context_device(ctx), d == 0 ? "cpu" : "mirror:0");
        csnn_model *m;
        csnn_trainer *t;
        CHECK_OK(csnn_model_create_from_spec(ctx, "input 1x2x2\nflatten\nlinear 3\n", 1, &m));
        CHECK_OK(csnn_trainer_create(m, &t));
        float x[8] = {0.1f, 0.2f, 0.3f, 0.4f, 0.9f, 0.8f, 0.7f, 0.6f};
        int32_t y[2] = {0, 2};
        CHECK_OK(csnn_trainer_step(t, x, y, 2, NULL));
        CHECK_OK(csnn_model_get_tensor(m, "fc1.weight", w[d], 12));
        csnn_trainer_destroy(t);
        csnn_model_destroy(m);
        csnn_context_destroy(ctx);
    }
    assert_memory_equal(w[0], w[1], sizeof w[0]);
}

/* A backend error message set through the public reporting call. */
static void test_backend_set_error(void **state)
{
    (void)state;
    assert_int_equal(csnn_backend_set_error(CSNN_ERR_DEVICE, "kernel %s failed: %d", "k", 7),
                     CSNN_ERR_DEVICE);
    assert_string_equal(csnn_last_error_message(), "kernel k failed: 7");
    assert_int_equal(csnn_backend_set_error(CSNN_ERR_DEVICE, NULL), CSNN_ERR_DEVICE);
    assert_string_equal(csnn_last_error_message(), "device error");
}

static void count_log(void *user, csnn_log_level level, const char *message)
{
    (void)level;
    assert_non_null(message);
    (*(int *)user)++;
}

static void test_logging(void **state)
{
    (void)state;
    int calls = 0;
    csnn_context_options o;
    csnn_context_options_init(&o);
    o.log_level = CSNN_LOG_DEBUG;
    o.log_fn = count_log;
    o.log_user_data = &calls;
    csnn_context *ctx;
    CHECK_OK(csnn_context_create(&o, &ctx));
    assert_true(calls >= 1); /* the context announces its device at INFO */
    csnn_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_strings),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_context_errors),
        cmocka_unit_test(test_model_errors),
        cmocka_unit_test(test_trainer_errors),
        cmocka_unit_test(test_backend_registration),
        cmocka_unit_test(test_backend_set_error),
        cmocka_unit_test(test_logging),
    };
    return cmocka_run_group_tests_name("api", tests, NULL, NULL);
}
