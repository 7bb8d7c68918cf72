/* test_cpu_neuron_pool.c - CPU backend: the fused neuron + max-pool entries
 * against the composition they replace (neuron_forward + maxpool_forward,
 * maxpool_backward + neuron_backward) of the same backend. They compute the
 * same elements in the same order, so everything is compared bit for bit:
 * pooled spikes, argmax, H, and dx with h kept or recomputed (x_shared or
 * not). IF / LIF, hard / soft / detached reset, both surrogates, T = 1..5,
 * overlapping windows (stride < k), windows leaving rows and columns
 * uncovered (floor mode), every instruction-set variant of the loops
 * (baseline, AVX2, AVX-512 where the CPU has them, against the composition
 * at the best one), 1 vs 3 threads, descriptor errors. */
#include "backend_test.h"
#include "../../lib/backend/cpu/cpu_internal.h"
#include "../../lib/backend/cpu/cpu_pool.h"

typedef struct {
    int kind, hard, detach, decay, surrogate, shared, t;
    float v_th, v_reset, tau, alpha;
} ncfg;

typedef struct {
    int n, c, h, w, k, s;
} pcfg;

static csnn_neuron_desc neuron_desc(const ncfg *c, const pcfg *p)
{
    csnn_neuron_desc d = {.kind = c->kind, .surrogate = c->surrogate, .hard_reset = c->hard,
                          .detach_reset = c->detach, .decay_input = c->decay,
                          .x_shared = c->shared, .t = c->t,
                          .m = (int64_t)p->n * p->c * p->h * p->w, .v_threshold = c->v_th,
                          .v_reset = c->v_reset, .tau = c->tau, .alpha = c->alpha};
    return d;
}

static csnn_pool_desc pool_desc(const ncfg *c, const pcfg *p)
{
    csnn_pool_desc d = {.planes = (int64_t)c->t * p->n * p->c, .h_in = p->h, .w_in = p->w,
                        .h_out = (p->h - p->k) / p->s + 1, .w_out = (p->w - p->k) / p->s + 1,
                        .k = p->k, .stride = p->s};
    return d;
}

/* Runs both ways on one device and compares. */
static void check_one(void *dev, const ncfg *c, const pcfg *p, uint64_t seed)
{
    csnn_neuron_desc nd = neuron_desc(c, p);
    csnn_pool_desc pd = pool_desc(c, p);
    const size_t m = (size_t)nd.m, n = (size_t)c->t * m, nx = c->shared ? m : n;
    const size_t ny = (size_t)pd.planes * pd.h_out * pd.w_out;
    tb_rng r = tb_seed(seed);
    /* currents that make the neurons fire now and then; three in four never
     * fire, so that some windows stay silent */
    double hi = 1.6 * c->v_th * (c->kind == CSNN_NEURON_LIF && c->decay ? 0.75 * c->tau : 1.0);
    float *x = tb_rand_floats(&r, nx, -0.8 * c->v_th, hi);
    for (size_t i = 0; i < nx; i++)
        if (tb_uniform(&r) < 0.75) x[i] = (float)tb_range(&r, -1.0, 0.0);
    float *dy = tb_rand_floats(&r, ny, -1, 1);
    /* the pooling backward must route these as the composition does */
    dy[0] = -0.0f;
    dy[ny / 2] = INFINITY;
    dy[ny - 1] = -INFINITY;
    float *s = tb_floats(n), *h = tb_floats(n), *y = tb_floats(ny), *gs = tb_floats(n);
    float *dx = tb_floats(nx), *y2 = tb_floats(ny), *h2 = tb_floats(n), *dx2 = tb_floats(nx);
    uint8_t *am = malloc(ny), *am2 = malloc(ny);
    assert_non_null(am);
    assert_non_null(am2);

    /* the composition */
    assert_int_equal(OPS->neuron_forward(dev, &nd, x, s, h), CSNN_OK);
    assert_int_equal(OPS->maxpool_forward(dev, &pd, s, y, am), CSNN_OK);
    assert_int_equal(OPS->maxpool_backward(dev, &pd, dy, am, gs), CSNN_OK);
    assert_int_equal(OPS->neuron_backward(dev, &nd, gs, h, dx), CSNN_OK);

    for (int isa = CPU_ISA_BASE; isa <= CPU_ISA_AVX512; isa++) {
        csnn__cpu_isa_cap = isa;
        /* fused, keeping h */
        tb_fill(y2, ny, NAN), tb_fill(h2, n, NAN), memset(am2, 0xee, ny);
        assert_int_equal(OPS->neuron_pool_forward(dev, &nd, &pd, x, y2, am2, h2), CSNN_OK);
        TB_SAME(y, y2, ny);
        TB_SAME(h, h2, n);
        assert_memory_equal(am, am2, ny);
        tb_fill(dx2, nx, NAN);
        assert_int_equal(OPS->neuron_pool_backward(dev, &nd, &pd, NULL, h2, am2, dy, dx2),
                         CSNN_OK);
        TB_SAME(dx, dx2, nx);

        /* fused without h: inference (no argmax either) and training with the
         * backward recomputing H from x */
        tb_fill(y2, ny, NAN);
        assert_int_equal(OPS->neuron_pool_forward(dev, &nd, &pd, x, y2, NULL, NULL), CSNN_OK);
        TB_SAME(y, y2, ny);
        tb_fill(y2, ny, NAN), memset(am2, 0xee, ny);
        assert_int_equal(OPS->neuron_pool_forward(dev, &nd, &pd, x, y2, am2, NULL), CSNN_OK);
        TB_SAME(y, y2, ny);
        assert_memory_equal(am, am2, ny);
        tb_fill(dx2, nx, NAN);
        assert_int_equal(OPS->neuron_pool_backward(dev, &nd, &pd, x, NULL, am2, dy, dx2),
                         CSNN_OK);
        TB_SAME(dx, dx2, nx);

        /* the plain entries at this variant: the same as at the best one */
        float *s3 = tb_floats(n), *h3 = tb_floats(n), *dx3 = tb_floats(nx);
        assert_int_equal(OPS->neuron_forward(dev, &nd, x, s3, h3), CSNN_OK);
        TB_SAME(s, s3, n);
        TB_SAME(h, h3, n);
        assert_int_equal(OPS->neuron_backward(dev, &nd, gs, h3, dx3), CSNN_OK);
        TB_SAME(dx, dx3, nx);
        free(s3), free(h3), free(dx3);
        csnn__cpu_isa_cap = CPU_ISA_AVX512;
    }

    /* the pooled spikes are spikes, and both outcomes occur */
    size_t ones = 0;
    for (size_t i = 0; i < ny; i++) {
        assert_true(y[i] == 0.0f || y[i] == 1.0f);
        ones += y[i] == 1.0f;
    }
    if (ny >= 20 && (ones == 0 || ones == ny))
        fail_msg("%zu of %zu pooled spikes: adjust the inputs", ones, ny);

    free(x), free(dy), free(s), free(h), free(y), free(gs), free(dx), free(y2), free(h2),
        free(dx2), free(am), free(am2);
}

enum { IF = CSNN_NEURON_IF, LIF = CSNN_NEURON_LIF, AT = CSNN_SURROGATE_ATAN,
       SG = CSNN_SURROGATE_SIGMOID };

static const ncfg neurons[] = {
    /* kind hard detach decay surr shared T  v_th v_reset tau alpha */
    {IF, 1, 0, 0, AT, 1, 4, 1.0f, 0.0f, 0.0f, 2.0f},   /* sn1 of the reference model */
    {IF, 1, 0, 0, AT, 0, 4, 1.0f, 0.0f, 0.0f, 2.0f},   /* sn2 */
    {IF, 0, 0, 0, AT, 0, 3, 1.0f, 0.0f, 0.0f, 2.0f},   /* soft reset */
    {IF, 1, 1, 0, AT, 1, 5, 1.0f, -0.2f, 0.0f, 2.0f},  /* detach, v_reset != 0, shared */
    {LIF, 1, 0, 1, AT, 0, 2, 1.0f, 0.0f, 2.0f, 2.0f},  /* LIF decay_input */
    {LIF, 0, 1, 0, SG, 1, 4, 0.8f, 0.0f, 3.0f, 4.0f},  /* LIF, soft, detach, Sigmoid, shared */
    {LIF, 1, 0, 0, SG, 0, 5, 1.0f, 0.3f, 1.5f, 3.0f},  /* LIF no decay, v_reset != 0 */
    {IF, 1, 0, 0, SG, 1, 1, 1.0f, 0.0f, 0.0f, 4.0f},   /* T = 1, shared */
    {IF, 0, 0, 0, AT, 0, 1, 0.5f, 0.0f, 0.0f, 2.0f},   /* T = 1 */
};

static const pcfg pools[] = {
    /* n  c  h   w  k  s */
    {2, 3, 6, 6, 2, 2},    /* the reference model's pooling */
    {1, 2, 7, 9, 2, 2},    /* floor mode: the last row and column are not pooled */
    {2, 1, 7, 7, 3, 2},    /* overlapping windows */
    {1, 3, 5, 8, 3, 1},    /* overlapping, stride 1 */
    {3, 2, 4, 4, 1, 1},    /* k = 1 */
    {1, 1, 11, 5, 3, 4},   /* stride > k: rows and columns between windows */
    {2, 2, 20, 30, 2, 2},  /* planes larger than a block of neurons */
    {1, 2, 6, 48, 2, 2},   /* rows of 24 windows (the reference sn1's): 16 + 8 */
    {1, 1, 4, 71, 2, 2},   /* rows of 35 windows, an odd last column */
};

/* The 2 x 2 routing of the fused backward against the general one, on
 * planes of even and odd sizes, with -0, infinities and NaN in dy; and its
 * AVX-512 version (16 windows at a time, then the rest of the row) where
 * the CPU has it. */
static void test_pool_2x2_backward(void **state)
{
    (void)state;
    static const int sizes[][2] = {{6, 6},   {7, 9},  {24, 24}, {2, 3},
                                   {48, 48}, {5, 17}, {10, 71}, {4, 64}};
    tb_rng r = tb_seed(3);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        csnn_pool_desc d = {.planes = 1, .h_in = sizes[k][0], .w_in = sizes[k][1],
                            .h_out = sizes[k][0] / 2, .w_out = sizes[k][1] / 2, .k = 2,
                            .stride = 2};
        const size_t nin = (size_t)d.h_in * d.w_in, nout = (size_t)d.h_out * d.w_out;
        float *dy = tb_rand_floats(&r, nout, -2, 2), *a = tb_floats(nin), *b = tb_floats(nin);
        uint8_t *am = malloc(nout);
        assert_non_null(am);
        for (size_t i = 0; i < nout; i++) am[i] = (uint8_t)(tb_uniform(&r) * 4.0);
        /* -0 in every window position, then the non-finite values */
        for (size_t i = 0; i < nout && i < 4; i++) dy[i] = -0.0f, am[i] = (uint8_t)i;
        if (nout > 6) dy[4] = INFINITY, dy[5] = -INFINITY, dy[6] = NAN;
        memset(a, 0, nin * sizeof(float));
        pool_plane_backward(&d, dy, am, a);
        tb_fill(b, nin, 5.0f);
        if (d.h_in % 2 || d.w_in % 2) memset(b, 0, nin * sizeof(float));
        pool_2x2_backward(&d, dy, am, b);
        TB_SAME(a, b, nin);
        if (csnn__cpu_isa() == CPU_ISA_AVX512) {
            tb_fill(b, nin, 5.0f);
            if (d.h_in % 2 || d.w_in % 2) memset(b, 0, nin * sizeof(float));
            pool_2x2_backward_avx512(&d, dy, am, b);
            TB_SAME(a, b, nin);
        }
        free(dy), free(a), free(b), free(am);
    }
}

/* conv_neuron_pool_forward against conv2d_forward + neuron_pool_forward
 * (x_shared, no argmax, no h): the same bits, at every instruction set and
 * thread count, for first-layer shapes and a larger one. */
static void check_conv_npool(void *dev, csnn_conv2d_desc cd, const ncfg *c, int k, int st,
                             uint64_t seed)
{
    tb_rng r = tb_seed(seed);
    const size_t nx = (size_t)cd.n * cd.c_in * cd.h_in * cd.w_in;
    const size_t nw = (size_t)cd.c_out * cd.c_in * cd.kh * cd.kw;
    const size_t nc = (size_t)cd.n * cd.c_out * cd.h_out * cd.w_out;
    float *x = tb_rand_floats(&r, nx, 0, 1), *w = tb_rand_floats(&r, nw, -1.5, 1.5);
    float *b = tb_rand_floats(&r, (size_t)cd.c_out, -0.5, 1);
    pcfg pc = {cd.n, cd.c_out, cd.h_out, cd.w_out, k, st};
    csnn_neuron_desc nd = neuron_desc(c, &pc);
    csnn_pool_desc pd = pool_desc(c, &pc);
    const size_t ny = (size_t)pd.planes * pd.h_out * pd.w_out;
    float *conv = tb_floats(nc), *y = tb_floats(ny), *y2 = tb_floats(ny);
    size_t bytes = 0;
    assert_int_equal(OPS->conv2d_workspace(dev, &cd, &bytes), CSNN_OK);
    void *ws = NULL;
    assert_int_equal(OPS->alloc(dev, bytes, &ws), CSNN_OK);
    assert_int_equal(OPS->conv2d_forward(dev, &cd, x, w, b, conv, ws), CSNN_OK);
    assert_int_equal(OPS->neuron_pool_forward(dev, &nd, &pd, conv, y, NULL, NULL), CSNN_OK);
    size_t ones = 0;
    for (size_t i = 0; i < ny; i++) ones += y[i] == 1.0f;
    assert_true(ones > 0 && ones < ny); /* both outcomes occur */
    for (int isa = CPU_ISA_BASE; isa <= CPU_ISA_AVX512; isa++) {
        csnn__cpu_isa_cap = isa;
        tb_fill(y2, ny, NAN);
        assert_int_equal(OPS->conv_neuron_pool_forward(dev, &cd, x, w, b, &nd, &pd, y2), CSNN_OK);
        csnn__cpu_isa_cap = CPU_ISA_AVX512;
        TB_SAME(y, y2, ny);
    }
    void *d3 = tb_open(3);
    tb_fill(y2, ny, NAN);
    assert_int_equal(OPS->conv_neuron_pool_forward(d3, &cd, x, w, b, &nd, &pd, y2), CSNN_OK);
    TB_SAME(y, y2, ny);
    OPS->close(d3);
    OPS->free(dev, ws);
    free(x), free(w), free(b), free(conv), free(y), free(y2);
}

static void test_conv_neuron_pool(void **state)
{
    (void)state;
    void *dev = tb_open(2);
    /*        n c_in  h   w c_out kh kw sh sw ph pw bias */
    csnn_conv2d_desc a = {5, 1, 12, 12, 6, 12, 12, 3, 3, 1, 1, 1, 1, 1};
    csnn_conv2d_desc b = {4, 3, 9, 10, 5, 5, 5, 5, 5, 2, 2, 2, 2, 0};
    csnn_conv2d_desc c = {3, 12, 8, 8, 20, 8, 8, 3, 3, 1, 1, 1, 1, 1}; /* ckk 108: sgemm */
    check_conv_npool(dev, a, &neurons[0], 2, 2, 1); /* sn1 of the reference model */
    check_conv_npool(dev, b, &neurons[3], 2, 2, 2); /* detach, v_reset, T = 5; odd planes */
    check_conv_npool(dev, c, &neurons[5], 3, 2, 3); /* LIF, overlapping windows */
    /* errors: the neurons must share the input over the steps; shapes must agree */
    pcfg pc = {a.n, a.c_out, a.h_out, a.w_out, 2, 2};
    csnn_neuron_desc nd = neuron_desc(&neurons[1], &pc);
    csnn_pool_desc pd = pool_desc(&neurons[1], &pc);
    float f[1];
    TB_ERROR(OPS->conv_neuron_pool_forward(dev, &a, f, f, f, &nd, &pd, f),
             CSNN_ERR_INVALID_ARGUMENT, "x_shared");
    nd = neuron_desc(&neurons[0], &pc);
    pd = pool_desc(&neurons[0], &pc);
    csnn_conv2d_desc a2 = a;
    a2.c_out = 7;
    TB_ERROR(OPS->conv_neuron_pool_forward(dev, &a2, f, f, f, &nd, &pd, f), CSNN_ERR_SHAPE,
             "the convolution gives");
    OPS->close(dev);
}

static void test_configs(void **state)
{
    (void)state;
    void *dev = tb_open(2);
    uint64_t seed = 1;
    for (size_t i = 0; i < sizeof neurons / sizeof neurons[0]; i++)
        for (size_t k = 0; k < sizeof pools / sizeof pools[0]; k++)
            check_one(dev, &neurons[i], &pools[k], seed++);
    OPS->close(dev);
}

/* Many planes (several tasks per thread): 1 and 3 threads give the same bits. */
static void test_threads_deterministic(void **state)
{
    (void)state;
    void *devs[2] = {tb_open(1), tb_open(3)};
    const ncfg *c = &neurons[5];
    const pcfg p = {4, 16, 12, 10, 2, 2};
    for (int shared = 0; shared < 2; shared++) {
        ncfg cs = *c;
        cs.shared = shared;
        csnn_neuron_desc nd = neuron_desc(&cs, &p);
        csnn_pool_desc pd = pool_desc(&cs, &p);
        const size_t m = (size_t)nd.m, n = (size_t)cs.t * m, nx = shared ? m : n;
        const size_t ny = (size_t)pd.planes * pd.h_out * pd.w_out;
        tb_rng r = tb_seed(77 + shared);
        float *x = tb_rand_floats(&r, nx, -0.5, 2.0), *dy = tb_rand_floats(&r, ny, -1, 1);
        float *y[2], *h[2], *dx[2], *dxr[2];
        uint8_t *am[2];
        for (int k = 0; k < 2; k++) {
            y[k] = tb_floats(ny), h[k] = tb_floats(n), dx[k] = tb_floats(nx);
            dxr[k] = tb_floats(nx);
            am[k] = malloc(ny);
            assert_int_equal(OPS->neuron_pool_forward(devs[k], &nd, &pd, x, y[k], am[k], h[k]),
                             CSNN_OK);
            assert_int_equal(
                OPS->neuron_pool_backward(devs[k], &nd, &pd, NULL, h[k], am[k], dy, dx[k]),
                CSNN_OK);
            assert_int_equal(
                OPS->neuron_pool_backward(devs[k], &nd, &pd, x, NULL, am[k], dy, dxr[k]),
                CSNN_OK);
        }
        TB_SAME(y[0], y[1], ny);
        TB_SAME(h[0], h[1], n);
        TB_SAME(dx[0], dx[1], nx);
        TB_SAME(dxr[0], dxr[1], nx);
        TB_SAME(dx[0], dxr[0], nx);
        assert_memory_equal(am[0], am[1], ny);
        for (int k = 0; k < 2; k++) free(y[k]), free(h[k]), free(dx[k]), free(dxr[k]), free(am[k]);
        free(x), free(dy);
    }
    OPS->close(devs[0]);
    OPS->close(devs[1]);
}

static void test_errors(void **state)
{
    (void)state;
    void *dev = tb_open(1);
    const pcfg p = {1, 2, 4, 4, 2, 2};
    csnn_neuron_desc nd = neuron_desc(&neurons[1], &p), bad;
    csnn_pool_desc pd = pool_desc(&neurons[1], &p), badp;
    float v[256] = {0}, o[256];
    uint8_t am[64] = {0};
    bad = nd, bad.m = 33; /* not whole planes */
    TB_ERROR(OPS->neuron_pool_forward(dev, &bad, &pd, v, o, am, o), CSNN_ERR_SHAPE, "planes");
    badp = pd, badp.planes = 7; /* not T * planes per step */
    TB_ERROR(OPS->neuron_pool_forward(dev, &nd, &badp, v, o, am, o), CSNN_ERR_SHAPE, "planes");
    TB_ERROR(OPS->neuron_pool_backward(dev, &nd, &badp, v, v, am, v, o), CSNN_ERR_SHAPE,
             "planes");
    badp = pd, badp.k = 0;
    TB_ERROR(OPS->neuron_pool_forward(dev, &nd, &badp, v, o, am, o), CSNN_ERR_INVALID_ARGUMENT,
             "neuron_pool_forward");
    bad = nd, bad.kind = 9;
    TB_ERROR(OPS->neuron_pool_backward(dev, &bad, &pd, v, v, am, v, o),
             CSNN_ERR_INVALID_ARGUMENT, "kind 9");
    TB_ERROR(OPS->neuron_pool_forward(dev, &nd, &pd, NULL, o, am, o), CSNN_ERR_INVALID_ARGUMENT,
             "'x'");
    TB_ERROR(OPS->neuron_pool_forward(dev, &nd, &pd, v, NULL, am, o), CSNN_ERR_INVALID_ARGUMENT,
             "'y'");
    TB_ERROR(OPS->neuron_pool_backward(dev, &nd, &pd, NULL, NULL, am, v, o),
             CSNN_ERR_INVALID_ARGUMENT, "'h' and 'x'");
    TB_ERROR(OPS->neuron_pool_backward(dev, &nd, &pd, v, v, NULL, v, o),
             CSNN_ERR_INVALID_ARGUMENT, "'argmax'");
    TB_ERROR(OPS->neuron_pool_backward(dev, &nd, &pd, v, v, am, NULL, o),
             CSNN_ERR_INVALID_ARGUMENT, "'dy'");
    TB_ERROR(OPS->neuron_pool_backward(dev, &nd, &pd, v, v, am, v, NULL),
             CSNN_ERR_INVALID_ARGUMENT, "'dx'");
    /* no neurons: nothing to do */
    bad = nd, bad.m = 0;
    badp = pd, badp.planes = 0;
    assert_int_equal(OPS->neuron_pool_forward(dev, &bad, &badp, NULL, NULL, NULL, NULL), CSNN_OK);
    assert_int_equal(OPS->neuron_pool_backward(dev, &bad, &badp, NULL, NULL, NULL, NULL, NULL),
                     CSNN_OK);
    OPS->close(dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_configs),
        cmocka_unit_test(test_pool_2x2_backward),
        cmocka_unit_test(test_conv_neuron_pool),
        cmocka_unit_test(test_threads_deterministic),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
