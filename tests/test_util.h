/* test_util.h - small helpers shared by libcsnn's tests (header-only). */
#ifndef CSNN_TEST_UTIL_H
#define CSNN_TEST_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "csnn/csnn.h"

/* Fails the test with the library's message when st is not CSNN_OK. */
#define CHECK_OK(expr)                                                                             \
    do {                                                                                           \
        csnn_status st_ = (expr);                                                                  \
        if (st_ != CSNN_OK)                                                                        \
            fail_msg("%s -> %s: %s", #expr, csnn_status_name(st_), csnn_last_error_message());     \
    } while (0)

/* Expects a given error status and a non-empty message. */
#define CHECK_STATUS(expr, want)                                                                   \
    do {                                                                                           \
        csnn_clear_last_error();                                                                   \
        csnn_status st_ = (expr);                                                                  \
        if (st_ != (want))                                                                         \
            fail_msg("%s -> %s, expected %s (%s)", #expr, csnn_status_name(st_),                   \
                     csnn_status_name(want), csnn_last_error_message());                           \
        if ((want) < 0 && csnn_last_error_message()[0] == '\0')                                    \
            fail_msg("%s -> %s without a message", #expr, csnn_status_name(st_));                  \
    } while (0)

/* A deterministic uniform float in [lo, hi) from a 64-bit state. */
static inline float test_uniform(uint64_t *state, float lo, float hi)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return lo + (hi - lo) * (float)((double)(z >> 11) * (1.0 / 9007199254740992.0));
}

/* The device the tests run on: $CSNN_TEST_DEVICE or "cpu". */
static inline const char *test_device(void)
{
    const char *d = getenv("CSNN_TEST_DEVICE");
    return d && *d ? d : "cpu";
}

/* A fresh temporary directory (caller frees the string; test_rmtree removes it). */
static inline char *test_tempdir(void)
{
    const char *base = getenv("TMPDIR");
    char *path = malloc(4096);
    if (!path) return NULL;
    snprintf(path, 4096, "%s/csnn-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(path)) {
        free(path);
        return NULL;
    }
    return path;
}

static inline void test_rmtree(const char *path)
{
    char cmd[4200];
    if (!path || strlen(path) < 8) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", path);
}

#endif /* CSNN_TEST_UTIL_H */
