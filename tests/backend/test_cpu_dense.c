/* test_cpu_dense.c - CPU backend: gemm, bias_add/bias_grad, axpby, reduce,
 * a linear layer by finite differences, describe / set_threads. */
#include <float.h>

#include "backend_test.h"
#include "../../lib/backend/cpu/cpu_internal.h"

/* C = alpha op(A) op(B) + beta C in double, row-major with leading dims. */
static void ref_gemm(int ta, int tb, int m, int n, int k, double alpha, const float *a, int lda,
                     const float *b, int ldb, double beta, const float *c0, int ldc, double *c)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int p = 0; p < k; p++) {
                double av = ta ? a[p * lda + i] : a[i * lda + p];
                double bv = tb ? b[j * ldb + p] : b[p * ldb + j];
                s += av * bv;
            }
            c[i * n + j] = alpha * s + (beta != 0.0 ? beta * c0[i * ldc + j] : 0.0);
        }
}

/* Runs one gemm case on dev and checks it; pads every leading dimension by
 * `pad`. With beta == 0, C starts as NaN (it must not be read). */
static void check_gemm(void *dev, int ta, int tb, int m, int n, int k, float alpha, float beta,
                       int pad, uint64_t seed)
{
    tb_rng r = tb_seed(seed);
    int lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
    size_t na = (size_t)(ta ? k : m) * lda, nb = (size_t)(tb ? n : k) * ldb,
           nc = (size_t)m * ldc;
    float *a = tb_rand_floats(&r, na, -1, 1), *b = tb_rand_floats(&r, nb, -1, 1);
    float *c = tb_rand_floats(&r, nc, -1, 1);
    if (beta == 0.0f) tb_fill(c, nc, NAN);
    float *c0 = tb_floats(nc);
    memcpy(c0, c, nc * sizeof(float));
    double *ref = tb_doubles((size_t)m * n);
    ref_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c0, ldc, ref);
    assert_int_equal(OPS->gemm(dev, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc), CSNN_OK);
    float *got = tb_floats((size_t)m * n);
    for (int i = 0; i < m; i++) {
        memcpy(got + (size_t)i * n, c + (size_t)i * ldc, (size_t)n * sizeof(float));
        for (int j = n; j < ldc; j++) /* the padding is untouched */
            assert_memory_equal(&c[(size_t)i * ldc + j], &c0[(size_t)i * ldc + j], sizeof(float));
    }
    TB_CLOSE(got, ref, (size_t)m * n, 2e-6 * sqrt((double)k + 1), 1e-6);
    free(a), free(b), free(c), free(c0), free(ref), free(got);
}

static void test_gemm_shapes(void **state)
{
    (void)state;
    void *dev = tb_open(2);
    static const int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 9, 33}, {130, 70, 5}, {2, 65, 129}};
    uint64_t seed = 1;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
                check_gemm(dev, ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], 1.0f, 0.0f, 0,
                           seed++);
                check_gemm(dev, ta, tb, shapes[s][0], shapes[s][1], shapes[s][2], -1.5f, 0.5f, 3,
                           seed++);
            }
    OPS->close(dev);
}

/* Shapes big enough to be split into blocks (along n, then along m). */
static void test_gemm_split(void **state)
{
    (void)state;
    void *dev = tb_open(3);
    uint64_t seed = 100;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            check_gemm(dev, ta, tb, 64, 400, 350, 1.0f, 0.0f, 1, seed++);
            check_gemm(dev, ta, tb, 400, 70, 350, 0.5f, 1.0f, 0, seed++);
        }
    OPS->close(dev);
}

/* One product through the skinny kernels on d1 (taken by default) and
 * through the gemm entry on d3: the same bits. */
static void skinny_same(void *d1, void *d3, int ta, int tb, int m, int n, int k, const float *a,
                        int lda, const float *b, int ldb, float *c1, float *c3)
{
    assert_int_equal(
        csnn__cpu_skinny_gemm(d1, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c1, n), 1);
    assert_int_equal(OPS->gemm(d3, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c3, n), CSNN_OK);
    TB_SAME(c1, c3, (size_t)m * n);
}

/* The own kernels for products with a short side (cpu_skinny.c): forced
 * onto every shape they take (mode 2), with tails of every kind (rows and
 * columns not filling a register block, k across the NN and NT blocks),
 * padded leading dimensions and NaN in C (beta 0: never read); then at the
 * shapes they take by default, where 1 and 3 threads must agree bit for
 * bit. Skipped without AVX-512. */
static void test_gemm_skinny(void **state)
{
    (void)state;
    if (!csnn__cpu_use_avx512()) skip();
    void *d1 = tb_open(1), *d3 = tb_open(3);
    static const int shorts[] = {1, 7, 16, 29, 32};
    static const int longs[] = {1, 50, 301};
    static const int ks[] = {1, 17, 130, 1100};
    uint64_t seed = 500;
    csnn__cpu_skinny_mode = 2;
    for (size_t si = 0; si < sizeof shorts / sizeof shorts[0]; si++)
        for (size_t li = 0; li < sizeof longs / sizeof longs[0]; li++)
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
                const int s = shorts[si], l = longs[li], k = ks[ki];
                check_gemm(d3, 0, 0, s, l, k, 1.0f, 0.0f, (int)(seed % 3), seed); /* NN */
                seed++;
                check_gemm(d3, 0, 1, s, l, k, 1.0f, 0.0f, (int)(seed % 3), seed); /* NT */
                seed++;
                check_gemm(d3, 1, 0, l, k, s, 1.0f, 0.0f, (int)(seed % 3), seed); /* TN */
                seed++;
                check_gemm(d3, 0, 0, s, l, k, 0.5f, 1.0f, 1, seed++); /* OpenBLAS */
            }
    csnn__cpu_skinny_mode = 0;
    /* the linear layer of the ANN twin at batch 16, scaled down: taken by
     * default; the same bits on 1 and 3 threads */
    tb_rng r = tb_seed(9);
    const int rows = 16, in = 2000, out = 300;
    float *x = tb_rand_floats(&r, (size_t)rows * in, -1, 1);
    float *w = tb_rand_floats(&r, (size_t)out * in, -1, 1);
    float *g = tb_rand_floats(&r, (size_t)rows * out, -1, 1);
    float *c1 = tb_floats((size_t)out * in), *c3 = tb_floats((size_t)out * in);
    skinny_same(d1, d3, 0, 1, rows, out, in, x, in, w, in, c1, c3);   /* forward */
    skinny_same(d1, d3, 0, 0, rows, in, out, g, out, w, in, c1, c3);   /* input gradient */
    skinny_same(d1, d3, 1, 0, out, in, rows, g, out, x, in, c1, c3);   /* weight gradient */
    /* not taken: beta 1, or a short side longer than 32 */
    assert_int_equal(csnn__cpu_skinny_gemm(d1, 0, 1, rows, out, in, 1.0f, x, in, w, in, 1.0f, c1,
                                           out),
                     0);
    assert_int_equal(csnn__cpu_skinny_gemm(d1, 0, 1, 64, 4, in / 64, 1.0f, x, in / 64, w,
                                           in / 64, 0.0f, c1, 4),
                     0);
    free(x), free(w), free(g), free(c1), free(c3);
    OPS->close(d1);
    OPS->close(d3);
}

static void test_gemm_degenerate(void **state)
{
    (void)state;
    void *dev = tb_open(1);
    float c[6] = {1, 2, 3, 4, 5, 6}, a[1] = {7}, b[1] = {8};
    /* k == 0: C = beta C */
    assert_int_equal(OPS->gemm(dev, 0, 0, 2, 3, 0, 1.0f, a, 1, b, 3, 2.0f, c, 3), CSNN_OK);
    for (int i = 0; i < 6; i++) assert_true(c[i] == 2.0f * (float)(i + 1));
    /* m == 0 or n == 0: nothing is touched, NULLs are fine */
    assert_int_equal(OPS->gemm(dev, 0, 0, 0, 3, 4, 1.0f, NULL, 4, NULL, 3, 0.0f, NULL, 3), CSNN_OK);
    assert_int_equal(OPS->gemm(dev, 0, 0, 2, 0, 4, 1.0f, NULL, 4, NULL, 1, 0.0f, NULL, 1), CSNN_OK);
    TB_ERROR(OPS->gemm(dev, 0, 0, -1, 3, 4, 1.0f, a, 4, b, 3, 0.0f, c, 3),
             CSNN_ERR_INVALID_ARGUMENT, "gemm");
    TB_ERROR(OPS->gemm(dev, 0, 0, 2, 3, 4, 1.0f, a, 3, b, 3, 0.0f, c, 3),
             CSNN_ERR_INVALID_ARGUMENT, "lda 3");
    TB_ERROR(OPS->gemm(dev, 0, 1, 2, 3, 4, 1.0f, a, 4, b, 3, 0.0f, c, 3),
             CSNN_ERR_INVALID_ARGUMENT, "ldb 3");
    TB_ERROR(OPS->gemm(dev, 0, 0, 2, 3, 4, 1.0f, a, 4, NULL, 3, 0.0f, c, 3),
             CSNN_ERR_INVALID_ARGUMENT, "'b'");
    OPS->close(dev);
}

static void test_gemm_threads_deterministic(void **state)
{
    (void)state;
    void *d1 = tb_open(1), *d3 = tb_open(3);
    tb_rng r = tb_seed(7);
    const int m = 64, n = 1024, k = 256;
    float *a = tb_rand_floats(&r, (size_t)m * k, -1, 1);
    float *b = tb_rand_floats(&r, (size_t)n * k, -1, 1);
    float *c1 = tb_floats((size_t)m * n), *c3 = tb_floats((size_t)m * n);
    assert_int_equal(OPS->gemm(d1, 0, 1, m, n, k, 1.0f, a, k, b, k, 0.0f, c1, n), CSNN_OK);
    assert_int_equal(OPS->gemm(d3, 0, 1, m, n, k, 1.0f, a, k, b, k, 0.0f, c3, n), CSNN_OK);
    TB_SAME(c1, c3, (size_t)m * n);
    free(a), free(b), free(c1), free(c3);
    OPS->close(d1);
    OPS->close(d3);
}

static void check_bias(void *dev, int outer, int channels, int inner, uint64_t seed)
{
    tb_rng r = tb_seed(seed);
    size_t n = (size_t)outer * channels * inner;
    float *y = tb_rand_floats(&r, n, -2, 2), *b = tb_rand_floats(&r, (size_t)channels, -1, 1);
    double *ref = tb_doubles(n), *dbref = tb_doubles((size_t)channels);
    for (int o = 0; o < outer; o++)
        for (int c = 0; c < channels; c++)
            for (int i = 0; i < inner; i++) {
                size_t e = ((size_t)o * channels + c) * inner + i;
                ref[e] = (double)y[e] + b[c];
                dbref[c] += y[e];
            }
    float *db = tb_floats((size_t)channels);
    tb_fill(db, (size_t)channels, NAN);
    assert_int_equal(OPS->bias_grad(dev, y, db, outer, channels, inner), CSNN_OK);
    TB_CLOSE(db, dbref, (size_t)channels, 1e-6, 1e-6);
    /* every instruction-set variant: the same bits */
    float *db2 = tb_floats((size_t)channels);
    for (int isa = CPU_ISA_BASE; isa < CPU_ISA_AVX512; isa++) {
        csnn__cpu_isa_cap = isa;
        assert_int_equal(OPS->bias_grad(dev, y, db2, outer, channels, inner), CSNN_OK);
        csnn__cpu_isa_cap = CPU_ISA_AVX512;
        TB_SAME(db, db2, (size_t)channels);
    }
    free(db2);
    assert_int_equal(OPS->bias_add(dev, y, b, outer, channels, inner), CSNN_OK);
    TB_CLOSE(y, ref, n, 1e-7, 0);
    free(y), free(b), free(ref), free(dbref), free(db);
}

static void test_bias(void **state)
{
    (void)state;
    void *dev = tb_open(3);
    check_bias(dev, 3, 5, 7, 1);
    check_bias(dev, 64, 1152, 1, 2);
    check_bias(dev, 7, 3, 900, 3);
    check_bias(dev, 1, 37, 13, 4);
    check_bias(dev, 500, 33, 17, 5);
    float y[2] = {1, 2};
    assert_int_equal(OPS->bias_add(dev, y, NULL, 0, 2, 1), CSNN_OK);
    TB_ERROR(OPS->bias_add(dev, y, NULL, 1, 2, 1), CSNN_ERR_INVALID_ARGUMENT, "bias_add");
    TB_ERROR(OPS->bias_grad(dev, y, y, 1, -2, 1), CSNN_ERR_INVALID_ARGUMENT, "channels");
    OPS->close(dev);
}

/* ---- a linear layer y = x W^T + b, checked by finite differences ---- */

typedef struct {
    int n, f, o;
    double *x, *w, *b, *r; /* r: the weights of L = sum r y */
} linear_case;

static double linear_loss(void *ctx)
{
    const linear_case *c = ctx;
    double l = 0.0;
    for (int i = 0; i < c->n; i++)
        for (int j = 0; j < c->o; j++) {
            double y = c->b[j];
            for (int p = 0; p < c->f; p++) y += c->x[i * c->f + p] * c->w[j * c->f + p];
            l += c->r[i * c->o + j] * y;
        }
    return l;
}

static void test_linear_fd(void **state)
{
    (void)state;
    void *dev = tb_open(2);
    tb_rng r = tb_seed(11);
    const int n = 3, f = 5, o = 4;
    float *x = tb_rand_floats(&r, n * f, -1, 1), *w = tb_rand_floats(&r, o * f, -1, 1);
    float *b = tb_rand_floats(&r, o, -1, 1), *dy = tb_rand_floats(&r, n * o, -1, 1);
    float *y = tb_floats(n * o), *dx = tb_floats(n * f), *dw = tb_floats(o * f), *db = tb_floats(o);
    linear_case c = {n, f, o, tb_widen(x, n * f), tb_widen(w, o * f), tb_widen(b, o),
                     tb_widen(dy, n * o)};
    /* forward: y = x W^T + b */
    assert_int_equal(OPS->gemm(dev, 0, 1, n, o, f, 1.0f, x, f, w, f, 0.0f, y, o), CSNN_OK);
    assert_int_equal(OPS->bias_add(dev, y, b, n, o, 1), CSNN_OK);
    double *yref = tb_doubles(n * o);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < o; j++) {
            yref[i * o + j] = c.b[j];
            for (int p = 0; p < f; p++) yref[i * o + j] += c.x[i * f + p] * c.w[j * f + p];
        }
    TB_CLOSE(y, yref, n * o, 1e-6, 1e-7);
    /* backward: dx = dy W, dW = dy^T x, db = column sums of dy */
    assert_int_equal(OPS->gemm(dev, 0, 0, n, f, o, 1.0f, dy, o, w, f, 0.0f, dx, f), CSNN_OK);
    assert_int_equal(OPS->gemm(dev, 1, 0, o, f, n, 1.0f, dy, o, x, f, 0.0f, dw, f), CSNN_OK);
    assert_int_equal(OPS->bias_grad(dev, dy, db, n, o, 1), CSNN_OK);
    double *g = tb_doubles(o * f);
    tb_fd_grad(linear_loss, &c, c.x, n * f, g);
    TB_CLOSE(dx, g, n * f, 1e-6, 1e-7);
    tb_fd_grad(linear_loss, &c, c.w, o * f, g);
    TB_CLOSE(dw, g, o * f, 1e-6, 1e-7);
    tb_fd_grad(linear_loss, &c, c.b, o, g);
    TB_CLOSE(db, g, o, 1e-6, 1e-7);
    free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db);
    free(c.x), free(c.w), free(c.b), free(c.r), free(yref), free(g);
    OPS->close(dev);
}

static void test_axpby(void **state)
{
    (void)state;
    void *dev = tb_open(3);
    tb_rng r = tb_seed(21);
    const size_t n = 100003;
    float *x = tb_rand_floats(&r, n, -3, 3), *y = tb_rand_floats(&r, n, -3, 3);
    double *ref = tb_doubles(n);
    for (size_t i = 0; i < n; i++) ref[i] = 0.25 * x[i] - 1.5 * y[i];
    assert_int_equal(OPS->axpby(dev, (int64_t)n, 0.25f, x, -1.5f, y), CSNN_OK);
    TB_CLOSE(y, ref, n, 2e-7, 0);
    /* b == 0: y is not read (NaN stays out) */
    tb_fill(y, n, NAN);
    for (size_t i = 0; i < n; i++) ref[i] = 2.0 * x[i];
    assert_int_equal(OPS->axpby(dev, (int64_t)n, 2.0f, x, 0.0f, y), CSNN_OK);
    TB_CLOSE(y, ref, n, 0, 0);
    TB_ERROR(OPS->axpby(dev, -1, 1.0f, x, 0.0f, y), CSNN_ERR_INVALID_ARGUMENT, "axpby");
    free(x), free(y), free(ref);
    OPS->close(dev);
}

static void test_reduce(void **state)
{
    (void)state;
    void *d1 = tb_open(1), *d3 = tb_open(3);
    tb_rng r = tb_seed(31);
    const size_t n = 300001; /* several chunks */
    float *x = tb_rand_floats(&r, n, -1, 1);
    for (size_t i = 0; i < n; i += 7) x[i] = 0.0f;
    double sum = 0, sq = 0, nz = 0;
    for (size_t i = 0; i < n; i++) {
        sum += x[i];
        sq += (double)x[i] * x[i];
        nz += x[i] != 0.0f;
    }
    double got, got3;
    assert_int_equal(OPS->reduce(d1, CSNN_REDUCE_SUM, x, (int64_t)n, &got), CSNN_OK);
    assert_true(fabs(got - sum) <= 1e-9 * fabs(sum) + 1e-9);
    assert_int_equal(OPS->reduce(d3, CSNN_REDUCE_SUM, x, (int64_t)n, &got3), CSNN_OK);
    assert_memory_equal(&got, &got3, sizeof got);
    assert_int_equal(OPS->reduce(d3, CSNN_REDUCE_SUM_SQUARES, x, (int64_t)n, &got), CSNN_OK);
    assert_true(fabs(got - sq) <= 1e-12 * sq);
    assert_int_equal(OPS->reduce(d3, CSNN_REDUCE_COUNT_NONZERO, x, (int64_t)n, &got), CSNN_OK);
    assert_true(got == nz);
    x[9] = FLT_MAX, x[10] = -FLT_MAX, x[11] = 1e-40f, x[12] = -0.0f; /* finite */
    assert_int_equal(OPS->reduce(d3, CSNN_REDUCE_COUNT_NONFINITE, x, (int64_t)n, &got), CSNN_OK);
    assert_true(got == 0.0);
    /* every instruction-set variant: the same bits */
    for (int kind = CSNN_REDUCE_SUM; kind <= CSNN_REDUCE_COUNT_NONZERO; kind++) {
        double best, other;
        assert_int_equal(OPS->reduce(d3, kind, x, (int64_t)n, &best), CSNN_OK);
        for (int isa = CPU_ISA_BASE; isa < CPU_ISA_AVX512; isa++) {
            csnn__cpu_isa_cap = isa;
            assert_int_equal(OPS->reduce(d3, kind, x, (int64_t)n, &other), CSNN_OK);
            csnn__cpu_isa_cap = CPU_ISA_AVX512;
            assert_memory_equal(&best, &other, sizeof best);
        }
    }
    x[5] = NAN, x[70000] = INFINITY, x[n - 1] = -INFINITY, x[200000] = -NAN;
    assert_int_equal(OPS->reduce(d3, CSNN_REDUCE_COUNT_NONFINITE, x, (int64_t)n, &got), CSNN_OK);
    assert_true(got == 4.0);
    for (int isa = CPU_ISA_BASE; isa < CPU_ISA_AVX512; isa++) {
        csnn__cpu_isa_cap = isa;
        assert_int_equal(OPS->reduce(d1, CSNN_REDUCE_COUNT_NONFINITE, x, (int64_t)n, &got),
                         CSNN_OK);
        csnn__cpu_isa_cap = CPU_ISA_AVX512;
        assert_true(got == 4.0);
    }
    assert_int_equal(OPS->reduce(d1, CSNN_REDUCE_SUM, x, (int64_t)n, &got), CSNN_OK);
    assert_true(isnan(got));
    float small[4] = {1.5f, -2.0f, 0.0f, 4.0f};
    assert_int_equal(OPS->reduce(d1, CSNN_REDUCE_SUM, small, 4, &got), CSNN_OK);
    assert_true(got == 3.5);
    assert_int_equal(OPS->reduce(d1, CSNN_REDUCE_SUM_SQUARES, small, 4, &got), CSNN_OK);
    assert_true(got == 22.25);
    assert_int_equal(OPS->reduce(d1, CSNN_REDUCE_COUNT_NONZERO, small, 4, &got), CSNN_OK);
    assert_true(got == 3.0);
    got = 5;
    assert_int_equal(OPS->reduce(d1, CSNN_REDUCE_SUM, NULL, 0, &got), CSNN_OK);
    assert_true(got == 0.0);
    TB_ERROR(OPS->reduce(d1, 9, small, 4, &got), CSNN_ERR_INVALID_ARGUMENT, "kind 9");
    free(x);
    OPS->close(d1);
    OPS->close(d3);
}

static void test_describe_and_threads(void **state)
{
    (void)state;
    void *dev = tb_open(2);
    char buf[160];
    assert_int_equal(OPS->describe(dev, buf, sizeof buf), CSNN_OK);
    assert_non_null(strstr(buf, "2 threads"));
    assert_int_equal(OPS->set_threads(dev, 3), CSNN_OK);
    assert_int_equal(OPS->describe(dev, buf, sizeof buf), CSNN_OK);
    assert_non_null(strstr(buf, "3 threads"));
    check_gemm(dev, 0, 1, 64, 400, 350, 1.0f, 0.0f, 0, 5); /* the new pool works */
    assert_int_equal(OPS->set_threads(dev, 1), CSNN_OK);
    assert_int_equal(OPS->describe(dev, buf, sizeof buf), CSNN_OK);
    assert_non_null(strstr(buf, "1 thread"));
    char tiny[4];
    assert_int_equal(OPS->describe(dev, tiny, sizeof tiny), CSNN_OK);
    assert_true(strlen(tiny) == 3);
    OPS->close(dev);
}

/* The lifecycle and memory entries the compute entries rely on. */
static void test_lifecycle_and_memory(void **state)
{
    (void)state;
    int count = 0;
    assert_int_equal(OPS->device_count(&count), CSNN_OK);
    assert_int_equal(count, 1);
    void *bad = (void *)1;
    TB_ERROR(OPS->open(1, 1, &bad), CSNN_ERR_BACKEND_UNAVAILABLE, "cpu");
    assert_null(bad);
    void *dev = tb_open(0); /* 0: all cores */
    void *p = NULL, *q = NULL;
    TB_ERROR(OPS->alloc(dev, 0, &p), CSNN_ERR_INVALID_ARGUMENT, "alloc");
    assert_int_equal(OPS->alloc(dev, 1000, &p), CSNN_OK);
    assert_int_equal(OPS->alloc(dev, 1000, &q), CSNN_OK);
    assert_true(((uintptr_t)p & 63) == 0 && ((uintptr_t)q & 63) == 0);
    float host[250], back[250];
    for (int i = 0; i < 250; i++) host[i] = (float)i - 0.5f;
    assert_int_equal(OPS->upload(dev, p, host, sizeof host), CSNN_OK);
    assert_int_equal(OPS->copy(dev, q, p, sizeof host), CSNN_OK);
    assert_int_equal(OPS->synchronize(dev), CSNN_OK);
    assert_int_equal(OPS->download(dev, back, q, sizeof back), CSNN_OK);
    assert_memory_equal(host, back, sizeof host);
    assert_int_equal(OPS->fill(dev, q, 2.5f, 250), CSNN_OK);
    assert_int_equal(OPS->download(dev, back, q, sizeof back), CSNN_OK);
    for (int i = 0; i < 250; i++) assert_true(back[i] == 2.5f);
    OPS->free(dev, p);
    OPS->free(dev, q);
    OPS->free(dev, NULL);
    OPS->close(dev);
    OPS->close(NULL);
    /* a fill big enough to run on several threads */
    dev = tb_open(3);
    const size_t n = 200001;
    float *big = tb_floats(n);
    assert_int_equal(OPS->fill(dev, big, -1.25f, (int64_t)n), CSNN_OK);
    for (size_t i = 0; i < n; i++) assert_true(big[i] == -1.25f);
    TB_ERROR(OPS->fill(dev, big, 0.0f, -1), CSNN_ERR_INVALID_ARGUMENT, "fill");
    free(big);
    OPS->close(dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle_and_memory),
        cmocka_unit_test(test_gemm_shapes),
        cmocka_unit_test(test_gemm_split),
        cmocka_unit_test(test_gemm_skinny),
        cmocka_unit_test(test_gemm_degenerate),
        cmocka_unit_test(test_gemm_threads_deterministic),
        cmocka_unit_test(test_bias),
        cmocka_unit_test(test_linear_fd),
        cmocka_unit_test(test_axpby),
        cmocka_unit_test(test_reduce),
        cmocka_unit_test(test_describe_and_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
