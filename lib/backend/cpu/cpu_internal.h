/* cpu_internal.h - shared by the files of the CPU backend.
 *
 * Device memory is host memory. All parallelism goes through the device's
 * thread pool (OpenBLAS is set to one thread at open). Every result is
 * independent of the thread count and of scheduling: where a reduction is
 * split, the split depends on the problem's shape only. */
#ifndef CSNN_CPU_INTERNAL_H
#define CSNN_CPU_INTERNAL_H

#include <cblas.h>

#include "csnn_internal.h"

typedef struct cpu_device {
    int n_threads;
    csnn_pool *pool;
    /* Grow-only scratch memory for entries that have no workspace argument
     * (csnn__cpu_scratch); one entry runs at a time on a device. */
    void *scratch;
    size_t scratch_bytes;
    int no_skinny; /* CSNN_DISABLE names "skinny": every product goes to OpenBLAS */
    int no_amx;    /* CSNN_DISABLE names "amx": no AMX tiles */
    int no_winograd; /* CSNN_DISABLE names "winograd": no F(2x2, 3x3) input gradient */
} cpu_device;

/* Returns INVALID_ARGUMENT naming the op when `ptr` is NULL. */
#define CPU_NOT_NULL(op, ptr)                                                                      \
    do {                                                                                           \
        if ((ptr) == NULL)                                                                         \
            return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "cpu %s: argument '%s' is NULL", (op),   \
                               #ptr);                                                              \
    } while (0)

/* Returns INVALID_ARGUMENT naming the op when the count `n` is negative. */
#define CPU_NONNEG(op, n)                                                                          \
    do {                                                                                           \
        if ((n) < 0)                                                                               \
            return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "cpu %s: %s = %lld is negative", (op),   \
                               #n, (long long)(n));                                                \
    } while (0)

/* ---- parallel loops (cpu_backend.c) ---- */

/** Processes items [begin, end) on pool worker `worker`. */
typedef void (*cpu_range_fn)(void *arg, int64_t begin, int64_t end, int worker);

/** Runs fn over [0, n) in chunks of at least `grain` items on the device's
 *  pool (inline when small). The chunking depends on the thread count, so
 *  use it only where each item's result does not depend on the chunking. */
void csnn__cpu_parallel_for(const cpu_device *d, int64_t n, int64_t grain, cpu_range_fn fn,
                            void *arg);

/* ---- helpers shared between families ---- */

/** At least `bytes` (> 0) of 64-byte aligned scratch memory, valid until the
 *  next call on the device (its content is not kept); NULL after setting
 *  CSNN_ERR_OUT_OF_MEMORY (naming `op`) when it cannot be had. */
void *csnn__cpu_scratch(cpu_device *d, size_t bytes, const char *op);

/* ---- instruction-set variants ----
 * libcsnn is compiled for the baseline of its architecture. Hot loops also
 * exist as AVX2 and AVX-512 code, chosen at run time:
 *  - elementwise loops (neurons, fused neuron + pool, BN statistics, the
 *    optimiser steps, reductions) are compiled three times from one
 *    always_inline body (CPU_RANGE_VARIANTS); the variants compute bit for
 *    bit the same, since the loops use +, -, *, /, sqrt and comparisons only
 *    (correctly rounded at every width), contraction into FMA is off, and
 *    no loop is reassociated (sums that must vectorise keep explicit lanes);
 *  - the spike-sparse kernels have an AVX-512 version with intrinsics (FMA)
 *    and a portable one; they agree to float rounding. */
enum { CPU_ISA_BASE = 0, CPU_ISA_AVX2 = 1, CPU_ISA_AVX512 = 2 };
/** The best instruction set this CPU (and OS) supports, at most
 *  csnn__cpu_isa_cap. */
int csnn__cpu_isa(void);
/** 1 when csnn__cpu_isa() is CPU_ISA_AVX512. */
int csnn__cpu_use_avx512(void);
/** The highest variant used (CPU_ISA_AVX512 by default); tests lower it to
 *  run the other variants on any CPU. */
extern int csnn__cpu_isa_cap;

#if defined(__x86_64__) && defined(__GNUC__)
#define CPU_TARGET_AVX2 __attribute__((target("avx2"), optimize("fp-contract=off")))
#define CPU_TARGET_AVX512                                                                          \
    __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,prefer-vector-width=512"),         \
                   optimize("fp-contract=off")))
/** Defines `static cpu_range_fn name(void)` returning the variant of the
 *  cpu_range_fn `body` (a static inline always_inline function) for this CPU. */
#define CPU_RANGE_VARIANTS(name, body)                                                             \
    static void name##_base(void *a, int64_t b, int64_t e, int w) { body(a, b, e, w); }           \
    static CPU_TARGET_AVX2 void name##_avx2(void *a, int64_t b, int64_t e, int w)                 \
    {                                                                                              \
        body(a, b, e, w);                                                                          \
    }                                                                                              \
    static CPU_TARGET_AVX512 void name##_avx512(void *a, int64_t b, int64_t e, int w)             \
    {                                                                                              \
        body(a, b, e, w);                                                                          \
    }                                                                                              \
    static cpu_range_fn name(void)                                                                 \
    {                                                                                              \
        const int isa = csnn__cpu_isa();                                                           \
        return isa == CPU_ISA_AVX512 ? name##_avx512 : isa == CPU_ISA_AVX2 ? name##_avx2           \
                                                                           : name##_base;          \
    }
#else
#define CPU_RANGE_VARIANTS(name, body)                                                             \
    static void name##_base(void *a, int64_t b, int64_t e, int w) { body(a, b, e, w); }           \
    static cpu_range_fn name(void) { return name##_base; }
#endif
#define CPU_INLINE static inline __attribute__((always_inline))

/** How the spike-sparse entries choose between their sparse and dense
 *  kernels: 0 by the measured density thresholds (the default), 1 always
 *  sparse, 2 always dense (for tests and benchmarks). */
extern int csnn__cpu_sparse_mode;

/** Number of pool workers an entry may see (worker indices are below it). */
static inline int csnn__cpu_workers(const cpu_device *d)
{
    return d && d->n_threads > 1 ? d->n_threads : 1;
}

/** db[c] = sum over o, i of dy[o, c, i], accumulated in double (in 16
 *  lanes when inner >= 16; the order depends on the shape only), parallel
 *  over channels (cpu_gemm.c). */
void csnn__cpu_channel_sum(const cpu_device *d, const float *dy, float *db, int64_t outer,
                           int64_t channels, int64_t inner);

/* ---- the compute entries of the table ---- */

csnn_status csnn__cpu_gemm(void *dev, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                           float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                           float beta, float *c, int64_t ldc);
csnn_status csnn__cpu_bias_add(void *dev, float *y, const float *b, int64_t outer,
                               int64_t channels, int64_t inner);
csnn_status csnn__cpu_bias_grad(void *dev, const float *dy, float *db, int64_t outer,
                                int64_t channels, int64_t inner);
csnn_status csnn__cpu_axpby(void *dev, int64_t n, float a, const float *x, float b, float *y);
csnn_status csnn__cpu_reduce(void *dev, int kind, const float *x, int64_t n,
                             double *host_result);

csnn_status csnn__cpu_conv2d_workspace(void *dev, const csnn_conv2d_desc *d, size_t *bytes);
csnn_status csnn__cpu_conv2d_forward(void *dev, const csnn_conv2d_desc *d, const float *x,
                                     const float *w, const float *b, float *y, void *workspace);
csnn_status csnn__cpu_conv2d_backward(void *dev, const csnn_conv2d_desc *d, const float *x,
                                      const float *w, const float *dy, float *dx, float *dw,
                                      float *db, void *workspace);

csnn_status csnn__cpu_bn_forward_train(void *dev, const csnn_bn_desc *d, const float *x,
                                       const float *gamma, const float *beta, float *y,
                                       float *save_mean, float *save_invstd, float *running_mean,
                                       float *running_var);
csnn_status csnn__cpu_bn_forward_infer(void *dev, const csnn_bn_desc *d, const float *x,
                                       const float *gamma, const float *beta,
                                       const float *running_mean, const float *running_var,
                                       float *y);
csnn_status csnn__cpu_bn_backward(void *dev, const csnn_bn_desc *d, const float *x,
                                  const float *dy, const float *gamma, const float *save_mean,
                                  const float *save_invstd, float *dx, float *dgamma,
                                  float *dbeta);

csnn_status csnn__cpu_maxpool_forward(void *dev, const csnn_pool_desc *d, const float *x,
                                      float *y, uint8_t *argmax);
csnn_status csnn__cpu_maxpool_backward(void *dev, const csnn_pool_desc *d, const float *dy,
                                       const uint8_t *argmax, float *dx);

csnn_status csnn__cpu_relu_forward(void *dev, int64_t n, const float *x, float *y);
csnn_status csnn__cpu_relu_backward(void *dev, int64_t n, const float *y, const float *dy,
                                    float *dx);
csnn_status csnn__cpu_dropout_mask(void *dev, float *mask, int64_t n, float p, uint64_t seed,
                                   uint64_t stream);
csnn_status csnn__cpu_mul_broadcast_t(void *dev, int32_t steps, int64_t n, const float *x,
                                      const float *mask, float *y);
csnn_status csnn__cpu_time_mean(void *dev, int32_t steps, int64_t n, const float *x, float *y);
csnn_status csnn__cpu_time_mean_backward(void *dev, int32_t steps, int64_t n, const float *dy,
                                         float *dx);
csnn_status csnn__cpu_time_repeat(void *dev, int32_t steps, int64_t n, const float *x, float *y);
csnn_status csnn__cpu_time_sum(void *dev, int32_t steps, int64_t n, const float *x, float *y);

csnn_status csnn__cpu_neuron_forward(void *dev, const csnn_neuron_desc *d, const float *x,
                                     float *s, float *h);
csnn_status csnn__cpu_neuron_backward(void *dev, const csnn_neuron_desc *d, const float *grad_s,
                                      const float *h, float *grad_x);

/* fused neuron + max-pool (cpu_neuron_pool.c) */
csnn_status csnn__cpu_neuron_pool_forward(void *dev, const csnn_neuron_desc *nd,
                                          const csnn_pool_desc *pd, const float *x, float *y,
                                          uint8_t *argmax, float *h);
csnn_status csnn__cpu_conv_neuron_pool_forward(void *dev, const csnn_conv2d_desc *cd,
                                               const float *x, const float *w, const float *b,
                                               const csnn_neuron_desc *nd,
                                               const csnn_pool_desc *pd, float *y);
csnn_status csnn__cpu_neuron_pool_backward(void *dev, const csnn_neuron_desc *nd,
                                           const csnn_pool_desc *pd, const float *x,
                                           const float *h, const uint8_t *argmax, const float *dy,
                                           float *dx);

/* spike-sparse convolution and linear layers (cpu_conv_sparse.c, cpu_linear_sparse.c) */
csnn_status csnn__cpu_conv2d_forward_sparse(void *dev, const csnn_conv2d_desc *d, const float *x,
                                            const float *w, const float *b, float *y,
                                            void *workspace);
csnn_status csnn__cpu_conv2d_backward_sparse(void *dev, const csnn_conv2d_desc *d,
                                             const float *x, const float *w, const float *dy,
                                             float *dx, float *dw, float *db, void *workspace);
csnn_status csnn__cpu_conv2d_forward_temporal(void *dev, const csnn_conv2d_desc *d, int32_t steps,
                                              const float *x, const float *w, const float *b,
                                              float *y, void *workspace);
csnn_status csnn__cpu_conv2d_backward_temporal(void *dev, const csnn_conv2d_desc *d,
                                               int32_t steps, const float *x, const float *w,
                                               const float *dy, float *dx, float *dw, float *db,
                                               void *workspace);
/** How the temporal entries treat the difference of consecutive steps: 0 by
 *  its count of non-zeros (the default), 1 whenever it is usable, 2 never
 *  (for tests and benchmarks). */
extern int csnn__cpu_temporal_mode;
csnn_status csnn__cpu_linear_forward_sparse(void *dev, int64_t rows, int64_t in, int64_t out,
                                            const float *x, const float *w, const float *b,
                                            float *y);
int64_t csnn__cpu_linear_packed_floats(void *dev, int64_t in, int64_t out);
csnn_status csnn__cpu_linear_pack(void *dev, int64_t in, int64_t out, const float *w,
                                  float *packed);
csnn_status csnn__cpu_linear_forward_packed(void *dev, int64_t rows, int64_t in, int64_t out,
                                            const float *x, const float *w,
                                            const float *packed, const float *b, float *y);
csnn_status csnn__cpu_linear_weight_grad_sparse(void *dev, int64_t rows, int64_t in, int64_t out,
                                                const float *x, const float *dy, float *dw,
                                                float *db);

csnn_status csnn__cpu_loss(void *dev, const csnn_loss_desc *d, const float *out,
                           const int32_t *labels, float *loss, float *grad);
csnn_status csnn__cpu_optim_step(void *dev, const csnn_optim_desc *d, int64_t n, float *w,
                                 const float *g, float *m, float *v);

/** Runs the product of csnn__cpu_gemm with the own AVX-512 kernels of
 *  cpu_skinny.c when its shape is one they take (a side of at most 32 rows,
 *  alpha 1, beta 0) and returns 1; returns 0, doing nothing, otherwise. */
int csnn__cpu_skinny_gemm(const cpu_device *d, int trans_a, int trans_b, int64_t m, int64_t n,
                          int64_t k, float alpha, const float *a, int64_t lda, const float *b,
                          int64_t ldb, float beta, float *c, int64_t ldc);
/** 0: the skinny kernels take the shapes where they pay (the default), 1:
 *  never, 2: every shape they can (for tests). */
extern int csnn__cpu_skinny_mode;

/* OpenBLAS, loaded at run time by cpu_blas.c (see there for why). */
extern __typeof__(cblas_sgemm) *csnn__cpu_sgemm;
/** Loads OpenBLAS once; BACKEND_UNAVAILABLE when it cannot be loaded. */
csnn_status csnn__cpu_blas_load(void);
/** OpenBLAS's name for the kernels it uses ("SkylakeX"), "" if unknown. */
const char *csnn__cpu_blas_core(void);

#endif /* CSNN_CPU_INTERNAL_H */
