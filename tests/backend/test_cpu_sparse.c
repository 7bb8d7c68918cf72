/* test_cpu_sparse.c - CPU backend: the spike-sparse convolution and linear
 * entries against the dense entries of the same backend, on spike inputs
 * (0/1 and 0/2) at densities 0 .. 1, with every kernel the entries have: the
 * density-chosen path, the sparse kernels forced, the dense path forced, and
 * the portable kernels forced on CPUs that have AVX-512
 * (csnn__cpu_isa_cap). Odd shapes, stride 2, padding 0/1/2, kernels 1/3/5
 * and non-square, c_in 1/3/many, several output tiles, uneven lanes;
 * results within float rounding of the dense ones, db bit for bit and dx
 * too (the same code) except where the AMX input gradient or Winograd's
 * portable kernels run (then within float rounding); 1 vs 3 threads bit for
 * bit; workspaces full of NaN garbage; argument errors. On CPUs with
 * AMX-BF16, the AMX kernels (cpu_amx.c) also directly against double
 * references. */
#include "backend_test.h"
#include "../../lib/backend/cpu/cpu_amx.h"
#include "../../lib/backend/cpu/cpu_conv.h"
#include "../../lib/backend/cpu/cpu_internal.h"

static const double densities[] = {0.0, 0.01, 0.1, 0.3, 0.7, 1.0};
#define N_DENS (sizeof densities / sizeof densities[0])

/* The kernel choices each case runs: {sparse mode, highest instruction set}
 * (the AVX-512 kernels where the CPU has them, the portable ones). */
static const int modes[][2] = {{0, CPU_ISA_AVX512}, {1, CPU_ISA_AVX512}, {2, CPU_ISA_AVX512},
                               {0, CPU_ISA_BASE},   {1, CPU_ISA_BASE}};
#define N_MODES (sizeof modes / sizeof modes[0])

static void set_mode(int k)
{
    csnn__cpu_sparse_mode = modes[k][0];
    csnn__cpu_isa_cap = modes[k][1];
}

static void reset_mode(void)
{
    csnn__cpu_sparse_mode = 0;
    csnn__cpu_isa_cap = CPU_ISA_AVX512;
}

static float *spikes(tb_rng *r, size_t n, double density, float value)
{
    float *x = tb_floats(n);
    for (size_t i = 0; i < n; i++) x[i] = tb_uniform(r) < density ? value : 0.0f;
    return x;
}

/* max |got - want| <= rtol * max|want| + atol, want as floats */
static void close_at(const float *got, const float *want, size_t n, double rtol, double atol,
                     const char *what, const char *file, int line)
{
    double *ref = tb_widen(want, n);
    tb_close_at(got, ref, n, rtol, atol, what, file, line);
    free(ref);
}
#define CLOSE(got, want, n, rtol, atol)                                                            \
    close_at((got), (want), (n), (rtol), (atol), #got, __FILE__, __LINE__)

/* ------------------------------------------------------------------------ */
/* Convolution                                                               */
/* ------------------------------------------------------------------------ */

static csnn_conv2d_desc conv_desc(int n, int c_in, int h, int w, int c_out, int kh, int kw, int sh,
                                  int sw, int ph, int pw, int bias)
{
    csnn_conv2d_desc d = {.n = n, .c_in = c_in, .h_in = h, .w_in = w, .c_out = c_out, .kh = kh,
                          .kw = kw, .stride_h = sh, .stride_w = sw, .pad_h = ph, .pad_w = pw,
                          .has_bias = bias};
    d.h_out = (h + 2 * ph - kh) / sh + 1;
    d.w_out = (w + 2 * pw - kw) / sw + 1;
    return d;
}

static void *conv_workspace(void *dev, const csnn_conv2d_desc *d)
{
    size_t bytes = 0;
    assert_int_equal(OPS->conv2d_workspace(dev, d, &bytes), CSNN_OK);
    void *ws = NULL;
    assert_int_equal(OPS->alloc(dev, bytes, &ws), CSNN_OK);
    memset(ws, 0xff, bytes); /* NaN garbage: must not leak into results */
    return ws;
}

typedef struct {
    csnn_conv2d_desc d;
    size_t nx, ny, nw, nb;
    float *x, *w, *b, *dy;
} conv_data;

static conv_data conv_data_make(csnn_conv2d_desc d, double density, float value, uint64_t seed)
{
    conv_data c = {.d = d};
    c.nx = (size_t)d.n * d.c_in * d.h_in * d.w_in;
    c.ny = (size_t)d.n * d.c_out * d.h_out * d.w_out;
    c.nw = (size_t)d.c_out * d.c_in * d.kh * d.kw;
    c.nb = (size_t)d.c_out;
    tb_rng r = tb_seed(seed);
    c.x = spikes(&r, c.nx, density, value);
    c.w = tb_rand_floats(&r, c.nw, -1, 1);
    c.b = tb_rand_floats(&r, c.nb, -1, 1);
    c.dy = tb_rand_floats(&r, c.ny, -1, 1);
    return c;
}

static void conv_data_free(conv_data *c)
{
    free(c->x), free(c->w), free(c->b), free(c->dy);
}

typedef struct {
    float *y, *dx, *dw, *db;
} conv_out;

/* The dense entries (sparse 0), the spike-sparse ones (1), or with steps > 0
 * the temporal ones on images [steps, n / steps]. */
static conv_out conv_run(void *dev, const conv_data *c, int sparse, int steps, void *ws)
{
    const csnn_conv2d_desc *d = &c->d;
    conv_out o = {tb_floats(c->ny), tb_floats(c->nx), tb_floats(c->nw), tb_floats(c->nb)};
    float *dw2 = tb_floats(c->nw), *db2 = tb_floats(c->nb);
    tb_fill(o.y, c->ny, NAN), tb_fill(o.dx, c->nx, NAN), tb_fill(o.dw, c->nw, NAN);
    tb_fill(o.db, c->nb, NAN);
    const float *b = d->has_bias ? c->b : NULL;
    float *db = d->has_bias ? o.db : NULL;
    if (steps) {
        assert_int_equal(OPS->conv2d_forward_temporal(dev, d, steps, c->x, c->w, b, o.y, ws),
                         CSNN_OK);
        assert_int_equal(OPS->conv2d_backward_temporal(dev, d, steps, c->x, c->w, c->dy, o.dx,
                                                       o.dw, db, ws),
                         CSNN_OK);
        assert_int_equal(OPS->conv2d_backward_temporal(dev, d, steps, c->x, c->w, c->dy, NULL,
                                                       dw2, d->has_bias ? db2 : NULL, ws),
                         CSNN_OK);
    } else if (sparse) {
        assert_int_equal(OPS->conv2d_forward_sparse(dev, d, c->x, c->w, b, o.y, ws), CSNN_OK);
        assert_int_equal(OPS->conv2d_backward_sparse(dev, d, c->x, c->w, c->dy, o.dx, o.dw, db, ws),
                         CSNN_OK);
        /* without dx: the same dw and db */
        assert_int_equal(OPS->conv2d_backward_sparse(dev, d, c->x, c->w, c->dy, NULL, dw2,
                                                     d->has_bias ? db2 : NULL, ws),
                         CSNN_OK);
    } else {
        assert_int_equal(OPS->conv2d_forward(dev, d, c->x, c->w, b, o.y, ws), CSNN_OK);
        assert_int_equal(OPS->conv2d_backward(dev, d, c->x, c->w, c->dy, o.dx, o.dw, db, ws),
                         CSNN_OK);
        assert_int_equal(OPS->conv2d_backward(dev, d, c->x, c->w, c->dy, NULL, dw2,
                                              d->has_bias ? db2 : NULL, ws),
                         CSNN_OK);
    }
    TB_SAME(o.dw, dw2, c->nw);
    if (d->has_bias) TB_SAME(o.db, db2, c->nb);
    free(dw2), free(db2);
    return o;
}

static void conv_out_free(conv_out *o)
{
    free(o->y), free(o->dx), free(o->dw), free(o->db);
}

/* Sum of |x| |w| over the terms of the largest output and of the largest
 * weight gradient: the scale of their rounding errors. */
static void conv_scales(const conv_data *c, double *ys, double *ws)
{
    const csnn_conv2d_desc *d = &c->d;
    double xmax = 0, dymax = 0, wmax = 0;
    for (size_t i = 0; i < c->nx; i++) xmax = fmax(xmax, fabs(c->x[i]));
    for (size_t i = 0; i < c->ny; i++) dymax = fmax(dymax, fabs(c->dy[i]));
    for (size_t i = 0; i < c->nw; i++) wmax = fmax(wmax, fabs(c->w[i]));
    *ys = (double)d->c_in * d->kh * d->kw * xmax * wmax + 1.0;
    *ws = (double)d->n * d->h_out * d->w_out * xmax * dymax + 1.0;
}

/* The scale of dx's sums: c_out * kh * kw terms |w dy|. */
static double dx_scale(const conv_data *c)
{
    const csnn_conv2d_desc *d = &c->d;
    double dymax = 0, wmax = 0;
    for (size_t i = 0; i < c->ny; i++) dymax = fmax(dymax, fabs(c->dy[i]));
    for (size_t i = 0; i < c->nw; i++) wmax = fmax(wmax, fabs(c->w[i]));
    return (double)d->c_out * d->kh * d->kw * wmax * dymax + 1.0;
}

/* Whether dx of the entries may differ from the reference run's (default
 * mode, best instruction set) in rounding in the current mode: where the
 * AMX input gradient runs (not where Winograd's F(2x2, 3x3) takes it), or
 * where Winograd's portable kernels run instead of its AVX-512 ones. */
static int dx_rounding(const csnn_conv2d_desc *d)
{
    cpu_amx_conv a;
    conv_plan p;
    csnn__cpu_conv_plan(d, &p);
    const int cap = csnn__cpu_isa_cap;
    csnn__cpu_isa_cap = CPU_ISA_AVX512;
    const int best512 = csnn__cpu_isa() == CPU_ISA_AVX512;
    csnn__cpu_isa_cap = cap;
    if (p.wino_dx) return best512 != (csnn__cpu_isa() == CPU_ISA_AVX512);
    return csnn__cpu_sparse_mode == 0 && csnn__cpu_amx_usable() && csnn__cpu_amx_conv_plan(d, &a);
}

/* A sparse or temporal run against the dense one: y and dw within float
 * rounding of scales ys and ws (sums in another order), db bit for bit
 * (the same code), dx bit for bit too unless `amx` (dx_rounding: then
 * within float rounding). */
static void check_run(const conv_data *c, const conv_out *o, const conv_out *ref, double ys,
                      double ws, int amx)
{
    CLOSE(o->y, ref->y, c->ny, 0, 1e-6 * ys);
    CLOSE(o->dw, ref->dw, c->nw, 0, 1e-6 * ws);
    if (amx)
        CLOSE(o->dx, ref->dx, c->nx, 0, 1e-6 * dx_scale(c));
    else
        TB_SAME(o->dx, ref->dx, c->nx);
    if (c->d.has_bias) TB_SAME(o->db, ref->db, c->nb);
}

static void check_conv(void *dev, csnn_conv2d_desc d, uint64_t seed)
{
    void *ws = conv_workspace(dev, &d);
    for (size_t k = 0; k < N_DENS; k++)
        for (int value = 1; value <= 2; value++) {
            conv_data c = conv_data_make(d, densities[k], (float)value, seed * 100 + k * 2 + value);
            double ys, wsc;
            conv_scales(&c, &ys, &wsc);
            conv_out ref = conv_run(dev, &c, 0, 0, ws);
            for (size_t m = 0; m < N_MODES; m++) {
                set_mode((int)m);
                conv_out o = conv_run(dev, &c, 1, 0, ws);
                const int amx = dx_rounding(&d);
                reset_mode();
                /* float sums of up to c_in*kh*kw (y) or n*h_out*w_out (dw)
                 * terms, in another order */
                check_run(&c, &o, &ref, ys, wsc, amx);
                conv_out_free(&o);
            }
            conv_out_free(&ref);
            conv_data_free(&c);
        }
    OPS->free(dev, ws);
}

static void test_conv_shapes(void **state)
{
    (void)state;
    void *dev = tb_open(2);
    /*               n c_in  h   w c_out kh kw sh sw ph pw bias */
    check_conv(dev, conv_desc(3, 1, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1), 1);    /* c_in 1 */
    check_conv(dev, conv_desc(2, 3, 8, 8, 17, 3, 3, 2, 2, 1, 1, 0), 2);   /* stride 2, no bias */
    check_conv(dev, conv_desc(4, 16, 6, 5, 16, 1, 1, 1, 1, 0, 0, 1), 3);  /* 1x1: x is its col */
    check_conv(dev, conv_desc(2, 9, 11, 7, 33, 5, 5, 1, 1, 2, 2, 1), 4);  /* k 5, pad 2 */
    check_conv(dev, conv_desc(5, 20, 9, 9, 140, 3, 3, 1, 1, 0, 0, 1), 5); /* two c_out tiles */
    check_conv(dev, conv_desc(1, 2, 5, 5, 3, 5, 5, 2, 2, 0, 0, 1), 6);    /* one output */
    check_conv(dev, conv_desc(2, 70, 6, 6, 8, 1, 1, 2, 2, 0, 0, 1), 7);   /* 1x1 s2, 2 blocks */
    check_conv(dev, conv_desc(3, 4, 6, 9, 20, 1, 3, 1, 2, 0, 1, 1), 8);   /* 1x3, mixed strides */
    check_conv(dev, conv_desc(19, 8, 6, 6, 24, 3, 3, 1, 1, 1, 1, 1), 9);  /* 19 images: 16 lanes */
    check_conv(dev, conv_desc(2, 3, 12, 12, 4, 9, 9, 1, 1, 4, 4, 1), 10); /* 81 taps: dense only */
    if (!getenv("CSNN_UNDER_VALGRIND")) /* slow there, and like case 9 */
        check_conv(dev, conv_desc(2, 32, 12, 12, 32, 3, 3, 1, 1, 1, 1, 1), 11); /* conv2-like */
    OPS->close(dev);
}

/* 1 and 3 threads: bit for bit, in every mode. */
static void test_conv_threads(void **state)
{
    (void)state;
    void *d1 = tb_open(1), *d3 = tb_open(3);
    csnn_conv2d_desc d = conv_desc(14, 24, 10, 10, 40, 3, 3, 1, 1, 1, 1, 1);
    void *ws1 = conv_workspace(d1, &d), *ws3 = conv_workspace(d3, &d);
    conv_data c = conv_data_make(d, 0.3, 1.0f, 42);
    for (size_t m = 0; m < N_MODES; m++) {
        set_mode((int)m);
        conv_out a = conv_run(d1, &c, 1, 0, ws1), b = conv_run(d3, &c, 1, 0, ws3);
        reset_mode();
        TB_SAME(a.y, b.y, c.ny);
        TB_SAME(a.dx, b.dx, c.nx);
        TB_SAME(a.dw, b.dw, c.nw);
        TB_SAME(a.db, b.db, c.nb);
        conv_out_free(&a);
        conv_out_free(&b);
    }
    /* images of different densities in one batch (each chooses its path;
     * the densest first: on AMX CPUs it decides that the AMX forward is
     * prepared, and the images from CONV_AMX_FWD_MIN_DENSITY on take it) */
    tb_rng r = tb_seed(9);
    size_t per = c.nx / (size_t)d.n;
    for (int i = 0; i < d.n; i++) {
        double dens = 1.0 - (double)i / (d.n - 1);
        for (size_t e = 0; e < per; e++) c.x[i * per + e] = tb_uniform(&r) < dens ? 2.0f : 0.0f;
    }
    conv_out a = conv_run(d1, &c, 1, 0, ws1), b = conv_run(d3, &c, 1, 0, ws3);
    conv_out ref = conv_run(d1, &c, 0, 0, ws1);
    TB_SAME(a.y, b.y, c.ny);
    TB_SAME(a.dw, b.dw, c.nw);
    double ys, wsc;
    conv_scales(&c, &ys, &wsc);
    CLOSE(a.y, ref.y, c.ny, 0, 1e-6 * ys);
    CLOSE(a.dw, ref.dw, c.nw, 0, 1e-6 * wsc);
    conv_out_free(&a), conv_out_free(&b), conv_out_free(&ref);
    conv_data_free(&c);
    OPS->free(d1, ws1);
    OPS->free(d3, ws3);
    OPS->close(d1);
    OPS->close(d3);
}

/* ---- the temporal entries: images [steps, seqs] ---- */

/* x of c as spike trains: step 0 at `density`, each later step keeping the
 * step before except a fraction `flip` of the inputs drawn anew. */
static void spike_trains(conv_data *c, int steps, double density, double flip, float value,
                         uint64_t seed)
{
    tb_rng r = tb_seed(seed);
    const size_t per = c->nx / (size_t)steps;
    for (size_t t = 0; t < (size_t)steps; t++)
        for (size_t i = 0; i < per; i++) {
            float *x = c->x + t * per + i;
            if (t == 0 || tb_uniform(&r) < flip)
                *x = tb_uniform(&r) < density ? value : 0.0f;
            else
                *x = x[-(ptrdiff_t)per];
        }
}

/* Against the dense entries: y and dw within the rounding of sums grouped
 * by steps (steps times the per-image scale), dx and db bit for bit; every
 * temporal mode (choose, always, never), sparse mode and instruction set. */
static void check_temporal(void *dev, csnn_conv2d_desc d, int steps, uint64_t seed)
{
    void *ws = conv_workspace(dev, &d);
    static const double cases[][2] = {{0.0, 0.0}, {0.1, 0.05}, {0.4, 0.2}, {0.6, 0.6}, {1.0, 0.3}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        for (int value = 1; value <= 2; value++) {
            uint64_t sd = seed * 100 + k * 2 + value;
            conv_data c = conv_data_make(d, 0.0, (float)value, sd);
            spike_trains(&c, steps, cases[k][0], cases[k][1], (float)value, sd);
            double ys, wsc;
            conv_scales(&c, &ys, &wsc);
            conv_out ref = conv_run(dev, &c, 0, 0, ws);
            for (int tm = 0; tm <= 2; tm++)
                for (size_t m = 0; m < N_MODES; m++) {
                    set_mode((int)m);
                    csnn__cpu_temporal_mode = tm;
                    conv_out o = conv_run(dev, &c, 1, steps, ws);
                    const int amx = dx_rounding(&d);
                    csnn__cpu_temporal_mode = 0;
                    reset_mode();
                    check_run(&c, &o, &ref, ys * steps, wsc * steps, amx);
                    conv_out_free(&o);
                }
            conv_out_free(&ref);
            conv_data_free(&c);
        }
    OPS->free(dev, ws);
}

static void test_conv_temporal(void **state)
{
    (void)state;
    void *dev = tb_open(2), *d1 = tb_open(1), *d3 = tb_open(3);
    /*                  n c_in  h   w c_out kh kw sh sw ph pw bias  steps */
    check_temporal(dev, conv_desc(32, 6, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1), 4, 1);
    check_temporal(dev, conv_desc(24, 3, 8, 8, 17, 3, 3, 2, 2, 1, 1, 0), 3, 2); /* stride 2 */
    check_temporal(dev, conv_desc(16, 70, 5, 5, 20, 1, 1, 1, 1, 0, 0, 1), 2, 3); /* 1x1, 2 blocks */
    check_temporal(dev, conv_desc(3, 9, 6, 6, 33, 3, 3, 1, 1, 1, 1, 1), 1, 4);  /* one step */
    check_temporal(dev, conv_desc(26, 8, 6, 6, 24, 3, 3, 1, 1, 1, 1, 1), 2, 5); /* 13 samples */
    check_temporal(dev, conv_desc(12, 8, 6, 6, 24, 3, 3, 1, 1, 1, 1, 1), 4, 6); /* 3 samples */

    /* fewer than 8 samples: image by image, as the per-image entries */
    {
        csnn_conv2d_desc d = conv_desc(12, 8, 6, 6, 24, 3, 3, 1, 1, 1, 1, 1);
        void *ws = conv_workspace(dev, &d);
        conv_data c = conv_data_make(d, 0.0, 1.0f, 8);
        spike_trains(&c, 4, 0.5, 0.2, 1.0f, 8);
        conv_out a = conv_run(dev, &c, 1, 4, ws), b = conv_run(dev, &c, 1, 0, ws);
        TB_SAME(a.y, b.y, c.ny);
        TB_SAME(a.dw, b.dw, c.nw);
        conv_out_free(&a), conv_out_free(&b);
        conv_data_free(&c);
        OPS->free(dev, ws);
    }

    /* 1 and 3 threads: bit for bit */
    csnn_conv2d_desc d = conv_desc(36, 24, 10, 10, 40, 3, 3, 1, 1, 1, 1, 1);
    void *ws1 = conv_workspace(d1, &d), *ws3 = conv_workspace(d3, &d);
    conv_data c = conv_data_make(d, 0.0, 1.0f, 7);
    spike_trains(&c, 4, 0.5, 0.25, 1.0f, 7);
    conv_out a = conv_run(d1, &c, 1, 4, ws1), b = conv_run(d3, &c, 1, 4, ws3);
    TB_SAME(a.y, b.y, c.ny);
    TB_SAME(a.dx, b.dx, c.nx);
    TB_SAME(a.dw, b.dw, c.nw);
    TB_SAME(a.db, b.db, c.nb);
    conv_out_free(&a), conv_out_free(&b);

    /* a NaN at step 1 must not reach step 2 through a difference: step 2 is
     * finite and as the dense entry gives it */
    const size_t per = c.nx / 4, yper = c.ny / 4;
    c.x[per + 5] = NAN;
    float *y = tb_floats(c.ny), *yd = tb_floats(c.ny);
    csnn__cpu_temporal_mode = 1;
    assert_int_equal(OPS->conv2d_forward_temporal(d1, &d, 4, c.x, c.w, c.b, y, ws1), CSNN_OK);
    csnn__cpu_temporal_mode = 0;
    assert_int_equal(OPS->conv2d_forward(d1, &d, c.x, c.w, c.b, yd, ws1), CSNN_OK);
    double ys, wsc;
    conv_scales(&c, &ys, &wsc);
    for (size_t i = 2 * yper; i < c.ny; i++) assert_true(isfinite(y[i]));
    CLOSE(y + 2 * yper, yd + 2 * yper, 2 * yper, 0, 4e-6 * ys);
    free(y), free(yd);

    /* argument errors */
    TB_ERROR(OPS->conv2d_forward_temporal(d1, &d, 5, c.x, c.w, c.b, c.x, ws1),
             CSNN_ERR_INVALID_ARGUMENT, "36 images are not 5 time steps");
    TB_ERROR(OPS->conv2d_backward_temporal(d1, &d, 0, c.x, c.w, c.dy, NULL, c.w, c.b, ws1),
             CSNN_ERR_INVALID_ARGUMENT, "not 0 time steps");
    conv_data_free(&c);
    OPS->free(d1, ws1);
    OPS->free(d3, ws3);
    OPS->close(dev), OPS->close(d1), OPS->close(d3);
}

static void test_conv_errors(void **state)
{
    (void)state;
    void *dev = tb_open(1);
    csnn_conv2d_desc d = conv_desc(1, 2, 4, 4, 3, 3, 3, 1, 1, 1, 1, 1), bad = d;
    void *ws = conv_workspace(dev, &d);
    float v[128] = {0}, o[128];
    bad.h_out = 5;
    TB_ERROR(OPS->conv2d_forward_sparse(dev, &bad, v, v, v, o, ws), CSNN_ERR_SHAPE,
             "conv2d_forward_sparse");
    TB_ERROR(OPS->conv2d_backward_sparse(dev, &bad, v, v, v, o, o, o, ws), CSNN_ERR_SHAPE,
             "conv2d_backward_sparse");
    TB_ERROR(OPS->conv2d_forward_sparse(dev, &d, v, v, NULL, o, ws), CSNN_ERR_INVALID_ARGUMENT,
             "'b'");
    TB_ERROR(OPS->conv2d_forward_sparse(dev, &d, v, v, v, o, NULL), CSNN_ERR_INVALID_ARGUMENT,
             "'workspace'");
    TB_ERROR(OPS->conv2d_backward_sparse(dev, &d, v, v, v, o, NULL, o, ws),
             CSNN_ERR_INVALID_ARGUMENT, "'dw'");
    TB_ERROR(OPS->conv2d_backward_sparse(dev, &d, NULL, v, v, o, o, o, ws),
             CSNN_ERR_INVALID_ARGUMENT, "'x'");
    /* an empty batch: zero gradients */
    bad = d, bad.n = 0;
    tb_fill(o, 128, NAN);
    assert_int_equal(OPS->conv2d_forward_sparse(dev, &bad, NULL, v, v, NULL, ws), CSNN_OK);
    assert_int_equal(OPS->conv2d_backward_sparse(dev, &bad, NULL, v, NULL, NULL, o, o + 64, ws),
                     CSNN_OK);
    for (int i = 0; i < 54; i++) assert_true(o[i] == 0.0f);
    for (int i = 0; i < 3; i++) assert_true(o[64 + i] == 0.0f);
    OPS->free(dev, ws);
    OPS->close(dev);
}

/* The weight gradient on AMX tiles (cpu_amx.c), on CPUs that have them:
 * first called directly against a double reference, with dy spread over
 * 80 binades (its three-part split must be exact: a part dropped shows as
 * relative errors of 2^-16 or 2^-8), inputs 0/1 and 0/2, and an input that
 * is not a bfloat16 number (refused, dwt untouched); then through the
 * sparse and temporal backward entries on shapes it takes, against the
 * dense entries, and 1 vs 3 threads bit for bit. */
static void test_conv_amx(void **state)
{
    (void)state;
    if (!csnn__cpu_amx_usable()) skip();
    /*                          n c_in h   w c_out kh kw sh sw ph pw bias */
    static const int shapes[][12] = {{3, 64, 7, 10, 32, 3, 5, 1, 1, 1, 2, 1},
                                     {2, 32, 6, 9, 64, 3, 3, 1, 1, 0, 0, 0},
                                     {2, 32, 5, 5, 32, 1, 1, 1, 1, 0, 0, 1},
                                     {2, 32, 24, 24, 32, 3, 3, 1, 1, 1, 1, 1}};
    void *dev = tb_open(2);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int *v = shapes[s];
        csnn_conv2d_desc d =
            conv_desc(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11]);
        cpu_amx_conv a;
        assert_int_equal(csnn__cpu_amx_conv_plan(&d, &a), 1);
        const int64_t p_out = (int64_t)d.h_out * d.w_out, kk = d.kh * d.kw;
        const size_t nxi = (size_t)d.c_in * d.h_in * d.w_in, nw = (size_t)d.c_out * d.c_in * kk;
        tb_rng r = tb_seed(900 + s);
        for (int value = 1; value <= 2; value++) {
            float *x = spikes(&r, nxi, 0.4, (float)value);
            float *dyt = tb_floats((size_t)p_out * d.c_out);
            for (size_t i = 0; i < (size_t)p_out * d.c_out; i++)
                dyt[i] = (float)ldexp(2.0 * tb_uniform(&r) - 1.0, (int)(tb_uniform(&r) * 80) - 40);
            float *dwt = tb_rand_floats(&r, nw, -1, 1), *dwt0 = tb_floats(nw);
            memcpy(dwt0, dwt, nw * sizeof(float));
            size_t sbytes = (csnn__cpu_amx_conv_floats(&a) * sizeof(float) + 63) & ~(size_t)63;
            float *scratch = aligned_alloc(64, sbytes);
            assert_non_null(scratch);
            assert_int_equal(csnn__cpu_amx_dw_image(&a, x, dyt, scratch, dwt), 1);
            for (int ci = 0; ci < d.c_in; ci++)
                for (int64_t tap = 0; tap < kk; tap++)
                    for (int co = 0; co < d.c_out; co++) {
                        const int ky = (int)(tap / d.kw), kx = (int)(tap % d.kw);
                        const size_t at = ((size_t)ci * kk + tap) * d.c_out + co;
                        double sum = dwt0[at], scale = fabs(dwt0[at]);
                        for (int oy = 0; oy < d.h_out; oy++)
                            for (int ox = 0; ox < d.w_out; ox++) {
                                const int iy = oy + ky - d.pad_h, ix = ox + kx - d.pad_w;
                                if (iy < 0 || iy >= d.h_in || ix < 0 || ix >= d.w_in) continue;
                                const double t =
                                    (double)x[((size_t)ci * d.h_in + iy) * d.w_in + ix] *
                                    dyt[((size_t)oy * d.w_out + ox) * d.c_out + co];
                                sum += t;
                                scale += fabs(t);
                            }
                        if (!(fabs(dwt[at] - sum) <= 2e-6 * scale))
                            fail_msg("amx dw shape %zu value %d: [ci %d tap %lld co %d] %.9g, "
                                     "want %.9g (scale %.3g)",
                                     s, value, ci, (long long)tap, co, dwt[at], sum, scale);
                    }
            /* an input that is not a bfloat16 number: refused, dwt untouched */
            memcpy(dwt, dwt0, nw * sizeof(float));
            x[nxi / 2] = 0.1f;
            assert_int_equal(csnn__cpu_amx_dw_image(&a, x, dyt, scratch, dwt), 0);
            assert_memory_equal(dwt, dwt0, nw * sizeof(float));
            free(x), free(dyt), free(dwt), free(dwt0), free(scratch);
        }
        /* the entries (AMX in the default mode, the other kernels in the
         * forced ones), against the dense entries */
        if (s < 3) check_conv(dev, d, 40 + s);
        /* infinities and a NaN (payload in its low bits) in dy: where the
         * dense entry (im2col + sgemm: its zeros times an infinity included)
         * has an infinity or a NaN, so does AMX, and the other elements agree */
        if (s == 0) {
            csnn_conv2d_desc d1 = d;
            d1.n = 1;
            conv_data c = conv_data_make(d1, 0.5, 1.0f, 99);
            uint32_t nan_bits = 0x7F800001u;
            c.dy[5] = INFINITY;
            c.dy[c.ny / 2] = -INFINITY;
            memcpy(&c.dy[c.ny - 7], &nan_bits, sizeof nan_bits);
            void *ws = conv_workspace(dev, &d1);
            conv_out ref = conv_run(dev, &c, 0, 0, ws);
            OPS->free(dev, ws);
            float *dyt = tb_floats(c.ny), *dwt = tb_floats(c.nw);
            for (int64_t q = 0; q < p_out; q++)
                for (int co = 0; co < d.c_out; co++) dyt[q * d.c_out + co] = c.dy[co * p_out + q];
            memset(dwt, 0, c.nw * sizeof(float));
            size_t sbytes = (csnn__cpu_amx_conv_floats(&a) * sizeof(float) + 63) & ~(size_t)63;
            float *scratch = aligned_alloc(64, sbytes);
            assert_non_null(scratch);
            assert_int_equal(csnn__cpu_amx_dw_image(&a, c.x, dyt, scratch, dwt), 1);
            size_t n_inf = 0, n_nan = 0;
            for (int co = 0; co < d.c_out; co++)
                for (int ci = 0; ci < d.c_in; ci++)
                    for (int64_t tap = 0; tap < kk; tap++) {
                        const float want = ref.dw[((size_t)co * d.c_in + ci) * kk + tap];
                        const float got = dwt[((size_t)ci * kk + tap) * d.c_out + co];
                        n_inf += isinf(want) != 0, n_nan += isnan(want) != 0;
                        if (isnan(want) != isnan(got) || (isinf(want) && got != want) ||
                            (isfinite(want) &&
                             !(fabs(got - want) <= 1e-5 * (1.0 + fabs(want)))))
                            fail_msg("amx dw with non-finite dy: [co %d ci %d tap %lld] %g, "
                                     "dense %g",
                                     co, ci, (long long)tap, got, want);
                    }
            assert_true(n_inf > 0 && n_nan > 0);
            /* an infinite input: refused (the float kernels take it) */
            c.x[3] = INFINITY;
            assert_int_equal(csnn__cpu_amx_dw_image(&a, c.x, dyt, scratch, dwt), 0);
            free(dyt), free(dwt), free(scratch);
            conv_out_free(&ref);
            conv_data_free(&c);
        }
    }
    /* densities from 1 down to 0 in one batch, and from 0 up to 1 (the
     * first or the last image prepares the AMX forward): the AMX forward
     * for the images from CONV_AMX_FWD_MIN_DENSITY on, the sparse kernels
     * for the rest; 1 vs 3 threads bit for bit, within rounding of the
     * dense entry */
    for (int up = 0; up < 2; up++) {
        csnn_conv2d_desc d = conv_desc(10, 32, 8, 8, 32, 3, 3, 1, 1, 1, 1, 1);
        void *d1 = tb_open(1), *d3 = tb_open(3);
        void *ws1 = conv_workspace(d1, &d), *ws3 = conv_workspace(d3, &d);
        conv_data c = conv_data_make(d, 0.0, 1.0f, 78);
        tb_rng r = tb_seed(79);
        const size_t per = c.nx / (size_t)d.n;
        for (int i = 0; i < d.n; i++)
            for (size_t e = 0; e < per; e++)
                c.x[i * per + e] =
                    tb_uniform(&r) < (up ? (double)i / (d.n - 1) : 1.0 - (double)i / (d.n - 1))
                        ? 1.0f
                        : 0.0f;
        double ys, wsc;
        conv_scales(&c, &ys, &wsc);
        conv_out a = conv_run(d1, &c, 1, 0, ws1), b = conv_run(d3, &c, 1, 0, ws3);
        conv_out ref = conv_run(d1, &c, 0, 0, ws1);
        TB_SAME(a.y, b.y, c.ny);
        TB_SAME(a.dx, b.dx, c.nx);
        TB_SAME(a.dw, b.dw, c.nw);
        check_run(&c, &a, &ref, ys, wsc, 1);
        conv_out_free(&a), conv_out_free(&b), conv_out_free(&ref);
        conv_data_free(&c);
        OPS->free(d1, ws1), OPS->free(d3, ws3);
        OPS->close(d1), OPS->close(d3);
    }
    /* the temporal entry, and an input that is not bf16 within a batch */
    check_temporal(dev, conv_desc(16, 32, 6, 6, 32, 3, 3, 1, 1, 1, 1, 1), 2, 7);
    {
        csnn_conv2d_desc d = conv_desc(6, 32, 5, 7, 32, 3, 3, 1, 1, 1, 1, 1);
        void *ws = conv_workspace(dev, &d);
        conv_data c = conv_data_make(d, 0.3, 1.0f, 77);
        c.x[c.nx / 2 + 3] = 0.3f; /* image 3 takes the float kernels */
        double ys, wsc;
        conv_scales(&c, &ys, &wsc);
        conv_out ref = conv_run(dev, &c, 0, 0, ws), o = conv_run(dev, &c, 1, 0, ws);
        CLOSE(o.y, ref.y, c.ny, 0, 1e-6 * ys);
        CLOSE(o.dw, ref.dw, c.nw, 0, 1e-6 * wsc);
        CLOSE(o.dx, ref.dx, c.nx, 0, 1e-6 * dx_scale(&c));
        conv_out_free(&ref), conv_out_free(&o);
        conv_data_free(&c);
        OPS->free(dev, ws);
    }
    OPS->close(dev);
    /* 1 and 3 threads: bit for bit */
    void *d1 = tb_open(1), *d3 = tb_open(3);
    csnn_conv2d_desc d = conv_desc(14, 32, 8, 8, 64, 3, 3, 1, 1, 1, 1, 1);
    void *ws1 = conv_workspace(d1, &d), *ws3 = conv_workspace(d3, &d);
    conv_data c = conv_data_make(d, 0.3, 1.0f, 43);
    conv_out a = conv_run(d1, &c, 1, 0, ws1), b = conv_run(d3, &c, 1, 0, ws3);
    TB_SAME(a.dw, b.dw, c.nw);
    TB_SAME(a.dx, b.dx, c.nx);
    conv_out_free(&a), conv_out_free(&b);
    conv_data_free(&c);
    OPS->free(d1, ws1), OPS->free(d3, ws3);
    OPS->close(d1), OPS->close(d3);
}

/* The forward and the input gradient on AMX tiles (csnn__cpu_amx_fwd_*),
 * called directly against a double reference: weights and dy spread over
 * 80 binades (a part of the three-part split dropped or wrong shows as
 * relative errors of 2^-16 or 2^-8; the products the input gradient leaves
 * out are below 2^-24 of each term), inputs 0/1 and 0/2, odd widths, 1x1,
 * non-square kernels and paddings; refusals leave the output untouched. */
static double binades(tb_rng *r, int spread)
{
    return ldexp(2.0 * tb_uniform(r) - 1.0, (int)(tb_uniform(r) * spread) - spread / 2);
}

static void check_amx_fwd(const csnn_conv2d_desc *d, int input_grad, uint64_t seed)
{
    cpu_amx_fwd f;
    assert_int_equal(csnn__cpu_amx_fwd_plan(d, input_grad, &f), 1);
    const int kk = d->kh * d->kw;
    const size_t nw = (size_t)d->c_out * d->c_in * kk;
    const size_t nin = (size_t)f.k * f.h * f.w, nout = (size_t)f.m * f.oh * f.ow;
    tb_rng r = tb_seed(seed);
    float *w = tb_floats(nw), *in = tb_floats(nin), *b = tb_rand_floats(&r, (size_t)f.m, -1, 1);
    for (size_t i = 0; i < nw; i++) w[i] = (float)binades(&r, 80);
    for (size_t i = 0; i < nin; i++)
        in[i] = input_grad ? (float)binades(&r, 80)
                           : (tb_uniform(&r) < 0.4 ? (float)(1 + (i % 2)) : 0.0f);
    size_t abytes = (csnn__cpu_amx_fwd_weight_floats(&f) * sizeof(float) + 63) & ~(size_t)63;
    size_t sbytes = (csnn__cpu_amx_fwd_floats(&f) * sizeof(float) + 63) & ~(size_t)63;
    uint16_t *a = aligned_alloc(64, abytes);
    float *scratch = aligned_alloc(64, sbytes), *out = tb_floats(nout), *out0 = tb_floats(nout);
    assert_non_null(a);
    assert_non_null(scratch);
    for (int t = 0; t < kk; t++) assert_int_equal(csnn__cpu_amx_fwd_pack_weights(&f, w, t, a), 1);
    const float *bias = input_grad ? NULL : b;
    assert_int_equal(csnn__cpu_amx_fwd_image(&f, a, in, bias, scratch, out), 1);
    for (int mo = 0; mo < f.m; mo++)
        for (int oy = 0; oy < f.oh; oy++)
            for (int ox = 0; ox < f.ow; ox++) {
                double sum = bias ? bias[mo] : 0.0, scale = fabs(sum);
                for (int kc = 0; kc < f.k; kc++)
                    for (int ty = 0; ty < d->kh; ty++)
                        for (int tx = 0; tx < d->kw; tx++) {
                            const int iy = oy + ty - f.pad_h, ix = ox + tx - f.pad_w;
                            if (iy < 0 || iy >= f.h || ix < 0 || ix >= f.w) continue;
                            /* forward: W[mo][kc][ty][tx]; input gradient:
                             * W[kc][mo][kh-1-ty][kw-1-tx] */
                            const size_t wi =
                                input_grad ? (((size_t)kc * d->c_in + mo) * d->kh + (d->kh - 1 - ty)) *
                                                     d->kw +
                                                 (d->kw - 1 - tx)
                                           : (((size_t)mo * d->c_in + kc) * d->kh + ty) * d->kw + tx;
                            const double t =
                                (double)w[wi] * in[((size_t)kc * f.h + iy) * f.w + ix];
                            sum += t;
                            scale += fabs(t);
                        }
                const float got = out[((size_t)mo * f.oh + oy) * f.ow + ox];
                if (!(fabs(got - sum) <= 2e-6 * scale))
                    fail_msg("amx %s [%d %d %d] %.9g, want %.9g (scale %.3g)",
                             input_grad ? "dx" : "forward", mo, oy, ox, got, sum, scale);
            }
    /* refusals: out untouched */
    memcpy(out0, out, nout * sizeof(float));
    const float keep = in[nin / 3];
    in[nin / 3] = input_grad ? INFINITY : 0.1f; /* not a bfloat16 number */
    assert_int_equal(csnn__cpu_amx_fwd_image(&f, a, in, bias, scratch, out), 0);
    in[nin / 3] = NAN;
    assert_int_equal(csnn__cpu_amx_fwd_image(&f, a, in, bias, scratch, out), 0);
    TB_SAME(out, out0, nout);
    in[nin / 3] = keep;
    w[nw - 1] = -INFINITY; /* the last tap of the forward, the first of dx */
    assert_int_equal(csnn__cpu_amx_fwd_pack_weights(&f, w, input_grad ? 0 : kk - 1, a), 0);
    free(w), free(in), free(b), free(a), free(scratch), free(out), free(out0);
}

static void test_conv_amx_fwd(void **state)
{
    (void)state;
    if (!csnn__cpu_amx_usable()) skip();
    /*                          n c_in h   w c_out kh kw sh sw ph pw bias */
    static const int shapes[][12] = {{1, 64, 7, 10, 32, 3, 5, 1, 1, 1, 2, 0},
                                     {1, 32, 6, 19, 64, 3, 3, 1, 1, 0, 0, 0},
                                     {1, 32, 5, 5, 32, 1, 1, 1, 1, 0, 0, 0},
                                     {1, 32, 24, 24, 96, 3, 3, 1, 1, 1, 1, 0},
                                     {1, 96, 9, 33, 32, 5, 5, 1, 1, 2, 4, 0}};
    /* (shapes it does not take) */
    cpu_amx_fwd f;
    csnn_conv2d_desc bad = conv_desc(1, 48, 6, 6, 32, 3, 3, 1, 1, 1, 1, 0);
    assert_int_equal(csnn__cpu_amx_fwd_plan(&bad, 0, &f), 0);
    bad = conv_desc(1, 32, 6, 6, 32, 3, 3, 2, 2, 1, 1, 0);
    assert_int_equal(csnn__cpu_amx_fwd_plan(&bad, 1, &f), 0);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int *v = shapes[s];
        csnn_conv2d_desc d =
            conv_desc(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11]);
        check_amx_fwd(&d, 0, 700 + s);
        check_amx_fwd(&d, 1, 800 + s);
    }
}

/* The forward and the weight gradient by Winograd's F(2 x 2, 3 x 3) on AMX
 * tiles (csnn__cpu_amx_wino_*), called directly against double references:
 * weights and dy spread over 80 binades (a part of the three-part split
 * dropped shows as a relative error of 2^-16 or 2^-8 of the largest term),
 * inputs 0/1 and 0/2; odd and even heights and widths (2 x 2 blocks cut at
 * the edges), paddings 0, 1, 2 and mixed, more than 32 tiles (several
 * blocks of C), 32 to 96 channels. The transforms round sums of terms that
 * the direct sum keeps apart, so each error is held to WINO_RTOL of
 * Winograd's own bound: the algorithm run on absolute values (|A^T| [(|G|
 * |g| |G^T|) (.) (|B^T| |d| |B|)] |A| for the forward, |G^T| [(|A| |dy|
 * |A^T|) (.) (|B^T| |d| |B|)] |G| for dW), computed here in double.
 * Refusals (an input that is not a bfloat16 number, a dy that is not
 * finite, a U that overflows) leave the output untouched. */
#define WINO_RTOL 1e-6

/* |B^T| |d| |B| of the 4 x 4 tile of plane x [h, w] at (y0, x0), zero
 * outside: entry (i, j) sums the |d| of rows rb[i] and columns rb[j]. */
static void wino_abs_v(const float *x, int h, int w, int y0, int x0, double v[16])
{
    static const int rb[4][2] = {{0, 2}, {1, 2}, {1, 2}, {1, 3}};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            double t = 0;
            for (int a = 0; a < 2; a++)
                for (int b = 0; b < 2; b++) {
                    const int yy = y0 + rb[i][a], xx = x0 + rb[j][b];
                    if (yy >= 0 && yy < h && xx >= 0 && xx < w) t += fabs(x[(size_t)yy * w + xx]);
                }
            v[4 * i + j] = t;
        }
}

/* |G| |g| |G^T| of a 3 x 3 kernel, |G| = [1 0 0; .5 .5 .5; .5 .5 .5; 0 0 1]. */
static void wino_abs_u(const float *g, double u[16])
{
    static const double ag[4][3] = {{1, 0, 0}, {.5, .5, .5}, {.5, .5, .5}, {0, 0, 1}};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            double t = 0;
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 3; b++) t += ag[i][a] * fabs(g[3 * a + b]) * ag[j][b];
            u[4 * i + j] = t;
        }
}

static void check_amx_wino(const csnn_conv2d_desc *d, uint64_t seed)
{
    cpu_amx_wino f;
    assert_int_equal(csnn__cpu_amx_wino_plan(d, &f), 1);
    const int ci_n = d->c_in, co_n = d->c_out, h = d->h_in, w = d->w_in;
    const int oh = d->h_out, ow = d->w_out, th = (oh + 1) / 2, tw = (ow + 1) / 2;
    const size_t nw = (size_t)co_n * ci_n * 9, nx = (size_t)ci_n * h * w;
    const size_t ny = (size_t)co_n * oh * ow, np = (size_t)oh * ow, nt = (size_t)th * tw;
    tb_rng r = tb_seed(seed);
    float *wt = tb_floats(nw), *x = tb_floats(nx), *b = tb_rand_floats(&r, (size_t)co_n, -1, 1);
    for (size_t i = 0; i < nw; i++) wt[i] = (float)binades(&r, 80);
    for (size_t i = 0; i < nx; i++) x[i] = tb_uniform(&r) < 0.4 ? (float)(1 + (i % 2)) : 0.0f;
    float *dyt = tb_floats(np * co_n);
    for (size_t i = 0; i < np * co_n; i++) dyt[i] = (float)binades(&r, 80);
    size_t ubytes = (csnn__cpu_amx_wino_u_floats(&f) * sizeof(float) + 63) & ~(size_t)63;
    size_t sf = csnn__cpu_amx_wino_floats(&f);
    if (csnn__cpu_amx_wino_dw_floats(&f) > sf) sf = csnn__cpu_amx_wino_dw_floats(&f);
    size_t sbytes = (sf * sizeof(float) + 63) & ~(size_t)63;
    uint16_t *u = aligned_alloc(64, ubytes);
    float *scratch = aligned_alloc(64, sbytes);
    assert_non_null(u);
    assert_non_null(scratch);
    assert_int_equal(csnn__cpu_amx_wino_pack_u(&f, wt, 0, co_n / 2, u), 1);
    assert_int_equal(csnn__cpu_amx_wino_pack_u(&f, wt, co_n / 2, co_n, u), 1);
    /* |V| of every channel and tile, |U| of every kernel */
    double *av = tb_doubles((size_t)ci_n * nt * 16), *au = tb_doubles(nw / 9 * 16);
    for (int ci = 0; ci < ci_n; ci++)
        for (size_t t = 0; t < nt; t++)
            wino_abs_v(x + (size_t)ci * h * w, h, w, 2 * (int)(t / tw) - d->pad_h,
                       2 * (int)(t % tw) - d->pad_w, av + ((size_t)ci * nt + t) * 16);
    for (size_t k = 0; k < nw / 9; k++) wino_abs_u(wt + 9 * k, au + 16 * k);
    /* the forward */
    float *y = tb_floats(ny), *y0 = tb_floats(ny);
    assert_int_equal(csnn__cpu_amx_wino_fwd_image(&f, u, x, b, scratch, y), 1);
    static const double at[2][4] = {{1, 1, 1, 0}, {0, 1, 1, 1}}; /* |A^T| */
    for (int co = 0; co < co_n; co++)
        for (size_t t = 0; t < nt; t++) {
            double pm[16] = {0};
            for (int ci = 0; ci < ci_n; ci++)
                for (int e = 0; e < 16; e++)
                    pm[e] += au[((size_t)co * ci_n + ci) * 16 + e] * av[((size_t)ci * nt + t) * 16 + e];
            for (int a = 0; a < 2; a++)
                for (int c = 0; c < 2; c++) {
                    const int oy = 2 * (int)(t / tw) + a, ox = 2 * (int)(t % tw) + c;
                    if (oy >= oh || ox >= ow) continue;
                    double bound = fabs(b[co]), sum = b[co];
                    for (int i = 0; i < 4; i++)
                        for (int j = 0; j < 4; j++) bound += at[a][i] * pm[4 * i + j] * at[c][j];
                    for (int ci = 0; ci < ci_n; ci++)
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++) {
                                const int iy = oy + ky - d->pad_h, ix = ox + kx - d->pad_w;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                                sum += (double)wt[(((size_t)co * ci_n + ci) * 3 + ky) * 3 + kx] *
                                       x[((size_t)ci * h + iy) * w + ix];
                            }
                    const float got = y[((size_t)co * oh + oy) * ow + ox];
                    if (!(fabs(got - sum) <= WINO_RTOL * bound))
                        fail_msg("amx winograd forward [%d %d %d] %.9g, want %.9g (error %.3g of "
                                 "the bound %.3g)",
                                 co, oy, ox, got, sum, fabs(got - sum) / bound, bound);
                }
        }
    /* the weight gradient of a sum of two images, (x, dy) and (x, 2 dy) -
     * three times one image's (powers of two: the same rounding) - with a
     * refused image between them that must leave the sum alone, added to
     * what dwt holds */
    float *dwt = tb_rand_floats(&r, nw, -1, 1), *dwt0 = tb_floats(nw);
    float *dyt2 = tb_floats(np * co_n), *xbad = tb_floats(nx);
    for (size_t i = 0; i < np * co_n; i++) dyt2[i] = 2.0f * dyt[i];
    memcpy(xbad, x, nx * sizeof(float));
    xbad[nx / 2] = 0.1f; /* not a bfloat16 number */
    memcpy(dwt0, dwt, nw * sizeof(float));
    assert_int_equal(csnn__cpu_amx_wino_dw_image(&f, x, dyt, scratch, 1), 1);
    assert_int_equal(csnn__cpu_amx_wino_dw_image(&f, xbad, dyt, scratch, 0), 0);
    assert_int_equal(csnn__cpu_amx_wino_dw_image(&f, x, dyt2, scratch, 0), 1);
    csnn__cpu_amx_wino_dw_flush(&f, scratch, dwt);
    static const double gt[3][4] = {{1, .5, .5, 0}, {0, .5, .5, 0}, {0, .5, .5, 1}}; /* |G^T| */
    static const double aa[4][2] = {{1, 0}, {1, 1}, {1, 1}, {0, 1}};                 /* |A| */
    for (int co = 0; co < co_n; co++)
        for (int ci = 0; ci < ci_n; ci++) {
            double pm[16] = {0};
            for (size_t t = 0; t < nt; t++) {
                const int ty = (int)(t / tw), tx = (int)(t % tw);
                double g[2][2];
                for (int a = 0; a < 2; a++)
                    for (int c = 0; c < 2; c++) {
                        const int oy = 2 * ty + a, ox = 2 * tx + c;
                        g[a][c] = oy < oh && ox < ow ? fabs(dyt[((size_t)oy * ow + ox) * co_n + co])
                                                     : 0.0;
                    }
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++) {
                        double ad = 0;
                        for (int a = 0; a < 2; a++)
                            for (int c = 0; c < 2; c++) ad += aa[i][a] * g[a][c] * aa[j][c];
                        pm[4 * i + j] += ad * av[((size_t)ci * nt + t) * 16 + 4 * i + j];
                    }
            }
            for (int tap = 0; tap < 9; tap++) {
                const int ky = tap / 3, kx = tap % 3;
                double sum = 0, bound = 0;
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++) bound += gt[ky][i] * pm[4 * i + j] * gt[kx][j];
                for (int oy = 0; oy < oh; oy++)
                    for (int ox = 0; ox < ow; ox++) {
                        const int iy = oy + ky - d->pad_h, ix = ox + kx - d->pad_w;
                        if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                        sum += (double)x[((size_t)ci * h + iy) * w + ix] *
                               dyt[((size_t)oy * ow + ox) * co_n + co];
                    }
                const size_t o = ((size_t)ci * 9 + tap) * co_n + co;
                const double want = dwt0[o] + 3.0 * sum;
                if (!(fabs(dwt[o] - want) <= 3.0 * WINO_RTOL * bound + 1e-7 * fabs(dwt0[o])))
                    fail_msg("amx winograd dw [ci %d tap %d co %d] %.9g, want %.9g (error %.3g "
                             "of the bound %.3g)",
                             ci, tap, co, dwt[o], want, fabs(dwt[o] - want) / bound, bound);
            }
        }
    /* refusals: the output untouched; and the sum in M (the sum of one
     * image, then the refused ones, then a flush: that image's gradient) */
    memcpy(y0, y, ny * sizeof(float));
    const float keep = x[nx / 3];
    x[nx / 3] = 0.1f; /* not a bfloat16 number */
    assert_int_equal(csnn__cpu_amx_wino_fwd_image(&f, u, x, b, scratch, y), 0);
    x[nx / 3] = NAN;
    assert_int_equal(csnn__cpu_amx_wino_fwd_image(&f, u, x, b, scratch, y), 0);
    x[nx / 3] = keep;
    TB_SAME(y, y0, ny);
    float *dwt1 = tb_floats(nw);
    memcpy(dwt1, dwt0, nw * sizeof(float));
    assert_int_equal(csnn__cpu_amx_wino_dw_image(&f, x, dyt, scratch, 1), 1);
    csnn__cpu_amx_wino_dw_flush(&f, scratch, dwt1);
    memcpy(dwt, dwt0, nw * sizeof(float));
    assert_int_equal(csnn__cpu_amx_wino_dw_image(&f, x, dyt, scratch, 1), 1);
    x[nx / 3] = 0.1f;
    assert_int_equal(csnn__cpu_amx_wino_dw_image(&f, x, dyt, scratch, 0), 0);
    x[nx / 3] = NAN;
    assert_int_equal(csnn__cpu_amx_wino_dw_image(&f, x, dyt, scratch, 0), 0);
    x[nx / 3] = keep;
    for (int k = 0; k < 2; k++) {
        const size_t o = (np * co_n) / 2 + (size_t)k;
        const float keep_dy = dyt[o];
        dyt[o] = k ? NAN : -INFINITY;
        assert_int_equal(csnn__cpu_amx_wino_dw_image(&f, x, dyt, scratch, 0), 0);
        dyt[o] = keep_dy;
    }
    csnn__cpu_amx_wino_dw_flush(&f, scratch, dwt);
    assert_memory_equal(dwt, dwt1, nw * sizeof(float));
    /* U overflows from finite weights (a column of 3e38), or a NaN weight */
    for (int k = 0; k < 3; k++) wt[(size_t)k * 3] = 3e38f;
    assert_int_equal(csnn__cpu_amx_wino_pack_u(&f, wt, 0, 1, u), 0);
    assert_int_equal(csnn__cpu_amx_wino_pack_u(&f, wt, 1, co_n, u), 1);
    wt[nw - 1] = NAN;
    assert_int_equal(csnn__cpu_amx_wino_pack_u(&f, wt, co_n - 1, co_n, u), 0);
    free(wt), free(x), free(b), free(dyt), free(u), free(scratch), free(y), free(y0);
    free(av), free(au), free(dwt), free(dwt0), free(dwt1), free(dyt2), free(xbad);
}

static void test_conv_amx_wino(void **state)
{
    (void)state;
    /* the entries take it where its scratch fits the lanes' regions: the
     * reference conv2 does; 256 channels on 4x4 planes would need 16
     * products of [256, 256] floats per lane against a 147 KB col buffer */
    conv_plan p;
    csnn_conv2d_desc ref = conv_desc(64, 128, 24, 24, 128, 3, 3, 1, 1, 1, 1, 1);
    csnn__cpu_conv_plan(&ref, &p);
    assert_int_equal(csnn__cpu_conv_sparse_wino(&p), 1);
    csnn_conv2d_desc wide = conv_desc(8, 256, 4, 4, 256, 3, 3, 1, 1, 1, 1, 1);
    csnn__cpu_conv_plan(&wide, &p);
    cpu_amx_wino fw;
    assert_int_equal(csnn__cpu_amx_wino_plan(&wide, &fw), 1);
    assert_int_equal(csnn__cpu_conv_sparse_wino(&p), 0);
    /* (shapes it does not take) */
    cpu_amx_wino f;
    csnn_conv2d_desc bad = conv_desc(1, 48, 6, 6, 32, 3, 3, 1, 1, 1, 1, 0);
    assert_int_equal(csnn__cpu_amx_wino_plan(&bad, &f), 0);
    bad = conv_desc(1, 32, 6, 6, 32, 3, 3, 2, 2, 1, 1, 0);
    assert_int_equal(csnn__cpu_amx_wino_plan(&bad, &f), 0);
    bad = conv_desc(1, 32, 6, 6, 32, 3, 5, 1, 1, 1, 1, 0);
    assert_int_equal(csnn__cpu_amx_wino_plan(&bad, &f), 0);
    bad = conv_desc(1, 32, 9, 9, 32, 3, 3, 1, 1, 3, 3, 0);
    assert_int_equal(csnn__cpu_amx_wino_plan(&bad, &f), 0);
    if (!csnn__cpu_amx_usable()) skip();
    /*                          n c_in h   w c_out kh kw sh sw ph pw bias */
    static const int shapes[][12] = {{1, 32, 7, 10, 32, 3, 3, 1, 1, 1, 1, 1},
                                     {1, 64, 6, 19, 32, 3, 3, 1, 1, 0, 0, 1},
                                     {1, 32, 13, 11, 64, 3, 3, 1, 1, 2, 2, 1},
                                     {1, 32, 24, 24, 96, 3, 3, 1, 1, 1, 1, 1},
                                     {1, 96, 9, 5, 32, 3, 3, 1, 1, 2, 0, 1},
                                     {1, 32, 3, 3, 32, 3, 3, 1, 1, 0, 1, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int *v = shapes[s];
        csnn_conv2d_desc d =
            conv_desc(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11]);
        check_amx_wino(&d, 950 + s);
    }
}

/* ------------------------------------------------------------------------ */
/* Linear                                                                    */
/* ------------------------------------------------------------------------ */

/* Densities densities[0 .. n_dens). */
static void check_linear(void *dev, int64_t rows, int64_t in, int64_t out, int bias, uint64_t seed,
                         size_t n_dens)
{
    const size_t nx = (size_t)rows * in, nw = (size_t)out * in, ny = (size_t)rows * out;
    for (size_t k = 0; k < n_dens; k++)
        for (int value = 1; value <= 2; value++) {
            tb_rng r = tb_seed(seed * 100 + k * 2 + value);
            float *x = spikes(&r, nx, densities[k], (float)value);
            float *w = tb_rand_floats(&r, nw, -1, 1), *b = tb_rand_floats(&r, (size_t)out, -1, 1);
            float *dy = tb_rand_floats(&r, ny, -1, 1);
            float *y = tb_floats(ny), *dw = tb_floats(nw), *db = tb_floats((size_t)out);
            float *y2 = tb_floats(ny), *dw2 = tb_floats(nw), *db2 = tb_floats((size_t)out);
            const float *bb = bias ? b : NULL;
            /* the dense composition */
            assert_int_equal(OPS->gemm(dev, 0, 1, rows, out, in, 1.0f, x, in, w, in, 0.0f, y, out),
                             CSNN_OK);
            if (bias) assert_int_equal(OPS->bias_add(dev, y, b, rows, out, 1), CSNN_OK);
            assert_int_equal(
                OPS->gemm(dev, 1, 0, out, in, rows, 1.0f, dy, out, x, in, 0.0f, dw, in), CSNN_OK);
            assert_int_equal(OPS->bias_grad(dev, dy, db, rows, out, 1), CSNN_OK);
            const double yscale = (double)in * value + 1.0, wscale = (double)rows * value + 1.0;
            for (size_t m = 0; m < N_MODES; m++) {
                set_mode((int)m);
                tb_fill(y2, ny, NAN), tb_fill(dw2, nw, NAN), tb_fill(db2, (size_t)out, NAN);
                assert_int_equal(OPS->linear_forward_sparse(dev, rows, in, out, x, w, bb, y2),
                                 CSNN_OK);
                assert_int_equal(
                    OPS->linear_weight_grad_sparse(dev, rows, in, out, x, dy, dw2, db2), CSNN_OK);
                reset_mode();
                CLOSE(y2, y, ny, 0, 1e-6 * yscale);
                CLOSE(dw2, dw, nw, 0, 1e-6 * wscale);
                TB_SAME(db2, db, (size_t)out);
                /* with packed weights: the same sums in the same order */
                const int64_t pf = OPS->linear_packed_floats(dev, in, out);
                assert_true(pf >= out * in);
                float *pw = tb_floats((size_t)pf), *y3 = tb_floats(ny);
                tb_fill(pw, (size_t)pf, NAN), tb_fill(y3, ny, NAN);
                assert_int_equal(OPS->linear_pack(dev, in, out, w, pw), CSNN_OK);
                set_mode((int)m);
                assert_int_equal(OPS->linear_forward_packed(dev, rows, in, out, x, w, pw, bb, y3),
                                 CSNN_OK);
                reset_mode();
                TB_SAME(y3, y2, ny);
                free(pw), free(y3);
                /* no db wanted: dw alone */
                set_mode((int)m);
                tb_fill(db2, (size_t)out, NAN);
                assert_int_equal(
                    OPS->linear_weight_grad_sparse(dev, rows, in, out, x, dy, dw2, NULL), CSNN_OK);
                reset_mode();
                CLOSE(dw2, dw, nw, 0, 1e-6 * wscale);
                for (int64_t o = 0; o < out; o++) assert_true(isnan(db2[o]));
            }
            free(x), free(w), free(b), free(dy), free(y), free(dw), free(db), free(y2), free(dw2),
                free(db2);
        }
}

static void test_linear_shapes(void **state)
{
    (void)state;
    void *dev = tb_open(2);
    check_linear(dev, 1, 1, 1, 1, 1, N_DENS);
    check_linear(dev, 5, 300, 20, 1, 2, N_DENS);     /* small: dense unless forced */
    check_linear(dev, 7, 130, 70, 0, 3, N_DENS);     /* partial blocks of inputs and outputs */
    check_linear(dev, 64, 1000, 129, 1, 4, N_DENS);  /* the model's fc2 order of size */
    check_linear(dev, 3, 257, 16, 1, 5, N_DENS);
    check_linear(dev, 33, 700, 200, 1, 6, N_DENS);   /* big enough for the sparse forward */
    /* big enough for the sparse dW (d <= 0.3; under valgrind, 0.01 only) */
    check_linear(dev, 16, 4096, 1100, 1, 7, getenv("CSNN_UNDER_VALGRIND") ? 2 : 4);
    /* in and out multiples of 32: dW on AMX tiles where the CPU has them */
    check_linear(dev, 40, 2048, 1056, 1, 8, getenv("CSNN_UNDER_VALGRIND") ? 2 : 4);
    OPS->close(dev);
}

/* A linear layer's weight gradient on AMX tiles, called directly against a
 * double reference (dy over 80 binades, inputs 0/1/2, rows not a multiple
 * of 32), the refusals, and through the entry: 1 vs 3 threads bit for bit,
 * and an input that is not a bfloat16 number (the other kernels). */
static void test_linear_amx(void **state)
{
    (void)state;
    if (!csnn__cpu_amx_usable()) skip();
    static const int64_t shapes[][3] = {{37, 96, 64}, {64, 256, 160}, {5, 32, 32}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t rows = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
        assert_int_equal(csnn__cpu_amx_linear_dw_shape(rows, in, out), 1);
        tb_rng r = tb_seed(500 + s);
        float *x = tb_floats((size_t)(rows * in)), *dy = tb_floats((size_t)(rows * out));
        for (int64_t i = 0; i < rows * in; i++)
            x[i] = tb_uniform(&r) < 0.3 ? (float)(1 + i % 2) : 0.0f;
        for (int64_t i = 0; i < rows * out; i++) dy[i] = (float)binades(&r, 80);
        uint32_t *xp = aligned_alloc(64, csnn__cpu_amx_linear_x_floats(rows, in) * 4);
        uint16_t *dyp = aligned_alloc(64, csnn__cpu_amx_linear_dy_floats(rows, out) * 4);
        float *dw = tb_floats((size_t)(out * in)), *dw0 = tb_floats((size_t)(out * in));
        assert_non_null(xp);
        assert_non_null(dyp);
        assert_int_equal(csnn__cpu_amx_linear_pack_x(rows, in, x, 0, in, xp), 1);
        assert_int_equal(csnn__cpu_amx_linear_pack_dy(rows, out, dy, dyp), 1);
        /* in two column ranges, as the entry's tasks do */
        assert_int_equal(csnn__cpu_amx_linear_dw(rows, in, out, dyp, xp, 0, 32, dw), 1);
        assert_int_equal(csnn__cpu_amx_linear_dw(rows, in, out, dyp, xp, 32, in, dw), 1);
        for (int64_t o = 0; o < out; o++)
            for (int64_t f = 0; f < in; f++) {
                double sum = 0.0, scale = 0.0;
                for (int64_t k = 0; k < rows; k++) {
                    const double t = (double)dy[k * out + o] * x[k * in + f];
                    sum += t;
                    scale += fabs(t);
                }
                const float got = dw[o * in + f];
                if (!(fabs(got - sum) <= 2e-6 * scale))
                    fail_msg("amx linear dw shape %zu [%lld %lld] %.9g, want %.9g (scale %.3g)",
                             s, (long long)o, (long long)f, got, sum, scale);
            }
        /* refusals */
        x[rows * in / 2] = 0.1f;
        assert_int_equal(csnn__cpu_amx_linear_pack_x(rows, in, x, 0, in, xp), 0);
        x[rows * in / 2] = INFINITY;
        assert_int_equal(csnn__cpu_amx_linear_pack_x(rows, in, x, 0, in, xp), 0);
        dy[rows * out - 1] = NAN;
        assert_int_equal(csnn__cpu_amx_linear_pack_dy(rows, out, dy, dyp), 0);
        free(x), free(dy), free(xp), free(dyp), free(dw), free(dw0);
    }
    assert_int_equal(csnn__cpu_amx_linear_dw_shape(8, 100, 64), 0);
    assert_int_equal(csnn__cpu_amx_linear_dw_shape(8, 64, 48), 0);

    /* through the entry */
    void *devs[2] = {tb_open(1), tb_open(3)};
    const int64_t rows = 48, in = 1024, out = 1408; /* past LIN_DW_MIN_MACS */
    tb_rng r = tb_seed(12);
    float *x = spikes(&r, (size_t)(rows * in), 0.2, 2.0f);
    float *dy = tb_rand_floats(&r, (size_t)(rows * out), -1, 1), *dw[3], *db[2];
    for (int k = 0; k < 2; k++) {
        dw[k] = tb_floats((size_t)(out * in)), db[k] = tb_floats((size_t)out);
        assert_int_equal(
            OPS->linear_weight_grad_sparse(devs[k], rows, in, out, x, dy, dw[k], db[k]), CSNN_OK);
    }
    TB_SAME(dw[0], dw[1], (size_t)(out * in));
    TB_SAME(db[0], db[1], (size_t)out);
    dw[2] = tb_floats((size_t)(out * in));
    assert_int_equal(OPS->gemm(devs[0], 1, 0, out, in, rows, 1.0f, dy, out, x, in, 0.0f, dw[2], in),
                     CSNN_OK);
    CLOSE(dw[0], dw[2], (size_t)(out * in), 0, 1e-6 * (2.0 * rows + 1.0));
    x[5] = 0.3f; /* not a bfloat16 number: the sparse kernel */
    assert_int_equal(OPS->linear_weight_grad_sparse(devs[0], rows, in, out, x, dy, dw[0], NULL),
                     CSNN_OK);
    assert_int_equal(OPS->gemm(devs[0], 1, 0, out, in, rows, 1.0f, dy, out, x, in, 0.0f, dw[2], in),
                     CSNN_OK);
    CLOSE(dw[0], dw[2], (size_t)(out * in), 0, 1e-6 * (2.0 * rows + 1.0));
    free(x), free(dy);
    for (int k = 0; k < 3; k++) free(dw[k]);
    for (int k = 0; k < 2; k++) free(db[k]), OPS->close(devs[k]);
}

static void test_linear_threads(void **state)
{
    (void)state;
    void *devs[2] = {tb_open(1), tb_open(3)};
    const int64_t rows = 48, in = 900, out = 300;
    tb_rng r = tb_seed(11);
    float *x = spikes(&r, (size_t)rows * in, 0.2, 2.0f);
    float *w = tb_rand_floats(&r, (size_t)out * in, -1, 1), *b = tb_rand_floats(&r, out, -1, 1);
    float *dy = tb_rand_floats(&r, (size_t)rows * out, -1, 1);
    for (size_t m = 0; m < N_MODES; m++) {
        float *y[2], *dw[2], *db[2];
        for (int k = 0; k < 2; k++) {
            y[k] = tb_floats((size_t)rows * out), dw[k] = tb_floats((size_t)out * in);
            db[k] = tb_floats(out);
            set_mode((int)m);
            assert_int_equal(OPS->linear_forward_sparse(devs[k], rows, in, out, x, w, b, y[k]),
                             CSNN_OK);
            assert_int_equal(
                OPS->linear_weight_grad_sparse(devs[k], rows, in, out, x, dy, dw[k], db[k]),
                CSNN_OK);
            reset_mode();
        }
        TB_SAME(y[0], y[1], (size_t)rows * out);
        TB_SAME(dw[0], dw[1], (size_t)out * in);
        TB_SAME(db[0], db[1], (size_t)out);
        for (int k = 0; k < 2; k++) free(y[k]), free(dw[k]), free(db[k]);
    }
    free(x), free(w), free(b), free(dy);
    OPS->close(devs[0]);
    OPS->close(devs[1]);
}

static void test_linear_edges(void **state)
{
    (void)state;
    void *dev = tb_open(2);
    float v[64] = {0}, o[64], b[4] = {1, 2, 3, 4};
    TB_ERROR(OPS->linear_forward_sparse(dev, -1, 2, 2, v, v, NULL, o), CSNN_ERR_INVALID_ARGUMENT,
             "rows");
    TB_ERROR(OPS->linear_weight_grad_sparse(dev, 2, -2, 2, v, v, o, NULL),
             CSNN_ERR_INVALID_ARGUMENT, "in");
    TB_ERROR(OPS->linear_forward_sparse(dev, 2, 2, 2, NULL, v, NULL, o),
             CSNN_ERR_INVALID_ARGUMENT, "'x'");
    TB_ERROR(OPS->linear_forward_sparse(dev, 2, 2, 2, v, v, NULL, NULL),
             CSNN_ERR_INVALID_ARGUMENT, "'y'");
    TB_ERROR(OPS->linear_weight_grad_sparse(dev, 2, 2, 2, v, NULL, o, NULL),
             CSNN_ERR_INVALID_ARGUMENT, "'dy'");
    TB_ERROR(OPS->linear_weight_grad_sparse(dev, 2, 2, 2, v, v, NULL, NULL),
             CSNN_ERR_INVALID_ARGUMENT, "'dw'");
    TB_ERROR(OPS->linear_forward_sparse(dev, (int64_t)1 << 32, 2, 2, v, v, NULL, o),
             CSNN_ERR_LIMIT, "2^31");
    /* no inputs: y = b; dw has no elements, db = column sums */
    for (int m = 0; m < 3; m++) {
        csnn__cpu_sparse_mode = m;
        tb_fill(o, 64, NAN);
        assert_int_equal(OPS->linear_forward_sparse(dev, 3, 0, 4, NULL, NULL, b, o), CSNN_OK);
        for (int i = 0; i < 12; i++) assert_true(o[i] == b[i % 4]);
        assert_int_equal(OPS->linear_forward_sparse(dev, 3, 0, 4, NULL, NULL, NULL, o), CSNN_OK);
        for (int i = 0; i < 12; i++) assert_true(o[i] == 0.0f);
        /* no rows: dw = 0, db = 0 */
        tb_fill(o, 64, NAN);
        assert_int_equal(OPS->linear_weight_grad_sparse(dev, 0, 5, 4, NULL, NULL, o, o + 40),
                         CSNN_OK);
        for (int i = 0; i < 20; i++) assert_true(o[i] == 0.0f);
        for (int i = 0; i < 4; i++) assert_true(o[40 + i] == 0.0f);
    }
    csnn__cpu_sparse_mode = 0;
    OPS->close(dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_shapes),   cmocka_unit_test(test_conv_threads),
        cmocka_unit_test(test_conv_errors),   cmocka_unit_test(test_conv_temporal),
        cmocka_unit_test(test_conv_amx),      cmocka_unit_test(test_conv_amx_fwd),
        cmocka_unit_test(test_conv_amx_wino),
        cmocka_unit_test(test_linear_shapes), cmocka_unit_test(test_linear_amx),
        cmocka_unit_test(test_linear_threads), cmocka_unit_test(test_linear_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
