"""numpy arrays in and out (skipped when numpy is not installed)."""

import unittest

import csnn

from support import PATTERN_CLASSES, TINY_SPEC, TempDirCase, needs_numpy, pattern_data

try:
    import numpy as np
except ImportError:  # the tests below are skipped
    np = None


def pattern_arrays(n, seed=0):
    pixels, labels = pattern_data(n, seed)
    return np.frombuffer(pixels, dtype=np.uint8).reshape(n, 8, 8), np.array(labels)


@needs_numpy
class TestNumpy(TempDirCase):
    def test_input_forms_agree(self):
        x, _ = pattern_arrays(10)
        with csnn.Model.from_spec(TINY_SPEC, seed=3) as m:
            want = m.predict(x)
            self.assertIsInstance(want, np.ndarray)
            self.assertEqual(want.dtype, np.float32)
            self.assertEqual(want.shape, (10, 3))
            f32 = x.astype(np.float32) / np.float32(255)
            for form in (x[:, None], f32, f32[:, None], f32.astype(np.float64), x.astype(np.int64),
                         np.asfortranarray(x), x.tolist()):
                np.testing.assert_array_equal(m.predict(form), want)
            # non-contiguous views
            big = np.zeros((20, 8, 8), dtype=np.uint8)
            big[::2] = x
            np.testing.assert_array_equal(m.predict(big[::2]), want)
            np.testing.assert_array_equal(m.predict(x.transpose(0, 2, 1).copy().transpose(0, 2, 1)),
                                          want)
            # one image, read-only memory, flat bytes
            np.testing.assert_array_equal(m.predict(x[0]), want[:1])
            ro = np.frombuffer(x.tobytes(), dtype=np.uint8).reshape(10, 8, 8)
            self.assertFalse(ro.flags.writeable)
            np.testing.assert_array_equal(m.predict(ro), want)
            np.testing.assert_array_equal(m.predict(x.tobytes()), want)
            labels = m.classify(x)
            self.assertEqual(labels.dtype, np.int32)
            np.testing.assert_array_equal(labels, np.argmax(want, axis=1))
            self.assertEqual(m.predict(np.zeros((0, 8, 8), np.uint8)).shape, (0, 3))
            with self.assertRaises(csnn.Error) as cm:
                m.predict(np.zeros((2, 2, 8, 8), np.uint8))
            self.assertEqual(cm.exception.name, "CSNN_ERR_SHAPE")
            with self.assertRaises(csnn.Error) as cm:
                m.predict(np.full((1, 8, 8), -1, np.int16))
            self.assertEqual(cm.exception.name, "CSNN_ERR_INVALID_ARGUMENT")
            with self.assertRaises(TypeError):
                m.predict(np.array([["a"] * 8] * 8))

    def test_from_arrays_conversions(self):
        x, y = pattern_arrays(12)
        f = x.astype(np.float64) / 255.0
        f[0, 0, 0] = 0.5 / 255.0 + 1e-9  # rounds up to 1
        f[0, 0, 1] = 0.2 / 255.0         # rounds down to 0
        with csnn.Dataset.from_arrays(f, y.astype(np.int64), PATTERN_CLASSES) as ds:
            images, labels = ds.to_arrays()
            self.assertEqual(images.dtype, np.uint8)
            self.assertEqual(labels.dtype, np.int32)
            expect = x.copy()
            expect[0, 0, 0], expect[0, 0, 1] = 1, 0
            np.testing.assert_array_equal(images, expect)
            np.testing.assert_array_equal(labels, y)
            px, lab = ds[3]
            self.assertEqual(px.shape, (8, 8))
            np.testing.assert_array_equal(px, x[3])
            self.assertEqual(lab, y[3])
            self.assertEqual(ds.source(3), "array:3")
        with csnn.Dataset.from_arrays(x[:, None], y.astype(np.float32)) as ds:
            self.assertEqual(ds.classes, ["0", "1", "2"])
            self.assertEqual(ds.shape, (8, 8))
        for bad in (f * 2, np.where(f > 0.5, np.nan, f)):
            with self.assertRaises(csnn.Error) as cm:
                csnn.Dataset.from_arrays(bad, y)
            self.assertEqual(cm.exception.name, "CSNN_ERR_INVALID_ARGUMENT")
        with self.assertRaises(csnn.Error) as cm:
            csnn.Dataset.from_arrays(np.zeros((2, 3, 8, 8), np.uint8), [0, 1])
        self.assertEqual(cm.exception.name, "CSNN_ERR_SHAPE")
        with self.assertRaises(csnn.Error) as cm:
            csnn.Dataset.from_arrays(x, y + 0.5)
        self.assertEqual(cm.exception.name, "CSNN_ERR_INVALID_ARGUMENT")

    def test_outputs_are_arrays(self):
        images, labels, classes = csnn.synth_generate(per_class=3, height=8, width=8)
        self.assertEqual((images.dtype, images.shape), (np.uint8, (21, 8, 8)))
        self.assertEqual((labels.dtype, labels.shape), (np.int32, (21,)))
        x, y = pattern_arrays(60)
        with csnn.Model.from_spec(TINY_SPEC) as m, \
                csnn.Dataset.from_arrays(x, y, PATTERN_CLASSES) as ds, \
                csnn.Trainer(m, epochs=2, batch_size=10, lr=1e-2) as t:
            for _ in range(3):
                t.step(x[:10], y[:10])
            t.fit(ds)
            r = m.evaluate(ds)
            self.assertIsInstance(r["confusion"], np.ndarray)
            self.assertEqual(r["confusion"].dtype, np.int64)
            self.assertEqual(r["confusion"].shape, (3, 3))
            self.assertEqual(int(r["confusion"].sum()), 60)
            self.assertAlmostEqual(r["accuracy"], np.trace(r["confusion"]) / 60)
            for t_info in m.tensors():
                w = m.get_tensor(t_info["name"])
                self.assertEqual(w.shape, t_info["shape"])
                self.assertEqual(w.dtype, np.float32)
            name = m.tensors()[0]["name"]
            w = m.get_tensor(name)
            m.set_tensor(name, w * 2)
            np.testing.assert_array_equal(m.get_tensor(name), w * 2)
            m.set_tensor(name, (w * 3).tolist())
            np.testing.assert_array_equal(m.get_tensor(name), w * 3)

    def test_predict_files_matches_arrays(self):
        csnn.synth_write(self.path("faces"), per_class=1, height=8, width=8, jpeg_percent=50)
        import glob
        files = sorted(glob.glob(self.path("faces", "*", "*")))
        self.assertEqual(len(files), 7)
        spec = TINY_SPEC.replace("classes 3", "classes 7").replace("linear 3", "linear 7")
        with csnn.Model.from_spec(spec) as m:
            names, rates = m.predict_files(files)
            decoded = np.stack([csnn.load_image(f, 8, 8) for f in files])
            np.testing.assert_array_equal(rates, m.predict(decoded))
            self.assertEqual(names, [m.classes[i] for i in m.classify(decoded)])


if __name__ == "__main__":
    unittest.main()
