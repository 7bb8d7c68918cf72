/* cmd_train.c - csnn train: datasets, model, trainer settings, then
 * csnn_trainer_fit with progress, Ctrl-C, the CSV log and plots. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tool.h"

#define AUG_COUNT 6

/* --augment LIST: the six augmentation settings; options not named are off. */
static const csnn_train_param aug_params[AUG_COUNT] = {
    CSNN_TRAIN_AUG_HFLIP,    CSNN_TRAIN_AUG_VFLIP,      CSNN_TRAIN_AUG_ROTATE,
    CSNN_TRAIN_AUG_CROP_PAD, CSNN_TRAIN_AUG_BRIGHTNESS, CSNN_TRAIN_AUG_CONTRAST,
};

static int parse_augment(const command *cmd, const char *list, double aug[AUG_COUNT])
{
    for (int i = 0; i < AUG_COUNT; i++)
        aug[i] = 0;
    if (strcmp(list, "none") == 0) return ARGS_CONTINUE;
    char *copy = strdup(list);
    if (!copy) return runtime_error(cmd->name, "out of memory");
    int rc = ARGS_CONTINUE;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (eq) *eq = '\0';
        const char *value = eq ? eq + 1 : NULL;
        /* name, default value when none is given (0: a value is required),
         * and the settings it sets */
        static const struct {
            const char *name;
            double dflt;
            int a, b;
        } items[] = {
            {"hflip", 0.5, 0, -1}, {"vflip", 0.5, 1, -1},    {"rot", 0, 2, -1},
            {"crop", 0, 3, -1},    {"brightness", 0, 4, -1}, {"contrast", 0, 5, -1},
            {"jitter", 0, 4, 5},
        };
        int found = -1;
        for (size_t k = 0; k < sizeof items / sizeof items[0]; k++)
            if (strcmp(items[k].name, item) == 0) found = (int)k;
        if (found < 0) {
            rc =
                usage_error(cmd,
                            "--augment: unknown item '%s' (expected hflip[=P], vflip[=P], rot=DEG, "
                            "crop=PAD, jitter=X, brightness=X, contrast=X, or none)",
                            item);
            break;
        }
        double v = items[found].dflt;
        if (value) {
            char *end;
            v = strtod(value, &end);
            if (end == value || *end) {
                rc = usage_error(cmd, "--augment: %s: '%s' is not a number", item, value);
                break;
            }
        } else if (items[found].dflt == 0) {
            rc = usage_error(cmd, "--augment: %s needs a value (%s=X)", item, item);
            break;
        }
        aug[items[found].a] = v;
        if (items[found].b >= 0) aug[items[found].b] = v;
    }
    free(copy);
    return rc;
}

/* One training setting given on the command line. */
typedef struct setting {
    const char *option;
    csnn_train_param param;
    double value;
} setting;

static int check_setting(const command *cmd, const setting *s)
{
    double lo, hi;
    csnn_status st = csnn_train_param_bounds(s->param, &lo, &hi);
    if (st != CSNN_OK) return lib_error(cmd->name, st, "--%s", s->option);
    if (s->value < lo || s->value > hi)
        return usage_error(cmd, "--%s: %g is outside [%g, %g]", s->option, s->value, lo, hi);
    return ARGS_CONTINUE;
}

/* The last epoch that saved the best model, or -1. */
static long best_epoch(const csnn_epoch_metrics *h, size_t n)
{
    long best = -1;
    for (size_t i = 0; i < n; i++)
        if (h[i].improved) best = (long)i;
    return best;
}

static bool file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

int cmd_train(int argc, char **argv)
{
    const char *data = NULL, *out = NULL, *val_data = NULL, *preset = NULL, *spec = NULL;
    const char *augment = NULL, *device = NULL, *resume = NULL, *log = NULL, *plots = NULL;
    const char *usage = NULL, *val_usage = NULL;
    double val_split = 0.1, lr = 0, label_smoothing = 0, max_minutes = 0;
    long long epochs = 0, batch = 0, time_steps = 0, patience = 0, threads = 0;
    uint64_t seed = 0;
    bool skip_bad = false, quiet = false;
    opt opts[] = {
        OPT_S_REQ("data", &data, "PATH", "training data: an image-folder root or a FER2013 CSV"),
        OPT_S_REQ("out", &out, "MODEL", "where the best model is saved (MODEL.last: checkpoint)"),
        OPT_D_IN("val-split", &val_split, "F",
                 "stratified share of --data held out for validation (default 0.1; 0: none)", 0,
                 0.99),
        OPT_S("val-data", &val_data, "PATH", "a separate validation set (then no split)"),
        OPT_S("usage", &usage, "NAME",
              "FER2013 CSV only: rows of --data whose Usage is NAME (e.g. Training)"),
        OPT_S("val-usage", &val_usage, "NAME",
              "FER2013 CSV only: rows of --val-data whose Usage is NAME (e.g. PublicTest)"),
        OPT_S("preset", &preset, "NAME", "a built-in model (default fer-csnn)"),
        OPT_S("spec", &spec, "FILE", "a model spec file instead of a preset"),
        OPT_I_IN("time-steps", &time_steps, "T", "time steps T (default: the spec's steps line)", 1,
                 1e6),
        OPT_I("epochs", &epochs, "N", "at most N epochs (default 100)"),
        OPT_I("batch", &batch, "N", "batch size (default 16)"),
        OPT_D("lr", &lr, "X", "Adam learning rate (default 1e-3)"),
        OPT_I("patience", &patience, "N",
              "stop after N epochs without a better validation accuracy (default 10; 0: off)"),
        OPT_D("label-smoothing", &label_smoothing, "X", "label smoothing (default 0.1)"),
        OPT_S("augment", &augment, "LIST",
              "augmentations (default hflip,rot=10,crop=4; see below)"),
        OPT_U("seed", &seed, "N",
              "seed of initialisation, split, shuffling, augmentation, dropout (default 0)"),
        OPT_I_IN("threads", &threads, "N", "host threads (default: CSNN_NUM_THREADS or all cores)",
                 0, 65536),
        OPT_S("device", &device, "DEV", "cpu (default), cuda, cuda:N or auto"),
        OPT_D("max-minutes", &max_minutes, "M",
              "stop at the first batch boundary after M minutes (default: no limit)"),
        OPT_S("resume", &resume, "CHECKPOINT",
              "continue a run from its checkpoint (normally MODEL.last)"),
        OPT_S("log", &log, "FILE.csv", "per-epoch metrics, rewritten after every epoch"),
        OPT_S("plots", &plots, "DIR", "loss.png, accuracy.png and confusion.png (needs cairo)"),
        OPT_F("skip-bad", &skip_bad, "skip unreadable images or rows (and count them)"),
        OPT_F("quiet", &quiet, "no model summary and no progress output"),
    };
    command cmd = {
        .name = "train",
        .synopsis = "--data PATH --out MODEL [options]",
        .about =
            "Trains a model (the fer-csnn preset unless --preset or --spec says otherwise) with\n"
            "Adam on MSE of the output firing rates against smoothed one-hot targets, keeps\n"
            "the model with the best validation accuracy in MODEL and a checkpoint of the\n"
            "last epoch in MODEL.last.",
        .notes =
            "--augment LIST is comma-separated: hflip (probability 0.5) or hflip=P, vflip or\n"
            "vflip=P, rot=DEG (up to +-DEG degrees), crop=PAD (random crop after padding),\n"
            "jitter=X (brightness and contrast factors in [1-X, 1+X]), brightness=X,\n"
            "contrast=X; or none. Augmentations not named in LIST are off.\n"
            "\n"
            "--time-steps T edits the spec text given to the library: its 'steps N' statement\n"
            "becomes 'steps T' (or one is added after the 'input' statement).\n"
            "\n"
            "--resume MODEL.last continues an interrupted run with the checkpoint's model and\n"
            "settings (--epochs, --lr, ... are taken from the checkpoint); pass the same --data\n"
            "and --val-split. Without --resume an existing MODEL is replaced at the first\n"
            "improvement.\n"
            "\n"
            "Ctrl-C stops at the next batch (exit status 130); the files keep the last finished\n"
            "epoch. A second Ctrl-C ends the program at once.",
        .opts = opts,
        .n_opts = sizeof opts / sizeof opts[0],
    };
    int rc = args_parse(&cmd, argc, argv);
    if (rc != ARGS_CONTINUE) return rc;
    if ((rc = args_exclusive(&cmd, false, (const char *const[]){"preset", "spec", NULL})) !=
        ARGS_CONTINUE)
        return rc;
    if ((rc = args_exclusive(&cmd, false, (const char *const[]){"val-split", "val-data", NULL})) !=
        ARGS_CONTINUE)
        return rc;
    if (val_usage && !val_data) return usage_error(&cmd, "--val-usage needs --val-data");
    if (resume && (preset || spec || time_steps))
        return usage_error(&cmd, "--resume continues with the checkpoint's model: --preset, "
                                 "--spec and --time-steps cannot be combined with it");
    if (plots && !plot_available())
        return usage_error(&cmd, "--plots is not available: this csnn was built without cairo");
    if (!preset && !spec) preset = "fer-csnn";

    /* the training settings given, checked against the library's bounds */
    setting set[16];
    size_t n_set = 0;
    if (args_seen(&cmd, "epochs"))
        set[n_set++] = (setting){"epochs", CSNN_TRAIN_EPOCHS, (double)epochs};
    if (args_seen(&cmd, "batch"))
        set[n_set++] = (setting){"batch", CSNN_TRAIN_BATCH_SIZE, (double)batch};
    if (args_seen(&cmd, "lr")) set[n_set++] = (setting){"lr", CSNN_TRAIN_LEARNING_RATE, lr};
    if (args_seen(&cmd, "patience"))
        set[n_set++] = (setting){"patience", CSNN_TRAIN_PATIENCE, (double)patience};
    if (args_seen(&cmd, "label-smoothing"))
        set[n_set++] = (setting){"label-smoothing", CSNN_TRAIN_LABEL_SMOOTHING, label_smoothing};
    if (args_seen(&cmd, "seed")) set[n_set++] = (setting){"seed", CSNN_TRAIN_SEED, (double)seed};
    if (augment) {
        double aug[AUG_COUNT];
        if ((rc = parse_augment(&cmd, augment, aug)) != ARGS_CONTINUE) return rc;
        for (int i = 0; i < AUG_COUNT; i++)
            set[n_set++] = (setting){"augment", aug_params[i], aug[i]};
    }
    const size_t n_run_settings = n_set; /* the ones a resumed run ignores */
    if (args_seen(&cmd, "max-minutes")) {
        set[n_set++] = (setting){"max-minutes", CSNN_TRAIN_MAX_SECONDS, max_minutes * 60.0};
        if (max_minutes <= 0) return usage_error(&cmd, "--max-minutes must be above 0");
    }
    for (size_t i = 0; i < n_set; i++)
        if ((rc = check_setting(&cmd, &set[i])) != ARGS_CONTINUE) return rc;

    const char *name = cmd.name;
    csnn_context *ctx = NULL;
    csnn_model *model = NULL, *best = NULL;
    csnn_trainer *trainer = NULL;
    csnn_dataset *all = NULL, *train = NULL, *val = NULL;
    csnn_metrics *metrics = NULL;
    csnn_epoch_metrics *hist = NULL;
    size_t n_hist = 0;
    char *last = NULL;
    csnn_status st;

    if ((rc = tool_context(name, device, threads, &ctx)) != EXIT_OK) goto done;
    if (resume) {
        st = csnn_model_load(ctx, resume, &model);
        if (st != CSNN_OK) {
            rc = lib_error(name, st, "cannot load the checkpoint '%s'", resume);
            goto done;
        }
    } else if ((rc = tool_model(name, ctx, preset, spec, NULL, time_steps, seed, &model)) !=
               EXIT_OK) {
        goto done;
    }
    if ((st = csnn_trainer_create(model, &trainer)) != CSNN_OK) {
        rc = lib_error(name, st, "trainer");
        goto done;
    }
    size_t first = 0;
    if (resume) {
        /* read the run's settings now: its seed gives the same validation split */
        if ((st = csnn_trainer_load_checkpoint(trainer, resume)) != CSNN_OK ||
            (st = csnn_trainer_history(trainer, &first)) != CSNN_OK) {
            rc = lib_error(name, st, "cannot resume from '%s'", resume);
            goto done;
        }
        double v;
        if ((st = csnn_trainer_get_param(trainer, CSNN_TRAIN_SEED, &v)) != CSNN_OK) {
            rc = lib_error(name, st, "trainer");
            goto done;
        }
        seed = (uint64_t)v;
        if (n_run_settings > 0) {
            fprintf(stderr, "csnn train: note: a resumed run keeps its checkpoint's settings; "
                            "ignoring");
            for (size_t i = 0; i < n_run_settings; i++)
                if (i == 0 || strcmp(set[i].option, set[i - 1].option) != 0)
                    fprintf(stderr, " --%s", set[i].option);
            fputc('\n', stderr);
        }
    }
    for (size_t i = resume ? n_run_settings : 0; i < n_set; i++) {
        if ((st = csnn_trainer_set_param(trainer, set[i].param, set[i].value)) != CSNN_OK) {
            rc = lib_error(name, st, "--%s", set[i].option);
            goto done;
        }
    }
    double max_epochs;
    if ((st = csnn_trainer_get_param(trainer, CSNN_TRAIN_EPOCHS, &max_epochs)) != CSNN_OK) {
        rc = lib_error(name, st, "trainer");
        goto done;
    }

    /* data */
    if ((rc = tool_load_dataset(name, ctx, model, data, skip_bad, usage, &all)) != EXIT_OK)
        goto done;
    if (val_data) {
        if ((rc = tool_load_dataset(name, ctx, model, val_data, skip_bad, val_usage, &val)) !=
            EXIT_OK)
            goto done;
        train = all;
        all = NULL;
    } else if (val_split > 0) {
        if ((st = csnn_dataset_split(all, val_split, seed, &train, &val)) != CSNN_OK) {
            rc = lib_error(name, st, "cannot split '%s'", data);
            goto done;
        }
    } else {
        train = all;
        all = NULL;
    }
    csnn_dataset_info ti, vi;
    csnn_dataset_info_init(&ti);
    csnn_dataset_info_init(&vi);
    if ((st = csnn_dataset_get_info(train, &ti)) != CSNN_OK ||
        (val && (st = csnn_dataset_get_info(val, &vi)) != CSNN_OK)) {
        rc = lib_error(name, st, "dataset");
        goto done;
    }
    if (val && vi.num_samples == 0) {
        csnn_dataset_destroy(val);
        val = NULL;
    }

    if (!quiet) {
        printf("device: %s (%s), %d threads\n", csnn_context_device(ctx),
               csnn_context_device_description(ctx), csnn_context_threads(ctx));
        printf("data: %s: %lld training images in %d classes", data, (long long)ti.num_samples,
               ti.num_classes);
        if (val)
            printf(", %lld validation images%s%s\n", (long long)vi.num_samples,
                   val_data ? " from " : " (stratified split)", val_data ? val_data : "");
        else
            printf(", no validation set\n");
        if (!resume && (rc = tool_print_summary(name, model, 1, stdout)) != EXIT_OK) goto done;
        if (resume)
            printf("resuming %s after epoch %zu of at most %.0f\n", resume, first, max_epochs);
        fflush(stdout);
    }
    size_t last_len = strlen(out) + 6;
    if (!(last = malloc(last_len))) {
        rc = runtime_error(name, "out of memory");
        goto done;
    }
    snprintf(last, last_len, "%s.last", out);
    if (!resume && file_exists(last))
        fprintf(stderr,
                "csnn train: note: %s exists; this run starts afresh and replaces it after its "
                "first epoch (--resume %s would continue that run)\n",
                last, last);

    /* training */
    progress_state ps = {
        .cmd = name,
        .trainer = trainer,
        .log_path = log,
        .tty = isatty(STDERR_FILENO) != 0,
        .quiet = quiet,
    };
    csnn_fit_options fo;
    csnn_fit_options_init(&fo);
    fo.output = out;
    fo.resume = resume;
    fo.progress = progress_callback;
    fo.progress_user_data = &ps;
    fo.progress_every = 1;
    progress_install_sigint();
    st = csnn_trainer_fit(trainer, train, val, &fo);
    progress_restore_sigint();
    progress_finish(&ps);
    if (ps.log_failed) {
        rc = EXIT_FAILURE_RUNTIME;
        goto done;
    }
    if (st != CSNN_OK && st != CSNN_STOPPED) {
        rc = lib_error(name, st, "training failed");
        goto done;
    }
    if (log && (rc = history_write_csv(name, trainer, log)) != EXIT_OK) goto done;
    if ((rc = history_read(name, trainer, &hist, &n_hist)) != EXIT_OK) goto done;
    if (plots && n_hist > 0) {
        if ((rc = tool_mkdirs(name, plots)) != EXIT_OK) goto done;
        if ((rc = plot_training_curves(name, plots, hist, n_hist)) != EXIT_OK) goto done;
    }

    long b = best_epoch(hist, n_hist);
    if (st == CSNN_STOPPED) {
        if (n_hist > first)
            printf("interrupted after epoch %zu: %s holds the best model, %s the checkpoint; "
                   "continue with --resume %s\n",
                   n_hist, out, last, last);
        else if (resume)
            printf("interrupted before an epoch finished: %s is unchanged\n", resume);
        else
            printf("interrupted before the first epoch finished: nothing was saved\n");
        rc = EXIT_INTERRUPTED;
        goto done;
    }
    int32_t reason = CSNN_STOP_EPOCHS;
    csnn_trainer_stop_reason(trainer, &reason);
    const char *why = reason == CSNN_STOP_EARLY ? "early stopping"
                      : reason == CSNN_STOP_TIME ? "the time limit"
                                                 : "the epoch limit";
    if (n_hist == first && reason == CSNN_STOP_TIME) {
        printf("no epoch finished within the time limit%s\n", resume ? "" : ": nothing was saved");
        rc = EXIT_OK;
        goto done;
    }
    if (n_hist == first)
        printf("the run in %s had already ended (%s): no epoch to train\n", resume, why);
    printf("finished after %zu epoch%s (%s)\n", n_hist, n_hist == 1 ? "" : "s", why);
    if (!val) {
        printf("no validation set: %s holds the model of the last epoch\n", out);
        printf("evaluate it with: csnn eval --model %s --data TEST_DATA\n", out);
        if (plots) printf("plots: %s/loss.png, accuracy.png\n", plots);
        rc = EXIT_OK;
        goto done;
    }
    printf("best epoch: %ld (validation accuracy %.2f%%), saved to %s\n", b + 1,
           100.0 * hist[b].val_accuracy, out);
    fflush(stdout);

    /* the best model on the validation set */
    if ((st = csnn_model_load(ctx, out, &best)) != CSNN_OK) {
        rc = lib_error(name, st, "cannot load the best model '%s'", out);
        goto done;
    }
    if ((st = csnn_model_evaluate(best, val, &metrics)) != CSNN_OK) {
        rc = lib_error(name, st, "evaluation of '%s'", out);
        goto done;
    }
    printf("\nthe best model on the validation set:\n");
    if ((rc = report_text(name, metrics, stdout)) != EXIT_OK) goto done;
    if (plots && (rc = report_confusion_plot(name, metrics, plots)) != EXIT_OK) goto done;
    if (plots) printf("\nplots: %s/loss.png, accuracy.png, confusion.png\n", plots);
    rc = EXIT_OK;

done:
    fflush(stdout);
    free(hist);
    free(last);
    csnn_metrics_destroy(metrics);
    csnn_model_destroy(best);
    csnn_trainer_destroy(trainer);
    csnn_model_destroy(model);
    csnn_dataset_destroy(all);
    csnn_dataset_destroy(train);
    csnn_dataset_destroy(val);
    csnn_context_destroy(ctx);
    return rc;
}
