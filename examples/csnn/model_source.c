/* model_source.c - a model from --preset, --spec or --model, with
 * --time-steps applied to the spec text, and the layer table. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

/* The first word of the statement [s, end) equals `word`. */
static bool statement_is(const char *s, const char *end, const char *word)
{
    size_t n = strlen(word);
    return (size_t)(end - s) >= n && memcmp(s, word, n) == 0 &&
           (s + n == end || isspace((unsigned char)s[n]));
}

/*
 * --time-steps T edits the spec text, which is the library's only input for
 * a model's shape: statements are separated by newlines and ';', '#' starts
 * a comment. An existing "steps N" statement is replaced by "steps T";
 * without one, "; steps T" is added after the "input" statement (on its
 * line, so the library's line numbers in error messages still match the
 * file), or "steps T" is put first when there is no input statement either.
 */
char *spec_with_steps(const char *spec, long long steps)
{
    char repl[48];
    const char *cut = NULL, *cut_end = NULL, *input_end = NULL;
    for (const char *s = spec; *s;) {
        if (isspace((unsigned char)*s) || *s == ';') {
            s++;
            continue;
        }
        if (*s == '#') {
            while (*s && *s != '\n')
                s++;
            continue;
        }
        const char *end = s;
        while (*end && *end != '\n' && *end != ';' && *end != '#')
            end++;
        const char *stop = end;
        while (stop > s && isspace((unsigned char)stop[-1]))
            stop--;
        if (!cut && statement_is(s, stop, "steps")) {
            cut = s;
            cut_end = stop;
        }
        if (!input_end && statement_is(s, stop, "input")) input_end = stop;
        s = end;
    }
    if (cut) {
        snprintf(repl, sizeof repl, "steps %lld", steps);
    } else if (input_end) {
        cut = cut_end = input_end;
        snprintf(repl, sizeof repl, "; steps %lld", steps);
    } else {
        cut = cut_end = spec;
        snprintf(repl, sizeof repl, "steps %lld\n", steps);
    }
    size_t head = (size_t)(cut - spec), rlen = strlen(repl), tail = strlen(cut_end);
    char *out = malloc(head + rlen + tail + 1);
    if (!out) return NULL;
    memcpy(out, spec, head);
    memcpy(out + head, repl, rlen);
    memcpy(out + head + rlen, cut_end, tail + 1);
    return out;
}

int tool_model(const char *cmd, csnn_context *ctx, const char *preset, const char *spec_file,
               const char *model_file, long long time_steps, uint64_t seed, csnn_model **out)
{
    csnn_status st;
    *out = NULL;
    if (model_file) {
        st = csnn_model_load(ctx, model_file, out);
        if (st != CSNN_OK) return lib_error(cmd, st, "cannot load the model '%s'", model_file);
        return EXIT_OK;
    }
    char *text = NULL;
    const char *spec;
    if (spec_file) {
        int rc = tool_read_text(cmd, spec_file, &text);
        if (rc != EXIT_OK) return rc;
        spec = text;
    } else {
        st = csnn_preset_spec(preset, &spec);
        if (st != CSNN_OK) return lib_error(cmd, st, "cannot build the model");
    }
    if (time_steps > 0) {
        char *edited = spec_with_steps(spec, time_steps);
        free(text);
        if (!edited) return runtime_error(cmd, "out of memory");
        spec = text = edited;
    }
    st = csnn_model_create_from_spec(ctx, spec, seed, out);
    free(text);
    if (st != CSNN_OK) {
        if (spec_file) return lib_error(cmd, st, "cannot build the model of '%s'", spec_file);
        return lib_error(cmd, st, "cannot build the preset '%s'", preset);
    }
    return EXIT_OK;
}

int tool_print_summary(const char *cmd, const csnn_model *model, int batch, FILE *f)
{
    size_t needed = 0;
    csnn_status st = csnn_model_summary(model, batch, NULL, 0, &needed);
    if (st != CSNN_OK) return lib_error(cmd, st, "model summary");
    char *buf = malloc(needed);
    if (!buf) return runtime_error(cmd, "out of memory");
    st = csnn_model_summary(model, batch, buf, needed, NULL);
    if (st != CSNN_OK) {
        free(buf);
        return lib_error(cmd, st, "model summary");
    }
    fputs(buf, f);
    if (needed > 1 && buf[needed - 2] != '\n') fputc('\n', f);
    free(buf);
    return EXIT_OK;
}
