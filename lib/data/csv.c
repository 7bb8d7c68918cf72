/*
 * csv.c - csnn_dataset_load_fer2013_csv: FER2013's CSV.
 *
 * Format: a header naming the columns (fer2013.csv has
 * "emotion,pixels,Usage"; the columns may come in any order, names are
 * matched case-insensitively after trimming spaces, Usage is optional unless
 * a usage filter is asked for), then one row per image: the label 0..6, the
 * 48*48 pixel values 0..255 separated by spaces, and the usage. Fields may
 * be enclosed in double quotes. Line ends may be LF or CRLF; a UTF-8 byte
 * order mark before the header and blank lines are ignored.
 *
 * The file is streamed (a 64 KiB read buffer and a line buffer that grows up
 * to CSNN_DATA_CSV_MAX_LINE = 65536 bytes; a longer line is a bad row), so
 * memory is bounded by the kept samples (max_samples). Line numbers in
 * messages and in sample sources count from 1, the header being line 1.
 *
 * Labels: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise,
 * 6 neutral. The classes are those names in alphabetical order, as an
 * image folder of the same data has them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "data_private.h"

static const char FN[] = "csnn_dataset_load_fer2013_csv";

#define FER_SIDE 48
#define FER_PIXELS (FER_SIDE * FER_SIDE)
#define FER_CLASSES 7
#define READ_CHUNK 65536

static const char *const fer_class_names[FER_CLASSES] = {
    "angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"};
/* CSV label -> class index (alphabetical). */
static const int32_t fer_label_to_class[FER_CLASSES] = {0, 1, 2, 3, 5, 6, 4};

/* ------------------------------------------------------------------------ */
/* Line reader                                                               */
/* ------------------------------------------------------------------------ */

typedef struct {
    FILE *f;            /* the file, or NULL when reading from memory: */
    const char *mem;    /* the bytes (csnn__fer2013_csv_parse) */
    size_t mem_size, mem_pos;
    const char *path;
    char *buf; /* read buffer */
    size_t buf_len, buf_pos;
    char *line; /* the current line, NUL-terminated, without its line end */
    size_t line_len, line_cap;
    bool too_long; /* the current line exceeded the limit (its text is cut) */
    int64_t lineno;
} line_reader;

static csnn_status fill(line_reader *r, bool *eof)
{
    r->buf_pos = 0;
    if (!r->f) {
        /* memory: the same READ_CHUNK pieces a file gives, so that lines
         * cross chunk boundaries exactly as they do when streaming */
        size_t n = r->mem_size - r->mem_pos;
        if (n > READ_CHUNK) n = READ_CHUNK;
        if (n) memcpy(r->buf, r->mem + r->mem_pos, n);
        r->mem_pos += n;
        r->buf_len = n;
        *eof = n == 0;
        return CSNN_OK;
    }
    r->buf_len = fread(r->buf, 1, READ_CHUNK, r->f);
    if (r->buf_len == 0 && ferror(r->f))
        return csnn__error(CSNN_ERR_IO, "%s: read error: %s", r->path, strerror(errno));
    *eof = r->buf_len == 0;
    return CSNN_OK;
}

static csnn_status append(line_reader *r, const char *p, size_t n)
{
    if (r->too_long) return CSNN_OK;
    if (r->line_len + n > CSNN_DATA_CSV_MAX_LINE + 1) { /* + 1: a CR before the LF */
        r->too_long = true;
        return CSNN_OK;
    }
    if (r->line_len + n + 1 > r->line_cap) {
        size_t cap = r->line_cap;
        while (cap < r->line_len + n + 1) cap *= 2;
        char *q = realloc(r->line, cap);
        if (!q) return csnn__error(CSNN_ERR_OUT_OF_MEMORY, "%s: line buffer", r->path);
        r->line = q;
        r->line_cap = cap;
    }
    memcpy(r->line + r->line_len, p, n);
    r->line_len += n;
    r->line[r->line_len] = '\0';
    return CSNN_OK;
}

/* The next line into r->line; *got false at the end of the file. */
static csnn_status next_line(line_reader *r, bool *got)
{
    *got = false;
    r->line_len = 0;
    r->too_long = false;
    r->line[0] = '\0';
    bool any = false;
    for (;;) {
        if (r->buf_pos == r->buf_len) {
            bool eof = false;
            CSNN_TRY(fill(r, &eof));
            if (eof) break;
        }
        const char *start = r->buf + r->buf_pos;
        size_t avail = r->buf_len - r->buf_pos;
        const char *nl = memchr(start, '\n', avail);
        size_t n = nl ? (size_t)(nl - start) : avail;
        CSNN_TRY(append(r, start, n));
        any = true;
        r->buf_pos += n + (nl ? 1 : 0);
        if (nl) break;
    }
    if (!any) return CSNN_OK;
    if (!r->too_long && r->line_len > 0 && r->line[r->line_len - 1] == '\r')
        r->line[--r->line_len] = '\0';
    if (r->line_len > CSNN_DATA_CSV_MAX_LINE) r->too_long = true;
    r->lineno++;
    *got = true;
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Fields                                                                    */
/* ------------------------------------------------------------------------ */

#define MAX_FIELDS 16

typedef struct {
    const char *p;
    size_t n;
} field;

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static field trim(field f)
{
    while (f.n > 0 && is_blank(f.p[0])) f.p++, f.n--;
    while (f.n > 0 && is_blank(f.p[f.n - 1])) f.n--;
    if (f.n >= 2 && f.p[0] == '"' && f.p[f.n - 1] == '"') f.p++, f.n -= 2;
    return f;
}

/* Splits line[0..len) at commas outside double quotes into at most
 * MAX_FIELDS trimmed fields; returns the count (MAX_FIELDS + 1 if more). */
static int split_fields(const char *line, size_t len, field *out)
{
    int n = 0;
    size_t start = 0;
    bool quoted = false;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && line[i] == '"') quoted = !quoted;
        if (i == len || (line[i] == ',' && !quoted)) {
            if (n == MAX_FIELDS) return MAX_FIELDS + 1;
            out[n++] = trim((field){line + start, i - start});
            start = i + 1;
        }
    }
    return n;
}

static bool field_is(field f, const char *s)
{
    return strlen(s) == f.n && strncasecmp(f.p, s, f.n) == 0;
}

/* ------------------------------------------------------------------------ */
/* Rows                                                                      */
/* ------------------------------------------------------------------------ */

typedef struct {
    int emotion, pixels, usage; /* column indices; usage -1 when absent */
    int n_columns;
} columns;

/* Parses the header into *c; FORMAT when it is not FER2013's. */
static csnn_status parse_header(line_reader *r, columns *c)
{
    const char *s = r->line;
    size_t len = r->line_len;
    if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) s += 3, len -= 3;
    field f[MAX_FIELDS];
    int n = r->too_long ? 0 : split_fields(s, len, f);
    c->emotion = c->pixels = c->usage = -1;
    c->n_columns = n;
    for (int i = 0; i < n && n <= MAX_FIELDS; i++) {
        if (field_is(f[i], "emotion")) c->emotion = i;
        else if (field_is(f[i], "pixels")) c->pixels = i;
        else if (field_is(f[i], "usage")) c->usage = i;
    }
    if (c->emotion < 0 || c->pixels < 0 || n > MAX_FIELDS)
        return csnn__error(CSNN_ERR_FORMAT,
                           "%s:%lld: expected the header \"emotion,pixels,Usage\"", r->path,
                           (long long)r->lineno);
    return CSNN_OK;
}

/* Parses the pixel field into px[FER_PIXELS]; FORMAT (message without the
 * location) on a wrong count or value. */
static csnn_status parse_pixels(field f, uint8_t *px)
{
    size_t i = 0;
    int count = 0;
    while (i < f.n) {
        if (is_blank(f.p[i])) {
            i++;
            continue;
        }
        unsigned v = 0;
        size_t start = i;
        while (i < f.n && f.p[i] >= '0' && f.p[i] <= '9' && i - start < 4)
            v = v * 10 + (unsigned)(f.p[i++] - '0');
        if (i == start || (i < f.n && !is_blank(f.p[i]))) {
            size_t end = start;
            while (end < f.n && !is_blank(f.p[end]) && end - start < 16) end++;
            return csnn__error(CSNN_ERR_FORMAT, "pixel %d is '%.*s', not a number 0..255",
                               count + 1, (int)(end - start), f.p + start);
        }
        if (v > 255)
            return csnn__error(CSNN_ERR_FORMAT, "pixel %d is %.*s, outside 0..255", count + 1,
                               (int)(i - start), f.p + start);
        if (count < FER_PIXELS) px[count] = (uint8_t)v;
        count++;
    }
    if (count != FER_PIXELS)
        return csnn__error(CSNN_ERR_FORMAT, "%d pixel values, expected %d (48x48)", count,
                           FER_PIXELS);
    return CSNN_OK;
}

/* One data row. *keep false: filtered out by usage. On FORMAT the message
 * names the problem (not the location). */
static csnn_status parse_row(const line_reader *r, const columns *c, const char *usage,
                             bool *keep, int32_t *cls, uint8_t *px)
{
    *keep = false;
    if (r->too_long)
        return csnn__error(CSNN_ERR_FORMAT, "line longer than %d bytes", CSNN_DATA_CSV_MAX_LINE);
    field f[MAX_FIELDS];
    int n = split_fields(r->line, r->line_len, f);
    if (n != c->n_columns)
        return csnn__error(CSNN_ERR_FORMAT, "%s%d fields, expected %d",
                           n > MAX_FIELDS ? "more than " : "", n > MAX_FIELDS ? MAX_FIELDS : n,
                           c->n_columns);
    if (usage && (strlen(usage) != f[c->usage].n ||
                  memcmp(usage, f[c->usage].p, f[c->usage].n) != 0))
        return CSNN_OK; /* another usage (compared exactly) */
    field e = f[c->emotion];
    if (e.n != 1 || e.p[0] < '0' || e.p[0] > '6')
        return csnn__error(CSNN_ERR_FORMAT, "unknown label '%.*s' (expected 0..6)",
                           (int)(e.n > 16 ? 16 : e.n), e.p);
    CSNN_TRY(parse_pixels(f[c->pixels], px));
    *cls = fer_label_to_class[e.p[0] - '0'];
    *keep = true;
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Growing sample arrays                                                     */
/* ------------------------------------------------------------------------ */

typedef struct {
    uint8_t *pixels;
    int32_t *labels;
    char **sources;
    int64_t n, cap;
    size_t px; /* bytes per sample */
} samples;

static void samples_free(samples *s)
{
    for (int64_t i = 0; i < s->n; i++) free(s->sources[i]);
    free(s->pixels);
    free(s->labels);
    free(s->sources);
}

static csnn_status samples_reserve(samples *s, int64_t limit)
{
    if (s->n < s->cap) return CSNN_OK;
    int64_t cap = s->cap ? s->cap * 2 : 1024;
    if (cap > limit) cap = limit;
    uint8_t *p = realloc(s->pixels, (size_t)cap * s->px);
    if (p) s->pixels = p;
    int32_t *l = p ? realloc(s->labels, (size_t)cap * sizeof(int32_t)) : NULL;
    if (l) s->labels = l;
    char **src = l ? realloc(s->sources, (size_t)cap * sizeof(char *)) : NULL;
    if (!src) return csnn__error(CSNN_ERR_OUT_OF_MEMORY, "%lld samples", (long long)cap);
    s->sources = src;
    s->cap = cap;
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Entry point                                                               */
/* ------------------------------------------------------------------------ */

static csnn_status load(csnn_context *ctx, line_reader *r, const csnn_dataset_options *o,
                        samples *s, int64_t *skipped)
{
    bool got;
    CSNN_TRY(next_line(r, &got));
    if (!got) return csnn__error(CSNN_ERR_FORMAT, "%s: empty file (no header)", r->path);
    columns c;
    CSNN_TRY(parse_header(r, &c));
    if (o->usage && c.usage < 0)
        return csnn__error(CSNN_ERR_FORMAT, "%s: no Usage column to filter on (usage \"%s\")",
                           r->path, o->usage);
    uint8_t raw[FER_PIXELS];
    for (;;) {
        CSNN_TRY(next_line(r, &got));
        if (!got) break;
        size_t blank = 0;
        while (blank < r->line_len && is_blank(r->line[blank])) blank++;
        if (!r->too_long && blank == r->line_len) continue;
        bool keep;
        int32_t cls;
        csnn_status st = parse_row(r, &c, o->usage, &keep, &cls, raw);
        if (st != CSNN_OK) {
            if (st != CSNN_ERR_FORMAT || !o->skip_bad)
                return csnn__error_prefix(st, "%s:%lld", r->path, (long long)r->lineno);
            csnn__log(ctx, CSNN_LOG_WARN, "%s: skipped %s:%lld: %s", FN, r->path,
                      (long long)r->lineno, csnn_last_error_message());
            (*skipped)++;
            continue;
        }
        if (!keep) continue;
        if (s->n == o->max_samples)
            return csnn__error(CSNN_ERR_LIMIT, "%s:%lld: more than %lld samples (max_samples)",
                               r->path, (long long)r->lineno, (long long)o->max_samples);
        CSNN_TRY(samples_reserve(s, o->max_samples));
        csnn__image_resize(raw, FER_SIDE, FER_SIDE, s->pixels + (size_t)s->n * s->px, o->height,
                           o->width);
        s->labels[s->n] = cls;
        s->sources[s->n] = csnn__data_format("%s:%lld", r->path, (long long)r->lineno);
        if (!s->sources[s->n]) return CSNN_ERR_OUT_OF_MEMORY;
        s->n++;
    }
    if (s->n == 0)
        return csnn__error(CSNN_ERR_NOT_FOUND, "%s: no rows%s%s%s", r->path,
                           o->usage ? " with Usage \"" : "", o->usage ? o->usage : "",
                           o->usage ? "\"" : "");
    return CSNN_OK;
}

/* Reads every row from r (a file or memory, buffers not yet allocated) into
 * a new dataset; `path` names the source in messages and sample sources. */
static csnn_status load_dataset(csnn_context *ctx, line_reader *r, const csnn_dataset_options *o,
                                csnn_dataset **out)
{
    const char *path = r->path;
    double t0 = csnn__now();
    samples s = {0};
    s.px = (size_t)o->height * (size_t)o->width;
    int64_t skipped = 0;
    csnn_status st = CSNN_OK;
    r->buf = csnn__alloc_array(READ_CHUNK, 1, "CSV read buffer");
    r->line_cap = 16384;
    r->line = r->buf ? csnn__alloc_array(r->line_cap, 1, "CSV line buffer") : NULL;
    if (!r->line) st = CSNN_ERR_OUT_OF_MEMORY;
    if (st == CSNN_OK) st = load(ctx, r, o, &s, &skipped);
    free(r->buf);
    free(r->line);
    r->buf = r->line = NULL;

    csnn_dataset *ds = NULL;
    if (st == CSNN_OK) st = csnn__dataset_alloc(ctx, 0, o->height, o->width, FER_CLASSES, &ds);
    for (int32_t c = 0; st == CSNN_OK && c < FER_CLASSES; c++)
        if (!(ds->class_names[c] = csnn__strdup(fer_class_names[c]))) st = CSNN_ERR_OUT_OF_MEMORY;
    if (st != CSNN_OK) {
        csnn_dataset_destroy(ds);
        samples_free(&s);
        return csnn__error_prefix(st, "%s", FN);
    }
    /* Hand the grown arrays over to the dataset. */
    free(ds->pixels);
    free(ds->labels);
    free(ds->sources);
    ds->pixels = s.pixels;
    ds->labels = s.labels;
    ds->sources = s.sources;
    ds->n = s.n;
    ds->skipped = skipped;
    csnn__dataset_count_classes(ds);
    csnn__log(ctx, CSNN_LOG_INFO, "%s: %lld rows from %s in %.2f s (%lld skipped)", FN,
              (long long)ds->n, path, csnn__now() - t0, (long long)skipped);
    *out = ds;
    return CSNN_OK;
}

csnn_status csnn_dataset_load_fer2013_csv(csnn_context *ctx, const char *path,
                                          const csnn_dataset_options *opts, csnn_dataset **out)
{
    CSNN_ARG_NOT_NULL(out);
    *out = NULL;
    CSNN_ARG_NOT_NULL(ctx);
    CSNN_ARG_NOT_NULL(path);
    csnn_dataset_options o;
    CSNN_TRY(csnn__data_options(opts, FN, &o));

    line_reader r = {0};
    r.path = path;
    int fd;
    int64_t file_size;
    csnn_status open_st = csnn__data_open_regular(path, &fd, &file_size);
    if (open_st != CSNN_OK) return csnn__error_prefix(open_st, "%s", FN);
    r.f = fdopen(fd, "rb");
    if (!r.f) {
        close(fd);
        return csnn__error(CSNN_ERR_OUT_OF_MEMORY, "%s: %s: cannot open a stream", FN, path);
    }
    csnn_status st = load_dataset(ctx, &r, &o, out);
    fclose(r.f);
    return st;
}

csnn_status csnn__fer2013_csv_parse(csnn_context *ctx, const uint8_t *data, size_t size,
                                    const char *name, const csnn_dataset_options *opts,
                                    csnn_dataset **out)
{
    CSNN_ARG_NOT_NULL(out);
    *out = NULL;
    CSNN_ARG_NOT_NULL(ctx);
    if (data == NULL && size > 0)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "%s: data is NULL", FN);
    csnn_dataset_options o;
    CSNN_TRY(csnn__data_options(opts, FN, &o));
    line_reader r = {0};
    r.path = name ? name : "(memory)";
    r.mem = (const char *)data;
    r.mem_size = size;
    return load_dataset(ctx, &r, &o, out);
}
