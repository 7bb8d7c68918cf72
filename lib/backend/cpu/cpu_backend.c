/* cpu_backend.c - the CPU backend's device lifecycle, memory entries,
 * parallel loop helper and its table. The compute entries live in the
 * other files of this folder, one per family. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"

static csnn_status cpu_device_count(int *count)
{
    *count = 1;
    return CSNN_OK;
}

static csnn_status cpu_open(int index, int n_threads, void **dev)
{
    *dev = NULL;
    if (index != 0)
        return csnn__error(CSNN_ERR_BACKEND_UNAVAILABLE, "cpu: only device 0 exists, not %d",
                           index);
    CSNN_TRY(csnn__cpu_blas_load());
    cpu_device *d = csnn__calloc_array(1, sizeof *d, "cpu device");
    if (!d) return CSNN_ERR_OUT_OF_MEMORY;
    d->n_threads = n_threads > 0 ? n_threads : csnn__cpu_count();
    /* the levers of CSNN_DISABLE that live in the backend (the others are
     * the engine's, lib/model.c) */
    const char *off = getenv("CSNN_DISABLE");
    d->no_skinny = off && strstr(off, "skinny") != NULL;
    d->no_amx = off && strstr(off, "amx") != NULL;
    d->no_winograd = off && strstr(off, "winograd") != NULL;
    csnn_status st = csnn__pool_create(d->n_threads, &d->pool);
    if (st != CSNN_OK) {
        free(d);
        return st;
    }
    *dev = d;
    return CSNN_OK;
}

static void cpu_close(void *dev)
{
    cpu_device *d = dev;
    if (!d) return;
    csnn__pool_destroy(d->pool);
    free(d->scratch);
    free(d);
}

int csnn__cpu_sparse_mode;
int csnn__cpu_isa_cap = CPU_ISA_AVX512;

int csnn__cpu_isa(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (csnn__cpu_isa_cap >= CPU_ISA_AVX512 && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("bmi"))
        return CPU_ISA_AVX512;
    if (csnn__cpu_isa_cap >= CPU_ISA_AVX2 && __builtin_cpu_supports("avx2")) return CPU_ISA_AVX2;
#endif
    return CPU_ISA_BASE;
}

int csnn__cpu_use_avx512(void)
{
    return csnn__cpu_isa() == CPU_ISA_AVX512;
}

void *csnn__cpu_scratch(cpu_device *d, size_t bytes, const char *op)
{
    if (!d) {
        csnn__error(CSNN_ERR_INVALID_ARGUMENT, "cpu %s: no device", op);
        return NULL;
    }
    if (bytes <= d->scratch_bytes) return d->scratch;
    free(d->scratch);
    d->scratch = NULL;
    d->scratch_bytes = 0;
    size_t rounded = (bytes + 4095) & ~(size_t)4095;
    if (rounded >= bytes) d->scratch = aligned_alloc(64, rounded);
    if (!d->scratch) {
        csnn__error(CSNN_ERR_OUT_OF_MEMORY, "cpu %s: cannot allocate %zu bytes of scratch", op,
                    bytes);
        return NULL;
    }
    d->scratch_bytes = rounded;
    return d->scratch;
}

/* The processor's name from /proc/cpuinfo ("model name" on x86, "Model" or
 * "Hardware" on ARM) into buf; "" when unknown. */
static void cpu_model_name(char *buf, size_t cap)
{
    static const char *const keys[] = {"model name", "Model", "Hardware"};
    buf[0] = '\0';
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (!buf[0] && fgets(line, sizeof line, f)) {
        const char *colon = strchr(line, ':');
        if (!colon) continue;
        size_t klen = strcspn(line, "\t:");
        while (klen > 0 && line[klen - 1] == ' ') klen--;
        const char *v = colon + 1 + strspn(colon + 1, " \t");
        int vlen = (int)strcspn(v, "\r\n");
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            if (vlen > 0 && strlen(keys[i]) == klen && strncmp(line, keys[i], klen) == 0)
                snprintf(buf, cap, "%.*s", vlen, v);
    }
    fclose(f);
}

static csnn_status cpu_describe(void *dev, char *buf, size_t cap)
{
    cpu_device *d = dev;
    CPU_NOT_NULL("describe", d);
    CPU_NOT_NULL("describe", buf);
    if (cap == 0) return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "cpu describe: cap is 0");
    char model[200];
    cpu_model_name(model, sizeof model);
    const char *core = csnn__cpu_blas_core();
    snprintf(buf, cap, "%s, %d thread%s, OpenBLAS %s kernels", model[0] ? model : "CPU",
             d->n_threads, d->n_threads == 1 ? "" : "s", core[0] ? core : "(unknown)");
    return CSNN_OK;
}

static csnn_status cpu_set_threads(void *dev, int n_threads)
{
    cpu_device *d = dev;
    CPU_NOT_NULL("set_threads", d);
    int want = n_threads > 0 ? n_threads : csnn__cpu_count();
    if (want == d->n_threads) return CSNN_OK;
    csnn_pool *pool;
    CSNN_TRY(csnn__pool_create(want, &pool));
    csnn__pool_destroy(d->pool);
    d->pool = pool;
    d->n_threads = want;
    return CSNN_OK;
}

static csnn_status cpu_synchronize(void *dev)
{
    (void)dev;
    return CSNN_OK;
}

static csnn_status cpu_alloc(void *dev, size_t bytes, void **ptr)
{
    (void)dev;
    *ptr = NULL;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (bytes == 0 || rounded < bytes)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT, "cpu alloc: bad size %zu", bytes);
    void *p = aligned_alloc(64, rounded);
    if (!p) return csnn__error(CSNN_ERR_OUT_OF_MEMORY, "cpu: cannot allocate %zu bytes", bytes);
    *ptr = p;
    return CSNN_OK;
}

static void cpu_free(void *dev, void *ptr)
{
    (void)dev;
    free(ptr);
}

static csnn_status cpu_memcpy(void *dev, void *dst, const void *src, size_t bytes)
{
    (void)dev;
    if (bytes) memcpy(dst, src, bytes);
    return CSNN_OK;
}

typedef struct {
    float *dst;
    float value;
} fill_job;

static void fill_range(void *arg, int64_t i0, int64_t i1, int worker)
{
    (void)worker;
    const fill_job *j = arg;
    for (int64_t i = i0; i < i1; i++) j->dst[i] = j->value;
}

static csnn_status cpu_fill(void *dev, float *dst, float value, int64_t n)
{
    CPU_NONNEG("fill", n);
    if (n == 0) return CSNN_OK;
    CPU_NOT_NULL("fill", dst);
    fill_job j = {dst, value};
    csnn__cpu_parallel_for(dev, n, 1 << 16, fill_range, &j);
    return CSNN_OK;
}

typedef struct {
    cpu_range_fn fn;
    void *arg;
    int64_t n, chunk;
} range_job;

static void range_task(void *arg, int64_t task, int worker)
{
    const range_job *j = arg;
    int64_t begin = task * j->chunk;
    int64_t end = begin + j->chunk < j->n ? begin + j->chunk : j->n;
    j->fn(j->arg, begin, end, worker);
}

void csnn__cpu_parallel_for(const cpu_device *d, int64_t n, int64_t grain, cpu_range_fn fn,
                            void *arg)
{
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int threads = d ? d->n_threads : 1;
    if (threads <= 1 || n <= grain) {
        fn(arg, 0, n, 0);
        return;
    }
    /* About four chunks per thread for balance, none below the grain. */
    int64_t chunks = (n + grain - 1) / grain;
    if (chunks > 4 * (int64_t)threads) chunks = 4 * (int64_t)threads;
    range_job j = {fn, arg, n, (n + chunks - 1) / chunks};
    csnn__pool_run(d->pool, (n + j.chunk - 1) / j.chunk, range_task, &j);
}

const csnn_backend_ops csnn__cpu_backend_ops = {
    .abi_version = CSNN_BACKEND_ABI_VERSION,
    .struct_size = sizeof(csnn_backend_ops),
    .name = "cpu",
    .device_count = cpu_device_count,
    .open = cpu_open,
    .close = cpu_close,
    .synchronize = cpu_synchronize,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_memcpy,
    .download = cpu_memcpy,
    .copy = cpu_memcpy,
    .fill = cpu_fill,
    .describe = cpu_describe,
    .set_threads = cpu_set_threads,
    .gemm = csnn__cpu_gemm,
    .bias_add = csnn__cpu_bias_add,
    .bias_grad = csnn__cpu_bias_grad,
    .axpby = csnn__cpu_axpby,
    .reduce = csnn__cpu_reduce,
    .conv2d_workspace = csnn__cpu_conv2d_workspace,
    .conv2d_forward = csnn__cpu_conv2d_forward,
    .conv2d_backward = csnn__cpu_conv2d_backward,
    .bn_forward_train = csnn__cpu_bn_forward_train,
    .bn_forward_infer = csnn__cpu_bn_forward_infer,
    .bn_backward = csnn__cpu_bn_backward,
    .maxpool_forward = csnn__cpu_maxpool_forward,
    .maxpool_backward = csnn__cpu_maxpool_backward,
    .relu_forward = csnn__cpu_relu_forward,
    .relu_backward = csnn__cpu_relu_backward,
    .dropout_mask = csnn__cpu_dropout_mask,
    .mul_broadcast_t = csnn__cpu_mul_broadcast_t,
    .neuron_forward = csnn__cpu_neuron_forward,
    .neuron_backward = csnn__cpu_neuron_backward,
    .time_mean = csnn__cpu_time_mean,
    .time_mean_backward = csnn__cpu_time_mean_backward,
    .time_repeat = csnn__cpu_time_repeat,
    .time_sum = csnn__cpu_time_sum,
    .loss = csnn__cpu_loss,
    .optim_step = csnn__cpu_optim_step,
    /* host_alloc / host_free: not needed, device memory is host memory. */
    .neuron_pool_forward = csnn__cpu_neuron_pool_forward,
    .neuron_pool_backward = csnn__cpu_neuron_pool_backward,
    .conv2d_forward_sparse = csnn__cpu_conv2d_forward_sparse,
    .conv2d_backward_sparse = csnn__cpu_conv2d_backward_sparse,
    .linear_forward_sparse = csnn__cpu_linear_forward_sparse,
    .linear_weight_grad_sparse = csnn__cpu_linear_weight_grad_sparse,
    .linear_packed_floats = csnn__cpu_linear_packed_floats,
    .linear_pack = csnn__cpu_linear_pack,
    .linear_forward_packed = csnn__cpu_linear_forward_packed,
    .conv2d_forward_temporal = csnn__cpu_conv2d_forward_temporal,
    .conv2d_backward_temporal = csnn__cpu_conv2d_backward_temporal,
    .conv_neuron_pool_forward = csnn__cpu_conv_neuron_pool_forward,
};
