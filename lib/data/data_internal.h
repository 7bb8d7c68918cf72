/*
 * data_internal.h - datasets, image decoding, augmentation and batching
 * (lib/data/), as the trainer and the tests see them.
 */
#ifndef CSNN_DATA_INTERNAL_H
#define CSNN_DATA_INTERNAL_H

#include "csnn_internal.h"

/* ------------------------------------------------------------------------ */
/* Dataset                                                                   */
/* ------------------------------------------------------------------------ */

struct csnn_dataset {
    csnn_context *ctx;
    int64_t n;             /* samples */
    int32_t height, width; /* every image is height*width bytes, 1 channel */
    int32_t n_classes;
    char **class_names;    /* [n_classes], each malloc'ed */
    int64_t *class_counts; /* [n_classes] */
    uint8_t *pixels;       /* [n, height, width] */
    int32_t *labels;       /* [n], each in [0, n_classes) */
    char **sources;        /* [n] file path, "<csv path>:<line>" or "array:<i>";
                              every constructor fills all of them */
    int64_t skipped;
};

/* ------------------------------------------------------------------------ */
/* Augmentation                                                              */
/* ------------------------------------------------------------------------ */

/** Per-sample random augmentation applied when a training batch is built.
 *  A field of 0 turns that transform off. */
typedef struct csnn_augment {
    float hflip;      /* probability of a horizontal flip */
    float vflip;      /* probability of a vertical flip */
    float rotate_deg; /* rotation by an angle uniform in [-rotate_deg, rotate_deg],
                         bilinear, about the image centre, zero fill */
    int32_t crop_pad; /* zero padding by crop_pad on each side, then a random
                         height x width crop (offsets uniform in [0, 2*crop_pad]) */
    float brightness; /* pixel * factor, factor uniform in [1-b, 1+b] */
    float contrast;   /* (pixel - mean) * factor + mean, factor uniform in [1-c, 1+c] */
} csnn_augment;

/** The recipe of docs/DESIGN (DESIGN.md section 2): hflip 0.5, rotation
 *  10 degrees, crop padding 4, no vertical flip, no jitter. */
void csnn__augment_recipe(csnn_augment *a);

/** Everything off. */
void csnn__augment_none(csnn_augment *a);

/**
 * Writes sample `src` (h*w bytes) augmented as floats in [0, 1] (value/255
 * before jitter; clamped to [0, 1] after) into dst[h*w]. The random choices
 * depend only on (seed, epoch, sample), so a batch is reproducible whatever
 * thread builds it. `a` NULL: no augmentation (dst = src / 255).
 */
void csnn__augment_sample(const csnn_augment *a, uint64_t seed, uint64_t epoch, int64_t sample,
                          const uint8_t *src, int32_t h, int32_t w, float *dst);

/* ------------------------------------------------------------------------ */
/* Batching                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct csnn_batcher csnn_batcher;

/**
 * Makes batches of `batch` samples from `ds` (borrowed: it must outlive the
 * batcher). With shuffle, the order of an epoch is a permutation that
 * depends only on (seed, epoch); without, samples come in dataset order.
 * The last batch of an epoch may be smaller. A background thread builds the
 * next batches (augmentation and conversion to float) while the caller
 * computes; `aug` NULL means no augmentation. `label_map` (may be NULL)
 * maps dataset labels to model labels ([ds->n_classes] entries).
 */
csnn_status csnn__batcher_create(const csnn_dataset *ds, int32_t batch, bool shuffle,
                                 const csnn_augment *aug, uint64_t seed,
                                 const int32_t *label_map, csnn_batcher **out);
void csnn__batcher_destroy(csnn_batcher *b);
/** Batches per epoch: ceil(n / batch). */
int64_t csnn__batcher_num_batches(const csnn_batcher *b);
/** Starts epoch `epoch` (0-based) at its first batch; any epoch in flight
 *  is abandoned. */
csnn_status csnn__batcher_start_epoch(csnn_batcher *b, uint64_t epoch);
/**
 * The next batch of the current epoch: *images float [n, 1, h, w], *labels
 * int32 [n]; both stay valid until the next call. *n is 0 at the end of the
 * epoch.
 */
csnn_status csnn__batcher_next(csnn_batcher *b, const float **images, const int32_t **labels,
                               int32_t *n);

/* ------------------------------------------------------------------------ */
/* Images                                                                    */
/* ------------------------------------------------------------------------ */

/**
 * Decodes a PNG or JPEG held in memory to 8-bit grayscale (BT.601 luma) at
 * out_h x out_w into dst. `name` is used in error messages. Errors: FORMAT,
 * LIMIT (source above max_pixels), OUT_OF_MEMORY.
 */
csnn_status csnn__image_decode(const uint8_t *data, size_t size, const char *name,
                               int64_t max_pixels, int32_t out_h, int32_t out_w, uint8_t *dst);

/** Resizes 8-bit grayscale: bilinear when enlarging, area averaging when
 *  shrinking (each axis separately). */
void csnn__image_resize(const uint8_t *src, int32_t src_h, int32_t src_w, uint8_t *dst,
                        int32_t dst_h, int32_t dst_w);

/* ------------------------------------------------------------------------ */
/* FER2013 CSV                                                               */
/* ------------------------------------------------------------------------ */

/**
 * csnn_dataset_load_fer2013_csv on bytes held in memory (the fuzz target's
 * entry point; the file loader streams the same reader from a file). `name`
 * stands for the path in messages and sample sources (NULL: "(memory)").
 */
csnn_status csnn__fer2013_csv_parse(csnn_context *ctx, const uint8_t *data, size_t size,
                                    const char *name, const csnn_dataset_options *opts,
                                    csnn_dataset **out);

#endif /* CSNN_DATA_INTERNAL_H */
