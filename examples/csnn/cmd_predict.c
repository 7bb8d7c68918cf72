/* cmd_predict.c - csnn predict: the label and the per-class outputs of a
 * model for image files. */
#include <stdlib.h>

#include "tool.h"

#define PREDICT_BATCH 64

static void print_one(const csnn_model *model, const char *file, const float *scores, int32_t label,
                      int32_t k, bool json)
{
    const char *name = "?";
    csnn_model_class_name(model, label, &name);
    if (json) {
        fputs("{\"file\": ", stdout);
        json_string(stdout, file);
        fputs(", \"label\": ", stdout);
        json_string(stdout, name);
        fputs(", \"scores\": {", stdout);
    } else {
        printf("%s: %s (", file, name);
    }
    for (int32_t c = 0; c < k; c++) {
        const char *cn = "?";
        csnn_model_class_name(model, c, &cn);
        if (json) {
            if (c) fputs(", ", stdout);
            json_string(stdout, cn);
            fputs(": ", stdout);
            json_number(stdout, scores[c]);
        } else {
            printf("%s%s %.4g", c ? ", " : "", cn, scores[c]);
        }
    }
    fputs(json ? "}}\n" : ")\n", stdout);
}

int cmd_predict(int argc, char **argv)
{
    const char *model_path = NULL, *device = NULL;
    long long threads = 0;
    bool json = false;
    opt opts[] = {
        OPT_S_REQ("model", &model_path, "MODEL", "a model saved by csnn train"),
        OPT_F("json", &json,
              "one JSON object per image and line: {file, label, scores: {class: output}}"),
        OPT_I_IN("threads", &threads, "N", "host threads (default: CSNN_NUM_THREADS or all cores)",
                 0, 65536),
        OPT_S("device", &device, "DEV", "cpu (default), cuda, cuda:N or auto"),
    };
    command cmd = {
        .name = "predict",
        .synopsis = "--model MODEL [--json] IMAGE...",
        .about = "Prints the predicted class of each image (PNG or JPEG, converted to grayscale\n"
                 "and resized to the model's input) and the per-class outputs: the firing rates\n"
                 "of a spiking model (not probabilities), the raw outputs of an ANN model. The\n"
                 "prediction is the first class with the highest output.",
        .opts = opts,
        .n_opts = sizeof opts / sizeof opts[0],
        .min_args = 1,
        .max_args = -1,
    };
    int rc = args_parse(&cmd, argc, argv);
    if (rc != ARGS_CONTINUE) return rc;

    csnn_context *ctx = NULL;
    csnn_model *model = NULL;
    uint8_t *pixels = NULL;
    float *images = NULL, *scores = NULL;
    int32_t labels[PREDICT_BATCH];
    const char *files[PREDICT_BATCH];
    csnn_status st;
    bool failed = false;
    if ((rc = tool_context(cmd.name, device, threads, &ctx)) != EXIT_OK) goto done;
    if ((rc = tool_model(cmd.name, ctx, NULL, NULL, model_path, 0, 0, &model)) != EXIT_OK)
        goto done;
    csnn_model_info mi;
    csnn_model_info_init(&mi);
    if ((st = csnn_model_get_info(model, &mi)) != CSNN_OK) {
        rc = lib_error(cmd.name, st, "model");
        goto done;
    }
    if (mi.in_channels != 1) {
        rc = runtime_error(cmd.name, "'%s' takes %d input channels; images are read as grayscale",
                           model_path, mi.in_channels);
        goto done;
    }
    const size_t per = (size_t)mi.in_height * (size_t)mi.in_width;
    const size_t k = (size_t)mi.num_classes;
    pixels = malloc(per);
    images = malloc(PREDICT_BATCH * per * sizeof *images);
    scores = malloc(PREDICT_BATCH * k * sizeof *scores);
    if (!pixels || !images || !scores) {
        rc = runtime_error(cmd.name, "out of memory");
        goto done;
    }
    csnn_dataset_options io;
    csnn_dataset_options_init(&io);
    io.height = mi.in_height;
    io.width = mi.in_width;
    for (int i = 0; i < cmd.n_args;) {
        size_t n = 0;
        for (; i < cmd.n_args && n < PREDICT_BATCH; i++) {
            st = csnn_image_load(cmd.args[i], &io, pixels, per);
            if (st != CSNN_OK) {
                lib_error(cmd.name, st, "%s", cmd.args[i]);
                failed = true;
                continue;
            }
            for (size_t p = 0; p < per; p++)
                images[n * per + p] = (float)pixels[p] / 255.0f;
            files[n++] = cmd.args[i];
        }
        if (n == 0) continue;
        if ((st = csnn_model_predict(model, images, n, scores, n * k, labels)) != CSNN_OK) {
            rc = lib_error(cmd.name, st, "prediction");
            goto done;
        }
        for (size_t j = 0; j < n; j++)
            print_one(model, files[j], scores + j * k, labels[j], (int32_t)k, json);
        fflush(stdout);
    }
    rc = failed ? EXIT_FAILURE_RUNTIME : EXIT_OK;

done:
    fflush(stdout);
    free(pixels);
    free(images);
    free(scores);
    csnn_model_destroy(model);
    csnn_context_destroy(ctx);
    return rc;
}
