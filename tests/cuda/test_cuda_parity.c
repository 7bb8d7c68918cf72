/*
 * test_cuda_parity.c - every op of the CUDA backend table against
 *   (1) a plain host reference written here (double precision for sums,
 *       the same float formulas for elementwise ops), always, and
 *   (2) the CPU backend (csnn__cpu_backend_ops), where the CPU table has the
 *       op (an op the CPU lacks, or reports CSNN_ERR_UNSUPPORTED for, is only
 *       checked against the reference, and said so in the output).
 *
 * Same random inputs for everyone; outputs are poisoned (all bits set: NaN
 * for floats, 255 for argmax bytes) before each run so that an element a
 * backend forgets to write is caught; NaN never passes a comparison.
 * Tolerance per tensor: |got - want| <= rel * max|want| + abs (the fixtures'
 * rule; a per-element relative bound is wrong near zero). Spikes, argmax,
 * dropout patterns and counts are compared exactly.
 *
 * Exit 77 (skip) when the CUDA module reports no usable device: no GPU, no
 * driver (cudaErrorInsufficientDriver), or device_count failing.
 *
 * Env: CSNN_CUDA_MODULE = path of the built libcsnn-cuda.so.
 *
 * The fused neurons + max-pool entries (test_neuron_pool) are checked
 * against the reference and the CPU, and against this module's own
 * composition neuron_forward + maxpool_forward / maxpool_backward +
 * neuron_backward bit for bit.
 *
 * The full-model test (a training step of a scaled fer-csnn and of the
 * fer-csnn preset on "cpu" and "cuda": loss, spikes, gradients, parameters,
 * BN statistics; save/load across devices) is its own executable,
 * test_cuda_model.c, as it goes through libcsnn's model engine.
 *
 * CSNN_CUDA_TEST_FILTER=PATTERN runs only the matching tests (cmocka's
 * wildcards), e.g. 'test_neuron*'.
 */
#include <dlfcn.h>
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

/* ------------------------------------------------------------------------ */
/* Backends                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct backend {
    const csnn_backend_ops *ops;
    void *dev;
    const char *label;
} backend;

static backend g_cpu = {0, 0, "cpu"};
static backend g_gpu = {0, 0, "cuda"};
/* a second CUDA handle with a tiny convolution workspace budget, so that the
 * chunked (several images per gemm) path runs with several chunks */
static backend g_gpu_small = {0, 0, "cuda(small conv workspace)"};

#define OK(expr)                                                                                   \
    do {                                                                                           \
        csnn_status ok_st_ = (expr);                                                               \
        if (ok_st_ != CSNN_OK)                                                                     \
            fail_msg("%s -> %s: %s", #expr, csnn_status_name(ok_st_),                              \
                     csnn_last_error_message());                                                   \
    } while (0)

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) fail_msg("out of host memory (%zu bytes)", bytes);
    return p;
}

static float *fvec(int64_t n)
{
    return (float *)xmalloc((size_t)n * sizeof(float));
}

/* Device buffer of `bytes` holding `host` (or poison when host is NULL). */
static void *dput(backend *b, const void *host, size_t bytes)
{
    void *p = NULL;
    size_t alloc_bytes = bytes ? bytes : 4;
    OK(b->ops->alloc(b->dev, alloc_bytes, &p));
    if (host) {
        if (bytes) OK(b->ops->upload(b->dev, p, host, bytes));
    } else {
        void *poison = xmalloc(alloc_bytes);
        memset(poison, 0xFF, alloc_bytes);
        OK(b->ops->upload(b->dev, p, poison, alloc_bytes));
        OK(b->ops->synchronize(b->dev)); /* the staging buffer is freed next */
        free(poison);
    }
    return p;
}

static void dget(backend *b, void *host, const void *dptr, size_t bytes)
{
    if (bytes) OK(b->ops->download(b->dev, host, dptr, bytes));
}

static void dfree(backend *b, void *p)
{
    b->ops->free(b->dev, p);
}

/* Reports (once per op and backend) that the CPU lacks an op. */
static int cpu_missing(const char *op, const void *fn)
{
    if (fn) return 0;
    print_message("  [cpu backend has no %s yet: CUDA checked against the reference only]\n",
                  op);
    return 1;
}

/* An op's status on the CPU: OK -> compare; UNSUPPORTED -> skip the
 * comparison; anything else is a failure. */
static int cpu_ran(const char *op, csnn_status st)
{
    if (st == CSNN_OK) return 1;
    if (st == CSNN_ERR_UNSUPPORTED) {
        print_message("  [cpu backend: %s unsupported: %s]\n", op, csnn_last_error_message());
        return 0;
    }
    fail_msg("cpu %s failed: %s: %s", op, csnn_status_name(st), csnn_last_error_message());
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Random data and comparisons                                               */
/* ------------------------------------------------------------------------ */

static uint64_t g_rng = 12345;

static double urand(void)
{
    return (double)(csnn__splitmix64(&g_rng) >> 11) * (1.0 / 9007199254740992.0);
}

static void fill_uniform(float *x, int64_t n, double lo, double hi)
{
    for (int64_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * urand());
}

static void fill_spikes(float *x, int64_t n, double p1)
{
    for (int64_t i = 0; i < n; i++) x[i] = urand() < p1 ? 1.0f : 0.0f;
}

#define REL_SUM 3e-5 /* long sums in another order (gemm, conv, BN) */
#define ABS_SUM 1e-6
#define REL_EW 2e-6 /* elementwise float formulas */
#define ABS_EW 1e-7

static int g_failed; /* mismatches in the current test */

static void check_close(const char *what, const char *who, const float *got, const float *want,
                        int64_t n, double rel, double abs_tol)
{
    double maxref = 0.0;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(want[i]) && fabs(want[i]) > maxref) maxref = fabs(want[i]);
    double tol = rel * maxref + abs_tol;
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double diff = fabs((double)got[i] - (double)want[i]);
        if (!(diff <= tol)) { /* NaN never passes */
            if (bad < 5)
                print_error("%s (%s) [%lld]: got %.9g, want %.9g (tolerance %.3g)\n", what, who,
                            (long long)i, (double)got[i], (double)want[i], tol);
            bad++;
        }
    }
    if (bad) {
        print_error("%s (%s): %lld of %lld elements differ\n", what, who, (long long)bad,
                    (long long)n);
        g_failed = 1;
    }
}

static void check_exact(const char *what, const char *who, const float *got, const float *want,
                        int64_t n)
{
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0) {
            if (bad < 5)
                print_error("%s (%s) [%lld]: got %.9g, want %.9g (exact)\n", what, who,
                            (long long)i, (double)got[i], (double)want[i]);
            bad++;
        }
    }
    if (bad) {
        print_error("%s (%s): %lld of %lld elements differ\n", what, who, (long long)bad,
                    (long long)n);
        g_failed = 1;
    }
}

static void check_exact_u8(const char *what, const char *who, const uint8_t *got,
                           const uint8_t *want, int64_t n)
{
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (got[i] != want[i]) {
            if (bad < 5)
                print_error("%s (%s) [%lld]: got %u, want %u\n", what, who, (long long)i,
                            (unsigned)got[i], (unsigned)want[i]);
            bad++;
        }
    }
    if (bad) {
        print_error("%s (%s): %lld of %lld elements differ\n", what, who, (long long)bad,
                    (long long)n);
        g_failed = 1;
    }
}

#define BEGIN() g_failed = 0
#define END()                                                                                      \
    do {                                                                                           \
        if (g_failed) fail_msg("mismatches above");                                                \
    } while (0)

/* ------------------------------------------------------------------------ */
/* memory: alloc, upload, download, copy, fill                               */
/* ------------------------------------------------------------------------ */

static void test_memory(void **state)
{
    (void)state;
    BEGIN();
    backend *b = &g_gpu;
    const int64_t sizes[] = {1, 3, 255, 1000003};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int64_t n = sizes[s];
        float *h = fvec(n), *back = fvec(n), *want = fvec(n);
        fill_uniform(h, n, -3, 3);
        float *a = (float *)dput(b, h, (size_t)n * 4);
        float *c = (float *)dput(b, NULL, (size_t)n * 4);
        OK(b->ops->copy(b->dev, c, a, (size_t)n * 4));
        dget(b, back, c, (size_t)n * 4);
        check_exact("upload+copy+download", "cuda", back, h, n);
        OK(b->ops->fill(b->dev, a, -0.75f, n));
        dget(b, back, a, (size_t)n * 4);
        for (int64_t i = 0; i < n; i++) want[i] = -0.75f;
        check_exact("fill", "cuda", back, want, n);
        /* a partial fill leaves the rest alone */
        if (n > 2) {
            OK(b->ops->upload(b->dev, a, h, (size_t)n * 4));
            OK(b->ops->fill(b->dev, a + 1, 9.0f, n - 2));
            dget(b, back, a, (size_t)n * 4);
            memcpy(want, h, (size_t)n * 4);
            for (int64_t i = 1; i < n - 1; i++) want[i] = 9.0f;
            check_exact("partial fill", "cuda", back, want, n);
        }
        dfree(b, a);
        dfree(b, c);
        free(h);
        free(back);
        free(want);
    }
    /* size 0 is an error, not a crash */
    void *p = NULL;
    assert_int_not_equal(b->ops->alloc(b->dev, 0, &p), CSNN_OK);
    /* pinned host staging */
    void *pin = NULL;
    OK(b->ops->host_alloc(b->dev, 4096 * 4, &pin));
    float *pf = (float *)pin;
    for (int i = 0; i < 4096; i++) pf[i] = (float)i * 0.5f;
    float *dpin = (float *)dput(b, NULL, 4096 * 4);
    OK(b->ops->upload(b->dev, dpin, pin, 4096 * 4));
    float *back = fvec(4096);
    dget(b, back, dpin, 4096 * 4);
    check_exact("pinned upload", "cuda", back, pf, 4096);
    b->ops->host_free(b->dev, pin);
    dfree(b, dpin);
    free(back);
    char desc[256];
    OK(b->ops->describe(b->dev, desc, sizeof desc));
    print_message("  %s\n", desc);
    END();
}

/* ------------------------------------------------------------------------ */
/* gemm                                                                      */
/* ------------------------------------------------------------------------ */

typedef struct gemm_case {
    int ta, tb;
    int64_t m, n, k, lda, ldb, ldc;
    float alpha, beta;
} gemm_case;

static void ref_gemm(const gemm_case *g, const float *a, const float *b, const float *c0,
                     float *c)
{
    for (int64_t i = 0; i < g->m; i++) {
        for (int64_t j = 0; j < g->n; j++) {
            double s = 0.0;
            for (int64_t p = 0; p < g->k; p++) {
                double av = g->ta ? a[p * g->lda + i] : a[i * g->lda + p];
                double bv = g->tb ? b[j * g->ldb + p] : b[p * g->ldb + j];
                s += av * bv;
            }
            double r = (double)g->alpha * s;
            if (g->beta != 0.0f) r += (double)g->beta * c0[i * g->ldc + j];
            c[i * g->ldc + j] = (float)r;
        }
    }
}

static csnn_status gemm_on(backend *b, const gemm_case *g, const float *a, size_t a_n,
                           const float *bm, size_t b_n, const float *c0, size_t c_n, float *c)
{
    float *da = (float *)dput(b, a, a_n * 4);
    float *db = (float *)dput(b, bm, b_n * 4);
    float *dc = (float *)dput(b, g->beta != 0.0f ? c0 : NULL, c_n * 4);
    csnn_status st = b->ops->gemm(b->dev, g->ta, g->tb, g->m, g->n, g->k, g->alpha, da, g->lda,
                                  db, g->ldb, g->beta, dc, g->ldc);
    if (st == CSNN_OK) dget(b, c, dc, c_n * 4);
    dfree(b, da);
    dfree(b, db);
    dfree(b, dc);
    return st;
}

static void test_gemm(void **state)
{
    (void)state;
    BEGIN();
    const int64_t shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {33, 17, 129}, {64, 70, 1},
                                 {65, 130, 257}, {3, 1152, 64}};
    int cpu_has = !cpu_missing("gemm", (const void *)g_cpu.ops->gemm);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (int t = 0; t < 4; t++) {
            for (int bsel = 0; bsel < 2; bsel++) {
                gemm_case g;
                g.ta = t & 1;
                g.tb = (t >> 1) & 1;
                g.m = shapes[s][0];
                g.n = shapes[s][1];
                g.k = shapes[s][2];
                int pad = (int)(s % 3); /* leading dimensions above the minimum */
                g.lda = (g.ta ? g.m : g.k) + pad;
                g.ldb = (g.tb ? g.k : g.n) + pad;
                g.ldc = g.n + pad;
                g.alpha = bsel ? 0.5f : 1.0f;
                g.beta = bsel ? 0.75f : 0.0f;
                size_t a_n = (size_t)((g.ta ? g.k : g.m) * g.lda);
                size_t b_n = (size_t)((g.tb ? g.n : g.k) * g.ldb);
                size_t c_n = (size_t)(g.m * g.ldc);
                float *a = fvec((int64_t)a_n), *bm = fvec((int64_t)b_n), *c0 = fvec((int64_t)c_n);
                float *want = fvec((int64_t)c_n), *got = fvec((int64_t)c_n),
                      *cpu = fvec((int64_t)c_n);
                fill_uniform(a, (int64_t)a_n, -1, 1);
                fill_uniform(bm, (int64_t)b_n, -1, 1);
                fill_uniform(c0, (int64_t)c_n, -1, 1);
                /* padding columns of C keep c0 when beta != 0; with beta == 0
                 * they are poison on the device: compare only the m x n part */
                ref_gemm(&g, a, bm, c0, want);
                OK(gemm_on(&g_gpu, &g, a, a_n, bm, b_n, c0, c_n, got));
                char what[96];
                snprintf(what, sizeof what, "gemm %lldx%lldx%lld ta%d tb%d beta %g",
                         (long long)g.m, (long long)g.n, (long long)g.k, g.ta, g.tb,
                         (double)g.beta);
                for (int64_t i = 0; i < g.m; i++)
                    check_close(what, "cuda vs ref", got + i * g.ldc, want + i * g.ldc, g.n,
                                REL_SUM, ABS_SUM);
                if (cpu_has &&
                    cpu_ran("gemm", gemm_on(&g_cpu, &g, a, a_n, bm, b_n, c0, c_n, cpu)))
                    for (int64_t i = 0; i < g.m; i++)
                        check_close(what, "cuda vs cpu", got + i * g.ldc, cpu + i * g.ldc, g.n,
                                    REL_SUM, ABS_SUM);
                free(a);
                free(bm);
                free(c0);
                free(want);
                free(got);
                free(cpu);
            }
        }
    }
    /* k == 0: C = beta C */
    {
        gemm_case g = {0, 0, 5, 6, 0, 1, 6, 6, 1.0f, 0.5f};
        float c0[30], got[30], want[30], dummy[6] = {0};
        fill_uniform(c0, 30, -1, 1);
        for (int i = 0; i < 30; i++) want[i] = 0.5f * c0[i];
        OK(gemm_on(&g_gpu, &g, dummy, 1, dummy, 6, c0, 30, got));
        check_close("gemm k=0", "cuda vs ref", got, want, 30, REL_EW, ABS_EW);
    }
    END();
}

/* ------------------------------------------------------------------------ */
/* bias_add, bias_grad, axpby, reduce                                        */
/* ------------------------------------------------------------------------ */

static const int64_t bias_shapes[][3] = {{3, 5, 7}, {2, 4, 1}, {64, 1152, 1}, {1, 3, 100},
                                         {4, 7, 33 * 33}, {5000, 3, 1}};

static void test_bias(void **state)
{
    (void)state;
    BEGIN();
    int cpu_add = !cpu_missing("bias_add", (const void *)g_cpu.ops->bias_add);
    int cpu_grad = !cpu_missing("bias_grad", (const void *)g_cpu.ops->bias_grad);
    for (size_t s = 0; s < sizeof bias_shapes / sizeof bias_shapes[0]; s++) {
        int64_t outer = bias_shapes[s][0], ch = bias_shapes[s][1], inner = bias_shapes[s][2];
        int64_t n = outer * ch * inner;
        float *y0 = fvec(n), *bias = fvec(ch), *want = fvec(n), *got = fvec(n), *cpu = fvec(n);
        float *gwant = fvec(ch), *ggot = fvec(ch), *gcpu = fvec(ch);
        fill_uniform(y0, n, -2, 2);
        fill_uniform(bias, ch, -1, 1);
        for (int64_t i = 0; i < n; i++) want[i] = y0[i] + bias[(i / inner) % ch];
        for (int64_t c = 0; c < ch; c++) {
            double acc = 0;
            for (int64_t o = 0; o < outer; o++)
                for (int64_t i = 0; i < inner; i++) acc += y0[(o * ch + c) * inner + i];
            gwant[c] = (float)acc;
        }
        char what[64];
        snprintf(what, sizeof what, "bias %lldx%lldx%lld", (long long)outer, (long long)ch,
                 (long long)inner);
        backend *bes[2] = {&g_gpu, &g_cpu};
        for (int k = 0; k < 2; k++) {
            backend *b = bes[k];
            if (k == 1 && !cpu_add && !cpu_grad) break;
            float *out = k ? cpu : got, *gout = k ? gcpu : ggot;
            float *dy = (float *)dput(b, y0, (size_t)n * 4);
            float *db = (float *)dput(b, bias, (size_t)ch * 4);
            float *dg = (float *)dput(b, NULL, (size_t)ch * 4);
            csnn_status st;
            /* bias_grad first: it reads y0, which bias_add then changes */
            if (k == 0 || cpu_grad) {
                st = b->ops->bias_grad(b->dev, dy, dg, outer, ch, inner);
                if (k == 0) {
                    OK(st);
                    dget(b, gout, dg, (size_t)ch * 4);
                    check_close(what, "bias_grad cuda vs ref", gout, gwant, ch, REL_SUM, ABS_SUM);
                } else if (cpu_ran("bias_grad", st)) {
                    dget(b, gout, dg, (size_t)ch * 4);
                    check_close(what, "bias_grad cuda vs cpu", ggot, gout, ch, REL_SUM, ABS_SUM);
                }
            }
            if (k == 0 || cpu_add) {
                st = b->ops->bias_add(b->dev, dy, db, outer, ch, inner);
                if (k == 0) {
                    OK(st);
                    dget(b, out, dy, (size_t)n * 4);
                    check_close(what, "bias_add cuda vs ref", out, want, n, REL_EW, ABS_EW);
                } else if (cpu_ran("bias_add", st)) {
                    dget(b, out, dy, (size_t)n * 4);
                    check_close(what, "bias_add cuda vs cpu", got, out, n, REL_EW, ABS_EW);
                }
            }
            dfree(b, dy);
            dfree(b, db);
            dfree(b, dg);
        }
        free(y0);
        free(bias);
        free(want);
        free(got);
        free(cpu);
        free(gwant);
        free(ggot);
        free(gcpu);
    }
    END();
}

static void test_axpby(void **state)
{
    (void)state;
    BEGIN();
    const int64_t sizes[] = {1, 1000, 100003};
    const float bs[] = {0.0f, 0.7f};
    int cpu_has = !cpu_missing("axpby", (const void *)g_cpu.ops->axpby);
    for (size_t s = 0; s < 3; s++) {
        for (int bi = 0; bi < 2; bi++) {
            int64_t n = sizes[s];
            float a = -1.25f, bcoef = bs[bi];
            float *x = fvec(n), *y0 = fvec(n), *want = fvec(n), *got = fvec(n), *cpu = fvec(n);
            fill_uniform(x, n, -1, 1);
            fill_uniform(y0, n, -1, 1);
            for (int64_t i = 0; i < n; i++)
                want[i] = bcoef == 0.0f ? a * x[i] : a * x[i] + bcoef * y0[i];
            backend *bes[2] = {&g_gpu, &g_cpu};
            for (int k = 0; k < 2; k++) {
                backend *b = bes[k];
                if (k == 1 && !cpu_has) break;
                float *dx = (float *)dput(b, x, (size_t)n * 4);
                /* with b == 0, y is not read: poison it */
                float *dy = (float *)dput(b, bcoef == 0.0f ? NULL : y0, (size_t)n * 4);
                csnn_status st = b->ops->axpby(b->dev, n, a, dx, bcoef, dy);
                if (k == 0) OK(st);
                if (k == 0 || cpu_ran("axpby", st)) dget(b, k ? cpu : got, dy, (size_t)n * 4);
                if (k == 0)
                    check_close("axpby", "cuda vs ref", got, want, n, REL_EW, ABS_EW);
                else if (st == CSNN_OK)
                    check_close("axpby", "cuda vs cpu", got, cpu, n, REL_EW, ABS_EW);
                dfree(b, dx);
                dfree(b, dy);
            }
            free(x);
            free(y0);
            free(want);
            free(got);
            free(cpu);
        }
    }
    END();
}

static void test_reduce(void **state)
{
    (void)state;
    BEGIN();
    const int64_t sizes[] = {1, 1000, (1 << 20) + 3, 5000000};
    int cpu_has = !cpu_missing("reduce", (const void *)g_cpu.ops->reduce);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int64_t n = sizes[s];
        float *x = fvec(n);
        fill_uniform(x, n, -1, 1.5);
        for (int64_t i = 0; i < n; i += 7) x[i] = 0.0f;
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1) { /* non-finite values for the count */
                if (n > 10) {
                    x[3] = INFINITY;
                    x[n - 1] = NAN;
                    x[n / 2] = -INFINITY;
                } else {
                    x[0] = NAN;
                }
            }
            for (int kind = 0; kind < 4; kind++) {
                if (pass == 1 && kind != CSNN_REDUCE_COUNT_NONFINITE &&
                    kind != CSNN_REDUCE_COUNT_NONZERO)
                    continue;
                double want = 0.0, absum = 0.0;
                for (int64_t i = 0; i < n; i++) {
                    double v = x[i];
                    switch (kind) {
                    case CSNN_REDUCE_SUM: want += v; absum += fabs(v); break;
                    case CSNN_REDUCE_SUM_SQUARES: want += v * v; absum += v * v; break;
                    case CSNN_REDUCE_COUNT_NONZERO: want += x[i] != 0.0f; break;
                    default: want += !isfinite(x[i]); break;
                    }
                }
                double tol = 1e-9 * absum + 1e-12; /* double sums, another order */
                backend *bes[2] = {&g_gpu, &g_cpu};
                for (int k = 0; k < 2; k++) {
                    backend *b = bes[k];
                    if (k == 1 && !cpu_has) break;
                    float *dx = (float *)dput(b, x, (size_t)n * 4);
                    double got = -12345.0;
                    csnn_status st = b->ops->reduce(b->dev, kind, dx, n, &got);
                    if (k == 0) OK(st);
                    if (k == 0 || cpu_ran("reduce", st)) {
                        if (!(fabs(got - want) <= tol)) {
                            print_error("reduce kind %d n %lld (%s): got %.17g want %.17g\n", kind,
                                        (long long)n, b->label, got, want);
                            g_failed = 1;
                        }
                    }
                    dfree(b, dx);
                }
            }
        }
        free(x);
    }
    END();
}

/* ------------------------------------------------------------------------ */
/* convolution                                                               */
/* ------------------------------------------------------------------------ */

static int64_t conv_xn(const csnn_conv2d_desc *c)
{
    return (int64_t)c->n * c->c_in * c->h_in * c->w_in;
}
static int64_t conv_yn(const csnn_conv2d_desc *c)
{
    return (int64_t)c->n * c->c_out * c->h_out * c->w_out;
}
static int64_t conv_wn(const csnn_conv2d_desc *c)
{
    return (int64_t)c->c_out * c->c_in * c->kh * c->kw;
}

static void ref_conv(const csnn_conv2d_desc *c, const float *x, const float *w, const float *b,
                     const float *dy, float *y, float *dx, float *dw, float *db)
{
    int64_t xn = conv_xn(c), wn = conv_wn(c);
    double *dxd = (double *)xmalloc((size_t)xn * sizeof(double));
    double *dwd = (double *)xmalloc((size_t)wn * sizeof(double));
    double *dbd = (double *)xmalloc((size_t)c->c_out * sizeof(double));
    memset(dxd, 0, (size_t)xn * sizeof(double));
    memset(dwd, 0, (size_t)wn * sizeof(double));
    memset(dbd, 0, (size_t)c->c_out * sizeof(double));
    for (int n = 0; n < c->n; n++)
        for (int co = 0; co < c->c_out; co++)
            for (int oy = 0; oy < c->h_out; oy++)
                for (int ox = 0; ox < c->w_out; ox++) {
                    int64_t yi = (((int64_t)n * c->c_out + co) * c->h_out + oy) * c->w_out + ox;
                    double s = c->has_bias ? b[co] : 0.0;
                    double g = dy[yi];
                    dbd[co] += g;
                    for (int ci = 0; ci < c->c_in; ci++)
                        for (int ky = 0; ky < c->kh; ky++)
                            for (int kx = 0; kx < c->kw; kx++) {
                                int iy = oy * c->stride_h - c->pad_h + ky;
                                int ix = ox * c->stride_w - c->pad_w + kx;
                                if (iy < 0 || iy >= c->h_in || ix < 0 || ix >= c->w_in) continue;
                                int64_t xi =
                                    (((int64_t)n * c->c_in + ci) * c->h_in + iy) * c->w_in + ix;
                                int64_t wi = (((int64_t)co * c->c_in + ci) * c->kh + ky) * c->kw + kx;
                                s += (double)w[wi] * x[xi];
                                dxd[xi] += (double)w[wi] * g;
                                dwd[wi] += (double)x[xi] * g;
                            }
                    y[yi] = (float)s;
                }
    for (int64_t i = 0; i < xn; i++) dx[i] = (float)dxd[i];
    for (int64_t i = 0; i < wn; i++) dw[i] = (float)dwd[i];
    for (int i = 0; i < c->c_out; i++) db[i] = (float)dbd[i];
    free(dxd);
    free(dwd);
    free(dbd);
}

/* forward + backward on one backend; with want_dx == 0 dx is passed NULL */
static csnn_status conv_on(backend *b, const csnn_conv2d_desc *c, const float *x, const float *w,
                           const float *bias, const float *dy, float *y, float *dx, float *dw,
                           float *db, int want_dx)
{
    size_t ws = 0;
    csnn_status st = b->ops->conv2d_workspace(b->dev, c, &ws);
    if (st != CSNN_OK) return st;
    int64_t xn = conv_xn(c), yn = conv_yn(c), wn = conv_wn(c);
    float *d_x = (float *)dput(b, x, (size_t)xn * 4);
    float *d_w = (float *)dput(b, w, (size_t)wn * 4);
    float *d_b = (float *)dput(b, bias, (size_t)c->c_out * 4);
    float *d_dy = (float *)dput(b, dy, (size_t)yn * 4);
    float *d_y = (float *)dput(b, NULL, (size_t)yn * 4);
    float *d_dx = (float *)dput(b, NULL, (size_t)xn * 4);
    float *d_dw = (float *)dput(b, NULL, (size_t)wn * 4);
    float *d_db = (float *)dput(b, NULL, (size_t)c->c_out * 4);
    void *d_ws = dput(b, NULL, ws ? ws : 4);
    st = b->ops->conv2d_forward(b->dev, c, d_x, d_w, c->has_bias ? d_b : NULL, d_y, d_ws);
    if (st == CSNN_OK)
        st = b->ops->conv2d_backward(b->dev, c, d_x, d_w, d_dy, want_dx ? d_dx : NULL, d_dw,
                                     c->has_bias ? d_db : NULL, d_ws);
    if (st == CSNN_OK) {
        dget(b, y, d_y, (size_t)yn * 4);
        if (want_dx) dget(b, dx, d_dx, (size_t)xn * 4);
        dget(b, dw, d_dw, (size_t)wn * 4);
        if (c->has_bias) dget(b, db, d_db, (size_t)c->c_out * 4);
    }
    dfree(b, d_x);
    dfree(b, d_w);
    dfree(b, d_b);
    dfree(b, d_dy);
    dfree(b, d_y);
    dfree(b, d_dx);
    dfree(b, d_dw);
    dfree(b, d_db);
    dfree(b, d_ws);
    return st;
}

static csnn_conv2d_desc conv_desc(int n, int ci, int h, int w, int co, int kh, int kw, int sh,
                                  int sw, int ph, int pw, int bias)
{
    csnn_conv2d_desc c;
    memset(&c, 0, sizeof c);
    c.n = n;
    c.c_in = ci;
    c.h_in = h;
    c.w_in = w;
    c.c_out = co;
    c.kh = kh;
    c.kw = kw;
    c.stride_h = sh;
    c.stride_w = sw;
    c.pad_h = ph;
    c.pad_w = pw;
    c.h_out = (h + 2 * ph - kh) / sh + 1;
    c.w_out = (w + 2 * pw - kw) / sw + 1;
    c.has_bias = bias;
    return c;
}

static void test_conv(void **state)
{
    (void)state;
    BEGIN();
    csnn_conv2d_desc cases[] = {
        conv_desc(3, 1, 8, 8, 4, 3, 3, 1, 1, 1, 1, 1),     /* csnn_small conv1 */
        conv_desc(12, 4, 4, 4, 4, 3, 3, 1, 1, 1, 1, 1),    /* csnn_small conv2 (T*N) */
        conv_desc(2, 3, 7, 5, 4, 3, 3, 1, 1, 1, 1, 0),     /* odd sizes, no bias */
        conv_desc(5, 5, 9, 11, 6, 3, 2, 2, 1, 1, 0, 1),    /* rectangular kernel, strides */
        conv_desc(4, 6, 10, 10, 3, 2, 2, 2, 2, 0, 0, 1),   /* k2 s2 (no overlap) */
        conv_desc(3, 7, 6, 5, 5, 1, 1, 1, 1, 0, 0, 1),     /* 1x1 */
        conv_desc(2, 2, 5, 5, 3, 5, 5, 3, 3, 2, 2, 1),     /* big pad, stride 3 */
        conv_desc(1, 3, 1, 1, 2, 3, 3, 1, 1, 1, 1, 1),     /* 1x1 image, padded */
        conv_desc(8, 16, 24, 24, 32, 3, 3, 1, 1, 1, 1, 1), /* a bigger one */
    };
    int cpu_has = !cpu_missing("conv2d_*", (const void *)g_cpu.ops->conv2d_forward);
    for (size_t s = 0; s < sizeof cases / sizeof cases[0]; s++) {
        const csnn_conv2d_desc *c = &cases[s];
        int64_t xn = conv_xn(c), yn = conv_yn(c), wn = conv_wn(c);
        float *x = fvec(xn), *w = fvec(wn), *bias = fvec(c->c_out), *dy = fvec(yn);
        fill_uniform(x, xn, -1, 1);
        if (s == 1) fill_spikes(x, xn, 0.3); /* spiking input */
        fill_uniform(w, wn, -0.5, 0.5);
        fill_uniform(bias, c->c_out, -0.2, 0.2);
        fill_uniform(dy, yn, -1, 1);
        float *ry = fvec(yn), *rdx = fvec(xn), *rdw = fvec(wn), *rdb = fvec(c->c_out);
        ref_conv(c, x, w, bias, dy, ry, rdx, rdw, rdb);
        char what[128];
        snprintf(what, sizeof what, "conv n%d %dx%dx%d -> %dx%dx%d k%dx%d s%dx%d p%dx%d b%d",
                 c->n, c->c_in, c->h_in, c->w_in, c->c_out, c->h_out, c->w_out, c->kh, c->kw,
                 c->stride_h, c->stride_w, c->pad_h, c->pad_w, c->has_bias);
        backend *bes[3] = {&g_gpu, &g_gpu_small, &g_cpu};
        float *gy = fvec(yn), *gdx = fvec(xn), *gdw = fvec(wn), *gdb = fvec(c->c_out);
        for (int k = 0; k < 3; k++) {
            backend *b = bes[k];
            if (k == 2 && !cpu_has) break;
            for (int want_dx = 1; want_dx >= 0; want_dx--) {
                if (k != 0 && !want_dx) continue;
                float *y = fvec(yn), *dx = fvec(xn), *dw = fvec(wn), *db = fvec(c->c_out);
                csnn_status st = conv_on(b, c, x, w, bias, dy, y, dx, dw, db, want_dx);
                if (k < 2) OK(st);
                if (k < 2 || cpu_ran("conv2d", st)) {
                    char who[80];
                    snprintf(who, sizeof who, "%s vs %s", b->label, k < 2 ? "ref" : "cuda");
                    const float *wy = k < 2 ? ry : gy, *wdx = k < 2 ? rdx : gdx,
                                *wdw = k < 2 ? rdw : gdw, *wdb = k < 2 ? rdb : gdb;
                    check_close(what, who, y, wy, yn, REL_SUM, ABS_SUM);
                    if (want_dx) check_close(what, "dx", dx, wdx, xn, REL_SUM, ABS_SUM);
                    check_close(what, "dw", dw, wdw, wn, REL_SUM, ABS_SUM);
                    if (c->has_bias) check_close(what, "db", db, wdb, c->c_out, REL_SUM, ABS_SUM);
                    if (k == 0 && want_dx) {
                        memcpy(gy, y, (size_t)yn * 4);
                        memcpy(gdx, dx, (size_t)xn * 4);
                        memcpy(gdw, dw, (size_t)wn * 4);
                        memcpy(gdb, db, (size_t)c->c_out * 4);
                    }
                }
                free(y);
                free(dx);
                free(dw);
                free(db);
            }
        }
        free(gy);
        free(gdx);
        free(gdw);
        free(gdb);
        free(x);
        free(w);
        free(bias);
        free(dy);
        free(ry);
        free(rdx);
        free(rdw);
        free(rdb);
    }
    /* a shape mismatch is an error, not a crash */
    csnn_conv2d_desc bad = conv_desc(1, 1, 8, 8, 1, 3, 3, 1, 1, 1, 1, 0);
    bad.h_out = 9;
    size_t ws;
    assert_int_not_equal(g_gpu.ops->conv2d_workspace(g_gpu.dev, &bad, &ws), CSNN_OK);
    END();
}

/* ------------------------------------------------------------------------ */
/* batch normalisation                                                       */
/* ------------------------------------------------------------------------ */

typedef struct bn_out {
    float *y, *mean, *invstd, *rm, *rv, *yi, *dx, *dg, *dbeta;
} bn_out;

static void bn_out_alloc(bn_out *o, int64_t n, int64_t c)
{
    o->y = fvec(n);
    o->yi = fvec(n);
    o->dx = fvec(n);
    o->mean = fvec(c);
    o->invstd = fvec(c);
    o->rm = fvec(c);
    o->rv = fvec(c);
    o->dg = fvec(c);
    o->dbeta = fvec(c);
}

static void bn_out_free(bn_out *o)
{
    free(o->y);
    free(o->yi);
    free(o->dx);
    free(o->mean);
    free(o->invstd);
    free(o->rm);
    free(o->rv);
    free(o->dg);
    free(o->dbeta);
}

static void ref_bn(const csnn_bn_desc *d, const float *x, const float *g, const float *bt,
                   const float *rm0, const float *rv0, const float *dy, bn_out *o)
{
    int64_t M = (int64_t)d->n * d->hw;
    for (int c = 0; c < d->c; c++) {
        double s = 0, sq = 0;
        for (int n = 0; n < d->n; n++)
            for (int64_t i = 0; i < d->hw; i++) s += x[((int64_t)n * d->c + c) * d->hw + i];
        double mean = s / (double)M;
        for (int n = 0; n < d->n; n++)
            for (int64_t i = 0; i < d->hw; i++) {
                double v = x[((int64_t)n * d->c + c) * d->hw + i] - mean;
                sq += v * v;
            }
        double var = sq / (double)M;
        double invstd = 1.0 / sqrt(var + (double)d->eps);
        o->mean[c] = (float)mean;
        o->invstd[c] = (float)invstd;
        o->rm[c] = (float)((1.0 - d->momentum) * rm0[c] + d->momentum * mean);
        o->rv[c] = (float)((1.0 - d->momentum) * rv0[c] +
                           d->momentum * var * (double)M / (double)(M - 1));
        double is_run = 1.0 / sqrt((double)rv0[c] + d->eps);
        double sdy = 0, sdyx = 0;
        for (int n = 0; n < d->n; n++)
            for (int64_t i = 0; i < d->hw; i++) {
                int64_t k = ((int64_t)n * d->c + c) * d->hw + i;
                o->y[k] = (float)((x[k] - mean) * invstd * g[c] + bt[c]);
                o->yi[k] = (float)((x[k] - rm0[c]) * is_run * g[c] + bt[c]);
                sdy += dy[k];
                sdyx += dy[k] * (x[k] - mean);
            }
        o->dg[c] = (float)(sdyx * invstd);
        o->dbeta[c] = (float)sdy;
        for (int n = 0; n < d->n; n++)
            for (int64_t i = 0; i < d->hw; i++) {
                int64_t k = ((int64_t)n * d->c + c) * d->hw + i;
                o->dx[k] = (float)((dy[k] - sdy / M - (x[k] - mean) * sdyx * invstd * invstd / M) *
                                   invstd * g[c]);
            }
    }
}

static csnn_status bn_on(backend *b, const csnn_bn_desc *d, const float *x, const float *g,
                         const float *bt, const float *rm0, const float *rv0, const float *dy,
                         bn_out *o)
{
    int64_t n = (int64_t)d->n * d->c * d->hw, c = d->c;
    float *dxin = (float *)dput(b, x, (size_t)n * 4), *dg = (float *)dput(b, g, (size_t)c * 4);
    float *dbt = (float *)dput(b, bt, (size_t)c * 4), *drm = (float *)dput(b, rm0, (size_t)c * 4);
    float *drv = (float *)dput(b, rv0, (size_t)c * 4), *ddy = (float *)dput(b, dy, (size_t)n * 4);
    float *dy_ = (float *)dput(b, NULL, (size_t)n * 4), *dyi = (float *)dput(b, NULL, (size_t)n * 4);
    float *ddx = (float *)dput(b, NULL, (size_t)n * 4);
    float *dmean = (float *)dput(b, NULL, (size_t)c * 4), *dinv = (float *)dput(b, NULL, (size_t)c * 4);
    float *ddg = (float *)dput(b, NULL, (size_t)c * 4), *ddb = (float *)dput(b, NULL, (size_t)c * 4);
    float *drm_in = (float *)dput(b, rm0, (size_t)c * 4), *drv_in = (float *)dput(b, rv0, (size_t)c * 4);
    csnn_status st = b->ops->bn_forward_infer(b->dev, d, dxin, dg, dbt, drm_in, drv_in, dyi);
    if (st == CSNN_OK)
        st = b->ops->bn_forward_train(b->dev, d, dxin, dg, dbt, dy_, dmean, dinv, drm, drv);
    if (st == CSNN_OK)
        st = b->ops->bn_backward(b->dev, d, dxin, ddy, dg, dmean, dinv, ddx, ddg, ddb);
    if (st == CSNN_OK) {
        dget(b, o->y, dy_, (size_t)n * 4);
        dget(b, o->yi, dyi, (size_t)n * 4);
        dget(b, o->dx, ddx, (size_t)n * 4);
        dget(b, o->mean, dmean, (size_t)c * 4);
        dget(b, o->invstd, dinv, (size_t)c * 4);
        dget(b, o->rm, drm, (size_t)c * 4);
        dget(b, o->rv, drv, (size_t)c * 4);
        dget(b, o->dg, ddg, (size_t)c * 4);
        dget(b, o->dbeta, ddb, (size_t)c * 4);
    }
    void *all[] = {dxin, dg, dbt, drm, drv, ddy, dy_, dyi, ddx, dmean, dinv, ddg, ddb, drm_in, drv_in};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) dfree(b, all[i]);
    return st;
}

static void bn_compare(const char *what, const char *who, const csnn_bn_desc *d, const bn_out *got,
                       const bn_out *want)
{
    int64_t n = (int64_t)d->n * d->c * d->hw;
    char w2[160];
    snprintf(w2, sizeof w2, "%s y", what);
    check_close(w2, who, got->y, want->y, n, REL_SUM, ABS_SUM);
    snprintf(w2, sizeof w2, "%s y(infer)", what);
    check_close(w2, who, got->yi, want->yi, n, REL_SUM, ABS_SUM);
    snprintf(w2, sizeof w2, "%s save_mean", what);
    check_close(w2, who, got->mean, want->mean, d->c, REL_SUM, ABS_SUM);
    snprintf(w2, sizeof w2, "%s save_invstd", what);
    check_close(w2, who, got->invstd, want->invstd, d->c, REL_SUM, ABS_SUM);
    snprintf(w2, sizeof w2, "%s running_mean", what);
    check_close(w2, who, got->rm, want->rm, d->c, REL_SUM, ABS_SUM);
    snprintf(w2, sizeof w2, "%s running_var", what);
    check_close(w2, who, got->rv, want->rv, d->c, REL_SUM, ABS_SUM);
    snprintf(w2, sizeof w2, "%s dx", what);
    check_close(w2, who, got->dx, want->dx, n, REL_SUM, ABS_SUM);
    snprintf(w2, sizeof w2, "%s dgamma", what);
    check_close(w2, who, got->dg, want->dg, d->c, REL_SUM, ABS_SUM);
    snprintf(w2, sizeof w2, "%s dbeta", what);
    check_close(w2, who, got->dbeta, want->dbeta, d->c, REL_SUM, ABS_SUM);
}

static void test_bn(void **state)
{
    (void)state;
    BEGIN();
    /* (M = 2 values per channel is ill-conditioned for dx: the exact
     * gradient is ~eps/var, all rounding; M = 3 is the smallest used) */
    const int64_t shapes[][3] = {{3, 4, 64}, {12, 4, 16}, {5, 3, 1}, {2, 7, 33}, {64, 16, 576},
                                 {1, 2, 3}};
    int cpu_has = !cpu_missing("bn_*", (const void *)g_cpu.ops->bn_forward_train);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        csnn_bn_desc d;
        memset(&d, 0, sizeof d);
        d.n = (int32_t)shapes[s][0];
        d.c = (int32_t)shapes[s][1];
        d.hw = shapes[s][2];
        d.eps = 1e-5f;
        d.momentum = 0.1f;
        int64_t n = (int64_t)d.n * d.c * d.hw;
        float *x = fvec(n), *dy = fvec(n), *g = fvec(d.c), *bt = fvec(d.c), *rm = fvec(d.c),
              *rv = fvec(d.c);
        fill_uniform(x, n, -1, 3); /* a mean far from 0 */
        fill_uniform(dy, n, -1, 1);
        fill_uniform(g, d.c, 0.5, 1.5);
        fill_uniform(bt, d.c, -0.5, 0.5);
        fill_uniform(rm, d.c, -0.2, 0.2);
        fill_uniform(rv, d.c, 0.5, 2);
        bn_out want, got, cpu;
        bn_out_alloc(&want, n, d.c);
        bn_out_alloc(&got, n, d.c);
        bn_out_alloc(&cpu, n, d.c);
        ref_bn(&d, x, g, bt, rm, rv, dy, &want);
        char what[64];
        snprintf(what, sizeof what, "bn %dx%dx%lld", d.n, d.c, (long long)d.hw);
        OK(bn_on(&g_gpu, &d, x, g, bt, rm, rv, dy, &got));
        bn_compare(what, "cuda vs ref", &d, &got, &want);
        if (cpu_has && cpu_ran("bn", bn_on(&g_cpu, &d, x, g, bt, rm, rv, dy, &cpu)))
            bn_compare(what, "cuda vs cpu", &d, &got, &cpu);
        bn_out_free(&want);
        bn_out_free(&got);
        bn_out_free(&cpu);
        free(x);
        free(dy);
        free(g);
        free(bt);
        free(rm);
        free(rv);
    }
    END();
}

/* ------------------------------------------------------------------------ */
/* max pooling                                                               */
/* ------------------------------------------------------------------------ */

static void ref_pool(const csnn_pool_desc *p, const float *x, const float *dy, float *y,
                     uint8_t *arg, float *dx)
{
    int64_t in_n = p->planes * p->h_in * p->w_in;
    for (int64_t i = 0; i < in_n; i++) dx[i] = 0.0f;
    for (int64_t pl = 0; pl < p->planes; pl++)
        for (int oy = 0; oy < p->h_out; oy++)
            for (int ox = 0; ox < p->w_out; ox++) {
                const float *xp = x + pl * p->h_in * p->w_in;
                float best = xp[(oy * p->stride) * p->w_in + ox * p->stride];
                int a = 0;
                for (int ky = 0; ky < p->k; ky++)
                    for (int kx = 0; kx < p->k; kx++) {
                        float v = xp[(oy * p->stride + ky) * p->w_in + ox * p->stride + kx];
                        if (v > best) {
                            best = v;
                            a = ky * p->k + kx;
                        }
                    }
                int64_t o = (pl * p->h_out + oy) * p->w_out + ox;
                y[o] = best;
                arg[o] = (uint8_t)a;
                int iy = oy * p->stride + a / p->k, ix = ox * p->stride + a % p->k;
                dx[pl * p->h_in * p->w_in + (int64_t)iy * p->w_in + ix] += dy[o];
            }
}

static csnn_status pool_on(backend *b, const csnn_pool_desc *p, const float *x, const float *dy,
                           float *y, uint8_t *arg, float *dx)
{
    int64_t in_n = p->planes * p->h_in * p->w_in, out_n = p->planes * p->h_out * p->w_out;
    float *d_x = (float *)dput(b, x, (size_t)in_n * 4), *d_dy = (float *)dput(b, dy, (size_t)out_n * 4);
    float *d_y = (float *)dput(b, NULL, (size_t)out_n * 4), *d_dx = (float *)dput(b, NULL, (size_t)in_n * 4);
    uint8_t *d_a = (uint8_t *)dput(b, NULL, (size_t)out_n);
    float *d_y2 = (float *)dput(b, NULL, (size_t)out_n * 4);
    csnn_status st = b->ops->maxpool_forward(b->dev, p, d_x, d_y, d_a);
    if (st == CSNN_OK) st = b->ops->maxpool_backward(b->dev, p, d_dy, d_a, d_dx);
    /* argmax may be NULL in inference */
    if (st == CSNN_OK) st = b->ops->maxpool_forward(b->dev, p, d_x, d_y2, NULL);
    if (st == CSNN_OK) {
        float *y2 = fvec(out_n);
        dget(b, y, d_y, (size_t)out_n * 4);
        dget(b, y2, d_y2, (size_t)out_n * 4);
        check_exact("maxpool y without argmax", b->label, y2, y, out_n);
        free(y2);
        dget(b, arg, d_a, (size_t)out_n);
        dget(b, dx, d_dx, (size_t)in_n * 4);
    }
    dfree(b, d_x);
    dfree(b, d_dy);
    dfree(b, d_y);
    dfree(b, d_dx);
    dfree(b, d_a);
    dfree(b, d_y2);
    return st;
}

static void test_maxpool(void **state)
{
    (void)state;
    BEGIN();
    /* planes, h, w, k, stride */
    const int cases[][5] = {{6, 8, 8, 2, 2},  {5, 7, 9, 3, 2},  {4, 5, 5, 2, 1}, {3, 9, 7, 2, 2},
                            {2, 48, 48, 2, 2}, {7, 4, 4, 4, 4}, {3, 16, 16, 16, 1}};
    int cpu_has = !cpu_missing("maxpool_*", (const void *)g_cpu.ops->maxpool_forward);
    for (size_t s = 0; s < sizeof cases / sizeof cases[0]; s++) {
        for (int spikes = 0; spikes < 2; spikes++) {
            csnn_pool_desc p;
            memset(&p, 0, sizeof p);
            p.planes = cases[s][0];
            p.h_in = cases[s][1];
            p.w_in = cases[s][2];
            p.k = cases[s][3];
            p.stride = cases[s][4];
            p.h_out = (p.h_in - p.k) / p.stride + 1;
            p.w_out = (p.w_in - p.k) / p.stride + 1;
            int64_t in_n = p.planes * p.h_in * p.w_in, out_n = p.planes * p.h_out * p.w_out;
            float *x = fvec(in_n), *dy = fvec(out_n);
            if (spikes)
                fill_spikes(x, in_n, 0.25); /* ties everywhere: first maximum wins */
            else
                fill_uniform(x, in_n, -1, 1);
            fill_uniform(dy, out_n, -1, 1);
            float *ry = fvec(out_n), *rdx = fvec(in_n), *gy = fvec(out_n), *gdx = fvec(in_n);
            float *cy = fvec(out_n), *cdx = fvec(in_n);
            uint8_t *ra = (uint8_t *)xmalloc((size_t)out_n), *ga = (uint8_t *)xmalloc((size_t)out_n),
                    *ca = (uint8_t *)xmalloc((size_t)out_n);
            ref_pool(&p, x, dy, ry, ra, rdx);
            char what[96];
            snprintf(what, sizeof what, "maxpool %lldx%dx%d k%d s%d %s", (long long)p.planes,
                     p.h_in, p.w_in, p.k, p.stride, spikes ? "spikes" : "random");
            OK(pool_on(&g_gpu, &p, x, dy, gy, ga, gdx));
            check_exact(what, "y cuda vs ref", gy, ry, out_n);
            check_exact_u8(what, "argmax cuda vs ref", ga, ra, out_n);
            check_close(what, "dx cuda vs ref", gdx, rdx, in_n, REL_EW, ABS_EW);
            if (cpu_has && cpu_ran("maxpool", pool_on(&g_cpu, &p, x, dy, cy, ca, cdx))) {
                check_exact(what, "y cuda vs cpu", gy, cy, out_n);
                check_exact_u8(what, "argmax cuda vs cpu", ga, ca, out_n);
                check_close(what, "dx cuda vs cpu", gdx, cdx, in_n, REL_EW, ABS_EW);
            }
            free(x);
            free(dy);
            free(ry);
            free(rdx);
            free(gy);
            free(gdx);
            free(cy);
            free(cdx);
            free(ra);
            free(ga);
            free(ca);
        }
    }
    END();
}

/* ------------------------------------------------------------------------ */
/* ReLU, dropout, mul_broadcast_t, time axis                                 */
/* ------------------------------------------------------------------------ */

typedef enum { EW_RELU_F, EW_RELU_B, EW_MUL_T, EW_T_MEAN, EW_T_MEAN_B, EW_T_REPEAT, EW_T_SUM } ew_op;

/* Runs an elementwise op: in1 [n1], in2 [n2] -> out [n_out]. */
static csnn_status ew_on(backend *b, ew_op op, int32_t steps, int64_t n, const float *in1,
                         int64_t n1, const float *in2, int64_t n2, float *out, int64_t n_out,
                         int in_place)
{
    float *d1 = (float *)dput(b, in1, (size_t)n1 * 4);
    float *d2 = in2 ? (float *)dput(b, in2, (size_t)n2 * 4) : NULL;
    float *dout = in_place ? d1 : (float *)dput(b, NULL, (size_t)n_out * 4);
    csnn_status st = CSNN_ERR_INTERNAL;
    const csnn_backend_ops *o = b->ops;
    switch (op) {
    case EW_RELU_F: st = o->relu_forward(b->dev, n, d1, dout); break;
    case EW_RELU_B: st = o->relu_backward(b->dev, n, d1, d2, dout); break;
    case EW_MUL_T: st = o->mul_broadcast_t(b->dev, steps, n, d1, d2, dout); break;
    case EW_T_MEAN: st = o->time_mean(b->dev, steps, n, d1, dout); break;
    case EW_T_MEAN_B: st = o->time_mean_backward(b->dev, steps, n, d1, dout); break;
    case EW_T_REPEAT: st = o->time_repeat(b->dev, steps, n, d1, dout); break;
    case EW_T_SUM: st = o->time_sum(b->dev, steps, n, d1, dout); break;
    }
    if (st == CSNN_OK) dget(b, out, dout, (size_t)n_out * 4);
    dfree(b, d1);
    if (d2) dfree(b, d2);
    if (!in_place) dfree(b, dout);
    return st;
}

static const void *ew_fn(const csnn_backend_ops *o, ew_op op)
{
    switch (op) {
    case EW_RELU_F: return (const void *)o->relu_forward;
    case EW_RELU_B: return (const void *)o->relu_backward;
    case EW_MUL_T: return (const void *)o->mul_broadcast_t;
    case EW_T_MEAN: return (const void *)o->time_mean;
    case EW_T_MEAN_B: return (const void *)o->time_mean_backward;
    case EW_T_REPEAT: return (const void *)o->time_repeat;
    default: return (const void *)o->time_sum;
    }
}

static void test_elementwise(void **state)
{
    (void)state;
    BEGIN();
    static const char *names[] = {"relu_forward", "relu_backward", "mul_broadcast_t",
                                  "time_mean", "time_mean_backward", "time_repeat", "time_sum"};
    const int64_t sizes[] = {1, 1001, 18432 * 3};
    const int32_t steps_list[] = {1, 4, 7};
    for (int op = EW_RELU_F; op <= EW_T_SUM; op++) {
        int cpu_has = !cpu_missing(names[op], ew_fn(g_cpu.ops, (ew_op)op));
        for (size_t si = 0; si < 3; si++) {
            for (size_t ti = 0; ti < 3; ti++) {
                int64_t n = sizes[si];
                int32_t T = steps_list[ti];
                int64_t n1, n2 = 0, n_out;
                switch (op) {
                case EW_RELU_F: n1 = n; n_out = n; break;
                case EW_RELU_B: n1 = n; n2 = n; n_out = n; break;
                case EW_MUL_T: n1 = T * n; n2 = n; n_out = T * n; break;
                case EW_T_MEAN: case EW_T_SUM: n1 = T * n; n_out = n; break;
                default: n1 = n; n_out = T * n; break; /* mean backward, repeat */
                }
                if ((op == EW_RELU_F || op == EW_RELU_B) && ti > 0) continue;
                float *in1 = fvec(n1), *in2 = n2 ? fvec(n2) : NULL, *want = fvec(n_out),
                      *got = fvec(n_out), *cpu = fvec(n_out);
                if (op == EW_T_MEAN || op == EW_T_SUM)
                    fill_spikes(in1, n1, 0.4);
                else
                    fill_uniform(in1, n1, -1, 1);
                if (op == EW_RELU_B) {
                    for (int64_t i = 0; i < n; i += 5) in1[i] = 0.0f; /* y == 0 exactly */
                    fill_uniform(in2, n2, -1, 1);
                }
                if (op == EW_MUL_T) {
                    for (int64_t i = 0; i < n2; i++) in2[i] = urand() < 0.5 ? 0.0f : 2.0f;
                }
                for (int64_t j = 0; j < n_out; j++) {
                    switch (op) {
                    case EW_RELU_F: want[j] = in1[j] > 0 ? in1[j] : 0.0f; break;
                    case EW_RELU_B: want[j] = in1[j] > 0 ? in2[j] : 0.0f; break;
                    case EW_MUL_T: want[j] = in1[j] * in2[j % n]; break;
                    case EW_T_MEAN: case EW_T_SUM: {
                        float s = 0.0f;
                        for (int t = 0; t < T; t++) s += in1[(int64_t)t * n + j];
                        want[j] = op == EW_T_MEAN ? s / (float)T : s;
                        break;
                    }
                    case EW_T_MEAN_B: want[j] = in1[j % n] / (float)T; break;
                    default: want[j] = in1[j % n]; break;
                    }
                }
                char what[96];
                snprintf(what, sizeof what, "%s T=%d n=%lld", names[op], T, (long long)n);
                for (int in_place = 0; in_place < (op == EW_MUL_T ? 2 : 1); in_place++) {
                    OK(ew_on(&g_gpu, (ew_op)op, T, n, in1, n1, in2, n2, got, n_out, in_place));
                    check_close(what, in_place ? "cuda (in place) vs ref" : "cuda vs ref", got,
                                want, n_out, REL_EW, ABS_EW);
                }
                if (cpu_has && cpu_ran(names[op], ew_on(&g_cpu, (ew_op)op, T, n, in1, n1, in2,
                                                        n2, cpu, n_out, 0)))
                    check_close(what, "cuda vs cpu", got, cpu, n_out, REL_EW, ABS_EW);
                free(in1);
                free(in2);
                free(want);
                free(got);
                free(cpu);
            }
        }
    }
    END();
}

static void test_dropout(void **state)
{
    (void)state;
    BEGIN();
    const int64_t sizes[] = {1, 7, 18433, 1000000};
    const float ps[] = {0.0f, 0.2f, 0.5f, 1.0f};
    int cpu_has = !cpu_missing("dropout_mask", (const void *)g_cpu.ops->dropout_mask);
    for (size_t si = 0; si < 4; si++) {
        for (size_t pi = 0; pi < 4; pi++) {
            int64_t n = sizes[si];
            float p = ps[pi];
            uint64_t seed = 0x1234567890ABCDEFull + si, stream = 42 + pi * 1000003ull;
            float *want = fvec(n), *got = fvec(n), *cpu = fvec(n);
            float scale = p < 1.0f ? (float)(1.0 / (1.0 - (double)p)) : 0.0f;
            int64_t kept = 0;
            for (int64_t i = 0; i < n; i++) {
                want[i] = csnn_rng_uniform(seed, stream, (uint64_t)i) >= p ? scale : 0.0f;
                kept += want[i] != 0.0f;
            }
            char what[64];
            snprintf(what, sizeof what, "dropout_mask n=%lld p=%g", (long long)n, (double)p);
            float *d = (float *)dput(&g_gpu, NULL, (size_t)n * 4);
            OK(g_gpu.ops->dropout_mask(g_gpu.dev, d, n, p, seed, stream));
            dget(&g_gpu, got, d, (size_t)n * 4);
            dfree(&g_gpu, d);
            check_exact(what, "cuda vs csnn_rng_uniform", got, want, n);
            if (n >= 18433 && p > 0.0f && p < 1.0f) {
                double rate = (double)kept / (double)n;
                if (fabs(rate - (1.0 - p)) > 0.02) {
                    print_error("%s: keep rate %.4f\n", what, rate);
                    g_failed = 1;
                }
            }
            if (cpu_has) {
                d = (float *)dput(&g_cpu, NULL, (size_t)n * 4);
                if (cpu_ran("dropout_mask",
                            g_cpu.ops->dropout_mask(g_cpu.dev, d, n, p, seed, stream))) {
                    dget(&g_cpu, cpu, d, (size_t)n * 4);
                    /* the same pattern exactly; the scale within a rounding */
                    for (int64_t i = 0; i < n; i++) {
                        if ((got[i] == 0.0f) != (cpu[i] == 0.0f)) {
                            print_error("%s: pattern differs from cpu at %lld\n", what,
                                        (long long)i);
                            g_failed = 1;
                            break;
                        }
                    }
                    check_close(what, "cuda vs cpu", got, cpu, n, REL_EW, ABS_EW);
                }
                dfree(&g_cpu, d);
            }
            free(want);
            free(got);
            free(cpu);
        }
    }
    float *d = (float *)dput(&g_gpu, NULL, 16);
    assert_int_not_equal(g_gpu.ops->dropout_mask(g_gpu.dev, d, 4, 1.5f, 1, 1), CSNN_OK);
    dfree(&g_gpu, d);
    END();
}

/* ------------------------------------------------------------------------ */
/* spiking neurons                                                           */
/* ------------------------------------------------------------------------ */

/* The reference: the formulas of DESIGN.md section 3 / fixtures README, in
 * float, in SpikingJelly's order (see cuda/neuron.cu). */
static float ref_charge(const csnn_neuron_desc *d, float v, float x)
{
    int general = d->hard_reset && d->v_reset != 0.0f;
    float vr = d->hard_reset ? d->v_reset : 0.0f;
    if (d->kind == CSNN_NEURON_IF) return v + x;
    if (d->decay_input) return general ? v + (x - (v - vr)) / d->tau : v + (x - v) / d->tau;
    float k = (float)(1.0 - 1.0 / (double)d->tau);
    return general ? v - (v - vr) / d->tau + x : v * k + x;
}

static void ref_neuron_forward(const csnn_neuron_desc *d, const float *x, float *s, float *h)
{
    float vr = d->hard_reset ? d->v_reset : 0.0f;
    for (int64_t i = 0; i < d->m; i++) {
        float v = vr;
        for (int t = 0; t < d->t; t++) {
            int64_t idx = (int64_t)t * d->m + i;
            float ht = ref_charge(d, v, x[d->x_shared ? i : idx]);
            int spike = ht - d->v_threshold >= 0.0f;
            s[idx] = spike ? 1.0f : 0.0f;
            h[idx] = ht;
            v = spike ? (d->hard_reset ? vr : ht - d->v_threshold) : ht;
        }
    }
}

static float ref_surrogate(const csnn_neuron_desc *d, float g, float x)
{
    if (d->surrogate == CSNN_SURROGATE_SIGMOID) {
        float sg = 1.0f / (1.0f + expf(-(d->alpha * x)));
        return g * (1.0f - sg) * sg * d->alpha;
    }
    float c1 = (float)((double)d->alpha / 2.0);
    float c2 = (float)(3.14159265358979323846 / 2.0 * (double)d->alpha);
    float cx = c2 * x;
    return c1 / (1.0f + cx * cx) * g;
}

static void ref_neuron_backward(const csnn_neuron_desc *d, const float *gs_in, const float *h,
                                float *gx)
{
    float vr = d->hard_reset ? d->v_reset : 0.0f;
    int lif = d->kind == CSNN_NEURON_LIF;
    float k = lif ? (float)(1.0 - 1.0 / (double)d->tau) : 1.0f;
    for (int64_t i = 0; i < d->m; i++) {
        float gv = 0.0f, acc = 0.0f;
        for (int t = d->t - 1; t >= 0; t--) {
            int64_t idx = (int64_t)t * d->m + i;
            float ht = h[idx], xm = ht - d->v_threshold;
            int spike = xm >= 0.0f;
            float gs = gs_in[idx];
            if (!d->detach_reset) gs = gs + gv * (d->hard_reset ? (vr - ht) : -d->v_threshold);
            float gh = ref_surrogate(d, gs, xm);
            if (!d->hard_reset || !spike) gh = gh + gv;
            float dx = lif && d->decay_input ? gh / d->tau : gh;
            if (d->x_shared)
                acc += dx;
            else
                gx[idx] = dx;
            gv = lif ? gh * k : gh;
        }
        if (d->x_shared) gx[i] = acc;
    }
}

static csnn_status neuron_on(backend *b, const csnn_neuron_desc *d, const float *x,
                             const float *gs, const float *h_in, float *s, float *h, float *gx,
                             float *s_noh)
{
    int64_t tm = (int64_t)d->t * d->m, xn = d->x_shared ? d->m : tm;
    float *dx_ = (float *)dput(b, x, (size_t)xn * 4), *dgs = (float *)dput(b, gs, (size_t)tm * 4);
    float *dhin = (float *)dput(b, h_in, (size_t)tm * 4);
    float *ds = (float *)dput(b, NULL, (size_t)tm * 4), *dh = (float *)dput(b, NULL, (size_t)tm * 4);
    float *ds2 = (float *)dput(b, NULL, (size_t)tm * 4), *dgx = (float *)dput(b, NULL, (size_t)xn * 4);
    csnn_status st = b->ops->neuron_forward(b->dev, d, dx_, ds, dh);
    if (st == CSNN_OK) st = b->ops->neuron_forward(b->dev, d, dx_, ds2, NULL); /* inference */
    /* backward from the SAME h for every backend (h_in), so that a spike
     * flipped by rounding in a forward cannot spoil the backward check */
    if (st == CSNN_OK) st = b->ops->neuron_backward(b->dev, d, dgs, dhin, dgx);
    if (st == CSNN_OK) {
        dget(b, s, ds, (size_t)tm * 4);
        dget(b, h, dh, (size_t)tm * 4);
        dget(b, s_noh, ds2, (size_t)tm * 4);
        dget(b, gx, dgx, (size_t)xn * 4);
    }
    dfree(b, dx_);
    dfree(b, dgs);
    dfree(b, dhin);
    dfree(b, ds);
    dfree(b, dh);
    dfree(b, ds2);
    dfree(b, dgx);
    return st;
}

/* Spikes equal except for neurons whose reference membrane comes within
 * `margin` of the threshold at some step (there a rounding difference may
 * legitimately flip a spike, and everything after it); at most 1% of them. */
static void check_spikes(const char *what, const char *who, const csnn_neuron_desc *d,
                         const float *got_s, const float *got_h, const float *want_s,
                         const float *want_h)
{
    int64_t ambiguous = 0, bad = 0;
    for (int64_t i = 0; i < d->m; i++) {
        int amb = 0;
        for (int t = 0; t < d->t; t++)
            if (fabsf(want_h[(int64_t)t * d->m + i] - d->v_threshold) < 1e-5f) amb = 1;
        if (amb) {
            ambiguous++;
            continue;
        }
        for (int t = 0; t < d->t; t++) {
            int64_t idx = (int64_t)t * d->m + i;
            double tol = 1e-5 * (1.0 + fabs(want_h[idx]));
            if (got_s[idx] != want_s[idx] || !(fabs(got_h[idx] - want_h[idx]) <= tol)) {
                if (bad < 5)
                    print_error("%s (%s) neuron %lld t %d: s %g/%g h %.9g/%.9g\n", what, who,
                                (long long)i, t, (double)got_s[idx], (double)want_s[idx],
                                (double)got_h[idx], (double)want_h[idx]);
                bad++;
            }
        }
    }
    if (bad || ambiguous * 100 > d->m + 100) {
        print_error("%s (%s): %lld neurons differ, %lld ambiguous of %lld\n", what, who,
                    (long long)bad, (long long)ambiguous, (long long)d->m);
        g_failed = 1;
    }
}

static void test_neuron(void **state)
{
    (void)state;
    BEGIN();
    typedef struct {
        const char *name;
        int kind, surrogate, hard, detach, decay, shared;
        float vth, vr, tau, alpha;
    } ncase;
    const ncase cases[] = {
        {"if_hard", CSNN_NEURON_IF, CSNN_SURROGATE_ATAN, 1, 0, 0, 0, 1.0f, 0.0f, 2.0f, 2.0f},
        {"lif_hard_decay", CSNN_NEURON_LIF, CSNN_SURROGATE_ATAN, 1, 0, 1, 0, 1.0f, 0.0f, 2.0f, 2.0f},
        {"lif_soft_nodecay", CSNN_NEURON_LIF, CSNN_SURROGATE_ATAN, 0, 0, 0, 0, 1.0f, 0.0f, 2.0f, 2.0f},
        {"if_detach", CSNN_NEURON_IF, CSNN_SURROGATE_ATAN, 1, 1, 0, 0, 1.0f, 0.0f, 2.0f, 2.0f},
        {"sigmoid", CSNN_NEURON_IF, CSNN_SURROGATE_SIGMOID, 1, 0, 0, 0, 1.0f, 0.0f, 2.0f, 4.0f},
        {"lif_soft_decay_detach", CSNN_NEURON_LIF, CSNN_SURROGATE_ATAN, 0, 1, 1, 0, 0.8f, 0.0f, 3.0f, 2.0f},
        {"lif_hard_vr_decay", CSNN_NEURON_LIF, CSNN_SURROGATE_ATAN, 1, 0, 1, 0, 1.0f, -0.5f, 2.5f, 2.0f},
        {"lif_hard_vr_nodecay", CSNN_NEURON_LIF, CSNN_SURROGATE_SIGMOID, 1, 0, 0, 0, 0.5f, 0.25f, 4.0f, 3.0f},
        {"if_soft_sigmoid", CSNN_NEURON_IF, CSNN_SURROGATE_SIGMOID, 0, 0, 0, 0, 1.0f, 0.0f, 2.0f, 4.0f},
        {"if_hard_shared", CSNN_NEURON_IF, CSNN_SURROGATE_ATAN, 1, 0, 0, 1, 1.0f, 0.0f, 2.0f, 2.0f},
        {"lif_decay_shared", CSNN_NEURON_LIF, CSNN_SURROGATE_ATAN, 1, 0, 1, 1, 1.0f, 0.0f, 2.0f, 2.0f},
    };
    const int64_t ms[] = {1, 1000, 4097};
    const int ts[] = {1, 4, 6};
    int cpu_has = !cpu_missing("neuron_*", (const void *)g_cpu.ops->neuron_forward);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (size_t mi = 0; mi < 3; mi++) {
            for (size_t ti = 0; ti < 3; ti++) {
                const ncase *nc = &cases[c];
                csnn_neuron_desc d;
                memset(&d, 0, sizeof d);
                d.kind = nc->kind;
                d.surrogate = nc->surrogate;
                d.hard_reset = nc->hard;
                d.detach_reset = nc->detach;
                d.decay_input = nc->decay;
                d.x_shared = nc->shared;
                d.t = ts[ti];
                d.m = ms[mi];
                d.v_threshold = nc->vth;
                d.v_reset = nc->vr;
                d.tau = nc->tau;
                d.alpha = nc->alpha;
                int64_t tm = (int64_t)d.t * d.m, xn = d.x_shared ? d.m : tm;
                float *x = fvec(xn), *gs = fvec(tm), *hin = fvec(tm);
                fill_uniform(x, xn, -1.5, 2.5);
                fill_uniform(gs, tm, -1, 1);
                float *rs = fvec(tm), *rh = fvec(tm), *rgx = fvec(xn);
                ref_neuron_forward(&d, x, rs, rh);
                memcpy(hin, rh, (size_t)tm * 4);
                ref_neuron_backward(&d, gs, hin, rgx);
                float *s = fvec(tm), *h = fvec(tm), *gx = fvec(xn), *s2 = fvec(tm);
                float *cs = fvec(tm), *ch = fvec(tm), *cgx = fvec(xn), *cs2 = fvec(tm);
                char what[96];
                snprintf(what, sizeof what, "neuron %s T=%d M=%lld", nc->name, d.t, (long long)d.m);
                OK(neuron_on(&g_gpu, &d, x, gs, hin, s, h, gx, s2));
                check_spikes(what, "cuda vs ref", &d, s, h, rs, rh);
                check_exact(what, "spikes without h vs with h", s2, s, tm);
                check_close(what, "grad_x cuda vs ref", gx, rgx, xn, 1e-5, 1e-6);
                if (cpu_has &&
                    cpu_ran("neuron", neuron_on(&g_cpu, &d, x, gs, hin, cs, ch, cgx, cs2))) {
                    check_spikes(what, "cuda vs cpu", &d, s, h, cs, ch);
                    check_close(what, "grad_x cuda vs cpu", gx, cgx, xn, 1e-5, 1e-6);
                }
                free(x);
                free(gs);
                free(hin);
                free(rs);
                free(rh);
                free(rgx);
                free(s);
                free(h);
                free(gx);
                free(s2);
                free(cs);
                free(ch);
                free(cgx);
                free(cs2);
            }
        }
    }
    END();
}

/* ------------------------------------------------------------------------ */
/* spiking neurons + max pooling, fused (neuron_pool_forward / _backward)     */
/* ------------------------------------------------------------------------ */

/* The outputs of one backend's runs of the fused entries. */
typedef struct npool_res {
    float *y, *h, *y2, *y3, *dx, *dx2;
    uint8_t *a, *a2;
} npool_res;

static void npool_res_alloc(npool_res *r, int64_t out_n, int64_t tm, int64_t xn)
{
    r->y = fvec(out_n);
    r->y2 = fvec(out_n);
    r->y3 = fvec(out_n);
    r->h = fvec(tm);
    r->dx = fvec(xn);
    r->dx2 = fvec(xn);
    r->a = (uint8_t *)xmalloc((size_t)out_n);
    r->a2 = (uint8_t *)xmalloc((size_t)out_n);
}

static void npool_res_free(npool_res *r)
{
    free(r->y);
    free(r->y2);
    free(r->y3);
    free(r->h);
    free(r->dx);
    free(r->dx2);
    free(r->a);
    free(r->a2);
}

/* Runs, on one backend, from the same inputs:
 *   forward with h and argmax (training), without h (the x_shared layer's
 *   training forward), without h and argmax (inference);
 *   backward from the given h_in and a_in with x = NULL (h is used, x must
 *   not be touched), and with h = NULL (H recomputed from x). */
static csnn_status npool_on(backend *b, const csnn_neuron_desc *d, const csnn_pool_desc *p,
                            const float *x, const float *h_in, const uint8_t *a_in,
                            const float *dy, npool_res *r)
{
    int64_t tm = (int64_t)d->t * d->m, xn = d->x_shared ? d->m : tm;
    int64_t out_n = p->planes * p->h_out * p->w_out;
    float *d_x = (float *)dput(b, x, (size_t)xn * 4), *d_hin = (float *)dput(b, h_in, (size_t)tm * 4);
    float *d_dy = (float *)dput(b, dy, (size_t)out_n * 4);
    uint8_t *d_ain = (uint8_t *)dput(b, a_in, (size_t)out_n);
    float *d_y = (float *)dput(b, NULL, (size_t)out_n * 4), *d_y2 = (float *)dput(b, NULL, (size_t)out_n * 4);
    float *d_y3 = (float *)dput(b, NULL, (size_t)out_n * 4), *d_h = (float *)dput(b, NULL, (size_t)tm * 4);
    uint8_t *d_a = (uint8_t *)dput(b, NULL, (size_t)out_n), *d_a2 = (uint8_t *)dput(b, NULL, (size_t)out_n);
    float *d_dx = (float *)dput(b, NULL, (size_t)xn * 4), *d_dx2 = (float *)dput(b, NULL, (size_t)xn * 4);
    const csnn_backend_ops *o = b->ops;
    csnn_status st = o->neuron_pool_forward(b->dev, d, p, d_x, d_y, d_a, d_h);
    if (st == CSNN_OK) st = o->neuron_pool_forward(b->dev, d, p, d_x, d_y2, d_a2, NULL);
    if (st == CSNN_OK) st = o->neuron_pool_forward(b->dev, d, p, d_x, d_y3, NULL, NULL);
    if (st == CSNN_OK) st = o->neuron_pool_backward(b->dev, d, p, NULL, d_hin, d_ain, d_dy, d_dx);
    if (st == CSNN_OK) st = o->neuron_pool_backward(b->dev, d, p, d_x, NULL, d_ain, d_dy, d_dx2);
    if (st == CSNN_OK) {
        dget(b, r->y, d_y, (size_t)out_n * 4);
        dget(b, r->y2, d_y2, (size_t)out_n * 4);
        dget(b, r->y3, d_y3, (size_t)out_n * 4);
        dget(b, r->a, d_a, (size_t)out_n);
        dget(b, r->a2, d_a2, (size_t)out_n);
        dget(b, r->h, d_h, (size_t)tm * 4);
        dget(b, r->dx, d_dx, (size_t)xn * 4);
        dget(b, r->dx2, d_dx2, (size_t)xn * 4);
    }
    void *bufs[] = {d_x, d_hin, d_dy, d_ain, d_y, d_y2, d_y3, d_h, d_a, d_a2, d_dx, d_dx2};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) dfree(b, bufs[i]);
    return st;
}

/* The composition on one backend (CUDA: it must equal the fused entries bit
 * for bit, the kernels sharing their device functions): neuron_forward +
 * maxpool_forward -> y, a, h; maxpool_backward(dy, a_in) + neuron_backward
 * from h_in -> dx, and from this backend's own h -> dx2. */
static csnn_status npool_composed_on(backend *b, const csnn_neuron_desc *d,
                                     const csnn_pool_desc *p, const float *x, const float *h_in,
                                     const uint8_t *a_in, const float *dy, npool_res *r)
{
    int64_t tm = (int64_t)d->t * d->m, xn = d->x_shared ? d->m : tm;
    int64_t out_n = p->planes * p->h_out * p->w_out;
    float *d_x = (float *)dput(b, x, (size_t)xn * 4), *d_hin = (float *)dput(b, h_in, (size_t)tm * 4);
    float *d_dy = (float *)dput(b, dy, (size_t)out_n * 4);
    uint8_t *d_ain = (uint8_t *)dput(b, a_in, (size_t)out_n);
    float *d_s = (float *)dput(b, NULL, (size_t)tm * 4), *d_h = (float *)dput(b, NULL, (size_t)tm * 4);
    float *d_y = (float *)dput(b, NULL, (size_t)out_n * 4), *d_gs = (float *)dput(b, NULL, (size_t)tm * 4);
    uint8_t *d_a = (uint8_t *)dput(b, NULL, (size_t)out_n);
    float *d_dx = (float *)dput(b, NULL, (size_t)xn * 4), *d_dx2 = (float *)dput(b, NULL, (size_t)xn * 4);
    const csnn_backend_ops *o = b->ops;
    csnn_status st = o->neuron_forward(b->dev, d, d_x, d_s, d_h);
    if (st == CSNN_OK) st = o->maxpool_forward(b->dev, p, d_s, d_y, d_a);
    if (st == CSNN_OK) st = o->maxpool_backward(b->dev, p, d_dy, d_ain, d_gs);
    if (st == CSNN_OK) st = o->neuron_backward(b->dev, d, d_gs, d_hin, d_dx);
    if (st == CSNN_OK) st = o->neuron_backward(b->dev, d, d_gs, d_h, d_dx2);
    if (st == CSNN_OK) {
        dget(b, r->y, d_y, (size_t)out_n * 4);
        dget(b, r->a, d_a, (size_t)out_n);
        dget(b, r->h, d_h, (size_t)tm * 4);
        dget(b, r->dx, d_dx, (size_t)xn * 4);
        dget(b, r->dx2, d_dx2, (size_t)xn * 4);
    }
    void *bufs[] = {d_x, d_hin, d_dy, d_ain, d_s, d_h, d_y, d_gs, d_a, d_dx, d_dx2};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) dfree(b, bufs[i]);
    return st;
}

/* Neurons whose reference membrane comes within 1e-5 of the threshold at
 * some step (a rounding difference elsewhere could flip a spike there, and
 * everything after it): amb[i] = 1. Returns their count. */
static int64_t npool_ambiguous(const csnn_neuron_desc *d, const float *rh, uint8_t *amb)
{
    int64_t n = 0;
    for (int64_t i = 0; i < d->m; i++) {
        amb[i] = 0;
        for (int t = 0; t < d->t; t++)
            if (fabsf(rh[(int64_t)t * d->m + i] - d->v_threshold) < 1e-5f) amb[i] = 1;
        n += amb[i];
    }
    return n;
}

/* Pooled spikes and argmax equal exactly, except in windows holding an
 * ambiguous neuron. */
static void npool_check_pooled(const char *what, const char *who, const csnn_neuron_desc *d,
                               const csnn_pool_desc *p, const uint8_t *amb, const float *y,
                               const uint8_t *a, const float *wy, const uint8_t *wa)
{
    int64_t plane = (int64_t)p->h_in * p->w_in, pps = d->m / plane;
    int64_t out_plane = (int64_t)p->h_out * p->w_out, bad = 0, n = 0;
    for (int t = 0; t < d->t; t++)
        for (int64_t pl = 0; pl < pps; pl++)
            for (int oy = 0; oy < p->h_out; oy++)
                for (int ox = 0; ox < p->w_out; ox++) {
                    int skip = 0;
                    for (int ky = 0; ky < p->k; ky++)
                        for (int kx = 0; kx < p->k; kx++)
                            skip |= amb[pl * plane + (int64_t)(oy * p->stride + ky) * p->w_in +
                                        ox * p->stride + kx];
                    if (skip) continue;
                    int64_t o = ((int64_t)t * pps + pl) * out_plane + (int64_t)oy * p->w_out + ox;
                    n++;
                    if (memcmp(&y[o], &wy[o], 4) != 0 || (a && a[o] != wa[o])) {
                        if (bad < 5)
                            print_error("%s (%s) t %d plane %lld window (%d,%d): y %g/%g argmax "
                                        "%d/%d\n",
                                        what, who, t, (long long)pl, oy, ox, (double)y[o],
                                        (double)wy[o], a ? a[o] : -1, wa[o]);
                        bad++;
                    }
                }
    if (bad) {
        print_error("%s (%s): %lld of %lld windows differ\n", what, who, (long long)bad,
                    (long long)n);
        g_failed = 1;
    }
}

/* |got - want| <= rel * max|want| + abs over the elements of unambiguous
 * neurons (element e belongs to neuron e % M). */
static void npool_check_close(const char *what, const char *who, const float *got,
                              const float *want, int64_t n, int64_t m, const uint8_t *amb,
                              double rel, double abs_tol)
{
    double maxref = 0.0;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(want[i]) && fabs(want[i]) > maxref) maxref = fabs(want[i]);
    double tol = rel * maxref + abs_tol;
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (amb && amb[i % m]) continue;
        double diff = fabs((double)got[i] - (double)want[i]);
        if (!(diff <= tol)) {
            if (bad < 5)
                print_error("%s (%s) [%lld]: got %.9g, want %.9g (tolerance %.3g)\n", what, who,
                            (long long)i, (double)got[i], (double)want[i], tol);
            bad++;
        }
    }
    if (bad) {
        print_error("%s (%s): %lld of %lld elements differ\n", what, who, (long long)bad,
                    (long long)n);
        g_failed = 1;
    }
}

/* H of unambiguous neurons within 1e-5 (1 + |H|). */
static void npool_check_h(const char *what, const char *who, const csnn_neuron_desc *d,
                          const uint8_t *amb, const float *h, const float *wh)
{
    int64_t bad = 0, tm = (int64_t)d->t * d->m;
    for (int64_t e = 0; e < tm; e++) {
        if (amb[e % d->m]) continue;
        double tol = 1e-5 * (1.0 + fabs(wh[e]));
        if (!(fabs((double)h[e] - (double)wh[e]) <= tol)) {
            if (bad < 5)
                print_error("%s (%s) h[%lld]: got %.9g, want %.9g\n", what, who, (long long)e,
                            (double)h[e], (double)wh[e]);
            bad++;
        }
    }
    if (bad) {
        print_error("%s (%s): %lld of %lld membranes differ\n", what, who, (long long)bad,
                    (long long)tm);
        g_failed = 1;
    }
}

/* One configuration: reference (ref_neuron_* + ref_pool), CUDA fused, CUDA
 * composed (bit for bit), CPU fused. */
static void npool_case(const char *name, const csnn_neuron_desc *d0, int pps, int hin, int win,
                       int k, int stride, int steps, int shared, int cpu_has)
{
    csnn_neuron_desc d = *d0;
    d.t = steps;
    d.x_shared = shared;
    d.m = (int64_t)pps * hin * win;
    csnn_pool_desc p;
    memset(&p, 0, sizeof p);
    p.planes = (int64_t)steps * pps;
    p.h_in = hin;
    p.w_in = win;
    p.k = k;
    p.stride = stride;
    p.h_out = (hin - k) / stride + 1;
    p.w_out = (win - k) / stride + 1;
    int64_t tm = (int64_t)d.t * d.m, xn = shared ? d.m : tm;
    int64_t out_n = p.planes * p.h_out * p.w_out;
    float *x = fvec(xn), *dy = fvec(out_n);
    fill_uniform(x, xn, -0.6, 1.4);
    fill_uniform(dy, out_n, -1, 1);
    /* reference: neurons, then pooling of their spikes (argmax and the
     * routed gradient dL/dS), then the neurons' backward */
    float *rs = fvec(tm), *rh = fvec(tm), *ry = fvec(out_n), *rgs = fvec(tm), *rdx = fvec(xn);
    uint8_t *ra = (uint8_t *)xmalloc((size_t)out_n), *amb = (uint8_t *)xmalloc((size_t)d.m);
    ref_neuron_forward(&d, x, rs, rh);
    ref_pool(&p, rs, dy, ry, ra, rgs);
    ref_neuron_backward(&d, rgs, rh, rdx);
    int64_t n_amb = npool_ambiguous(&d, rh, amb);
    char what[160];
    snprintf(what, sizeof what, "neuron_pool %s T=%d %s %dx%dx%d k%d s%d", name, steps,
             shared ? "x_shared" : "x[T]", pps, hin, win, k, stride);
    if (n_amb * 100 > d.m + 100) {
        print_error("%s: %lld of %lld neurons near the threshold\n", what, (long long)n_amb,
                    (long long)d.m);
        g_failed = 1;
    }
    npool_res g, c, comp;
    npool_res_alloc(&g, out_n, tm, xn);
    npool_res_alloc(&c, out_n, tm, xn);
    npool_res_alloc(&comp, out_n, tm, xn);
    OK(npool_on(&g_gpu, &d, &p, x, rh, ra, dy, &g));
    /* against the reference */
    npool_check_pooled(what, "y/argmax cuda vs ref", &d, &p, amb, g.y, g.a, ry, ra);
    npool_check_h(what, "cuda vs ref", &d, amb, g.h, rh);
    check_close(what, "dx (from h) cuda vs ref", g.dx, rdx, xn, 1e-5, 1e-6);
    npool_check_close(what, "dx (H recomputed) cuda vs ref", g.dx2, rdx, xn, d.m, amb, 1e-5, 1e-6);
    /* the same device: every path gives the same bits */
    check_exact(what, "y without h vs with h", g.y2, g.y, out_n);
    check_exact_u8(what, "argmax without h vs with h", g.a2, g.a, out_n);
    check_exact(what, "y in inference vs training", g.y3, g.y, out_n);
    /* fused == composition of this module's entries, bit for bit */
    OK(npool_composed_on(&g_gpu, &d, &p, x, rh, ra, dy, &comp));
    check_exact(what, "y fused vs composed", g.y, comp.y, out_n);
    check_exact_u8(what, "argmax fused vs composed", g.a, comp.a, out_n);
    check_exact(what, "h fused vs composed", g.h, comp.h, tm);
    check_exact(what, "dx (from h) fused vs composed", g.dx, comp.dx, xn);
    check_exact(what, "dx (H recomputed) fused vs composed", g.dx2, comp.dx2, xn);
    if (cpu_has && cpu_ran("neuron_pool", npool_on(&g_cpu, &d, &p, x, rh, ra, dy, &c))) {
        npool_check_pooled(what, "y/argmax cuda vs cpu", &d, &p, amb, g.y, g.a, c.y, c.a);
        npool_check_h(what, "cuda vs cpu", &d, amb, g.h, c.h);
        check_close(what, "dx (from h) cuda vs cpu", g.dx, c.dx, xn, 1e-5, 1e-6);
        npool_check_close(what, "dx (H recomputed) cuda vs cpu", g.dx2, c.dx2, xn, d.m, amb,
                          1e-5, 1e-6);
    }
    npool_res_free(&g);
    npool_res_free(&c);
    npool_res_free(&comp);
    free(x);
    free(dy);
    free(rs);
    free(rh);
    free(ry);
    free(rgs);
    free(rdx);
    free(ra);
    free(amb);
}

static void test_neuron_pool(void **state)
{
    (void)state;
    BEGIN();
    typedef struct {
        const char *name;
        int kind, surrogate, hard, detach, decay;
        float vth, vr, tau, alpha;
    } npcase;
    const npcase ncs[] = {
        {"if_hard", CSNN_NEURON_IF, CSNN_SURROGATE_ATAN, 1, 0, 0, 1.0f, 0.0f, 2.0f, 2.0f},
        {"lif_hard_decay", CSNN_NEURON_LIF, CSNN_SURROGATE_ATAN, 1, 0, 1, 1.0f, 0.0f, 2.0f, 2.0f},
        {"lif_soft_nodecay", CSNN_NEURON_LIF, CSNN_SURROGATE_ATAN, 0, 0, 0, 1.0f, 0.0f, 2.0f, 2.0f},
        {"if_detach_sigmoid", CSNN_NEURON_IF, CSNN_SURROGATE_SIGMOID, 1, 1, 0, 1.0f, 0.0f, 2.0f, 4.0f},
        {"lif_hard_vr_tau3", CSNN_NEURON_LIF, CSNN_SURROGATE_ATAN, 1, 0, 1, 0.8f, -0.25f, 3.0f, 2.0f},
        {"if_soft", CSNN_NEURON_IF, CSNN_SURROGATE_ATAN, 0, 0, 0, 1.0f, 0.0f, 2.0f, 2.0f},
    };
    /* planes per step, h, w, k, stride: the reference model's 2x2/2, odd
     * sizes with leftover rows/columns (floor mode), overlapping windows
     * (stride < k), gaps (stride > k), the generic path (k > 3) */
    const int geo[][5] = {{3, 8, 8, 2, 2}, {2, 7, 9, 2, 2},  {2, 9, 7, 3, 2}, {3, 5, 6, 2, 1},
                          {2, 11, 10, 3, 3}, {2, 8, 7, 2, 3}, {1, 13, 11, 5, 2}, {2, 4, 4, 4, 4},
                          {1, 6, 5, 3, 1}};
    const size_t n_nc = sizeof ncs / sizeof ncs[0], n_geo = sizeof geo / sizeof geo[0];
    int cpu_has = !cpu_missing("neuron_pool_*", (const void *)g_cpu.ops->neuron_pool_forward) &&
                  !cpu_missing("neuron_pool_backward", (const void *)g_cpu.ops->neuron_pool_backward);
    size_t run = 0;
    for (size_t gi = 0; gi < n_geo; gi++)
        for (int steps = 1; steps <= 5; steps++)
            for (int shared = 0; shared < 2; shared++) {
                /* every neuron kind meets every geometry and both input kinds */
                for (size_t r = 0; r < 2; r++, run++) {
                    const npcase *nc = &ncs[(gi + (size_t)steps * 2 + r * 3 + (size_t)shared) % n_nc];
                    csnn_neuron_desc d;
                    memset(&d, 0, sizeof d);
                    d.kind = nc->kind;
                    d.surrogate = nc->surrogate;
                    d.hard_reset = nc->hard;
                    d.detach_reset = nc->detach;
                    d.decay_input = nc->decay;
                    d.v_threshold = nc->vth;
                    d.v_reset = nc->vr;
                    d.tau = nc->tau;
                    d.alpha = nc->alpha;
                    npool_case(nc->name, &d, geo[gi][0], geo[gi][1], geo[gi][2], geo[gi][3],
                               geo[gi][4], steps, shared, cpu_has);
                }
            }
    /* the reference model's sizes (one image of 8 channels, 48x48, T = 4), a
     * large T (recomputation in several chunks), k = 16 */
    {
        csnn_neuron_desc d;
        memset(&d, 0, sizeof d);
        d.kind = CSNN_NEURON_IF;
        d.surrogate = CSNN_SURROGATE_ATAN;
        d.hard_reset = 1;
        d.v_threshold = 1.0f;
        d.tau = 2.0f;
        d.alpha = 2.0f;
        npool_case("if_hard", &d, 8, 48, 48, 2, 2, 4, 1, cpu_has);
        npool_case("if_hard", &d, 8, 24, 24, 2, 2, 4, 0, cpu_has);
        d.kind = CSNN_NEURON_LIF;
        d.decay_input = 1;
        npool_case("lif_hard_decay", &d, 2, 6, 6, 2, 2, 70, 1, cpu_has);
        npool_case("lif_hard_decay", &d, 2, 6, 6, 2, 2, 33, 0, cpu_has);
        npool_case("lif_hard_decay", &d, 2, 16, 16, 16, 1, 3, 0, cpu_has);
    }
    print_message("  %zu configurations\n", run + 5);
    /* errors: shapes that do not match, no h and no x; M = 0 is a no-op */
    {
        const csnn_backend_ops *o = g_gpu.ops;
        csnn_neuron_desc d;
        memset(&d, 0, sizeof d);
        d.kind = CSNN_NEURON_IF;
        d.surrogate = CSNN_SURROGATE_ATAN;
        d.hard_reset = 1;
        d.v_threshold = 1.0f;
        d.alpha = 2.0f;
        d.t = 2;
        d.m = 2 * 16 + 3;
        csnn_pool_desc p = {4, 4, 4, 2, 2, 2, 2};
        float *buf = (float *)dput(&g_gpu, NULL, 4096);
        uint8_t *ab = (uint8_t *)dput(&g_gpu, NULL, 256);
        assert_int_equal(o->neuron_pool_forward(g_gpu.dev, &d, &p, buf, buf, ab, NULL),
                         CSNN_ERR_SHAPE);
        print_message("  shape mismatch: %s\n", csnn_last_error_message());
        d.m = 2 * 16;
        p.planes = 3;
        assert_int_equal(o->neuron_pool_backward(g_gpu.dev, &d, &p, buf, NULL, ab, buf, buf),
                         CSNN_ERR_SHAPE);
        p.planes = 4;
        assert_int_equal(o->neuron_pool_backward(g_gpu.dev, &d, &p, NULL, NULL, ab, buf, buf),
                         CSNN_ERR_INVALID_ARGUMENT);
        d.m = 0;
        p.planes = 0;
        OK(o->neuron_pool_forward(g_gpu.dev, &d, &p, NULL, NULL, NULL, NULL));
        OK(o->neuron_pool_backward(g_gpu.dev, &d, &p, NULL, NULL, NULL, NULL, NULL));
        dfree(&g_gpu, buf);
        dfree(&g_gpu, ab);
    }
    END();
}

/* ------------------------------------------------------------------------ */
/* loss                                                                      */
/* ------------------------------------------------------------------------ */

static void ref_loss(const csnn_loss_desc *d, const float *out, const int32_t *labels,
                     float *loss, float *grad)
{
    double total = 0.0;
    double off = (double)(d->smoothing / (float)d->k);
    double on = (double)((1.0f - d->smoothing) + (float)off);
    for (int r = 0; r < d->n; r++) {
        const float *o = out + (int64_t)r * d->k;
        if (d->kind == CSNN_LOSS_MSE) {
            for (int j = 0; j < d->k; j++) {
                double t = j == labels[r] ? on : off;
                double diff = o[j] - t;
                total += diff * diff;
                grad[(int64_t)r * d->k + j] = (float)(2.0 * diff / ((double)d->n * d->k));
            }
        } else {
            double mx = o[0];
            for (int j = 1; j < d->k; j++) mx = fmax(mx, o[j]);
            double se = 0;
            for (int j = 0; j < d->k; j++) se += exp(o[j] - mx);
            double lse = mx + log(se);
            for (int j = 0; j < d->k; j++) {
                double t = j == labels[r] ? on : off;
                total += t * (lse - o[j]);
                grad[(int64_t)r * d->k + j] = (float)((exp(o[j] - lse) - t) / d->n);
            }
        }
    }
    *loss = (float)(total / (d->kind == CSNN_LOSS_MSE ? (double)d->n * d->k : (double)d->n));
}

static csnn_status loss_on(backend *b, const csnn_loss_desc *d, const float *out,
                           const int32_t *labels, float *loss, float *grad, int with_grad)
{
    int64_t nk = (int64_t)d->n * d->k;
    float *dout = (float *)dput(b, out, (size_t)nk * 4);
    int32_t *dl = (int32_t *)dput(b, labels, (size_t)d->n * 4);
    float *dloss = (float *)dput(b, NULL, 4), *dgrad = (float *)dput(b, NULL, (size_t)nk * 4);
    csnn_status st = b->ops->loss(b->dev, d, dout, dl, dloss, with_grad ? dgrad : NULL);
    if (st == CSNN_OK) {
        dget(b, loss, dloss, 4);
        if (with_grad) dget(b, grad, dgrad, (size_t)nk * 4);
    }
    dfree(b, dout);
    dfree(b, dl);
    dfree(b, dloss);
    dfree(b, dgrad);
    return st;
}

static void test_loss(void **state)
{
    (void)state;
    BEGIN();
    const int shapes[][2] = {{16, 7}, {1, 1}, {3, 3}, {300, 10}, {1000, 2}};
    const float smooth[] = {0.0f, 0.1f};
    int cpu_has = !cpu_missing("loss", (const void *)g_cpu.ops->loss);
    for (int kind = 0; kind < 2; kind++) {
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            for (int si = 0; si < 2; si++) {
                csnn_loss_desc d;
                memset(&d, 0, sizeof d);
                d.kind = kind;
                d.n = shapes[s][0];
                d.k = shapes[s][1];
                d.smoothing = smooth[si];
                int64_t nk = (int64_t)d.n * d.k;
                float *out = fvec(nk), *want = fvec(nk), *got = fvec(nk), *cpu = fvec(nk);
                int32_t *labels = (int32_t *)xmalloc((size_t)d.n * 4);
                if (kind == CSNN_LOSS_MSE) {
                    for (int64_t i = 0; i < nk; i++) out[i] = (float)(int)(urand() * 5) * 0.25f;
                } else {
                    fill_uniform(out, nk, -4, 4);
                }
                for (int r = 0; r < d.n; r++) labels[r] = (int32_t)(urand() * d.k) % d.k;
                float wl, gl = NAN, cl = NAN;
                ref_loss(&d, out, labels, &wl, want);
                char what[80];
                snprintf(what, sizeof what, "loss %s N=%d K=%d smoothing %g",
                         kind ? "ce" : "mse", d.n, d.k, (double)d.smoothing);
                for (int with_grad = 1; with_grad >= 0; with_grad--) {
                    OK(loss_on(&g_gpu, &d, out, labels, &gl, got, with_grad));
                    check_close(what, "loss cuda vs ref", &gl, &wl, 1, 1e-6, 1e-7);
                    if (with_grad) check_close(what, "grad cuda vs ref", got, want, nk, 1e-6, 1e-8);
                }
                if (cpu_has && cpu_ran("loss", loss_on(&g_cpu, &d, out, labels, &cl, cpu, 1))) {
                    check_close(what, "loss cuda vs cpu", &gl, &cl, 1, 1e-5, 1e-7);
                    check_close(what, "grad cuda vs cpu", got, cpu, nk, 1e-5, 1e-8);
                }
                /* an out-of-range label is INVALID_ARGUMENT */
                labels[d.n - 1] = d.k;
                csnn_status st = loss_on(&g_gpu, &d, out, labels, &gl, got, 1);
                if (st != CSNN_ERR_INVALID_ARGUMENT) {
                    print_error("%s: bad label gave %s\n", what, csnn_status_name(st));
                    g_failed = 1;
                }
                labels[0] = -1;
                st = loss_on(&g_gpu, &d, out, labels, &gl, got, 0);
                if (st != CSNN_ERR_INVALID_ARGUMENT) {
                    print_error("%s: label -1 gave %s\n", what, csnn_status_name(st));
                    g_failed = 1;
                }
                free(out);
                free(want);
                free(got);
                free(cpu);
                free(labels);
            }
        }
    }
    END();
}

/* ------------------------------------------------------------------------ */
/* optimiser                                                                 */
/* ------------------------------------------------------------------------ */

static void ref_optim(const csnn_optim_desc *d, int64_t n, float *w, const float *g, float *m,
                      float *v)
{
    for (int64_t i = 0; i < n; i++) {
        float wi = w[i], gi = g[i];
        if (d->kind == CSNN_OPTIMIZER_SGD) {
            if (d->weight_decay != 0.0f) gi = gi + d->weight_decay * wi;
            if (d->momentum != 0.0f) {
                float b = d->step == 1 ? gi : d->momentum * m[i] + (1.0f - d->dampening) * gi;
                m[i] = b;
                gi = d->nesterov ? gi + d->momentum * b : b;
            }
            w[i] = wi - d->lr * gi;
            continue;
        }
        if (d->kind == CSNN_OPTIMIZER_ADAMW) {
            if (d->weight_decay != 0.0f)
                wi = wi * (float)(1.0 - (double)d->lr * (double)d->weight_decay);
        } else if (d->weight_decay != 0.0f) {
            gi = gi + d->weight_decay * wi;
        }
        float mi = d->beta1 * m[i] + (1.0f - d->beta1) * gi;
        float vi = v[i] * d->beta2 + (1.0f - d->beta2) * gi * gi;
        float denom = sqrtf(vi) / d->bias_correction2_sqrt + d->eps;
        w[i] = wi - d->step_size * mi / denom;
        m[i] = mi;
        v[i] = vi;
    }
}

static csnn_status optim_on(backend *b, const csnn_optim_desc *d, int64_t n, float *w,
                            const float *g, float *m, float *v)
{
    float *dw = (float *)dput(b, w, (size_t)n * 4), *dg = (float *)dput(b, g, (size_t)n * 4);
    float *dm = (float *)dput(b, m, (size_t)n * 4), *dv = (float *)dput(b, v, (size_t)n * 4);
    csnn_status st = b->ops->optim_step(b->dev, d, n, dw, dg, dm, dv);
    if (st == CSNN_OK) {
        dget(b, w, dw, (size_t)n * 4);
        dget(b, m, dm, (size_t)n * 4);
        dget(b, v, dv, (size_t)n * 4);
    }
    dfree(b, dw);
    dfree(b, dg);
    dfree(b, dm);
    dfree(b, dv);
    return st;
}

static void test_optim(void **state)
{
    (void)state;
    BEGIN();
    typedef struct {
        const char *name;
        int kind, nesterov;
        int64_t step;
        float lr, wd, momentum, dampening;
    } ocase;
    const ocase cases[] = {
        {"adam step 1", CSNN_OPTIMIZER_ADAM, 0, 1, 1e-3f, 0.0f, 0, 0},
        {"adam step 7 wd", CSNN_OPTIMIZER_ADAM, 0, 7, 1e-3f, 1e-2f, 0, 0},
        {"adamw step 3", CSNN_OPTIMIZER_ADAMW, 0, 3, 2e-3f, 5e-2f, 0, 0},
        {"sgd plain", CSNN_OPTIMIZER_SGD, 0, 1, 0.1f, 0.0f, 0.0f, 0.0f},
        {"sgd momentum step 1", CSNN_OPTIMIZER_SGD, 0, 1, 0.1f, 1e-4f, 0.9f, 0.1f},
        {"sgd momentum step 5", CSNN_OPTIMIZER_SGD, 0, 5, 0.1f, 1e-4f, 0.9f, 0.1f},
        {"sgd nesterov step 2", CSNN_OPTIMIZER_SGD, 1, 2, 0.05f, 0.0f, 0.9f, 0.0f},
    };
    const int64_t sizes[] = {1, 1001, 147584};
    int cpu_has = !cpu_missing("optim_step", (const void *)g_cpu.ops->optim_step);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (size_t si = 0; si < 3; si++) {
            const ocase *oc = &cases[c];
            int64_t n = sizes[si];
            csnn_optim_desc d;
            memset(&d, 0, sizeof d);
            d.kind = oc->kind;
            d.nesterov = oc->nesterov;
            d.step = oc->step;
            d.lr = oc->lr;
            d.beta1 = 0.9f;
            d.beta2 = 0.999f;
            d.eps = 1e-8f;
            d.weight_decay = oc->wd;
            d.momentum = oc->momentum;
            d.dampening = oc->dampening;
            d.step_size = (float)(d.lr / (1.0 - pow(d.beta1, (double)d.step)));
            d.bias_correction2_sqrt = (float)sqrt(1.0 - pow(d.beta2, (double)d.step));
            float *w = fvec(n), *g = fvec(n), *m = fvec(n), *v = fvec(n);
            fill_uniform(w, n, -1, 1);
            fill_uniform(g, n, -0.1, 0.1);
            fill_uniform(m, n, -0.01, 0.01);
            fill_uniform(v, n, 0, 1e-4);
            float *rw = fvec(n), *rm = fvec(n), *rv = fvec(n);
            float *gw = fvec(n), *gm = fvec(n), *gv = fvec(n);
            float *cw = fvec(n), *cm = fvec(n), *cv = fvec(n);
            memcpy(rw, w, (size_t)n * 4);
            memcpy(rm, m, (size_t)n * 4);
            memcpy(rv, v, (size_t)n * 4);
            memcpy(gw, w, (size_t)n * 4);
            memcpy(gm, m, (size_t)n * 4);
            memcpy(gv, v, (size_t)n * 4);
            memcpy(cw, w, (size_t)n * 4);
            memcpy(cm, m, (size_t)n * 4);
            memcpy(cv, v, (size_t)n * 4);
            ref_optim(&d, n, rw, g, rm, rv);
            char what[80];
            snprintf(what, sizeof what, "optim %s n=%lld", oc->name, (long long)n);
            OK(optim_on(&g_gpu, &d, n, gw, g, gm, gv));
            check_close(what, "w cuda vs ref", gw, rw, n, REL_EW, ABS_EW);
            check_close(what, "m cuda vs ref", gm, rm, n, REL_EW, ABS_EW);
            if (oc->kind != CSNN_OPTIMIZER_SGD)
                check_close(what, "v cuda vs ref", gv, rv, n, REL_EW, ABS_EW);
            if (cpu_has && cpu_ran("optim_step", optim_on(&g_cpu, &d, n, cw, g, cm, cv))) {
                check_close(what, "w cuda vs cpu", gw, cw, n, REL_EW, ABS_EW);
                check_close(what, "m cuda vs cpu", gm, cm, n, REL_EW, ABS_EW);
                if (oc->kind != CSNN_OPTIMIZER_SGD)
                    check_close(what, "v cuda vs cpu", gv, cv, n, REL_EW, ABS_EW);
            }
            free(w);
            free(g);
            free(m);
            free(v);
            free(rw);
            free(rm);
            free(rv);
            free(gw);
            free(gm);
            free(gv);
            free(cw);
            free(cm);
            free(cv);
        }
    }
    END();
}

/* ------------------------------------------------------------------------ */
/* errors are statuses, and the device survives them                         */
/* ------------------------------------------------------------------------ */

static void test_errors(void **state)
{
    (void)state;
    const csnn_backend_ops *o = g_gpu.ops;
    void *p = NULL;
    csnn_status st = o->alloc(g_gpu.dev, (size_t)1 << 52, &p);
    assert_int_equal(st, CSNN_ERR_DEVICE_OUT_OF_MEMORY);
    print_message("  oom: %s\n", csnn_last_error_message());
    assert_true(strstr(csnn_last_error_message(), "cuda") != NULL);
    assert_int_equal(o->gemm(g_gpu.dev, 0, 0, -1, 1, 1, 1, NULL, 1, NULL, 1, 0, NULL, 1),
                     CSNN_ERR_INVALID_ARGUMENT);
    csnn_loss_desc ld = {7, 1, 1, 0.0f};
    float *d = (float *)dput(&g_gpu, NULL, 64);
    assert_int_equal(o->loss(g_gpu.dev, &ld, d, (int32_t *)d, d, NULL), CSNN_ERR_INVALID_ARGUMENT);
    double r;
    assert_int_equal(o->reduce(g_gpu.dev, 99, d, 4, &r), CSNN_ERR_INVALID_ARGUMENT);
    /* still usable */
    OK(o->fill(g_gpu.dev, d, 1.0f, 16));
    OK(o->reduce(g_gpu.dev, CSNN_REDUCE_SUM, d, 16, &r));
    assert_true(r == 16.0);
    dfree(&g_gpu, d);
}

/* ------------------------------------------------------------------------ */

static int open_gpu(backend *b, const csnn_backend_ops *ops)
{
    b->ops = ops;
    csnn_status st = ops->open(0, 0, &b->dev);
    if (st != CSNN_OK) {
        fprintf(stderr, "cuda open failed: %s: %s\n", csnn_status_name(st),
                csnn_last_error_message());
        return -1;
    }
    return 0;
}

int main(void)
{
    const char *path = getenv("CSNN_CUDA_MODULE");
    if (!path || !*path) {
        fprintf(stderr, "CSNN_CUDA_MODULE is not set\n");
        return 1;
    }
    void *mod = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!mod) {
        fprintf(stderr, "cannot load %s: %s\n", path, dlerror());
        return 1;
    }
    csnn_backend_module_entry_fn entry;
    *(void **)&entry = dlsym(mod, CSNN_BACKEND_MODULE_ENTRY);
    if (!entry) {
        fprintf(stderr, "%s lacks %s\n", path, CSNN_BACKEND_MODULE_ENTRY);
        return 1;
    }
    const csnn_backend_ops *ops = entry(CSNN_BACKEND_ABI_VERSION, csnn_backend_set_error);
    if (!ops) {
        fprintf(stderr, "module refused: %s\n", csnn_last_error_message());
        return 1;
    }
    int count = 0;
    csnn_status st = ops->device_count(&count);
    if (st != CSNN_OK || count == 0) {
        if (st != CSNN_OK)
            printf("SKIP: no usable CUDA device: device_count failed: %s: %s\n",
                   csnn_status_name(st), csnn_last_error_message());
        else
            printf("SKIP: no usable CUDA device (device_count reports 0: no GPU or no driver)\n");
        return 77;
    }
    if (open_gpu(&g_gpu, ops) != 0) return 1;
    setenv("CSNN_CUDA_CONV_WORKSPACE", "4096", 1);
    int small_ok = open_gpu(&g_gpu_small, ops);
    unsetenv("CSNN_CUDA_CONV_WORKSPACE");
    if (small_ok != 0) return 1;
    g_cpu.ops = &csnn__cpu_backend_ops;
    st = g_cpu.ops->open(0, 2, &g_cpu.dev);
    if (st != CSNN_OK) {
        fprintf(stderr, "cpu open failed: %s\n", csnn_last_error_message());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory),  cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_bias),    cmocka_unit_test(test_axpby),
        cmocka_unit_test(test_reduce),  cmocka_unit_test(test_conv),
        cmocka_unit_test(test_bn),      cmocka_unit_test(test_maxpool),
        cmocka_unit_test(test_elementwise), cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_neuron),  cmocka_unit_test(test_neuron_pool),
        cmocka_unit_test(test_loss),
        cmocka_unit_test(test_optim),   cmocka_unit_test(test_errors),
    };
    /* CSNN_CUDA_TEST_FILTER: run only the tests matching a pattern (cmocka's
     * wildcards, e.g. "test_neuron*") */
    const char *filter = getenv("CSNN_CUDA_TEST_FILTER");
    if (filter && *filter) cmocka_set_test_filter(filter);
    int rc = cmocka_run_group_tests_name("cuda parity", tests, NULL, NULL);
    g_gpu.ops->close(g_gpu.dev);
    g_gpu_small.ops->close(g_gpu_small.dev);
    g_cpu.ops->close(g_cpu.dev);
    return rc;
}
