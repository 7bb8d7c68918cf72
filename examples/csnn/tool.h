/*
 * tool.h - shared declarations of the csnn command-line tool.
 *
 * The tool parses arguments and calls libcsnn through its public header
 * only; everything the library can do is left to the library.
 */
#ifndef CSNN_TOOL_H
#define CSNN_TOOL_H

#include <csnn/csnn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#if defined(__GNUC__)
#define TOOL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define TOOL_PRINTF(f, a)
#endif

/* Exit statuses. */
enum {
    EXIT_OK = 0,
    EXIT_FAILURE_RUNTIME = 1, /* a library call or a file operation failed */
    EXIT_USAGE = 2,           /* bad command line */
    EXIT_INTERRUPTED = 130    /* stopped by Ctrl-C (128 + SIGINT) */
};

/* ------------------------------------------------------------------------ */
/* Subcommands (one function each, run by main.c's table)                    */
/* ------------------------------------------------------------------------ */

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_summary(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_profile(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* ------------------------------------------------------------------------ */
/* Argument parsing (args.c): one table-driven parser for every subcommand   */
/* ------------------------------------------------------------------------ */

typedef enum opt_kind {
    OPT_FLAG,   /* bool *            --name */
    OPT_STRING, /* const char **     --name VALUE */
    OPT_INT,    /* long long *       --name N (integer, optionally ranged) */
    OPT_DOUBLE, /* double *          --name X (finite, optionally ranged) */
    OPT_U64     /* uint64_t *        --name N (unsigned 64-bit) */
} opt_kind;

typedef struct opt {
    const char *name; /* without the leading "--" */
    opt_kind kind;
    void *dest;
    const char *metavar; /* NULL for flags */
    const char *help;    /* one line; the default is part of it */
    bool required;
    bool ranged; /* OPT_INT / OPT_DOUBLE: check lo <= value <= hi */
    double lo, hi;
    bool seen; /* set by args_parse */
} opt;

typedef struct command {
    const char *name;     /* "train" */
    const char *synopsis; /* "--data PATH --out MODEL [options]" */
    const char *about;    /* one paragraph printed under the usage line */
    const char *notes;    /* printed after the options; may be NULL */
    opt *opts;
    size_t n_opts;
    int min_args, max_args; /* positional arguments; max_args < 0: unlimited */
    char **args;            /* set by args_parse: the positional arguments */
    int n_args;
} command;

/* Table entries: OPT_F flag, OPT_S string, OPT_I integer, OPT_D number,
 * OPT_U unsigned 64-bit; _REQ: required; _IN: ranged [lo, hi]. */
#define OPT_F(n, d, h)                                                                             \
    {                                                                                              \
        .name = (n), .kind = OPT_FLAG, .dest = (d), .help = (h)                                    \
    }
#define OPT_S(n, d, m, h)                                                                          \
    {                                                                                              \
        .name = (n), .kind = OPT_STRING, .dest = (d), .metavar = (m), .help = (h)                  \
    }
#define OPT_S_REQ(n, d, m, h)                                                                      \
    {                                                                                              \
        .name = (n), .kind = OPT_STRING, .dest = (d), .metavar = (m), .help = (h),                 \
        .required = true                                                                           \
    }
#define OPT_I(n, d, m, h)                                                                          \
    {                                                                                              \
        .name = (n), .kind = OPT_INT, .dest = (d), .metavar = (m), .help = (h)                     \
    }
#define OPT_I_IN(n, d, m, h, l, u)                                                                 \
    {                                                                                              \
        .name = (n), .kind = OPT_INT, .dest = (d), .metavar = (m), .help = (h), .ranged = true,    \
        .lo = (l), .hi = (u)                                                                       \
    }
#define OPT_D(n, d, m, h)                                                                          \
    {                                                                                              \
        .name = (n), .kind = OPT_DOUBLE, .dest = (d), .metavar = (m), .help = (h)                  \
    }
#define OPT_D_IN(n, d, m, h, l, u)                                                                 \
    {                                                                                              \
        .name = (n), .kind = OPT_DOUBLE, .dest = (d), .metavar = (m), .help = (h), .ranged = true, \
        .lo = (l), .hi = (u)                                                                       \
    }
#define OPT_U(n, d, m, h)                                                                          \
    {                                                                                              \
        .name = (n), .kind = OPT_U64, .dest = (d), .metavar = (m), .help = (h)                     \
    }

#define ARGS_CONTINUE (-1)

/* Parses argv (argv[0] is the subcommand's name). Returns ARGS_CONTINUE
 * when the command should run, EXIT_OK after printing --help, or
 * EXIT_USAGE after printing a usage error. */
int args_parse(command *cmd, int argc, char **argv);

/* The option named `name` of cmd (it must exist). */
opt *args_find(command *cmd, const char *name);
bool args_seen(command *cmd, const char *name);

/* Prints "csnn <cmd>: <message>" and a hint to stderr; returns EXIT_USAGE. */
int usage_error(const command *cmd, const char *fmt, ...) TOOL_PRINTF(2, 3);

/* Requires at most one (required: exactly one) of the named options;
 * returns ARGS_CONTINUE or a usage error. names ends with NULL. */
int args_exclusive(command *cmd, bool required, const char *const *names);

/* ------------------------------------------------------------------------ */
/* Shared runtime helpers (common.c)                                         */
/* ------------------------------------------------------------------------ */

/* Prints "csnn <cmd>: <what>: <library message> (<status name>)" to
 * stderr; returns EXIT_FAILURE_RUNTIME. */
int lib_error(const char *cmd, csnn_status st, const char *fmt, ...) TOOL_PRINTF(3, 4);

/* Prints "csnn <cmd>: <message>" to stderr; returns EXIT_FAILURE_RUNTIME. */
int runtime_error(const char *cmd, const char *fmt, ...) TOOL_PRINTF(2, 3);

/* Creates the context for --device / --threads (device NULL: "cpu"),
 * logging the library's warnings to stderr. */
int tool_context(const char *cmd, const char *device, long long threads, csnn_context **out);

/* Loads an image folder or FER2013 CSV at the model's input size; usage
 * (may be NULL) filters CSV rows; prints how many bad files were skipped
 * under skip_bad. */
int tool_load_dataset(const char *cmd, csnn_context *ctx, const csnn_model *model, const char *path,
                      bool skip_bad, const char *usage, csnn_dataset **out);

/* Reads a whole text file into a malloc'd string. */
int tool_read_text(const char *cmd, const char *path, char **out);

/* Creates a directory and its parents (mkdir -p). */
int tool_mkdirs(const char *cmd, const char *path);

/* Writes s as a JSON string (quoted, escaped). */
void json_string(FILE *f, const char *s);
/* Writes a JSON number, or null when v is not finite. */
void json_number(FILE *f, double v);

/* "1:23:45" or "12:34" */
void format_duration(char *buf, size_t cap, double seconds);

/* ------------------------------------------------------------------------ */
/* Models from presets, spec files and saved files (model_source.c)          */
/* ------------------------------------------------------------------------ */

/* Returns a malloc'd copy of `spec` whose `steps` statement says `steps`
 * (replaced where present, else inserted at the top), or NULL when out of
 * memory. */
char *spec_with_steps(const char *spec, long long steps);

/* Builds a model from exactly one of preset / spec_file / model_file (the
 * others NULL); time_steps > 0 overrides the spec's `steps` (not allowed
 * with model_file). */
int tool_model(const char *cmd, csnn_context *ctx, const char *preset, const char *spec_file,
               const char *model_file, long long time_steps, uint64_t seed, csnn_model **out);

/* Prints the layer table of `model` for a batch of `batch` images. */
int tool_print_summary(const char *cmd, const csnn_model *model, int batch, FILE *f);

/* ------------------------------------------------------------------------ */
/* Evaluation reports (report.c), shared by eval and train                   */
/* ------------------------------------------------------------------------ */

/* Accuracy, loss, confusion matrix, per-class precision/recall/F1 and the
 * firing rate of every spiking layer, as text. */
int report_text(const char *cmd, const csnn_metrics *m, FILE *f);
/* The same as one JSON object (one line). */
int report_json(const char *cmd, const csnn_metrics *m, const char *model_path,
                const char *data_path, FILE *f);
/* confusion.png in dir (plots must be available). */
int report_confusion_plot(const char *cmd, const csnn_metrics *m, const char *dir);

/* ------------------------------------------------------------------------ */
/* Training progress, Ctrl-C and the CSV log (progress.c)                     */
/* ------------------------------------------------------------------------ */

typedef struct progress_state {
    const char *cmd;
    const csnn_trainer *trainer;
    const char *log_path; /* CSV rewritten after every epoch; may be NULL */
    bool tty;             /* an updating line on stderr */
    bool quiet;           /* no progress output (the CSV is still written) */
    bool log_failed;      /* writing the CSV failed (training was stopped) */
    double last_draw;     /* monotonic seconds of the last redraw */
    int64_t last_tenth;   /* last tenth of an epoch reported (plain output) */
    bool line_open;       /* the TTY line needs a newline before other output */
} progress_state;

/* First Ctrl-C: the progress callback asks the library to stop at the next
 * batch; second Ctrl-C: the default action (the process ends). */
void progress_install_sigint(void);
void progress_restore_sigint(void);
bool progress_interrupted(void);

/* The csnn_progress_fn of csnn_trainer_fit; user_data is a progress_state. */
int progress_callback(void *user_data, const csnn_progress *p);

/* Ends an open TTY line. */
void progress_finish(progress_state *ps);

/* Rewrites path (atomically) with the trainer's whole history as CSV:
 * epoch,train_loss,train_accuracy,val_loss,val_accuracy,learning_rate,seconds,improved */
int history_write_csv(const char *cmd, const csnn_trainer *trainer, const char *path);

/* The trainer's history as an array (malloc'd; *n may be 0). */
int history_read(const char *cmd, const csnn_trainer *trainer, csnn_epoch_metrics **out, size_t *n);

/* ------------------------------------------------------------------------ */
/* Plots (plot.c; cairo, an optional build feature)                          */
/* ------------------------------------------------------------------------ */

bool plot_available(void);

/* loss.png and accuracy.png in dir: train and validation per epoch. */
int plot_training_curves(const char *cmd, const char *dir, const csnn_epoch_metrics *h, size_t n);

/* A heat map with counts, colour normalised per row (true class). */
int plot_confusion(const char *cmd, const char *path, const char *const *names, int k,
                   const int64_t *counts, double accuracy);

#endif /* CSNN_TOOL_H */
