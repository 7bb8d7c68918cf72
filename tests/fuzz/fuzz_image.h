/*
 * fuzz_image.h - the body of the PNG and JPEG targets: csnn__image_decode
 * (the decoder the dataset loaders and csnn_image_load use) on the input,
 * at a target size that the input's length chooses among a few (so the
 * identity, enlarging and shrinking resizers all run), with a pixel limit
 * of 2^14 (e.g. 128 x 128: every decoder path - several MCUs, partial
 * MCUs, interlacing passes, the area-averaging resizer - is reached at that
 * size, and larger images only slow the fuzzer down, their time going to
 * the per-pixel loops; the limit's own check is the same code at any
 * value).
 */
#ifndef CSNN_FUZZ_IMAGE_H
#define CSNN_FUZZ_IMAGE_H

#include <string.h>

#include "data/data_internal.h"
#include "fuzz.h"

#define FUZZ_IMAGE_MAX_PIXELS ((int64_t)1 << 14)

static inline void fuzz_decode(const uint8_t *buf, size_t size)
{
    static const int32_t sides[4][2] = {{48, 48}, {1, 1}, {17, 64}, {100, 3}};
    int pick = (int)(size % 4);
    int32_t h = sides[pick][0], w = sides[pick][1];
    /* one guard byte past the image: the decoder must not write there */
    uint8_t *dst = malloc((size_t)h * (size_t)w + 1);
    if (!dst) abort();
    memset(dst, 0xA5, (size_t)h * (size_t)w + 1);
    csnn_status st = csnn__image_decode(buf, size, "fuzz", FUZZ_IMAGE_MAX_PIXELS, h, w, dst);
    FUZZ_CHECK(st == CSNN_OK || st == CSNN_ERR_FORMAT || st == CSNN_ERR_LIMIT);
    FUZZ_CHECK(dst[(size_t)h * (size_t)w] == 0xA5);
    if (st != CSNN_OK) FUZZ_CHECK(csnn_last_error_message()[0] != '\0');
    free(dst);
}

#endif /* CSNN_FUZZ_IMAGE_H */
