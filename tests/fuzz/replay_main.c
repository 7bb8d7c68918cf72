/*
 * replay_main.c - a main() for the fuzz targets without libFuzzer: runs
 * every file given on the command line, and every file below every
 * directory given (sorted by name; names starting with '.' are skipped),
 * through LLVMFuzzerTestOneInput once. Arguments starting with '-' are
 * ignored, so libFuzzer-style flags do no harm.
 *
 *     replay_TARGET CORPUS_DIR [REGRESSIONS_DIR] [FILE...]
 *
 * Exit status 0 when every input ran (a crash ends the program with the
 * crash's signal or the sanitizer's status, after naming the input on
 * stderr); 1 when a path cannot be read or nothing was run at all.
 * FUZZ_REPLAY_VERBOSE=1 names each input as it runs.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

static char current[4096];
static long n_run;
static int verbose;

/* Names the input being run when the process dies. */
static void say_current(void)
{
    static const char pre[] = "replay: crashed on input ";
    if (!current[0]) return;
    ssize_t w = write(STDERR_FILENO, pre, sizeof pre - 1);
    w = write(STDERR_FILENO, current, strlen(current));
    w = write(STDERR_FILENO, "\n", 1);
    (void)w;
}

static void on_signal(int sig)
{
    say_current();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Sanitizers call this before they exit with their report. */
extern void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
        return 1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) abort();
    for (;;) {
        if (n == cap) {
            cap *= 2;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) abort();
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        fprintf(stderr, "replay: read error on %s\n", path);
        return 1;
    }
    /* an exact-size copy, so that reads past the end are caught */
    uint8_t *exact = malloc(n ? n : 1);
    if (!exact) abort();
    memcpy(exact, buf, n);
    free(buf);
    snprintf(current, sizeof current, "%s", path);
    if (verbose) fprintf(stderr, "replay: %s (%zu bytes)\n", path, n);
    int rc = LLVMFuzzerTestOneInput(exact, n);
    current[0] = '\0';
    free(exact);
    if (rc != 0) {
        fprintf(stderr, "replay: %s: the target returned %d\n", path, rc);
        return 1;
    }
    n_run++;
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) return run_file(path);
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "replay: cannot list %s: %s\n", path, strerror(errno));
        return 1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) abort();
            names = nn;
        }
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        names[n] = malloc(len);
        if (!names[n]) abort();
        snprintf(names[n], len, "%s/%s", path, e->d_name);
        n++;
    }
    closedir(d);
    if (n > 1) qsort(names, n, sizeof *names, cmp_names); /* (names is NULL when n is 0) */
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (run_path(names[i]) != 0) rc = 1;
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    const char *v = getenv("FUZZ_REPLAY_VERBOSE");
    verbose = v && *v && strcmp(v, "0") != 0;
    if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(say_current);
    int sigs[] = {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], on_signal);
    int rc = 0, paths = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') continue;
        paths++;
        if (run_path(argv[i]) != 0) rc = 1;
    }
    if (paths == 0) {
        fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
        return 1;
    }
    printf("replayed %ld inputs\n", n_run);
    if (n_run == 0) {
        fprintf(stderr, "replay: no input found\n");
        return 1;
    }
    return rc;
}
