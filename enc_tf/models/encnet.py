"""EncNet and its FCN baseline as functional multi-output Keras models."""

import keras

from enc_tf.backbones.resnet import BACKBONE_NAME, build_backbone
from enc_tf.layers.enc_head import EncHead
from enc_tf.layers.fcn_head import FCNHead
from enc_tf.layers.resize import BilinearResize


# Layer names that other modules look up: the heads (trained at 10x the backbone's
# learning rate) and the backbone sub-model.
ENC_HEAD, FCN_HEAD, AUX_HEAD = "enc_head", "fcn_head", "aux_head"
HEAD_LAYERS = (ENC_HEAD, AUX_HEAD, FCN_HEAD)
__all__ = ["AUX_HEAD", "BACKBONE_NAME", "ENC_HEAD", "FCN_HEAD", "HEAD_LAYERS", "build_encnet", "build_fcn"]


def _check_num_classes(num_classes):
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}.")


def _aux_logits(features, num_classes, aux, dropout, sync):
    """The auxiliary FCN head on stage 3, or None."""
    if not aux:
        return None
    return FCNHead(num_classes, dropout=dropout, sync_batch_norm=sync, name=AUX_HEAD)(features["c3"])


def _segmentation_model(images, logits, aux_logits, se_logits, align_corners, name):
    """Resizes the logits to the input size and assembles the output dict."""
    # Outputs in float32 under mixed precision, so that losses and exports see float32
    # (float64 models keep float64).
    dtype = "float64" if logits.dtype == "float64" else "float32"
    outputs = {"seg": BilinearResize(align_corners, dtype=dtype, name="seg")([logits, images])}
    if aux_logits is not None:
        outputs["aux"] = BilinearResize(align_corners, dtype=dtype, name="aux")([aux_logits, images])
    if se_logits is not None:
        outputs["se"] = keras.layers.Activation("linear", dtype=dtype, name="se")(se_logits)
    return keras.Model(images, outputs, name=name)


def build_encnet(
    num_classes,
    backbone="resnet50s",
    output_stride=8,
    aux=True,
    se_loss=True,
    lateral=False,
    num_codes=32,
    dropout=0.1,
    sync_batch_norm=False,
    align_corners=True,
    input_shape=(None, None, 3),
    backbone_weights=None,
    name="encnet",
):
    """Builds EncNet (Zhang et al., CVPR 2018).

    Args:
        num_classes: int, segmentation classes.
        backbone: `resnet50s`, `resnet101s` (the original's deep-stem ResNets)
            or `resnet50`, `resnet101` (keras.applications layout).
        output_stride: 8 (the paper) or 16 (cheaper).
        aux: bool, add the auxiliary FCN head on stage 3 (`aux` output).
        se_loss: bool, add the SE head (`se` output).
        lateral: bool, fuse stage-2/3 features into the head (PASCAL setting);
            needs `output_stride=8`.
        num_codes: int, codewords of the Encoding layer.
        dropout: float, dropout before each classifier.
        sync_batch_norm: bool, synchronise every BatchNorm across replicas.
        align_corners: bool, bilinear upsampling convention; True matches the
            original, False is TF's half-pixel convention.
        input_shape: `(H, W, 3)`, `None` for any size.
        backbone_weights: optional local keras.applications weight file
            (`resnet50`/`resnet101` only).
        name: model name.

    Returns:
        A `keras.Model` from normalised images `(B, H, W, 3)` (ImageNet
        mean/std on [0, 1] RGB) to a dict: `seg` `(B, H, W, num_classes)`
        logits, `aux` (same, when `aux`) and `se` `(B, num_classes)` logits
        (when `se_loss`).

    Example:
    >>> model = build_encnet(150)
    >>> outputs = model(keras.ops.zeros((1, 128, 160, 3)))
    >>> outputs["seg"].shape, outputs["se"].shape
    (TensorShape([1, 128, 160, 150]), TensorShape([1, 150]))
    """
    _check_num_classes(num_classes)
    if lateral and output_stride != 8:
        raise ValueError(
            f"lateral=True fuses stage-2 features, which sit at stride 8, so it needs output_stride=8 "
            f"(got {output_stride}), as in the original."
        )
    images = keras.Input(shape=input_shape, name="images")
    features = build_backbone(backbone, output_stride, sync_batch_norm, input_shape, backbone_weights)(images)
    head = EncHead(
        num_classes,
        lateral=lateral,
        se_loss=se_loss,
        num_codes=num_codes,
        dropout=dropout,
        sync_batch_norm=sync_batch_norm,
        name=ENC_HEAD,
    )
    head_out = head([features["c2"], features["c3"], features["c4"]])
    logits, se_logits = head_out if se_loss else (head_out, None)
    aux_logits = _aux_logits(features, num_classes, aux, dropout, sync_batch_norm)
    return _segmentation_model(images, logits, aux_logits, se_logits, align_corners, name)


def build_fcn(
    num_classes,
    backbone="resnet50s",
    output_stride=8,
    aux=True,
    dropout=0.1,
    sync_batch_norm=False,
    align_corners=True,
    input_shape=(None, None, 3),
    backbone_weights=None,
    name="fcn",
):
    """Builds the FCN baseline: an `FCNHead` on stage 4 of the same backbone.

    Arguments are those of `build_encnet`. Returns a `keras.Model` with outputs
    `seg` and, when `aux`, `aux`.
    """
    _check_num_classes(num_classes)
    images = keras.Input(shape=input_shape, name="images")
    features = build_backbone(backbone, output_stride, sync_batch_norm, input_shape, backbone_weights)(images)
    logits = FCNHead(num_classes, dropout=dropout, sync_batch_norm=sync_batch_norm, name=FCN_HEAD)(
        features["c4"]
    )
    aux_logits = _aux_logits(features, num_classes, aux, dropout, sync_batch_norm)
    return _segmentation_model(images, logits, aux_logits, None, align_corners, name)
