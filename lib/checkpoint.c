/* checkpoint.c - the model/checkpoint file: little-endian, sectioned, a
 * CRC-32 per section, written atomically. Format: docs/FILE_FORMAT.md. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "model.h"

#define FILE_MAGIC "\x89" "CSNN\r\n\x1a"
#define FORMAT_MAJOR 1
#define FORMAT_MINOR 0
#define SECTION_REQUIRED 1u
/* The largest file read: a checkpoint of a model at CSNN_MAX_PARAMS holds
 * three float tensors per parameter (the parameter and Adam's two moments),
 * plus the spec, names, BN statistics and records (64 MiB of slack). */
#define MAX_FILE_BYTES ((uint64_t)3 * 4 * (uint64_t)CSNN_MAX_PARAMS + ((uint64_t)64 << 20))
#define MAX_RECORDS 65536
#define MAX_NAME_BYTES 255

#define TAG(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define TAG_SPEC TAG('S', 'P', 'E', 'C')
#define TAG_CLAS TAG('C', 'L', 'A', 'S')
#define TAG_TENS TAG('T', 'E', 'N', 'S')
#define TAG_OPTM TAG('O', 'P', 'T', 'M')
#define TAG_TRNR TAG('T', 'R', 'N', 'R')
#define TAG_END TAG('E', 'N', 'D', ' ')

enum { DTYPE_F32 = 1, DTYPE_I64 = 2 };
enum { KV_F64 = 0, KV_I64 = 1, KV_BYTES = 2 };

static bool host_is_little_endian(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct writer {
    FILE *f;
    const char *path;
    uLong crc;
    bool failed;
    int saved_errno;
} writer;

static void w_bytes(writer *w, const void *p, size_t n)
{
    if (w->failed || n == 0) return;
    const uint8_t *b = p;
    while (n > 0) {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        w->crc = crc32(w->crc, b, chunk);
        if (fwrite(b, 1, chunk, w->f) != chunk) {
            w->failed = true;
            w->saved_errno = errno;
            return;
        }
        b += chunk;
        n -= chunk;
    }
}

static void w_u8(writer *w, uint8_t v)
{
    w_bytes(w, &v, 1);
}

static void w_u16(writer *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    w_bytes(w, b, 2);
}

static void w_u32(writer *w, uint32_t v)
{
    uint8_t b[4];
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i));
    w_bytes(w, b, 4);
}

static void w_u64(writer *w, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    w_bytes(w, b, 8);
}

static void w_f64(writer *w, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    w_u64(w, u);
}

/* Float arrays: raw on little-endian hosts, byte-swapped elsewhere. */
static void w_f32s(writer *w, const float *v, int64_t n)
{
    if (host_is_little_endian()) {
        w_bytes(w, v, (size_t)n * 4);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        w_u32(w, u);
    }
}

static void section_begin(writer *w, uint32_t tag, uint64_t length)
{
    w->crc = crc32(0L, Z_NULL, 0);
    w_u32(w, tag);
    w_u32(w, SECTION_REQUIRED);
    w_u64(w, length);
}

static void section_end(writer *w)
{
    uint32_t crc = (uint32_t)w->crc;
    w_u32(w, crc);
}

static uint64_t tensor_record_size(const char *name, int ndim, int64_t numel, int dtype)
{
    return 2 + strlen(name) + 1 + 1 + 8 * (uint64_t)ndim +
           (uint64_t)numel * (dtype == DTYPE_F32 ? 4 : 8);
}

static void write_tensor_header(writer *w, const char *name, int dtype, int ndim,
                                const int64_t *shape)
{
    size_t len = strlen(name);
    w_u16(w, (uint16_t)len);
    w_bytes(w, name, len);
    w_u8(w, (uint8_t)dtype);
    w_u8(w, (uint8_t)ndim);
    for (int d = 0; d < ndim; d++) w_u64(w, (uint64_t)shape[d]);
}

/* Downloads and writes a device float tensor. */
static csnn_status write_device_tensor(writer *w, csnn_model *m, const char *name,
                                       const model_tensor *t, const float *src, float *host)
{
    write_tensor_header(w, name, DTYPE_F32, t->ndim, t->shape);
    CSNN_TRY(m->ops->download(m->dev, host, src, (size_t)t->numel * sizeof(float)));
    w_f32s(w, host, t->numel);
    return CSNN_OK;
}

static csnn_status write_sections(writer *w, csnn_model *m, const ckpt_extra *extra, float *host)
{
    w_bytes(w, FILE_MAGIC, 8);
    w_u16(w, FORMAT_MAJOR);
    w_u16(w, FORMAT_MINOR);
    w_u32(w, 0);

    size_t spec_len = strlen(m->spec_text);
    section_begin(w, TAG_SPEC, spec_len);
    w_bytes(w, m->spec_text, spec_len);
    section_end(w);

    uint64_t clen = 4;
    for (int c = 0; c < m->spec.classes; c++) clen += 2 + strlen(m->class_names[c]);
    section_begin(w, TAG_CLAS, clen);
    w_u32(w, (uint32_t)m->spec.classes);
    for (int c = 0; c < m->spec.classes; c++) {
        size_t n = strlen(m->class_names[c]);
        w_u16(w, (uint16_t)n);
        w_bytes(w, m->class_names[c], n);
    }
    section_end(w);

    uint64_t tlen = 4;
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->tensors[i];
        tlen += tensor_record_size(t->name, t->ndim, t->numel,
                                   t->kind == CSNN_TENSOR_COUNTER ? DTYPE_I64 : DTYPE_F32);
    }
    section_begin(w, TAG_TENS, tlen);
    w_u32(w, (uint32_t)m->n_tensors);
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->tensors[i];
        if (t->kind == CSNN_TENSOR_COUNTER) {
            write_tensor_header(w, t->name, DTYPE_I64, t->ndim, t->shape);
            w_u64(w, (uint64_t)*t->counter);
        } else {
            CSNN_TRY(write_device_tensor(w, m, t->name, t, t->data, host));
        }
    }
    section_end(w);

    if (extra && extra->has_optimizer) {
        uint64_t olen = 4;
        uint32_t count = 0;
        char name[128];
        for (int i = 0; i < m->n_tensors; i++) {
            const model_tensor *t = &m->tensors[i];
            if (t->kind != CSNN_TENSOR_PARAM) continue;
            snprintf(name, sizeof name, "exp_avg.%s", t->name);
            olen += tensor_record_size(name, t->ndim, t->numel, DTYPE_F32);
            snprintf(name, sizeof name, "exp_avg_sq.%s", t->name);
            olen += tensor_record_size(name, t->ndim, t->numel, DTYPE_F32);
            count += 2;
        }
        section_begin(w, TAG_OPTM, olen);
        w_u32(w, count);
        for (int i = 0; i < m->n_tensors; i++) {
            const model_tensor *t = &m->tensors[i];
            if (t->kind != CSNN_TENSOR_PARAM) continue;
            snprintf(name, sizeof name, "exp_avg.%s", t->name);
            CSNN_TRY(write_device_tensor(w, m, name, t, t->opt_m, host));
            snprintf(name, sizeof name, "exp_avg_sq.%s", t->name);
            CSNN_TRY(write_device_tensor(w, m, name, t, t->opt_v, host));
        }
        section_end(w);
    }
    if (extra && extra->n_kv > 0) {
        uint64_t klen = 4;
        for (int i = 0; i < extra->n_kv; i++) {
            const ckpt_kv *kv = &extra->kv[i];
            klen += 2 + strlen(kv->key) + 1 + (kv->type == KV_BYTES ? 4 + kv->n_bytes : 8);
        }
        section_begin(w, TAG_TRNR, klen);
        w_u32(w, (uint32_t)extra->n_kv);
        for (int i = 0; i < extra->n_kv; i++) {
            const ckpt_kv *kv = &extra->kv[i];
            size_t n = strlen(kv->key);
            w_u16(w, (uint16_t)n);
            w_bytes(w, kv->key, n);
            w_u8(w, (uint8_t)kv->type);
            if (kv->type == KV_F64) {
                w_f64(w, kv->f);
            } else if (kv->type == KV_I64) {
                w_u64(w, (uint64_t)kv->i);
            } else {
                w_u32(w, (uint32_t)kv->n_bytes);
                w_bytes(w, kv->bytes, kv->n_bytes);
            }
        }
        section_end(w);
    }
    section_begin(w, TAG_END, 0);
    section_end(w);
    return CSNN_OK;
}

/* fsync of the directory holding `path`, so the rename is durable. */
static void sync_parent_dir(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(dir, sizeof dir, ".");
    } else if (slash == path) {
        snprintf(dir, sizeof dir, "/");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof dir) return;
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/*
 * Stale temporary files. A save writes PATH.tmp-XXXXXX and renames it to
 * PATH; a process killed in between (SIGKILL, power loss) leaves the
 * temporary file behind, and nobody else can remove it. The writer holds
 * an flock on its temporary file until the rename, so after a successful
 * save the temporary files of the same PATH that can be locked belong to
 * no live writer: they are removed. (A filesystem without flock keeps
 * them: nothing is removed that cannot be locked.)
 */
static bool is_temp_of(const char *entry, const char *base)
{
    size_t n = strlen(base);
    if (strncmp(entry, base, n) != 0 || strncmp(entry + n, ".tmp-", 5) != 0) return false;
    const char *x = entry + n + 5;
    if (strlen(x) != 6) return false;
    for (int i = 0; i < 6; i++)
        if (!((x[i] >= 'a' && x[i] <= 'z') || (x[i] >= 'A' && x[i] <= 'Z') ||
              (x[i] >= '0' && x[i] <= '9')))
            return false;
    return true;
}

static void remove_stale_temps(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!slash) {
        snprintf(dir, sizeof dir, ".");
    } else if (slash == path) {
        snprintf(dir, sizeof dir, "/");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof dir) return;
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!is_temp_of(e->d_name, base)) continue;
        int fd = openat(dfd, e->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0) continue;
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0)
            unlinkat(dfd, e->d_name, 0);
        close(fd);
    }
    closedir(d);
}

csnn_status csnn__checkpoint_save(csnn_model *m, const ckpt_extra *extra, const char *path)
{
    size_t plen = strlen(path);
    if (plen == 0 || plen + 16 >= PATH_MAX)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "save: bad path '%.200s'", path);
    for (int c = 0; c < m->spec.classes; c++)
        if (strlen(m->class_names[c]) >= CSNN_CLASS_NAME_MAX)
            return csnn__error(CSNN_ERR_INTERNAL, "save: class name too long");
    int64_t max_numel = 1;
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].numel > max_numel) max_numel = m->tensors[i].numel;
    float *host = csnn__alloc_array((size_t)max_numel, sizeof(float), "save buffer");
    if (!host) return CSNN_ERR_OUT_OF_MEMORY;

    /* The temporary file's lock is held (through lock_fd, past fclose) until
     * the rename, so that remove_stale_temps of another save leaves it alone.
     * Between mkostemp and flock another save may take it for a dead
     * writer's and delete it: the lock is then taken after that save's
     * (blocking), the file has no link left, and a new one is made. */
    char tmp[PATH_MAX];
    int fd = -1, lock_fd = -1;
    for (int attempt = 0; attempt < 8 && fd < 0; attempt++) {
        snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path);
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            free(host);
            return csnn__error(CSNN_ERR_IO,
                               "save '%s': cannot create a temporary file beside it: %s", path,
                               strerror(e));
        }
        struct stat st;
        if (flock(fd, LOCK_EX) == 0 && fstat(fd, &st) == 0 && st.st_nlink == 0) {
            close(fd); /* deleted by another save before we locked it */
            fd = -1;
        }
    }
    if (fd < 0) {
        free(host);
        return csnn__error(CSNN_ERR_IO, "save '%s': temporary files beside it keep disappearing",
                           path);
    }
    fchmod(fd, 0644);
    lock_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        int e = errno;
        close(fd);
        unlink(tmp);
        if (lock_fd >= 0) close(lock_fd);
        free(host);
        return csnn__error(CSNN_ERR_IO, "save '%s': %s", path, strerror(e));
    }
    writer w = {f, path, 0, false, 0};
    csnn_status st = write_sections(&w, m, extra, host);
    free(host);
    if (st == CSNN_OK && !w.failed && fflush(f) != 0) {
        w.failed = true;
        w.saved_errno = errno;
    }
    if (st == CSNN_OK && !w.failed && fsync(fileno(f)) != 0) {
        w.failed = true;
        w.saved_errno = errno;
    }
    if (fclose(f) != 0 && !w.failed) {
        w.failed = true;
        w.saved_errno = errno;
    }
    if (st == CSNN_OK && w.failed)
        st = csnn__error(CSNN_ERR_IO, "save '%s': writing failed: %s (the previous file, if any, "
                                      "is untouched)",
                         path, strerror(w.saved_errno));
    if (st == CSNN_OK && rename(tmp, path) != 0)
        st = csnn__error(CSNN_ERR_IO, "save '%s': cannot rename the temporary file into place: %s",
                         path, strerror(errno));
    if (st != CSNN_OK) {
        unlink(tmp);
        if (lock_fd >= 0) close(lock_fd);
        return st;
    }
    if (lock_fd >= 0) close(lock_fd);
    sync_parent_dir(path);
    remove_stale_temps(path);
    return CSNN_OK;
}

csnn_status csnn_model_save(csnn_model *m, const char *path)
{
    CSNN_ARG_NOT_NULL(m);
    CSNN_ARG_NOT_NULL(path);
    return csnn__checkpoint_save(m, NULL, path);
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct ckpt_tensor {
    char name[MAX_NAME_BYTES + 1];
    int dtype, ndim;
    int64_t shape[8];
    int64_t numel;
    const uint8_t *data;
} ckpt_tensor;

struct ckpt_file {
    char *path;
    uint8_t *buf;
    size_t size;
    char *spec;
    int n_classes;
    char **classes;
    int n_tensors, n_opt;
    ckpt_tensor *tensors, *opt;
    bool has_optimizer;
    int n_kv;
    ckpt_kv *kv;
};

typedef struct reader {
    const uint8_t *p, *end;
    const char *path;
    const char *section;
} reader;

static csnn_status truncated(const reader *r)
{
    return csnn__error(CSNN_ERR_FORMAT, "'%s': section %s is truncated or malformed", r->path,
                       r->section);
}

static bool r_take(reader *r, size_t n, const uint8_t **out)
{
    if ((size_t)(r->end - r->p) < n) return false;
    *out = r->p;
    r->p += n;
    return true;
}

static uint64_t le(const uint8_t *b, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

#define R_UINT(r, bytes, out)                                                                      \
    do {                                                                                           \
        const uint8_t *b_;                                                                         \
        if (!r_take((r), (bytes), &b_)) return truncated(r);                                       \
        (out) = le(b_, (bytes));                                                                   \
    } while (0)

static csnn_status r_string(reader *r, char *dst, size_t cap)
{
    uint64_t len;
    R_UINT(r, 2, len);
    const uint8_t *b;
    if (len >= cap || !r_take(r, (size_t)len, &b)) return truncated(r);
    memcpy(dst, b, (size_t)len);
    dst[len] = '\0';
    if (memchr(dst, '\0', (size_t)len)) return truncated(r);
    return CSNN_OK;
}

static csnn_status read_tensors(reader *r, ckpt_tensor **out, int *count)
{
    uint64_t n;
    R_UINT(r, 4, n);
    if (n > MAX_RECORDS)
        return csnn__error(CSNN_ERR_LIMIT, "'%s': %llu tensors exceed the limit of %d", r->path,
                           (unsigned long long)n, MAX_RECORDS);
    /* a record takes at least 4 bytes (name length, dtype, ndim): a count
     * the payload cannot hold is rejected before the array is allocated */
    if (n > (uint64_t)(r->end - r->p) / 4) return truncated(r);
    ckpt_tensor *t = csnn__calloc_array(n ? (size_t)n : 1, sizeof *t, "checkpoint tensors");
    if (!t) return CSNN_ERR_OUT_OF_MEMORY;
    *out = t;
    *count = (int)n;
    for (uint64_t i = 0; i < n; i++) {
        CSNN_TRY(r_string(r, t[i].name, sizeof t[i].name));
        uint64_t dtype, ndim;
        R_UINT(r, 1, dtype);
        R_UINT(r, 1, ndim);
        if ((dtype != DTYPE_F32 && dtype != DTYPE_I64) || ndim > 4)
            return csnn__error(CSNN_ERR_FORMAT, "'%s': tensor '%s' has dtype %llu, %llu dims",
                               r->path, t[i].name, (unsigned long long)dtype,
                               (unsigned long long)ndim);
        t[i].dtype = (int)dtype;
        t[i].ndim = (int)ndim;
        uint64_t numel = 1;
        for (uint64_t d = 0; d < ndim; d++) {
            uint64_t dim;
            R_UINT(r, 8, dim);
            if (dim == 0 || dim > CSNN_MAX_PARAMS || numel > (uint64_t)CSNN_MAX_PARAMS / dim)
                return csnn__error(CSNN_ERR_LIMIT, "'%s': tensor '%s' is too large", r->path,
                                   t[i].name);
            numel *= dim;
            t[i].shape[d] = (int64_t)dim;
        }
        t[i].numel = (int64_t)numel;
        if (!r_take(r, (size_t)numel * (dtype == DTYPE_F32 ? 4 : 8), &t[i].data))
            return truncated(r);
    }
    return CSNN_OK;
}

static csnn_status read_kv(reader *r, ckpt_file *f)
{
    uint64_t n;
    R_UINT(r, 4, n);
    if (n > MAX_RECORDS)
        return csnn__error(CSNN_ERR_LIMIT, "'%s': too many trainer records", r->path);
    /* a record takes at least 7 bytes (key length, type, byte count) */
    if (n > (uint64_t)(r->end - r->p) / 7) return truncated(r);
    f->kv = csnn__calloc_array(n ? (size_t)n : 1, sizeof *f->kv, "checkpoint records");
    if (!f->kv) return CSNN_ERR_OUT_OF_MEMORY;
    f->n_kv = (int)n;
    for (uint64_t i = 0; i < n; i++) {
        ckpt_kv *kv = &f->kv[i];
        CSNN_TRY(r_string(r, kv->key, sizeof kv->key));
        uint64_t type;
        R_UINT(r, 1, type);
        kv->type = (int)type;
        if (type == KV_F64) {
            uint64_t u;
            R_UINT(r, 8, u);
            memcpy(&kv->f, &u, 8);
        } else if (type == KV_I64) {
            uint64_t u;
            R_UINT(r, 8, u);
            kv->i = (int64_t)u;
        } else if (type == KV_BYTES) {
            uint64_t len;
            R_UINT(r, 4, len);
            const uint8_t *b;
            if (!r_take(r, (size_t)len, &b)) return truncated(r);
            kv->bytes = (uint8_t *)b; /* points into the file buffer */
            kv->n_bytes = (size_t)len;
        } else {
            return csnn__error(CSNN_ERR_FORMAT, "'%s': record '%s' has unknown type %llu",
                               r->path, kv->key, (unsigned long long)type);
        }
    }
    return CSNN_OK;
}

static csnn_status parse_file(ckpt_file *f)
{
    const char *path = f->path;
    if (f->size < 16 || memcmp(f->buf, FILE_MAGIC, 8) != 0)
        return csnn__error(CSNN_ERR_FORMAT, "'%s' is not a libcsnn model or checkpoint", path);
    unsigned major = (unsigned)le(f->buf + 8, 2), minor = (unsigned)le(f->buf + 10, 2);
    if (major != FORMAT_MAJOR)
        return csnn__error(CSNN_ERR_VERSION,
                           "'%s' has format version %u.%u; this libcsnn reads %d.x", path, major,
                           minor, FORMAT_MAJOR);
    reader r = {f->buf + 16, f->buf + f->size, path, "header"};
    bool seen_end = false, seen_spec = false, seen_clas = false, seen_tens = false;
    bool seen_trnr = false;
    while (!seen_end) {
        const uint8_t *hdr;
        r.section = "header";
        if (!r_take(&r, 16, &hdr))
            return csnn__error(CSNN_ERR_FORMAT, "'%s' is truncated (no end marker)", path);
        uint32_t tag = (uint32_t)le(hdr, 4), flags = (uint32_t)le(hdr + 4, 4);
        uint64_t len = le(hdr + 8, 8);
        char tagname[5] = {(char)(tag & 0xff), (char)(tag >> 8 & 0xff), (char)(tag >> 16 & 0xff),
                           (char)(tag >> 24), 0};
        for (int i = 0; i < 4; i++)
            if ((unsigned char)tagname[i] < 0x20 || (unsigned char)tagname[i] > 0x7e) tagname[i] = '?';
        const uint8_t *payload, *crcb;
        if (len > (uint64_t)(r.end - r.p) || !r_take(&r, (size_t)len, &payload) ||
            !r_take(&r, 4, &crcb))
            return csnn__error(CSNN_ERR_FORMAT, "'%s' is truncated in section %s", path, tagname);
        uLong crc = crc32(0L, Z_NULL, 0);
        crc = crc32(crc, hdr, 16);
        for (uint64_t off = 0; off < len;) {
            uInt chunk = (len - off) > (1u << 30) ? (1u << 30) : (uInt)(len - off);
            crc = crc32(crc, payload + off, chunk);
            off += chunk;
        }
        if ((uint32_t)crc != (uint32_t)le(crcb, 4))
            return csnn__error(CSNN_ERR_FORMAT, "'%s' is corrupted: checksum mismatch in section %s",
                               path, tagname);
        reader s = {payload, payload + len, path, tagname};
        csnn_status st = CSNN_OK;
        /* A section seen twice is an error found before its payload is
         * parsed: parsing it again would replace (and leak) the first. */
        bool *seen = tag == TAG_END    ? &seen_end
                     : tag == TAG_SPEC ? &seen_spec
                     : tag == TAG_CLAS ? &seen_clas
                     : tag == TAG_TENS ? &seen_tens
                     : tag == TAG_OPTM ? &f->has_optimizer
                     : tag == TAG_TRNR ? &seen_trnr
                                       : NULL;
        if (seen && *seen)
            return csnn__error(CSNN_ERR_FORMAT, "'%s': section %s appears twice", path, tagname);
        if (tag == TAG_END) {
            /* nothing: the loop ends */
        } else if (tag == TAG_SPEC) {
            if (len > CSNN_SPEC_MAX_BYTES || memchr(payload, '\0', (size_t)len))
                return csnn__error(CSNN_ERR_FORMAT, "'%s': the model spec is malformed", path);
            f->spec = csnn__alloc_array((size_t)len + 1, 1, "checkpoint spec");
            if (!f->spec) return CSNN_ERR_OUT_OF_MEMORY;
            memcpy(f->spec, payload, (size_t)len);
            f->spec[len] = '\0';
        } else if (tag == TAG_CLAS) {
            uint64_t n;
            R_UINT(&s, 4, n);
            if (n > CSNN_MAX_CLASSES)
                return csnn__error(CSNN_ERR_LIMIT, "'%s': %llu classes exceed the limit", path,
                                   (unsigned long long)n);
            /* each name takes at least 2 bytes: a count the payload cannot
             * hold is rejected before the array is allocated */
            if (n > (uint64_t)(s.end - s.p) / 2) return truncated(&s);
            f->classes = csnn__calloc_array(n ? (size_t)n : 1, sizeof(char *), "class names");
            if (!f->classes) return CSNN_ERR_OUT_OF_MEMORY;
            f->n_classes = (int)n;
            for (uint64_t c = 0; c < n; c++) {
                char name[CSNN_CLASS_NAME_MAX];
                CSNN_TRY(r_string(&s, name, sizeof name));
                if (csnn__check_class_name(name) != CSNN_OK)
                    return csnn__error_prefix(CSNN_ERR_FORMAT, "'%s'", path);
                if (!(f->classes[c] = csnn__strdup(name))) return CSNN_ERR_OUT_OF_MEMORY;
            }
        } else if (tag == TAG_TENS) {
            st = read_tensors(&s, &f->tensors, &f->n_tensors);
        } else if (tag == TAG_OPTM) {
            st = read_tensors(&s, &f->opt, &f->n_opt);
        } else if (tag == TAG_TRNR) {
            st = read_kv(&s, f);
        } else if (flags & SECTION_REQUIRED) {
            return csnn__error(CSNN_ERR_VERSION,
                               "'%s' needs a newer libcsnn: unknown required section %s", path,
                               tagname);
        } else {
            continue; /* an optional section of a newer minor version */
        }
        if (st != CSNN_OK) return st;
        if (seen) *seen = true;
        if (tag != TAG_END && tag != TAG_SPEC && s.p != s.end)
            return csnn__error(CSNN_ERR_FORMAT, "'%s': section %s has trailing bytes", path,
                               tagname);
    }
    if (r.p != r.end)
        return csnn__error(CSNN_ERR_FORMAT, "'%s': unexpected bytes after the end marker", path);
    if (!seen_spec || !seen_clas || !seen_tens)
        return csnn__error(CSNN_ERR_FORMAT, "'%s' lacks the %s section", path,
                           !seen_spec ? "SPEC" : !seen_clas ? "CLAS" : "TENS");
    return CSNN_OK;
}

/* A new ckpt_file named `path` (for messages), without contents. */
static ckpt_file *file_new(const char *path)
{
    ckpt_file *f = csnn__calloc_array(1, sizeof *f, "checkpoint");
    if (!f) return NULL;
    if (!(f->path = csnn__strdup(path))) {
        free(f);
        return NULL;
    }
    return f;
}

csnn_status csnn__checkpoint_read(const char *path, ckpt_file **out)
{
    *out = NULL;
    ckpt_file *f = file_new(path);
    if (!f) return CSNN_ERR_OUT_OF_MEMORY;
    csnn_status st = CSNN_OK;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        st = csnn__error(CSNN_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
        goto done;
    }
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(fp);
        st = csnn__error(CSNN_ERR_IO, "'%s' is not a regular file", path);
        goto done;
    }
    if ((uint64_t)sb.st_size > MAX_FILE_BYTES) {
        fclose(fp);
        st = csnn__error(CSNN_ERR_LIMIT, "'%s' is larger than %llu bytes", path,
                         (unsigned long long)MAX_FILE_BYTES);
        goto done;
    }
    f->size = (size_t)sb.st_size;
    f->buf = csnn__alloc_array(f->size ? f->size : 1, 1, "checkpoint file");
    if (!f->buf) {
        fclose(fp);
        st = CSNN_ERR_OUT_OF_MEMORY;
        goto done;
    }
    size_t got = fread(f->buf, 1, f->size, fp);
    int rerr = ferror(fp);
    fclose(fp);
    if (rerr || got != f->size) {
        st = csnn__error(CSNN_ERR_IO, "reading '%s' failed", path);
        goto done;
    }
    st = parse_file(f);
done:
    if (st != CSNN_OK) {
        csnn__checkpoint_free(f);
        return st;
    }
    *out = f;
    return CSNN_OK;
}

csnn_status csnn__checkpoint_parse(const uint8_t *data, size_t size, const char *name,
                                   ckpt_file **out)
{
    *out = NULL;
    if (data == NULL && size > 0)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "checkpoint: data is NULL");
    if ((uint64_t)size > MAX_FILE_BYTES)
        return csnn__error(CSNN_ERR_LIMIT, "'%s' is larger than %llu bytes",
                           name ? name : "(memory)", (unsigned long long)MAX_FILE_BYTES);
    ckpt_file *f = file_new(name ? name : "(memory)");
    if (!f) return CSNN_ERR_OUT_OF_MEMORY;
    f->size = size;
    f->buf = csnn__alloc_array(size ? size : 1, 1, "checkpoint copy");
    csnn_status st = f->buf ? CSNN_OK : CSNN_ERR_OUT_OF_MEMORY;
    if (st == CSNN_OK) {
        if (size) memcpy(f->buf, data, size);
        st = parse_file(f);
    }
    if (st != CSNN_OK) {
        csnn__checkpoint_free(f);
        return st;
    }
    *out = f;
    return CSNN_OK;
}

void csnn__checkpoint_free(ckpt_file *f)
{
    if (!f) return;
    if (f->classes)
        for (int c = 0; c < f->n_classes; c++) free(f->classes[c]);
    free(f->classes);
    free(f->tensors);
    free(f->opt);
    free(f->kv);
    free(f->spec);
    free(f->buf);
    free(f->path);
    free(f);
}

const char *csnn__checkpoint_spec(const ckpt_file *f)
{
    return f->spec;
}

bool csnn__checkpoint_has_optimizer(const ckpt_file *f)
{
    return f->has_optimizer;
}

int csnn__checkpoint_kv(const ckpt_file *f, const ckpt_kv **kv)
{
    *kv = f->kv;
    return f->n_kv;
}

static const ckpt_tensor *find_record(const ckpt_tensor *t, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(t[i].name, name) == 0) return &t[i];
    return NULL;
}

static csnn_status check_record(const ckpt_file *f, const ckpt_tensor *rec, const model_tensor *t,
                                const char *name)
{
    if (!rec)
        return csnn__error(CSNN_ERR_FORMAT, "'%s' lacks tensor '%s'", f->path, name);
    int want = t->kind == CSNN_TENSOR_COUNTER ? DTYPE_I64 : DTYPE_F32;
    bool same = rec->dtype == want && rec->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = rec->shape[d] == t->shape[d];
    if (!same)
        return csnn__error(CSNN_ERR_SHAPE, "'%s': tensor '%s' has another shape or type than the "
                                           "model's",
                           f->path, name);
    return CSNN_OK;
}

/* FORMAT unless every value of a float record is finite (and, with
 * nonneg, not below zero: variances). */
static csnn_status check_values(const ckpt_file *f, const ckpt_tensor *rec, bool nonneg)
{
    for (int64_t i = 0; i < rec->numel; i++) {
        uint32_t u = (uint32_t)le(rec->data + 4 * i, 4);
        if ((u & 0x7f800000u) == 0x7f800000u)
            return csnn__error(CSNN_ERR_FORMAT,
                               "'%s': tensor '%s' holds a non-finite value (element %lld)",
                               f->path, rec->name, (long long)i);
        if (nonneg && (u & 0x80000000u) && u != 0x80000000u)
            return csnn__error(CSNN_ERR_FORMAT,
                               "'%s': tensor '%s' holds a negative variance (element %lld)",
                               f->path, rec->name, (long long)i);
    }
    return CSNN_OK;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Uploads a little-endian float record into device memory. */
static csnn_status upload_record(csnn_model *m, float *dst, const ckpt_tensor *rec)
{
    size_t bytes = (size_t)rec->numel * 4;
    if (host_is_little_endian()) return m->ops->upload(m->dev, dst, rec->data, bytes);
    float *tmp = csnn__alloc_array((size_t)rec->numel, 4, "checkpoint conversion");
    if (!tmp) return CSNN_ERR_OUT_OF_MEMORY;
    for (int64_t i = 0; i < rec->numel; i++) {
        uint32_t u = (uint32_t)le(rec->data + 4 * i, 4);
        memcpy(&tmp[i], &u, 4);
    }
    csnn_status st = m->ops->upload(m->dev, dst, tmp, bytes);
    free(tmp);
    return st;
}

csnn_status csnn__checkpoint_apply(const ckpt_file *f, csnn_model *m, bool optimizer)
{
    if (f->n_classes != m->spec.classes)
        return csnn__error(CSNN_ERR_FORMAT, "'%s' names %d classes for a model of %d", f->path,
                           f->n_classes, m->spec.classes);
    if (f->n_tensors != m->n_tensors)
        return csnn__error(CSNN_ERR_FORMAT, "'%s' holds %d tensors, the model has %d", f->path,
                           f->n_tensors, m->n_tensors);
    if (optimizer && !f->has_optimizer)
        return csnn__error(CSNN_ERR_STATE, "'%s' is a model without optimiser state", f->path);
    /* validate everything before changing anything */
    char name[128];
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->tensors[i];
        CSNN_TRY(check_record(f, find_record(f->tensors, f->n_tensors, t->name), t, t->name));
        if (optimizer && t->kind == CSNN_TENSOR_PARAM) {
            snprintf(name, sizeof name, "exp_avg.%s", t->name);
            CSNN_TRY(check_record(f, find_record(f->opt, f->n_opt, name), t, name));
            snprintf(name, sizeof name, "exp_avg_sq.%s", t->name);
            CSNN_TRY(check_record(f, find_record(f->opt, f->n_opt, name), t, name));
        }
    }
    for (int c = 0; c < f->n_classes; c++)
        for (int d = 0; d < c; d++)
            if (strcmp(f->classes[c], f->classes[d]) == 0)
                return csnn__error(CSNN_ERR_FORMAT, "'%s': class '%s' appears twice", f->path,
                                   f->classes[c]);
    for (int i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->tensors[i];
        const ckpt_tensor *rec = find_record(f->tensors, f->n_tensors, t->name);
        if (rec->dtype == DTYPE_F32) {
            /* as csnn_model_set_tensor: no NaN or infinity gets in; nor a
             * negative BN variance or Adam second moment (their square
             * roots are taken) */
            CSNN_TRY(check_values(f, rec, ends_with(t->name, ".running_var")));
            if (optimizer && t->kind == CSNN_TENSOR_PARAM) {
                snprintf(name, sizeof name, "exp_avg.%s", t->name);
                CSNN_TRY(check_values(f, find_record(f->opt, f->n_opt, name), false));
                snprintf(name, sizeof name, "exp_avg_sq.%s", t->name);
                CSNN_TRY(check_values(f, find_record(f->opt, f->n_opt, name), true));
            }
            continue;
        }
        if ((int64_t)le(rec->data, 8) < 0)
            return csnn__error(CSNN_ERR_FORMAT, "'%s': counter '%s' is negative", f->path,
                               rec->name);
    }
    CSNN_TRY(csnn_model_set_class_names(m, (const char *const *)f->classes, (size_t)f->n_classes));
    m->param_version++;
    for (int i = 0; i < m->n_tensors; i++) {
        model_tensor *t = &m->tensors[i];
        const ckpt_tensor *rec = find_record(f->tensors, f->n_tensors, t->name);
        if (t->kind == CSNN_TENSOR_COUNTER) {
            *t->counter = (int64_t)le(rec->data, 8);
            continue;
        }
        CSNN_TRY(upload_record(m, t->data, rec));
        if (optimizer && t->kind == CSNN_TENSOR_PARAM) {
            snprintf(name, sizeof name, "exp_avg.%s", t->name);
            CSNN_TRY(upload_record(m, t->opt_m, find_record(f->opt, f->n_opt, name)));
            snprintf(name, sizeof name, "exp_avg_sq.%s", t->name);
            CSNN_TRY(upload_record(m, t->opt_v, find_record(f->opt, f->n_opt, name)));
        }
    }
    return CSNN_OK;
}

csnn_status csnn_model_load(csnn_context *ctx, const char *path, csnn_model **out)
{
    CSNN_ARG_NOT_NULL(out);
    *out = NULL;
    CSNN_ARG_NOT_NULL(ctx);
    CSNN_ARG_NOT_NULL(path);
    ckpt_file *f;
    CSNN_TRY(csnn__checkpoint_read(path, &f));
    model_spec spec;
    csnn_status st = csnn__spec_parse(f->spec, &spec);
    if (st != CSNN_OK) {
        csnn__error_prefix(st, "'%s'", path);
        csnn__checkpoint_free(f);
        return st;
    }
    for (int i = 0; i < f->n_tensors; i++) spec.file_values += f->tensors[i].numel;
    if (spec.file_values == 0) spec.file_values = 1; /* 0 means no bound */
    csnn_model *m;
    st = csnn__model_build(ctx, &spec, 0, &m);
    if (st != CSNN_OK) csnn__error_prefix(st, "'%s'", path);
    if (st == CSNN_OK) {
        st = csnn__checkpoint_apply(f, m, false);
        if (st != CSNN_OK) {
            csnn_model_destroy(m);
            m = NULL;
        }
    }
    csnn__checkpoint_free(f);
    *out = m;
    return st;
}
