/*
 * cuda_backend.cu - the CUDA backend's table, the module entry point, device
 * lifecycle, memory entries and error translation.
 *
 * libcsnn dlopens this module (libcsnn-cuda.so) the first time a "cuda"
 * device is asked for and calls csnn_backend_module_entry, the only symbol
 * the module exports. The module links cudart and cuBLAS, never libcsnn.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_common.cuh"

CU_HIDDEN csnn_backend_set_error_fn cu_set_error_fn = NULL;

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

csnn_status cu_error(csnn_status st, const char *fmt, ...)
{
    char buf[480];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (cu_set_error_fn) cu_set_error_fn(st, "%s", buf);
    return st;
}

csnn_status cu_fail(cudaError_t e, const char *op, const char *what)
{
    (void)cudaGetLastError(); /* clear a non-sticky error so later calls work */
    csnn_status st =
        e == cudaErrorMemoryAllocation ? CSNN_ERR_DEVICE_OUT_OF_MEMORY : CSNN_ERR_DEVICE;
    return cu_error(st, "cuda %s: %s: %s (%s)", op, what, cudaGetErrorString(e),
                    cudaGetErrorName(e));
}

csnn_status cu_blas_fail(cublasStatus_t s, const char *op, const char *what)
{
    (void)cudaGetLastError();
    csnn_status st = CSNN_ERR_DEVICE;
    if (s == CUBLAS_STATUS_ALLOC_FAILED) st = CSNN_ERR_DEVICE_OUT_OF_MEMORY;
    if (s == CUBLAS_STATUS_INVALID_VALUE) st = CSNN_ERR_INVALID_ARGUMENT;
    return cu_error(st, "cuda %s: %s: cuBLAS %s (%s)", op, what, cublasGetStatusString(s),
                    cublasGetStatusName(s));
}

/* ------------------------------------------------------------------------ */
/* Pointer sets (live allocations, released by close)                        */
/* ------------------------------------------------------------------------ */

static bool ptr_set_add(cu_ptr_set *s, void *p)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        void **np = (void **)realloc(s->p, cap * sizeof *np);
        if (!np) return false;
        s->p = np;
        s->cap = cap;
    }
    s->p[s->n++] = p;
    return true;
}

/* Removes p; false when p is not in the set. Searches from the end: the
 * most recent allocations are usually freed first. */
static bool ptr_set_remove(cu_ptr_set *s, void *p)
{
    for (size_t i = s->n; i-- > 0;) {
        if (s->p[i] == p) {
            s->p[i] = s->p[--s->n];
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* Devices                                                                   */
/* ------------------------------------------------------------------------ */

/* cudaGetDeviceCount's answer when there is no usable GPU: no device, no
 * driver (cudart reports cudaErrorInsufficientDriver when libcuda.so is
 * missing), or the driver's stub library. */
static bool is_no_gpu_error(cudaError_t e)
{
    return e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver ||
           e == cudaErrorStubLibrary;
}

static csnn_status cu_device_count(int *count)
{
    if (!count) return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda device_count: count is NULL");
    *count = 0;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (is_no_gpu_error(e)) {
        (void)cudaGetLastError();
        return CSNN_OK; /* no usable device: 0 */
    }
    if (e != cudaSuccess) return cu_fail(e, "device_count", "cudaGetDeviceCount");
    *count = n;
    return CSNN_OK;
}

static void release_device(cuda_device *d)
{
    if (!d) return;
    (void)cudaSetDevice(d->index);
    if (d->stream) (void)cudaStreamSynchronize(d->stream);
    for (size_t i = 0; i < d->allocs.n; i++) (void)cudaFree(d->allocs.p[i]);
    for (size_t i = 0; i < d->host_allocs.n; i++) (void)cudaFreeHost(d->host_allocs.p[i]);
    free(d->allocs.p);
    free(d->host_allocs.p);
    if (d->d_scratch) (void)cudaFree(d->d_scratch);
    if (d->d_flag) (void)cudaFree(d->d_flag);
    if (d->h_scratch) (void)cudaFreeHost(d->h_scratch);
    if (d->cublas) (void)cublasDestroy(d->cublas);
    if (d->stream) (void)cudaStreamDestroy(d->stream);
    (void)cudaGetLastError();
    free(d);
}

static size_t conv_budget_from_env(void)
{
    const char *s = getenv("CSNN_CUDA_CONV_WORKSPACE");
    if (s && *s) {
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (*end == '\0' && v >= 4096) return (size_t)v;
    }
    return CU_DEFAULT_CONV_BUDGET;
}

static csnn_status open_into(cuda_device *d)
{
    const char *op = "open";
    CU_TRY(op, cudaSetDevice(d->index));
    cudaDeviceProp prop;
    CU_TRY(op, cudaGetDeviceProperties(&prop, d->index));
    snprintf(d->name, sizeof d->name, "%s", prop.name);
    d->sm_count = prop.multiProcessorCount;
    d->cc_major = prop.major;
    d->cc_minor = prop.minor;
    d->total_mem = prop.totalGlobalMem;
    CU_TRY(op, cudaStreamCreateWithFlags(&d->stream, cudaStreamNonBlocking));
    CUBLAS_TRY(op, cublasCreate(&d->cublas));
    CUBLAS_TRY(op, cublasSetStream(d->cublas, d->stream));
    CUBLAS_TRY(op, cublasSetPointerMode(d->cublas, CUBLAS_POINTER_MODE_HOST));
    /* Full FP32 products: the default math mode never uses TF32 for SGEMM
     * (that takes CUBLAS_TF32_TENSOR_OP_MATH), so results match the CPU
     * within float32 rounding. Set explicitly in case the default changes. */
    CUBLAS_TRY(op, cublasSetMathMode(d->cublas, CUBLAS_DEFAULT_MATH));
    CU_TRY(op, cudaMalloc((void **)&d->d_scratch, CU_SCRATCH_DOUBLES * sizeof(double)));
    CU_TRY(op, cudaMalloc((void **)&d->d_flag, sizeof(int)));
    CU_TRY(op, cudaMallocHost(&d->h_scratch, CU_HOST_SCRATCH_BYTES));
    d->conv_budget = conv_budget_from_env();
    /* Make sure a kernel image for this GPU exists in the module (the
     * cuda-arch build option): a trivial launch fails here, at open(), with
     * cudaErrorNoKernelImageForDevice rather than later inside an op. */
    float one = 1.0f;
    csnn_status st = cu_fill_impl(d, op, (float *)d->d_scratch, one, 1);
    if (st != CSNN_OK) return st;
    CU_TRY(op, cudaStreamSynchronize(d->stream));
    return CSNN_OK;
}

static csnn_status cu_open(int index, int n_threads, void **dev)
{
    (void)n_threads;
    if (!dev) return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda open: dev is NULL");
    *dev = NULL;
    int count = 0;
    CSNN_CU_RETURN_IF(cu_device_count(&count));
    if (count == 0) {
        int n = 0;
        cudaError_t e = cudaGetDeviceCount(&n);
        (void)cudaGetLastError();
        return cu_error(CSNN_ERR_BACKEND_UNAVAILABLE, "cuda open: no usable CUDA device (%s: %s)",
                        cudaGetErrorName(e), cudaGetErrorString(e));
    }
    if (index < 0 || index >= count)
        return cu_error(CSNN_ERR_BACKEND_UNAVAILABLE,
                        "cuda open: device index %d out of range (%d device%s)", index, count,
                        count == 1 ? "" : "s");
    cuda_device *d = (cuda_device *)calloc(1, sizeof *d);
    if (!d) return cu_error(CSNN_ERR_OUT_OF_MEMORY, "cuda open: out of host memory");
    d->index = index;
    csnn_status st = open_into(d);
    if (st != CSNN_OK) {
        release_device(d);
        return st;
    }
    *dev = d;
    return CSNN_OK;
}

static void cu_close(void *dev)
{
    release_device((cuda_device *)dev);
}

static csnn_status cu_describe(void *dev, char *buf, size_t cap)
{
    CU_ENTER(dev, "describe");
    if (!buf || cap == 0) return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda describe: no buffer");
    int rt = 0, drv = 0;
    (void)cudaRuntimeGetVersion(&rt);
    (void)cudaDriverGetVersion(&drv);
    (void)cudaGetLastError();
    snprintf(buf, cap, "%s (cuda:%d, sm_%d%d, %.1f GiB, %d SMs, runtime %d.%d, driver %d.%d)",
             d->name, d->index, d->cc_major, d->cc_minor,
             (double)d->total_mem / (1024.0 * 1024.0 * 1024.0), d->sm_count, rt / 1000,
             (rt % 1000) / 10, drv / 1000, (drv % 1000) / 10);
    return CSNN_OK;
}

static csnn_status cu_set_threads(void *dev, int n_threads)
{
    (void)n_threads; /* host threads play no part in the CUDA backend */
    CU_ENTER(dev, "set_threads");
    return CSNN_OK;
}

static csnn_status cu_synchronize(void *dev)
{
    CU_ENTER(dev, "synchronize");
    CU_TRY("synchronize", cudaStreamSynchronize(d->stream));
    return CSNN_OK;
}

/* ------------------------------------------------------------------------ */
/* Memory                                                                    */
/* ------------------------------------------------------------------------ */

static csnn_status cu_alloc(void *dev, size_t bytes, void **ptr)
{
    CU_ENTER(dev, "alloc");
    CU_NOT_NULL("alloc", ptr);
    *ptr = NULL;
    if (bytes == 0) return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda alloc: size 0");
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes); /* 256-byte aligned */
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        if (e == cudaErrorMemoryAllocation) {
            size_t free_b = 0, total_b = 0;
            (void)cudaMemGetInfo(&free_b, &total_b);
            (void)cudaGetLastError();
            return cu_error(CSNN_ERR_DEVICE_OUT_OF_MEMORY,
                            "cuda alloc: cannot allocate %zu bytes on cuda:%d (%zu of %zu bytes "
                            "free): %s",
                            bytes, d->index, free_b, total_b, cudaGetErrorString(e));
        }
        return cu_fail(e, "alloc", "cudaMalloc");
    }
    if (!ptr_set_add(&d->allocs, p)) {
        (void)cudaFree(p);
        return cu_error(CSNN_ERR_OUT_OF_MEMORY, "cuda alloc: out of host memory");
    }
    *ptr = p;
    return CSNN_OK;
}

static void cu_free(void *dev, void *ptr)
{
    cuda_device *d = (cuda_device *)dev;
    if (!d || !ptr) return;
    if (cudaSetDevice(d->index) != cudaSuccess) {
        (void)cudaGetLastError();
        return;
    }
    /* Pointers this device did not hand out are left alone. cudaFree waits
     * for work that may still use the memory. */
    if (ptr_set_remove(&d->allocs, ptr)) (void)cudaFree(ptr);
    (void)cudaGetLastError();
}

/* Asynchronous on the device's stream. From pageable memory cudaMemcpyAsync
 * returns once the source has been staged, so the caller may reuse it at
 * once. From pinned memory (host_alloc) the copy is truly asynchronous: the
 * host buffer must not be modified before the next download() or
 * synchronize() (double-buffer pinned staging). */
static csnn_status cu_upload(void *dev, void *dst, const void *host_src, size_t bytes)
{
    CU_ENTER(dev, "upload");
    if (bytes == 0) return CSNN_OK;
    CU_NOT_NULL("upload", dst);
    CU_NOT_NULL("upload", host_src);
    CU_TRY("upload", cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, d->stream));
    return CSNN_OK;
}

static csnn_status cu_download(void *dev, void *host_dst, const void *src, size_t bytes)
{
    CU_ENTER(dev, "download");
    if (bytes == 0) {
        CU_TRY("download", cudaStreamSynchronize(d->stream));
        return CSNN_OK;
    }
    CU_NOT_NULL("download", host_dst);
    CU_NOT_NULL("download", src);
    CU_TRY("download", cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, d->stream));
    CU_TRY("download", cudaStreamSynchronize(d->stream));
    return CSNN_OK;
}

static csnn_status cu_copy(void *dev, void *dst, const void *src, size_t bytes)
{
    CU_ENTER(dev, "copy");
    if (bytes == 0) return CSNN_OK;
    CU_NOT_NULL("copy", dst);
    CU_NOT_NULL("copy", src);
    CU_TRY("copy", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, d->stream));
    return CSNN_OK;
}

static csnn_status cu_host_alloc(void *dev, size_t bytes, void **host_ptr)
{
    CU_ENTER(dev, "host_alloc");
    CU_NOT_NULL("host_alloc", host_ptr);
    *host_ptr = NULL;
    if (bytes == 0) return cu_error(CSNN_ERR_INVALID_ARGUMENT, "cuda host_alloc: size 0");
    void *p = NULL;
    cudaError_t e = cudaHostAlloc(&p, bytes, cudaHostAllocDefault);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return cu_error(e == cudaErrorMemoryAllocation ? CSNN_ERR_OUT_OF_MEMORY : CSNN_ERR_DEVICE,
                        "cuda host_alloc: cannot allocate %zu bytes of pinned host memory: %s (%s)",
                        bytes, cudaGetErrorString(e), cudaGetErrorName(e));
    }
    if (!ptr_set_add(&d->host_allocs, p)) {
        (void)cudaFreeHost(p);
        return cu_error(CSNN_ERR_OUT_OF_MEMORY, "cuda host_alloc: out of host memory");
    }
    *host_ptr = p;
    return CSNN_OK;
}

static void cu_host_free(void *dev, void *host_ptr)
{
    cuda_device *d = (cuda_device *)dev;
    if (!d || !host_ptr) return;
    if (cudaSetDevice(d->index) != cudaSuccess) {
        (void)cudaGetLastError();
        return;
    }
    /* cudaFreeHost synchronises with the device, so a pending upload from
     * this buffer completes first. */
    if (ptr_set_remove(&d->host_allocs, host_ptr)) (void)cudaFreeHost(host_ptr);
    (void)cudaGetLastError();
}

/* ------------------------------------------------------------------------ */
/* The table and the module entry                                            */
/* ------------------------------------------------------------------------ */

static csnn_backend_ops make_ops(void)
{
    csnn_backend_ops o;
    memset(&o, 0, sizeof o);
    o.abi_version = CSNN_BACKEND_ABI_VERSION;
    o.struct_size = (uint32_t)sizeof(csnn_backend_ops);
    o.name = "cuda";
    o.device_count = cu_device_count;
    o.open = cu_open;
    o.close = cu_close;
    o.describe = cu_describe;
    o.set_threads = cu_set_threads;
    o.synchronize = cu_synchronize;
    o.alloc = cu_alloc;
    o.free = cu_free;
    o.upload = cu_upload;
    o.download = cu_download;
    o.copy = cu_copy;
    o.fill = cu_fill;
    o.gemm = cu_gemm;
    o.bias_add = cu_bias_add;
    o.bias_grad = cu_bias_grad;
    o.axpby = cu_axpby;
    o.reduce = cu_reduce;
    o.conv2d_workspace = cu_conv2d_workspace;
    o.conv2d_forward = cu_conv2d_forward;
    o.conv2d_backward = cu_conv2d_backward;
    o.bn_forward_train = cu_bn_forward_train;
    o.bn_forward_infer = cu_bn_forward_infer;
    o.bn_backward = cu_bn_backward;
    o.maxpool_forward = cu_maxpool_forward;
    o.maxpool_backward = cu_maxpool_backward;
    o.relu_forward = cu_relu_forward;
    o.relu_backward = cu_relu_backward;
    o.dropout_mask = cu_dropout_mask;
    o.mul_broadcast_t = cu_mul_broadcast_t;
    o.neuron_forward = cu_neuron_forward;
    o.neuron_backward = cu_neuron_backward;
    o.time_mean = cu_time_mean;
    o.time_mean_backward = cu_time_mean_backward;
    o.time_repeat = cu_time_repeat;
    o.time_sum = cu_time_sum;
    o.loss = cu_loss;
    o.optim_step = cu_optim_step;
    o.host_alloc = cu_host_alloc;
    o.host_free = cu_host_free;
    /* fused neurons + max-pool; the spike-sparse conv/linear entries stay
     * NULL: on a GPU the dense cuBLAS path is the right one (README.md) */
    o.neuron_pool_forward = cu_neuron_pool_forward;
    o.neuron_pool_backward = cu_neuron_pool_backward;
    return o;
}

extern "C" __attribute__((visibility("default"))) const csnn_backend_ops *
csnn_backend_module_entry(uint32_t abi_version, csnn_backend_set_error_fn set_error);

extern "C" __attribute__((visibility("default"))) const csnn_backend_ops *
csnn_backend_module_entry(uint32_t abi_version, csnn_backend_set_error_fn set_error)
{
    static const csnn_backend_ops ops = make_ops(); /* thread-safe initialisation */
    if (set_error) cu_set_error_fn = set_error;
    if (abi_version != CSNN_BACKEND_ABI_VERSION) {
        cu_error(CSNN_ERR_VERSION,
                 "libcsnn-cuda: built for backend ABI %u, libcsnn speaks %u: rebuild the module "
                 "with this libcsnn",
                 (unsigned)CSNN_BACKEND_ABI_VERSION, (unsigned)abi_version);
        return NULL;
    }
    return &ops;
}
