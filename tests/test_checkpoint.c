/*
 * test_checkpoint.c - the model/checkpoint file: round trips (byte-exact),
 * corrupted, truncated and foreign files, version rules, trainer resume,
 * atomic replacement.
 */
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "test_util.h"

static csnn_context *ctx;
static char *dir;

static const char *spec =
    "input 1x8x8\nsteps 2\nclasses 3\n"
    "static: conv 4 k=3 p=1; bn\nif\nmaxpool 2\nflatten\ndropout 0.3\nlinear 6\nlif\nlinear 3\nlif\n";

static int setup(void **state)
{
    (void)state;
    csnn_context_options o;
    csnn_context_options_init(&o);
    o.device = test_device();
    dir = test_tempdir();
    return dir && csnn_context_create(&o, &ctx) == CSNN_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    csnn_context_destroy(ctx);
    test_rmtree(dir);
    free(dir);
    return 0;
}

static char *path_in_dir(const char *name)
{
    char *p = malloc(4200);
    snprintf(p, 4200, "%s/%s", dir, name);
    return p;
}

static uint8_t *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return b;
}

static void write_all(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* A trained model with named classes, so nothing is at its initial value. */
static csnn_model *trained_model(csnn_trainer **trainer_out)
{
    csnn_model *m;
    csnn_trainer *t;
    CHECK_OK(csnn_model_create_from_spec(ctx, spec, 3, &m));
    const char *names[3] = {"alpha", "beta", "gamma"};
    CHECK_OK(csnn_model_set_class_names(m, names, 3));
    CHECK_OK(csnn_trainer_create(m, &t));
    float x[5 * 64];
    int32_t y[5];
    uint64_t s = 4;
    for (int i = 0; i < 5 * 64; i++) x[i] = test_uniform(&s, 0, 1);
    for (int i = 0; i < 5; i++) y[i] = i % 3;
    for (int i = 0; i < 3; i++) CHECK_OK(csnn_trainer_step(t, x, y, 5, NULL));
    if (trainer_out)
        *trainer_out = t;
    else
        csnn_trainer_destroy(t);
    return m;
}

static void assert_same_tensors(csnn_model *a, csnn_model *b)
{
    csnn_model_info ia, ib;
    csnn_model_info_init(&ia);
    csnn_model_info_init(&ib);
    CHECK_OK(csnn_model_get_info(a, &ia));
    CHECK_OK(csnn_model_get_info(b, &ib));
    assert_int_equal(ia.num_tensors, ib.num_tensors);
    for (int64_t i = 0; i < ia.num_tensors; i++) {
        csnn_tensor_info t;
        csnn_tensor_info_init(&t);
        CHECK_OK(csnn_model_tensor_info(a, (size_t)i, &t));
        float *va = malloc((size_t)t.numel * 4), *vb = malloc((size_t)t.numel * 4);
        CHECK_OK(csnn_model_get_tensor(a, t.name, va, (size_t)t.numel));
        CHECK_OK(csnn_model_get_tensor(b, t.name, vb, (size_t)t.numel));
        assert_memory_equal(va, vb, (size_t)t.numel * 4);
        free(va);
        free(vb);
    }
}

static void test_round_trip(void **state)
{
    (void)state;
    csnn_model *m = trained_model(NULL);
    char *p1 = path_in_dir("a.csnn"), *p2 = path_in_dir("b.csnn");
    CHECK_OK(csnn_model_save(m, p1));
    csnn_model *l;
    CHECK_OK(csnn_model_load(ctx, p1, &l));
    assert_same_tensors(m, l);
    const char *s1, *s2, *name;
    CHECK_OK(csnn_model_spec(m, &s1));
    CHECK_OK(csnn_model_spec(l, &s2));
    assert_string_equal(s1, s2);
    CHECK_OK(csnn_model_class_name(l, 2, &name));
    assert_string_equal(name, "gamma");
    float bn_count;
    CHECK_OK(csnn_model_get_tensor(l, "bn1.num_batches_tracked", &bn_count, 1));
    assert_true(bn_count == 3.0f);
    /* save -> load -> save is byte-identical */
    CHECK_OK(csnn_model_save(l, p2));
    size_t n1, n2;
    uint8_t *b1 = read_all(p1, &n1), *b2 = read_all(p2, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    /* the same predictions */
    float x[2 * 64], s_a[6], s_b[6];
    for (int i = 0; i < 128; i++) x[i] = (float)(i % 17) / 16.0f;
    CHECK_OK(csnn_model_predict(m, x, 2, s_a, 6, NULL));
    CHECK_OK(csnn_model_predict(l, x, 2, s_b, 6, NULL));
    assert_memory_equal(s_a, s_b, sizeof s_a);
    /* no temporary file is left beside the model */
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q tmp", dir);
    assert_int_not_equal(system(cmd), 0);
    free(b1);
    free(b2);
    free(p1);
    free(p2);
    csnn_model_destroy(l);
    csnn_model_destroy(m);
}

static void expect_load_fails(const char *path, csnn_status want, const char *why)
{
    csnn_model *l = (csnn_model *)1;
    csnn_clear_last_error();
    csnn_status st = csnn_model_load(ctx, path, &l);
    if (st != want)
        fail_msg("%s: %s, expected %s (%s)", why, csnn_status_name(st), csnn_status_name(want),
                 csnn_last_error_message());
    assert_null(l);
    if (!strstr(csnn_last_error_message(), path))
        fail_msg("%s: the message does not name the file: %s", why, csnn_last_error_message());
}

static void test_corruption(void **state)
{
    (void)state;
    csnn_model *m = trained_model(NULL);
    char *good = path_in_dir("good.csnn"), *bad = path_in_dir("bad.csnn");
    CHECK_OK(csnn_model_save(m, good));
    size_t n;
    uint8_t *b = read_all(good, &n);
    /* every truncation length up to the header, then a spread through the file */
    for (size_t len = 0; len < n; len += (len < 64 ? 1 : 1 + n / 97)) {
        write_all(bad, b, len);
        expect_load_fails(bad, CSNN_ERR_FORMAT, "truncated");
    }
    /* a flipped bit anywhere after the magic is caught by a checksum */
    for (size_t pos = 16; pos < n; pos += 1 + n / 61) {
        b[pos] ^= 0x10;
        write_all(bad, b, n);
        csnn_model *l = (csnn_model *)1;
        csnn_status st = csnn_model_load(ctx, bad, &l);
        if (st != CSNN_ERR_FORMAT && st != CSNN_ERR_VERSION && st != CSNN_ERR_LIMIT)
            fail_msg("flip at %zu: %s", pos, csnn_status_name(st));
        assert_null(l);
        b[pos] ^= 0x10;
    }
    /* trailing garbage */
    uint8_t *longer = malloc(n + 3);
    memcpy(longer, b, n);
    memcpy(longer + n, "xyz", 3);
    write_all(bad, longer, n + 3);
    expect_load_fails(bad, CSNN_ERR_FORMAT, "trailing bytes");
    free(longer);
    /* not a model at all */
    write_all(bad, (const uint8_t *)"hello, world\n", 13);
    expect_load_fails(bad, CSNN_ERR_FORMAT, "text file");
    /* a newer major version */
    b[8] = 2;
    write_all(bad, b, n);
    expect_load_fails(bad, CSNN_ERR_VERSION, "major 2");
    b[8] = 1;
    /* missing file, directory */
    char *missing = path_in_dir("nope.csnn");
    expect_load_fails(missing, CSNN_ERR_IO, "missing");
    expect_load_fails(dir, CSNN_ERR_IO, "directory");
    free(missing);
    free(b);
    free(good);
    free(bad);
    csnn_model_destroy(m);
}

/* Inserts a section (tag, flags, payload) before the END marker. */
static uint8_t *with_section(const uint8_t *b, size_t n, const char *tag, uint32_t flags,
                             size_t *out_n)
{
    const char payload[] = "future data";
    size_t plen = sizeof payload - 1, slen = 16 + plen + 4;
    size_t end_pos = n - 20; /* END: 16-byte header + 4-byte CRC */
    uint8_t *o = malloc(n + slen);
    memcpy(o, b, end_pos);
    uint8_t *s = o + end_pos;
    memcpy(s, tag, 4);
    for (int i = 0; i < 4; i++) s[4 + i] = (uint8_t)(flags >> (8 * i));
    for (int i = 0; i < 8; i++) s[8 + i] = (uint8_t)((uint64_t)plen >> (8 * i));
    memcpy(s + 16, payload, plen);
    uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), s, (uInt)(16 + plen));
    for (int i = 0; i < 4; i++) s[16 + plen + i] = (uint8_t)(crc >> (8 * i));
    memcpy(o + end_pos + slen, b + end_pos, 20);
    *out_n = n + slen;
    return o;
}

static void test_newer_minor(void **state)
{
    (void)state;
    csnn_model *m = trained_model(NULL);
    char *good = path_in_dir("g.csnn"), *p = path_in_dir("minor.csnn");
    CHECK_OK(csnn_model_save(m, good));
    size_t n, n2;
    uint8_t *b = read_all(good, &n);
    assert_memory_equal(b + n - 20, "END ", 4);
    /* an optional unknown section of a newer minor version is skipped */
    uint8_t *o = with_section(b, n, "XTRA", 0, &n2);
    o[10] = 7; /* minor 7 */
    write_all(p, o, n2);
    csnn_model *l;
    CHECK_OK(csnn_model_load(ctx, p, &l));
    assert_same_tensors(m, l);
    csnn_model_destroy(l);
    free(o);
    /* an unknown section marked required needs a newer library */
    o = with_section(b, n, "XTRA", 1, &n2);
    write_all(p, o, n2);
    expect_load_fails(p, CSNN_ERR_VERSION, "required section");
    free(o);
    free(b);
    free(good);
    free(p);
    csnn_model_destroy(m);
}

/* A small file whose spec declares a big model is refused before the model's
 * memory is allocated: the spec needs more values than the file holds. */
static void test_spec_bigger_than_file(void **state)
{
    (void)state;
    csnn_model *m = trained_model(NULL);
    char *good = path_in_dir("s.csnn"), *p = path_in_dir("big-spec.csnn");
    CHECK_OK(csnn_model_save(m, good));
    size_t n;
    uint8_t *b = read_all(good, &n);
    assert_memory_equal(b + 16, "SPEC", 4);
    uint64_t old_len = 0;
    for (int i = 0; i < 8; i++) old_len |= (uint64_t)b[24 + i] << (8 * i);
    /* 64 x 65536 + 65536 x 2048 + 2048 x 3 weights: about 550 MB of parameters */
    const char big[] = "input 1x8x8\nsteps 2\nclasses 3\nflatten\nlinear 65536\nlif\nlinear 2048\nlif\nlinear 3\nlif\n";
    size_t plen = sizeof big - 1, rest = n - (16 + 16 + (size_t)old_len + 4);
    uint8_t *o = malloc(16 + 16 + plen + 4 + rest);
    memcpy(o, b, 16 + 8);
    for (int i = 0; i < 8; i++) o[24 + i] = (uint8_t)((uint64_t)plen >> (8 * i));
    memcpy(o + 32, big, plen);
    uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), o + 16, (uInt)(16 + plen));
    for (int i = 0; i < 4; i++) o[32 + plen + i] = (uint8_t)(crc >> (8 * i));
    memcpy(o + 32 + plen + 4, b + 16 + 16 + old_len + 4, rest);
    write_all(p, o, 16 + 16 + plen + 4 + rest);
    expect_load_fails(p, CSNN_ERR_FORMAT, "spec bigger than the file");
    assert_non_null(strstr(csnn_last_error_message(), "tensor values but the file holds"));
    free(o);
    free(b);
    free(good);
    free(p);
    csnn_model_destroy(m);
}

static void test_trainer_resume(void **state)
{
    (void)state;
    float x[5 * 64];
    int32_t y[5];
    uint64_t s = 9;
    for (int i = 0; i < 5 * 64; i++) x[i] = test_uniform(&s, 0, 1);
    for (int i = 0; i < 5; i++) y[i] = (i * 2) % 3;
    char *ck = path_in_dir("ck.csnn");

    /* reference: 6 uninterrupted steps */
    csnn_trainer *ta;
    csnn_model *a = trained_model(&ta);
    CHECK_OK(csnn_trainer_set_param(ta, CSNN_TRAIN_LEARNING_RATE, 3e-3));
    CHECK_OK(csnn_trainer_set_param(ta, CSNN_TRAIN_SEED, 5));
    CHECK_OK(csnn_trainer_step(ta, x, y, 5, NULL));
    CHECK_OK(csnn_trainer_save_checkpoint(ta, ck));
    for (int i = 0; i < 5; i++) CHECK_OK(csnn_trainer_step(ta, x, y, 5, NULL));

    /* resumed: a fresh model and trainer restored from the checkpoint */
    csnn_model *b;
    csnn_trainer *tb;
    CHECK_OK(csnn_model_create_from_spec(ctx, spec, 12345, &b));
    CHECK_OK(csnn_trainer_create(b, &tb));
    CHECK_OK(csnn_trainer_load_checkpoint(tb, ck));
    int64_t steps;
    CHECK_OK(csnn_trainer_steps(tb, &steps));
    assert_int_equal(steps, 4);
    double v;
    CHECK_OK(csnn_trainer_get_param(tb, CSNN_TRAIN_LEARNING_RATE, &v));
    assert_true(v == 3e-3);
    CHECK_OK(csnn_trainer_get_param(tb, CSNN_TRAIN_SEED, &v));
    assert_true(v == 5);
    for (int i = 0; i < 5; i++) CHECK_OK(csnn_trainer_step(tb, x, y, 5, NULL));
    assert_same_tensors(a, b); /* bit for bit on a deterministic backend */
    const char *name;
    CHECK_OK(csnn_model_class_name(b, 0, &name));
    assert_string_equal(name, "alpha");

    /* a checkpoint loads as a plain model too */
    csnn_model *c;
    CHECK_OK(csnn_model_load(ctx, ck, &c));
    csnn_model_destroy(c);
    /* a model file has no optimiser state */
    char *plain = path_in_dir("plain.csnn");
    CHECK_OK(csnn_model_save(a, plain));
    CHECK_STATUS(csnn_trainer_load_checkpoint(tb, plain), CSNN_ERR_STATE);
    /* another architecture is refused and leaves the trainer as it was */
    csnn_model *d;
    csnn_trainer *td;
    CHECK_OK(csnn_model_create_from_spec(ctx, "input 1x8x8\nflatten\nlinear 3\n", 0, &d));
    CHECK_OK(csnn_trainer_create(d, &td));
    CHECK_STATUS(csnn_trainer_load_checkpoint(td, ck), CSNN_ERR_SHAPE);
    CHECK_OK(csnn_trainer_steps(td, &steps));
    assert_int_equal(steps, 0);
    csnn_trainer_destroy(td);
    csnn_model_destroy(d);
    free(plain);
    free(ck);
    csnn_trainer_destroy(ta);
    csnn_trainer_destroy(tb);
    csnn_model_destroy(a);
    csnn_model_destroy(b);
}

static void test_atomic_replace(void **state)
{
    (void)state;
    csnn_model *m = trained_model(NULL);
    char *p = path_in_dir("keep.csnn");
    CHECK_OK(csnn_model_save(m, p));
    size_t n0;
    uint8_t *before = read_all(p, &n0);
    /* a save into a directory that does not exist fails cleanly */
    char *nodir = path_in_dir("no/such/dir/m.csnn");
    CHECK_STATUS(csnn_model_save(m, nodir), CSNN_ERR_IO);
    assert_non_null(strstr(csnn_last_error_message(), nodir));
    free(nodir);
    /* an unwritable directory (skip when running as root, which may write anywhere) */
    if (geteuid() != 0) {
        char *ro = path_in_dir("ro");
        mkdir(ro, 0555);
        char *q = malloc(4300);
        snprintf(q, 4300, "%s/m.csnn", ro);
        CHECK_STATUS(csnn_model_save(m, q), CSNN_ERR_IO);
        free(q);
        free(ro);
    }
    size_t n1;
    uint8_t *after = read_all(p, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    free(before);
    free(after);
    free(p);
    csnn_model_destroy(m);
}

/* Inference after training on the same model equals inference on a fresh
 * copy: buffers sized for training must not leak stale activations (a
 * dropout layer's training buffer once did). Raw outputs (no spikes), so
 * any difference shows. */
static void test_predict_after_training(void **state)
{
    (void)state;
    csnn_model *m, *l;
    csnn_trainer *t;
    CHECK_OK(csnn_model_create_from_spec(
        ctx, "input 1x8x8\nstatic: conv 3 k=3 p=1; bn\nrelu\nflatten\ndropout 0.5\nlinear 5\n"
             "relu\ndropout 0.5\nlinear 3\n", 2, &m));
    CHECK_OK(csnn_trainer_create(m, &t));
    float x[4 * 64];
    int32_t y[4] = {0, 1, 2, 0};
    uint64_t s = 12;
    for (int i = 0; i < 4 * 64; i++) x[i] = test_uniform(&s, 0, 1);
    for (int i = 0; i < 3; i++) CHECK_OK(csnn_trainer_step(t, x, y, 4, NULL));
    char *p = path_in_dir("ann.csnn");
    CHECK_OK(csnn_model_save(m, p));
    CHECK_OK(csnn_model_load(ctx, p, &l));
    float a[12], b[12];
    CHECK_OK(csnn_model_predict(m, x, 4, a, 12, NULL));
    CHECK_OK(csnn_model_predict(l, x, 4, b, 12, NULL));
    assert_memory_equal(a, b, sizeof a);
    free(p);
    csnn_trainer_destroy(t);
    csnn_model_destroy(l);
    csnn_model_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_corruption),
        cmocka_unit_test(test_newer_minor),
        cmocka_unit_test(test_spec_bigger_than_file),
        cmocka_unit_test(test_trainer_resume),
        cmocka_unit_test(test_atomic_replace),
        cmocka_unit_test(test_predict_after_training),
    };
    return cmocka_run_group_tests_name("checkpoint", tests, setup, teardown);
}
