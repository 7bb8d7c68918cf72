/*
 * csnn_errors.h - status codes of libcsnn.
 *
 * Every fallible libcsnn function returns a csnn_status. Zero is success,
 * negative values are errors, positive values are non-error early stops
 * (for example a progress callback that asked training to stop).
 *
 * The numeric values are part of the ABI: they are never renumbered or
 * reused, and new codes are only appended.
 */
#ifndef CSNN_ERRORS_H
#define CSNN_ERRORS_H

#include "csnn_export.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Result of a libcsnn call. @since 0.1 */
typedef enum csnn_status {
    CSNN_OK = 0,                        /**< success */
    CSNN_STOPPED = 1,                   /**< a callback asked to stop; not an error */
    CSNN_ERR_INVALID_ARGUMENT = -1,     /**< NULL handle, value out of range, ... */
    CSNN_ERR_OUT_OF_MEMORY = -2,        /**< host allocation failed */
    CSNN_ERR_DEVICE_OUT_OF_MEMORY = -3, /**< device (GPU) allocation failed */
    CSNN_ERR_UNSUPPORTED = -4,          /**< the backend lacks an op, or a feature was not built */
    CSNN_ERR_BACKEND_UNAVAILABLE = -5,  /**< the requested device cannot be used here */
    CSNN_ERR_IO = -6,                   /**< a file could not be read or written */
    CSNN_ERR_FORMAT = -7,               /**< a file is corrupt, truncated or not of the expected kind */
    CSNN_ERR_VERSION = -8,              /**< a file or ABI version is not supported */
    CSNN_ERR_ABI_STRUCT_SIZE = -9,      /**< a size-versioned struct has an unknown size or a non-zero tail */
    CSNN_ERR_STATE = -10,               /**< calls made in the wrong order */
    CSNN_ERR_SHAPE = -11,               /**< tensor or image shapes do not match */
    CSNN_ERR_NUMERIC = -12,             /**< a NaN or infinity appeared (loss, gradient or input) */
    CSNN_ERR_DEVICE = -13,              /**< a device (CUDA, cuBLAS) call failed */
    CSNN_ERR_SPEC = -14,                /**< a model spec is malformed; the message has line and column */
    CSNN_ERR_NOT_FOUND = -15,           /**< an unknown name: preset, tensor, class, device */
    CSNN_ERR_LIMIT = -16,               /**< a size read from input exceeds a documented limit */
    CSNN_ERR_INTERNAL = -17             /**< a bug in libcsnn: please report it */
} csnn_status;

/**
 * The name of a status code as a static string, e.g. "CSNN_ERR_SHAPE".
 * Unknown codes give "CSNN_UNKNOWN_STATUS". Never NULL, never allocates,
 * thread-safe. @since 0.1
 */
CSNN_API const char *csnn_status_name(csnn_status status);

/**
 * A one-sentence description of a status code as a static string.
 * Unknown codes give "unknown status". Never NULL, thread-safe. @since 0.1
 */
CSNN_API const char *csnn_status_string(csnn_status status);

/**
 * The detail message of the last failed libcsnn call on the calling thread:
 * what failed and where (function, file path, spec line, image path).
 *
 * The string lives in thread-local storage. It stays valid and unchanged
 * until the next libcsnn call on this thread that fails (successful calls do
 * not clear it) or until csnn_clear_last_error(). It is "" when no call has
 * failed on this thread. Never NULL. @since 0.1
 */
CSNN_API const char *csnn_last_error_message(void);

/** Empties the calling thread's detail message. @since 0.1 */
CSNN_API void csnn_clear_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* CSNN_ERRORS_H */
