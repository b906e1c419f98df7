"""Dilated backbones: ResNets and MobileNetV3, each returning stage features `c1..c4`, and
their ImageNet weights in the publishers' layouts."""

from enc_tf.backbones.caffe_input import CAFFE_MEAN_BGR, CaffeInput
from enc_tf.backbones.imagenet import load_imagenet_weights
from enc_tf.backbones.keras_weights import WEIGHT_FILES, load_keras_applications_weights
from enc_tf.backbones.layout import (
    BACKBONE_NAME,
    STAGE_OUTPUTS,
    first_block_dilation,
    stage_strides_and_dilations,
)
from enc_tf.backbones.mobilenet_input import SignedUnitInput
from enc_tf.backbones.registry import (
    BACKBONES,
    backbone_family,
    build_backbone,
    head_size,
)

__all__ = [
    "BACKBONES",
    "BACKBONE_NAME",
    "CAFFE_MEAN_BGR",
    "CaffeInput",
    "STAGE_OUTPUTS",
    "SignedUnitInput",
    "WEIGHT_FILES",
    "backbone_family",
    "build_backbone",
    "first_block_dilation",
    "head_size",
    "load_imagenet_weights",
    "load_keras_applications_weights",
    "stage_strides_and_dilations",
]
