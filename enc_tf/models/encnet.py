"""EncNet and its FCN baseline: functional multi-output Keras models that describe themselves.

`EncNet` and `FCN` are functional `keras.Model` subclasses (as keras-hub's models
are): `get_config` returns the builder's arguments, so a saved `.keras` file
carries the architecture, the class names and palette, and the input contract
(ImageNet mean/std on [0, 1] RGB), and loads without the dataset or the run
directory. `build_encnet` / `build_fcn` are the public entry points; `.keras`
files saved before these classes existed load as plain functional models.
"""

import keras

from enc_tf.backbones import BACKBONE_NAME, build_backbone, head_size
from enc_tf.contracts.images import IMAGENET_MEAN, IMAGENET_STD
from enc_tf.layers.enc_head import EncHead
from enc_tf.layers.fcn_head import FCNHead
from enc_tf.layers.resize import BilinearResize

# Layer names that other modules look up: the heads (trained at 10x the backbone's
# learning rate) and the backbone sub-model.
ENC_HEAD, FCN_HEAD, AUX_HEAD = "enc_head", "fcn_head", "aux_head"
HEAD_LAYERS = (ENC_HEAD, AUX_HEAD, FCN_HEAD)
__all__ = [
    "AUX_HEAD",
    "BACKBONE_NAME",
    "ENC_HEAD",
    "FCN_HEAD",
    "HEAD_LAYERS",
    "EncNet",
    "FCN",
    "SegmentationModel",
    "build_encnet",
    "build_fcn",
]


def _positive(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return value


def _check_num_classes(num_classes):
    _positive("num_classes", num_classes)


def _aux_logits(features, num_classes, aux, dropout, sync):
    """The auxiliary FCN head on stage 3, or None."""
    if not aux:
        return None
    return FCNHead(num_classes, dropout=dropout, sync_batch_norm=sync, name=AUX_HEAD)(
        features["c3"]
    )


def _segmentation_outputs(images, logits, aux_logits, se_logits, align_corners):
    """Resizes the logits to the input size and assembles the output dict."""
    # Outputs in float32 under mixed precision, so that losses and exports see float32
    # (float64 models keep float64).
    dtype = "float64" if logits.dtype == "float64" else "float32"
    outputs = {"seg": BilinearResize(align_corners, dtype=dtype, name="seg")([logits, images])}
    if aux_logits is not None:
        outputs["aux"] = BilinearResize(align_corners, dtype=dtype, name="aux")(
            [aux_logits, images]
        )
    if se_logits is not None:
        outputs["se"] = keras.layers.Activation("linear", dtype=dtype, name="se")(se_logits)
    return outputs


def _check_classes(num_classes, class_names, palette):
    if class_names is not None:
        class_names = [str(n) for n in class_names]
        if len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names for {num_classes} classes.")
    if palette is not None:
        palette = [[int(v) for v in colour] for colour in palette]
        if len(palette) != num_classes or any(len(c) != 3 for c in palette):
            raise ValueError(f"palette must hold {num_classes} RGB triples, got {len(palette)}.")
    return class_names, palette


def _backbone_graph(
    num_classes,
    class_names,
    palette,
    backbone,
    output_stride,
    sync_batch_norm,
    input_shape,
    backbone_weights,
):
    """Checks the common arguments; returns `(images input, backbone features, names, palette)`."""
    _check_num_classes(num_classes)
    class_names, palette = _check_classes(num_classes, class_names, palette)
    images = keras.Input(shape=input_shape, name="images")
    features = build_backbone(
        backbone, output_stride, sync_batch_norm, input_shape, backbone_weights
    )(images)
    return images, features, class_names, palette


class SegmentationModel(keras.Model):
    """What EncNet and FCN share: their description (arguments, classes, input contract).

    Attributes:
        arguments: the builder arguments `get_config` returns.
        class_names: list of `num_classes` names, or None.
        palette: list of `num_classes` RGB triples, or None.
        input_normalization: `{"mean", "std"}` of the input contract (ImageNet
            statistics on [0, 1] RGB).
    """

    def _describe(self, arguments):
        self.arguments = dict(arguments)
        self.class_names = arguments.get("class_names")
        self.palette = arguments.get("palette")
        self.input_normalization = {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}

    def get_config(self):
        return {
            **self.arguments,
            "name": self.name,
            "trainable": self.trainable,
            "input_normalization": self.input_normalization,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        contract = config.pop("input_normalization", None)
        if contract is not None and (
            tuple(contract["mean"]) != IMAGENET_MEAN or tuple(contract["std"]) != IMAGENET_STD
        ):
            raise ValueError(
                f"This model was trained on inputs normalised with {contract}; enc_tf normalises "
                f"with mean {IMAGENET_MEAN} and std {IMAGENET_STD}."
            )
        trainable = config.pop("trainable", True)
        model = cls(**config)
        model.trainable = trainable
        return model


@keras.saving.register_keras_serializable(package="enc_tf")
class EncNet(SegmentationModel):
    """EncNet (Zhang et al., CVPR 2018): a dilated ResNet, the Context Encoding Module, SE-loss.

    Args:
        num_classes: int, segmentation classes.
        backbone: `resnet50s`, `resnet101s` (the original's deep-stem ResNets),
            `resnet50v1c`, `resnet101v1c` (MMSegmentation's), `resnet50`,
            `resnet101` (keras.applications layout) or `mobilenetv3_large`,
            `mobilenetv3_small` (keras.applications layout).
        output_stride: 8 (the paper) or 16 (cheaper).
        aux: bool, add the auxiliary FCN head on stage 3 (`aux` output).
        se_loss: bool, add the SE head (`se` output).
        lateral: bool, fuse stage-2/3 features into the head (PASCAL setting);
            needs `output_stride=8`.
        num_codes: int, codewords of the Encoding layer; None: the backbone's
            default (32 for ResNets as the paper, 16 for MobileNetV3).
        head_channels: int, EncHead's width; None: the backbone's default (512
            for ResNets as the paper, 128 for MobileNetV3-Large, 64 for -Small).
        dropout: float, dropout before each classifier.
        sync_batch_norm: bool, synchronise every BatchNorm across replicas.
        align_corners: bool, bilinear upsampling convention; True matches the
            original, False is TF's half-pixel convention.
        input_shape: `(H, W, 3)`, `None` for any size.
        backbone_weights: optional local ImageNet weight file for the backbone
            (`enc_tf.backbones.load_imagenet_weights`); not part of the saved description.
        class_names, palette: optional, `num_classes` names and RGB triples,
            saved with the model.
        name: model name.

    Inputs are normalised images `(B, H, W, 3)` (ImageNet mean/std on [0, 1]
    RGB); outputs a dict: `seg` `(B, H, W, num_classes)` logits, `aux` (same,
    when `aux`) and `se` `(B, num_classes)` logits (when `se_loss`).

    Example:
    >>> model = EncNet(150)
    >>> outputs = model(keras.ops.zeros((1, 128, 160, 3)))
    >>> outputs["seg"].shape, outputs["se"].shape
    (TensorShape([1, 128, 160, 150]), TensorShape([1, 150]))
    """

    def __init__(
        self,
        num_classes,
        backbone="resnet50s",
        output_stride=8,
        aux=True,
        se_loss=True,
        lateral=False,
        num_codes=None,
        head_channels=None,
        dropout=0.1,
        sync_batch_norm=False,
        align_corners=True,
        input_shape=(None, None, 3),
        backbone_weights=None,
        class_names=None,
        palette=None,
        name="encnet",
        **kwargs,
    ):
        if lateral and output_stride != 8:
            raise ValueError(
                f"lateral=True fuses stage-2 features, which sit at stride 8, so it needs "
                f"output_stride=8 (got {output_stride}), as in the original."
            )
        input_shape = tuple(input_shape)
        images, features, class_names, palette = _backbone_graph(
            num_classes,
            class_names,
            palette,
            backbone,
            output_stride,
            sync_batch_norm,
            input_shape,
            backbone_weights,
        )
        default_channels, default_codes = head_size(backbone)
        head_channels = (
            default_channels if head_channels is None else _positive("head_channels", head_channels)
        )
        num_codes = default_codes if num_codes is None else _positive("num_codes", num_codes)
        head = EncHead(
            num_classes,
            lateral=lateral,
            se_loss=se_loss,
            num_codes=num_codes,
            channels=head_channels,
            dropout=dropout,
            sync_batch_norm=sync_batch_norm,
            name=ENC_HEAD,
        )
        head_out = head([features["c2"], features["c3"], features["c4"]])
        logits, se_logits = head_out if se_loss else (head_out, None)
        aux_logits = _aux_logits(features, num_classes, aux, dropout, sync_batch_norm)
        outputs = _segmentation_outputs(images, logits, aux_logits, se_logits, align_corners)
        super().__init__(inputs=images, outputs=outputs, name=name, **kwargs)
        self._describe(
            dict(
                num_classes=num_classes,
                backbone=backbone,
                output_stride=output_stride,
                aux=aux,
                se_loss=se_loss,
                lateral=lateral,
                num_codes=num_codes,
                head_channels=head_channels,
                dropout=dropout,
                sync_batch_norm=sync_batch_norm,
                align_corners=align_corners,
                input_shape=input_shape,
                class_names=class_names,
                palette=palette,
            )
        )


@keras.saving.register_keras_serializable(package="enc_tf")
class FCN(SegmentationModel):
    """The FCN baseline: an `FCNHead` on stage 4 of the same backbone.

    Arguments are those of `EncNet` without the EncNet-only ones (`se_loss`,
    `lateral`, `num_codes`). Outputs `seg` and, when `aux`, `aux`.
    """

    def __init__(
        self,
        num_classes,
        backbone="resnet50s",
        output_stride=8,
        aux=True,
        dropout=0.1,
        sync_batch_norm=False,
        align_corners=True,
        input_shape=(None, None, 3),
        backbone_weights=None,
        class_names=None,
        palette=None,
        name="fcn",
        **kwargs,
    ):
        input_shape = tuple(input_shape)
        images, features, class_names, palette = _backbone_graph(
            num_classes,
            class_names,
            palette,
            backbone,
            output_stride,
            sync_batch_norm,
            input_shape,
            backbone_weights,
        )
        logits = FCNHead(
            num_classes, dropout=dropout, sync_batch_norm=sync_batch_norm, name=FCN_HEAD
        )(features["c4"])
        aux_logits = _aux_logits(features, num_classes, aux, dropout, sync_batch_norm)
        outputs = _segmentation_outputs(images, logits, aux_logits, None, align_corners)
        super().__init__(inputs=images, outputs=outputs, name=name, **kwargs)
        self._describe(
            dict(
                num_classes=num_classes,
                backbone=backbone,
                output_stride=output_stride,
                aux=aux,
                dropout=dropout,
                sync_batch_norm=sync_batch_norm,
                align_corners=align_corners,
                input_shape=input_shape,
                class_names=class_names,
                palette=palette,
            )
        )


def build_encnet(num_classes, **kwargs):
    """Builds EncNet: `EncNet(num_classes, **kwargs)` (see `EncNet` for the arguments)."""
    return EncNet(num_classes, **kwargs)


def build_fcn(num_classes, **kwargs):
    """Builds the FCN baseline: `FCN(num_classes, **kwargs)` (see `FCN` for the arguments)."""
    return FCN(num_classes, **kwargs)
