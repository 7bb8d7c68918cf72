/*
 * minimal.c - train the seed's CSNN for a few steps and predict with it.
 *
 *     minimal [STEPS] [MODEL_PATH]
 *
 * Builds the fer-csnn preset, trains it on one batch of the built-in
 * synthetic faces (repeated, so the loss must fall), saves the model,
 * loads it back and checks that the reloaded model predicts the same.
 * Build against an installed libcsnn with:
 *     cc minimal.c $(pkg-config --cflags --libs csnn) -o minimal
 */
#include <csnn/csnn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 8

static int fail(const char *what, csnn_status st)
{
    fprintf(stderr, "minimal: %s: %s: %s\n", what, csnn_status_name(st),
            csnn_last_error_message());
    return 1;
}

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 10;
    const char *path = argc > 2 ? argv[2] : "minimal.csnn";
    csnn_context *ctx;
    csnn_model *model, *loaded;
    csnn_trainer *trainer;
    csnn_status st;

    if ((st = csnn_context_create(NULL, &ctx))) return fail("context", st);
    if ((st = csnn_model_create_preset(ctx, "fer-csnn", 1, &model))) return fail("model", st);
    if ((st = csnn_trainer_create(model, &trainer))) return fail("trainer", st);

    /* one batch of 48x48 synthetic faces, 1 or 2 per class */
    static uint8_t pixels[7 * 2 * 48 * 48];
    static int32_t labels[7 * 2];
    static float images[BATCH * 48 * 48];
    csnn_synth_options so;
    csnn_synth_options_init(&so);
    so.per_class = 2;
    if ((st = csnn_synth_generate(&so, pixels, sizeof pixels, labels, 14))) return fail("synth", st);
    int32_t batch_labels[BATCH];
    for (int i = 0; i < BATCH; i++) {
        int src = (i * 2) % 14; /* one image of each class first */
        for (int p = 0; p < 48 * 48; p++) images[i * 48 * 48 + p] = pixels[src * 48 * 48 + p] / 255.0f;
        batch_labels[i] = labels[src];
    }

    double first = 0, last = 0;
    for (int s = 0; s < steps; s++) {
        csnn_step_result r;
        csnn_step_result_init(&r);
        if ((st = csnn_trainer_step(trainer, images, batch_labels, BATCH, &r))) return fail("step", st);
        printf("step %2d  loss %.5f  correct %d/%d\n", s + 1, r.loss, r.correct, r.n);
        if (s == 0) first = r.loss;
        last = r.loss;
    }

    if ((st = csnn_model_save(model, path))) return fail("save", st);
    if ((st = csnn_model_load(ctx, path, &loaded))) return fail("load", st);
    float a[BATCH * 7], b[BATCH * 7];
    int32_t pa[BATCH], pb[BATCH];
    if ((st = csnn_model_predict(model, images, BATCH, a, BATCH * 7, pa))) return fail("predict", st);
    if ((st = csnn_model_predict(loaded, images, BATCH, b, BATCH * 7, pb))) return fail("predict", st);
    int same = memcmp(a, b, sizeof a) == 0 && memcmp(pa, pb, sizeof pa) == 0;
    printf("loss %.5f -> %.5f; saved %s; reloaded model predicts %s\n", first, last, path,
           same ? "the same" : "DIFFERENTLY");

    csnn_model_destroy(loaded);
    csnn_trainer_destroy(trainer);
    csnn_model_destroy(model);
    csnn_context_destroy(ctx);
    return (steps < 2 || last < first) && same ? 0 : 1;
}
