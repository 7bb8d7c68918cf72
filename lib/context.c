/* context.c - the backend registry, module loading and csnn_context. */
#include <ctype.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csnn_internal.h"

/* ------------------------------------------------------------------------ */
/* Registry                                                                  */
/* ------------------------------------------------------------------------ */

#define MAX_BACKENDS 16
#define MAX_NAME 24

/* The size of the first published table (up to and including host_free). */
#define OPS_MIN_SIZE (offsetof(csnn_backend_ops, host_free) + sizeof(void *))

typedef struct {
    char name[MAX_NAME];
    csnn_backend_ops ops; /* a copy, padded with NULLs to this library's size */
} registered_backend;

/* A backend module that failed to load is remembered so that it is not
 * retried on every call; its message is repeated instead. */
typedef struct {
    char name[MAX_NAME];
    csnn_status status;
    char message[512];
} failed_module;

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static registered_backend registry[MAX_BACKENDS];
static int registry_count;
static failed_module failed[MAX_BACKENDS];
static int failed_count;
static int cpu_registered;

static bool valid_backend_name(const char *s, size_t len)
{
    if (len == 0 || len >= MAX_NAME) return false;
    for (size_t i = 0; i < len; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_'))
            return false;
    return true;
}

static const char *missing_required_entry(const csnn_backend_ops *o)
{
#define REQ(f)                                                                                     \
    if (o->f == NULL) return #f
    REQ(device_count); REQ(open); REQ(close); REQ(synchronize);
    REQ(alloc); REQ(free); REQ(upload); REQ(download); REQ(copy); REQ(fill);
    REQ(gemm); REQ(bias_add); REQ(bias_grad); REQ(axpby); REQ(reduce);
    REQ(conv2d_workspace); REQ(conv2d_forward); REQ(conv2d_backward);
    REQ(bn_forward_train); REQ(bn_forward_infer); REQ(bn_backward);
    REQ(maxpool_forward); REQ(maxpool_backward);
    REQ(relu_forward); REQ(relu_backward); REQ(dropout_mask); REQ(mul_broadcast_t);
    REQ(neuron_forward); REQ(neuron_backward);
    REQ(time_mean); REQ(time_mean_backward); REQ(time_repeat); REQ(time_sum);
    REQ(loss); REQ(optim_step);
#undef REQ
    return NULL;
}

/* Called with registry_mu held. */
static csnn_status register_locked(const csnn_backend_ops *ops)
{
    if (ops->abi_version != CSNN_BACKEND_ABI_VERSION)
        return csnn__error(CSNN_ERR_VERSION,
                           "csnn_backend_register: backend ABI %u, this libcsnn speaks %u",
                           ops->abi_version, (unsigned)CSNN_BACKEND_ABI_VERSION);
    if (ops->struct_size < OPS_MIN_SIZE || ops->struct_size > (1u << 16))
        return csnn__error(CSNN_ERR_ABI_STRUCT_SIZE,
                           "csnn_backend_register: table size %u is below the minimum %zu",
                           ops->struct_size, (size_t)OPS_MIN_SIZE);
    if (ops->name == NULL || !valid_backend_name(ops->name, strlen(ops->name)))
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "csnn_backend_register: the name must be 1-%d characters of [a-z0-9_]",
                           MAX_NAME - 1);
    for (int i = 0; i < registry_count; i++)
        if (strcmp(registry[i].name, ops->name) == 0)
            return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                               "csnn_backend_register: a backend named '%s' is already registered",
                               ops->name);
    if (registry_count == MAX_BACKENDS)
        return csnn__error(CSNN_ERR_LIMIT, "csnn_backend_register: at most %d backends",
                           MAX_BACKENDS);
    registered_backend *r = &registry[registry_count];
    memset(&r->ops, 0, sizeof r->ops);
    size_t n = ops->struct_size < sizeof r->ops ? ops->struct_size : sizeof r->ops;
    memcpy(&r->ops, ops, n);
    const char *missing = missing_required_entry(&r->ops);
    if (missing)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "csnn_backend_register: backend '%s' lacks the required entry '%s'",
                           ops->name, missing);
    snprintf(r->name, sizeof r->name, "%s", ops->name);
    r->ops.name = r->name;
    registry_count++;
    return CSNN_OK;
}

static void ensure_cpu_locked(void)
{
    if (!cpu_registered) {
        cpu_registered = 1;
        register_locked(&csnn__cpu_backend_ops);
    }
}

csnn_status csnn_backend_register(const csnn_backend_ops *ops)
{
    CSNN_ARG_NOT_NULL(ops);
    pthread_mutex_lock(&registry_mu);
    ensure_cpu_locked();
    csnn_status st = register_locked(ops);
    pthread_mutex_unlock(&registry_mu);
    return st;
}

static const csnn_backend_ops *find_locked(const char *name)
{
    for (int i = 0; i < registry_count; i++)
        if (strcmp(registry[i].name, name) == 0) return &registry[i].ops;
    return NULL;
}

/* Directory of the object that holds this code (libcsnn.so, or the program
 * it is linked into statically), with a trailing '/'; "" if unknown. */
static void own_directory(char *buf, size_t cap)
{
    Dl_info info;
    buf[0] = '\0';
    if (dladdr((void *)&csnn_context_create, &info) && info.dli_fname) {
        const char *slash = strrchr(info.dli_fname, '/');
        if (slash && (size_t)(slash - info.dli_fname) + 2 < cap) {
            memcpy(buf, info.dli_fname, (size_t)(slash - info.dli_fname) + 1);
            buf[slash - info.dli_fname + 1] = '\0';
        }
    }
}

/* Loads libcsnn-<name>.so and registers its table. Called with registry_mu
 * held. Failures are remembered. */
static csnn_status load_module_locked(const char *name)
{
    for (int i = 0; i < failed_count; i++)
        if (strcmp(failed[i].name, name) == 0)
            return csnn__error(failed[i].status, "%s", failed[i].message);

    char env[64], upper[MAX_NAME];
    size_t n = strlen(name);
    for (size_t i = 0; i <= n; i++) upper[i] = (char)toupper((unsigned char)name[i]);
    snprintf(env, sizeof env, "CSNN_%s_MODULE", upper);
    char file[64];
    snprintf(file, sizeof file, "libcsnn-%s.so", name);

    char candidates[3][1024];
    int nc = 0;
    const char *env_path = getenv(env);
    if (env_path && *env_path) {
        snprintf(candidates[nc++], sizeof candidates[0], "%s", env_path);
    } else {
        char dir[900];
        own_directory(dir, sizeof dir);
        if (dir[0]) snprintf(candidates[nc++], sizeof candidates[0], "%s%s", dir, file);
        snprintf(candidates[nc++], sizeof candidates[0], "%s", file);
    }

    char tried[700] = "";
    void *handle = NULL;
    for (int i = 0; i < nc && !handle; i++) {
        dlerror();
        handle = dlopen(candidates[i], RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
            const char *why = dlerror();
            size_t used = strlen(tried);
            snprintf(tried + used, sizeof tried - used, "%s%.300s", used ? "; " : "",
                     why ? why : candidates[i]);
        }
    }
    csnn_status st;
    if (!handle) {
        st = csnn__error(CSNN_ERR_BACKEND_UNAVAILABLE,
                         "device '%s': cannot load the backend module %s (set %s to its path): %s",
                         name, file, env, tried);
    } else {
        csnn_backend_module_entry_fn entry;
        *(void **)&entry = dlsym(handle, CSNN_BACKEND_MODULE_ENTRY);
        if (!entry) {
            st = csnn__error(CSNN_ERR_BACKEND_UNAVAILABLE, "device '%s': %s has no symbol %s",
                             name, file, CSNN_BACKEND_MODULE_ENTRY);
        } else {
            csnn_clear_last_error();
            const csnn_backend_ops *ops = entry(CSNN_BACKEND_ABI_VERSION, csnn_backend_set_error);
            if (!ops) {
                st = csnn__error_prefix(CSNN_ERR_BACKEND_UNAVAILABLE,
                                        "device '%s': module %s refused to load", name, file);
            } else if (!ops->name || strcmp(ops->name, name) != 0) {
                st = csnn__error(CSNN_ERR_BACKEND_UNAVAILABLE,
                                 "device '%s': module %s registers the name '%s'", name, file,
                                 ops->name ? ops->name : "(null)");
            } else {
                st = register_locked(ops);
            }
        }
        /* The module is never unloaded once it has registered: its code
         * stays referenced by the registry. */
        if (st != CSNN_OK) dlclose(handle);
    }
    if (st != CSNN_OK && failed_count < MAX_BACKENDS) {
        failed_module *f = &failed[failed_count++];
        snprintf(f->name, sizeof f->name, "%s", name);
        f->status = st;
        snprintf(f->message, sizeof f->message, "%s", csnn_last_error_message());
    }
    return st;
}

/* Finds (loading if needed) the backend called `name`. */
static csnn_status get_backend(const char *name, const csnn_backend_ops **out)
{
    pthread_mutex_lock(&registry_mu);
    ensure_cpu_locked();
    const csnn_backend_ops *ops = find_locked(name);
    csnn_status st = CSNN_OK;
    if (!ops) {
        st = load_module_locked(name);
        if (st == CSNN_OK) ops = find_locked(name);
        if (st == CSNN_OK && !ops) st = csnn__error(CSNN_ERR_INTERNAL, "backend '%s' lost", name);
    }
    pthread_mutex_unlock(&registry_mu);
    *out = ops;
    return st;
}

/* ------------------------------------------------------------------------ */
/* Device strings                                                            */
/* ------------------------------------------------------------------------ */

typedef struct {
    char name[MAX_NAME];
    int index;
    int explicit_index;
} device_spec;

static csnn_status parse_device(const char *s, device_spec *d)
{
    const char *colon = strchr(s, ':');
    size_t len = colon ? (size_t)(colon - s) : strlen(s);
    if (!valid_backend_name(s, len))
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "device '%s': expected NAME or NAME:INDEX, e.g. 'cpu' or 'cuda:0'", s);
    memcpy(d->name, s, len);
    d->name[len] = '\0';
    d->index = 0;
    d->explicit_index = 0;
    if (colon) {
        const char *p = colon + 1;
        long v = 0;
        if (!*p) goto bad_index;
        for (; *p; p++) {
            if (!isdigit((unsigned char)*p)) goto bad_index;
            v = v * 10 + (*p - '0');
            if (v > 9999) goto bad_index;
        }
        d->index = (int)v;
        d->explicit_index = 1;
    }
    return CSNN_OK;
bad_index:
    return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                       "device '%s': the index after ':' must be a number from 0 to 9999", s);
}

/* Resolves "auto" and checks the index; fills the backend. */
static csnn_status resolve_device(const char *device, device_spec *d,
                                  const csnn_backend_ops **ops)
{
    if (strcmp(device, "auto") == 0) {
        const csnn_backend_ops *cuda = NULL;
        int count = 0;
        if (get_backend("cuda", &cuda) == CSNN_OK && cuda->device_count(&count) == CSNN_OK &&
            count > 0) {
            snprintf(d->name, sizeof d->name, "cuda");
            d->index = 0;
            *ops = cuda;
            return CSNN_OK;
        }
        csnn_clear_last_error();
        device = "cpu";
    }
    CSNN_TRY(parse_device(device, d));
    CSNN_TRY(get_backend(d->name, ops));
    int count = 0;
    csnn_status st = (*ops)->device_count(&count);
    if (st != CSNN_OK)
        return csnn__error_prefix(CSNN_ERR_BACKEND_UNAVAILABLE, "device '%s'", device);
    if (count == 0)
        return csnn__error(CSNN_ERR_BACKEND_UNAVAILABLE, "device '%s': no %s device is usable here",
                           device, d->name);
    if (d->index >= count)
        return csnn__error(CSNN_ERR_BACKEND_UNAVAILABLE,
                           "device '%s': index %d out of range (%d %s device%s)", device, d->index,
                           count, d->name, count == 1 ? "" : "s");
    return CSNN_OK;
}

csnn_status csnn_device_available(const char *device)
{
    CSNN_ARG_NOT_NULL(device);
    device_spec d;
    const csnn_backend_ops *ops;
    return resolve_device(device, &d, &ops);
}

/* ------------------------------------------------------------------------ */
/* Context                                                                   */
/* ------------------------------------------------------------------------ */

void csnn_context_options_init(csnn_context_options *opts)
{
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->size = sizeof *opts;
    opts->device = "cpu";
    opts->n_threads = 0;
    opts->log_level = CSNN_LOG_WARN;
}

static int default_threads(void)
{
    const char *env = getenv("CSNN_NUM_THREADS");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == '\0' && v >= 1 && v <= 1024) return (int)v;
    }
    return csnn__cpu_count();
}

csnn_status csnn_context_create(const csnn_context_options *user_opts, csnn_context **out)
{
    CSNN_ARG_NOT_NULL(out);
    *out = NULL;
    csnn_context_options opts;
    csnn_context_options_init(&opts);
    if (user_opts) {
        CSNN_TRY(csnn__check_struct(user_opts, offsetof(csnn_context_options, reserved) +
                                                   sizeof(uint32_t),
                                    sizeof opts, "csnn_context_options"));
        memcpy(&opts, user_opts, sizeof opts);
        if (opts.reserved != 0)
            return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                               "csnn_context_create: options.reserved must be 0");
        if (!opts.device) opts.device = "cpu";
    }
    if (opts.n_threads < 0 || opts.n_threads > 1024)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "csnn_context_create: n_threads %d is outside 0..1024", opts.n_threads);
    if (opts.log_level < CSNN_LOG_DEBUG || opts.log_level > CSNN_LOG_NONE)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "csnn_context_create: log_level %d unknown",
                           opts.log_level);

    device_spec d;
    const csnn_backend_ops *ops;
    CSNN_TRY(resolve_device(opts.device, &d, &ops));

    csnn_context *ctx = csnn__calloc_array(1, sizeof *ctx, "csnn_context");
    if (!ctx) return CSNN_ERR_OUT_OF_MEMORY;
    ctx->ops = ops;
    ctx->device_index = d.index;
    ctx->n_threads = opts.n_threads ? opts.n_threads : default_threads();
    ctx->log_level = (csnn_log_level)opts.log_level;
    ctx->log_fn = opts.log_fn;
    ctx->log_user_data = opts.log_user_data;
    snprintf(ctx->device, sizeof ctx->device, "%s:%d", d.name, d.index);
    if (strcmp(d.name, "cpu") == 0) snprintf(ctx->device, sizeof ctx->device, "cpu");

    csnn_status st = ops->open(d.index, ctx->n_threads, &ctx->dev);
    if (st != CSNN_OK) {
        free(ctx);
        return csnn__error_prefix(st, "device '%s'", opts.device);
    }
    if (!ops->describe || ops->describe(ctx->dev, ctx->description, sizeof ctx->description) !=
                              CSNN_OK) {
        snprintf(ctx->description, sizeof ctx->description, "%s", ctx->device);
        csnn_clear_last_error();
    }
    csnn__log(ctx, CSNN_LOG_INFO, "context on %s (%s), %d threads", ctx->device,
              ctx->description, ctx->n_threads);
    *out = ctx;
    return CSNN_OK;
}

void csnn_context_destroy(csnn_context *ctx)
{
    if (!ctx) return;
    ctx->ops->close(ctx->dev);
    free(ctx);
}

const char *csnn_context_device(const csnn_context *ctx)
{
    return ctx ? ctx->device : NULL;
}

const char *csnn_context_device_description(const csnn_context *ctx)
{
    return ctx ? ctx->description : NULL;
}

int csnn_context_threads(const csnn_context *ctx)
{
    return ctx ? ctx->n_threads : 0;
}

csnn_status csnn_context_set_threads(csnn_context *ctx, int n)
{
    CSNN_ARG_NOT_NULL(ctx);
    if (n < 0 || n > 1024)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "csnn_context_set_threads: %d is outside 0..1024", n);
    int want = n ? n : default_threads();
    if (ctx->ops->set_threads) CSNN_TRY(ctx->ops->set_threads(ctx->dev, want));
    ctx->n_threads = want;
    return CSNN_OK;
}

csnn_status csnn_context_set_log(csnn_context *ctx, csnn_log_level level, csnn_log_fn fn,
                                 void *user_data)
{
    CSNN_ARG_NOT_NULL(ctx);
    if (level < CSNN_LOG_DEBUG || level > CSNN_LOG_NONE)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "csnn_context_set_log: level %d unknown",
                           (int)level);
    ctx->log_level = level;
    ctx->log_fn = fn;
    ctx->log_user_data = user_data;
    return CSNN_OK;
}

void csnn__log(const csnn_context *ctx, csnn_log_level level, const char *fmt, ...)
{
    if (!ctx || !ctx->log_fn || level < ctx->log_level || ctx->log_level == CSNN_LOG_NONE) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ctx->log_fn(ctx->log_user_data, level, buf);
}
