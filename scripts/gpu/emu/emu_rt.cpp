// emu_rt.cpp - host emulation of the CUDA runtime and cuBLAS calls used by the
// module (see run_emulated_parity.sh). Kernels run on the host: plain ones
// thread by thread in one OS thread, those with __syncthreads on a pool of
// blockDim.x threads with barriers, one block at a time.
#include "cublas_v2.h"
#include <cstdio>
#include <mutex>
#include <condition_variable>
thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;
std::barrier<> *emu_sync_barrier = nullptr;
static cudaError_t last_err = cudaSuccess;

// Threaded launches: a persistent pool of blockDim.x workers; each block starts
// and ends with a barrier that includes the launching thread.
struct Pool {
    unsigned n = 0;
    std::vector<std::thread> ts;
    std::barrier<> *start = nullptr, *done = nullptr, *sync = nullptr;
    const std::function<void()> *job = nullptr;
    unsigned bx = 0;
    bool quit = false;
};
static Pool pool;
static void pool_stop() {
    if (!pool.n) return;
    pool.quit = true;
    pool.start->arrive_and_wait();
    for (auto &t : pool.ts) t.join();
    pool.ts.clear();
    delete pool.start; delete pool.done; delete pool.sync;
    pool.n = 0; pool.quit = false;
}
static void pool_make(unsigned n) {
    if (pool.n == n) return;
    pool_stop();
    pool.n = n;
    pool.start = new std::barrier<>(n + 1);
    pool.done = new std::barrier<>(n + 1);
    pool.sync = new std::barrier<>(n);
    for (unsigned t = 0; t < n; t++)
        pool.ts.emplace_back([t] {
            threadIdx = dim3(t);
            for (;;) {
                pool.start->arrive_and_wait();
                if (pool.quit) return;
                blockIdx = dim3(pool.bx);
                (*pool.job)();
                pool.done->arrive_and_wait();
            }
        });
}
struct PoolGuard { ~PoolGuard() { pool_stop(); } } pool_guard;

void emu_launch_impl(bool threaded, dim3 g, dim3 b, const std::function<void()> &f) {
    if (g.x == 0 || b.x == 0 || b.x > 1024) { last_err = cudaErrorInvalidValue; return; }
    gridDim = g; blockDim = b;
    if (!threaded) {
        for (unsigned bx = 0; bx < g.x; bx++)
            for (unsigned tx = 0; tx < b.x; tx++) { blockIdx = dim3(bx); threadIdx = dim3(tx); f(); }
        return;
    }
    pool_make(b.x);
    emu_sync_barrier = pool.sync;
    pool.job = &f;
    for (unsigned bx = 0; bx < g.x; bx++) {
        pool.bx = bx;
        pool.start->arrive_and_wait();
        pool.done->arrive_and_wait();
    }
    emu_sync_barrier = nullptr;
}
const char *cudaGetErrorString(cudaError_t e) { return e == cudaErrorMemoryAllocation ? "out of memory" : "emulated error"; }
const char *cudaGetErrorName(cudaError_t e) { static char b[32]; snprintf(b, 32, "cudaError%d", (int)e); return b; }
cudaError_t cudaGetLastError(void) { cudaError_t e = last_err; last_err = cudaSuccess; return e; }
cudaError_t cudaSetDevice(int i) { return i == 0 ? cudaSuccess : cudaErrorInvalidValue; }
cudaError_t cudaGetDeviceCount(int *n) { *n = 1; return cudaSuccess; }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int) { memset(p, 0, sizeof *p); strcpy(p->name, "EMULATED"); p->multiProcessorCount = 4; p->major = 9; p->totalGlobalMem = 1ull << 34; return cudaSuccess; }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) { *s = (void *)1; return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaMalloc(void **p, size_t n) {
    if (n > (1ull << 36)) { last_err = cudaErrorMemoryAllocation; return cudaErrorMemoryAllocation; }
    *p = aligned_alloc(256, (n + 255) & ~(size_t)255);
    if (*p) memset(*p, 0xA5, n); // garbage, like fresh device memory
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFree(void *p) { free(p); return cudaSuccess; }
cudaError_t cudaMallocHost(void **p, size_t n) { *p = malloc(n); return cudaSuccess; }
cudaError_t cudaHostAlloc(void **p, size_t n, unsigned) { *p = malloc(n); return cudaSuccess; }
cudaError_t cudaFreeHost(void *p) { free(p); return cudaSuccess; }
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind, cudaStream_t) { memcpy(d, s, n); return cudaSuccess; }
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t) { memset(d, v, n); return cudaSuccess; }
cudaError_t cudaMemGetInfo(size_t *f, size_t *t) { *f = 1ull << 33; *t = 1ull << 34; return cudaSuccess; }
cudaError_t cudaRuntimeGetVersion(int *v) { *v = 13000; return cudaSuccess; }
cudaError_t cudaDriverGetVersion(int *v) { *v = 13000; return cudaSuccess; }

cublasStatus_t cublasCreate(cublasHandle_t *h) { *h = (void *)1; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasDestroy(cublasHandle_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetPointerMode(cublasHandle_t, int) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetMathMode(cublasHandle_t, int) { return CUBLAS_STATUS_SUCCESS; }
const char *cublasGetStatusString(cublasStatus_t) { return "emulated cublas error"; }
const char *cublasGetStatusName(cublasStatus_t s) { return s == CUBLAS_STATUS_INVALID_VALUE ? "CUBLAS_STATUS_INVALID_VALUE" : "CUBLAS_STATUS_?"; }
// column-major reference gemm with cuBLAS's argument checks
static cublasStatus_t gemm64(cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k, float alpha,
                             const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if (lda < std::max<int64_t>(1, ta == CUBLAS_OP_N ? m : k)) { fprintf(stderr, "EMU: bad lda\n"); return CUBLAS_STATUS_INVALID_VALUE; }
    if (ldb < std::max<int64_t>(1, tb == CUBLAS_OP_N ? k : n)) { fprintf(stderr, "EMU: bad ldb\n"); return CUBLAS_STATUS_INVALID_VALUE; }
    if (ldc < std::max<int64_t>(1, m)) { fprintf(stderr, "EMU: bad ldc\n"); return CUBLAS_STATUS_INVALID_VALUE; }
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < m; i++) {
            double s = 0;
            for (int64_t p = 0; p < k; p++) {
                double a = ta == CUBLAS_OP_N ? A[i + p * lda] : A[p + i * lda];
                double b = tb == CUBLAS_OP_N ? B[p + j * ldb] : B[j + p * ldb];
                s += a * b;
            }
            float r = (float)(alpha * s);
            C[i + j * ldc] = beta == 0.0f ? r : r + beta * C[i + j * ldc];
        }
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSgemm(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float *al,
                           const float *A, int lda, const float *B, int ldb, const float *be, float *C, int ldc) {
    return gemm64(ta, tb, m, n, k, *al, A, lda, B, ldb, *be, C, ldc);
}
cublasStatus_t cublasSgemm_64(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k,
                              const float *al, const float *A, int64_t lda, const float *B, int64_t ldb, const float *be,
                              float *C, int64_t ldc) {
    return gemm64(ta, tb, m, n, k, *al, A, lda, B, ldb, *be, C, ldc);
}
cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                         const float *al, const float *A, int lda, long long sA, const float *B, int ldb,
                                         long long sB, const float *be, float *C, int ldc, long long sC, int batch) {
    if (batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
    for (int i = 0; i < batch; i++) {
        cublasStatus_t s = gemm64(ta, tb, m, n, k, *al, A + i * sA, lda, B + i * sB, ldb, *be, C + i * sC, ldc);
        if (s) return s;
    }
    return CUBLAS_STATUS_SUCCESS;
}
