/*
 * csnn.h - libcsnn: train and run convolutional spiking neural networks.
 *
 * The only header an application includes. Quick tour:
 *
 *     csnn_context *ctx;     csnn_context_create(NULL, &ctx);            // "cpu"
 *     csnn_model *model;     csnn_model_create_preset(ctx, "fer-csnn", 0, &model);
 *     csnn_trainer *tr;      csnn_trainer_create(model, &tr);
 *     csnn_trainer_step(tr, images, labels, 16, &result);   // one Adam step
 *     csnn_model_predict(model, images, 16, scores, 16 * 7, labels_out);
 *     csnn_model_save(model, "model.csnn");
 *     csnn_trainer_destroy(tr); csnn_model_destroy(model); csnn_context_destroy(ctx);
 *
 * Rules that hold for every function (details in docs/API.md):
 *  - Fallible functions return csnn_status: CSNN_OK (0), a negative error, or
 *    a positive non-error stop. On error, csnn_last_error_message() says what
 *    failed and where, and out-parameters are set to NULL / left unchanged
 *    as documented. Nothing prints, exits or aborts.
 *  - Handles are opaque and owned by the caller; _destroy(NULL) is a no-op.
 *    A model, dataset or trainer must be destroyed before its context; a
 *    trainer before its model.
 *  - Input arrays are copied during the call; outputs go to caller buffers
 *    whose capacity (in elements) is passed explicitly.
 *  - A handle is used by one thread at a time. Different handles (with their
 *    own contexts) may be used from different threads concurrently.
 *  - Option structs begin with a `size` field: call the matching _init()
 *    function first, then change what you need.
 */
#ifndef CSNN_H
#define CSNN_H

#include <stddef.h>
#include <stdint.h>

#include "csnn_errors.h"
#include "csnn_export.h"
#include "csnn_kinds.h"
#include "csnn_version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================== */
/* Version                                                                   */
/* ======================================================================== */

/** CSNN_VERSION_NUMBER of the library actually loaded. @since 0.1 */
CSNN_API unsigned csnn_version_number(void);
/** CSNN_VERSION_STRING of the library actually loaded (static). @since 0.1 */
CSNN_API const char *csnn_version_string(void);
/** CSNN_ABI_VERSION of the library actually loaded (its SONAME number);
 *  bindings compare it with the value they were written for. @since 0.1 */
CSNN_API int csnn_abi_version(void);

/* ======================================================================== */
/* Handles                                                                   */
/* ======================================================================== */

/** The root object: a device (with its backend), a thread budget and a log
 *  callback. */
typedef struct csnn_context csnn_context;
/** A network: its spec, parameters, class names and device buffers. */
typedef struct csnn_model csnn_model;
/** Labelled 8-bit grayscale images held in host memory. */
typedef struct csnn_dataset csnn_dataset;
/** Optimiser state and training settings bound to one model. */
typedef struct csnn_trainer csnn_trainer;

/* ======================================================================== */
/* Enums                                                                     */
/* ======================================================================== */

/** Log levels for the context's log callback. */
typedef enum csnn_log_level {
    CSNN_LOG_DEBUG = 0,
    CSNN_LOG_INFO = 1,
    CSNN_LOG_WARN = 2,
    CSNN_LOG_ERROR = 3,
    CSNN_LOG_NONE = 4 /**< as a threshold: log nothing */
} csnn_log_level;

/** Kinds of tensors a model holds (csnn_tensor_info.kind). */
typedef enum csnn_tensor_kind {
    CSNN_TENSOR_PARAM = 0,  /**< trained parameter (has a gradient) */
    CSNN_TENSOR_BUFFER = 1, /**< state such as BN running statistics */
    CSNN_TENSOR_COUNTER = 2 /**< integer counter (BN num_batches_tracked), read as float */
} csnn_tensor_kind;

/**
 * Scalar training settings, for csnn_trainer_set_param(). Values are
 * doubles; integer and enum settings must be integral. Values are explicit
 * and grouped by range; new ones are only appended.
 */
typedef enum csnn_train_param {
    /* optimiser: 100+ */
    CSNN_TRAIN_OPTIMIZER = 100,     /**< csnn_optimizer_kind; default ADAM */
    CSNN_TRAIN_LEARNING_RATE = 101, /**< default 1e-3 */
    CSNN_TRAIN_BETA1 = 102,         /**< default 0.9 */
    CSNN_TRAIN_BETA2 = 103,         /**< default 0.999 */
    CSNN_TRAIN_EPS = 104,           /**< default 1e-8 */
    CSNN_TRAIN_WEIGHT_DECAY = 105,  /**< default 0 (L2 for Adam/SGD, decoupled for AdamW) */
    CSNN_TRAIN_MOMENTUM = 106,      /**< SGD; default 0.9 */
    CSNN_TRAIN_DAMPENING = 107,     /**< SGD; default 0 */
    CSNN_TRAIN_NESTEROV = 108,      /**< SGD; 0 or 1; default 0 */
    /* loss: 200+ */
    CSNN_TRAIN_LOSS = 200,            /**< csnn_loss_kind; default MSE for spiking
                                           outputs, CE for non-spiking (ANN) outputs */
    CSNN_TRAIN_LABEL_SMOOTHING = 201, /**< in [0, 1); default 0.1 */
    /* the run: 300+ */
    CSNN_TRAIN_SEED = 300,        /**< dropout masks, shuffling, augmentation; default 0 */
    CSNN_TRAIN_BATCH_SIZE = 301,  /**< csnn_trainer_fit; default 16 */
    CSNN_TRAIN_EPOCHS = 302,      /**< csnn_trainer_fit: at most this many epochs; default 100 */
    CSNN_TRAIN_PATIENCE = 303,    /**< early stopping: epochs without a better validation
                                       accuracy before stopping; 0 = off; default 10 */
    CSNN_TRAIN_MAX_SECONDS = 304, /**< wall-time limit of one csnn_trainer_fit call; 0 = none
                                       (default) */
    CSNN_TRAIN_LR_SCHEDULE = 305, /**< csnn_lr_schedule; default CONSTANT */
    CSNN_TRAIN_MIN_LR = 306,      /**< the cosine schedule's final learning rate; default 0 */
    /* augmentation of training batches (csnn_trainer_fit): 400+ */
    CSNN_TRAIN_AUG_HFLIP = 400,      /**< probability of a horizontal flip; default 0.5 */
    CSNN_TRAIN_AUG_VFLIP = 401,      /**< probability of a vertical flip; default 0 */
    CSNN_TRAIN_AUG_ROTATE = 402,     /**< rotation by up to +-degrees; default 10 */
    CSNN_TRAIN_AUG_CROP_PAD = 403,   /**< random crop after zero padding by N pixels; default 4 */
    CSNN_TRAIN_AUG_BRIGHTNESS = 404, /**< brightness factor in [1-b, 1+b]; default 0 */
    CSNN_TRAIN_AUG_CONTRAST = 405    /**< contrast factor in [1-c, 1+c]; default 0 */
} csnn_train_param;

/** Learning-rate schedules (CSNN_TRAIN_LR_SCHEDULE). */
typedef enum csnn_lr_schedule {
    CSNN_LR_CONSTANT = 0, /**< the learning rate throughout */
    CSNN_LR_COSINE = 1    /**< cosine annealing per epoch from the learning rate to MIN_LR
                               over EPOCHS epochs (PyTorch's CosineAnnealingLR) */
} csnn_lr_schedule;

/** Why csnn_trainer_fit ended (csnn_trainer_stop_reason). */
typedef enum csnn_stop_reason {
    CSNN_STOP_NONE = 0,     /**< fit has not run (or has not ended) */
    CSNN_STOP_EPOCHS = 1,   /**< the epoch limit was reached */
    CSNN_STOP_EARLY = 2,    /**< early stopping: no better validation accuracy for PATIENCE epochs */
    CSNN_STOP_TIME = 3,     /**< the wall-time limit */
    CSNN_STOP_CALLBACK = 4, /**< the progress callback asked to stop */
    CSNN_STOP_ERROR = 5     /**< an error ended it */
} csnn_stop_reason;

/** What a progress report is about (csnn_progress.phase). */
typedef enum csnn_progress_phase {
    CSNN_PHASE_BATCH = 0,     /**< a training batch finished */
    CSNN_PHASE_EPOCH_END = 1  /**< an epoch finished (validation done, files written) */
} csnn_progress_phase;

/* ======================================================================== */
/* Option and information structs (size-versioned)                           */
/* ======================================================================== */

/** Log callback: runs on the thread that made the call; `message` is valid
 *  only during the call. */
typedef void (*csnn_log_fn)(void *user_data, csnn_log_level level, const char *message);

/** Options of csnn_context_create(). Fill with csnn_context_options_init(). */
typedef struct csnn_context_options {
    size_t size;            /**< sizeof(csnn_context_options); set by _init */
    const char *device;     /**< "cpu" (default), "cuda", "cuda:N", or "auto" (cuda:0
                                 when usable, else cpu); copied */
    int32_t n_threads;      /**< host threads; 0 (default) = CSNN_NUM_THREADS or all cores */
    int32_t log_level;      /**< csnn_log_level threshold; default CSNN_LOG_WARN */
    csnn_log_fn log_fn;     /**< NULL (default): log nothing */
    void *log_user_data;
    uint32_t reserved;      /**< must be 0 */
} csnn_context_options;

/** Sets defaults in `opts` (NULL is a no-op). @since 0.1 */
CSNN_API void csnn_context_options_init(csnn_context_options *opts);

/** Model facts; the caller sets `size` (or calls csnn_model_info_init). */
typedef struct csnn_model_info {
    size_t size;
    int32_t in_channels, in_height, in_width;
    int32_t num_classes;
    int32_t time_steps;      /**< T */
    int32_t num_layers;
    int32_t spiking_output;  /**< 1: outputs are firing rates; 0: raw values (logits) */
    int32_t reserved0;
    int64_t num_params;      /**< trained parameters (BN running stats excluded) */
    int64_t num_tensors;     /**< entries of csnn_model_tensor_info() */
} csnn_model_info;

/** Sets `size` and zeroes the rest. @since 0.1 */
CSNN_API void csnn_model_info_init(csnn_model_info *info);

/** One named tensor of a model. */
typedef struct csnn_tensor_info {
    size_t size;
    const char *name;    /**< e.g. "conv1.weight"; owned by the model */
    int32_t kind;        /**< csnn_tensor_kind */
    int32_t ndim;        /**< 1..4 */
    int64_t shape[4];
    int64_t numel;
} csnn_tensor_info;

/** Sets `size` and zeroes the rest. @since 0.1 */
CSNN_API void csnn_tensor_info_init(csnn_tensor_info *info);

/** Result of one training step. */
typedef struct csnn_step_result {
    size_t size;
    double loss;      /**< mean loss of the batch */
    int32_t correct;  /**< samples whose first arg-max output equals the label */
    int32_t n;        /**< batch size */
} csnn_step_result;

/** Sets `size` and zeroes the rest. @since 0.1 */
CSNN_API void csnn_step_result_init(csnn_step_result *res);

/** Metrics of one finished epoch of csnn_trainer_fit. */
typedef struct csnn_epoch_metrics {
    size_t size;
    int32_t epoch;          /**< 0-based */
    int32_t improved;       /**< 1: the best model was saved after this epoch */
    double train_loss;      /**< mean over the epoch's samples */
    double train_accuracy;  /**< on the (augmented) training batches */
    double val_loss;        /**< -1 without a validation set */
    double val_accuracy;    /**< -1 without a validation set */
    double learning_rate;   /**< used during the epoch */
    double seconds;         /**< wall time of the epoch, validation included */
    int64_t samples;        /**< training samples seen */
} csnn_epoch_metrics;

/** Sets `size` and zeroes the rest. @since 0.1 */
CSNN_API void csnn_epoch_metrics_init(csnn_epoch_metrics *m);

/** A progress report, passed to the csnn_progress_fn of csnn_fit_options. */
typedef struct csnn_progress {
    size_t size;
    int32_t phase;          /**< csnn_progress_phase */
    int32_t epoch;          /**< 0-based */
    int32_t epochs;         /**< the epoch limit */
    int32_t reserved0;
    int64_t batch;          /**< batches done in this epoch (1-based at BATCH) */
    int64_t batches;        /**< batches per epoch */
    double loss;            /**< mean training loss of this epoch so far */
    double accuracy;        /**< training accuracy of this epoch so far */
    double samples_per_s;   /**< training throughput of this epoch so far */
    double elapsed_s;       /**< since csnn_trainer_fit began */
    double eta_s;           /**< estimated time left until the epoch limit (or the time
                                 limit, whichever comes first) */
    const csnn_epoch_metrics *metrics; /**< EPOCH_END: the epoch's metrics; else NULL */
} csnn_progress;

/** Progress callback: runs on the training thread; return non-zero to stop
 *  training (csnn_trainer_fit then returns CSNN_STOPPED). */
typedef int (*csnn_progress_fn)(void *user_data, const csnn_progress *progress);

/** Options of csnn_trainer_fit. Fill with csnn_fit_options_init(). */
typedef struct csnn_fit_options {
    size_t size;
    const char *output;       /**< where the best model is saved (atomically) whenever the
                                   validation accuracy improves; "OUTPUT.last" keeps the
                                   last checkpoint (optimiser and trainer state). NULL
                                   (default): no files are written */
    const char *resume;       /**< a "OUTPUT.last" checkpoint to continue from; NULL
                                   (default) starts afresh */
    csnn_progress_fn progress; /**< NULL (default): no reports */
    void *progress_user_data;
    int32_t progress_every;   /**< batches between BATCH reports; default 1 */
    uint32_t reserved;        /**< must be 0 */
} csnn_fit_options;

/** Sets defaults in `opts` (NULL is a no-op). @since 0.1 */
CSNN_API void csnn_fit_options_init(csnn_fit_options *opts);

/** Metrics of an evaluation (csnn_model_evaluate / csnn_trainer_evaluate). */
typedef struct csnn_metrics csnn_metrics;

/** Per-class figures of an evaluation. */
typedef struct csnn_class_metrics {
    size_t size;
    const char *name;  /**< owned by the metrics */
    double precision;  /**< 0 when nothing was predicted as this class */
    double recall;     /**< 0 when the class has no samples */
    double f1;
    int64_t support;   /**< samples of this class */
} csnn_class_metrics;

/** Sets `size` and zeroes the rest. @since 0.1 */
CSNN_API void csnn_class_metrics_init(csnn_class_metrics *m);

/* ======================================================================== */
/* Context                                                                   */
/* ======================================================================== */

/**
 * Creates a context on a device. `opts` may be NULL for the defaults ("cpu").
 * Asking for "cuda" loads the CUDA module (libcsnn-cuda.so, found beside
 * libcsnn, or at $CSNN_CUDA_MODULE) on first use.
 *
 * Errors: INVALID_ARGUMENT (out NULL, malformed device string),
 * ABI_STRUCT_SIZE, BACKEND_UNAVAILABLE (no backend of that name is built in,
 * registered or loadable as module libcsnn-NAME.so; the CUDA runtime or a
 * GPU is missing; the device index is out of range),
 * OUT_OF_MEMORY. *out is NULL on failure. Thread-safe. @since 0.1
 */
CSNN_API csnn_status csnn_context_create(const csnn_context_options *opts, csnn_context **out);

/** Destroys a context; NULL is a no-op. Every model, dataset and trainer made
 *  from it must be destroyed first. @since 0.1 */
CSNN_API void csnn_context_destroy(csnn_context *ctx);

/** The canonical device name, e.g. "cpu" or "cuda:0" (owned by ctx); NULL
 *  for a NULL ctx. @since 0.1 */
CSNN_API const char *csnn_context_device(const csnn_context *ctx);

/** A one-line description of the device (CPU model, GPU name), owned by ctx;
 *  NULL for a NULL ctx. @since 0.1 */
CSNN_API const char *csnn_context_device_description(const csnn_context *ctx);

/** Host threads the context uses (>= 1), 0 for a NULL ctx. @since 0.1 */
CSNN_API int csnn_context_threads(const csnn_context *ctx);

/** Changes the host thread budget (n >= 1, or 0 for the default). Errors:
 *  INVALID_ARGUMENT. @since 0.1 */
CSNN_API csnn_status csnn_context_set_threads(csnn_context *ctx, int n);

/** Sets the log callback and threshold (fn NULL: silent). Errors:
 *  INVALID_ARGUMENT. @since 0.1 */
CSNN_API csnn_status csnn_context_set_log(csnn_context *ctx, csnn_log_level level,
                                          csnn_log_fn fn, void *user_data);

/**
 * Whether a device can be used here: CSNN_OK when it can, else the error
 * csnn_context_create() would give (with its message). Thread-safe.
 * @since 0.1
 */
CSNN_API csnn_status csnn_device_available(const char *device);

/* ======================================================================== */
/* Datasets                                                                  */
/* ======================================================================== */

/** Options of the dataset loaders. Fill with csnn_dataset_options_init(). */
typedef struct csnn_dataset_options {
    size_t size;
    int32_t height, width;     /**< target image size; default 48 x 48 */
    int32_t skip_bad;          /**< 0 (default): a bad file or row is an error naming it;
                                    1: it is skipped, counted (csnn_dataset_info.skipped)
                                    and logged at CSNN_LOG_WARN */
    int32_t n_threads;         /**< decoder threads; 0 (default) = the context's */
    int64_t max_image_pixels;  /**< limit on width*height of a source image;
                                    default 16777216 (4096 x 4096) */
    int64_t max_samples;       /**< limit on the number of samples; default 16777216 */
    const char *usage;         /**< FER2013 CSV only: keep rows whose Usage equals this
                                    ("Training", "PublicTest", "PrivateTest");
                                    NULL (default) keeps every row */
    uint32_t reserved;         /**< must be 0 */
} csnn_dataset_options;

/** Sets defaults in `opts` (NULL is a no-op). @since 0.1 */
CSNN_API void csnn_dataset_options_init(csnn_dataset_options *opts);

/** Dataset facts; the caller sets `size` (or calls csnn_dataset_info_init). */
typedef struct csnn_dataset_info {
    size_t size;
    int64_t num_samples;
    int32_t num_classes;
    int32_t channels, height, width; /**< channels is always 1 (8-bit grayscale) */
    int32_t reserved0;
    int64_t skipped;                 /**< files or rows skipped under skip_bad */
} csnn_dataset_info;

/** Sets `size` and zeroes the rest. @since 0.1 */
CSNN_API void csnn_dataset_info_init(csnn_dataset_info *info);

/**
 * Loads an image-folder dataset: ROOT/CLASS/IMAGE_FILES. Classes are
 * the sub-folders sorted by name (bytewise); files at the root and entries
 * whose names start with '.' are ignored. PNG (every bit depth and colour
 * type) and JPEG (baseline, progressive, grayscale, YCbCr, CMYK) are decoded
 * to 8-bit grayscale with BT.601 luma (as PIL's "L") and resized to the
 * target size (bilinear; area averaging when shrinking), in parallel.
 * Errors: INVALID_ARGUMENT, ABI_STRUCT_SIZE, IO (unreadable path), FORMAT
 * (a corrupt or non-image file, named in the message, unless skip_bad),
 * LIMIT (an image above max_image_pixels, too many samples), NOT_FOUND (no
 * class folder, or an empty class folder), OUT_OF_MEMORY. @since 0.1
 */
CSNN_API csnn_status csnn_dataset_load_folder(csnn_context *ctx, const char *root,
                                              const csnn_dataset_options *opts,
                                              csnn_dataset **out);

/**
 * Loads FER2013's CSV (header "emotion,pixels,Usage"; 48x48 pixels per row).
 * Labels 0..6 mean angry, disgust, fear, happy, sad, surprise, neutral; the
 * classes are named with those words and ordered alphabetically (angry,
 * disgust, fear, happy, neutral, sad, surprise), as an image-folder copy of
 * the same data is. Errors as csnn_dataset_load_folder, with the row number
 * in the message (FORMAT for a wrong pixel count or an unknown label).
 * @since 0.1
 */
CSNN_API csnn_status csnn_dataset_load_fer2013_csv(csnn_context *ctx, const char *path,
                                                   const csnn_dataset_options *opts,
                                                   csnn_dataset **out);

/** A directory is loaded with csnn_dataset_load_folder, a regular file with
 *  csnn_dataset_load_fer2013_csv. @since 0.1 */
CSNN_API csnn_status csnn_dataset_load(csnn_context *ctx, const char *path,
                                       const csnn_dataset_options *opts, csnn_dataset **out);

/**
 * Creates a dataset from host arrays: pixels uint8 [n, height, width],
 * labels int32 [n] in [0, n_classes), class names (copied; NULL for "0",
 * "1", ...). Errors: INVALID_ARGUMENT, LIMIT, OUT_OF_MEMORY. @since 0.1
 */
CSNN_API csnn_status csnn_dataset_create_from_arrays(csnn_context *ctx, const uint8_t *pixels,
                                                     const int32_t *labels, size_t n,
                                                     int32_t height, int32_t width,
                                                     const char *const *class_names,
                                                     size_t n_classes, csnn_dataset **out);

/** Destroys a dataset; NULL is a no-op. @since 0.1 */
CSNN_API void csnn_dataset_destroy(csnn_dataset *ds);

/** Fills `info`. Errors: INVALID_ARGUMENT, ABI_STRUCT_SIZE. @since 0.1 */
CSNN_API csnn_status csnn_dataset_get_info(const csnn_dataset *ds, csnn_dataset_info *info);

/** The name of class `index` (owned by the dataset). Errors:
 *  INVALID_ARGUMENT. @since 0.1 */
CSNN_API csnn_status csnn_dataset_class_name(const csnn_dataset *ds, int32_t index,
                                             const char **name);

/** The number of samples of class `index`. Errors: INVALID_ARGUMENT.
 *  @since 0.1 */
CSNN_API csnn_status csnn_dataset_class_count(const csnn_dataset *ds, int32_t index,
                                              int64_t *count);

/** Copies sample `index`: pixels (height*width bytes; cap is the capacity)
 *  and its label (either may be NULL). Errors: INVALID_ARGUMENT, SHAPE.
 *  @since 0.1 */
CSNN_API csnn_status csnn_dataset_get_sample(const csnn_dataset *ds, int64_t index,
                                             uint8_t *pixels, size_t cap, int32_t *label);

/** Where sample `index` came from: its file path, "CSV_PATH:LINE", or
 *  "array:INDEX" (owned by the dataset). Errors: INVALID_ARGUMENT.
 *  @since 0.1 */
CSNN_API csnn_status csnn_dataset_sample_source(const csnn_dataset *ds, int64_t index,
                                                const char **source);

/**
 * Stratified split: `part` receives round(fraction * count) samples of each
 * class (chosen with a generator seeded by `seed`), `rest` the others; both
 * keep the source's class list and sample order. fraction in [0, 1). Either
 * output may be empty of samples. Errors: INVALID_ARGUMENT, OUT_OF_MEMORY.
 * @since 0.1
 */
CSNN_API csnn_status csnn_dataset_split(const csnn_dataset *ds, double fraction, uint64_t seed,
                                        csnn_dataset **rest, csnn_dataset **part);

/**
 * Decodes one image file (PNG or JPEG) to 8-bit grayscale at opts' target
 * size, as the dataset loaders do; `opts` may be NULL for the defaults.
 * dst receives height*width bytes (cap is its capacity). Errors:
 * INVALID_ARGUMENT, ABI_STRUCT_SIZE, IO, FORMAT, LIMIT, SHAPE,
 * OUT_OF_MEMORY. Thread-safe. @since 0.1
 */
CSNN_API csnn_status csnn_image_load(const char *path, const csnn_dataset_options *opts,
                                     uint8_t *dst, size_t cap);

/* ======================================================================== */
/* Built-in synthetic dataset                                                */
/* ======================================================================== */

/** Options of the synthetic face generator. Fill with csnn_synth_options_init(). */
typedef struct csnn_synth_options {
    size_t size;
    int64_t per_class;     /**< images per class; default 200 */
    uint64_t seed;         /**< default 0; another seed gives another, disjoint-looking set */
    int32_t height, width; /**< default 48 x 48 */
    int32_t jpeg_percent;  /**< share of files written as JPEG (the rest PNG); default 30 */
    uint32_t reserved;     /**< must be 0 */
} csnn_synth_options;

/** Sets defaults in `opts` (NULL is a no-op). @since 0.1 */
CSNN_API void csnn_synth_options_init(csnn_synth_options *opts);

/** The name of synthetic class `index` (0..6, label order: angry, disgust,
 *  fear, happy, neutral, sad, surprise), or NULL past the last. Static
 *  strings. @since 0.1 */
CSNN_API const char *csnn_synth_class_name(int32_t index);

/**
 * Generates the built-in default dataset: 8-bit grayscale faces in the 7
 * FER2013 classes (angry, disgust, fear, happy, neutral, sad, surprise) whose
 * brows, eyes and mouth differ by expression, with random pose, scale,
 * position, lighting and noise. Deterministic for a given seed.
 * pixels receives [n, height, width] and labels [n] with n = 7 * per_class
 * (caps are the capacities in elements). Errors: INVALID_ARGUMENT,
 * ABI_STRUCT_SIZE, SHAPE. Thread-safe. @since 0.1
 */
CSNN_API csnn_status csnn_synth_generate(const csnn_synth_options *opts, uint8_t *pixels,
                                         size_t pixels_cap, int32_t *labels, size_t labels_cap);

/**
 * Writes the synthetic dataset as an image folder: DIR/CLASS/NNNNN.png
 * or .jpg (dir and class folders are created; existing files with the same
 * names are replaced). Errors: INVALID_ARGUMENT, ABI_STRUCT_SIZE, IO.
 * @since 0.1
 */
CSNN_API csnn_status csnn_synth_write(const char *dir, const csnn_synth_options *opts);

/* ======================================================================== */
/* Model                                                                     */
/* ======================================================================== */

/**
 * The name of built-in preset number `index` (0, 1, ...), or NULL past the
 * last. Presets: "fer-csnn" (the seed's CSNN), "fer-cnn" (its ANN twin) and
 * "small-csnn" (a compact CSNN for the same input). Static strings.
 * @since 0.1
 */
CSNN_API const char *csnn_preset_name(size_t index);

/** The spec text of a preset (static string). Errors: INVALID_ARGUMENT,
 *  NOT_FOUND. @since 0.1 */
CSNN_API csnn_status csnn_preset_spec(const char *name, const char **spec);

/**
 * Builds a model from a text spec (syntax: docs/MODEL_SPEC.md) and
 * initialises its parameters as PyTorch does by default, drawing from a
 * generator seeded with `seed`. Errors: INVALID_ARGUMENT, SPEC (the message
 * gives line and column), LIMIT, OUT_OF_MEMORY, DEVICE_OUT_OF_MEMORY.
 * @since 0.1
 */
CSNN_API csnn_status csnn_model_create_from_spec(csnn_context *ctx, const char *spec,
                                                 uint64_t seed, csnn_model **out);

/** Builds a preset (see csnn_preset_name). Errors as
 *  csnn_model_create_from_spec, plus NOT_FOUND. @since 0.1 */
CSNN_API csnn_status csnn_model_create_preset(csnn_context *ctx, const char *name, uint64_t seed,
                                              csnn_model **out);

/**
 * Loads a model saved by csnn_model_save() or a trainer checkpoint (its
 * optimiser state is ignored here). Errors: INVALID_ARGUMENT, IO, FORMAT
 * (truncated, corrupted, not a libcsnn file), VERSION (a newer major format),
 * SPEC, LIMIT, OUT_OF_MEMORY. @since 0.1
 */
CSNN_API csnn_status csnn_model_load(csnn_context *ctx, const char *path, csnn_model **out);

/**
 * Saves the model (spec, class names, parameters, BN statistics) to `path`
 * atomically: a temporary file in the same directory is written, flushed to
 * disk and renamed, so `path` holds either the old or the new file, never a
 * partial one. After a successful save, temporary files `path.tmp-XXXXXX`
 * (six letters or digits) left by writers that died before their rename are
 * deleted (a live writer's file is locked and stays).
 * Errors: INVALID_ARGUMENT, IO. @since 0.1
 */
CSNN_API csnn_status csnn_model_save(csnn_model *model, const char *path);

/** Destroys a model; NULL is a no-op. Any trainer of it must be destroyed
 *  first. @since 0.1 */
CSNN_API void csnn_model_destroy(csnn_model *model);

/** Fills `info` (its size set by the caller). Errors: INVALID_ARGUMENT,
 *  ABI_STRUCT_SIZE. @since 0.1 */
CSNN_API csnn_status csnn_model_get_info(const csnn_model *model, csnn_model_info *info);

/** The model's spec in canonical form (owned by the model, valid until it is
 *  destroyed). Errors: INVALID_ARGUMENT. @since 0.1 */
CSNN_API csnn_status csnn_model_spec(const csnn_model *model, const char **spec);

/**
 * Writes the layer table (layer, input shape, output shape, parameters, and
 * totals) for a batch of `batch` images as text into buf (NUL-terminated,
 * truncated to cap). *needed (may be NULL) receives the full length plus 1,
 * so a call with cap 0 sizes the buffer. Errors: INVALID_ARGUMENT.
 * @since 0.1
 */
CSNN_API csnn_status csnn_model_summary(const csnn_model *model, int32_t batch, char *buf,
                                        size_t cap, size_t *needed);

/** Time one layer of a model has spent in its passes (csnn_model_layer_time).
 *  Fill `size` with csnn_layer_time_init(). */
typedef struct csnn_layer_time {
    size_t size;
    const char *name;       /**< layer name (owned by the model) */
    const char *kind;       /**< spec keyword: "conv", "linear", "if", "maxpool", ... */
    double forward_s;       /**< seconds in forward passes since timing was switched on */
    double backward_s;      /**< seconds in backward passes (training steps) */
    int64_t forward_calls;  /**< forward passes timed */
    int64_t backward_calls; /**< backward passes timed */
} csnn_layer_time;

/** Sets `size` and zeroes the rest. @since 0.1 */
CSNN_API void csnn_layer_time_init(csnn_layer_time *t);

/**
 * Switches per-layer timing on (enable != 0: the counters restart from zero)
 * or off. While on, every forward pass (csnn_model_predict, evaluation,
 * training steps) and backward pass books the wall-clock time of each layer
 * to it, waiting for the device after each layer (which slows a GPU model:
 * timing is for profiling). A layer the execution plan runs together with
 * an earlier one (a max-pool fused with its neuron layer; in inference a
 * batch norm folded into its convolution, and the first neuron layer run in
 * one pass with the static block's convolution) books nothing for that
 * pass: its time counts under the earlier layer. Errors: INVALID_ARGUMENT.
 * @since 0.1
 */
CSNN_API csnn_status csnn_model_set_layer_timing(csnn_model *model, int enable);

/** The timing of layer `index` (0 .. csnn_model_info.num_layers - 1) since
 *  timing was last switched on. Errors: INVALID_ARGUMENT, ABI_STRUCT_SIZE.
 *  @since 0.1 */
CSNN_API csnn_status csnn_model_layer_time(const csnn_model *model, int32_t index,
                                           csnn_layer_time *out);

/** The name of class `index` (owned by the model). Classes are named
 *  "0", "1", ... until set. Errors: INVALID_ARGUMENT. @since 0.1 */
CSNN_API csnn_status csnn_model_class_name(const csnn_model *model, int32_t index,
                                           const char **name);

/** Names the classes (n must equal the number of classes; names are copied,
 *  non-empty, unique, at most 63 bytes, no control characters). Errors:
 *  INVALID_ARGUMENT, SHAPE. @since 0.1 */
CSNN_API csnn_status csnn_model_set_class_names(csnn_model *model, const char *const *names,
                                                size_t n);

/** Describes tensor number `index` (< num_tensors). Errors: INVALID_ARGUMENT,
 *  ABI_STRUCT_SIZE, NOT_FOUND. @since 0.1 */
CSNN_API csnn_status csnn_model_tensor_info(const csnn_model *model, size_t index,
                                            csnn_tensor_info *info);

/** Copies the named tensor into dst (n = its element count). Errors:
 *  INVALID_ARGUMENT, NOT_FOUND, SHAPE (n differs), DEVICE. @since 0.1 */
CSNN_API csnn_status csnn_model_get_tensor(csnn_model *model, const char *name, float *dst,
                                           size_t n);

/** Overwrites the named tensor from src (n = its element count; counters
 *  must be integral and >= 0, BN running variances >= 0). Errors: as
 *  csnn_model_get_tensor, plus NUMERIC for non-finite values and
 *  INVALID_ARGUMENT for a negative variance or a bad counter. @since 0.1 */
CSNN_API csnn_status csnn_model_set_tensor(csnn_model *model, const char *name,
                                           const float *src, size_t n);

/* ======================================================================== */
/* Inference                                                                 */
/* ======================================================================== */

/**
 * Runs the model in inference mode (BN running statistics, no dropout) on
 * `n` images, float [n, C, H, W] with pixels in [0, 1]. Writes the outputs
 * [n, classes] to `scores` (firing rates in [0, 1] for spiking models,
 * raw values for ANN models) and, when `labels` is not NULL, the predicted
 * class of each image (the FIRST index of the maximum) to labels[n].
 * scores_cap is the capacity of `scores` in floats. A model without a
 * trainer keeps, from its first inference on, a packed copy of the weights
 * of its spike-fed linear layers (as big as those weights; refreshed when
 * they change, freed with the model or when a trainer is created) where
 * the backend supports it. Errors: INVALID_ARGUMENT, SHAPE (scores_cap too
 * small), NUMERIC (a NaN or infinite pixel; nothing is written),
 * OUT_OF_MEMORY, DEVICE.
 * @since 0.1
 */
CSNN_API csnn_status csnn_model_predict(csnn_model *model, const float *images, size_t n,
                                        float *scores, size_t scores_cap, int32_t *labels);

/* ======================================================================== */
/* Trainer                                                                   */
/* ======================================================================== */

/**
 * Creates a trainer for `model` with the seed's recipe as defaults (Adam, lr
 * 1e-3, MSE on firing rates with label smoothing 0.1). The model must
 * outlive the trainer and not be trained by two trainers at once. Errors:
 * INVALID_ARGUMENT, OUT_OF_MEMORY, DEVICE_OUT_OF_MEMORY. @since 0.1
 */
CSNN_API csnn_status csnn_trainer_create(csnn_model *model, csnn_trainer **out);

/** Destroys a trainer; NULL is a no-op. @since 0.1 */
CSNN_API void csnn_trainer_destroy(csnn_trainer *trainer);

/** Sets a scalar setting. Errors: INVALID_ARGUMENT (out of bounds or not
 *  integral), UNSUPPORTED (unknown param). @since 0.1 */
CSNN_API csnn_status csnn_trainer_set_param(csnn_trainer *trainer, csnn_train_param param,
                                            double value);

/** Reads a scalar setting. Errors: INVALID_ARGUMENT, UNSUPPORTED. @since 0.1 */
CSNN_API csnn_status csnn_trainer_get_param(const csnn_trainer *trainer, csnn_train_param param,
                                            double *value);

/** The valid range of a setting. Errors: INVALID_ARGUMENT, UNSUPPORTED.
 *  @since 0.1 */
CSNN_API csnn_status csnn_train_param_bounds(csnn_train_param param, double *lo, double *hi);

/**
 * One training step on a batch of host arrays: forward in training mode (BN
 * batch statistics, dropout), loss, backward, one optimiser step. images are
 * float [n, C, H, W] in [0, 1], labels int32 [n] in [0, classes). `result`
 * may be NULL. Errors: INVALID_ARGUMENT (a label out of range, n == 0),
 * NUMERIC (the loss or a gradient is not finite: the parameters are left as
 * they were before the step), OUT_OF_MEMORY, DEVICE. @since 0.1
 */
CSNN_API csnn_status csnn_trainer_step(csnn_trainer *trainer, const float *images,
                                       const int32_t *labels, size_t n,
                                       csnn_step_result *result);

/** Number of optimiser steps taken so far. Errors: INVALID_ARGUMENT.
 *  @since 0.1 */
CSNN_API csnn_status csnn_trainer_steps(const csnn_trainer *trainer, int64_t *steps);

/**
 * Saves a checkpoint: the model plus the optimiser state and step counters,
 * atomically (as csnn_model_save). csnn_model_load() reads it as a model;
 * csnn_trainer_load_checkpoint() restores everything. Errors:
 * INVALID_ARGUMENT, IO. @since 0.1
 */
CSNN_API csnn_status csnn_trainer_save_checkpoint(csnn_trainer *trainer, const char *path);

/**
 * Restores a checkpoint into the trainer's model and the trainer: the model's
 * spec must equal the checkpoint's. Errors: INVALID_ARGUMENT, IO, FORMAT,
 * VERSION, LIMIT, OUT_OF_MEMORY, SHAPE (another model), STATE (the file has
 * no optimiser state). On an error found in the file the trainer and model
 * are unchanged (the file is checked completely before anything is
 * applied); a device error while copying the values in (DEVICE) may leave
 * the model partly restored. @since 0.1
 */
CSNN_API csnn_status csnn_trainer_load_checkpoint(csnn_trainer *trainer, const char *path);

/* ======================================================================== */
/* Training on datasets                                                      */
/* ======================================================================== */

/**
 * Trains on `train` for up to CSNN_TRAIN_EPOCHS epochs of shuffled,
 * augmented mini-batches (assembled by a background thread), evaluating on
 * `val` (may be NULL) after each epoch. With a validation set the best model
 * (highest validation accuracy) is saved to opts->output whenever it
 * improves, and training stops early after CSNN_TRAIN_PATIENCE epochs
 * without improvement; without one, early stopping is off and the model is
 * saved after every epoch (the last model is the best). After every epoch
 * "OUTPUT.last" holds a checkpoint from which opts->resume continues the
 * same run: a resumed run gives the same per-epoch metrics and final
 * parameters as an uninterrupted one (bit for bit on the CPU). A resumed run
 * takes its settings from the checkpoint, except CSNN_TRAIN_MAX_SECONDS.
 *
 * Classes are matched by name: a model whose classes still have their
 * default names ("0", "1", ...) takes the training set's names; otherwise
 * every dataset class must be one of the model's. The images must have the
 * model's input size.
 *
 * The wall-time limit and a stop request from the callback end training at
 * the next batch boundary; the epoch in progress then does not count (the
 * files on disk stay at the last finished epoch).
 *
 * Returns CSNN_OK (epoch limit, early stop or time limit), CSNN_STOPPED
 * (the callback asked to stop), or an error: INVALID_ARGUMENT,
 * ABI_STRUCT_SIZE, SHAPE (image size), NOT_FOUND (a class the model does
 * not know), IO (files), NUMERIC (a non-finite loss or gradient: the files
 * keep the last good state), STATE (resume from another run's model), and
 * the errors of csnn_trainer_step. The history is kept: see
 * csnn_trainer_history. @since 0.1
 */
CSNN_API csnn_status csnn_trainer_fit(csnn_trainer *trainer, const csnn_dataset *train,
                                      const csnn_dataset *val, const csnn_fit_options *opts);

/** Why the last csnn_trainer_fit ended (a csnn_stop_reason). Errors:
 *  INVALID_ARGUMENT. @since 0.1 */
CSNN_API csnn_status csnn_trainer_stop_reason(const csnn_trainer *trainer, int32_t *reason);

/** Number of finished epochs recorded by csnn_trainer_fit (resumed runs
 *  include the epochs before the resume). Errors: INVALID_ARGUMENT.
 *  @since 0.1 */
CSNN_API csnn_status csnn_trainer_history(const csnn_trainer *trainer, size_t *epochs);

/** Metrics of finished epoch `index`. Errors: INVALID_ARGUMENT,
 *  ABI_STRUCT_SIZE, NOT_FOUND. @since 0.1 */
CSNN_API csnn_status csnn_trainer_epoch(const csnn_trainer *trainer, size_t index,
                                        csnn_epoch_metrics *metrics);

/* ======================================================================== */
/* Evaluation                                                                */
/* ======================================================================== */

/**
 * Evaluates the model in inference mode on a dataset: loss (the trainer's
 * default: MSE against one-hot targets smoothed by 0.1 for spiking models,
 * cross-entropy with the same smoothing otherwise), accuracy, the confusion
 * matrix, per-class precision/recall/F1/support and the mean firing rate of
 * every spiking layer. Classes are matched by name (a dataset class the
 * model does not know is NOT_FOUND). *out must be released with
 * csnn_metrics_destroy. Errors: INVALID_ARGUMENT, SHAPE, NOT_FOUND,
 * OUT_OF_MEMORY, DEVICE. @since 0.1
 */
CSNN_API csnn_status csnn_model_evaluate(csnn_model *model, const csnn_dataset *ds,
                                         csnn_metrics **out);

/** As csnn_model_evaluate with the trainer's loss settings. @since 0.1 */
CSNN_API csnn_status csnn_trainer_evaluate(csnn_trainer *trainer, const csnn_dataset *ds,
                                           csnn_metrics **out);

/** Destroys metrics; NULL is a no-op. @since 0.1 */
CSNN_API void csnn_metrics_destroy(csnn_metrics *metrics);

/** Overall figures (any pointer may be NULL). Errors: INVALID_ARGUMENT.
 *  @since 0.1 */
CSNN_API csnn_status csnn_metrics_overall(const csnn_metrics *metrics, double *loss,
                                          double *accuracy, int64_t *samples,
                                          int32_t *num_classes);

/** The confusion matrix, int64 [K, K], row = true class, column = predicted,
 *  in the model's class order; cap is the capacity of dst in elements.
 *  Errors: INVALID_ARGUMENT, SHAPE. @since 0.1 */
CSNN_API csnn_status csnn_metrics_confusion(const csnn_metrics *metrics, int64_t *dst,
                                            size_t cap);

/** Figures of class `index` (model order). Errors: INVALID_ARGUMENT,
 *  ABI_STRUCT_SIZE. @since 0.1 */
CSNN_API csnn_status csnn_metrics_class(const csnn_metrics *metrics, int32_t index,
                                        csnn_class_metrics *out);

/** Number of spiking layers with a firing rate. Errors: INVALID_ARGUMENT.
 *  @since 0.1 */
CSNN_API csnn_status csnn_metrics_num_rates(const csnn_metrics *metrics, int32_t *n);

/** The layer name and mean firing rate (spikes per neuron per time step) of
 *  spiking layer `index`. Errors: INVALID_ARGUMENT. @since 0.1 */
CSNN_API csnn_status csnn_metrics_rate(const csnn_metrics *metrics, int32_t index,
                                       const char **layer, double *rate);

/* ======================================================================== */
/* Efficiency report                                                         */
/* ======================================================================== */

/** The energy report of a model on a dataset (csnn_model_profile). */
typedef struct csnn_profile csnn_profile;

/** Options of csnn_model_profile. Fill with csnn_profile_options_init(). */
typedef struct csnn_profile_options {
    size_t size;
    double mac_pj;       /**< energy of a multiply-accumulate; default 4.6 pJ (45 nm, float32) */
    double ac_pj;        /**< energy of an accumulate; default 0.9 pJ (45 nm, float32) */
    int64_t max_samples; /**< profile at most this many samples (first ones); 0 (default): all */
    uint32_t reserved;   /**< must be 0 */
} csnn_profile_options;

/** Sets defaults in `opts` (NULL is a no-op). @since 0.1 */
CSNN_API void csnn_profile_options_init(csnn_profile_options *opts);

/** How a layer's operations are counted (csnn_layer_profile.counted_as). */
typedef enum csnn_op_kind {
    CSNN_OPS_NONE = 0, /**< not a synaptic layer (neurons, BN, pooling, ...): not counted */
    CSNN_OPS_MAC = 1,  /**< its input is not spikes: dense multiply-accumulates */
    CSNN_OPS_AC = 2    /**< its input is spikes: one accumulate per spike and target */
} csnn_op_kind;

/** One layer of an efficiency report (figures per image). */
typedef struct csnn_layer_profile {
    size_t size;
    const char *name;      /**< layer name, or "total" (owned by the profile) */
    const char *kind;      /**< spec keyword: "conv", "linear", "if", "lif", ... */
    int32_t counted_as;    /**< csnn_op_kind */
    int32_t reserved0;
    double firing_rate;    /**< neuron layers: spikes per neuron per time step; synaptic
                                layers counted as AC: the density of their input; else -1 */
    double macs;           /**< multiply-accumulates of this layer in the SNN */
    double acs;            /**< synaptic operations: accumulates triggered by spikes */
    double ann_macs;       /**< multiply-accumulates of the same layer in the ANN twin */
    double energy_pj;      /**< macs * mac_pj + acs * ac_pj */
    double ann_energy_pj;  /**< ann_macs * mac_pj */
} csnn_layer_profile;

/** Sets `size` and zeroes the rest. @since 0.1 */
CSNN_API void csnn_layer_profile_init(csnn_layer_profile *p);

/**
 * Runs the model in inference mode over a dataset and counts, per layer and
 * per image, the operations a spiking implementation performs against those
 * of its ANN twin (the same layers, dense, T = 1), with the energy estimate
 * E = MACs * mac_pj + ACs * ac_pj. Conventions (docs/PERFORMANCE.md): a
 * conv or linear layer whose input is spikes performs one accumulate per
 * input spike and target it reaches (its fan-out, exact at the borders of a
 * padded convolution), summed over the T steps; one whose input is not
 * spikes (the first layer, the image) performs dense MACs, counted once for
 * the static block and T times otherwise; neuron updates, batch norm,
 * pooling and memory traffic are not counted. Errors: as
 * csnn_model_evaluate, plus ABI_STRUCT_SIZE. @since 0.1
 */
CSNN_API csnn_status csnn_model_profile(csnn_model *model, const csnn_dataset *ds,
                                        const csnn_profile_options *opts, csnn_profile **out);

/** Destroys a profile; NULL is a no-op. @since 0.1 */
CSNN_API void csnn_profile_destroy(csnn_profile *profile);

/** Number of layers in the profile (the model's). Errors: INVALID_ARGUMENT.
 *  @since 0.1 */
CSNN_API csnn_status csnn_profile_num_layers(const csnn_profile *profile, int32_t *n);

/** Figures of layer `index`, or of the whole model for index -1 ("total").
 *  Errors: INVALID_ARGUMENT, ABI_STRUCT_SIZE. @since 0.1 */
CSNN_API csnn_status csnn_profile_layer(const csnn_profile *profile, int32_t index,
                                        csnn_layer_profile *out);

/** Samples profiled and the energy options used. Errors: INVALID_ARGUMENT.
 *  @since 0.1 */
CSNN_API csnn_status csnn_profile_info(const csnn_profile *profile, int64_t *samples,
                                       double *mac_pj, double *ac_pj);

#ifdef __cplusplus
}
#endif

#endif /* CSNN_H */
