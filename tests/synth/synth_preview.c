/*
 * synth_preview - a developer tool (not installed, not a test): writes a
 * contact sheet of synthetic faces, one row per class (angry, disgust, fear,
 * happy, neutral, sad, surprise from top to bottom), as an 8-bit grayscale
 * PNG, so that a person can look at what csnn_synth_generate draws.
 *
 *     synth_preview OUT.png [PER_ROW [SEED [ZOOM]]]
 */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csnn/csnn.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s OUT.png [PER_ROW [SEED [ZOOM]]]\n", argv[0]);
        return 2;
    }
    int per_row = argc > 2 ? atoi(argv[2]) : 12;
    unsigned long long seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 0;
    int zoom = argc > 4 ? atoi(argv[4]) : 2;
    if (per_row < 1 || per_row > 100 || zoom < 1 || zoom > 8) {
        fprintf(stderr, "%s: PER_ROW 1..100, ZOOM 1..8\n", argv[0]);
        return 2;
    }
    csnn_synth_options o;
    csnn_synth_options_init(&o);
    o.per_class = per_row;
    o.seed = seed;
    const int k = 7, hw = 48, gap = 2;
    size_t n = (size_t)k * (size_t)per_row;
    uint8_t *pix = malloc(n * hw * hw);
    int32_t *lab = malloc(n * sizeof *lab);
    int sw = per_row * (hw * zoom + gap) + gap, sh = k * (hw * zoom + gap) + gap;
    uint8_t *sheet = malloc((size_t)sw * (size_t)sh);
    if (!pix || !lab || !sheet) return 1;
    csnn_status st = csnn_synth_generate(&o, pix, n * hw * hw, lab, n);
    if (st != CSNN_OK) {
        fprintf(stderr, "%s: %s\n", argv[0], csnn_last_error_message());
        return 1;
    }
    memset(sheet, 255, (size_t)sw * (size_t)sh);
    for (int c = 0; c < k; c++)
        for (int i = 0; i < per_row; i++) {
            const uint8_t *src = pix + ((size_t)c * per_row + i) * hw * hw;
            int x0 = gap + i * (hw * zoom + gap), y0 = gap + c * (hw * zoom + gap);
            for (int y = 0; y < hw * zoom; y++)
                for (int x = 0; x < hw * zoom; x++)
                    sheet[(size_t)(y0 + y) * sw + x0 + x] = src[(y / zoom) * hw + x / zoom];
        }
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)sw;
    img.height = (png_uint_32)sh;
    img.format = PNG_FORMAT_GRAY;
    int ok = png_image_write_to_file(&img, argv[1], 0, sheet, sw, NULL);
    if (!ok) fprintf(stderr, "%s: %s\n", argv[0], img.message);
    png_image_free(&img);
    free(pix);
    free(lab);
    free(sheet);
    return ok ? 0 : 1;
}
