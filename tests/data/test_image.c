/*
 * test_image.c - PNG / JPEG decoding to PIL's "L", the resizer, broken
 * files, and csnn_image_load.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <png.h>
#include <zlib.h>

#include "data_test_util.h"
#include "data/data_private.h"

static char *tmp_dir;

static int setup(void **state)
{
    (void)state;
    tmp_dir = dt_mkdtemp();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    dt_rmtree(tmp_dir);
    free(tmp_dir);
    return 0;
}

/* Decodes a file at its own size (no resize). */
static csnn_status decode_file(const char *path, int h, int w, uint8_t *dst)
{
    size_t n;
    uint8_t *data = dt_read_bytes(path, &n);
    csnn_status st = csnn__image_decode(data, n, path, 1 << 24, h, w, dst);
    free(data);
    return st;
}

/* ------------------------------------------------------------------------ */
/* PNG: every colour type and bit depth                                      */
/* ------------------------------------------------------------------------ */

/* The 8-bit value of a sample of the given depth: bit replication for 1/2/4
 * (as libpng and PIL), round(v * 255 / 65535) for 16. */
static unsigned expect8(unsigned v, int depth)
{
    if (depth == 16) return (unsigned)floor(v * 255.0 / 65535.0 + 0.5);
    if (depth == 8) return v;
    return v * (255u / ((1u << depth) - 1u));
}

typedef struct {
    int color, depth;
    bool interlace, trns;
} png_case;

static void check_png_case(const png_case *c)
{
    enum { W = 13, H = 9 };
    int ch = dt_png_channels(c->color);
    uint16_t samples[W * H * 4];
    uint8_t palette[256 * 3], trns[256];
    unsigned maxv = (1u << c->depth) - 1u;
    int n_pal = c->color == PNG_COLOR_TYPE_PALETTE ? (int)maxv + 1 : 0;
    if (n_pal > 256) n_pal = 256;
    uint32_t rs = 1234u + (uint32_t)(c->color * 100 + c->depth);
    for (int i = 0; i < n_pal * 3; i++) palette[i] = (uint8_t)dt_rand(&rs);
    for (int i = 0; i < n_pal; i++) trns[i] = (uint8_t)(i * 37);
    for (int i = 0; i < W * H * ch; i++) {
        unsigned v = dt_rand(&rs) % (maxv + 1u);
        if (i < ch) v = 0;             /* include the extremes */
        if (i >= ch && i < 2 * ch) v = maxv;
        if (c->color == PNG_COLOR_TYPE_PALETTE) v %= (unsigned)n_pal;
        samples[i] = (uint16_t)v;
    }
    dt_png p = {W, H, c->depth, c->color, c->interlace, samples, palette, n_pal,
                trns, c->trns && n_pal ? n_pal : 0,
                c->trns && c->color != PNG_COLOR_TYPE_PALETTE};
    char *path = dt_fmt("%s/c%d_d%d_i%d_t%d.png", tmp_dir, c->color, c->depth, c->interlace,
                        c->trns);
    dt_write_png(path, &p);

    uint8_t got[W * H], want[W * H];
    for (int i = 0; i < W * H; i++) {
        const uint16_t *s = samples + (size_t)i * ch;
        switch (c->color) {
        case PNG_COLOR_TYPE_GRAY:
        case PNG_COLOR_TYPE_GRAY_ALPHA: want[i] = (uint8_t)expect8(s[0], c->depth); break;
        case PNG_COLOR_TYPE_RGB:
        case PNG_COLOR_TYPE_RGB_ALPHA:
            want[i] = dt_luma(expect8(s[0], c->depth), expect8(s[1], c->depth),
                              expect8(s[2], c->depth));
            break;
        case PNG_COLOR_TYPE_PALETTE:
            want[i] = dt_luma(palette[3 * s[0]], palette[3 * s[0] + 1], palette[3 * s[0] + 2]);
            break;
        }
    }
    dt_assert_ok(decode_file(path, H, W, got));
    if (memcmp(got, want, sizeof got) != 0) {
        for (int i = 0; i < W * H; i++)
            if (got[i] != want[i])
                fail_msg("%s: pixel %d is %u, expected %u", path, i, got[i], want[i]);
    }
    free(path);
}

static void test_png_all_types(void **state)
{
    (void)state;
    static const png_case cases[] = {
        {PNG_COLOR_TYPE_GRAY, 1, false, false},       {PNG_COLOR_TYPE_GRAY, 2, false, false},
        {PNG_COLOR_TYPE_GRAY, 4, false, false},       {PNG_COLOR_TYPE_GRAY, 8, false, false},
        {PNG_COLOR_TYPE_GRAY, 16, false, false},      {PNG_COLOR_TYPE_GRAY, 1, true, false},
        {PNG_COLOR_TYPE_GRAY, 8, true, false},        {PNG_COLOR_TYPE_GRAY, 8, false, true},
        {PNG_COLOR_TYPE_GRAY, 2, false, true},        {PNG_COLOR_TYPE_GRAY, 16, true, true},
        {PNG_COLOR_TYPE_GRAY_ALPHA, 8, false, false}, {PNG_COLOR_TYPE_GRAY_ALPHA, 16, false, false},
        {PNG_COLOR_TYPE_GRAY_ALPHA, 8, true, false},  {PNG_COLOR_TYPE_RGB, 8, false, false},
        {PNG_COLOR_TYPE_RGB, 16, false, false},       {PNG_COLOR_TYPE_RGB, 8, true, false},
        {PNG_COLOR_TYPE_RGB, 16, true, false},        {PNG_COLOR_TYPE_RGB, 8, false, true},
        {PNG_COLOR_TYPE_RGB_ALPHA, 8, false, false},  {PNG_COLOR_TYPE_RGB_ALPHA, 16, false, false},
        {PNG_COLOR_TYPE_RGB_ALPHA, 16, true, false},  {PNG_COLOR_TYPE_PALETTE, 1, false, false},
        {PNG_COLOR_TYPE_PALETTE, 2, false, false},    {PNG_COLOR_TYPE_PALETTE, 4, false, false},
        {PNG_COLOR_TYPE_PALETTE, 8, false, false},    {PNG_COLOR_TYPE_PALETTE, 1, false, true},
        {PNG_COLOR_TYPE_PALETTE, 2, false, true},     {PNG_COLOR_TYPE_PALETTE, 4, false, true},
        {PNG_COLOR_TYPE_PALETTE, 8, false, true},     {PNG_COLOR_TYPE_PALETTE, 4, true, true},
        {PNG_COLOR_TYPE_PALETTE, 8, true, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_png_case(&cases[i]);
}

/* ------------------------------------------------------------------------ */
/* JPEG                                                                      */
/* ------------------------------------------------------------------------ */

enum { JW = 40, JH = 24 };

static void make_rgb(uint8_t *rgb)
{
    for (int y = 0; y < JH; y++)
        for (int x = 0; x < JW; x++) {
            uint8_t *p = rgb + 3 * (y * JW + x);
            p[0] = (uint8_t)(x * 6);
            p[1] = (uint8_t)(y * 10);
            p[2] = (uint8_t)((x + y) * 4);
        }
}

/* Decodes `path` with the library and compares with plain libjpeg to
 * `cs` followed by the conversion `to_gray`. */
static void check_jpeg_against_reference(const char *path, J_COLOR_SPACE cs,
                                         uint8_t (*to_gray)(const uint8_t *))
{
    size_t n;
    uint8_t *data = dt_read_bytes(path, &n);
    int w, h, comps;
    uint8_t *ref = dt_decode_jpeg(data, n, cs, &w, &h, &comps);
    assert_non_null(ref);
    assert_int_equal(w, JW);
    assert_int_equal(h, JH);
    uint8_t got[JW * JH];
    dt_assert_ok(csnn__image_decode(data, n, path, 1 << 24, JH, JW, got));
    for (int i = 0; i < JW * JH; i++) {
        uint8_t want = to_gray(ref + (size_t)i * comps);
        if (got[i] != want) fail_msg("%s: pixel %d is %u, expected %u", path, i, got[i], want);
    }
    free(ref);
    free(data);
}

static uint8_t gray_of_gray(const uint8_t *p)
{
    return p[0];
}

static uint8_t gray_of_rgb(const uint8_t *p)
{
    return dt_luma(p[0], p[1], p[2]);
}

/* PIL: JPEG CMYK is read as Adobe-inverted ("CMYK;I"), then cmyk2rgb:
 * R = nk - MULDIV255(C, nk) with C = 255 - stored, nk = 255 - K = stored K. */
static unsigned pil_muldiv255(unsigned a, unsigned b)
{
    unsigned t = a * b + 128u;
    return ((t >> 8) + t) >> 8;
}

static uint8_t gray_of_cmyk(const uint8_t *p)
{
    unsigned nk = p[3];
    unsigned r = nk - pil_muldiv255(255u - p[0], nk);
    unsigned g = nk - pil_muldiv255(255u - p[1], nk);
    unsigned b = nk - pil_muldiv255(255u - p[2], nk);
    return dt_luma(r, g, b);
}

static void test_jpeg_gray(void **state)
{
    (void)state;
    uint8_t g[JW * JH];
    for (int i = 0; i < JW * JH; i++) g[i] = (uint8_t)((i % JW) * 6 + (i / JW) * 2);
    char *path = dt_fmt("%s/gray.jpg", tmp_dir);
    dt_write_jpeg(path, g, JW, JH, 1, JCS_GRAYSCALE, 100, false);
    check_jpeg_against_reference(path, JCS_GRAYSCALE, gray_of_gray);
    /* and close to the source at quality 100 */
    uint8_t got[JW * JH];
    dt_assert_ok(decode_file(path, JH, JW, got));
    for (int i = 0; i < JW * JH; i++) assert_true(abs((int)got[i] - (int)g[i]) <= 2);
    free(path);
}

static void test_jpeg_rgb_baseline_and_progressive(void **state)
{
    (void)state;
    uint8_t rgb[JW * JH * 3];
    make_rgb(rgb);
    for (int prog = 0; prog <= 1; prog++) {
        char *path = dt_fmt("%s/rgb%d.jpg", tmp_dir, prog);
        dt_write_jpeg(path, rgb, JW, JH, 3, JCS_RGB, prog ? 90 : 100, prog);
        check_jpeg_against_reference(path, JCS_RGB, gray_of_rgb);
        if (!prog) {
            uint8_t got[JW * JH];
            dt_assert_ok(decode_file(path, JH, JW, got));
            for (int i = 0; i < JW * JH; i++) {
                int want = dt_luma(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]);
                if (abs((int)got[i] - want) > 4)
                    fail_msg("pixel %d: %d vs source %d", i, got[i], want);
            }
        }
        free(path);
    }
}

static void test_jpeg_cmyk(void **state)
{
    (void)state;
    /* Uniform 8x8 blocks of stored (Adobe-inverted) CMYK values. */
    uint8_t cmyk[JW * JH * 4];
    uint32_t rs = 99;
    uint8_t blocks[(JW / 8) * (JH / 8)][4];
    for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++)
        for (int k = 0; k < 4; k++) blocks[b][k] = (uint8_t)dt_rand(&rs);
    for (int y = 0; y < JH; y++)
        for (int x = 0; x < JW; x++)
            memcpy(cmyk + 4 * (y * JW + x), blocks[(y / 8) * (JW / 8) + x / 8], 4);
    char *path = dt_fmt("%s/cmyk.jpg", tmp_dir);
    dt_write_jpeg(path, cmyk, JW, JH, 4, JCS_CMYK, 100, false);
    check_jpeg_against_reference(path, JCS_CMYK, gray_of_cmyk);
    uint8_t got[JW * JH];
    dt_assert_ok(decode_file(path, JH, JW, got));
    for (int i = 0; i < JW * JH; i++) {
        int want = gray_of_cmyk(cmyk + 4 * i);
        if (abs((int)got[i] - want) > 4) fail_msg("pixel %d: %d vs source %d", i, got[i], want);
    }
    /* Hand check of the convention: stored C=255 (no ink), K=255 (no
     * black) is white; stored K=0 is black. */
    uint8_t white[4] = {255, 255, 255, 255}, black[4] = {255, 255, 255, 0};
    assert_int_equal(gray_of_cmyk(white), 255);
    assert_int_equal(gray_of_cmyk(black), 0);
    free(path);
}

static void test_jpeg_ycck(void **state)
{
    (void)state;
    /* libjpeg writes CMYK input as YCCK when asked to. */
    uint8_t cmyk[JW * JH * 4];
    for (int i = 0; i < JW * JH * 4; i++) cmyk[i] = (uint8_t)(i * 7);
    char *path = dt_fmt("%s/ycck.jpg", tmp_dir);
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr em;
    ci.err = jpeg_std_error(&em);
    jpeg_create_compress(&ci);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = JW;
    ci.image_height = JH;
    ci.input_components = 4;
    ci.in_color_space = JCS_CMYK;
    jpeg_set_defaults(&ci);
    jpeg_set_colorspace(&ci, JCS_YCCK);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = cmyk + (size_t)ci.next_scanline * JW * 4;
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    fclose(f);
    check_jpeg_against_reference(path, JCS_CMYK, gray_of_cmyk);
    free(path);
}

/* ------------------------------------------------------------------------ */
/* Resize                                                                    */
/* ------------------------------------------------------------------------ */

static void test_resize_identity(void **state)
{
    (void)state;
    uint8_t src[48 * 48], dst[48 * 48];
    uint32_t rs = 7;
    for (int i = 0; i < 48 * 48; i++) src[i] = (uint8_t)dt_rand(&rs);
    csnn__image_resize(src, 48, 48, dst, 48, 48);
    assert_memory_equal(src, dst, sizeof src);
}

static void test_resize_area_half(void **state)
{
    (void)state;
    enum { H = 6, W = 8 };
    uint8_t src[H * W], dst[(H / 2) * (W / 2)];
    uint32_t rs = 11;
    for (int i = 0; i < H * W; i++) src[i] = (uint8_t)dt_rand(&rs);
    csnn__image_resize(src, H, W, dst, H / 2, W / 2);
    for (int y = 0; y < H / 2; y++)
        for (int x = 0; x < W / 2; x++) {
            int sum = src[(2 * y) * W + 2 * x] + src[(2 * y) * W + 2 * x + 1] +
                      src[(2 * y + 1) * W + 2 * x] + src[(2 * y + 1) * W + 2 * x + 1];
            assert_int_equal(dst[y * (W / 2) + x], (sum + 2) / 4); /* mean, half up */
        }
    /* A non-integer ratio by hand: 3 -> 2 covers [0, 1.5) and [1.5, 3). */
    uint8_t row[3] = {30, 60, 90}, out[2];
    csnn__image_resize(row, 1, 3, out, 1, 2);
    assert_int_equal(out[0], 40); /* (30 + 0.5 * 60) / 1.5 */
    assert_int_equal(out[1], 80); /* (0.5 * 60 + 90) / 1.5 */
}

static void test_resize_bilinear_enlarge(void **state)
{
    (void)state;
    /* 2x2 -> 4x4, pixel centres aligned (align_corners=False), edges
     * clamped: source coordinates -0.25 (-> 0), 0.25, 0.75, 1.25 (-> 1);
     * taps (1), (0.75, 0.25), (0.25, 0.75), (1) per axis. Rows become
     * [0 25 75 100] and [200 160 80 40]; the middle rows mix them 3:1. */
    const uint8_t src[4] = {0, 100, 200, 40};
    const uint8_t want[16] = {0,   25,  75, 100, /* row 0 */
                              50,  59,  76, 85,  /* .75 r0 + .25 r1: 58.75, 76.25 */
                              150, 126, 79, 55,  /* .25 r0 + .75 r1: 126.25, 78.75 */
                              200, 160, 80, 40};
    uint8_t dst[16];
    csnn__image_resize(src, 2, 2, dst, 4, 4);
    assert_memory_equal(dst, want, sizeof want);
    /* mixed: enlarge rows, shrink columns */
    uint8_t m[2 * 4] = {10, 30, 50, 70, 90, 110, 130, 150}, mo[4 * 2];
    csnn__image_resize(m, 2, 4, mo, 4, 2);
    const uint8_t mwant[8] = {20, 60, 40, 80, 80, 120, 100, 140};
    assert_memory_equal(mo, mwant, sizeof mwant);
}

static void test_decode_with_resize(void **state)
{
    (void)state;
    enum { S = 96 };
    uint8_t *src = malloc(S * S);
    uint32_t rs = 5;
    for (int i = 0; i < S * S; i++) src[i] = (uint8_t)dt_rand(&rs);
    char *path = dt_fmt("%s/big.png", tmp_dir);
    dt_write_gray_png(path, src, S, S);
    uint8_t got[48 * 48], want[48 * 48];
    dt_assert_ok(decode_file(path, 48, 48, got));
    csnn__image_resize(src, S, S, want, 48, 48);
    assert_memory_equal(got, want, sizeof got);
    /* enlarge through the decoder as well */
    uint8_t small[4] = {0, 100, 200, 40}, big[16], ref[16];
    char *p2 = dt_fmt("%s/small.png", tmp_dir);
    dt_write_gray_png(p2, small, 2, 2);
    dt_assert_ok(decode_file(p2, 4, 4, big));
    csnn__image_resize(small, 2, 2, ref, 4, 4);
    assert_memory_equal(big, ref, sizeof big);
    free(p2);
    free(path);
    free(src);
}

/* ------------------------------------------------------------------------ */
/* Broken input                                                              */
/* ------------------------------------------------------------------------ */

static uint8_t *make_png_bytes(size_t *n)
{
    uint8_t px[20 * 20];
    for (int i = 0; i < 400; i++) px[i] = (uint8_t)(i * 3);
    char *path = dt_fmt("%s/ok.png", tmp_dir);
    dt_write_gray_png(path, px, 20, 20);
    uint8_t *d = dt_read_bytes(path, n);
    free(path);
    return d;
}

static uint8_t *make_jpeg_bytes(size_t *n, bool progressive)
{
    uint8_t rgb[JW * JH * 3];
    make_rgb(rgb);
    char *path = dt_fmt("%s/ok.jpg", tmp_dir);
    dt_write_jpeg(path, rgb, JW, JH, 3, JCS_RGB, 90, progressive);
    uint8_t *d = dt_read_bytes(path, n);
    free(path);
    return d;
}

static void test_truncated_png(void **state)
{
    (void)state;
    size_t n;
    uint8_t *d = make_png_bytes(&n);
    uint8_t out[400];
    dt_assert_ok(csnn__image_decode(d, n, "ok.png", 1 << 24, 20, 20, out));
    const size_t cuts[] = {1, 7, 8, 12, 20, 33, 40, n / 2, n - 13, n - 12, n - 4, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        dt_assert_error(csnn__image_decode(d, cuts[i], "cut.png", 1 << 24, 20, 20, out),
                        CSNN_ERR_FORMAT, "cut.png");
    free(d);
}

static void test_truncated_jpeg(void **state)
{
    (void)state;
    for (int prog = 0; prog <= 1; prog++) {
        size_t n;
        uint8_t *d = make_jpeg_bytes(&n, prog);
        uint8_t out[JW * JH];
        dt_assert_ok(csnn__image_decode(d, n, "ok.jpg", 1 << 24, JH, JW, out));
        const size_t cuts[] = {1, 2, 3, 10, 50, 200, n / 3, n / 2, n - 10, n - 2, n - 1};
        for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
            dt_assert_error(csnn__image_decode(d, cuts[i], "cut.jpg", 1 << 24, JH, JW, out),
                            CSNN_ERR_FORMAT, "cut.jpg");
        free(d);
    }
}

static void test_garbage(void **state)
{
    (void)state;
    uint8_t out[48 * 48];
    uint8_t junk[4096];
    uint32_t rs = 3;
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)dt_rand(&rs);
    dt_assert_error(csnn__image_decode(junk, sizeof junk, "junk.bin", 1 << 24, 48, 48, out),
                    CSNN_ERR_FORMAT, "junk.bin");
    dt_assert_error(csnn__image_decode(junk, 0, "empty.png", 1 << 24, 48, 48, out),
                    CSNN_ERR_FORMAT, "empty");
    /* magic followed by garbage */
    memcpy(junk, "\x89PNG\r\n\x1a\n", 8);
    dt_assert_error(csnn__image_decode(junk, sizeof junk, "junk.png", 1 << 24, 48, 48, out),
                    CSNN_ERR_FORMAT, "junk.png");
    memcpy(junk, "\xff\xd8\xff", 3);
    dt_assert_error(csnn__image_decode(junk, sizeof junk, "junk.jpg", 1 << 24, 48, 48, out),
                    CSNN_ERR_FORMAT, "junk.jpg");
    const char *text = "this is not a PNG\n";
    dt_assert_error(csnn__image_decode((const uint8_t *)text, strlen(text), "text.png", 1 << 24,
                                       48, 48, out),
                    CSNN_ERR_FORMAT, "text.png");
}

/* Random byte mutations never crash; the result is OK or FORMAT. */
static void test_mutations(void **state)
{
    (void)state;
    size_t np, nj;
    uint8_t *png = make_png_bytes(&np);
    uint8_t *jpg = make_jpeg_bytes(&nj, true);
    uint8_t *buf = malloc(np > nj ? np : nj);
    uint8_t out[JW * JH > 400 ? JW * JH : 400];
    uint32_t rs = 17;
    int iters = getenv("CSNN_UNDER_VALGRIND") ? 40 : 400;
    for (int it = 0; it < iters; it++) {
        bool use_png = it % 2 == 0;
        const uint8_t *src = use_png ? png : jpg;
        size_t n = use_png ? np : nj;
        memcpy(buf, src, n);
        int flips = 1 + (int)(dt_rand(&rs) % 4);
        for (int k = 0; k < flips; k++) buf[dt_rand(&rs) % n] ^= (uint8_t)(1 + dt_rand(&rs) % 255);
        csnn_status st = csnn__image_decode(buf, n, "mut", 1 << 24, use_png ? 20 : JH,
                                            use_png ? 20 : JW, out);
        if (st != CSNN_OK && st != CSNN_ERR_FORMAT && st != CSNN_ERR_LIMIT)
            fail_msg("mutation %d: %s: %s", it, csnn_status_name(st), csnn_last_error_message());
    }
    free(buf);
    free(png);
    free(jpg);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A PNG signature and IHDR declaring w x h, then IEND: no pixel data. */
static size_t make_header_only_png(uint8_t *buf, uint32_t w, uint32_t h)
{
    memcpy(buf, "\x89PNG\r\n\x1a\n", 8);
    uint8_t *c = buf + 8;
    put_be32(c, 13);
    memcpy(c + 4, "IHDR", 4);
    put_be32(c + 8, w);
    put_be32(c + 12, h);
    c[16] = 8; /* depth */
    c[17] = 0; /* gray */
    c[18] = c[19] = c[20] = 0;
    put_be32(c + 21, (uint32_t)crc32(0, c + 4, 17));
    uint8_t *e = c + 25;
    put_be32(e, 0);
    memcpy(e + 4, "IEND", 4);
    put_be32(e + 8, (uint32_t)crc32(0, e + 4, 4));
    return 8 + 25 + 12;
}

static void test_huge_dimensions(void **state)
{
    (void)state;
    uint8_t buf[64], out[48 * 48];
    size_t n = make_header_only_png(buf, 100000, 100000);
    /* 1e10 pixels: rejected from the header, before any allocation */
    dt_assert_error(csnn__image_decode(buf, n, "huge.png", 16777216, 48, 48, out),
                    CSNN_ERR_LIMIT, "max_image_pixels");
    n = make_header_only_png(buf, 2000000, 10);
    dt_assert_error(csnn__image_decode(buf, n, "wide.png", 16777216, 48, 48, out),
                    CSNN_ERR_LIMIT, "wide.png");
    /* within the limit but without data: FORMAT */
    n = make_header_only_png(buf, 30, 30);
    dt_assert_error(csnn__image_decode(buf, n, "nodata.png", 16777216, 48, 48, out),
                    CSNN_ERR_FORMAT, "nodata.png");
    /* the limit is inclusive: 20x20 = 400 */
    size_t np;
    uint8_t *png = make_png_bytes(&np);
    dt_assert_ok(csnn__image_decode(png, np, "ok.png", 400, 20, 20, out));
    dt_assert_error(csnn__image_decode(png, np, "ok.png", 399, 20, 20, out), CSNN_ERR_LIMIT,
                    "399");
    free(png);
    size_t nj;
    uint8_t *jpg = make_jpeg_bytes(&nj, false);
    dt_assert_error(csnn__image_decode(jpg, nj, "ok.jpg", 100, 48, 48, out), CSNN_ERR_LIMIT,
                    "ok.jpg");
    free(jpg);
}

/* ------------------------------------------------------------------------ */
/* csnn_image_load                                                           */
/* ------------------------------------------------------------------------ */

static void test_image_load(void **state)
{
    (void)state;
    uint8_t px[48 * 48], out[48 * 48];
    for (int i = 0; i < 48 * 48; i++) px[i] = (uint8_t)(i * 13);
    char *path = dt_fmt("%s/face.png", tmp_dir);
    dt_write_gray_png(path, px, 48, 48);
    dt_assert_ok(csnn_image_load(path, NULL, out, sizeof out));
    assert_memory_equal(out, px, sizeof px);

    csnn_dataset_options o;
    csnn_dataset_options_init(&o);
    o.height = o.width = 24;
    uint8_t small[24 * 24], ref[24 * 24];
    dt_assert_ok(csnn_image_load(path, &o, small, sizeof small));
    csnn__image_resize(px, 48, 48, ref, 24, 24);
    assert_memory_equal(small, ref, sizeof ref);

    dt_assert_error(csnn_image_load(path, NULL, out, 100), CSNN_ERR_SHAPE, "cap");
    dt_assert_error(csnn_image_load(NULL, NULL, out, sizeof out), CSNN_ERR_INVALID_ARGUMENT,
                    "path");
    char *missing = dt_fmt("%s/missing.png", tmp_dir);
    dt_assert_error(csnn_image_load(missing, NULL, out, sizeof out), CSNN_ERR_IO, missing);
    dt_assert_error(csnn_image_load(tmp_dir, NULL, out, sizeof out), CSNN_ERR_IO,
                    "not a regular file");
    char *text = dt_fmt("%s/notes.png", tmp_dir);
    dt_write_text(text, "hello\n");
    dt_assert_error(csnn_image_load(text, NULL, out, sizeof out), CSNN_ERR_FORMAT, text);
    char *empty = dt_fmt("%s/empty.jpg", tmp_dir);
    dt_write_bytes(empty, "", 0);
    dt_assert_error(csnn_image_load(empty, NULL, out, sizeof out), CSNN_ERR_FORMAT, "empty");
    /* a FIFO is refused without blocking */
    char *fifo = dt_fmt("%s/fifo.png", tmp_dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    dt_assert_error(csnn_image_load(fifo, NULL, out, sizeof out), CSNN_ERR_IO, fifo);
    /* a (sparse) file above the 256 MiB read limit: refused before reading */
    char *huge = dt_fmt("%s/huge.png", tmp_dir);
    FILE *hf = fopen(huge, "wb");
    assert_non_null(hf);
    assert_int_equal(ftruncate(fileno(hf), (off_t)257 << 20), 0);
    fclose(hf);
    dt_assert_error(csnn_image_load(huge, NULL, out, sizeof out), CSNN_ERR_LIMIT, "268435456");
    free(huge);
    /* JPEG content under a .png name: the magic decides */
    uint8_t rgb[JW * JH * 3];
    make_rgb(rgb);
    char *liar = dt_fmt("%s/really_jpeg.png", tmp_dir);
    dt_write_jpeg(liar, rgb, JW, JH, 3, JCS_RGB, 90, false);
    o.height = JH;
    o.width = JW;
    uint8_t jout[JW * JH];
    dt_assert_ok(csnn_image_load(liar, &o, jout, sizeof jout));
    o.max_image_pixels = 10;
    dt_assert_error(csnn_image_load(liar, &o, jout, sizeof jout), CSNN_ERR_LIMIT, liar);
    free(liar);
    free(fifo);
    free(empty);
    free(text);
    free(missing);
    free(path);
}

static void test_options(void **state)
{
    (void)state;
    csnn_dataset_options o;
    csnn_dataset_options_init(&o);
    assert_int_equal(o.size, sizeof o);
    assert_int_equal(o.height, 48);
    assert_int_equal(o.width, 48);
    assert_int_equal(o.skip_bad, 0);
    assert_int_equal(o.n_threads, 0);
    assert_int_equal(o.max_image_pixels, 16777216);
    assert_int_equal(o.max_samples, 16777216);
    assert_null(o.usage);
    assert_int_equal(o.reserved, 0);
    csnn_dataset_options_init(NULL);

    uint8_t out[48 * 48];
    const char *p = "/nonexistent.png";
    csnn_dataset_options b = o;
    b.reserved = 1;
    dt_assert_error(csnn_image_load(p, &b, out, sizeof out), CSNN_ERR_INVALID_ARGUMENT, "reserved");
    b = o;
    b.size = 8;
    dt_assert_error(csnn_image_load(p, &b, out, sizeof out), CSNN_ERR_ABI_STRUCT_SIZE, "size");
    b = o;
    b.height = 0;
    dt_assert_error(csnn_image_load(p, &b, out, sizeof out), CSNN_ERR_INVALID_ARGUMENT, "height");
    b = o;
    b.width = 4097;
    dt_assert_error(csnn_image_load(p, &b, out, sizeof out), CSNN_ERR_INVALID_ARGUMENT, "4096");
    b = o;
    b.skip_bad = 2;
    dt_assert_error(csnn_image_load(p, &b, out, sizeof out), CSNN_ERR_INVALID_ARGUMENT, "skip_bad");
    b = o;
    b.n_threads = -1;
    dt_assert_error(csnn_image_load(p, &b, out, sizeof out), CSNN_ERR_INVALID_ARGUMENT,
                    "n_threads");
    b = o;
    b.max_image_pixels = 0;
    dt_assert_error(csnn_image_load(p, &b, out, sizeof out), CSNN_ERR_INVALID_ARGUMENT,
                    "max_image_pixels");
    b = o;
    b.max_samples = -5;
    dt_assert_error(csnn_image_load(p, &b, out, sizeof out), CSNN_ERR_INVALID_ARGUMENT,
                    "max_samples");
    /* a larger struct from a newer header: its tail must be zero */
    struct {
        csnn_dataset_options o;
        uint64_t extra;
    } big;
    memset(&big, 0, sizeof big);
    csnn_dataset_options_init(&big.o);
    big.o.size = sizeof big;
    dt_assert_error(csnn_image_load(p, &big.o, out, sizeof out), CSNN_ERR_IO, p);
    big.extra = 1;
    dt_assert_error(csnn_image_load(p, &big.o, out, sizeof out), CSNN_ERR_ABI_STRUCT_SIZE, "zero");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_all_types),
        cmocka_unit_test(test_jpeg_gray),
        cmocka_unit_test(test_jpeg_rgb_baseline_and_progressive),
        cmocka_unit_test(test_jpeg_cmyk),
        cmocka_unit_test(test_jpeg_ycck),
        cmocka_unit_test(test_resize_identity),
        cmocka_unit_test(test_resize_area_half),
        cmocka_unit_test(test_resize_bilinear_enlarge),
        cmocka_unit_test(test_decode_with_resize),
        cmocka_unit_test(test_truncated_png),
        cmocka_unit_test(test_truncated_jpeg),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_huge_dimensions),
        cmocka_unit_test(test_image_load),
        cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
