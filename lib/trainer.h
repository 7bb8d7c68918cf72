/* trainer.h - the trainer's state, shared by trainer.c and fit.c. */
#ifndef CSNN_TRAINER_H
#define CSNN_TRAINER_H

#include "model.h"

/** Scalar settings, indexed by the position of their csnn_train_param in
 *  the table of trainer.c. */
typedef struct train_settings {
    int optimizer;
    double lr, beta1, beta2, eps, weight_decay, momentum, dampening;
    int nesterov;
    int loss; /* -1: by the model's output (MSE for spikes, CE otherwise) */
    double label_smoothing;
    uint64_t seed;
} train_settings;

struct csnn_trainer {
    csnn_model *model;
    train_settings s;
    int64_t step;         /* optimiser steps taken */
    float *state_m, *state_v; /* optimiser arenas (device) */
    float *bn_backup;     /* BN running statistics before the step (device) */
    int64_t bn_backup_numel;
    int64_t *count_backup; /* BN counters before the step */
    float *host_out;      /* [cap, K] outputs of the last step */
    int32_t host_cap;
};

/** The loss the trainer uses for its model. */
int csnn__trainer_loss_kind(const csnn_trainer *t);

/** One step on a batch already uploaded to model->input / model->labels
 *  (`labels` is the host copy); fills the loss and the number of samples
 *  whose first arg-max output equals the label. */
csnn_status csnn__trainer_step_uploaded(csnn_trainer *t, int32_t n, const int32_t *labels,
                                        double *loss, int32_t *correct);

/** Adds the trainer's settings and step counter to a checkpoint's records
 *  (kv must have room for CSNN_TRAINER_KV entries). Returns the count. */
#define CSNN_TRAINER_KV 16
int csnn__trainer_kv(const csnn_trainer *t, ckpt_kv *kv);

/** Restores settings and counters from checkpoint records; unknown keys are
 *  ignored (fit.c reads its own). */
csnn_status csnn__trainer_apply_kv(csnn_trainer *t, const ckpt_kv *kv, int n);

#endif /* CSNN_TRAINER_H */
