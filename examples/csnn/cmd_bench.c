/* cmd_bench.c - csnn bench: speed and memory of training steps or
 * inference on a preset or spec, with random (or synthetic-face) inputs.
 *
 * What it reports and how each figure is obtained:
 *  - ms per step: wall time of each timed csnn_trainer_step (train) or
 *    csnn_model_predict (infer) call, median and minimum; samples/s is
 *    batch / median.
 *  - peak RSS: getrusage(RUSAGE_SELF).ru_maxrss right after the timed steps,
 *    before anything else is built (the FLOP count and the sgemm probe come
 *    later, so they do not inflate it). The whole process is counted, as
 *    the SpikingJelly anchor counts its Python process.
 *  - GFLOP/s: dense-equivalent FLOPs per step / median time. The library has
 *    no per-layer FLOP query, so the count comes from csnn_model_profile on
 *    a one-image dataset (ann_macs: the dense MACs of each conv and linear
 *    layer for one image and one time step) and from the canonical spec
 *    (csnn_model_spec: a "static: " prefix marks the layers run once per
 *    image; the others run T times). Forward MACs per image =
 *    sum(static: ann_macs; others: ann_macs * T); FLOPs = 2 * MACs * batch,
 *    times 3 for a training step (forward, input gradient, weight gradient;
 *    the first layer needs no input gradient, so this slightly overcounts).
 *    Spike-sparse kernels skip work, so this is a dense-equivalent rate: it
 *    says what a dense implementation would have to sustain.
 *  - sgemm GFLOP/s: the library's own matrix-product rate on this device,
 *    measured through the public API: csnn_model_predict on a model that is
 *    one big linear layer (input 1x64x32, steps 16, flatten, linear 4096
 *    bias=0) on 16 images. predict runs 16 images per forward pass, and the
 *    layer sees the image once per time step, so that is one 256x2048 by
 *    2048x4096 product (4.3 GFLOP); best of 4 after one warm-up. The copies
 *    in and out and the mean over the steps are included (a few % of the
 *    time). The tool does not link a BLAS of its own.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "tool.h"

#define BENCH_BUFFERS 4 /* distinct input batches, cycled, as the anchor does */
#define LNAME 80        /* bytes kept of a layer's name or kind (--layers) */

#define SGEMM_SPEC "input 1x64x32\nsteps 16\nflatten\nlinear 4096 bias=0\n"
#define SGEMM_BATCH 16 /* images; x 16 steps = 256 rows */
#define SGEMM_ROWS 256
#define SGEMM_K 2048
#define SGEMM_N 4096
#define SGEMM_REPS 4

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double peak_rss_mib(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return NAN;
    return (double)ru.ru_maxrss / 1024.0; /* Linux: KiB */
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* splitmix64: the random inputs, reproducible from --seed */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Whether the layer named `name` is static in the canonical spec text (one
 * layer per line, "static: " first on static ones, " name=NAME" last). */
static bool layer_is_static(const char *spec, const char *name)
{
    size_t nlen = strlen(name);
    for (const char *line = spec; *line;) {
        const char *end = strchr(line, '\n');
        if (!end) end = line + strlen(line);
        const char *tag = NULL;
        for (const char *p = line; p + 6 <= end; p++)
            if (memcmp(p, " name=", 6) == 0) tag = p + 6;
        if (tag && (size_t)(end - tag) == nlen && memcmp(tag, name, nlen) == 0)
            return strncmp(line, "static: ", 8) == 0;
        line = *end ? end + 1 : end;
    }
    return false;
}

/* Dense forward MACs per image (see the top of the file), and per layer
 * into layer_macs (num_layers entries, zeroed by the caller; may be NULL);
 * 0 when they cannot be counted (a model whose input is not one channel:
 * datasets are grayscale). */
static int forward_macs(const char *cmd, csnn_context *ctx, csnn_model *model, double *macs,
                        double *layer_macs)
{
    *macs = 0;
    csnn_model_info mi;
    csnn_model_info_init(&mi);
    csnn_status st = csnn_model_get_info(model, &mi);
    if (st != CSNN_OK) return lib_error(cmd, st, "model");
    if (mi.in_channels != 1) return EXIT_OK;
    const char *spec = NULL;
    if ((st = csnn_model_spec(model, &spec)) != CSNN_OK) return lib_error(cmd, st, "model spec");
    size_t per = (size_t)mi.in_height * (size_t)mi.in_width;
    uint8_t *pixels = malloc(per);
    if (!pixels) return runtime_error(cmd, "out of memory");
    uint64_t s = 1;
    for (size_t i = 0; i < per; i++)
        pixels[i] = (uint8_t)(next_u64(&s) >> 56);
    int32_t label = 0;
    csnn_dataset *ds = NULL;
    csnn_profile *prof = NULL;
    int rc = EXIT_OK;
    st = csnn_dataset_create_from_arrays(ctx, pixels, &label, 1, mi.in_height, mi.in_width, NULL,
                                         (size_t)mi.num_classes, &ds);
    if (st == CSNN_OK) st = csnn_model_profile(model, ds, NULL, &prof);
    int32_t n = 0;
    if (st == CSNN_OK) st = csnn_profile_num_layers(prof, &n);
    for (int32_t i = 0; st == CSNN_OK && i < n; i++) {
        csnn_layer_profile lp;
        csnn_layer_profile_init(&lp);
        if ((st = csnn_profile_layer(prof, i, &lp)) != CSNN_OK) break;
        if (lp.ann_macs <= 0) continue;
        const double m = lp.ann_macs * (layer_is_static(spec, lp.name) ? 1 : mi.time_steps);
        *macs += m;
        if (layer_macs && i < mi.num_layers) layer_macs[i] = m;
    }
    if (st != CSNN_OK) rc = lib_error(cmd, st, "counting the model's operations");
    csnn_profile_destroy(prof);
    csnn_dataset_destroy(ds);
    free(pixels);
    return rc;
}

/* The library's matrix-product rate (GFLOP/s) through csnn_model_predict. */
static int measure_sgemm(const char *cmd, csnn_context *ctx, double *gflops)
{
    *gflops = NAN;
    csnn_model *m = NULL;
    csnn_status st = csnn_model_create_from_spec(ctx, SGEMM_SPEC, 0, &m);
    if (st != CSNN_OK) return lib_error(cmd, st, "the sgemm probe model");
    size_t nin = (size_t)SGEMM_BATCH * SGEMM_K, nout = (size_t)SGEMM_BATCH * SGEMM_N;
    float *x = malloc(nin * sizeof *x), *y = malloc(nout * sizeof *y);
    int rc = EXIT_OK;
    if (!x || !y) {
        rc = runtime_error(cmd, "out of memory");
    } else {
        uint64_t s = 7;
        for (size_t i = 0; i < nin; i++)
            x[i] = (float)(next_u64(&s) >> 40) / 16777216.0f;
        double best = INFINITY;
        for (int r = 0; r <= SGEMM_REPS && st == CSNN_OK; r++) {
            double t0 = now_s();
            st = csnn_model_predict(m, x, SGEMM_BATCH, y, nout, NULL);
            double dt = now_s() - t0;
            if (r > 0 && dt < best) best = dt;
        }
        if (st != CSNN_OK)
            rc = lib_error(cmd, st, "the sgemm probe");
        else
            *gflops = 2.0 * SGEMM_ROWS * SGEMM_K * SGEMM_N / best * 1e-9;
    }
    free(x);
    free(y);
    csnn_model_destroy(m);
    return rc;
}

/* BENCH_BUFFERS batches of inputs [batch, C, H, W] in [0, 1] and labels:
 * uniform random values, or synthetic faces (one-channel models). */
static int make_inputs(const char *cmd, const csnn_model_info *mi, size_t batch, bool synth,
                       uint64_t seed, float **images, int32_t **labels)
{
    size_t per = (size_t)mi->in_channels * (size_t)mi->in_height * (size_t)mi->in_width;
    size_t n = BENCH_BUFFERS * batch;
    *images = malloc(n * per * sizeof **images);
    *labels = malloc(n * sizeof **labels);
    if (!*images || !*labels) return runtime_error(cmd, "out of memory");
    uint64_t s = seed ^ 0x5eed;
    if (!synth) {
        for (size_t i = 0; i < n * per; i++)
            (*images)[i] = (float)(next_u64(&s) >> 40) / 16777216.0f;
        for (size_t i = 0; i < n; i++)
            (*labels)[i] = (int32_t)(next_u64(&s) % (uint64_t)mi->num_classes);
        return EXIT_OK;
    }
    if (mi->in_channels != 1)
        return runtime_error(cmd, "--inputs synth needs a one-channel model (this one takes %d)",
                             mi->in_channels);
    csnn_synth_options so;
    csnn_synth_options_init(&so);
    so.per_class = (int64_t)((n + 6) / 7);
    so.seed = seed;
    so.height = mi->in_height;
    so.width = mi->in_width;
    size_t total = 7 * (size_t)so.per_class;
    uint8_t *px = malloc(total * per);
    int32_t *lb = malloc(total * sizeof *lb);
    if (!px || !lb) {
        free(px);
        free(lb);
        return runtime_error(cmd, "out of memory");
    }
    csnn_status st = csnn_synth_generate(&so, px, total * per, lb, total);
    if (st == CSNN_OK) {
        /* the generator's order is class by class: spread the classes */
        for (size_t i = 0; i < n; i++) {
            size_t j = (i % 7) * (size_t)so.per_class + i / 7;
            for (size_t p = 0; p < per; p++)
                (*images)[i * per + p] = (float)px[j * per + p] / 255.0f;
            (*labels)[i] = lb[j] % mi->num_classes;
        }
    }
    free(px);
    free(lb);
    if (st != CSNN_OK) return lib_error(cmd, st, "synthetic inputs");
    return EXIT_OK;
}

int cmd_bench(int argc, char **argv)
{
    const char *preset = NULL, *spec = NULL, *mode = NULL, *device = NULL, *inputs = "random";
    long long batch = 0, iters = 10, warmup = 3, threads = 0, time_steps = 0;
    uint64_t seed = 0;
    bool json = false, no_sgemm = false, layers = false;
    opt opts[] = {
        OPT_S("preset", &preset, "NAME", "a built-in model: fer-csnn or fer-cnn"),
        OPT_S("spec", &spec, "FILE", "a model spec file"),
        OPT_S_REQ("mode", &mode, "MODE",
                  "train (csnn_trainer_step: forward, loss, backward, Adam) or infer "
                  "(csnn_model_predict)"),
        OPT_I_IN("batch", &batch, "N", "images per step (required)", 1, 65536),
        OPT_I_IN("iters", &iters, "N", "timed steps (default 10)", 1, 1e6),
        OPT_I_IN("warmup", &warmup, "N", "untimed steps first (default 3)", 0, 1e6),
        OPT_I_IN("time-steps", &time_steps, "T", "override the spec's steps", 1, 1e6),
        OPT_S("inputs", &inputs, "KIND",
              "random (uniform pixels, random labels; default) or synth (synthetic faces)"),
        OPT_U("seed", &seed, "N", "parameter initialisation and inputs (default 0)"),
        OPT_I_IN("threads", &threads, "N", "host threads (default: CSNN_NUM_THREADS or all cores)",
                 0, 65536),
        OPT_S("device", &device, "DEV", "cpu (default), cuda, cuda:N or auto"),
        OPT_F("no-sgemm", &no_sgemm, "skip measuring the library's sgemm rate"),
        OPT_F("layers", &layers,
              "per-layer times over the timed steps (csnn_model_set_layer_timing) and the "
              "conv and linear layers' own dense-equivalent rate"),
        OPT_F("json", &json, "one JSON object on stdout"),
    };
    command cmd = {
        .name = "bench",
        .synopsis = "(--preset NAME | --spec FILE) --mode train|infer --batch N [--iters N]\n"
                    "       [--warmup N] [--threads N] [--device DEV] [--layers] [--json]",
        .about =
            "Measures training steps or inference of a randomly initialised model: samples/s,\n"
            "ms per step (median and minimum over the timed steps), the process's peak\n"
            "resident memory, and the achieved dense-equivalent GFLOP/s against the rate of\n"
            "the library's own sgemm on the same device.",
        .notes =
            "Dense-equivalent FLOPs per step = 2 x batch x the dense MACs of every conv and\n"
            "linear layer (static layers once, the others T times), x 3 in training (forward,\n"
            "input and weight gradients). Spike-sparse kernels skip work, so the rate can say\n"
            "more than the arithmetic done. The sgemm rate is csnn_model_predict on a model\n"
            "that is one 2048 -> 4096 linear layer fed 256 rows (16 images x 16 steps).\n"
            "Peak memory is getrusage()'s ru_maxrss of the whole process after the timed\n"
            "steps.\n"
            "CSNN_DISABLE=fusion,sparse,bnfold,pack,temporal,skinny,amx (any subset) switches\n"
            "execution-plan levers off at model creation (skinny, amx: when the CPU device\n"
            "is opened).\n\n"
            "--json prints {preset or spec, mode, batch, iters, warmup, threads, device,\n"
            "description, time_steps, params, inputs, disabled, samples_per_s, ms_per_step,\n"
            "ms_min, step_ms: [...], peak_rss_mb, gflop_per_step, gflops, sgemm_gflops,\n"
            "sgemm_fraction, last_loss (train)}; unknown figures are null. With --layers also\n"
            "layers: [{name, kind, forward_ms, backward_ms, gflops}] (ms per step; gflops for\n"
            "conv and linear layers), dense_layers_gflops and dense_layers_sgemm_fraction:\n"
            "the conv and linear layers' dense-equivalent FLOPs over the time spent in them\n"
            "(a layer fused with the next one includes its time; the first of them has no\n"
            "input gradient to count).",
        .opts = opts,
        .n_opts = sizeof opts / sizeof opts[0],
    };
    int rc = args_parse(&cmd, argc, argv);
    if (rc != ARGS_CONTINUE) return rc;
    if ((rc = args_exclusive(&cmd, true, (const char *const[]){"preset", "spec", NULL})) !=
        ARGS_CONTINUE)
        return rc;
    bool train;
    if (strcmp(mode, "train") == 0)
        train = true;
    else if (strcmp(mode, "infer") == 0)
        train = false;
    else
        return usage_error(&cmd, "--mode: '%s' is neither train nor infer", mode);
    if (!args_seen(&cmd, "batch")) return usage_error(&cmd, "--batch is required");
    bool synth = strcmp(inputs, "synth") == 0;
    if (!synth && strcmp(inputs, "random") != 0)
        return usage_error(&cmd, "--inputs: '%s' is neither random nor synth", inputs);

    csnn_context *ctx = NULL;
    csnn_model *model = NULL;
    csnn_trainer *tr = NULL;
    double *lmacs = NULL;
    csnn_layer_time *ltimes = NULL;
    char *lnames = NULL; /* names and kinds of the layers, LNAME bytes each */
    float *images = NULL, *scores = NULL;
    int32_t *labels = NULL, *pred = NULL;
    double *times = malloc((size_t)iters * sizeof *times);
    csnn_status st = CSNN_OK;
    if (!times) return runtime_error(cmd.name, "out of memory");
    if ((rc = tool_context(cmd.name, device, threads, &ctx)) != EXIT_OK) goto done;
    if ((rc = tool_model(cmd.name, ctx, preset, spec, NULL, time_steps, seed, &model)) != EXIT_OK)
        goto done;
    csnn_model_info mi;
    csnn_model_info_init(&mi);
    if ((st = csnn_model_get_info(model, &mi)) != CSNN_OK) {
        rc = lib_error(cmd.name, st, "model");
        goto done;
    }
    const size_t n = (size_t)batch, k = (size_t)mi.num_classes;
    const size_t per = (size_t)mi.in_channels * (size_t)mi.in_height * (size_t)mi.in_width;
    if ((rc = make_inputs(cmd.name, &mi, n, synth, seed, &images, &labels)) != EXIT_OK) goto done;
    if (train) {
        if ((st = csnn_trainer_create(model, &tr)) == CSNN_OK)
            st = csnn_trainer_set_param(tr, CSNN_TRAIN_SEED, (double)(seed % (1ull << 52)));
        if (st != CSNN_OK) {
            rc = lib_error(cmd.name, st, "trainer");
            goto done;
        }
    } else {
        scores = malloc(n * k * sizeof *scores);
        pred = malloc(n * sizeof *pred);
        if (!scores || !pred) {
            rc = runtime_error(cmd.name, "out of memory");
            goto done;
        }
    }

    /* warm-up, then the timed steps */
    double last_loss = NAN;
    for (long long i = 0; i < warmup + iters; i++) {
        size_t b = (size_t)(i % BENCH_BUFFERS);
        const float *x = images + b * n * per;
        csnn_step_result res;
        csnn_step_result_init(&res);
        if (layers && i == warmup && (st = csnn_model_set_layer_timing(model, 1)) != CSNN_OK) {
            rc = lib_error(cmd.name, st, "layer timing");
            goto done;
        }
        double t0 = now_s();
        if (train)
            st = csnn_trainer_step(tr, x, labels + b * n, n, &res);
        else
            st = csnn_model_predict(model, x, n, scores, n * k, pred);
        double dt = now_s() - t0;
        if (st != CSNN_OK) {
            rc = lib_error(cmd.name, st, "%s step %lld", mode, i + 1);
            goto done;
        }
        if (i >= warmup) times[i - warmup] = dt;
        if (train) last_loss = res.loss;
    }
    const double rss = peak_rss_mib();

    double *sorted = malloc((size_t)iters * sizeof *sorted);
    if (!sorted) {
        rc = runtime_error(cmd.name, "out of memory");
        goto done;
    }
    memcpy(sorted, times, (size_t)iters * sizeof *sorted);
    qsort(sorted, (size_t)iters, sizeof *sorted, cmp_double);
    const double med = iters % 2 ? sorted[iters / 2]
                                 : 0.5 * (sorted[iters / 2 - 1] + sorted[iters / 2]);
    const double tmin = sorted[0];
    free(sorted);

    /* the FLOP count and the sgemm probe, after the memory was read */
    double macs = 0, sgemm = NAN;
    lmacs = calloc((size_t)mi.num_layers, sizeof *lmacs);
    ltimes = calloc((size_t)mi.num_layers, sizeof *ltimes);
    lnames = calloc((size_t)mi.num_layers * 2, LNAME);
    if (!lmacs || !ltimes || !lnames) {
        rc = runtime_error(cmd.name, "out of memory");
        goto done;
    }
    if ((rc = forward_macs(cmd.name, ctx, model, &macs, lmacs)) != EXIT_OK) goto done;
    for (int32_t i = 0; layers && i < mi.num_layers; i++) {
        csnn_layer_time_init(&ltimes[i]);
        if ((st = csnn_model_layer_time(model, i, &ltimes[i])) != CSNN_OK) {
            rc = lib_error(cmd.name, st, "layer timing");
            goto done;
        }
        /* the names belong to the model, which goes before the sgemm probe */
        snprintf(lnames + (size_t)i * LNAME, LNAME, "%s", ltimes[i].name);
        snprintf(lnames + ((size_t)mi.num_layers + (size_t)i) * LNAME, LNAME, "%s",
                 ltimes[i].kind);
        ltimes[i].name = lnames + (size_t)i * LNAME;
        ltimes[i].kind = lnames + ((size_t)mi.num_layers + (size_t)i) * LNAME;
    }
    csnn_trainer_destroy(tr);
    tr = NULL;
    csnn_model_destroy(model);
    model = NULL;
    if (!no_sgemm && (rc = measure_sgemm(cmd.name, ctx, &sgemm)) != EXIT_OK) goto done;
    const double gflop = macs > 0 ? 2.0 * macs * (double)n * (train ? 3 : 1) * 1e-9 : NAN;
    const double gflops = gflop / med;
    const double sps = (double)n / med;
    /* the conv and linear layers' own rate: dense-equivalent FLOPs (forward;
     * x 3 in training, x 2 for the first, which has no input gradient) over
     * their time */
    double dense_flop = 0, dense_s = 0;
    bool first_product = true;
    for (int32_t i = 0; layers && i < mi.num_layers; i++) {
        if (!(lmacs[i] > 0)) continue;
        const double f = 2.0 * lmacs[i] * (double)n * (train ? (first_product ? 2 : 3) : 1);
        first_product = false;
        lmacs[i] = f; /* from here on: FLOPs per step */
        dense_flop += f;
        dense_s += (ltimes[i].forward_s + ltimes[i].backward_s) / (double)iters;
    }
    const double dense_gflops = dense_s > 0 ? dense_flop * 1e-9 / dense_s : NAN;
    const char *disabled = getenv("CSNN_DISABLE");
    const char *desc = csnn_context_device_description(ctx);
    const int nthreads = csnn_context_threads(ctx);

    if (json) {
        printf("{");
        if (preset) {
            printf("\"preset\": ");
            json_string(stdout, preset);
        } else {
            printf("\"spec\": ");
            json_string(stdout, spec);
        }
        printf(", \"mode\": \"%s\", \"batch\": %lld, \"iters\": %lld, \"warmup\": %lld", mode,
               batch, iters, warmup);
        printf(", \"threads\": %d, \"device\": ", nthreads);
        json_string(stdout, csnn_context_device(ctx));
        printf(", \"description\": ");
        json_string(stdout, desc ? desc : "");
        printf(", \"time_steps\": %d, \"params\": %lld, \"inputs\": \"%s\", \"disabled\": ",
               mi.time_steps, (long long)mi.num_params, synth ? "synth" : "random");
        if (disabled)
            json_string(stdout, disabled);
        else
            printf("null");
        printf(", \"samples_per_s\": ");
        json_number(stdout, sps);
        printf(", \"ms_per_step\": ");
        json_number(stdout, med * 1e3);
        printf(", \"ms_min\": ");
        json_number(stdout, tmin * 1e3);
        printf(", \"step_ms\": [");
        for (long long i = 0; i < iters; i++) {
            if (i) printf(", ");
            json_number(stdout, times[i] * 1e3);
        }
        printf("], \"peak_rss_mb\": ");
        json_number(stdout, rss);
        printf(", \"gflop_per_step\": ");
        json_number(stdout, gflop);
        printf(", \"gflops\": ");
        json_number(stdout, gflops);
        printf(", \"sgemm_gflops\": ");
        json_number(stdout, sgemm);
        printf(", \"sgemm_fraction\": ");
        json_number(stdout, gflops / sgemm);
        printf(", \"last_loss\": ");
        json_number(stdout, train ? last_loss : NAN);
        if (layers) {
            printf(", \"layers\": [");
            for (int32_t i = 0; i < mi.num_layers; i++) {
                const csnn_layer_time *lt = &ltimes[i];
                printf("%s{\"name\": ", i ? ", " : "");
                json_string(stdout, lt->name);
                printf(", \"kind\": ");
                json_string(stdout, lt->kind);
                printf(", \"forward_ms\": ");
                json_number(stdout, lt->forward_s / (double)iters * 1e3);
                printf(", \"backward_ms\": ");
                json_number(stdout, lt->backward_s / (double)iters * 1e3);
                const double ls = (lt->forward_s + lt->backward_s) / (double)iters;
                printf(", \"gflops\": ");
                json_number(stdout, lmacs[i] > 0 && ls > 0 ? lmacs[i] * 1e-9 / ls : NAN);
                printf("}");
            }
            printf("], \"dense_layers_gflops\": ");
            json_number(stdout, dense_gflops);
            printf(", \"dense_layers_sgemm_fraction\": ");
            json_number(stdout, dense_gflops / sgemm);
        }
        printf("}\n");
    } else {
        printf("model:       %s (T = %d, %lld parameters)%s%s\n", preset ? preset : spec,
               mi.time_steps, (long long)mi.num_params, disabled ? ", CSNN_DISABLE=" : "",
               disabled ? disabled : "");
        printf("device:      %s: %s\n", csnn_context_device(ctx), desc ? desc : "");
        printf("mode:        %s, batch %lld, %s inputs, %lld warm-up + %lld timed steps\n", mode,
               batch, synth ? "synthetic-face" : "random", warmup, iters);
        printf("throughput:  %.2f samples/s\n", sps);
        printf("step:        %.2f ms median, %.2f ms min\n", med * 1e3, tmin * 1e3);
        printf("peak memory: %.1f MiB (peak RSS of the process)\n", rss);
        if (isfinite(gflop))
            printf("compute:     %.2f GFLOP/s dense-equivalent (%.3f GFLOP per step)\n", gflops,
                   gflop);
        else
            printf("compute:     not counted (the model's input is not one channel)\n");
        if (isfinite(sgemm))
            printf("sgemm:       %.2f GFLOP/s (the library's matrix product here)\n", sgemm);
        if (isfinite(sgemm) && isfinite(gflop))
            printf("             the model runs at %.1f %% of it\n", 100.0 * gflops / sgemm);
        if (train) printf("last loss:   %.6g\n", last_loss);
        if (layers) {
            printf("\nper layer, ms per step%s:\n", train ? " (forward, backward)" : "");
            for (int32_t i = 0; i < mi.num_layers; i++) {
                const csnn_layer_time *lt = &ltimes[i];
                const double fw = lt->forward_s / (double)iters * 1e3;
                const double bw = lt->backward_s / (double)iters * 1e3;
                printf("  %-12s %-8s %9.2f", lt->name, lt->kind, fw);
                if (train) printf(" %9.2f", bw);
                if (lmacs[i] > 0 && fw + bw > 0)
                    printf("   %7.1f GFLOP/s dense-equivalent", lmacs[i] * 1e-9 / ((fw + bw) * 1e-3));
                else if (lt->forward_calls == 0 && lt->backward_calls == 0)
                    printf("   (runs with the layer before)");
                printf("\n");
            }
            if (isfinite(dense_gflops)) {
                printf("dense layers: %.2f GFLOP/s (conv and linear: %.3f GFLOP in %.2f ms per step)",
                       dense_gflops, dense_flop * 1e-9, dense_s * 1e3);
                if (isfinite(sgemm)) printf(", %.1f %% of sgemm", 100.0 * dense_gflops / sgemm);
                printf("\n");
            }
        }
    }
    rc = EXIT_OK;

done:
    fflush(stdout);
    free(lmacs);
    free(ltimes);
    free(lnames);
    free(times);
    free(images);
    free(labels);
    free(scores);
    free(pred);
    csnn_trainer_destroy(tr);
    csnn_model_destroy(model);
    csnn_context_destroy(ctx);
    return rc;
}
