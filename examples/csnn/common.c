/* common.c - helpers shared by the subcommands: error reporting, the
 * context, dataset loading, small file and JSON utilities. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tool.h"

int lib_error(const char *cmd, csnn_status st, const char *fmt, ...)
{
    va_list ap;
    const char *msg = csnn_last_error_message();
    fprintf(stderr, "csnn %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, ": %s (%s)\n", msg[0] ? msg : csnn_status_string(st), csnn_status_name(st));
    return EXIT_FAILURE_RUNTIME;
}

int runtime_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "csnn %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return EXIT_FAILURE_RUNTIME;
}

static void log_to_stderr(void *user_data, csnn_log_level level, const char *message)
{
    const char *cmd = user_data;
    const char *what = level >= CSNN_LOG_ERROR  ? "error"
                       : level == CSNN_LOG_WARN ? "warning"
                                                : "info";
    fprintf(stderr, "csnn %s: %s: %s\n", cmd, what, message);
}

int tool_context(const char *cmd, const char *device, long long threads, csnn_context **out)
{
    csnn_context_options co;
    csnn_context_options_init(&co);
    if (device) co.device = device;
    co.n_threads = (int32_t)threads;
    co.log_level = CSNN_LOG_WARN;
    co.log_fn = log_to_stderr;
    co.log_user_data = (void *)cmd;
    csnn_status st = csnn_context_create(&co, out);
    if (st != CSNN_OK) return lib_error(cmd, st, "cannot use the device");
    return EXIT_OK;
}

int tool_load_dataset(const char *cmd, csnn_context *ctx, const csnn_model *model, const char *path,
                      bool skip_bad, const char *usage, csnn_dataset **out)
{
    csnn_model_info mi;
    csnn_model_info_init(&mi);
    csnn_status st = csnn_model_get_info(model, &mi);
    if (st != CSNN_OK) return lib_error(cmd, st, "model");
    csnn_dataset_options o;
    csnn_dataset_options_init(&o);
    o.height = mi.in_height;
    o.width = mi.in_width;
    o.skip_bad = skip_bad ? 1 : 0;
    o.usage = usage;
    st = csnn_dataset_load(ctx, path, &o, out);
    if (st != CSNN_OK) return lib_error(cmd, st, "cannot load the dataset '%s'", path);
    csnn_dataset_info di;
    csnn_dataset_info_init(&di);
    st = csnn_dataset_get_info(*out, &di);
    if (st != CSNN_OK) {
        csnn_dataset_destroy(*out);
        *out = NULL;
        return lib_error(cmd, st, "dataset '%s'", path);
    }
    if (skip_bad)
        fprintf(stderr, "csnn %s: %s: skipped %lld bad file%s or row%s\n", cmd, path,
                (long long)di.skipped, di.skipped == 1 ? "" : "s", di.skipped == 1 ? "" : "s");
    return EXIT_OK;
}

int tool_read_text(const char *cmd, const char *path, char **out)
{
    FILE *f = fopen(path, "rb");
    if (!f) return runtime_error(cmd, "cannot open '%s': %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            return runtime_error(cmd, "'%s': out of memory", path);
        }
        len += fread(buf + len, 1, cap - len - 1, f);
        if (len < cap - 1) break;
        if (cap > ((size_t)64 << 20)) {
            free(buf);
            fclose(f);
            return runtime_error(cmd, "'%s' is too large for a model spec", path);
        }
        char *nb = realloc(buf, cap * 2);
        if (!nb) free(buf);
        buf = nb;
        cap *= 2;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return runtime_error(cmd, "cannot read '%s'", path);
    }
    buf[len] = '\0';
    *out = buf;
    return EXIT_OK;
}

int tool_mkdirs(const char *cmd, const char *path)
{
    char *p = strdup(path);
    if (!p) return runtime_error(cmd, "out of memory");
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0') continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            int e = errno;
            free(p);
            return runtime_error(cmd, "cannot create the directory '%s': %s", path, strerror(e));
        }
        *s = c;
        if (!c) break;
    }
    free(p);
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return runtime_error(cmd, "'%s' is not a directory", path);
    return EXIT_OK;
}

void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

void json_number(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.9g", v);
    else
        fputs("null", f);
}

void format_duration(char *buf, size_t cap, double seconds)
{
    if (!(seconds >= 0) || seconds > 1e8) {
        snprintf(buf, cap, "--:--");
        return;
    }
    long s = lround(seconds);
    if (s >= 3600)
        snprintf(buf, cap, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, cap, "%ld:%02ld", s / 60, s % 60);
}
