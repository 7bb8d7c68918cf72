/* cpu_amx.h - AMX-BF16 kernels of the CPU backend (cpu_amx.c). */
#ifndef CSNN_CPU_AMX_H
#define CSNN_CPU_AMX_H

#include "cpu_conv.h"
#include "cpu_internal.h"

/** A convolution's geometry for the AMX weight gradient. */
typedef struct {
    const csnn_conv2d_desc *d;
    int wp, kk;         /* padded row width; kh * kw */
    int64_t kpad, ps;   /* anchors per image (a multiple of 32); bf16 per padded plane */
    size_t x_floats;    /* the padded bf16 planes of one image, in floats */
    size_t dy_floats;   /* one pair-interleaved part of dy, in floats */
} cpu_amx_conv;

/** 1 when the CPU has AMX-BF16, the OS grants its tile state and AVX-512 is
 *  in use (csnn__cpu_isa_cap). */
int csnn__cpu_amx_usable(void);

/** Fills *a and returns 1 when the descriptor suits the kernel (stride 1,
 *  c_in and c_out multiples of 32, padding below the kernel size); else 0. */
int csnn__cpu_amx_conv_plan(const csnn_conv2d_desc *d, cpu_amx_conv *a);
/** Scratch floats csnn__cpu_amx_dw_image needs. */
size_t csnn__cpu_amx_conv_floats(const cpu_amx_conv *a);
/** dwt [(ci * kh * kw + tap) * c_out + co] += one image's weight gradient,
 *  from its input xi [c_in, h_in, w_in] and dyt = dy^T [h_out * w_out,
 *  c_out]; scratch: csnn__cpu_amx_conv_floats floats, 64-byte aligned.
 *  Returns 0, dwt untouched, when AMX is not usable or an input is not a
 *  bfloat16 number (then the caller takes another path). */
int csnn__cpu_amx_dw_image(const cpu_amx_conv *a, const float *xi, const float *dyt,
                           float *scratch, float *dwt);

/** A stride-1 convolution as AMX computes its forward and its input
 *  gradient: out [m, oh, ow] = sum over the taps (ty, tx) and the k input
 *  planes of A_tap [m, k] in [k, oy + ty - pad_h, ox + tx - pad_w] (zero
 *  outside the h x w planes). The forward: in = x, A_tap = W[:, :, ty, tx],
 *  m = c_out, k = c_in. The input gradient: in = dy, A_tap = W[:, :, kh - 1
 *  - ty, kw - 1 - tx]^T, m = c_in, k = c_out, padding k - 1 - pad. */
typedef struct {
    int m, k, kh, kw, h, w, pad_h, pad_w, oh, ow;
    int split;             /* 0: the inputs are bfloat16 numbers; 1: cut in 3 */
    int wp;                /* padded row width */
    int64_t kpad, ps;      /* anchors (a multiple of 32); positions per plane */
    size_t in_part_floats; /* one pair-interleaved part of the input planes */
    size_t out_floats;     /* the result at every anchor [m][kpad] */
    size_t a_part_floats;  /* one bfloat16 part of A [kh * kw][m][k] */
} cpu_amx_fwd;

/** Fills *f and returns 1 when the descriptor suits the kernels (as
 *  csnn__cpu_amx_conv_plan): for the forward (input_grad 0; x must then be
 *  bfloat16 numbers) or for the input gradient (input_grad 1; dy is cut
 *  into three bfloat16 parts); else 0. */
int csnn__cpu_amx_fwd_plan(const csnn_conv2d_desc *d, int input_grad, cpu_amx_fwd *f);
/** Floats of the packed A (three parts), and of the scratch of one image. */
size_t csnn__cpu_amx_fwd_weight_floats(const cpu_amx_fwd *f);
size_t csnn__cpu_amx_fwd_floats(const cpu_amx_fwd *f);
/** Packs tap `tap` of w [c_out, c_in, kh, kw] into a (64-byte aligned,
 *  csnn__cpu_amx_fwd_weight_floats floats): each weight cut exactly into
 *  three bfloat16 parts. Returns 0 when a weight of the tap is an infinity
 *  or a NaN (the parts would not reproduce its products). */
int csnn__cpu_amx_fwd_pack_weights(const cpu_amx_fwd *f, const float *w, int tap, uint16_t *a);
/** out [m, oh, ow] (+ bias [m] when not NULL) of one image from in [k, h,
 *  w] and a packed A; scratch: csnn__cpu_amx_fwd_floats floats, 64-byte
 *  aligned. Returns 0, out untouched, when AMX is not usable or an input is
 *  not acceptable (split 0: not a finite bfloat16 number; split 1: an
 *  infinity or a NaN). */
int csnn__cpu_amx_fwd_image(const cpu_amx_fwd *f, const uint16_t *a, const float *in,
                            const float *bias, float *scratch, float *out);

/** A 3 x 3, stride-1 convolution's forward by Winograd's F(2 x 2, 3 x 3)
 *  (cpu_conv.h) with its 16 products on AMX tiles: M_xi [c_out, tiles] =
 *  U_xi [c_out, c_in] V_xi [c_in, tiles], U = G g G^T of each kernel cut
 *  exactly into three bfloat16 parts, V = B^T d B of the input tiles, which
 *  must be bfloat16 numbers (spikes: small integers); y = A^T M A + bias. */
typedef struct {
    int c_in, c_out;
    wino_geom g;
    int64_t nt, ntp;        /* tiles of an output plane; rounded up to 32 */
    size_t u_part;          /* bfloat16 of one part of U [16][c_out][c_in] */
    size_t v_floats;        /* V in pairs of channels [16][c_in / 2][ntp] */
    size_t m_floats;        /* M of 32 output channels [16][32][ntp] */
    size_t t_floats;        /* the float V of two channels [2][16][ntp] */
} cpu_amx_wino;

/** Fills *f and returns 1 when the descriptor suits (csnn__cpu_wino_shape,
 *  c_in and c_out multiples of 32); else 0. */
int csnn__cpu_amx_wino_plan(const csnn_conv2d_desc *d, cpu_amx_wino *f);
/** Floats of the packed U (three parts), and of one image's scratch. */
size_t csnn__cpu_amx_wino_u_floats(const cpu_amx_wino *f);
size_t csnn__cpu_amx_wino_floats(const cpu_amx_wino *f);
/** U of output channels [co0, co1) of w [c_out, c_in, 3, 3] into u
 *  (64-byte aligned, csnn__cpu_amx_wino_u_floats floats); 0 when AMX is
 *  not usable or a value of U is an infinity or a NaN (then the kernel is
 *  not to be used). */
int csnn__cpu_amx_wino_pack_u(const cpu_amx_wino *f, const float *w, int64_t co0, int64_t co1,
                              uint16_t *u);
/** y [c_out, h_out, w_out] (+ bias [c_out] when not NULL) of one image x
 *  [c_in, h_in, w_in]; scratch: csnn__cpu_amx_wino_floats floats, 64-byte
 *  aligned. Returns 0, y untouched, when AMX is not usable or a value of V
 *  is not a finite bfloat16 number (an input is not, or their sums). */
int csnn__cpu_amx_wino_fwd_image(const cpu_amx_wino *f, const uint16_t *u, const float *x,
                                 const float *bias, float *scratch, float *y);

/** The same convolution's weight gradient by F(2 x 2, 3 x 3) turned round
 *  (per tile: dW += G^T [(A g A^T) (.) V] G, g the tile's 2 x 2 block of dy,
 *  V = B^T d B as in the forward), its 16 products M_xi [c_in, c_out] =
 *  V_xi [c_in, tiles] (A g A^T)_xi [tiles, c_out] on AMX tiles with dy's
 *  transform cut exactly into three bfloat16 parts, summed over images in
 *  M (G^T M G is linear in M: one output transform per sum):
 *  csnn__cpu_amx_wino_dw_image adds the products of one image, from its
 *  input xi [c_in, h_in, w_in] and dyt = dy^T [h_out * w_out, c_out], to M
 *  in the scratch (csnn__cpu_amx_wino_dw_floats floats, 64-byte aligned),
 *  or sets M to them when `first` is 1 (the first image of a sum). Returns
 *  0, M untouched, when AMX is not usable, a value of V is not a finite
 *  bfloat16 number or a value of dy is not finite.
 *  csnn__cpu_amx_wino_dw_flush: dwt [(ci * 9 + tap) * c_out + co] += the
 *  weight gradient of the images summed in M (M is then spent: the next
 *  image starts a sum). Other uses of the scratch between the images of a
 *  sum overwrite M. */
size_t csnn__cpu_amx_wino_dw_floats(const cpu_amx_wino *f);
int csnn__cpu_amx_wino_dw_image(const cpu_amx_wino *f, const float *xi, const float *dyt,
                                float *scratch, int first);
void csnn__cpu_amx_wino_dw_flush(const cpu_amx_wino *f, const float *scratch, float *dwt);

/** A linear layer's weight gradient dw [out, in] = dy^T [out, rows] x
 *  [rows, in] on AMX tiles, for inputs that are bfloat16 numbers (dropped-
 *  out spikes): 1 when the shape suits (in and out multiples of 32). */
int csnn__cpu_amx_linear_dw_shape(int64_t rows, int64_t in, int64_t out);
/** Floats of its packed operands (B: x in row pairs; A: dy^T in three
 *  bfloat16 parts), 64-byte multiples each. */
size_t csnn__cpu_amx_linear_x_floats(int64_t rows, int64_t in);
size_t csnn__cpu_amx_linear_dy_floats(int64_t rows, int64_t out);
/** Packs columns [f0, f1) (multiples of 32) of x [rows, in] into xp; 0
 *  when one of them is not a finite bfloat16 number. */
int csnn__cpu_amx_linear_pack_x(int64_t rows, int64_t in, const float *x, int64_t f0, int64_t f1,
                                uint32_t *xp);
/** Packs dy [rows, out] into dyp, each value cut exactly into three
 *  bfloat16 parts; 0 when one is an infinity or a NaN. */
int csnn__cpu_amx_linear_pack_dy(int64_t rows, int64_t out, const float *dy, uint16_t *dyp);
/** dw[:, f0:f1] (f0, f1 multiples of 32) from the packed operands; 0, dw
 *  untouched, when AMX is not usable. */
int csnn__cpu_amx_linear_dw(int64_t rows, int64_t in, int64_t out, const uint16_t *dyp,
                            const uint32_t *xp, int64_t f0, int64_t f1, float *dw);

#endif /* CSNN_CPU_AMX_H */
