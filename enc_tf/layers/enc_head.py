"""EncHead: EncNet's segmentation head on the backbone's last stage."""

import keras
from keras import ops

from enc_tf.layers.arguments import flag, positive_int, rate
from enc_tf.layers.conv_bn_relu import ConvBNReLU
from enc_tf.layers.enc_module import EncModule


@keras.saving.register_keras_serializable(package="enc_tf")
class EncHead(keras.layers.Layer):
    """conv5 (3x3 -> 512), optional lateral fusion, EncModule, classifier.

    Args:
        num_classes: int, output classes.
        lateral: bool, fuse 1x1 projections of stage-2 and stage-3 features
            with conv5's output (the original's PASCAL setting).
        se_loss: bool, also return the SE head's class-presence logits.
        num_codes: int, codewords of the Encoding layer.
        channels: int, width of the head (512 in the paper).
        dropout: float, dropout rate before the classifier.
        sync_batch_norm: bool, synchronise BatchNorm across replicas.
        **kwargs: base layer arguments.

    Input shape:
        A list `[c2, c3, c4]` of backbone features at the same resolution:
        `(B, h, w, 512)`, `(B, h, w, 1024)`, `(B, h, w, 2048)` for a ResNet;
        `c2` and `c3` are only read when `lateral`.

    Output shape:
        `(B, h, w, num_classes)` logits, and `(B, num_classes)` SE logits when
        `se_loss`.

    Example:
    >>> feats = [keras.random.normal((1, 4, 4, c)) for c in (32, 64, 128)]
    >>> seg, se = EncHead(5, channels=16, num_codes=4)(feats)
    >>> seg.shape, se.shape
    ((1, 4, 4, 5), (1, 5))
    """

    def __init__(
        self,
        num_classes,
        lateral=False,
        se_loss=True,
        num_codes=32,
        channels=512,
        dropout=0.1,
        sync_batch_norm=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_classes = positive_int("EncHead", "num_classes", num_classes)
        self.lateral = flag("EncHead", "lateral", lateral)
        self.se_loss = flag("EncHead", "se_loss", se_loss)
        self.num_codes = positive_int("EncHead", "num_codes", num_codes)
        self.channels = positive_int("EncHead", "channels", channels)
        self.dropout = rate("EncHead", "dropout", dropout)
        self.sync_batch_norm = flag("EncHead", "sync_batch_norm", sync_batch_norm)

        def block(kernel_size, name):
            return ConvBNReLU(
                self.channels, kernel_size, self.sync_batch_norm, dtype=self.dtype_policy, name=name
            )

        self.conv5 = block(3, "conv5")
        if self.lateral:
            self.lateral_c2 = block(1, "lateral_c2")
            self.lateral_c3 = block(1, "lateral_c3")
            self.fusion = block(3, "fusion")
        self.enc_module = EncModule(
            self.num_classes,
            self.num_codes,
            self.se_loss,
            self.sync_batch_norm,
            dtype=self.dtype_policy,
            name="enc_module",
        )
        self.drop = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name="dropout")
        self.classifier = keras.layers.Conv2D(
            self.num_classes, 1, dtype=self.dtype_policy, name="classifier"
        )

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"EncHead expects a list [c2, c3, c4] of three feature maps, got {input_shape}."
            )
        c2_shape, c3_shape, c4_shape = input_shape
        self.conv5.build(c4_shape)
        feat_shape = self.conv5.compute_output_shape(c4_shape)
        if self.lateral:
            self.lateral_c2.build(c2_shape)
            self.lateral_c3.build(c3_shape)
            self.fusion.build((*feat_shape[:-1], 3 * self.channels))
        self.enc_module.build(feat_shape)
        self.classifier.build(feat_shape)

    def compute_intermediates(self, inputs, training=None):
        """Every named tensor of the head, as a dict.

        Keys (matching the original's hook points): `head_conv5`, `lateral_c2`
        and `lateral_c3` (when `lateral`), `head_feat` (the EncModule's input),
        `enc_X`, `enc_E`, `enc_E_bn_relu`, `enc_en`, `enc_gamma`,
        `encmodule_out`, `seg_lowres` and, when `se_loss`, `se`.
        """
        if not self.built:  # called directly rather than through __call__
            self.build(keras.tree.map_structure(lambda t: tuple(t.shape), inputs))
        c2, c3, c4 = inputs
        conv5 = self.conv5(c4, training=training)
        result = {"head_conv5": conv5}
        feat = conv5
        if self.lateral:
            result["lateral_c2"] = self.lateral_c2(c2, training=training)
            result["lateral_c3"] = self.lateral_c3(c3, training=training)
            feat = self.fusion(
                ops.concatenate([conv5, result["lateral_c2"], result["lateral_c3"]], axis=-1),
                training=training,
            )
        result["head_feat"] = feat
        enc = self.enc_module.compute_intermediates(feat, training=training)
        for key in ("X", "E", "E_bn_relu", "en", "gamma"):
            result[f"enc_{key}"] = enc[key]
        result["encmodule_out"] = enc["out"]
        result["seg_lowres"] = self.classifier(self.drop(enc["out"], training=training))
        if self.se_loss:
            result["se"] = enc["se"]
        return result

    def call(self, inputs, training=None):
        result = self.compute_intermediates(inputs, training=training)
        if not self.se_loss:
            return result["seg_lowres"]
        return result["seg_lowres"], result["se"]

    def compute_output_shape(self, input_shape):
        seg_shape = (*input_shape[-1][:-1], self.num_classes)
        if not self.se_loss:
            return seg_shape
        return seg_shape, (input_shape[-1][0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "lateral": self.lateral,
                "se_loss": self.se_loss,
                "num_codes": self.num_codes,
                "channels": self.channels,
                "dropout": self.dropout,
                "sync_batch_norm": self.sync_batch_norm,
            }
        )
        return config
