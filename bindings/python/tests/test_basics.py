"""Loading, versions, the ABI handshake, and the C mirrors (structs, enums,
prototypes) checked against the library and its headers."""

import ctypes
import ctypes.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import csnn
from csnn import _lib

from support import TINY_SPEC, pattern_data, source_root

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(csnn.__file__)))


def run_python(code, env_update, drop=()):
    env = dict(os.environ)
    for k in drop:
        env.pop(k, None)
    env.update(env_update)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)


class TestVersion(unittest.TestCase):
    def test_versions(self):
        self.assertEqual(csnn.abi_version(), csnn.ABI_VERSION)
        self.assertEqual(csnn.abi_version(), 0)
        self.assertRegex(csnn.__version__, r"^\d+\.\d+\.\d+")
        self.assertRegex(csnn.library_version(), r"^\d+\.\d+\.\d+")
        major, minor, patch = (int(p) for p in csnn.library_version().split(".")[:3])
        self.assertEqual(csnn.library_version_number(), major * 10000 + minor * 100 + patch)
        self.assertTrue(os.path.basename(csnn.library_path).startswith("libcsnn"))

    def test_package_version_matches_project(self):
        want = os.environ.get("CSNN_PROJECT_VERSION")
        if not want:
            self.skipTest("CSNN_PROJECT_VERSION not set (set by meson test)")
        self.assertEqual(csnn.__version__, want)
        self.assertEqual(csnn.library_version(), want)

    def test_presets_and_devices(self):
        self.assertIn("fer-csnn", csnn.presets())
        self.assertIn("fer-cnn", csnn.presets())
        self.assertIn("steps 4", csnn.preset_spec("fer-csnn"))
        self.assertTrue(csnn.device_available("cpu"))
        self.assertFalse(csnn.device_available("no-such-device"))
        self.assertEqual(_lib._decode(_lib.lib.csnn_last_error_message()), "")

    def test_docstrings(self):
        """Everything public has a docstring."""
        for name in csnn.__all__:
            obj = getattr(csnn, name)
            if callable(obj):
                self.assertTrue(getattr(obj, "__doc__", None), name)
            if isinstance(obj, type):
                for attr, member in vars(obj).items():
                    if attr.startswith("_") or not (callable(member) or
                                                    isinstance(member, (property, classmethod,
                                                                        staticmethod))):
                        continue
                    doc = getattr(member, "__doc__", None)
                    if isinstance(member, (classmethod, staticmethod)):
                        doc = member.__func__.__doc__
                    self.assertTrue(doc, "%s.%s has no docstring" % (name, attr))


class TestMirrors(unittest.TestCase):
    def test_struct_sizes_match_c(self):
        """ctypes.sizeof of every mirror equals the size its C _init writes."""
        for cls, init in _lib.STRUCT_INIT.items():
            s = _lib.new_struct(cls)
            self.assertEqual(s.size, ctypes.sizeof(cls), "%s (%s)" % (cls.__name__, init))

    def test_progress_and_epoch_structs_from_fit(self):
        """csnn_progress has no _init: check the size the library fills in."""
        pixels, labels = pattern_data(24)
        seen = []

        def cb(user, p):
            seen.append((p.contents.size, p.contents.phase,
                         p.contents.metrics.contents.size if p.contents.metrics else None))
            return 0

        with csnn.Model.from_spec(TINY_SPEC) as m, \
                csnn.Dataset.from_arrays(pixels, labels, height=8, width=8) as ds, \
                csnn.Trainer(m, epochs=1, batch_size=8) as t:
            opts = _lib.new_struct(_lib.FitOptions)
            fn = _lib.PROGRESS_FN(cb)
            opts.progress = fn
            self.assertEqual(_lib.lib.csnn_trainer_fit(t._h, ds._h, None, ctypes.byref(opts)),
                             csnn.Status.OK)
        self.assertTrue(seen)
        for size, phase, msize in seen:
            self.assertEqual(size, ctypes.sizeof(_lib.Progress))
            if phase == csnn.Phase.EPOCH_END:
                self.assertEqual(msize, ctypes.sizeof(_lib.EpochMetrics))
        self.assertIn(csnn.Phase.EPOCH_END, [s[1] for s in seen])

    def test_status_enum_matches_c(self):
        for st in csnn.Status:
            self.assertEqual(csnn.status_name(st), "CSNN_" + st.name)
        # the C enum has no further codes on either side
        self.assertEqual(csnn.status_name(min(csnn.Status) - 1), "CSNN_UNKNOWN_STATUS")
        self.assertEqual(csnn.status_name(max(csnn.Status) + 1), "CSNN_UNKNOWN_STATUS")

    def test_train_param_enum_matches_c(self):
        for p in csnn.TrainParam:
            lo, hi = csnn.TrainerParams.bounds(p)
            self.assertLessEqual(lo, hi, p.name)
        with self.assertRaises(csnn.Error) as cm:
            _lib.lib.csnn_train_param_bounds(999, ctypes.byref(ctypes.c_double()),
                                             ctypes.byref(ctypes.c_double()))
        self.assertEqual(cm.exception.name, "CSNN_ERR_UNSUPPORTED")
        # enum-valued settings: the C bounds cover exactly the mirrored members
        for key, enum in (("optimizer", csnn.Optimizer), ("loss", csnn.Loss),
                          ("lr_schedule", csnn.LRSchedule)):
            lo, hi = csnn.TrainerParams.bounds(key)
            self.assertEqual((lo, hi), (min(enum), max(enum)), key)

    def test_enums_against_header(self):
        """Every enum member mirrors a C enumerator with the same value."""
        root = source_root()
        if root is None:
            self.skipTest("libcsnn sources not found")
        text = ""
        for h in ("csnn.h", "csnn_errors.h", "csnn_kinds.h", "csnn_backend.h"):
            with open(os.path.join(root, "include", "csnn", h)) as f:
                text += f.read()
        values = {m.group(1): int(m.group(2))
                  for m in re.finditer(r"\b(CSNN_[A-Z0-9_]+)\s*=\s*(-?\d+)", text)}
        prefixes = {csnn.Status: "CSNN_", csnn.LogLevel: "CSNN_LOG_",
                    csnn.TensorKind: "CSNN_TENSOR_", csnn.TrainParam: "CSNN_TRAIN_",
                    csnn.Optimizer: "CSNN_OPTIMIZER_", csnn.Loss: "CSNN_LOSS_",
                    csnn.LRSchedule: "CSNN_LR_", csnn.Phase: "CSNN_PHASE_",
                    csnn.OpKind: "CSNN_OPS_", csnn.StopReason: "CSNN_STOP_"}
        for enum, prefix in prefixes.items():
            for m in enum:
                self.assertEqual(values.get(prefix + m.name), int(m), prefix + m.name)
        train = {k for k in values if k.startswith("CSNN_TRAIN_")}
        self.assertEqual(train, {"CSNN_TRAIN_" + m.name for m in csnn.TrainParam})

    def test_prototypes_cover_header(self):
        """Every function of csnn.h and csnn_errors.h has a prototype (argtypes
        and restype), and nothing else is prototyped."""
        root = source_root()
        if root is None:
            self.skipTest("libcsnn sources not found")
        names = set()
        for h in ("csnn.h", "csnn_errors.h"):
            with open(os.path.join(root, "include", "csnn", h)) as f:
                names |= set(re.findall(r"CSNN_API\s+[^;(]*?\b(csnn_\w+)\s*\(", f.read()))
        self.assertTrue(names)
        self.assertEqual(sorted(names - _lib.PROTOTYPED), [])
        self.assertEqual(sorted(_lib.PROTOTYPED - names), [])
        # the library exports every one of them
        self.assertEqual(sorted(_lib.MISSING), [])
        for name in _lib.PROTOTYPED:
            fn = getattr(_lib.lib, name)
            self.assertIsNotNone(fn.argtypes, name)

    def test_missing_function_raises_unsupported(self):
        stub = _lib._missing("csnn_no_such_function")
        with self.assertRaises(csnn.Error) as cm:
            stub(1, 2)
        self.assertEqual(cm.exception.name, "CSNN_ERR_UNSUPPORTED")
        self.assertIn("csnn_no_such_function", cm.exception.message)

    def test_handles_are_distinct_types(self):
        with csnn.Model.from_spec(TINY_SPEC) as m:
            with self.assertRaises(ctypes.ArgumentError):
                _lib.lib.csnn_dataset_get_info(m._h, ctypes.byref(_lib.new_struct(_lib.DatasetInfo)))


class TestLoader(unittest.TestCase):
    """The library search order and the ABI handshake, in subprocesses."""

    def test_env_var_missing_file(self):
        r = run_python("import csnn", {"LIBCSNN_LIBRARY": "/nonexistent/libcsnn.so.0"})
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("OSError", r.stderr)
        self.assertIn("LIBCSNN_LIBRARY", r.stderr)
        self.assertIn("/nonexistent/libcsnn.so.0", r.stderr)

    def test_env_var_not_libcsnn(self):
        other = ctypes.util.find_library("z") or ctypes.util.find_library("m")
        if not other:
            self.skipTest("no other shared library to try")
        r = run_python("import csnn", {"LIBCSNN_LIBRARY": other})
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not libcsnn", r.stderr)

    def test_abi_mismatch(self):
        """A library whose csnn_abi_version() differs is refused."""
        saved = _lib.ABI_VERSION
        _lib.ABI_VERSION = 99
        try:
            with self.assertRaises(OSError) as cm:
                _lib._load()
        finally:
            _lib.ABI_VERSION = saved
        self.assertIn("ABI version 0, this package needs 99", str(cm.exception))

    def test_next_to_package(self):
        """Without LIBCSNN_LIBRARY a library inside the package directory wins."""
        real = os.path.realpath(csnn.library_path)
        tmp = tempfile.mkdtemp(prefix="csnn-loader-")
        try:
            pkg = os.path.join(tmp, "csnn")
            shutil.copytree(os.path.dirname(csnn.__file__), pkg,
                            ignore=shutil.ignore_patterns("__pycache__"))
            os.symlink(real, os.path.join(pkg, "libcsnn.so.0"))
            r = run_python("import csnn; print(csnn.library_path)", {"PYTHONPATH": tmp},
                           drop=("LIBCSNN_LIBRARY",))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.strip(), os.path.join(pkg, "libcsnn.so.0"))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_soname_through_loader_path(self):
        real = os.path.realpath(csnn.library_path)
        libdir = os.path.dirname(real)
        if not os.path.exists(os.path.join(libdir, "libcsnn.so.0")):
            self.skipTest("no libcsnn.so.0 link beside the library")
        r = run_python("import csnn; print(csnn.library_path)",
                       {"PYTHONPATH": PACKAGE_DIR, "LD_LIBRARY_PATH": libdir},
                       drop=("LIBCSNN_LIBRARY",))
        self.assertEqual(r.returncode, 0, r.stderr)
        # find_library may name a system copy first; either way it loaded
        self.assertIn("libcsnn", r.stdout)


if __name__ == "__main__":
    unittest.main()
