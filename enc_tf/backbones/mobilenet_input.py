"""Maps the normalised RGB input of our models to MobileNetV3's [-1, 1] input."""

import keras
from keras import ops

from enc_tf.contracts.images import IMAGENET_MEAN, IMAGENET_STD


@keras.saving.register_keras_serializable(package="enc_tf")
class SignedUnitInput(keras.layers.Layer):
    """`(x * std + mean) * 2 - 1`: [0, 1] RGB to [-1, 1]. No weights.

    keras.applications' MobileNetV3 ImageNet weights were trained on pixels scaled
    to [-1, 1] (its `Rescaling(1 / 127.5, offset=-1)` on [0, 255] pixels); with this
    layer first they load unchanged into a model that takes the same normalised
    images as every other enc_tf model.

    Input shape:
        `(B, H, W, 3)` normalised RGB.

    Output shape:
        `(B, H, W, 3)` RGB in [-1, 1].

    Example:
    >>> SignedUnitInput()(keras.ops.zeros((1, 2, 2, 3))).shape
    (1, 2, 2, 3)
    """

    def call(self, inputs):
        scale = ops.convert_to_tensor([2.0 * s for s in IMAGENET_STD], self.compute_dtype)
        offset = ops.convert_to_tensor([2.0 * m - 1.0 for m in IMAGENET_MEAN], self.compute_dtype)
        return inputs * scale + offset

    def compute_output_shape(self, input_shape):
        return input_shape
