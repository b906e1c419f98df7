"""Maps the normalised RGB input of our models to keras.applications' "caffe" input."""

import keras
from keras import ops

from enc_tf.contracts.images import IMAGENET_MEAN, IMAGENET_STD

# keras.applications.resnet.preprocess_input: BGR pixels in [0, 255] minus these.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="enc_tf")
class CaffeInput(keras.layers.Layer):
    """`(x * std + mean) * 255`, RGB -> BGR, minus the caffe means. No weights.

    The keras.applications ResNet weights were trained on caffe-preprocessed
    input; with this layer first, they load unchanged into a model that takes
    the same normalised images as every other enc_tf model.

    Input shape:
        `(B, H, W, 3)` normalised RGB.

    Output shape:
        `(B, H, W, 3)` caffe BGR.

    Example:
    >>> CaffeInput()(keras.ops.zeros((1, 2, 2, 3))).shape
    (1, 2, 2, 3)
    """

    def call(self, inputs):
        rgb = inputs * ops.convert_to_tensor([255.0 * s for s in IMAGENET_STD], self.compute_dtype)
        rgb = rgb + ops.convert_to_tensor([255.0 * m for m in IMAGENET_MEAN], self.compute_dtype)
        return ops.flip(rgb, axis=-1) - ops.convert_to_tensor(CAFFE_MEAN_BGR, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape
