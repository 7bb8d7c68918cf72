/* backend_test.h - helpers for the CPU backend's white-box tests: devices,
 * a seeded random generator, float buffers and comparisons against double
 * references. Header-only; every test file includes it once. */
#ifndef CSNN_BACKEND_TEST_H
#define CSNN_BACKEND_TEST_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "csnn_internal.h"

#define OPS (&csnn__cpu_backend_ops)

static inline void *tb_open(int threads)
{
    void *dev = NULL;
    assert_int_equal(OPS->open(0, threads, &dev), CSNN_OK);
    assert_non_null(dev);
    return dev;
}

/* ---- random numbers (xorshift64*, independent of the library) ---- */

typedef struct {
    uint64_t s;
} tb_rng;

static inline tb_rng tb_seed(uint64_t seed)
{
    tb_rng r = {seed * 2654435761u + 0x9E3779B97F4A7C15ull};
    return r;
}

static inline double tb_uniform(tb_rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return (double)((r->s * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0);
}

static inline double tb_range(tb_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * tb_uniform(r);
}

/* ---- buffers ---- */

static inline float *tb_floats(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(p);
    return p;
}

static inline double *tb_doubles(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof(double));
    assert_non_null(p);
    return p;
}

static inline float *tb_rand_floats(tb_rng *r, size_t n, double lo, double hi)
{
    float *p = tb_floats(n);
    for (size_t i = 0; i < n; i++) p[i] = (float)tb_range(r, lo, hi);
    return p;
}

static inline void tb_fill(float *p, size_t n, float v)
{
    for (size_t i = 0; i < n; i++) p[i] = v;
}

static inline double *tb_widen(const float *p, size_t n)
{
    double *d = tb_doubles(n);
    for (size_t i = 0; i < n; i++) d[i] = p[i];
    return d;
}

/* ---- comparisons ---- */

/* Fails unless |got[i] - ref[i]| <= rtol * max|ref| + atol for every i. */
static inline void tb_close_at(const float *got, const double *ref, size_t n, double rtol,
                               double atol, const char *what, const char *file, int line)
{
    double scale = 0.0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    double tol = rtol * scale + atol;
    for (size_t i = 0; i < n; i++) {
        if (!(fabs((double)got[i] - ref[i]) <= tol)) {
            print_error("%s:%d: %s[%zu] = %.9g, reference %.12g (tolerance %.3g, max|ref| %.3g)\n",
                        file, line, what, i, (double)got[i], ref[i], tol, scale);
            _fail(file, line);
        }
    }
}
#define TB_CLOSE(got, ref, n, rtol, atol)                                                          \
    tb_close_at((got), (ref), (n), (rtol), (atol), #got, __FILE__, __LINE__)

/* Bitwise equality of two float buffers. */
static inline void tb_same_at(const float *a, const float *b, size_t n, const char *what,
                              const char *file, int line)
{
    if (memcmp(a, b, n * sizeof(float)) != 0) {
        for (size_t i = 0; i < n; i++)
            if (memcmp(&a[i], &b[i], sizeof(float)) != 0) {
                print_error("%s:%d: %s differ at %zu: %.9g vs %.9g\n", file, line, what, i,
                            (double)a[i], (double)b[i]);
                break;
            }
        _fail(file, line);
    }
}
#define TB_SAME(a, b, n) tb_same_at((a), (b), (n), #a " / " #b, __FILE__, __LINE__)

/* Expects status `want` and a message that contains `needle`. */
static inline void tb_error_at(csnn_status got, csnn_status want, const char *needle,
                               const char *file, int line)
{
    if (got != want) {
        print_error("%s:%d: status %s, expected %s\n", file, line, csnn_status_name(got),
                    csnn_status_name(want));
        _fail(file, line);
    }
    if (needle && !strstr(csnn_last_error_message(), needle)) {
        print_error("%s:%d: message '%s' lacks '%s'\n", file, line, csnn_last_error_message(),
                    needle);
        _fail(file, line);
    }
}
#define TB_ERROR(expr, want, needle) tb_error_at((expr), (want), (needle), __FILE__, __LINE__)

/* Central difference of f at x[i] (x is restored). */
#define TB_FD_STEP 1e-6
static inline double tb_fd(double (*f)(void *ctx), void *ctx, double *x, size_t i)
{
    const double x0 = x[i];
    x[i] = x0 + TB_FD_STEP;
    double up = f(ctx);
    x[i] = x0 - TB_FD_STEP;
    double down = f(ctx);
    x[i] = x0;
    return (up - down) / (2 * TB_FD_STEP);
}

/* Finite-difference gradient of f with respect to every x[i] into g. */
static inline void tb_fd_grad(double (*f)(void *ctx), void *ctx, double *x, size_t n, double *g)
{
    for (size_t i = 0; i < n; i++) g[i] = tb_fd(f, ctx, x, i);
}

#endif
