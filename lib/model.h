/*
 * model.h - model specs, the layer graph and its forward/backward engine,
 * shared by model.c, spec.c, checkpoint.c and trainer.c.
 */
#ifndef CSNN_MODEL_H
#define CSNN_MODEL_H

#include "csnn_internal.h"

/* ------------------------------------------------------------------------ */
/* Limits (documented in docs/MODEL_SPEC.md)                                 */
/* ------------------------------------------------------------------------ */

#define CSNN_SPEC_MAX_BYTES (1 << 20)      /* spec text */
#define CSNN_MAX_LAYERS 256
#define CSNN_MAX_DIM 65536                 /* any channel count, width, feature count */
#define CSNN_MAX_SAMPLE_ELEMENTS (1 << 28) /* elements of one sample at any layer */
#define CSNN_MAX_PARAMS ((int64_t)1 << 31) /* parameters of a model */
#define CSNN_MAX_STEPS 1024                /* time steps T */
#define CSNN_MAX_CLASSES 65536
#define CSNN_NAME_MAX 32                   /* layer names, including the NUL */
#define CSNN_CLASS_NAME_MAX 64             /* class names, including the NUL */

/* ------------------------------------------------------------------------ */
/* Spec                                                                      */
/* ------------------------------------------------------------------------ */

typedef enum layer_type {
    LAYER_CONV = 0,
    LAYER_BN,
    LAYER_MAXPOOL,
    LAYER_NEURON,
    LAYER_RELU,
    LAYER_FLATTEN,
    LAYER_DROPOUT,
    LAYER_LINEAR,
} layer_type;

typedef struct layer_spec {
    layer_type type;
    char name[CSNN_NAME_MAX];
    bool is_static;
    int line, col; /* where the statement began, for messages */
    /* conv: out channels, kernel, stride, padding; linear: out features */
    int32_t out, k, stride, pad;
    bool bias;
    /* bn */
    float eps, momentum;
    /* dropout */
    float p;
    /* neuron (kind, surrogate, reset, thresholds; t and m filled at run time) */
    csnn_neuron_desc neuron;
} layer_spec;

typedef struct model_spec {
    int32_t in_c, in_h, in_w;
    int32_t steps;
    int32_t classes; /* 0 until known: then the last layer's width */
    int n_layers;
    layer_spec *layers;
    /* Set by loaders, not parsed: the values the file holds for the model's
     * tensors. A model needing more is refused before anything is allocated
     * for it (a small file cannot make us allocate a big model). 0: no bound. */
    int64_t file_values;
} model_spec;

/** Parses spec text. Errors: SPEC with "line L, column C: ..." in the message,
 *  LIMIT, OUT_OF_MEMORY. On success `out` owns its layers (csnn__spec_free). */
csnn_status csnn__spec_parse(const char *text, model_spec *out);
/** The canonical text of a spec (every option explicit), malloc'ed. */
char *csnn__spec_format(const model_spec *spec);
void csnn__spec_free(model_spec *spec);

/** The name of a layer type as the spec writes it ("conv", "lif", ...). */
const char *csnn__layer_keyword(const layer_spec *l);

/* ------------------------------------------------------------------------ */
/* Model                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct shape3 {
    int32_t c, h, w; /* a flat vector has h = w = 1 and flat = true */
    bool flat;
} shape3;

typedef struct model_tensor {
    char name[CSNN_NAME_MAX + 24];
    csnn_tensor_kind kind;
    int ndim;
    int64_t shape[4];
    int64_t numel;
    float *data;     /* device memory (NULL for counters) */
    int64_t *counter; /* COUNTER: points into its layer */
    float *grad;     /* PARAM: device gradient (allocated for training) */
    float *opt_m;    /* optimiser state (allocated by the trainer) */
    float *opt_v;
} model_tensor;

typedef struct layer {
    layer_spec s;
    shape3 ishape, oshape; /* per-sample input and output shapes */
    int64_t in_numel, out_numel; /* per sample */
    int64_t flops;               /* multiply-accumulates per sample per evaluation */
    /* parameters: indices into model->tensors, -1 when absent */
    int t_weight, t_bias, t_mean, t_var, t_count;
    int64_t num_batches_tracked;
    /* activations for the current batch (device) */
    float *y;              /* output [rows, out_numel]; may alias the input (flatten, eval dropout) */
    bool y_alias;
    float *h;              /* neuron: membrane before the spike, for backward */
    uint8_t *argmax;       /* maxpool */
    float *save_mean, *save_invstd; /* bn */
    float *mask;           /* dropout [N, in_numel] */
    /* execution plan (engine.c) */
    bool fused;            /* neuron: runs with the max-pool after it in one pass;
                              its own y is then never materialised */
    bool sparse_in;        /* conv, linear: the input is spikes (mostly zeros) */
    bool temporal;         /* conv, sparse_in, after the static block with T > 1: the
                              temporal entries (differences of consecutive steps) */
    bool folds_bn;         /* conv: in inference the BN after it is folded in */
    float *fold_w, *fold_b; /* the folded weights and bias (device) */
    bool packs;            /* linear, sparse_in: inference without a trainer uses
                              the backend's packed weights */
    float *pack_w;         /* those packed weights (device), or NULL */
    /* csnn_model_set_layer_timing: seconds and calls of this layer's passes
     * (a fused or folded pair counts under its first layer) */
    double time_fwd, time_bwd;
    int64_t calls_fwd, calls_bwd;
} layer;

/* Levers of the execution plan that can be switched off (CSNN_DISABLE, a
 * comma-separated list of these names; for measuring each lever and for
 * checking that every path computes the same). */
#define CSNN__NO_FUSION 1u /* "fusion": neuron + max-pool in one pass */
#define CSNN__NO_SPARSE 2u /* "sparse": spike-sparse conv and linear kernels */
#define CSNN__NO_BNFOLD 4u /* "bnfold": BN folded into conv weights for inference */
#define CSNN__NO_PACK 8u   /* "pack": packed weights of spike-fed linear layers (inference) */
#define CSNN__NO_TEMPORAL 16u /* "temporal": spike-fed convs from step differences */

struct csnn_model {
    csnn_context *ctx;
    const csnn_backend_ops *ops;
    void *dev;
    model_spec spec;
    char *spec_text; /* canonical */
    int n_layers;
    layer *layers;
    int n_static;          /* layers [0, n_static) run once per batch on N images */
    int first_param_layer; /* backward stops at this layer (no input gradient) */
    int n_tensors;
    model_tensor *tensors;
    char **class_names; /* [classes] */
    int64_t num_params;
    float *arenas[4];  /* parameters, gradients, optimiser m and v (csnn__model_arena) */

    /* run-time buffers, sized for `cap_batch` images */
    int32_t cap_batch;
    bool cap_train;   /* buffers for training (h, argmax, grads...) are there */
    float *input;     /* [N, in] */
    float *repeat;    /* [T, N, static_out] when the first dynamic layer is not a neuron */
    bool repeat_owned; /* false when repeat aliases the static output (T = 1) */
    float *output;    /* [N, K] */
    float *grad_out;  /* [N, K] */
    float *gbuf[2];   /* ping-pong gradients, each [T*N*max_numel] */
    int32_t *labels;  /* [N] */
    float *loss;      /* [1] */
    void *workspace;
    size_t workspace_bytes;
    bool has_grads;
    /* per tensor: 1 when the last backward proved its gradient finite by a
     * bound (csnn__model_backward), so the non-finite check may skip it */
    uint8_t *grad_proven;
    bool trainer_attached;
    bool layer_timing;       /* csnn_model_set_layer_timing */
    unsigned disabled;       /* CSNN__NO_* */
    uint64_t param_version;  /* bumped whenever parameters or BN statistics change */
    uint64_t folded_version; /* the param_version the folded weights come from */
    uint64_t packed_version; /* the param_version + 1 the packed weights come from */
    bool pack_failed;        /* packing failed once: the model runs unpacked */
    float *rate_scratch;     /* spikes of fused layers when firing rates are asked for */
    int64_t rate_scratch_elems;
};

/* ------------------------------------------------------------------------ */
/* Helpers shared by model.c and engine.c                                    */
/* ------------------------------------------------------------------------ */

static inline bool csnn__layer_static(const csnn_model *m, int i)
{
    return i < m->n_static;
}

/* True when the first time-stepped layer is a neuron layer reading the
 * static output directly (the same input at every step). */
static inline bool csnn__boundary_shared(const csnn_model *m)
{
    return m->n_static < m->n_layers && m->layers[m->n_static].s.type == LAYER_NEURON;
}

/* The static block's output (or the network input when there is none). */
static inline float *csnn__static_output(const csnn_model *m)
{
    return m->n_static == 0 ? m->input : m->layers[m->n_static - 1].y;
}

csnn_status csnn__model_alloc(csnn_model *m, size_t bytes, void **out, const char *what);
void csnn__model_free(csnn_model *m, void *p);
/** Frees every batch-sized buffer (engine.c). */
void csnn__model_free_runtime(csnn_model *m);
/** Decides fusion, sparse inputs and BN folding from the layers, the
 *  backend's optional entries and m->disabled (engine.c). */
void csnn__model_plan(csnn_model *m);
/** Whether layer i's input is spikes: it comes from a neuron layer through
 *  max-pooling, flattening and dropout only (engine.c). */
bool csnn__layer_input_is_spikes(const csnn_model *m, int i);
/** Frees the packed weights of linear layers (engine.c). */
void csnn__model_drop_packs(csnn_model *m);
/** Switches levers off (CSNN__NO_*) and re-plans; batch buffers are dropped. */
void csnn__model_set_disabled(csnn_model *m, unsigned flags);

/** Builds the runtime model from a parsed spec (takes ownership of *spec
 *  on success and on failure) and initialises parameters from `seed`. */
csnn_status csnn__model_build(csnn_context *ctx, model_spec *spec, uint64_t seed,
                              csnn_model **out);

/** Makes sure buffers exist for a batch of n images (training adds what
 *  backward needs). Allocates only when n grows or training is first asked. */
csnn_status csnn__model_reserve(csnn_model *m, int32_t n, bool train);

/** Forward on m->input ([n, in], already uploaded). train: BN batch stats,
 *  dropout with masks drawn from (seed, stream base). Result in m->output.
 *  rate_sums (may be NULL; inference only) accumulates, per spiking layer in
 *  order, the sum over the n images of each image's firing rate. */
csnn_status csnn__model_forward(csnn_model *m, int32_t n, bool train, uint64_t dropout_seed,
                                uint64_t dropout_stream, double *rate_sums);

/** Backward from m->grad_out ([n, K]) into every parameter gradient. */
csnn_status csnn__model_backward(csnn_model *m, int32_t n);

/** Allocates parameter gradients (once). */
csnn_status csnn__model_alloc_grads(csnn_model *m);

/** Elements of the parameter arena (parameters, gradients and optimiser
 *  state share its layout: each tensor on a 16-float boundary). */
int64_t csnn__model_arena_numel(const csnn_model *m);
/** Base of an arena: 0 parameters, 1 gradients, 2 optimiser m, 3 optimiser v
 *  (NULL when not allocated). */
float *csnn__model_arena(const csnn_model *m, int which);
/** *count = the number of gradient values of the last backward that are
 *  an infinity or a NaN: every PARAM tensor's gradient is read except the
 *  ones that backward proved finite by a bound (grad_proven). */
csnn_status csnn__model_count_nonfinite_grads(csnn_model *m, double *count);
/** Points every PARAM tensor's opt_m / opt_v into the given arenas (NULL
 *  clears). */
void csnn__model_set_opt_arenas(csnn_model *m, float *state_m, float *state_v);

/** Index of the named tensor or -1. */
int csnn__model_find_tensor(const csnn_model *m, const char *name);

/** The device pointer holding layer i's input for the current batch. */
const float *csnn__model_layer_input(const csnn_model *m, int i);

/** Number of rows (samples x steps) layer i processes for n images. */
int64_t csnn__model_layer_rows(const csnn_model *m, int i, int32_t n);

/* ------------------------------------------------------------------------ */
/* Checkpoints (checkpoint.c)                                                */
/* ------------------------------------------------------------------------ */

/** Opaque key/value state a trainer stores in a checkpoint. */
typedef struct ckpt_kv {
    char key[48];
    int type; /* 0 double, 1 int64, 2 bytes */
    double f;
    int64_t i;
    uint8_t *bytes;
    size_t n_bytes;
} ckpt_kv;

typedef struct ckpt_extra {
    /* optimiser tensors are model->tensors[i].opt_m / opt_v of PARAM tensors */
    bool has_optimizer;
    int n_kv;
    ckpt_kv *kv;
} ckpt_extra;

/** Writes the model (and, when extra is not NULL, the optimiser state held
 *  in the tensors and extra's key/values) atomically to path. */
csnn_status csnn__checkpoint_save(csnn_model *m, const ckpt_extra *extra, const char *path);

/** A checkpoint read into memory and verified (CRCs, structure). */
typedef struct ckpt_file ckpt_file;
csnn_status csnn__checkpoint_read(const char *path, ckpt_file **out);
/** As csnn__checkpoint_read on bytes held in memory (copied); `name` stands
 *  for the path in messages (NULL: "(memory)"). */
csnn_status csnn__checkpoint_parse(const uint8_t *data, size_t size, const char *name,
                                   ckpt_file **out);
void csnn__checkpoint_free(ckpt_file *f);
const char *csnn__checkpoint_spec(const ckpt_file *f);
/** Copies parameters, buffers, counters and class names into m (whose spec
 *  must match); with optimizer, also exp_avg/exp_avg_sq into opt_m/opt_v. */
csnn_status csnn__checkpoint_apply(const ckpt_file *f, csnn_model *m, bool optimizer);
bool csnn__checkpoint_has_optimizer(const ckpt_file *f);
/** The trainer's key/values (owned by f). */
int csnn__checkpoint_kv(const ckpt_file *f, const ckpt_kv **kv);

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

/** Locale-independent float parsing and formatting (%.9g). */
double csnn__strtod(const char *s, char **end);
void csnn__format_float(char *buf, size_t cap, double v);

/** Validates a class name (non-empty, < CSNN_CLASS_NAME_MAX, no control
 *  characters). */
csnn_status csnn__check_class_name(const char *name);

#endif /* CSNN_MODEL_H */
