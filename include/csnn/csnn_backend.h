/*
 * csnn_backend.h - the public, versioned device-backend table of libcsnn.
 *
 * This header is for people who write a backend (libcsnn's own CUDA module
 * is written against it and nothing else). Applications do not need it: they
 * pick a device by name ("cpu", "cuda:0") through csnn_context_create().
 *
 * A backend is a table of function pointers, csnn_backend_ops. The table
 * begins with the backend ABI number and the table's size; entries are only
 * ever appended, never reordered or removed. libcsnn copies as many bytes as
 * the backend declares in struct_size, so a backend built against an older
 * (shorter) table still registers, and its missing entries read as NULL.
 * Entries marked OPTIONAL may be NULL; libcsnn then falls back to another
 * path or reports CSNN_ERR_UNSUPPORTED.
 *
 * Conventions for every entry:
 *  - `dev` is the backend's own device handle returned by open();
 *  - pointers named as device memory come from alloc() on the same device;
 *    host pointers are named so;
 *  - tensors are float32, dense, row-major (C order); the layout of
 *    activations is [T, N, C, H, W] with the time step outermost, so that
 *    stateless layers see a batch of T*N samples;
 *  - every entry returns CSNN_OK or an error status after calling
 *    csnn_backend_set_error() with a message saying what failed; an entry
 *    never prints, exits or aborts;
 *  - entries run in order on one logical stream: a backend may queue work
 *    asynchronously, and download() and synchronize() wait for it.
 *
 * Thread safety: libcsnn calls one device handle from one thread at a time.
 */
#ifndef CSNN_BACKEND_H
#define CSNN_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "csnn_errors.h"
#include "csnn_export.h"
#include "csnn_kinds.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The ABI number of this table layout. Changes only on incompatible changes
 *  (never for appended entries). @since 0.1 */
#define CSNN_BACKEND_ABI_VERSION 1

/* ------------------------------------------------------------------------ */
/* Enums used by the op descriptors                                          */
/* ------------------------------------------------------------------------ */

/** Spiking neuron model. */
typedef enum csnn_neuron_kind {
    CSNN_NEURON_IF = 0,  /**< integrate-and-fire: H = V + X */
    CSNN_NEURON_LIF = 1  /**< leaky integrate-and-fire with time constant tau */
} csnn_neuron_kind;

/** Surrogate gradient of the Heaviside spike function. */
typedef enum csnn_surrogate {
    CSNN_SURROGATE_ATAN = 0,   /**< g'(x) = (alpha/2) / (1 + (pi/2 alpha x)^2) */
    CSNN_SURROGATE_SIGMOID = 1 /**< g'(x) = alpha s(alpha x) (1 - s(alpha x)) */
} csnn_surrogate;

/** Reductions offered by csnn_backend_ops.reduce. */
typedef enum csnn_reduce_kind {
    CSNN_REDUCE_SUM = 0,             /**< sum of the elements */
    CSNN_REDUCE_SUM_SQUARES = 1,     /**< sum of squares */
    CSNN_REDUCE_COUNT_NONZERO = 2,   /**< number of elements != 0 */
    CSNN_REDUCE_COUNT_NONFINITE = 3  /**< number of NaN or infinite elements */
} csnn_reduce_kind;

/* ------------------------------------------------------------------------ */
/* Op descriptors (plain data; sizes are element counts)                     */
/* ------------------------------------------------------------------------ */

/** 2-D convolution, NCHW input, OIHW weights, cross-correlation as in PyTorch. */
typedef struct csnn_conv2d_desc {
    int32_t n;                /**< images in the batch */
    int32_t c_in, h_in, w_in; /**< input shape per image */
    int32_t c_out, h_out, w_out;
    int32_t kh, kw;
    int32_t stride_h, stride_w;
    int32_t pad_h, pad_w;     /**< zero padding */
    int32_t has_bias;
} csnn_conv2d_desc;

/** Batch normalisation over a [N, C, HW] tensor, statistics per channel. */
typedef struct csnn_bn_desc {
    int32_t n;      /**< outer count (images, or T*N) */
    int32_t c;      /**< channels */
    int64_t hw;     /**< elements per channel per image */
    float eps;      /**< added to the variance */
    float momentum; /**< running = (1 - momentum) running + momentum batch */
} csnn_bn_desc;

/** Max pooling without padding, floor mode, over n planes of h_in x w_in. */
typedef struct csnn_pool_desc {
    int64_t planes; /**< N * C */
    int32_t h_in, w_in, h_out, w_out;
    int32_t k;      /**< square window; k*k <= 256 */
    int32_t stride;
} csnn_pool_desc;

/** Multi-step spiking neuron layer (see docs/SEMANTICS.md). */
typedef struct csnn_neuron_desc {
    int32_t kind;         /**< csnn_neuron_kind */
    int32_t surrogate;    /**< csnn_surrogate */
    int32_t hard_reset;   /**< 1: V = v_reset after a spike; 0: V = H - v_threshold */
    int32_t detach_reset; /**< 1: no gradient through the reset */
    int32_t decay_input;  /**< LIF only: H = V + (X - (V - v_reset)) / tau */
    int32_t x_shared;     /**< 1: the input is [M] and the same at every step;
                               backward then writes the gradient summed over T */
    int32_t t;            /**< time steps T */
    int32_t reserved0;
    int64_t m;            /**< neurons per step */
    float v_threshold;
    float v_reset;        /**< used when hard_reset; the initial V (0 for soft reset) */
    float tau;            /**< LIF only */
    float alpha;          /**< surrogate sharpness */
} csnn_neuron_desc;

/** Loss on the model output out[N, K] against integer labels. */
typedef struct csnn_loss_desc {
    int32_t kind;    /**< csnn_loss_kind */
    int32_t n, k;
    float smoothing; /**< target = (1 - smoothing) one_hot + smoothing / K */
} csnn_loss_desc;

/** One optimiser step over one parameter tensor. */
typedef struct csnn_optim_desc {
    int32_t kind;          /**< csnn_optimizer_kind */
    int32_t nesterov;      /**< SGD */
    int64_t step;          /**< 1 for the first step */
    float lr;
    float beta1, beta2, eps; /**< Adam / AdamW */
    float weight_decay;
    float momentum, dampening; /**< SGD */
    /* Adam's bias corrections, computed by libcsnn in double precision as
     * PyTorch does: step_size = lr / (1 - beta1^step),
     * bias_correction2_sqrt = sqrt(1 - beta2^step). */
    float step_size;
    float bias_correction2_sqrt;
} csnn_optim_desc;

/* ------------------------------------------------------------------------ */
/* The table                                                                 */
/* ------------------------------------------------------------------------ */

/**
 * The operations a backend provides. Fill it with designated initialisers
 * and set abi_version = CSNN_BACKEND_ABI_VERSION and
 * struct_size = sizeof(csnn_backend_ops).
 *
 * APPEND ONLY: new entries go at the end; nothing is ever reordered.
 */
typedef struct csnn_backend_ops {
    uint32_t abi_version;  /**< CSNN_BACKEND_ABI_VERSION */
    uint32_t struct_size;  /**< sizeof(csnn_backend_ops) as the backend was built */
    const char *name;      /**< device name prefix, e.g. "cpu", "cuda"; [a-z0-9_]+ */

    /* ---- devices ---- */
    /** Number of devices this backend can open (0 when none is usable). */
    csnn_status (*device_count)(int *count);
    /** Opens device `index`; `n_threads` is the host thread budget (0 = all
     *  cores). Writes the backend's device handle to *dev. */
    csnn_status (*open)(int index, int n_threads, void **dev);
    /** Releases a device handle and everything allocated on it. */
    void (*close)(void *dev);
    /** OPTIONAL. A one-line description (e.g. the GPU's name) into buf. */
    csnn_status (*describe)(void *dev, char *buf, size_t cap);
    /** OPTIONAL. Changes the host thread budget. */
    csnn_status (*set_threads)(void *dev, int n_threads);
    /** Waits until all queued work on the device is finished. */
    csnn_status (*synchronize)(void *dev);

    /* ---- memory ---- */
    /** Allocates `bytes` (> 0) of device memory aligned to at least 64 bytes.
     *  Out of memory is CSNN_ERR_DEVICE_OUT_OF_MEMORY (or CSNN_ERR_OUT_OF_MEMORY
     *  for host memory). */
    csnn_status (*alloc)(void *dev, size_t bytes, void **ptr);
    /** Frees memory from alloc(); NULL is a no-op. */
    void (*free)(void *dev, void *ptr);
    /** Host to device copy. From ordinary host memory the source may be reused
     *  as soon as the call returns; from memory of host_alloc() the copy may
     *  still be in flight: do not change the source before the next
     *  download() or synchronize(). */
    csnn_status (*upload)(void *dev, void *dst, const void *host_src, size_t bytes);
    /** Device to host copy; waits for queued work first. */
    csnn_status (*download)(void *dev, void *host_dst, const void *src, size_t bytes);
    /** Device to device copy (regions do not overlap). */
    csnn_status (*copy)(void *dev, void *dst, const void *src, size_t bytes);
    /** dst[i] = value for i < n. */
    csnn_status (*fill)(void *dev, float *dst, float value, int64_t n);

    /* ---- dense math ---- */
    /** Row-major C[M,N] = alpha op(A)[M,K] op(B)[K,N] + beta C, op = transpose
     *  when trans_* is non-zero (cblas_sgemm with CblasRowMajor); with
     *  beta == 0, C is not read (it may hold NaN). */
    csnn_status (*gemm)(void *dev, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                        float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                        float beta, float *c, int64_t ldc);
    /** y[o, c, i] += b[c] for o < outer, c < channels, i < inner. */
    csnn_status (*bias_add)(void *dev, float *y, const float *b, int64_t outer, int64_t channels,
                            int64_t inner);
    /** db[c] = sum over o, i of dy[o, c, i]. */
    csnn_status (*bias_grad)(void *dev, const float *dy, float *db, int64_t outer,
                             int64_t channels, int64_t inner);
    /** y[i] = a * x[i] + b * y[i]; with b == 0 y is not read. */
    csnn_status (*axpby)(void *dev, int64_t n, float a, const float *x, float b, float *y);
    /** Reduction of x[0..n) into a host double. */
    csnn_status (*reduce)(void *dev, int kind, const float *x, int64_t n, double *host_result);

    /* ---- convolution ---- */
    /** Bytes of scratch memory conv2d_forward/backward need for `d`. The size
     *  must not depend on the thread budget, and must not grow when only d->n
     *  shrinks: libcsnn sizes one workspace for the largest batch. */
    csnn_status (*conv2d_workspace)(void *dev, const csnn_conv2d_desc *d, size_t *bytes);
    /** y[n, c_out, h_out, w_out] = conv(x, w) + b. `b` is NULL when !has_bias. */
    csnn_status (*conv2d_forward)(void *dev, const csnn_conv2d_desc *d, const float *x,
                                  const float *w, const float *b, float *y, void *workspace);
    /** Gradients of conv2d_forward. dx may be NULL (not needed); dw and db
     *  (db NULL when !has_bias) are overwritten, not accumulated. */
    csnn_status (*conv2d_backward)(void *dev, const csnn_conv2d_desc *d, const float *x,
                                   const float *w, const float *dy, float *dx, float *dw,
                                   float *db, void *workspace);

    /* ---- batch normalisation ---- */
    /** Training: normalises with the batch mean and biased variance, writes
     *  save_mean[c] and save_invstd[c] = 1/sqrt(var + eps) for backward, and
     *  updates running_mean / running_var (with the unbiased variance,
     *  var * M / (M - 1), M = n*hw) when they are not NULL. */
    csnn_status (*bn_forward_train)(void *dev, const csnn_bn_desc *d, const float *x,
                                    const float *gamma, const float *beta, float *y,
                                    float *save_mean, float *save_invstd, float *running_mean,
                                    float *running_var);
    /** Inference with the running statistics. */
    csnn_status (*bn_forward_infer)(void *dev, const csnn_bn_desc *d, const float *x,
                                    const float *gamma, const float *beta,
                                    const float *running_mean, const float *running_var,
                                    float *y);
    /** Gradients of bn_forward_train; dgamma and dbeta are overwritten; dx may
     *  be NULL when the input gradient is not needed. */
    csnn_status (*bn_backward)(void *dev, const csnn_bn_desc *d, const float *x, const float *dy,
                               const float *gamma, const float *save_mean,
                               const float *save_invstd, float *dx, float *dgamma, float *dbeta);

    /* ---- pooling ---- */
    /** y = max over each window; argmax (may be NULL) receives the index in
     *  the window (row-major) of the FIRST maximum (a NaN counts as the
     *  maximum, as in PyTorch). */
    csnn_status (*maxpool_forward)(void *dev, const csnn_pool_desc *d, const float *x, float *y,
                                   uint8_t *argmax);
    /** dx (fully written) gets dy routed to each window's argmax. */
    csnn_status (*maxpool_backward)(void *dev, const csnn_pool_desc *d, const float *dy,
                                    const uint8_t *argmax, float *dx);

    /* ---- elementwise layers ---- */
    /** y = max(x, 0). */
    csnn_status (*relu_forward)(void *dev, int64_t n, const float *x, float *y);
    /** dx = dy where y > 0, else 0 (y is relu_forward's output). */
    csnn_status (*relu_backward)(void *dev, int64_t n, const float *y, const float *dy, float *dx);
    /** Draws a dropout mask: mask[i] = 1/(1-p) with probability 1-p, else 0,
     *  from csnn_rng_uniform(seed, stream, i) (below): kept iff u >= p. */
    csnn_status (*dropout_mask)(void *dev, float *mask, int64_t n, float p, uint64_t seed,
                                uint64_t stream);
    /** y[t, i] = x[t, i] * mask[i] for t < steps, i < n (used forward and
     *  backward; y may equal x). */
    csnn_status (*mul_broadcast_t)(void *dev, int32_t steps, int64_t n, const float *x,
                                   const float *mask, float *y);

    /* ---- spiking neurons ---- */
    /** Multi-step forward from a fresh state: x [T, M] (or [M] when x_shared)
     *  -> spikes s [T, M]; h [T, M] (membrane before the spike, may be NULL
     *  in inference) is kept for backward. */
    csnn_status (*neuron_forward)(void *dev, const csnn_neuron_desc *d, const float *x, float *s,
                                  float *h);
    /** Backward through time from grad_s [T, M] and the saved h; writes
     *  grad_x [T, M], or [M] summed over T when x_shared. */
    csnn_status (*neuron_backward)(void *dev, const csnn_neuron_desc *d, const float *grad_s,
                                   const float *h, float *grad_x);

    /* ---- time axis ---- */
    /** y[i] = (1/T) sum_t x[t, i]  (the firing rate). */
    csnn_status (*time_mean)(void *dev, int32_t steps, int64_t n, const float *x, float *y);
    /** dx[t, i] = dy[i] / T. */
    csnn_status (*time_mean_backward)(void *dev, int32_t steps, int64_t n, const float *dy,
                                      float *dx);
    /** y[t, i] = x[i] (repeat over T). */
    csnn_status (*time_repeat)(void *dev, int32_t steps, int64_t n, const float *x, float *y);
    /** y[i] = sum_t x[t, i]. */
    csnn_status (*time_sum)(void *dev, int32_t steps, int64_t n, const float *x, float *y);

    /* ---- loss and optimiser ---- */
    /** Loss of out[N, K] against labels (device int32 [N], each in [0, K));
     *  writes the loss to loss (device float [1]) and, when grad is not
     *  NULL, dloss/dout to grad[N, K]. */
    csnn_status (*loss)(void *dev, const csnn_loss_desc *d, const float *out,
                        const int32_t *labels, float *loss, float *grad);
    /** One optimiser step on n elements: w (parameters), g (gradient), m and v
     *  (state; SGD uses m as its momentum buffer and ignores v). */
    csnn_status (*optim_step)(void *dev, const csnn_optim_desc *d, int64_t n, float *w,
                              const float *g, float *m, float *v);

    /* ---- host staging (OPTIONAL) ---- */
    /** Page-locked host memory for fast uploads. */
    csnn_status (*host_alloc)(void *dev, size_t bytes, void **host_ptr);
    void (*host_free)(void *dev, void *host_ptr);

    /* ---- fused and spike-sparse kernels (OPTIONAL) ----
     * Each computes what a composition of the entries above computes (within
     * float rounding); libcsnn uses the composition when an entry is NULL. */

    /** Neurons followed by max pooling, in one pass: x [T, M] (or [M] when
     *  nd->x_shared), M = N*C*H*W per step, pooled as pd describes (pd->planes
     *  counts the planes of all steps: T*N*C) -> pooled spikes y [T, N*C*Ho*Wo]
     *  and argmax (the window index of the first maximum; NULL in inference).
     *  h (may be NULL) receives the membrane H [T, M] for backward; with
     *  x_shared, backward can recompute H from x instead. */
    csnn_status (*neuron_pool_forward)(void *dev, const csnn_neuron_desc *nd,
                                       const csnn_pool_desc *pd, const float *x, float *y,
                                       uint8_t *argmax, float *h);
    /** Backward of neuron_pool_forward from dy [T, N*C*Ho*Wo]: routes dy to
     *  each window's argmax and runs the neurons' backward through time,
     *  writing dx [T, M] (or [M] summed over T when x_shared). Uses h when it
     *  is not NULL, else recomputes H from x (x_shared only). */
    csnn_status (*neuron_pool_backward)(void *dev, const csnn_neuron_desc *nd,
                                        const csnn_pool_desc *pd, const float *x, const float *h,
                                        const uint8_t *argmax, const float *dy, float *dx);
    /** conv2d_forward for an input most of whose entries are 0 (spikes, pooled
     *  or dropped out): a backend may add weight columns for the non-zero
     *  inputs only, and choose the dense path itself when the input is not
     *  sparse enough. conv2d_workspace's size covers this entry too. */
    csnn_status (*conv2d_forward_sparse)(void *dev, const csnn_conv2d_desc *d, const float *x,
                                         const float *w, const float *b, float *y,
                                         void *workspace);
    /** conv2d_backward for such an input: the weight gradient gathers over the
     *  non-zero inputs only. Same arguments and contract as conv2d_backward. */
    csnn_status (*conv2d_backward_sparse)(void *dev, const csnn_conv2d_desc *d, const float *x,
                                          const float *w, const float *dy, float *dx, float *dw,
                                          float *db, void *workspace);
    /** y[rows, out] = x[rows, in] w[out, in]^T (+ b[out] when b is not NULL)
     *  for a mostly-zero x. */
    csnn_status (*linear_forward_sparse)(void *dev, int64_t rows, int64_t in, int64_t out,
                                         const float *x, const float *w, const float *b, float *y);
    /** dw[out, in] = dy[rows, out]^T x[rows, in] (overwritten) and, when db is
     *  not NULL, db[out] = column sums of dy, for a mostly-zero x. */
    csnn_status (*linear_weight_grad_sparse)(void *dev, int64_t rows, int64_t in, int64_t out,
                                             const float *x, const float *dy, float *dw,
                                             float *db);

    /* ---- packed weights for inference (OPTIONAL) ----
     * libcsnn uses these only when all three are set. A model whose weights
     * stay fixed (inference without a trainer) packs a spike-fed linear
     * layer's weights once per change of its parameters. */
    /** The floats of the packed form of w [out, in] (0: not packed). */
    int64_t (*linear_packed_floats)(void *dev, int64_t in, int64_t out);
    /** Writes the packed form of w [out, in] into `packed` (device memory of
     *  linear_packed_floats floats). */
    csnn_status (*linear_pack)(void *dev, int64_t in, int64_t out, const float *w,
                               float *packed);
    /** linear_forward_sparse with w's packed form at hand (w is passed too, for
     *  the dense path); the same results as linear_forward_sparse. */
    csnn_status (*linear_forward_packed)(void *dev, int64_t rows, int64_t in, int64_t out,
                                         const float *x, const float *w, const float *packed,
                                         const float *b, float *y);

    /* ---- spike trains over time steps (OPTIONAL) ----
     * libcsnn uses these only when both are set, for spike-fed convolutions
     * after the static block; else conv2d_*_sparse. */
    /** conv2d_forward_sparse for d->n = steps * N images laid out [steps, N]
     *  (the images of one sample N apart): a backend may compute step t as
     *  step t - 1 plus the product of x[t] - x[t-1], which has few non-zeros
     *  when consecutive spike maps mostly agree. The same results within
     *  float rounding; conv2d_workspace's size covers this entry too. */
    csnn_status (*conv2d_forward_temporal)(void *dev, const csnn_conv2d_desc *d, int32_t steps,
                                           const float *x, const float *w, const float *b,
                                           float *y, void *workspace);
    /** conv2d_backward_sparse for such an input: the weight gradient may use
     *  the differences of consecutive steps against suffix sums of dy over
     *  the steps. Same arguments and contract as conv2d_backward_sparse. */
    csnn_status (*conv2d_backward_temporal)(void *dev, const csnn_conv2d_desc *d, int32_t steps,
                                            const float *x, const float *w, const float *dy,
                                            float *dx, float *dw, float *db, void *workspace);

    /* ---- the static block and the first spiking layer (OPTIONAL) ---- */
    /** Inference: the convolution d (x, w, b as conv2d_forward) whose output
     *  is the input of every time step of neurons nd (nd->x_shared) followed
     *  by max pooling pd, in one pass: y = the pooled spikes [T, ...], as
     *  conv2d_forward then neuron_pool_forward (argmax and h NULL) give
     *  them, bit for bit, without the convolution's output in memory.
     *  libcsnn uses it for a static conv (BN folded in) followed by such a
     *  neuron + max-pool pair, in inference without firing rates. */
    csnn_status (*conv_neuron_pool_forward)(void *dev, const csnn_conv2d_desc *d, const float *x,
                                            const float *w, const float *b,
                                            const csnn_neuron_desc *nd, const csnn_pool_desc *pd,
                                            float *y);
} csnn_backend_ops;

/* ------------------------------------------------------------------------ */
/* Registration and the services libcsnn offers to backends                  */
/* ------------------------------------------------------------------------ */

/**
 * Registers a backend table under ops->name. libcsnn keeps the pointer, so
 * the table must stay valid for the life of the process (a static const
 * table). Registering a name twice is CSNN_ERR_INVALID_ARGUMENT; an
 * abi_version other than CSNN_BACKEND_ABI_VERSION is CSNN_ERR_VERSION; a
 * struct_size smaller than the first version of the table, or a table
 * missing a required entry, is CSNN_ERR_ABI_STRUCT_SIZE / INVALID_ARGUMENT.
 * Thread-safe. @since 0.1
 */
CSNN_API csnn_status csnn_backend_register(const csnn_backend_ops *ops);

/**
 * For backends: records `status` and a printf-style message as the calling
 * thread's last error (see csnn_last_error_message()) and returns `status`.
 * @since 0.1
 */
CSNN_API csnn_status csnn_backend_set_error(csnn_status status, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/** The signature of csnn_backend_set_error, handed to backend modules. */
typedef csnn_status (*csnn_backend_set_error_fn)(csnn_status status, const char *fmt, ...);

/**
 * The entry point a backend module (a shared object that libcsnn loads with
 * dlopen, such as libcsnn-cuda.so) exports under this exact name. libcsnn
 * calls it once with its own CSNN_BACKEND_ABI_VERSION and its error
 * reporter (a module need not link against libcsnn: it reports errors
 * through `set_error`, which behaves as csnn_backend_set_error). The module
 * returns its table, or NULL after calling set_error when it cannot serve
 * that ABI.
 */
typedef const csnn_backend_ops *(*csnn_backend_module_entry_fn)(
    uint32_t abi_version, csnn_backend_set_error_fn set_error);
#define CSNN_BACKEND_MODULE_ENTRY "csnn_backend_module_entry"

/* ------------------------------------------------------------------------ */
/* The counter-based generator every backend uses for dropout                */
/* ------------------------------------------------------------------------ */

#if defined(__CUDACC__)
#define CSNN_RNG_QUALIFIERS static inline __host__ __device__
#else
#define CSNN_RNG_QUALIFIERS static inline
#endif

/**
 * Philox4x32-10 (Salmon et al., SC'11): four 32-bit outputs for a 128-bit
 * counter and a 64-bit key. Pure integer arithmetic, so every backend draws
 * the same numbers.
 */
CSNN_RNG_QUALIFIERS void csnn_philox4x32(uint32_t ctr[4], uint64_t key)
{
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * ctr[0];
        uint64_t p1 = (uint64_t)0xCD9E8D57u * ctr[2];
        uint32_t c0 = (uint32_t)(p1 >> 32) ^ ctr[1] ^ k0;
        uint32_t c2 = (uint32_t)(p0 >> 32) ^ ctr[3] ^ k1;
        ctr[1] = (uint32_t)p1;
        ctr[3] = (uint32_t)p0;
        ctr[0] = c0;
        ctr[2] = c2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
}

/** The 32-bit random number number `index` of stream `stream` under `seed`. */
CSNN_RNG_QUALIFIERS uint32_t csnn_rng_u32(uint64_t seed, uint64_t stream, uint64_t index)
{
    uint64_t block = index >> 2;
    uint32_t ctr[4];
    ctr[0] = (uint32_t)block;
    ctr[1] = (uint32_t)(block >> 32);
    ctr[2] = (uint32_t)stream;
    ctr[3] = (uint32_t)(stream >> 32);
    csnn_philox4x32(ctr, seed);
    return ctr[index & 3];
}

/** A float in [0, 1) with 24 random bits: csnn_rng_u32(...) >> 8 times 2^-24. */
CSNN_RNG_QUALIFIERS float csnn_rng_uniform(uint64_t seed, uint64_t stream, uint64_t index)
{
    return (float)(csnn_rng_u32(seed, stream, index) >> 8) * (1.0f / 16777216.0f);
}

#ifdef __cplusplus
}
#endif

#endif /* CSNN_BACKEND_H */
