"""Shared helpers of the csnn binding tests (standard library only)."""

import os
import random
import shutil
import tempfile
import unittest

import csnn

#: A small spiking network on 8x8 images that learns PATTERN data in seconds.
TINY_SPEC = ("input 1x8x8\nsteps 4\nclasses 3\n"
             "static: conv 4 k=3 p=1; bn\nif\nmaxpool 2\nflatten\n"
             "linear 16\nlif\nlinear 3\nlif\n")

PATTERN_CLASSES = ["top", "bottom", "left"]


def pattern_data(n, seed=0):
    """n 8x8 uint8 images (bytes, n*64) of three easy classes -- bright top
    half, bright bottom half, bright left half -- with noise, and labels."""
    rng = random.Random(seed)
    pixels = bytearray()
    labels = []
    for _ in range(n):
        c = rng.randrange(3)
        labels.append(c)
        for r in range(8):
            for col in range(8):
                v = rng.random() * 0.3
                if (c == 0 and r < 4) or (c == 1 and r >= 4) or (c == 2 and col < 4):
                    v += 0.6
                pixels.append(int(round(min(v, 1.0) * 255)))
    return bytes(pixels), labels


def rss_kb():
    """Resident set size of this process in KiB (Linux), or None."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        return None


def source_root():
    """The libcsnn source tree (for header checks), or None."""
    root = os.environ.get("CSNN_SOURCE_ROOT")
    if root and os.path.isdir(root):
        return root
    here = os.path.dirname(os.path.abspath(__file__))
    guess = os.path.normpath(os.path.join(here, "..", "..", ".."))
    if os.path.isfile(os.path.join(guess, "include", "csnn", "csnn.h")):
        return guess
    return None


needs_numpy = unittest.skipUnless(csnn.has_numpy, "numpy is not installed")


class TempDirCase(unittest.TestCase):
    """A TestCase with a fresh temporary directory in self.dir."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="csnn-py-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def assertRaisesStatus(self, name, fn, *args, **kwargs):
        """fn(*args, **kwargs) raises csnn.Error with status `name`
        ("CSNN_ERR_..."), a non-empty message; returns the Error."""
        with self.assertRaises(csnn.Error) as cm:
            fn(*args, **kwargs)
        err = cm.exception
        self.assertEqual(err.name, name, str(err))
        self.assertEqual(csnn.status_name(err.status), name)
        self.assertTrue(err.message)
        self.assertIn(name, str(err))
        return err
