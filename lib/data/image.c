/*
 * image.c - PNG (libpng) and JPEG (libjpeg-turbo's libjpeg API) decoding to
 * 8-bit grayscale, the resizer, and csnn_image_load.
 *
 * Grayscale is PIL's "L" conversion: L = (R*19595 + G*38470 + B*7471 +
 * 0x8000) >> 16 on 8-bit values (ITU-R BT.601 luma). 16-bit samples are
 * first reduced to 8 bits by rounding v*255/65535; alpha (and tRNS) is
 * ignored, as convert("L") ignores it; gAMA/sRGB/iCCP are ignored, as PIL
 * ignores them. JPEG CMYK/YCCK is converted to RGB as PIL does for JPEG
 * (it assumes Adobe's inverted CMYK: with libjpeg's values c, m, y, k,
 * R = k - MULDIV255(255 - c, k), i.e. R ~ c*k/255), then luma.
 *
 * The format is recognised by its magic bytes, never by the file name.
 * Both decoders use setjmp/longjmp error handlers, so corrupt input returns
 * FORMAT and never reaches libpng's or libjpeg's default exit(). The image
 * dimensions are checked against max_pixels from the header, before any
 * pixel buffer is allocated.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "data_private.h"

/* A JPEG with more scans than this is rejected (a progressive JPEG with
 * thousands of tiny scans is a known way to make libjpeg spin). */
#define MAX_JPEG_SCANS 1000

/* ------------------------------------------------------------------------ */
/* Reading files                                                             */
/* ------------------------------------------------------------------------ */

csnn_status csnn__data_open_regular(const char *path, int *fd_out, int64_t *size)
{
    *fd_out = -1;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return csnn__error(CSNN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return csnn__error(CSNN_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return csnn__error(CSNN_ERR_IO, "%s: not a regular file", path);
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags != -1) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    *fd_out = fd;
    *size = (int64_t)st.st_size;
    return CSNN_OK;
}

csnn_status csnn__data_read_file(const char *path, uint8_t **data, size_t *size)
{
    *data = NULL;
    *size = 0;
    int fd;
    int64_t file_size;
    CSNN_TRY(csnn__data_open_regular(path, &fd, &file_size));
    if (file_size > CSNN_DATA_MAX_FILE_BYTES) {
        close(fd);
        return csnn__error(CSNN_ERR_LIMIT, "%s: %lld bytes, above the limit of %lld bytes", path,
                           (long long)file_size, (long long)CSNN_DATA_MAX_FILE_BYTES);
    }
    /* Read one byte beyond the size fstat gave, to notice a file that grew. */
    size_t cap = (size_t)file_size + 1;
    uint8_t *buf = csnn__alloc_array(cap, 1, path);
    if (!buf) {
        close(fd);
        return CSNN_ERR_OUT_OF_MEMORY;
    }
    size_t got = 0;
    while (got < cap) {
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return csnn__error(CSNN_ERR_IO, "%s: read error: %s", path, strerror(e));
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got == cap) {
        free(buf);
        return csnn__error(CSNN_ERR_IO, "%s: the file changed while it was read", path);
    }
    *data = buf;
    *size = got;
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Pixel conversion                                                          */
/* ------------------------------------------------------------------------ */

static inline uint8_t luma(unsigned r, unsigned g, unsigned b)
{
    return (uint8_t)((r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16);
}

/* round(v * 255 / 65535) */
static inline unsigned to8(unsigned v16)
{
    return (v16 * 255u + 32767u) / 65535u;
}

/* PIL's MULDIV255: a*b/255 rounded. */
static inline unsigned muldiv255(unsigned a, unsigned b)
{
    unsigned t = a * b + 128u;
    return ((t >> 8) + t) >> 8;
}

typedef enum { PIX_GRAY, PIX_RGB, PIX_CMYK } pixel_kind;

/*
 * One row of w pixels, `channels` samples each of 8 bits (or 16 bits big
 * endian when wide), to gray. GRAY uses sample 0 (a second, alpha, sample is
 * ignored), RGB samples 0..2 (a fourth, alpha, ignored), CMYK all four.
 */
static void row_to_gray(const uint8_t *row, pixel_kind kind, int channels, bool wide, uint32_t w,
                        uint8_t *out)
{
    size_t step = (size_t)channels * (wide ? 2 : 1);
    for (uint32_t x = 0; x < w; x++, row += step) {
        unsigned s[4];
        int used = kind == PIX_GRAY ? 1 : kind == PIX_RGB ? 3 : 4;
        for (int c = 0; c < used; c++)
            s[c] = wide ? to8(((unsigned)row[2 * c] << 8) | row[2 * c + 1]) : row[c];
        switch (kind) {
        case PIX_GRAY: out[x] = (uint8_t)s[0]; break;
        case PIX_RGB: out[x] = luma(s[0], s[1], s[2]); break;
        case PIX_CMYK: {
            /* PIL: raw mode "CMYK;I" inverts the stored (Adobe) values,
             * C = 255 - c, K = 255 - k; then cmyk2rgb: R = nk - MULDIV255(C,
             * nk) with nk = 255 - K = k, i.e. R ~ c * k / 255. */
            unsigned nk = s[3];
            unsigned r = nk - muldiv255(255u - s[0], nk);
            unsigned g = nk - muldiv255(255u - s[1], nk);
            unsigned b = nk - muldiv255(255u - s[2], nk);
            out[x] = luma(r, g, b);
            break;
        }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Where decoded pixels go                                                   */
/* ------------------------------------------------------------------------ */

/* A decode writes the source image, w x h, to `gray`: the caller's dst
 * itself when no resizing is needed, else a scratch buffer resized into dst
 * at the end. */
typedef struct {
    const char *name;
    int64_t max_pixels;
    int32_t out_h, out_w;
    uint8_t *dst;
    uint8_t *gray;
    uint32_t w, h;
} decode_target;

/* Checks image dimensions read from a header against the limit. */
static csnn_status check_dims(const decode_target *t, const char *format, uint32_t w, uint32_t h)
{
    if (w == 0 || h == 0)
        return csnn__error(CSNN_ERR_FORMAT, "%s: %s: zero image size %ux%u", t->name, format, w,
                           h);
    /* unsigned 64 bits: (2^32 - 1)^2 fits, where a signed product of two
     * 32-bit sizes from a header can overflow (and come out negative) */
    uint64_t pixels = (uint64_t)w * (uint64_t)h;
    if (t->max_pixels < 0 || pixels > (uint64_t)t->max_pixels)
        return csnn__error(CSNN_ERR_LIMIT,
                           "%s: %s image of %ux%u = %llu pixels is above the limit of %lld "
                           "(max_image_pixels)",
                           t->name, format, w, h, (unsigned long long)pixels,
                           (long long)t->max_pixels);
    return CSNN_OK;
}

/* Checks the dimensions and sets up `gray`. Sets the error message and
 * returns its status on failure. */
static csnn_status target_begin(decode_target *t, const char *format, uint32_t w, uint32_t h)
{
    CSNN_TRY(check_dims(t, format, w, h));
    t->w = w;
    t->h = h;
    if ((int64_t)w == t->out_w && (int64_t)h == t->out_h) {
        t->gray = t->dst;
        return CSNN_OK;
    }
    t->gray = csnn__alloc_array((size_t)w, (size_t)h, t->name);
    return t->gray ? CSNN_OK : CSNN_ERR_OUT_OF_MEMORY;
}

static void target_release(decode_target *t)
{
    if (t->gray && t->gray != t->dst) free(t->gray);
    t->gray = NULL;
}

static void target_finish(decode_target *t)
{
    if (t->gray != t->dst)
        csnn__image_resize(t->gray, (int32_t)t->h, (int32_t)t->w, t->dst, t->out_h, t->out_w);
    target_release(t);
}

/* ------------------------------------------------------------------------ */
/* PNG                                                                       */
/* ------------------------------------------------------------------------ */

/* Everything that changes after setjmp lives here, outside the frame that
 * calls setjmp, so that longjmp leaves it well defined. */
typedef struct {
    decode_target *t;
    const uint8_t *data;
    size_t size, pos;
    png_structp png;
    png_infop info;
    uint8_t *rows; /* one row, or the whole image when interlaced */
    png_bytep *row_ptrs;
    csnn_status st; /* set before a longjmp that is not a libpng error */
    char msg[200];
    jmp_buf jb;
} png_job;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_job *j = png_get_error_ptr(png);
    snprintf(j->msg, sizeof j->msg, "%s", msg ? msg : "error");
    longjmp(j->jb, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* warnings (bad ancillary chunks) do not change the pixels */
}

static void png_on_read(png_structp png, png_bytep out, png_size_t n)
{
    png_job *j = png_get_io_ptr(png);
    if (n > j->size - j->pos) png_error(png, "file is truncated");
    memcpy(out, j->data + j->pos, n);
    j->pos += n;
}

/* The part of the PNG decode that runs under setjmp. */
static csnn_status png_run(png_job *j)
{
    if (setjmp(j->jb)) {
        if (j->st != CSNN_OK) return j->st;
        /* png_malloc's failure: a host problem, not a bad file */
        csnn_status st = strcasecmp(j->msg, "Out of memory") == 0 ? CSNN_ERR_OUT_OF_MEMORY
                                                                   : CSNN_ERR_FORMAT;
        return csnn__error(st, "%s: PNG: %s", j->t->name, j->msg);
    }
    png_set_read_fn(j->png, j, png_on_read);
    /* Our own max_pixels check replaces libpng's default 1e6 x 1e6 limit. */
    png_set_user_limits(j->png, 0x7fffffff, 0x7fffffff);
    /* Decompressed ancillary chunks (zTXt, iTXt, iCCP: all ignored here)
     * get at most the file's size; a larger one is skipped with a warning. */
    png_set_chunk_malloc_max(j->png, (png_alloc_size_t)j->size + 1);
    png_read_info(j->png, j->info);

    png_uint_32 w, h;
    int depth, color, interlace;
    png_get_IHDR(j->png, j->info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    csnn_status st = target_begin(j->t, "PNG", w, h);
    if (st != CSNN_OK) return st;

    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(j->png);
    if ((color & PNG_COLOR_MASK_COLOR) == 0 && depth < 8) png_set_expand_gray_1_2_4_to_8(j->png);
    int passes = png_set_interlace_handling(j->png);
    png_read_update_info(j->png, j->info);

    int channels = png_get_channels(j->png, j->info);
    int out_depth = png_get_bit_depth(j->png, j->info);
    int out_color = png_get_color_type(j->png, j->info);
    size_t rowbytes = png_get_rowbytes(j->png, j->info);
    bool wide = out_depth == 16;
    pixel_kind kind = (out_color & PNG_COLOR_MASK_COLOR) ? PIX_RGB : PIX_GRAY;
    if ((out_depth != 8 && out_depth != 16) || channels < (kind == PIX_RGB ? 3 : 1) ||
        rowbytes < (size_t)w * (size_t)channels * (wide ? 2u : 1u)) {
        j->st = csnn__error(CSNN_ERR_FORMAT, "%s: PNG: unsupported layout (depth %d, %d channels)",
                            j->t->name, out_depth, channels);
        return j->st;
    }

    if (passes <= 1 && kind == PIX_GRAY && channels == 1 && !wide) {
        /* 8-bit gray (FER2013's PNGs): rows go straight to the target. */
        for (png_uint_32 y = 0; y < h; y++) png_read_row(j->png, j->t->gray + (size_t)y * w, NULL);
    } else if (passes <= 1) {
        j->rows = csnn__alloc_array(rowbytes, 1, j->t->name);
        if (!j->rows) return CSNN_ERR_OUT_OF_MEMORY;
        for (png_uint_32 y = 0; y < h; y++) {
            png_read_row(j->png, j->rows, NULL);
            row_to_gray(j->rows, kind, channels, wide, w, j->t->gray + (size_t)y * w);
        }
    } else {
        /* Interlaced: libpng needs the whole image (at most 8 bytes per
         * pixel of an image that passed the max_pixels check). */
        j->rows = csnn__alloc_array(rowbytes, h, j->t->name);
        j->row_ptrs = csnn__alloc_array(h, sizeof(png_bytep), j->t->name);
        if (!j->rows || !j->row_ptrs) return CSNN_ERR_OUT_OF_MEMORY;
        for (png_uint_32 y = 0; y < h; y++) j->row_ptrs[y] = j->rows + (size_t)y * rowbytes;
        png_read_image(j->png, j->row_ptrs);
        for (png_uint_32 y = 0; y < h; y++)
            row_to_gray(j->row_ptrs[y], kind, channels, wide, w, j->t->gray + (size_t)y * w);
    }
    /* Up to IEND: a file cut after its pixel data is still truncated. */
    png_read_end(j->png, NULL);
    return CSNN_OK;
}

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Checks that every chunk up to IEND fits in the file, as libpng allocates
 * an ancillary chunk's buffer from its declared length (up to 2 GB) before
 * it reads the chunk and finds the file too short. A chunk header cut off
 * at the end is left to libpng (it reports the truncation). */
static csnn_status check_png_chunks(const uint8_t *data, size_t size, const char *name)
{
    size_t pos = 8;
    while (size - pos >= 8) {
        uint32_t len = be32(data + pos);
        size_t left = size - pos - 8; /* after the length and the type */
        if (len > left || left - len < 4)
            return csnn__error(CSNN_ERR_FORMAT,
                               "%s: PNG: a chunk of %u bytes at offset %zu runs past the end of "
                               "the file (truncated?)",
                               name, len, pos);
        if (memcmp(data + pos + 4, "IEND", 4) == 0) break;
        pos += 12 + (size_t)len;
    }
    return CSNN_OK;
}

static csnn_status decode_png(const uint8_t *data, size_t size, decode_target *t)
{
    /* IHDR must be the first chunk: check the size there, before libpng
     * reads (and allocates for) any other chunk. */
    if (size >= 24 && memcmp(data + 12, "IHDR", 4) == 0 && be32(data + 16) != 0 &&
        be32(data + 20) != 0)
        CSNN_TRY(check_dims(t, "PNG", be32(data + 16), be32(data + 20)));
    CSNN_TRY(check_png_chunks(data, size, t->name));
    png_job *j = csnn__calloc_array(1, sizeof *j, "PNG decoder");
    if (!j) return CSNN_ERR_OUT_OF_MEMORY;
    j->t = t;
    j->data = data;
    j->size = size;
    j->st = CSNN_OK;
    csnn_status st;
    j->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, j, png_on_error, png_on_warning);
    if (j->png) j->info = png_create_info_struct(j->png);
    if (!j->png || !j->info)
        st = csnn__error(CSNN_ERR_OUT_OF_MEMORY, "%s: cannot create a PNG decoder", t->name);
    else
        st = png_run(j);
    png_destroy_read_struct(j->png ? &j->png : NULL, j->info ? &j->info : NULL, NULL);
    free(j->rows);
    free(j->row_ptrs);
    free(j);
    if (st == CSNN_OK)
        target_finish(t);
    else
        target_release(t);
    return st;
}

/* ------------------------------------------------------------------------ */
/* JPEG                                                                      */
/* ------------------------------------------------------------------------ */

typedef struct {
    struct jpeg_error_mgr err; /* first: cinfo->err points here */
    struct jpeg_progress_mgr progress;
    struct jpeg_decompress_struct cinfo;
    decode_target *t;
    uint8_t *row;
    csnn_status st;
    char msg[JMSG_LENGTH_MAX];
    jmp_buf jb;
} jpeg_job;

static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_job *j = (jpeg_job *)(void *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, j->msg);
    longjmp(j->jb, 1);
}

/* Warnings about corrupt or missing data are errors: the decoder would
 * otherwise fill the rest of the image with gray. Harmless ones (unknown
 * JFIF revision, stray bytes between markers, odd Adobe transform code, a
 * bad ICC marker) are ignored. */
static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    if (level >= 0) return; /* trace messages */
    int code = cinfo->err->msg_code;
    if (code == JWRN_EXTRANEOUS_DATA || code == JWRN_JFIF_MAJOR || code == JWRN_ADOBE_XFORM ||
        code == JWRN_BOGUS_ICC)
        return;
    jpeg_on_error(cinfo);
}

static void jpeg_on_progress(j_common_ptr cinfo)
{
    if (cinfo->is_decompressor) {
        j_decompress_ptr d = (j_decompress_ptr)cinfo;
        if (d->input_scan_number > MAX_JPEG_SCANS) {
            jpeg_job *j = (jpeg_job *)(void *)cinfo->err;
            snprintf(j->msg, sizeof j->msg, "more than %d scans", MAX_JPEG_SCANS);
            cinfo->err->msg_code = 0;
            longjmp(j->jb, 1);
        }
    }
}

static csnn_status jpeg_run(jpeg_job *j, const uint8_t *data, size_t size)
{
    if (setjmp(j->jb)) {
        if (j->st != CSNN_OK) return j->st;
        csnn_status st =
            j->err.msg_code == JERR_OUT_OF_MEMORY ? CSNN_ERR_OUT_OF_MEMORY : CSNN_ERR_FORMAT;
        return csnn__error(st, "%s: JPEG: %s", j->t->name, j->msg);
    }
    struct jpeg_decompress_struct *ci = &j->cinfo;
    jpeg_create_decompress(ci);
    ci->progress = &j->progress;
    jpeg_mem_src(ci, data, (unsigned long)size);
    jpeg_read_header(ci, TRUE);
    csnn_status st = target_begin(j->t, "JPEG", ci->image_width, ci->image_height);
    if (st != CSNN_OK) return st;

    pixel_kind kind;
    switch (ci->jpeg_color_space) {
    case JCS_GRAYSCALE:
        ci->out_color_space = JCS_GRAYSCALE;
        kind = PIX_GRAY;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        ci->out_color_space = JCS_CMYK;
        kind = PIX_CMYK;
        break;
    default: /* YCbCr, RGB: to RGB as PIL, then luma */
        ci->out_color_space = JCS_RGB;
        kind = PIX_RGB;
        break;
    }
    jpeg_start_decompress(ci);
    if (ci->output_width != j->t->w || ci->output_height != j->t->h ||
        ci->output_components != (kind == PIX_GRAY ? 1 : kind == PIX_RGB ? 3 : 4)) {
        j->st = csnn__error(CSNN_ERR_FORMAT, "%s: JPEG: unexpected output layout", j->t->name);
        return j->st;
    }
    j->row = csnn__alloc_array(ci->output_width, (size_t)ci->output_components, j->t->name);
    if (!j->row) return CSNN_ERR_OUT_OF_MEMORY;
    while (ci->output_scanline < ci->output_height) {
        uint32_t y = ci->output_scanline;
        JSAMPROW rp = j->row;
        if (jpeg_read_scanlines(ci, &rp, 1) != 1) {
            j->st = csnn__error(CSNN_ERR_FORMAT, "%s: JPEG: no data at row %u", j->t->name, y);
            return j->st;
        }
        row_to_gray(j->row, kind, ci->output_components, false, ci->output_width,
                    j->t->gray + (size_t)y * j->t->w);
    }
    jpeg_finish_decompress(ci);
    return CSNN_OK;
}

static csnn_status decode_jpeg(const uint8_t *data, size_t size, decode_target *t)
{
    jpeg_job *j = csnn__calloc_array(1, sizeof *j, "JPEG decoder");
    if (!j) return CSNN_ERR_OUT_OF_MEMORY;
    j->t = t;
    j->st = CSNN_OK;
    j->cinfo.err = jpeg_std_error(&j->err);
    j->err.error_exit = jpeg_on_error;
    j->err.emit_message = jpeg_on_message;
    j->progress.progress_monitor = jpeg_on_progress;
    csnn_status st = jpeg_run(j, data, size);
    jpeg_destroy_decompress(&j->cinfo);
    free(j->row);
    free(j);
    if (st == CSNN_OK)
        target_finish(t);
    else
        target_release(t);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Decode entry point                                                        */
/* ------------------------------------------------------------------------ */

csnn_status csnn__image_decode(const uint8_t *data, size_t size, const char *name,
                               int64_t max_pixels, int32_t out_h, int32_t out_w, uint8_t *dst)
{
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (name == NULL) name = "(image)";
    if (out_h < 1 || out_w < 1 || out_h > CSNN_DATA_MAX_SIDE || out_w > CSNN_DATA_MAX_SIDE ||
        dst == NULL || (data == NULL && size > 0))
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "%s: bad decode arguments", name);
    decode_target t = {name, max_pixels, out_h, out_w, dst, NULL, 0, 0};
    if (size == 0) return csnn__error(CSNN_ERR_FORMAT, "%s: empty file", name);
    if (size >= 8 && memcmp(data, png_magic, 8) == 0) return decode_png(data, size, &t);
    if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff)
        return decode_jpeg(data, size, &t);
    return csnn__error(CSNN_ERR_FORMAT, "%s: not a PNG or JPEG file (unknown signature)", name);
}

/* ------------------------------------------------------------------------ */
/* Resize                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * One axis of the resampler: identity, bilinear (enlarging; pixel centres
 * aligned as align_corners=False, edges clamped) or area averaging
 * (shrinking: each output pixel is the mean of the source interval it
 * covers, partial pixels weighted by their overlap). The 2-D result is the
 * separable product, computed directly per output pixel (no scratch
 * memory, so it cannot fail).
 */
typedef enum { AXIS_SAME, AXIS_BILINEAR, AXIS_AREA } axis_mode;

typedef struct {
    axis_mode mode;
    int32_t src, dst;
    double scale; /* src / dst */
} axis;

static axis axis_make(int32_t src, int32_t dst)
{
    axis a = {AXIS_SAME, src, dst, (double)src / (double)dst};
    if (dst > src) a.mode = AXIS_BILINEAR;
    else if (dst < src) a.mode = AXIS_AREA;
    return a;
}

/* The taps of output index o: source indices [lo, lo + n). */
typedef struct {
    int32_t lo, n;
    double s0, s1; /* AREA: the covered interval; BILINEAR: s0 = fraction */
} span;

static span axis_span(const axis *a, int32_t o)
{
    span sp = {o, 1, 0.0, 0.0};
    if (a->mode == AXIS_BILINEAR) {
        double s = ((double)o + 0.5) * a->scale - 0.5;
        if (s < 0) s = 0;
        if (s > a->src - 1) s = a->src - 1;
        sp.lo = (int32_t)s;
        sp.s0 = s - sp.lo;
        sp.n = sp.s0 > 0.0 && sp.lo + 1 < a->src ? 2 : 1;
    } else if (a->mode == AXIS_AREA) {
        sp.s0 = (double)o * a->src / a->dst;
        sp.s1 = (double)(o + 1) * a->src / a->dst;
        sp.lo = (int32_t)sp.s0;
        int32_t hi = (int32_t)ceil(sp.s1);
        if (hi > a->src) hi = a->src;
        sp.n = hi - sp.lo;
    }
    return sp;
}

/* Weight of tap k (source index sp->lo + k). */
static inline double span_weight(const axis *a, const span *sp, int32_t k)
{
    switch (a->mode) {
    case AXIS_SAME: return 1.0;
    case AXIS_BILINEAR: return k == 0 ? 1.0 - sp->s0 : sp->s0;
    case AXIS_AREA: {
        double i = (double)(sp->lo + k);
        double l = i > sp->s0 ? i : sp->s0, r = i + 1 < sp->s1 ? i + 1 : sp->s1;
        return r > l ? (r - l) / a->scale : 0.0;
    }
    }
    return 0.0;
}

void csnn__image_resize(const uint8_t *src, int32_t src_h, int32_t src_w, uint8_t *dst,
                        int32_t dst_h, int32_t dst_w)
{
    if (src_h == dst_h && src_w == dst_w) {
        memcpy(dst, src, (size_t)src_h * (size_t)src_w);
        return;
    }
    axis ay = axis_make(src_h, dst_h), ax = axis_make(src_w, dst_w);
    for (int32_t y = 0; y < dst_h; y++) {
        span sy = axis_span(&ay, y);
        for (int32_t x = 0; x < dst_w; x++) {
            span sx = axis_span(&ax, x);
            double acc = 0.0;
            for (int32_t i = 0; i < sy.n; i++) {
                const uint8_t *row = src + (size_t)(sy.lo + i) * (size_t)src_w + sx.lo;
                double r = 0.0;
                for (int32_t k = 0; k < sx.n; k++) r += span_weight(&ax, &sx, k) * row[k];
                acc += span_weight(&ay, &sy, i) * r;
            }
            double v = acc + 0.5;
            dst[(size_t)y * dst_w + x] = v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* csnn_image_load                                                           */
/* ------------------------------------------------------------------------ */

csnn_status csnn_image_load(const char *path, const csnn_dataset_options *opts, uint8_t *dst,
                            size_t cap)
{
    CSNN_ARG_NOT_NULL(path);
    CSNN_ARG_NOT_NULL(dst);
    csnn_dataset_options o;
    CSNN_TRY(csnn__data_options(opts, __func__, &o));
    size_t need = (size_t)o.height * (size_t)o.width;
    if (cap < need)
        return csnn__error(CSNN_ERR_SHAPE, "csnn_image_load: cap %zu is below %dx%d = %zu bytes",
                           cap, o.height, o.width, need);
    uint8_t *data;
    size_t size;
    csnn_status st = csnn__data_read_file(path, &data, &size);
    if (st == CSNN_OK) {
        st = csnn__image_decode(data, size, path, o.max_image_pixels, o.height, o.width, dst);
        free(data);
    }
    if (st != CSNN_OK) return csnn__error_prefix(st, "csnn_image_load");
    return CSNN_OK;
}
