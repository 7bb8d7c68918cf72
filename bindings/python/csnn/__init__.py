"""csnn: train and run convolutional spiking neural networks with libcsnn.

A pure-ctypes binding of the libcsnn C library (no compiled extension). The
standard library is enough; numpy is used when it is installed (arrays in,
arrays out), and plain Python sequences and ``bytes`` work without it.

Quick tour::

    import csnn
    images, labels, classes = csnn.synth_generate(per_class=50, height=48, width=48)
    data = csnn.Dataset.from_arrays(images, labels, classes)
    train, val = data.split(0.2, seed=1)
    with csnn.Model.from_preset("fer-csnn", device="cpu") as model:
        with csnn.Trainer(model, epochs=5, batch_size=16, lr=1e-3) as trainer:
            history = trainer.fit(train, val, callback=lambda p: None)
        print(model.evaluate(val)["accuracy"])
        model.save("fer.csnn")
        rates = model.predict(images[:4])          # [4, 7] firing rates

Objects that own a libcsnn handle (Context, Model, Dataset, Trainer) free it
deterministically with ``close()`` or a ``with`` block; garbage collection
is only a fallback. A child keeps its parents alive (a trainer its model, a
model or dataset its context), and closing a parent closes its children
first, in the order the C API requires. Every failure of a libcsnn call
raises :class:`Error` with the status name and the library's message.

The library is located through ``$LIBCSNN_LIBRARY``, a copy next to this
package, ``ctypes.util.find_library("csnn")``, then the SONAME; see
docs/GUIDE_PYTHON.md.
"""

import array
import collections.abc
import ctypes
import logging
import math
import os
import re
import signal
import threading
import weakref
from ctypes import POINTER, byref, c_char_p, c_double, c_float, c_int32, c_int64, c_size_t, c_uint8

from . import _lib
from ._lib import (Error, LogLevel, Loss, LRSchedule, OpKind, Optimizer, Phase, Status,
                   StopReason, TensorKind, TrainParam, lib, new_struct)
from ._version import ABI_VERSION, __version__

if os.environ.get("CSNN_PYTHON_NO_NUMPY"):
    _np = None  # testing knob: behave as if numpy were absent
else:
    try:
        import numpy as _np
    except ImportError:  # numpy is optional
        _np = None

__all__ = [
    "__version__", "ABI_VERSION", "SYNTH_CLASSES", "Error", "Status", "LogLevel", "TensorKind",
    "TrainParam", "Optimizer", "Loss", "LRSchedule", "Phase", "OpKind", "Context", "Model",
    "Dataset", "StopReason", "Trainer", "TrainerParams", "abi_version", "library_version", "library_version_number",
    "library_path", "status_name", "presets", "preset_spec", "device_available", "synth_generate",
    "synth_write", "load_image", "has_numpy",
]

#: Class names of the built-in synthetic dataset, in label order (labels
#: 0..6 of synth_generate). They are also the class folders synth_write
#: creates.
def _synth_classes():
    names = []
    while True:
        name = lib.csnn_synth_class_name(len(names))
        if name is None:
            return tuple(names)
        names.append(name.decode())


SYNTH_CLASSES = _synth_classes()

#: Full path (or name) of the libcsnn that was loaded.
library_path = _lib.library_path

#: True when numpy is used for arrays.
has_numpy = _np is not None

_FLOAT_P = POINTER(c_float)
_INT32_P = POINTER(c_int32)
_UINT8_P = POINTER(c_uint8)
_INT64_P = POINTER(c_int64)
# pixel value -> float32 v / 255, as libcsnn converts dataset pixels
_U8_TO_F = array.array("f", [v / 255.0 for v in range(256)])

# --------------------------------------------------------------------------
# Module functions
# --------------------------------------------------------------------------


def abi_version():
    """The ABI version (SONAME number) of the loaded libcsnn. The package
    refuses to load a library whose ABI differs from ``csnn.ABI_VERSION``."""
    return lib.csnn_abi_version()


def library_version():
    """The version string of the loaded libcsnn, e.g. ``"0.1.0"``."""
    return _lib._decode(lib.csnn_version_string())


def library_version_number():
    """The version of the loaded libcsnn as major*10000 + minor*100 + patch."""
    return lib.csnn_version_number()


def status_name(status):
    """The C name of a status code, e.g. ``status_name(-11) == "CSNN_ERR_SHAPE"``."""
    return _lib._decode(lib.csnn_status_name(int(status)))


def presets():
    """Names of the built-in model presets, e.g. ``["fer-csnn", "fer-cnn"]``."""
    names = []
    while True:
        n = lib.csnn_preset_name(len(names))
        if n is None:
            return names
        names.append(_lib._decode(n))


def preset_spec(name):
    """The spec text of a preset (docs/MODEL_SPEC.md). Raises Error
    (CSNN_ERR_NOT_FOUND) for an unknown name."""
    out = c_char_p()
    lib.csnn_preset_spec(_enc(name), byref(out))
    return _lib._decode(out.value)


def device_available(device):
    """Whether a device ("cpu", "cuda", "cuda:N", "auto") can be used here.
    Never raises for an unusable device; see ``Context(device)`` for the
    reason."""
    st = lib.csnn_device_available(_enc(device))
    lib.csnn_clear_last_error()
    return st == 0


def synth_generate(per_class=200, seed=0, height=48, width=48):
    """Generates the built-in synthetic face dataset in memory.

    Returns ``(images, labels, classes)``: images uint8 ``[n, height, width]``
    (a numpy array, or ``bytes`` of n*height*width pixels without numpy),
    labels int32 ``[n]`` (numpy array or list) with n = 7 * per_class, and
    the class names (``SYNTH_CLASSES``). Deterministic for a seed.
    """
    o = new_struct(_lib.SynthOptions)
    o.per_class, o.seed, o.height, o.width = per_class, seed, height, width
    n = 7 * int(per_class)
    npix = n * int(height) * int(width)
    if npix < 0 or n < 0:
        raise Error(Status.ERR_INVALID_ARGUMENT, "per_class, height and width must be positive")
    if _np is not None:
        pixels = _np.empty((n, height, width), dtype=_np.uint8)
        labels = _np.empty(n, dtype=_np.int32)
        lib.csnn_synth_generate(byref(o), pixels.ctypes.data_as(_UINT8_P), npix,
                                labels.ctypes.data_as(_INT32_P), n)
        return pixels, labels, list(SYNTH_CLASSES)
    pixels = (c_uint8 * max(npix, 1))()
    labels = (c_int32 * max(n, 1))()
    lib.csnn_synth_generate(byref(o), pixels, npix, labels, n)
    return bytes(pixels)[:npix], list(labels)[:n], list(SYNTH_CLASSES)


def synth_write(directory, per_class=200, seed=0, height=48, width=48, jpeg_percent=30):
    """Writes the synthetic dataset as an image folder
    ``directory/<class>/<NNNNN>.png|.jpg`` (created as needed; files of the
    same names are replaced), loadable with ``Dataset.from_folder``."""
    o = new_struct(_lib.SynthOptions)
    o.per_class, o.seed, o.height, o.width = per_class, seed, height, width
    o.jpeg_percent = jpeg_percent
    lib.csnn_synth_write(_fs(directory), byref(o))


def load_image(path, height=48, width=48):
    """Decodes a PNG or JPEG file to 8-bit grayscale at height x width, as the
    dataset loaders do. Returns uint8 ``[height, width]`` (numpy) or
    ``bytes``."""
    o = new_struct(_lib.DatasetOptions)
    o.height, o.width = height, width
    n = int(height) * int(width)
    if _np is not None:
        dst = _np.empty((height, width), dtype=_np.uint8)
        lib.csnn_image_load(_fs(path), byref(o), dst.ctypes.data_as(_UINT8_P), n)
        return dst
    dst = (c_uint8 * max(n, 1))()
    lib.csnn_image_load(_fs(path), byref(o), dst, n)
    return bytes(dst)[:n]


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _enc(s):
    if isinstance(s, bytes):
        return s
    if not isinstance(s, str):
        raise TypeError("expected a string, got %s" % type(s).__name__)
    return s.encode("utf-8")


def _fs(path):
    return os.fsencode(os.fspath(path))


def _invalid(msg):
    return Error(Status.ERR_INVALID_ARGUMENT, msg)


def _shape_error(msg):
    return Error(Status.ERR_SHAPE, msg)


def _flatten(obj):
    """Nested lists/tuples -> (flat list, shape). Rejects ragged input."""
    if isinstance(obj, (list, tuple)):
        if not obj:
            return [], (0,)
        flats, shapes = zip(*(_flatten(o) for o in obj))
        if any(s != shapes[0] for s in shapes):
            raise _shape_error("ragged nested sequence: sub-sequences of different shapes")
        flat = []
        for f in flats:
            flat.extend(f)
        return flat, (len(obj),) + shapes[0]
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        return [obj], ()
    if isinstance(obj, bool):
        return [int(obj)], ()
    raise TypeError("expected numbers or nested sequences of numbers, got %s"
                    % type(obj).__name__)


class _Pixels:
    """Image data normalised for the C API: ``kind`` "u8" (0..255) or "f"
    (0..1), ``data`` a numpy array or a flat array/bytes, ``shape``."""

    def __init__(self, x):
        if _np is not None and not isinstance(x, (bytes, bytearray, memoryview, array.array)):
            try:
                a = _np.asarray(x)
            except ValueError as e:  # ragged nested sequences
                raise _shape_error("images: %s" % e)
            if a.dtype == _np.uint8:
                self.kind = "u8"
            elif a.dtype.kind in "iub":
                if a.size and (a.min() < 0 or a.max() > 255):
                    raise _invalid("integer pixels must be in 0..255")
                a = a.astype(_np.uint8)
                self.kind = "u8"
            elif a.dtype.kind == "f":
                self.kind = "f"
            else:
                raise TypeError("images must be numeric (uint8 0..255 or float 0..1), got dtype %s"
                                % a.dtype)
            self.data, self.shape = a, a.shape
            return
        if isinstance(x, (bytes, bytearray, memoryview)):
            b = bytes(memoryview(x).cast("B"))
            self.kind, self.data, self.shape = "u8", b, (len(b),)
            return
        if isinstance(x, array.array):
            if x.typecode == "B":
                self.kind, self.data = "u8", x.tobytes()
            elif x.typecode in "fd":
                self.kind, self.data = "f", array.array("f", x)
            elif x.typecode in "bhilqHILQ":
                if len(x) and (min(x) < 0 or max(x) > 255):
                    raise _invalid("integer pixels must be in 0..255")
                self.kind, self.data = "u8", bytes(x)
            else:
                raise TypeError("unsupported array typecode %r" % x.typecode)
            self.shape = (len(x),)
            return
        flat, shape = _flatten(x)
        if all(isinstance(v, int) for v in flat):
            if flat and (min(flat) < 0 or max(flat) > 255):
                raise _invalid("integer pixels must be in 0..255")
            self.kind, self.data = "u8", bytes(flat)
        else:
            self.kind, self.data = "f", array.array("f", flat)
        self.shape = shape

    def images_shape(self, c, h, w, what="images"):
        """The number of images n, checking that the shape is [n,c,h,w],
        [n,h,w] (c == 1), one [h,w] image, or flat n*c*h*w values."""
        s = tuple(int(d) for d in self.shape)
        per = c * h * w
        if len(s) == 4 and s[1:] == (c, h, w):
            return s[0]
        if len(s) == 3 and c == 1 and s[1:] == (h, w):
            return s[0]
        if len(s) == 2 and c == 1 and s == (h, w):
            return 1
        if len(s) == 1 and per and s[0] % per == 0:
            return s[0] // per
        want = "[N,%d,%d,%d]" % (c, h, w) + (" or [N,%d,%d]" % (h, w) if c == 1 else "")
        raise _shape_error("%s have shape %s; expected %s" % (what, list(s), want))

    def to_float(self, count):
        """(keepalive, base address) of `count` float32 values in [0, 1]."""
        if _np is not None and not isinstance(self.data, (bytes, array.array)):
            a = self.data.reshape(-1)
            if self.kind == "u8":
                a = a.astype(_np.float32) / _np.float32(255.0)
            else:
                a = _np.ascontiguousarray(a, dtype=_np.float32)
            assert a.size == count
            return a, a.ctypes.data
        if self.kind == "u8":
            f = array.array("f", [_U8_TO_F[v] for v in self.data])
        else:
            f = self.data if isinstance(self.data, array.array) and self.data.typecode == "f" \
                else array.array("f", self.data)
        if len(f) == 0:
            f = array.array("f", [0.0])
        addr, _ = f.buffer_info()
        return f, addr

    def to_u8(self, count):
        """(keepalive, base address) of `count` uint8 pixels; floats in
        [0, 1] are scaled by 255 and rounded to nearest (half to even)."""
        if _np is not None and not isinstance(self.data, (bytes, array.array)):
            a = self.data.reshape(-1)
            if self.kind == "f":
                if a.size and not (_np.all(a >= 0) and _np.all(a <= 1)):
                    raise _invalid("float pixels must be in [0, 1] (NaN is not)")
                a = _np.rint(a.astype(_np.float64) * 255.0).astype(_np.uint8)
            a = _np.ascontiguousarray(a, dtype=_np.uint8)
            if a.size == 0:
                a = _np.zeros(1, dtype=_np.uint8)
            return a, a.ctypes.data
        if self.kind == "f":
            vals = []
            for v in self.data:
                if not 0.0 <= v <= 1.0:
                    raise _invalid("float pixels must be in [0, 1] (NaN is not)")
                vals.append(int(round(v * 255.0)))
            b = bytearray(vals)
        else:
            b = bytearray(self.data)
        if not b:
            b = bytearray(1)
        buf = (c_uint8 * len(b)).from_buffer(b)
        return (b, buf), ctypes.addressof(buf)


def _labels_int32(labels, n):
    """(keepalive, pointer) of n int32 labels."""
    if _np is not None and not isinstance(labels, (bytes, bytearray, array.array)):
        a = _np.asarray(labels)
        if a.ndim != 1 or a.shape[0] != n:
            raise _shape_error("labels have shape %s; expected [%d]" % (list(a.shape), n))
        if a.size and a.dtype.kind == "f" and not _np.all(a == _np.floor(a)):
            raise _invalid("labels must be integers")
        if a.size and a.dtype.kind not in "iuf":
            raise TypeError("labels must be integers, got dtype %s" % a.dtype)
        a = _np.ascontiguousarray(a, dtype=_np.int32)
        if a.size == 0:
            a = _np.zeros(1, dtype=_np.int32)
        return a, a.ctypes.data_as(_INT32_P)
    vals = list(labels)
    if len(vals) != n:
        raise _shape_error("%d labels for %d images" % (len(vals), n))
    for v in vals:
        if isinstance(v, float) and v != int(v):
            raise _invalid("labels must be integers")
    buf = (c_int32 * max(n, 1))(*[int(v) for v in vals])
    return buf, buf  # a c_int32 array passes as int32_t *


def _float_ptr(addr, offset_elems=0):
    return ctypes.cast(addr + 4 * offset_elems, _FLOAT_P)


def _nan_to_none(v):
    return None if v == -1 else v


def _epoch_dict(m):
    return {
        "epoch": m.epoch,
        "improved": bool(m.improved),
        "train_loss": m.train_loss,
        "train_accuracy": m.train_accuracy,
        "val_loss": _nan_to_none(m.val_loss),
        "val_accuracy": _nan_to_none(m.val_accuracy),
        "learning_rate": m.learning_rate,
        "seconds": m.seconds,
        "samples": m.samples,
    }


def _metrics_dict(mp):
    loss, acc, samples, k = c_double(), c_double(), c_int64(), c_int32()
    lib.csnn_metrics_overall(mp, byref(loss), byref(acc), byref(samples), byref(k))
    k = k.value
    conf = (c_int64 * max(k * k, 1))()
    lib.csnn_metrics_confusion(mp, conf, k * k)
    classes, per_class = [], {}
    for i in range(k):
        cm = new_struct(_lib.ClassMetrics)
        lib.csnn_metrics_class(mp, i, byref(cm))
        name = _lib._decode(cm.name)
        classes.append(name)
        per_class[name] = {"precision": cm.precision, "recall": cm.recall, "f1": cm.f1,
                           "support": cm.support}
    nr = c_int32()
    lib.csnn_metrics_num_rates(mp, byref(nr))
    rates = {}
    for i in range(nr.value):
        layer, rate = c_char_p(), c_double()
        lib.csnn_metrics_rate(mp, i, byref(layer), byref(rate))
        rates[_lib._decode(layer.value)] = rate.value
    if _np is not None:
        confusion = _np.ctypeslib.as_array(conf)[:k * k].reshape(k, k).copy()
    else:
        confusion = [list(conf[r * k:(r + 1) * k]) for r in range(k)]
    return {
        "loss": loss.value,
        "accuracy": acc.value,
        "samples": samples.value,
        "classes": classes,
        "confusion": confusion,
        "per_class": per_class,
        "firing_rates": rates,
    }


def _evaluate(fn, handle, dataset):
    mp = _lib.MetricsP()
    fn(handle, dataset._h, byref(mp))
    try:
        return _metrics_dict(mp)
    finally:
        lib.csnn_metrics_destroy(mp)


# --------------------------------------------------------------------------
# Handle ownership
# --------------------------------------------------------------------------


class _Owner:
    """Base of the classes that own a libcsnn handle.

    Parents are the objects the C API requires to outlive this one. A child
    holds Python references to its parents and counts itself in their
    ``_live``; a parent whose handle is released (``close()`` or garbage
    collection) while children are still open defers its destroy call until
    the last child is closed, so the C destroy order holds even when the
    garbage collector finalizes a cycle in arbitrary order.
    """

    _handle = None
    _pending = False
    _kind = "object"

    def _adopt(self, handle, parents=()):
        self._parents = tuple(parents)
        self._children = weakref.WeakSet()
        self._live = 0
        self._pending = False
        self._handle = handle
        for p in self._parents:
            p._children.add(self)
            p._live += 1

    @property
    def _h(self):
        if self._handle is None or self._pending:
            raise Error(Status.ERR_STATE, "this %s is closed" % self._kind)
        return self._handle

    @property
    def closed(self):
        """True once ``close()`` was called (the handle is gone or going)."""
        return self._handle is None or self._pending

    def close(self):
        """Releases the libcsnn handle now, after closing every open child
        (trainers of a model; models and datasets of a context). Idempotent;
        the object is unusable afterwards (calls raise Error CSNN_ERR_STATE)."""
        if self._handle is None or self._pending:
            return
        self._pending = True
        for child in list(self._children):
            child.close()
        self._maybe_destroy()

    def _maybe_destroy(self):
        if self._handle is None or self._live > 0:
            return
        h, self._handle = self._handle, None
        self._destroy(h)
        parents, self._parents = self._parents, ()
        for p in parents:
            p._live -= 1
            p._child_closed()

    def _child_closed(self):
        if self._pending:
            self._maybe_destroy()

    def _destroy(self, handle):
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        # Fallback only: prefer close() or a with block.
        try:
            self.close()
        except Exception:
            pass


# --------------------------------------------------------------------------
# Context
# --------------------------------------------------------------------------

_LOGGING_LEVELS = {LogLevel.DEBUG: logging.DEBUG, LogLevel.INFO: logging.INFO,
                   LogLevel.WARN: logging.WARNING, LogLevel.ERROR: logging.ERROR}


def _log_level(level):
    if isinstance(level, str):
        try:
            return LogLevel[level.upper().replace("WARNING", "WARN")]
        except KeyError:
            raise _invalid("unknown log level %r (debug, info, warn, error, none)" % level)
    return int(level)  # libcsnn validates the number


def _make_log_callback(log):
    if log is True:
        logger = logging.getLogger("csnn")

        def fn(level, message):
            logger.log(_LOGGING_LEVELS.get(level, logging.ERROR), "%s", message)
    elif callable(log):
        fn = log
    else:
        raise TypeError("log must be None, True (the 'csnn' logging logger) or a callable")

    def trampoline(user_data, level, message):
        # Exceptions cannot cross into C: ctypes reports and ignores them.
        try:
            lvl = LogLevel(level)
        except ValueError:
            lvl = level
        fn(lvl, _lib._decode(message))

    return _lib.LOG_FN(trampoline)


class Context(_Owner):
    """A device (CPU or a CUDA GPU), a host thread budget and a log callback:
    the root object of libcsnn.

    Args:
        device: "cpu" (default), "cuda", "cuda:N", or "auto" (cuda:0 when
            usable, else cpu).
        threads: host threads; 0 = $CSNN_NUM_THREADS or all cores.
        log: None (silent), True (forward to the ``logging`` logger "csnn"),
            or a callable ``fn(level: LogLevel, message: str)`` called on the
            thread making the libcsnn call.
        log_level: threshold (LogLevel or "debug"/"info"/"warn"/"error"/"none").

    Models and datasets accept ``context=``; without it they create a
    private context from ``device=`` that closes with the last object made
    on it. A context is used by one thread at a time (as its models).
    Closing a context closes its models, datasets and trainers first.
    """

    _kind = "Context"

    def __init__(self, device="cpu", threads=0, log=None, log_level=LogLevel.WARN):
        self._implicit = False
        opts = new_struct(_lib.ContextOptions)
        opts.device = _enc(device)
        opts.n_threads = threads
        opts.log_level = int(_log_level(log_level))
        self._log_cb = None
        if log is not None and log is not False:
            self._log_cb = _make_log_callback(log)
            opts.log_fn = self._log_cb
        h = _lib.ContextP()
        lib.csnn_context_create(byref(opts), byref(h))
        self._adopt(h)

    def _destroy(self, handle):
        lib.csnn_context_destroy(handle)
        self._log_cb = None

    def _child_closed(self):
        # An implicit context lives as long as the objects made on it.
        if self._pending or (self._implicit and self._live == 0):
            self._pending = True
            self._maybe_destroy()

    @property
    def device(self):
        """The canonical device name, e.g. "cpu" or "cuda:0"."""
        return _lib._decode(lib.csnn_context_device(self._h))

    @property
    def description(self):
        """A one-line description of the device (CPU model, GPU name)."""
        return _lib._decode(lib.csnn_context_device_description(self._h))

    @property
    def threads(self):
        """Host threads in use (>= 1). Assign an int (0 = default) to change."""
        return lib.csnn_context_threads(self._h)

    @threads.setter
    def threads(self, n):
        lib.csnn_context_set_threads(self._h, int(n))

    def set_log(self, log, level=LogLevel.WARN):
        """Replaces the log callback (see the class docstring) and threshold."""
        cb = None
        if log is not None and log is not False:
            cb = _make_log_callback(log)
        fn = cb if cb is not None else ctypes.cast(None, _lib.LOG_FN)
        lib.csnn_context_set_log(self._h, int(_log_level(level)), fn, None)
        self._log_cb = cb  # kept alive while C may call it

    def __repr__(self):
        if self.closed:
            return "<csnn.Context (closed)>"
        return "<csnn.Context %s: %s, %d threads>" % (self.device, self.description, self.threads)


def _context_for(context, device):
    """The explicit context, or a new implicit one on `device`."""
    if context is not None:
        if not isinstance(context, Context):
            raise TypeError("context must be a csnn.Context")
        if device is not None:
            raise _invalid("give context= or device=, not both")
        context._h  # raises if closed
        return context
    ctx = Context(device if device is not None else "cpu")
    ctx._implicit = True
    return ctx


def _discard_implicit(ctx):
    if ctx._implicit and ctx._live == 0:
        ctx.close()


# --------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------


def _dataset_options(height, width, skip_bad, threads, max_image_pixels, max_samples, usage=None):
    o = new_struct(_lib.DatasetOptions)
    o.height, o.width = height, width
    o.skip_bad = 1 if skip_bad else 0
    o.n_threads = threads
    if max_image_pixels is not None:
        o.max_image_pixels = max_image_pixels
    if max_samples is not None:
        o.max_samples = max_samples
    if usage is not None:
        o.usage = _enc(usage)
    return o


class Dataset(_Owner):
    """Labelled 8-bit grayscale images held in host memory (by libcsnn).

    Make one with ``Dataset.from_folder``, ``Dataset.from_fer2013_csv``,
    ``Dataset.load`` or ``Dataset.from_arrays``; split it with ``split``.
    ``len(ds)`` is the number of samples and ``ds[i]`` a ``(pixels, label)``
    pair. Every constructor takes ``context=`` (a Context) or creates a
    private CPU context.
    """

    _kind = "Dataset"

    def __init__(self, *args, **kwargs):
        raise TypeError("use Dataset.from_folder, from_fer2013_csv, load or from_arrays")

    @classmethod
    def _wrap(cls, handle, ctx):
        self = cls.__new__(cls)
        self._ctx = ctx
        self._adopt(handle, [ctx])
        return self

    @classmethod
    def _make(cls, context, fn):
        ctx = _context_for(context, None)
        h = _lib.DatasetP()
        try:
            fn(ctx._h, h)
        except BaseException:
            _discard_implicit(ctx)
            raise
        return cls._wrap(h, ctx)

    @classmethod
    def from_folder(cls, path, height=48, width=48, skip_bad=False, threads=0,
                    max_image_pixels=None, max_samples=None, context=None):
        """Loads an image folder ``path/<class>/<images>`` (PNG, JPEG): classes
        are the sub-folders sorted by name; images become 8-bit grayscale
        resized to height x width. With ``skip_bad`` unreadable files are
        skipped and counted (``skipped``) instead of raising Error
        (CSNN_ERR_FORMAT). ``threads`` decoder threads (0: the context's)."""
        o = _dataset_options(height, width, skip_bad, threads, max_image_pixels, max_samples)
        return cls._make(context, lambda c, h: lib.csnn_dataset_load_folder(
            c, _fs(path), byref(o), byref(h)))

    @classmethod
    def from_fer2013_csv(cls, path, usage=None, height=48, width=48, skip_bad=False, threads=0,
                         max_image_pixels=None, max_samples=None, context=None):
        """Loads FER2013's CSV (emotion,pixels,Usage). ``usage`` keeps only the
        rows of "Training", "PublicTest" or "PrivateTest" (None: all). Classes
        are angry, disgust, fear, happy, neutral, sad, surprise."""
        o = _dataset_options(height, width, skip_bad, threads, max_image_pixels, max_samples,
                             usage)
        return cls._make(context, lambda c, h: lib.csnn_dataset_load_fer2013_csv(
            c, _fs(path), byref(o), byref(h)))

    @classmethod
    def load(cls, path, usage=None, height=48, width=48, skip_bad=False, threads=0,
             max_image_pixels=None, max_samples=None, context=None):
        """A directory as ``from_folder``, a file as ``from_fer2013_csv``."""
        o = _dataset_options(height, width, skip_bad, threads, max_image_pixels, max_samples,
                             usage)
        return cls._make(context, lambda c, h: lib.csnn_dataset_load(
            c, _fs(path), byref(o), byref(h)))

    @classmethod
    def from_arrays(cls, images, labels, classes=None, num_classes=None, height=None, width=None,
                    context=None):
        """A dataset from host arrays (copied).

        Args:
            images: uint8 pixels 0..255 or floats in [0, 1], shaped
                ``[N, H, W]`` or ``[N, 1, H, W]`` (numpy array or nested
                lists), or flat (``bytes``, ``array.array``) with ``height``
                and ``width`` given (or a square size inferred). Floats are
                converted to uint8 as ``round(x * 255)`` (to nearest, ties
                to even); values outside [0, 1] raise Error.
            labels: N integers in [0, number of classes).
            classes: class names in label order, or None for "0", "1", ...
            num_classes: the number of classes when ``classes`` is None
                (default: max(labels) + 1).
        """
        px = _Pixels(images)
        s = tuple(int(d) for d in px.shape)
        if len(s) == 4:
            if s[1] != 1:
                raise _shape_error("images have %d channels; datasets are grayscale" % s[1])
            s = (s[0], s[2], s[3])
        if len(s) == 3:
            n, h, w = s
        elif len(s) == 1 or len(s) == 2:
            total = s[0] * (s[1] if len(s) == 2 else 1)
            if _np is not None and not isinstance(labels, (bytes, bytearray, array.array)):
                n = int(_np.asarray(labels).shape[0]) if _np.asarray(labels).ndim else 0
            else:
                n = len(labels)
            if height is None and width is None and n:
                side = int(math.isqrt(total // n))
                if side * side * n != total:
                    raise _shape_error("give height and width for flat images")
                h = w = side
            else:
                if height is None or width is None:
                    raise _shape_error("give both height and width for flat images")
                h, w = int(height), int(width)
            if n * h * w != total:
                raise _shape_error("%d pixels are not %d images of %dx%d" % (total, n, h, w))
        else:
            raise _shape_error("images have shape %s; expected [N,H,W] or [N,1,H,W]" % list(s))
        if (height is not None and int(height) != h) or (width is not None and int(width) != w):
            raise _shape_error("images are %dx%d, not %sx%s" % (h, w, height, width))
        keep_px, addr = px.to_u8(n * h * w)
        keep_lb, lptr = _labels_int32(labels, n)
        if classes is not None:
            names = [_enc(c) for c in classes]
            k = len(names)
            name_arr = (c_char_p * max(k, 1))(*names)
            if num_classes is not None and int(num_classes) != k:
                raise _invalid("num_classes %d differs from %d class names" % (num_classes, k))
        else:
            name_arr = None
            if num_classes is not None:
                k = int(num_classes)
            else:
                k = (max(int(v) for v in lptr[:n]) + 1) if n else 0
        return cls._make(context, lambda c, hp: lib.csnn_dataset_create_from_arrays(
            c, ctypes.cast(addr, _UINT8_P), lptr, n, h, w, name_arr, k, byref(hp)))

    def _destroy(self, handle):
        lib.csnn_dataset_destroy(handle)

    @property
    def context(self):
        """The Context the dataset was made on."""
        return self._ctx

    def _info(self):
        i = new_struct(_lib.DatasetInfo)
        lib.csnn_dataset_get_info(self._h, byref(i))
        return i

    @property
    def info(self):
        """A dict: num_samples, num_classes, channels, height, width, skipped."""
        i = self._info()
        return {"num_samples": i.num_samples, "num_classes": i.num_classes,
                "channels": i.channels, "height": i.height, "width": i.width,
                "skipped": i.skipped}

    def __len__(self):
        return self._info().num_samples

    @property
    def num_samples(self):
        """The number of samples."""
        return self._info().num_samples

    @property
    def num_classes(self):
        """The number of classes."""
        return self._info().num_classes

    @property
    def shape(self):
        """The image size (height, width)."""
        i = self._info()
        return (i.height, i.width)

    @property
    def skipped(self):
        """Files or rows skipped by a loader with skip_bad=True."""
        return self._info().skipped

    @property
    def classes(self):
        """Class names in label order."""
        out = []
        for i in range(self.num_classes):
            name = c_char_p()
            lib.csnn_dataset_class_name(self._h, i, byref(name))
            out.append(_lib._decode(name.value))
        return out

    def class_counts(self):
        """A dict: class name -> number of samples, in label order."""
        counts = {}
        for i, name in enumerate(self.classes):
            c = c_int64()
            lib.csnn_dataset_class_count(self._h, i, byref(c))
            counts[name] = c.value
        return counts

    def _index(self, index):
        n = len(self)
        index = int(index)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("sample %d of a dataset of %d" % (index, n))
        return index

    def __getitem__(self, index):
        """``(pixels, label)``: pixels uint8 [H, W] (numpy) or bytes."""
        index = self._index(index)
        h, w = self.shape
        label = c_int32()
        if _np is not None:
            px = _np.empty((h, w), dtype=_np.uint8)
            lib.csnn_dataset_get_sample(self._h, index, px.ctypes.data_as(_UINT8_P), h * w,
                                        byref(label))
            return px, label.value
        buf = (c_uint8 * max(h * w, 1))()
        lib.csnn_dataset_get_sample(self._h, index, buf, h * w, byref(label))
        return bytes(buf)[:h * w], label.value

    def source(self, index):
        """Where sample `index` came from: a file path, "<csv>:<line>" or
        "array:<index>"."""
        index = self._index(index)
        s = c_char_p()
        lib.csnn_dataset_sample_source(self._h, index, byref(s))
        return _lib._decode(s.value)

    def to_arrays(self):
        """All samples: ``(images, labels)``, uint8 [N, H, W] and int32 [N]
        numpy arrays, or bytes and a list without numpy."""
        n = len(self)
        h, w = self.shape
        per = h * w
        if _np is not None:
            px = _np.empty((n, h, w), dtype=_np.uint8)
            lb = _np.empty(n, dtype=_np.int32)
            base = px.ctypes.data
            for i in range(n):
                lab = c_int32()
                lib.csnn_dataset_get_sample(self._h, i, ctypes.cast(base + i * per, _UINT8_P), per,
                                            byref(lab))
                lb[i] = lab.value
            return px, lb
        buf = (c_uint8 * max(n * per, 1))()
        base = ctypes.addressof(buf)
        labels = []
        for i in range(n):
            lab = c_int32()
            lib.csnn_dataset_get_sample(self._h, i, ctypes.cast(base + i * per, _UINT8_P), per,
                                        byref(lab))
            labels.append(lab.value)
        return bytes(buf)[:n * per], labels

    def split(self, fraction, seed=0):
        """Stratified split: returns ``(rest, part)`` where ``part`` holds
        round(fraction * count) samples of every class (chosen with `seed`)
        and ``rest`` the others; both keep the class list and sample order.
        Typical use: ``train, val = data.split(0.1, seed=1)``. fraction in
        [0, 1)."""
        rest, part = _lib.DatasetP(), _lib.DatasetP()
        lib.csnn_dataset_split(self._h, float(fraction), int(seed), byref(rest), byref(part))
        ctx = self._ctx
        return Dataset._wrap(rest, ctx), Dataset._wrap(part, ctx)

    def __repr__(self):
        if self.closed:
            return "<csnn.Dataset (closed)>"
        i = self._info()
        return "<csnn.Dataset %d samples, %d classes, %dx%d>" % (
            i.num_samples, i.num_classes, i.height, i.width)


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------

_STEPS_RE = re.compile(r"^([ \t]*)steps[ \t]+\S+[ \t]*(#.*)?$", re.MULTILINE)
_INPUT_RE = re.compile(r"^[ \t]*input[ \t].*$", re.MULTILINE)


def _spec_with_steps(spec, steps):
    """`spec` with its `steps N` statement replaced (or added after `input`)."""
    steps = int(steps)
    if steps < 1:
        raise _invalid("time_steps must be >= 1")
    new, count = _STEPS_RE.subn(lambda m: "%ssteps %d" % (m.group(1), steps), spec)
    if count:
        return new
    m = _INPUT_RE.search(spec)
    if not m:
        raise Error(Status.ERR_SPEC, "the spec has no input statement")
    return spec[:m.end()] + "\nsteps %d" % steps + spec[m.end():]


class Model(_Owner):
    """A network: its spec, parameters, class names and device buffers.

    Make one with ``Model.from_preset``, ``Model.from_spec`` or ``Model.load``;
    each takes ``device=`` (a private context is created and closes with the
    model) or ``context=`` (an explicit Context). Train it with a Trainer.
    A model is used by one thread at a time.
    """

    _kind = "Model"

    def __init__(self, *args, **kwargs):
        raise TypeError("use Model.from_preset, Model.from_spec or Model.load")

    @classmethod
    def _make(cls, context, device, fn):
        ctx = _context_for(context, device)
        h = _lib.ModelP()
        try:
            fn(ctx._h, h)
        except BaseException:
            _discard_implicit(ctx)
            raise
        self = cls.__new__(cls)
        self._ctx = ctx
        self._adopt(h, [ctx])
        return self

    @classmethod
    def from_preset(cls, name, device=None, seed=0, time_steps=None, context=None):
        """Builds a preset ("fer-csnn", "fer-cnn"; see ``csnn.presets()``)
        with parameters initialised from `seed`. ``time_steps`` replaces the
        preset's ``steps`` statement (T is part of the spec, so this is the
        way to train a preset with another T)."""
        if time_steps is not None:
            return cls.from_spec(_spec_with_steps(preset_spec(name), time_steps), device=device,
                                 seed=seed, context=context)
        return cls._make(context, device, lambda c, h: lib.csnn_model_create_preset(
            c, _enc(name), int(seed), byref(h)))

    @classmethod
    def from_spec(cls, text, device=None, seed=0, context=None):
        """Builds a model from spec text (docs/MODEL_SPEC.md). A malformed
        spec raises Error CSNN_ERR_SPEC with the line and column."""
        return cls._make(context, device, lambda c, h: lib.csnn_model_create_from_spec(
            c, _enc(text), int(seed), byref(h)))

    @classmethod
    def load(cls, path, device=None, context=None):
        """Loads a model saved by ``save`` (or a trainer checkpoint)."""
        return cls._make(context, device, lambda c, h: lib.csnn_model_load(
            c, _fs(path), byref(h)))

    def _destroy(self, handle):
        lib.csnn_model_destroy(handle)

    @property
    def context(self):
        """The Context the model lives on."""
        return self._ctx

    @property
    def device(self):
        """The device name of the model's context, e.g. "cpu"."""
        return self._ctx.device

    def save(self, path):
        """Saves the model (spec, class names, parameters, BN statistics)
        atomically: `path` holds the old or the new file, never a partial one."""
        lib.csnn_model_save(self._h, _fs(path))

    def _info(self):
        i = new_struct(_lib.ModelInfo)
        lib.csnn_model_get_info(self._h, byref(i))
        return i

    @property
    def info(self):
        """A dict: input_shape (C, H, W), num_classes, time_steps, num_layers,
        spiking_output, num_params, num_tensors."""
        i = self._info()
        return {"input_shape": (i.in_channels, i.in_height, i.in_width),
                "num_classes": i.num_classes, "time_steps": i.time_steps,
                "num_layers": i.num_layers, "spiking_output": bool(i.spiking_output),
                "num_params": i.num_params, "num_tensors": i.num_tensors}

    @property
    def input_shape(self):
        """The input size (channels, height, width)."""
        i = self._info()
        return (i.in_channels, i.in_height, i.in_width)

    @property
    def num_classes(self):
        """The number of output classes."""
        return self._info().num_classes

    @property
    def time_steps(self):
        """T, the number of simulation time steps (part of the spec)."""
        return self._info().time_steps

    @property
    def spiking_output(self):
        """True when the outputs are firing rates, False for raw values (ANN)."""
        return bool(self._info().spiking_output)

    @property
    def num_params(self):
        """The number of trained parameters (BN running statistics excluded)."""
        return self._info().num_params

    @property
    def spec(self):
        """The model's spec in canonical form."""
        s = c_char_p()
        lib.csnn_model_spec(self._h, byref(s))
        return _lib._decode(s.value)

    def summary(self, batch=1):
        """The layer table (layer, input shape, output shape, parameters,
        totals) for a batch of `batch` images, as text."""
        needed = c_size_t()
        lib.csnn_model_summary(self._h, int(batch), None, 0, byref(needed))
        buf = ctypes.create_string_buffer(needed.value)
        lib.csnn_model_summary(self._h, int(batch), buf, needed.value, None)
        return _lib._decode(buf.value)

    def set_layer_timing(self, enable=True):
        """Switches per-layer timing on (restarting the counters) or off
        (csnn_model_set_layer_timing): while on, each forward and backward
        pass books each layer's wall-clock time. For profiling."""
        lib.csnn_model_set_layer_timing(self._h, 1 if enable else 0)

    def layer_times(self):
        """Per-layer timing since it was switched on: a list of dicts with
        name, kind, forward_s, backward_s, forward_calls, backward_calls (a
        layer run together with the one before it books nothing)."""
        out = []
        for i in range(self._info().num_layers):
            lt = new_struct(_lib.LayerTime)
            lib.csnn_model_layer_time(self._h, i, byref(lt))
            out.append({"name": _lib._decode(lt.name), "kind": _lib._decode(lt.kind),
                        "forward_s": lt.forward_s, "backward_s": lt.backward_s,
                        "forward_calls": lt.forward_calls, "backward_calls": lt.backward_calls})
        return out

    @property
    def classes(self):
        """Class names in output order ("0", "1", ... until set). Assign a
        list of names (one per class) to rename them."""
        out = []
        for i in range(self.num_classes):
            name = c_char_p()
            lib.csnn_model_class_name(self._h, i, byref(name))
            out.append(_lib._decode(name.value))
        return out

    @classes.setter
    def classes(self, names):
        names = [_enc(n) for n in names]
        arr = (c_char_p * max(len(names), 1))(*names)
        lib.csnn_model_set_class_names(self._h, arr, len(names))

    def tensors(self):
        """Descriptions of the model's named tensors: a list of dicts with
        name, kind (TensorKind), shape (tuple) and numel."""
        out = []
        for i in range(self._info().num_tensors):
            t = new_struct(_lib.TensorInfo)
            lib.csnn_model_tensor_info(self._h, i, byref(t))
            out.append({"name": _lib._decode(t.name), "kind": TensorKind(t.kind),
                        "shape": tuple(t.shape[:t.ndim]), "numel": t.numel})
        return out

    def _tensor(self, name):
        for t in self.tensors():
            if t["name"] == name:
                return t
        raise Error(Status.ERR_NOT_FOUND, "the model has no tensor '%s'" % name)

    def get_tensor(self, name):
        """A copy of the named tensor: float32 numpy array of its shape, or a
        flat list of floats without numpy."""
        t = self._tensor(name)
        n = t["numel"]
        if _np is not None:
            a = _np.empty(t["shape"], dtype=_np.float32)
            lib.csnn_model_get_tensor(self._h, _enc(name), a.ctypes.data_as(_FLOAT_P), n)
            return a
        buf = (c_float * max(n, 1))()
        lib.csnn_model_get_tensor(self._h, _enc(name), buf, n)
        return list(buf)[:n]

    def set_tensor(self, name, values):
        """Overwrites the named tensor from `values` (any shape with its
        number of elements; copied). Non-finite values raise Error
        CSNN_ERR_NUMERIC."""
        if _np is not None:
            a = _np.ascontiguousarray(values, dtype=_np.float32).reshape(-1)
            lib.csnn_model_set_tensor(self._h, _enc(name), a.ctypes.data_as(_FLOAT_P), a.size)
            return
        flat, _ = _flatten(list(values) if not isinstance(values, (list, tuple)) else values)
        buf = (c_float * max(len(flat), 1))(*flat)
        lib.csnn_model_set_tensor(self._h, _enc(name), buf, len(flat))

    def _run(self, x, batch_size):
        """(scores keepalive/address, labels, n, k) of a forward pass."""
        c, h, w = self.input_shape
        k = self.num_classes
        px = x if isinstance(x, _Pixels) else _Pixels(x)
        n = px.images_shape(c, h, w)
        per = c * h * w
        batch_size = int(batch_size)
        if batch_size < 1:
            raise _invalid("batch_size must be >= 1")
        keep, addr = px.to_float(n * per)
        if _np is not None:
            scores = _np.empty((n, k), dtype=_np.float32)
            labels = _np.empty(n, dtype=_np.int32)
            sbase, lbase = scores.ctypes.data, labels.ctypes.data
        else:
            scores = (c_float * max(n * k, 1))()
            labels = (c_int32 * max(n, 1))()
            sbase, lbase = ctypes.addressof(scores), ctypes.addressof(labels)
        for s in range(0, n, batch_size):
            m = min(batch_size, n - s)
            lib.csnn_model_predict(self._h, _float_ptr(addr, s * per), m,
                                   _float_ptr(sbase, s * k), m * k,
                                   ctypes.cast(lbase + 4 * s, _INT32_P))
        del keep
        if _np is None:
            scores = [list(scores[i * k:(i + 1) * k]) for i in range(n)]
            labels = list(labels)[:n]
        return scores, labels

    def predict(self, x, batch_size=64):
        """Runs the model in inference mode on images and returns the outputs
        ``[N, classes]``: firing rates in [0, 1] for spiking models (raw values
        for ANN models), as float32 numpy array or a list of lists.

        `x`: ``[N, H, W]`` or ``[N, 1, H, W]`` (or ``[N, C, H, W]`` for C
        channels), uint8 0..255 or float 0..1; a single ``[H, W]`` image; or
        flat bytes / array.array of N*C*H*W values. Images are run
        `batch_size` at a time.
        """
        return self._run(x, batch_size)[0]

    def classify(self, x, batch_size=64):
        """The predicted class index of each image (the first arg-max of the
        outputs): int32 numpy array or list. `x` as for ``predict``."""
        return self._run(x, batch_size)[1]

    def predict_files(self, paths, batch_size=64):
        """Classifies image files (PNG, JPEG), decoded to grayscale at the
        model's input size as the dataset loaders do.

        Returns ``(labels, rates)``: the predicted class name of each file
        and the outputs ``[N, classes]`` (as ``predict``). An unreadable file
        raises Error (CSNN_ERR_IO / CSNN_ERR_FORMAT) naming it.
        """
        if isinstance(paths, (str, bytes, os.PathLike)):
            paths = [paths]
        paths = list(paths)
        c, h, w = self.input_shape
        if c != 1:
            raise _shape_error("predict_files needs a grayscale model (1 input channel), not %d"
                               % c)
        o = new_struct(_lib.DatasetOptions)
        o.height, o.width = h, w
        n, per = len(paths), h * w
        if _np is not None:
            pixels = _np.empty((n, h, w), dtype=_np.uint8)
            base = pixels.ctypes.data
        else:
            pixels = (c_uint8 * max(n * per, 1))()
            base = ctypes.addressof(pixels)
        for i, p in enumerate(paths):
            lib.csnn_image_load(_fs(p), byref(o), ctypes.cast(base + i * per, _UINT8_P), per)
        x = pixels if _np is not None else bytes(pixels)[:n * per]
        scores, labels = self._run(x, batch_size)
        names = self.classes
        return [names[int(i)] for i in labels], scores

    def evaluate(self, dataset):
        """Evaluates the model in inference mode on a Dataset (classes matched
        by name). Returns a dict: loss, accuracy, samples, classes (model
        order), confusion ([K, K] int64, row = true class, column =
        predicted; numpy array or list of lists), per_class ({name:
        {precision, recall, f1, support}}), firing_rates ({layer: mean
        spikes per neuron per step})."""
        if not isinstance(dataset, Dataset):
            raise TypeError("evaluate needs a csnn.Dataset")
        return _evaluate(lib.csnn_model_evaluate, self._h, dataset)

    def profile(self, dataset, mac_pj=None, ac_pj=None, max_samples=0):
        """The efficiency report of the model on a Dataset (inference mode):
        per layer and per image, the synaptic operations of the spiking
        network against the multiply-accumulates of its ANN twin, and the
        energy estimate E = MACs * mac_pj + ACs * ac_pj (defaults: the
        library's 45 nm float32 figures). ``max_samples`` > 0 profiles only
        the first samples.

        Returns a dict: samples, mac_pj, ac_pj, layers (a list of dicts with
        name, kind, counted_as (OpKind), firing_rate (None where it does not
        apply), macs, acs, ann_macs, energy_pj, ann_energy_pj) and total (the
        same figures for the whole model).
        """
        if not isinstance(dataset, Dataset):
            raise TypeError("profile needs a csnn.Dataset")
        o = new_struct(_lib.ProfileOptions)
        if mac_pj is not None:
            o.mac_pj = mac_pj
        if ac_pj is not None:
            o.ac_pj = ac_pj
        o.max_samples = int(max_samples)
        pp = _lib.ProfileP()
        lib.csnn_model_profile(self._h, dataset._h, byref(o), byref(pp))
        try:
            n = c_int32()
            lib.csnn_profile_num_layers(pp, byref(n))
            samples, mac, ac = c_int64(), c_double(), c_double()
            lib.csnn_profile_info(pp, byref(samples), byref(mac), byref(ac))

            def layer(i):
                lp = new_struct(_lib.LayerProfile)
                lib.csnn_profile_layer(pp, i, byref(lp))
                try:
                    counted = OpKind(lp.counted_as)
                except ValueError:
                    counted = lp.counted_as
                return {"name": _lib._decode(lp.name), "kind": _lib._decode(lp.kind),
                        "counted_as": counted, "firing_rate": _nan_to_none(lp.firing_rate),
                        "macs": lp.macs, "acs": lp.acs, "ann_macs": lp.ann_macs,
                        "energy_pj": lp.energy_pj, "ann_energy_pj": lp.ann_energy_pj}

            return {"samples": samples.value, "mac_pj": mac.value, "ac_pj": ac.value,
                    "layers": [layer(i) for i in range(n.value)], "total": layer(-1)}
        finally:
            lib.csnn_profile_destroy(pp)

    def __repr__(self):
        if self.closed:
            return "<csnn.Model (closed)>"
        i = self._info()
        return "<csnn.Model input %dx%dx%d, T=%d, %d classes, %d params on %s>" % (
            i.in_channels, i.in_height, i.in_width, i.time_steps, i.num_classes, i.num_params,
            self.device)


# --------------------------------------------------------------------------
# Trainer
# --------------------------------------------------------------------------

#: parameter name -> (TrainParam, kind) with kind "float", "int", "bool" or an enum class
_PARAMS = {
    "optimizer": (TrainParam.OPTIMIZER, Optimizer),
    "lr": (TrainParam.LEARNING_RATE, "float"),
    "beta1": (TrainParam.BETA1, "float"),
    "beta2": (TrainParam.BETA2, "float"),
    "eps": (TrainParam.EPS, "float"),
    "weight_decay": (TrainParam.WEIGHT_DECAY, "float"),
    "momentum": (TrainParam.MOMENTUM, "float"),
    "dampening": (TrainParam.DAMPENING, "float"),
    "nesterov": (TrainParam.NESTEROV, "bool"),
    "loss": (TrainParam.LOSS, Loss),
    "label_smoothing": (TrainParam.LABEL_SMOOTHING, "float"),
    "seed": (TrainParam.SEED, "int"),
    "batch_size": (TrainParam.BATCH_SIZE, "int"),
    "epochs": (TrainParam.EPOCHS, "int"),
    "patience": (TrainParam.PATIENCE, "int"),
    "max_seconds": (TrainParam.MAX_SECONDS, "float"),
    "lr_schedule": (TrainParam.LR_SCHEDULE, LRSchedule),
    "min_lr": (TrainParam.MIN_LR, "float"),
    "aug_hflip": (TrainParam.AUG_HFLIP, "float"),
    "aug_vflip": (TrainParam.AUG_VFLIP, "float"),
    "aug_rotate": (TrainParam.AUG_ROTATE, "float"),
    "aug_crop_pad": (TrainParam.AUG_CROP_PAD, "int"),
    "aug_brightness": (TrainParam.AUG_BRIGHTNESS, "float"),
    "aug_contrast": (TrainParam.AUG_CONTRAST, "float"),
}
_PARAM_ALIASES = {"learning_rate": "lr"}
_BY_ENUM = {p: name for name, (p, _) in _PARAMS.items()}
_AUGMENT = ("aug_hflip", "aug_vflip", "aug_rotate", "aug_crop_pad", "aug_brightness",
            "aug_contrast")


def _param_key(key):
    if isinstance(key, TrainParam):
        return _BY_ENUM[key]
    if isinstance(key, str):
        key = _PARAM_ALIASES.get(key, key)
        if key in _PARAMS:
            return key
    raise KeyError("unknown trainer parameter %r (known: %s)" % (key, ", ".join(_PARAMS)))


def _param_value(name, value):
    kind = _PARAMS[name][1]
    if isinstance(kind, type):  # an IntEnum
        if isinstance(value, str):
            try:
                return float(kind[value.upper()])
            except KeyError:
                raise _invalid("unknown %s %r (known: %s)" % (
                    name, value, ", ".join(m.name.lower() for m in kind)))
        return float(int(value))
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    return float(value)


class TrainerParams(collections.abc.MutableMapping):
    """The trainer's scalar settings as a mapping: ``trainer.params["lr"]``,
    ``trainer.params["optimizer"] = "adamw"``. Keys are the names of
    ``csnn_train_param`` in lower case without the ``CSNN_TRAIN_`` prefix
    (``lr`` for LEARNING_RATE; ``learning_rate`` is an alias) or TrainParam
    members. Values are floats, ints, bools or enum members (Optimizer,
    Loss, LRSchedule; strings such as "sgd" are accepted when setting).
    Out-of-range values raise Error CSNN_ERR_INVALID_ARGUMENT; settings
    cannot be deleted."""

    def __init__(self, trainer):
        self._trainer = trainer

    def __getitem__(self, key):
        name = _param_key(key)
        v = c_double()
        lib.csnn_trainer_get_param(self._trainer._h, int(_PARAMS[name][0]), byref(v))
        kind = _PARAMS[name][1]
        if isinstance(kind, type):
            return kind(int(v.value))
        if kind == "int":
            return int(v.value)
        if kind == "bool":
            return bool(v.value)
        return v.value

    def __setitem__(self, key, value):
        name = _param_key(key)
        lib.csnn_trainer_set_param(self._trainer._h, int(_PARAMS[name][0]),
                                   _param_value(name, value))

    def __delitem__(self, key):
        raise TypeError("trainer settings cannot be deleted")

    def __iter__(self):
        return iter(_PARAMS)

    def __len__(self):
        return len(_PARAMS)

    @staticmethod
    def bounds(key):
        """The valid range ``(lo, hi)`` of a setting."""
        name = _param_key(key)
        lo, hi = c_double(), c_double()
        lib.csnn_train_param_bounds(int(_PARAMS[name][0]), byref(lo), byref(hi))
        return lo.value, hi.value

    def __repr__(self):
        return "TrainerParams(%r)" % dict(self)


def _catch_sigint(state):
    """While fit runs in the main thread with Python's default SIGINT handler,
    make SIGINT set state["interrupt"] instead of raising. Returns the
    function that restores the previous handler."""
    try:
        if (threading.current_thread() is not threading.main_thread()
                or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
            return lambda: None

        def handler(signum, frame):
            state["interrupt"] = True

        signal.signal(signal.SIGINT, handler)
    except (ValueError, OSError, AttributeError):  # no signals here
        return lambda: None

    def restore():
        signal.signal(signal.SIGINT, signal.default_int_handler)

    return restore


def _progress_dict(p):
    d = {
        "phase": "batch" if p.phase == Phase.BATCH else "epoch_end",
        "epoch": p.epoch,
        "epochs": p.epochs,
        "batch": p.batch,
        "batches": p.batches,
        "loss": p.loss,
        "accuracy": p.accuracy,
        "samples_per_s": p.samples_per_s,
        "elapsed_s": p.elapsed_s,
        "eta_s": p.eta_s,
        "metrics": None,
    }
    if p.metrics:
        d["metrics"] = _epoch_dict(p.metrics.contents)
    return d


class Trainer(_Owner):
    """Optimiser state and training settings bound to one Model.

    Keyword arguments set trainer parameters (see ``TrainerParams``); the
    defaults are the seed's recipe (Adam, lr 1e-3, MSE on firing rates with
    label smoothing 0.1, batch 16, 100 epochs, patience 10, augmentation
    hflip 0.5, rotate 10, crop_pad 4). ``augment=False`` turns every
    augmentation off; ``aug_*=`` sets them one by one. ``time_steps`` is
    only checked: T is part of the model spec (build the model with
    ``Model.from_preset(name, time_steps=T)`` or a spec with ``steps T``),
    and a differing value raises Error CSNN_ERR_INVALID_ARGUMENT.

    The trainer keeps its model alive; closing the model closes the trainer.
    """

    _kind = "Trainer"

    def __init__(self, model, epochs=None, batch_size=None, lr=None, time_steps=None,
                 patience=None, seed=None, optimizer=None, loss=None, weight_decay=None,
                 label_smoothing=None, lr_schedule=None, min_lr=None, max_seconds=None,
                 augment=None, **params):
        if not isinstance(model, Model):
            raise TypeError("Trainer needs a csnn.Model")
        if time_steps is not None and int(time_steps) != model.time_steps:
            raise _invalid(
                "time_steps=%d, but the model was built with T=%d: T is part of the model spec; "
                "build it with Model.from_preset(name, time_steps=%d) or a spec with 'steps %d'"
                % (time_steps, model.time_steps, time_steps, time_steps))
        for k in params:
            try:
                _param_key(k)
            except KeyError:
                raise TypeError("Trainer() got an unexpected keyword argument %r" % k)
        h = _lib.TrainerP()
        lib.csnn_trainer_create(model._h, byref(h))
        self._model = model
        self._fit_cb = None
        self.stopped = False
        self._adopt(h, [model])
        try:
            if augment is False:
                for name in _AUGMENT:
                    self.params[name] = 0
            named = dict(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience,
                         seed=seed, optimizer=optimizer, loss=loss, weight_decay=weight_decay,
                         label_smoothing=label_smoothing, lr_schedule=lr_schedule, min_lr=min_lr,
                         max_seconds=max_seconds)
            named.update(params)
            for k, v in named.items():
                if v is not None:
                    self.params[k] = v
        except BaseException:
            self.close()
            raise

    def _destroy(self, handle):
        lib.csnn_trainer_destroy(handle)

    @property
    def params(self):
        """The trainer's settings as a mutable mapping (``TrainerParams``):
        ``trainer.params["lr"] = 3e-4``; ``dict(trainer.params)``."""
        return TrainerParams(self)

    @property
    def model(self):
        """The Model being trained."""
        return self._model

    @property
    def steps(self):
        """The number of optimiser steps taken so far."""
        s = c_int64()
        lib.csnn_trainer_steps(self._h, byref(s))
        return s.value

    def step(self, images, labels):
        """One training step (forward, loss, backward, optimiser step) on a
        batch. `images` as for ``Model.predict``, `labels` N integers.
        Returns a dict: loss (batch mean), correct, n. A non-finite loss
        raises Error CSNN_ERR_NUMERIC and leaves the parameters unchanged."""
        c, h, w = self._model.input_shape
        px = _Pixels(images)
        n = px.images_shape(c, h, w)
        keep_px, addr = px.to_float(n * c * h * w)
        keep_lb, lptr = _labels_int32(labels, n)
        r = new_struct(_lib.StepResult)
        lib.csnn_trainer_step(self._h, _float_ptr(addr), lptr, n, byref(r))
        return {"loss": r.loss, "correct": r.correct, "n": r.n}

    def fit(self, train, val=None, callback=None, output=None, resume=None, progress_every=1):
        """Trains on Dataset `train` for up to ``params["epochs"]`` epochs,
        validating on `val` (optional) after each, as csnn_trainer_fit.

        Args:
            callback: ``fn(progress: dict)`` called every `progress_every`
                batches (phase "batch") and after every epoch (phase
                "epoch_end"); keys: phase, epoch (0-based), epochs, batch,
                batches, loss, accuracy, samples_per_s, elapsed_s, eta_s,
                metrics (the epoch's dict at "epoch_end", else None). Return
                True to stop training: fit then returns normally, with
                ``self.stopped`` True. An exception raised by the callback
                (KeyboardInterrupt included) stops training and is re-raised
                when fit returns; C never sees it.
            output: where the best model is saved whenever it improves;
                ``output + ".last"`` keeps the last checkpoint (None: no files).
            resume: a ``.last`` checkpoint to continue the same run from.

        Returns the per-epoch history (``self.history``): a list of dicts with
        epoch, improved, train_loss, train_accuracy, val_loss, val_accuracy
        (None without validation), learning_rate, seconds, samples.
        """
        if not isinstance(train, Dataset) or (val is not None and not isinstance(val, Dataset)):
            raise TypeError("fit needs csnn.Dataset objects")
        opts = new_struct(_lib.FitOptions)
        if output is not None:
            opts.output = _fs(output)
        if resume is not None:
            opts.resume = _fs(resume)
        opts.progress_every = int(progress_every)
        state = {"error": None, "interrupt": False}

        def on_progress(user_data, p):
            # Never let an exception cross into C: record it and stop.
            try:
                if state["interrupt"]:
                    return 1
                if callback is None:
                    return 0
                return 1 if callback(_progress_dict(p.contents)) else 0
            except BaseException as e:  # noqa: B902 - KeyboardInterrupt too
                state["error"] = e
                return 1

        # Installed even without a user callback, so that Ctrl-C is noticed at
        # the next batch boundary instead of after the whole fit. While fit
        # runs, SIGINT only sets a flag (an exception raised as the callback
        # is entered could not be caught there); KeyboardInterrupt is raised
        # when fit returns.
        cb = _lib.PROGRESS_FN(on_progress)
        opts.progress = cb
        self._fit_cb = cb
        self.stopped = False
        restore = _catch_sigint(state)
        try:
            st = lib.csnn_trainer_fit(self._h, train._h, val._h if val is not None else None,
                                      byref(opts))
        except Error as err:
            if state["error"] is not None:
                raise state["error"] from err
            if state["interrupt"]:
                raise KeyboardInterrupt from err
            raise
        finally:
            self._fit_cb = None
            restore()
        if state["error"] is not None:
            raise state["error"]
        if state["interrupt"]:
            raise KeyboardInterrupt
        self.stopped = st == Status.STOPPED
        return self.history

    @property
    def stop_reason(self):
        """Why the last fit ended: a ``StopReason`` (EPOCHS, EARLY, TIME,
        CALLBACK, ERROR; NONE before any fit)."""
        r = c_int32()
        lib.csnn_trainer_stop_reason(self._h, byref(r))
        return StopReason(r.value)

    @property
    def history(self):
        """The finished epochs recorded by fit (a resumed run includes those
        before the resume), as a list of dicts (see ``fit``)."""
        n = c_size_t()
        lib.csnn_trainer_history(self._h, byref(n))
        out = []
        for i in range(n.value):
            m = new_struct(_lib.EpochMetrics)
            lib.csnn_trainer_epoch(self._h, i, byref(m))
            out.append(_epoch_dict(m))
        return out

    def evaluate(self, dataset):
        """As ``Model.evaluate`` with the trainer's loss settings."""
        if not isinstance(dataset, Dataset):
            raise TypeError("evaluate needs a csnn.Dataset")
        return _evaluate(lib.csnn_trainer_evaluate, self._h, dataset)

    def save_checkpoint(self, path):
        """Saves the model plus optimiser state and counters, atomically.
        ``Model.load`` reads it as a model; ``load_checkpoint`` restores all."""
        lib.csnn_trainer_save_checkpoint(self._h, _fs(path))

    def load_checkpoint(self, path):
        """Restores a checkpoint into the model and the trainer (the model's
        spec must equal the checkpoint's). On error nothing changes."""
        lib.csnn_trainer_load_checkpoint(self._h, _fs(path))

    def __repr__(self):
        if self.closed:
            return "<csnn.Trainer (closed)>"
        return "<csnn.Trainer %d steps, %d epochs recorded>" % (self.steps, len(self.history))
