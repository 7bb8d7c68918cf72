/*
 * conv.cu - 2-D convolution (NCHW, OIHW, cross-correlation) as im2col +
 * cuBLAS, over chunks of images.
 *
 * Notation: K = c_in*kh*kw (rows of the column matrix), P = h_out*w_out
 * (output pixels per image), nb = images per chunk, L = nb*P.
 *
 * The column matrix of a chunk is row-major col[K][L]: the columns of image
 * i are the L-range [i*P, (i+1)*P). Workspace per chunk: col (K*L floats)
 * followed by dyt (c_out*L floats, backward only). nb is the largest count
 * of images whose workspace fits the device's budget (256 MiB by default;
 * CSNN_CUDA_CONV_WORKSPACE overrides it at open()), at least 1, so
 * conv2d_workspace() and the ops agree for a given device and descriptor.
 *
 * forward, per chunk:
 *   im2col(x) -> col;  y_i[c_out][P] = W[c_out][K] x col_i[K][P]  for each
 *   image i of the chunk, one cublasSgemmStridedBatched (W stride 0, col_i
 *   with ld L and stride P); then y += bias (one launch for the batch).
 * backward, per chunk:
 *   im2col(x) -> col;  dyt[c_out][L] = dy of the chunk, transposed per image;
 *   dW (+)= dyt x col^T   (one gemm with k = L; beta 0 on the first chunk, 1
 *   after: dW is overwritten, then accumulated in chunk order);
 *   col_i = W^T x dy_i (strided batched, overwrites col);  col2im -> dx
 *   (a gather: each dx element sums its kh*kw taps in fixed order: no
 *   atomics, deterministic).
 *   db = bias_grad(dy) once for the batch.
 */
#include <limits.h>

#include "cuda_common.cuh"

typedef struct conv_geom {
    int64_t n, c_in, h_in, w_in, c_out, h_out, w_out, kh, kw, sh, sw, ph, pw;
    int64_t K, P;
    int64_t nb; /* images per chunk */
} conv_geom;

static csnn_status make_geom(const char *op, const cuda_device *d, const csnn_conv2d_desc *cd,
                             conv_geom *g)
{
    if (!cd) return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda %s: NULL descriptor", op);
    if (cd->n < 0 || cd->c_in < 1 || cd->h_in < 1 || cd->w_in < 1 || cd->c_out < 1 ||
        cd->kh < 1 || cd->kw < 1 || cd->stride_h < 1 || cd->stride_w < 1 || cd->pad_h < 0 ||
        cd->pad_w < 0)
        return cu_error(CSNN_ERR_INVALID_ARGUMENT,
                        "cuda %s: bad descriptor (n %d, in %dx%dx%d, out %d, kernel %dx%d, "
                        "stride %dx%d, pad %dx%d)",
                        op, cd->n, cd->c_in, cd->h_in, cd->w_in, cd->c_out, cd->kh, cd->kw,
                        cd->stride_h, cd->stride_w, cd->pad_h, cd->pad_w);
    int64_t eh = (int64_t)cd->h_in + 2 * (int64_t)cd->pad_h - cd->kh;
    int64_t ew = (int64_t)cd->w_in + 2 * (int64_t)cd->pad_w - cd->kw;
    if (eh < 0 || ew < 0 || cd->h_out != eh / cd->stride_h + 1 ||
        cd->w_out != ew / cd->stride_w + 1)
        return cu_error(CSNN_ERR_SHAPE,
                        "cuda %s: output %dx%d does not match input %dx%d, kernel %dx%d, stride "
                        "%dx%d, pad %dx%d",
                        op, cd->h_out, cd->w_out, cd->h_in, cd->w_in, cd->kh, cd->kw,
                        cd->stride_h, cd->stride_w, cd->pad_h, cd->pad_w);
    g->n = cd->n;
    g->c_in = cd->c_in;
    g->h_in = cd->h_in;
    g->w_in = cd->w_in;
    g->c_out = cd->c_out;
    g->h_out = cd->h_out;
    g->w_out = cd->w_out;
    g->kh = cd->kh;
    g->kw = cd->kw;
    g->sh = cd->stride_h;
    g->sw = cd->stride_w;
    g->ph = cd->pad_h;
    g->pw = cd->pad_w;
    g->K = g->c_in * g->kh * g->kw;
    g->P = g->h_out * g->w_out;
    /* cuBLAS (32-bit API) sees leading dimensions up to L and matrices of up
     * to max(K, c_out) * L elements: keep those within int. */
    int64_t widest = g->K > g->c_out ? g->K : g->c_out;
    if (g->P * widest > INT_MAX)
        return cu_error(CSNN_ERR_LIMIT,
                        "cuda %s: one image's column matrix (%lld x %lld) is too large", op,
                        (long long)widest, (long long)g->P);
    int64_t per_image = (g->K + g->c_out) * g->P * (int64_t)sizeof(float);
    int64_t nb = (int64_t)(d->conv_budget / (size_t)per_image);
    int64_t nb_int = INT_MAX / (g->P * widest);
    if (nb > nb_int) nb = nb_int;
    if (nb > g->n) nb = g->n;
    g->nb = nb < 1 ? 1 : nb;
    return CSNN_OK;
}

static size_t workspace_bytes(const conv_geom *g)
{
    if (g->n == 0) return 0;
    return (size_t)(g->nb * (g->K + g->c_out) * g->P) * sizeof(float);
}

csnn_status cu_conv2d_workspace(void *dev, const csnn_conv2d_desc *desc, size_t *bytes)
{
    const char *op = "conv2d_workspace";
    CU_ENTER(dev, op);
    CU_NOT_NULL(op, bytes);
    conv_geom g = conv_geom();
    CSNN_CU_RETURN_IF(make_geom(op, d, desc, &g));
    *bytes = workspace_bytes(&g);
    return CSNN_OK;
}

/* col[r][i*P + p] for the nb images starting at x (already offset):
 * r = (ci*kh + ky)*kw + kx, p = oy*w_out + ox. */
__global__ void k_im2col(conv_geom g, int64_t nb, const float *x, float *col)
{
    int64_t L = nb * g.P;
    int64_t total = g.K * L;
    CU_FOR(idx, total)
    {
        int64_t r = idx / L;
        int64_t q = idx - r * L;
        int64_t i = q / g.P;
        int64_t p = q - i * g.P;
        int64_t oy = p / g.w_out, ox = p - oy * g.w_out;
        int64_t kx = r % g.kw;
        int64_t ky = (r / g.kw) % g.kh;
        int64_t ci = r / (g.kw * g.kh);
        int64_t iy = oy * g.sh - g.ph + ky;
        int64_t ix = ox * g.sw - g.pw + kx;
        float v = 0.0f;
        if (iy >= 0 && iy < g.h_in && ix >= 0 && ix < g.w_in)
            v = x[((i * g.c_in + ci) * g.h_in + iy) * g.w_in + ix];
        col[idx] = v;
    }
}

/* dx of the nb images starting at dx (already offset) from col: each input
 * element sums the taps (ky, kx ascending) that read it. */
__global__ void k_col2im(conv_geom g, int64_t nb, const float *col, float *dx)
{
    int64_t L = nb * g.P;
    int64_t per_image = g.c_in * g.h_in * g.w_in;
    int64_t total = nb * per_image;
    CU_FOR(idx, total)
    {
        int64_t i = idx / per_image;
        int64_t rem = idx - i * per_image;
        int64_t ci = rem / (g.h_in * g.w_in);
        int64_t pix = rem - ci * (g.h_in * g.w_in);
        int64_t iy = pix / g.w_in, ix = pix - iy * g.w_in;
        float acc = 0.0f;
        for (int64_t ky = 0; ky < g.kh; ky++) {
            int64_t ty = iy + g.ph - ky;
            if (ty < 0 || ty % g.sh != 0) continue;
            int64_t oy = ty / g.sh;
            if (oy >= g.h_out) continue;
            for (int64_t kx = 0; kx < g.kw; kx++) {
                int64_t tx = ix + g.pw - kx;
                if (tx < 0 || tx % g.sw != 0) continue;
                int64_t ox = tx / g.sw;
                if (ox >= g.w_out) continue;
                int64_t r = (ci * g.kh + ky) * g.kw + kx;
                acc += col[r * L + i * g.P + oy * g.w_out + ox];
            }
        }
        dx[idx] = acc;
    }
}

/* dyt[c][i*P + p] = dy[i][c][p] for the nb images starting at dy. */
__global__ void k_transpose_dy(conv_geom g, int64_t nb, const float *dy, float *dyt)
{
    int64_t L = nb * g.P;
    int64_t total = g.c_out * L;
    CU_FOR(idx, total)
    {
        int64_t c = idx / L;
        int64_t q = idx - c * L;
        int64_t i = q / g.P;
        int64_t p = q - i * g.P;
        dyt[idx] = dy[(i * g.c_out + c) * g.P + p];
    }
}

csnn_status cu_conv2d_forward(void *dev, const csnn_conv2d_desc *desc, const float *x,
                              const float *w, const float *b, float *y, void *workspace)
{
    const char *op = "conv2d_forward";
    CU_ENTER(dev, op);
    conv_geom g = conv_geom();
    CSNN_CU_RETURN_IF(make_geom(op, d, desc, &g));
    if (g.n == 0) return CSNN_OK;
    CU_NOT_NULL(op, x);
    CU_NOT_NULL(op, w);
    CU_NOT_NULL(op, y);
    CU_NOT_NULL(op, workspace);
    if (desc->has_bias) CU_NOT_NULL(op, b);
    float *col = (float *)workspace;
    const float one = 1.0f, zero = 0.0f;
    for (int64_t i0 = 0; i0 < g.n; i0 += g.nb) {
        int64_t nb = g.n - i0 < g.nb ? g.n - i0 : g.nb;
        int64_t L = nb * g.P;
        k_im2col<<<cu_blocks(g.K * L), CU_THREADS, 0, d->stream>>>(
            g, nb, x + i0 * g.c_in * g.h_in * g.w_in, col);
        CU_LAUNCH_CHECK(op, "k_im2col");
        /* column-major: Y_i^T[P][c_out] = col_i^T[P][K] W^T[K][c_out] */
        CUBLAS_TRY(op, cublasSgemmStridedBatched(
                           d->cublas, CUBLAS_OP_N, CUBLAS_OP_N, (int)g.P, (int)g.c_out, (int)g.K,
                           &one, col, (int)L, (long long)g.P, w, (int)g.K, 0LL, &zero,
                           y + i0 * g.c_out * g.P, (int)g.P, (long long)(g.c_out * g.P), (int)nb));
    }
    if (desc->has_bias) CSNN_CU_RETURN_IF(cu_bias_add_impl(d, op, y, b, g.n, g.c_out, g.P));
    return CSNN_OK;
}

csnn_status cu_conv2d_backward(void *dev, const csnn_conv2d_desc *desc, const float *x,
                               const float *w, const float *dy, float *dx, float *dw, float *db,
                               void *workspace)
{
    const char *op = "conv2d_backward";
    CU_ENTER(dev, op);
    conv_geom g = conv_geom();
    CSNN_CU_RETURN_IF(make_geom(op, d, desc, &g));
    CU_NOT_NULL(op, dw);
    if (desc->has_bias) CU_NOT_NULL(op, db);
    if (g.n == 0) {
        /* no images: zero gradients */
        CSNN_CU_RETURN_IF(cu_fill_impl(d, op, dw, 0.0f, g.c_out * g.K));
        if (desc->has_bias) CSNN_CU_RETURN_IF(cu_fill_impl(d, op, db, 0.0f, g.c_out));
        return CSNN_OK;
    }
    CU_NOT_NULL(op, x);
    CU_NOT_NULL(op, w);
    CU_NOT_NULL(op, dy);
    CU_NOT_NULL(op, workspace);
    float *col = (float *)workspace;
    float *dyt = col + g.nb * g.K * g.P;
    const float one = 1.0f, zero = 0.0f;
    for (int64_t i0 = 0; i0 < g.n; i0 += g.nb) {
        int64_t nb = g.n - i0 < g.nb ? g.n - i0 : g.nb;
        int64_t L = nb * g.P;
        const float *dy_chunk = dy + i0 * g.c_out * g.P;
        k_im2col<<<cu_blocks(g.K * L), CU_THREADS, 0, d->stream>>>(
            g, nb, x + i0 * g.c_in * g.h_in * g.w_in, col);
        CU_LAUNCH_CHECK(op, "k_im2col");
        k_transpose_dy<<<cu_blocks(g.c_out * L), CU_THREADS, 0, d->stream>>>(g, nb, dy_chunk,
                                                                               dyt);
        CU_LAUNCH_CHECK(op, "k_transpose_dy");
        /* row-major dW[c_out][K] (+)= dyt[c_out][L] col^T[L][K]; in cuBLAS's
         * column-major terms dW^T[K][c_out] = op_T(col)[K][L] dyt^T[L][c_out] */
        const float *beta = i0 == 0 ? &zero : &one;
        CUBLAS_TRY(op, cublasSgemm(d->cublas, CUBLAS_OP_T, CUBLAS_OP_N, (int)g.K, (int)g.c_out,
                                   (int)L, &one, col, (int)L, dyt, (int)L, beta, dw, (int)g.K));
        if (dx) {
            /* col_i[K][P] = W^T[K][c_out] dy_i[c_out][P];
             * column-major: col_i^T[P][K] = dy_i^T[P][c_out] W[c_out][K] */
            CUBLAS_TRY(op, cublasSgemmStridedBatched(
                               d->cublas, CUBLAS_OP_N, CUBLAS_OP_T, (int)g.P, (int)g.K,
                               (int)g.c_out, &one, dy_chunk, (int)g.P, (long long)(g.c_out * g.P),
                               w, (int)g.K, 0LL, &zero, col, (int)L, (long long)g.P, (int)nb));
            int64_t total = nb * g.c_in * g.h_in * g.w_in;
            k_col2im<<<cu_blocks(total), CU_THREADS, 0, d->stream>>>(
                g, nb, col, dx + i0 * g.c_in * g.h_in * g.w_in);
            CU_LAUNCH_CHECK(op, "k_col2im");
        }
    }
    if (desc->has_bias) CSNN_CU_RETURN_IF(cu_bias_grad_impl(d, op, dy, db, g.n, g.c_out, g.P));
    return CSNN_OK;
}
