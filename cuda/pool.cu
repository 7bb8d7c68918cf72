/*
 * pool.cu - max pooling (no padding, floor mode) over `planes` planes.
 *
 * Forward: one thread per output; the window is scanned in row-major order
 * and only a strictly greater value (or a NaN, as PyTorch) replaces the
 * current maximum, so the argmax is the FIRST maximum (all-zero spike windows
 * pick their top-left element). argmax is the index in the window, ky*k+kx.
 *
 * Backward: one thread per INPUT element gathers dy from every window that
 * covers it and chose it, in row-major window order: no atomics, every dx
 * element written, overlapping windows (stride < k) summed deterministically
 * in the same order as a CPU scatter over the outputs.
 */
#include "cuda_common.cuh"

__global__ void k_maxpool_forward(int64_t planes, int h_in, int w_in, int h_out, int w_out, int k,
                                  int stride, const float *x, float *y, uint8_t *argmax)
{
    int64_t per_plane = (int64_t)h_out * w_out;
    int64_t total = planes * per_plane;
    CU_FOR(o, total)
    {
        int64_t p = o / per_plane;
        int rem = (int)(o - p * per_plane);
        int oy = rem / w_out, ox = rem - oy * w_out;
        const float *xp = x + p * h_in * w_in + (int64_t)(oy * stride) * w_in + ox * stride;
        float best = xp[0];
        int arg = 0;
        for (int ky = 0; ky < k; ky++) {
            for (int kx = 0; kx < k; kx++) {
                float v = xp[(int64_t)ky * w_in + kx];
                if (v > best || v != v) {
                    best = v;
                    arg = ky * k + kx;
                }
            }
        }
        y[o] = best;
        if (argmax) argmax[o] = (uint8_t)arg;
    }
}

__global__ void k_maxpool_backward(int64_t planes, int h_in, int w_in, int h_out, int w_out, int k,
                                   int stride, const float *dy, const uint8_t *argmax, float *dx)
{
    int64_t per_in = (int64_t)h_in * w_in;
    int64_t per_out = (int64_t)h_out * w_out;
    int64_t total = planes * per_in;
    CU_FOR(idx, total)
    {
        int64_t p = idx / per_in;
        int rem = (int)(idx - p * per_in);
        int y = rem / w_in, x = rem - y * w_in;
        /* windows oy with oy*stride <= y <= oy*stride + k - 1 */
        int oy_lo = y - k + 1 <= 0 ? 0 : (y - k + stride) / stride;
        int oy_hi = y / stride;
        if (oy_hi > h_out - 1) oy_hi = h_out - 1;
        int ox_lo = x - k + 1 <= 0 ? 0 : (x - k + stride) / stride;
        int ox_hi = x / stride;
        if (ox_hi > w_out - 1) ox_hi = w_out - 1;
        float g = 0.0f;
        const float *dyp = dy + p * per_out;
        const uint8_t *ap = argmax + p * per_out;
        for (int oy = oy_lo; oy <= oy_hi; oy++) {
            for (int ox = ox_lo; ox <= ox_hi; ox++) {
                int64_t o = (int64_t)oy * w_out + ox;
                int want = (y - oy * stride) * k + (x - ox * stride);
                if ((int)ap[o] == want) g += dyp[o];
            }
        }
        dx[idx] = g;
    }
}

csnn_status cu_pool_check(const char *op, const csnn_pool_desc *pd)
{
    if (!pd) return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda %s: NULL descriptor", op);
    if (pd->planes < 0 || pd->k < 1 || pd->k > 16 || pd->stride < 1 || pd->h_in < 1 ||
        pd->w_in < 1 || pd->h_out < 1 || pd->w_out < 1)
        return cu_error(CSNN_ERR_INVALID_ARGUMENT,
                        "cuda %s: bad descriptor (planes %lld, %dx%d -> %dx%d, k %d, stride %d)",
                        op, (long long)pd->planes, pd->h_in, pd->w_in, pd->h_out, pd->w_out, pd->k,
                        pd->stride);
    if ((int64_t)(pd->h_out - 1) * pd->stride + pd->k > pd->h_in ||
        (int64_t)(pd->w_out - 1) * pd->stride + pd->k > pd->w_in)
        return cu_error(CSNN_ERR_SHAPE,
                        "cuda %s: %dx%d windows of %d (stride %d) do not fit a %dx%d input", op,
                        pd->h_out, pd->w_out, pd->k, pd->stride, pd->h_in, pd->w_in);
    return CSNN_OK;
}

csnn_status cu_maxpool_forward(void *dev, const csnn_pool_desc *desc, const float *x, float *y,
                               uint8_t *argmax)
{
    const char *op = "maxpool_forward";
    CU_ENTER(dev, op);
    CSNN_CU_RETURN_IF(cu_pool_check(op, desc));
    int64_t total = desc->planes * desc->h_out * desc->w_out;
    if (total == 0) return CSNN_OK;
    CU_NOT_NULL(op, x);
    CU_NOT_NULL(op, y);
    k_maxpool_forward<<<cu_blocks(total), CU_THREADS, 0, d->stream>>>(
        desc->planes, desc->h_in, desc->w_in, desc->h_out, desc->w_out, desc->k, desc->stride, x,
        y, argmax);
    CU_LAUNCH_CHECK(op, "k_maxpool_forward");
    return CSNN_OK;
}

csnn_status cu_maxpool_backward(void *dev, const csnn_pool_desc *desc, const float *dy,
                                const uint8_t *argmax, float *dx)
{
    const char *op = "maxpool_backward";
    CU_ENTER(dev, op);
    CSNN_CU_RETURN_IF(cu_pool_check(op, desc));
    int64_t total = desc->planes * desc->h_in * desc->w_in;
    if (total == 0) return CSNN_OK;
    CU_NOT_NULL(op, dy);
    CU_NOT_NULL(op, argmax);
    CU_NOT_NULL(op, dx);
    k_maxpool_backward<<<cu_blocks(total), CU_THREADS, 0, d->stream>>>(
        desc->planes, desc->h_in, desc->w_in, desc->h_out, desc->w_out, desc->k, desc->stride, dy,
        argmax, dx);
    CU_LAUNCH_CHECK(op, "k_maxpool_backward");
    return CSNN_OK;
}
