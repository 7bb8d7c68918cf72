/* cmd_synth.c - csnn synth: writes the built-in synthetic dataset. */
#include "tool.h"

int cmd_synth(int argc, char **argv)
{
    const char *out = NULL;
    long long per_class = 200, jpeg_percent = 30, size = 48;
    uint64_t seed = 0;
    opt opts[] = {
        OPT_S_REQ("out", &out, "DIR", "the image-folder root to write"),
        OPT_I_IN("per-class", &per_class, "N", "images per class (default 200)", 1, 1e7),
        OPT_U("seed", &seed, "N", "another seed gives another set (default 0)"),
        OPT_I_IN("size", &size, "PIXELS", "width and height of the images (default 48)", 8, 4096),
        OPT_I_IN("jpeg-percent", &jpeg_percent, "P",
                 "share of the files written as JPEG, the rest PNG (default 30)", 0, 100),
    };
    command cmd = {
        .name = "synth",
        .synopsis = "--out DIR [--per-class N] [--seed N]",
        .about = "Writes the built-in default dataset: synthetic 8-bit grayscale faces in the 7\n"
                 "FER2013 classes (angry, disgust, fear, happy, neutral, sad, surprise) as\n"
                 "DIR/<class>/<NNNNN>.png or .jpg, ready for csnn train --data DIR.",
        .opts = opts,
        .n_opts = sizeof opts / sizeof opts[0],
    };
    int rc = args_parse(&cmd, argc, argv);
    if (rc != ARGS_CONTINUE) return rc;
    csnn_synth_options so;
    csnn_synth_options_init(&so);
    so.per_class = per_class;
    so.seed = seed;
    so.height = so.width = (int32_t)size;
    so.jpeg_percent = (int32_t)jpeg_percent;
    csnn_status st = csnn_synth_write(out, &so);
    if (st != CSNN_OK) return lib_error(cmd.name, st, "cannot write '%s'", out);
    printf("wrote %lld images (7 classes x %lld) to %s\n", 7 * per_class, per_class, out);
    return EXIT_OK;
}
