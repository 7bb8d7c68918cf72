/*
 * batcher.c - float batches from a dataset, built ahead by a background
 * thread.
 *
 * Three slots (triple buffering): the caller holds one (the batch last
 * returned by csnn__batcher_next, valid until the next call) while the
 * worker thread fills the other two with the following batches of the
 * epoch. One mutex guards the state; the worker waits on `wake_worker`
 * for a free slot or a new epoch, the caller on `wake_caller` for the batch
 * it wants. Batches are built in order, each tagged with its epoch
 * generation so that a batch of an abandoned epoch is dropped.
 *
 * The order of an epoch is a Fisher-Yates shuffle drawn from
 * csnn_rng_u32(key(seed), epoch, i) (or the dataset order without shuffle),
 * and each sample's augmentation depends on (seed, epoch, sample) only, so a
 * batch's content never depends on thread timing.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_private.h"

#define SLOTS 3
#define MAX_BATCH (1 << 20)
/* Mixed into the seed so that the shuffle and the augmentation draw from
 * different streams. */
#define SHUFFLE_SALT 0x53485546464c4531ull

typedef enum { SLOT_FREE, SLOT_BUILDING, SLOT_READY, SLOT_HELD } slot_state;

typedef struct {
    slot_state state;
    int64_t index; /* batch index within the epoch */
    int32_t n;
    float *images;
    int32_t *labels;
    csnn_status st;
    char msg[256];
} slot;

struct csnn_batcher {
    const csnn_dataset *ds;
    int32_t batch;
    bool shuffle;
    bool augment;
    csnn_augment aug;
    uint64_t seed;
    int32_t *label_map; /* [ds->n_classes] or NULL */
    int64_t n_batches;
    size_t px;

    pthread_mutex_t mu;
    pthread_cond_t wake_worker, wake_caller;
    pthread_t thread;
    bool thread_started;
    /* guarded by mu */
    bool quit;
    bool active;       /* an epoch is under way */
    bool building;     /* the worker is filling a slot */
    uint64_t gen;      /* bumped by every start_epoch */
    uint64_t epoch;
    int64_t *order;    /* [ds->n]: the epoch's sample order */
    int64_t next_build, next_take;
    slot slots[SLOTS];
};

/* ------------------------------------------------------------------------ */
/* Building a batch (worker thread, without the lock)                        */
/* ------------------------------------------------------------------------ */

static void build(csnn_batcher *b, slot *s, int64_t bi)
{
    const csnn_dataset *ds = b->ds;
    int64_t start = bi * b->batch;
    int64_t n = ds->n - start < b->batch ? ds->n - start : b->batch;
    s->n = (int32_t)n;
    s->st = CSNN_OK;
    s->msg[0] = '\0';
    for (int64_t j = 0; j < n; j++) {
        int64_t idx = b->order[start + j];
        int32_t label = ds->labels[idx];
        if (label < 0 || label >= ds->n_classes) {
            s->st = CSNN_ERR_INTERNAL;
            snprintf(s->msg, sizeof s->msg, "csnn__batcher_next: sample %lld has label %d outside "
                     "[0, %d)", (long long)idx, label, ds->n_classes);
            return;
        }
        s->labels[j] = b->label_map ? b->label_map[label] : label;
        csnn__augment_sample(b->augment ? &b->aug : NULL, b->seed, b->epoch, idx,
                             ds->pixels + (size_t)idx * b->px, ds->height, ds->width,
                             s->images + (size_t)j * b->px);
    }
}

static int find_slot(const csnn_batcher *b, slot_state state)
{
    for (int i = 0; i < SLOTS; i++)
        if (b->slots[i].state == state) return i;
    return -1;
}

static void *worker_main(void *arg)
{
    csnn_batcher *b = arg;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->quit &&
               !(b->active && b->next_build < b->n_batches && find_slot(b, SLOT_FREE) >= 0))
            pthread_cond_wait(&b->wake_worker, &b->mu);
        if (b->quit) break;
        int si = find_slot(b, SLOT_FREE);
        slot *s = &b->slots[si];
        int64_t bi = b->next_build++;
        uint64_t gen = b->gen;
        s->state = SLOT_BUILDING;
        s->index = bi;
        b->building = true;
        pthread_mutex_unlock(&b->mu);

        build(b, s, bi); /* order and epoch stay fixed while building is set */

        pthread_mutex_lock(&b->mu);
        b->building = false;
        s->state = gen == b->gen ? SLOT_READY : SLOT_FREE;
        pthread_cond_broadcast(&b->wake_caller);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* API                                                                       */
/* ------------------------------------------------------------------------ */

static bool prob_ok(float p)
{
    return p >= 0.0f && p <= 1.0f;
}

static csnn_status check_augment(const csnn_augment *a)
{
    if (!prob_ok(a->hflip) || !prob_ok(a->vflip) || !prob_ok(a->brightness) ||
        !prob_ok(a->contrast) || !(a->rotate_deg >= 0.0f && a->rotate_deg <= 180.0f) ||
        a->crop_pad < 0 || a->crop_pad > CSNN_DATA_MAX_SIDE)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "csnn__batcher_create: augmentation out of range (flips, brightness "
                           "and contrast in [0, 1], rotation in [0, 180], crop padding in 0..%d)",
                           CSNN_DATA_MAX_SIDE);
    return CSNN_OK;
}

csnn_status csnn__batcher_create(const csnn_dataset *ds, int32_t batch, bool shuffle,
                                 const csnn_augment *aug, uint64_t seed,
                                 const int32_t *label_map, csnn_batcher **out)
{
    CSNN_ARG_NOT_NULL(out);
    *out = NULL;
    CSNN_ARG_NOT_NULL(ds);
    if (batch < 1 || batch > MAX_BATCH)
        return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                           "csnn__batcher_create: batch %d outside 1..%d", batch, MAX_BATCH);
    if (aug) CSNN_TRY(check_augment(aug));
    if (label_map)
        for (int32_t c = 0; c < ds->n_classes; c++)
            if (label_map[c] < 0)
                return csnn__error(CSNN_ERR_INVALID_ARGUMENT,
                                   "csnn__batcher_create: label_map[%d] is %d", c, label_map[c]);

    csnn_batcher *b = csnn__calloc_array(1, sizeof *b, "batcher");
    if (!b) return CSNN_ERR_OUT_OF_MEMORY;
    b->ds = ds;
    b->batch = batch;
    b->shuffle = shuffle;
    b->augment = aug != NULL;
    if (aug) b->aug = *aug;
    b->seed = seed;
    b->px = (size_t)ds->height * (size_t)ds->width;
    b->n_batches = (ds->n + batch - 1) / batch;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->wake_worker, NULL);
    pthread_cond_init(&b->wake_caller, NULL);
    csnn_status st = CSNN_OK;
    b->order = csnn__alloc_array((size_t)ds->n, sizeof(int64_t), "batch order");
    if (!b->order) st = CSNN_ERR_OUT_OF_MEMORY;
    if (st == CSNN_OK && label_map) {
        b->label_map = csnn__alloc_array((size_t)ds->n_classes, sizeof(int32_t), "label map");
        if (b->label_map)
            memcpy(b->label_map, label_map, (size_t)ds->n_classes * sizeof(int32_t));
        else
            st = CSNN_ERR_OUT_OF_MEMORY;
    }
    for (int i = 0; i < SLOTS && st == CSNN_OK; i++) {
        b->slots[i].images = csnn__alloc_array((size_t)batch * b->px, sizeof(float), "batch");
        b->slots[i].labels = csnn__alloc_array((size_t)batch, sizeof(int32_t), "batch labels");
        if (!b->slots[i].images || !b->slots[i].labels) st = CSNN_ERR_OUT_OF_MEMORY;
    }
    if (st == CSNN_OK) {
        if (pthread_create(&b->thread, NULL, worker_main, b) != 0)
            st = csnn__error(CSNN_ERR_OUT_OF_MEMORY, "cannot start the batch thread");
        else
            b->thread_started = true;
    }
    if (st != CSNN_OK) {
        csnn__batcher_destroy(b);
        return csnn__error_prefix(st, "csnn__batcher_create");
    }
    *out = b;
    return CSNN_OK;
}

void csnn__batcher_destroy(csnn_batcher *b)
{
    if (!b) return;
    if (b->thread_started) {
        pthread_mutex_lock(&b->mu);
        b->quit = true;
        pthread_cond_broadcast(&b->wake_worker);
        pthread_mutex_unlock(&b->mu);
        pthread_join(b->thread, NULL);
    }
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->wake_worker);
    pthread_cond_destroy(&b->wake_caller);
    for (int i = 0; i < SLOTS; i++) {
        free(b->slots[i].images);
        free(b->slots[i].labels);
    }
    free(b->order);
    free(b->label_map);
    free(b);
}

int64_t csnn__batcher_num_batches(const csnn_batcher *b)
{
    return b ? b->n_batches : 0;
}

csnn_status csnn__batcher_start_epoch(csnn_batcher *b, uint64_t epoch)
{
    CSNN_ARG_NOT_NULL(b);
    pthread_mutex_lock(&b->mu);
    b->gen++;
    b->active = false;
    /* The worker reads order and epoch while it builds: let it finish. */
    while (b->building) pthread_cond_wait(&b->wake_caller, &b->mu);
    for (int i = 0; i < SLOTS; i++) b->slots[i].state = SLOT_FREE;
    b->epoch = epoch;
    int64_t n = b->ds->n;
    for (int64_t i = 0; i < n; i++) b->order[i] = i;
    if (b->shuffle) {
        uint64_t salt = b->seed ^ SHUFFLE_SALT;
        csnn__data_shuffle(b->order, n, n - 1, csnn__splitmix64(&salt), epoch);
    }
    b->next_build = 0;
    b->next_take = 0;
    b->active = true;
    pthread_cond_broadcast(&b->wake_worker);
    pthread_mutex_unlock(&b->mu);
    return CSNN_OK;
}

csnn_status csnn__batcher_next(csnn_batcher *b, const float **images, const int32_t **labels,
                               int32_t *n)
{
    CSNN_ARG_NOT_NULL(b);
    CSNN_ARG_NOT_NULL(images);
    CSNN_ARG_NOT_NULL(labels);
    CSNN_ARG_NOT_NULL(n);
    *images = NULL;
    *labels = NULL;
    *n = 0;
    pthread_mutex_lock(&b->mu);
    if (!b->active) {
        pthread_mutex_unlock(&b->mu);
        return csnn__error(CSNN_ERR_STATE, "csnn__batcher_next: no epoch started "
                           "(call csnn__batcher_start_epoch first)");
    }
    int held = find_slot(b, SLOT_HELD);
    if (held >= 0) {
        b->slots[held].state = SLOT_FREE;
        pthread_cond_broadcast(&b->wake_worker);
    }
    if (b->next_take >= b->n_batches) {
        pthread_mutex_unlock(&b->mu);
        return CSNN_OK; /* end of the epoch */
    }
    int si;
    for (;;) {
        si = -1;
        for (int i = 0; i < SLOTS; i++)
            if (b->slots[i].state == SLOT_READY && b->slots[i].index == b->next_take) si = i;
        if (si >= 0) break;
        pthread_cond_wait(&b->wake_caller, &b->mu);
    }
    slot *s = &b->slots[si];
    s->state = SLOT_HELD;
    b->next_take++;
    csnn_status st = s->st;
    pthread_mutex_unlock(&b->mu);
    if (st != CSNN_OK) return csnn__error(st, "%s", s->msg);
    *images = s->images;
    *labels = s->labels;
    *n = s->n;
    return CSNN_OK;
}
