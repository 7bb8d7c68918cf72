/*
 * dataset.c - csnn_dataset: options, construction helpers, queries, host
 * arrays, the stratified split, and csnn_dataset_load's dispatch.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data_private.h"

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

void csnn_dataset_options_init(csnn_dataset_options *opts)
{
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
    opts->height = 48;
    opts->width = 48;
    opts->skip_bad = 0;
    opts->n_threads = 0;
    opts->max_image_pixels = 16777216;
    opts->max_samples = 16777216;
    opts->usage = NULL;
    opts->reserved = 0;
}

void csnn_dataset_info_init(csnn_dataset_info *info)
{
    if (!info) return;
    memset(info, 0, sizeof *info);
    info->size = sizeof *info;
}

csnn_status csnn__data_options(const csnn_dataset_options *in, const char *func,
                               csnn_dataset_options *out)
{
    csnn_dataset_options_init(out);
    if (!in) return CSNN_OK;
    CSNN_TRY(csnn__check_struct(in, offsetof(csnn_dataset_options, reserved) + sizeof(uint32_t),
                                sizeof(csnn_dataset_options), "csnn_dataset_options"));
    *out = *in;
    out->size = sizeof *out;
    if (in->reserved != 0)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "%s: csnn_dataset_options.reserved is %u, "
                           "must be 0", func, in->reserved);
    if (in->height < 1 || in->height > CSNN_DATA_MAX_SIDE || in->width < 1 ||
        in->width > CSNN_DATA_MAX_SIDE)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "%s: target size %dx%d: height and width must be in 1..%d", func,
                           in->height, in->width, CSNN_DATA_MAX_SIDE);
    if (in->skip_bad != 0 && in->skip_bad != 1)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "%s: skip_bad is %d, must be 0 or 1", func,
                           in->skip_bad);
    if (in->n_threads < 0 || in->n_threads > CSNN_DATA_MAX_THREADS)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "%s: n_threads is %d, must be in 0..%d",
                           func, in->n_threads, CSNN_DATA_MAX_THREADS);
    if (in->max_image_pixels < 1 || in->max_image_pixels > CSNN_DATA_MAX_LIMIT)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "%s: max_image_pixels is %lld, must be in 1..%lld", func,
                           (long long)in->max_image_pixels, (long long)CSNN_DATA_MAX_LIMIT);
    if (in->max_samples < 1 || in->max_samples > CSNN_DATA_MAX_LIMIT)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "%s: max_samples is %lld, must be in 1..%lld", func,
                           (long long)in->max_samples, (long long)CSNN_DATA_MAX_LIMIT);
    return CSNN_OK;
}

int csnn__data_threads(const csnn_context *ctx, const csnn_dataset_options *opts)
{
    int n = opts->n_threads > 0 ? opts->n_threads : ctx ? ctx->n_threads : 1;
    return n < 1 ? 1 : n;
}

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

char *csnn__data_format(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (len < 0) {
        csnn__error(CSNN_ERR_INTERNAL, "bad format string");
        return NULL;
    }
    char *s = csnn__alloc_array((size_t)len + 1, 1, "string");
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)len + 1, fmt, ap);
    va_end(ap);
    return s;
}

csnn_status csnn__data_check_class_name(const char *name, const char *where)
{
    size_t len = strlen(name);
    if (len == 0) return csnn__error(CSNN_ERR_FORMAT, "%s: empty class name", where);
    if (len > CSNN_DATA_MAX_CLASS_NAME)
        return csnn__error(CSNN_ERR_LIMIT, "%s: class name of %zu bytes is longer than %d",
                           where, len, CSNN_DATA_MAX_CLASS_NAME);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f)
            return csnn__error(CSNN_ERR_FORMAT,
                               "%s: class name has a control character (byte %zu)", where, i);
    }
    return CSNN_OK;
}

uint64_t csnn__data_rand_below(uint64_t seed, uint64_t stream, uint64_t index, uint64_t bound)
{
    /* 64 random bits from two consecutive draws, scaled by a 128-bit
     * multiply: the bias is below bound / 2^64. */
    uint64_t r = ((uint64_t)csnn_rng_u32(seed, stream, 2 * index) << 32) |
                 csnn_rng_u32(seed, stream, 2 * index + 1);
    return (uint64_t)(((unsigned __int128)r * bound) >> 64);
}

void csnn__data_shuffle(int64_t *idx, int64_t n, int64_t k, uint64_t seed, uint64_t stream)
{
    if (k > n - 1) k = n - 1;
    for (int64_t i = 0; i < k; i++) {
        int64_t j = i + (int64_t)csnn__data_rand_below(seed, stream, (uint64_t)i,
                                                        (uint64_t)(n - i));
        int64_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

/* ------------------------------------------------------------------------ */
/* Construction                                                              */
/* ------------------------------------------------------------------------ */

csnn_status csnn__dataset_alloc(csnn_context *ctx, int64_t n, int32_t h, int32_t w,
                                int32_t n_classes, csnn_dataset **out)
{
    *out = NULL;
    size_t px;
    if (n < 0 || n_classes < 1 || h < 1 || w < 1 ||
        !csnn__mul_size((size_t)h * (size_t)w, (size_t)n, &px))
        return csnn__error(CSNN_ERR_LIMIT, "dataset of %lld samples of %dx%d is too large",
                           (long long)n, h, w);
    csnn_dataset *ds = csnn__calloc_array(1, sizeof *ds, "dataset");
    if (!ds) return CSNN_ERR_OUT_OF_MEMORY;
    ds->ctx = ctx;
    ds->n = n;
    ds->height = h;
    ds->width = w;
    ds->n_classes = n_classes;
    ds->pixels = csnn__alloc_array(px, 1, "dataset pixels");
    ds->labels = ds->pixels ? csnn__alloc_array((size_t)n, sizeof(int32_t), "dataset labels")
                            : NULL;
    ds->sources = ds->labels ? csnn__calloc_array((size_t)n, sizeof(char *), "dataset sources")
                             : NULL;
    ds->class_names =
        ds->sources ? csnn__calloc_array((size_t)n_classes, sizeof(char *), "class names") : NULL;
    ds->class_counts = ds->class_names ? csnn__calloc_array((size_t)n_classes, sizeof(int64_t),
                                                            "class counts")
                                       : NULL;
    if (!ds->class_counts) {
        csnn_dataset_destroy(ds);
        return CSNN_ERR_OUT_OF_MEMORY;
    }
    *out = ds;
    return CSNN_OK;
}

void csnn__dataset_count_classes(csnn_dataset *ds)
{
    memset(ds->class_counts, 0, (size_t)ds->n_classes * sizeof(int64_t));
    for (int64_t i = 0; i < ds->n; i++) ds->class_counts[ds->labels[i]]++;
}

void csnn_dataset_destroy(csnn_dataset *ds)
{
    if (!ds) return;
    if (ds->class_names)
        for (int32_t c = 0; c < ds->n_classes; c++) free(ds->class_names[c]);
    if (ds->sources)
        for (int64_t i = 0; i < ds->n; i++) free(ds->sources[i]);
    free(ds->class_names);
    free(ds->class_counts);
    free(ds->pixels);
    free(ds->labels);
    free(ds->sources);
    free(ds);
}

csnn_status csnn_dataset_create_from_arrays(csnn_context *ctx, const uint8_t *pixels,
                                            const int32_t *labels, size_t n, int32_t height,
                                            int32_t width, const char *const *class_names,
                                            size_t n_classes, csnn_dataset **out)
{
    static const char fn[] = "csnn_dataset_create_from_arrays";
    CSNN_ARG_NOT_NULL(out);
    *out = NULL;
    CSNN_ARG_NOT_NULL(ctx);
    if (n > 0) {
        CSNN_ARG_NOT_NULL(pixels);
        CSNN_ARG_NOT_NULL(labels);
    }
    if (height < 1 || width < 1 || height > CSNN_DATA_MAX_SIDE || width > CSNN_DATA_MAX_SIDE)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "%s: image size %dx%d: sides must be in "
                           "1..%d", fn, height, width, CSNN_DATA_MAX_SIDE);
    if (n_classes == 0)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "%s: n_classes is 0", fn);
    if (n_classes > CSNN_DATA_MAX_CLASSES)
        return csnn__error(CSNN_ERR_LIMIT, "%s: %zu classes, at most %d", fn, n_classes,
                           CSNN_DATA_MAX_CLASSES);
    if (n > (size_t)CSNN_DATA_MAX_LIMIT)
        return csnn__error(CSNN_ERR_LIMIT, "%s: %zu samples, at most %lld", fn, n,
                           (long long)CSNN_DATA_MAX_LIMIT);
    for (size_t i = 0; i < n; i++)
        if (labels[i] < 0 || (size_t)labels[i] >= n_classes)
            return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                               "%s: labels[%zu] is %d, outside [0, %zu)", fn, i, labels[i],
                               n_classes);
    if (class_names) {
        for (size_t c = 0; c < n_classes; c++) {
            if (!class_names[c])
                return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "%s: class_names[%zu] is NULL",
                                   fn, c);
            char where[64];
            snprintf(where, sizeof where, "%s: class_names[%zu]", fn, c);
            csnn_status st = csnn__data_check_class_name(class_names[c], where);
            if (st != CSNN_OK) return st == CSNN_ERR_FORMAT ? CSNN_ERR_INVALID_ARGUMENT : st;
            for (size_t d = 0; d < c; d++)
                if (strcmp(class_names[c], class_names[d]) == 0)
                    return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                                       "%s: class name '%s' appears twice (%zu and %zu)", fn,
                                       class_names[c], d, c);
        }
    }
    csnn_dataset *ds;
    CSNN_TRY(csnn__dataset_alloc(ctx, (int64_t)n, height, width, (int32_t)n_classes, &ds));
    if (n > 0) {
        memcpy(ds->pixels, pixels, n * (size_t)height * (size_t)width);
        memcpy(ds->labels, labels, n * sizeof(int32_t));
    }
    for (size_t c = 0; c < n_classes; c++) {
        ds->class_names[c] = class_names ? csnn__strdup(class_names[c])
                                         : csnn__data_format("%zu", c);
        if (!ds->class_names[c]) goto oom;
    }
    for (size_t i = 0; i < n; i++)
        if (!(ds->sources[i] = csnn__data_format("array:%zu", i))) goto oom;
    csnn__dataset_count_classes(ds);
    *out = ds;
    return CSNN_OK;
oom:
    csnn_dataset_destroy(ds);
    return csnn__error_prefix(CSNN_ERR_OUT_OF_MEMORY, "%s", fn);
}

/* ------------------------------------------------------------------------ */
/* Queries                                                                   */
/* ------------------------------------------------------------------------ */

csnn_status csnn_dataset_get_info(const csnn_dataset *ds, csnn_dataset_info *info)
{
    CSNN_ARG_NOT_NULL(ds);
    CSNN_ARG_NOT_NULL(info);
    CSNN_TRY(csnn__check_struct(info, offsetof(csnn_dataset_info, skipped) + sizeof(int64_t),
                                sizeof(csnn_dataset_info), "csnn_dataset_info"));
    info->num_samples = ds->n;
    info->num_classes = ds->n_classes;
    info->channels = 1;
    info->height = ds->height;
    info->width = ds->width;
    info->reserved0 = 0;
    info->skipped = ds->skipped;
    return CSNN_OK;
}

static csnn_status check_class_index(const csnn_dataset *ds, int32_t index, const char *fn)
{
    if (index < 0 || index >= ds->n_classes)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "%s: class index %d outside [0, %d)", fn,
                           index, ds->n_classes);
    return CSNN_OK;
}

static csnn_status check_sample_index(const csnn_dataset *ds, int64_t index, const char *fn)
{
    if (index < 0 || index >= ds->n)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "%s: sample index %lld outside [0, %lld)",
                           fn, (long long)index, (long long)ds->n);
    return CSNN_OK;
}

csnn_status csnn_dataset_class_name(const csnn_dataset *ds, int32_t index, const char **name)
{
    CSNN_ARG_NOT_NULL(ds);
    CSNN_ARG_NOT_NULL(name);
    CSNN_TRY(check_class_index(ds, index, __func__));
    *name = ds->class_names[index];
    return CSNN_OK;
}

csnn_status csnn_dataset_class_count(const csnn_dataset *ds, int32_t index, int64_t *count)
{
    CSNN_ARG_NOT_NULL(ds);
    CSNN_ARG_NOT_NULL(count);
    CSNN_TRY(check_class_index(ds, index, __func__));
    *count = ds->class_counts[index];
    return CSNN_OK;
}

csnn_status csnn_dataset_get_sample(const csnn_dataset *ds, int64_t index, uint8_t *pixels,
                                    size_t cap, int32_t *label)
{
    CSNN_ARG_NOT_NULL(ds);
    CSNN_TRY(check_sample_index(ds, index, __func__));
    size_t px = (size_t)ds->height * (size_t)ds->width;
    if (pixels) {
        if (cap < px)
            return csnn__error(CSNN_ERR_SHAPE, "%s: cap %zu is below %dx%d = %zu bytes", __func__,
                               cap, ds->height, ds->width, px);
        memcpy(pixels, ds->pixels + (size_t)index * px, px);
    }
    if (label) *label = ds->labels[index];
    return CSNN_OK;
}

csnn_status csnn_dataset_sample_source(const csnn_dataset *ds, int64_t index, const char **source)
{
    CSNN_ARG_NOT_NULL(ds);
    CSNN_ARG_NOT_NULL(source);
    CSNN_TRY(check_sample_index(ds, index, __func__));
    if (!ds->sources || !ds->sources[index])
        return csnn__error(CSNN_ERR_INTERNAL, "%s: sample %lld has no source name", __func__,
                           (long long)index);
    *source = ds->sources[index];
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Split                                                                     */
/* ------------------------------------------------------------------------ */

/* A new dataset with the samples of `src` whose mark equals `which`, in
 * order, and src's class list. */
static csnn_status subset(const csnn_dataset *src, const uint8_t *mark, uint8_t which,
                          int64_t count, csnn_dataset **out)
{
    csnn_dataset *ds;
    CSNN_TRY(csnn__dataset_alloc(src->ctx, count, src->height, src->width, src->n_classes, &ds));
    size_t px = (size_t)src->height * (size_t)src->width;
    for (int32_t c = 0; c < src->n_classes; c++)
        if (!(ds->class_names[c] = csnn__strdup(src->class_names[c]))) goto oom;
    int64_t k = 0;
    for (int64_t i = 0; i < src->n; i++) {
        if (mark[i] != which) continue;
        memcpy(ds->pixels + (size_t)k * px, src->pixels + (size_t)i * px, px);
        ds->labels[k] = src->labels[i];
        ds->sources[k] = csnn__strdup(src->sources[i]);
        if (!ds->sources[k]) goto oom;
        k++;
    }
    csnn__dataset_count_classes(ds);
    *out = ds;
    return CSNN_OK;
oom:
    csnn_dataset_destroy(ds);
    return CSNN_ERR_OUT_OF_MEMORY;
}

csnn_status csnn_dataset_split(const csnn_dataset *ds, double fraction, uint64_t seed,
                               csnn_dataset **rest, csnn_dataset **part)
{
    CSNN_ARG_NOT_NULL(rest);
    CSNN_ARG_NOT_NULL(part);
    *rest = NULL;
    *part = NULL;
    CSNN_ARG_NOT_NULL(ds);
    if (rest == part)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "%s: rest and part are the same pointer",
                           __func__);
    if (!(fraction >= 0.0 && fraction < 1.0))
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "%s: fraction %g is outside [0, 1)",
                           __func__, fraction);
    uint8_t *mark = csnn__calloc_array((size_t)ds->n, 1, "split marks");
    int64_t *idx = mark ? csnn__alloc_array((size_t)ds->n, sizeof(int64_t), "split indices") : NULL;
    int64_t *start = idx ? csnn__calloc_array((size_t)ds->n_classes + 1, sizeof(int64_t),
                                              "split offsets")
                         : NULL;
    csnn_status st = CSNN_OK;
    if (!start) {
        st = CSNN_ERR_OUT_OF_MEMORY;
        goto done;
    }
    /* Group the sample indices by class (counting sort keeps their order). */
    for (int64_t i = 0; i < ds->n; i++) start[ds->labels[i] + 1]++;
    for (int32_t c = 0; c < ds->n_classes; c++) start[c + 1] += start[c];
    {
        int64_t *fill = csnn__alloc_array((size_t)ds->n_classes, sizeof(int64_t), "split");
        if (!fill) {
            st = CSNN_ERR_OUT_OF_MEMORY;
            goto done;
        }
        memcpy(fill, start, (size_t)ds->n_classes * sizeof(int64_t));
        for (int64_t i = 0; i < ds->n; i++) idx[fill[ds->labels[i]]++] = i;
        free(fill);
    }
    int64_t n_part = 0;
    for (int32_t c = 0; c < ds->n_classes; c++) {
        int64_t count = start[c + 1] - start[c];
        int64_t k = (int64_t)llround(fraction * (double)count);
        /* Class c's own stream: its choice does not depend on other classes. */
        csnn__data_shuffle(idx + start[c], count, k, seed, (uint64_t)c);
        for (int64_t j = 0; j < k; j++) mark[idx[start[c] + j]] = 1;
        n_part += k;
    }
    st = subset(ds, mark, 0, ds->n - n_part, rest);
    if (st == CSNN_OK) st = subset(ds, mark, 1, n_part, part);
    if (st != CSNN_OK) {
        csnn_dataset_destroy(*rest);
        *rest = NULL;
    }
done:
    free(mark);
    free(idx);
    free(start);
    if (st != CSNN_OK) return csnn__error_prefix(st, "%s", __func__);
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                  */
/* ------------------------------------------------------------------------ */

csnn_status csnn_dataset_load(csnn_context *ctx, const char *path,
                              const csnn_dataset_options *opts, csnn_dataset **out)
{
    CSNN_ARG_NOT_NULL(out);
    *out = NULL;
    CSNN_ARG_NOT_NULL(ctx);
    CSNN_ARG_NOT_NULL(path);
    struct stat st;
    if (stat(path, &st) != 0)
        return csnn__error(CSNN_ERR_IO, "csnn_dataset_load: %s: cannot stat: %s", path,
                           strerror(errno));
    if (S_ISDIR(st.st_mode)) return csnn_dataset_load_folder(ctx, path, opts, out);
    return csnn_dataset_load_fer2013_csv(ctx, path, opts, out);
}
