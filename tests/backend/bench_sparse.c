/* bench_sparse.c - times the CPU backend's spike-sparse and fused entries
 * against the dense entries / compositions they replace, at the reference
 * model's shapes (batch 16, T = 4):
 *   conv2  Conv2d(128, 128, 3, p 1) on [64, 128, 24, 24], binary input
 *   fc1    Linear(18432, 1152) on [64, 18432], input 0 / 2
 *   sn1    IF on [4, 16, 128, 48, 48] with x_shared, then MaxPool 2
 *   sn2    IF on [4, 16, 128, 24, 24], then MaxPool 2
 * Not a test and not installed: `ninja -C build tests/backend/bench_sparse`,
 * then build/tests/backend/bench_sparse [threads] [repeats] [what]
 * (what: all, conv, convfwd, temporal, linear, neuron, sn1, sn2). Each time is the minimum over
 * the repeats (the machine may be shared: the load average is printed;
 * BENCH_CLOCK=cpu measures process CPU time instead of wall-clock time).
 * Forced modes (csnn__cpu_sparse_mode) time the sparse kernels at every
 * density, "auto" what the entry chooses. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "csnn_internal.h"
#include "../../lib/backend/cpu/cpu_internal.h"

#define OPS (&csnn__cpu_backend_ops)

/* Wall-clock time, or with BENCH_CLOCK=cpu the CPU time of the process (all
 * threads: the pool's workers sleep when idle), which a busy shared machine
 * disturbs less. */
static clockid_t clock_id = CLOCK_MONOTONIC;

static double now(void)
{
    struct timespec ts;
    clock_gettime(clock_id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void loadavg(const char *when)
{
    FILE *f = fopen("/proc/loadavg", "r");
    char buf[128] = "?";
    if (f) {
        if (!fgets(buf, sizeof buf, f)) buf[0] = '\0';
        fclose(f);
    }
    printf("# load average %s: %s", when, buf);
}

static uint64_t rng = 88172645463325252ull;
static double uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) * (1.0 / 9007199254740992.0);
}

static float *floats(size_t n)
{
    float *p = NULL;
    if (posix_memalign((void **)&p, 64, (n ? n : 1) * sizeof(float)) != 0) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static void fill_spikes(float *x, size_t n, double density, float value)
{
    for (size_t i = 0; i < n; i++) x[i] = uniform() < density ? value : 0.0f;
}

static void fill_uniform(float *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * uniform());
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

static int repeats = 5;

#define TIME_MIN(result, stmt)                                                                     \
    do {                                                                                           \
        double best_ = 1e30;                                                                       \
        for (int r_ = 0; r_ < repeats; r_++) {                                                     \
            double t0_ = now();                                                                    \
            if ((stmt) != CSNN_OK) {                                                               \
                fprintf(stderr, "%s failed: %s\n", #stmt, csnn_last_error_message());              \
                exit(1);                                                                           \
            }                                                                                      \
            double t_ = now() - t0_;                                                               \
            if (t_ < best_) best_ = t_;                                                            \
        }                                                                                          \
        (result) = best_ * 1e3;                                                                    \
    } while (0)

static const double densities[] = {0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8};
#define N_DENS (sizeof densities / sizeof densities[0])

/* The reference model's conv2 at batch 16, T = 4: [64, 128, 24, 24] -> 128,
 * 3x3, pad 1. */
static const csnn_conv2d_desc conv2_desc = {.n = 64, .c_in = 128, .h_in = 24, .w_in = 24,
                                            .c_out = 128, .h_out = 24, .w_out = 24, .kh = 3,
                                            .kw = 3, .stride_h = 1, .stride_w = 1, .pad_h = 1,
                                            .pad_w = 1, .has_bias = 1};

/* A workspace for d (its size into *bytes). */
static void *conv2_workspace(void *dev, const csnn_conv2d_desc *d, size_t *bytes)
{
    void *ws = NULL;
    if (OPS->conv2d_workspace(dev, d, bytes) != CSNN_OK ||
        OPS->alloc(dev, *bytes, &ws) != CSNN_OK) {
        fprintf(stderr, "conv2 workspace: %s\n", csnn_last_error_message());
        exit(1);
    }
    return ws;
}

static void bench_conv(void *dev)
{
    const csnn_conv2d_desc d = conv2_desc;
    size_t nx = (size_t)64 * 128 * 576, nw = (size_t)128 * 128 * 9, nb = 128;
    size_t bytes = 0;
    void *ws = conv2_workspace(dev, &d, &bytes);
    float *x = floats(nx), *w = floats(nw), *b = floats(nb), *y = floats(nx), *y2 = floats(nx);
    float *dy = floats(nx), *dw = floats(nw), *dw2 = floats(nw), *db = floats(nb);
    float *dx = floats(nx);
    fill_uniform(w, nw, -0.05, 0.05);
    fill_uniform(b, nb, -0.1, 0.1);
    fill_uniform(dy, nx, -1, 1);
    printf("\n## conv2 [64,128,24,24] -> 128, 3x3 p1 (workspace %.1f MB); ms\n", bytes / 1e6);
    printf("density  fwd_dense fwd_sparse fwd_auto   dW_dense dW_sparse dW_auto  "
           "dWdX_dense dWdX_auto  |y| diff  |dw| diff\n");
    for (size_t k = 0; k < N_DENS; k++) {
        fill_spikes(x, nx, densities[k], 1.0f);
        double fd, fs, fa, bd, bs, ba, bxd, bxa;
        csnn__cpu_sparse_mode = 2;
        TIME_MIN(fd, OPS->conv2d_forward_sparse(dev, &d, x, w, b, y, ws));
        TIME_MIN(bd, OPS->conv2d_backward_sparse(dev, &d, x, w, dy, NULL, dw, db, ws));
        TIME_MIN(bxd, OPS->conv2d_backward_sparse(dev, &d, x, w, dy, dx, dw, db, ws));
        csnn__cpu_sparse_mode = 1;
        TIME_MIN(fs, OPS->conv2d_forward_sparse(dev, &d, x, w, b, y2, ws));
        TIME_MIN(bs, OPS->conv2d_backward_sparse(dev, &d, x, w, dy, NULL, dw2, db, ws));
        double ey = max_diff(y, y2, nx), ew = max_diff(dw, dw2, nw);
        csnn__cpu_sparse_mode = 0;
        TIME_MIN(fa, OPS->conv2d_forward_sparse(dev, &d, x, w, b, y2, ws));
        TIME_MIN(ba, OPS->conv2d_backward_sparse(dev, &d, x, w, dy, NULL, dw2, db, ws));
        TIME_MIN(bxa, OPS->conv2d_backward_sparse(dev, &d, x, w, dy, dx, dw2, db, ws));
        printf("%5.2f   %9.1f %10.1f %8.1f   %8.1f %9.1f %7.1f   %10.1f %9.1f   %.1e  %.1e\n",
               densities[k], fd, fs, fa, bd, bs, ba, bxd, bxa, ey, ew);
        fflush(stdout);
    }
    OPS->free(dev, ws);
    free(x), free(w), free(b), free(y), free(y2), free(dy), free(dw), free(dw2), free(db),
        free(dx);
}

/* The sparse forward alone (what "convfwd" runs): its time at each density
 * and a checksum of y, to compare kernels that must give the same bits. */
static void bench_conv_forward(void *dev)
{
    const csnn_conv2d_desc d = conv2_desc;
    size_t nx = (size_t)64 * 128 * 576, nw = (size_t)128 * 128 * 9, nb = 128;
    size_t bytes = 0;
    void *ws = conv2_workspace(dev, &d, &bytes);
    float *x = floats(nx), *w = floats(nw), *b = floats(nb), *y = floats(nx);
    fill_uniform(w, nw, -0.05, 0.05);
    fill_uniform(b, nb, -0.1, 0.1);
    printf("\n## conv2 forward, sparse kernels; ms\n");
    printf("density  binary   x2.0   checksum(binary)\n");
    csnn__cpu_sparse_mode = 1;
    for (size_t k = 0; k < N_DENS; k++) {
        double t1, t2;
        fill_spikes(x, nx, densities[k], 2.0f);
        TIME_MIN(t2, OPS->conv2d_forward_sparse(dev, &d, x, w, b, y, ws));
        for (size_t i = 0; i < nx; i++) x[i] = x[i] != 0.0f ? 1.0f : 0.0f;
        TIME_MIN(t1, OPS->conv2d_forward_sparse(dev, &d, x, w, b, y, ws));
        double sum = 0.0;
        for (size_t i = 0; i < nx; i++) sum += (double)y[i] * (double)(1 + i % 7);
        printf("%5.2f   %7.1f %7.1f   %.17g\n", densities[k], t1, t2, sum);
        fflush(stdout);
    }
    csnn__cpu_sparse_mode = 0;
    OPS->free(dev, ws);
    free(x), free(w), free(b), free(y);
}

/* The temporal entries against the per-image sparse ones on spike trains of
 * 4 steps x 16 samples whose consecutive steps differ in a fraction `flip`
 * of the inputs ("temporal"). */
static void bench_conv_temporal(void *dev)
{
    const csnn_conv2d_desc d = conv2_desc;
    const int steps = 4;
    size_t nx = (size_t)64 * 128 * 576, nw = (size_t)128 * 128 * 9, nb = 128;
    size_t per = nx / steps, bytes = 0;
    void *ws = conv2_workspace(dev, &d, &bytes);
    float *x = floats(nx), *w = floats(nw), *b = floats(nb), *y = floats(nx), *dy = floats(nx);
    float *dw = floats(nw), *db = floats(nb), *dx = floats(nx);
    fill_uniform(w, nw, -0.05, 0.05);
    fill_uniform(b, nb, -0.1, 0.1);
    fill_uniform(dy, nx, -1, 1);
    printf("\n## conv2 over 4 steps x 16 samples, temporal entries; ms\n");
    printf("density  flip   fwd_sparse fwd_temporal   dW_sparse dW_temporal   dWdX_sparse "
           "dWdX_temporal\n");
    static const double cases[][2] = {{0.2, 0.1}, {0.6, 0.1}, {0.6, 0.3}, {0.6, 0.5}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        fill_spikes(x, per, cases[k][0], 1.0f);
        for (size_t t = 1; t < (size_t)steps; t++)
            for (size_t i = 0; i < per; i++) {
                const float prev = x[(t - 1) * per + i];
                x[t * per + i] = uniform() < cases[k][1] ? (uniform() < cases[k][0] ? 1.0f : 0.0f)
                                                         : prev;
            }
        double fs, ft, bs, bt, bxs, bxt;
        TIME_MIN(fs, OPS->conv2d_forward_sparse(dev, &d, x, w, b, y, ws));
        TIME_MIN(ft, OPS->conv2d_forward_temporal(dev, &d, steps, x, w, b, y, ws));
        TIME_MIN(bs, OPS->conv2d_backward_sparse(dev, &d, x, w, dy, NULL, dw, db, ws));
        TIME_MIN(bt, OPS->conv2d_backward_temporal(dev, &d, steps, x, w, dy, NULL, dw, db, ws));
        TIME_MIN(bxs, OPS->conv2d_backward_sparse(dev, &d, x, w, dy, dx, dw, db, ws));
        TIME_MIN(bxt, OPS->conv2d_backward_temporal(dev, &d, steps, x, w, dy, dx, dw, db, ws));
        printf("%5.2f   %4.2f   %10.1f %12.1f   %9.1f %11.1f   %11.1f %13.1f\n", cases[k][0],
               cases[k][1], fs, ft, bs, bt, bxs, bxt);
        fflush(stdout);
    }
    OPS->free(dev, ws);
    free(x), free(w), free(b), free(y), free(dy), free(dw), free(db), free(dx);
}

static void bench_linear(void *dev, int64_t rows, int64_t in, int64_t out, const char *name)
{
    size_t nx = (size_t)rows * in, nw = (size_t)out * in, ny = (size_t)rows * out;
    float *x = floats(nx), *w = floats(nw), *b = floats(out), *y = floats(ny), *y2 = floats(ny);
    float *dy = floats(ny), *dw = floats(nw), *dw2 = floats(nw), *db = floats(out);
    fill_uniform(w, nw, -0.01, 0.01);
    fill_uniform(b, out, -0.1, 0.1);
    fill_uniform(dy, ny, -1, 1);
    printf("\n## %s: [%lld, %lld] -> %lld, input 0/2; ms\n", name, (long long)rows,
           (long long)in, (long long)out);
    printf("density  fwd_dense fwd_sparse fwd_auto   dW_dense dW_sparse dW_auto   |y| diff  "
           "|dw| diff\n");
    for (size_t k = 0; k < N_DENS; k++) {
        fill_spikes(x, nx, densities[k], 2.0f);
        double fd, fs, fa, bd, bs, ba;
        csnn__cpu_sparse_mode = 2;
        TIME_MIN(fd, OPS->linear_forward_sparse(dev, rows, in, out, x, w, b, y));
        TIME_MIN(bd, OPS->linear_weight_grad_sparse(dev, rows, in, out, x, dy, dw, db));
        csnn__cpu_sparse_mode = 1;
        TIME_MIN(fs, OPS->linear_forward_sparse(dev, rows, in, out, x, w, b, y2));
        TIME_MIN(bs, OPS->linear_weight_grad_sparse(dev, rows, in, out, x, dy, dw2, db));
        double ey = max_diff(y, y2, ny), ew = max_diff(dw, dw2, nw);
        csnn__cpu_sparse_mode = 0;
        TIME_MIN(fa, OPS->linear_forward_sparse(dev, rows, in, out, x, w, b, y2));
        TIME_MIN(ba, OPS->linear_weight_grad_sparse(dev, rows, in, out, x, dy, dw2, db));
        printf("%5.2f   %9.2f %10.2f %8.2f   %8.2f %9.2f %7.2f   %.1e  %.1e\n", densities[k], fd,
               fs, fa, bd, bs, ba, ey, ew);
        fflush(stdout);
    }
    free(x), free(w), free(b), free(y), free(y2), free(dy), free(dw), free(dw2), free(db);
}

static csnn_status compose_fwd(void *dev, const csnn_neuron_desc *nd, const csnn_pool_desc *pd,
                               const float *x, float *s, float *h, float *y, uint8_t *am)
{
    CSNN_TRY(OPS->neuron_forward(dev, nd, x, s, h));
    return OPS->maxpool_forward(dev, pd, s, y, am);
}

static csnn_status compose_bwd(void *dev, const csnn_neuron_desc *nd, const csnn_pool_desc *pd,
                               const float *dy, const uint8_t *am, float *gs, const float *h,
                               float *dx)
{
    CSNN_TRY(OPS->maxpool_backward(dev, pd, dy, am, gs));
    return OPS->neuron_backward(dev, nd, gs, h, dx);
}

static void bench_neuron(void *dev, int shared, int hw, const char *name)
{
    const int T = 4, N = 16, C = 128, ho = hw / 2;
    csnn_neuron_desc nd = {.kind = CSNN_NEURON_IF, .surrogate = CSNN_SURROGATE_ATAN,
                           .hard_reset = 1, .x_shared = shared, .t = T,
                           .m = (int64_t)N * C * hw * hw, .v_threshold = 1.0f, .alpha = 2.0f};
    csnn_pool_desc pd = {.planes = (int64_t)T * N * C, .h_in = hw, .w_in = hw, .h_out = ho,
                         .w_out = ho, .k = 2, .stride = 2};
    size_t m = (size_t)nd.m, nx = shared ? m : T * m, ny = (size_t)T * N * C * ho * ho;
    float *x = floats(nx), *s = floats(T * m), *h = floats(T * m), *y = floats(ny);
    float *y2 = floats(ny), *dy = floats(ny), *dx = floats(nx), *dx2 = floats(nx);
    uint8_t *am = malloc(ny), *am2 = malloc(ny);
    fill_uniform(x, nx, -0.6, 1.4);
    fill_uniform(dy, ny, -1, 1);
    double cf_train, cf_infer, ff_train, ff_infer, cb, fb;
    TIME_MIN(cf_train, compose_fwd(dev, &nd, &pd, x, s, h, y, am));
    TIME_MIN(cf_infer, compose_fwd(dev, &nd, &pd, x, s, NULL, y, NULL));
    TIME_MIN(cb, compose_bwd(dev, &nd, &pd, dy, am, s, h, dx));
    /* training as libcsnn runs it: x_shared layers keep no h (backward
     * recomputes it), the others keep h */
    float *hk = shared ? NULL : h;
    TIME_MIN(ff_train, OPS->neuron_pool_forward(dev, &nd, &pd, x, y2, am2, hk));
    TIME_MIN(ff_infer, OPS->neuron_pool_forward(dev, &nd, &pd, x, y2, NULL, NULL));
    TIME_MIN(fb, OPS->neuron_pool_backward(dev, &nd, &pd, x, hk, am2, dy, dx2));
    int same = !memcmp(y, y2, ny * sizeof(float)) && !memcmp(am, am2, ny) &&
               !memcmp(dx, dx2, nx * sizeof(float));
    double rate = 0;
    for (size_t i = 0; i < ny; i++) rate += y[i];
    printf("\n## %s: IF%s [4,16,128,%d,%d] + MaxPool 2 (pooled rate %.2f); ms\n", name,
           shared ? " x_shared" : "", hw, hw, rate / (double)ny);
    printf("             composition   fused (%s)\n", shared ? "h = NULL" : "h kept");
    printf("fwd train    %11.1f   %8.1f\n", cf_train, ff_train);
    printf("fwd infer    %11.1f   %8.1f\n", cf_infer, ff_infer);
    printf("bwd          %11.1f   %8.1f\n", cb, fb);
    printf("bit-identical: %s\n", same ? "yes" : "NO");
    free(x), free(s), free(h), free(y), free(y2), free(dy), free(dx), free(dx2), free(am),
        free(am2);
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    repeats = argc > 2 ? atoi(argv[2]) : 5;
    const char *what = argc > 3 ? argv[3] : "all";
    const char *clk = getenv("BENCH_CLOCK");
    if (clk && !strcmp(clk, "cpu")) clock_id = CLOCK_PROCESS_CPUTIME_ID;
    void *dev = NULL;
    if (OPS->open(0, threads, &dev) != CSNN_OK) {
        fprintf(stderr, "cannot open the CPU backend: %s\n", csnn_last_error_message());
        return 1;
    }
    char desc[300] = "";
    OPS->describe(dev, desc, sizeof desc);
    printf("# %s; AVX-512 kernels: %s; min of %d runs; %s time\n", desc,
           csnn__cpu_use_avx512() ? "yes" : "no", repeats,
           clock_id == CLOCK_MONOTONIC ? "wall-clock" : "process CPU");
    loadavg("at start");
    int all = !strcmp(what, "all");
    if (all || !strcmp(what, "conv")) bench_conv(dev);
    if (!strcmp(what, "convfwd")) bench_conv_forward(dev);
    if (!strcmp(what, "temporal")) bench_conv_temporal(dev);
    if (all || !strcmp(what, "linear")) {
        bench_linear(dev, 64, 18432, 1152, "fc1");
        bench_linear(dev, 64, 1152, 128, "fc2");
    }
    if (all || !strcmp(what, "neuron") || !strcmp(what, "sn1")) bench_neuron(dev, 1, 48, "sn1");
    if (all || !strcmp(what, "neuron") || !strcmp(what, "sn2")) bench_neuron(dev, 0, 24, "sn2");
    loadavg("at end");
    OPS->close(dev);
    return 0;
}
