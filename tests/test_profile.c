/*
 * test_profile.c - the efficiency report: synaptic operations against a
 * brute-force count of every spike's fan-out, MACs by hand, the energy
 * arithmetic, firing rates against the evaluation's.
 */
#include <math.h>

#include "test_util.h"
#include "trainer.h"

/* conv2 is spike-fed with stride 2 and padding 1 on a 3x3 input (borders
 * reach fewer outputs); fc1 is spike-fed; conv1 sees the image. */
static const char *spec = "input 1x7x7\nsteps 3\nclasses 5\n"
                          "static: conv 3 k=3 p=1; bn\nif v_threshold=0.3\nmaxpool 2\n"
                          "conv 4 k=3 s=2 p=1\nbn\nif v_threshold=0.3\nflatten\nlinear 5\nlif\n";

/* Counts, for input x [rows, C, H, W] of a conv, each non-zero input times
 * the number of outputs whose window covers it, times C_out. */
static double brute_force(const float *x, int64_t rows, int c, int h, int w, int c_out, int k,
                          int s, int p, int ho, int wo)
{
    double total = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int ci = 0; ci < c; ci++)
            for (int iy = 0; iy < h; iy++)
                for (int ix = 0; ix < w; ix++) {
                    float v = x[((r * c + ci) * h + iy) * w + ix];
                    if (v == 0) continue;
                    int reach = 0;
                    for (int oy = 0; oy < ho; oy++)
                        for (int ox = 0; ox < wo; ox++)
                            for (int ky = 0; ky < k; ky++)
                                for (int kx = 0; kx < k; kx++)
                                    reach += oy * s - p + ky == iy && ox * s - p + kx == ix;
                    total += v * reach * c_out;
                }
    return total;
}

static void test_profile_counts(void **state)
{
    (void)state;
    csnn_context *ctx;
    CHECK_OK(csnn_context_create(NULL, &ctx));
    csnn_model *m;
    CHECK_OK(csnn_model_create_from_spec(ctx, spec, 8, &m));
    enum { N = 5 };
    uint8_t px[N * 49];
    int32_t y[N];
    uint64_t seed = 3;
    for (int i = 0; i < N * 49; i++) px[i] = (uint8_t)test_uniform(&seed, 0, 256);
    for (int i = 0; i < N; i++) y[i] = i % 5;
    csnn_dataset *ds;
    CHECK_OK(csnn_dataset_create_from_arrays(ctx, px, y, N, 7, 7, NULL, 5, &ds));
    csnn_profile_options o;
    csnn_profile_options_init(&o);
    assert_true(o.mac_pj == 4.6 && o.ac_pj == 0.9);
    o.mac_pj = 3.0;
    o.ac_pj = 0.5;
    csnn_profile *p;
    CHECK_OK(csnn_model_profile(m, ds, &o, &p));
    int64_t samples;
    double mac_pj, ac_pj;
    CHECK_OK(csnn_profile_info(p, &samples, &mac_pj, &ac_pj));
    assert_int_equal(samples, N);
    assert_true(mac_pj == 3.0 && ac_pj == 0.5);

    /* the same forward, white-box, for the brute-force counts */
    float images[N * 49];
    for (int i = 0; i < N * 49; i++) images[i] = px[i] / 255.0f;
    CHECK_OK(csnn__model_reserve(m, N, false));
    CHECK_OK(m->ops->upload(m->dev, m->input, images, sizeof images));
    CHECK_OK(csnn__model_forward(m, N, false, 0, 0, NULL));
    enum { T = 3 };
    float x2[T * N * 3 * 3 * 3], x3[T * N * 4 * 2 * 2];
    CHECK_OK(m->ops->download(m->dev, x2, csnn__model_layer_input(m, 4), sizeof x2));
    CHECK_OK(m->ops->download(m->dev, x3, csnn__model_layer_input(m, 8), sizeof x3));
    double conv2 = brute_force(x2, T * N, 3, 3, 3, 4, 3, 2, 1, 2, 2);
    double fc1 = 0, spikes2 = 0;
    for (size_t i = 0; i < sizeof x3 / sizeof x3[0]; i++) fc1 += x3[i] * 5;
    for (size_t i = 0; i < sizeof x2 / sizeof x2[0]; i++) spikes2 += x2[i];
    assert_true(conv2 > 0 && fc1 > 0);

    int32_t nl;
    CHECK_OK(csnn_profile_num_layers(p, &nl));
    assert_int_equal(nl, 10);
    csnn_layer_profile lp, total;
    csnn_layer_profile_init(&lp);
    csnn_layer_profile_init(&total);
    CHECK_OK(csnn_profile_layer(p, -1, &total));
    assert_string_equal(total.name, "total");
    double macs = 0, acs = 0, ann = 0, e = 0, ea = 0;
    for (int i = 0; i < nl; i++) {
        CHECK_OK(csnn_profile_layer(p, i, &lp));
        macs += lp.macs;
        acs += lp.acs;
        ann += lp.ann_macs;
        e += lp.energy_pj;
        ea += lp.ann_energy_pj;
        assert_true(fabs(lp.energy_pj - (lp.macs * 3.0 + lp.acs * 0.5)) < 1e-9 * (1 + lp.energy_pj));
        assert_true(fabs(lp.ann_energy_pj - lp.ann_macs * 3.0) < 1e-9 * (1 + lp.ann_energy_pj));
        if (strcmp(lp.name, "conv1") == 0) {
            assert_int_equal(lp.counted_as, CSNN_OPS_MAC);
            assert_true(lp.macs == 3.0 * 7 * 7 * 9); /* static: once, not per step */
            assert_true(lp.ann_macs == lp.macs);
        } else if (strcmp(lp.name, "conv2") == 0) {
            assert_int_equal(lp.counted_as, CSNN_OPS_AC);
            assert_true(fabs(lp.acs * N - conv2) < 1e-9 * conv2);
            assert_true(lp.ann_macs == 4.0 * 2 * 2 * 3 * 9);
            assert_true(fabs(lp.firing_rate - spikes2 / (T * N * 27.0)) < 1e-12);
        } else if (strcmp(lp.name, "fc1") == 0) {
            assert_int_equal(lp.counted_as, CSNN_OPS_AC);
            assert_true(fabs(lp.acs * N - fc1) < 1e-9 * fc1);
            assert_true(lp.ann_macs == 16.0 * 5);
        } else {
            assert_int_equal(lp.counted_as, CSNN_OPS_NONE);
            assert_true(lp.macs == 0 && lp.acs == 0 && lp.ann_macs == 0);
        }
    }
    assert_true(fabs(total.macs - macs) < 1e-9 && fabs(total.acs - acs) < 1e-9 * (1 + acs));
    assert_true(fabs(total.ann_macs - ann) < 1e-9 && fabs(total.energy_pj - e) < 1e-9 * (1 + e));
    assert_true(fabs(total.ann_energy_pj - ea) < 1e-9 * ea);

    /* neuron firing rates are the evaluation's */
    csnn_metrics *mt;
    CHECK_OK(csnn_model_evaluate(m, ds, &mt));
    const int neuron_layers[3] = {2, 6, 9};
    for (int k = 0; k < 3; k++) {
        double rate;
        CHECK_OK(csnn_metrics_rate(mt, k, NULL, &rate));
        CHECK_OK(csnn_profile_layer(p, neuron_layers[k], &lp));
        assert_true(fabs(lp.firing_rate - rate) < 1e-12);
    }
    csnn_metrics_destroy(mt);

    /* errors */
    csnn_profile *q = (csnn_profile *)1;
    CHECK_STATUS(csnn_model_profile(NULL, ds, NULL, &q), CSNN_ERR_INVALID_ARGUMENT);
    assert_null(q);
    o.ac_pj = -1;
    CHECK_STATUS(csnn_model_profile(m, ds, &o, &q), CSNN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csnn_profile_layer(p, 10, &lp), CSNN_ERR_INVALID_ARGUMENT);
    lp.size = 4;
    CHECK_STATUS(csnn_profile_layer(p, 0, &lp), CSNN_ERR_ABI_STRUCT_SIZE);
    csnn_profile_destroy(NULL);
    csnn_profile_destroy(p);
    csnn_dataset_destroy(ds);
    csnn_model_destroy(m);
    csnn_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_profile_counts),
    };
    return cmocka_run_group_tests_name("profile", tests, NULL, NULL);
}
