// cuBLAS emulation (column-major reference SGEMM with cuBLAS argument checks):
// for scripts/gpu/emu/run_emulated_parity.sh only.
#pragma once
#include "cuda_runtime.h"
typedef void *cublasHandle_t;
typedef enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_ALLOC_FAILED = 3, CUBLAS_STATUS_INVALID_VALUE = 7 } cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
enum { CUBLAS_POINTER_MODE_HOST = 0, CUBLAS_DEFAULT_MATH = 0 };
cublasStatus_t cublasCreate(cublasHandle_t *);
cublasStatus_t cublasDestroy(cublasHandle_t);
cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t);
cublasStatus_t cublasSetPointerMode(cublasHandle_t, int);
cublasStatus_t cublasSetMathMode(cublasHandle_t, int);
const char *cublasGetStatusString(cublasStatus_t);
const char *cublasGetStatusName(cublasStatus_t);
cublasStatus_t cublasSgemm(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const float *,
                           const float *, int, const float *, int, const float *, float *, int);
cublasStatus_t cublasSgemm_64(cublasHandle_t, cublasOperation_t, cublasOperation_t, int64_t, int64_t, int64_t,
                              const float *, const float *, int64_t, const float *, int64_t, const float *, float *,
                              int64_t);
cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                                         const float *, const float *, int, long long, const float *, int, long long,
                                         const float *, float *, int, long long, int);
