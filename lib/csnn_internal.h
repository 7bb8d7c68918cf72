/*
 * csnn_internal.h - private helpers shared by the files of lib/.
 * Nothing here is installed or exported. Cross-file internal functions are
 * named csnn__*.
 */
#ifndef CSNN_INTERNAL_H
#define CSNN_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "csnn/csnn.h"
#include "csnn/csnn_backend.h"

#if defined(__GNUC__) || defined(__clang__)
#define CSNN_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define CSNN_UNUSED __attribute__((unused))
#else
#define CSNN_PRINTF(a, b)
#define CSNN_UNUSED
#endif

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/** Sets the thread's last error message (printf-style) and returns st. */
csnn_status csnn__error(csnn_status st, const char *fmt, ...) CSNN_PRINTF(2, 3);
csnn_status csnn__verror(csnn_status st, const char *fmt, va_list ap);
/** Prepends "prefix: " to the current thread's message (adds context, such
 *  as a file name, to an error raised deeper down) and returns st. */
csnn_status csnn__error_prefix(csnn_status st, const char *fmt, ...) CSNN_PRINTF(2, 3);

#define CSNN_TRY(expr)                                                                             \
    do {                                                                                           \
        csnn_status csnn_try_st_ = (expr);                                                         \
        if (csnn_try_st_ != CSNN_OK) return csnn_try_st_;                                          \
    } while (0)

/** Returns INVALID_ARGUMENT naming the function when `ptr` is NULL. */
#define CSNN_ARG_NOT_NULL(ptr)                                                                     \
    do {                                                                                           \
        if ((ptr) == NULL)                                                                         \
            return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "%s: argument '%s' is NULL", __func__,   \
                               #ptr);                                                              \
    } while (0)

/**
 * Checks a caller's size-versioned struct: `size` at least `min_size` (the
 * first published version) and any bytes beyond what this library knows
 * (`known_size`) zero. `what` names the struct in the message.
 */
csnn_status csnn__check_struct(const void *p, size_t min_size, size_t known_size,
                               const char *what);

/** Copies `src`, a filled output struct of this library's size `known_size`,
 *  into the caller's size-versioned `dst`: as many bytes as both know, with
 *  dst->size left as the caller set it. */
void csnn__copy_out(void *dst, const void *src, size_t known_size);

/* ------------------------------------------------------------------------ */
/* Host memory with overflow-checked sizes                                   */
/* ------------------------------------------------------------------------ */

/** a*b into *out; false on overflow. */
static inline bool csnn__mul_size(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

/** malloc that sets OUT_OF_MEMORY (with `what`) and returns NULL on failure or
 *  overflow of n*elem. Zero bytes allocates one byte. */
void *csnn__alloc_array(size_t n, size_t elem, const char *what);
/** As csnn__alloc_array, zero-filled. */
void *csnn__calloc_array(size_t n, size_t elem, const char *what);
/** strdup that reports OUT_OF_MEMORY. */
char *csnn__strdup(const char *s);

/* ------------------------------------------------------------------------ */
/* Context                                                                   */
/* ------------------------------------------------------------------------ */

struct csnn_context {
    const csnn_backend_ops *ops; /* the registered table (a copy padded to our size) */
    void *dev;                   /* the backend's device handle */
    int device_index;
    int n_threads;
    char device[40];       /* canonical, e.g. "cuda:0" */
    char description[160];
    csnn_log_level log_level;
    csnn_log_fn log_fn;
    void *log_user_data;
};

/** Logs through the context's callback (ctx may be NULL: then nothing). */
void csnn__log(const csnn_context *ctx, csnn_log_level level, const char *fmt, ...)
    CSNN_PRINTF(3, 4);

/** Number of online CPUs (>= 1). */
int csnn__cpu_count(void);

/** The CPU backend's table (lib/backend/cpu). */
extern const csnn_backend_ops csnn__cpu_backend_ops;

/* ------------------------------------------------------------------------ */
/* A small persistent thread pool (lib/pool.c)                               */
/* ------------------------------------------------------------------------ */

typedef struct csnn_pool csnn_pool;
/** fn(arg, task, worker) runs for task in [0, n_tasks) on worker < threads. */
typedef void (*csnn_pool_fn)(void *arg, int64_t task, int worker);

/** A pool of n_threads workers (the calling thread is worker 0, so n - 1
 *  threads are started). n_threads >= 1. */
csnn_status csnn__pool_create(int n_threads, csnn_pool **out);
void csnn__pool_destroy(csnn_pool *pool);
int csnn__pool_threads(const csnn_pool *pool);
/** Runs n_tasks tasks and waits for all of them. Tasks are handed out in
 *  order, dynamically. With one thread or one task it runs inline. Not
 *  reentrant: a task must not call csnn__pool_run on the same pool. */
void csnn__pool_run(csnn_pool *pool, int64_t n_tasks, csnn_pool_fn fn, void *arg);

/* ------------------------------------------------------------------------ */
/* Misc                                                                      */
/* ------------------------------------------------------------------------ */

/** SplitMix64 step: a well-mixed 64-bit value from a counter. */
static inline uint64_t csnn__splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/** Monotonic time in seconds. */
double csnn__now(void);

#endif /* CSNN_INTERNAL_H */
