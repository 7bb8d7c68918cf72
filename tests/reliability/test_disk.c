/*
 * test_disk.c - saving on a full disk and into a read-only directory gives
 * a clear IO error and leaves the previous files byte for byte as they were
 * (csnn_model_save, csnn_trainer_save_checkpoint, csnn_trainer_fit's best
 * model and MODEL.last), with no temporary file left; stale temporary files
 * of killed writers are removed at the next save, and only those.
 *
 * The full disk is a 512 KiB tmpfs mounted in a private mount namespace
 * (unshare(CLONE_NEWNS): root or CAP_SYS_ADMIN; those tests are skipped
 * otherwise). The read-only directory is that tmpfs remounted read-only
 * (root ignores permission bits), or a chmod 555 directory when not root.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include <cmocka.h>

#include "csnn/csnn.h"

static const char SPEC[] = "input 1x16x16\nsteps 2\nconv 4 k=3 s=2 p=1\nbn\nif\n"
                           "flatten\nlinear 3\nif\n";

static bool have_namespace;

#define OK(expr)                                                                                   \
    do {                                                                                           \
        csnn_status st_ = (expr);                                                                  \
        if (st_ != CSNN_OK)                                                                        \
            fail_msg("%s: %s: %s", #expr, csnn_status_name(st_), csnn_last_error_message());       \
    } while (0)

static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *s = NULL;
    assert_true(vasprintf(&s, f, ap) >= 0);
    va_end(ap);
    return s;
}

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s: %s", path, strerror(errno));
    uint8_t *b = NULL;
    size_t cap = 0;
    *n = 0;
    for (;;) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 65536;
            b = realloc(b, cap);
            assert_non_null(b);
        }
        size_t got = fread(b + *n, 1, cap - *n, f);
        if (got == 0) break;
        *n += got;
    }
    fclose(f);
    return b;
}

static void assert_same_file(const char *path, const uint8_t *want, size_t n)
{
    size_t m;
    uint8_t *got = slurp(path, &m);
    if (m != n || memcmp(got, want, n) != 0) fail_msg("%s changed (%zu bytes, was %zu)", path, m, n);
    free(got);
}

static int count_temps(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".tmp-")) n++;
    closedir(d);
    return n;
}

static void assert_error(csnn_status st, const char *needle)
{
    if (st != CSNN_ERR_IO)
        fail_msg("expected IO, got %s: %s", csnn_status_name(st), csnn_last_error_message());
    if (!strstr(csnn_last_error_message(), needle))
        fail_msg("message \"%s\" lacks \"%s\"", csnn_last_error_message(), needle);
    printf("  the error: %s\n", csnn_last_error_message());
}

/* A context, a model and a trained trainer, and a small dataset. */
typedef struct {
    csnn_context *ctx;
    csnn_model *m;
    csnn_trainer *t;
    csnn_dataset *train, *val;
} kit;

static void kit_make(kit *k)
{
    csnn_context_options o;
    csnn_context_options_init(&o);
    o.n_threads = 1;
    OK(csnn_context_create(&o, &k->ctx));
    OK(csnn_model_create_from_spec(k->ctx, SPEC, 1, &k->m));
    OK(csnn_trainer_create(k->m, &k->t));
    OK(csnn_trainer_set_param(k->t, CSNN_TRAIN_BATCH_SIZE, 8));
    OK(csnn_trainer_set_param(k->t, CSNN_TRAIN_EPOCHS, 1));
    enum { N = 30 };
    uint8_t *px = malloc(N * 16 * 16);
    int32_t labels[N];
    assert_non_null(px);
    for (int i = 0; i < N * 16 * 16; i++) px[i] = (uint8_t)(i * 37 + i / 256);
    for (int i = 0; i < N; i++) labels[i] = i % 3;
    csnn_dataset *all;
    OK(csnn_dataset_create_from_arrays(k->ctx, px, labels, N, 16, 16, NULL, 3, &all));
    OK(csnn_dataset_split(all, 0.3, 1, &k->train, &k->val));
    csnn_dataset_destroy(all);
    free(px);
}

static void kit_free(kit *k)
{
    csnn_dataset_destroy(k->train);
    csnn_dataset_destroy(k->val);
    csnn_trainer_destroy(k->t);
    csnn_model_destroy(k->m);
    csnn_context_destroy(k->ctx);
}

static csnn_status fit_to(kit *k, const char *out)
{
    csnn_fit_options fo;
    csnn_fit_options_init(&fo);
    fo.output = out;
    return csnn_trainer_fit(k->t, k->train, k->val, &fo);
}

/* A new tmpfs of `size` in a new directory (in our private namespace). */
static char *tmpfs_dir(const char *size)
{
    char tmpl[] = "/tmp/csnn-disk.XXXXXX";
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    char *opts = fmt("size=%s,mode=0755", size);
    if (mount("tmpfs", dir, "tmpfs", 0, opts) != 0)
        fail_msg("mount tmpfs on %s: %s", dir, strerror(errno));
    free(opts);
    return strdup(dir);
}

static void tmpfs_remove(char *dir)
{
    umount2(dir, MNT_DETACH);
    rmdir(dir);
    free(dir);
}

/* Fills the filesystem of `dir` until writing fails with ENOSPC. */
static void fill_disk(const char *dir)
{
    char *path = fmt("%s/filler", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    static char block[4096];
    for (;;) {
        ssize_t w = write(fd, block, sizeof block);
        if (w < 0 && errno == ENOSPC) break;
        assert_true(w > 0);
    }
    /* the last partial block, byte by byte */
    while (write(fd, block, 1) == 1) {
    }
    close(fd);
    free(path);
}

static void test_full_disk(void **state)
{
    (void)state;
    if (!have_namespace) skip();
    char *dir = tmpfs_dir("512k");
    kit k = {0};
    kit_make(&k);
    char *best = fmt("%s/m.csnn", dir), *last = fmt("%s/m.csnn.last", dir);
    char *ck = fmt("%s/ck", dir), *model = fmt("%s/model.csnn", dir);
    /* the previous files: a finished epoch, a checkpoint, a model */
    OK(fit_to(&k, best));
    OK(csnn_trainer_save_checkpoint(k.t, ck));
    OK(csnn_model_save(k.m, model));
    size_t nb, nl, nc, nm;
    uint8_t *b_best = slurp(best, &nb), *b_last = slurp(last, &nl), *b_ck = slurp(ck, &nc),
            *b_model = slurp(model, &nm);

    fill_disk(dir);
    printf("disk full: saving a checkpoint, a model and an epoch of fit\n");
    assert_error(csnn_trainer_save_checkpoint(k.t, ck), "No space left on device");
    assert_error(csnn_model_save(k.m, model), "No space left on device");
    /* a fresh fit: its first epoch improves and saves the best model */
    OK(csnn_trainer_set_param(k.t, CSNN_TRAIN_EPOCHS, 2));
    assert_error(fit_to(&k, best), "No space left on device");
    int32_t reason;
    OK(csnn_trainer_stop_reason(k.t, &reason));
    assert_int_equal(reason, CSNN_STOP_ERROR);
    assert_same_file(best, b_best, nb);
    assert_same_file(last, b_last, nl);
    assert_same_file(ck, b_ck, nc);
    assert_same_file(model, b_model, nm);
    assert_int_equal(count_temps(dir), 0);
    /* the files still load */
    csnn_model *again;
    OK(csnn_model_load(k.ctx, best, &again));
    csnn_model_destroy(again);
    OK(csnn_trainer_load_checkpoint(k.t, last));

    free(b_best);
    free(b_last);
    free(b_ck);
    free(b_model);
    free(best);
    free(last);
    free(ck);
    free(model);
    kit_free(&k);
    tmpfs_remove(dir);
}

static void test_read_only(void **state)
{
    (void)state;
    bool root = geteuid() == 0;
    if (root && !have_namespace) skip();
    char *dir;
    if (root) {
        dir = tmpfs_dir("4m");
    } else {
        char tmpl[] = "/tmp/csnn-ro.XXXXXX";
        assert_non_null(mkdtemp(tmpl));
        dir = strdup(tmpl);
    }
    kit k = {0};
    kit_make(&k);
    char *best = fmt("%s/m.csnn", dir), *last = fmt("%s/m.csnn.last", dir);
    OK(fit_to(&k, best));
    size_t nb, nl;
    uint8_t *b_best = slurp(best, &nb), *b_last = slurp(last, &nl);
    if (root) {
        if (mount("tmpfs", dir, "tmpfs", MS_REMOUNT | MS_RDONLY, NULL) != 0)
            fail_msg("remount %s read-only: %s", dir, strerror(errno));
    } else {
        assert_int_equal(chmod(dir, 0555), 0);
    }
    const char *why = root ? "Read-only file system" : "Permission denied";
    printf("read-only directory: saving a model and an epoch of fit\n");
    assert_error(csnn_model_save(k.m, best), why);
    assert_error(csnn_trainer_save_checkpoint(k.t, last), why);
    OK(csnn_trainer_set_param(k.t, CSNN_TRAIN_EPOCHS, 1));
    assert_error(fit_to(&k, best), why);
    assert_same_file(best, b_best, nb);
    assert_same_file(last, b_last, nl);
    assert_int_equal(count_temps(dir), 0);
    if (!root) {
        chmod(dir, 0755);
        unlink(best);
        unlink(last);
    }
    free(b_best);
    free(b_last);
    free(best);
    free(last);
    kit_free(&k);
    if (root)
        tmpfs_remove(dir);
    else {
        rmdir(dir);
        free(dir);
    }
}

/* Stale temporary files of the same path are removed by the next save
 * unless a live writer holds them (flock); other files stay. */
static void test_stale_temps(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/csnn-stale.XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    kit k = {0};
    kit_make(&k);
    const char *stale[] = {"m.csnn.tmp-a1B2c3", "m.csnn.tmp-zzzzzz"};
    const char *keep[] = {"m.csnn.tmp-short", "m.csnn.tmp-abcdefg", "other.tmp-abcdef",
                          "m.csnn.last.tmp-abcdef", "m.csnn.tmp-held00"};
    for (size_t i = 0; i < 2; i++) {
        char *p = fmt("%s/%s", tmpl, stale[i]);
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        fputs("half a model", f);
        fclose(f);
        free(p);
    }
    int held = -1;
    for (size_t i = 0; i < 5; i++) {
        char *p = fmt("%s/%s", tmpl, keep[i]);
        int fd = open(p, O_WRONLY | O_CREAT, 0644);
        assert_true(fd >= 0);
        if (i == 4) {
            assert_int_equal(flock(fd, LOCK_EX), 0); /* a writer still at work */
            held = fd;
        } else {
            close(fd);
        }
        free(p);
    }
    char *path = fmt("%s/m.csnn", tmpl);
    OK(csnn_model_save(k.m, path));
    for (size_t i = 0; i < 2; i++) {
        char *p = fmt("%s/%s", tmpl, stale[i]);
        assert_int_not_equal(access(p, F_OK), 0);
        free(p);
    }
    for (size_t i = 0; i < 5; i++) {
        char *p = fmt("%s/%s", tmpl, keep[i]);
        if (access(p, F_OK) != 0) fail_msg("%s was removed", keep[i]);
        unlink(p);
        free(p);
    }
    close(held);
    unlink(path);
    free(path);
    rmdir(tmpl);
    kit_free(&k);
}

int main(void)
{
    /* a private mount namespace: the tmpfs mounts vanish with the process */
    if (unshare(CLONE_NEWNS) == 0 && mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) == 0)
        have_namespace = true;
    else
        printf("note: no private mount namespace (%s): the tmpfs tests are skipped\n",
               strerror(errno));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_disk),
        cmocka_unit_test(test_read_only),
        cmocka_unit_test(test_stale_temps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
