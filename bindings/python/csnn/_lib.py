"""Low-level ctypes layer of the csnn package: loading libcsnn, the ABI
handshake, mirrors of the public structs and enums, and one prototype table
(argtypes + restype + errcheck) for every function the package calls.

Nothing here owns a handle; the classes in ``csnn/__init__.py`` do. Only the
public, size-versioned structs of ``csnn.h`` are mirrored (never internal
ones), and each is filled by its C ``*_init()`` function so that the library
sets ``size`` and the defaults; the test suite checks ``ctypes.sizeof`` of
every mirror against the ``size`` its ``_init`` writes.

The library is found, in order (docs/GUIDE_PYTHON.md):

1. ``$LIBCSNN_LIBRARY``: a full path. When it is set, nothing else is tried.
2. A ``libcsnn`` shared library shipped next to this file (a wheel that
   bundles the library).
3. ``ctypes.util.find_library("csnn")`` (ldconfig's cache, compiler paths).
4. The SONAME ``libcsnn.so.<ABI>`` through the dynamic loader's search path
   (``LD_LIBRARY_PATH``, rpath, system directories).

A candidate that loads but reports another ABI version
(``csnn_abi_version()``) is skipped; when nothing fits, ``OSError`` lists
every candidate and why it was refused.
"""

import ctypes
import ctypes.util
import enum
import glob
import os
import sys
import warnings
from ctypes import (CFUNCTYPE, POINTER, Structure, byref, c_char_p, c_double, c_int, c_int32,
                    c_int64, c_size_t, c_uint, c_uint8, c_uint32, c_uint64, c_void_p, c_float)

from ._version import ABI_VERSION, MIN_VERSION_NUMBER

__all__ = ["lib", "Error", "Status", "library_path"]

# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def _soname():
    if sys.platform == "darwin":
        return "libcsnn.%d.dylib" % ABI_VERSION
    return "libcsnn.so.%d" % ABI_VERSION


def _candidates():
    """(origin, path-or-name) pairs in search order."""
    env = os.environ.get("LIBCSNN_LIBRARY")
    if env:
        return [("LIBCSNN_LIBRARY", env)]
    out = []
    here = os.path.dirname(os.path.abspath(__file__))
    bundled = []
    for pattern in ("libcsnn.so.%d" % ABI_VERSION, "libcsnn.so.%d.*" % ABI_VERSION,
                    "libcsnn.%d.dylib" % ABI_VERSION, "libcsnn.so", "libcsnn.dylib",
                    "csnn.dll"):
        for p in sorted(glob.glob(os.path.join(here, pattern))):
            if p not in bundled:
                bundled.append(p)
    out += [("next to the package", p) for p in bundled]
    found = ctypes.util.find_library("csnn")
    if found:
        out.append(("ctypes.util.find_library('csnn')", found))
    out.append(("the SONAME", _soname()))
    return out


def _load():
    tried = []
    for origin, path in _candidates():
        try:
            handle = ctypes.CDLL(path)  # RTLD_LOCAL: nothing leaks into the global namespace
        except OSError as e:
            tried.append("%s (%s): %s" % (path, origin, e))
            continue
        try:
            fn = handle.csnn_abi_version
        except AttributeError:
            tried.append("%s (%s): not libcsnn (no csnn_abi_version)" % (path, origin))
            continue
        fn.argtypes = []
        fn.restype = c_int
        abi = fn()
        if abi != ABI_VERSION:
            tried.append("%s (%s): ABI version %d, this package needs %d"
                         % (path, origin, abi, ABI_VERSION))
            continue
        return handle, path
    raise OSError(
        "csnn: cannot load libcsnn (ABI %d). Tried, in order:\n  %s\n"
        "Set LIBCSNN_LIBRARY to the full path of libcsnn.so.%d, or install libcsnn where the "
        "dynamic loader finds it (see docs/GUIDE_PYTHON.md)."
        % (ABI_VERSION, "\n  ".join(tried), ABI_VERSION))


lib, library_path = _load()

# --------------------------------------------------------------------------
# Enums (explicit values; tests check them against the library)
# --------------------------------------------------------------------------


class Status(enum.IntEnum):
    """csnn_status: 0 success, negative errors, positive non-error stops.
    Member names drop the ``CSNN_`` prefix of the C names."""
    OK = 0
    STOPPED = 1
    ERR_INVALID_ARGUMENT = -1
    ERR_OUT_OF_MEMORY = -2
    ERR_DEVICE_OUT_OF_MEMORY = -3
    ERR_UNSUPPORTED = -4
    ERR_BACKEND_UNAVAILABLE = -5
    ERR_IO = -6
    ERR_FORMAT = -7
    ERR_VERSION = -8
    ERR_ABI_STRUCT_SIZE = -9
    ERR_STATE = -10
    ERR_SHAPE = -11
    ERR_NUMERIC = -12
    ERR_DEVICE = -13
    ERR_SPEC = -14
    ERR_NOT_FOUND = -15
    ERR_LIMIT = -16
    ERR_INTERNAL = -17


class LogLevel(enum.IntEnum):
    """csnn_log_level: thresholds and levels of the context's log callback."""
    DEBUG = 0
    INFO = 1
    WARN = 2
    ERROR = 3
    NONE = 4


class TensorKind(enum.IntEnum):
    """csnn_tensor_kind: what a model tensor is."""
    PARAM = 0
    BUFFER = 1
    COUNTER = 2


class TrainParam(enum.IntEnum):
    """csnn_train_param: the scalar trainer settings (csnn_trainer_set_param)."""
    OPTIMIZER = 100
    LEARNING_RATE = 101
    BETA1 = 102
    BETA2 = 103
    EPS = 104
    WEIGHT_DECAY = 105
    MOMENTUM = 106
    DAMPENING = 107
    NESTEROV = 108
    LOSS = 200
    LABEL_SMOOTHING = 201
    SEED = 300
    BATCH_SIZE = 301
    EPOCHS = 302
    PATIENCE = 303
    MAX_SECONDS = 304
    LR_SCHEDULE = 305
    MIN_LR = 306
    AUG_HFLIP = 400
    AUG_VFLIP = 401
    AUG_ROTATE = 402
    AUG_CROP_PAD = 403
    AUG_BRIGHTNESS = 404
    AUG_CONTRAST = 405


class Optimizer(enum.IntEnum):
    """csnn_optimizer_kind (values of TrainParam.OPTIMIZER)."""
    ADAM = 0
    ADAMW = 1
    SGD = 2


class Loss(enum.IntEnum):
    """csnn_loss_kind (values of TrainParam.LOSS)."""
    MSE = 0
    CE = 1


class LRSchedule(enum.IntEnum):
    """csnn_lr_schedule (values of TrainParam.LR_SCHEDULE)."""
    CONSTANT = 0
    COSINE = 1


class OpKind(enum.IntEnum):
    """csnn_op_kind: how a layer's operations are counted in a profile."""
    NONE = 0
    MAC = 1
    AC = 2


class Phase(enum.IntEnum):
    """csnn_progress_phase: what a progress report is about."""
    BATCH = 0
    EPOCH_END = 1


class StopReason(enum.IntEnum):
    """csnn_stop_reason: why the last fit ended."""
    NONE = 0
    EPOCHS = 1
    EARLY = 2
    TIME = 3
    CALLBACK = 4
    ERROR = 5


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


def _decode(b):
    return b.decode("utf-8", "replace") if b is not None else None


class Error(Exception):
    """A libcsnn call failed (or the binding refused arguments that the
    library would refuse for the same reason).

    Attributes:
        status: the csnn_status code (a ``Status`` member when known).
        name: the status name as libcsnn spells it, e.g. ``"CSNN_ERR_SHAPE"``.
        message: the library's detail message (``csnn_last_error_message()``
            of the failed call) or the binding's own.
        function: the C function that failed, or None for checks made by the
            binding itself.
    """

    def __init__(self, status, message="", function=None):
        try:
            status = Status(status)
        except ValueError:
            status = int(status)
        self.status = status
        self.name = _decode(lib.csnn_status_name(int(status)))
        self.message = message or _decode(lib.csnn_status_string(int(status)))
        self.function = function
        super().__init__(self.name, self.message)

    def __str__(self):
        return "%s: %s" % (self.name, self.message)

    def __reduce__(self):
        return (self.__class__, (int(self.status), self.message, self.function))


def _check(result, func, args):
    """errcheck of every status-returning function: raise on negative
    statuses, return the others (CSNN_OK, CSNN_STOPPED) as Status members.
    Runs on the calling thread right after the call, so the thread-local
    message is the failed call's."""
    if result < 0:
        msg = _decode(lib.csnn_last_error_message())
        raise Error(result, msg, func.__name__)
    try:
        return Status(result)
    except ValueError:
        return result


# --------------------------------------------------------------------------
# Handles: distinct pointer types, so that one cannot be passed for another
# --------------------------------------------------------------------------


class _Context(Structure):
    pass


class _Model(Structure):
    pass


class _Dataset(Structure):
    pass


class _Trainer(Structure):
    pass


class _Metrics(Structure):
    pass


class _Profile(Structure):
    pass


ContextP = POINTER(_Context)
ModelP = POINTER(_Model)
DatasetP = POINTER(_Dataset)
TrainerP = POINTER(_Trainer)
MetricsP = POINTER(_Metrics)
ProfileP = POINTER(_Profile)

# --------------------------------------------------------------------------
# Size-versioned structs (csnn.h); fill with new_struct(cls)
# --------------------------------------------------------------------------

LOG_FN = CFUNCTYPE(None, c_void_p, c_int, c_char_p)


class ContextOptions(Structure):
    """csnn_context_options"""
    _fields_ = [("size", c_size_t), ("device", c_char_p), ("n_threads", c_int32),
                ("log_level", c_int32), ("log_fn", LOG_FN), ("log_user_data", c_void_p),
                ("reserved", c_uint32)]


class DatasetOptions(Structure):
    """csnn_dataset_options"""
    _fields_ = [("size", c_size_t), ("height", c_int32), ("width", c_int32),
                ("skip_bad", c_int32), ("n_threads", c_int32), ("max_image_pixels", c_int64),
                ("max_samples", c_int64), ("usage", c_char_p), ("reserved", c_uint32)]


class DatasetInfo(Structure):
    """csnn_dataset_info"""
    _fields_ = [("size", c_size_t), ("num_samples", c_int64), ("num_classes", c_int32),
                ("channels", c_int32), ("height", c_int32), ("width", c_int32),
                ("reserved0", c_int32), ("skipped", c_int64)]


class SynthOptions(Structure):
    """csnn_synth_options"""
    _fields_ = [("size", c_size_t), ("per_class", c_int64), ("seed", c_uint64),
                ("height", c_int32), ("width", c_int32), ("jpeg_percent", c_int32),
                ("reserved", c_uint32)]


class ModelInfo(Structure):
    """csnn_model_info"""
    _fields_ = [("size", c_size_t), ("in_channels", c_int32), ("in_height", c_int32),
                ("in_width", c_int32), ("num_classes", c_int32), ("time_steps", c_int32),
                ("num_layers", c_int32), ("spiking_output", c_int32), ("reserved0", c_int32),
                ("num_params", c_int64), ("num_tensors", c_int64)]


class TensorInfo(Structure):
    """csnn_tensor_info"""
    _fields_ = [("size", c_size_t), ("name", c_char_p), ("kind", c_int32), ("ndim", c_int32),
                ("shape", c_int64 * 4), ("numel", c_int64)]


class StepResult(Structure):
    """csnn_step_result"""
    _fields_ = [("size", c_size_t), ("loss", c_double), ("correct", c_int32), ("n", c_int32)]


class EpochMetrics(Structure):
    """csnn_epoch_metrics"""
    _fields_ = [("size", c_size_t), ("epoch", c_int32), ("improved", c_int32),
                ("train_loss", c_double), ("train_accuracy", c_double), ("val_loss", c_double),
                ("val_accuracy", c_double), ("learning_rate", c_double), ("seconds", c_double),
                ("samples", c_int64)]


class Progress(Structure):
    """csnn_progress"""
    _fields_ = [("size", c_size_t), ("phase", c_int32), ("epoch", c_int32), ("epochs", c_int32),
                ("reserved0", c_int32), ("batch", c_int64), ("batches", c_int64),
                ("loss", c_double), ("accuracy", c_double), ("samples_per_s", c_double),
                ("elapsed_s", c_double), ("eta_s", c_double),
                ("metrics", POINTER(EpochMetrics))]


PROGRESS_FN = CFUNCTYPE(c_int, c_void_p, POINTER(Progress))


class FitOptions(Structure):
    """csnn_fit_options"""
    _fields_ = [("size", c_size_t), ("output", c_char_p), ("resume", c_char_p),
                ("progress", PROGRESS_FN), ("progress_user_data", c_void_p),
                ("progress_every", c_int32), ("reserved", c_uint32)]


class ClassMetrics(Structure):
    """csnn_class_metrics"""
    _fields_ = [("size", c_size_t), ("name", c_char_p), ("precision", c_double),
                ("recall", c_double), ("f1", c_double), ("support", c_int64)]


class ProfileOptions(Structure):
    """csnn_profile_options"""
    _fields_ = [("size", c_size_t), ("mac_pj", c_double), ("ac_pj", c_double),
                ("max_samples", c_int64), ("reserved", c_uint32)]


class LayerProfile(Structure):
    """csnn_layer_profile"""
    _fields_ = [("size", c_size_t), ("name", c_char_p), ("kind", c_char_p),
                ("counted_as", c_int32), ("reserved0", c_int32), ("firing_rate", c_double),
                ("macs", c_double), ("acs", c_double), ("ann_macs", c_double),
                ("energy_pj", c_double), ("ann_energy_pj", c_double)]


class LayerTime(Structure):
    """csnn_layer_time"""
    _fields_ = [("size", c_size_t), ("name", c_char_p), ("kind", c_char_p),
                ("forward_s", c_double), ("backward_s", c_double),
                ("forward_calls", c_int64), ("backward_calls", c_int64)]


#: struct mirror -> name of its C init function
STRUCT_INIT = {
    ContextOptions: "csnn_context_options_init",
    DatasetOptions: "csnn_dataset_options_init",
    DatasetInfo: "csnn_dataset_info_init",
    SynthOptions: "csnn_synth_options_init",
    ModelInfo: "csnn_model_info_init",
    TensorInfo: "csnn_tensor_info_init",
    StepResult: "csnn_step_result_init",
    EpochMetrics: "csnn_epoch_metrics_init",
    FitOptions: "csnn_fit_options_init",
    ClassMetrics: "csnn_class_metrics_init",
    ProfileOptions: "csnn_profile_options_init",
    LayerProfile: "csnn_layer_profile_init",
    LayerTime: "csnn_layer_time_init",
}


def new_struct(cls):
    """An instance of a struct mirror filled by its C _init function (size
    and defaults). csnn_progress has no _init (the library fills it)."""
    s = cls()
    getattr(lib, STRUCT_INIT[cls])(byref(s))
    return s


# --------------------------------------------------------------------------
# Prototypes: (name, restype, argtypes). restype csnn_status -> errcheck.
# --------------------------------------------------------------------------

_STATUS = object()  # marker: returns csnn_status, checked by _check
_cstr_out = POINTER(c_char_p)

_PROTOTYPES = [
    # errors and versions
    ("csnn_status_name", c_char_p, [c_int]),
    ("csnn_status_string", c_char_p, [c_int]),
    ("csnn_last_error_message", c_char_p, []),
    ("csnn_clear_last_error", None, []),
    ("csnn_version_number", c_uint, []),
    ("csnn_version_string", c_char_p, []),
    ("csnn_abi_version", c_int, []),
    # struct initialisers
    ("csnn_context_options_init", None, [POINTER(ContextOptions)]),
    ("csnn_dataset_options_init", None, [POINTER(DatasetOptions)]),
    ("csnn_dataset_info_init", None, [POINTER(DatasetInfo)]),
    ("csnn_synth_options_init", None, [POINTER(SynthOptions)]),
    ("csnn_model_info_init", None, [POINTER(ModelInfo)]),
    ("csnn_tensor_info_init", None, [POINTER(TensorInfo)]),
    ("csnn_step_result_init", None, [POINTER(StepResult)]),
    ("csnn_epoch_metrics_init", None, [POINTER(EpochMetrics)]),
    ("csnn_fit_options_init", None, [POINTER(FitOptions)]),
    ("csnn_class_metrics_init", None, [POINTER(ClassMetrics)]),
    ("csnn_profile_options_init", None, [POINTER(ProfileOptions)]),
    ("csnn_layer_profile_init", None, [POINTER(LayerProfile)]),
    ("csnn_layer_time_init", None, [POINTER(LayerTime)]),
    # context
    ("csnn_context_create", _STATUS, [POINTER(ContextOptions), POINTER(ContextP)]),
    ("csnn_context_destroy", None, [ContextP]),
    ("csnn_context_device", c_char_p, [ContextP]),
    ("csnn_context_device_description", c_char_p, [ContextP]),
    ("csnn_context_threads", c_int, [ContextP]),
    ("csnn_context_set_threads", _STATUS, [ContextP, c_int]),
    ("csnn_context_set_log", _STATUS, [ContextP, c_int, LOG_FN, c_void_p]),
    ("csnn_device_available", c_int, [c_char_p]),  # a status, but not raised
    # datasets
    ("csnn_dataset_load_folder", _STATUS,
     [ContextP, c_char_p, POINTER(DatasetOptions), POINTER(DatasetP)]),
    ("csnn_dataset_load_fer2013_csv", _STATUS,
     [ContextP, c_char_p, POINTER(DatasetOptions), POINTER(DatasetP)]),
    ("csnn_dataset_load", _STATUS,
     [ContextP, c_char_p, POINTER(DatasetOptions), POINTER(DatasetP)]),
    ("csnn_dataset_create_from_arrays", _STATUS,
     [ContextP, POINTER(c_uint8), POINTER(c_int32), c_size_t, c_int32, c_int32,
      POINTER(c_char_p), c_size_t, POINTER(DatasetP)]),
    ("csnn_dataset_destroy", None, [DatasetP]),
    ("csnn_dataset_get_info", _STATUS, [DatasetP, POINTER(DatasetInfo)]),
    ("csnn_dataset_class_name", _STATUS, [DatasetP, c_int32, _cstr_out]),
    ("csnn_dataset_class_count", _STATUS, [DatasetP, c_int32, POINTER(c_int64)]),
    ("csnn_dataset_get_sample", _STATUS,
     [DatasetP, c_int64, POINTER(c_uint8), c_size_t, POINTER(c_int32)]),
    ("csnn_dataset_sample_source", _STATUS, [DatasetP, c_int64, _cstr_out]),
    ("csnn_dataset_split", _STATUS,
     [DatasetP, c_double, c_uint64, POINTER(DatasetP), POINTER(DatasetP)]),
    ("csnn_image_load", _STATUS, [c_char_p, POINTER(DatasetOptions), POINTER(c_uint8), c_size_t]),
    # synthetic data
    ("csnn_synth_generate", _STATUS,
     [POINTER(SynthOptions), POINTER(c_uint8), c_size_t, POINTER(c_int32), c_size_t]),
    ("csnn_synth_write", _STATUS, [c_char_p, POINTER(SynthOptions)]),
    ("csnn_synth_class_name", c_char_p, [c_int32]),
    # models
    ("csnn_preset_name", c_char_p, [c_size_t]),
    ("csnn_preset_spec", _STATUS, [c_char_p, _cstr_out]),
    ("csnn_model_create_from_spec", _STATUS, [ContextP, c_char_p, c_uint64, POINTER(ModelP)]),
    ("csnn_model_create_preset", _STATUS, [ContextP, c_char_p, c_uint64, POINTER(ModelP)]),
    ("csnn_model_load", _STATUS, [ContextP, c_char_p, POINTER(ModelP)]),
    ("csnn_model_save", _STATUS, [ModelP, c_char_p]),
    ("csnn_model_destroy", None, [ModelP]),
    ("csnn_model_get_info", _STATUS, [ModelP, POINTER(ModelInfo)]),
    ("csnn_model_spec", _STATUS, [ModelP, _cstr_out]),
    ("csnn_model_summary", _STATUS, [ModelP, c_int32, c_char_p, c_size_t, POINTER(c_size_t)]),
    ("csnn_model_set_layer_timing", _STATUS, [ModelP, c_int]),
    ("csnn_model_layer_time", _STATUS, [ModelP, c_int32, POINTER(LayerTime)]),
    ("csnn_model_class_name", _STATUS, [ModelP, c_int32, _cstr_out]),
    ("csnn_model_set_class_names", _STATUS, [ModelP, POINTER(c_char_p), c_size_t]),
    ("csnn_model_tensor_info", _STATUS, [ModelP, c_size_t, POINTER(TensorInfo)]),
    ("csnn_model_get_tensor", _STATUS, [ModelP, c_char_p, POINTER(c_float), c_size_t]),
    ("csnn_model_set_tensor", _STATUS, [ModelP, c_char_p, POINTER(c_float), c_size_t]),
    ("csnn_model_predict", _STATUS,
     [ModelP, POINTER(c_float), c_size_t, POINTER(c_float), c_size_t, POINTER(c_int32)]),
    # trainer
    ("csnn_trainer_create", _STATUS, [ModelP, POINTER(TrainerP)]),
    ("csnn_trainer_destroy", None, [TrainerP]),
    ("csnn_trainer_set_param", _STATUS, [TrainerP, c_int, c_double]),
    ("csnn_trainer_get_param", _STATUS, [TrainerP, c_int, POINTER(c_double)]),
    ("csnn_train_param_bounds", _STATUS, [c_int, POINTER(c_double), POINTER(c_double)]),
    ("csnn_trainer_step", _STATUS,
     [TrainerP, POINTER(c_float), POINTER(c_int32), c_size_t, POINTER(StepResult)]),
    ("csnn_trainer_steps", _STATUS, [TrainerP, POINTER(c_int64)]),
    ("csnn_trainer_save_checkpoint", _STATUS, [TrainerP, c_char_p]),
    ("csnn_trainer_load_checkpoint", _STATUS, [TrainerP, c_char_p]),
    ("csnn_trainer_fit", _STATUS, [TrainerP, DatasetP, DatasetP, POINTER(FitOptions)]),
    ("csnn_trainer_history", _STATUS, [TrainerP, POINTER(c_size_t)]),
    ("csnn_trainer_stop_reason", _STATUS, [TrainerP, POINTER(c_int32)]),
    ("csnn_trainer_epoch", _STATUS, [TrainerP, c_size_t, POINTER(EpochMetrics)]),
    # evaluation
    ("csnn_model_evaluate", _STATUS, [ModelP, DatasetP, POINTER(MetricsP)]),
    ("csnn_trainer_evaluate", _STATUS, [TrainerP, DatasetP, POINTER(MetricsP)]),
    ("csnn_metrics_destroy", None, [MetricsP]),
    ("csnn_metrics_overall", _STATUS,
     [MetricsP, POINTER(c_double), POINTER(c_double), POINTER(c_int64), POINTER(c_int32)]),
    ("csnn_metrics_confusion", _STATUS, [MetricsP, POINTER(c_int64), c_size_t]),
    ("csnn_metrics_class", _STATUS, [MetricsP, c_int32, POINTER(ClassMetrics)]),
    ("csnn_metrics_num_rates", _STATUS, [MetricsP, POINTER(c_int32)]),
    ("csnn_metrics_rate", _STATUS, [MetricsP, c_int32, _cstr_out, POINTER(c_double)]),
    # efficiency report
    ("csnn_model_profile", _STATUS,
     [ModelP, DatasetP, POINTER(ProfileOptions), POINTER(ProfileP)]),
    ("csnn_profile_destroy", None, [ProfileP]),
    ("csnn_profile_num_layers", _STATUS, [ProfileP, POINTER(c_int32)]),
    ("csnn_profile_layer", _STATUS, [ProfileP, c_int32, POINTER(LayerProfile)]),
    ("csnn_profile_info", _STATUS,
     [ProfileP, POINTER(c_int64), POINTER(c_double), POINTER(c_double)]),
]

#: names of every prototyped function (the tests compare them with the header)
PROTOTYPED = frozenset(name for name, _, _ in _PROTOTYPES)


#: prototyped functions the loaded library lacks (an older libcsnn 0.x);
#: calling one raises Error CSNN_ERR_UNSUPPORTED instead of failing the import
MISSING = set()


def _missing(name):
    def stub(*args):
        raise Error(Status.ERR_UNSUPPORTED, "the libcsnn at %s (%s) has no %s"
                    % (library_path, _decode(lib.csnn_version_string()), name), name)
    stub.__name__ = name
    return stub


def _declare():
    for name, restype, argtypes in _PROTOTYPES:
        try:
            fn = getattr(lib, name)
        except AttributeError:
            MISSING.add(name)
            setattr(lib, name, _missing(name))
            continue
        fn.argtypes = argtypes
        if restype is _STATUS:
            fn.restype = c_int
            fn.errcheck = _check
        else:
            fn.restype = restype


_declare()

if lib.csnn_version_number() < MIN_VERSION_NUMBER:
    warnings.warn("csnn: libcsnn %s at %s is older than this package expects (%d.%d.%d)"
                  % (_decode(lib.csnn_version_string()), library_path,
                     MIN_VERSION_NUMBER // 10000, MIN_VERSION_NUMBER // 100 % 100,
                     MIN_VERSION_NUMBER % 100), RuntimeWarning, stacklevel=2)
