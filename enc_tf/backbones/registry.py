"""Every backbone by name: one builder, and the head size each family is paired with."""

from enc_tf.backbones.imagenet import load_imagenet_weights
from enc_tf.backbones.mobilenet_v3 import MOBILENETS, build_mobilenet_v3
from enc_tf.backbones.resnet import RESNETS, build_resnet

BACKBONES = (*RESNETS, *MOBILENETS)
# EncHead's (width, codewords): the paper's 512 / 32 for the ResNets; for MobileNetV3, a
# head that costs less than its backbone (docs/mobile.md: the FLOP split at 512x512).
HEAD_SIZES = {
    **{name: (512, 32) for name in RESNETS},
    "mobilenetv3_large": (128, 16),
    "mobilenetv3_small": (64, 16),
    "mobilenetv3_large_minimalistic": (128, 16),
    "mobilenetv3_small_minimalistic": (64, 16),
}


def backbone_family(name):
    """`resnet` or `mobilenet_v3` for a name in `BACKBONES`."""
    if name in RESNETS:
        return "resnet"
    if name in MOBILENETS:
        return "mobilenet_v3"
    raise ValueError(f"Unknown backbone {name!r}; choose one of {sorted(BACKBONES)}.")


def head_size(name):
    """`(EncHead width, codewords)` defaults for the backbone `name`."""
    backbone_family(name)  # an unknown name is an error that lists the known ones
    return HEAD_SIZES[name]


def build_backbone(
    name="resnet50s",
    output_stride=8,
    sync_batch_norm=False,
    input_shape=(None, None, 3),
    weights=None,
    stem_width=None,
):
    """Builds the backbone `name` (one of `BACKBONES`): a functional `keras.Model` named
    `backbone` from normalised images `(B, H, W, 3)` to a dict of stage features
    `c1..c4` (see `build_resnet` and `build_mobilenet_v3` for their channels).

    Args:
        name: a ResNet (`resnet50s`, `resnet101s`, `resnet50v1c`, `resnet101v1c`,
            `resnet50`, `resnet101`) or a MobileNetV3 (`mobilenetv3_large`,
            `mobilenetv3_small`, either with `_minimalistic`).
        output_stride: 8, 16 or 32.
        sync_batch_norm: bool, synchronise every BatchNorm across replicas.
        input_shape: `(H, W, 3)`; `H` and `W` may be `None`.
        weights: optional local ImageNet weight file (`load_imagenet_weights`: a
            keras.applications `.h5` for `resnet50`, `resnet101`, `mobilenetv3_*`; a
            timm, PyTorch-Encoding or mmcv state_dict for the deep-stem ResNets).
            Nothing is downloaded.
        stem_width: ResNets only: the stem's output channels (None: the named one's).
    """
    family = backbone_family(name)  # an unknown name is an error that lists the known ones
    if family == "resnet":
        model = build_resnet(name, output_stride, sync_batch_norm, input_shape, stem_width)
    elif stem_width is not None:
        raise ValueError(f"stem_width is a ResNet argument; {name!r} has none.")
    else:
        model = build_mobilenet_v3(name, output_stride, sync_batch_norm, input_shape)
    if weights is not None:
        load_imagenet_weights(model, weights, name)
    return model
