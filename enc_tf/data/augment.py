"""The paper's augmentation and the evaluation transforms, as TF graph functions.

Every random choice uses stateless random ops keyed by a per-example seed, so a
pipeline is reproducible for a given seed. Images are `(H, W, 3)` uint8 on
input; labels `(H, W)` integer train ids. Labels are only ever resized with
nearest-neighbour sampling, so their values are never interpolated.
"""

import dataclasses
import math

import tensorflow as tf

from enc_tf.contracts.images import long_side_size_tf, normalize, short_side_size_tf
from enc_tf.layers.resize import resize_bilinear, resize_nearest


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation (EncNet paper, Section 4.1, implementation details).

    Attributes:
        scale_range: the long side is resized to `U(lo, hi) * base_size`.
        flip: horizontal flip with probability 0.5.
        rotate_degrees: rotation by `U(-r, r)` degrees; 0 disables (the older recipe used 10).
        blur_probability: Gaussian blur probability; 0 disables (the older recipe used 0.5).
        photometric: random brightness, contrast, saturation and hue.
    """

    scale_range: tuple = (0.5, 2.0)
    flip: bool = True
    rotate_degrees: float = 0.0
    blur_probability: float = 0.0
    photometric: bool = False

    def __post_init__(self):
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must satisfy 0 < lo <= hi, got {self.scale_range}.")
        if not 0 <= self.blur_probability <= 1:
            raise ValueError(f"blur_probability must be in [0, 1], got {self.blur_probability}.")
        if self.rotate_degrees < 0:
            raise ValueError(f"rotate_degrees must be >= 0, got {self.rotate_degrees}.")


def resize_pair(image, label, height, width):
    """Image bilinear (float32 out), label nearest-neighbour."""
    size = tf.stack([height, width])
    image = resize_bilinear(image[None], size, align_corners=False)[0]  # uint8 in: no float copy
    label = resize_nearest(label[None, ..., None], size)[0, ..., 0]
    return image, label


def _rotate(image, label, degrees, ignore_index):
    """Rotation about the centre: image bilinear with 0 fill, label nearest with ignore fill."""
    angle = degrees * math.pi / 180.0
    h = tf.cast(tf.shape(image)[0], tf.float32)
    w = tf.cast(tf.shape(image)[1], tf.float32)
    cos, sin = tf.cos(angle), tf.sin(angle)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    # Output pixel (x, y) samples input (a0 x + a1 y + a2, b0 x + b1 y + b2).
    transform = tf.stack(
        [cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, 0.0, 0.0]
    )
    size = tf.shape(image)[:2]

    def warp(x, interpolation, fill):
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=x[None],
            transforms=transform[None],
            output_shape=size,
            fill_value=fill,
            interpolation=interpolation,
            fill_mode="CONSTANT",
        )[0]

    image = warp(image, "BILINEAR", 0.0)
    label = warp(tf.cast(label[..., None], tf.float32), "NEAREST", float(ignore_index))[..., 0]
    return image, tf.cast(label, tf.int32)


def gaussian_blur(image, sigma, radius=3):
    """Separable Gaussian blur of a `(H, W, C)` float image with reflect padding."""
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(x / sigma))
    kernel = kernel / tf.reduce_sum(kernel)
    channels = tf.shape(image)[-1]
    padded = tf.pad(
        image[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT"
    )
    k_h = tf.tile(tf.reshape(kernel, (-1, 1, 1, 1)), [1, 1, channels, 1])
    k_w = tf.tile(tf.reshape(kernel, (1, -1, 1, 1)), [1, 1, channels, 1])
    out = tf.nn.depthwise_conv2d(padded, k_h, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(out, k_w, [1, 1, 1, 1], "VALID")[0]


def _photometric(image, seeds):
    """Brightness, contrast, saturation, hue jitter on a [0, 255] float image."""
    x = image / 255.0
    x = tf.image.stateless_random_brightness(x, 0.125, seeds[0])
    x = tf.image.stateless_random_contrast(x, 0.5, 1.5, seeds[1])
    x = tf.image.stateless_random_saturation(x, 0.5, 1.5, seeds[2])
    x = tf.image.stateless_random_hue(x, 0.05, seeds[3])
    return tf.clip_by_value(x, 0.0, 1.0) * 255.0


def pad_pair(image, label, height, width, ignore_index):
    """Pads bottom/right to at least `height` x `width`: image with 0, label with ignore."""
    pad_h = tf.maximum(height - tf.shape(image)[0], 0)
    pad_w = tf.maximum(width - tf.shape(image)[1], 0)
    image = tf.pad(image, [[0, pad_h], [0, pad_w], [0, 0]])
    label = tf.pad(label, [[0, pad_h], [0, pad_w]], constant_values=ignore_index)
    return image, label


def train_transform(image, label, seed, base_size, crop_size, config, ignore_index):
    """The training recipe: flip, random long-side scale, (rotate, blur, colour), random
    crop of the image padded to the crop size (image 0 after normalising, label ignore).

    Args:
        image: `(H, W, 3)` uint8. label: `(H, W)` integer train ids.
        seed: `(2,)` int seed of this example.

    Returns:
        `(crop, crop, 3)` float32 normalised image and `(crop, crop)` int32 labels.
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=12)
    if config.flip:
        flip = tf.random.stateless_uniform([], seeds[0]) < 0.5
        image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
        label = tf.cond(flip, lambda: tf.reverse(label, [1]), lambda: label)
    lo, hi = config.scale_range
    long_side = tf.random.stateless_uniform(
        [], seeds[1], int(lo * base_size), int(hi * base_size) + 1, dtype=tf.int32
    )
    new_h, new_w = long_side_size_tf(tf.shape(image)[0], tf.shape(image)[1], long_side)
    image, label = resize_pair(image, label, new_h, new_w)
    if config.rotate_degrees > 0:
        degrees = tf.random.stateless_uniform(
            [], seeds[2], -config.rotate_degrees, config.rotate_degrees
        )
        image, label = _rotate(image, label, degrees, ignore_index)
    if config.blur_probability > 0:
        blur = tf.random.stateless_uniform([], seeds[3]) < config.blur_probability
        sigma = tf.random.stateless_uniform([], seeds[4], 0.1, 2.0)
        image = tf.cond(blur, lambda: gaussian_blur(image, sigma), lambda: image)
    if config.photometric:
        image = _photometric(image, seeds[5:9])
    # The crop's corner on the image padded to the crop (bottom/right); then only the crop
    # is normalised and padded (normalising is per pixel: the same values).
    h = tf.maximum(tf.shape(image)[0], crop_size)
    w = tf.maximum(tf.shape(image)[1], crop_size)
    y0 = tf.random.stateless_uniform([], seeds[9], 0, h - crop_size + 1, dtype=tf.int32)
    x0 = tf.random.stateless_uniform([], seeds[10], 0, w - crop_size + 1, dtype=tf.int32)
    image = image[y0 : y0 + crop_size, x0 : x0 + crop_size]
    label = tf.cast(label[y0 : y0 + crop_size, x0 : x0 + crop_size], tf.int32)
    image, label = pad_pair(normalize(image), label, crop_size, crop_size, ignore_index)
    return tf.ensure_shape(image, (crop_size, crop_size, 3)), tf.ensure_shape(
        label, (crop_size, crop_size)
    )


def val_transform(image, label, crop_size):
    """The original's monitoring transform: short side to `crop_size`, centre crop."""
    label = tf.cast(label, tf.int32)
    new_h, new_w = short_side_size_tf(tf.shape(image)[0], tf.shape(image)[1], crop_size)
    image, label = resize_pair(image, label, new_h, new_w)
    y0, x0 = (new_h - crop_size) // 2, (new_w - crop_size) // 2
    image = normalize(image[y0 : y0 + crop_size, x0 : x0 + crop_size])
    label = label[y0 : y0 + crop_size, x0 : x0 + crop_size]
    return tf.ensure_shape(image, (crop_size, crop_size, 3)), tf.ensure_shape(
        label, (crop_size, crop_size)
    )


def eval_transform(image, label):
    """Full images for evaluation: normalised image, int32 labels, no resizing."""
    return normalize(image), tf.cast(label, tf.int32)
