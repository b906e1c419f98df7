"""Dilated ResNet backbones."""

from enc_tf.backbones.caffe_input import CAFFE_MEAN_BGR, CaffeInput
from enc_tf.backbones.keras_weights import load_keras_applications_weights
from enc_tf.backbones.resnet import (
    BACKBONES,
    build_backbone,
    first_block_dilation,
    stage_strides_and_dilations,
)

__all__ = [
    "BACKBONES",
    "CAFFE_MEAN_BGR",
    "CaffeInput",
    "build_backbone",
    "first_block_dilation",
    "load_keras_applications_weights",
    "stage_strides_and_dilations",
]
