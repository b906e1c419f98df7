"""Convolution, BatchNormalization and ReLU as one layer."""

import keras

from enc_tf.layers.arguments import flag, odd_positive_int, positive_int
from enc_tf.layers.conv import TunedConv2D
from enc_tf.layers.normalization import batch_norm


@keras.saving.register_keras_serializable(package="enc_tf")
class ConvBNReLU(keras.layers.Layer):
    """`relu(bn(conv(x)))` with a bias-free, "same"-padded, stride-1 conv.

    Args:
        filters: int, output channels.
        kernel_size: int, square kernel size.
        sync_batch_norm: bool, synchronise BatchNorm statistics across replicas.
        **kwargs: base layer arguments.

    Input shape:
        `(B, H, W, C)`.

    Output shape:
        `(B, H, W, filters)`.

    Example:
    >>> ConvBNReLU(8, 3)(keras.random.normal((1, 5, 5, 4))).shape
    (1, 5, 5, 8)
    """

    def __init__(self, filters, kernel_size=1, sync_batch_norm=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = positive_int("ConvBNReLU", "filters", filters)
        self.kernel_size = odd_positive_int("ConvBNReLU", "kernel_size", kernel_size)
        self.sync_batch_norm = flag("ConvBNReLU", "sync_batch_norm", sync_batch_norm)
        # Stride 1 and an odd kernel: "same" pads symmetrically, as the original.
        self.conv = TunedConv2D(
            self.filters,
            self.kernel_size,
            padding="same",
            use_bias=False,
            dtype=self.dtype_policy,
            name="conv",
        )
        self.bn = batch_norm(name="bn", synchronized=self.sync_batch_norm, dtype=self.dtype_policy)

    def build(self, input_shape):
        self.conv.build(input_shape)
        self.bn.build(self.conv.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        return keras.ops.relu(self.bn(self.conv(inputs), training=training))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "sync_batch_norm": self.sync_batch_norm,
            }
        )
        return config
