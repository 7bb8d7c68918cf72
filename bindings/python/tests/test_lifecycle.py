"""Ownership: context managers, deterministic cleanup, children keeping their
parents alive, the C destroy order (also under garbage collection of
cycles), threads, and no leaks over many create/destroy cycles."""

import gc
import threading
import unittest

import csnn

from support import PATTERN_CLASSES, TINY_SPEC, pattern_data, rss_kb


class DestroyRecorder:
    """Wraps the C destroy functions to record the order of destroy calls."""

    NAMES = ("csnn_context_destroy", "csnn_model_destroy", "csnn_dataset_destroy",
             "csnn_trainer_destroy")

    def __enter__(self):
        self.calls = []
        self.saved = {}
        for name in self.NAMES:
            real = getattr(csnn.lib, name)
            self.saved[name] = real

            def wrapper(handle, _real=real, _name=name):
                self.calls.append((_name.split("_")[1], handle))
                return _real(handle)

            setattr(csnn.lib, name, wrapper)
        return self

    def __exit__(self, *exc):
        for name, fn in self.saved.items():
            setattr(csnn.lib, name, fn)

    def kinds(self):
        return [k for k, _ in self.calls]


class TestOwnership(unittest.TestCase):
    def test_with_blocks_close(self):
        with DestroyRecorder() as rec:
            with csnn.Context() as ctx:
                with csnn.Model.from_spec(TINY_SPEC, context=ctx) as m:
                    with csnn.Trainer(m) as t:
                        pass
                    self.assertTrue(t.closed)
                    self.assertFalse(m.closed)
                self.assertTrue(m.closed)
        self.assertEqual(rec.kinds(), ["trainer", "model", "context"])

    def test_implicit_context_follows_its_objects(self):
        with DestroyRecorder() as rec:
            m = csnn.Model.from_spec(TINY_SPEC, device="cpu")
            ctx = m.context
            self.assertEqual(m.device, "cpu")
            m.close()
            self.assertTrue(ctx.closed)
        self.assertEqual(rec.kinds(), ["model", "context"])

        pixels, labels = pattern_data(30)
        with DestroyRecorder() as rec:
            ds = csnn.Dataset.from_arrays(pixels, labels, PATTERN_CLASSES, height=8, width=8)
            a, b = ds.split(0.5, seed=2)
            ds.close()
            self.assertFalse(ds.context.closed)  # the splits still use it
            self.assertEqual(len(a) + len(b), 30)
            a.close()
            self.assertFalse(b.context.closed)
            b.close()
            self.assertTrue(b.context.closed)
        self.assertEqual(rec.kinds(), ["dataset"] * 3 + ["context"])

    def test_failed_creation_closes_implicit_context(self):
        with DestroyRecorder() as rec:
            with self.assertRaises(csnn.Error):
                csnn.Model.from_spec("nonsense")
            with self.assertRaises(csnn.Error):
                csnn.Dataset.from_folder("/nonexistent/dir")
        self.assertEqual(rec.kinds(), ["context", "context"])

    def test_children_keep_parents_alive(self):
        t = csnn.Trainer(csnn.Model.from_spec(TINY_SPEC, seed=1), epochs=1, batch_size=8)
        pixels, labels = pattern_data(16)
        ds = csnn.Dataset.from_arrays(pixels, labels, PATTERN_CLASSES, height=8, width=8)
        gc.collect()
        self.assertEqual(len(t.fit(ds)), 1)  # the model and its context are alive
        self.assertFalse(t.model.closed)
        with DestroyRecorder() as rec:
            del t
            gc.collect()
        self.assertEqual(rec.kinds(), ["trainer", "model", "context"])
        ds.close()

    def test_closing_a_parent_closes_children_first(self):
        pixels, labels = pattern_data(8)
        with DestroyRecorder() as rec:
            ctx = csnn.Context()
            m = csnn.Model.from_spec(TINY_SPEC, context=ctx)
            t = csnn.Trainer(m)
            ds = csnn.Dataset.from_arrays(pixels, labels, height=8, width=8, context=ctx)
            ctx.close()
            for obj in (m, t, ds, ctx):
                self.assertTrue(obj.closed)
            with self.assertRaises(csnn.Error) as cm:
                t.steps
            self.assertEqual(cm.exception.name, "CSNN_ERR_STATE")
            with self.assertRaises(csnn.Error):
                csnn.Model.from_spec(TINY_SPEC, context=ctx)
        kinds = rec.kinds()
        self.assertEqual(kinds[-1], "context")
        self.assertLess(kinds.index("trainer"), kinds.index("model"))
        self.assertEqual(sorted(kinds), ["context", "dataset", "model", "trainer"])

        with DestroyRecorder() as rec:
            m = csnn.Model.from_spec(TINY_SPEC)
            t = csnn.Trainer(m)
            m.close()
            self.assertTrue(t.closed)
        self.assertEqual(rec.kinds(), ["trainer", "model", "context"])

    def test_garbage_cycles_keep_the_c_order(self):
        """Objects in a reference cycle are finalized in arbitrary order;
        parents still outlive their children in C."""
        for _ in range(5):
            with DestroyRecorder() as rec:
                ctx = csnn.Context()
                m = csnn.Model.from_spec(TINY_SPEC, context=ctx)
                t = csnn.Trainer(m)
                bag = [ctx, m, t]
                bag.append(bag)
                ctx.bag = m.bag = t.bag = bag
                del ctx, m, t, bag
                gc.collect()
            self.assertEqual(rec.kinds(), ["trainer", "model", "context"], rec.kinds())

    def test_gc_fallback(self):
        with DestroyRecorder() as rec:
            csnn.Model.from_spec(TINY_SPEC)  # dropped at once
            gc.collect()
        self.assertEqual(rec.kinds(), ["model", "context"])

    def test_threads_with_own_models(self):
        x, _ = pattern_data(32, seed=3)
        with csnn.Model.from_spec(TINY_SPEC, seed=4) as ref:
            want = ref.predict(x)
        want = want.tolist() if hasattr(want, "tolist") else want
        results, errors = [], []

        def work():
            try:
                with csnn.Model.from_spec(TINY_SPEC, seed=4) as m:
                    for _ in range(5):
                        r = m.predict(x)
                    results.append(r.tolist() if hasattr(r, "tolist") else r)
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        self.assertEqual(errors, [])
        self.assertEqual(results, [want] * 4)


class TestNoLeaks(unittest.TestCase):
    def cycle(self, pixels, labels, explicit):
        ctx = csnn.Context(threads=1)
        m = csnn.Model.from_spec(TINY_SPEC, context=ctx)
        ds = csnn.Dataset.from_arrays(pixels, labels, PATTERN_CLASSES, height=8, width=8,
                                      context=ctx)
        a, b = ds.split(0.5)
        t = csnn.Trainer(m, batch_size=8, epochs=1)
        t.step(pixels[:8 * 64], labels[:8])
        t.fit(a, b, callback=lambda p: None)
        m.predict(pixels)
        m.evaluate(b)
        m.summary()
        m.classes = ["x", "y", "z"]
        try:
            csnn.Model.from_spec("nonsense", context=ctx)
        except csnn.Error:
            pass
        if explicit:
            ctx.close()

    def test_rss_stays_bounded(self):
        if rss_kb() is None:
            self.skipTest("no /proc/self/statm")
        pixels, labels = pattern_data(160)
        for explicit in (True, False):
            for _ in range(30):  # warm up allocators and caches
                self.cycle(pixels, labels, explicit)
            # Two windows of 300 cycles: baseline growth is ~0.2 MiB a
            # window, and leaking one model, trainer or the datasets of
            # every cycle grows RSS by 4.5 to 70 MiB in each. glibc's
            # allocator now and then keeps a 4 MiB step resident once (its
            # mmap threshold rises after a large free, and later blocks of
            # that size come from a heap): a step in one window only is not
            # a leak, growth in both is.
            grown = []
            for _ in range(2):
                gc.collect()
                before = rss_kb()
                for _ in range(300):
                    self.cycle(pixels, labels, explicit)
                gc.collect()
                grown.append(rss_kb() - before)
            self.assertLess(min(grown), 4 * 1024, "RSS grew by %s KiB in two windows "
                            "(explicit=%s)" % (grown, explicit))

    def test_every_handle_is_destroyed(self):
        """Each cycle destroys exactly what it created (binding-level leaks
        of small objects such as contexts do not show in RSS)."""
        pixels, labels = pattern_data(24)
        for explicit in (True, False):
            with DestroyRecorder() as rec:
                for _ in range(20):
                    self.cycle(pixels, labels, explicit)
                gc.collect()
            kinds = rec.kinds()
            self.assertEqual({k: kinds.count(k) for k in set(kinds)},
                             {"context": 20, "model": 20, "dataset": 60, "trainer": 20})


if __name__ == "__main__":
    unittest.main()
