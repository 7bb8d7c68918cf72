/* cpu_conv.c - 2-D convolution by im2col / col2im and sgemm.
 *
 * The batch is cut into L "lanes" of consecutive images (L depends on the
 * descriptor only, never on the thread count); the pool runs one task per
 * lane, and each lane owns an im2col buffer in the workspace. So the
 * workspace size cannot go stale when the thread count changes, and every
 * result is the same whatever the number of threads:
 *   forward   y_i = W [c_out, ckk] x col(x_i) [ckk, hw_out] + b
 *   backward  dW_lane = sum over the lane's images of dy_i col(x_i)^T, the
 *             lanes' partials then added in lane order (lane 0 writes dw
 *             itself, the others a buffer in the workspace);
 *             dx_i = col2im(W^T dy_i); db = channel sums of dy.
 * A 1x1 convolution with stride 1 and no padding uses x as its own col.
 *
 * With stride 1 and padding below the kernel size, dx_i goes tap by tap
 * instead ("taps_dx"; the reference model's conv2): dy_i is copied into a
 * zero-bordered buffer of rows WP = w_in + kw - 1 wide, where the dy values
 * a tap (ky, kx) sends to dx row iy, column ix sit at one constant offset
 * from iy * WP + ix; so dx [c_in, h_in x WP] = sum over taps of
 * W_tap^T [c_in, c_out] dy_pad [c_out, window of the tap], kh * kw sgemm
 * calls accumulating into one buffer, and the w_in valid columns of each
 * row are copied out. The same products and the same tap order as
 * col2im(W^T dy_i), without the ckk x hw_out col buffer and its scatter. */
#include <limits.h>
#include <string.h>

#include "cpu_conv.h"

csnn_status csnn__cpu_conv_check(const char *op, const csnn_conv2d_desc *d)
{
    CPU_NOT_NULL(op, d);
    if (d->n < 0 || d->c_in < 1 || d->h_in < 1 || d->w_in < 1 || d->c_out < 1 || d->kh < 1 ||
        d->kw < 1 || d->stride_h < 1 || d->stride_w < 1 || d->pad_h < 0 || d->pad_w < 0)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "cpu %s: bad descriptor n %d c_in %d %dx%d c_out %d kernel %dx%d "
                           "stride %dx%d pad %dx%d",
                           op, d->n, d->c_in, d->h_in, d->w_in, d->c_out, d->kh, d->kw,
                           d->stride_h, d->stride_w, d->pad_h, d->pad_w);
    int64_t ho = ((int64_t)d->h_in + 2 * (int64_t)d->pad_h - d->kh) / d->stride_h + 1;
    int64_t wo = ((int64_t)d->w_in + 2 * (int64_t)d->pad_w - d->kw) / d->stride_w + 1;
    if ((int64_t)d->h_in + 2 * (int64_t)d->pad_h < d->kh ||
        (int64_t)d->w_in + 2 * (int64_t)d->pad_w < d->kw || ho != d->h_out || wo != d->w_out)
        return csnn__error(CSNN_ERR_SHAPE,
                           "cpu %s: output %dx%d does not match input %dx%d, kernel %dx%d, "
                           "stride %dx%d, pad %dx%d",
                           op, d->h_out, d->w_out, d->h_in, d->w_in, d->kh, d->kw, d->stride_h,
                           d->stride_w, d->pad_h, d->pad_w);
    int64_t ckk = (int64_t)d->c_in * d->kh * d->kw, hw_out = (int64_t)d->h_out * d->w_out;
    if (ckk > INT_MAX || hw_out > INT_MAX || (int64_t)d->h_in * d->w_in > INT_MAX ||
        ckk * d->c_out > INT_MAX || ckk * hw_out > ((int64_t)1 << 40) ||
        (int64_t)d->h_in + 2 * (int64_t)d->pad_h >= (1 << 30) ||
        (int64_t)d->w_in + 2 * (int64_t)d->pad_w >= (1 << 30))
        return csnn__error(CSNN_ERR_LIMIT,
                           "cpu %s: convolution too large (c_in*kh*kw %lld, h_out*w_out %lld, "
                           "pad %dx%d)",
                           op, (long long)ckk, (long long)hw_out, d->pad_h, d->pad_w);
    return CSNN_OK;
}

/* The padded dy [c_out, h_in + kh, WP] and the dx accumulator [c_in, h_in,
 * WP] of the tap-by-tap input gradient (WP = w_in + kw - 1). */
static size_t taps_dy_floats(const csnn_conv2d_desc *d)
{
    return ALIGN_FLOATS((size_t)d->c_out * ((size_t)d->h_in + (size_t)d->kh) *
                        ((size_t)d->w_in + (size_t)d->kw - 1));
}

static size_t taps_floats(const csnn_conv2d_desc *d)
{
    return taps_dy_floats(d) +
           ALIGN_FLOATS((size_t)d->c_in * (size_t)d->h_in * ((size_t)d->w_in + (size_t)d->kw - 1));
}

void csnn__cpu_conv_plan(const csnn_conv2d_desc *d, conv_plan *p)
{
    p->d = d;
    p->in_size = (int64_t)d->c_in * d->h_in * d->w_in;
    p->hw_out = (int64_t)d->h_out * d->w_out;
    p->out_size = (int64_t)d->c_out * p->hw_out;
    p->ckk = (int64_t)d->c_in * d->kh * d->kw;
    p->direct = d->kh == 1 && d->kw == 1 && d->stride_h == 1 && d->stride_w == 1 &&
                d->pad_h == 0 && d->pad_w == 0;
    p->col_floats = p->direct ? 0 : ALIGN_FLOATS((size_t)p->ckk * (size_t)p->hw_out);
    p->w_floats = ALIGN_FLOATS((size_t)p->ckk * (size_t)d->c_out);
    /* tap by tap when its two buffers fit where the col buffer goes */
    p->taps_dx = !p->direct && d->stride_h == 1 && d->stride_w == 1 && d->pad_h < d->kh &&
                 d->pad_w < d->kw && taps_floats(d) <= p->col_floats;
    /* Winograd where its scratch fits the col buffer, or is small (256 KB:
     * then the col buffer grows to it). Not for few input channels and
     * many outputs, where its transformed dy would be several col buffers. */
    if (csnn__cpu_wino_shape(d)) {
        const size_t wino = csnn__cpu_wino_scratch_floats(d);
        p->wino_ok = wino <= p->col_floats || wino <= WINO_SMALL_FLOATS;
        if (p->wino_ok && wino > p->col_floats) p->col_floats = wino;
    } else {
        p->wino_ok = 0;
    }
    p->wino_dx = p->wino_ok && csnn__cpu_wino_mode != 2;
    int lanes = d->n < CONV_MAX_LANES ? d->n : CONV_MAX_LANES;
    while (lanes > 1 &&
           ((size_t)lanes * p->col_floats + (size_t)(lanes - 1) * p->w_floats) * sizeof(float) >
               CONV_WORKSPACE_BUDGET)
        lanes--;
    p->lanes = lanes > 0 ? lanes : 1;
}

static float *lane_col(const conv_plan *p, void *workspace, int lane)
{
    return (float *)workspace + (size_t)lane * p->col_floats;
}

/* Output positions o in [*o0, *o1) read an input index o*stride - pad + k
 * inside [0, size). */
void csnn__cpu_conv_valid_range(int k, int pad, int stride, int size, int out, int *o0, int *o1)
{
    int lo = pad - k; /* o*stride >= pad - k */
    int a = lo <= 0 ? 0 : (lo + stride - 1) / stride;
    int hi = size - 1 + pad - k; /* o*stride <= size - 1 + pad - k */
    int b = hi < 0 ? 0 : hi / stride + 1;
    *o0 = a < out ? a : out;
    *o1 = b < out ? b : out;
    if (*o1 < *o0) *o1 = *o0;
}

/* col [c_in*kh*kw, h_out*w_out] from one image x [c_in, h_in, w_in]
 * (to_col), or its adjoint: x += col2im(col) (x zeroed by the caller). */
void csnn__cpu_im2col(const csnn_conv2d_desc *d, float *x, float *col, int to_col)
{
    const int64_t hw_out = (int64_t)d->h_out * d->w_out;
    const int sw = d->stride_w;
    for (int c = 0; c < d->c_in; c++) {
        float *xc = x + (int64_t)c * d->h_in * d->w_in;
        for (int i = 0; i < d->kh; i++)
            for (int j = 0; j < d->kw; j++) {
                float *row = col + ((int64_t)(c * d->kh + i) * d->kw + j) * hw_out;
                int ow0, ow1;
                csnn__cpu_conv_valid_range(j, d->pad_w, sw, d->w_in, d->w_out, &ow0, &ow1);
                for (int oh = 0; oh < d->h_out; oh++) {
                    float *r = row + (int64_t)oh * d->w_out;
                    int ih = oh * d->stride_h - d->pad_h + i;
                    if (ih < 0 || ih >= d->h_in) {
                        if (to_col) memset(r, 0, sizeof(float) * (size_t)d->w_out);
                        continue;
                    }
                    float *xr = xc + (int64_t)ih * d->w_in - d->pad_w + j;
                    if (to_col) {
                        for (int ow = 0; ow < ow0; ow++) r[ow] = 0.0f;
                        if (sw == 1)
                            memcpy(r + ow0, xr + ow0, sizeof(float) * (size_t)(ow1 - ow0));
                        else
                            for (int ow = ow0; ow < ow1; ow++) r[ow] = xr[ow * sw];
                        for (int ow = ow1; ow < d->w_out; ow++) r[ow] = 0.0f;
                    } else {
                        for (int ow = ow0; ow < ow1; ow++) xr[ow * sw] += r[ow];
                    }
                }
            }
    }
}

csnn_status csnn__cpu_conv2d_workspace(void *dev, const csnn_conv2d_desc *d, size_t *bytes)
{
    (void)dev;
    CPU_NOT_NULL("conv2d_workspace", bytes);
    *bytes = 0;
    CSNN_TRY(csnn__cpu_conv_check("conv2d_workspace", d));
    conv_plan p;
    csnn__cpu_conv_plan(d, &p);
    /* backward's need (cols + partial dWs) covers forward's (cols); the
     * spike-sparse entries lay the same memory out their own way; never 0 */
    size_t floats = (size_t)p.lanes * p.col_floats + (size_t)(p.lanes - 1) * p.w_floats +
                    csnn__cpu_conv_dx_w_floats(&p);
    size_t sparse = csnn__cpu_conv_sparse_floats(&p);
    if (sparse > floats) floats = sparse;
    *bytes = floats ? floats * sizeof(float) : 64;
    return CSNN_OK;
}

/* ---- forward ---- */

typedef struct {
    conv_plan p;
    const float *x, *w, *b;
    float *y;
    void *ws;
} conv_fwd_job;

void csnn__cpu_conv_image_forward(const conv_plan *p, const float *xi, const float *w,
                                  const float *b, float *yi, float *col)
{
    const csnn_conv2d_desc *d = p->d;
    if (!p->direct) csnn__cpu_im2col(d, (float *)xi, col, 1);
    csnn__cpu_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d->c_out, (int)p->hw_out,
                    (int)p->ckk, 1.0f, w, (int)p->ckk, p->direct ? xi : col, (int)p->hw_out, 0.0f,
                    yi, (int)p->hw_out);
    if (b)
        for (int co = 0; co < d->c_out; co++) {
            float *row = yi + co * p->hw_out;
            const float bc = b[co];
            for (int64_t k = 0; k < p->hw_out; k++) row[k] += bc;
        }
}

static void conv_fwd_lane(void *arg, int64_t lane, int worker)
{
    (void)worker;
    const conv_fwd_job *j = arg;
    const conv_plan *p = &j->p;
    float *col = lane_col(p, j->ws, (int)lane);
    for (int64_t i = conv_lane_first(p, lane); i < conv_lane_first(p, lane + 1); i++)
        csnn__cpu_conv_image_forward(p, j->x + i * p->in_size, j->w, j->b, j->y + i * p->out_size,
                                     col);
}

csnn_status csnn__cpu_conv2d_forward(void *dev, const csnn_conv2d_desc *d, const float *x,
                                     const float *w, const float *b, float *y, void *workspace)
{
    const cpu_device *dv = dev;
    CSNN_TRY(csnn__cpu_conv_check("conv2d_forward", d));
    if (d->n == 0) return CSNN_OK;
    CPU_NOT_NULL("conv2d_forward", x);
    CPU_NOT_NULL("conv2d_forward", w);
    CPU_NOT_NULL("conv2d_forward", y);
    if (d->has_bias) CPU_NOT_NULL("conv2d_forward", b);
    conv_fwd_job j = {.x = x, .w = w, .b = d->has_bias ? b : NULL, .y = y, .ws = workspace};
    csnn__cpu_conv_plan(d, &j.p);
    if (j.p.col_floats) CPU_NOT_NULL("conv2d_forward", workspace);
    csnn__pool_run(dv ? dv->pool : NULL, j.p.lanes, conv_fwd_lane, &j);
    return CSNN_OK;
}

/* ---- backward ---- */

typedef struct {
    conv_plan p;
    const float *x, *w, *dy;
    float *dx, *dw;
    float *wt; /* W in the input gradient's form (csnn__cpu_conv_prepare_dx) */
    void *ws;
} conv_bwd_job;

static float *lane_dw(const conv_bwd_job *j, int64_t lane)
{
    return lane == 0 ? j->dw
                     : (float *)j->ws + (size_t)j->p.lanes * j->p.col_floats +
                           (size_t)(lane - 1) * j->p.w_floats;
}

typedef struct {
    const conv_plan *p;
    const float *w;
    float *wt;
} wtaps_job;

static void wtaps_range(void *arg, int64_t t0, int64_t t1, int worker)
{
    (void)worker;
    const wtaps_job *j = arg;
    const csnn_conv2d_desc *d = j->p->d;
    const int64_t kk = (int64_t)d->kh * d->kw, ckk = j->p->ckk;
    for (int64_t t = t0; t < t1; t++)
        for (int64_t ci = 0; ci < d->c_in; ci++) {
            float *row = j->wt + (t * d->c_in + ci) * d->c_out;
            const float *src = j->w + ci * kk + t;
            for (int64_t co = 0; co < d->c_out; co++) row[co] = src[co * ckk];
        }
}

size_t csnn__cpu_conv_dx_w_floats(const conv_plan *p)
{
    if (p->wino_ok) return csnn__cpu_wino_u_floats(p->d);
    return p->taps_dx ? p->w_floats : 0;
}

void csnn__cpu_conv_prepare_dx(const cpu_device *dv, const conv_plan *p, const float *w,
                               float *wt)
{
    if (p->wino_dx) {
        csnn__cpu_wino_make_u(dv, p->d, w, wt);
        return;
    }
    if (!p->taps_dx) return;
    wtaps_job j = {p, w, wt};
    csnn__cpu_parallel_for(dv, (int64_t)p->d->kh * p->d->kw, 1, wtaps_range, &j);
}

/* dx_i tap by tap (see the top of this file). */
static void image_dx_taps(const conv_plan *p, const float *wt, const float *dyi, float *dxi,
                          float *buf)
{
    const csnn_conv2d_desc *d = p->d;
    const int kh = d->kh, kw = d->kw, ho = d->h_out, wo = d->w_out;
    const int64_t wp = (int64_t)d->w_in + kw - 1, hp = (int64_t)d->h_in + kh;
    const int64_t pt = kh - 1 - d->pad_h, pl = kw - 1 - d->pad_w; /* dy's place in dy_pad */
    float *dyp = buf, *acc = buf + taps_dy_floats(d);
    for (int co = 0; co < d->c_out; co++) {
        float *plane = dyp + co * hp * wp;
        memset(plane, 0, sizeof(float) * (size_t)(pt * wp));
        for (int oy = 0; oy < ho; oy++) {
            float *r = plane + (pt + oy) * wp;
            for (int64_t c = 0; c < pl; c++) r[c] = 0.0f;
            memcpy(r + pl, dyi + ((int64_t)co * ho + oy) * wo, sizeof(float) * (size_t)wo);
            for (int64_t c = pl + wo; c < wp; c++) r[c] = 0.0f;
        }
        memset(plane + (pt + ho) * wp, 0, sizeof(float) * (size_t)((hp - pt - ho) * wp));
    }
    /* the last row's columns past w_in are not needed */
    const int n = (int)((int64_t)(d->h_in - 1) * wp + d->w_in);
    for (int ky = 0; ky < kh; ky++)
        for (int kx = 0; kx < kw; kx++) {
            const int t = ky * kw + kx;
            const int64_t off = (int64_t)(kh - 1 - ky) * wp + (kw - 1 - kx);
            csnn__cpu_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d->c_in, n, d->c_out,
                            1.0f, wt + (int64_t)t * d->c_in * d->c_out, d->c_out, dyp + off,
                            (int)(hp * wp), t ? 1.0f : 0.0f, acc, (int)(d->h_in * wp));
        }
    for (int ci = 0; ci < d->c_in; ci++)
        for (int iy = 0; iy < d->h_in; iy++)
            memcpy(dxi + ((int64_t)ci * d->h_in + iy) * d->w_in,
                   acc + ((int64_t)ci * d->h_in + iy) * wp, sizeof(float) * (size_t)d->w_in);
}

void csnn__cpu_conv_image_dx(const conv_plan *p, const float *w, const float *wt,
                             const float *dyi, float *dxi, float *col)
{
    const csnn_conv2d_desc *d = p->d;
    const int hw = (int)p->hw_out, ckk = (int)p->ckk;
    if (p->wino_dx) {
        csnn__cpu_wino_image_dx(d, wt, dyi, dxi, col);
        return;
    }
    if (p->taps_dx) {
        image_dx_taps(p, wt, dyi, dxi, col);
        return;
    }
    /* dcol [ckk, hw] = W^T [ckk, c_out] dy_i [c_out, hw] */
    csnn__cpu_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, hw, d->c_out, 1.0f, w, ckk, dyi,
                    hw, 0.0f, p->direct ? dxi : col, hw);
    if (!p->direct) {
        memset(dxi, 0, sizeof(float) * (size_t)p->in_size);
        csnn__cpu_im2col(d, dxi, col, 0);
    }
}

static void conv_bwd_lane(void *arg, int64_t lane, int worker)
{
    (void)worker;
    const conv_bwd_job *j = arg;
    const conv_plan *p = &j->p;
    const csnn_conv2d_desc *d = p->d;
    const int hw = (int)p->hw_out, ckk = (int)p->ckk;
    float *col = lane_col(p, j->ws, (int)lane);
    float *dw = lane_dw(j, lane);
    int64_t first = conv_lane_first(p, lane);
    for (int64_t i = first; i < conv_lane_first(p, lane + 1); i++) {
        const float *xi = j->x + i * p->in_size, *dyi = j->dy + i * p->out_size;
        if (!p->direct) csnn__cpu_im2col(d, (float *)xi, col, 1);
        /* dW [c_out, ckk] (+)= dy_i [c_out, hw] col^T [hw, ckk] */
        csnn__cpu_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d->c_out, ckk, hw, 1.0f, dyi, hw,
                    p->direct ? xi : col, hw, i == first ? 0.0f : 1.0f, dw, ckk);
        if (j->dx) csnn__cpu_conv_image_dx(p, j->w, j->wt, dyi, j->dx + i * p->in_size, col);
    }
}

static void conv_sum_dw(void *arg, int64_t k0, int64_t k1, int worker)
{
    (void)worker;
    const conv_bwd_job *j = arg;
    for (int64_t lane = 1; lane < j->p.lanes; lane++) {
        const float *part = lane_dw(j, lane);
        for (int64_t k = k0; k < k1; k++) j->dw[k] += part[k];
    }
}

csnn_status csnn__cpu_conv2d_backward(void *dev, const csnn_conv2d_desc *d, const float *x,
                                      const float *w, const float *dy, float *dx, float *dw,
                                      float *db, void *workspace)
{
    const cpu_device *dv = dev;
    CSNN_TRY(csnn__cpu_conv_check("conv2d_backward", d));
    CPU_NOT_NULL("conv2d_backward", dw);
    if (d->has_bias) CPU_NOT_NULL("conv2d_backward", db);
    conv_bwd_job j = {.x = x, .w = w, .dy = dy, .dx = dx, .dw = dw, .ws = workspace};
    csnn__cpu_conv_plan(d, &j.p);
    if (d->n == 0) {
        memset(dw, 0, sizeof(float) * (size_t)j.p.ckk * (size_t)d->c_out);
        if (d->has_bias) memset(db, 0, sizeof(float) * (size_t)d->c_out);
        return CSNN_OK;
    }
    CPU_NOT_NULL("conv2d_backward", x);
    CPU_NOT_NULL("conv2d_backward", w);
    CPU_NOT_NULL("conv2d_backward", dy);
    if (j.p.col_floats || j.p.lanes > 1) CPU_NOT_NULL("conv2d_backward", workspace);
    if (dv && dv->no_winograd) j.p.wino_dx = 0;
    if (dx && csnn__cpu_conv_dx_w_floats(&j.p)) {
        j.wt = (float *)workspace + (size_t)j.p.lanes * j.p.col_floats +
               (size_t)(j.p.lanes - 1) * j.p.w_floats;
        csnn__cpu_conv_prepare_dx(dv, &j.p, w, j.wt);
    }
    csnn_pool *pool = dv ? dv->pool : NULL;
    csnn__pool_run(pool, j.p.lanes, conv_bwd_lane, &j);
    if (j.p.lanes > 1)
        csnn__cpu_parallel_for(dv, j.p.ckk * d->c_out, 1 << 14, conv_sum_dw, &j);
    if (d->has_bias) csnn__cpu_channel_sum(dv, dy, db, d->n, d->c_out, j.p.hw_out);
    return CSNN_OK;
}
