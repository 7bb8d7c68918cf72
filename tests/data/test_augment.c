/* test_augment.c - per-sample augmentation. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "data_test_util.h"
#include "data/data_private.h"

enum { H = 20, W = 24, N = H * W };

static void random_image(uint8_t *px, uint32_t seed)
{
    for (int i = 0; i < N; i++) px[i] = (uint8_t)dt_rand(&seed);
}

static void scaled(const uint8_t *px, float *out)
{
    for (int i = 0; i < N; i++) out[i] = (float)px[i] / 255.0f;
}

static void test_recipe(void **state)
{
    (void)state;
    csnn_augment a;
    memset(&a, 0xff, sizeof a);
    csnn__augment_recipe(&a);
    assert_true(a.hflip == 0.5f);
    assert_true(a.vflip == 0.0f);
    assert_true(a.rotate_deg == 10.0f);
    assert_int_equal(a.crop_pad, 4);
    assert_true(a.brightness == 0.0f);
    assert_true(a.contrast == 0.0f);
    memset(&a, 0xff, sizeof a);
    csnn__augment_none(&a);
    assert_true(a.hflip == 0.0f && a.rotate_deg == 0.0f && a.crop_pad == 0);
}

static void test_identity(void **state)
{
    (void)state;
    uint8_t px[N];
    float want[N], got[N];
    random_image(px, 1);
    scaled(px, want);
    csnn__augment_sample(NULL, 1, 2, 3, px, H, W, got);
    assert_memory_equal(got, want, sizeof got);
    csnn_augment a;
    csnn__augment_none(&a);
    for (int s = 0; s < 20; s++) {
        csnn__augment_sample(&a, 5, 6, s, px, H, W, got);
        assert_memory_equal(got, want, sizeof got);
    }
    /* crop with zero padding is the identity */
    a.crop_pad = 0;
    csnn__augment_sample(&a, 5, 6, 7, px, H, W, got);
    assert_memory_equal(got, want, sizeof got);
}

static void test_flips(void **state)
{
    (void)state;
    uint8_t px[N];
    float got[N];
    random_image(px, 2);
    csnn_augment a;
    csnn__augment_none(&a);
    a.hflip = 1.0f;
    csnn__augment_sample(&a, 1, 0, 0, px, H, W, got);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            assert_true(got[y * W + x] == (float)px[y * W + (W - 1 - x)] / 255.0f);
    csnn__augment_none(&a);
    a.vflip = 1.0f;
    csnn__augment_sample(&a, 1, 0, 0, px, H, W, got);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            assert_true(got[y * W + x] == (float)px[(H - 1 - y) * W + x] / 255.0f);
    a.hflip = 1.0f;
    csnn__augment_sample(&a, 1, 0, 0, px, H, W, got);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            assert_true(got[y * W + x] == (float)px[(H - 1 - y) * W + (W - 1 - x)] / 255.0f);

    /* p = 0.5: each sample is either untouched or mirrored, about half each */
    csnn__augment_none(&a);
    a.hflip = 0.5f;
    float plain[N];
    scaled(px, plain);
    int flipped = 0;
    for (int s = 0; s < 400; s++) {
        csnn__augment_sample(&a, 9, 1, s, px, H, W, got);
        if (memcmp(got, plain, sizeof got) == 0) continue;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                assert_true(got[y * W + x] == (float)px[y * W + (W - 1 - x)] / 255.0f);
        flipped++;
    }
    assert_true(flipped > 150 && flipped < 250);
}

static void test_crop(void **state)
{
    (void)state;
    uint8_t px[N];
    float got[N];
    random_image(px, 3);
    csnn_augment a;
    csnn__augment_none(&a);
    a.crop_pad = 4;
    int shifts[9][9] = {{0}};
    for (int s = 0; s < 300; s++) {
        csnn__augment_sample(&a, 4, 2, s, px, H, W, got);
        /* the output is the input shifted by some (dy, dx) in [-4, 4], zero filled */
        int found = 0;
        for (int dy = -4; dy <= 4 && !found; dy++)
            for (int dx = -4; dx <= 4 && !found; dx++) {
                bool ok = true;
                for (int y = 0; y < H && ok; y++)
                    for (int x = 0; x < W && ok; x++) {
                        int sy = y + dy, sx = x + dx;
                        float want = sy >= 0 && sy < H && sx >= 0 && sx < W
                                         ? (float)px[sy * W + sx] / 255.0f
                                         : 0.0f;
                        ok = got[y * W + x] == want;
                    }
                if (ok) {
                    found = 1;
                    shifts[dy + 4][dx + 4]++;
                }
            }
        assert_true(found);
    }
    /* every row and column offset occurs (about 33 times each) */
    for (int i = 0; i < 9; i++) {
        int rows = 0, cols = 0;
        for (int j = 0; j < 9; j++) {
            rows += shifts[i][j];
            cols += shifts[j][i];
        }
        assert_true(rows > 5 && cols > 5);
    }
}

static void test_rotation(void **state)
{
    (void)state;
    /* A blob symmetric about the image centre barely changes when rotated
     * about the centre. */
    enum { S = 33 };
    uint8_t px[S * S];
    float got[S * S];
    double c = (S - 1) / 2.0;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            double r2 = (y - c) * (y - c) + (x - c) * (x - c);
            px[y * S + x] = (uint8_t)lround(255.0 * exp(-r2 / 40.0));
        }
    csnn_augment a;
    csnn__augment_none(&a);
    a.rotate_deg = 30.0f;
    for (int s = 0; s < 20; s++) {
        csnn__augment_sample(&a, 11, 0, s, px, S, S, got);
        for (int i = 0; i < S * S; i++) {
            assert_true(got[i] >= 0.0f && got[i] <= 1.0f);
            assert_true(fabsf(got[i] - px[i] / 255.0f) < 0.03f);
        }
    }
    /* A constant image keeps its value inside and gets zero corners. */
    uint8_t white[S * S];
    memset(white, 255, sizeof white);
    int zero_corners = 0;
    for (int s = 0; s < 20; s++) {
        csnn__augment_sample(&a, 12, 0, s, white, S, S, got);
        assert_true(fabsf(got[(S / 2) * S + S / 2] - 1.0f) < 1e-6f);
        zero_corners += got[0] < 0.5f;
        for (int i = 0; i < S * S; i++) assert_true(got[i] >= 0.0f && got[i] <= 1.0f);
    }
    assert_true(zero_corners > 10); /* nearly every angle but tiny ones */
    /* An asymmetric image does change. */
    uint8_t r[S * S];
    for (int i = 0; i < S * S; i++) r[i] = (uint8_t)((i % S) * 7);
    float plain[S * S];
    for (int i = 0; i < S * S; i++) plain[i] = r[i] / 255.0f;
    csnn__augment_sample(&a, 13, 0, 0, r, S, S, got);
    assert_true(memcmp(got, plain, sizeof got) != 0);
}

static void test_jitter(void **state)
{
    (void)state;
    uint8_t px[N];
    float got[N];
    for (int i = 0; i < N; i++) px[i] = (uint8_t)(80 + i % 90); /* mid-range: no clamping */
    csnn_augment a;
    csnn__augment_none(&a);
    a.brightness = 0.2f;
    int changed = 0;
    for (int s = 0; s < 20; s++) {
        csnn__augment_sample(&a, 21, 0, s, px, H, W, got);
        float f = got[0] / (px[0] / 255.0f);
        assert_true(f >= 0.8f - 1e-5f && f <= 1.2f + 1e-5f);
        changed += fabsf(f - 1.0f) > 1e-4f;
        for (int i = 0; i < N; i++) assert_true(fabsf(got[i] - px[i] / 255.0f * f) < 1e-5f);
    }
    assert_true(changed > 15);
    csnn__augment_none(&a);
    a.contrast = 0.3f;
    double mean_in = 0;
    for (int i = 0; i < N; i++) mean_in += px[i] / 255.0;
    mean_in /= N;
    for (int s = 0; s < 20; s++) {
        csnn__augment_sample(&a, 22, 0, s, px, H, W, got);
        double mean_out = 0;
        for (int i = 0; i < N; i++) mean_out += got[i];
        mean_out /= N;
        assert_true(fabs(mean_out - mean_in) < 1e-4);
    }
    /* strong brightness clamps to [0, 1] */
    csnn__augment_none(&a);
    a.brightness = 1.0f;
    a.contrast = 1.0f;
    memset(px, 250, sizeof px);
    for (int s = 0; s < 50; s++) {
        csnn__augment_sample(&a, 23, 0, s, px, H, W, got);
        for (int i = 0; i < N; i++) assert_true(got[i] >= 0.0f && got[i] <= 1.0f);
    }
}

/* ------------------------------------------------------------------------ */
/* Determinism                                                               */
/* ------------------------------------------------------------------------ */

enum { SAMPLES = 64 };
static uint8_t images[SAMPLES][N];

typedef struct {
    int first, step;
    float (*out)[N];
} work;

static void *run_part(void *arg)
{
    work *w = arg;
    csnn_augment a;
    csnn__augment_recipe(&a);
    a.brightness = 0.1f;
    a.contrast = 0.1f;
    a.vflip = 0.3f;
    for (int s = w->first; s < SAMPLES; s += w->step)
        csnn__augment_sample(&a, 77, 5, s, images[s], H, W, w->out[s]);
    return NULL;
}

static void test_determinism(void **state)
{
    (void)state;
    for (int s = 0; s < SAMPLES; s++) random_image(images[s], (uint32_t)s + 100);
    static float seq[SAMPLES][N], par[SAMPLES][N];
    work w = {0, 1, seq};
    run_part(&w);
    /* four threads, interleaved samples: the same numbers */
    pthread_t th[4];
    work ws[4];
    for (int t = 0; t < 4; t++) {
        ws[t] = (work){3 - t, 4, par};
        assert_int_equal(pthread_create(&th[t], NULL, run_part, &ws[t]), 0);
    }
    for (int t = 0; t < 4; t++) pthread_join(th[t], NULL);
    assert_memory_equal(seq, par, sizeof seq);

    /* another epoch, seed or sample index: other draws */
    csnn_augment a;
    csnn__augment_recipe(&a);
    float x[N], y[N];
    int diff_epoch = 0, diff_seed = 0, diff_sample = 0;
    for (int s = 0; s < 32; s++) {
        csnn__augment_sample(&a, 1, 0, s, images[0], H, W, x);
        csnn__augment_sample(&a, 1, 0, s, images[0], H, W, y);
        assert_memory_equal(x, y, sizeof x);
        csnn__augment_sample(&a, 1, 1, s, images[0], H, W, y);
        diff_epoch += memcmp(x, y, sizeof x) != 0;
        csnn__augment_sample(&a, 2, 0, s, images[0], H, W, y);
        diff_seed += memcmp(x, y, sizeof x) != 0;
        csnn__augment_sample(&a, 1, 0, s + 1000, images[0], H, W, y);
        diff_sample += memcmp(x, y, sizeof x) != 0;
    }
    assert_true(diff_epoch > 28);
    assert_true(diff_seed > 28);
    assert_true(diff_sample > 28);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recipe),   cmocka_unit_test(test_identity),
        cmocka_unit_test(test_flips),    cmocka_unit_test(test_crop),
        cmocka_unit_test(test_rotation), cmocka_unit_test(test_jitter),
        cmocka_unit_test(test_determinism),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
