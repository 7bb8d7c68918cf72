/*
 * fuzz.h - shared by the fuzz targets of tests/fuzz/ (one fuzz_TARGET.c
 * each, built as a libFuzzer binary with -Dfuzzing=true under clang, and
 * as replay_TARGET with replay_main.c in every build with tests).
 *
 * A target must not print, must return 0, and must abort() when one of its
 * own invariants fails (that is then a finding, as a sanitizer report is).
 */
#ifndef CSNN_FUZZ_H
#define CSNN_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "csnn/csnn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the target failed: report it and abort (a finding). */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s (last error: %s)\n", __FILE__,      \
                    __LINE__, #cond, csnn_last_error_message());                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A silent one-thread CPU context, created on first use and kept for the
 * life of the process (reachable, so not a leak). */
static inline csnn_context *fuzz_context(void)
{
    static csnn_context *ctx;
    if (!ctx) {
        csnn_context_options o;
        csnn_context_options_init(&o);
        o.device = "cpu";
        o.n_threads = 1;
        o.log_level = CSNN_LOG_NONE;
        if (csnn_context_create(&o, &ctx) != CSNN_OK) {
            fprintf(stderr, "fuzz: cannot create a context: %s\n", csnn_last_error_message());
            abort();
        }
    }
    return ctx;
}

/* A malloc'ed copy of the input of exactly `size` bytes (plus `extra`
 * zero bytes), so that AddressSanitizer sees reads past its end. */
static inline uint8_t *fuzz_copy(const uint8_t *data, size_t size, size_t extra)
{
    uint8_t *p = malloc(size + extra ? size + extra : 1);
    if (!p) abort();
    for (size_t i = 0; i < size; i++) p[i] = data[i];
    for (size_t i = 0; i < extra; i++) p[size + i] = 0;
    return p;
}

#endif /* CSNN_FUZZ_H */
