"""Bilinear resizing: the one function every part of enc_tf resizes features and images with,
and the layer that resizes to the spatial size of a reference tensor."""

import keras
import tensorflow as tf


def resize_bilinear(images, size, align_corners=True):
    """Bilinear resize of `(B, H, W, C)` float images to `size = (height, width)`.

    `align_corners=True` aligns the corner pixels of input and output (the original's
    `F.interpolate(..., align_corners=True)`); False uses half-pixel centres (as
    `tf.image.resize` and MMSegmentation's `align_corners=False`). TF's
    `ResizeBilinear` kernel is the one op that implements both conventions and maps
    to the TFLite `RESIZE_BILINEAR` builtin. Returns float32.
    """
    return tf.raw_ops.ResizeBilinear(
        images=images,
        size=tf.cast(size, tf.int32),
        align_corners=bool(align_corners),
        half_pixel_centers=not align_corners,
    )


@keras.saving.register_keras_serializable(package="enc_tf")
class BilinearResize(keras.layers.Layer):
    """Resizes `x` bilinearly to the height and width of `reference`.

    With `align_corners=True` (the original's `F.interpolate(...,
    align_corners=True)`) the corner pixels of input and output are aligned;
    `tf.image.resize` uses half-pixel centres instead, which `align_corners=False`
    selects. TF's `ResizeBilinear` kernel is used because it is the one op that
    implements both conventions and maps to the TFLite `RESIZE_BILINEAR` builtin.

    Args:
        align_corners: bool, see above.
        **kwargs: base layer arguments.

    Input shape:
        A list `[x, reference]`: `x` is `(B, h, w, C)`, `reference` is
        `(B, H, W, ...)`.

    Output shape:
        `(B, H, W, C)`.

    Example:
    >>> x, ref = keras.random.normal((1, 4, 5, 3)), keras.ops.zeros((1, 32, 40, 3))
    >>> BilinearResize()([x, ref]).shape
    (1, 32, 40, 3)
    """

    def __init__(self, align_corners=True, **kwargs):
        super().__init__(**kwargs)
        self.align_corners = bool(align_corners)

    def call(self, inputs):
        x, reference = inputs
        resized = resize_bilinear(x, tf.shape(reference)[1:3], self.align_corners)
        return tf.cast(resized, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        x_shape, reference_shape = input_shape
        return (x_shape[0], reference_shape[1], reference_shape[2], x_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update({"align_corners": self.align_corners})
        return config
