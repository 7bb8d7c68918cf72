/* cmd_eval.c - csnn eval: a saved model on a dataset. */
#include "tool.h"

int cmd_eval(int argc, char **argv)
{
    const char *model_path = NULL, *data = NULL, *plots = NULL, *device = NULL, *usage = NULL;
    long long threads = 0;
    bool json = false, skip_bad = false;
    opt opts[] = {
        OPT_S_REQ("model", &model_path, "MODEL", "a model saved by csnn train"),
        OPT_S_REQ("data", &data, "PATH", "an image-folder root or a FER2013 CSV"),
        OPT_S("usage", &usage, "NAME",
              "FER2013 CSV only: rows whose Usage is NAME (e.g. PrivateTest)"),
        OPT_F("json", &json, "one JSON object on stdout"),
        OPT_S("plots", &plots, "DIR", "confusion.png (needs cairo)"),
        OPT_F("skip-bad", &skip_bad, "skip unreadable images or rows (and count them)"),
        OPT_I_IN("threads", &threads, "N", "host threads (default: CSNN_NUM_THREADS or all cores)",
                 0, 65536),
        OPT_S("device", &device, "DEV", "cpu (default), cuda, cuda:N or auto"),
    };
    command cmd = {
        .name = "eval",
        .synopsis = "--model MODEL --data PATH [--json] [--plots DIR]",
        .about = "Evaluates a model: accuracy, loss, the confusion matrix (rows: true class,\n"
                 "columns: predicted class), per-class precision, recall and F1, and the mean\n"
                 "firing rate of every spiking layer.",
        .notes =
            "--json prints {accuracy, loss, n, correct, classes, confusion, per_class: [{class,\n"
            "precision, recall, f1, support}], firing_rates: [{layer, rate}], model, data}.",
        .opts = opts,
        .n_opts = sizeof opts / sizeof opts[0],
    };
    int rc = args_parse(&cmd, argc, argv);
    if (rc != ARGS_CONTINUE) return rc;
    if (plots && !plot_available())
        return usage_error(&cmd, "--plots is not available: this csnn was built without cairo");

    csnn_context *ctx = NULL;
    csnn_model *model = NULL;
    csnn_dataset *ds = NULL;
    csnn_metrics *m = NULL;
    csnn_status st;
    if ((rc = tool_context(cmd.name, device, threads, &ctx)) != EXIT_OK) goto done;
    if ((rc = tool_model(cmd.name, ctx, NULL, NULL, model_path, 0, 0, &model)) != EXIT_OK)
        goto done;
    if ((rc = tool_load_dataset(cmd.name, ctx, model, data, skip_bad, usage, &ds)) != EXIT_OK)
        goto done;
    if ((st = csnn_model_evaluate(model, ds, &m)) != CSNN_OK) {
        rc = lib_error(cmd.name, st, "evaluation of '%s' on '%s'", model_path, data);
        goto done;
    }
    if (json) {
        rc = report_json(cmd.name, m, model_path, data, stdout);
    } else {
        printf("model: %s\ndata:  %s\n", model_path, data);
        rc = report_text(cmd.name, m, stdout);
    }
    if (rc == EXIT_OK && plots) {
        rc = report_confusion_plot(cmd.name, m, plots);
        if (rc == EXIT_OK && !json) printf("\nplot: %s/confusion.png\n", plots);
    }

done:
    fflush(stdout);
    csnn_metrics_destroy(m);
    csnn_dataset_destroy(ds);
    csnn_model_destroy(model);
    csnn_context_destroy(ctx);
    return rc;
}
