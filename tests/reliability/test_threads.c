/*
 * test_threads.c - several contexts, models, trainers and datasets used
 * from several threads at once (csnn.h: "Different handles (with their own
 * contexts) may be used from different threads concurrently"):
 *
 *   thread 0: inference (csnn_model_predict) on its own context and model;
 *   thread 1: training steps (csnn_trainer_step) and a checkpoint;
 *   thread 2: csnn_trainer_fit (with its batch-building thread) on a
 *             dataset, writing the best model and MODEL.last;
 *   thread 3: dataset loading (an image folder decoded by a pool of
 *             threads, csnn_image_load, the synthetic generator);
 *
 * each context with 2 host threads of its own, every thread also checking
 * that its error messages stay its own. The results must equal those of
 * the same work done first on the main thread alone (bit for bit). Run it
 * in a -Db_sanitize=thread build to have ThreadSanitizer watch it
 * (docs/RELIABILITY.md); THREADS_ROUNDS sets the repetitions (default 2).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csnn/csnn.h"

static const char SPEC[] = "input 1x16x16\nsteps 3\nconv 4 k=3 s=2 p=1\nbn\nif\nmaxpool 2\n"
                           "flatten\nlinear 5\nlif\n";
enum { SIDE = 16, K = 5, BATCH = 6, STEPS = 6 };

static char workdir[64];
static int rounds = 2;
static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&print_lock);
    fprintf(stderr, "test_threads: FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

#define OK(expr)                                                                                   \
    do {                                                                                           \
        csnn_status st_ = (expr);                                                                  \
        if (st_ != CSNN_OK)                                                                        \
            die("%s: %s: %s", #expr, csnn_status_name(st_), csnn_last_error_message());            \
    } while (0)

static csnn_context *new_context(void)
{
    csnn_context_options o;
    csnn_context_options_init(&o);
    o.n_threads = 2;
    csnn_context *ctx;
    OK(csnn_context_create(&o, &ctx));
    return ctx;
}

/* A deterministic input batch. */
static void make_batch(int which, float *x, int32_t *y)
{
    for (int i = 0; i < BATCH * SIDE * SIDE; i++)
        x[i] = (float)((i * 31 + which * 17) % 256) / 255.0f;
    for (int i = 0; i < BATCH; i++) y[i] = (i + which) % K;
}

/* An error of this thread's own, whose message must stay this thread's. */
static void own_error(const char *tag)
{
    csnn_model *m = NULL;
    char spec[64];
    snprintf(spec, sizeof spec, "input 1x4x4\nbogus_%s\n", tag);
    csnn_context *ctx = new_context();
    if (csnn_model_create_from_spec(ctx, spec, 0, &m) != CSNN_ERR_SPEC) die("%s: no SPEC error", tag);
    usleep(1000);
    if (!strstr(csnn_last_error_message(), tag))
        die("%s: the error message is another thread's: %s", tag, csnn_last_error_message());
    csnn_context_destroy(ctx);
}

/* ---- the four jobs; each returns a checksum-like result to compare ---- */

static void job_predict(float *scores)
{
    csnn_context *ctx = new_context();
    csnn_model *m;
    OK(csnn_model_create_from_spec(ctx, SPEC, 11, &m));
    float x[BATCH * SIDE * SIDE];
    int32_t y[BATCH];
    for (int b = 0; b < 4; b++) {
        make_batch(b, x, y);
        int32_t labels[BATCH];
        OK(csnn_model_predict(m, x, BATCH, scores + b * BATCH * K, BATCH * K, labels));
    }
    csnn_model_destroy(m);
    csnn_context_destroy(ctx);
}

static void job_steps(float *weights, const char *ckpt)
{
    csnn_context *ctx = new_context();
    csnn_model *m;
    csnn_trainer *t;
    OK(csnn_model_create_from_spec(ctx, SPEC, 12, &m));
    OK(csnn_trainer_create(m, &t));
    float x[BATCH * SIDE * SIDE];
    int32_t y[BATCH];
    for (int s = 0; s < STEPS; s++) {
        make_batch(s, x, y);
        OK(csnn_trainer_step(t, x, y, BATCH, NULL));
    }
    if (ckpt) OK(csnn_trainer_save_checkpoint(t, ckpt));
    OK(csnn_model_get_tensor(m, "fc1.weight", weights, (size_t)K * 64));
    csnn_trainer_destroy(t);
    csnn_model_destroy(m);
    csnn_context_destroy(ctx);
}

static void job_fit(double *val_acc, const char *out)
{
    csnn_context *ctx = new_context();
    enum { N = 40 };
    uint8_t px[N * SIDE * SIDE];
    int32_t labels[N];
    for (int i = 0; i < N * SIDE * SIDE; i++) px[i] = (uint8_t)(i * 7 + i / 97);
    for (int i = 0; i < N; i++) labels[i] = i % K;
    csnn_dataset *all, *train, *val;
    OK(csnn_dataset_create_from_arrays(ctx, px, labels, N, SIDE, SIDE, NULL, K, &all));
    OK(csnn_dataset_split(all, 0.25, 3, &train, &val));
    csnn_model *m;
    csnn_trainer *t;
    OK(csnn_model_create_from_spec(ctx, SPEC, 13, &m));
    OK(csnn_trainer_create(m, &t));
    OK(csnn_trainer_set_param(t, CSNN_TRAIN_EPOCHS, 2));
    OK(csnn_trainer_set_param(t, CSNN_TRAIN_BATCH_SIZE, 8));
    csnn_fit_options fo;
    csnn_fit_options_init(&fo);
    fo.output = out;
    OK(csnn_trainer_fit(t, train, val, &fo));
    csnn_epoch_metrics em;
    csnn_epoch_metrics_init(&em);
    OK(csnn_trainer_epoch(t, 1, &em));
    *val_acc = em.val_accuracy + 10 * em.train_loss;
    if (out) {
        csnn_model *best;
        OK(csnn_model_load(ctx, out, &best));
        csnn_model_destroy(best);
    }
    csnn_trainer_destroy(t);
    csnn_model_destroy(m);
    csnn_dataset_destroy(all);
    csnn_dataset_destroy(train);
    csnn_dataset_destroy(val);
    csnn_context_destroy(ctx);
}

static uint64_t job_data(void)
{
    csnn_context *ctx = new_context();
    char root[128];
    snprintf(root, sizeof root, "%s/faces", workdir);
    csnn_dataset_options o;
    csnn_dataset_options_init(&o);
    o.height = o.width = SIDE;
    o.n_threads = 2;
    csnn_dataset *ds;
    OK(csnn_dataset_load_folder(ctx, root, &o, &ds));
    csnn_dataset_info info;
    csnn_dataset_info_init(&info);
    OK(csnn_dataset_get_info(ds, &info));
    uint64_t h = 1469598103934665603ull;
    uint8_t px[SIDE * SIDE];
    for (int64_t i = 0; i < info.num_samples; i++) {
        int32_t label;
        OK(csnn_dataset_get_sample(ds, i, px, sizeof px, &label));
        for (size_t k = 0; k < sizeof px; k++) h = (h ^ px[k]) * 1099511628211ull;
        h = (h ^ (uint64_t)label) * 1099511628211ull;
    }
    const char *src;
    OK(csnn_dataset_sample_source(ds, 0, &src));
    OK(csnn_image_load(src, &o, px, sizeof px));
    for (size_t k = 0; k < sizeof px; k++) h = (h ^ px[k]) * 1099511628211ull;
    csnn_synth_options so;
    csnn_synth_options_init(&so);
    so.per_class = 1;
    so.height = so.width = SIDE;
    uint8_t faces[7 * SIDE * SIDE];
    int32_t fl[7];
    OK(csnn_synth_generate(&so, faces, sizeof faces, fl, 7));
    for (size_t k = 0; k < sizeof faces; k++) h = (h ^ faces[k]) * 1099511628211ull;
    csnn_dataset_destroy(ds);
    csnn_context_destroy(ctx);
    return h;
}

/* ---- references (main thread alone) and the threads ---- */

static float ref_scores[4 * BATCH * K], ref_weights[K * 64];
static double ref_fit;
static uint64_t ref_data;

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    char tag[16], path[128];
    snprintf(tag, sizeof tag, "t%d", id);
    for (int r = 0; r < rounds; r++) {
        own_error(tag);
        switch (id) {
        case 0: {
            float s[4 * BATCH * K];
            job_predict(s);
            if (memcmp(s, ref_scores, sizeof s) != 0) die("thread 0: the scores differ");
            break;
        }
        case 1: {
            float w[K * 64];
            snprintf(path, sizeof path, "%s/steps-%d.ckpt", workdir, r);
            job_steps(w, path);
            if (memcmp(w, ref_weights, sizeof w) != 0) die("thread 1: the weights differ");
            break;
        }
        case 2: {
            double v;
            snprintf(path, sizeof path, "%s/fit-%d.csnn", workdir, r);
            job_fit(&v, path);
            if (v != ref_fit) die("thread 2: the fit differs (%.17g, %.17g)", v, ref_fit);
            break;
        }
        case 3:
            if (job_data() != ref_data) die("thread 3: the loaded data differ");
            break;
        }
        own_error(tag);
    }
    return NULL;
}

int main(void)
{
    const char *r = getenv("THREADS_ROUNDS");
    if (r && atoi(r) > 0) rounds = atoi(r);
    snprintf(workdir, sizeof workdir, "/tmp/csnn-threads.XXXXXX");
    if (!mkdtemp(workdir)) die("mkdtemp");
    char root[128];
    snprintf(root, sizeof root, "%s/faces", workdir);
    csnn_synth_options so;
    csnn_synth_options_init(&so);
    so.per_class = 3;
    OK(csnn_synth_write(root, &so));

    job_predict(ref_scores);
    job_steps(ref_weights, NULL);
    job_fit(&ref_fit, NULL);
    ref_data = job_data();

    enum { T = 4 };
    pthread_t th[T];
    for (int i = 0; i < T; i++)
        if (pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i) != 0) die("pthread_create");
    for (int i = 0; i < T; i++) pthread_join(th[i], NULL);

    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", workdir);
    if (system(cmd) != 0) fprintf(stderr, "test_threads: note: cannot remove %s\n", workdir);
    printf("test_threads: 4 threads x %d rounds: inference, training steps, fit, data loading: "
           "results equal the single-threaded ones\n",
           rounds);
    return 0;
}
