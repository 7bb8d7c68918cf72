/* report.c - evaluation reports (text, JSON, confusion plot) from the
 * library's csnn_metrics; shared by `csnn eval` and the end of `csnn train`. */
#include <stdlib.h>
#include <string.h>

#include "tool.h"

/* What a report needs, gathered once from the metrics. */
typedef struct report {
    double loss, accuracy;
    int64_t n, correct;
    int32_t k;
    int64_t *confusion; /* [k, k] */
    csnn_class_metrics *cls;
    const char **names;
} report;

static void report_free(report *r)
{
    free(r->confusion);
    free(r->cls);
    free(r->names);
}

static int report_get(const char *cmd, const csnn_metrics *m, report *r)
{
    memset(r, 0, sizeof *r);
    csnn_status st = csnn_metrics_overall(m, &r->loss, &r->accuracy, &r->n, &r->k);
    if (st != CSNN_OK) return lib_error(cmd, st, "metrics");
    size_t k = (size_t)r->k;
    r->confusion = calloc((k * k) > 0 ? k * k : 1, sizeof *r->confusion);
    r->cls = calloc(k ? k : 1, sizeof *r->cls);
    r->names = calloc(k ? k : 1, sizeof *r->names);
    if (!r->confusion || !r->cls || !r->names) {
        report_free(r);
        return runtime_error(cmd, "out of memory");
    }
    st = csnn_metrics_confusion(m, r->confusion, k * k);
    for (int32_t i = 0; st == CSNN_OK && i < r->k; i++) {
        csnn_class_metrics_init(&r->cls[i]);
        st = csnn_metrics_class(m, i, &r->cls[i]);
        r->names[i] = r->cls[i].name;
        r->correct += r->confusion[(size_t)i * k + (size_t)i];
    }
    if (st != CSNN_OK) {
        report_free(r);
        return lib_error(cmd, st, "metrics");
    }
    return EXIT_OK;
}

int report_text(const char *cmd, const csnn_metrics *m, FILE *f)
{
    report r;
    int rc = report_get(cmd, m, &r);
    if (rc != EXIT_OK) return rc;
    const size_t k = (size_t)r.k;

    fprintf(f, "accuracy: %.2f%% (%lld of %lld)\n", 100.0 * r.accuracy, (long long)r.correct,
            (long long)r.n);
    fprintf(f, "loss:     %.6f\n", r.loss);

    /* the confusion matrix: columns as wide as the widest name or count */
    int w = 5, wn = 10;
    int64_t max_count = 0;
    for (size_t i = 0; i < k * k; i++)
        if (r.confusion[i] > max_count) max_count = r.confusion[i];
    char num[32];
    int digits = snprintf(num, sizeof num, "%lld", (long long)max_count);
    for (size_t i = 0; i < k; i++) {
        int len = (int)strlen(r.names[i]);
        if (len > w) w = len;
        if (len > wn) wn = len;
    }
    if (w > 10) w = 10;
    if (digits > w) w = digits;
    if (wn > 16) wn = 16;
    fprintf(f, "\nconfusion matrix (rows: true class, columns: predicted class)\n%-*s", wn, "");
    for (size_t j = 0; j < k; j++)
        fprintf(f, " %*.*s", w, w, r.names[j]);
    fputc('\n', f);
    for (size_t i = 0; i < k; i++) {
        fprintf(f, "%-*.*s", wn, wn, r.names[i]);
        for (size_t j = 0; j < k; j++)
            fprintf(f, " %*lld", w, (long long)r.confusion[i * k + j]);
        fputc('\n', f);
    }

    fprintf(f, "\n%-*s %9s %9s %9s %9s\n", wn, "class", "precision", "recall", "f1", "support");
    double sp = 0, sr = 0, sf = 0;
    for (size_t i = 0; i < k; i++) {
        const csnn_class_metrics *c = &r.cls[i];
        fprintf(f, "%-*.*s %9.3f %9.3f %9.3f %9lld\n", wn, wn, c->name, c->precision, c->recall,
                c->f1, (long long)c->support);
        sp += c->precision;
        sr += c->recall;
        sf += c->f1;
    }
    if (k)
        fprintf(f, "%-*s %9.3f %9.3f %9.3f %9lld\n", wn, "macro avg", sp / (double)k,
                sr / (double)k, sf / (double)k, (long long)r.n);

    int32_t n_rates = 0;
    csnn_status st = csnn_metrics_num_rates(m, &n_rates);
    if (st != CSNN_OK) {
        report_free(&r);
        return lib_error(cmd, st, "metrics");
    }
    if (n_rates > 0) fprintf(f, "\nfiring rates (spikes per neuron per time step)\n");
    for (int32_t i = 0; i < n_rates; i++) {
        const char *layer;
        double rate;
        st = csnn_metrics_rate(m, i, &layer, &rate);
        if (st != CSNN_OK) {
            report_free(&r);
            return lib_error(cmd, st, "metrics");
        }
        fprintf(f, "  %-16s %.4f\n", layer, rate);
    }
    report_free(&r);
    return EXIT_OK;
}

int report_json(const char *cmd, const csnn_metrics *m, const char *model_path,
                const char *data_path, FILE *f)
{
    report r;
    int rc = report_get(cmd, m, &r);
    if (rc != EXIT_OK) return rc;
    const size_t k = (size_t)r.k;
    fputs("{\"model\": ", f);
    json_string(f, model_path);
    fputs(", \"data\": ", f);
    json_string(f, data_path);
    fputs(", \"accuracy\": ", f);
    json_number(f, r.accuracy);
    fputs(", \"loss\": ", f);
    json_number(f, r.loss);
    fprintf(f, ", \"n\": %lld, \"correct\": %lld, \"classes\": [", (long long)r.n,
            (long long)r.correct);
    for (size_t i = 0; i < k; i++) {
        if (i) fputs(", ", f);
        json_string(f, r.names[i]);
    }
    fputs("], \"confusion\": [", f);
    for (size_t i = 0; i < k; i++) {
        fputs(i ? ", [" : "[", f);
        for (size_t j = 0; j < k; j++)
            fprintf(f, "%s%lld", j ? ", " : "", (long long)r.confusion[i * k + j]);
        fputc(']', f);
    }
    fputs("], \"per_class\": [", f);
    for (size_t i = 0; i < k; i++) {
        const csnn_class_metrics *c = &r.cls[i];
        fputs(i ? ", {\"class\": " : "{\"class\": ", f);
        json_string(f, c->name);
        fputs(", \"precision\": ", f);
        json_number(f, c->precision);
        fputs(", \"recall\": ", f);
        json_number(f, c->recall);
        fputs(", \"f1\": ", f);
        json_number(f, c->f1);
        fprintf(f, ", \"support\": %lld}", (long long)c->support);
    }
    fputs("], \"firing_rates\": [", f);
    int32_t n_rates = 0;
    csnn_status st = csnn_metrics_num_rates(m, &n_rates);
    for (int32_t i = 0; st == CSNN_OK && i < n_rates; i++) {
        const char *layer;
        double rate;
        st = csnn_metrics_rate(m, i, &layer, &rate);
        if (st != CSNN_OK) break;
        fputs(i ? ", {\"layer\": " : "{\"layer\": ", f);
        json_string(f, layer);
        fputs(", \"rate\": ", f);
        json_number(f, rate);
        fputc('}', f);
    }
    fputs("]}\n", f);
    report_free(&r);
    if (st != CSNN_OK) return lib_error(cmd, st, "metrics");
    return EXIT_OK;
}

int report_confusion_plot(const char *cmd, const csnn_metrics *m, const char *dir)
{
    report r;
    int rc = report_get(cmd, m, &r);
    if (rc != EXIT_OK) return rc;
    size_t len = strlen(dir) + 32;
    char *path = malloc(len);
    if (!path) {
        report_free(&r);
        return runtime_error(cmd, "out of memory");
    }
    snprintf(path, len, "%s/confusion.png", dir);
    rc = tool_mkdirs(cmd, dir);
    if (rc == EXIT_OK) rc = plot_confusion(cmd, path, r.names, r.k, r.confusion, r.accuracy);
    free(path);
    report_free(&r);
    return rc;
}
