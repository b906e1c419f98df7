"""The input contract: how images become model inputs, and the one rule for resizing them.

Models take RGB images normalised with ImageNet statistics on [0, 1]:
`(x / 255 - mean) / std`. MMSegmentation's `mean=(123.675, 116.28, 103.53)`,
`std=(58.395, 57.12, 57.375)` on 0..255 is the same transform.
"""

import numpy as np
import tensorflow as tf
from keras import ops

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(image):
    """RGB in [0, 255] (any dtype, any leading shape) -> float32 `(x / 255 - mean) / std`.

    In `keras.ops`, so that the same rule serves tensors, tf.data and a Keras functional
    graph (the TFLite deployment file normalises inside the model)."""
    image = ops.cast(image, "float32") / 255.0
    mean, std = np.float32(IMAGENET_MEAN), np.float32(IMAGENET_STD)
    return ops.divide(ops.subtract(image, mean), std)


def normalised_image(image):
    """`image` as one normalised float32 `(H, W, 3)` array, or a ValueError naming its shape."""
    image = np.asarray(image, np.float32)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"Expected one normalised (H, W, 3) image, got shape {image.shape}.")
    return image


def denormalize(images):
    """The inverse of `normalize`, for display: normalised float images -> uint8 RGB (NumPy)."""
    rgb = (np.asarray(images) * np.asarray(IMAGENET_STD) + np.asarray(IMAGENET_MEAN)) * 255
    return np.clip(rgb, 0, 255).astype(np.uint8)


# Black in the normalised space: what inference pads images with (the original's
# MultiEvalModule pads with -mean/std). Shape (3,).
PAD_VALUE = tuple(-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))


def long_side_size(height, width, long_side):
    """`(height, width)` with the longer side at `long_side`, aspect kept (Python ints).

    The short side is rounded half up, as the original does (`int(x + 0.5)`), and
    never to 0: a 4000 x 3 strip at a long side of 260 keeps one row.
    """
    if height > width:
        return int(long_side), max(1, int(1.0 * width * long_side / height + 0.5))
    return max(1, int(1.0 * height * long_side / width + 0.5)), int(long_side)


def long_side_size_tf(height, width, long_side):
    """`long_side_size` on scalar tensors (the same rule, in the graph): int32 `(height, width)`."""
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    long_side = tf.cast(long_side, tf.float32)
    short_h = tf.maximum(1.0, tf.floor(h * long_side / w + 0.5))
    short_w = tf.maximum(1.0, tf.floor(w * long_side / h + 0.5))
    new_h = tf.where(h > w, long_side, short_h)
    new_w = tf.where(h > w, short_w, long_side)
    return tf.cast(new_h, tf.int32), tf.cast(new_w, tf.int32)


def short_side_size_tf(height, width, short_side):
    """`(height, width)` with the shorter side at `short_side`, the long side rounded down
    (the original's validation transform, `int(x)`): int32 scalar tensors."""
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    short_side = tf.cast(short_side, tf.float32)
    new_h = tf.where(w > h, short_side, tf.maximum(1.0, tf.floor(h * short_side / w)))
    new_w = tf.where(w > h, tf.maximum(1.0, tf.floor(w * short_side / h)), short_side)
    return tf.cast(new_h, tf.int32), tf.cast(new_w, tf.int32)


def kept_ratio_size(height, width, long_side, short_side):
    """`(height, width)` scaled as large as fits a `long_side` x `short_side` box, aspect kept.

    MMSegmentation's rule (mmcv `rescale_size` behind `Resize(scale=(long, short),
    keep_ratio=True)`): factor `min(long / max(h, w), short / min(h, w))`, each side
    `int(side * factor + 0.5)` (Python ints), never 0. At `(2048, 512)` the short side
    becomes 512 unless the long side would pass 2048: 384 x 512 -> 512 x 683,
    300 x 4000 -> 154 x 2048.
    """
    factor = min(
        max(long_side, short_side) / max(height, width),
        min(long_side, short_side) / min(height, width),
    )
    return max(1, int(height * float(factor) + 0.5)), max(1, int(width * float(factor) + 0.5))
