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
 * A 1x1 convolution with stride 1 and no padding uses x as its own col. */
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
    size_t floats = (size_t)p.lanes * p.col_floats + (size_t)(p.lanes - 1) * p.w_floats;
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
    void *ws;
} conv_bwd_job;

static float *lane_dw(const conv_bwd_job *j, int64_t lane)
{
    return lane == 0 ? j->dw
                     : (float *)j->ws + (size_t)j->p.lanes * j->p.col_floats +
                           (size_t)(lane - 1) * j->p.w_floats;
}

void csnn__cpu_conv_image_dx(const conv_plan *p, const float *w, const float *dyi, float *dxi,
                             float *col)
{
    const csnn_conv2d_desc *d = p->d;
    const int hw = (int)p->hw_out, ckk = (int)p->ckk;
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
        if (j->dx) csnn__cpu_conv_image_dx(p, j->w, dyi, j->dx + i * p->in_size, col);
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
    csnn_pool *pool = dv ? dv->pool : NULL;
    csnn__pool_run(pool, j.p.lanes, conv_bwd_lane, &j);
    if (j.p.lanes > 1)
        csnn__cpu_parallel_for(dv, j.p.ckk * d->c_out, 1 << 14, conv_sum_dw, &j);
    if (d->has_bias) csnn__cpu_channel_sum(dv, dy, db, d->n, d->c_out, j.p.hw_out);
    return CSNN_OK;
}
