/*
 * test_fer2013.c - the real FER2013 training folder, when it is at hand
 * ($CSNN_SHARED_DIR/datasets/fer2013/train); skipped otherwise.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <png.h>

#include "data_test_util.h"
#include "data/data_private.h"

static char *fer_root;
static csnn_context *ctx;

static int setup(void **state)
{
    (void)state;
    const char *shared = getenv("CSNN_SHARED_DIR");
    struct stat st;
    if (shared) {
        fer_root = dt_fmt("%s/datasets/fer2013/train", shared);
        if (stat(fer_root, &st) != 0 || !S_ISDIR(st.st_mode)) {
            free(fer_root);
            fer_root = NULL;
        }
    }
    ctx = dt_context();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    csnn_context_destroy(ctx);
    free(fer_root);
    return 0;
}

/* Plain libpng: the file must be a 48x48 8-bit grayscale PNG. */
static void read_png_raw(const char *path, uint8_t *out)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) fail_msg("libpng cannot read %s", path);
    png_init_io(png, f);
    png_read_info(png, info);
    assert_int_equal(png_get_image_width(png, info), 48);
    assert_int_equal(png_get_image_height(png, info), 48);
    assert_int_equal(png_get_bit_depth(png, info), 8);
    assert_int_equal(png_get_color_type(png, info), PNG_COLOR_TYPE_GRAY);
    assert_int_equal(png_get_interlace_type(png, info), PNG_INTERLACE_NONE);
    for (int y = 0; y < 48; y++) png_read_row(png, out + y * 48, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
}

static int64_t count_files(const char *dir)
{
    char *cmd = dt_fmt("%s", dir);
    int64_t n = 0;
    DIR *d = opendir(cmd);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    free(cmd);
    return n;
}

/* Two class folders linked into a temporary root: counts, order and pixels
 * equal to libpng's raw decode. */
static void test_two_classes(void **state)
{
    (void)state;
    if (!fer_root) skip();
    char *tmp = dt_mkdtemp();
    const char *classes[2] = {"surprise", "disgust"};
    int64_t want[2];
    for (int c = 0; c < 2; c++) {
        char *target = dt_fmt("%s/%s", fer_root, classes[c]);
        char *link = dt_fmt("%s/%s", tmp, classes[c]);
        assert_int_equal(symlink(target, link), 0);
        want[c] = count_files(target);
        free(link);
        free(target);
    }
    csnn_dataset *ds;
    dt_assert_ok(csnn_dataset_load_folder(ctx, tmp, NULL, &ds));
    assert_int_equal(ds->n_classes, 2);
    assert_string_equal(ds->class_names[0], "disgust");
    assert_string_equal(ds->class_names[1], "surprise");
    assert_int_equal(ds->class_counts[0], want[1]);
    assert_int_equal(ds->class_counts[1], want[0]);
    assert_int_equal(ds->skipped, 0);
    for (int64_t i = 0; i < ds->n; i++) {
        uint8_t raw[48 * 48];
        read_png_raw(ds->sources[i], raw);
        assert_memory_equal(ds->pixels + (size_t)i * 48 * 48, raw, sizeof raw);
        if (i > 0 && ds->labels[i] == ds->labels[i - 1])
            assert_true(strcmp(ds->sources[i - 1], ds->sources[i]) < 0);
    }
    csnn_dataset_destroy(ds);
    dt_rmtree(tmp);
    free(tmp);
}

/* The whole training folder (not under valgrind: too slow there). */
static void test_full_train(void **state)
{
    (void)state;
    if (!fer_root || getenv("CSNN_UNDER_VALGRIND")) skip();
    static const char *names[7] = {"angry", "disgust", "fear", "happy",
                                   "neutral", "sad", "surprise"};
    static const int64_t counts[7] = {3995, 436, 4097, 7215, 4965, 4830, 3171};
    double t0 = csnn__now();
    csnn_dataset *ds;
    dt_assert_ok(csnn_dataset_load_folder(ctx, fer_root, NULL, &ds));
    double dt = csnn__now() - t0;
    print_message("loaded %lld FER2013 images with %d threads in %.2f s\n", (long long)ds->n,
                  csnn_context_threads(ctx), dt);
    assert_int_equal(ds->n, 28709);
    assert_int_equal(ds->n_classes, 7);
    for (int c = 0; c < 7; c++) {
        assert_string_equal(ds->class_names[c], names[c]);
        assert_int_equal(ds->class_counts[c], counts[c]);
    }
    /* a 10 % stratified validation split */
    csnn_dataset *train, *val;
    dt_assert_ok(csnn_dataset_split(ds, 0.1, 0, &train, &val));
    assert_int_equal(val->class_counts[1], 44); /* round(43.6) */
    assert_int_equal(val->class_counts[3], 722); /* round(721.5) */
    assert_int_equal(train->n + val->n, ds->n);
    csnn_dataset_destroy(val);
    csnn_dataset_destroy(train);
    csnn_dataset_destroy(ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_classes),
        cmocka_unit_test(test_full_train),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
