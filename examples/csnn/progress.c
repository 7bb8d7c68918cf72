/* progress.c - training progress on stderr (an updating line on a
 * terminal, plain lines otherwise), Ctrl-C handling and the CSV log. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tool.h"

/* ------------------------------------------------------------------------ */
/* Ctrl-C                                                                    */
/* ------------------------------------------------------------------------ */

static volatile sig_atomic_t interrupted;
static struct sigaction old_sigint;

static void on_sigint(int sig)
{
    (void)sig;
    static const char msg[] =
        "\ncsnn: interrupted: stopping at the next batch (Ctrl-C again to abort)\n";
    interrupted = 1;
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
}

void progress_install_sigint(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C gets the default action */
    sigaction(SIGINT, &sa, &old_sigint);
}

void progress_restore_sigint(void)
{
    sigaction(SIGINT, &old_sigint, NULL);
}

bool progress_interrupted(void)
{
    return interrupted != 0;
}

/* ------------------------------------------------------------------------ */
/* The CSV log                                                               */
/* ------------------------------------------------------------------------ */

int history_read(const char *cmd, const csnn_trainer *trainer, csnn_epoch_metrics **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t count = 0;
    csnn_status st = csnn_trainer_history(trainer, &count);
    if (st != CSNN_OK) return lib_error(cmd, st, "training history");
    csnn_epoch_metrics *h = calloc(count ? count : 1, sizeof *h);
    if (!h) return runtime_error(cmd, "out of memory");
    for (size_t i = 0; i < count; i++) {
        csnn_epoch_metrics_init(&h[i]);
        st = csnn_trainer_epoch(trainer, i, &h[i]);
        if (st != CSNN_OK) {
            free(h);
            return lib_error(cmd, st, "training history");
        }
    }
    *out = h;
    *n = count;
    return EXIT_OK;
}

static void csv_value(FILE *f, double v)
{
    if (v >= 0) fprintf(f, "%.9g", v); /* -1: no validation set: an empty field */
}

int history_write_csv(const char *cmd, const csnn_trainer *trainer, const char *path)
{
    csnn_epoch_metrics *h;
    size_t n;
    int rc = history_read(cmd, trainer, &h, &n);
    if (rc != EXIT_OK) return rc;
    size_t len = strlen(path) + 8;
    char *tmp = malloc(len);
    if (!tmp) {
        free(h);
        return runtime_error(cmd, "out of memory");
    }
    snprintf(tmp, len, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        rc = runtime_error(cmd, "cannot write the log '%s': %s", tmp, strerror(errno));
        goto done;
    }
    fputs("epoch,train_loss,train_accuracy,val_loss,val_accuracy,learning_rate,seconds,improved\n",
          f);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%d,%.9g,%.9g,", h[i].epoch + 1, h[i].train_loss, h[i].train_accuracy);
        csv_value(f, h[i].val_loss);
        fputc(',', f);
        csv_value(f, h[i].val_accuracy);
        fprintf(f, ",%.9g,%.3f,%d\n", h[i].learning_rate, h[i].seconds, h[i].improved ? 1 : 0);
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        rc = runtime_error(cmd, "cannot write the log '%s': %s", path, strerror(errno));
        remove(tmp);
    }
done:
    free(tmp);
    free(h);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Progress output                                                           */
/* ------------------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_finish(progress_state *ps)
{
    if (ps->line_open) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        ps->line_open = false;
    }
}

static void batch_line(progress_state *ps, const csnn_progress *p)
{
    const double frac = p->batches > 0 ? (double)p->batch / (double)p->batches : 0;
    char eta[32];
    format_duration(eta, sizeof eta, p->eta_s);
    if (ps->tty) {
        double t = now_s();
        if (p->batch != p->batches && t - ps->last_draw < 0.1) return; /* ~10 redraws/s */
        ps->last_draw = t;
        char bar[21];
        int fill = (int)(frac * 20.0);
        for (int i = 0; i < 20; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[20] = '\0';
        fprintf(stderr, "\repoch %d/%d [%s] %3d%% %.4f loss %.1f%% acc %.0f samples/s ETA %s\033[K",
                p->epoch + 1, p->epochs, bar, (int)(frac * 100.0), p->loss, 100.0 * p->accuracy,
                p->samples_per_s, eta);
        fflush(stderr);
        ps->line_open = true;
        return;
    }
    /* plain output: about every tenth of an epoch, not at its end (the
     * epoch line follows) */
    int64_t tenth = p->batches > 0 ? p->batch * 10 / p->batches : 0;
    if (tenth == ps->last_tenth || p->batch == p->batches) return;
    ps->last_tenth = tenth;
    fprintf(stderr,
            "epoch %d/%d %3d%% (batch %lld/%lld) %.4f loss %.1f%% acc %.0f samples/s ETA %s\n",
            p->epoch + 1, p->epochs, (int)(frac * 100.0), (long long)p->batch,
            (long long)p->batches, p->loss, 100.0 * p->accuracy, p->samples_per_s, eta);
    fflush(stderr);
}

static void epoch_line(progress_state *ps, const csnn_progress *p)
{
    const csnn_epoch_metrics *m = p->metrics;
    progress_finish(ps);
    fprintf(stderr, "epoch %d/%d: %.4f loss %.2f%% acc", m->epoch + 1, p->epochs, m->train_loss,
            100.0 * m->train_accuracy);
    if (m->val_accuracy >= 0)
        fprintf(stderr, " | val %.4f loss %.2f%% acc", m->val_loss, 100.0 * m->val_accuracy);
    fprintf(stderr, " | lr %.3g | %.1f s%s\n", m->learning_rate, m->seconds,
            m->improved ? " | saved" : "");
    fflush(stderr);
    ps->last_tenth = 0;
}

int progress_callback(void *user_data, const csnn_progress *p)
{
    progress_state *ps = user_data;
    if (p->phase == CSNN_PHASE_EPOCH_END && p->metrics) {
        if (!ps->quiet) epoch_line(ps, p);
        if (ps->log_path && history_write_csv(ps->cmd, ps->trainer, ps->log_path) != EXIT_OK) {
            ps->log_failed = true;
            return 1;
        }
    } else if (p->phase == CSNN_PHASE_BATCH && !ps->quiet) {
        batch_line(ps, p);
    }
    return interrupted ? 1 : 0;
}
