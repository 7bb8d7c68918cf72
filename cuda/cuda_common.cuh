/*
 * cuda_common.cuh - shared by the files of the CUDA backend module
 * (libcsnn-cuda.so): the device handle, error translation and launch helpers.
 *
 * Nothing here is exported: the module exports exactly one symbol,
 * csnn_backend_module_entry (cuda_backend.cu). It does not link libcsnn; it
 * reports errors through the csnn_backend_set_error_fn handed to the entry.
 *
 * Rules every entry follows:
 *  - CU_ENTER(dev, "op") first: checks the handle and calls cudaSetDevice
 *    (libcsnn may call from different host threads over time);
 *  - sizes are int64_t, kernels use grid-stride loops with 64-bit indices;
 *  - no launch with an empty grid: n == 0 returns CSNN_OK before launching;
 *  - every launch is followed by CU_LAUNCH_CHECK (cudaGetLastError);
 *  - everything runs on the device's one stream, in call order; only
 *    download(), synchronize(), reduce() and loss() wait for the stream.
 *  - the module is compiled with --fmad=false: a*b+c is rounded twice, as
 *    on the CPU backend (x86-64 baseline without FMA), so elementwise
 *    results (neurons above all, whose spikes depend on exact membrane
 *    values) come out the same as the CPU's.
 */
#ifndef CSNN_CUDA_COMMON_CUH
#define CSNN_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "csnn/csnn_backend.h"

#define CU_HIDDEN __attribute__((visibility("hidden")))

/* Threads per block for the plain elementwise kernels and the block
 * reductions (a power of two: the reductions rely on it). */
#define CU_THREADS 256
/* Blocks of the first pass of reduce(): fixed, so that the summation order
 * (and thus the result) depends on n only, not on the GPU. */
#define CU_REDUCE_BLOCKS 1024
/* Doubles in the device scratch (reduction partials and results). */
#define CU_SCRATCH_DOUBLES 4096
/* Bytes of pinned host scratch (results read back by reduce and loss). */
#define CU_HOST_SCRATCH_BYTES 4096
/* Default bound of a convolution's workspace (images are processed in chunks
 * that fit); CSNN_CUDA_CONV_WORKSPACE (bytes) overrides it at open(). */
#define CU_DEFAULT_CONV_BUDGET ((size_t)256 << 20)

typedef struct cu_ptr_set {
    void **p;
    size_t n, cap;
} cu_ptr_set;

typedef struct cuda_device {
    int index;
    int sm_count;
    int cc_major, cc_minor;
    size_t total_mem;
    char name[256];
    cudaStream_t stream;
    cublasHandle_t cublas;
    double *d_scratch;  /* CU_SCRATCH_DOUBLES doubles of device scratch */
    int *d_flag;        /* a device int (label check of loss) */
    void *h_scratch;    /* CU_HOST_SCRATCH_BYTES of pinned host memory */
    size_t conv_budget; /* bytes; see CU_DEFAULT_CONV_BUDGET */
    cu_ptr_set allocs;      /* live device allocations (freed by close) */
    cu_ptr_set host_allocs; /* live pinned host allocations */
} cuda_device;

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/* The reporter handed to the module entry (NULL before the entry ran). */
extern CU_HIDDEN csnn_backend_set_error_fn cu_set_error_fn;

/* Formats the message and records it through set_error; returns st. */
CU_HIDDEN csnn_status cu_error(csnn_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A failed CUDA runtime call: clears the (non-sticky) error state with
 * cudaGetLastError(), maps cudaErrorMemoryAllocation to
 * CSNN_ERR_DEVICE_OUT_OF_MEMORY and everything else to CSNN_ERR_DEVICE, with
 * "cuda <op>: <what>: <CUDA message> (<CUDA error name>)". */
CU_HIDDEN csnn_status cu_fail(cudaError_t e, const char *op, const char *what);
/* A failed cuBLAS call: ALLOC_FAILED -> DEVICE_OUT_OF_MEMORY, INVALID_VALUE ->
 * INVALID_ARGUMENT, others -> DEVICE. */
CU_HIDDEN csnn_status cu_blas_fail(cublasStatus_t s, const char *op, const char *what);

#define CU_TRY(op, expr)                                                                           \
    do {                                                                                           \
        cudaError_t cu_e_ = (expr);                                                                \
        if (cu_e_ != cudaSuccess) return cu_fail(cu_e_, (op), #expr);                              \
    } while (0)

#define CUBLAS_TRY(op, expr)                                                                       \
    do {                                                                                           \
        cublasStatus_t cu_s_ = (expr);                                                             \
        if (cu_s_ != CUBLAS_STATUS_SUCCESS) return cu_blas_fail(cu_s_, (op), #expr);               \
    } while (0)

#define CU_LAUNCH_CHECK(op, kernel)                                                                \
    do {                                                                                           \
        cudaError_t cu_e_ = cudaGetLastError();                                                    \
        if (cu_e_ != cudaSuccess) return cu_fail(cu_e_, (op), "launch of " kernel);                \
    } while (0)

#define CSNN_CU_RETURN_IF(st_expr)                                                                 \
    do {                                                                                           \
        csnn_status cu_st_ = (st_expr);                                                            \
        if (cu_st_ != CSNN_OK) return cu_st_;                                                      \
    } while (0)

/* Checks the handle, makes its GPU current on this thread and declares
 * `cuda_device *d`. */
#define CU_ENTER(dev, op)                                                                          \
    cuda_device *d = (cuda_device *)(dev);                                                         \
    do {                                                                                           \
        if (d == NULL) return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda %s: NULL device", (op));   \
        CU_TRY((op), cudaSetDevice(d->index));                                                     \
    } while (0)

#define CU_NOT_NULL(op, ptr)                                                                       \
    do {                                                                                           \
        if ((ptr) == NULL)                                                                         \
            return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda %s: argument '%s' is NULL", (op),     \
                            #ptr);                                                                 \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Launch helpers                                                            */
/* ------------------------------------------------------------------------ */

/* Blocks for a grid-stride loop over n items (n > 0). */
static inline unsigned cu_blocks(int64_t n, int threads = CU_THREADS)
{
    int64_t b = (n + threads - 1) / threads;
    if (b > ((int64_t)1 << 20)) b = (int64_t)1 << 20;
    if (b < 1) b = 1;
    return (unsigned)b;
}

#define CU_FOR(i, n)                                                                               \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                    \
         i += (int64_t)blockDim.x * gridDim.x)

/* Sum of v over the block (blockDim.x == CU_THREADS), in a fixed tree order;
 * the result is valid in thread 0. `sh` is __shared__ double[CU_THREADS].
 * Every thread of the block must call it. */
static __device__ __forceinline__ double cu_block_sum(double v, double *sh)
{
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = CU_THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads(); /* sh may be reused right after */
    return r;
}

/* ------------------------------------------------------------------------ */
/* Entries, one group per file                                               */
/* ------------------------------------------------------------------------ */

/* blas.cu */
CU_HIDDEN csnn_status cu_gemm(void *dev, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                              float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                              float beta, float *c, int64_t ldc);
CU_HIDDEN csnn_status cu_bias_add(void *dev, float *y, const float *b, int64_t outer,
                                  int64_t channels, int64_t inner);
CU_HIDDEN csnn_status cu_bias_grad(void *dev, const float *dy, float *db, int64_t outer,
                                   int64_t channels, int64_t inner);
CU_HIDDEN csnn_status cu_axpby(void *dev, int64_t n, float a, const float *x, float b, float *y);
CU_HIDDEN csnn_status cu_reduce(void *dev, int kind, const float *x, int64_t n,
                                double *host_result);
/* bias_grad on the device's stream without CU_ENTER (used by conv). */
CU_HIDDEN csnn_status cu_bias_grad_impl(cuda_device *d, const char *op, const float *dy, float *db,
                                        int64_t outer, int64_t channels, int64_t inner);
CU_HIDDEN csnn_status cu_bias_add_impl(cuda_device *d, const char *op, float *y, const float *b,
                                       int64_t outer, int64_t channels, int64_t inner);

/* conv.cu */
CU_HIDDEN csnn_status cu_conv2d_workspace(void *dev, const csnn_conv2d_desc *desc, size_t *bytes);
CU_HIDDEN csnn_status cu_conv2d_forward(void *dev, const csnn_conv2d_desc *desc, const float *x,
                                        const float *w, const float *b, float *y, void *workspace);
CU_HIDDEN csnn_status cu_conv2d_backward(void *dev, const csnn_conv2d_desc *desc, const float *x,
                                         const float *w, const float *dy, float *dx, float *dw,
                                         float *db, void *workspace);

/* bn.cu */
CU_HIDDEN csnn_status cu_bn_forward_train(void *dev, const csnn_bn_desc *desc, const float *x,
                                          const float *gamma, const float *beta, float *y,
                                          float *save_mean, float *save_invstd,
                                          float *running_mean, float *running_var);
CU_HIDDEN csnn_status cu_bn_forward_infer(void *dev, const csnn_bn_desc *desc, const float *x,
                                          const float *gamma, const float *beta,
                                          const float *running_mean, const float *running_var,
                                          float *y);
CU_HIDDEN csnn_status cu_bn_backward(void *dev, const csnn_bn_desc *desc, const float *x,
                                     const float *dy, const float *gamma, const float *save_mean,
                                     const float *save_invstd, float *dx, float *dgamma,
                                     float *dbeta);

/* pool.cu */
CU_HIDDEN csnn_status cu_maxpool_forward(void *dev, const csnn_pool_desc *desc, const float *x,
                                         float *y, uint8_t *argmax);
CU_HIDDEN csnn_status cu_maxpool_backward(void *dev, const csnn_pool_desc *desc, const float *dy,
                                          const uint8_t *argmax, float *dx);
/* Checks a pooling descriptor (errors name `op`). */
CU_HIDDEN csnn_status cu_pool_check(const char *op, const csnn_pool_desc *pd);

/* elementwise.cu */
CU_HIDDEN csnn_status cu_fill(void *dev, float *dst, float value, int64_t n);
CU_HIDDEN csnn_status cu_fill_impl(cuda_device *d, const char *op, float *dst, float value,
                                   int64_t n);
CU_HIDDEN csnn_status cu_relu_forward(void *dev, int64_t n, const float *x, float *y);
CU_HIDDEN csnn_status cu_relu_backward(void *dev, int64_t n, const float *y, const float *dy,
                                       float *dx);
CU_HIDDEN csnn_status cu_dropout_mask(void *dev, float *mask, int64_t n, float p, uint64_t seed,
                                      uint64_t stream);
CU_HIDDEN csnn_status cu_mul_broadcast_t(void *dev, int32_t steps, int64_t n, const float *x,
                                         const float *mask, float *y);
CU_HIDDEN csnn_status cu_time_mean(void *dev, int32_t steps, int64_t n, const float *x, float *y);
CU_HIDDEN csnn_status cu_time_mean_backward(void *dev, int32_t steps, int64_t n, const float *dy,
                                            float *dx);
CU_HIDDEN csnn_status cu_time_repeat(void *dev, int32_t steps, int64_t n, const float *x,
                                     float *y);
CU_HIDDEN csnn_status cu_time_sum(void *dev, int32_t steps, int64_t n, const float *x, float *y);

/* neuron.cu */
CU_HIDDEN csnn_status cu_neuron_forward(void *dev, const csnn_neuron_desc *desc, const float *x,
                                        float *s, float *h);
CU_HIDDEN csnn_status cu_neuron_backward(void *dev, const csnn_neuron_desc *desc,
                                         const float *grad_s, const float *h, float *grad_x);

/* neuron_pool.cu */
CU_HIDDEN csnn_status cu_neuron_pool_forward(void *dev, const csnn_neuron_desc *nd,
                                             const csnn_pool_desc *pd, const float *x, float *y,
                                             uint8_t *argmax, float *h);
CU_HIDDEN csnn_status cu_neuron_pool_backward(void *dev, const csnn_neuron_desc *nd,
                                              const csnn_pool_desc *pd, const float *x,
                                              const float *h, const uint8_t *argmax,
                                              const float *dy, float *dx);

/* loss.cu */
CU_HIDDEN csnn_status cu_loss(void *dev, const csnn_loss_desc *desc, const float *out,
                              const int32_t *labels, float *loss, float *grad);

/* optim.cu */
CU_HIDDEN csnn_status cu_optim_step(void *dev, const csnn_optim_desc *desc, int64_t n, float *w,
                                    const float *g, float *m, float *v);

#endif /* CSNN_CUDA_COMMON_CUH */
