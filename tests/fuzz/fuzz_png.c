/*
 * fuzz_png.c - fuzz target: PNG decoding (csnn__image_decode).
 *
 * Inputs that do not start with the PNG signature are passed on unchanged
 * (they exercise the signature check only). For the others, the CRC of
 * every complete chunk is recomputed first, as libpng rejects a chunk whose
 * CRC does not match and nearly every mutation would otherwise stop there;
 * what libpng and libcsnn do with the chunk contents is what is fuzzed.
 */
#include <zlib.h>

#include "fuzz_image.h"

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void fix_crcs(uint8_t *p, size_t size)
{
    size_t pos = 8;
    while (size - pos >= 12) {
        uint32_t len = be32(p + pos);
        if (len > size - pos - 12) break;
        uLong crc = crc32(0L, Z_NULL, 0);
        crc = crc32(crc, p + pos + 4, (uInt)len + 4);
        uint8_t *c = p + pos + 8 + len;
        c[0] = (uint8_t)(crc >> 24);
        c[1] = (uint8_t)(crc >> 16);
        c[2] = (uint8_t)(crc >> 8);
        c[3] = (uint8_t)crc;
        pos += 12 + (size_t)len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t *buf = fuzz_copy(data, size, 0);
    if (size >= 8 && memcmp(buf, magic, 8) == 0) fix_crcs(buf, size);
    fuzz_decode(buf, size);
    free(buf);
    return 0;
}
