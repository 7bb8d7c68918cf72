/* pool.c - a small persistent thread pool: the caller is worker 0, the
 * others sleep on a condition variable between jobs; tasks are handed out
 * with an atomic counter. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "csnn_internal.h"

struct csnn_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_cond_t done;
    uint64_t generation; /* bumped for every job */
    int quit;
    int busy;            /* workers still in the current job */
    /* the current job */
    csnn_pool_fn fn;
    void *arg;
    int64_t n_tasks;
    atomic_llong next;
};

typedef struct {
    csnn_pool *pool;
    int index;
} worker_arg;

static void run_tasks(csnn_pool *p, int worker)
{
    for (;;) {
        int64_t t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (t >= p->n_tasks) break;
        p->fn(p->arg, t, worker);
    }
}

static void *worker_main(void *varg)
{
    worker_arg *wa = varg;
    csnn_pool *p = wa->pool;
    int index = wa->index;
    free(wa);
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->generation == seen) pthread_cond_wait(&p->wake, &p->mu);
        if (p->quit) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        run_tasks(p, index);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

csnn_status csnn__pool_create(int n_threads, csnn_pool **out)
{
    *out = NULL;
    if (n_threads < 1) n_threads = 1;
    csnn_pool *p = csnn__calloc_array(1, sizeof *p, "thread pool");
    if (!p) return CSNN_ERR_OUT_OF_MEMORY;
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->next, 0);
    if (n_threads > 1) {
        p->threads = csnn__calloc_array((size_t)n_threads - 1, sizeof(pthread_t), "thread pool");
        if (!p->threads) {
            csnn__pool_destroy(p);
            return CSNN_ERR_OUT_OF_MEMORY;
        }
        for (int i = 1; i < n_threads; i++) {
            worker_arg *wa = malloc(sizeof *wa);
            int rc = wa ? 0 : 1;
            if (wa) {
                wa->pool = p;
                wa->index = i;
                rc = pthread_create(&p->threads[i - 1], NULL, worker_main, wa);
                if (rc != 0) free(wa);
            }
            if (rc != 0) {
                p->n_threads = i; /* the threads started so far are joined */
                csnn__pool_destroy(p);
                return csnn__error(CSNN_ERR_OUT_OF_MEMORY, "cannot start thread %d of %d", i,
                                   n_threads);
            }
        }
    }
    *out = p;
    return CSNN_OK;
}

void csnn__pool_destroy(csnn_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++) pthread_join(p->threads[i - 1], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->threads);
    free(p);
}

int csnn__pool_threads(const csnn_pool *p)
{
    return p ? p->n_threads : 1;
}

void csnn__pool_run(csnn_pool *p, int64_t n_tasks, csnn_pool_fn fn, void *arg)
{
    if (n_tasks <= 0) return;
    if (!p || p->n_threads == 1 || n_tasks == 1) {
        for (int64_t t = 0; t < n_tasks; t++) fn(arg, t, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    p->busy = p->n_threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    run_tasks(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
