/* test_cpu_conv.c - CPU backend: conv2d forward against a naive double
 * convolution, backward (dx, dw, db) against finite differences of it, on
 * odd shapes; the input gradient's paths (Winograd's F(2x2, 3x3) with its
 * AVX-512 and portable kernels, tap by tap, col2im); workspace;
 * thread-count independence; descriptor errors. */
#include "backend_test.h"
#include "../../lib/backend/cpu/cpu_conv.h"

typedef struct {
    csnn_conv2d_desc d;
    double *x, *w, *b, *r; /* r: the weights of L = sum r y */
} conv_case;

static csnn_conv2d_desc make_desc(int n, int c_in, int h, int w, int c_out, int kh, int kw, int sh,
                                  int sw, int ph, int pw, int bias)
{
    csnn_conv2d_desc d = {.n = n, .c_in = c_in, .h_in = h, .w_in = w, .c_out = c_out, .kh = kh,
                          .kw = kw, .stride_h = sh, .stride_w = sw, .pad_h = ph, .pad_w = pw,
                          .has_bias = bias};
    d.h_out = (h + 2 * ph - kh) / sh + 1;
    d.w_out = (w + 2 * pw - kw) / sw + 1;
    return d;
}

static size_t x_count(const csnn_conv2d_desc *d)
{
    return (size_t)d->n * d->c_in * d->h_in * d->w_in;
}
static size_t y_count(const csnn_conv2d_desc *d)
{
    return (size_t)d->n * d->c_out * d->h_out * d->w_out;
}
static size_t w_count(const csnn_conv2d_desc *d)
{
    return (size_t)d->c_out * d->c_in * d->kh * d->kw;
}

/* The definition: y[n,o,i,j] = b[o] + sum x[n,c,i*sh-ph+a,j*sw-pw+e] w[o,c,a,e]. */
static void ref_conv(const csnn_conv2d_desc *d, const double *x, const double *w, const double *b,
                     double *y)
{
    for (int n = 0; n < d->n; n++)
        for (int o = 0; o < d->c_out; o++)
            for (int i = 0; i < d->h_out; i++)
                for (int j = 0; j < d->w_out; j++) {
                    double s = d->has_bias ? b[o] : 0.0;
                    for (int c = 0; c < d->c_in; c++)
                        for (int a = 0; a < d->kh; a++)
                            for (int e = 0; e < d->kw; e++) {
                                int ih = i * d->stride_h - d->pad_h + a;
                                int iw = j * d->stride_w - d->pad_w + e;
                                if (ih < 0 || ih >= d->h_in || iw < 0 || iw >= d->w_in) continue;
                                s += x[((n * d->c_in + c) * d->h_in + ih) * d->w_in + iw] *
                                     w[((o * d->c_in + c) * d->kh + a) * d->kw + e];
                            }
                    y[((n * d->c_out + o) * d->h_out + i) * d->w_out + j] = s;
                }
}

static double conv_loss(void *ctx)
{
    const conv_case *c = ctx;
    size_t ny = y_count(&c->d);
    double *y = tb_doubles(ny), l = 0.0;
    ref_conv(&c->d, c->x, c->w, c->b, y);
    for (size_t i = 0; i < ny; i++) l += c->r[i] * y[i];
    free(y);
    return l;
}

static void *alloc_workspace(void *dev, const csnn_conv2d_desc *d)
{
    size_t bytes = 0;
    assert_int_equal(OPS->conv2d_workspace(dev, d, &bytes), CSNN_OK);
    assert_true(bytes > 0);
    void *ws = NULL;
    assert_int_equal(OPS->alloc(dev, bytes, &ws), CSNN_OK);
    memset(ws, 0xff, bytes); /* NaN garbage: must not leak into results */
    return ws;
}

static void check_conv(void *dev, csnn_conv2d_desc d, uint64_t seed)
{
    tb_rng r = tb_seed(seed);
    size_t nx = x_count(&d), ny = y_count(&d), nw = w_count(&d), nb = (size_t)d.c_out;
    float *x = tb_rand_floats(&r, nx, -1, 1), *w = tb_rand_floats(&r, nw, -1, 1);
    float *b = tb_rand_floats(&r, nb, -1, 1), *dy = tb_rand_floats(&r, ny, -1, 1);
    float *y = tb_floats(ny), *dx = tb_floats(nx), *dw = tb_floats(nw), *db = tb_floats(nb);
    float *dw2 = tb_floats(nw), *db2 = tb_floats(nb);
    void *ws = alloc_workspace(dev, &d);
    conv_case c = {d, tb_widen(x, nx), tb_widen(w, nw), tb_widen(b, nb), tb_widen(dy, ny)};

    tb_fill(y, ny, NAN);
    assert_int_equal(OPS->conv2d_forward(dev, &d, x, w, d.has_bias ? b : NULL, y, ws), CSNN_OK);
    double *yref = tb_doubles(ny);
    ref_conv(&d, c.x, c.w, c.b, yref);
    double ckk = (double)d.c_in * d.kh * d.kw;
    TB_CLOSE(y, yref, ny, 1e-6 * sqrt(ckk), 1e-6);

    /* dx, dw and db are overwritten: start them as NaN */
    tb_fill(dx, nx, NAN), tb_fill(dw, nw, NAN), tb_fill(db, nb, NAN);
    assert_int_equal(OPS->conv2d_backward(dev, &d, x, w, dy, dx, dw, d.has_bias ? db : NULL, ws),
                     CSNN_OK);
    double *g = tb_doubles(nx > nw ? nx : nw);
    double tol = 2e-6 * sqrt((double)ny / d.c_in);
    tb_fd_grad(conv_loss, &c, c.x, nx, g);
    TB_CLOSE(dx, g, nx, tol, 1e-6);
    tb_fd_grad(conv_loss, &c, c.w, nw, g);
    TB_CLOSE(dw, g, nw, tol, 1e-6);
    if (d.has_bias) {
        tb_fd_grad(conv_loss, &c, c.b, nb, g);
        TB_CLOSE(db, g, nb, tol, 1e-6);
    }
    /* without dx: the same dw and db */
    assert_int_equal(
        OPS->conv2d_backward(dev, &d, x, w, dy, NULL, dw2, d.has_bias ? db2 : NULL, ws), CSNN_OK);
    TB_SAME(dw, dw2, nw);
    if (d.has_bias) TB_SAME(db, db2, nb);

    OPS->free(dev, ws);
    free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db), free(dw2),
        free(db2), free(yref), free(g);
    free(c.x), free(c.w), free(c.b), free(c.r);
}

static const int shapes[][12] = {
    /* n c_in h  w c_out kh kw sh sw ph pw bias */
    {2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1},  /* k3 p1, odd sizes */
    {3, 2, 9, 8, 5, 3, 3, 2, 2, 0, 0, 1},  /* stride 2, pad 0 */
    {2, 3, 8, 7, 3, 5, 5, 2, 2, 2, 2, 0},  /* k5 p2 s2, no bias */
    {2, 4, 5, 5, 3, 1, 1, 1, 1, 0, 0, 1},  /* 1x1: the direct path */
    {1, 3, 6, 9, 2, 3, 2, 1, 2, 1, 0, 1},  /* non-square kernel and strides */
    {19, 2, 5, 4, 3, 3, 3, 1, 1, 1, 1, 1}, /* more images than lanes */
    {2, 1, 4, 5, 2, 1, 1, 2, 2, 0, 0, 1},  /* 1x1 with stride 2 */
    {2, 2, 6, 6, 2, 3, 3, 3, 3, 2, 2, 1},  /* stride 3, pad 2 */
    {1, 3, 3, 3, 2, 3, 3, 1, 1, 0, 0, 0},  /* a 1x1 output */
    {2, 1, 5, 5, 3, 5, 3, 1, 1, 2, 1, 1},  /* c_in 1, k5x3 */
    {2, 3, 8, 9, 4, 3, 3, 1, 1, 0, 0, 1},  /* k3 p0: dx tap by tap without padding */
    {2, 2, 6, 7, 3, 3, 3, 1, 1, 2, 0, 1},  /* pad 2 x 0 */
};

/* Which shapes take Winograd's input gradient, which the tap-by-tap one
 * (the others col2im; Winograd before taps where both can). */
static void test_conv_dx_paths(void **state)
{
    (void)state;
    static const struct {
        int s[12], taps, wino;
    } cases[] = {
        {{2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1}, 1, 1},
        {{2, 3, 8, 9, 4, 3, 3, 1, 1, 0, 0, 1}, 1, 1},
        {{2, 1, 5, 5, 3, 5, 3, 1, 1, 2, 1, 1}, 1, 0}, /* 5x3 */
        {{3, 2, 9, 8, 5, 3, 3, 2, 2, 0, 0, 1}, 0, 0}, /* stride 2 */
        {{2, 2, 6, 6, 2, 3, 3, 3, 3, 2, 2, 1}, 0, 0}, /* stride 3 */
        {{1, 3, 3, 3, 2, 3, 3, 1, 1, 0, 0, 0}, 0, 1}, /* small: the col buffer grows */
        {{2, 4, 5, 5, 3, 1, 1, 1, 1, 0, 0, 1}, 0, 0}, /* direct */
        {{2, 1, 96, 96, 64, 3, 3, 1, 1, 1, 1, 1}, 0, 0}, /* c_in 1, c_out 64: too large */
        {{64, 128, 24, 24, 128, 3, 3, 1, 1, 1, 1, 1}, 1, 1}, /* the reference conv2 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int *s = cases[i].s;
        csnn_conv2d_desc d =
            make_desc(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9], s[10], s[11]);
        conv_plan p;
        csnn__cpu_conv_plan(&d, &p);
        assert_int_equal(p.taps_dx, cases[i].taps);
        assert_int_equal(p.wino_ok, cases[i].wino);
        assert_int_equal(p.wino_dx, cases[i].wino);
        if (p.wino_ok) assert_true(csnn__cpu_wino_scratch_floats(&d) <= p.col_floats);
        csnn__cpu_wino_mode = 2; /* turned off: the same buffers, taps or col2im */
        conv_plan q;
        csnn__cpu_conv_plan(&d, &q);
        csnn__cpu_wino_mode = 0;
        assert_int_equal(q.wino_dx, 0);
        assert_int_equal(q.wino_ok, p.wino_ok);
        assert_true(q.col_floats == p.col_floats);
    }
}

/* Winograd's input gradient on shapes that reach each of its edges: 2 x 2
 * blocks cut at odd heights and widths, paddings 0, 1, 2 and mixed, more
 * than 16 tiles in a row (two vectors), tile counts that end on a panel of
 * 16, 32 or 48, input channels not a multiple of the block of 8; with the
 * AVX-512 kernels where the CPU has them and the portable ones: against
 * finite differences of the double reference. */
static void test_conv_winograd(void **state)
{
    (void)state;
    static const int wshapes[][12] = {
        /* n c_in h  w c_out kh kw sh sw ph pw bias */
        {1, 9, 1, 34, 2, 3, 3, 1, 1, 1, 1, 1},  /* 1 x 17 tiles: a panel of 32; c_in 9 */
        {1, 5, 14, 13, 3, 3, 3, 1, 1, 2, 2, 0}, /* pad 2, 7 x 7 tiles: 48 + 16 */
        {3, 8, 5, 3, 9, 3, 3, 1, 1, 0, 1, 1},   /* pad 0 x 1, a panel of 16 */
        {1, 3, 8, 24, 2, 3, 3, 1, 1, 1, 0, 1},  /* pad 1 x 0, 4 x 12 tiles: 48 */
        {1, 17, 4, 4, 9, 3, 3, 1, 1, 1, 1, 1},  /* 3 channel blocks */
    };
    void *dev = tb_open(2);
    for (int isa = CPU_ISA_AVX512; isa >= CPU_ISA_BASE; isa -= 2)
        for (size_t i = 0; i < sizeof wshapes / sizeof wshapes[0]; i++) {
            const int *s = wshapes[i];
            csnn_conv2d_desc d = make_desc(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8],
                                           s[9], s[10], s[11]);
            conv_plan p;
            csnn__cpu_conv_plan(&d, &p);
            assert_int_equal(p.wino_dx, 1);
            csnn__cpu_isa_cap = isa;
            check_conv(dev, d, 100 + i);
            csnn__cpu_isa_cap = CPU_ISA_AVX512;
        }
    OPS->close(dev);
}

static void test_conv_shapes(void **state)
{
    (void)state;
    void *dev = tb_open(2);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int *s = shapes[i];
        check_conv(dev, make_desc(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9], s[10],
                                  s[11]),
                   i + 1);
    }
    OPS->close(dev);
}

/* The reference model's conv shape in miniature: n = T*N images, 3x3 p1;
 * the same results with 1 and 3 threads. */
static void test_conv_threads_deterministic(void **state)
{
    (void)state;
    void *d1 = tb_open(1), *d3 = tb_open(3);
    csnn_conv2d_desc d = make_desc(20, 8, 12, 12, 16, 3, 3, 1, 1, 1, 1, 1);
    tb_rng r = tb_seed(77);
    size_t nx = x_count(&d), ny = y_count(&d), nw = w_count(&d), nb = (size_t)d.c_out;
    float *x = tb_rand_floats(&r, nx, 0, 1), *w = tb_rand_floats(&r, nw, -1, 1);
    float *b = tb_rand_floats(&r, nb, -1, 1), *dy = tb_rand_floats(&r, ny, -1, 1);
    float *out[2][4];
    void *devs[2] = {d1, d3};
    for (int k = 0; k < 2; k++) {
        void *ws = alloc_workspace(devs[k], &d);
        out[k][0] = tb_floats(ny), out[k][1] = tb_floats(nx), out[k][2] = tb_floats(nw),
        out[k][3] = tb_floats(nb);
        assert_int_equal(OPS->conv2d_forward(devs[k], &d, x, w, b, out[k][0], ws), CSNN_OK);
        assert_int_equal(OPS->conv2d_backward(devs[k], &d, x, w, dy, out[k][1], out[k][2],
                                              out[k][3], ws),
                         CSNN_OK);
        OPS->free(devs[k], ws);
    }
    TB_SAME(out[0][0], out[1][0], ny);
    TB_SAME(out[0][1], out[1][1], nx);
    TB_SAME(out[0][2], out[1][2], nw);
    TB_SAME(out[0][3], out[1][3], nb);
    /* and it is right: spot-check the forward */
    double *yref = tb_doubles(ny), *xd = tb_widen(x, nx), *wd = tb_widen(w, nw);
    double *bd = tb_widen(b, nb);
    ref_conv(&d, xd, wd, bd, yref);
    TB_CLOSE(out[0][0], yref, ny, 1e-5, 1e-6);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 4; i++) free(out[k][i]);
    free(x), free(w), free(b), free(dy), free(yref), free(xd), free(wd), free(bd);
    OPS->close(d1);
    OPS->close(d3);
}

static void test_conv_errors(void **state)
{
    (void)state;
    void *dev = tb_open(1);
    size_t bytes;
    csnn_conv2d_desc d = make_desc(2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1);
    csnn_conv2d_desc bad = d;
    bad.h_out = 8;
    TB_ERROR(OPS->conv2d_workspace(dev, &bad, &bytes), CSNN_ERR_SHAPE, "conv2d_workspace");
    bad = d;
    bad.pad_w = -1;
    TB_ERROR(OPS->conv2d_workspace(dev, &bad, &bytes), CSNN_ERR_INVALID_ARGUMENT, "pad 1x-1");
    bad = d;
    bad.stride_h = 0;
    float v[1];
    TB_ERROR(OPS->conv2d_forward(dev, &bad, v, v, v, v, v), CSNN_ERR_INVALID_ARGUMENT,
             "conv2d_forward");
    TB_ERROR(OPS->conv2d_forward(dev, &d, v, v, NULL, v, v), CSNN_ERR_INVALID_ARGUMENT, "'b'");
    TB_ERROR(OPS->conv2d_backward(dev, &d, v, v, v, v, NULL, v, v), CSNN_ERR_INVALID_ARGUMENT,
             "'dw'");
    bad = make_desc(1, 1, 2, 2, 1, 3, 3, 1, 1, 0, 0, 0); /* kernel larger than the input */
    bad.h_out = bad.w_out = 1;
    TB_ERROR(OPS->conv2d_workspace(dev, &bad, &bytes), CSNN_ERR_SHAPE, "output");
    /* an empty batch: dw and db are zero */
    csnn_conv2d_desc empty = make_desc(0, 1, 3, 3, 2, 3, 3, 1, 1, 1, 1, 1);
    float dw[18], db[2];
    tb_fill(dw, 18, NAN), tb_fill(db, 2, NAN);
    assert_int_equal(OPS->conv2d_backward(dev, &empty, NULL, NULL, NULL, NULL, dw, db, NULL),
                     CSNN_OK);
    for (int i = 0; i < 18; i++) assert_true(dw[i] == 0.0f);
    assert_true(db[0] == 0.0f && db[1] == 0.0f);
    OPS->close(dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_shapes),
        cmocka_unit_test(test_conv_dx_paths),
        cmocka_unit_test(test_conv_winograd),
        cmocka_unit_test(test_conv_threads_deterministic),
        cmocka_unit_test(test_conv_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
