/*
 * folder.c - csnn_dataset_load_folder: root/<class>/<image files>.
 *
 * Classes are the sub-directories of root (symbolic links to directories
 * count), sorted bytewise; files within a class are sorted bytewise too, so
 * sample order does not depend on the file system. Names starting with '.'
 * are ignored everywhere; so are plain files at the root and directories
 * inside a class folder. Every other entry of a class folder is an image
 * candidate: one that cannot be read (a FIFO, a broken link) is a bad file.
 *
 * The files are read and decoded in parallel on a csnn__pool (one task per
 * file, written straight to the dataset's pixel array). Without skip_bad
 * the error reported is that of the first bad file in sample order (later
 * files are not decoded once one has failed), so the message does not
 * depend on thread timing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data_private.h"

static const char FN[] = "csnn_dataset_load_folder";

/* ------------------------------------------------------------------------ */
/* Directory listing                                                         */
/* ------------------------------------------------------------------------ */

typedef struct {
    char **names;
    int64_t n, cap;
} name_list;

static void names_free(name_list *l)
{
    for (int64_t i = 0; i < l->n; i++) free(l->names[i]);
    free(l->names);
    l->names = NULL;
    l->n = l->cap = 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether entry `e` of the open directory `d` is a directory (following
 * symbolic links). */
static bool entry_is_dir(DIR *d, const struct dirent *e)
{
    if (e->d_type == DT_DIR) return true;
    if (e->d_type != DT_LNK && e->d_type != DT_UNKNOWN) return false;
    struct stat st;
    return fstatat(dirfd(d), e->d_name, &st, 0) == 0 && S_ISDIR(st.st_mode);
}

/*
 * The non-hidden entries of `path` that are directories (want_dirs) or not,
 * sorted. More than `limit` of them is LIMIT (`what` names them).
 */
static csnn_status list_dir(const char *path, bool want_dirs, int64_t limit, const char *what,
                            name_list *out)
{
    memset(out, 0, sizeof *out);
    DIR *d = opendir(path);
    if (!d) return csnn__error(CSNN_ERR_IO, "%s: cannot open directory: %s", path,
                               strerror(errno));
    csnn_status st = CSNN_OK;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno != 0)
                st = csnn__error(CSNN_ERR_IO, "%s: cannot read directory: %s", path,
                                 strerror(errno));
            break;
        }
        if (e->d_name[0] == '.') continue;
        if (entry_is_dir(d, e) != want_dirs) continue;
        if (out->n >= limit) {
            st = csnn__error(CSNN_ERR_LIMIT, "%s: more than %lld %s", path, (long long)limit,
                             what);
            break;
        }
        if (out->n == out->cap) {
            int64_t cap = out->cap ? out->cap * 2 : 64;
            char **p = realloc(out->names, (size_t)cap * sizeof(char *));
            if (!p) {
                st = csnn__error(CSNN_ERR_OUT_OF_MEMORY, "%s: cannot list directory", path);
                break;
            }
            out->names = p;
            out->cap = cap;
        }
        if (!(out->names[out->n] = csnn__strdup(e->d_name))) {
            st = CSNN_ERR_OUT_OF_MEMORY;
            break;
        }
        out->n++;
    }
    closedir(d);
    if (st != CSNN_OK) {
        names_free(out);
        return st;
    }
    if (out->n > 1) qsort(out->names, (size_t)out->n, sizeof(char *), cmp_names);
    return CSNN_OK;
}

static char *join_path(const char *dir, const char *name)
{
    size_t len = strlen(dir);
    bool slash = len > 0 && dir[len - 1] == '/';
    return csnn__data_format("%s%s%s", dir, slash ? "" : "/", name);
}

/* ------------------------------------------------------------------------ */
/* Parallel decoding                                                         */
/* ------------------------------------------------------------------------ */

typedef struct {
    csnn_dataset *ds;
    const csnn_dataset_options *opts;
    csnn_status *status; /* [n] */
    char **message;      /* [n]: the error message of a failed file */
    atomic_llong first_failure; /* without skip_bad: lowest failed index so far */
} load_job;

static void load_one(void *arg, int64_t i, int worker)
{
    (void)worker;
    load_job *job = arg;
    if (!job->opts->skip_bad &&
        i > atomic_load_explicit(&job->first_failure, memory_order_relaxed))
        return; /* an earlier file already failed: its error is the one reported */
    csnn_dataset *ds = job->ds;
    const char *path = ds->sources[i];
    size_t px = (size_t)ds->height * (size_t)ds->width;
    uint8_t *data;
    size_t size;
    csnn_status st = csnn__data_read_file(path, &data, &size);
    if (st == CSNN_OK) {
        st = csnn__image_decode(data, size, path, job->opts->max_image_pixels, ds->height,
                                ds->width, ds->pixels + (size_t)i * px);
        free(data);
    }
    if (st == CSNN_OK) return;
    job->status[i] = st;
    /* The message is thread-local: keep a copy for the calling thread. */
    job->message[i] = csnn__strdup(csnn_last_error_message());
    long long cur = atomic_load_explicit(&job->first_failure, memory_order_relaxed);
    while (i < cur && !atomic_compare_exchange_weak(&job->first_failure, &cur, (long long)i)) {
    }
}

/* Whether a file's error may be skipped under skip_bad. */
static bool skippable(csnn_status st)
{
    return st == CSNN_ERR_FORMAT || st == CSNN_ERR_IO || st == CSNN_ERR_LIMIT;
}

static csnn_status report(const load_job *job, int64_t i)
{
    const char *msg = job->message[i] ? job->message[i] : csnn_status_string(job->status[i]);
    return csnn__error(job->status[i], "%s: %s", FN, msg);
}

/* Decodes every listed file; then drops the bad ones (skip_bad) or reports
 * the first. */
static csnn_status decode_all(csnn_context *ctx, csnn_dataset *ds,
                              const csnn_dataset_options *opts)
{
    const int64_t n = ds->n;
    load_job job = {ds, opts, NULL, NULL, 0};
    atomic_init(&job.first_failure, (long long)n);
    job.status = csnn__calloc_array((size_t)ds->n, sizeof(csnn_status), "load status");
    job.message = job.status ? csnn__calloc_array((size_t)ds->n, sizeof(char *), "load status")
                             : NULL;
    if (!job.message) {
        free(job.status);
        return csnn__error_prefix(CSNN_ERR_OUT_OF_MEMORY, "%s", FN);
    }
    int threads = csnn__data_threads(ctx, opts);
    if (threads > ds->n) threads = (int)ds->n;
    csnn_pool *pool = NULL;
    csnn_status st = csnn__pool_create(threads, &pool);
    if (st != CSNN_OK) {
        st = csnn__error_prefix(st, "%s", FN);
        goto done;
    }
    csnn__pool_run(pool, ds->n, load_one, &job);
    csnn__pool_destroy(pool);

    /* Fatal errors: the first in sample order. */
    for (int64_t i = 0; i < ds->n; i++) {
        if (job.status[i] != CSNN_OK && (!opts->skip_bad || !skippable(job.status[i]))) {
            st = report(&job, i);
            goto done;
        }
    }
    /* skip_bad: log, count and drop the bad files, keeping the order. */
    size_t px = (size_t)ds->height * (size_t)ds->width;
    int64_t k = 0;
    for (int64_t i = 0; i < ds->n; i++) {
        if (job.status[i] != CSNN_OK) {
            csnn__log(ctx, CSNN_LOG_WARN, "%s: skipped %s", FN,
                      job.message[i] ? job.message[i] : ds->sources[i]);
            free(ds->sources[i]);
            ds->sources[i] = NULL;
            ds->skipped++;
            continue;
        }
        if (k != i) {
            memcpy(ds->pixels + (size_t)k * px, ds->pixels + (size_t)i * px, px);
            ds->labels[k] = ds->labels[i];
            ds->sources[k] = ds->sources[i];
            ds->sources[i] = NULL;
        }
        k++;
    }
    ds->n = k;
done:
    for (int64_t i = 0; i < n; i++) free(job.message[i]);
    free(job.message);
    free(job.status);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Entry point                                                               */
/* ------------------------------------------------------------------------ */

/* Lists the class folders and their files: classes (sorted names) and, per
 * class, its sorted file names (files[c]). */
static csnn_status scan(const char *root, const csnn_dataset_options *o, name_list *classes,
                        name_list **files, int64_t *total)
{
    *files = NULL;
    *total = 0;
    CSNN_TRY(list_dir(root, true, CSNN_DATA_MAX_CLASSES, "class folders", classes));
    if (classes->n == 0)
        return csnn__error(CSNN_ERR_NOT_FOUND, "%s: no class folder (root/<class>/<images>)",
                           root);
    for (int64_t c = 0; c < classes->n; c++) {
        char where[1024];
        snprintf(where, sizeof where, "%.800s: class folder '%.64s'", root, classes->names[c]);
        CSNN_TRY(csnn__data_check_class_name(classes->names[c], where));
    }
    *files = csnn__calloc_array((size_t)classes->n, sizeof(name_list), "file lists");
    if (!*files) return CSNN_ERR_OUT_OF_MEMORY;
    for (int64_t c = 0; c < classes->n; c++) {
        char *dir = join_path(root, classes->names[c]);
        if (!dir) return CSNN_ERR_OUT_OF_MEMORY;
        csnn_status st = list_dir(dir, false, o->max_samples - *total, "files", &(*files)[c]);
        if (st == CSNN_ERR_LIMIT)
            st = csnn__error(CSNN_ERR_LIMIT, "%s: more than max_samples = %lld image files", root,
                             (long long)o->max_samples);
        if (st == CSNN_OK && (*files)[c].n == 0)
            st = csnn__error(CSNN_ERR_NOT_FOUND, "%s: empty class folder", dir);
        free(dir);
        if (st != CSNN_OK) return st;
        *total += (*files)[c].n;
    }
    return CSNN_OK;
}

csnn_status csnn_dataset_load_folder(csnn_context *ctx, const char *root,
                                     const csnn_dataset_options *opts, csnn_dataset **out)
{
    CSNN_ARG_NOT_NULL(out);
    *out = NULL;
    CSNN_ARG_NOT_NULL(ctx);
    CSNN_ARG_NOT_NULL(root);
    csnn_dataset_options o;
    CSNN_TRY(csnn__data_options(opts, FN, &o));
    double t0 = csnn__now();

    name_list classes;
    name_list *files = NULL;
    int64_t total = 0;
    csnn_dataset *ds = NULL;
    csnn_status st = scan(root, &o, &classes, &files, &total);
    if (st == CSNN_OK)
        st = csnn__dataset_alloc(ctx, total, o.height, o.width, (int32_t)classes.n, &ds);
    if (st == CSNN_OK) {
        int64_t i = 0;
        for (int64_t c = 0; c < classes.n && st == CSNN_OK; c++) {
            ds->class_names[c] = classes.names[c];
            classes.names[c] = NULL;
            char *dir = join_path(root, ds->class_names[c]);
            if (!dir) st = CSNN_ERR_OUT_OF_MEMORY;
            for (int64_t f = 0; st == CSNN_OK && f < files[c].n; f++, i++) {
                ds->labels[i] = (int32_t)c;
                if (!(ds->sources[i] = join_path(dir, files[c].names[f])))
                    st = CSNN_ERR_OUT_OF_MEMORY;
            }
            free(dir);
        }
        if (st != CSNN_OK) st = csnn__error_prefix(st, "%s", FN);
    } else {
        st = csnn__error_prefix(st, "%s", FN);
    }
    if (files)
        for (int64_t c = 0; c < classes.n; c++) names_free(&files[c]);
    free(files);
    names_free(&classes);

    if (st == CSNN_OK) st = decode_all(ctx, ds, &o);
    if (st != CSNN_OK) {
        csnn_dataset_destroy(ds);
        return st;
    }
    csnn__dataset_count_classes(ds);
    for (int32_t c = 0; c < ds->n_classes; c++)
        if (ds->class_counts[c] == 0)
            csnn__log(ctx, CSNN_LOG_WARN, "%s: class '%s' has no usable image", FN,
                      ds->class_names[c]);
    csnn__log(ctx, CSNN_LOG_INFO, "%s: %lld images in %d classes from %s in %.2f s (%lld skipped)",
              FN, (long long)ds->n, ds->n_classes, root, csnn__now() - t0,
              (long long)ds->skipped);
    *out = ds;
    return CSNN_OK;
}
