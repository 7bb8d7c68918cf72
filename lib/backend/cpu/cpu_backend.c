/* cpu_backend.c - the CPU backend's device lifecycle and memory entries.
 * (The compute entries are being written in lib/backend/cpu/; until then
 * they report CSNN_ERR_UNSUPPORTED.) */
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
    cpu_device *d = csnn__calloc_array(1, sizeof *d, "cpu device");
    if (!d) return CSNN_ERR_OUT_OF_MEMORY;
    d->n_threads = n_threads > 0 ? n_threads : csnn__cpu_count();
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
    free(d);
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

static csnn_status cpu_fill(void *dev, float *dst, float value, int64_t n)
{
    (void)dev;
    for (int64_t i = 0; i < n; i++) dst[i] = value;
    return CSNN_OK;
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
};
