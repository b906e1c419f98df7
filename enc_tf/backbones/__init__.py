"""Dilated ResNet backbones."""

from enc_tf.backbones.keras_weights import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    fold_caffe_preprocessing,
    load_keras_applications_weights,
)
from enc_tf.backbones.resnet import (
    BACKBONES,
    build_backbone,
    first_block_dilation,
    stage_strides_and_dilations,
)

__all__ = [
    "BACKBONES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "build_backbone",
    "first_block_dilation",
    "fold_caffe_preprocessing",
    "load_keras_applications_weights",
    "stage_strides_and_dilations",
]
