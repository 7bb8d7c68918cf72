/* cpu_blas.c - OpenBLAS, loaded at run time.
 *
 * OpenBLAS picks its kernels once, in its load-time constructor, from the
 * CPU model it recognises. On CPUs that report a generic model (virtual
 * machines: "Intel(R) Xeon(R) Processor") OpenBLAS 0.3.21 falls back to its
 * SSE3 "Prescott" kernels, 5x slower than the AVX-512 ones the CPU supports.
 * So libcsnn does not link OpenBLAS: it sets OPENBLAS_CORETYPE from the
 * CPU's features and OPENBLAS_NUM_THREADS to 1 (unless the user set them,
 * or OpenBLAS is already loaded in the process) and then loads the library. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"

__typeof__(cblas_sgemm) *csnn__cpu_sgemm;

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void *blas_handle;
static char blas_error[600];
static char blas_core[48];

/* The OpenBLAS core type whose kernels suit this CPU best, or NULL to let
 * OpenBLAS decide. */
static const char *preferred_core(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return NULL;
}

static void load_blas(void)
{
    const char *user = getenv("CSNN_OPENBLAS_LIBRARY");
    const char *candidates[3] = {user && *user ? user : NULL, "libopenblas.so.0", "libopenblas.so"};
    /* choose the kernels only if nobody else has loaded OpenBLAS yet */
    bool loaded = false;
    for (int i = 0; i < 3 && !loaded; i++)
        if (candidates[i]) {
            void *h = dlopen(candidates[i], RTLD_NOW | RTLD_NOLOAD);
            if (h) {
                loaded = true;
                dlclose(h);
            }
        }
    const char *env = getenv("OPENBLAS_CORETYPE");
    if (!loaded && (!env || !*env)) {
        const char *core = preferred_core();
        if (core) setenv("OPENBLAS_CORETYPE", core, 0);
    }
    /* The backend runs one sgemm per pool worker; OpenBLAS's own threads
     * would only spin beside them. */
    if (!loaded) setenv("OPENBLAS_NUM_THREADS", "1", 0);
    size_t used = 0;
    for (int i = 0; i < 3 && !blas_handle; i++) {
        if (!candidates[i]) continue;
        blas_handle = dlopen(candidates[i], RTLD_NOW | RTLD_LOCAL);
        if (!blas_handle) {
            const char *why = dlerror();
            used += (size_t)snprintf(blas_error + used, sizeof blas_error - used, "%s%.180s",
                                     used ? "; " : "", why ? why : candidates[i]);
            if (used >= sizeof blas_error) used = sizeof blas_error - 1;
        }
    }
    if (!blas_handle) return;
    *(void **)&csnn__cpu_sgemm = dlsym(blas_handle, "cblas_sgemm");
    void (*set_threads)(int);
    *(void **)&set_threads = dlsym(blas_handle, "openblas_set_num_threads");
    char *(*corename)(void);
    *(void **)&corename = dlsym(blas_handle, "openblas_get_corename");
    if (!csnn__cpu_sgemm) {
        snprintf(blas_error, sizeof blas_error, "the loaded OpenBLAS has no cblas_sgemm");
        return;
    }
    /* The backend parallelises itself (pool workers call sgemm concurrently);
     * OpenBLAS's own threads would oversubscribe the cores. Process-wide. */
    if (set_threads) set_threads(1);
    if (corename) snprintf(blas_core, sizeof blas_core, "%s", corename());
}

csnn_status csnn__cpu_blas_load(void)
{
    pthread_once(&blas_once, load_blas);
    if (!csnn__cpu_sgemm)
        return csnn__error(CSNN_ERR_BACKEND_UNAVAILABLE,
                           "cpu: cannot load OpenBLAS (set CSNN_OPENBLAS_LIBRARY to its path): %s",
                           blas_error);
    return CSNN_OK;
}

const char *csnn__cpu_blas_core(void)
{
    return blas_core;
}
