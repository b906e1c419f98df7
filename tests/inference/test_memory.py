"""Memory is bounded by bands of rows, not by the image's per-class probabilities: the peak
RSS of `enc-predict` on large images, sampled in a process of its own."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from enc_tf.models import build_encnet
from tests.support.tiny_run import ROOT

pytestmark = pytest.mark.slow
GIB = 1024**3
# The peak is VmHWM, the high-water mark of this process's own memory. getrusage's
# ru_maxrss would not do: Linux carries it across exec, so the child would report the
# pytest process it was forked from. enc-predict runs as users start it (`_enc_tf_launch`,
# with the C allocator's thresholds it sets).
DRIVER = (
    "import re, sys, _enc_tf_launch; code = _enc_tf_launch.enc_predict(sys.argv[1:]); "
    "kib = re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read())[1]; "
    "print('peak', int(kib) * 1024); sys.exit(code)"
)


def _predict(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    peak = int(done.stdout.split("peak")[-1]) if "peak" in done.stdout else None
    return done, peak


def _model(tmp_path, classes):
    path = tmp_path / f"m{classes}.keras"
    build_encnet(classes, backbone="mobilenetv3_small_minimalistic", output_stride=16).save(path)
    return path


def test_a_9000_square_image_and_a_3_megapixel_photo_with_150_classes(tmp_path):
    """The paper's protocol on both, and MMSegmentation's on the large one."""
    big = tmp_path / "big.png"
    Image.new("RGB", (9000, 9000), (40, 120, 200)).save(big)  # a 250 KB file of 243 MB of pixels
    assert big.stat().st_size < 300_000
    done, peak = _predict(_model(tmp_path, 8), big, "--out", tmp_path / "out8")
    assert done.returncode == 0 and peak < 3 * GIB, (peak, done.stderr[-2000:])
    photo = tmp_path / "photo.jpg"
    pixels = np.random.default_rng(0).integers(0, 256, (1536, 2048, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(photo)
    done, peak = _predict(_model(tmp_path, 150), photo, "--out", tmp_path / "out150")
    assert done.returncode == 0 and peak < 3 * GIB, (peak, done.stderr[-2000:])
    assert (tmp_path / "out150" / "photo_labels.png").is_file()
    # MMSegmentation's protocol: one pass in the 2048 x 512 box, its logits resized back in
    # bands (the whole 9000 x 9000 x 8 would be 2.4 GiB, with the image and labels over 3).
    mmseg = ["--protocol", "mmseg", "--mmseg-preset", "ade20k", "--out", tmp_path / "mm"]
    done, peak = _predict(_model(tmp_path, 8), big, *mmseg)
    assert done.returncode == 0 and peak < 3 * GIB, (peak, done.stderr[-2000:])
    assert Image.open(tmp_path / "mm" / "big_labels.png").size == (9000, 9000)


def test_an_image_over_the_limit_is_refused_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    Image.new("RGB", (9000, 9000)).save(bomb)
    done, peak = _predict(
        _model(tmp_path, 8), bomb, "--out", tmp_path / "out", "--max-pixels", 10**7
    )
    assert done.returncode == 1 and peak < 2 * GIB, done.stderr[-2000:]
    assert "9000 x 9000 = 81000000 pixels, over the limit of 10000000" in done.stderr
