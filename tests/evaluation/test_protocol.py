import math

import numpy as np
import pytest

from enc_tf.contracts.images import long_side_size as scaled_size
from enc_tf.contracts.images import normalize
from enc_tf.evaluation import evaluate_protocol
from enc_tf.metrics import label_confusion
from enc_tf.protocols import PaperConfig, PaperPredictor, window_starts
from tests.support.tiny_models import tiny_segmenter


def np_resize(x, height, width):
    """Bilinear, corners aligned, float64 (as torch's align_corners=True)."""
    h, w = x.shape[:2]
    ys = np.arange(height) * ((h - 1) / (height - 1) if height > 1 else 0.0)
    xs = np.arange(width) * ((w - 1) / (width - 1) if width > 1 else 0.0)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = x[y0][:, x0] * (1 - wx) + x[y0][:, x1] * wx
    bottom = x[y1][:, x0] * (1 - wx) + x[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


def np_softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def reference(model, image, base, crop, scales, flip, pad_value):
    """The protocol composed directly from single passes of the model, in NumPy."""

    def single(x):  # one crop x crop pass (+ flip), probabilities
        p = np_softmax(np.asarray(model(x[None].astype("float32"))["seg"], np.float64)[0])
        if flip:
            q = np_softmax(
                np.asarray(model(x[None, :, ::-1].astype("float32"))["seg"], np.float64)[0]
            )
            p = p + q[:, ::-1]
        return p

    def pad(x, size):
        out = np.empty((max(x.shape[0], size), max(x.shape[1], size), 3))
        out[...] = pad_value
        out[: x.shape[0], : x.shape[1]] = x
        return out

    h, w = image.shape[:2]
    total = 0
    for s in scales:
        long = int(math.ceil(base * s))
        height, width = (
            (long, int(w * long / h + 0.5)) if h > w else (int(h * long / w + 0.5), long)
        )
        x = np_resize(image.astype(np.float64), height, width)
        if long <= crop:
            out = single(pad(x, crop))[:height, :width]
        else:
            x = pad(x, crop)
            ph, pw = x.shape[:2]
            stride = int(crop * 2 / 3)
            acc, count = np.zeros((ph, pw, 3)), np.zeros((ph, pw, 1))
            for y0 in range(0, int(math.ceil((ph - crop) / stride)) * stride + 1, stride):
                for x0 in range(0, int(math.ceil((pw - crop) / stride)) * stride + 1, stride):
                    y1, x1 = min(y0 + crop, ph), min(x0 + crop, pw)
                    acc[y0:y1, x0:x1] += single(pad(x[y0:y1, x0:x1], crop))[: y1 - y0, : x1 - x0]
                    count[y0:y1, x0:x1] += 1
            assert count.min() > 0
            out = (acc / count)[:height, :width]
        total = total + np_resize(out, h, w)
    return total


def test_geometry_matches_the_original():
    assert scaled_size(20, 30, 24) == (16, 24) and scaled_size(30, 20, 24) == (24, 16)
    assert window_starts(24, 16, 10) == [0, 10] and window_starts(16, 16, 10) == [0]
    assert window_starts(30, 16, 10) == [0, 10, 20]


@pytest.mark.parametrize("flip", [True, False])
def test_multi_scale_flip_sliding_window_equals_composed_single_passes(flip):
    model = tiny_segmenter(3)
    rng = np.random.default_rng(0)
    image = normalize(rng.integers(0, 256, (20, 30, 3))).numpy()
    # 0.5: padded single pass; 1.0: two windows, the last one padded; 1.25: 2 x 3 windows.
    config = PaperConfig(
        base_size=24, crop_size=16, scales=(0.5, 1.0, 1.25), flip=flip, window_batch=4
    )
    predictor = PaperPredictor(model, 3, config)
    ours = predictor.probabilities(image)
    expected = reference(model, image, 24, 16, (0.5, 1.0, 1.25), flip, predictor._pad_value)
    assert ours.shape == (20, 30, 3)
    np.testing.assert_allclose(ours, expected, atol=2e-5)
    assert predictor.num_passes == (6 if flip else 3)
    np.testing.assert_array_equal(predictor.predict(image), np.argmax(expected, -1))
    # The window batch size changes nothing.
    other = PaperPredictor(model, 3, PaperConfig(24, 16, (0.5, 1.0, 1.25), flip, window_batch=1))
    np.testing.assert_allclose(other.probabilities(image), ours, atol=1e-6)


def test_bands_of_any_height_give_the_same_result(monkeypatch):
    """Output rows are made in bands (bounded memory); one row or many, the same numbers."""
    from enc_tf.protocols import common

    model = tiny_segmenter(3)
    image = normalize(np.random.default_rng(3).integers(0, 256, (37, 23, 3))).numpy()
    config = PaperConfig(base_size=30, crop_size=16, scales=(0.75, 1.0, 1.5), flip=True)
    predictor = PaperPredictor(model, 3, config)
    whole = predictor.probabilities(image)
    expected = reference(model, image, 30, 16, (0.75, 1.0, 1.5), True, predictor._pad_value)
    np.testing.assert_allclose(whole, expected, atol=2e-5)
    for values in (1, 3 * 23 * 4, 3 * 23 * 11):  # one row a band, 4 rows, 11 rows
        monkeypatch.setattr(common, "BAND_VALUES", values)
        labels, scores, finite, _ = predictor.labels_and_probabilities(image, probabilities=True)
        np.testing.assert_array_equal(scores, whole)
        np.testing.assert_array_equal(labels, np.argmax(whole, -1))
        assert finite and predictor.labels_and_probabilities(image)[1] is None


def test_label_confusion_by_hand():
    labels = np.array([[0, 0, 1], [2, 255, 1]])
    predictions = np.array([[0, 1, 1], [0, 2, 2]])
    expected = np.zeros((4, 4), np.int64)
    for t, p in [(0, 0), (0, 1), (1, 1), (2, 0), (1, 2)]:  # 255 ignored; class 3 absent
        expected[t, p] += 1
    np.testing.assert_array_equal(label_confusion(labels, predictions, 4), expected)


def test_evaluate_protocol_sums_the_dataset():
    model = tiny_segmenter(3, seed=1)
    predictor = PaperPredictor(model, 3, PaperConfig(24, 16, (0.75, 1.0), True))
    rng = np.random.default_rng(2)
    examples = [
        (normalize(rng.integers(0, 256, (h, w, 3))).numpy(), rng.integers(0, 3, (h, w)))
        for h, w in [(20, 30), (25, 14)]
    ]
    examples[0][1][:3] = 255
    scores, matrix = evaluate_protocol(
        predictor, examples, class_names=["a", "b", "c"], progress=False
    )
    expected = sum(label_confusion(label, predictor.predict(image), 3) for image, label in examples)
    np.testing.assert_array_equal(matrix, expected)
    assert matrix.sum() == 20 * 30 + 25 * 14 - 3 * 30
    assert scores["class_names"] == ["a", "b", "c"]


def test_bad_config_and_input():
    with pytest.raises(ValueError, match="scales"):
        PaperConfig(scales=())
    with pytest.raises(ValueError, match="stride_rate"):
        PaperConfig(stride_rate=0)
    predictor = PaperPredictor(tiny_segmenter(3), 3, PaperConfig(24, 16, (1.0,), False))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        predictor.probabilities(np.zeros((4, 4)))


def test_an_extreme_aspect_ratio_keeps_one_row():
    # 3 x 4000 at a long side of 260 rounds the short side to 0.195 -> 0 in the original.
    assert scaled_size(3, 4000, 260) == (1, 260) and scaled_size(4000, 3, 260) == (260, 1)
    model = tiny_segmenter(3)
    image = normalize(np.random.default_rng(3).integers(0, 256, (2, 300, 3))).numpy()
    # Scale 0.5: long side 24, short side 2 * 24 / 300 = 0.16 -> one row; 1.25: windows over 2 x 60.
    predictor = PaperPredictor(model, 3, PaperConfig(48, 32, (0.5, 1.25), True))
    probabilities = predictor.probabilities(image)
    assert probabilities.shape == (2, 300, 3) and np.all(np.isfinite(probabilities))
    np.testing.assert_allclose(probabilities.sum(-1), predictor.num_passes, atol=1e-4)


def test_config_errors_name_the_setting():
    from enc_tf.errors import ConfigError

    with pytest.raises(ConfigError, match="crop_size must be a positive integer, got 0"):
        PaperConfig(crop_size=0)
    with pytest.raises(ConfigError, match=r"scales must be positive numbers, got \[1.0, nan\]"):
        PaperConfig(scales=(1.0, float("nan")))


def test_working_memory_reused_across_images_changes_no_number():
    """A predictor keeps its bands and working arrays from image to image (`Scratch`):
    images of other sizes in turn, many rows of windows (bands given back and reused by
    other scales within an image), and the numbers equal a fresh predictor's each time."""
    model = tiny_segmenter(3)
    config = PaperConfig(base_size=50, crop_size=16, scales=(0.5, 1.0, 1.5), flip=True)
    kept = PaperPredictor(model, 3, config)
    rng = np.random.default_rng(5)
    images = [
        normalize(rng.integers(0, 256, size + (3,))).numpy()
        for size in [(30, 40), (41, 19), (30, 40), (9, 50)]
    ]
    for image in images:
        expected = PaperPredictor(model, 3, config).probabilities(image)
        np.testing.assert_array_equal(kept.probabilities(image), expected)
    np.testing.assert_allclose(
        kept.probabilities(images[1]),
        reference(model, images[1], 50, 16, (0.5, 1.0, 1.5), True, kept._pad_value),
        atol=2e-5,
    )
    # One scale at the image's own size: the bands of new arrays (`scale_probabilities`) and
    # the kept ones hold the same numbers.
    native = PaperPredictor(model, 3, PaperConfig(base_size=40, crop_size=16, scales=(1.0,)))
    for _ in range(2):
        np.testing.assert_array_equal(
            native.probabilities(images[0]), native.scale_probabilities(images[0], 1.0)
        )


def test_a_second_image_reuses_the_first_ones_memory():
    """The bands and working arrays of one image serve the next of its size: far less new
    memory (NumPy's allocations, traced) than for the first image."""
    import tracemalloc

    model = tiny_segmenter(20)
    config = PaperConfig(base_size=96, crop_size=48, scales=(1.0, 1.5), flip=False)
    predictor = PaperPredictor(model, 20, config)
    image = np.random.default_rng(6).integers(0, 256, (72, 96, 3)).astype(np.uint8)
    predictor._windows(np.zeros((1, 48, 48, 3), np.float32))  # traced before measuring
    tracemalloc.start()
    try:
        peaks = []
        for _ in range(2):
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            predictor.predict(image)
            peaks.append(tracemalloc.get_traced_memory()[1] - before)
    finally:
        tracemalloc.stop()
    bands = 48 * 144 * 20 * 4  # one band of the 1.5 scale
    assert peaks[0] > 2 * bands and peaks[1] < peaks[0] / 4, peaks


def test_calls_from_several_threads_each_get_their_own_working_memory():
    import threading

    model = tiny_segmenter(3)
    config = PaperConfig(base_size=50, crop_size=16, scales=(0.5, 1.0, 1.5), flip=True)
    shared = PaperPredictor(model, 3, config)
    rng = np.random.default_rng(8)
    images = [normalize(rng.integers(0, 256, (30 + i, 40, 3))).numpy() for i in range(4)]
    expected = [PaperPredictor(model, 3, config).probabilities(image) for image in images]
    results, barrier = [None] * 4, threading.Barrier(4)

    def run(i):
        barrier.wait()
        results[i] = [shared.probabilities(images[i]) for _ in range(3)]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        for result in results[i]:
            np.testing.assert_array_equal(result, expected[i])
