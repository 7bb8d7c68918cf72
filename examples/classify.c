/*
 * classify.c - classify image files with a saved model (inference only).
 *
 *     classify [--device DEV] [--top K] [--batch N] MODEL IMAGE...
 *
 * Loads MODEL (written by csnn_model_save, csnn train or a checkpoint),
 * decodes every IMAGE (PNG or JPEG) to 8-bit grayscale at the model's input
 * size exactly as the dataset loaders do, runs the model in batches and
 * prints one line per image:
 *
 *     faces/happy/00001.png    happy      0.750
 *
 * (path, predicted class, its output: a firing rate for spiking models, a
 * logit for ANN models), followed by the next K-1 classes with --top K.
 * An unreadable image is reported on stderr and skipped; the exit status is
 * then 1 (2 for usage errors or when the model cannot be loaded).
 *
 * Build against an installed libcsnn with
 *     cc classify.c $(pkg-config --cflags --libs csnn) -o classify
 * or with CMake: find_package(csnn) and target_link_libraries(classify
 * csnn::csnn).
 */
#include <csnn/csnn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: classify [--device DEV] [--top K] [--batch N] MODEL IMAGE...\n"
               "  --device DEV  cpu (default), cuda, cuda:N or auto\n"
               "  --top K       also print the next K-1 classes (default 1)\n"
               "  --batch N     images per forward pass (default 32)\n");
}

static int report(const char *what, csnn_status st)
{
    fprintf(stderr, "classify: %s: %s: %s\n", what, csnn_status_name(st),
            csnn_last_error_message());
    return 2;
}

/* Prints the image's line: the best class (the first maximum, as
 * csnn_model_predict's labels), then the runners-up in order. */
static void print_result(const csnn_model *model, const char *path, const float *scores,
                         int32_t k, int top)
{
    float prev = 0;
    int32_t prev_c = -1;
    printf("%s", path);
    for (int r = 0; r < top && r < k; r++) {
        int32_t best = -1;
        for (int32_t c = 0; c < k; c++) {
            /* candidates rank after the previous pick: lower score, or the
             * same score at a later index */
            if (prev_c >= 0 && !(scores[c] < prev || (scores[c] == prev && c > prev_c))) continue;
            if (best < 0 || scores[c] > scores[best]) best = c;
        }
        if (best < 0) break;
        const char *name = "?";
        csnn_model_class_name(model, best, &name);
        printf("%s%-10s %.3f", r == 0 ? "\t" : "  ", name, (double)scores[best]);
        prev = scores[best];
        prev_c = best;
    }
    printf("\n");
}

int main(int argc, char **argv)
{
    const char *device = "cpu";
    int top = 1, batch = 32, i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        } else if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (i + 1 < argc && strcmp(argv[i], "--device") == 0) {
            device = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--top") == 0) {
            top = atoi(argv[++i]);
        } else if (i + 1 < argc && strcmp(argv[i], "--batch") == 0) {
            batch = atoi(argv[++i]);
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (argc - i < 2 || top < 1 || batch < 1) {
        usage(stderr);
        return 2;
    }
    const char *model_path = argv[i++];
    char **images = argv + i;
    const int n_images = argc - i;

    csnn_context_options co;
    csnn_context_options_init(&co);
    co.device = device;
    csnn_context *ctx = NULL;
    csnn_model *model = NULL;
    csnn_status st;
    if ((st = csnn_context_create(&co, &ctx)) != CSNN_OK) return report(device, st);
    if ((st = csnn_model_load(ctx, model_path, &model)) != CSNN_OK) {
        report(model_path, st);
        csnn_context_destroy(ctx);
        return 2;
    }
    csnn_model_info info;
    csnn_model_info_init(&info);
    csnn_model_get_info(model, &info);
    if (info.in_channels != 1) {
        fprintf(stderr, "classify: %s takes %d input channels; image files are grayscale\n",
                model_path, info.in_channels);
        csnn_model_destroy(model);
        csnn_context_destroy(ctx);
        return 2;
    }

    /* decode at the model's input size, as the dataset loaders would */
    csnn_dataset_options dopt;
    csnn_dataset_options_init(&dopt);
    dopt.height = info.in_height;
    dopt.width = info.in_width;
    const size_t per = (size_t)info.in_height * (size_t)info.in_width;
    const int32_t k = info.num_classes;
    uint8_t *pixels = malloc(per);
    float *input = malloc((size_t)batch * per * sizeof *input);
    float *scores = malloc((size_t)batch * (size_t)k * sizeof *scores);
    const char **names = malloc((size_t)batch * sizeof *names);
    int failed = 0;
    if (!pixels || !input || !scores || !names) {
        fprintf(stderr, "classify: out of memory\n");
        failed = 2;
    }

    for (int next = 0; next < n_images && failed != 2;) {
        int n = 0;
        while (n < batch && next < n_images) {
            const char *path = images[next++];
            st = csnn_image_load(path, &dopt, pixels, per);
            if (st != CSNN_OK) {
                fprintf(stderr, "classify: %s: %s: %s\n", path, csnn_status_name(st),
                        csnn_last_error_message());
                failed = 1;
                continue;
            }
            for (size_t p = 0; p < per; p++) input[(size_t)n * per + p] = pixels[p] / 255.0f;
            names[n++] = path;
        }
        if (n == 0) continue;
        st = csnn_model_predict(model, input, (size_t)n, scores, (size_t)n * (size_t)k, NULL);
        if (st != CSNN_OK) {
            failed = report("predict", st);
            break;
        }
        for (int j = 0; j < n; j++) print_result(model, names[j], scores + (size_t)j * k, k, top);
    }

    free(names);
    free(scores);
    free(input);
    free(pixels);
    csnn_model_destroy(model);
    csnn_context_destroy(ctx);
    return failed;
}
