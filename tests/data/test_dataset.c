/*
 * test_dataset.c - image folders, the FER2013 CSV, host arrays, queries and
 * the stratified split.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <png.h>

#include "data_test_util.h"
#include "data/data_private.h"

static char *tmp_dir;
static csnn_context *ctx;

static int setup(void **state)
{
    (void)state;
    tmp_dir = dt_mkdtemp();
    ctx = dt_context();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    csnn_context_destroy(ctx);
    dt_rmtree(tmp_dir);
    free(tmp_dir);
    return 0;
}

/* A fresh directory under tmp_dir. */
static char *subdir(const char *name)
{
    char *p = dt_fmt("%s/%s", tmp_dir, name);
    dt_mkdir(p);
    return p;
}

/* Writes a 48x48 gray PNG filled with `v` (plus a small gradient). */
static void write_face(const char *dir, const char *name, uint8_t v)
{
    uint8_t px[48 * 48];
    for (int i = 0; i < 48 * 48; i++) px[i] = (uint8_t)(v + (i % 48) / 8);
    char *p = dt_fmt("%s/%s", dir, name);
    dt_write_gray_png(p, px, 48, 48);
    free(p);
}

static const char *source(const csnn_dataset *ds, int64_t i)
{
    const char *s = NULL;
    dt_assert_ok(csnn_dataset_sample_source(ds, i, &s));
    return s;
}

static const char *class_name(const csnn_dataset *ds, int32_t c)
{
    const char *s = NULL;
    dt_assert_ok(csnn_dataset_class_name(ds, c, &s));
    return s;
}

static bool ends_with(const char *s, const char *tail)
{
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && strcmp(s + a - b, tail) == 0;
}

/* ------------------------------------------------------------------------ */
/* Image folders                                                             */
/* ------------------------------------------------------------------------ */

static void test_folder_semantics(void **state)
{
    (void)state;
    char *root = subdir("sem");
    char *a = dt_fmt("%s/a", root), *b = dt_fmt("%s/b", root), *C = dt_fmt("%s/C", root);
    char *hidden = dt_fmt("%s/.hidden", root), *sub = dt_fmt("%s/a/sub", root);
    dt_mkdir(a);
    dt_mkdir(b);
    dt_mkdir(C);
    dt_mkdir(hidden);
    dt_mkdir(sub);
    write_face(a, "2.png", 20);
    write_face(a, "10.png", 10);
    write_face(a, "1.png", 1);
    write_face(a, ".DS_Store", 99); /* hidden: ignored even though it is an image */
    write_face(sub, "deep.png", 77); /* directories inside a class: ignored */
    write_face(C, "z.png", 200);
    write_face(hidden, "h.png", 50);
    char *readme = dt_fmt("%s/README.txt", root);
    dt_write_text(readme, "root files are ignored\n");
    write_face(root, "stray.png", 5);
    /* b: a JPEG, and a symbolic link to a class folder elsewhere */
    uint8_t g[48 * 48];
    for (int i = 0; i < 48 * 48; i++) g[i] = (uint8_t)(100 + i % 7);
    char *jpg = dt_fmt("%s/x.jpg", b);
    dt_write_jpeg(jpg, g, 48, 48, 1, JCS_GRAYSCALE, 95, false);
    char *outside = subdir("sem_outside");
    write_face(outside, "o.png", 150);
    char *link = dt_fmt("%s/d", root);
    assert_int_equal(symlink(outside, link), 0);

    csnn_dataset *ds = NULL;
    dt_assert_ok(csnn_dataset_load_folder(ctx, root, NULL, &ds));
    csnn_dataset_info info;
    csnn_dataset_info_init(&info);
    dt_assert_ok(csnn_dataset_get_info(ds, &info));
    assert_int_equal(info.num_samples, 6);
    assert_int_equal(info.num_classes, 4);
    assert_int_equal(info.channels, 1);
    assert_int_equal(info.height, 48);
    assert_int_equal(info.width, 48);
    assert_int_equal(info.skipped, 0);
    /* bytewise: "C" < "a" < "b" < "d" */
    assert_string_equal(class_name(ds, 0), "C");
    assert_string_equal(class_name(ds, 1), "a");
    assert_string_equal(class_name(ds, 2), "b");
    assert_string_equal(class_name(ds, 3), "d");
    const char *order[] = {"/C/z.png", "/a/1.png", "/a/10.png", "/a/2.png", "/b/x.jpg", "/d/o.png"};
    const int32_t labels[] = {0, 1, 1, 1, 2, 3};
    const uint8_t first[] = {200, 1, 10, 20, 0, 150};
    for (int i = 0; i < 6; i++) {
        assert_true(ends_with(source(ds, i), order[i]));
        uint8_t px[48 * 48];
        int32_t label = -1;
        dt_assert_ok(csnn_dataset_get_sample(ds, i, px, sizeof px, &label));
        assert_int_equal(label, labels[i]);
        if (i != 4) assert_int_equal(px[0], first[i]);
        uint8_t ref[48 * 48];
        dt_assert_ok(csnn_image_load(source(ds, i), NULL, ref, sizeof ref));
        assert_memory_equal(px, ref, sizeof px);
    }
    int64_t count;
    dt_assert_ok(csnn_dataset_class_count(ds, 1, &count));
    assert_int_equal(count, 3);
    dt_assert_ok(csnn_dataset_class_count(ds, 0, &count));
    assert_int_equal(count, 1);

    /* query errors */
    const char *name;
    uint8_t px[48 * 48];
    dt_assert_error(csnn_dataset_class_name(ds, 4, &name), CSNN_ERR_INVALID_ARGUMENT, "4");
    dt_assert_error(csnn_dataset_class_name(ds, -1, &name), CSNN_ERR_INVALID_ARGUMENT, "-1");
    dt_assert_error(csnn_dataset_class_count(ds, 9, &count), CSNN_ERR_INVALID_ARGUMENT, "9");
    dt_assert_error(csnn_dataset_get_sample(ds, 6, px, sizeof px, NULL), CSNN_ERR_INVALID_ARGUMENT,
                    "6");
    dt_assert_error(csnn_dataset_get_sample(ds, 0, px, 100, NULL), CSNN_ERR_SHAPE, "100");
    int32_t label;
    dt_assert_ok(csnn_dataset_get_sample(ds, 5, NULL, 0, &label));
    assert_int_equal(label, 3);
    dt_assert_error(csnn_dataset_sample_source(ds, -1, &name), CSNN_ERR_INVALID_ARGUMENT, "-1");
    dt_assert_error(csnn_dataset_get_info(ds, NULL), CSNN_ERR_INVALID_ARGUMENT, "info");
    info.size = 4;
    dt_assert_error(csnn_dataset_get_info(ds, &info), CSNN_ERR_ABI_STRUCT_SIZE, "size");
    csnn_dataset_destroy(ds);
    csnn_dataset_destroy(NULL);

    /* the generic loader dispatches a directory to the folder loader */
    dt_assert_ok(csnn_dataset_load(ctx, root, NULL, &ds));
    assert_int_equal(ds->n, 6);
    csnn_dataset_destroy(ds);

    free(link);
    free(outside);
    free(jpg);
    free(readme);
    free(sub);
    free(hidden);
    free(C);
    free(b);
    free(a);
    free(root);
}

static void test_folder_errors(void **state)
{
    (void)state;
    csnn_dataset *ds = (csnn_dataset *)1;
    char *missing = dt_fmt("%s/does-not-exist", tmp_dir);
    dt_assert_error(csnn_dataset_load_folder(ctx, missing, NULL, &ds), CSNN_ERR_IO, missing);
    assert_null(ds);
    dt_assert_error(csnn_dataset_load_folder(NULL, tmp_dir, NULL, &ds), CSNN_ERR_INVALID_ARGUMENT,
                    "ctx");
    dt_assert_error(csnn_dataset_load_folder(ctx, NULL, NULL, &ds), CSNN_ERR_INVALID_ARGUMENT,
                    "root");
    dt_assert_error(csnn_dataset_load_folder(ctx, tmp_dir, NULL, NULL), CSNN_ERR_INVALID_ARGUMENT,
                    "out");

    /* no class folder */
    char *flat = subdir("flat");
    write_face(flat, "a.png", 1);
    dt_assert_error(csnn_dataset_load_folder(ctx, flat, NULL, &ds), CSNN_ERR_NOT_FOUND,
                    "no class folder");

    /* an empty class folder (hidden files do not count) */
    char *emp = subdir("emptyclass");
    char *e1 = dt_fmt("%s/full", emp), *e2 = dt_fmt("%s/void", emp);
    dt_mkdir(e1);
    dt_mkdir(e2);
    write_face(e1, "a.png", 1);
    write_face(e2, ".hidden.png", 1);
    dt_assert_error(csnn_dataset_load_folder(ctx, emp, NULL, &ds), CSNN_ERR_NOT_FOUND, e2);

    /* a class name longer than 63 bytes */
    char *longroot = subdir("longname");
    char name64[65];
    memset(name64, 'x', 64);
    name64[64] = '\0';
    char *lc = dt_fmt("%s/%s", longroot, name64);
    dt_mkdir(lc);
    write_face(lc, "a.png", 1);
    dt_assert_error(csnn_dataset_load_folder(ctx, longroot, NULL, &ds), CSNN_ERR_LIMIT, "63");

    /* too many samples */
    char *many = subdir("many");
    char *m1 = dt_fmt("%s/k", many);
    dt_mkdir(m1);
    for (int i = 0; i < 3; i++) {
        char n[16];
        snprintf(n, sizeof n, "%d.png", i);
        write_face(m1, n, (uint8_t)i);
    }
    csnn_dataset_options o;
    csnn_dataset_options_init(&o);
    o.max_samples = 2;
    dt_assert_error(csnn_dataset_load_folder(ctx, many, &o, &ds), CSNN_ERR_LIMIT, "max_samples");
    o.max_samples = 3;
    dt_assert_ok(csnn_dataset_load_folder(ctx, many, &o, &ds));
    csnn_dataset_destroy(ds);

    /* bad files: the first in sample order is named, whatever the threads */
    char *bad = subdir("bad");
    char *ka = dt_fmt("%s/ka", bad), *kb = dt_fmt("%s/kb", bad), *kc = dt_fmt("%s/kc", bad);
    dt_mkdir(ka);
    dt_mkdir(kb);
    dt_mkdir(kc);
    for (int i = 0; i < 12; i++) {
        char n[16];
        snprintf(n, sizeof n, "%02d.png", i);
        write_face(ka, n, (uint8_t)i);
    }
    write_face(kb, "00.png", 7);
    char *text = dt_fmt("%s/01_text.png", kb);
    dt_write_text(text, "not an image");
    char *zero = dt_fmt("%s/02_zero.jpg", kb);
    dt_write_bytes(zero, "", 0);
    write_face(kb, "03.png", 9);
    /* truncated copy of a good PNG */
    size_t n;
    char *good = dt_fmt("%s/00.png", ka);
    uint8_t *bytes = dt_read_bytes(good, &n);
    char *trunc = dt_fmt("%s/04_trunc.png", kb);
    dt_write_bytes(trunc, bytes, n / 2);
    free(bytes);
    /* an image above max_image_pixels */
    uint8_t bigpx[64 * 64] = {0};
    char *big = dt_fmt("%s/05_big.png", kb);
    dt_write_gray_png(big, bigpx, 64, 64);
    /* class kc: every file bad */
    char *allbad = dt_fmt("%s/only.png", kc);
    dt_write_text(allbad, "junk");

    csnn_dataset_options_init(&o);
    o.max_image_pixels = 48 * 48;
    for (int threads = 1; threads <= 4; threads += 3) {
        for (int rep = 0; rep < 3; rep++) {
            o.n_threads = threads;
            ds = (csnn_dataset *)1;
            dt_assert_error(csnn_dataset_load_folder(ctx, bad, &o, &ds), CSNN_ERR_FORMAT, text);
            assert_null(ds);
            assert_non_null(strstr(csnn_last_error_message(), "csnn_dataset_load_folder"));
        }
    }
    /* skip_bad: the four bad files of kb and the one of kc are skipped */
    o.skip_bad = 1;
    dt_log_reset();
    dt_assert_ok(csnn_dataset_load_folder(ctx, bad, &o, &ds));
    csnn_dataset_info info;
    csnn_dataset_info_init(&info);
    dt_assert_ok(csnn_dataset_get_info(ds, &info));
    assert_int_equal(info.skipped, 5);
    assert_int_equal(info.num_samples, 14);
    assert_int_equal(info.num_classes, 3);
    assert_true(dt_log_warnings >= 5);
    int64_t count;
    dt_assert_ok(csnn_dataset_class_count(ds, 1, &count));
    assert_int_equal(count, 2);
    dt_assert_ok(csnn_dataset_class_count(ds, 2, &count));
    assert_int_equal(count, 0); /* kept: labels stay stable */
    assert_true(ends_with(source(ds, 12), "/kb/00.png"));
    assert_true(ends_with(source(ds, 13), "/kb/03.png"));
    uint8_t px[48 * 48];
    dt_assert_ok(csnn_dataset_get_sample(ds, 13, px, sizeof px, NULL));
    assert_int_equal(px[0], 9);
    csnn_dataset_destroy(ds);
    /* the limit alone */
    o.skip_bad = 0;
    char *limroot = subdir("limit");
    char *lim = dt_fmt("%s/c", limroot);
    dt_mkdir(lim);
    char *big2 = dt_fmt("%s/big.png", lim);
    dt_write_gray_png(big2, bigpx, 64, 64);
    dt_assert_error(csnn_dataset_load_folder(ctx, limroot, &o, &ds), CSNN_ERR_LIMIT, big2);

    free(big2);
    free(lim);
    free(limroot);
    free(allbad);
    free(big);
    free(trunc);
    free(good);
    free(zero);
    free(text);
    free(kc);
    free(kb);
    free(ka);
    free(bad);
    free(m1);
    free(many);
    free(lc);
    free(longroot);
    free(e2);
    free(e1);
    free(emp);
    free(flat);
    free(missing);
}

static void test_folder_threads_and_resize(void **state)
{
    (void)state;
    char *root = subdir("threads");
    uint32_t rs = 42;
    for (int c = 0; c < 3; c++) {
        char *dir = dt_fmt("%s/class%d", root, c);
        dt_mkdir(dir);
        for (int i = 0; i < 20; i++) {
            uint8_t px[48 * 48];
            for (int k = 0; k < 48 * 48; k++) px[k] = (uint8_t)dt_rand(&rs);
            char *p = dt_fmt("%s/%03d.png", dir, i);
            dt_write_gray_png(p, px, 48, 48);
            free(p);
        }
        free(dir);
    }
    csnn_dataset_options o;
    csnn_dataset_options_init(&o);
    csnn_dataset *d1, *d4, *small;
    o.n_threads = 1;
    dt_assert_ok(csnn_dataset_load_folder(ctx, root, &o, &d1));
    o.n_threads = 4;
    dt_assert_ok(csnn_dataset_load_folder(ctx, root, &o, &d4));
    o.height = 24;
    o.width = 30;
    dt_assert_ok(csnn_dataset_load_folder(ctx, root, &o, &small));
    assert_int_equal(d1->n, 60);
    assert_memory_equal(d1->pixels, d4->pixels, 60 * 48 * 48);
    assert_memory_equal(d1->labels, d4->labels, 60 * sizeof(int32_t));
    assert_int_equal(small->height, 24);
    assert_int_equal(small->width, 30);
    for (int i = 0; i < 60; i++) {
        uint8_t ref[24 * 30];
        csnn__image_resize(d1->pixels + (size_t)i * 48 * 48, 48, 48, ref, 24, 30);
        assert_memory_equal(small->pixels + (size_t)i * 24 * 30, ref, sizeof ref);
    }
    csnn_dataset_destroy(small);
    csnn_dataset_destroy(d4);
    csnn_dataset_destroy(d1);
    free(root);
}

/* ------------------------------------------------------------------------ */
/* FER2013 CSV                                                               */
/* ------------------------------------------------------------------------ */

typedef struct {
    int label;
    uint8_t px[2304];
    const char *usage;
} csv_row;

static const char *const usages[3] = {"Training", "PublicTest", "PrivateTest"};

static void make_rows(csv_row *rows, int n, uint32_t seed)
{
    for (int r = 0; r < n; r++) {
        rows[r].label = r % 7;
        rows[r].usage = usages[r % 3];
        for (int k = 0; k < 2304; k++) rows[r].px[k] = (uint8_t)dt_rand(&seed);
        rows[r].px[0] = (uint8_t)r; /* identifies the row */
    }
}

/* Writes rows as FER2013's CSV. */
static char *write_csv(const char *name, const csv_row *rows, int n, bool crlf, bool quoted)
{
    size_t cap = (size_t)n * 10000 + 100, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    const char *eol = crlf ? "\r\n" : "\n";
    len += (size_t)sprintf(buf + len, "emotion,pixels,Usage%s", eol);
    for (int r = 0; r < n; r++) {
        len += (size_t)sprintf(buf + len, "%d,%s", rows[r].label, quoted ? "\"" : "");
        for (int k = 0; k < 2304; k++)
            len += (size_t)sprintf(buf + len, k ? " %u" : "%u", rows[r].px[k]);
        len += (size_t)sprintf(buf + len, "%s,%s%s", quoted ? "\"" : "", rows[r].usage, eol);
    }
    char *path = dt_fmt("%s/%s", tmp_dir, name);
    dt_write_bytes(path, buf, len);
    free(buf);
    return path;
}

static const char *const fer_names[7] = {"angry", "disgust", "fear", "happy",
                                         "neutral", "sad", "surprise"};
/* CSV label -> alphabetical class */
static const int32_t fer_map[7] = {0, 1, 2, 3, 5, 6, 4};

static void test_csv_basic(void **state)
{
    (void)state;
    enum { N = 15 };
    static csv_row rows[N];
    make_rows(rows, N, 1);
    char *lf = write_csv("basic.csv", rows, N, false, false);
    char *crlf = write_csv("basic_crlf.csv", rows, N, true, true);
    csnn_dataset *a, *b;
    dt_assert_ok(csnn_dataset_load_fer2013_csv(ctx, lf, NULL, &a));
    dt_assert_ok(csnn_dataset_load(ctx, crlf, NULL, &b));
    assert_int_equal(a->n, N);
    assert_int_equal(a->n_classes, 7);
    for (int c = 0; c < 7; c++) assert_string_equal(class_name(a, c), fer_names[c]);
    for (int r = 0; r < N; r++) {
        assert_int_equal(a->labels[r], fer_map[rows[r].label]);
        assert_memory_equal(a->pixels + (size_t)r * 2304, rows[r].px, 2304);
        char want[64];
        snprintf(want, sizeof want, "basic.csv:%d", r + 2);
        assert_true(ends_with(source(a, r), want));
    }
    /* label 4 is sad, 6 neutral */
    assert_string_equal(class_name(a, a->labels[4]), "sad");
    assert_string_equal(class_name(a, a->labels[6]), "neutral");
    assert_string_equal(class_name(a, a->labels[5]), "surprise");
    int64_t count;
    dt_assert_ok(csnn_dataset_class_count(a, fer_map[0], &count));
    assert_int_equal(count, 3); /* rows 0, 7, 14 */
    /* CRLF and quoted pixels read the same */
    assert_int_equal(b->n, N);
    assert_memory_equal(a->pixels, b->pixels, (size_t)N * 2304);
    assert_memory_equal(a->labels, b->labels, N * sizeof(int32_t));
    csnn_dataset_destroy(b);

    /* usage filter */
    csnn_dataset_options o;
    csnn_dataset_options_init(&o);
    o.usage = "PublicTest";
    dt_assert_ok(csnn_dataset_load_fer2013_csv(ctx, lf, &o, &b));
    assert_int_equal(b->n, 5);
    for (int i = 0; i < 5; i++) {
        int r = 3 * i + 1;
        assert_int_equal(b->pixels[(size_t)i * 2304], r);
        assert_int_equal(b->labels[i], fer_map[rows[r].label]);
    }
    csnn_dataset_destroy(b);
    o.usage = "Validation";
    dt_assert_error(csnn_dataset_load_fer2013_csv(ctx, lf, &o, &b), CSNN_ERR_NOT_FOUND,
                    "Validation");

    /* another target size: each row resized */
    csnn_dataset_options_init(&o);
    o.height = 32;
    o.width = 40;
    dt_assert_ok(csnn_dataset_load_fer2013_csv(ctx, lf, &o, &b));
    for (int r = 0; r < N; r++) {
        uint8_t ref[32 * 40];
        csnn__image_resize(rows[r].px, 48, 48, ref, 32, 40);
        assert_memory_equal(b->pixels + (size_t)r * 32 * 40, ref, sizeof ref);
    }
    csnn_dataset_destroy(b);
    o.height = o.width = 48;
    o.max_samples = 14;
    dt_assert_error(csnn_dataset_load_fer2013_csv(ctx, lf, &o, &b), CSNN_ERR_LIMIT, "basic.csv:16");
    csnn_dataset_destroy(a);
    free(crlf);
    free(lf);
}

/* A CSV with one row's text replaced. */
static char *csv_with_bad_row(const char *name, int bad_index, const char *bad_row, bool header)
{
    enum { N = 5 };
    static csv_row rows[N];
    make_rows(rows, N, 2);
    char *path = write_csv(name, rows, N, false, false);
    size_t n;
    uint8_t *bytes = dt_read_bytes(path, &n);
    /* rebuild line by line */
    size_t cap = n + strlen(bad_row) + 100, len = 0;
    char *out = malloc(cap);
    const char *p = (const char *)bytes, *end = p + n;
    int line = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        bool skip_header = !header && line == 0;
        if (line == bad_index + 1) {
            len += (size_t)sprintf(out + len, "%s\n", bad_row);
        } else if (!skip_header) {
            memcpy(out + len, p, l);
            len += l;
        }
        p += l;
        line++;
    }
    dt_write_bytes(path, out, len);
    free(out);
    free(bytes);
    return path;
}

static char *pixels_text(int count, int bad_at, const char *bad_value)
{
    char *s = malloc((size_t)count * 5 + 64);
    size_t len = 0;
    for (int k = 0; k < count; k++)
        len += (size_t)sprintf(s + len, "%s%s", k ? " " : "", k == bad_at ? bad_value : "7");
    return s;
}

static void test_csv_errors(void **state)
{
    (void)state;
    csnn_dataset *ds = (csnn_dataset *)1;
    char *missing = dt_fmt("%s/none.csv", tmp_dir);
    dt_assert_error(csnn_dataset_load_fer2013_csv(ctx, missing, NULL, &ds), CSNN_ERR_IO, missing);
    assert_null(ds);
    dt_assert_error(csnn_dataset_load(ctx, missing, NULL, &ds), CSNN_ERR_IO, missing);

    char *fifo = dt_fmt("%s/fifo.csv", tmp_dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    dt_assert_error(csnn_dataset_load(ctx, fifo, NULL, &ds), CSNN_ERR_IO, "not a regular file");
    free(fifo);
    char *empty = dt_fmt("%s/empty.csv", tmp_dir);
    dt_write_bytes(empty, "", 0);
    dt_assert_error(csnn_dataset_load_fer2013_csv(ctx, empty, NULL, &ds), CSNN_ERR_FORMAT, empty);

    /* missing header: the first data row is line 1 */
    char *nohdr = csv_with_bad_row("nohdr.csv", 2, "0,1 2 3,Training", false);
    dt_assert_error(csnn_dataset_load_fer2013_csv(ctx, nohdr, NULL, &ds), CSNN_ERR_FORMAT,
                    "nohdr.csv:1:");

    struct {
        const char *name;
        char *row;
        const char *needle;
    } cases[8];
    int nc = 0;
    char *px2303 = pixels_text(2303, -1, NULL);
    char *px2305 = pixels_text(2305, -1, NULL);
    char *px256 = pixels_text(2304, 17, "256");
    char *pxalpha = pixels_text(2304, 5, "12a");
    char *pxneg = pixels_text(2304, 0, "-1");
    char *good = pixels_text(2304, -1, NULL);
    cases[nc].name = "count.csv";
    cases[nc].row = dt_fmt("3,%s,Training", px2303);
    cases[nc++].needle = "count.csv:4: 2303 pixel values";
    cases[nc].name = "count2.csv";
    cases[nc].row = dt_fmt("3,%s,Training", px2305);
    cases[nc++].needle = "2305";
    cases[nc].name = "range.csv";
    cases[nc].row = dt_fmt("3,%s,Training", px256);
    cases[nc++].needle = "range.csv:4: pixel 18 is 256";
    cases[nc].name = "alpha.csv";
    cases[nc].row = dt_fmt("3,%s,Training", pxalpha);
    cases[nc++].needle = "'12a'";
    cases[nc].name = "neg.csv";
    cases[nc].row = dt_fmt("3,%s,Training", pxneg);
    cases[nc++].needle = "'-1'";
    cases[nc].name = "label.csv";
    cases[nc].row = dt_fmt("7,%s,Training", good);
    cases[nc++].needle = "label.csv:4: unknown label '7'";
    cases[nc].name = "label2.csv";
    cases[nc].row = dt_fmt("x,%s,Training", good);
    cases[nc++].needle = "unknown label 'x'";
    cases[nc].name = "fields.csv";
    cases[nc].row = dt_fmt("3,%s,Training,extra", good);
    cases[nc++].needle = "4 fields, expected 3";
    for (int i = 0; i < nc; i++) {
        char *path = csv_with_bad_row(cases[i].name, 2, cases[i].row, true);
        dt_assert_error(csnn_dataset_load_fer2013_csv(ctx, path, NULL, &ds), CSNN_ERR_FORMAT,
                        cases[i].needle);
        assert_non_null(strstr(csnn_last_error_message(), "csnn_dataset_load_fer2013_csv"));
        /* skip_bad: the row is skipped, counted and logged */
        csnn_dataset_options o;
        csnn_dataset_options_init(&o);
        o.skip_bad = 1;
        dt_log_reset();
        dt_assert_ok(csnn_dataset_load_fer2013_csv(ctx, path, &o, &ds));
        assert_int_equal(ds->n, 4);
        assert_int_equal(ds->skipped, 1);
        assert_int_equal(dt_log_warnings, 1);
        assert_non_null(strstr(dt_log_last, ":4:"));
        assert_true(ends_with(source(ds, 2), ":5")); /* row 3 follows the skipped line */
        csnn_dataset_destroy(ds);
        free(path);
        free(cases[i].row);
    }
    /* a line above the 65536-byte limit */
    char *huge = malloc(70001);
    memset(huge, '1', 70000);
    huge[70000] = '\0';
    char *longp = csv_with_bad_row("long.csv", 1, huge, true);
    dt_assert_error(csnn_dataset_load_fer2013_csv(ctx, longp, NULL, &ds), CSNN_ERR_FORMAT,
                    "long.csv:3: line longer than 65536");
    csnn_dataset_options o;
    csnn_dataset_options_init(&o);
    o.skip_bad = 1;
    dt_assert_ok(csnn_dataset_load_fer2013_csv(ctx, longp, &o, &ds));
    assert_int_equal(ds->n, 4);
    assert_int_equal(ds->skipped, 1);
    csnn_dataset_destroy(ds);
    /* a usage filter needs the Usage column */
    char *nousage = dt_fmt("%s/nousage.csv", tmp_dir);
    char *text = dt_fmt("emotion,pixels\n2,%s\n\n", good);
    dt_write_text(nousage, text);
    dt_assert_ok(csnn_dataset_load_fer2013_csv(ctx, nousage, NULL, &ds));
    assert_int_equal(ds->n, 1);
    assert_string_equal(class_name(ds, ds->labels[0]), "fear");
    csnn_dataset_destroy(ds);
    csnn_dataset_options_init(&o);
    o.usage = "Training";
    dt_assert_error(csnn_dataset_load_fer2013_csv(ctx, nousage, &o, &ds), CSNN_ERR_FORMAT,
                    "Usage");
    /* a header alone: no rows */
    char *hdr = dt_fmt("%s/hdr.csv", tmp_dir);
    dt_write_text(hdr, "\xEF\xBB\xBF" "emotion,pixels,Usage\r\n");
    dt_assert_error(csnn_dataset_load_fer2013_csv(ctx, hdr, NULL, &ds), CSNN_ERR_NOT_FOUND, hdr);

    free(hdr);
    free(text);
    free(nousage);
    free(longp);
    free(huge);
    free(good);
    free(pxneg);
    free(pxalpha);
    free(px256);
    free(px2305);
    free(px2303);
    free(nohdr);
    free(empty);
    free(missing);
}

/* A CSV and an image-folder copy of the same data give the same dataset. */
static void test_csv_equals_folder(void **state)
{
    (void)state;
    enum { N = 28 };
    static csv_row rows[N];
    make_rows(rows, N, 3);
    char *csv = write_csv("same.csv", rows, N, false, false);
    char *root = subdir("same");
    for (int c = 0; c < 7; c++) {
        char *d = dt_fmt("%s/%s", root, fer_names[c]);
        dt_mkdir(d);
        free(d);
    }
    for (int r = 0; r < N; r++) {
        char *p = dt_fmt("%s/%s/%05d.png", root, fer_names[fer_map[rows[r].label]], r);
        dt_write_gray_png(p, rows[r].px, 48, 48);
        free(p);
    }
    csnn_dataset *a, *b;
    dt_assert_ok(csnn_dataset_load(ctx, csv, NULL, &a));
    dt_assert_ok(csnn_dataset_load(ctx, root, NULL, &b));
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->n_classes, b->n_classes);
    for (int c = 0; c < 7; c++) {
        assert_string_equal(class_name(a, c), class_name(b, c));
        assert_int_equal(a->class_counts[c], b->class_counts[c]);
    }
    /* the folder is class-major, rows in order within a class */
    int64_t k = 0;
    for (int32_t c = 0; c < 7; c++)
        for (int64_t i = 0; i < a->n; i++) {
            if (a->labels[i] != c) continue;
            assert_int_equal(b->labels[k], c);
            assert_memory_equal(b->pixels + (size_t)k * 2304, a->pixels + (size_t)i * 2304, 2304);
            k++;
        }
    assert_int_equal(k, N);
    csnn_dataset_destroy(b);
    csnn_dataset_destroy(a);
    free(root);
    free(csv);
}

/* ------------------------------------------------------------------------ */
/* Host arrays                                                               */
/* ------------------------------------------------------------------------ */

static void test_arrays(void **state)
{
    (void)state;
    uint8_t px[5 * 4 * 3];
    int32_t labels[5] = {0, 2, 1, 2, 0};
    for (int i = 0; i < 60; i++) px[i] = (uint8_t)i;
    csnn_dataset *ds = NULL;
    dt_assert_ok(csnn_dataset_create_from_arrays(ctx, px, labels, 5, 4, 3, NULL, 3, &ds));
    assert_string_equal(class_name(ds, 0), "0");
    assert_string_equal(class_name(ds, 2), "2");
    assert_string_equal(source(ds, 3), "array:3");
    uint8_t out[12];
    int32_t label;
    dt_assert_ok(csnn_dataset_get_sample(ds, 3, out, sizeof out, &label));
    assert_memory_equal(out, px + 36, 12);
    assert_int_equal(label, 2);
    int64_t count;
    dt_assert_ok(csnn_dataset_class_count(ds, 2, &count));
    assert_int_equal(count, 2);
    csnn_dataset_destroy(ds);

    const char *names[3] = {"cat", "dog", "emu"};
    dt_assert_ok(csnn_dataset_create_from_arrays(ctx, px, labels, 5, 4, 3, names, 3, &ds));
    assert_string_equal(class_name(ds, 1), "dog");
    assert_ptr_not_equal(class_name(ds, 1), names[1]); /* copied */
    csnn_dataset_destroy(ds);
    /* no samples */
    dt_assert_ok(csnn_dataset_create_from_arrays(ctx, NULL, NULL, 0, 4, 3, names, 3, &ds));
    assert_int_equal(ds->n, 0);
    csnn_dataset_destroy(ds);

    int32_t badl[5] = {0, 3, 1, 2, 0};
    dt_assert_error(csnn_dataset_create_from_arrays(ctx, px, badl, 5, 4, 3, NULL, 3, &ds),
                    CSNN_ERR_INVALID_ARGUMENT, "labels[1]");
    assert_null(ds);
    badl[1] = -1;
    dt_assert_error(csnn_dataset_create_from_arrays(ctx, px, badl, 5, 4, 3, NULL, 3, &ds),
                    CSNN_ERR_INVALID_ARGUMENT, "labels[1]");
    const char *dup[3] = {"a", "b", "a"};
    dt_assert_error(csnn_dataset_create_from_arrays(ctx, px, labels, 5, 4, 3, dup, 3, &ds),
                    CSNN_ERR_INVALID_ARGUMENT, "twice");
    const char *ctl[3] = {"a", "b\n", "c"};
    dt_assert_error(csnn_dataset_create_from_arrays(ctx, px, labels, 5, 4, 3, ctl, 3, &ds),
                    CSNN_ERR_INVALID_ARGUMENT, "control");
    char long64[65];
    memset(long64, 'q', 64);
    long64[64] = '\0';
    const char *lng[3] = {"a", long64, "c"};
    dt_assert_error(csnn_dataset_create_from_arrays(ctx, px, labels, 5, 4, 3, lng, 3, &ds),
                    CSNN_ERR_LIMIT, "63");
    const char *nul[3] = {"a", NULL, "c"};
    dt_assert_error(csnn_dataset_create_from_arrays(ctx, px, labels, 5, 4, 3, nul, 3, &ds),
                    CSNN_ERR_INVALID_ARGUMENT, "class_names[1]");
    dt_assert_error(csnn_dataset_create_from_arrays(ctx, px, labels, 5, 0, 3, NULL, 3, &ds),
                    CSNN_ERR_INVALID_ARGUMENT, "0x3");
    dt_assert_error(csnn_dataset_create_from_arrays(ctx, px, labels, 5, 4, 3, NULL, 0, &ds),
                    CSNN_ERR_INVALID_ARGUMENT, "n_classes");
    dt_assert_error(csnn_dataset_create_from_arrays(ctx, px, labels, 5, 4, 3, NULL, 70000, &ds),
                    CSNN_ERR_LIMIT, "70000");
    dt_assert_error(csnn_dataset_create_from_arrays(ctx, NULL, labels, 5, 4, 3, NULL, 3, &ds),
                    CSNN_ERR_INVALID_ARGUMENT, "pixels");
    dt_assert_error(csnn_dataset_create_from_arrays(NULL, px, labels, 5, 4, 3, NULL, 3, &ds),
                    CSNN_ERR_INVALID_ARGUMENT, "ctx");
}

/* ------------------------------------------------------------------------ */
/* Split                                                                     */
/* ------------------------------------------------------------------------ */

static csnn_dataset *split_source(void)
{
    /* classes of 10, 21, 5 and 0 samples, interleaved */
    enum { N = 36 };
    static uint8_t px[N * 2];
    static int32_t labels[N];
    int left[3] = {10, 21, 5}, c = 0;
    for (int i = 0; i < N; i++) {
        while (left[c % 3] == 0) c++;
        labels[i] = c % 3;
        left[c % 3]--;
        c++;
        px[2 * i] = (uint8_t)i;
        px[2 * i + 1] = (uint8_t)labels[i];
    }
    csnn_dataset *ds;
    dt_assert_ok(csnn_dataset_create_from_arrays(ctx, px, labels, N, 1, 2, NULL, 4, &ds));
    return ds;
}

static void check_split(const csnn_dataset *src, const csnn_dataset *rest,
                        const csnn_dataset *part, double fraction)
{
    assert_int_equal(rest->n + part->n, src->n);
    assert_int_equal(rest->n_classes, src->n_classes);
    assert_int_equal(part->n_classes, src->n_classes);
    for (int32_t c = 0; c < src->n_classes; c++) {
        assert_string_equal(class_name(rest, c), class_name(src, c));
        int64_t want = llround(fraction * (double)src->class_counts[c]);
        assert_int_equal(part->class_counts[c], want);
        assert_int_equal(rest->class_counts[c], src->class_counts[c] - want);
    }
    /* disjoint, complete, order kept: pixel 0 is the original index */
    int seen[64] = {0};
    const csnn_dataset *outs[2] = {rest, part};
    for (int o = 0; o < 2; o++) {
        int prev = -1;
        for (int64_t i = 0; i < outs[o]->n; i++) {
            int orig = outs[o]->pixels[2 * i];
            assert_true(orig > prev);
            prev = orig;
            seen[orig]++;
            assert_int_equal(outs[o]->labels[i], src->labels[orig]);
            char want[32];
            snprintf(want, sizeof want, "array:%d", orig);
            assert_string_equal(source(outs[o], i), want);
        }
    }
    for (int64_t i = 0; i < src->n; i++) assert_int_equal(seen[i], 1);
}

static void test_split(void **state)
{
    (void)state;
    csnn_dataset *src = split_source();
    csnn_dataset *r1, *p1, *r2, *p2, *r3, *p3;
    dt_assert_ok(csnn_dataset_split(src, 0.2, 7, &r1, &p1));
    check_split(src, r1, p1, 0.2);
    assert_int_equal(p1->class_counts[0], 2);
    assert_int_equal(p1->class_counts[1], 4);
    assert_int_equal(p1->class_counts[2], 1);
    assert_int_equal(p1->class_counts[3], 0);
    /* the same seed: the same split */
    dt_assert_ok(csnn_dataset_split(src, 0.2, 7, &r2, &p2));
    assert_int_equal(p2->n, p1->n);
    assert_memory_equal(p2->pixels, p1->pixels, (size_t)p1->n * 2);
    /* another seed: another choice (for 21 choose 4 and 10 choose 2) */
    dt_assert_ok(csnn_dataset_split(src, 0.2, 8, &r3, &p3));
    check_split(src, r3, p3, 0.2);
    assert_true(memcmp(p3->pixels, p1->pixels, (size_t)p1->n * 2) != 0);
    csnn_dataset_destroy(r1);
    csnn_dataset_destroy(p1);
    csnn_dataset_destroy(r2);
    csnn_dataset_destroy(p2);
    csnn_dataset_destroy(r3);
    csnn_dataset_destroy(p3);

    /* rounding half away from zero: 0.5 * 5 -> 3, 0.5 * 21 -> 11 */
    dt_assert_ok(csnn_dataset_split(src, 0.5, 1, &r1, &p1));
    check_split(src, r1, p1, 0.5);
    assert_int_equal(p1->class_counts[2], 3);
    assert_int_equal(p1->class_counts[1], 11);
    /* splitting a split keeps the original sources */
    dt_assert_ok(csnn_dataset_split(p1, 0.3, 2, &r2, &p2));
    for (int64_t i = 0; i < p2->n; i++) {
        char want[32];
        snprintf(want, sizeof want, "array:%d", p2->pixels[2 * i]);
        assert_string_equal(source(p2, i), want);
    }
    csnn_dataset_destroy(r2);
    csnn_dataset_destroy(p2);
    csnn_dataset_destroy(r1);
    csnn_dataset_destroy(p1);

    /* fraction 0: everything in rest */
    dt_assert_ok(csnn_dataset_split(src, 0.0, 1, &r1, &p1));
    assert_int_equal(p1->n, 0);
    assert_int_equal(r1->n, src->n);
    assert_memory_equal(r1->pixels, src->pixels, (size_t)src->n * 2);
    csnn_dataset_destroy(r1);
    csnn_dataset_destroy(p1);

    r1 = p1 = (csnn_dataset *)1;
    dt_assert_error(csnn_dataset_split(src, 1.0, 1, &r1, &p1), CSNN_ERR_INVALID_ARGUMENT,
                    "fraction");
    assert_null(r1);
    assert_null(p1);
    dt_assert_error(csnn_dataset_split(src, -0.1, 1, &r1, &p1), CSNN_ERR_INVALID_ARGUMENT,
                    "fraction");
    dt_assert_error(csnn_dataset_split(src, NAN, 1, &r1, &p1), CSNN_ERR_INVALID_ARGUMENT,
                    "fraction");
    dt_assert_error(csnn_dataset_split(src, 0.1, 1, &r1, &r1), CSNN_ERR_INVALID_ARGUMENT, "same");
    dt_assert_error(csnn_dataset_split(NULL, 0.1, 1, &r1, &p1), CSNN_ERR_INVALID_ARGUMENT, "ds");
    dt_assert_error(csnn_dataset_split(src, 0.1, 1, NULL, &p1), CSNN_ERR_INVALID_ARGUMENT, "rest");
    csnn_dataset_destroy(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_folder_semantics),
        cmocka_unit_test(test_folder_errors),
        cmocka_unit_test(test_folder_threads_and_resize),
        cmocka_unit_test(test_csv_basic),
        cmocka_unit_test(test_csv_errors),
        cmocka_unit_test(test_csv_equals_folder),
        cmocka_unit_test(test_arrays),
        cmocka_unit_test(test_split),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
