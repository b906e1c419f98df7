import numpy as np
import pytest
import tensorflow as tf

from enc_tf.contracts.images import IMAGENET_MEAN, IMAGENET_STD, long_side_size, normalize
from enc_tf.data.augment import (
    AugmentConfig,
    gaussian_blur,
    pad_pair,
    resize_pair,
    train_transform,
    val_transform,
)

COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], np.uint8)


def _coded_pair(h=60, w=90, seed=0):
    """An image whose colour encodes the label: transforms must keep them in step."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 4, (h // 10, w // 10))
    label = np.kron(blocks, np.ones((10, 10), np.int64)).astype(np.uint8)
    return COLOURS[label], label


def _decode(image):
    """Normalised image -> nearest colour index per pixel, plus the distance to it."""
    rgb = (np.asarray(image) * np.array(IMAGENET_STD) + np.array(IMAGENET_MEAN)) * 255
    dist = np.linalg.norm(rgb[..., None, :] - COLOURS[None, None].astype(float), axis=-1)
    return dist.argmin(-1), dist.min(-1)


def _run(image, label, seed, config=AugmentConfig(), base=80, crop=64):
    out = train_transform(
        tf.constant(image), tf.constant(label), tf.constant(seed, tf.int64), base, crop, config, 255
    )
    return out[0].numpy(), out[1].numpy()


@pytest.mark.parametrize("seed", [[0, 1], [2, 3], [4, 5], [6, 7]])
def test_image_and_label_move_together(seed):
    image, label = _coded_pair()
    out_image, out_label = _run(image, label, seed)
    assert out_image.shape == (64, 64, 3) and out_label.shape == (64, 64)
    assert out_label.dtype == np.int32
    assert set(np.unique(out_label)) <= {0, 1, 2, 3, 255}  # never interpolated
    colour, dist = _decode(out_image)
    inside = (out_label != 255) & (dist < 1.0)  # pure-colour pixels (away from resampled edges)
    assert inside.mean() > 0.3
    np.testing.assert_array_equal(colour[inside], out_label[inside])


def test_padding_uses_zero_image_and_ignore_label():
    image, label = _coded_pair(20, 30)
    config = AugmentConfig(scale_range=(0.5, 0.5), flip=False)
    out_image, out_label = _run(image, label, [0, 0], config, base=40, crop=64)
    # The long side becomes 20 pixels: everything else is padding (bottom/right).
    assert (out_label == 255).mean() > 0.85
    np.testing.assert_array_equal(out_image[out_label == 255], 0.0)
    assert np.all(out_label[:13, :20] != 255)


def test_flip_mirrors_image_and_label_together_and_is_deterministic():
    image, label = _coded_pair(60, 60)
    # Long side 60 -> 60 and a 60 crop: resize and crop are identities, only the flip acts.
    config = AugmentConfig(scale_range=(1.0, 1.0))
    plain = normalize(tf.constant(image)).numpy()
    outcomes = []
    for s in range(16):
        out_image, out_label = _run(image, label, [s, 7], config, base=60, crop=60)
        if np.array_equal(out_label, label):
            np.testing.assert_allclose(out_image, plain, atol=1e-5)
            outcomes.append(False)
        else:
            np.testing.assert_array_equal(out_label, label[:, ::-1])
            np.testing.assert_allclose(out_image, plain[:, ::-1], atol=1e-5)
            outcomes.append(True)
        again = _run(image, label, [s, 7], config, base=60, crop=60)
        np.testing.assert_array_equal(again[0], out_image)
    assert 3 <= sum(outcomes) <= 13  # both happen, about half the time


def test_rotation_and_blur_keep_labels_discrete():
    image, label = _coded_pair()
    config = AugmentConfig(rotate_degrees=10, blur_probability=1.0, photometric=True)
    out_image, out_label = _run(image, label, [3, 4], config)
    assert set(np.unique(out_label)) <= {0, 1, 2, 3, 255}
    assert np.isfinite(out_image).all()
    flat = tf.fill((9, 9, 3), 100.0)
    np.testing.assert_allclose(gaussian_blur(flat, 1.5), flat, rtol=1e-5)


def test_val_transform_and_normalize():
    image, label = _coded_pair(60, 90)
    out_image, out_label = val_transform(tf.constant(image), tf.constant(label), 40)
    assert out_image.shape == (40, 40, 3) and out_label.shape == (40, 40)
    np.testing.assert_allclose(
        normalize(tf.constant([[[255, 0, 128]]], tf.uint8))[0, 0],
        (np.array([1.0, 0.0, 128 / 255]) - IMAGENET_MEAN) / IMAGENET_STD,
        rtol=1e-6,
    )


def test_config_checks():
    with pytest.raises(ValueError, match="scale_range"):
        AugmentConfig(scale_range=(2.0, 1.0))
    with pytest.raises(ValueError, match="blur_probability"):
        AugmentConfig(blur_probability=2)


def test_denormalize_inverts_normalize():
    from enc_tf.contracts.images import denormalize

    pixels = np.random.default_rng(0).integers(0, 256, (2, 3, 4, 3)).astype(np.uint8)
    back = denormalize(normalize(tf.constant(pixels)).numpy())
    assert back.dtype == np.uint8 and back.shape == pixels.shape
    assert np.max(np.abs(back.astype(int) - pixels)) <= 1  # truncation of a float round trip


@pytest.mark.parametrize("size", [(60, 90), (30, 20), (200, 130)])
def test_the_recipe_is_resize_normalise_pad_crop(size):
    """The recipe (which normalises and pads only its crop) equals its definition: flip,
    resize the whole image, normalise, pad to the crop, crop; the same random draws."""
    image, label = _coded_pair(*size, seed=3)
    base, crop = 80, 64
    for seed in ([0, 1], [5, 9], [12, 3], [8, 8]):
        ours = _run(image, label, seed, base=base, crop=crop)
        seeds = tf.random.experimental.stateless_split(tf.constant(seed, tf.int64), num=12)
        flip = tf.random.stateless_uniform([], seeds[0]) < 0.5
        x, y = (image[:, ::-1], label[:, ::-1]) if flip else (image, label)
        long_side = tf.random.stateless_uniform([], seeds[1], 40, 161, dtype=tf.int32)
        new = long_side_size(*size, int(long_side))
        x, y = resize_pair(tf.constant(x), tf.constant(y.astype(np.int32)), *new)
        x, y = pad_pair(normalize(x), y, crop, crop, 255)
        y0 = tf.random.stateless_uniform([], seeds[9], 0, x.shape[0] - crop + 1, dtype=tf.int32)
        x0 = tf.random.stateless_uniform([], seeds[10], 0, x.shape[1] - crop + 1, dtype=tf.int32)
        window = (slice(int(y0), int(y0) + crop), slice(int(x0), int(x0) + crop))
        np.testing.assert_array_equal(ours[0], x.numpy()[window])
        np.testing.assert_array_equal(ours[1], y.numpy()[window])
