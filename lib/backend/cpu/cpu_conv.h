/* cpu_conv.h - the convolution plan (lanes, buffers) and the per-image dense
 * steps, shared by the dense entries (cpu_conv.c) and the spike-sparse ones
 * (cpu_conv_sparse.c). */
#ifndef CSNN_CPU_CONV_H
#define CSNN_CPU_CONV_H

#include "cpu_internal.h"

#define CONV_MAX_LANES 12
#define CONV_WORKSPACE_BUDGET ((size_t)64 << 20) /* lanes shrink to stay below */
#define ALIGN_FLOATS(n) (((n) + 15) & ~(size_t)15)  /* 64-byte multiples */

typedef struct {
    const csnn_conv2d_desc *d;
    int64_t in_size, out_size, hw_out, ckk;
    size_t col_floats, w_floats; /* per-lane col buffer, one partial dW (aligned) */
    int direct;                  /* 1x1, stride 1, no padding: col(x) = x */
    int taps_dx;                 /* dx tap by tap (csnn__cpu_conv_image_dx) */
    int lanes;
} conv_plan;

/** Checks a descriptor; errors name `op`. */
csnn_status csnn__cpu_conv_check(const char *op, const csnn_conv2d_desc *d);
/** The plan of a checked descriptor (depends on the descriptor only). */
void csnn__cpu_conv_plan(const csnn_conv2d_desc *d, conv_plan *p);

/* First image of lane l (lane l holds images [first(l), first(l + 1))). */
static inline int64_t conv_lane_first(const conv_plan *p, int64_t lane)
{
    return (int64_t)p->d->n * lane / p->lanes;
}

/** Output positions o in [*o0, *o1) read an input index o*stride - pad + k
 *  inside [0, size). */
void csnn__cpu_conv_valid_range(int k, int pad, int stride, int size, int out, int *o0, int *o1);
/** col [c_in*kh*kw, h_out*w_out] from one image x [c_in, h_in, w_in]
 *  (to_col), or its adjoint: x += col2im(col) (x zeroed by the caller). */
void csnn__cpu_im2col(const csnn_conv2d_desc *d, float *x, float *col, int to_col);
/** One image, dense: yi = W col(xi) (+ b when b is not NULL); col is
 *  col_floats of scratch (unused when p->direct). */
void csnn__cpu_conv_image_forward(const conv_plan *p, const float *xi, const float *w,
                                  const float *b, float *yi, float *col);
/** W tap by tap, transposed: wt[tap][c_in][c_out] = w[c_out][c_in][tap]
 *  (w_floats floats), for csnn__cpu_conv_image_dx when p->taps_dx. */
void csnn__cpu_conv_make_wtaps(const cpu_device *dv, const conv_plan *p, const float *w,
                               float *wt);
/** One image, dense: dxi = col2im(W^T dyi), or when p->taps_dx the same sum
 *  tap by tap from wt (csnn__cpu_conv_make_wtaps) without a col buffer;
 *  col is col_floats of scratch. */
void csnn__cpu_conv_image_dx(const conv_plan *p, const float *w, const float *wt,
                             const float *dyi, float *dxi, float *col);

/** Workspace floats the spike-sparse entries need (cpu_conv_sparse.c);
 *  conv2d_workspace reports the larger of this and the dense need. */
size_t csnn__cpu_conv_sparse_floats(const conv_plan *p);

#endif /* CSNN_CPU_CONV_H */
