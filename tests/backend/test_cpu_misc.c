/* test_cpu_misc.c - CPU backend: ReLU, dropout masks, mul_broadcast_t, the
 * time-axis ops, the losses and the optimisers. */
#include "backend_test.h"
#include "../../lib/backend/cpu/cpu_internal.h"

/* ---- ReLU ---- */

typedef struct {
    double *x, *r;
    size_t n;
} relu_case;

static double relu_loss(void *ctx)
{
    const relu_case *c = ctx;
    double l = 0;
    for (size_t i = 0; i < c->n; i++) l += c->r[i] * (c->x[i] > 0 ? c->x[i] : 0.0);
    return l;
}

static void test_relu(void **state)
{
    (void)state;
    void *dev = tb_open(3);
    tb_rng r = tb_seed(1);
    const size_t n = 100003;
    float *x = tb_rand_floats(&r, n, -1, 1), *y = tb_floats(n), *dy = tb_rand_floats(&r, n, -1, 1);
    float *dx = tb_floats(n);
    for (size_t i = 0; i < n; i++)
        if (fabsf(x[i]) < 1e-3f) x[i] = 0.5f; /* away from the kink for the differences */
    x[3] = NAN, x[4] = 0.0f;
    assert_int_equal(OPS->relu_forward(dev, (int64_t)n, x, y), CSNN_OK);
    for (size_t i = 0; i < n; i++) {
        if (i == 3) continue;
        assert_true(y[i] == (x[i] > 0 ? x[i] : 0.0f));
    }
    assert_true(isnan(y[3])); /* NaN passes, as torch.relu */
    x[3] = -1.0f;
    assert_int_equal(OPS->relu_forward(dev, (int64_t)n, x, y), CSNN_OK);
    assert_int_equal(OPS->relu_backward(dev, (int64_t)n, y, dy, dx), CSNN_OK);
    relu_case c = {tb_widen(x, n), tb_widen(dy, n), 2000}; /* L over the first 2000 */
    double *g = tb_doubles(n);
    for (size_t i = 0; i < 2000; i++) g[i] = tb_fd(relu_loss, &c, c.x, i);
    for (size_t i = 2000; i < n; i++) g[i] = x[i] > 0 ? dy[i] : 0.0; /* the same, cheaper */
    g[4] = 0.0; /* at the kink, torch's gradient is 0 */
    TB_CLOSE(dx, g, n, 1e-7, 0);
    TB_ERROR(OPS->relu_forward(dev, 5, NULL, y), CSNN_ERR_INVALID_ARGUMENT, "relu_forward");
    free(x), free(y), free(dy), free(dx), free(c.x), free(c.r), free(g);
    OPS->close(dev);
}

/* ---- dropout ---- */

static void check_mask(void *dev, int64_t n, float p, uint64_t seed, uint64_t stream)
{
    float *mask = tb_floats((size_t)n);
    assert_int_equal(OPS->dropout_mask(dev, mask, n, p, seed, stream), CSNN_OK);
    const float scale = (float)(1.0 / (1.0 - (double)p));
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) {
        if (csnn_rng_uniform(seed, stream, (uint64_t)i) == p && mask[i] == 0.0f)
            fail_msg("mask[%lld]: u == p must be kept", (long long)i);
        float want = csnn_rng_uniform(seed, stream, (uint64_t)i) >= p ? scale : 0.0f;
        if (mask[i] != want)
            fail_msg("mask[%lld] = %g, expected %g", (long long)i, (double)mask[i], (double)want);
        kept += mask[i] != 0.0f;
    }
    if (n >= 10000) {
        double frac = (double)kept / (double)n;
        assert_true(fabs(frac - (1.0 - p)) < 0.01);
    }
    free(mask);
}

static void test_dropout(void **state)
{
    (void)state;
    void *d1 = tb_open(1), *d3 = tb_open(3);
    check_mask(d1, 100003, 0.5f, 42, 7);
    check_mask(d3, 100003, 0.5f, 42, 7);
    check_mask(d3, 77777, 0.3f, 1, 0x123456789ull);
    check_mask(d3, 13, 0.2f, 9, 3);
    check_mask(d3, 50000, 0.0f, 9, 3);
    /* u == p is kept: p equal to the draws of elements 5 and 2 */
    check_mask(d3, 64, csnn_rng_uniform(9, 3, 5), 9, 3);
    check_mask(d3, 64, csnn_rng_uniform(9, 3, 2), 9, 3);
    float mask[64];
    assert_int_equal(OPS->dropout_mask(d3, mask, 64, 1.0f, 9, 3), CSNN_OK);
    for (int i = 0; i < 64; i++) assert_true(mask[i] == 0.0f);
    assert_int_equal(OPS->dropout_mask(d3, mask, 64, 0.5f, 9, 3), CSNN_OK);
    for (int i = 0; i < 64; i++) assert_true(mask[i] == 0.0f || mask[i] == 2.0f);
    /* another stream, another mask */
    float other[64];
    assert_int_equal(OPS->dropout_mask(d3, other, 64, 0.5f, 9, 4), CSNN_OK);
    assert_memory_not_equal(mask, other, sizeof mask);
    TB_ERROR(OPS->dropout_mask(d3, mask, 64, 1.5f, 9, 3), CSNN_ERR_INVALID_ARGUMENT, "p = 1.5");
    TB_ERROR(OPS->dropout_mask(d3, mask, 64, NAN, 9, 3), CSNN_ERR_INVALID_ARGUMENT, "dropout");
    OPS->close(d1);
    OPS->close(d3);
}

static void test_mul_broadcast_t(void **state)
{
    (void)state;
    void *dev = tb_open(3);
    tb_rng r = tb_seed(3);
    static const int shapes[][2] = {{3, 1001}, {4, 70000}, {1, 5}, {7, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int T = shapes[s][0], n = shapes[s][1];
        size_t nt = (size_t)T * n;
        float *x = tb_rand_floats(&r, nt, -2, 2), *mask = tb_rand_floats(&r, (size_t)n, 0, 2);
        float *y = tb_floats(nt);
        double *ref = tb_doubles(nt);
        for (size_t k = 0; k < nt; k++) ref[k] = (double)x[k] * mask[k % (size_t)n];
        assert_int_equal(OPS->mul_broadcast_t(dev, T, n, x, mask, y), CSNN_OK);
        TB_CLOSE(y, ref, nt, 1e-7, 0);
        assert_int_equal(OPS->mul_broadcast_t(dev, T, n, x, mask, x), CSNN_OK); /* in place */
        TB_SAME(x, y, nt);
        free(x), free(mask), free(y), free(ref);
    }
    float v[2];
    TB_ERROR(OPS->mul_broadcast_t(dev, 0, 2, v, v, v), CSNN_ERR_INVALID_ARGUMENT, "steps = 0");
    OPS->close(dev);
}

/* ---- time ops ---- */

typedef struct {
    int T, n, mean; /* mean: L = sum r mean_t(x); else L = sum r repeat(x) */
    double *x, *r;
} time_case;

static double time_loss(void *ctx)
{
    const time_case *c = ctx;
    double l = 0;
    for (int i = 0; i < c->n; i++)
        if (c->mean) {
            double s = 0;
            for (int t = 0; t < c->T; t++) s += c->x[t * c->n + i];
            l += c->r[i] * s / c->T;
        } else {
            for (int t = 0; t < c->T; t++) l += c->r[t * c->n + i] * c->x[i];
        }
    return l;
}

static void test_time_ops(void **state)
{
    (void)state;
    void *dev = tb_open(3);
    tb_rng r = tb_seed(4);
    static const int shapes[][2] = {{4, 37}, {1, 10}, {3, 50001}, {6, 7}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int T = shapes[s][0], n = shapes[s][1];
        size_t nt = (size_t)T * n;
        float *x = tb_rand_floats(&r, nt, -1, 1), *y = tb_floats(nt), *g = tb_floats(nt);
        float *rr = tb_rand_floats(&r, nt, -1, 1);
        double *ref = tb_doubles(nt);
        /* forward values */
        for (int i = 0; i < n; i++) {
            ref[i] = 0;
            for (int t = 0; t < T; t++) ref[i] += x[(size_t)t * n + i];
        }
        assert_int_equal(OPS->time_sum(dev, T, n, x, y), CSNN_OK);
        TB_CLOSE(y, ref, (size_t)n, 1e-6, 0);
        for (int i = 0; i < n; i++) ref[i] /= T;
        assert_int_equal(OPS->time_mean(dev, T, n, x, y), CSNN_OK);
        TB_CLOSE(y, ref, (size_t)n, 1e-6, 0);
        for (size_t k = 0; k < nt; k++) ref[k] = x[k % (size_t)n];
        assert_int_equal(OPS->time_repeat(dev, T, n, x, y), CSNN_OK);
        TB_CLOSE(y, ref, nt, 0, 0);
        /* gradients by finite differences (on a prefix of the big shape) */
        const int nf = n < 40 ? n : 40;
        time_case c = {T, n, 1, tb_widen(x, nt), tb_widen(rr, nt)};
        assert_int_equal(OPS->time_mean_backward(dev, T, n, rr, g), CSNN_OK);
        for (int t = 0; t < T; t++)
            for (int i = 0; i < nf; i++) {
                size_t e = (size_t)t * n + i;
                if (fabs((double)g[e] - tb_fd(time_loss, &c, c.x, e)) > 1e-7)
                    fail_msg("time_mean_backward[%zu] = %g", e, (double)g[e]);
            }
        for (size_t k = 0; k < nt; k++) ref[k] = (double)rr[k % (size_t)n] / T;
        TB_CLOSE(g, ref, nt, 1e-7, 0);
        c.mean = 0; /* time_repeat's adjoint is time_sum */
        assert_int_equal(OPS->time_sum(dev, T, n, rr, g), CSNN_OK);
        for (int i = 0; i < nf; i++)
            if (fabs((double)g[i] - tb_fd(time_loss, &c, c.x, (size_t)i)) > 1e-6)
                fail_msg("time_sum as repeat's backward [%d] = %g", i, (double)g[i]);
        free(x), free(y), free(g), free(rr), free(ref), free(c.x), free(c.r);
    }
    float v[2];
    TB_ERROR(OPS->time_mean(dev, 0, 2, v, v), CSNN_ERR_INVALID_ARGUMENT, "time_mean");
    TB_ERROR(OPS->time_repeat(dev, 2, -2, v, v), CSNN_ERR_INVALID_ARGUMENT, "time_repeat");
    OPS->close(dev);
}

/* ---- losses ---- */

typedef struct {
    csnn_loss_desc d;
    double *out;
    const int32_t *labels;
} loss_case;

static double ref_loss(void *ctx)
{
    const loss_case *c = ctx;
    const int n = c->d.n, k = c->d.k;
    const double s = c->d.smoothing;
    double l = 0;
    for (int i = 0; i < n; i++) {
        double lse = 0;
        for (int j = 0; j < k; j++) lse += exp(c->out[i * k + j]);
        lse = log(lse);
        for (int j = 0; j < k; j++) {
            double q = (j == c->labels[i] ? 1 - s : 0) + s / k, o = c->out[i * k + j];
            l += c->d.kind == CSNN_LOSS_MSE ? (o - q) * (o - q) / (n * k) : -q * (o - lse) / n;
        }
    }
    return l;
}

static void test_loss_values(void **state)
{
    (void)state;
    void *dev = tb_open(1);
    const float out[6] = {0.25f, 0.75f, 0.0f, 1.0f, 0.0f, 0.5f};
    const int32_t labels[2] = {1, 0};
    float loss, grad[6];
    csnn_loss_desc d = {.kind = CSNN_LOSS_MSE, .n = 2, .k = 3, .smoothing = 0.0f};
    assert_int_equal(OPS->loss(dev, &d, out, labels, &loss, grad), CSNN_OK);
    assert_float_equal(loss, 0.0625, 1e-8);
    const float want[6] = {0.25f / 3, -0.25f / 3, 0, 0, 0, 0.5f / 3};
    for (int i = 0; i < 6; i++) assert_float_equal(grad[i], want[i], 1e-8);
    d.smoothing = 0.3f; /* targets 0.8 / 0.1 */
    assert_int_equal(OPS->loss(dev, &d, out, labels, &loss, NULL), CSNN_OK);
    assert_float_equal(loss, 0.245 / 6, 1e-8);

    const float logits[3] = {1, 2, 3};
    const int32_t two[1] = {2};
    csnn_loss_desc ce = {.kind = CSNN_LOSS_CE, .n = 1, .k = 3, .smoothing = 0.0f};
    assert_int_equal(OPS->loss(dev, &ce, logits, two, &loss, grad), CSNN_OK);
    assert_float_equal(loss, 0.40760596444438013, 1e-7);
    double z = exp(1) + exp(2) + exp(3);
    assert_float_equal(grad[0], exp(1) / z, 1e-7);
    assert_float_equal(grad[2], exp(3) / z - 1, 1e-7);
    ce.smoothing = 0.1f;
    assert_int_equal(OPS->loss(dev, &ce, logits, two, &loss, grad), CSNN_OK);
    assert_float_equal(loss, 0.5076059644443801, 1e-7);
    const float flat[4] = {0, 0, 5, 5};
    const int32_t lab2[2] = {1, 0};
    ce.n = 2, ce.k = 2;
    assert_int_equal(OPS->loss(dev, &ce, flat, lab2, &loss, NULL), CSNN_OK);
    assert_float_equal(loss, log(2.0), 1e-7);
    OPS->close(dev);
}

static void test_loss_fd(void **state)
{
    (void)state;
    void *dev = tb_open(2);
    tb_rng r = tb_seed(5);
    const int n = 4, k = 5;
    const int32_t labels[4] = {0, 4, 2, 2};
    for (int kind = 0; kind < 2; kind++)
        for (int sm = 0; sm < 2; sm++) {
            csnn_loss_desc d = {.kind = kind, .n = n, .k = k, .smoothing = sm ? 0.1f : 0.0f};
            float *out = tb_rand_floats(&r, n * k, kind ? -3 : 0, kind ? 3 : 1);
            float loss, *grad = tb_floats(n * k);
            loss_case c = {d, tb_widen(out, n * k), labels};
            assert_int_equal(OPS->loss(dev, &d, out, labels, &loss, grad), CSNN_OK);
            double lref = ref_loss(&c);
            if (!(fabs(loss - lref) <= 1e-7 * fabs(lref) + 1e-8))
                fail_msg("kind %d smoothing %g: loss %.9g, reference %.12g", kind,
                         (double)d.smoothing, (double)loss, lref);
            double *g = tb_doubles(n * k);
            tb_fd_grad(ref_loss, &c, c.out, n * k, g);
            TB_CLOSE(grad, g, n * k, 1e-6, 1e-8);
            free(out), free(grad), free(c.out), free(g);
        }
    OPS->close(dev);
}

static void test_loss_errors(void **state)
{
    (void)state;
    void *dev = tb_open(1);
    const float out[6] = {0};
    float loss;
    int32_t labels[2] = {1, 3};
    csnn_loss_desc d = {.kind = CSNN_LOSS_CE, .n = 2, .k = 3};
    TB_ERROR(OPS->loss(dev, &d, out, labels, &loss, NULL), CSNN_ERR_INVALID_ARGUMENT,
             "labels[1] = 3");
    labels[1] = -1;
    TB_ERROR(OPS->loss(dev, &d, out, labels, &loss, NULL), CSNN_ERR_INVALID_ARGUMENT,
             "labels[1] = -1");
    labels[1] = 2;
    d.kind = 4;
    TB_ERROR(OPS->loss(dev, &d, out, labels, &loss, NULL), CSNN_ERR_INVALID_ARGUMENT, "kind 4");
    d.kind = CSNN_LOSS_MSE, d.smoothing = -0.5f;
    TB_ERROR(OPS->loss(dev, &d, out, labels, &loss, NULL), CSNN_ERR_INVALID_ARGUMENT, "smoothing");
    d.smoothing = 0, d.k = 0;
    TB_ERROR(OPS->loss(dev, &d, out, labels, &loss, NULL), CSNN_ERR_INVALID_ARGUMENT, "[2, 0]");
    OPS->close(dev);
}

/* ---- optimisers: 3 steps against the torch formulas in double ---- */

typedef struct {
    int kind, nesterov;
    double lr, b1, b2, eps, wd, momentum, dampening;
} optim_cfg;

static void ref_optim_step(const optim_cfg *c, int step, size_t n, double *w, const double *g,
                           double *m, double *v)
{
    for (size_t i = 0; i < n; i++) {
        double gi = g[i];
        if (c->kind == CSNN_OPTIMIZER_SGD) {
            gi += c->wd * w[i];
            if (c->momentum != 0) {
                m[i] = step == 1 ? gi : c->momentum * m[i] + (1 - c->dampening) * gi;
                gi = c->nesterov ? gi + c->momentum * m[i] : m[i];
            }
            w[i] -= c->lr * gi;
            continue;
        }
        if (c->kind == CSNN_OPTIMIZER_ADAMW) w[i] *= 1 - c->lr * c->wd;
        else gi += c->wd * w[i];
        m[i] = c->b1 * m[i] + (1 - c->b1) * gi;
        v[i] = c->b2 * v[i] + (1 - c->b2) * gi * gi;
        double bc1 = 1 - pow(c->b1, step), bc2 = 1 - pow(c->b2, step);
        w[i] -= c->lr / bc1 * m[i] / (sqrt(v[i]) / sqrt(bc2) + c->eps);
    }
}

static void check_optim(void *dev, optim_cfg c, uint64_t seed)
{
    tb_rng r = tb_seed(seed);
    const size_t n = 40001;
    float *w = tb_rand_floats(&r, n, -1, 1), *m = tb_floats(n), *v = tb_floats(n);
    tb_fill(m, n, 0), tb_fill(v, n, 0);
    if (c.kind == CSNN_OPTIMIZER_SGD) tb_fill(m, n, NAN); /* step 1 must not read it */
    double *wd = tb_widen(w, n), *md = tb_doubles(n), *vd = tb_doubles(n);
    /* the coefficients as the float descriptor carries them */
    c.lr = (float)c.lr, c.b1 = (float)c.b1, c.b2 = (float)c.b2, c.eps = (float)c.eps;
    c.wd = (float)c.wd, c.momentum = (float)c.momentum, c.dampening = (float)c.dampening;
    for (int step = 1; step <= 3; step++) {
        float *g = tb_rand_floats(&r, n, -1, 1);
        g[0] = 0.0f;
        double *gd = tb_widen(g, n);
        csnn_optim_desc d = {.kind = c.kind, .nesterov = c.nesterov, .step = step,
                             .lr = (float)c.lr, .beta1 = (float)c.b1, .beta2 = (float)c.b2,
                             .eps = (float)c.eps, .weight_decay = (float)c.wd,
                             .momentum = (float)c.momentum, .dampening = (float)c.dampening,
                             .step_size = (float)(c.lr / (1 - pow(c.b1, step))),
                             .bias_correction2_sqrt = (float)sqrt(1 - pow(c.b2, step))};
        float *g0 = tb_floats(n);
        memcpy(g0, g, n * sizeof(float));
        assert_int_equal(OPS->optim_step(dev, &d, (int64_t)n, w, g, m, v), CSNN_OK);
        assert_memory_equal(g, g0, n * sizeof(float)); /* the gradient is not modified */
        ref_optim_step(&c, step, n, wd, gd, md, vd);
        free(g), free(gd), free(g0);
    }
    TB_CLOSE(w, wd, n, 1e-6, 0);
    if (c.kind != CSNN_OPTIMIZER_SGD || c.momentum != 0) TB_CLOSE(m, md, n, 1e-6, 0);
    if (c.kind != CSNN_OPTIMIZER_SGD) TB_CLOSE(v, vd, n, 1e-6, 0);
    free(w), free(m), free(v), free(wd), free(md), free(vd);
}

/* Three steps of configuration c at instruction-set variant isa: w, m, v. */
static void optim_run(void *dev, const optim_cfg *c, int isa, float **out)
{
    tb_rng r = tb_seed(77);
    const size_t n = 4099;
    float *w = tb_rand_floats(&r, n, -1, 1), *m = tb_floats(n), *v = tb_floats(n);
    tb_fill(m, n, 0), tb_fill(v, n, 0);
    csnn__cpu_isa_cap = isa;
    for (int step = 1; step <= 3; step++) {
        float *g = tb_rand_floats(&r, n, -1, 1);
        csnn_optim_desc d = {.kind = c->kind, .nesterov = c->nesterov, .step = step,
                             .lr = (float)c->lr, .beta1 = (float)c->b1, .beta2 = (float)c->b2,
                             .eps = (float)c->eps, .weight_decay = (float)c->wd,
                             .momentum = (float)c->momentum, .dampening = (float)c->dampening,
                             .step_size = (float)(c->lr / (1 - pow(c->b1, step))),
                             .bias_correction2_sqrt = (float)sqrt(1 - pow(c->b2, step))};
        assert_int_equal(OPS->optim_step(dev, &d, (int64_t)n, w, g, m, v), CSNN_OK);
        free(g);
    }
    csnn__cpu_isa_cap = CPU_ISA_AVX512;
    out[0] = w, out[1] = m, out[2] = v;
}

static void test_optim(void **state)
{
    (void)state;
    void *dev = tb_open(3);
    const int AD = CSNN_OPTIMIZER_ADAM, AW = CSNN_OPTIMIZER_ADAMW, SGD = CSNN_OPTIMIZER_SGD;
    const optim_cfg cfgs[] = {
        {AD, 0, 1e-3, 0.9, 0.999, 1e-8, 0, 0, 0},
        {AD, 0, 1e-2, 0.8, 0.99, 1e-6, 0.05, 0, 0},
        {AW, 0, 1e-3, 0.9, 0.999, 1e-8, 0.01, 0, 0},
        {AW, 0, 3e-2, 0.5, 0.9, 1e-8, 0.1, 0, 0},
        {SGD, 0, 0.1, 0, 0, 0, 0, 0, 0},
        {SGD, 0, 0.1, 0, 0, 0, 0.01, 0.9, 0},
        {SGD, 0, 0.05, 0, 0, 0, 0.01, 0.9, 0.1},
        {SGD, 1, 0.05, 0, 0, 0, 0.001, 0.8, 0},
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) check_optim(dev, cfgs[i], i + 1);
    /* every instruction-set variant gives the same bits (sqrt and / are
     * correctly rounded at every width) */
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        float *best[3], *other[3];
        optim_run(dev, &cfgs[i], CPU_ISA_AVX512, best);
        for (int isa = CPU_ISA_BASE; isa < CPU_ISA_AVX512; isa++) {
            optim_run(dev, &cfgs[i], isa, other);
            for (int k = 0; k < 3; k++) {
                TB_SAME(best[k], other[k], 4099);
                free(other[k]);
            }
        }
        for (int k = 0; k < 3; k++) free(best[k]);
    }
    /* SGD without momentum needs no buffer */
    float w[2] = {1, 2}, g[2] = {0.5f, -1};
    csnn_optim_desc sgd = {.kind = SGD, .step = 1, .lr = 0.5f};
    assert_int_equal(OPS->optim_step(dev, &sgd, 2, w, g, NULL, NULL), CSNN_OK);
    assert_true(w[0] == 0.75f && w[1] == 2.5f);
    csnn_optim_desc adam = {.kind = AD, .step = 0, .lr = 1e-3f, .bias_correction2_sqrt = 1};
    TB_ERROR(OPS->optim_step(dev, &adam, 2, w, g, w, w), CSNN_ERR_INVALID_ARGUMENT, "step 0");
    adam.step = 1;
    TB_ERROR(OPS->optim_step(dev, &adam, 2, w, g, NULL, w), CSNN_ERR_INVALID_ARGUMENT, "'m'");
    adam.kind = 3;
    TB_ERROR(OPS->optim_step(dev, &adam, 2, w, g, w, w), CSNN_ERR_INVALID_ARGUMENT, "kind 3");
    OPS->close(dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relu),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_mul_broadcast_t),
        cmocka_unit_test(test_time_ops),
        cmocka_unit_test(test_loss_values),
        cmocka_unit_test(test_loss_fd),
        cmocka_unit_test(test_loss_errors),
        cmocka_unit_test(test_optim),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
