"""Dilated MobileNetV3 backbones (Large, Small) in keras.applications' layer layout.

The layers, their names and their weights are those of
`keras.applications.MobileNetV3Large` / `MobileNetV3Small` (alpha 1.0,
`include_top=False`), so the official ImageNet weight files load
unchanged (`enc_tf.backbones.keras_weights`). Differences, none of which changes a
weight:

- a weightless `SignedUnitInput` layer first maps our normalised input to the
  [-1, 1] pixels the weights were trained on (keras.applications' `Rescaling`);
- the stride-2 blocks of the stages past `output_stride` run at stride 1 and dilate
  that stage's depthwise convolutions instead (DeepLab's and LR-ASPP's rule: the
  first block keeps the previous rate), so `c4` is at stride 16 (default) or 8;
- BatchNorm is enc_tf's (fused training, epsilon 1e-3 as the weights, momentum 0.9
  for fine-tuning on small segmentation sets rather than ImageNet's 0.999);
- hard-swish is `enc_tf.layers.HardSwish`, the same function in ops that keep an
  int8 TFLite model on the XNNPACK delegate.

The stage outputs are those of the ResNets, so every head works unchanged: `c1`
(stride 4), `c2` (8), `c3` (16) are the last block outputs at those strides, `c4`
the final 1x1 convolution (960 / 576 channels), as LR-ASPP reads it.

The `_minimalistic` variants are keras.applications' `minimalistic=True` networks:
3x3 kernels, ReLU everywhere and no squeeze-and-excite. Without squeeze-and-excite
no layer pools over the whole image, so a head on them sees only what its receptive
field covers (the plain FCN the paper compares EncNet with).
"""

import keras

from enc_tf.backbones.layout import (
    BACKBONE_NAME,
    STAGE_OUTPUTS,
    first_block_dilation,
    stage_strides_and_dilations,
)
from enc_tf.backbones.mobilenet_input import SignedUnitInput
from enc_tf.layers.activations import HardSwish
from enc_tf.layers.normalization import batch_norm

MOBILENET_BN_EPSILON = 1e-3  # keras.applications' (and TF-slim's)
_RELU, _HSWISH = "relu", "hard_swish"
# Blocks as keras.applications lists them: (expansion, filters, kernel, stride,
# squeeze-excite, activation).
_LARGE = (
    (1, 16, 3, 1, False, _RELU),
    (4, 24, 3, 2, False, _RELU),
    (3, 24, 3, 1, False, _RELU),
    (3, 40, 5, 2, True, _RELU),
    (3, 40, 5, 1, True, _RELU),
    (3, 40, 5, 1, True, _RELU),
    (6, 80, 3, 2, False, _HSWISH),
    (2.5, 80, 3, 1, False, _HSWISH),
    (2.3, 80, 3, 1, False, _HSWISH),
    (2.3, 80, 3, 1, False, _HSWISH),
    (6, 112, 3, 1, True, _HSWISH),
    (6, 112, 3, 1, True, _HSWISH),
    (6, 160, 5, 2, True, _HSWISH),
    (6, 160, 5, 1, True, _HSWISH),
    (6, 160, 5, 1, True, _HSWISH),
)
_SMALL = (
    (1, 16, 3, 2, True, _RELU),
    (72.0 / 16, 24, 3, 2, False, _RELU),
    (88.0 / 24, 24, 3, 1, False, _RELU),
    (4, 40, 5, 2, True, _HSWISH),
    (6, 40, 5, 1, True, _HSWISH),
    (6, 40, 5, 1, True, _HSWISH),
    (3, 48, 5, 1, True, _HSWISH),
    (3, 48, 5, 1, True, _HSWISH),
    (6, 96, 5, 2, True, _HSWISH),
    (6, 96, 5, 1, True, _HSWISH),
    (6, 96, 5, 1, True, _HSWISH),
)


def _minimalistic(blocks):
    """keras.applications' `minimalistic=True`: 3x3 kernels, ReLU, no squeeze-and-excite."""
    return tuple((e, f, 3, s, False, _RELU) for e, f, _, s, _, _ in blocks)


MOBILENETS = {
    "mobilenetv3_large": _LARGE,
    "mobilenetv3_small": _SMALL,
    "mobilenetv3_large_minimalistic": _minimalistic(_LARGE),
    "mobilenetv3_small_minimalistic": _minimalistic(_SMALL),
}
SE_RATIO = 0.25


def make_divisible(value, divisor=8):
    """TF-slim's channel rounding (keras.applications' `_depth`): the nearest multiple
    of `divisor`, at least `divisor`, and never more than 10% below `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _activation(x, kind, name):
    if kind == _RELU:
        return keras.layers.ReLU(name=name)(x)
    return HardSwish(name=name)(x)


def _bn(x, name, sync):
    return batch_norm(name=name, synchronized=sync, epsilon=MOBILENET_BN_EPSILON)(x)


def _squeeze_excite(x, filters, prefix):
    s = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{prefix}squeeze_excite_avg_pool")(
        x
    )
    s = keras.layers.Conv2D(
        make_divisible(filters * SE_RATIO), 1, name=f"{prefix}squeeze_excite_conv"
    )(s)
    s = keras.layers.ReLU(name=f"{prefix}squeeze_excite_relu")(s)
    s = keras.layers.Conv2D(filters, 1, name=f"{prefix}squeeze_excite_conv_1")(s)
    s = keras.layers.Activation("hard_sigmoid", name=f"{prefix}squeeze_excite_gate")(s)
    return keras.layers.Multiply(name=f"{prefix}squeeze_excite_mul")([x, s])


def _inverted_residual(x, spec, block_id, stride, dilation, sync):
    """keras.applications' `_inverted_res_block`, with `stride` and `dilation` set by the
    output-stride schedule (the residual follows the block's own stride)."""
    expansion, filters, kernel, own_stride, se, activation = spec
    prefix = f"expanded_conv_{block_id}_" if block_id else "expanded_conv_"
    in_filters = x.shape[-1]
    shortcut = x
    expanded = make_divisible(in_filters * expansion)
    if block_id:
        x = keras.layers.Conv2D(expanded, 1, use_bias=False, name=f"{prefix}expand")(x)
        x = _activation(_bn(x, f"{prefix}expand_bn", sync), activation, f"{prefix}expand_act")
    if stride == 2:
        # keras.applications' correct_pad for unknown input sizes: one less on top/left.
        pad = ((kernel // 2 - 1, kernel // 2), (kernel // 2 - 1, kernel // 2))
        x = keras.layers.ZeroPadding2D(pad, name=f"{prefix}depthwise_pad")(x)
    x = keras.layers.DepthwiseConv2D(
        kernel,
        strides=stride,
        padding="valid" if stride == 2 else "same",
        dilation_rate=dilation,
        use_bias=False,
        name=f"{prefix}depthwise",
    )(x)
    x = _activation(_bn(x, f"{prefix}depthwise_bn", sync), activation, f"{prefix}depthwise_act")
    if se:
        x = _squeeze_excite(x, expanded, prefix)
    x = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{prefix}project")(x)
    x = _bn(x, f"{prefix}project_bn", sync)
    if own_stride == 1 and in_filters == filters:
        x = keras.layers.Add(name=f"{prefix}add")([shortcut, x])
    return x


def block_schedule(blocks, output_stride):
    """`[(stride, dilation, stage output or None)]` for each block of `blocks`.

    A block belongs to the stage of the stride it brings the features to (after the
    stem's stride 2: 4 is stage 1, 8 stage 2, 16 stage 3, 32 stage 4). Stages 2..4
    follow `stage_strides_and_dilations`: their first block takes the stage's stride
    and `first_block_dilation`, the others the stage's dilation. The last block of
    stages 1..3 gives `c1..c3`; `c4` is the final 1x1 convolution.
    """
    schedule = dict(zip((2, 3, 4), stage_strides_and_dilations(output_stride)))
    nominal, stages = 2, []
    for spec in blocks:
        nominal *= spec[3]
        stages.append(max(1, nominal.bit_length() - 2))  # 4 -> 1, 8 -> 2, 16 -> 3, 32 -> 4
    rows = []
    for i, (spec, stage) in enumerate(zip(blocks, stages)):
        if stage < 2:
            stride, dilation = spec[3], 1
        elif spec[3] == 2:
            stride, dilation = schedule[stage][0], first_block_dilation(schedule[stage][1])
        else:
            stride, dilation = 1, schedule[stage][1]
        last = i + 1 == len(blocks) or stages[i + 1] != stage
        rows.append((stride, dilation, STAGE_OUTPUTS[stage - 1] if last and stage < 4 else None))
    return rows


def build_mobilenet_v3(
    name="mobilenetv3_large",
    output_stride=16,
    sync_batch_norm=False,
    input_shape=(None, None, 3),
):
    """Builds a dilated MobileNetV3 feature extractor (ImageNet weights: `build_backbone`).

    Args:
        name: a key of `MOBILENETS`: `mobilenetv3_large`, `mobilenetv3_small`, or either
            with `_minimalistic`.
        output_stride: 16 (stage 4 dilated), 8 (stages 3 and 4) or 32.
        sync_batch_norm: bool, synchronise every BatchNorm across replicas.
        input_shape: `(H, W, 3)`; `H` and `W` may be `None`.

    Returns:
        A functional `keras.Model` named `backbone` from normalised images
        `(B, H, W, 3)` to a dict of `c1` (stride 4; 24 channels Large, 16 Small),
        `c2` (stride 8; 40, 24), `c3` (112, 48) and `c4` (960, 576); `c3`/`c4` are at
        stride 8 or 16 depending on `output_stride`.
    """
    if name not in MOBILENETS:
        raise ValueError(f"Unknown MobileNetV3 {name!r}; choose one of {sorted(MOBILENETS)}.")
    blocks = MOBILENETS[name]
    outer = _RELU if name.endswith("_minimalistic") else _HSWISH  # the stem's and conv_1's
    images = keras.Input(shape=input_shape, name="images")
    x = SignedUnitInput(name="signed_unit_input")(images)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="conv")(x)
    x = _activation(_bn(x, "conv_bn", sync_batch_norm), outer, "conv_act")
    features = {}
    for block_id, (spec, (stride, dilation, output)) in enumerate(
        zip(blocks, block_schedule(blocks, output_stride))
    ):
        x = _inverted_residual(x, spec, block_id, stride, dilation, sync_batch_norm)
        if output is not None:
            features[output] = x
    x = keras.layers.Conv2D(make_divisible(x.shape[-1] * 6), 1, use_bias=False, name="conv_1")(x)
    features["c4"] = _activation(_bn(x, "conv_1_bn", sync_batch_norm), outer, "conv_1_act")
    return keras.Model(images, features, name=BACKBONE_NAME)
