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
    /* csnn_trainer_fit */
    int batch_size, epochs, patience;
    double max_seconds;
    int lr_schedule;
    double min_lr;
    double aug_hflip, aug_vflip, aug_rotate;
    int aug_crop_pad;
    double aug_brightness, aug_contrast;
} train_settings;

/** csnn_trainer_fit's progress through a run, kept in checkpoints. */
typedef struct fit_state {
    int32_t next_epoch;  /* the first epoch not finished yet */
    double best_accuracy; /* -1 before the first validation */
    int32_t best_epoch;
    int32_t bad_epochs;  /* epochs since the last improvement */
    int32_t stop_reason; /* csnn_stop_reason of the last fit (not saved) */
    size_t n_history, cap_history;
    csnn_epoch_metrics *history;
} fit_state;

struct csnn_trainer {
    csnn_model *model;
    train_settings s;
    int64_t step;         /* optimiser steps taken */
    double current_lr;    /* the learning rate of this step (the schedule's) */
    fit_state fit;
    float *state_m, *state_v; /* optimiser arenas (device) */
    float *bn_backup;     /* BN running statistics before the step (device) */
    int64_t bn_backup_numel;
    int64_t *count_backup; /* BN counters before the step */
    uint8_t *history_blob; /* scratch for the history in checkpoints */
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
#define CSNN_TRAINER_KV 64
int csnn__trainer_kv(csnn_trainer *t, ckpt_kv *kv);

/** Restores settings, counters and the fit state from checkpoint records;
 *  unknown keys are ignored. `history_bytes` of the kv stay owned by the
 *  checkpoint. */
csnn_status csnn__trainer_apply_kv(csnn_trainer *t, const ckpt_kv *kv, int n);

/** csnn_trainer_load_checkpoint on a checkpoint already read (`path` names
 *  it in messages): the spec must be the model's; on error the trainer and
 *  model are unchanged. */
csnn_status csnn__trainer_restore(csnn_trainer *t, const ckpt_file *f, const char *path);

/** Maps each dataset class to the model's class of the same name. Fails
 *  with NOT_FOUND naming a class the model does not know. */
csnn_status csnn__class_map(const csnn_model *m, const csnn_dataset *ds, int32_t *map);

/** Checks that the dataset's images fit the model's input. */
csnn_status csnn__check_dataset_shape(const csnn_model *m, const csnn_dataset *ds);

/** Evaluates in inference mode with the given loss (fit.c, evaluate.c). */
csnn_status csnn__evaluate(csnn_model *m, const csnn_dataset *ds, int loss_kind,
                           float smoothing, int32_t batch, csnn_metrics **out);

#endif /* CSNN_TRAINER_H */
