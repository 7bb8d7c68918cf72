/* test_cpu_neuron.c - CPU backend: the fused multi-step IF / LIF neurons.
 *
 * Forward: spikes exactly and H within float rounding of a double
 * re-implementation of the equations. Backward: against finite differences
 * of the surrogate-smoothed function: with x0 = H - v_th of every (t, m) at
 * the operating point, the spike becomes S = Heaviside(x0) + G(x) - G(x0)
 * (G the surrogate's primitive), the reset uses that S (or Heaviside(x0)
 * with detach_reset), and L = sum grad_s * S. Also the SpikingJelly
 * fixtures, thread-count independence and descriptor errors. */
#include "backend_test.h"

typedef struct {
    int kind, hard, detach, decay, surrogate, shared, t;
    double v_th, v_reset, tau, alpha;
    int m;
} ncfg;

static csnn_neuron_desc to_desc(const ncfg *c)
{
    csnn_neuron_desc d = {.kind = c->kind, .surrogate = c->surrogate, .hard_reset = c->hard,
                          .detach_reset = c->detach, .decay_input = c->decay,
                          .x_shared = c->shared, .t = c->t, .m = c->m,
                          .v_threshold = (float)c->v_th, .v_reset = (float)c->v_reset,
                          .tau = (float)c->tau, .alpha = (float)c->alpha};
    return d;
}

/* The charge in double, in its general form (soft reset leaks towards 0). */
static double charge(const csnn_neuron_desc *d, double v, double x)
{
    double rest = d->hard_reset ? d->v_reset : 0.0;
    if (d->kind == CSNN_NEURON_IF) return v + x;
    if (d->decay_input) return v + (x - (v - rest)) / d->tau;
    return v - (v - rest) / d->tau + x;
}

/* The primitive of the surrogate derivative. */
static double surrogate_primitive(const csnn_neuron_desc *d, double x)
{
    if (d->surrogate == CSNN_SURROGATE_ATAN) return atan(M_PI / 2 * d->alpha * x) / M_PI;
    return 1.0 / (1.0 + exp(-(double)d->alpha * x));
}

/* One neuron over T steps in double. x: [T] (or [1] when shared). With x0
 * NULL: the plain forward, writing x0[t] = H - v_th. With x0: the smoothed
 * spikes around x0, returning sum gs[t] S[t]. */
static double ref_neuron(const csnn_neuron_desc *d, const double *x, double *h_minus_th,
                         const double *x0, const double *gs)
{
    double v = d->hard_reset ? d->v_reset : 0.0, loss = 0.0;
    for (int t = 0; t < d->t; t++) {
        double h = charge(d, v, x[d->x_shared ? 0 : t]), xm = h - d->v_threshold, s, sr;
        if (!x0) {
            h_minus_th[t] = xm;
            s = sr = xm >= 0 ? 1.0 : 0.0;
        } else {
            double heav = x0[t] >= 0 ? 1.0 : 0.0;
            s = heav + surrogate_primitive(d, xm) - surrogate_primitive(d, x0[t]);
            sr = d->detach_reset ? heav : s;
            loss += gs[t] * s;
        }
        v = d->hard_reset ? h * (1 - sr) + d->v_reset * sr : h - d->v_threshold * sr;
    }
    return loss;
}

typedef struct {
    const csnn_neuron_desc *d;
    double *x;
    const double *x0, *gs;
} neuron_fd;

static double neuron_fd_loss(void *ctx)
{
    const neuron_fd *f = ctx;
    return ref_neuron(f->d, f->x, NULL, f->x0, f->gs);
}

/* Runs forward and backward of one configuration and checks both. */
static void check_neuron(void *dev, const ncfg *c, uint64_t seed)
{
    csnn_neuron_desc d = to_desc(c);
    const int T = c->t, M = c->m, nxt = c->shared ? 1 : T;
    const size_t n = (size_t)T * M, nx = (size_t)nxt * M;
    tb_rng r = tb_seed(seed);
    /* currents that make the neurons fire now and then */
    double hi = 1.6 * c->v_th * (c->kind == CSNN_NEURON_LIF && c->decay ? 0.75 * c->tau : 1.0);
    float *x = tb_rand_floats(&r, nx, -0.8 * c->v_th, hi);
    float *gs = tb_rand_floats(&r, n, -1, 1), *s = tb_floats(n), *h = tb_floats(n);
    float *gx = tb_floats(nx), *s2 = tb_floats(n);
    assert_int_equal(OPS->neuron_forward(dev, &d, x, s, h), CSNN_OK);
    assert_int_equal(OPS->neuron_forward(dev, &d, x, s2, NULL), CSNN_OK);
    TB_SAME(s, s2, n);
    tb_fill(gx, nx, NAN);
    assert_int_equal(OPS->neuron_backward(dev, &d, gs, h, gx), CSNN_OK);

    double x0[64], gsm[64], xl[64];
    double *href = tb_doubles(n), *gref = tb_doubles(nx);
    size_t spikes = 0;
    for (int m = 0; m < M; m++) {
        for (int t = 0; t < nxt; t++) xl[t] = x[(size_t)t * M + m];
        for (int t = 0; t < T; t++) gsm[t] = gs[(size_t)t * M + m];
        ref_neuron(&d, xl, x0, NULL, NULL);
        for (int t = 0; t < T; t++) {
            size_t e = (size_t)t * M + m;
            href[e] = x0[t] + d.v_threshold;
            float want = x0[t] >= 0 ? 1.0f : 0.0f;
            if (fabs(x0[t]) > 1e-5 && s[e] != want)
                fail_msg("spike (t %d, m %d) = %g, reference %g (H - v_th = %g)", t, m,
                         (double)s[e], (double)want, x0[t]);
            spikes += s[e] != 0.0f;
        }
        neuron_fd f = {&d, xl, x0, gsm};
        for (int t = 0; t < nxt; t++) gref[(size_t)t * M + m] = tb_fd(neuron_fd_loss, &f, xl, t);
    }
    /* the inputs were chosen so that both outcomes occur */
    if (!(spikes > n / 20 && spikes < n - n / 20))
        fail_msg("%zu spikes of %zu: adjust the inputs", spikes, n);
    TB_CLOSE(h, href, n, 2e-6, 1e-6);
    TB_CLOSE(gx, gref, nx, 2e-5, 1e-6);
    free(x), free(gs), free(s), free(s2), free(h), free(gx), free(href), free(gref);
}

static void test_neuron_configs(void **state)
{
    (void)state;
    void *dev = tb_open(2);
    enum { IF = CSNN_NEURON_IF, LIF = CSNN_NEURON_LIF, AT = CSNN_SURROGATE_ATAN,
           SG = CSNN_SURROGATE_SIGMOID };
    static const ncfg cfgs[] = {
        /* kind hard detach decay surr shared T  v_th v_reset tau alpha  M */
        {IF, 1, 0, 0, AT, 0, 4, 1.0, 0.0, 0, 2.0, 37},   /* the reference model's IF */
        {IF, 0, 0, 0, AT, 0, 3, 1.0, 0.0, 0, 2.0, 37},   /* soft reset */
        {IF, 1, 1, 0, AT, 0, 6, 1.0, 0.0, 0, 2.0, 37},   /* detach_reset */
        {IF, 1, 0, 0, AT, 0, 5, 1.0, -0.2, 0, 2.0, 37},  /* v_reset != 0 */
        {IF, 0, 1, 0, AT, 0, 4, 0.7, 0.0, 0, 3.0, 29},   /* soft + detach */
        {LIF, 1, 0, 1, AT, 0, 4, 1.0, 0.0, 2.0, 2.0, 37}, /* the reference model's LIF */
        {LIF, 0, 0, 1, AT, 0, 5, 1.0, 0.0, 3.0, 2.0, 37}, /* decay, soft */
        {LIF, 0, 0, 0, AT, 0, 4, 1.0, 0.0, 2.0, 2.0, 37}, /* no decay, soft */
        {LIF, 1, 0, 0, AT, 0, 3, 1.0, 0.0, 1.5, 2.0, 37}, /* no decay, hard 0 */
        {LIF, 1, 0, 1, AT, 0, 4, 1.0, 0.25, 2.5, 2.0, 37}, /* decay, v_reset != 0 */
        {LIF, 1, 1, 0, AT, 0, 5, 1.0, -0.3, 4.0, 2.0, 37}, /* no decay, v_reset, detach */
        {IF, 1, 0, 0, SG, 0, 4, 1.0, 0.0, 0, 4.0, 37},    /* Sigmoid */
        {LIF, 0, 1, 1, SG, 0, 4, 1.0, 0.0, 2.0, 3.0, 37}, /* Sigmoid, soft, detach */
        {IF, 1, 0, 0, AT, 1, 4, 1.0, 0.0, 0, 2.0, 37},    /* x_shared */
        {LIF, 1, 0, 1, AT, 1, 5, 1.0, 0.0, 2.0, 2.0, 37}, /* x_shared LIF */
        {LIF, 0, 0, 0, SG, 1, 3, 1.0, 0.0, 2.0, 4.0, 37}, /* x_shared, Sigmoid, soft */
        {IF, 1, 0, 0, AT, 0, 1, 1.0, 0.0, 0, 2.0, 37},    /* T = 1 */
        {IF, 1, 0, 0, AT, 0, 4, 0.5, 0.0, 0, 1.5, 700},   /* several blocks of neurons */
        {LIF, 1, 0, 1, SG, 1, 6, 1.0, 0.1, 2.0, 4.0, 9000}, /* parallel, shared */
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) check_neuron(dev, &cfgs[i], i + 1);
    OPS->close(dev);
}

static void test_neuron_threads_deterministic(void **state)
{
    (void)state;
    void *d1 = tb_open(1), *d3 = tb_open(3);
    ncfg c = {CSNN_NEURON_LIF, 1, 0, 1, CSNN_SURROGATE_ATAN, 0, 4, 1.0, 0.0, 2.0, 2.0, 10000};
    csnn_neuron_desc d = to_desc(&c);
    tb_rng r = tb_seed(5);
    size_t n = (size_t)c.t * c.m;
    float *x = tb_rand_floats(&r, n, -1, 2), *gs = tb_rand_floats(&r, n, -1, 1);
    float *out[2][3];
    void *devs[2] = {d1, d3};
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 3; i++) out[k][i] = tb_floats(n);
        assert_int_equal(OPS->neuron_forward(devs[k], &d, x, out[k][0], out[k][1]), CSNN_OK);
        assert_int_equal(OPS->neuron_backward(devs[k], &d, gs, out[k][1], out[k][2]), CSNN_OK);
    }
    for (int i = 0; i < 3; i++) TB_SAME(out[0][i], out[1][i], n);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 3; i++) free(out[k][i]);
    free(x), free(gs);
    OPS->close(d1);
    OPS->close(d3);
}

static void test_neuron_errors(void **state)
{
    (void)state;
    void *dev = tb_open(1);
    ncfg c = {CSNN_NEURON_LIF, 1, 0, 1, CSNN_SURROGATE_ATAN, 0, 2, 1.0, 0.0, 2.0, 2.0, 3};
    csnn_neuron_desc d = to_desc(&c), bad;
    float v[6] = {0}, o[6];
    bad = d, bad.kind = 7;
    TB_ERROR(OPS->neuron_forward(dev, &bad, v, o, o), CSNN_ERR_INVALID_ARGUMENT, "kind 7");
    bad = d, bad.surrogate = 5;
    TB_ERROR(OPS->neuron_forward(dev, &bad, v, o, o), CSNN_ERR_INVALID_ARGUMENT, "surrogate 5");
    bad = d, bad.tau = 0.0f;
    TB_ERROR(OPS->neuron_forward(dev, &bad, v, o, o), CSNN_ERR_INVALID_ARGUMENT, "tau = 0");
    bad = d, bad.t = 0;
    TB_ERROR(OPS->neuron_backward(dev, &bad, v, v, o), CSNN_ERR_INVALID_ARGUMENT, "T = 0");
    bad = d, bad.v_threshold = NAN;
    TB_ERROR(OPS->neuron_forward(dev, &bad, v, o, o), CSNN_ERR_INVALID_ARGUMENT, "finite");
    TB_ERROR(OPS->neuron_backward(dev, &d, v, NULL, o), CSNN_ERR_INVALID_ARGUMENT, "'h'");
    TB_ERROR(OPS->neuron_forward(dev, &d, v, NULL, o), CSNN_ERR_INVALID_ARGUMENT, "'s'");
    /* H == v_th fires (>=, not >); a NaN input does not */
    csnn_neuron_desc eq = {.kind = CSNN_NEURON_IF, .hard_reset = 1, .t = 3, .m = 2,
                           .v_threshold = 1.0f, .alpha = 2.0f};
    const float xe[6] = {1.0f, NAN, 0.5f, 0.0f, 0.5f, 0.0f};
    float se[6], he[6];
    assert_int_equal(OPS->neuron_forward(dev, &eq, xe, se, he), CSNN_OK);
    const float want[6] = {1, 0, 0, 0, 1, 0};
    assert_memory_equal(se, want, sizeof want);
    /* IF ignores tau */
    d.kind = CSNN_NEURON_IF, d.tau = 0.0f;
    assert_int_equal(OPS->neuron_forward(dev, &d, v, o, NULL), CSNN_OK);
    OPS->close(dev);
}

/* ---- the SpikingJelly fixtures (kind=neuron) ---- */

typedef struct {
    char name[32];
    int ndim, dims[8];
    size_t n;
    float *v;
} fx_tensor;

static const char *fixtures_dir(void)
{
    const char *dir = getenv("CSNN_FIXTURES_DIR");
    if (!dir || !*dir) dir = getenv("CSNN_DEFAULT_FIXTURES_DIR");
    return dir && *dir ? dir : NULL;
}

/* The value of key=... on the #! line, into out; 0 when absent. */
static int fx_setting(const char *line, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    for (const char *p = line; (p = strstr(p, key)) != NULL; p += kl) {
        if ((p == line || p[-1] == ' ') && p[kl] == '=') {
            size_t n = strcspn(p + kl + 1, " \r\n");
            snprintf(out, cap, "%.*s", (int)n, p + kl + 1);
            return 1;
        }
    }
    return 0;
}

/* Reads the #! line and the tensors named in want[0..nw). */
static int fx_read(const char *path, char *settings, size_t cap, fx_tensor *want, int nw)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char *line = NULL;
    size_t lcap = 0;
    settings[0] = '\0';
    while (getline(&line, &lcap, f) > 0) {
        if (strncmp(line, "#! ", 3) == 0) snprintf(settings, cap, "%s", line + 3);
        if (line[0] == '#') continue;
        char name[64];
        int used;
        if (sscanf(line, "%63s%n", name, &used) != 1) continue;
        for (int k = 0; k < nw; k++) {
            if (strcmp(name, want[k].name) != 0) continue;
            char *p = line + used, *end;
            want[k].ndim = (int)strtol(p, &end, 10);
            assert_true(want[k].ndim >= 1 && want[k].ndim <= 8);
            want[k].n = 1;
            for (int i = 0; i < want[k].ndim; i++) {
                want[k].dims[i] = (int)strtol(end, &end, 10);
                want[k].n *= (size_t)want[k].dims[i];
            }
            want[k].v = tb_floats(want[k].n);
            for (size_t i = 0; i < want[k].n; i++) want[k].v[i] = (float)strtod(end, &end);
        }
    }
    free(line);
    fclose(f);
    return 1;
}

static void test_neuron_fixtures(void **state)
{
    (void)state;
    const char *dir = fixtures_dir();
    if (!dir) skip();
    static const char *files[] = {"if_hard", "lif_hard_decay", "lif_soft_nodecay", "if_detach",
                                  "sigmoid_surrogate"};
    void *dev = tb_open(2);
    int found = 0;
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char path[1024], settings[512], val[64];
        snprintf(path, sizeof path, "%s/%s.txt", dir, files[f]);
        fx_tensor t[5] = {{.name = "x_seq"}, {.name = "s_seq"}, {.name = "h_minus_th_seq"},
                          {.name = "grad_s"}, {.name = "dx"}};
        if (!fx_read(path, settings, sizeof settings, t, 5)) continue;
        found++;
        for (int k = 0; k < 5; k++) assert_non_null(t[k].v);
        csnn_neuron_desc d = {.t = t[0].dims[0], .m = (int64_t)(t[0].n / (size_t)t[0].dims[0])};
        assert_true(fx_setting(settings, "neuron", val, sizeof val));
        d.kind = strcmp(val, "lif") == 0 ? CSNN_NEURON_LIF : CSNN_NEURON_IF;
        assert_true(fx_setting(settings, "v_threshold", val, sizeof val));
        d.v_threshold = strtof(val, NULL);
        assert_true(fx_setting(settings, "v_reset", val, sizeof val));
        d.hard_reset = strcmp(val, "none") != 0;
        d.v_reset = d.hard_reset ? strtof(val, NULL) : 0.0f;
        d.tau = fx_setting(settings, "tau", val, sizeof val) ? strtof(val, NULL) : 2.0f;
        d.decay_input = fx_setting(settings, "decay_input", val, sizeof val) ? atoi(val) : 1;
        d.detach_reset = fx_setting(settings, "detach_reset", val, sizeof val) ? atoi(val) : 0;
        assert_true(fx_setting(settings, "surrogate", val, sizeof val));
        d.surrogate = strcmp(val, "sigmoid") == 0 ? CSNN_SURROGATE_SIGMOID : CSNN_SURROGATE_ATAN;
        d.alpha = fx_setting(settings, "alpha", val, sizeof val)
                      ? strtof(val, NULL)
                      : (d.surrogate == CSNN_SURROGATE_SIGMOID ? 4.0f : 2.0f);

        size_t n = t[0].n;
        float *s = tb_floats(n), *h = tb_floats(n), *dx = tb_floats(n);
        assert_int_equal(OPS->neuron_forward(dev, &d, t[0].v, s, h), CSNN_OK);
        assert_int_equal(OPS->neuron_backward(dev, &d, t[3].v, h, dx), CSNN_OK);
        assert_memory_equal(s, t[1].v, n * sizeof(float));
        double *ref = tb_doubles(n);
        for (size_t i = 0; i < n; i++) {
            ref[i] = t[2].v[i];
            h[i] -= d.v_threshold;
        }
        TB_CLOSE(h, ref, n, 3e-5, 1e-6);
        for (size_t i = 0; i < n; i++) ref[i] = t[4].v[i];
        TB_CLOSE(dx, ref, n, 3e-5, 1e-6);
        free(s), free(h), free(dx), free(ref);
        for (int k = 0; k < 5; k++) free(t[k].v);
    }
    OPS->close(dev);
    if (!found) skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_neuron_configs),
        cmocka_unit_test(test_neuron_threads_deterministic),
        cmocka_unit_test(test_neuron_errors),
        cmocka_unit_test(test_neuron_fixtures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
