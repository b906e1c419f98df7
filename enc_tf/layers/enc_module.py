"""EncModule: the Context Encoding Module of EncNet (Fig. 2 of the paper)."""

import keras
from keras import ops

from enc_tf.layers.arguments import flag, positive_int
from enc_tf.layers.conv_bn_relu import ConvBNReLU
from enc_tf.layers.encoding import Encoding
from enc_tf.layers.normalization import batch_norm


@keras.saving.register_keras_serializable(package="enc_tf")
class EncModule(keras.layers.Layer):
    """Encodes global context and rescales the feature channels with it.

    `X = relu(bn(conv1x1(x)))`, `E = Encoding(X)`, `en = mean_k relu(bn_K(E))`,
    `gamma = sigmoid(fc(en))`, output `relu(x + x * gamma)`; the SE head
    predicts which classes are present from `en`.

    Args:
        num_classes: int, classes of the SE head.
        num_codes: int, codewords of the Encoding layer.
        se_loss: bool, whether to build the SE head (`se_logits` output).
        sync_batch_norm: bool, synchronise BatchNorm across replicas.
        **kwargs: base layer arguments.

    Input shape:
        `(B, H, W, C)`.

    Output shape:
        `(B, H, W, C)`, and `(B, num_classes)` SE logits when `se_loss`.

    Example:
    >>> out, se = EncModule(5, num_codes=4)(keras.random.normal((2, 6, 6, 16)))
    >>> out.shape, se.shape
    ((2, 6, 6, 16), (2, 5))
    """

    def __init__(self, num_classes, num_codes=32, se_loss=True, sync_batch_norm=False, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = positive_int("EncModule", "num_classes", num_classes)
        self.num_codes = positive_int("EncModule", "num_codes", num_codes)
        self.se_loss = flag("EncModule", "se_loss", se_loss)
        self.sync_batch_norm = flag("EncModule", "sync_batch_norm", sync_batch_norm)
        self.encoding = Encoding(self.num_codes, dtype=self.dtype_policy, name="encoding")
        # A BatchNorm over the codeword axis of (B, K, D): statistics over B and D.
        self.bn_codes = batch_norm(
            axis=1, synchronized=self.sync_batch_norm, dtype=self.dtype_policy, name="bn_codes"
        )
        self.se_head = (
            keras.layers.Dense(self.num_classes, dtype=self.dtype_policy, name="se_head")
            if self.se_loss
            else None
        )

    def build(self, input_shape):
        # The two sub-layers whose width is the input's are made here, the others in __init__
        # (Keras's rule: sub-layers in the constructor when their arguments are known).
        channels = input_shape[-1]
        self.project = ConvBNReLU(
            channels, 1, self.sync_batch_norm, dtype=self.dtype_policy, name="project"
        )
        self.fc = keras.layers.Dense(channels, dtype=self.dtype_policy, name="fc")
        self.project.build(input_shape)
        self.encoding.build(input_shape)
        self.bn_codes.build((input_shape[0], self.num_codes, channels))
        self.fc.build((input_shape[0], channels))
        if self.se_head is not None:
            self.se_head.build((input_shape[0], channels))

    def compute_intermediates(self, inputs, training=None):
        """Every named tensor of the module, as a dict.

        Keys: `X` (B, H, W, C) the features fed to Encoding, `E` (B, K, C),
        `E_bn_relu` (B, K, C), `en` (B, C), `gamma` (B, C), `out` (B, H, W, C)
        and, when `se_loss`, `se` (B, num_classes).
        """
        if not self.built:  # called directly rather than through __call__
            self.build(keras.tree.map_structure(lambda t: tuple(t.shape), inputs))
        x = self.project(inputs, training=training)
        encoded = self.encoding(x)
        encoded_bn = ops.relu(self.bn_codes(encoded, training=training))
        en = ops.mean(encoded_bn, axis=1)
        gamma = ops.sigmoid(self.fc(en))
        gamma_map = ops.expand_dims(ops.expand_dims(gamma, 1), 1)  # (B, 1, 1, C)
        result = {
            "X": x,
            "E": encoded,
            "E_bn_relu": encoded_bn,
            "en": en,
            "gamma": gamma,
            "out": ops.relu(inputs + inputs * gamma_map),
        }
        if self.se_head is not None:
            result["se"] = self.se_head(en)
        return result

    def call(self, inputs, training=None):
        result = self.compute_intermediates(inputs, training=training)
        if self.se_head is None:
            return result["out"]
        return result["out"], result["se"]

    def compute_output_shape(self, input_shape):
        if self.se_head is None:
            return tuple(input_shape)
        return tuple(input_shape), (input_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "num_codes": self.num_codes,
                "se_loss": self.se_loss,
                "sync_batch_norm": self.sync_batch_norm,
            }
        )
        return config
