"""The input contract: normalisation and the one resize rule, the same in Python and in TF."""

import itertools

import numpy as np
import tensorflow as tf

from enc_tf.contracts.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PAD_VALUE,
    denormalize,
    long_side_size,
    long_side_size_tf,
    normalize,
    short_side_size_tf,
)


def test_long_side_rule_is_the_same_in_python_and_tf():
    sizes = [1, 2, 3, 7, 20, 25, 30, 97, 480, 481, 520, 683, 1024, 2048, 4000]
    for h, w, target in itertools.product(sizes, sizes, (24, 260, 520, 2048)):
        expected = long_side_size(h, w, target)
        got = tuple(int(v) for v in long_side_size_tf(tf.constant(h), tf.constant(w), target))
        assert got == expected, (h, w, target, got, expected)
    # The original's rounding: half up (20 x 30 -> 16 x 24; 25 x 14 at 24 -> 24 x 13.44 -> 13).
    assert long_side_size(20, 30, 24) == (16, 24) and long_side_size(25, 14, 24) == (24, 13)
    assert long_side_size(3, 4000, 260) == (1, 260)  # never 0


def test_short_side_rule_rounds_down_as_the_original_validation_transform():
    h, w = short_side_size_tf(tf.constant(20), tf.constant(30), 16)
    assert (int(h), int(w)) == (16, 24)
    h, w = short_side_size_tf(tf.constant(30), tf.constant(19), 16)
    assert (int(h), int(w)) == (25, 16)  # 30 * 16 / 19 = 25.26 -> 25


def test_normalize_pad_value_and_mmsegmentation_parity():
    pixels = np.array([[[0, 128, 255]]], np.uint8)
    expected = (pixels / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(normalize(pixels).numpy(), expected, rtol=1e-6)
    # MMSegmentation's mean/std on 0..255 is the same transform.
    mmseg = (pixels - np.array([123.675, 116.28, 103.53])) / np.array([58.395, 57.12, 57.375])
    np.testing.assert_allclose(normalize(pixels).numpy(), mmseg, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        PAD_VALUE, normalize(np.zeros((1, 1, 3), np.uint8)).numpy()[0, 0], rtol=1e-6
    )
    np.testing.assert_array_equal(denormalize(normalize(pixels).numpy()), pixels)
