/*
 * neuron_pool.cu - spiking neurons followed by max pooling, fused
 * (neuron_pool_forward / neuron_pool_backward of csnn_backend.h).
 *
 * The composition neuron_forward + maxpool_forward writes the full-resolution
 * spikes [T, M] to memory and reads them back (and its backward does the same
 * with dL/dS); here they never leave the registers. Every H, spike and
 * gradient is computed by the device functions of neuron_common.cuh (the
 * same ones neuron.cu uses), in the same order as the composition, so the
 * results are bit for bit those of neuron_forward + maxpool_forward and
 * maxpool_backward + neuron_backward of this module.
 *
 * Forward: one thread per pooling window (plane, oy, ox), looping over T. It
 * keeps the k*k membranes of its window (registers for k = 2 and 3, a local
 * array for k up to 16), and at each step charges and fires them in
 * row-major window order, writing the pooled spike (1 when any neuron of the
 * window fired) and the argmax (the FIRST spiking neuron, else 0: the first
 * maximum of maxpool_forward on binary spikes). With overlapping windows
 * (stride < k) a neuron belongs to several windows and each of them runs its
 * dynamics - the same float operations, so the same H and spikes; H is
 * written (h != NULL) only by the first window containing the neuron, so
 * every element of h has exactly one writer. Neurons no window covers (the
 * floor mode's leftover rows and columns, gaps when stride > k) influence
 * no output: their H, when h is asked for, comes from a second kernel of one
 * thread per neuron that returns at once for covered neurons.
 *
 * Backward: one thread per NEURON, looping t = T-1 .. 0: dL/dS[t] of the
 * neuron is gathered from every window containing it whose argmax at step t
 * is this neuron (in row-major window order, as maxpool_backward sums
 * overlapping windows), then one step of the neurons' backward through time
 * (neuron_backward_step). No atomics, every dx element written once,
 * deterministic. Neurons no window covers get dL/dS = 0 (their gradient is
 * then 0, but they go through the same recurrence). H comes from h, or,
 * when h is NULL (a layer reading the static block's output, x_shared,
 * keeps no [T, M] buffer), is recomputed from x by rerunning the forward
 * recurrence: in chunks of NPOOL_TCHUNK steps held in a local array, from the
 * last chunk back (one forward pass when T <= NPOOL_TCHUNK; beyond that each
 * chunk reruns the steps before it, O(T^2 / NPOOL_TCHUNK) charges, still
 * small next to the memory traffic for any realistic T). dx is [T, M], or
 * [M] summed over t = T-1 .. 0 when x_shared (the order of neuron_backward).
 */
#include "neuron_common.cuh"

/* Steps of recomputed H held per backward thread when h is NULL. */
#define NPOOL_TCHUNK 32

typedef struct npool_geom {
    int64_t pps;       /* planes per step (N * C) */
    int64_t plane;     /* h_in * w_in */
    int64_t out_plane; /* h_out * w_out */
    int h_in, w_in, h_out, w_out, k, stride;
} npool_geom;

/* Checks both descriptors and that they describe the same tensor. */
static csnn_status npool_setup(const char *op, const csnn_neuron_desc *nd,
                               const csnn_pool_desc *pd, neuron_params *p, npool_geom *g)
{
    CSNN_CU_RETURN_IF(cu_neuron_params(op, nd, p));
    CSNN_CU_RETURN_IF(cu_pool_check(op, pd));
    const int64_t plane = (int64_t)pd->h_in * pd->w_in;
    if (nd->m % plane != 0 || pd->planes != (int64_t)nd->t * (nd->m / plane))
        return cu_error(CSNN_ERR_SHAPE,
                        "cuda %s: %lld neurons per step over %d steps are not %lld planes of "
                        "%dx%d",
                        op, (long long)nd->m, (int)nd->t, (long long)pd->planes, pd->h_in,
                        pd->w_in);
    g->pps = nd->m / plane;
    g->plane = plane;
    g->out_plane = (int64_t)pd->h_out * pd->w_out;
    g->h_in = pd->h_in;
    g->w_in = pd->w_in;
    g->h_out = pd->h_out;
    g->w_out = pd->w_out;
    g->k = pd->k;
    g->stride = pd->stride;
    return CSNN_OK;
}

/* The windows covering input row (or column) y: [*lo, *hi], empty when
 * *lo > *hi (as in pool.cu's backward). */
static __device__ __forceinline__ void npool_cover(int y, int k, int stride, int n_out, int *lo,
                                                   int *hi)
{
    *lo = y - k + 1 <= 0 ? 0 : (y - k + stride) / stride;
    int h = y / stride;
    *hi = h > n_out - 1 ? n_out - 1 : h;
}

/* K > 0: windows of exactly K x K (membranes in registers); K == 0: any
 * k <= 16 (a local array). */
template <int K>
__global__ void k_npool_forward(neuron_params p, npool_geom g, const float *x, float *y,
                                uint8_t *argmax, float *h)
{
    constexpr int KK = K > 0 ? K * K : 256;
    const int k = K > 0 ? K : g.k;
    const int64_t outs = g.pps * g.out_plane; /* windows per step */
    CU_FOR(o, outs)
    {
        int64_t pl = o / g.out_plane;
        int rem = (int)(o - pl * g.out_plane);
        int oy = rem / g.w_out, ox = rem - oy * g.w_out;
        int64_t base = pl * g.plane + (int64_t)(oy * g.stride) * g.w_in + ox * g.stride;
        /* rows and columns of the window not shared with the window above /
         * to the left: H of those neurons is written by this window */
        int own_y = oy == 0 ? 0 : k - g.stride;
        int own_x = ox == 0 ? 0 : k - g.stride;
        float v[KK];
        for (int j = 0; j < k * k; j++) v[j] = neuron_v0(p);
        for (int t = 0; t < p.t; t++) {
            const float *xt = x + base + (p.x_shared ? 0 : (int64_t)t * p.m);
            float *ht = h ? h + base + (int64_t)t * p.m : NULL;
            bool any = false;
            int arg = 0;
            for (int ky = 0; ky < k; ky++) {
                for (int kx = 0; kx < k; kx++) {
                    int j = ky * k + kx;
                    int64_t off = (int64_t)ky * g.w_in + kx;
                    float hv = neuron_charge(p, v[j], xt[off]);
                    bool s = neuron_fire(p, hv, &v[j]);
                    if (s && !any) {
                        any = true;
                        arg = j;
                    }
                    if (ht && ky >= own_y && kx >= own_x) ht[off] = hv;
                }
            }
            int64_t yo = (int64_t)t * outs + o;
            y[yo] = any ? 1.0f : 0.0f;
            if (argmax) argmax[yo] = (uint8_t)arg;
        }
    }
}

/* H of the neurons no window covers (h != NULL only). */
__global__ void k_npool_forward_uncovered(neuron_params p, npool_geom g, const float *x, float *h)
{
    CU_FOR(i, p.m)
    {
        int rem = (int)(i % g.plane);
        int yy = rem / g.w_in, xx = rem - yy * g.w_in;
        int ylo, yhi, xlo, xhi;
        npool_cover(yy, g.k, g.stride, g.h_out, &ylo, &yhi);
        npool_cover(xx, g.k, g.stride, g.w_out, &xlo, &xhi);
        if (ylo <= yhi && xlo <= xhi) continue; /* a window's thread writes it */
        float v = neuron_v0(p);
        for (int t = 0; t < p.t; t++) {
            int64_t idx = (int64_t)t * p.m + i;
            float ht = neuron_charge(p, v, x[p.x_shared ? i : idx]);
            neuron_fire(p, ht, &v);
            h[idx] = ht;
        }
    }
}

__global__ void k_npool_backward(neuron_params p, npool_geom g, const float *x, const float *h,
                                 const uint8_t *argmax, const float *dy, float *dx)
{
    const int64_t outs = g.pps * g.out_plane;
    CU_FOR(i, p.m)
    {
        int64_t pl = i / g.plane;
        int rem = (int)(i - pl * g.plane);
        int yy = rem / g.w_in, xx = rem - yy * g.w_in;
        int ylo, yhi, xlo, xhi;
        npool_cover(yy, g.k, g.stride, g.h_out, &ylo, &yhi);
        npool_cover(xx, g.k, g.stride, g.w_out, &xlo, &xhi);
        float gv = 0.0f;
        float acc = 0.0f; /* x_shared: sum over T */
        float hbuf[NPOOL_TCHUNK];
        for (int t1 = p.t; t1 > 0; t1 -= NPOOL_TCHUNK) {
            int t0 = t1 > NPOOL_TCHUNK ? t1 - NPOOL_TCHUNK : 0;
            if (!h) { /* H of steps [t0, t1) from x */
                float v = neuron_v0(p);
                for (int t = 0; t < t1; t++) {
                    float ht = neuron_charge(p, v, x[p.x_shared ? i : (int64_t)t * p.m + i]);
                    neuron_fire(p, ht, &v);
                    if (t >= t0) hbuf[t - t0] = ht;
                }
            }
            for (int t = t1 - 1; t >= t0; t--) {
                int64_t idx = (int64_t)t * p.m + i;
                float ht = h ? h[idx] : hbuf[t - t0];
                /* dL/dS[t]: dy of every window that chose this neuron */
                float gs = 0.0f;
                const int64_t ob = (int64_t)t * outs + pl * g.out_plane;
                for (int oy = ylo; oy <= yhi; oy++) {
                    for (int ox = xlo; ox <= xhi; ox++) {
                        int64_t o = ob + (int64_t)oy * g.w_out + ox;
                        int want = (yy - oy * g.stride) * g.k + (xx - ox * g.stride);
                        if ((int)argmax[o] == want) gs += dy[o];
                    }
                }
                float d = neuron_backward_step(p, ht, gs, &gv);
                if (p.x_shared) {
                    acc += d;
                } else {
                    dx[idx] = d;
                }
            }
        }
        if (p.x_shared) dx[i] = acc;
    }
}

csnn_status cu_neuron_pool_forward(void *dev, const csnn_neuron_desc *nd, const csnn_pool_desc *pd,
                                   const float *x, float *y, uint8_t *argmax, float *h)
{
    const char *op = "neuron_pool_forward";
    CU_ENTER(dev, op);
    neuron_params p;
    npool_geom g;
    CSNN_CU_RETURN_IF(npool_setup(op, nd, pd, &p, &g));
    if (p.m == 0) return CSNN_OK;
    CU_NOT_NULL(op, x);
    CU_NOT_NULL(op, y);
    const int64_t outs = g.pps * g.out_plane;
    switch (g.k) {
    case 2:
        k_npool_forward<2><<<cu_blocks(outs), CU_THREADS, 0, d->stream>>>(p, g, x, y, argmax, h);
        break;
    case 3:
        k_npool_forward<3><<<cu_blocks(outs), CU_THREADS, 0, d->stream>>>(p, g, x, y, argmax, h);
        break;
    default:
        k_npool_forward<0><<<cu_blocks(outs), CU_THREADS, 0, d->stream>>>(p, g, x, y, argmax, h);
        break;
    }
    CU_LAUNCH_CHECK(op, "k_npool_forward");
    const bool uncovered = g.stride > g.k ||
                           (int64_t)(g.h_out - 1) * g.stride + g.k < g.h_in ||
                           (int64_t)(g.w_out - 1) * g.stride + g.k < g.w_in;
    if (h && uncovered) {
        k_npool_forward_uncovered<<<cu_blocks(p.m), CU_THREADS, 0, d->stream>>>(p, g, x, h);
        CU_LAUNCH_CHECK(op, "k_npool_forward_uncovered");
    }
    return CSNN_OK;
}

csnn_status cu_neuron_pool_backward(void *dev, const csnn_neuron_desc *nd,
                                    const csnn_pool_desc *pd, const float *x, const float *h,
                                    const uint8_t *argmax, const float *dy, float *dx)
{
    const char *op = "neuron_pool_backward";
    CU_ENTER(dev, op);
    neuron_params p;
    npool_geom g;
    CSNN_CU_RETURN_IF(npool_setup(op, nd, pd, &p, &g));
    if (p.m == 0) return CSNN_OK;
    if (!h && !x)
        return cu_error(CSNN_ERR_INVALID_ARGUMENT,
                        "cuda %s: arguments 'h' and 'x' are both NULL (one is needed)", op);
    CU_NOT_NULL(op, argmax);
    CU_NOT_NULL(op, dy);
    CU_NOT_NULL(op, dx);
    k_npool_backward<<<cu_blocks(p.m), CU_THREADS, 0, d->stream>>>(p, g, x, h, argmax, dy, dx);
    CU_LAUNCH_CHECK(op, "k_npool_backward");
    return CSNN_OK;
}
