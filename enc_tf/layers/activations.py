"""Hard-swish written so that TFLite's int8 model stays on the XNNPACK delegate."""

import keras
from keras import ops


def hard_swish(x):
    """`x * relu6(x + 3) / 6`, computed as `0.5 * (x * clip(x / 3, -1, 1) + x)`.

    The same function (MobileNetV3's activation), in ops that TFLite's converter
    does not fuse into its `HARD_SWISH` op, which the XNNPACK delegate runs only in
    float: an int8 `HARD_SWISH` stays on TFLite's own kernels and cuts the graph
    into a partition per activation. These become MUL (with a fused -1..1 clamp),
    MUL and ADD, which XNNPACK runs in int8.
    """
    return 0.5 * (x * ops.clip(x * (1.0 / 3.0), -1.0, 1.0) + x)


@keras.saving.register_keras_serializable(package="enc_tf")
class HardSwish(keras.layers.Layer):
    """`hard_swish` as a layer (no weights; any shape).

    Example:
    >>> HardSwish()(keras.ops.convert_to_tensor([-4.0, 0.0, 1.0, 4.0])).numpy().round(4)
    array([0.    , 0.    , 0.6667, 4.    ], dtype=float32)
    """

    def call(self, inputs):
        return hard_swish(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape
