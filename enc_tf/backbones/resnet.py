"""Dilated ResNet backbones returning the four stage features `c1..c4`.

Two families share the dilation logic:

- the deep-stem ResNets (`ResNetV1c` in MMSegmentation): a stem of three 3x3
  convs `stem_width/2, stem_width/2, stem_width` wide, the stride on each
  bottleneck's 3x3 conv, no conv biases, BatchNorm epsilon 1e-5.
  `resnet50s` / `resnet101s` (stem 128: 64, 64, 128) are the original
  PyTorch-Encoding backbones and MMSegmentation's `r50s`; `resnet50v1c` /
  `resnet101v1c` (stem 64: 32, 32, 64) are MMSegmentation's `-d8` / `-d16`
  backbones. Stride-2 convs and the max-pool pad
  symmetrically (explicit `ZeroPadding2D` + "valid", as PyTorch's `padding=1`;
  Keras's "same" would pad only bottom/right).
- `resnet50` / `resnet101`: the `keras.applications` layout (7x7 stem, stride
  on the first 1x1 conv, conv biases, BatchNorm epsilon 1.001e-5), with the
  same layer names, so that the official ImageNet weight file loads into it;
  a weightless `CaffeInput` layer first turns the normalised RGB input into
  the caffe-preprocessed BGR input those weights expect.
"""

import keras

from enc_tf.backbones.caffe_input import CaffeInput
from enc_tf.backbones.layout import (
    BACKBONE_NAME,
    STAGE_OUTPUTS,
    first_block_dilation,
    stage_strides_and_dilations,
)
from enc_tf.layers.conv import TunedConv2D
from enc_tf.layers.normalization import batch_norm

BLOCKS_PER_STAGE = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
# name: (family, depth, stem width); the keras family's stem is a 7x7 conv of 64.
RESNETS = {
    "resnet50s": ("deep_stem", 50, 128),
    "resnet101s": ("deep_stem", 101, 128),
    "resnet50v1c": ("deep_stem", 50, 64),
    "resnet101v1c": ("deep_stem", 101, 64),
    "resnet50": ("keras", 50, 64),
    "resnet101": ("keras", 101, 64),
}
KERAS_BN_EPSILON = 1.001e-5


def _he_normal_fan_out():
    # The original's init: normal(0, sqrt(2 / (k * k * out_channels))).
    return keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


def _conv(x, filters, kernel_size, name, stride=1, dilation=1, use_bias=False):
    """A conv whose padding matches PyTorch's symmetric `padding=dilation*(k//2)`; the
    stride-1 3x3 ones (most of the FLOPs) run by the machine's fastest algorithm."""
    pad = dilation * (kernel_size // 2)
    padding = "same" if pad > 0 else "valid"
    if stride > 1 and pad > 0:
        x = keras.layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
        padding = "valid"
    layer = TunedConv2D if (kernel_size, stride) == (3, 1) else keras.layers.Conv2D
    return layer(
        filters,
        kernel_size,
        strides=stride,
        padding=padding,
        dilation_rate=dilation,
        use_bias=use_bias,
        kernel_initializer=_he_normal_fan_out(),
        name=name,
    )(x)


def _bn(x, name, sync, epsilon):
    return batch_norm(name=name, synchronized=sync, epsilon=epsilon)(x)


def _relu(x, name):
    return keras.layers.ReLU(name=name)(x)


def _deep_stem(x, sync, width):
    half = width // 2
    x = _relu(_bn(_conv(x, half, 3, "stem_conv1", stride=2), "stem_bn1", sync, 1e-5), "stem_relu1")
    x = _relu(_bn(_conv(x, half, 3, "stem_conv2"), "stem_bn2", sync, 1e-5), "stem_relu2")
    x = _relu(_bn(_conv(x, width, 3, "stem_conv3"), "stem_bn3", sync, 1e-5), "stem_relu3")
    # Inputs are post-ReLU, so zero padding equals PyTorch's -inf padding here.
    x = keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    return keras.layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)


def _deep_stem_bottleneck(x, planes, stride, dilation, project, name, sync):
    shortcut = x
    if project:
        shortcut = _conv(x, planes * 4, 1, f"{name}_down_conv", stride=stride)
        shortcut = _bn(shortcut, f"{name}_down_bn", sync, 1e-5)
    y = _relu(_bn(_conv(x, planes, 1, f"{name}_conv1"), f"{name}_bn1", sync, 1e-5), f"{name}_relu1")
    y = _conv(y, planes, 3, f"{name}_conv2", stride=stride, dilation=dilation)
    y = _relu(_bn(y, f"{name}_bn2", sync, 1e-5), f"{name}_relu2")
    y = _bn(_conv(y, planes * 4, 1, f"{name}_conv3"), f"{name}_bn3", sync, 1e-5)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return _relu(y, f"{name}_out")


def _keras_stem(x, sync, width):
    x = CaffeInput(name="caffe_input")(x)
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = keras.layers.Conv2D(
        width, 7, strides=2, kernel_initializer=_he_normal_fan_out(), name="conv1_conv"
    )(x)
    x = _relu(_bn(x, "conv1_bn", sync, KERAS_BN_EPSILON), "conv1_relu")
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    return keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)


def _keras_bottleneck(x, filters, stride, dilation, project, name, sync):
    eps = KERAS_BN_EPSILON
    shortcut = x
    if project:
        shortcut = _conv(x, 4 * filters, 1, f"{name}_0_conv", stride=stride, use_bias=True)
        shortcut = _bn(shortcut, f"{name}_0_bn", sync, eps)
    y = _conv(x, filters, 1, f"{name}_1_conv", stride=stride, use_bias=True)
    y = _relu(_bn(y, f"{name}_1_bn", sync, eps), f"{name}_1_relu")
    y = _conv(y, filters, 3, f"{name}_2_conv", dilation=dilation, use_bias=True)
    y = _relu(_bn(y, f"{name}_2_bn", sync, eps), f"{name}_2_relu")
    y = _bn(_conv(y, 4 * filters, 1, f"{name}_3_conv", use_bias=True), f"{name}_3_bn", sync, eps)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return _relu(y, f"{name}_out")


def block_name(family, stage, block):
    """Layer-name prefix of a bottleneck: stage 1..4, block 0-based."""
    if family == "deep_stem":
        return f"layer{stage}_{block}"  # mirrors the original's `layer{stage}.{block}`
    return f"conv{stage + 1}_block{block + 1}"  # keras.applications


def build_resnet(
    name="resnet50s",
    output_stride=8,
    sync_batch_norm=False,
    input_shape=(None, None, 3),
    stem_width=None,
):
    """Builds a dilated ResNet feature extractor (ImageNet weights: `build_backbone`).

    Args:
        name: one of `RESNETS`: `resnet50s`, `resnet101s`, `resnet50v1c`,
            `resnet101v1c`, `resnet50`, `resnet101`.
        output_stride: 8 (stages 3 and 4 dilated), 16 (stage 4 dilated) or 32.
        sync_batch_norm: bool, synchronise every BatchNorm across replicas.
        input_shape: `(H, W, 3)`; `H` and `W` may be `None`.
        stem_width: output channels of the stem (an even number); None takes
            the named backbone's (128 for `resnet50s`, 64 for the others).

    Returns:
        A functional `keras.Model` named `backbone` from normalised images
        `(B, H, W, 3)` to a dict of `c1` (stride 4, 256 channels), `c2`
        (stride 8, 512), `c3` (1024) and `c4` (2048); `c3`/`c4` are at
        stride 8 or 16 depending on `output_stride`.
    """
    if name not in RESNETS:
        raise ValueError(f"Unknown ResNet {name!r}; choose one of {sorted(RESNETS)}.")
    family, depth, default_width = RESNETS[name]
    width = default_width if stem_width is None else stem_width
    if isinstance(width, bool) or not isinstance(width, int) or width < 2 or width % 2:
        raise ValueError(f"stem_width must be a positive even int, got {stem_width!r}.")
    stem, bottleneck = (
        (_deep_stem, _deep_stem_bottleneck)
        if family == "deep_stem"
        else (_keras_stem, _keras_bottleneck)
    )
    schedule = ((1, 1),) + stage_strides_and_dilations(output_stride)

    images = keras.Input(shape=input_shape, name="images")
    x = stem(images, sync_batch_norm, width)
    features = {}
    for stage, (blocks, (stride, dilation)) in enumerate(zip(BLOCKS_PER_STAGE[depth], schedule), 1):
        planes = 64 * 2 ** (stage - 1)
        for block in range(blocks):
            x = bottleneck(
                x,
                planes,
                stride=stride if block == 0 else 1,
                dilation=first_block_dilation(dilation) if block == 0 else dilation,
                project=block == 0,
                name=block_name(family, stage, block),
                sync=sync_batch_norm,
            )
        features[STAGE_OUTPUTS[stage - 1]] = x
    return keras.Model(images, features, name=BACKBONE_NAME)
