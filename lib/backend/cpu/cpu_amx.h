/* cpu_amx.h - AMX-BF16 kernels of the CPU backend (cpu_amx.c). */
#ifndef CSNN_CPU_AMX_H
#define CSNN_CPU_AMX_H

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

#endif /* CSNN_CPU_AMX_H */
