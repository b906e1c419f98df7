"""EncNet and FCN models, their builders, and one way to save and read their logits."""

from enc_tf.models.encnet import (
    AUX_HEAD,
    BACKBONE_NAME,
    ENC_HEAD,
    FCN,
    FCN_HEAD,
    HEAD_LAYERS,
    EncNet,
    SegmentationModel,
    build_encnet,
    build_fcn,
)
from enc_tf.models.saving import save_model_atomic

__all__ = [
    "AUX_HEAD",
    "BACKBONE_NAME",
    "ENC_HEAD",
    "FCN",
    "FCN_HEAD",
    "HEAD_LAYERS",
    "EncNet",
    "SegmentationModel",
    "build_encnet",
    "build_fcn",
    "save_model_atomic",
]
