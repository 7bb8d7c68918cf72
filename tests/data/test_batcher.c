/* test_batcher.c - shuffled float batches built by a background thread. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data_test_util.h"
#include "data/data_private.h"

enum { N = 103, H = 2, W = 3, PX = H * W, CLASSES = 4 };

static csnn_context *ctx;
static csnn_dataset *ds;

/* Sample i carries its index in its first two pixels. */
static int setup(void **state)
{
    (void)state;
    ctx = dt_context();
    static uint8_t px[N * PX];
    static int32_t labels[N];
    for (int i = 0; i < N; i++) {
        px[i * PX] = (uint8_t)(i & 255);
        px[i * PX + 1] = (uint8_t)(i >> 8);
        for (int k = 2; k < PX; k++) px[i * PX + k] = (uint8_t)(i * 7 + k);
        labels[i] = i % CLASSES;
    }
    dt_assert_ok(csnn_dataset_create_from_arrays(ctx, px, labels, N, H, W, NULL, CLASSES, &ds));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    csnn_dataset_destroy(ds);
    csnn_context_destroy(ctx);
    return 0;
}

static int sample_index(const float *img)
{
    return (int)lroundf(img[0] * 255.0f) + 256 * (int)lroundf(img[1] * 255.0f);
}

static void pause_a_little(uint32_t *rs)
{
    struct timespec ts = {0, (long)(dt_rand(rs) % 2000000)};
    nanosleep(&ts, NULL);
}

/* The sample order of one epoch (without augmentation); checks batch sizes
 * and labels on the way. `jitter` sleeps between calls. */
static void epoch_order(csnn_batcher *b, int32_t batch, uint64_t epoch, const int32_t *label_map,
                        int *order, bool jitter)
{
    dt_assert_ok(csnn__batcher_start_epoch(b, epoch));
    int k = 0;
    uint32_t rs = (uint32_t)epoch + 1;
    for (int64_t bi = 0;; bi++) {
        const float *img;
        const int32_t *lab;
        int32_t n;
        if (jitter) pause_a_little(&rs);
        dt_assert_ok(csnn__batcher_next(b, &img, &lab, &n));
        if (n == 0) {
            assert_int_equal(bi, csnn__batcher_num_batches(b));
            break;
        }
        int32_t want_n = bi == (N - 1) / batch ? N - (N - 1) / batch * batch : batch;
        assert_int_equal(n, want_n);
        for (int j = 0; j < n; j++) {
            int idx = sample_index(img + (size_t)j * PX);
            assert_true(idx >= 0 && idx < N);
            int32_t label = idx % CLASSES;
            assert_int_equal(lab[j], label_map ? label_map[label] : label);
            order[k++] = idx;
        }
    }
    assert_int_equal(k, N);
    /* the end stays the end */
    const float *img;
    const int32_t *lab;
    int32_t n = -1;
    dt_assert_ok(csnn__batcher_next(b, &img, &lab, &n));
    assert_int_equal(n, 0);
}

static void assert_permutation(const int *order)
{
    int seen[N] = {0};
    for (int i = 0; i < N; i++) seen[order[i]]++;
    for (int i = 0; i < N; i++) assert_int_equal(seen[i], 1);
}

static void test_each_sample_once(void **state)
{
    (void)state;
    csnn_batcher *b;
    dt_assert_ok(csnn__batcher_create(ds, 10, true, NULL, 1, NULL, &b));
    assert_int_equal(csnn__batcher_num_batches(b), 11);
    int o0[N], o1[N], o2[N];
    epoch_order(b, 10, 0, NULL, o0, false);
    epoch_order(b, 10, 1, NULL, o1, false);
    epoch_order(b, 10, 2, NULL, o2, false);
    assert_permutation(o0);
    assert_permutation(o1);
    assert_permutation(o2);
    assert_true(memcmp(o0, o1, sizeof o0) != 0);
    assert_true(memcmp(o1, o2, sizeof o0) != 0);
    /* shuffled, not the identity */
    int fixed = 0;
    for (int i = 0; i < N; i++) fixed += o0[i] == i;
    assert_true(fixed < 10);
    int first0[N];
    memcpy(first0, o0, sizeof o0);
    csnn__batcher_destroy(b);

    /* without shuffle: dataset order */
    dt_assert_ok(csnn__batcher_create(ds, 16, false, NULL, 1, NULL, &b));
    epoch_order(b, 16, 4, NULL, o0, false);
    for (int i = 0; i < N; i++) assert_int_equal(o0[i], i);
    csnn__batcher_destroy(b);

    /* one batch holding everything, and batches of one */
    dt_assert_ok(csnn__batcher_create(ds, 1000, true, NULL, 1, NULL, &b));
    assert_int_equal(csnn__batcher_num_batches(b), 1);
    epoch_order(b, 1000, 0, NULL, o1, false);
    assert_memory_equal(o1, first0, sizeof o1); /* same seed and epoch, any batch size */
    csnn__batcher_destroy(b);
    dt_assert_ok(csnn__batcher_create(ds, 1, true, NULL, 1, NULL, &b));
    assert_int_equal(csnn__batcher_num_batches(b), N);
    epoch_order(b, 1, 0, NULL, o2, false);
    assert_permutation(o2);
    csnn__batcher_destroy(b);
}

static void test_order_depends_on_seed_and_epoch(void **state)
{
    (void)state;
    int ref[N], got[N];
    csnn_batcher *a, *b;
    dt_assert_ok(csnn__batcher_create(ds, 10, true, NULL, 42, NULL, &a));
    epoch_order(a, 10, 5, NULL, ref, false);
    csnn__batcher_destroy(a);

    /* another batcher, slow consumer, an epoch abandoned half-way first */
    dt_assert_ok(csnn__batcher_create(ds, 10, true, NULL, 42, NULL, &b));
    dt_assert_ok(csnn__batcher_start_epoch(b, 0));
    for (int i = 0; i < 3; i++) {
        const float *img;
        const int32_t *lab;
        int32_t n;
        dt_assert_ok(csnn__batcher_next(b, &img, &lab, &n));
        assert_int_equal(n, 10);
    }
    epoch_order(b, 10, 5, NULL, got, true);
    assert_memory_equal(got, ref, sizeof ref);
    /* restarting the same epoch gives it again */
    epoch_order(b, 10, 5, NULL, got, false);
    assert_memory_equal(got, ref, sizeof ref);
    csnn__batcher_destroy(b);

    /* the order does not depend on the batch size either */
    dt_assert_ok(csnn__batcher_create(ds, 7, true, NULL, 42, NULL, &b));
    epoch_order(b, 7, 5, NULL, got, false);
    assert_memory_equal(got, ref, sizeof ref);
    csnn__batcher_destroy(b);

    /* another seed: another order */
    dt_assert_ok(csnn__batcher_create(ds, 10, true, NULL, 43, NULL, &b));
    epoch_order(b, 10, 5, NULL, got, false);
    assert_true(memcmp(got, ref, sizeof ref) != 0);
    csnn__batcher_destroy(b);
}

static void test_label_map(void **state)
{
    (void)state;
    const int32_t map[CLASSES] = {3, 2, 1, 0};
    csnn_batcher *b;
    int order[N];
    dt_assert_ok(csnn__batcher_create(ds, 9, true, NULL, 3, map, &b));
    epoch_order(b, 9, 0, map, order, false); /* checks lab[j] == map[label] */
    csnn__batcher_destroy(b);
    const int32_t bad[CLASSES] = {0, -1, 1, 2};
    b = (csnn_batcher *)1;
    dt_assert_error(csnn__batcher_create(ds, 9, true, NULL, 3, bad, &b),
                    CSNN_ERR_INVALID_ARGUMENT, "label_map[1]");
    assert_null(b);
}

static void test_augmented_batches(void **state)
{
    (void)state;
    csnn_augment aug;
    csnn__augment_recipe(&aug);
    aug.crop_pad = 1;
    int order[N];
    csnn_batcher *plain, *b;
    dt_assert_ok(csnn__batcher_create(ds, 8, true, NULL, 9, NULL, &plain));
    epoch_order(plain, 8, 2, NULL, order, false);
    csnn__batcher_destroy(plain);
    dt_assert_ok(csnn__batcher_create(ds, 8, true, &aug, 9, NULL, &b));
    dt_assert_ok(csnn__batcher_start_epoch(b, 2));
    int k = 0;
    for (;;) {
        const float *img;
        const int32_t *lab;
        int32_t n;
        dt_assert_ok(csnn__batcher_next(b, &img, &lab, &n));
        if (n == 0) break;
        for (int j = 0; j < n; j++, k++) {
            float want[PX];
            int idx = order[k];
            csnn__augment_sample(&aug, 9, 2, idx, ds->pixels + (size_t)idx * PX, H, W, want);
            assert_memory_equal(img + (size_t)j * PX, want, sizeof want);
            assert_int_equal(lab[j], idx % CLASSES);
        }
    }
    assert_int_equal(k, N);
    csnn__batcher_destroy(b);
}

static void test_restarts_and_shutdown(void **state)
{
    (void)state;
    uint32_t rs = 5;
    int ref[8][N];
    csnn_batcher *b;
    dt_assert_ok(csnn__batcher_create(ds, 4, true, NULL, 77, NULL, &b));
    for (int e = 0; e < 8; e++) epoch_order(b, 4, (uint64_t)e, NULL, ref[e], false);
    /* random restarts mid-epoch: every batch still matches its epoch */
    for (int it = 0; it < 60; it++) {
        int e = (int)(dt_rand(&rs) % 8);
        dt_assert_ok(csnn__batcher_start_epoch(b, (uint64_t)e));
        int take = (int)(dt_rand(&rs) % 30);
        for (int t = 0, k = 0; t < take; t++) {
            const float *img;
            const int32_t *lab;
            int32_t n;
            if (dt_rand(&rs) % 4 == 0) pause_a_little(&rs);
            dt_assert_ok(csnn__batcher_next(b, &img, &lab, &n));
            if (n == 0) break;
            for (int j = 0; j < n; j++, k++) assert_int_equal(sample_index(img + j * PX), ref[e][k]);
        }
    }
    csnn__batcher_destroy(b); /* mid-epoch */
    /* destroyed right after creation, or right after a start */
    dt_assert_ok(csnn__batcher_create(ds, 4, true, NULL, 77, NULL, &b));
    csnn__batcher_destroy(b);
    dt_assert_ok(csnn__batcher_create(ds, 4, true, NULL, 77, NULL, &b));
    dt_assert_ok(csnn__batcher_start_epoch(b, 1));
    csnn__batcher_destroy(b);
    csnn__batcher_destroy(NULL);
}

static void test_errors_and_empty(void **state)
{
    (void)state;
    csnn_batcher *b = (csnn_batcher *)1;
    dt_assert_error(csnn__batcher_create(ds, 0, true, NULL, 1, NULL, &b),
                    CSNN_ERR_INVALID_ARGUMENT, "batch 0");
    assert_null(b);
    dt_assert_error(csnn__batcher_create(NULL, 4, true, NULL, 1, NULL, &b),
                    CSNN_ERR_INVALID_ARGUMENT, "ds");
    csnn_augment aug;
    csnn__augment_none(&aug);
    aug.hflip = 1.5f;
    dt_assert_error(csnn__batcher_create(ds, 4, true, &aug, 1, NULL, &b),
                    CSNN_ERR_INVALID_ARGUMENT, "augmentation");
    csnn__augment_none(&aug);
    aug.crop_pad = -1;
    dt_assert_error(csnn__batcher_create(ds, 4, true, &aug, 1, NULL, &b),
                    CSNN_ERR_INVALID_ARGUMENT, "augmentation");
    csnn__augment_none(&aug);
    aug.rotate_deg = NAN;
    dt_assert_error(csnn__batcher_create(ds, 4, true, &aug, 1, NULL, &b),
                    CSNN_ERR_INVALID_ARGUMENT, "augmentation");

    dt_assert_ok(csnn__batcher_create(ds, 4, true, NULL, 1, NULL, &b));
    const float *img;
    const int32_t *lab;
    int32_t n;
    dt_assert_error(csnn__batcher_next(b, &img, &lab, &n), CSNN_ERR_STATE, "start_epoch");
    dt_assert_error(csnn__batcher_next(b, NULL, &lab, &n), CSNN_ERR_INVALID_ARGUMENT, "images");
    dt_assert_error(csnn__batcher_start_epoch(NULL, 0), CSNN_ERR_INVALID_ARGUMENT, "b");
    csnn__batcher_destroy(b);

    /* a dataset without samples: no batches */
    csnn_dataset *empty;
    dt_assert_ok(csnn_dataset_create_from_arrays(ctx, NULL, NULL, 0, H, W, NULL, 2, &empty));
    dt_assert_ok(csnn__batcher_create(empty, 4, true, NULL, 1, NULL, &b));
    assert_int_equal(csnn__batcher_num_batches(b), 0);
    dt_assert_ok(csnn__batcher_start_epoch(b, 0));
    n = -1;
    dt_assert_ok(csnn__batcher_next(b, &img, &lab, &n));
    assert_int_equal(n, 0);
    csnn__batcher_destroy(b);
    csnn_dataset_destroy(empty);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_sample_once),
        cmocka_unit_test(test_order_depends_on_seed_and_epoch),
        cmocka_unit_test(test_label_map),
        cmocka_unit_test(test_augmented_batches),
        cmocka_unit_test(test_restarts_and_shutdown),
        cmocka_unit_test(test_errors_and_empty),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
