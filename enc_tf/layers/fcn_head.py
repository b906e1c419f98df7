"""FCNHead: the plain fully convolutional head (FCN baseline and auxiliary loss)."""

import keras

from enc_tf.layers.arguments import flag, positive_int, rate
from enc_tf.layers.conv_bn_relu import ConvBNReLU


@keras.saving.register_keras_serializable(package="enc_tf")
class FCNHead(keras.layers.Layer):
    """`conv1x1(dropout(relu(bn(conv3x3(x)))))` to per-pixel class logits.

    Args:
        num_classes: int, output channels.
        channels: int or None, width of the 3x3 conv; `None` uses a quarter of
            the input channels, as the original (1024 -> 256, 2048 -> 512).
        dropout: float, dropout rate before the classifier.
        sync_batch_norm: bool, synchronise BatchNorm across replicas.
        **kwargs: base layer arguments.

    Input shape:
        `(B, H, W, C)`.

    Output shape:
        `(B, H, W, num_classes)` logits at the input resolution.

    Example:
    >>> FCNHead(3)(keras.random.normal((1, 8, 8, 64))).shape
    (1, 8, 8, 3)
    """

    def __init__(self, num_classes, channels=None, dropout=0.1, sync_batch_norm=False, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = positive_int("FCNHead", "num_classes", num_classes)
        self.channels = None if channels is None else positive_int("FCNHead", "channels", channels)
        self.dropout = rate("FCNHead", "dropout", dropout)
        self.sync_batch_norm = flag("FCNHead", "sync_batch_norm", sync_batch_norm)
        self.drop = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name="dropout")
        self.classifier = keras.layers.Conv2D(
            self.num_classes, 1, dtype=self.dtype_policy, name="classifier"
        )

    def build(self, input_shape):
        channels = self.channels or input_shape[-1] // 4
        self.block = ConvBNReLU(
            channels, 3, self.sync_batch_norm, dtype=self.dtype_policy, name="block"
        )
        self.block.build(input_shape)
        self.classifier.build(self.block.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        x = self.block(inputs, training=training)
        return self.classifier(self.drop(x, training=training))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "channels": self.channels,
                "dropout": self.dropout,
                "sync_batch_norm": self.sync_batch_norm,
            }
        )
        return config
