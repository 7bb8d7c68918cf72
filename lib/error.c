/* error.c - status names, the thread-local detail message, version queries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "csnn_internal.h"

#define CSNN_ERROR_MESSAGE_MAX 1024

static _Thread_local char tls_message[CSNN_ERROR_MESSAGE_MAX];

const char *csnn_status_name(csnn_status status)
{
    switch (status) {
    case CSNN_OK: return "CSNN_OK";
    case CSNN_STOPPED: return "CSNN_STOPPED";
    case CSNN_ERR_INVALID_ARGUMENT: return "CSNN_ERR_INVALID_ARGUMENT";
    case CSNN_ERR_OUT_OF_MEMORY: return "CSNN_ERR_OUT_OF_MEMORY";
    case CSNN_ERR_DEVICE_OUT_OF_MEMORY: return "CSNN_ERR_DEVICE_OUT_OF_MEMORY";
    case CSNN_ERR_UNSUPPORTED: return "CSNN_ERR_UNSUPPORTED";
    case CSNN_ERR_BACKEND_UNAVAILABLE: return "CSNN_ERR_BACKEND_UNAVAILABLE";
    case CSNN_ERR_IO: return "CSNN_ERR_IO";
    case CSNN_ERR_FORMAT: return "CSNN_ERR_FORMAT";
    case CSNN_ERR_VERSION: return "CSNN_ERR_VERSION";
    case CSNN_ERR_ABI_STRUCT_SIZE: return "CSNN_ERR_ABI_STRUCT_SIZE";
    case CSNN_ERR_STATE: return "CSNN_ERR_STATE";
    case CSNN_ERR_SHAPE: return "CSNN_ERR_SHAPE";
    case CSNN_ERR_NUMERIC: return "CSNN_ERR_NUMERIC";
    case CSNN_ERR_DEVICE: return "CSNN_ERR_DEVICE";
    case CSNN_ERR_SPEC: return "CSNN_ERR_SPEC";
    case CSNN_ERR_NOT_FOUND: return "CSNN_ERR_NOT_FOUND";
    case CSNN_ERR_LIMIT: return "CSNN_ERR_LIMIT";
    case CSNN_ERR_INTERNAL: return "CSNN_ERR_INTERNAL";
    }
    return "CSNN_UNKNOWN_STATUS";
}

const char *csnn_status_string(csnn_status status)
{
    switch (status) {
    case CSNN_OK: return "success";
    case CSNN_STOPPED: return "stopped on request";
    case CSNN_ERR_INVALID_ARGUMENT: return "invalid argument";
    case CSNN_ERR_OUT_OF_MEMORY: return "out of host memory";
    case CSNN_ERR_DEVICE_OUT_OF_MEMORY: return "out of device memory";
    case CSNN_ERR_UNSUPPORTED: return "operation not supported";
    case CSNN_ERR_BACKEND_UNAVAILABLE: return "device backend not available";
    case CSNN_ERR_IO: return "input/output error";
    case CSNN_ERR_FORMAT: return "malformed or corrupt input";
    case CSNN_ERR_VERSION: return "unsupported version";
    case CSNN_ERR_ABI_STRUCT_SIZE: return "unsupported struct size";
    case CSNN_ERR_STATE: return "call made in the wrong state";
    case CSNN_ERR_SHAPE: return "shape mismatch";
    case CSNN_ERR_NUMERIC: return "non-finite value";
    case CSNN_ERR_DEVICE: return "device error";
    case CSNN_ERR_SPEC: return "invalid model spec";
    case CSNN_ERR_NOT_FOUND: return "not found";
    case CSNN_ERR_LIMIT: return "size limit exceeded";
    case CSNN_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

const char *csnn_last_error_message(void)
{
    return tls_message;
}

void csnn_clear_last_error(void)
{
    tls_message[0] = '\0';
}

csnn_status csnn__verror(csnn_status st, const char *fmt, va_list ap)
{
    /* vsnprintf into a scratch buffer first: fmt's arguments may point into
     * tls_message itself. */
    char tmp[CSNN_ERROR_MESSAGE_MAX];
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    memcpy(tls_message, tmp, sizeof tmp);
    return st;
}

csnn_status csnn__error(csnn_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    csnn__verror(st, fmt, ap);
    va_end(ap);
    return st;
}

csnn_status csnn_backend_set_error(csnn_status status, const char *fmt, ...)
{
    if (fmt == NULL) return csnn__error(status, "%s", csnn_status_string(status));
    va_list ap;
    va_start(ap, fmt);
    csnn__verror(status, fmt, ap);
    va_end(ap);
    return status;
}

csnn_status csnn__error_prefix(csnn_status st, const char *fmt, ...)
{
    char prefix[CSNN_ERROR_MESSAGE_MAX];
    char tmp[CSNN_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    snprintf(tmp, sizeof tmp, "%.400s: %.600s", prefix, tls_message);
    memcpy(tls_message, tmp, sizeof tmp);
    return st;
}

csnn_status csnn__check_struct(const void *p, size_t min_size, size_t known_size,
                               const char *what)
{
    size_t size = *(const size_t *)p;
    if (size < min_size || size > (size_t)1 << 16)
        return csnn__error(CSNN_ERR_ABI_STRUCT_SIZE,
                           "%s.size is %zu: expected %zu (call the matching _init function)", what,
                           size, known_size);
    const unsigned char *bytes = (const unsigned char *)p;
    for (size_t i = known_size; i < size; i++)
        if (bytes[i] != 0)
            return csnn__error(CSNN_ERR_ABI_STRUCT_SIZE,
                               "%s has %zu bytes; byte %zu, beyond the %zu this libcsnn %s "
                               "knows, is not zero",
                               what, size, i, known_size, CSNN_VERSION_STRING);
    return CSNN_OK;
}

void csnn__copy_out(void *dst, const void *src, size_t known_size)
{
    size_t caller = *(const size_t *)dst;
    size_t n = caller < known_size ? caller : known_size;
    memcpy((char *)dst + sizeof(size_t), (const char *)src + sizeof(size_t), n - sizeof(size_t));
}

void *csnn__alloc_array(size_t n, size_t elem, const char *what)
{
    size_t bytes;
    if (!csnn__mul_size(n, elem, &bytes)) {
        csnn__error(CSNN_ERR_OUT_OF_MEMORY, "%s: %zu x %zu bytes overflows", what, n, elem);
        return NULL;
    }
    void *p = malloc(bytes ? bytes : 1);
    if (p == NULL)
        csnn__error(CSNN_ERR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes", what, bytes);
    return p;
}

void *csnn__calloc_array(size_t n, size_t elem, const char *what)
{
    size_t bytes;
    if (!csnn__mul_size(n, elem, &bytes)) {
        csnn__error(CSNN_ERR_OUT_OF_MEMORY, "%s: %zu x %zu bytes overflows", what, n, elem);
        return NULL;
    }
    void *p = calloc(bytes ? bytes : 1, 1);
    if (p == NULL)
        csnn__error(CSNN_ERR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes", what, bytes);
    return p;
}

char *csnn__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = csnn__alloc_array(n, 1, "string");
    if (d) memcpy(d, s, n);
    return d;
}

double csnn__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int csnn__cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n >= 1 ? (int)(n > 1024 ? 1024 : n) : 1;
}

unsigned csnn_version_number(void)
{
    return CSNN_VERSION_NUMBER;
}

const char *csnn_version_string(void)
{
    return CSNN_VERSION_STRING;
}

int csnn_abi_version(void)
{
    return CSNN_ABI_VERSION;
}
