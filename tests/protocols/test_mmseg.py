"""MMSegmentation's test-time protocol against a float64 NumPy composition of its steps."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from enc_tf.contracts.images import kept_ratio_size, normalize
from enc_tf.errors import ConfigError
from enc_tf.layers.resize import BilinearResize
from enc_tf.protocols import (
    MMSegConfig,
    MMSegPredictor,
    check_settings,
    model_align_corners,
    slide_windows,
)
from tests.support.tiny_models import tiny_segmenter

C = 4
_rng = np.random.default_rng(7)
MIX = _rng.normal(0, 1.5, (3, C))
ROW = _rng.normal(0, 2.0, C)
COL = _rng.normal(0, 2.0, C)


def np_logits(x):
    """The fake network in float64: `(h, w, 3)` -> `(h, w, C)`. The terms in the input's own
    row and (squared) column make window placement and flips change the result."""
    h, w = x.shape[:2]
    rows = (np.arange(h) / h)[:, None, None]
    cols = ((np.arange(w) / w) ** 2)[None, :, None]
    return 2 * np.tanh(x @ MIX) + ROW * rows + COL * cols


def tf_logits(images):
    """`np_logits` on `(B, h, w, 3)` float32 tensors of any size."""
    shape = tf.shape(images)
    h, w = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    rows = tf.range(h) / h
    cols = (tf.range(w) / w) ** 2
    mixed = 2 * tf.tanh(tf.einsum("bhwk,kc->bhwc", images, tf.constant(MIX, tf.float32)))
    return (
        mixed
        + tf.constant(ROW, tf.float32) * rows[:, None, None]
        + tf.constant(COL, tf.float32) * cols[None, :, None]
    )


def np_resize(x, height, width, align_corners):
    """Bilinear resize in float64: corners aligned, or half-pixel centres clamped at the border
    (torch's `align_corners=False`, cv2's INTER_LINEAR)."""

    def taps(size, out):
        if align_corners:
            src = np.arange(out) * ((size - 1) / (out - 1) if out > 1 else 0.0)
        else:
            src = np.clip((np.arange(out) + 0.5) * size / out - 0.5, 0, size - 1)
        low = np.floor(src).astype(int)
        return low, np.minimum(low + 1, size - 1), src - low

    y0, y1, wy = taps(x.shape[0], height)
    x0, x1, wx = taps(x.shape[1], width)
    wy, wx = wy[:, None, None], wx[None, :, None]
    top = x[y0][:, x0] * (1 - wx) + x[y0][:, x1] * wx
    bottom = x[y1][:, x0] * (1 - wx) + x[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


def np_softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def reference(image, net, config, num_classes=C):
    """MMSegmentation's protocol composed step by step in float64 from single calls of `net`."""
    height, width = image.shape[:2]
    passes = []
    for ratio in config.ratios:
        if config.ratios_of == "scale":
            box = (int(config.scale[0] * ratio), int(config.scale[1] * ratio))
        else:
            box = (int(width * ratio + 0.5), int(height * ratio + 0.5))
        factor = min(max(box) / max(height, width), min(box) / min(height, width))
        h, w = int(height * factor + 0.5), int(width * factor + 0.5)
        resized = np_resize(image.astype(np.float64), h, w, align_corners=False)
        for flip in [False, True] if config.flip else [False]:
            x = resized[:, ::-1] if flip else resized
            if config.mode == "whole":
                logits = net(x)
            else:
                crop, stride = config.crop_size, config.stride
                total, count = np.zeros((h, w, num_classes)), np.zeros((h, w, 1))
                for i in range(max(h - crop + stride - 1, 0) // stride + 1):
                    for j in range(max(w - crop + stride - 1, 0) // stride + 1):
                        y2, x2 = min(i * stride + crop, h), min(j * stride + crop, w)
                        y1, x1 = max(y2 - crop, 0), max(x2 - crop, 0)
                        total[y1:y2, x1:x2] += net(x[y1:y2, x1:x2])
                        count[y1:y2, x1:x2] += 1
                logits = total / count
            logits = logits[:, ::-1] if flip else logits
            passes.append(np_softmax(np_resize(logits, height, width, config.align_corners)))
    return np.mean(passes, 0)


def random_image(height, width, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3))
    return normalize(pixels).numpy()


def check(image, config, atol=1e-5):
    predictor = MMSegPredictor(tf_logits, C, config)
    ours = predictor.probabilities(image)
    expected = reference(image, np_logits, config)
    assert ours.shape == image.shape[:2] + (C,)
    np.testing.assert_allclose(ours, expected, atol=atol)
    np.testing.assert_array_equal(predictor.predict(image), np.argmax(expected, -1))
    return ours


def test_size_rule_on_known_cases():
    # ADE20K at (2048, 512): the short side becomes 512 unless the long side would pass 2048.
    assert kept_ratio_size(512, 683, 2048, 512) == (512, 683)  # a typical ADE20K image: as is
    assert kept_ratio_size(384, 512, 2048, 512) == (512, 683)  # 512 * 4/3 = 682.67
    assert kept_ratio_size(683, 512, 2048, 512) == (683, 512)  # portrait: the same rule
    assert kept_ratio_size(256, 256, 2048, 512) == (512, 512)
    assert kept_ratio_size(300, 4000, 2048, 512) == (154, 2048)  # bounded by the long side
    # Cityscapes: 1024 x 2048 at (2048, 1024) is kept, at (2049, 1025) grows by one pixel.
    assert kept_ratio_size(1024, 2048, 2048, 1024) == (1024, 2048)
    assert kept_ratio_size(1024, 2048, 2049, 1025) == (1025, 2049)
    assert kept_ratio_size(1, 5000, 2048, 512) == (1, 2048)  # 0.41 would round to 0
    for h, w in itertools.product((100, 333, 512, 700, 1500, 4000), repeat=2):
        out_h, out_w = kept_ratio_size(h, w, 2048, 512)
        assert min(out_h, out_w) == 512 or max(out_h, out_w) == 2048, (h, w, out_h, out_w)
        assert min(out_h, out_w) <= 512 and max(out_h, out_w) <= 2048
    # The ratios multiply the box (0.x) or the image (1.x's tta_pipeline).
    assert MMSegConfig(scale=(2048, 512)).pass_size(512, 683, 0.75) == (384, 512)
    assert MMSegConfig(scale=(2049, 1025)).pass_size(1024, 2048, 0.75) == (768, 1536)
    assert MMSegConfig(scale=(2048, 512), ratios_of="image").pass_size(300, 400, 1.5) == (450, 600)
    assert MMSegConfig(scale=(2048, 512)).pass_size(300, 400, 1.5) == (768, 1024)


def test_window_grid_on_mmsegmentation_example():
    # A 1025 x 2049 image (Cityscapes at (2049, 1025)), crop 769, stride 513: 2 x 4 windows.
    assert slide_windows(1025, 769, 513) == [(0, 769), (256, 1025)]
    assert slide_windows(2049, 769, 513) == [(0, 769), (513, 1282), (1026, 1795), (1280, 2049)]
    assert slide_windows(769, 769, 513) == [(0, 769)]
    assert slide_windows(500, 769, 513) == [(0, 500)]  # smaller than the crop: one short window
    assert slide_windows(23, 12, 5) == [(0, 12), (5, 17), (10, 22), (11, 23)]


@pytest.mark.parametrize(
    "size, scale, resized",
    [((13, 17), (40, 24), (24, 31)), ((37, 50), (24, 16), (16, 22))],
    ids=["upscale", "downscale"],
)
@pytest.mark.parametrize("align_corners", [False, True])
def test_whole_mode_matches_the_reference(size, scale, resized, align_corners):
    config = MMSegConfig(scale=scale, mode="whole", align_corners=align_corners)
    assert config.pass_size(*size, 1.0) == resized
    check(random_image(*size), config)


@pytest.mark.parametrize(
    "size, scale, rows, cols",
    [
        ((10, 13), (26, 20), [(0, 12), (8, 20)], [(0, 12), (8, 20), (14, 26)]),  # 2 x 3
        ((23, 23), (23, 23), None, [(0, 12), (5, 17), (10, 22), (11, 23)]),  # uneven overlaps
        ((7, 9), (9, 7), [(0, 7)], [(0, 9)]),  # smaller than the crop
        ((8, 30), (30, 8), [(0, 8)], None),  # one side smaller than the crop
    ],
    ids=["2x3", "uneven", "small", "strip"],
)
def test_slide_mode_matches_the_reference(size, scale, rows, cols):
    stride = 5 if size == (23, 23) else 8
    config = MMSegConfig(scale=scale, mode="slide", crop_size=12, stride=stride, window_batch=2)
    h, w = config.pass_size(*size, 1.0)
    assert rows is None or slide_windows(h, 12, stride) == rows
    assert cols is None or slide_windows(w, 12, stride) == cols
    image = random_image(*size, seed=1)
    ours = check(image, config)
    whole = MMSegPredictor(tf_logits, C, MMSegConfig(scale=scale)).probabilities(image)
    if size == (7, 9):  # one window that is the whole image
        np.testing.assert_allclose(ours, whole, atol=1e-6)
    else:  # where windows fall matters
        assert np.abs(ours - whole).max() > 1e-2


@pytest.mark.parametrize("mode", ["whole", "slide"])
@pytest.mark.parametrize("ratios_of", ["scale", "image"])
def test_multi_scale_with_flip_matches_the_reference(mode, ratios_of):
    config = MMSegConfig(
        scale=(26, 16),
        mode=mode,
        crop_size=12,
        stride=7,
        ratios=(0.5, 1.0, 1.5),
        flip=True,
        ratios_of=ratios_of,
    )
    image = random_image(11, 19, seed=2)
    ours = check(image, config)
    no_flip = MMSegPredictor(tf_logits, C, MMSegConfig(**{**vars(config), "flip": False}))
    assert no_flip.num_passes == 3 and MMSegPredictor(tf_logits, C, config).num_passes == 6
    assert np.abs(no_flip.probabilities(image) - ours).max() > 1e-2  # flips matter
    np.testing.assert_allclose(ours.sum(-1), 1.0, atol=1e-5)


def test_align_corners_changes_the_result():
    image = random_image(9, 12, seed=3)
    results = [
        check(
            image,
            MMSegConfig(
                scale=(30, 20), mode="slide", crop_size=10, stride=6, align_corners=align_corners
            ),
        )
        for align_corners in (False, True)
    ]
    assert np.abs(results[0] - results[1]).max() > 1e-2


def test_a_keras_model_with_window_batches_and_one_trace():
    model = tiny_segmenter(3, seed=5)

    def net(x):
        return np.asarray(model(x[None].astype(np.float32))["seg"], np.float64)[0]

    config = MMSegConfig(
        scale=(24, 16), mode="slide", crop_size=10, stride=6, ratios=(0.75, 1.25), flip=True
    )
    image = random_image(12, 17, seed=4)
    predictor = MMSegPredictor(model, 3, config)
    ours = predictor.probabilities(image)
    np.testing.assert_allclose(ours, reference(image, net, config, 3), atol=2e-5)
    one = MMSegPredictor(model, 3, MMSegConfig(**{**vars(config), "window_batch": 1}))
    np.testing.assert_allclose(one.probabilities(image), ours, atol=1e-6)
    predictor.probabilities(random_image(15, 9, seed=5))  # other sizes, other window shapes
    assert predictor._outputs.experimental_get_tracing_count() == 1


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("scale", (0, 512), r"scale must be two positive integers \(long, short\), got \[0, 512\]"),
        ("scale", (2048,), r"scale must be two positive integers"),
        ("mode", "diagonal", "mode must be one of whole, slide, got 'diagonal'"),
        ("crop_size", 0, "crop_size must be a positive integer, got 0"),
        ("stride", 0, "stride must be an integer from 1 to the crop size 769, got 0"),
        ("stride", 770, "stride must be an integer from 1 to the crop size 769, got 770"),
        ("ratios", (), r"ratios must be positive numbers, got \[\]"),
        ("ratios", (1.0, float("nan")), r"ratios must be positive numbers, got \[1.0, nan\]"),
        ("flip", "yes", "flip must be true or false, got 'yes'"),
        ("ratios_of", "crop", "ratios_of must be one of scale, image, got 'crop'"),
        ("window_batch", 0, "window_batch must be a positive integer, got 0"),
    ],
)
def test_bad_settings_name_the_setting_and_value(field, value, message):
    with pytest.raises(ConfigError, match=message):
        MMSegConfig(**{field: value})
    with pytest.raises(ConfigError, match="--option must be"):
        check_settings({**vars(MMSegConfig()), field: value}, {field: "--option"})


def test_bad_input_shape():
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        MMSegPredictor(tf_logits, C).probabilities(np.zeros((4, 4)))


def test_model_align_corners():
    assert model_align_corners(tiny_segmenter(3)) is None  # a plain model does not say
    assert model_align_corners(None) is None  # a SavedModel has no Keras model
    images = keras.Input((None, None, 3), name="images")
    low = keras.layers.Conv2D(3, 1)(keras.layers.AveragePooling2D(2)(images))
    for align_corners in (False, True):  # a functional model saved before EncNet/FCN existed
        seg = BilinearResize(align_corners, name="seg")([low, images])
        assert model_align_corners(keras.Model(images, {"seg": seg})) is align_corners


def test_model_align_corners_of_encnet():
    from enc_tf.models import build_encnet

    model = build_encnet(3, output_stride=16, aux=False, num_codes=4, align_corners=False)
    assert model_align_corners(model) is False


@pytest.mark.parametrize("ratios", [(1.0,), (0.5, 1.5)])
@pytest.mark.parametrize("size", [(13, 21), (40, 9)])  # the box (30, 20) shrinks one, grows one
def test_bands_of_any_height_give_the_same_result(monkeypatch, ratios, size):
    """Output rows are made in bands from the passes' logits (memory for a band, not the
    image's probabilities); one row a band or many, the same numbers. One pass without
    probabilities gives the argmax of its resized logits, as MMSegmentation."""
    from enc_tf.protocols import common

    config = MMSegConfig(scale=(30, 20), ratios=ratios, flip=len(ratios) > 1)
    predictor = MMSegPredictor(tf_logits, C, config)
    image = random_image(*size, seed=8)
    expected = reference(image, np_logits, config)
    whole = predictor.labels_and_probabilities(image, probabilities=True)
    np.testing.assert_allclose(whole.probabilities / predictor.num_passes, expected, atol=1e-5)
    for values in (1, 4 * size[1] * C, 7 * size[1] * C):  # one row a band, 4 rows, 7 rows
        monkeypatch.setattr(common, "BAND_VALUES", values)
        banded = predictor.labels_and_probabilities(image, probabilities=True)
        # (tf.nn.softmax of another shape may round the last bit differently)
        np.testing.assert_allclose(banded.probabilities, whole.probabilities, atol=1e-6)
        labels = predictor.labels_and_probabilities(image)
        assert labels.probabilities is None and labels.finite
        np.testing.assert_array_equal(labels.labels, np.argmax(expected, -1))


def test_uint8_images_and_the_se_presence_of_every_pass():
    """A uint8 RGB image is resized, then normalised (no float copy at its own size): the
    result of its normalised float image up to rounding. The SE presence is the largest
    sigmoid over the passes' inputs, from the passes that segment."""
    model = tiny_segmenter(3, seed=6)
    pixels = np.random.default_rng(9).integers(0, 256, (14, 23, 3)).astype(np.uint8)
    config = MMSegConfig(scale=(30, 20), ratios=(0.5, 1.0), flip=True)
    predictor = MMSegPredictor(model, 3, config)
    ours = predictor.labels_and_probabilities(pixels, probabilities=True)
    normalised = predictor.labels_and_probabilities(normalize(pixels).numpy(), True)
    np.testing.assert_allclose(ours.probabilities, normalised.probabilities, atol=1e-5)
    views = []
    for ratio in config.ratios:
        size = config.pass_size(14, 23, ratio)
        resized = tf.image.resize(normalize(pixels)[None], size).numpy()
        views += [resized, resized[:, :, ::-1]]
    seen = [tf.sigmoid(model(v)["se"]).numpy()[0] for v in views]
    np.testing.assert_allclose(ours.presence, np.max(seen, 0), rtol=1e-5)
    no_se = MMSegPredictor(lambda x: model(x)["seg"], 3, config)
    assert no_se.labels_and_probabilities(pixels).presence is None


def test_several_passes_hold_one_pass_at_a_time():
    """With ratios and flips each pass's probabilities go into one sum at the image's size
    before the next pass runs: no earlier pass's logits are alive when a pass is made (all
    twelve of an ADE20K image were, 6.4 GB)."""
    import weakref

    model = tiny_segmenter(3, seed=2)
    config = MMSegConfig(scale=(30, 20), ratios=(0.5, 1.0, 1.5), flip=True)
    predictor = MMSegPredictor(model, 3, config)
    image = normalize(np.random.default_rng(4).integers(0, 256, (14, 23, 3))).numpy()
    expected = predictor.labels_and_probabilities(image, probabilities=True)
    made, alive = [], []
    view_logits = predictor.view_logits

    def tracked(view, presence=None):
        alive.append(sum(ref() is not None for ref in made))
        logits = view_logits(view, presence)
        made.append(weakref.ref(logits))
        return logits

    predictor.view_logits = tracked
    result = predictor.labels_and_probabilities(image, probabilities=True)
    assert len(made) == 6 and alive == [0] * 6
    np.testing.assert_array_equal(result.probabilities, expected.probabilities)
