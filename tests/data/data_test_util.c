/* data_test_util.c - see data_test_util.h */
#include <errno.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <png.h>

#include "data_test_util.h"

char *dt_fmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

char *dt_mkdtemp(void)
{
    const char *tmp = getenv("TMPDIR");
    char *path = dt_fmt("%s/csnn-data-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(path)) fail_msg("mkdtemp(%s): %s", path, strerror(errno));
    return path;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP) rmdir(path);
    else unlink(path);
    return 0;
}

void dt_rmtree(const char *path)
{
    if (path) nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void dt_mkdir(const char *path)
{
    if (mkdir(path, 0755) != 0) fail_msg("mkdir(%s): %s", path, strerror(errno));
}

void dt_write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("fopen(%s): %s", path, strerror(errno));
    if (n) assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

void dt_write_text(const char *path, const char *text)
{
    dt_write_bytes(path, text, strlen(text));
}

uint8_t *dt_read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("fopen(%s): %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return buf;
}

uint32_t dt_rand(uint32_t *s)
{
    /* xorshift32 */
    uint32_t x = *s ? *s : 0x12345678u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

/* ------------------------------------------------------------------------ */
/* PNG                                                                       */
/* ------------------------------------------------------------------------ */

int dt_png_channels(int color)
{
    switch (color) {
    case PNG_COLOR_TYPE_GRAY: return 1;
    case PNG_COLOR_TYPE_GRAY_ALPHA: return 2;
    case PNG_COLOR_TYPE_RGB: return 3;
    case PNG_COLOR_TYPE_RGB_ALPHA: return 4;
    case PNG_COLOR_TYPE_PALETTE: return 1;
    }
    return 0;
}

/* Packs one row of samples at the PNG bit depth. */
static void pack_row(const uint16_t *s, int n, int depth, uint8_t *out)
{
    if (depth == 16) {
        for (int i = 0; i < n; i++) {
            out[2 * i] = (uint8_t)(s[i] >> 8);
            out[2 * i + 1] = (uint8_t)s[i];
        }
    } else if (depth == 8) {
        for (int i = 0; i < n; i++) out[i] = (uint8_t)s[i];
    } else {
        int per = 8 / depth;
        memset(out, 0, (size_t)(n + per - 1) / (size_t)per);
        for (int i = 0; i < n; i++)
            out[i / per] |= (uint8_t)(s[i] << (8 - depth * (i % per + 1)));
    }
}

void dt_write_png(const char *path, const dt_png *p)
{
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("fopen(%s): %s", path, strerror(errno));
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(png);
    assert_non_null(info);
    int ch = dt_png_channels(p->color);
    size_t rowbytes = (size_t)p->width * (size_t)ch * 2 + 8;
    uint8_t *rows = calloc((size_t)p->height, rowbytes);
    png_bytep *ptrs = calloc((size_t)p->height, sizeof(png_bytep));
    assert_non_null(rows);
    assert_non_null(ptrs);
    if (setjmp(png_jmpbuf(png))) fail_msg("libpng failed writing %s", path);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)p->width, (png_uint_32)p->height, p->depth, p->color,
                 p->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (p->color == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[256];
        for (int i = 0; i < p->n_palette; i++) {
            pal[i].red = p->palette[3 * i];
            pal[i].green = p->palette[3 * i + 1];
            pal[i].blue = p->palette[3 * i + 2];
        }
        png_set_PLTE(png, info, pal, p->n_palette);
        if (p->n_trns > 0) png_set_tRNS(png, info, p->trns, p->n_trns, NULL);
    } else if (p->gray_rgb_trns) {
        png_color_16 tc = {0, 1, 1, 1, 1};
        png_set_tRNS(png, info, NULL, 0, &tc);
    }
    png_write_info(png, info);
    for (int y = 0; y < p->height; y++) {
        ptrs[y] = rows + (size_t)y * rowbytes;
        pack_row(p->samples + (size_t)y * p->width * ch, p->width * ch, p->depth, ptrs[y]);
    }
    png_write_image(png, ptrs);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    free(ptrs);
    assert_int_equal(fclose(f), 0);
}

void dt_write_gray_png(const char *path, const uint8_t *px, int h, int w)
{
    uint16_t *s = malloc((size_t)h * (size_t)w * sizeof(uint16_t));
    assert_non_null(s);
    for (int i = 0; i < h * w; i++) s[i] = px[i];
    dt_png p = {w, h, 8, PNG_COLOR_TYPE_GRAY, false, s, NULL, 0, NULL, 0, false};
    dt_write_png(path, &p);
    free(s);
}

/* ------------------------------------------------------------------------ */
/* JPEG                                                                      */
/* ------------------------------------------------------------------------ */

typedef struct {
    struct jpeg_error_mgr mgr;
    jmp_buf jb;
} dt_jerr;

static void dt_jpeg_exit(j_common_ptr c)
{
    longjmp(((dt_jerr *)(void *)c->err)->jb, 1);
}

void dt_write_jpeg(const char *path, const uint8_t *samples, int w, int h, int comps,
                   J_COLOR_SPACE cs, int quality, bool progressive)
{
    struct jpeg_compress_struct ci;
    dt_jerr err;
    ci.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = dt_jpeg_exit;
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("fopen(%s): %s", path, strerror(errno));
    if (setjmp(err.jb)) fail_msg("libjpeg failed writing %s", path);
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = comps;
    ci.in_color_space = cs;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, quality, TRUE);
    if (progressive) jpeg_simple_progression(&ci);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(samples + (size_t)ci.next_scanline * (size_t)w * (size_t)comps);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    assert_int_equal(fclose(f), 0);
}

uint8_t *dt_decode_jpeg(const uint8_t *data, size_t n, J_COLOR_SPACE out_cs, int *w, int *h,
                        int *comps)
{
    struct jpeg_decompress_struct ci;
    dt_jerr err;
    uint8_t *volatile out = NULL;
    ci.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = dt_jpeg_exit;
    if (setjmp(err.jb)) {
        jpeg_destroy_decompress(&ci);
        free(out);
        return NULL;
    }
    jpeg_create_decompress(&ci);
    jpeg_mem_src(&ci, data, (unsigned long)n);
    jpeg_read_header(&ci, TRUE);
    ci.out_color_space = out_cs;
    jpeg_start_decompress(&ci);
    *w = (int)ci.output_width;
    *h = (int)ci.output_height;
    *comps = ci.output_components;
    out = malloc((size_t)*w * (size_t)*h * (size_t)*comps);
    while (ci.output_scanline < ci.output_height) {
        JSAMPROW row = out + (size_t)ci.output_scanline * (size_t)*w * (size_t)*comps;
        jpeg_read_scanlines(&ci, &row, 1);
    }
    jpeg_finish_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    return out;
}

/* ------------------------------------------------------------------------ */
/* Context with a log                                                        */
/* ------------------------------------------------------------------------ */

int dt_log_warnings;
char dt_log_last[1024];

static void on_log(void *user, csnn_log_level level, const char *message)
{
    (void)user;
    if (level == CSNN_LOG_WARN) {
        dt_log_warnings++;
        snprintf(dt_log_last, sizeof dt_log_last, "%s", message);
    }
}

void dt_log_reset(void)
{
    dt_log_warnings = 0;
    dt_log_last[0] = '\0';
}

csnn_context *dt_context(void)
{
    csnn_context_options o;
    csnn_context_options_init(&o);
    o.n_threads = 2;
    o.log_level = CSNN_LOG_WARN;
    o.log_fn = on_log;
    csnn_context *ctx = NULL;
    dt_assert_ok(csnn_context_create(&o, &ctx));
    dt_log_reset();
    return ctx;
}
