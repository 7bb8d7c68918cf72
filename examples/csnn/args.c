/* args.c - the one option parser of every csnn subcommand: a table of
 * options per command, "--name VALUE" and "--name=VALUE", "--" ending
 * options, generated --help, and usage errors (exit status 2). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

int usage_error(const command *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "csnn %s: ", cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'csnn %s --help'.\n", cmd->name);
    return EXIT_USAGE;
}

/* Prints text wrapped at 80 columns, continuation lines indented by indent. */
static void print_wrapped(const char *text, int indent, int col)
{
    const int width = 80;
    const char *s = text;
    while (*s) {
        const char *w = s;
        while (*w && *w != ' ')
            w++;
        int len = (int)(w - s);
        if (col > indent && col + 1 + len > width) {
            printf("\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            putchar(' ');
            col++;
        }
        printf("%.*s", len, s);
        col += len;
        s = *w ? w + 1 : w;
    }
    putchar('\n');
}

static void print_help(const command *cmd)
{
    printf("Usage: csnn %s %s\n\n", cmd->name, cmd->synopsis);
    if (cmd->about) printf("%s\n\n", cmd->about);
    printf("Options:\n");
    for (size_t i = 0; i < cmd->n_opts; i++) {
        const opt *o = &cmd->opts[i];
        char head[64];
        if (o->metavar)
            snprintf(head, sizeof head, "--%s %s", o->name, o->metavar);
        else
            snprintf(head, sizeof head, "--%s", o->name);
        if (strlen(head) > 24)
            printf("  %s\n%*s", head, 27, "");
        else
            printf("  %-24s ", head);
        print_wrapped(o->help, 27, 27);
    }
    printf("  %-24s %s\n", "-h, --help", "show this help and exit");
    if (cmd->notes) printf("\n%s\n", cmd->notes);
}

opt *args_find(command *cmd, const char *name)
{
    for (size_t i = 0; i < cmd->n_opts; i++)
        if (strcmp(cmd->opts[i].name, name) == 0) return &cmd->opts[i];
    return NULL;
}

bool args_seen(command *cmd, const char *name)
{
    opt *o = args_find(cmd, name);
    return o && o->seen;
}

static int out_of_range(const command *cmd, const opt *o, const char *value)
{
    if (o->kind == OPT_INT)
        return usage_error(cmd, "--%s: %s is outside %.0f..%.0f", o->name, value, o->lo, o->hi);
    return usage_error(cmd, "--%s: %s is outside [%g, %g]", o->name, value, o->lo, o->hi);
}

static int set_value(const command *cmd, opt *o, const char *value)
{
    char *end;
    errno = 0;
    switch (o->kind) {
    case OPT_FLAG: break;
    case OPT_STRING:
        if (!*value) return usage_error(cmd, "--%s: the value is empty", o->name);
        *(const char **)o->dest = value;
        break;
    case OPT_INT: {
        long long v = strtoll(value, &end, 10);
        if (end == value || *end || errno == ERANGE)
            return usage_error(cmd, "--%s: '%s' is not an integer", o->name, value);
        if (o->ranged && ((double)v < o->lo || (double)v > o->hi))
            return out_of_range(cmd, o, value);
        *(long long *)o->dest = v;
        break;
    }
    case OPT_DOUBLE: {
        double v = strtod(value, &end);
        if (end == value || *end || !isfinite(v))
            return usage_error(cmd, "--%s: '%s' is not a number", o->name, value);
        if (o->ranged && (v < o->lo || v > o->hi)) return out_of_range(cmd, o, value);
        *(double *)o->dest = v;
        break;
    }
    case OPT_U64: {
        if (value[0] == '-' || value[0] == '+')
            return usage_error(cmd, "--%s: '%s' is not a non-negative integer", o->name, value);
        unsigned long long v = strtoull(value, &end, 10);
        if (end == value || *end || errno == ERANGE)
            return usage_error(cmd, "--%s: '%s' is not a non-negative integer", o->name, value);
        *(uint64_t *)o->dest = (uint64_t)v;
        break;
    }
    }
    o->seen = true;
    return ARGS_CONTINUE;
}

int args_parse(command *cmd, int argc, char **argv)
{
    static char *no_args[1];
    cmd->args = no_args;
    cmd->n_args = 0;
    /* positional arguments are gathered in place at the front of argv */
    char **pos = argv + 1;
    int n_pos = 0;
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (options_done || a[0] != '-' || a[1] == '\0') {
            pos[n_pos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            print_help(cmd);
            return EXIT_OK;
        }
        if (a[1] != '-') return usage_error(cmd, "unknown option '%s'", a);
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        opt *o = NULL;
        for (size_t k = 0; k < cmd->n_opts; k++)
            if (strlen(cmd->opts[k].name) == len && memcmp(cmd->opts[k].name, name, len) == 0)
                o = &cmd->opts[k];
        if (!o) return usage_error(cmd, "unknown option '--%.*s'", (int)len, name);
        if (o->kind == OPT_FLAG) {
            if (eq) return usage_error(cmd, "--%s takes no value", o->name);
            *(bool *)o->dest = true;
            o->seen = true;
            continue;
        }
        const char *value;
        if (eq) {
            value = eq + 1;
        } else {
            if (i + 1 >= argc)
                return usage_error(cmd, "--%s needs a value (%s)", o->name, o->metavar);
            value = argv[++i];
        }
        int rc = set_value(cmd, o, value);
        if (rc != ARGS_CONTINUE) return rc;
    }
    for (size_t k = 0; k < cmd->n_opts; k++)
        if (cmd->opts[k].required && !cmd->opts[k].seen)
            return usage_error(cmd, "--%s is required", cmd->opts[k].name);
    if (n_pos < cmd->min_args)
        return usage_error(cmd,
                           cmd->min_args == 1 ? "an argument is missing" : "arguments are missing");
    if (cmd->max_args >= 0 && n_pos > cmd->max_args) {
        if (cmd->max_args == 0) return usage_error(cmd, "unexpected argument '%s'", pos[0]);
        return usage_error(cmd, "too many arguments");
    }
    cmd->args = pos;
    cmd->n_args = n_pos;
    return ARGS_CONTINUE;
}

int args_exclusive(command *cmd, bool required, const char *const *names)
{
    const char *first = NULL;
    char list[256] = "";
    for (size_t i = 0; names[i]; i++) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s--%s", i ? (names[i + 1] ? ", " : " or ") : "",
                 names[i]);
        if (!args_seen(cmd, names[i])) continue;
        if (first) return usage_error(cmd, "--%s and --%s exclude each other", first, names[i]);
        first = names[i];
    }
    if (required && !first) return usage_error(cmd, "one of %s is required", list);
    return ARGS_CONTINUE;
}
