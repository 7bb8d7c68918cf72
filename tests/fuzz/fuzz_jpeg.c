/*
 * fuzz_jpeg.c - fuzz target: JPEG decoding (csnn__image_decode with
 * libjpeg-turbo: baseline, progressive, arithmetic, grayscale, YCbCr, RGB,
 * CMYK, YCCK; corrupt-data warnings are errors, at most 1000 scans).
 */
#include "fuzz_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = fuzz_copy(data, size, 0);
    fuzz_decode(buf, size);
    free(buf);
    return 0;
}
