"""EncNet's layers: Figure 2 of the paper, one file per layer."""

from enc_tf.layers.activations import HardSwish, hard_swish
from enc_tf.layers.conv import TunedConv2D
from enc_tf.layers.conv_bn_relu import ConvBNReLU
from enc_tf.layers.enc_head import EncHead
from enc_tf.layers.enc_module import EncModule
from enc_tf.layers.encoding import Encoding, aggregate, scaled_l2
from enc_tf.layers.fcn_head import FCNHead
from enc_tf.layers.normalization import BN_EPSILON, BN_MOMENTUM, BatchNorm, batch_norm
from enc_tf.layers.resize import BilinearResize

__all__ = [
    "BN_EPSILON",
    "BN_MOMENTUM",
    "BatchNorm",
    "BilinearResize",
    "ConvBNReLU",
    "EncHead",
    "EncModule",
    "Encoding",
    "FCNHead",
    "HardSwish",
    "TunedConv2D",
    "aggregate",
    "batch_norm",
    "hard_swish",
    "scaled_l2",
]
