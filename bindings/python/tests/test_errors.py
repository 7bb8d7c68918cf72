"""Every error path raises csnn.Error with the right status name and the
library's message; positive statuses are not errors."""

import ctypes
import os
import pickle
import unittest

import csnn
from csnn import _lib

from support import PATTERN_CLASSES, TINY_SPEC, TempDirCase, pattern_data


class TestErrorObject(TempDirCase):
    def test_attributes(self):
        err = self.assertRaisesStatus("CSNN_ERR_NOT_FOUND", csnn.Model.from_preset, "no-such")
        self.assertEqual(err.status, csnn.Status.ERR_NOT_FOUND)
        self.assertIn("no-such", err.message)
        self.assertEqual(err.function, "csnn_model_create_preset")
        self.assertIsInstance(err, Exception)
        again = pickle.loads(pickle.dumps(err))
        self.assertEqual((again.name, again.message), (err.name, err.message))

    def test_binding_errors_use_status_names(self):
        err = csnn.Error(csnn.Status.ERR_SHAPE, "custom")
        self.assertEqual(str(err), "CSNN_ERR_SHAPE: custom")
        self.assertEqual(csnn.Error(-11).message, "shape mismatch")
        self.assertEqual(csnn.Error(-99).name, "CSNN_UNKNOWN_STATUS")

    def test_message_is_thread_local_and_fresh(self):
        self.assertRaisesStatus("CSNN_ERR_SPEC", csnn.Model.from_spec, "input 1x8x8\nbogus 3\n")
        err = self.assertRaisesStatus("CSNN_ERR_NOT_FOUND", csnn.Model.from_preset, "x")
        self.assertNotIn("bogus", err.message)


class TestContextErrors(TempDirCase):
    def test_bad_devices(self):
        # an unknown backend name: libcsnn looks for a module libcsnn-<name>.so
        with self.assertRaises(csnn.Error) as cm:
            csnn.Context("tpu")
        self.assertIn(cm.exception.name, ("CSNN_ERR_NOT_FOUND", "CSNN_ERR_BACKEND_UNAVAILABLE"))
        self.assertIn("tpu", cm.exception.message)
        self.assertRaisesStatus("CSNN_ERR_INVALID_ARGUMENT", csnn.Context, "cpu:x")
        self.assertRaisesStatus("CSNN_ERR_INVALID_ARGUMENT", csnn.Context, "cpu", threads=-1)
        self.assertRaisesStatus("CSNN_ERR_INVALID_ARGUMENT", csnn.Context, "cpu", log_level=9)
        self.assertRaisesStatus("CSNN_ERR_INVALID_ARGUMENT", csnn.Context, "cpu",
                                log_level="loud")
        with self.assertRaises(csnn.Error):
            csnn.Model.from_spec(TINY_SPEC, device="tpu")

    def test_cuda_unavailable_or_works(self):
        if csnn.device_available("cuda"):
            with csnn.Context("cuda") as ctx:
                self.assertTrue(ctx.device.startswith("cuda"))
        else:
            self.assertRaisesStatus("CSNN_ERR_BACKEND_UNAVAILABLE", csnn.Context, "cuda")
        self.assertRaisesStatus("CSNN_ERR_BACKEND_UNAVAILABLE", csnn.Context, "cuda:999")

    def test_threads(self):
        with csnn.Context(threads=2) as ctx:
            self.assertEqual(ctx.threads, 2)
            ctx.threads = 1
            self.assertEqual(ctx.threads, 1)
            with self.assertRaises(csnn.Error) as cm:
                ctx.threads = -5
            self.assertEqual(cm.exception.name, "CSNN_ERR_INVALID_ARGUMENT")

    def test_context_and_device_together(self):
        with csnn.Context() as ctx:
            self.assertRaisesStatus("CSNN_ERR_INVALID_ARGUMENT", csnn.Model.from_spec, TINY_SPEC,
                                    device="cpu", context=ctx)


class TestModelErrors(TempDirCase):
    def test_specs_and_presets(self):
        err = self.assertRaisesStatus("CSNN_ERR_SPEC", csnn.Model.from_spec,
                                      "input 1x8x8\nconv 4 k=3\nfrobnicate\n")
        self.assertRegex(err.message, r"line 3")
        self.assertRaisesStatus("CSNN_ERR_NOT_FOUND", csnn.Model.from_preset, "fer-nothing")
        self.assertRaisesStatus("CSNN_ERR_NOT_FOUND", csnn.preset_spec, "fer-nothing")
        self.assertRaisesStatus("CSNN_ERR_INVALID_ARGUMENT", csnn.Model.from_preset, "fer-csnn",
                                time_steps=0)

    def test_files(self):
        self.assertRaisesStatus("CSNN_ERR_IO", csnn.Model.load, self.path("missing.csnn"))
        with open(self.path("junk.csnn"), "wb") as f:
            f.write(b"this is not a model" * 10)
        self.assertRaisesStatus("CSNN_ERR_FORMAT", csnn.Model.load, self.path("junk.csnn"))
        with csnn.Model.from_spec(TINY_SPEC) as m:
            m.save(self.path("good.csnn"))
            self.assertRaisesStatus("CSNN_ERR_IO", m.save, self.path("no", "such", "dir.csnn"))
        with open(self.path("good.csnn"), "rb") as f:
            data = f.read()
        with open(self.path("cut.csnn"), "wb") as f:
            f.write(data[:len(data) // 2])
        self.assertRaisesStatus("CSNN_ERR_FORMAT", csnn.Model.load, self.path("cut.csnn"))
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0xFF
        with open(self.path("flip.csnn"), "wb") as f:
            f.write(bytes(flipped))
        self.assertRaisesStatus("CSNN_ERR_FORMAT", csnn.Model.load, self.path("flip.csnn"))

    def test_classes_and_tensors(self):
        with csnn.Model.from_spec(TINY_SPEC) as m:
            self.assertRaisesStatus("CSNN_ERR_SHAPE", setattr, m, "classes", ["a", "b"])
            self.assertRaisesStatus("CSNN_ERR_INVALID_ARGUMENT", setattr, m, "classes",
                                    ["a", "a", "b"])
            self.assertRaisesStatus("CSNN_ERR_INVALID_ARGUMENT", setattr, m, "classes",
                                    ["a", "", "b"])
            m.classes = PATTERN_CLASSES
            self.assertEqual(m.classes, PATTERN_CLASSES)
            self.assertRaisesStatus("CSNN_ERR_NOT_FOUND", m.get_tensor, "nope.weight")
            name = m.tensors()[0]["name"]
            n = m.tensors()[0]["numel"]
            self.assertRaisesStatus("CSNN_ERR_SHAPE", m.set_tensor, name, [0.0] * (n + 1))
            self.assertRaisesStatus("CSNN_ERR_NUMERIC", m.set_tensor, name,
                                    [float("nan")] * n)
            self.assertRaisesStatus("CSNN_ERR_INVALID_ARGUMENT", m.summary, 0)

    def test_predict_shapes(self):
        with csnn.Model.from_spec(TINY_SPEC) as m:
            self.assertRaisesStatus("CSNN_ERR_SHAPE", m.predict, bytes(63))
            self.assertRaisesStatus("CSNN_ERR_SHAPE", m.predict, [[[0] * 7] * 8])
            self.assertRaisesStatus("CSNN_ERR_SHAPE", m.predict, [[[0] * 8] * 8, [[0] * 7] * 8])
            self.assertRaisesStatus("CSNN_ERR_INVALID_ARGUMENT", m.predict, [[[300] * 8] * 8])
            self.assertRaisesStatus("CSNN_ERR_INVALID_ARGUMENT", m.predict, bytes(64),
                                    batch_size=0)
            self.assertRaisesStatus("CSNN_ERR_IO", m.predict_files, [self.path("none.png")])
            with open(self.path("bad.png"), "wb") as f:
                f.write(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
            err = self.assertRaisesStatus("CSNN_ERR_FORMAT", m.predict_files,
                                          [self.path("bad.png")])
            self.assertIn("bad.png", err.message)
            with self.assertRaises(TypeError):
                m.predict(["not", "numbers"])

    def test_closed_objects(self):
        m = csnn.Model.from_spec(TINY_SPEC)
        m.close()
        m.close()  # idempotent
        self.assertTrue(m.closed)
        self.assertRaisesStatus("CSNN_ERR_STATE", m.save, self.path("x.csnn"))
        self.assertRaisesStatus("CSNN_ERR_STATE", lambda: m.num_params)
        self.assertIn("closed", repr(m))
        with self.assertRaises(TypeError):
            csnn.Model()
        with self.assertRaises(TypeError):
            csnn.Dataset()


class TestDatasetErrors(TempDirCase):
    def test_folder(self):
        self.assertRaisesStatus("CSNN_ERR_IO", csnn.Dataset.from_folder, self.path("missing"))
        os.mkdir(self.path("empty"))
        self.assertRaisesStatus("CSNN_ERR_NOT_FOUND", csnn.Dataset.from_folder, self.path("empty"))
        csnn.synth_write(self.path("faces"), per_class=2, height=16, width=16)
        with open(self.path("faces", "happy", "broken.png"), "wb") as f:
            f.write(b"not a png at all")
        err = self.assertRaisesStatus("CSNN_ERR_FORMAT", csnn.Dataset.from_folder,
                                      self.path("faces"), height=16, width=16)
        self.assertIn("broken.png", err.message)
        with csnn.Dataset.from_folder(self.path("faces"), height=16, width=16,
                                      skip_bad=True) as ds:
            self.assertEqual(ds.skipped, 1)
            self.assertEqual(len(ds), 14)
        self.assertRaisesStatus("CSNN_ERR_LIMIT", csnn.Dataset.from_folder, self.path("faces"),
                                height=16, width=16, max_samples=3)
        os.remove(self.path("faces", "happy", "broken.png"))
        self.assertRaisesStatus("CSNN_ERR_LIMIT", csnn.Dataset.from_folder, self.path("faces"),
                                height=16, width=16, max_image_pixels=10)

    def test_csv(self):
        with open(self.path("bad.csv"), "w") as f:
            f.write("emotion,pixels,Usage\n3,1 2 3,Training\n")
        err = self.assertRaisesStatus("CSNN_ERR_FORMAT", csnn.Dataset.from_fer2013_csv,
                                      self.path("bad.csv"))
        self.assertIn("2", err.message)  # the row
        self.assertRaisesStatus("CSNN_ERR_IO", csnn.Dataset.from_fer2013_csv, self.path("no.csv"))

    def test_arrays(self):
        pixels, labels = pattern_data(6)
        self.assertRaisesStatus("CSNN_ERR_INVALID_ARGUMENT", csnn.Dataset.from_arrays, pixels,
                                [0, 1, 2, 3, 0, 1], PATTERN_CLASSES, height=8, width=8)
        self.assertRaisesStatus("CSNN_ERR_SHAPE", csnn.Dataset.from_arrays, pixels, labels[:5],
                                height=8, width=8)
        self.assertRaisesStatus("CSNN_ERR_SHAPE", csnn.Dataset.from_arrays, pixels, labels,
                                height=8, width=9)
        self.assertRaisesStatus("CSNN_ERR_INVALID_ARGUMENT", csnn.Dataset.from_arrays,
                                [[[1.5] * 8] * 8], [0])
        self.assertRaisesStatus("CSNN_ERR_INVALID_ARGUMENT", csnn.Dataset.from_arrays,
                                [[[0] * 8] * 8], [0], ["a", "a"])
        self.assertRaisesStatus("CSNN_ERR_INVALID_ARGUMENT", csnn.Dataset.from_arrays,
                                [[[0] * 8] * 8], [0.5])
        with csnn.Dataset.from_arrays(pixels, labels, PATTERN_CLASSES, height=8, width=8) as ds:
            self.assertRaisesStatus("CSNN_ERR_INVALID_ARGUMENT", ds.split, 1.5)
            self.assertRaisesStatus("CSNN_ERR_INVALID_ARGUMENT", ds.split, -0.1)
            with self.assertRaises(IndexError):
                ds[6]
            self.assertEqual(ds[-1][1], labels[-1])

    def test_load_image(self):
        self.assertRaisesStatus("CSNN_ERR_IO", csnn.load_image, self.path("none.png"))
        self.assertRaisesStatus("CSNN_ERR_INVALID_ARGUMENT", csnn.synth_generate, per_class=-1)


class TestTrainerErrors(TempDirCase):
    def setUp(self):
        super().setUp()
        pixels, labels = pattern_data(30)
        self.ds = csnn.Dataset.from_arrays(pixels, labels, PATTERN_CLASSES, height=8, width=8)
        self.model = csnn.Model.from_spec(TINY_SPEC)

    def tearDown(self):
        self.model.close()
        self.ds.close()
        super().tearDown()

    def test_params(self):
        self.assertRaisesStatus("CSNN_ERR_INVALID_ARGUMENT", csnn.Trainer, self.model, lr=-1)
        self.assertRaisesStatus("CSNN_ERR_INVALID_ARGUMENT", csnn.Trainer, self.model,
                                batch_size=2.5)
        self.assertRaisesStatus("CSNN_ERR_INVALID_ARGUMENT", csnn.Trainer, self.model,
                                optimizer="adagrad")
        self.assertRaisesStatus("CSNN_ERR_INVALID_ARGUMENT", csnn.Trainer, self.model,
                                time_steps=7)
        with self.assertRaises(TypeError):
            csnn.Trainer(self.model, no_such_setting=1)
        with csnn.Trainer(self.model, time_steps=4) as t:
            with self.assertRaises(csnn.Error) as cm:
                t.params["label_smoothing"] = 1.0
            self.assertEqual(cm.exception.name, "CSNN_ERR_INVALID_ARGUMENT")
            with self.assertRaises(KeyError):
                t.params["nope"]
            with self.assertRaises(TypeError):
                del t.params["lr"]
            # a second trainer on the same model
            self.assertRaisesStatus("CSNN_ERR_STATE", csnn.Trainer, self.model)

    def test_step(self):
        with csnn.Trainer(self.model) as t:
            self.assertRaisesStatus("CSNN_ERR_INVALID_ARGUMENT", t.step, bytes(64), [3])
            self.assertRaisesStatus("CSNN_ERR_INVALID_ARGUMENT", t.step, b"", [])
            self.assertRaisesStatus("CSNN_ERR_SHAPE", t.step, bytes(64), [0, 1])

    def test_fit(self):
        with csnn.Trainer(self.model, epochs=1) as t:
            other = csnn.Dataset.from_arrays(bytes(2 * 100), [0, 1], height=10, width=10)
            self.assertRaisesStatus("CSNN_ERR_SHAPE", t.fit, other)
            other.close()
            self.assertRaisesStatus("CSNN_ERR_INVALID_ARGUMENT", t.fit, self.ds,
                                    progress_every=0)
            self.assertRaisesStatus("CSNN_ERR_IO", t.fit, self.ds, resume=self.path("no.last"))
            self.assertRaisesStatus("CSNN_ERR_IO", t.fit, self.ds,
                                    output=self.path("no", "dir", "m.csnn"))
            empty_train, _ = self.ds.split(0.0)
            _, empty = self.ds.split(0.0)
            self.assertEqual(len(empty), 0)
            self.assertRaisesStatus("CSNN_ERR_INVALID_ARGUMENT", t.fit, empty)
            # classes the model does not know
            self.model.classes = ["x", "y", "z"]
            self.assertRaisesStatus("CSNN_ERR_NOT_FOUND", t.fit, self.ds)
            self.assertRaisesStatus("CSNN_ERR_NOT_FOUND", self.model.evaluate, self.ds)
            with self.assertRaises(TypeError):
                t.fit("not a dataset")

    def test_checkpoints(self):
        with csnn.Trainer(self.model, epochs=1) as t:
            self.model.save(self.path("plain.csnn"))
            self.assertRaisesStatus("CSNN_ERR_STATE", t.load_checkpoint, self.path("plain.csnn"))
            self.assertRaisesStatus("CSNN_ERR_IO", t.load_checkpoint, self.path("none"))
            with csnn.Model.from_spec(TINY_SPEC.replace("linear 16", "linear 12")) as m2, \
                    csnn.Trainer(m2) as t2:
                t2.save_checkpoint(self.path("other.ckpt"))
            self.assertRaisesStatus("CSNN_ERR_SHAPE", t.load_checkpoint, self.path("other.ckpt"))

    def test_raw_statuses(self):
        """Positive statuses come back as values, negative ones raise."""
        self.assertEqual(_lib._check(1, _lib.lib.csnn_trainer_fit, ()), csnn.Status.STOPPED)
        self.assertEqual(_lib._check(0, _lib.lib.csnn_trainer_fit, ()), csnn.Status.OK)
        with self.assertRaises(csnn.Error):
            _lib._check(-4, _lib.lib.csnn_trainer_fit, ())
        with self.assertRaises(csnn.Error) as cm:
            _lib.lib.csnn_model_save(None, b"x")
        self.assertEqual(cm.exception.name, "CSNN_ERR_INVALID_ARGUMENT")
        self.assertIsNone(_lib.lib.csnn_model_destroy(None))
        self.assertIsNone(_lib.lib.csnn_context_destroy(None))
        self.assertIsNone(_lib.lib.csnn_metrics_destroy(None))
        with self.assertRaises(ctypes.ArgumentError):
            _lib.lib.csnn_model_save(self.ds._h, b"x")


if __name__ == "__main__":
    unittest.main()
