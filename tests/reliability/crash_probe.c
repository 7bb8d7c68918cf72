/*
 * crash_probe.c - loads a model file the way its users do, for
 * scripts/crash_test.sh:
 *
 *     crash_probe FILE
 *
 * csnn_model_load (every file), then, for a checkpoint with optimiser
 * state, csnn_trainer_load_checkpoint into a trainer of that model (the
 * --resume path), and a prediction on one image. Prints one line:
 *
 *     model classes=K params=P
 *     checkpoint classes=K params=P epochs=N steps=S
 *
 * Exit status 0 when the file loads and runs, 1 (with the library's
 * message) when it does not, 2 on a usage error.
 */
#include <stdio.h>
#include <stdlib.h>

#include "csnn/csnn.h"

static int fail(const char *what, csnn_status st)
{
    fprintf(stderr, "crash_probe: %s: %s: %s\n", what, csnn_status_name(st),
            csnn_last_error_message());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: crash_probe FILE\n");
        return 2;
    }
    const char *path = argv[1];
    csnn_context_options o;
    csnn_context_options_init(&o);
    o.n_threads = 1;
    csnn_context *ctx = NULL;
    csnn_model *m = NULL;
    csnn_trainer *t = NULL;
    csnn_status st;
    int rc = 1;
    if ((st = csnn_context_create(&o, &ctx)) != CSNN_OK) return fail("context", st);
    if ((st = csnn_model_load(ctx, path, &m)) != CSNN_OK) {
        rc = fail(path, st);
        goto done;
    }
    csnn_model_info mi;
    csnn_model_info_init(&mi);
    if ((st = csnn_model_get_info(m, &mi)) != CSNN_OK) {
        rc = fail("info", st);
        goto done;
    }
    size_t in = (size_t)mi.in_channels * (size_t)mi.in_height * (size_t)mi.in_width;
    float *img = calloc(in, sizeof(float)), *scores = calloc((size_t)mi.num_classes, sizeof(float));
    if (!img || !scores) {
        free(img);
        free(scores);
        fprintf(stderr, "crash_probe: out of memory\n");
        goto done;
    }
    for (size_t i = 0; i < in; i++) img[i] = (float)(i % 17) / 16.0f;
    int32_t label;
    st = csnn_model_predict(m, img, 1, scores, (size_t)mi.num_classes, &label);
    free(img);
    free(scores);
    if (st != CSNN_OK) {
        rc = fail("predict", st);
        goto done;
    }
    if (mi.num_params > 0 && (st = csnn_trainer_create(m, &t)) != CSNN_OK) {
        rc = fail("trainer", st);
        goto done;
    }
    st = t ? csnn_trainer_load_checkpoint(t, path) : CSNN_ERR_STATE;
    if (st == CSNN_ERR_STATE) {
        printf("model classes=%d params=%lld\n", mi.num_classes, (long long)mi.num_params);
        rc = 0;
        goto done;
    }
    if (st != CSNN_OK) {
        rc = fail(path, st);
        goto done;
    }
    size_t epochs = 0;
    int64_t steps = 0;
    csnn_trainer_history(t, &epochs);
    csnn_trainer_steps(t, &steps);
    printf("checkpoint classes=%d params=%lld epochs=%zu steps=%lld\n", mi.num_classes,
           (long long)mi.num_params, epochs, (long long)steps);
    rc = 0;
done:
    csnn_trainer_destroy(t);
    csnn_model_destroy(m);
    csnn_context_destroy(ctx);
    return rc;
}
