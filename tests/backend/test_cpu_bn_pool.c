/* test_cpu_bn_pool.c - CPU backend: batch normalisation (training,
 * inference, backward by finite differences, running statistics) and max
 * pooling (first-maximum argmax, ties, overlapping windows, backward). */
#include "backend_test.h"
#include "../../lib/backend/cpu/cpu_internal.h"

/* ---- batch normalisation ---- */

typedef struct {
    csnn_bn_desc d;
    double *x, *gamma, *beta, *r;
} bn_case;

/* Training-mode BN in double: y, and the batch mean / biased variance. */
static void ref_bn(const csnn_bn_desc *d, const double *x, const double *gamma,
                   const double *beta, double *y, double *mean, double *var)
{
    const double m = (double)d->n * d->hw;
    for (int c = 0; c < d->c; c++) {
        double s = 0, q = 0;
        for (int o = 0; o < d->n; o++)
            for (int i = 0; i < d->hw; i++) s += x[((size_t)o * d->c + c) * d->hw + i];
        double mu = s / m;
        for (int o = 0; o < d->n; o++)
            for (int i = 0; i < d->hw; i++) {
                double t = x[((size_t)o * d->c + c) * d->hw + i] - mu;
                q += t * t;
            }
        mean[c] = mu;
        var[c] = q / m;
        for (int o = 0; o < d->n; o++)
            for (int i = 0; i < d->hw; i++) {
                size_t e = ((size_t)o * d->c + c) * d->hw + i;
                y[e] = (x[e] - mu) / sqrt(var[c] + d->eps) * gamma[c] + beta[c];
            }
    }
}

static double bn_loss(void *ctx)
{
    const bn_case *b = ctx;
    size_t n = (size_t)b->d.n * b->d.c * b->d.hw;
    double *y = tb_doubles(n), mean[16], var[16], l = 0;
    ref_bn(&b->d, b->x, b->gamma, b->beta, y, mean, var);
    for (size_t i = 0; i < n; i++) l += b->r[i] * y[i];
    free(y);
    return l;
}

static void check_bn(void *dev, int n, int c, int hw, double offset, uint64_t seed)
{
    tb_rng r = tb_seed(seed);
    csnn_bn_desc d = {.n = n, .c = c, .hw = hw, .eps = 1e-5f, .momentum = 0.1f};
    size_t nx = (size_t)n * c * hw;
    float *x = tb_rand_floats(&r, nx, offset - 1.5, offset + 1.5);
    float *gamma = tb_rand_floats(&r, c, 0.5, 1.5), *beta = tb_rand_floats(&r, c, -1, 1);
    float *dy = tb_rand_floats(&r, nx, -1, 1), *y = tb_floats(nx), *dx = tb_floats(nx);
    float *rm = tb_rand_floats(&r, c, -1, 1), *rv = tb_rand_floats(&r, c, 0.5, 2);
    float *smean = tb_floats(c), *sinv = tb_floats(c), *dg = tb_floats(c), *dbt = tb_floats(c);
    bn_case b = {d, tb_widen(x, nx), tb_widen(gamma, c), tb_widen(beta, c), tb_widen(dy, nx)};
    double *yref = tb_doubles(nx), mean[16], var[16], ref[16];
    ref_bn(&d, b.x, b.gamma, b.beta, yref, mean, var);

    double *rm0 = tb_widen(rm, c), *rv0 = tb_widen(rv, c);
    assert_int_equal(OPS->bn_forward_train(dev, &d, x, gamma, beta, y, smean, sinv, rm, rv),
                     CSNN_OK);
    TB_CLOSE(y, yref, nx, 2e-6 * (1 + fabs(offset)), 1e-6);
    TB_CLOSE(smean, mean, c, 1e-6, 1e-7);
    for (int k = 0; k < c; k++) ref[k] = 1 / sqrt(var[k] + (double)1e-5f);
    TB_CLOSE(sinv, ref, c, 1e-6, 0);
    /* running statistics: momentum 0.1 and the unbiased variance */
    const double m = (double)n * hw, mom = (double)0.1f;
    for (int k = 0; k < c; k++) ref[k] = (1 - mom) * rm0[k] + mom * mean[k];
    TB_CLOSE(rm, ref, c, 1e-6, 1e-7);
    for (int k = 0; k < c; k++) ref[k] = (1 - mom) * rv0[k] + mom * var[k] * m / (m - 1);
    TB_CLOSE(rv, ref, c, 1e-6, 0);
    /* without running statistics: the same output */
    float *y2 = tb_floats(nx);
    assert_int_equal(OPS->bn_forward_train(dev, &d, x, gamma, beta, y2, smean, sinv, NULL, NULL),
                     CSNN_OK);
    TB_SAME(y, y2, nx);

    tb_fill(dx, nx, NAN), tb_fill(dg, c, NAN), tb_fill(dbt, c, NAN);
    assert_int_equal(OPS->bn_backward(dev, &d, x, dy, gamma, smean, sinv, dx, dg, dbt), CSNN_OK);
    double *g = tb_doubles(nx);
    tb_fd_grad(bn_loss, &b, b.x, nx, g);
    TB_CLOSE(dx, g, nx, 2e-5, 1e-6);
    tb_fd_grad(bn_loss, &b, b.gamma, c, g);
    TB_CLOSE(dg, g, c, 1e-5, 1e-6);
    tb_fd_grad(bn_loss, &b, b.beta, c, g);
    TB_CLOSE(dbt, g, c, 1e-6, 1e-6);
    /* dx is optional: the same parameter gradients without it */
    float *dg2 = tb_floats(c), *dbt2 = tb_floats(c);
    assert_int_equal(OPS->bn_backward(dev, &d, x, dy, gamma, smean, sinv, NULL, dg2, dbt2),
                     CSNN_OK);
    TB_SAME(dg, dg2, (size_t)c);
    TB_SAME(dbt, dbt2, (size_t)c);
    free(dg2), free(dbt2);

    /* inference with the (updated) running statistics */
    for (size_t e = 0; e < nx; e++) {
        int k = (int)(e / hw % c);
        yref[e] = ((double)x[e] - rm[k]) / sqrt((double)rv[k] + (double)1e-5f) * gamma[k] + beta[k];
    }
    assert_int_equal(OPS->bn_forward_infer(dev, &d, x, gamma, beta, rm, rv, y), CSNN_OK);
    TB_CLOSE(y, yref, nx, 2e-6 * (1 + fabs(offset)), 1e-6);

    free(x), free(gamma), free(beta), free(dy), free(y), free(y2), free(dx), free(rm), free(rv);
    free(smean), free(sinv), free(dg), free(dbt), free(b.x), free(b.gamma), free(b.beta), free(b.r);
    free(yref), free(rm0), free(rv0), free(g);
}

static void test_bn(void **state)
{
    (void)state;
    void *dev = tb_open(3);
    check_bn(dev, 4, 3, 5, 0.0, 1);
    check_bn(dev, 2, 5, 1, 0.5, 2);  /* hw 1, as after a linear layer */
    check_bn(dev, 3, 2, 7, 3.0, 3);  /* a mean far from 0 */
    check_bn(dev, 1, 4, 9, -0.2, 4); /* one image */
    check_bn(dev, 9, 16, 4, 0.1, 5);
    check_bn(dev, 3, 4, 37, 1.0, 6);  /* the 16 accumulation lanes and a tail of 5 */
    check_bn(dev, 2, 3, 64, -0.5, 7); /* whole lanes only */
    OPS->close(dev);
}

/* Every instruction-set variant of the BN entries gives the same bits (the
 * double accumulation lanes are added in a fixed order at every width). */
static void test_bn_variants(void **state)
{
    (void)state;
    void *dev = tb_open(2);
    tb_rng r = tb_seed(11);
    csnn_bn_desc d = {.n = 5, .c = 6, .hw = 53, .eps = 1e-5f, .momentum = 0.1f};
    const size_t nx = (size_t)d.n * d.c * d.hw, c = (size_t)d.c;
    float *x = tb_rand_floats(&r, nx, -2, 3), *dy = tb_rand_floats(&r, nx, -1, 1);
    float *gamma = tb_rand_floats(&r, c, 0.5, 1.5), *beta = tb_rand_floats(&r, c, -1, 1);
    float *out[2][6];
    for (int v = 0; v < 2; v++) {
        csnn__cpu_isa_cap = v == 0 ? CPU_ISA_BASE : CPU_ISA_AVX512;
        float *y = tb_floats(nx), *sm = tb_floats(c), *si = tb_floats(c), *dx = tb_floats(nx);
        float *dg = tb_floats(c), *db = tb_floats(c);
        assert_int_equal(OPS->bn_forward_train(dev, &d, x, gamma, beta, y, sm, si, NULL, NULL),
                         CSNN_OK);
        assert_int_equal(OPS->bn_backward(dev, &d, x, dy, gamma, sm, si, dx, dg, db), CSNN_OK);
        float *o[6] = {y, sm, si, dx, dg, db};
        memcpy(out[v], o, sizeof o);
    }
    csnn__cpu_isa_cap = CPU_ISA_AVX512;
    const size_t len[6] = {nx, c, c, nx, c, c};
    for (int k = 0; k < 6; k++) {
        TB_SAME(out[0][k], out[1][k], len[k]);
        free(out[0][k]), free(out[1][k]);
    }
    free(x), free(dy), free(gamma), free(beta);
    OPS->close(dev);
}

static void test_bn_errors(void **state)
{
    (void)state;
    void *dev = tb_open(1);
    float v[4] = {1, 2, 3, 4}, o[4];
    csnn_bn_desc d = {.n = 1, .c = 1, .hw = 1, .eps = 1e-5f, .momentum = 0.1f};
    TB_ERROR(OPS->bn_forward_train(dev, &d, v, v, v, o, o, o, NULL, NULL),
             CSNN_ERR_INVALID_ARGUMENT, "at least 2");
    d.hw = 4;
    d.eps = -1;
    TB_ERROR(OPS->bn_forward_train(dev, &d, v, v, v, o, o, o, NULL, NULL),
             CSNN_ERR_INVALID_ARGUMENT, "eps -1");
    d.eps = 1e-5f;
    d.c = -2;
    TB_ERROR(OPS->bn_forward_infer(dev, &d, v, v, v, v, v, o), CSNN_ERR_INVALID_ARGUMENT, "c -2");
    d.c = 1;
    TB_ERROR(OPS->bn_backward(dev, &d, v, v, NULL, v, v, o, o, o), CSNN_ERR_INVALID_ARGUMENT,
             "'gamma'");
    OPS->close(dev);
}

/* ---- max pooling ---- */

typedef struct {
    csnn_pool_desc d;
    double *x, *r;
} pool_case;

/* y = max of each window, argmax = index of its first maximum. */
static void ref_pool(const csnn_pool_desc *d, const double *x, double *y, int *argmax)
{
    for (int64_t p = 0; p < d->planes; p++)
        for (int i = 0; i < d->h_out; i++)
            for (int j = 0; j < d->w_out; j++) {
                int best = -1;
                double bv = 0;
                for (int a = 0; a < d->k; a++)
                    for (int b = 0; b < d->k; b++) {
                        int64_t row = p * d->h_in + i * d->stride + a;
                        double v = x[row * d->w_in + j * d->stride + b];
                        if (best < 0 || v > bv) best = a * d->k + b, bv = v;
                    }
                size_t e = (p * d->h_out + i) * d->w_out + j;
                y[e] = bv;
                if (argmax) argmax[e] = best;
            }
}

static double pool_loss(void *ctx)
{
    const pool_case *c = ctx;
    size_t ny = (size_t)c->d.planes * c->d.h_out * c->d.w_out;
    double *y = tb_doubles(ny), l = 0;
    ref_pool(&c->d, c->x, y, NULL);
    for (size_t i = 0; i < ny; i++) l += c->r[i] * y[i];
    free(y);
    return l;
}

static csnn_pool_desc pool_desc(int planes, int h, int w, int k, int s)
{
    csnn_pool_desc d = {.planes = planes, .h_in = h, .w_in = w, .k = k, .stride = s};
    d.h_out = (h - k) / s + 1;
    d.w_out = (w - k) / s + 1;
    return d;
}

/* binary: inputs are spikes (ties everywhere); else distinct values, with a
 * finite-difference check of the backward. */
static void check_pool(void *dev, csnn_pool_desc d, int binary, uint64_t seed)
{
    tb_rng r = tb_seed(seed);
    size_t nx = (size_t)d.planes * d.h_in * d.w_in, ny = (size_t)d.planes * d.h_out * d.w_out;
    float *x = tb_floats(nx), *y = tb_floats(ny), *dx = tb_floats(nx);
    for (size_t i = 0; i < nx; i++)
        x[i] = binary ? (float)(tb_uniform(&r) < 0.3) : (float)tb_range(&r, -1, 1);
    float *dy = tb_rand_floats(&r, ny, -1, 1);
    uint8_t *am = malloc(ny);
    int *amref = malloc(ny * sizeof(int));
    pool_case c = {d, tb_widen(x, nx), tb_widen(dy, ny)};
    double *yref = tb_doubles(ny), *dxref = tb_doubles(nx);
    ref_pool(&d, c.x, yref, amref);
    assert_int_equal(OPS->maxpool_forward(dev, &d, x, y, am), CSNN_OK);
    TB_CLOSE(y, yref, ny, 0, 0);
    for (size_t i = 0; i < ny; i++) assert_int_equal(am[i], amref[i]);
    float *y2 = tb_floats(ny);
    assert_int_equal(OPS->maxpool_forward(dev, &d, x, y2, NULL), CSNN_OK);
    TB_SAME(y, y2, ny);

    tb_fill(dx, nx, NAN);
    assert_int_equal(OPS->maxpool_backward(dev, &d, dy, am, dx), CSNN_OK);
    /* the routing, summed where windows overlap */
    for (int64_t p = 0; p < d.planes; p++)
        for (int i = 0; i < d.h_out; i++)
            for (int j = 0; j < d.w_out; j++) {
                size_t e = (p * d.h_out + i) * d.w_out + j;
                int a = amref[e] / d.k, b = amref[e] % d.k;
                dxref[(p * d.h_in + i * d.stride + a) * d.w_in + j * d.stride + b] += dy[e];
            }
    TB_CLOSE(dx, dxref, nx, 1e-7, 0);
    if (!binary && nx <= 4096) {
        double *g = tb_doubles(nx);
        tb_fd_grad(pool_loss, &c, c.x, nx, g);
        TB_CLOSE(dx, g, nx, 1e-6, 1e-7);
        free(g);
    }
    free(x), free(y), free(y2), free(dx), free(dy), free(am), free(amref), free(c.x), free(c.r);
    free(yref), free(dxref);
}

static void test_pool(void **state)
{
    (void)state;
    void *dev = tb_open(3);
    static const int shapes[][5] = {
        /* planes h w k stride */
        {3, 4, 4, 2, 2}, {2, 7, 5, 3, 2}, /* stride < k: overlapping windows */
        {2, 6, 9, 3, 3}, {1, 5, 5, 2, 1}, {2, 5, 7, 2, 3}, /* stride > k */
        {4, 9, 8, 2, 2}, /* floor mode drops the last row */
        {1, 17, 17, 16, 1}, /* the largest window */
        {600, 8, 8, 2, 2}, /* many planes: parallel */
    };
    uint64_t seed = 1;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int *s = shapes[i];
        csnn_pool_desc d = pool_desc(s[0], s[1], s[2], s[3], s[4]);
        check_pool(dev, d, 0, seed++);
        check_pool(dev, d, 1, seed++);
    }
    OPS->close(dev);
}

static void test_pool_ties(void **state)
{
    (void)state;
    void *dev = tb_open(1);
    /* four 2x2 windows: all zero, all one, [0 1; 1 0], [0 0; 0 1] */
    const float x[16] = {0, 0, 1, 1,
                         0, 0, 1, 1,
                         0, 1, 0, 0,
                         1, 0, 0, 1};
    csnn_pool_desc d = pool_desc(1, 4, 4, 2, 2);
    float y[4], dy[4] = {1, 2, 3, 4}, dx[16];
    uint8_t am[4];
    assert_int_equal(OPS->maxpool_forward(dev, &d, x, y, am), CSNN_OK);
    assert_int_equal(am[0], 0);
    assert_int_equal(am[1], 0);
    assert_int_equal(am[2], 1);
    assert_int_equal(am[3], 3);
    assert_true(y[0] == 0 && y[1] == 1 && y[2] == 1 && y[3] == 1);
    assert_int_equal(OPS->maxpool_backward(dev, &d, dy, am, dx), CSNN_OK);
    const float want[16] = {1, 0, 2, 0,
                            0, 0, 0, 0,
                            0, 3, 0, 0,
                            0, 0, 0, 4};
    assert_memory_equal(dx, want, sizeof want);
    /* negative values and a NaN (which wins, as in PyTorch) */
    const float z[4] = {-3, -1, NAN, -1};
    csnn_pool_desc d1 = pool_desc(1, 2, 2, 2, 2);
    assert_int_equal(OPS->maxpool_forward(dev, &d1, z, y, am), CSNN_OK);
    assert_true(isnan(y[0]));
    assert_int_equal(am[0], 2);
    const float z2[4] = {NAN, 1, NAN, 2}; /* PyTorch keeps the last NaN */
    assert_int_equal(OPS->maxpool_forward(dev, &d1, z2, y, am), CSNN_OK);
    assert_true(isnan(y[0]));
    assert_int_equal(am[0], 2);
    TB_ERROR(OPS->maxpool_backward(dev, &d1, dy, NULL, dx), CSNN_ERR_INVALID_ARGUMENT,
             "'argmax'");
    csnn_pool_desc bad = pool_desc(1, 20, 20, 17, 1);
    TB_ERROR(OPS->maxpool_forward(dev, &bad, z, y, am), CSNN_ERR_INVALID_ARGUMENT, "k 17");
    bad = pool_desc(1, 4, 4, 2, 2);
    bad.h_out = 3;
    TB_ERROR(OPS->maxpool_forward(dev, &bad, z, y, am), CSNN_ERR_INVALID_ARGUMENT, "-> 3x2");
    OPS->close(dev);
}

/* BN and pooling give the same bits with 1 and 3 threads. */
static void test_threads_deterministic(void **state)
{
    (void)state;
    void *devs[2] = {tb_open(1), tb_open(3)};
    tb_rng r = tb_seed(99);
    csnn_bn_desc bd = {.n = 12, .c = 40, .hw = 36, .eps = 1e-5f, .momentum = 0.1f};
    csnn_pool_desc pd = pool_desc(12 * 40, 6, 6, 2, 2);
    const size_t n = (size_t)bd.n * bd.c * bd.hw, np = (size_t)pd.planes * 9;
    float *x = tb_rand_floats(&r, n, -1, 2), *dy = tb_rand_floats(&r, n, -1, 1);
    float *g = tb_rand_floats(&r, 40, 0.5, 1.5), *b = tb_rand_floats(&r, 40, -1, 1);
    float *out[2][8];
    uint8_t am[2][4320];
    for (int k = 0; k < 2; k++) {
        float *o[8] = {tb_floats(n), tb_floats(40), tb_floats(40), tb_floats(n), tb_floats(40),
                       tb_floats(40), tb_floats(np), tb_floats(n)};
        memcpy(out[k], o, sizeof o);
        assert_int_equal(OPS->bn_forward_train(devs[k], &bd, x, g, b, o[0], o[1], o[2], NULL,
                                               NULL),
                         CSNN_OK);
        assert_int_equal(OPS->bn_backward(devs[k], &bd, x, dy, g, o[1], o[2], o[3], o[4], o[5]),
                         CSNN_OK);
        assert_int_equal(OPS->maxpool_forward(devs[k], &pd, x, o[6], am[k]), CSNN_OK);
        assert_int_equal(OPS->maxpool_backward(devs[k], &pd, o[6], am[k], o[7]), CSNN_OK);
    }
    const size_t sizes[8] = {n, 40, 40, n, 40, 40, np, n};
    for (int i = 0; i < 8; i++) TB_SAME(out[0][i], out[1][i], sizes[i]);
    assert_memory_equal(am[0], am[1], np);
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 8; i++) free(out[k][i]);
        OPS->close(devs[k]);
    }
    free(x), free(dy), free(g), free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bn),
        cmocka_unit_test(test_bn_variants),
        cmocka_unit_test(test_bn_errors),
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_pool_ties),
        cmocka_unit_test(test_threads_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
