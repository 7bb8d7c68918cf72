/* cpu_conv.h - the convolution plan (lanes, buffers) and the per-image dense
 * steps, shared by the dense entries (cpu_conv.c) and the spike-sparse ones
 * (cpu_conv_sparse.c). */
#ifndef CSNN_CPU_CONV_H
#define CSNN_CPU_CONV_H

#include "cpu_internal.h"

/* Lanes of a batch (at most): 16, so that the reference conv2's 64 images
 * (16 samples x 4 steps) make lanes of 4 images, or of one sample, that two
 * or four threads share evenly (12 lanes of 5 and 6 images left a thread
 * idle for up to a lane at the end of each call); each lane has its own
 * scratch (3.9 MB for the reference conv2). */
#define CONV_MAX_LANES 16
#define CONV_WORKSPACE_BUDGET ((size_t)64 << 20) /* lanes shrink to stay below */
#define ALIGN_FLOATS(n) (((n) + 15) & ~(size_t)15)  /* 64-byte multiples */
#define WINO_SMALL_FLOATS ((size_t)1 << 16)          /* see csnn__cpu_conv_plan */

typedef struct {
    const csnn_conv2d_desc *d;
    int64_t in_size, out_size, hw_out, ckk;
    size_t col_floats, w_floats; /* per-lane col buffer, one partial dW (aligned) */
    int direct;                  /* 1x1, stride 1, no padding: col(x) = x */
    int taps_dx;                 /* dx tap by tap (csnn__cpu_conv_image_dx) */
    int wino_ok;                 /* dx can go by Winograd's F(2x2, 3x3) (cpu_winograd.c) */
    int wino_dx;                 /* ... and does (wino_ok and not turned off) */
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
/** Floats of the weights in the form csnn__cpu_conv_image_dx reads
 *  (csnn__cpu_conv_prepare_dx): Winograd's U when p->wino_ok, W by taps
 *  when p->taps_dx, else 0. Depends on the descriptor only. */
size_t csnn__cpu_conv_dx_w_floats(const conv_plan *p);
/** The weights in the form the input gradient reads, into wt
 *  (csnn__cpu_conv_dx_w_floats floats): when p->wino_dx the transformed
 *  kernels U (csnn__cpu_wino_make_u), else when p->taps_dx W tap by tap,
 *  transposed: wt[tap][c_in][c_out] = w[c_out][c_in][tap]; else nothing. */
void csnn__cpu_conv_prepare_dx(const cpu_device *dv, const conv_plan *p, const float *w,
                               float *wt);
/** One image, dense: dxi = col2im(W^T dyi), or the same sum from wt
 *  (csnn__cpu_conv_prepare_dx) without a col buffer: by Winograd's
 *  F(2x2, 3x3) when p->wino_dx, else tap by tap when p->taps_dx; col is
 *  col_floats of scratch. */
void csnn__cpu_conv_image_dx(const conv_plan *p, const float *w, const float *wt,
                             const float *dyi, float *dxi, float *col);

/* ---- Winograd's F(2x2, 3x3) for the input gradient (cpu_winograd.c) ---- */

/** 0: the input gradient of a 3x3, stride-1 convolution goes by Winograd
 *  where its buffers fit (the default), 2: never (tests, benchmarks). */
extern int csnn__cpu_wino_mode;
/** 1 when d is 3x3 with stride 1 and padding at most 2 (any channels, any
 *  size). */
int csnn__cpu_wino_shape(const csnn_conv2d_desc *d);
/** Floats of U (16 c_in c_out) and of one image's scratch. */
size_t csnn__cpu_wino_u_floats(const csnn_conv2d_desc *d);
size_t csnn__cpu_wino_scratch_floats(const csnn_conv2d_desc *d);
/** U[xi][ci][co], the kernels turned by 180 degrees and transformed. */
void csnn__cpu_wino_make_u(const cpu_device *dv, const csnn_conv2d_desc *d, const float *w,
                           float *u);
/** One correlation of planes with 3 x 3 kernels as F(2 x 2, 3 x 3) tiles
 *  it: input planes [h, w] placed at (pt, pl) in a zero plane [2 th + 2,
 *  2 tw + 2]; output planes [oh, ow] in th x tw tiles of 2 x 2, tile t =
 *  ti tw + tj at output (2 ti, 2 tj). */
typedef struct {
    int h, w, pt, pl, oh, ow;
    int64_t th, tw;
} wino_geom;
/** The geometry of the forward (input_grad 0: x padded by pad into y) or of
 *  the input gradient (1: dy padded by 2 - pad into dx) of a descriptor
 *  csnn__cpu_wino_shape takes. */
void csnn__cpu_wino_geom(const csnn_conv2d_desc *d, int input_grad, wino_geom *g);
/** Floats of the padded plane and the row buffers the transforms use. */
size_t csnn__cpu_wino_plane_floats(const wino_geom *g);
/** Zeroes them: once per image, before its csnn__cpu_wino_input calls (the
 *  vectors read past the plane; the border is never written). */
void csnn__cpu_wino_plane_zero(const wino_geom *g, float *plane);
/** v[xi * vplane + t] = (B^T d B)[xi] of every tile t of one input plane
 *  src [h, w] (AVX-512 code when avx512, else portable; the same bits). */
void csnn__cpu_wino_input(const wino_geom *g, int avx512, const float *src, float *plane,
                          float *v, int64_t vplane);
/** One output plane dst [oh, ow] from m[xi * mplane + t]: A^T m A of each
 *  tile (plane: the buffers of csnn__cpu_wino_input, as scratch). */
void csnn__cpu_wino_output(const wino_geom *g, int avx512, const float *m, int64_t mplane,
                           float *dst, float *plane);
/** dxi [c_in, h_in, w_in] from dyi [c_out, h_out, w_out] and U. */
void csnn__cpu_wino_image_dx(const csnn_conv2d_desc *d, const float *u, const float *dyi,
                             float *dxi, float *scratch);

/** Workspace floats the spike-sparse entries need (cpu_conv_sparse.c);
 *  conv2d_workspace reports the larger of this and the dense need. */
size_t csnn__cpu_conv_sparse_floats(const conv_plan *p);
/** 1 when the spike-sparse entries would run the forward and the weight
 *  gradient on AMX tiles by Winograd (cpu_amx.c; the shape suits and its
 *  scratch fits the lanes' regions), on CPUs where AMX is used. */
int csnn__cpu_conv_sparse_wino(const conv_plan *p);

#endif /* CSNN_CPU_CONV_H */
