"""Training a small model on synthetic arrays, evaluating, saving, loading,
predicting, callbacks, checkpoints and resuming (with or without numpy)."""

import os
import unittest

import csnn

from support import PATTERN_CLASSES, TINY_SPEC, TempDirCase, pattern_data


def as_lists(x):
    """numpy arrays -> nested lists; lists unchanged."""
    return x.tolist() if hasattr(x, "tolist") else x


def strip_times(history):
    return [{k: v for k, v in e.items() if k != "seconds"} for e in history]


class TestTrainEvaluateSaveLoad(TempDirCase):
    def test_round_trip(self):
        pixels, labels = pattern_data(240, seed=1)
        data = csnn.Dataset.from_arrays(pixels, labels, PATTERN_CLASSES, height=8, width=8)
        train, val = data.split(0.25, seed=1)
        # round half away from zero, as C's round()
        self.assertEqual(len(val), sum(int(0.25 * c + 0.5) for c in data.class_counts().values()))
        self.assertEqual(len(train) + len(val), len(data))
        model = csnn.Model.from_spec(TINY_SPEC, seed=1)
        self.assertEqual(model.classes, ["0", "1", "2"])
        trainer = csnn.Trainer(model, epochs=6, batch_size=16, lr=1e-2, seed=3, augment=False,
                               patience=0)
        events = []
        history = trainer.fit(train, val, callback=events.append,
                              output=self.path("best.csnn"))
        self.assertFalse(trainer.stopped)
        self.assertEqual(len(history), 6)
        self.assertEqual(history, trainer.history)
        for i, e in enumerate(history):
            self.assertEqual(e["epoch"], i)
            self.assertEqual(e["samples"], len(train))
            self.assertIsNotNone(e["val_accuracy"])
            self.assertEqual(set(e), {"epoch", "improved", "train_loss", "train_accuracy",
                                      "val_loss", "val_accuracy", "learning_rate", "seconds",
                                      "samples"})
        self.assertLess(history[-1]["train_loss"], history[0]["train_loss"])
        self.assertGreaterEqual(max(e["val_accuracy"] for e in history), 0.9)
        # the model took the dataset's class names
        self.assertEqual(model.classes, PATTERN_CLASSES)
        # progress reports
        phases = [e["phase"] for e in events]
        self.assertEqual(phases.count("epoch_end"), 6)
        batches = -(-len(train) // 16)
        self.assertEqual(phases.count("batch"), 6 * batches)
        first = events[0]
        self.assertEqual(first["batch"], 1)
        self.assertEqual(first["batches"], batches)
        self.assertEqual(first["epochs"], 6)
        self.assertIsNone(first["metrics"])
        for key in ("loss", "accuracy", "samples_per_s", "elapsed_s", "eta_s"):
            self.assertIsInstance(first[key], float)
        ends = [e for e in events if e["phase"] == "epoch_end"]
        self.assertEqual([e["metrics"] for e in ends], history)
        # files: the best model and the last checkpoint
        self.assertTrue(os.path.isfile(self.path("best.csnn")))
        self.assertTrue(os.path.isfile(self.path("best.csnn.last")))

        # evaluate
        r = model.evaluate(val)
        self.assertEqual(set(r), {"loss", "accuracy", "samples", "classes", "confusion",
                                  "per_class", "firing_rates"})
        self.assertEqual(r["classes"], PATTERN_CLASSES)
        self.assertEqual(r["samples"], len(val))
        conf = as_lists(r["confusion"])
        self.assertEqual(len(conf), 3)
        self.assertEqual(sum(map(sum, conf)), len(val))
        self.assertAlmostEqual(r["accuracy"], sum(conf[i][i] for i in range(3)) / len(val))
        self.assertEqual(list(r["per_class"]), PATTERN_CLASSES)
        self.assertEqual(sum(c["support"] for c in r["per_class"].values()), len(val))
        self.assertEqual(set(r["firing_rates"]), {"sn1", "sn2", "sn3"})
        rt = trainer.evaluate(val)
        self.assertAlmostEqual(rt["accuracy"], r["accuracy"])

        # save, load, predict the same
        model.save(self.path("final.csnn"))
        x, y = pattern_data(20, seed=9)
        rates = model.predict(x)
        labels_pred = model.classify(x)
        self.assertEqual(len(as_lists(rates)), 20)
        self.assertEqual(len(as_lists(rates)[0]), 3)
        correct = sum(int(a == b) for a, b in zip(as_lists(labels_pred), y))
        self.assertGreaterEqual(correct, 16)
        with csnn.Model.load(self.path("final.csnn"), device="cpu") as loaded:
            self.assertEqual(loaded.classes, PATTERN_CLASSES)
            self.assertEqual(loaded.spec, model.spec)
            self.assertEqual(loaded.num_params, model.num_params)
            self.assertEqual(as_lists(loaded.predict(x)), as_lists(rates))
            self.assertEqual(as_lists(loaded.predict(x, batch_size=3)), as_lists(rates))
            self.assertEqual(loaded.evaluate(val)["accuracy"], r["accuracy"])
        # a checkpoint loads as a model too
        with csnn.Model.load(self.path("best.csnn.last")) as ck:
            self.assertEqual(ck.spec, model.spec)
        trainer.close()
        model.close()
        for d in (train, val, data):
            d.close()

    def test_step_and_tensors(self):
        pixels, labels = pattern_data(16, seed=4)
        with csnn.Model.from_spec(TINY_SPEC, seed=2) as m, csnn.Trainer(m, lr=1e-2) as t:
            losses = [t.step(pixels, labels)["loss"] for _ in range(8)]
            self.assertEqual(t.steps, 8)
            self.assertLess(losses[-1], losses[0])
            r = t.step(pixels, labels)
            self.assertEqual(r["n"], 16)
            self.assertLessEqual(r["correct"], 16)
            tensors = m.tensors()
            self.assertEqual(sum(x["numel"] for x in tensors if x["kind"] == csnn.TensorKind.PARAM),
                             m.num_params)
            name = tensors[0]["name"]
            w = m.get_tensor(name)
            flat = as_lists(w)
            while flat and isinstance(flat[0], list):
                flat = [v for row in flat for v in row]
            m.set_tensor(name, [0.5] * len(flat))
            again = as_lists(m.get_tensor(name))
            while again and isinstance(again[0], list):
                again = [v for row in again for v in row]
            self.assertEqual(again, [0.5] * len(flat))
            self.assertIn("Total params", m.summary())
            self.assertIn("[4, 1, 8, 8]", m.summary(batch=4))
            info = m.info
            self.assertEqual(info["input_shape"], (1, 8, 8))
            self.assertEqual(info["time_steps"], 4)
            self.assertTrue(info["spiking_output"])

    def test_layer_times(self):
        pixels, labels = pattern_data(8, seed=5)
        with csnn.Model.from_spec(TINY_SPEC, seed=2) as m, csnn.Trainer(m) as t:
            m.set_layer_timing(True)
            t.step(pixels, labels)
            m.predict(pixels)
            m.set_layer_timing(False)
            m.predict(pixels)  # not counted
            times = m.layer_times()
            self.assertEqual(len(times), m.info["num_layers"])
            self.assertEqual(times[0]["name"], "conv1")
            self.assertEqual(times[0]["kind"], "conv")
            # the conv runs forward in the step and the prediction; the
            # max-pool runs fused with its neuron layer and books nothing
            self.assertEqual(times[0]["forward_calls"], 2)
            self.assertEqual(times[0]["backward_calls"], 1)
            pool = [x for x in times if x["kind"] == "maxpool"][0]
            self.assertEqual(pool["forward_calls"] + pool["backward_calls"], 0)
            self.assertTrue(all(x["forward_s"] >= 0 and x["backward_s"] >= 0 for x in times))
            m.set_layer_timing(True)
            self.assertEqual(m.layer_times()[0]["forward_calls"], 0)

    def test_profile(self):
        pixels, labels = pattern_data(24, seed=6)
        with csnn.Model.from_spec(TINY_SPEC, seed=2) as m, \
                csnn.Dataset.from_arrays(pixels, labels, height=8, width=8) as ds:
            p = m.profile(ds)
            self.assertEqual(p["samples"], 24)
            self.assertEqual(p["mac_pj"], 4.6)
            self.assertEqual(p["ac_pj"], 0.9)
            self.assertEqual(len(p["layers"]), m.info["num_layers"])
            self.assertEqual(p["total"]["name"], "total")
            kinds = {x["name"]: x for x in p["layers"]}
            conv = [x for x in p["layers"] if x["kind"] == "conv"][0]
            self.assertEqual(conv["counted_as"], csnn.OpKind.MAC)  # its input is the image
            self.assertGreater(conv["macs"], 0)
            lin = [x for x in p["layers"] if x["kind"] == "linear"]
            self.assertTrue(all(x["counted_as"] == csnn.OpKind.AC for x in lin))
            self.assertAlmostEqual(p["total"]["macs"], sum(x["macs"] for x in p["layers"]))
            self.assertAlmostEqual(p["total"]["energy_pj"],
                                   sum(x["energy_pj"] for x in p["layers"]))
            self.assertTrue(any(x["firing_rate"] is not None for x in kinds.values()))
            q = m.profile(ds, mac_pj=1.0, ac_pj=0.5, max_samples=8)
            self.assertEqual((q["samples"], q["mac_pj"], q["ac_pj"]), (8, 1.0, 0.5))
            with self.assertRaises(csnn.Error) as cm:
                m.profile(ds, max_samples=-1)
            self.assertEqual(cm.exception.name, "CSNN_ERR_INVALID_ARGUMENT")

    def test_params_mapping(self):
        with csnn.Model.from_spec(TINY_SPEC) as m, \
                csnn.Trainer(m, optimizer="sgd", loss=csnn.Loss.CE, lr_schedule="cosine",
                             nesterov=True, aug_rotate=0, learning_rate=0.05) as t:
            p = t.params
            self.assertEqual(p["optimizer"], csnn.Optimizer.SGD)
            self.assertEqual(p["loss"], csnn.Loss.CE)
            self.assertEqual(p["lr_schedule"], csnn.LRSchedule.COSINE)
            self.assertIs(p["nesterov"], True)
            self.assertEqual(p["lr"], 0.05)
            self.assertEqual(p[csnn.TrainParam.LEARNING_RATE], 0.05)
            p["batch_size"] = 4
            self.assertEqual(p["batch_size"], 4)
            self.assertIsInstance(p["epochs"], int)
            self.assertEqual(len(p), len(csnn.TrainParam))
            self.assertEqual(set(dict(p)), set(p))
            self.assertEqual(p.bounds("label_smoothing")[0], 0.0)
            self.assertEqual(p["patience"], 10)  # the library's default
        with csnn.Model.from_spec(TINY_SPEC) as m, csnn.Trainer(m, augment=False) as t:
            for k in ("aug_hflip", "aug_vflip", "aug_rotate", "aug_crop_pad", "aug_brightness",
                      "aug_contrast"):
                self.assertEqual(t.params[k], 0)

    def test_time_steps(self):
        with csnn.Model.from_preset("fer-csnn", time_steps=2, seed=1) as m:
            self.assertEqual(m.time_steps, 2)
            self.assertIn("steps 2", m.spec)
            with csnn.Trainer(m, time_steps=2):
                pass
            with self.assertRaises(csnn.Error):
                csnn.Trainer(m, time_steps=4)
        with csnn.Model.from_spec("input 1x4x4\nflatten\nlinear 2\nlif\n") as m:
            self.assertEqual(m.time_steps, 1)
        spec = csnn._spec_with_steps("input 1x4x4\nflatten\nlinear 2\nlif\n", 3)
        with csnn.Model.from_spec(spec) as m:
            self.assertEqual(m.time_steps, 3)


class TestCallbacks(TempDirCase):
    def setUp(self):
        super().setUp()
        pixels, labels = pattern_data(64, seed=2)
        self.data = csnn.Dataset.from_arrays(pixels, labels, PATTERN_CLASSES, height=8, width=8)

    def tearDown(self):
        self.data.close()
        super().tearDown()

    def fresh(self, **kw):
        m = csnn.Model.from_spec(TINY_SPEC, seed=5)
        kw.setdefault("epochs", 4)
        return m, csnn.Trainer(m, batch_size=8, lr=1e-2, seed=1, **kw)

    def test_stop_at_batch(self):
        m, t = self.fresh()
        calls = []

        def cb(p):
            calls.append(p)
            return p["phase"] == "batch" and p["epoch"] == 1 and p["batch"] == 3

        history = t.fit(self.data, callback=cb)
        self.assertTrue(t.stopped)
        self.assertEqual(len(history), 1)  # the epoch in progress does not count
        self.assertEqual(calls[-1]["batch"], 3)
        # a later fit runs normally again
        history = t.fit(self.data)
        self.assertFalse(t.stopped)
        self.assertEqual(len(history), 4)
        t.close()
        m.close()

    def test_stop_at_epoch_end(self):
        m, t = self.fresh()
        history = t.fit(self.data, callback=lambda p: p["phase"] == "epoch_end")
        self.assertTrue(t.stopped)
        self.assertEqual(len(history), 1)
        t.close()
        m.close()

    def test_progress_every(self):
        m, t = self.fresh(epochs=1)
        seen = []
        t.fit(self.data, callback=lambda p: seen.append((p["phase"], p["batch"])),
              progress_every=3)
        self.assertEqual(seen, [("batch", 3), ("batch", 6), ("batch", 8), ("epoch_end", 8)])
        t.close()
        m.close()

    def test_exception_in_callback(self):
        m, t = self.fresh()

        class Boom(Exception):
            pass

        def cb(p):
            if p["batch"] == 2:
                raise Boom("from the callback")

        with self.assertRaises(Boom):
            t.fit(self.data, callback=cb)
        self.assertEqual(len(t.history), 0)
        # KeyboardInterrupt is carried over the C boundary the same way
        def interrupt(p):
            raise KeyboardInterrupt

        with self.assertRaises(KeyboardInterrupt):
            t.fit(self.data, callback=interrupt)
        # the trainer is still usable
        self.assertEqual(len(t.fit(self.data)), 4)
        t.close()
        m.close()

    def test_ctrl_c_stops_fit(self):
        """SIGINT during fit stops training at the next batch and raises
        KeyboardInterrupt when fit returns; the handler is restored."""
        import signal
        import subprocess
        import sys
        if not hasattr(signal, "SIGINT") or sys.platform == "win32":
            self.skipTest("no SIGINT")
        code = (
            "import signal, sys, time\n"
            "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "import csnn\n"
            "from support import TINY_SPEC, pattern_data\n"
            "px, lb = pattern_data(64)\n"
            "ds = csnn.Dataset.from_arrays(px, lb, height=8, width=8)\n"
            "m = csnn.Model.from_spec(TINY_SPEC)\n"
            "t = csnn.Trainer(m, epochs=1000000, batch_size=4)\n"
            "print('ready', flush=True)\n"
            "try:\n"
            "    t.fit(ds)\n"
            "except KeyboardInterrupt:\n"
            "    ok = signal.getsignal(signal.SIGINT) is signal.default_int_handler\n"
            "    print('interrupted', len(t.history) > 0, ok, flush=True)\n")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.abspath(__file__))] +
                                            [p for p in sys.path if p])
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        try:
            self.assertEqual(proc.stdout.readline().strip(), "ready")
            import time
            time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        self.assertEqual(out.strip(), "interrupted True True", err)
        self.assertNotIn("Exception ignored", err)
        # in this process (main thread or not) fit leaves the handler alone
        before = signal.getsignal(signal.SIGINT)
        m, t = self.fresh(epochs=1)
        t.fit(self.data)
        self.assertIs(signal.getsignal(signal.SIGINT), before)
        t.close()
        m.close()

    def test_resume_is_exact(self):
        out_a = self.path("a.csnn")
        out_b = self.path("b.csnn")
        m, t = self.fresh()
        full = t.fit(self.data, output=out_a)
        t.close()
        m.close()

        m, t = self.fresh()
        part = t.fit(self.data, output=out_b,
                     callback=lambda p: p["phase"] == "epoch_end" and p["epoch"] == 1)
        self.assertTrue(t.stopped)
        self.assertEqual(len(part), 2)
        t.close()
        m.close()

        m, t = self.fresh()
        resumed = t.fit(self.data, output=out_b, resume=out_b + ".last")
        self.assertEqual(strip_times(resumed), strip_times(full))
        with csnn.Model.load(out_a) as a, csnn.Model.load(out_b) as b:
            x, _ = pattern_data(10, seed=11)
            self.assertEqual(as_lists(a.predict(x)), as_lists(b.predict(x)))
        t.save_checkpoint(self.path("manual.ckpt"))
        steps = t.steps
        t.close()
        m.close()
        m, t = self.fresh()
        t.load_checkpoint(self.path("manual.ckpt"))
        self.assertEqual(t.steps, steps)
        t.close()
        m.close()

    def test_log_callback(self):
        messages = []
        with csnn.Context("cpu", log=lambda lvl, msg: messages.append((lvl, msg)),
                          log_level="info") as ctx:
            self.assertTrue(any("context on cpu" in msg for _, msg in messages))
            with csnn.Model.from_spec(TINY_SPEC, context=ctx) as m, \
                    csnn.Trainer(m, epochs=1) as t:
                t.fit(self.data)
            self.assertTrue(any(msg.startswith("epoch 1:") and lvl == csnn.LogLevel.INFO
                                for lvl, msg in messages), messages)
            n = len(messages)
            ctx.set_log(None)
            with csnn.Model.from_spec(TINY_SPEC, context=ctx) as m, \
                    csnn.Trainer(m, epochs=1) as t:
                t.fit(self.data)
            self.assertEqual(len(messages), n)
            with self.assertLogs("csnn", level="INFO") as logs:
                ctx.set_log(True, level="info")
                with csnn.Model.from_spec(TINY_SPEC, context=ctx) as m, \
                        csnn.Trainer(m, epochs=1) as t:
                    t.fit(self.data)
            self.assertTrue(any("epoch 1:" in line for line in logs.output))
            self.assertIn("cpu", repr(ctx))
            self.assertTrue(ctx.description)


class TestFilesAndFolders(TempDirCase):
    def test_synth_folder_and_predict_files(self):
        csnn.synth_write(self.path("faces"), per_class=3, seed=2, height=12, width=12,
                         jpeg_percent=0)
        with csnn.Dataset.from_folder(self.path("faces"), height=12, width=12) as ds:
            self.assertEqual(ds.classes, list(csnn.SYNTH_CLASSES))
            self.assertEqual(len(ds), 21)
            self.assertEqual(ds.shape, (12, 12))
            self.assertEqual(ds.info["channels"], 1)
            self.assertTrue(ds.source(0).endswith(".png"))
            images, labels = csnn.synth_generate(per_class=3, seed=2, height=12, width=12)[:2]
            got_images, got_labels = ds.to_arrays()
            # PNG is lossless: the same images per class as synth_generate
            per = 144

            def by_class(pix, labs):
                pix = bytes(pix) if not hasattr(pix, "tobytes") else pix.tobytes()
                out = {}
                for i, lab in enumerate(as_lists(labs)):
                    out.setdefault(lab, []).append(pix[i * per:(i + 1) * per])
                return {k: sorted(v) for k, v in out.items()}

            self.assertEqual(by_class(got_images, got_labels), by_class(images, labels))
            px, lab = ds[0]
            self.assertEqual(len(bytes(px) if not hasattr(px, "tobytes") else px.tobytes()), 144)
        files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(self.path("faces"))
                       for f in fs)
        self.assertEqual(len(files), 21)
        img = csnn.load_image(files[0], height=12, width=12)
        self.assertEqual(len(bytes(img) if not hasattr(img, "tobytes") else img.tobytes()), 144)
        spec = (TINY_SPEC.replace("1x8x8", "1x12x12").replace("classes 3", "classes 7")
                .replace("linear 3", "linear 7"))
        with csnn.Model.from_spec(spec) as m:
            m.classes = list(csnn.SYNTH_CLASSES)
            names, rates = m.predict_files(files)
            self.assertEqual(len(names), 21)
            self.assertTrue(set(names) <= set(csnn.SYNTH_CLASSES))
            self.assertEqual(len(as_lists(rates)), 21)
            one, _ = m.predict_files(files[0])
            self.assertEqual(one, names[:1])
            # the same as predicting the decoded pixels
            direct = m.predict(img)
            self.assertEqual(as_lists(direct), as_lists(rates)[:1])

    def test_fer2013_csv(self):
        rows = ["emotion,pixels,Usage"]
        for i in range(6):
            rows.append("%d,%s,%s" % (i % 7, " ".join(str((i * 7 + p) % 256)
                                                        for p in range(48 * 48)),
                                      "Training" if i < 4 else "PublicTest"))
        with open(self.path("fer.csv"), "w") as f:
            f.write("\n".join(rows) + "\n")
        with csnn.Dataset.from_fer2013_csv(self.path("fer.csv")) as ds:
            self.assertEqual(len(ds), 6)
            self.assertEqual(ds.classes, ["angry", "disgust", "fear", "happy", "neutral", "sad",
                                          "surprise"])
            self.assertIn("fer.csv:", ds.source(0))
        with csnn.Dataset.from_fer2013_csv(self.path("fer.csv"), usage="PublicTest") as ds:
            self.assertEqual(len(ds), 2)
        with csnn.Dataset.load(self.path("fer.csv"), usage="Training", height=24,
                               width=24) as ds:
            self.assertEqual(len(ds), 4)
            self.assertEqual(ds.shape, (24, 24))

    def test_synth_generate(self):
        images, labels, classes = csnn.synth_generate(per_class=2, seed=1, height=10, width=10)
        self.assertEqual(classes, list(csnn.SYNTH_CLASSES))
        self.assertEqual(len(as_lists(labels)), 14)
        self.assertEqual(sorted(set(as_lists(labels))), list(range(7)))
        again = csnn.synth_generate(per_class=2, seed=1, height=10, width=10)[0]
        self.assertEqual(bytes(images) if not hasattr(images, "tobytes") else images.tobytes(),
                         bytes(again) if not hasattr(again, "tobytes") else again.tobytes())
        with csnn.Dataset.from_arrays(images, labels, classes, height=10, width=10) as ds:
            self.assertEqual(ds.class_counts(), {c: 2 for c in classes})

    def test_arrays_without_numpy_forms(self):
        """bytes, bytearray, array.array and nested lists are accepted."""
        import array
        pixels, labels = pattern_data(4)
        nested = [[[pixels[i * 64 + r * 8 + c] for c in range(8)] for r in range(8)]
                  for i in range(4)]
        floats = [[[v / 255.0 for v in row] for row in img] for img in nested]
        with csnn.Model.from_spec(TINY_SPEC) as m:
            want = as_lists(m.predict(pixels))
            self.assertEqual(as_lists(m.predict(bytearray(pixels))), want)
            self.assertEqual(as_lists(m.predict(array.array("B", pixels))), want)
            self.assertEqual(as_lists(m.predict(nested)), want)
            self.assertEqual(as_lists(m.predict(floats)), want)
            self.assertEqual(as_lists(m.predict([[img] for img in nested])), want)
            self.assertEqual(as_lists(m.predict(array.array("f", [v / 255.0 for v in pixels]))),
                             want)
            self.assertEqual(as_lists(m.predict(nested[0])), want[:1])
            self.assertEqual(as_lists(m.predict(b"")), [])
        with csnn.Dataset.from_arrays(nested, labels) as a, \
                csnn.Dataset.from_arrays(floats, tuple(labels), num_classes=3) as b, \
                csnn.Dataset.from_arrays(pixels, labels) as c:
            self.assertEqual(a.to_arrays()[0] if not csnn.has_numpy else a.to_arrays()[0].tobytes(),
                             pixels)
            self.assertEqual(as_lists(b.to_arrays()[1]), labels)
            self.assertEqual(c.shape, (8, 8))  # inferred square
            self.assertEqual(a.classes, ["0", "1", "2"][:a.num_classes])


@unittest.skipUnless(csnn.device_available("cuda"), "no usable CUDA device")
class TestCuda(TempDirCase):
    """The same binding on the GPU (runs only where "cuda" is usable)."""

    def test_train_and_predict_on_cuda(self):
        pixels, labels = pattern_data(120, seed=1)
        data = csnn.Dataset.from_arrays(pixels, labels, PATTERN_CLASSES, height=8, width=8)
        train, val = data.split(0.25, seed=1)
        with csnn.Model.from_spec(TINY_SPEC, device="cuda", seed=1) as m, \
                csnn.Trainer(m, epochs=4, batch_size=16, lr=1e-2, augment=False) as t:
            self.assertTrue(m.device.startswith("cuda"))
            history = t.fit(train, val)
            self.assertLess(history[-1]["train_loss"], history[0]["train_loss"])
            m.save(self.path("gpu.csnn"))
            gpu_rates = as_lists(m.predict(pixels))
            gpu_acc = m.evaluate(val)["accuracy"]
        with csnn.Model.load(self.path("gpu.csnn"), device="cpu") as cpu:
            cpu_rates = as_lists(cpu.predict(pixels))
            self.assertAlmostEqual(cpu.evaluate(val)["accuracy"], gpu_acc, delta=0.1)
        same = sum(int(a == b) for a, b in zip(cpu_rates, gpu_rates))
        self.assertGreaterEqual(same, int(0.9 * len(cpu_rates)))
        for d in (train, val, data):
            d.close()


if __name__ == "__main__":
    unittest.main()
