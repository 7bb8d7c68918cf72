/*
 * data_test_util.h - helpers of the data tests: temporary directories,
 * writing PNG / JPEG test images with libpng and libjpeg, a plain libjpeg
 * reference decoder, and a context that records its log.
 */
#ifndef CSNN_DATA_TEST_UTIL_H
#define CSNN_DATA_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>
#include <jpeglib.h>

#include "csnn/csnn.h"

/* A new directory under $TMPDIR (or /tmp); malloc'ed path. */
char *dt_mkdtemp(void);
/* Removes a directory tree (does not follow symbolic links). */
void dt_rmtree(const char *path);
/* printf-style malloc'ed string. */
char *dt_fmt(const char *fmt, ...);
void dt_mkdir(const char *path);
void dt_write_bytes(const char *path, const void *data, size_t n);
void dt_write_text(const char *path, const char *text);
/* The whole file (malloc'ed). */
uint8_t *dt_read_bytes(const char *path, size_t *n);

/* A small deterministic generator. */
uint32_t dt_rand(uint32_t *state);

/* A PNG to write: samples are h * w * channels values in the bit depth's
 * range (palette indices for PNG_COLOR_TYPE_PALETTE). */
typedef struct {
    int width, height, depth, color; /* PNG_COLOR_TYPE_* */
    bool interlace;
    const uint16_t *samples;
    const uint8_t *palette; /* n_palette * 3 */
    int n_palette;
    const uint8_t *trns; /* palette alpha, n_trns entries */
    int n_trns;
    bool gray_rgb_trns; /* a tRNS colour for gray / RGB images */
} dt_png;

int dt_png_channels(int color);
void dt_write_png(const char *path, const dt_png *p);
/* An 8-bit grayscale PNG. */
void dt_write_gray_png(const char *path, const uint8_t *px, int h, int w);

/* A JPEG from samples (h * w * comps) in colour space `cs`. */
void dt_write_jpeg(const char *path, const uint8_t *samples, int w, int h, int comps,
                   J_COLOR_SPACE cs, int quality, bool progressive);
/* Decodes with plain libjpeg to `out_cs`; malloc'ed samples, NULL on error. */
uint8_t *dt_decode_jpeg(const uint8_t *data, size_t n, J_COLOR_SPACE out_cs, int *w, int *h,
                        int *comps);

/* PIL's "L" of an 8-bit RGB triple. */
static inline uint8_t dt_luma(unsigned r, unsigned g, unsigned b)
{
    return (uint8_t)((r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16);
}

/* A context on "cpu" with 2 threads whose WARN messages are recorded. */
csnn_context *dt_context(void);
/* Warnings logged since the last dt_log_reset and the last message. */
extern int dt_log_warnings;
extern char dt_log_last[1024];
void dt_log_reset(void);

/* Asserts st == want and that the error message contains `needle`. */
#define dt_assert_error(expr, want, needle)                                                        \
    do {                                                                                           \
        csnn_status dt_st_ = (expr);                                                               \
        if (dt_st_ != (want))                                                                      \
            fail_msg("%s: got %s, expected %s (message: %s)", #expr, csnn_status_name(dt_st_),     \
                     csnn_status_name(want), csnn_last_error_message());                          \
        if ((needle) && !strstr(csnn_last_error_message(), (needle)))                              \
            fail_msg("%s: message \"%s\" does not contain \"%s\"", #expr,                          \
                     csnn_last_error_message(), (needle));                                         \
    } while (0)

#define dt_assert_ok(expr)                                                                         \
    do {                                                                                           \
        csnn_status dt_st_ = (expr);                                                               \
        if (dt_st_ != CSNN_OK)                                                                     \
            fail_msg("%s: %s: %s", #expr, csnn_status_name(dt_st_), csnn_last_error_message());   \
    } while (0)

#endif /* CSNN_DATA_TEST_UTIL_H */
