/* cmd_summary.c - csnn summary: the layer table of a preset, a spec file
 * or a saved model. */
#include "tool.h"

int cmd_summary(int argc, char **argv)
{
    const char *preset = NULL, *spec = NULL, *model_path = NULL;
    long long time_steps = 0, batch = 1;
    bool list = false;
    opt opts[] = {
        OPT_S("preset", &preset, "NAME", "a built-in model (see --list)"),
        OPT_S("spec", &spec, "FILE", "a model spec file"),
        OPT_S("model", &model_path, "MODEL", "a saved model"),
        OPT_I_IN("time-steps", &time_steps, "T", "override the spec's steps (not with --model)", 1,
                 1e6),
        OPT_I_IN("batch", &batch, "N", "batch size of the shapes shown (default 1)", 1, 1 << 24),
        OPT_F("list", &list, "list the built-in presets"),
    };
    command cmd = {
        .name = "summary",
        .synopsis = "(--preset NAME | --spec FILE | --model MODEL) [--time-steps T] | --list",
        .about = "Prints the layer table of a model: input and output shapes, parameters per\n"
                 "layer and the totals.",
        .opts = opts,
        .n_opts = sizeof opts / sizeof opts[0],
    };
    int rc = args_parse(&cmd, argc, argv);
    if (rc != ARGS_CONTINUE) return rc;
    if (list) {
        if (preset || spec || model_path) return usage_error(&cmd, "--list takes no model");
        for (size_t i = 0; csnn_preset_name(i); i++)
            printf("%s\n", csnn_preset_name(i));
        return EXIT_OK;
    }
    if ((rc = args_exclusive(&cmd, true, (const char *const[]){"preset", "spec", "model", NULL})) !=
        ARGS_CONTINUE)
        return rc;
    if (model_path && time_steps)
        return usage_error(&cmd, "--time-steps applies to --preset and --spec only");

    csnn_context *ctx = NULL;
    csnn_model *model = NULL;
    if ((rc = tool_context(cmd.name, NULL, 0, &ctx)) != EXIT_OK) goto done;
    if ((rc = tool_model(cmd.name, ctx, preset, spec, model_path, time_steps, 0, &model)) !=
        EXIT_OK)
        goto done;
    if ((rc = tool_print_summary(cmd.name, model, (int)batch, stdout)) != EXIT_OK) goto done;
    if (model_path) {
        csnn_model_info mi;
        csnn_model_info_init(&mi);
        csnn_status st = csnn_model_get_info(model, &mi);
        if (st != CSNN_OK) {
            rc = lib_error(cmd.name, st, "model");
            goto done;
        }
        printf("Classes:");
        for (int32_t c = 0; c < mi.num_classes; c++) {
            const char *name = "?";
            csnn_model_class_name(model, c, &name);
            printf(" %s", name);
        }
        printf("\n");
    }

done:
    fflush(stdout);
    csnn_model_destroy(model);
    csnn_context_destroy(ctx);
    return rc;
}
