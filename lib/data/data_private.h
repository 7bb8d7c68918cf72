/*
 * data_private.h - helpers shared by the files of lib/data/ only (the
 * trainer and the rest of lib/ use data_internal.h). Tests may include it.
 */
#ifndef CSNN_DATA_PRIVATE_H
#define CSNN_DATA_PRIVATE_H

#include "data_internal.h"

/* ------------------------------------------------------------------------ */
/* Limits (documented in csnn.h's dataset section once the lead adds them)   */
/* ------------------------------------------------------------------------ */

/** Largest file read into memory by the image loaders: 256 MiB. */
#define CSNN_DATA_MAX_FILE_BYTES ((int64_t)256 << 20)
/** Most classes a dataset may have. */
#define CSNN_DATA_MAX_CLASSES 65536
/** Longest class name in bytes (without the NUL), as the model's. */
#define CSNN_DATA_MAX_CLASS_NAME 63
/** Largest target height or width. */
#define CSNN_DATA_MAX_SIDE 4096
/** Longest FER2013 CSV line in bytes (without the line end). A well-formed
 *  row is at most 2304 * 4 + ~20 bytes. */
#define CSNN_DATA_CSV_MAX_LINE 65536
/** Upper bound accepted for max_image_pixels and max_samples. */
#define CSNN_DATA_MAX_LIMIT ((int64_t)1 << 31)
/** Most decoder threads. */
#define CSNN_DATA_MAX_THREADS 1024

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

/** Copies `in` (NULL: the defaults) into *out after validating it; `func`
 *  names the API function in messages. */
csnn_status csnn__data_options(const csnn_dataset_options *in, const char *func,
                               csnn_dataset_options *out);

/** Decoder threads for a load: opts->n_threads, else the context's. */
int csnn__data_threads(const csnn_context *ctx, const csnn_dataset_options *opts);

/* ------------------------------------------------------------------------ */
/* Dataset construction                                                      */
/* ------------------------------------------------------------------------ */

/** Allocates a dataset with room for n samples of h x w pixels and
 *  n_classes classes: pixels, labels, sources (all NULL) and class arrays
 *  (names NULL, counts 0). */
csnn_status csnn__dataset_alloc(csnn_context *ctx, int64_t n, int32_t h, int32_t w,
                                int32_t n_classes, csnn_dataset **out);

/** Recounts class_counts from labels. */
void csnn__dataset_count_classes(csnn_dataset *ds);

/** Checks a class name: 1..63 bytes, no control characters. `where` is
 *  put in front of the message. LIMIT for a long name, FORMAT otherwise. */
csnn_status csnn__data_check_class_name(const char *name, const char *where);

/** A malloc'ed printf-style string, NULL (with OUT_OF_MEMORY set) on failure. */
char *csnn__data_format(const char *fmt, ...) CSNN_PRINTF(1, 2);

/* ------------------------------------------------------------------------ */
/* Files                                                                     */
/* ------------------------------------------------------------------------ */

/** Opens a regular file for reading (never blocks on a FIFO) and gives its
 *  size. Errors (message names the path): IO. */
csnn_status csnn__data_open_regular(const char *path, int *fd, int64_t *size);

/**
 * Reads a whole regular file (at most CSNN_DATA_MAX_FILE_BYTES) into a
 * malloc'ed buffer. Never blocks on a FIFO. Errors (message names the path):
 * IO (cannot open or read, not a regular file), LIMIT (too large),
 * OUT_OF_MEMORY.
 */
csnn_status csnn__data_read_file(const char *path, uint8_t **data, size_t *size);

/* ------------------------------------------------------------------------ */
/* Randomness                                                                */
/* ------------------------------------------------------------------------ */

/** A uniform integer in [0, bound) (bound >= 1) from draw `index` of
 *  (seed, stream); unbiased to 2^-40 for bound < 2^24. */
uint64_t csnn__data_rand_below(uint64_t seed, uint64_t stream, uint64_t index, uint64_t bound);

/**
 * Partial Fisher-Yates: after the call idx[0..k) is a uniformly chosen
 * ordered sample of the n entries (k = n - 1 or n: a full shuffle). Draw i
 * uses (seed, stream, i), so the result depends only on those and n.
 */
void csnn__data_shuffle(int64_t *idx, int64_t n, int64_t k, uint64_t seed, uint64_t stream);

#endif /* CSNN_DATA_PRIVATE_H */
