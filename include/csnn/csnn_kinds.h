/*
 * csnn_kinds.h - enums shared by the application API (csnn.h: the values of
 * CSNN_TRAIN_LOSS and CSNN_TRAIN_OPTIMIZER) and the backend table
 * (csnn_backend.h: csnn_loss_desc.kind, csnn_optim_desc.kind). Included by
 * both; not meant to be included on its own.
 */
#ifndef CSNN_KINDS_H
#define CSNN_KINDS_H

#ifdef __cplusplus
extern "C" {
#endif

/** Loss on the model's output [N, K] (CSNN_TRAIN_LOSS). */
typedef enum csnn_loss_kind {
    CSNN_LOSS_MSE = 0, /**< mean over N*K of (out - target)^2 */
    CSNN_LOSS_CE = 1   /**< softmax cross-entropy, mean over N */
} csnn_loss_kind;

/** Optimiser (CSNN_TRAIN_OPTIMIZER). */
typedef enum csnn_optimizer_kind {
    CSNN_OPTIMIZER_ADAM = 0,  /**< torch.optim.Adam (weight decay as L2 in the gradient) */
    CSNN_OPTIMIZER_ADAMW = 1, /**< torch.optim.AdamW (decoupled weight decay) */
    CSNN_OPTIMIZER_SGD = 2    /**< torch.optim.SGD with momentum, dampening, nesterov */
} csnn_optimizer_kind;

#ifdef __cplusplus
}
#endif

#endif /* CSNN_KINDS_H */
