/*
 * test_fixtures.c - parity with SpikingJelly: runs EVERY fixture file (*.txt)
 * of a directory ($CSNN_FIXTURES_DIR, else the default set by meson) and
 * checks every recorded tensor. All sizes come from the tensors' shapes and
 * all settings from the file's "#!" line; nothing depends on file names.
 * A directory without fixtures, an unknown kind or key is a failure.
 *
 * Tolerances (fixture README): spikes, pooled spikes and firing rates exact;
 * every other tensor per element within 3e-5 * max|ref| + 1e-6. The conv
 * biases' gradients, values after Adam and Adam state are rounding noise
 * (they feed BatchNorm) and are skipped.
 */
#include <errno.h>
#include <dirent.h>
#include <math.h>

#include "test_util.h"
#include "trainer.h"

/* ------------------------------------------------------------------------ */
/* Fixture files                                                             */
/* ------------------------------------------------------------------------ */

typedef struct fx_tensor {
    char *name;
    int ndim;
    int64_t shape[8];
    int64_t numel;
    double *v;
} fx_tensor;

typedef struct fx_setting {
    char key[64];
    char value[64];
    int used;
} fx_setting;

typedef struct fixture {
    const char *path;
    fx_setting settings[64];
    int n_settings;
    fx_tensor *tensors;
    int n_tensors;
    int *checked; /* per tensor: 1 checked, 2 input, 3 skipped */
} fixture;

static void fx_free(fixture *f)
{
    for (int i = 0; i < f->n_tensors; i++) {
        free(f->tensors[i].name);
        free(f->tensors[i].v);
    }
    free(f->tensors);
    free(f->checked);
}

static void parse_settings(fixture *f, char *line)
{
    char *save = NULL;
    for (char *tok = strtok_r(line + 3, " \r\n", &save); tok; tok = strtok_r(NULL, " \r\n", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq || eq == tok) fail_msg("%s: malformed #! token '%s'", f->path, tok);
        *eq = '\0';
        if (f->n_settings == 64) fail_msg("%s: too many settings", f->path);
        for (int i = 0; i < f->n_settings; i++)
            if (strcmp(f->settings[i].key, tok) == 0) fail_msg("%s: key %s twice", f->path, tok);
        fx_setting *s = &f->settings[f->n_settings++];
        snprintf(s->key, sizeof s->key, "%s", tok);
        snprintf(s->value, sizeof s->value, "%s", eq + 1);
        s->used = 0;
    }
}

static void parse_tensor(fixture *f, char *line)
{
    fx_tensor t = {0};
    char *p = line, *end;
    while (*p == ' ') p++;
    char *name_end = strchr(p, ' ');
    if (!name_end) fail_msg("%s: malformed tensor line", f->path);
    t.name = strndup(p, (size_t)(name_end - p));
    p = name_end;
    long nd = strtol(p, &end, 10);
    if (end == p || nd < 0 || nd > 8) fail_msg("%s: tensor %s: bad ndim", f->path, t.name);
    p = end;
    t.ndim = (int)nd;
    t.numel = 1;
    for (int d = 0; d < t.ndim; d++) {
        long long v = strtoll(p, &end, 10);
        if (end == p || v <= 0) fail_msg("%s: tensor %s: bad dim", f->path, t.name);
        t.shape[d] = v;
        t.numel *= v;
        p = end;
    }
    t.v = malloc((size_t)t.numel * sizeof(double));
    assert_non_null(t.v);
    for (int64_t i = 0; i < t.numel; i++) {
        double v = strtod(p, &end);
        if (end == p) fail_msg("%s: tensor %s: %lld values expected", f->path, t.name, (long long)t.numel);
        t.v[i] = (float)v; /* every value is a float32 written with %.9g */
        p = end;
    }
    while (*p == ' ' || *p == '\r' || *p == '\n') p++;
    if (*p) fail_msg("%s: tensor %s: trailing data", f->path, t.name);
    f->tensors = realloc(f->tensors, (size_t)(f->n_tensors + 1) * sizeof *f->tensors);
    assert_non_null(f->tensors);
    f->tensors[f->n_tensors++] = t;
}

static void fx_load(fixture *f, const char *path)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    FILE *fp = fopen(path, "r");
    if (!fp) fail_msg("cannot open %s", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0;
    while ((len = getline(&line, &cap, fp)) >= 0) {
        lineno++;
        if (lineno == 1) {
            if (strncmp(line, "#! ", 3) != 0) fail_msg("%s: the first line is not a #! line", path);
            parse_settings(f, line);
            continue;
        }
        if (strncmp(line, "#!", 2) == 0) fail_msg("%s:%d: a second #! line", path, lineno);
        if (line[0] == '#' || line[0] == '\n' || line[0] == '\0') continue;
        parse_tensor(f, line);
    }
    free(line);
    fclose(fp);
    if (lineno == 0) fail_msg("%s is empty", path);
    f->checked = calloc((size_t)f->n_tensors + 1, sizeof(int));
}

static const char *setting(fixture *f, const char *key, const char *def)
{
    for (int i = 0; i < f->n_settings; i++)
        if (strcmp(f->settings[i].key, key) == 0) {
            f->settings[i].used = 1;
            return f->settings[i].value;
        }
    return def;
}

static double setting_num(fixture *f, const char *key, const char *def)
{
    const char *v = setting(f, key, def);
    if (!v) fail_msg("%s: required setting %s missing", f->path, key);
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end) fail_msg("%s: setting %s=%s is not a number", f->path, key, v);
    return d;
}

static void require_all_used(fixture *f)
{
    for (int i = 0; i < f->n_settings; i++)
        if (!f->settings[i].used)
            fail_msg("%s: unknown setting '%s' in the #! line", f->path, f->settings[i].key);
}

static fx_tensor *tensor(fixture *f, const char *name, int role)
{
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) {
            if (role) f->checked[i] = role;
            return &f->tensors[i];
        }
    return NULL;
}

static fx_tensor *need(fixture *f, const char *name, int role)
{
    fx_tensor *t = tensor(f, name, role);
    if (!t) fail_msg("%s: tensor %s is missing", f->path, name);
    return t;
}

static void require_all_checked(fixture *f)
{
    for (int i = 0; i < f->n_tensors; i++)
        if (!f->checked[i])
            fail_msg("%s: recorded tensor '%s' is not understood by this harness", f->path,
                     f->tensors[i].name);
}

/* ------------------------------------------------------------------------ */
/* Comparison                                                                */
/* ------------------------------------------------------------------------ */

static void compare(fixture *f, const char *what, const float *got, const fx_tensor *ref,
                    int64_t offset, int64_t n, bool exact)
{
    double maxref = 0;
    for (int64_t i = 0; i < n; i++) maxref = fmax(maxref, fabs(ref->v[offset + i]));
    double tol = exact ? 0.0 : 3e-5 * maxref + 1e-6;
    for (int64_t i = 0; i < n; i++) {
        double r = ref->v[offset + i], g = got[i];
        if (!(fabs(g - r) <= tol))
            fail_msg("%s: %s[%lld] = %.9g, SpikingJelly %.9g (tolerance %.3g)", f->path, what,
                     (long long)i, g, r, tol);
    }
}

static void shape_is(fixture *f, const fx_tensor *t, int64_t numel)
{
    if (t->numel != numel)
        fail_msg("%s: %s has %lld values, expected %lld", f->path, t->name, (long long)t->numel,
                 (long long)numel);
}

static float *to_float(const fx_tensor *t)
{
    float *v = malloc((size_t)t->numel * sizeof(float));
    assert_non_null(v);
    for (int64_t i = 0; i < t->numel; i++) v[i] = (float)t->v[i];
    return v;
}

/* ------------------------------------------------------------------------ */
/* Neuron settings -> spec options                                           */
/* ------------------------------------------------------------------------ */

/* Reads the neuron keys (with `prefix`) and returns the spec statement. */
static void neuron_statement(fixture *f, const char *prefix, char *out, size_t cap)
{
    char k[64];
#define KEY(name) (snprintf(k, sizeof k, "%s%s", prefix, name), k)
    const char *kind = setting(f, KEY("neuron"), NULL);
    if (!kind) fail_msg("%s: %sneuron missing", f->path, prefix);
    bool lif = strcmp(kind, "lif") == 0;
    if (!lif && strcmp(kind, "if") != 0) fail_msg("%s: unknown neuron '%s'", f->path, kind);
    const char *surrogate = setting(f, KEY("surrogate"), "sigmoid");
    if (strcmp(surrogate, "atan") != 0 && strcmp(surrogate, "sigmoid") != 0)
        fail_msg("%s: unknown surrogate '%s'", f->path, surrogate);
    double alpha = setting_num(f, KEY("alpha"), strcmp(surrogate, "atan") == 0 ? "2.0" : "4.0");
    double vth = setting_num(f, KEY("v_threshold"), "1.0");
    const char *vreset = setting(f, KEY("v_reset"), "0.0");
    double detach = setting_num(f, KEY("detach_reset"), "0");
    if (detach != 0 && detach != 1) fail_msg("%s: detach_reset must be 0/1", f->path);
    char lif_part[128] = "";
    if (lif) {
        double tau = setting_num(f, KEY("tau"), "2.0");
        double decay = setting_num(f, KEY("decay_input"), "1");
        if (decay != 0 && decay != 1) fail_msg("%s: decay_input must be 0/1", f->path);
        snprintf(lif_part, sizeof lif_part, " tau=%.17g decay_input=%d", tau, (int)decay);
    } else if (setting(f, KEY("tau"), NULL) || setting(f, KEY("decay_input"), NULL)) {
        fail_msg("%s: tau/decay_input given for an IF neuron", f->path);
    }
    char vr[80];
    if (strcmp(vreset, "none") == 0)
        snprintf(vr, sizeof vr, "none");
    else
        snprintf(vr, sizeof vr, "%.17g", setting_num(f, KEY("v_reset"), NULL));
    snprintf(out, cap, "%s%s v_threshold=%.17g v_reset=%s detach_reset=%d surrogate=%s alpha=%.17g",
             lif ? "lif" : "if", lif_part, vth, vr, (int)detach, surrogate, alpha);
#undef KEY
}

/* Parses one neuron statement into a descriptor through the model spec
 * parser (the same path a model takes). */
static csnn_neuron_desc neuron_desc_from(fixture *f, const char *stmt)
{
    char spec[512];
    snprintf(spec, sizeof spec, "input 1x1x1\nflatten\n%s\n", stmt);
    model_spec ms;
    csnn_status st = csnn__spec_parse(spec, &ms);
    if (st != CSNN_OK) fail_msg("%s: %s", f->path, csnn_last_error_message());
    csnn_neuron_desc d = ms.layers[1].neuron;
    csnn__spec_free(&ms);
    return d;
}

/* ------------------------------------------------------------------------ */
/* kind=neuron                                                               */
/* ------------------------------------------------------------------------ */

static void run_neuron(fixture *f, csnn_context *ctx)
{
    char stmt[400];
    neuron_statement(f, "", stmt, sizeof stmt);
    require_all_used(f);
    csnn_neuron_desc d = neuron_desc_from(f, stmt);
    fx_tensor *x = need(f, "x_seq", 2);
    if (x->ndim < 1) fail_msg("%s: x_seq needs a time dimension", f->path);
    int32_t T = (int32_t)x->shape[0];
    int64_t M = x->numel / T;
    d.t = T;
    d.m = M;
    d.x_shared = 0;
    fx_tensor *gs = need(f, "grad_s", 2);
    shape_is(f, gs, x->numel);
    const csnn_backend_ops *o = ctx->ops;
    size_t bytes = (size_t)x->numel * sizeof(float);
    float *dx_dev, *s_dev, *h_dev, *g_dev, *gx_dev;
    CHECK_OK(o->alloc(ctx->dev, bytes, (void **)&dx_dev));
    CHECK_OK(o->alloc(ctx->dev, bytes, (void **)&s_dev));
    CHECK_OK(o->alloc(ctx->dev, bytes, (void **)&h_dev));
    CHECK_OK(o->alloc(ctx->dev, bytes, (void **)&g_dev));
    CHECK_OK(o->alloc(ctx->dev, bytes, (void **)&gx_dev));
    float *xv = to_float(x), *gv = to_float(gs);
    CHECK_OK(o->upload(ctx->dev, dx_dev, xv, bytes));
    CHECK_OK(o->upload(ctx->dev, g_dev, gv, bytes));
    CHECK_OK(o->neuron_forward(ctx->dev, &d, dx_dev, s_dev, h_dev));
    CHECK_OK(o->neuron_backward(ctx->dev, &d, g_dev, h_dev, gx_dev));
    float *s = malloc(bytes), *h = malloc(bytes), *gx = malloc(bytes), *tmp = malloc(bytes);
    CHECK_OK(o->download(ctx->dev, s, s_dev, bytes));
    CHECK_OK(o->download(ctx->dev, h, h_dev, bytes));
    CHECK_OK(o->download(ctx->dev, gx, gx_dev, bytes));
    compare(f, "s_seq", s, need(f, "s_seq", 1), 0, x->numel, true);
    for (int64_t i = 0; i < x->numel; i++) tmp[i] = h[i] - d.v_threshold;
    compare(f, "h_minus_th_seq", tmp, need(f, "h_minus_th_seq", 1), 0, x->numel, false);
    for (int64_t i = 0; i < x->numel; i++)
        tmp[i] = d.hard_reset ? h[i] * (1.0f - s[i]) + d.v_reset * s[i] : h[i] - d.v_threshold * s[i];
    compare(f, "v_seq", tmp, need(f, "v_seq", 1), 0, x->numel, false);
    compare(f, "dx", gx, need(f, "dx", 1), 0, x->numel, false);
    require_all_checked(f);
    free(xv);
    free(gv);
    free(s);
    free(h);
    free(gx);
    free(tmp);
    o->free(ctx->dev, dx_dev);
    o->free(ctx->dev, s_dev);
    o->free(ctx->dev, h_dev);
    o->free(ctx->dev, g_dev);
    o->free(ctx->dev, gx_dev);
}

/* ------------------------------------------------------------------------ */
/* kind=csnn                                                                 */
/* ------------------------------------------------------------------------ */

static layer *find_layer(csnn_model *m, const char *name)
{
    for (int i = 0; i < m->n_layers; i++)
        if (strcmp(m->layers[i].s.name, name) == 0) return &m->layers[i];
    fail_msg("model has no layer %s", name);
    return NULL;
}

static float *download(csnn_model *m, const float *src, int64_t n)
{
    float *v = malloc((size_t)n * sizeof(float));
    assert_non_null(v);
    CHECK_OK(m->ops->download(m->dev, v, src, (size_t)n * sizeof(float)));
    return v;
}

static void check_device(fixture *f, csnn_model *m, const char *name, const float *src, int64_t n,
                         bool exact)
{
    fx_tensor *ref = need(f, name, 1);
    shape_is(f, ref, n);
    float *v = download(m, src, n);
    compare(f, name, v, ref, 0, n, exact);
    free(v);
}

/* Conv biases feed BatchNorm: their gradient is 0 up to rounding noise. */
static bool is_noise_tensor(const char *param)
{
    return strncmp(param, "conv", 4) == 0 && strstr(param, ".bias") != NULL;
}

/* Runs a kind=csnn fixture with the levers in `disabled` switched off
 * (CSNN__NO_*). With every lever off each recorded tensor exists; with the
 * default plan a fused neuron layer keeps no spikes (they are derived from H
 * when H is kept, else not checked in that run). */
static void run_csnn(fixture *f, csnn_context *ctx, unsigned disabled)
{
    setting(f, "kind", NULL);
    int32_t T = (int32_t)setting_num(f, "T", NULL);
    int32_t classes = (int32_t)setting_num(f, "classes", NULL);
    char conv_neuron[400], fc_neuron[400];
    neuron_statement(f, "conv_", conv_neuron, sizeof conv_neuron);
    neuron_statement(f, "fc_", fc_neuron, sizeof fc_neuron);
    int32_t pool = (int32_t)setting_num(f, "pool", "2");
    double bn_eps = setting_num(f, "bn_eps", "1e-05");
    double bn_mom = setting_num(f, "bn_momentum", "0.1");
    if (strcmp(setting(f, "loss", "mse"), "mse") != 0) fail_msg("%s: unknown loss", f->path);
    if (strcmp(setting(f, "optimizer", "adam"), "adam") != 0) fail_msg("%s: unknown optimizer", f->path);
    double lr = setting_num(f, "lr", "0.001"), b1 = setting_num(f, "beta1", "0.9");
    double b2 = setting_num(f, "beta2", "0.999"), eps = setting_num(f, "eps", "1e-08");
    double wd = setting_num(f, "weight_decay", "0.0");
    int steps = (int)setting_num(f, "steps", "1");
    require_all_used(f);

    fx_tensor *x = need(f, "x", 2), *labels = need(f, "labels", 2);
    fx_tensor *w1 = need(f, "param.conv1.weight", 0), *w2 = need(f, "param.conv2.weight", 0);
    fx_tensor *fc1 = need(f, "param.fc1.weight", 0), *fc2 = need(f, "param.fc2.weight", 0);
    if (x->ndim != 4 || w1->ndim != 4 || w2->ndim != 4 || fc1->ndim != 2 || fc2->ndim != 2)
        fail_msg("%s: unexpected tensor ranks", f->path);
    int64_t N = x->shape[0];
    if (fc2->shape[0] != classes) fail_msg("%s: classes=%d but fc2 has %lld outputs", f->path, classes, (long long)fc2->shape[0]);
    char spec[2048];
    snprintf(spec, sizeof spec,
             "input %lldx%lldx%lld\nsteps %d\nclasses %d\n"
             "static: conv %lld k=3 p=1 name=conv1\n"
             "static: bn eps=%.17g momentum=%.17g name=bn1\n"
             "%s name=sn1\nmaxpool %d name=pool1\n"
             "conv %lld k=3 p=1 name=conv2\nbn eps=%.17g momentum=%.17g name=bn2\n"
             "%s name=sn2\nmaxpool %d name=pool2\nflatten\n"
             "linear %lld name=fc1\n%s name=sn3\nlinear %d name=fc2\n%s name=sn4\n",
             (long long)x->shape[1], (long long)x->shape[2], (long long)x->shape[3], T, classes,
             (long long)w1->shape[0], bn_eps, bn_mom, conv_neuron, pool, (long long)w2->shape[0],
             bn_eps, bn_mom, conv_neuron, pool, (long long)fc1->shape[0], fc_neuron, classes,
             fc_neuron);
    csnn_model *m;
    CHECK_OK(csnn_model_create_from_spec(ctx, spec, 0, &m));
    csnn__model_set_disabled(m, disabled);
    /* initial parameters and buffers */
    for (int i = 0; i < m->n_tensors; i++) {
        char name[128];
        snprintf(name, sizeof name, "param.%s", m->tensors[i].name);
        fx_tensor *t = need(f, name, 2);
        shape_is(f, t, m->tensors[i].numel);
        float *v = to_float(t);
        CHECK_OK(csnn_model_set_tensor(m, m->tensors[i].name, v, (size_t)t->numel));
        free(v);
    }
    csnn_trainer *tr;
    CHECK_OK(csnn_trainer_create(m, &tr));
    CHECK_OK(csnn_trainer_set_param(tr, CSNN_TRAIN_OPTIMIZER, CSNN_OPTIMIZER_ADAM));
    CHECK_OK(csnn_trainer_set_param(tr, CSNN_TRAIN_LEARNING_RATE, lr));
    CHECK_OK(csnn_trainer_set_param(tr, CSNN_TRAIN_BETA1, b1));
    CHECK_OK(csnn_trainer_set_param(tr, CSNN_TRAIN_BETA2, b2));
    CHECK_OK(csnn_trainer_set_param(tr, CSNN_TRAIN_EPS, eps));
    CHECK_OK(csnn_trainer_set_param(tr, CSNN_TRAIN_WEIGHT_DECAY, wd));
    CHECK_OK(csnn_trainer_set_param(tr, CSNN_TRAIN_LOSS, CSNN_LOSS_MSE));
    CHECK_OK(csnn_trainer_set_param(tr, CSNN_TRAIN_LABEL_SMOOTHING, 0.0));
    float *xv = to_float(x);
    int32_t *lv = malloc((size_t)N * sizeof(int32_t));
    shape_is(f, labels, N);
    for (int64_t i = 0; i < N; i++) lv[i] = (int32_t)labels->v[i];
    csnn_step_result res;
    csnn_step_result_init(&res);
    for (int s = 0; s < steps; s++) CHECK_OK(csnn_trainer_step(tr, xv, lv, (size_t)N, &res));

    /* activations of the (last) step */
    layer *bn1 = find_layer(m, "bn1");
    int64_t so = N * bn1->out_numel;
    check_device(f, m, "static_out", bn1->y, so, false);
    fx_tensor *in1 = need(f, "in.sn1", 1);
    shape_is(f, in1, T * so);
    float *sv = download(m, bn1->y, so);
    for (int t = 0; t < T; t++) compare(f, "in.sn1 (static_out repeated)", sv, in1, t * so, so, false);
    free(sv);
    const char *in_of[4] = {NULL, "bn2", "fc1", "fc2"};
    for (int k = 1; k <= 4; k++) {
        char sn[16], name[32];
        snprintf(sn, sizeof sn, "sn%d", k);
        layer *l = find_layer(m, sn);
        int64_t n = (int64_t)T * N * l->out_numel;
        const csnn_neuron_desc *d = &l->s.neuron;
        snprintf(name, sizeof name, "spikes.%s", sn);
        if (!l->h) { /* fused with a shared input: neither spikes nor H are kept */
            assert_true(l->fused);
            need(f, name, 3);
            snprintf(name, sizeof name, "v_seq.%s", sn);
            need(f, name, 3);
            continue;
        }
        float *h = download(m, l->h, n), *s;
        if (l->y) {
            check_device(f, m, name, l->y, n, true);
            s = download(m, l->y, n);
        } else { /* fused: the spikes follow from H */
            s = malloc((size_t)n * sizeof(float));
            for (int64_t i = 0; i < n; i++) s[i] = h[i] - d->v_threshold >= 0.0f ? 1.0f : 0.0f;
            compare(f, name, s, need(f, name, 1), 0, n, true);
        }
        for (int64_t i = 0; i < n; i++)
            h[i] = d->hard_reset ? h[i] * (1.0f - s[i]) + d->v_reset * s[i]
                                 : h[i] - d->v_threshold * s[i];
        snprintf(name, sizeof name, "v_seq.%s", sn);
        fx_tensor *ref = need(f, name, 1);
        shape_is(f, ref, n);
        compare(f, name, h, ref, 0, n, false);
        free(h);
        free(s);
        if (k > 1) {
            layer *src = find_layer(m, in_of[k - 1]);
            snprintf(name, sizeof name, "in.%s", sn);
            check_device(f, m, name, src->y, n, false);
            check_device(f, m, in_of[k - 1], src->y, n, false);
        }
    }
    for (int k = 1; k <= 2; k++) {
        char name[16];
        snprintf(name, sizeof name, "pool%d", k);
        layer *l = find_layer(m, name);
        check_device(f, m, name, l->y, (int64_t)T * N * l->out_numel, true);
    }
    check_device(f, m, "out_fr", m->output, N * classes, true);
    check_device(f, m, "loss", m->loss, 1, false);
    /* gradients, parameters after the step, Adam state */
    for (int i = 0; i < m->n_tensors; i++) {
        model_tensor *t = &m->tensors[i];
        char name[160];
        bool noise = is_noise_tensor(t->name);
        if (t->kind == CSNN_TENSOR_PARAM) {
            const char *groups[3] = {"grad", "adam_exp_avg", "adam_exp_avg_sq"};
            const float *src[3] = {t->grad, t->opt_m, t->opt_v};
            for (int g = 0; g < 3; g++) {
                snprintf(name, sizeof name, "%s.%s", groups[g], t->name);
                if (noise) {
                    need(f, name, 3);
                    continue;
                }
                check_device(f, m, name, src[g], t->numel, false);
            }
        }
        snprintf(name, sizeof name, "after.%s", t->name);
        if (noise) {
            need(f, name, 3);
            continue;
        }
        float *v = malloc((size_t)t->numel * sizeof(float));
        CHECK_OK(csnn_model_get_tensor(m, t->name, v, (size_t)t->numel));
        fx_tensor *ref = need(f, name, 1);
        shape_is(f, ref, t->numel);
        if (steps > 1 && strstr(t->name, ".running_mean")) {
            /* After the first step the conv biases have moved by Adam's
             * response to their noise gradient, up to lr per step, here and
             * in SpikingJelly independently; BN's output ignores that shift
             * but its batch mean does not, so the running means may differ
             * by 2 * bn_momentum * lr per later step. */
            double slack = 2 * bn_mom * lr * (steps - 1), maxref = 0;
            for (int64_t j = 0; j < t->numel; j++) maxref = fmax(maxref, fabs(ref->v[j]));
            for (int64_t e = 0; e < t->numel; e++) {
                if (!(fabs(v[e] - ref->v[e]) <= 3e-5 * maxref + 1e-6 + slack))
                    fail_msg("%s: %s[%lld] = %.9g, SpikingJelly %.9g", f->path, name,
                             (long long)e, v[e], ref->v[e]);
            }
        } else {
            compare(f, name, v, ref, 0, t->numel, t->kind == CSNN_TENSOR_COUNTER);
        }
        free(v);
    }
    require_all_checked(f);
    free(xv);
    free(lv);
    csnn_trainer_destroy(tr);
    csnn_model_destroy(m);
}

/* ------------------------------------------------------------------------ */
/* Driver                                                                    */
/* ------------------------------------------------------------------------ */

static void run_fixture(void **state)
{
    const char *path = *state;
    fixture f;
    fx_load(&f, path);
    csnn_context_options o;
    csnn_context_options_init(&o);
    o.device = test_device();
    csnn_context *ctx;
    CHECK_OK(csnn_context_create(&o, &ctx));
    const char *kind = setting(&f, "kind", NULL);
    if (!kind) fail_msg("%s: no kind in the #! line", path);
    if (strcmp(kind, "neuron") == 0) {
        run_neuron(&f, ctx);
    } else if (strcmp(kind, "csnn") == 0) {
        run_csnn(&f, ctx, CSNN__NO_FUSION | CSNN__NO_SPARSE | CSNN__NO_BNFOLD);
        fx_free(&f);
        fx_load(&f, path); /* fresh bookkeeping of what was checked */
        run_csnn(&f, ctx, 0);
    } else {
        fail_msg("%s: unknown kind '%s'", path, kind);
    }
    fx_free(&f);
    csnn_context_destroy(ctx);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    /* A directory named by CSNN_FIXTURES_DIR must exist; the default one
     * (../shared beside the source tree) is skipped (77) when absent. */
    const char *dir = getenv("CSNN_FIXTURES_DIR");
    int explicit_dir = dir && *dir;
    if (!explicit_dir) dir = getenv("CSNN_DEFAULT_FIXTURES_DIR");
    if (!dir || !*dir) {
        printf("# no fixture directory (CSNN_FIXTURES_DIR): skipped\n");
        return 77;
    }
    DIR *d = opendir(dir);
    if (!d) {
        if (!explicit_dir && errno == ENOENT) {
            printf("# the fixture directory %s is absent: skipped\n", dir);
            return 77;
        }
        fprintf(stderr, "cannot open the fixture directory %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char **paths = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 5 || strcmp(e->d_name + len - 4, ".txt") != 0) continue;
        paths = realloc(paths, (n + 1) * sizeof *paths);
        paths[n] = malloc(strlen(dir) + len + 2);
        sprintf(paths[n], "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n == 0) {
        fprintf(stderr, "no fixture files (*.txt) in %s\n", dir);
        return 1;
    }
    qsort(paths, n, sizeof *paths, by_name);
    struct CMUnitTest *tests = calloc(n, sizeof *tests);
    for (size_t i = 0; i < n; i++) {
        tests[i].name = strrchr(paths[i], '/') + 1;
        tests[i].test_func = run_fixture;
        tests[i].initial_state = paths[i];
    }
    int rc = _cmocka_run_group_tests("spikingjelly-fixtures", tests, n, NULL, NULL);
    for (size_t i = 0; i < n; i++) free(paths[i]);
    free(paths);
    free(tests);
    return rc;
}
