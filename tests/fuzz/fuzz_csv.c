/*
 * fuzz_csv.c - fuzz target: the FER2013 CSV reader
 * (csnn__fer2013_csv_parse: csnn_dataset_load_fer2013_csv's reader on
 * bytes in memory, read in the same 64 KiB pieces as a file).
 *
 * An input of even length is read with the defaults (the first bad row is
 * an error), one of odd length with skip_bad, a usage filter, another
 * target size and a sample limit of 3 (bad rows are counted; rows of other
 * usages are dropped; a fourth kept row is LIMIT). A dataset that
 * loads must be consistent: labels in range, class counts that add up,
 * one source per sample naming the line.
 */
#include <string.h>

#include "data/data_internal.h"
#include "fuzz.h"

static void check_dataset(const csnn_dataset *ds, int32_t h, int32_t w)
{
    csnn_dataset_info info;
    csnn_dataset_info_init(&info);
    FUZZ_CHECK(csnn_dataset_get_info(ds, &info) == CSNN_OK);
    FUZZ_CHECK(info.num_samples >= 1 && info.num_classes == 7);
    FUZZ_CHECK(info.height == h && info.width == w && info.channels == 1);
    int64_t total = 0;
    for (int32_t c = 0; c < 7; c++) {
        int64_t n;
        FUZZ_CHECK(csnn_dataset_class_count(ds, c, &n) == CSNN_OK);
        total += n;
    }
    FUZZ_CHECK(total == info.num_samples);
    uint8_t *px = malloc((size_t)h * (size_t)w);
    if (!px) abort();
    for (int64_t i = 0; i < info.num_samples; i++) {
        int32_t label;
        const char *src;
        FUZZ_CHECK(csnn_dataset_get_sample(ds, i, px, (size_t)h * (size_t)w, &label) == CSNN_OK);
        FUZZ_CHECK(label >= 0 && label < 7);
        FUZZ_CHECK(csnn_dataset_sample_source(ds, i, &src) == CSNN_OK);
        FUZZ_CHECK(strncmp(src, "fuzz.csv:", 9) == 0);
    }
    free(px);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    csnn_context *ctx = fuzz_context();
    uint8_t *buf = fuzz_copy(data, size, 0);
    csnn_dataset_options o;
    csnn_dataset_options_init(&o);
    /* a few samples at most: the sample arrays then start small (they
     * start at 1024 samples, 2.3 MB, which would only slow the fuzzer) */
    o.max_samples = 64;
    if (size & 1) {
        o.skip_bad = 1;
        o.usage = "Training";
        o.height = 24;
        o.width = 50;
        o.max_samples = 3;
    }
    csnn_dataset *ds = NULL;
    csnn_status st = csnn__fer2013_csv_parse(ctx, buf, size, "fuzz.csv", &o, &ds);
    FUZZ_CHECK(st == CSNN_OK || st == CSNN_ERR_FORMAT || st == CSNN_ERR_NOT_FOUND ||
               st == CSNN_ERR_LIMIT);
    FUZZ_CHECK((st == CSNN_OK) == (ds != NULL));
    if (ds) {
        check_dataset(ds, o.height, o.width);
        csnn_dataset_destroy(ds);
    }
    free(buf);
    return 0;
}
