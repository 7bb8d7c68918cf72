/*
 * test_cuda_model.c - a whole model on "cpu" and on "cuda": one training
 * step from the same parameters, batch and dropout seed, then save on one
 * device and load on the other.
 *
 * Per model: the CPU model's tensors are copied into the CUDA model
 * (csnn_model_get_tensor / csnn_model_set_tensor; the CUDA model is built
 * from another seed so that the copy matters), one csnn_trainer_step (Adam,
 * MSE on firing rates, dropout active, CSNN_TRAIN_SEED the same: the masks
 * are equal bit for bit) on each, and then compared:
 *   - the spikes of every spiking layer (white-box, the layers' outputs; a
 *     neuron layer followed by a max-pool through the pooled spikes),
 *   - the loss, the outputs,
 *   - every parameter gradient and Adam's moments (white-box),
 *   - every tensor after the step: parameters, BN running statistics,
 *     counters (exactly);
 * then csnn_model_save on each device and csnn_model_load on the other:
 * the loaded tensors equal the saved ones bit for bit, and the loaded
 * model predicts what the original predicts on its own device.
 *
 * Tolerances (float32, different summation orders: cuBLAS against OpenBLAS,
 * the CPU's and the GPU's reduction trees). A spike depends on H - v_th >= 0,
 * so a membrane within a rounding error of the threshold may fire on one
 * device and not on the other, and such a flip changes everything
 * downstream of it. The test counts the flips first (white-box: the stored
 * outputs of every spiking layer) and chooses:
 *   - strict, when no spike differs (the small model below: its few
 *     thousand membranes stay clear of the threshold for this seed - if that
 *     ever changes the test says so and falls back to the other rule): loss
 *     within 1e-5 relative, outputs identical, predicted labels identical
 *     (an inference score may differ by whole spikes / T in at most 1 % of
 *     the scores: inference folds BN into the conv weights on each device,
 *     another chance for a flip); each
 *     gradient and Adam moment within 1e-4 of its scale (the tensor's
 *     largest magnitude, but at least 1e-3 of the model's largest gradient:
 *     the gradient of a conv bias followed by BN is 0 up to rounding on both
 *     devices, and is compared as the noise it is); BN running statistics
 *     within 1e-5 of the largest; parameters within 1e-5 of the largest
 *     where the gradient is clearly non-zero, and within 2 lr elsewhere
 *     (Adam's first step moves every parameter by lr * g / (|g| + eps),
 *     about lr * sign(g), so a gradient at rounding level may move it by lr
 *     either way); counters exactly;
 *   - flip-tolerant, when some spikes differ (expected for the full
 *     fer-csnn preset: tens of millions of membranes per step): at most
 *     1e-3 of the spikes may differ; the loss within 5e-3 relative, each
 *     gradient's and moment's relative L2 distance below 2e-2, at most 1 %
 *     of each parameter tensor outside the rule above, BN statistics within
 *     1e-3, at most 1 % of the predicted labels different. (The emulator's
 *     run of the full preset, ASAN=0 CSNN_CUDA_TEST_FULL=1, flipped 1 spike
 *     of 6e6 and its gradients stayed within 1e-6 relative L2.) The output
 *     gives the figures per tensor, so a GPU run's report shows how close
 *     it is.
 * Save + load is exact either way: the loaded tensors equal the saved ones
 * bit for bit, and a model reloaded on the device it was saved from
 * predicts exactly what it predicted before.
 *
 * Models: a scaled fer-csnn (odd sizes, overlapping max-pool windows, T = 3,
 * every layer kind of the preset, the first IF reading the static block's
 * output: fused neuron + max-pool with H recomputed in backward) always;
 * the full fer-csnn preset at batch 16 too unless CSNN_CUDA_TEST_FULL=0
 * (the host emulator sets it: the emulated cuBLAS is far too slow for it).
 *
 * Exit 77 (skip) when "cuda" is not available (no GPU, no driver).
 * Env: CSNN_CUDA_MODULE = path of the built libcsnn-cuda.so.
 */
#include <math.h>

#include "test_util.h"
#include "trainer.h"

static csnn_context *g_cpu, *g_gpu;

/* A scaled fer-csnn: the preset's structure with small odd sizes,
 * overlapping 3x3/2 windows after the first IF, and lower thresholds for the
 * LIF layers so that every layer fires at initialisation (with the preset's
 * v_threshold = 1 the last two would be silent, and fc3's gradient 0). */
static const char small_spec[] = "input 1x13x11\n"
                                 "steps 3\n"
                                 "classes 5\n"
                                 "static: conv 6 k=3 p=1; bn\n"
                                 "if\n"
                                 "maxpool 3 stride=2\n"
                                 "conv 8 k=3 p=1\n"
                                 "bn\n"
                                 "if\n"
                                 "maxpool 2\n"
                                 "flatten\n"
                                 "dropout 0.5\n"
                                 "linear 40\n"
                                 "lif tau=2 v_threshold=0.3\n"
                                 "dropout 0.5\n"
                                 "linear 24\n"
                                 "lif tau=2 v_threshold=0.15\n"
                                 "linear 5\n"
                                 "lif tau=2 v_threshold=0.1\n";

static float *fvec(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (!p) fail_msg("out of host memory");
    return p;
}

static void dl(csnn_model *m, float *host, const void *dev, int64_t n)
{
    CHECK_OK(m->ops->download(m->dev, host, dev, (size_t)n * sizeof(float)));
}

/* ------------------------------------------------------------------------ */
/* Comparisons                                                               */
/* ------------------------------------------------------------------------ */

typedef struct verdict {
    int strict;      /* no spike flipped: the strict tolerances */
    int failed;
    int64_t flips, spikes;
} verdict;

static double max_abs(const float *x, int64_t n)
{
    double m = 0.0;
    for (int64_t i = 0; i < n; i++)
        if (fabs(x[i]) > m) m = fabs(x[i]);
    return m;
}

/* Elements of got and want more than rel * max|want| + abs apart (NaN
 * counts); prints the first few. */
static int64_t count_far(const char *what, const float *got, const float *want, int64_t n,
                         double rel, double abs_tol, int print)
{
    double tol = rel * max_abs(want, n) + abs_tol;
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double diff = fabs((double)got[i] - (double)want[i]);
        if (!(diff <= tol)) {
            if (print && bad < 3)
                print_error("  %s[%lld]: cuda %.9g, cpu %.9g (tolerance %.3g)\n", what,
                            (long long)i, (double)got[i], (double)want[i], tol);
            bad++;
        }
    }
    return bad;
}

/* ||got - want|| / ||want|| (0 when both are 0). */
static double rel_l2(const float *got, const float *want, int64_t n)
{
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)got[i] - (double)want[i];
        num += d * d;
        den += (double)want[i] * want[i];
    }
    if (den == 0.0) return num == 0.0 ? 0.0 : INFINITY;
    return sqrt(num / den);
}

/* A gradient-like tensor (gradients, Adam's moments): `floor` is the
 * rounding-noise level of the whole model (1e-3 of the largest magnitude of
 * any tensor of the kind). A tensor below it is noise on both devices - the
 * gradient of a conv bias followed by BN is 0 but for rounding - and is
 * compared on that scale, not its own. Prints one line per tensor. */
static void compare_grad(verdict *v, const char *what, const float *got, const float *want,
                         int64_t n, double floor)
{
    double mx = max_abs(want, n), scale = fmax(mx, floor), maxdiff = 0.0, num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)got[i] - (double)want[i];
        if (!(fabs(d) <= maxdiff)) maxdiff = fabs(d); /* NaN sticks */
        num += d * d;
        den += (double)want[i] * want[i];
    }
    double rel = sqrt(num) / fmax(sqrt(den), floor * sqrt((double)n));
    print_message("    %-40s max %.3g  max diff %.3g (%.2g of scale)  rel L2 %.2g\n", what, mx,
                  maxdiff, maxdiff / scale, rel);
    if (v->strict) {
        int64_t bad = count_far(what, got, want, n, 0.0, 1e-4 * scale + 1e-12, 1);
        if (bad) {
            print_error("%s: %lld of %lld elements differ\n", what, (long long)bad, (long long)n);
            v->failed = 1;
        }
    } else if (!(rel < 2e-2)) {
        print_error("%s: relative L2 distance %.3g (limit 2e-2)\n", what, rel);
        v->failed = 1;
    }
}

/* Parameters after the Adam step (see the header for the rule). */
static void compare_param(verdict *v, const char *what, const float *got, const float *want,
                          const float *grad, int64_t n, double lr, double floor_g)
{
    double tol = 1e-5 * max_abs(want, n) + 1e-7, gmax = fmax(max_abs(grad, n), floor_g);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double diff = fabs((double)got[i] - (double)want[i]);
        double lim = fabs(grad[i]) > 1e-3 * gmax ? tol : 2.0 * lr * 1.0001 + tol;
        if (!(diff <= lim)) {
            if (v->strict && bad < 3)
                print_error("  %s[%lld]: cuda %.9g, cpu %.9g (grad %.3g, limit %.3g)\n", what,
                            (long long)i, (double)got[i], (double)want[i], (double)grad[i], lim);
            bad++;
        }
    }
    if (bad && (v->strict || (double)bad > 0.01 * (double)n)) {
        print_error("%s: %lld of %lld parameters differ\n", what, (long long)bad, (long long)n);
        v->failed = 1;
    }
}

/* The spikes of every spiking layer: a neuron layer followed by a max-pool
 * through the pooled spikes (a fused layer never stores its own). */
static void count_flips(csnn_model *mc, csnn_model *mg, int32_t n, verdict *v)
{
    for (int i = 0; i < mc->n_layers; i++) {
        if (mc->layers[i].s.type != LAYER_NEURON) continue;
        int j = i + 1 < mc->n_layers && mc->layers[i + 1].s.type == LAYER_MAXPOOL ? i + 1 : i;
        int64_t cnt = csnn__model_layer_rows(mc, j, n) * mc->layers[j].out_numel;
        float *a = fvec((size_t)cnt), *b = fvec((size_t)cnt);
        dl(mc, a, mc->layers[j].y, cnt);
        dl(mg, b, mg->layers[j].y, cnt);
        int64_t flips = 0, ones = 0;
        for (int64_t e = 0; e < cnt; e++) {
            flips += a[e] != b[e];
            ones += a[e] != 0.0f;
        }
        print_message("  %-8s %-8s %9lld spikes, firing %.3f, %lld differ (fused: cpu %s, cuda %s)\n",
                      mc->layers[i].s.name, j == i ? "" : mc->layers[j].s.name, (long long)cnt,
                      (double)ones / (double)cnt, (long long)flips,
                      mc->layers[i].fused ? "yes" : "no", mg->layers[i].fused ? "yes" : "no");
        v->flips += flips;
        v->spikes += cnt;
        free(a);
        free(b);
    }
}

/* Copies every tensor of `from` into `to` and checks the copy. */
static void copy_tensors(csnn_model *from, csnn_model *to)
{
    csnn_model_info info;
    csnn_model_info_init(&info);
    CHECK_OK(csnn_model_get_info(from, &info));
    for (int64_t i = 0; i < info.num_tensors; i++) {
        csnn_tensor_info t;
        csnn_tensor_info_init(&t);
        CHECK_OK(csnn_model_tensor_info(from, (size_t)i, &t));
        float *a = fvec((size_t)t.numel), *b = fvec((size_t)t.numel);
        CHECK_OK(csnn_model_get_tensor(from, t.name, a, (size_t)t.numel));
        CHECK_OK(csnn_model_set_tensor(to, t.name, a, (size_t)t.numel));
        CHECK_OK(csnn_model_get_tensor(to, t.name, b, (size_t)t.numel));
        if (memcmp(a, b, (size_t)t.numel * sizeof(float)) != 0)
            fail_msg("%s: the copy differs", t.name);
        free(a);
        free(b);
    }
}

/* Every tensor of a equals b's bit for bit. */
static void same_tensors(csnn_model *a, csnn_model *b, const char *what)
{
    csnn_model_info info;
    csnn_model_info_init(&info);
    CHECK_OK(csnn_model_get_info(a, &info));
    for (int64_t i = 0; i < info.num_tensors; i++) {
        csnn_tensor_info t;
        csnn_tensor_info_init(&t);
        CHECK_OK(csnn_model_tensor_info(a, (size_t)i, &t));
        float *x = fvec((size_t)t.numel), *y = fvec((size_t)t.numel);
        CHECK_OK(csnn_model_get_tensor(a, t.name, x, (size_t)t.numel));
        CHECK_OK(csnn_model_get_tensor(b, t.name, y, (size_t)t.numel));
        if (memcmp(x, y, (size_t)t.numel * sizeof(float)) != 0)
            fail_msg("%s: tensor %s differs after save + load", what, t.name);
        free(x);
        free(y);
    }
}

/* Predictions of a (on its device) against b (on its device). On one device
 * (same_device) everything is identical, bit for bit. Across devices, with
 * the strict rule the labels are identical and a score may differ only by a
 * multiple of 1/T (an output spike flipped in inference, where BN is folded
 * into the conv weights on each device: at most 1 % of the scores); with the
 * flip-tolerant rule at most 1 % of the labels differ. */
static void compare_predictions(verdict *v, const char *what, csnn_model *a, csnn_model *b,
                                const float *images, int32_t n, int32_t k, int32_t steps,
                                int same_device)
{
    float *sa = fvec((size_t)n * k), *sb = fvec((size_t)n * k);
    int32_t *la = malloc((size_t)n * sizeof(int32_t)), *lb = malloc((size_t)n * sizeof(int32_t));
    assert_non_null(la);
    assert_non_null(lb);
    CHECK_OK(csnn_model_predict(a, images, (size_t)n, sa, (size_t)n * k, la));
    CHECK_OK(csnn_model_predict(b, images, (size_t)n, sb, (size_t)n * k, lb));
    int32_t diff_labels = 0;
    int64_t diff_scores = 0, odd_scores = 0;
    for (int32_t i = 0; i < n; i++) diff_labels += la[i] != lb[i];
    for (int64_t e = 0; e < (int64_t)n * k; e++) {
        if (memcmp(&sa[e], &sb[e], sizeof(float)) == 0) continue;
        diff_scores++;
        double q = ((double)sa[e] - (double)sb[e]) * steps; /* a whole number of spikes? */
        if (!(fabs(q - nearbyint(q)) < 1e-4)) odd_scores++;
    }
    print_message("  %s: %lld of %lld scores and %d of %d labels differ\n", what,
                  (long long)diff_scores, (long long)n * k, diff_labels, n);
    int bad;
    if (same_device)
        bad = diff_scores != 0 || diff_labels != 0;
    else if (v->strict)
        bad = diff_labels != 0 || odd_scores != 0 || diff_scores * 100 > (int64_t)n * k;
    else
        bad = diff_labels * 100 > n;
    if (bad) {
        print_error("%s: predictions differ\n", what);
        v->failed = 1;
    }
    free(sa);
    free(sb);
    free(la);
    free(lb);
}

/* ------------------------------------------------------------------------ */
/* The test                                                                  */
/* ------------------------------------------------------------------------ */

static void run_model(const char *label, const char *spec, int32_t n, uint64_t seed)
{
    print_message("%s, batch %d\n", label, n);
    csnn_model *mc = NULL, *mg = NULL;
    CHECK_OK(csnn_model_create_from_spec(g_cpu, spec, seed, &mc));
    CHECK_OK(csnn_model_create_from_spec(g_gpu, spec, seed + 1, &mg));
    copy_tensors(mc, mg);
    csnn_model_info info;
    csnn_model_info_init(&info);
    CHECK_OK(csnn_model_get_info(mc, &info));
    const int32_t k = info.num_classes;
    const int64_t per = (int64_t)info.in_channels * info.in_height * info.in_width;

    float *images = fvec((size_t)(n * per));
    int32_t *labels = malloc((size_t)n * sizeof(int32_t));
    assert_non_null(labels);
    uint64_t rs = seed * 7919 + 17;
    for (int64_t i = 0; i < n * per; i++) images[i] = test_uniform(&rs, 0.0f, 1.0f);
    for (int32_t i = 0; i < n; i++) labels[i] = (int32_t)(test_uniform(&rs, 0.0f, 1.0f) * k) % k;

    csnn_trainer *tc = NULL, *tg = NULL;
    CHECK_OK(csnn_trainer_create(mc, &tc));
    CHECK_OK(csnn_trainer_create(mg, &tg));
    CHECK_OK(csnn_trainer_set_param(tc, CSNN_TRAIN_SEED, 4242));
    CHECK_OK(csnn_trainer_set_param(tg, CSNN_TRAIN_SEED, 4242));
    double lr = 0.0;
    CHECK_OK(csnn_trainer_get_param(tc, CSNN_TRAIN_LEARNING_RATE, &lr));
    csnn_step_result rc, rg;
    csnn_step_result_init(&rc);
    csnn_step_result_init(&rg);
    CHECK_OK(csnn_trainer_step(tc, images, labels, (size_t)n, &rc));
    CHECK_OK(csnn_trainer_step(tg, images, labels, (size_t)n, &rg));

    verdict v = {1, 0, 0, 0};
    count_flips(mc, mg, n, &v);
    v.strict = v.flips == 0;
    print_message("  %lld of %lld spikes differ: %s tolerances\n", (long long)v.flips,
                  (long long)v.spikes, v.strict ? "strict" : "flip-tolerant");
    if ((double)v.flips > 1e-3 * (double)v.spikes) {
        print_error("%s: %lld of %lld spikes differ (more than 1e-3)\n", label, (long long)v.flips,
                    (long long)v.spikes);
        v.failed = 1;
    }

    /* loss and outputs */
    double lrel = fabs(rg.loss - rc.loss) / fmax(fabs(rc.loss), 1e-12);
    print_message("  loss cpu %.9g cuda %.9g (relative difference %.2g); correct %d / %d\n",
                  rc.loss, rg.loss, lrel, rc.correct, rg.correct);
    if (!(lrel <= (v.strict ? 1e-5 : 5e-3))) {
        print_error("%s: loss differs\n", label);
        v.failed = 1;
    }
    if (v.strict && rc.correct != rg.correct) {
        print_error("%s: correct %d (cpu) vs %d (cuda)\n", label, rc.correct, rg.correct);
        v.failed = 1;
    }
    {
        float *oc = fvec((size_t)n * k), *og = fvec((size_t)n * k);
        dl(mc, oc, mc->output, (int64_t)n * k);
        dl(mg, og, mg->output, (int64_t)n * k);
        int64_t bad = 0;
        for (int64_t e = 0; e < (int64_t)n * k; e++) bad += oc[e] != og[e];
        if (v.strict && bad) {
            print_error("%s: %lld outputs (firing rates) differ\n", label, (long long)bad);
            v.failed = 1;
        }
        free(oc);
        free(og);
    }

    /* gradients, Adam's moments, parameters and buffers after the step */
    double gscale = 0.0; /* the largest gradient magnitude of the model (cpu) */
    for (int i = 0; i < mc->n_tensors; i++) {
        if (mc->tensors[i].kind != CSNN_TENSOR_PARAM) continue;
        float *gr = fvec((size_t)mc->tensors[i].numel);
        dl(mc, gr, mc->tensors[i].grad, mc->tensors[i].numel);
        gscale = fmax(gscale, max_abs(gr, mc->tensors[i].numel));
        free(gr);
    }
    /* Adam's first step: m = (1 - beta1) g, v = (1 - beta2) g^2 */
    double b1 = 0.0, b2 = 0.0;
    CHECK_OK(csnn_trainer_get_param(tc, CSNN_TRAIN_BETA1, &b1));
    CHECK_OK(csnn_trainer_get_param(tc, CSNN_TRAIN_BETA2, &b2));
    const double floor_g = 1e-3 * gscale, floor_m = (1.0 - b1) * floor_g;
    const double floor_v = (1.0 - b2) * gscale * gscale * 1e-3;
    double worst_grad = 0.0;
    for (int i = 0; i < mc->n_tensors; i++) {
        model_tensor *tcpu = &mc->tensors[i], *tgpu = &mg->tensors[i];
        assert_string_equal(tcpu->name, tgpu->name);
        int64_t cnt = tcpu->numel;
        float *a = fvec((size_t)cnt), *b = fvec((size_t)cnt), *gr = fvec((size_t)cnt);
        char what[128];
        CHECK_OK(csnn_model_get_tensor(mc, tcpu->name, a, (size_t)cnt));
        CHECK_OK(csnn_model_get_tensor(mg, tcpu->name, b, (size_t)cnt));
        if (tcpu->kind == CSNN_TENSOR_PARAM) {
            float *gg = fvec((size_t)cnt);
            dl(mc, gr, tcpu->grad, cnt);
            dl(mg, gg, tgpu->grad, cnt);
            snprintf(what, sizeof what, "grad %s", tcpu->name);
            compare_grad(&v, what, gg, gr, cnt, floor_g);
            double r = rel_l2(gg, gr, cnt);
            if (r > worst_grad && max_abs(gr, cnt) > floor_g) worst_grad = r;
            float *mmc = fvec((size_t)cnt), *mmg = fvec((size_t)cnt);
            dl(mc, mmc, tcpu->opt_m, cnt);
            dl(mg, mmg, tgpu->opt_m, cnt);
            snprintf(what, sizeof what, "adam m %s", tcpu->name);
            compare_grad(&v, what, mmg, mmc, cnt, floor_m);
            dl(mc, mmc, tcpu->opt_v, cnt);
            dl(mg, mmg, tgpu->opt_v, cnt);
            snprintf(what, sizeof what, "adam v %s", tcpu->name);
            compare_grad(&v, what, mmg, mmc, cnt, floor_v);
            snprintf(what, sizeof what, "%s: %s after the step", label, tcpu->name);
            compare_param(&v, what, b, a, gr, cnt, lr, floor_g);
            free(gg);
            free(mmc);
            free(mmg);
        } else if (tcpu->kind == CSNN_TENSOR_BUFFER) {
            snprintf(what, sizeof what, "%s: %s", label, tcpu->name);
            int64_t bad = count_far(what, b, a, cnt, v.strict ? 1e-5 : 1e-3, 1e-7, v.strict);
            if (bad) {
                print_error("%s: %lld of %lld differ\n", what, (long long)bad, (long long)cnt);
                v.failed = 1;
            }
        } else if (memcmp(a, b, (size_t)cnt * sizeof(float)) != 0) {
            print_error("%s: counter %s differs: %g vs %g\n", label, tcpu->name, (double)a[0],
                        (double)b[0]);
            v.failed = 1;
        }
        free(a);
        free(b);
        free(gr);
    }
    print_message("  worst gradient relative L2 distance %.3g (tensors above the noise floor)\n",
                  worst_grad);

    /* save on one device, load on the other */
    char *dir = test_tempdir();
    assert_non_null(dir);
    char pc[4200], pg[4200];
    snprintf(pc, sizeof pc, "%s/cpu.csnn", dir);
    snprintf(pg, sizeof pg, "%s/cuda.csnn", dir);
    CHECK_OK(csnn_model_save(mc, pc));
    CHECK_OK(csnn_model_save(mg, pg));
    csnn_model *cg = NULL, *gc = NULL; /* cpu's file on cuda, cuda's file on cpu */
    CHECK_OK(csnn_model_load(g_gpu, pc, &cg));
    CHECK_OK(csnn_model_load(g_cpu, pg, &gc));
    same_tensors(cg, mc, "cpu -> cuda");
    same_tensors(gc, mg, "cuda -> cpu");
    const int32_t steps = info.time_steps;
    compare_predictions(&v, "cpu model, loaded on cuda vs on cpu", cg, mc, images, n, k, steps, 0);
    compare_predictions(&v, "cuda model, loaded on cpu vs on cuda", gc, mg, images, n, k, steps,
                        0);
    /* on one device, loading changes nothing at all */
    {
        csnn_model *gg = NULL;
        CHECK_OK(csnn_model_load(g_gpu, pg, &gg));
        compare_predictions(&v, "cuda model, reloaded on cuda", gg, mg, images, n, k, steps, 1);
        csnn_model_destroy(gg);
    }
    csnn_model_destroy(cg);
    csnn_model_destroy(gc);
    test_rmtree(dir);
    free(dir);

    csnn_trainer_destroy(tc);
    csnn_trainer_destroy(tg);
    csnn_model_destroy(mc);
    csnn_model_destroy(mg);
    free(images);
    free(labels);
    if (v.failed) fail_msg("%s: mismatches above", label);
}

static void test_small_model(void **state)
{
    (void)state;
    run_model("scaled fer-csnn", small_spec, 6, 11);
}

static void test_fer_csnn(void **state)
{
    (void)state;
    const char *full = getenv("CSNN_CUDA_TEST_FULL");
    if (full && strcmp(full, "0") == 0) {
        print_message("full fer-csnn preset skipped (CSNN_CUDA_TEST_FULL=0)\n");
        skip();
    }
    const char *spec = NULL;
    CHECK_OK(csnn_preset_spec("fer-csnn", &spec));
    run_model("fer-csnn preset", spec, 16, 3);
}

int main(void)
{
    if (!getenv("CSNN_CUDA_MODULE")) {
        fprintf(stderr, "CSNN_CUDA_MODULE is not set\n");
        return 1;
    }
    csnn_status st = csnn_device_available("cuda");
    if (st != CSNN_OK) {
        printf("SKIP: \"cuda\" is not available: %s: %s\n", csnn_status_name(st),
               csnn_last_error_message());
        return 77;
    }
    csnn_context_options o;
    csnn_context_options_init(&o);
    o.device = "cpu";
    if (csnn_context_create(&o, &g_cpu) != CSNN_OK) {
        fprintf(stderr, "cpu context: %s\n", csnn_last_error_message());
        return 1;
    }
    o.device = "cuda";
    if (csnn_context_create(&o, &g_gpu) != CSNN_OK) {
        fprintf(stderr, "cuda context: %s\n", csnn_last_error_message());
        return 1;
    }
    printf("cpu: %s\ncuda: %s\n", csnn_context_device_description(g_cpu),
           csnn_context_device_description(g_gpu));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_model),
        cmocka_unit_test(test_fer_csnn),
    };
    int rc = cmocka_run_group_tests_name("cuda model", tests, NULL, NULL);
    csnn_context_destroy(g_gpu);
    csnn_context_destroy(g_cpu);
    return rc;
}
